// mm.heap.host: the heap on a Linux host (tests, benchmarks, the fuzzer, the preload library).
//
// Memory is simulated physical memory (sim::PhysMemory, memfd-backed) managed by a real mm::Pmm,
// seen through its PhysWindow exactly as the kernel sees RAM through the direct map. Large
// allocations use a heap region reserved in the host's address space (PROT_NONE), and a
// MirrorPager that makes the frames the heap maps appear at the region's addresses with mmap of
// the memfd at the frames' offsets: what the page-table pager does in the kernel, with the host
// kernel as the MMU. Unmapping puts PROT_NONE back, so a use after free of a large object faults
// like it would in the kernel. (mm.heap.paging runs the kernel's page-table pager on the host
// too, composed with this mirror; see heap_paging_test.cc.)
module;

#include <sys/mman.h>

#include <ktl/macros.h>

export module mm.heap.host;

import ktl;
import mm.addr;
import mm.arch;
import mm.heap;
import mm.pmm;
import mm.slab;
import sim.phys;

export namespace mm::heap_host {

using ktl::u64;

class MirrorPager final : public RegionPager {
 public:
  explicit MirrorPager(const sim::PhysMemory& memory) : memory_(memory) {}
  ktl::Result<void, HeapError> map(VirtAddr start, FrameRange<Size4K> frames) override {
    ++maps_;
    if (!memory_.map_at(start.as_ptr<void>(), frames.first().start(), frames.size_bytes())) {
      return ktl::Err(HeapError::MapFailed);
    }
    return ktl::ok();
  }
  void unmap(VirtAddr start, u64 pages) override {
    ++unmaps_;
    void* r = mmap(start.as_ptr<void>(), pages * kPageSize, PROT_NONE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0);
    ktl::check(r == start.as_ptr<void>(), "heap host pager: could not unmap");
    arch::flush_tlb(start, pages);
  }
  [[nodiscard]] u64 maps() const { return maps_; }
  [[nodiscard]] u64 unmaps() const { return unmaps_; }

 private:
  const sim::PhysMemory& memory_;
  u64 maps_ = 0;
  u64 unmaps_ = 0;
};

// A pager for processes that fork (the preload library): it maps fresh private anonymous memory
// at the region's addresses instead of the frames themselves, so a forked child gets its own
// copy-on-write heap like any malloc's. The frames are still taken from and returned to the PMM,
// so accounting and out-of-memory behave the same; only the aliasing through the window is lost.
class AnonymousPager final : public RegionPager {
 public:
  ktl::Result<void, HeapError> map(VirtAddr start, FrameRange<Size4K> frames) override {
    void* r = mmap(start.as_ptr<void>(), frames.size_bytes(), PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0);
    if (r != start.as_ptr<void>()) return ktl::Err(HeapError::MapFailed);
    return ktl::ok();
  }
  void unmap(VirtAddr start, u64 pages) override {
    void* r = mmap(start.as_ptr<void>(), pages * kPageSize, PROT_NONE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0);
    ktl::check(r == start.as_ptr<void>(), "heap host pager: could not unmap");
  }
};

// A reserved, inaccessible range of host address space.
class Reservation : ktl::NoCopy {
 public:
  explicit Reservation(u64 bytes) : bytes_(bytes) {
    void* p = mmap(nullptr, bytes, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    ktl::check(p != MAP_FAILED, "heap host: cannot reserve the heap region");
    start_ = VirtAddr::from(reinterpret_cast<ktl::uptr>(p));
  }
  Reservation(Reservation&&) = delete;
  ~Reservation() { munmap(start_.as_ptr<void>(), bytes_); }
  [[nodiscard]] VirtRange range() const { return VirtRange::with_size(start_, bytes_).value(); }

 private:
  VirtAddr start_ = VirtAddr::zero();
  u64 bytes_;
};

struct HostHeapOptions {
  u64 phys_bytes = u64{256} << 20;  // simulated RAM
  u64 region_bytes = u64{1} << 30;  // heap region for large allocations
  Hardening hardening = Hardening::On;
  u64 seed = 0x5eed;
  bool with_region = true;
  // Private anonymous RAM and the AnonymousPager (fork-safe), instead of a memfd and the mirror.
  bool fork_safe = false;
};

// Simulated RAM at 16 MiB, a PMM over all of it, a heap region and the heap. Owns them all.
class HostHeap : ktl::NoCopy {
 public:
  static constexpr u64 kPhysBase = u64{16} << 20;

  explicit HostHeap(const HostHeapOptions& options = {})
      : memory_(PhysAddr::from(kPhysBase), options.phys_bytes,
                options.fork_safe ? sim::Backing::Anonymous : sim::Backing::Memfd),
        reservation_(options.region_bytes),
        pager_(memory_) {
    ktl::Array<PhysRegion, 1> map{{PhysRegion{memory_.range(), RegionKind::Usable, NodeId{0}}}};
    auto p = pmm_.init(map.span(), memory_.window());
    ktl::check(p.is_ok(), "heap host: PMM init failed");
    HeapConfig config;
    config.hardening = options.hardening;
    config.seed = options.seed;
    if (options.with_region) {
      config.region = reservation_.range();
      config.pager = options.fork_safe ? static_cast<RegionPager*>(&anonymous_pager_) : &pager_;
    }
    baseline_free_ = pmm_.free_frame_count();
    auto h = heap_.emplace().init(pmm_, memory_.window(), config);
    ktl::check(h.is_ok(), "heap host: heap init failed");
  }
  ~HostHeap() { heap_.reset(); }
  HostHeap(HostHeap&&) = delete;

  [[nodiscard]] Heap& heap() { return *heap_; }
  // Destroys the heap (which panics if a cache still has live objects) and returns how many
  // frames did not come back to the PMM (0 unless something leaked).
  [[nodiscard]] u64 destroy_heap() {
    heap_.reset();
    return baseline_free_ - pmm_.free_frame_count();
  }
  [[nodiscard]] Pmm& pmm() { return pmm_; }
  [[nodiscard]] const sim::PhysMemory& memory() const { return memory_; }
  [[nodiscard]] MirrorPager& pager() { return pager_; }
  [[nodiscard]] VirtRange region() const { return reservation_.range(); }

 private:
  sim::PhysMemory memory_;
  Pmm pmm_;
  Reservation reservation_;
  MirrorPager pager_;
  AnonymousPager anonymous_pager_;
  u64 baseline_free_ = 0;
  ktl::Optional<Heap> heap_;  // destroyed first
};

}  // namespace mm::heap_host
