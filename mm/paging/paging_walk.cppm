// mm.paging.walk: what every page-table walk shares: the format concept, the address geometry,
// and the one descent through the levels that the engine (mm.paging), the recursive view
// (mm.paging.recursive) and the lock-free translate below are built on.
//
// A descent follows table entries from the root towards one address. Where the entries come from
// is a cursor's business (`Entry load(u32 level)`: the entry for the address in the current
// level-`level` table, 0 if it cannot be read; `void enter(u32 level, Entry table_entry)`: move to
// the table that entry points at): the physical window (WindowCursor) or the recursive window.
module;

#include <ktl/macros.h>

export module mm.paging.walk;

import ktl;
import mm.addr;
import mm.arch;
import mm.paging.types;
export import mm.paging.formats;

export namespace mm {

template <class F>
concept PageTableFormat = requires(typename F::Entry e, PhysAddr p, PageFlags f, VirtAddr v, u32 level) {
  requires ktl::is_integral<typename F::Entry> && !ktl::is_signed<typename F::Entry>;
  requires sizeof(typename F::Entry) * F::kEntries == kPageSize;
  requires F::kLevels >= 2 && F::kLevels <= 4;
  requires(u64{1} << F::kIndexBits) == F::kEntries;
  requires F::kLargestLeafLevel < F::kLevels;
  requires F::kPhysLimit <= PhysAddr::kLimit;
  requires ktl::is_same<decltype(F::kind(e, level)), paging::EntryKind>;
  requires ktl::is_same<decltype(F::target(e, level)), PhysAddr>;
  requires ktl::is_same<decltype(F::table_entry(p)), typename F::Entry>;
  requires ktl::is_same<decltype(F::leaf_entry(level, p, f)), typename F::Entry>;
  requires ktl::is_same<decltype(F::split_leaf(e, level)), typename F::Entry>;
  requires ktl::is_same<decltype(F::relax_table(e)), typename F::Entry>;
  requires ktl::is_same<decltype(F::leaf_flags(e, level)), PageFlags>;
  requires ktl::is_same<decltype(F::restrict(e, f)), PageFlags>;
  requires ktl::is_same<decltype(F::effective(f)), PageFlags>;
  requires ktl::is_same<decltype(F::virt_ok(v)), bool>;
  F::kRecursive;
  F::kUserRootSlots;
  F::kName;
};

// Whether format F has leaves of size S. Misuse is a compile error: PageTable<X86_32>::map takes
// no Page<Size1G>, PageTable<X86_64>::map no Page<Size4M>.
template <class F, class S>
concept SupportsPageSize = PageTableFormat<F> && PageSize<S> && (F::template kLevelOf<S> >= 0);

namespace paging {

// Address arithmetic shared by the engine and the recursive view. Internally addresses are
// "linear": the VirtAddr truncated to the bits the format translates (48 or 32), so the upper
// half is contiguous above the lower one.
template <PageTableFormat F>
struct Geometry {
  static constexpr u32 kLevels = F::kLevels;
  static constexpr u32 kTop = F::kLevels - 1;
  static constexpr u32 kSpaceBits = 12 + F::kLevels * F::kIndexBits;
  static constexpr u64 kSpaceMask = (u64{1} << kSpaceBits) - 1;

