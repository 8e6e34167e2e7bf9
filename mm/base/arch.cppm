// mm.arch: everything mm needs from the CPU it runs on, in one interface.
//
//  * PhysWindow: where physical memory can be read and written as ordinary memory. In the kernel
//    this is the direct map the loader built (virt = phys + boot::layout::kDirectMapBase); on the
//    host it is simulated physical memory. mm never forms a pointer to physical memory any other way.
//  * The ferrite_arch_* hooks below: TLB maintenance, address-space activation and keeping the
//    caller on its CPU. A CPU port defines all of them in one file (x86_64:
//    kernel/arch/x86_64/mm_arch.cc). The host's implementation is arch_host.cc, in this target: it
//    records the TLB and activation requests (tlb_log, for tests) and has no CPU hooks, since on
//    the host threads stand in for CPUs (mm.slab.cpu uses thread-local blocks there).
module;

#include <ktl/macros.h>

export module mm.arch;

import ktl;
import mm.addr;

export extern "C" {
  // Invalidate this CPU's TLB entries of `pages` 4 KiB pages from `virt_start` / all of them.
  // Called with interrupts off or by the owner of the address space.
  void ferrite_arch_flush_tlb_range(ktl::u64 virt_start, ktl::u64 pages);
  void ferrite_arch_flush_tlb_all();
  // Make the table at `root_phys` (page aligned) the current top level (CR3 / TTBR); read it back.
  void ferrite_arch_activate_root(ktl::u64 root_phys);
  ktl::u64 ferrite_arch_active_root();
  // Keep the caller on this CPU, uninterrupted, until the matching unpin (which gets pin's return
  // value and restores the state before it). Pins nest.
  ktl::u64 ferrite_arch_cpu_pin();
  void ferrite_arch_cpu_unpin(ktl::u64 saved);
  // The current CPU's index, below the number of CPUs the port starts (valid while pinned).
  ktl::u32 ferrite_arch_cpu_id();
  // Allocation contexts (mm.frames' AllocContext). Whether the caller is an interrupt handler: the
  // heap's C-style entry points then allocate as AllocContext::Atomic (never block, never
  // reclaim). And, for an allocation that may block and found no memory: wait a while for memory
  // to be freed (kernel: the task sleeps; later kswapd wakes it) and return true to retry, or
  // false where waiting is impossible (no scheduler, a lock held) or `attempt` is the last.
  bool ferrite_arch_in_interrupt();
  bool ferrite_arch_wait_for_memory(ktl::u32 attempt);
}

export namespace mm {

class PhysWindow {
 public:
  constexpr PhysWindow() = default;
  // Physical [base, base + size) is visible at virtual `view`.
  inline PhysWindow(PhysAddr base, u64 size, ktl::u8* view) : base_(base), size_(size), view_(view) {}

  [[nodiscard]] inline PhysAddr base() const { return base_; }
  [[nodiscard]] inline u64 size() const { return size_; }
  [[nodiscard]] inline bool covers(PhysAddr p, u64 length) const {
    if (p < base_) return false;
    u64 offset = p - base_;
    return offset <= size_ && length <= size_ - offset;
  }
  // The bytes of physical [p, p + length); panics if the window does not cover them.
  [[nodiscard]] inline ktl::Span<ktl::u8> bytes(PhysAddr p, u64 length) const {
    ktl::check(covers(p, length), "PhysWindow: physical range outside the window");
    KTL_UNSAFE_BUFFER_BEGIN  // offset + length <= size_ checked above
    return ktl::Span<ktl::u8>::from_raw(view_ + (p - base_), length);
    KTL_UNSAFE_BUFFER_END
  }
  // A typed view of one T at `p` (aligned for T, inside the window).
  template <class T>
  [[nodiscard]] inline T& as(PhysAddr p) const {
    ktl::check(p.is_aligned(alignof(T)), "PhysWindow::as: misaligned physical address");
    KTL_UNSAFE_BUFFER_BEGIN  // bytes() checked that sizeof(T) bytes at p are in the window; alignment checked
                             // above
    return *reinterpret_cast<T*>(bytes(p, sizeof(T)).data());
    KTL_UNSAFE_BUFFER_END
  }
  template <class T>
  [[nodiscard]] inline ktl::Span<T> array(PhysAddr p, ktl::usize count) const {
    ktl::check(p.is_aligned(alignof(T)), "PhysWindow::array: misaligned physical address");
    KTL_UNSAFE_BUFFER_BEGIN  // bytes() checked that count * sizeof(T) bytes at p are in the window; alignment
                             // checked above
    return ktl::Span<T>::from_raw(reinterpret_cast<T*>(bytes(p, count * sizeof(T)).data()), count);
    KTL_UNSAFE_BUFFER_END
  }
  // The virtual address at which physical `p` is visible.
  [[nodiscard]] inline VirtAddr virt(PhysAddr p) const { return VirtAddr::of(bytes(p, 0).data()); }
  // The physical address behind a pointer into the window, if it is one.
  [[nodiscard]] inline ktl::Optional<PhysAddr> phys_of(const void* ptr) const {
    auto v = ktl::address_of(ptr);
    auto lo = ktl::address_of(view_);
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

// Keeps the caller on its CPU (kernel: interrupts masked) for its lifetime.
class CpuPin : ktl::NoCopy {
 public:
  inline CpuPin() : saved_(ferrite_arch_cpu_pin()) {}
  inline ~CpuPin() { ferrite_arch_cpu_unpin(saved_); }
  [[nodiscard]] inline ktl::u32 cpu() const { return ferrite_arch_cpu_id(); }

 private:
  u64 saved_;
};

[[nodiscard]] inline bool in_interrupt() { return ferrite_arch_in_interrupt(); }
[[nodiscard]] inline bool wait_for_memory(u32 attempt) { return ferrite_arch_wait_for_memory(attempt); }

#if __STDC_HOSTED__
// The host's allocation-context hooks, for tests: an "interrupt handler" on this thread while
// InterruptContext::Inside is set, and what waiting for memory does (default: nothing, give up).
enum class InterruptContext : ktl::u8 { Outside, Inside };
void set_host_interrupt_context(InterruptContext c);
using WaitForMemoryHook = bool (*)(u32 attempt, void* context);
void set_wait_for_memory_hook(WaitForMemoryHook hook, void* context);

// What the host's hooks were asked to do (arch_host.cc). Tests reset and inspect it.
struct TlbLog {
  u64 range_flushes;  // calls to flush_tlb(start, pages)
  u64 pages_flushed;  // sum of their page counts
  u64 full_flushes;   // calls to flush_tlb_all()
  u64 activations;    // calls to activate(root)
  u64 last_start;     // the last range flush
  u64 last_pages;
};
[[nodiscard]] TlbLog tlb_log();
void reset_tlb_log();
// Called on every range flush, after it is recorded (tests that check what holds at the moment of
// the invalidation: "entries already cleared, frames not yet freed"). Null removes the observer.
using TlbFlushObserver = void (*)(u64 start, u64 pages, void* context);
void set_tlb_flush_observer(TlbFlushObserver observer, void* context);
#endif
}  // namespace arch

}  // namespace mm
