// sim.phys for the kernel's test mode: the same small interface as phys_memory.cppm (the host's),
// so test bodies written against sim::PhysMemory (mm/pmm/pmm_ktest.cc) run in-kernel unchanged.
//
// A PhysMemory of `size` bytes "at physical `base`" is a block of real RAM from the environment's
// TestMemory (mm.paging.testing: in the kernel, zeroed contiguous frames from the kernel's PMM seen
// through the direct map), presented through a PhysWindow that claims the addresses
// [base, base + size): the code under test sees simulated physical addresses, as on the host, while
// the bytes live wherever the kernel found room. Unlike the host's (MAP_NORESERVE), every byte is
// real, so sizes are bounded by the machine's RAM. The TLB log of the host version does not exist
// here (the kernel's mm.arch hooks really flush).
module;

#include <ktl/macros.h>

export module sim.phys;

import ktl;
import mm.addr;
import mm.arch;
import mm.paging.testing;

export namespace sim {

class PhysMemory : ktl::NoCopy {
 public:
  // Panics when the environment cannot provide the memory (a test machine without enough RAM).
  PhysMemory(mm::PhysAddr base, ktl::u64 size)
      : base_(base), size_(size), memory_(mm::paging_testing::TestMemory::acquire(size)) {
    ktl::check(base.is_aligned(4096) && ktl::is_aligned<ktl::u64>(size, 4096), "sim::PhysMemory: unaligned");
    ktl::check(memory_.has_value(), "sim::PhysMemory: the kernel cannot provide that much contiguous memory");
    view_ = memory_->window().bytes(memory_->base(), 0).data();
  }
  PhysMemory(PhysMemory&&) = delete;

  [[nodiscard]] mm::PhysWindow window() const { return mm::PhysWindow(base_, size_, view_); }
  [[nodiscard]] mm::PhysAddr base() const { return base_; }
  [[nodiscard]] mm::PhysAddr end() const { return base_ + size_; }
  [[nodiscard]] ktl::u64 size() const { return size_; }
  [[nodiscard]] mm::PhysRange range() const { return mm::PhysRange::with_size(base_, size_).value(); }

 private:
  mm::PhysAddr base_;
  ktl::u64 size_;
  ktl::Optional<mm::paging_testing::TestMemory> memory_;
  ktl::u8* view_ = nullptr;
};

}  // namespace sim