  [[nodiscard]] static constexpr u32 shift(u32 level) { return 12 + level * F::kIndexBits; }
  // Bytes translated by one entry of a level-`level` table.
  [[nodiscard]] static constexpr u64 level_size(u32 level) { return u64{1} << shift(level); }
  [[nodiscard]] static constexpr usize index(u64 lin, u32 level) {
    return static_cast<usize>((lin >> shift(level)) & (F::kEntries - 1));
  }
  [[nodiscard]] static constexpr u64 linear(VirtAddr v) { return v.value() & kSpaceMask; }
  [[nodiscard]] static constexpr VirtAddr virt(u64 lin) {
    if constexpr (kSpaceBits == VirtAddr::kBits) {
      return VirtAddr::truncate(lin);
    } else {
      return VirtAddr::from(lin);
    }
  }
};

// Where a descent stopped: the first entry that is not a table, or the entry at the floor level.
template <PageTableFormat F>
struct Stop {
  u32 level;
  EntryKind kind;
  typename F::Entry entry;
};

struct NoTables {
  template <class Entry>
  inline void operator()(u32, Entry) const {}
};

// THE descent: from the root (level kLevels-1) towards the cursor's address, following table
// entries down to level `floor` at most. on_table(level, entry) sees every table entry passed
// through, before the cursor enters it (the cursor still stands on that entry).
template <PageTableFormat F, class Cursor, class OnTable = NoTables>
[[nodiscard, gnu::always_inline]] inline Stop<F> descend(Cursor& cursor, u32 floor, OnTable&& on_table = {}) {
  for (u32 level = Geometry<F>::kTop;; --level) {
    typename F::Entry e = cursor.load(level);
    EntryKind kind = F::kind(e, level);
    if (kind != EntryKind::Table || level <= floor) return Stop<F>{level, kind, e};
    on_table(level, e);
    cursor.enter(level, e);
  }
}

// The translation of `v` by the cursor's tables (the cursor stands at the root, on `v`): the
// leaf's flags restricted by every table above it, as the MMU computes them.
template <PageTableFormat F, class Cursor>
[[nodiscard, gnu::always_inline]] inline ktl::Optional<Translation> translation(Cursor& cursor, VirtAddr v) {
  ktl::Array<typename F::Entry, F::kLevels> path{};
  u32 depth = 0;
  Stop<F> s = descend<F>(cursor, 0, [&](u32, typename F::Entry e) { path[depth++] = e; });
  if (s.kind != EntryKind::Leaf) return ktl::nullopt;
  PageFlags flags = F::leaf_flags(s.entry, s.level);
  for (u32 i = 0; i < depth; ++i) flags = F::restrict(path[i], flags);
  u64 size = Geometry<F>::level_size(s.level);
  PhysAddr frame = F::target(s.entry, s.level);
  return Translation{frame + (v.value() & (size - 1)), v.align_down(size), frame, size, flags};
}

// What a walk does with a table outside the physical window: the engine's own tables never are
// (a broken invariant: panic); tables nobody vouches for (the panic path's CR3) read as empty.
enum class OutsideWindow : ktl::u8 { Panic, Empty };

// A descent's cursor over tables read through a PhysWindow (relaxed atomic loads: the tables may
// change under a walk that takes no lock; it then sees the old or the new entry).
template <PageTableFormat F, OutsideWindow kOutside>
class WindowCursor {
 public:
  using Entry = typename F::Entry;
  inline WindowCursor(const PhysWindow& window, PhysAddr root, u64 lin)
      : window_(window), table_(root), lin_(lin) {}

  [[nodiscard, gnu::always_inline]] Entry load(u32 level) {
    if constexpr (kOutside == OutsideWindow::Empty) {
      if (!table_.is_aligned(kPageSize) || !window_.covers(table_, kPageSize)) {
        slot_ = nullptr;
        return 0;
      }
    }
    slot_ = &window_.array<Entry>(table_, F::kEntries)[Geometry<F>::index(lin_, level)];
    return __atomic_load_n(slot_, __ATOMIC_RELAXED);
  }
  [[gnu::always_inline]] void enter(u32 level, Entry table_entry) { table_ = F::target(table_entry, level); }

  // The entry the last load() read, and its table.
  [[nodiscard]] inline Entry& slot() const {
    ktl::check(slot_ != nullptr, "WindowCursor::slot: no entry was read");
    return *slot_;
  }
  [[nodiscard]] inline PhysAddr table() const { return table_; }

 private:
  const PhysWindow& window_;
  PhysAddr table_;
  u64 lin_;
  Entry* slot_ = nullptr;
};

// Where `v` translates to in the tables rooted at `root`, read through `window`. Takes no lock,
// writes nothing and never panics (a table outside the window reads as not present): for the
// panic path and for checks of the active tables before anything else is up.
template <PageTableFormat F>
[[nodiscard]] ktl::Optional<Translation> translate(const PhysWindow& window, PhysAddr root, VirtAddr v) {
  if (!F::virt_ok(v)) return ktl::nullopt;
  WindowCursor<F, OutsideWindow::Empty> cursor(window, root, Geometry<F>::linear(v));
  return translation<F>(cursor, v);
}

}  // namespace paging
}  // namespace mm
