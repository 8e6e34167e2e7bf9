// kernel.vmview: the kernel's own view of an address space, as a list of mappings.
//
// Walks page tables of any mm.paging format through a PhysWindow with the format's own decoding
// (mm::paging::Geometry, F::kind/target/leaf_flags/restrict: the engine's vocabulary), visiting
// every leaf in address order with its effective permissions (as the MMU computes them along the
// walk, like PageTable::translate). Root entries that point back at the root (the recursive slot)
// are reported, not descended. for_each_range() coalesces leaves that continue each other
// virtually and physically with equal flags, which is also how testing/qemu/pagetables.py
// coalesces its walk from outside: the kernel prints its list (`pagetables=dump`, the "vm:" block)
// and boot_inspect_test compares the two.
//
// The block's lines:
//   vm: begin page tables root=0x... format=x86_64
//   vm: recursive slot=510
//   vm: 0xffff800000000000 0x0000000000000000 0x000000040000000 W--G WB      (va pa size flags cache)
//   vm: end ranges=N leaves=M
//
// Contract: the tables are not changed during the walk (the caller holds the address-space lock or
// knows that nothing else runs). Pure over the window: host tests in vmview_test.cc.
module;

#include <ktl/macros.h>

export module kernel.vmview;

import ktl;
import mm.addr;
import mm.arch;
import mm.paging;

export namespace kernel::vmview {

using ktl::u32;
using ktl::u64;
using ktl::usize;

struct Range {
  mm::VirtAddr va = mm::VirtAddr::zero();
  mm::PhysAddr pa = mm::PhysAddr::zero();
  u64 size = 0;
  mm::PageFlags flags{};  // effective
  u64 leaves = 0;         // leaf entries that make up the range
  friend constexpr bool operator==(const Range&, const Range&) = default;
};

// "0x<va> 0x<pa> 0x<size> W-XG WB" (the "vm:" line without its prefix).
void format_value(ktl::FormatSink& sink, const Range& r, const ktl::FormatSpec& spec);

namespace detail {
template <mm::PageTableFormat F, class LeafFn>
void descend(const mm::PhysWindow& window, mm::PhysAddr table, u32 level, u64 base,
             ktl::Array<typename F::Entry, F::kLevels>& path, u32 depth, LeafFn& leaf) {
  using G = mm::paging::Geometry<F>;
  ktl::Span<typename F::Entry> entries = window.array<typename F::Entry>(table, F::kEntries);
  for (usize i = 0; i < F::kEntries; ++i) {
    typename F::Entry e = __atomic_load_n(&entries[i], __ATOMIC_RELAXED);
    u64 lin = base + i * G::level_size(level);
    switch (F::kind(e, level)) {
      case mm::paging::EntryKind::Empty: break;
      case mm::paging::EntryKind::Leaf: {
        mm::PageFlags flags = F::leaf_flags(e, level);
        for (u32 d = 0; d < depth; ++d) flags = F::restrict(path[d], flags);
        leaf(Range{G::virt(lin), F::target(e, level), G::level_size(level), F::effective(flags), 1});
        break;
      }
      case mm::paging::EntryKind::Table:
        if (level == 0) break;  // a format never reports a table at level 0
        path[depth] = e;
        descend<F>(window, F::target(e, level), level - 1, lin, path, depth + 1, leaf);
        break;
    }
  }
}
}  // namespace detail

// Calls leaf(const Range&) for every leaf reachable from `root` in ascending linear order, and
// self_slot(u32 slot) for every root entry that points at the root itself.
template <mm::PageTableFormat F, class LeafFn, class SelfFn>
void for_each_leaf(const mm::PhysWindow& window, mm::PhysAddr root, LeafFn&& leaf, SelfFn&& self_slot) {
  using G = mm::paging::Geometry<F>;
  ktl::Array<typename F::Entry, F::kLevels> path{};
  ktl::Span<typename F::Entry> entries = window.array<typename F::Entry>(root, F::kEntries);
  for (usize i = 0; i < F::kEntries; ++i) {
    typename F::Entry e = __atomic_load_n(&entries[i], __ATOMIC_RELAXED);
    u32 top = G::kTop;
    if (F::kind(e, top) == mm::paging::EntryKind::Table && F::target(e, top) == root) {
      self_slot(static_cast<u32>(i));
      continue;
    }
    // One root slot at a time through the common descent (skipping the self-reference above).
    u64 lin = i * G::level_size(top);
    switch (F::kind(e, top)) {
      case mm::paging::EntryKind::Empty: break;
      case mm::paging::EntryKind::Leaf: {
        mm::PageFlags flags = F::leaf_flags(e, top);
        leaf(Range{G::virt(lin), F::target(e, top), G::level_size(top), F::effective(flags), 1});
        break;
      }
      case mm::paging::EntryKind::Table:
        path[0] = e;
        detail::descend<F>(window, F::target(e, top), top - 1, lin, path, 1, leaf);
        break;
    }
  }
}

// Merges consecutive leaves into ranges.
class Coalescer {
 public:
  // Adds the next leaf (in ascending order); emit(const Range&) receives every finished range.
  template <class Emit>
  inline void add(const Range& leaf, Emit&& emit) {
    if (open_ && continues(leaf)) {
      current_.size += leaf.size;
      current_.leaves += leaf.leaves;
      return;
    }
    if (open_) emit(current_);
    current_ = leaf;
    open_ = true;
  }
  template <class Emit>
  inline void finish(Emit&& emit) {
    if (open_) emit(current_);
    open_ = false;
  }

 private:
  [[nodiscard]] inline bool continues(const Range& next) const {
    return current_.va.value() + current_.size == next.va.value() &&
           current_.pa.value() + current_.size == next.pa.value() && current_.flags == next.flags;
  }
  Range current_{};
  bool open_ = false;
};

struct Summary {
  u64 ranges = 0;
  u64 leaves = 0;
  u64 bytes = 0;
  ktl::Optional<u32> recursive_slot{};
};

// Coalesced mappings of the tables at `root`: emit(const Range&) for each, in address order.
template <mm::PageTableFormat F, class Emit>
Summary for_each_range(const mm::PhysWindow& window, mm::PhysAddr root, Emit&& emit) {
  Summary s;
  Coalescer c;
  auto out = [&](const Range& r) {
    ++s.ranges;
    emit(r);
  };
  for_each_leaf<F>(
      window, root,
      [&](const Range& leaf) {
        ++s.leaves;
        s.bytes += leaf.size;
        c.add(leaf, out);
      },
      [&](u32 slot) { s.recursive_slot = slot; });
  c.finish(out);
  return s;
}

}  // namespace kernel::vmview
