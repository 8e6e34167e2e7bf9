// sim.phys: simulated physical memory for host tests and benchmarks.
//
// One anonymous mapping (MAP_NORESERVE: only touched pages cost real memory, so 64 GiB of
// simulated RAM is cheap) whose offsets are physical addresses starting at `base`. It hands mm
// the same PhysWindow the kernel's direct map provides.
module;

#include <sys/mman.h>
#include <unistd.h>

#include <ktl/macros.h>

export module sim.phys;

import ktl;
import mm.addr;
import mm.arch;

export namespace sim {

// Anonymous: private anonymous memory (the default). Memfd: the memory is a memfd, so the same
// frames can also be shown at other host addresses with map_at(), the way a page table maps
// frames that the direct map shows too (the heap's host region pager uses it).
enum class Backing { Anonymous, Memfd };

class PhysMemory : ktl::NoCopy {
 public:
  // `size` bytes of simulated RAM at physical `base` (both 4 KiB aligned). Panics if the host
  // cannot reserve the address space.
  PhysMemory(mm::PhysAddr base, ktl::u64 size, Backing backing = Backing::Anonymous)
      : base_(base), size_(size) {
    ktl::check(base.is_aligned(4096) && ktl::is_aligned<ktl::u64>(size, 4096), "sim::PhysMemory: unaligned");
    void* p = MAP_FAILED;
    if (backing == Backing::Memfd) {
      fd_ = memfd_create("ferrite-phys", MFD_CLOEXEC);
      ktl::check(fd_ >= 0 && ftruncate(fd_, static_cast<off_t>(size)) == 0, "sim::PhysMemory: memfd failed");
      p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd_, 0);
    } else {
      p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    }
    ktl::check(p != MAP_FAILED, "sim::PhysMemory: mmap failed");
    view_ = static_cast<ktl::u8*>(p);
  }
  PhysMemory(PhysMemory&& o)
      : base_(o.base_),
        size_(ktl::exchange(o.size_, 0)),
        view_(ktl::exchange(o.view_, nullptr)),
        fd_(ktl::exchange(o.fd_, -1)) {}
  PhysMemory& operator=(PhysMemory&&) = delete;
  ~PhysMemory() {
    if (view_ != nullptr) munmap(view_, size_);
    if (fd_ >= 0) close(fd_);
  }

  // Memfd backing only: makes physical [p, p + bytes) visible (read-write) at host address `at`
  // as well, replacing whatever was mapped there. False if not memfd-backed or mmap fails.
  [[nodiscard]] bool map_at(void* at, mm::PhysAddr p, ktl::u64 bytes) const {
    if (fd_ < 0 || !window().covers(p, bytes)) return false;
    void* r = mmap(at, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED | MAP_POPULATE, fd_,
                   static_cast<off_t>(p - base_));
    return r == at;
  }
  [[nodiscard]] bool memfd_backed() const { return fd_ >= 0; }

  [[nodiscard]] mm::PhysWindow window() const { return mm::PhysWindow(base_, size_, view_); }
  [[nodiscard]] mm::PhysAddr base() const { return base_; }
  [[nodiscard]] mm::PhysAddr end() const { return base_ + size_; }
  [[nodiscard]] ktl::u64 size() const { return size_; }
  [[nodiscard]] mm::PhysRange range() const { return mm::PhysRange::with_size(base_, size_).value(); }

 private:
  mm::PhysAddr base_;
  ktl::u64 size_;
  ktl::u8* view_ = nullptr;
  int fd_ = -1;
};

// What the host's TLB hooks were asked to do (see arch_hooks.cc). Tests reset and inspect it.
struct TlbLog {
  ktl::u64 range_flushes;  // calls to flush_tlb(start, pages)
  ktl::u64 pages_flushed;  // sum of their page counts
  ktl::u64 full_flushes;   // calls to flush_tlb_all()
  ktl::u64 activations;    // calls to activate(root)
  ktl::u64 last_start;     // the last range flush
  ktl::u64 last_pages;
};
[[nodiscard]] TlbLog tlb_log();
void reset_tlb_log();

// Called on every range flush, after it is recorded (tests that check what holds at the moment of
// the invalidation: "entries already cleared, frames not yet freed"). Null removes the observer.
using TlbFlushObserver = void (*)(ktl::u64 start, ktl::u64 pages, void* context);
void set_tlb_flush_observer(TlbFlushObserver observer, void* context);

}  // namespace sim
