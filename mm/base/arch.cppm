// mm.arch: the one small interface mm needs from whatever runs it.
//
//  * PhysWindow: where physical memory can be read and written as ordinary memory. In the kernel
//    this is the direct map the loader built (virt = phys + boot::layout::kDirectMapBase); on the
//    host it is a test's simulated physical memory (testing/sim). mm never forms a pointer to
//    physical memory any other way.
//  * TLB maintenance and address-space activation: link-time hooks (ferrite_arch_*) that the
//    kernel implements with invlpg / mov cr3 (kernel/arch/x86_64) and host tests implement by
//    recording what was asked (testing/sim), so tests can assert that flushes happened.
module;

#include <ktl/macros.h>

export module mm.arch;

import ktl;
import mm.addr;

export extern "C" {
  void ferrite_arch_flush_tlb_range(ktl::u64 virt_start, ktl::u64 pages);
  void ferrite_arch_flush_tlb_all();
  void ferrite_arch_activate_root(ktl::u64 root_phys);
  ktl::u64 ferrite_arch_active_root();
}

export namespace mm {

class PhysWindow {
 public:
  constexpr PhysWindow() = default;
  // Physical [base, base + size) is visible at virtual `view`.
  PhysWindow(PhysAddr base, u64 size, ktl::u8* view) : base_(base), size_(size), view_(view) {}

  [[nodiscard]] PhysAddr base() const { return base_; }
  [[nodiscard]] u64 size() const { return size_; }
  [[nodiscard]] bool covers(PhysAddr p, u64 length) const {
    if (p < base_) return false;
    u64 offset = p - base_;
    return offset <= size_ && length <= size_ - offset;
  }
  // The bytes of physical [p, p + length); panics if the window does not cover them.
  [[nodiscard]] ktl::Span<ktl::u8> bytes(PhysAddr p, u64 length) const {
    ktl::check(covers(p, length), "PhysWindow: physical range outside the window");
    KTL_UNSAFE_BUFFER_BEGIN  // offset + length <= size_ checked above
        return ktl::Span<ktl::u8>::from_raw(view_ + (p - base_), length);
    KTL_UNSAFE_BUFFER_END
  }
  // A typed view of one T at `p` (aligned for T, inside the window).
  template <class T>
  [[nodiscard]] T& as(PhysAddr p) const {
    ktl::check(p.is_aligned(alignof(T)), "PhysWindow::as: misaligned physical address");
    return *reinterpret_cast<T*>(bytes(p, sizeof(T)).data());
  }
  template <class T>
  [[nodiscard]] ktl::Span<T> array(PhysAddr p, ktl::usize count) const {
    ktl::check(p.is_aligned(alignof(T)), "PhysWindow::array: misaligned physical address");
    return ktl::Span<T>::from_raw(reinterpret_cast<T*>(bytes(p, count * sizeof(T)).data()), count);
  }
  // The virtual address at which physical `p` is visible.
  [[nodiscard]] VirtAddr virt(PhysAddr p) const { return VirtAddr::of(bytes(p, 0).data()); }
  // The physical address behind a pointer into the window, if it is one.
  [[nodiscard]] ktl::Optional<PhysAddr> phys_of(const void* ptr) const {
    auto v = reinterpret_cast<ktl::uptr>(ptr);
    auto lo = reinterpret_cast<ktl::uptr>(view_);
    if (view_ == nullptr || v < lo || v - lo >= size_) return ktl::nullopt;
    return base_ + (v - lo);
  }

 private:
  PhysAddr base_ = PhysAddr::zero();
  u64 size_ = 0;
  ktl::u8* view_ = nullptr;
};

namespace arch {
// Invalidates the TLB entries of `pages` 4 KiB pages from `start` on this CPU.
// FIXME(smp): shootdowns to other CPUs that use the same address space.
inline void flush_tlb(VirtAddr start, u64 pages) { ferrite_arch_flush_tlb_range(start.value(), pages); }
inline void flush_tlb_all() { ferrite_arch_flush_tlb_all(); }
// Makes `root` the current top-level table (CR3 / TTBR).
inline void activate(PhysAddr root) { ferrite_arch_activate_root(root.value()); }
[[nodiscard]] inline PhysAddr active_root() { return PhysAddr::from(ferrite_arch_active_root()); }
}  // namespace arch

}  // namespace mm
