// sim.phys: simulated physical memory for host tests and benchmarks.
//
// One anonymous mapping (MAP_NORESERVE: only touched pages cost real memory, so 64 GiB of
// simulated RAM is cheap) whose offsets are physical addresses starting at `base`. It hands mm
// the same PhysWindow the kernel's direct map provides.
module;

#include <sys/mman.h>

#include <ktl/macros.h>

export module sim.phys;

import ktl;
import mm.addr;
import mm.arch;

export namespace sim {

class PhysMemory : ktl::NoCopy {
 public:
  // `size` bytes of simulated RAM at physical `base` (both 4 KiB aligned). Panics if the host
  // cannot reserve the address space.
  PhysMemory(mm::PhysAddr base, ktl::u64 size) : base_(base), size_(size) {
    ktl::check(base.is_aligned(4096) && ktl::is_aligned<ktl::u64>(size, 4096), "sim::PhysMemory: unaligned");
    void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    ktl::check(p != MAP_FAILED, "sim::PhysMemory: mmap failed");
    view_ = static_cast<ktl::u8*>(p);
  }
  PhysMemory(PhysMemory&& o)
      : base_(o.base_), size_(ktl::exchange(o.size_, 0)), view_(ktl::exchange(o.view_, nullptr)) {}
  PhysMemory& operator=(PhysMemory&&) = delete;
  ~PhysMemory() {
    if (view_ != nullptr) munmap(view_, size_);
  }

  [[nodiscard]] mm::PhysWindow window() const { return mm::PhysWindow(base_, size_, view_); }
  [[nodiscard]] mm::PhysAddr base() const { return base_; }
  [[nodiscard]] mm::PhysAddr end() const { return base_ + size_; }
  [[nodiscard]] ktl::u64 size() const { return size_; }
  [[nodiscard]] mm::PhysRange range() const { return mm::PhysRange::with_size(base_, size_).value(); }

 private:
  mm::PhysAddr base_;
  ktl::u64 size_;
  ktl::u8* view_ = nullptr;
};

// What the host's TLB hooks were asked to do (see arch_hooks.cc). Tests reset and inspect it.
struct TlbLog {
  ktl::u64 range_flushes;   // calls to flush_tlb(start, pages)
  ktl::u64 pages_flushed;   // sum of their page counts
  ktl::u64 full_flushes;    // calls to flush_tlb_all()
  ktl::u64 activations;     // calls to activate(root)
  ktl::u64 last_start;      // the last range flush
  ktl::u64 last_pages;
};
[[nodiscard]] TlbLog tlb_log();
void reset_tlb_log();

}  // namespace sim
