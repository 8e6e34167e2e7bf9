// mm.paging.recursive: the page tables seen through a recursive root slot.
//
// With root slot `s` pointing at the root itself, the table that translates `va` at level l is
// visible at the virtual address whose top l+1 indices are all `s` and whose remaining indices
// are va's top indices shifted down. RecursiveView computes those addresses and walks a
// translation through them (the descent of mm.paging.walk), reading with a Memory
// (`template <class T> Optional<T> read(VirtAddr)`): ActiveWindowMemory in the kernel, a
// simulated-MMU reader on the host.
module;

#include <ktl/macros.h>

export module mm.paging.recursive;

import ktl;
import mm.addr;
import mm.paging.types;
import mm.paging.walk;

export namespace mm {

template <PageTableFormat F>
  requires(F::kRecursive)
class RecursiveView {
  using G = paging::Geometry<F>;

 public:
  using Entry = typename F::Entry;

  [[nodiscard]] static constexpr ktl::Result<RecursiveView, PagingError> at_slot(u32 slot) {
    if (slot >= F::kEntries) return ktl::Err(PagingError::OutOfRange);
    return RecursiveView(slot);
  }
  [[nodiscard]] constexpr u32 slot() const { return slot_; }

  // The virtual address of the level-`level` table used to translate `va` (level kLevels-1 is the
  // root itself).
  [[nodiscard]] constexpr VirtAddr table_address(u32 level, VirtAddr va) const {
    ktl::check(level < G::kLevels, "RecursiveView::table_address: no such level");
    u64 lin = G::linear(va);
    u32 copies = level + 1;
    u64 out = 0;
    for (u32 field = 0; field < G::kLevels; ++field) {  // field 0 is the root index
      u64 idx = field < copies ? slot_ : G::index(lin, G::kTop - (field - copies));
      out |= idx << G::shift(G::kTop - field);
    }
    return G::virt(out);
  }
  [[nodiscard]] constexpr VirtAddr entry_address(u32 level, VirtAddr va) const {
    return table_address(level, va) + G::index(G::linear(va), level) * sizeof(Entry);
  }
  [[nodiscard]] constexpr VirtAddr window_start() const { return G::virt(u64{slot_} << G::shift(G::kTop)); }
  [[nodiscard]] static constexpr u64 window_size() { return G::level_size(G::kTop); }
  [[nodiscard]] constexpr bool contains(VirtAddr va) const {
    return F::virt_ok(va) && G::index(G::linear(va), G::kTop) == slot_;
  }

  // Walks the translation of `va` reading every entry through the recursive window (an entry
  // the memory cannot read counts as not present).
  template <class Memory>
  [[nodiscard]] inline ktl::Optional<Translation> translate(Memory& memory, VirtAddr va) const {
    if (!F::virt_ok(va)) return ktl::nullopt;
    Cursor<Memory> cursor{*this, memory, va};
    return paging::translation<F>(cursor, va);
  }

 private:
  // The descent's cursor: every level's entry is at a fixed address, so entering is a no-op.
  template <class Memory>
  struct Cursor {
    const RecursiveView& view;
    Memory& memory;
    VirtAddr va;
    [[nodiscard]] inline Entry load(u32 level) {
      return memory.template read<Entry>(view.entry_address(level, va)).value_or(Entry{0});
    }
    inline void enter(u32, Entry) {}
  };

  constexpr explicit RecursiveView(u32 slot) : slot_(slot) {}
  u32 slot_;
};

// Reads through the recursive window of the *active* address space (kernel only: the window is
// mapped only while tables with the self-reference are loaded in CR3).
struct ActiveWindowMemory {
  template <class T>
  [[nodiscard]] inline ktl::Optional<T> read(VirtAddr va) const {
    T value = *va.as_ptr<const volatile T>();
    return value;
  }
};

}  // namespace mm
