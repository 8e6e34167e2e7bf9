// mm.heap.host: the heap on a Linux host (tests, benchmarks, the fuzzer, the preload library).
//
// Memory is simulated physical memory (HostRam, memfd-backed) managed by a real mm::Pmm,
// seen through its PhysWindow exactly as the kernel sees RAM through the direct map. Large
// allocations are what they are in the kernel: mm::Mappings (mm.heap.paging's LargeObjectMappings)
// of an x86_64 address space whose tables live in the same simulated memory, with their own PMM
// (as the kernel's test heaps take data frames from a private PMM and tables from the kernel's).
// The large-object area is reserved in the host's address space (PROT_NONE), and a HostView makes what
// a Mapping maps reachable at its addresses: MemfdView mmaps the memfd at the frames' offsets (the
// bytes behind a heap pointer are the frames' bytes in the window, as in the kernel). Hiding puts
// PROT_NONE back before the Mapping frees its frames, so a use after free of a large object faults
// like it would in the kernel.
//
// Fork (the preload library's pthread_atfork handlers, HostHeap::ForkGuard): lock_for_fork()
// takes every lock of the heap in the lock order of docs/ARCHITECTURE.md and
//   heap.large_objects -> address-space (the region's) -> slab.registry -> slab.cpu_registry
//     -> every ordinary slab.cache (registry order) -> every internal slab.cache (registry order)
//       -> every pmm.arena of the data PMM (arena order) -> every pmm.arena of the table PMM,
// and unlock_after_fork() releases them in reverse, in the parent and in the child. Why that is
// deadlock-free: see "Fork" under "Lock order" in docs/ARCHITECTURE.md.
module;

#include <sys/mman.h>
#include <unistd.h>

#include <ktl/macros.h>

export module mm.heap.host;

import ktl;
import mm.addr;
import mm.address_space;
import mm.arch;
import mm.heap;
import mm.heap.paging;
import mm.frame_table;
import mm.paging;
import mm.pmm;
import mm.slab;
import mm.slab.cpu;

export namespace mm::heap_host {

using ktl::u64;

// Which process unlock_after_fork() runs in.
enum class ForkSide : ktl::u32 { Parent, Child };

// Anonymous: private anonymous memory. Memfd: the memory is a memfd, so the same frames can also
// be shown at other host addresses with map_at(), the way a page table maps frames that the
// direct map shows too.
enum class Backing : ktl::u8 { Anonymous, Memfd };

// The host's RAM: one mapping (MAP_NORESERVE: only touched pages cost) whose offsets are physical
// addresses from `base`, seen through a PhysWindow as the kernel sees RAM through the direct map.
class HostRam : ktl::NoCopy {
 public:
  // `size` bytes at physical `base` (both 4 KiB aligned); panics if the host cannot provide them.
  inline HostRam(PhysAddr base, u64 size, Backing backing) : base_(base), size_(size) {
    ktl::check(base.is_aligned(kPageSize) && ktl::is_aligned(size, kPageSize), "heap host: unaligned RAM");
    void* p = MAP_FAILED;
    if (backing == Backing::Memfd) {
      fd_ = memfd_create("ferrite-phys", MFD_CLOEXEC);
      ktl::check(fd_ >= 0 && ftruncate(fd_, static_cast<off_t>(size)) == 0, "heap host: memfd failed");
      p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd_, 0);
    } else {
      p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    }
    ktl::check(p != MAP_FAILED, "heap host: cannot map the RAM");
    view_ = static_cast<ktl::u8*>(p);
  }
  HostRam(HostRam&&) = delete;
  inline ~HostRam() {
    munmap(view_, size_);
    if (fd_ >= 0) close(fd_);
  }

  // Memfd backing only: makes physical [p, p + bytes) visible (read-write) at host address `at`
  // as well, replacing whatever was mapped there. False if not memfd-backed or mmap fails.
  [[nodiscard]] inline bool map_at(void* at, PhysAddr p, u64 bytes) const {
    if (fd_ < 0 || !window().covers(p, bytes)) return false;
    void* r = mmap(at, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED | MAP_POPULATE, fd_,
                   static_cast<off_t>(p - base_));
    return r == at;
  }
  [[nodiscard]] inline PhysWindow window() const { return PhysWindow(base_, size_, view_); }
  [[nodiscard]] inline PhysAddr base() const { return base_; }

 private:
  PhysAddr base_;
  u64 size_;
  ktl::u8* view_ = nullptr;
  int fd_ = -1;
};

// Shows the frames themselves (memfd-backed HostRam).
class MemfdView final : public HostView {
 public:
  inline explicit MemfdView(const HostRam& memory) : memory_(memory) {}
  [[nodiscard]] inline bool show(VirtAddr at, PhysAddr phys, u64 bytes) override {
    shows_.fetch_add(1, ktl::MemoryOrder::Relaxed);
    return memory_.map_at(at.as_ptr<void>(), phys, bytes);
  }
  inline void hide(VirtAddr at, u64 bytes) override {
    hides_.fetch_add(1, ktl::MemoryOrder::Relaxed);
    void* r = mmap(at.as_ptr<void>(), bytes, PROT_NONE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0);
    ktl::check(r == at.as_ptr<void>(), "heap host view: could not hide a range");
  }
  [[nodiscard]] inline u64 shows() const { return shows_.load(ktl::MemoryOrder::Relaxed); }
  [[nodiscard]] inline u64 hides() const { return hides_.load(ktl::MemoryOrder::Relaxed); }

 private:
  const HostRam& memory_;
  ktl::Atomic<u64> shows_{0};
  ktl::Atomic<u64> hides_{0};
};

// For processes that fork (the preload library): fresh private anonymous memory at the region's
// addresses instead of the frames themselves, so a forked child gets its own copy-on-write heap
// like any malloc's. The Mappings, their frames and the accounting are the same; only the
// aliasing through the window is lost.
class AnonymousView final : public HostView {
 public:
  [[nodiscard]] inline bool show(VirtAddr at, PhysAddr, u64 bytes) override {
    void* r = mmap(at.as_ptr<void>(), bytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0);
    return r == at.as_ptr<void>();
  }
  inline void hide(VirtAddr at, u64 bytes) override {
    void* r = mmap(at.as_ptr<void>(), bytes, PROT_NONE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0);
    ktl::check(r == at.as_ptr<void>(), "heap host view: could not hide a range");
  }
};

// A reserved, inaccessible range of host address space.
class Reservation : ktl::NoCopy {
 public:
  inline explicit Reservation(u64 bytes) : bytes_(bytes) {
    void* p = mmap(nullptr, bytes, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    ktl::check(p != MAP_FAILED, "heap host: cannot reserve the large-object area");
    start_ = VirtAddr::from(ktl::address_of(p));
  }
  Reservation(Reservation&&) = delete;
  inline ~Reservation() { munmap(start_.as_ptr<void>(), bytes_); }
  [[nodiscard]] inline VirtRange range() const { return VirtRange::with_size(start_, bytes_).value(); }

 private:
  VirtAddr start_ = VirtAddr::zero();
  u64 bytes_;
};

using HostFormat = paging::X86_64;

struct HostHeapOptions {
  u64 phys_bytes = u64{256} << 20;        // simulated RAM
  u64 large_object_bytes = u64{1} << 30;  // large-object area for large allocations
  Hardening hardening = Hardening::On;
  u64 seed = 0x5eed;
  bool with_large_objects = true;
  // Private anonymous RAM and the AnonymousView (fork-safe), instead of a memfd and MemfdView.
  bool fork_safe = false;
};

// Simulated RAM at 16 MiB: `phys_bytes` for the heap's PMM, then room for the page tables of the
// large-object area's address space (their own PMM). Owns them all.
class HostHeap : ktl::NoCopy {
 public:
  static constexpr u64 kPhysBase = u64{16} << 20;

  // Table frames the region can need: one 4 KiB table per 2 MiB of region (leaves), one per 1 GiB,
  // the levels above and the PMM's own metadata. Reserved, not touched: costs nothing unused.
  [[nodiscard]] static constexpr u64 table_bytes(u64 large_object_bytes) {
    return ktl::align_up<u64>(large_object_bytes / 512 + (large_object_bytes >> 30) * kPageSize, kPageSize) +
           (u64{1} << 20);
  }

  explicit HostHeap(const HostHeapOptions& options = {})
      : memory_(PhysAddr::from(kPhysBase), options.phys_bytes + table_bytes(options.large_object_bytes),
                options.fork_safe ? Backing::Anonymous : Backing::Memfd),
        reservation_(options.large_object_bytes),
        memfd_view_(memory_) {
    PhysRange data = PhysRange::with_size(memory_.base(), options.phys_bytes).value();
    PhysRange tables = PhysRange::with_size(data.end(), table_bytes(options.large_object_bytes)).value();
    ktl::Array<PhysMapEntry, 1> data_map{{PhysMapEntry{data, PhysKind::Usable, NodeId{0}}}};
    ktl::check_ok(pmm_.init(data_map.span(), memory_.window()), "heap host: PMM init failed");
    ktl::check_ok(frame_table_.init(pmm_, memory_.window()), "heap host: no frame for the frame table");
    ktl::Array<PhysMapEntry, 1> table_map{{PhysMapEntry{tables, PhysKind::Usable, NodeId{0}}}};
    ktl::check_ok(table_pmm_.init(table_map.span(), memory_.window()), "heap host: table PMM init failed");
    // An owned, empty table (freed with it), adopted as a kernel address space the way the kernel
    // adopts the loader's: the space changes it under its lock, through Mappings.
    auto root = PageTable<HostFormat>::create(memory_.window(), table_pmm_);
    ktl::check_ok(root, "heap host: no frame for the root table");
    tables_.emplace(root.release_value());
    auto space = AddressSpace<HostFormat>::adopt_kernel(memory_.window(), table_pmm_, tables_->root());
    ktl::check_ok(space, "heap host: cannot adopt the heap's page table");
    space_.emplace(space.release_value());
    HostView* view = options.fork_safe ? static_cast<HostView*>(&anonymous_view_) : &memfd_view_;
    large_object_space_.emplace(*space_, view);
    HeapConfig config;
    config.hardening = options.hardening;
    config.seed = options.seed;
    if (options.with_large_objects) {
      config.large_objects = reservation_.range();
      config.space = &*large_object_space_;
    }
    baseline_free_ = accounted_free_frames();
    auto h = heap_.emplace().init(frame_table_, config);
    ktl::check_ok(h, "heap host: heap init failed");
  }
  inline ~HostHeap() { heap_.reset(); }
  HostHeap(HostHeap&&) = delete;

  [[nodiscard]] inline Heap& heap() { return *heap_; }
  // Destroys the heap (which panics if a cache still has live objects) and returns how many
  // frames did not come back to the PMM (0 unless something leaked). Every Mapping is gone then.
  [[nodiscard]] inline u64 destroy_heap() {
    heap_.reset();
    ktl::check(space_->live_mappings() == 0, "heap host: Mappings outlived the heap");
    return baseline_free_ - accounted_free_frames();
  }
  // The PMM's free frames plus the frame table's (which only grows: a leaf stays once made).
  // Constant across anything that gives back what it took, once the heap's caches are drained.
  [[nodiscard]] inline u64 accounted_free_frames() const {
    return pmm_.free_frame_count() + frame_table_.metadata_frames();
  }
  // The heap's PMM (data frames: slabs, large objects, heap metadata).
  [[nodiscard]] inline Pmm& pmm() { return pmm_; }
  // The frame table beside the heap's PMM (records which slab each slab frame belongs to).
  [[nodiscard]] inline FrameTable& frame_table() { return frame_table_; }
  // The PMM the region's page tables come from.
  [[nodiscard]] inline Pmm& table_pmm() { return table_pmm_; }
  [[nodiscard]] inline const HostRam& memory() const { return memory_; }
  // The address space the large objects' Mappings belong to.
  [[nodiscard]] inline AddressSpace<HostFormat>& space() { return *space_; }
  [[nodiscard]] inline MemfdView& view() { return memfd_view_; }
  [[nodiscard]] inline VirtRange large_object_range() const { return reservation_.range(); }

  // --- fork ---
  // Takes every lock of the heap, its address space and both PMMs, in the order of the module
  // comment, and keeps them: no other thread is then inside a critical section of the heap (only
  // in the lock-free per-thread fast paths, which touch nothing shared), so the copy of the heap a
  // fork() child gets is consistent. Only useful with HostHeapOptions::fork_safe (with a memfd the
  // child would share the parent's frames). Contract: the calling thread holds none of these
  // locks, is not inside the heap, neither allocates nor frees from it until unlock_after_fork(),
  // and no other HostHeap's fork locks are held (slab.cpu_registry is one per process).
  // Unchecked by the analysis: the set of caches and arenas is only known at run time.
  inline void lock_for_fork() NO_THREAD_SAFETY_ANALYSIS {
    ktl::check(heap_.has_value(), "HostHeap::lock_for_fork: the heap is destroyed");
    heap_->large_objects().lock_all();
    space_->lock().lock();
    heap_->slab().lock_all();
    pmm_.lock_all();
    table_pmm_.lock_all();
  }
  // Releases them in reverse order: in the parent after fork(), and in the child, where the heap
  // is the parent's copy and only the calling thread exists. There the other threads' per-thread
  // magazine blocks leave the registry first; their magazines are simply left, with the objects
  // they cached (which stay allocated in the child: those threads do not exist there).
  inline void unlock_after_fork(ForkSide side) NO_THREAD_SAFETY_ANALYSIS {
    table_pmm_.unlock_all();
    pmm_.unlock_all();
    if (side == ForkSide::Child) slab_cpu::drop_other_threads_blocks_after_fork();
    heap_->slab().unlock_all();
    space_->lock().unlock();
    heap_->large_objects().unlock_all();
  }

  // Holds the fork locks for its lifetime: construct it, fork(), and let it go out of scope in
  // both processes (each releases its own copy of the locks).
  class [[nodiscard]] ForkGuard : ktl::NoCopy {
   public:
    inline explicit ForkGuard(HostHeap& host) : host_(host), pid_(getpid()) { host_.lock_for_fork(); }
    inline ~ForkGuard() { host_.unlock_after_fork(getpid() == pid_ ? ForkSide::Parent : ForkSide::Child); }
    ForkGuard(ForkGuard&&) = delete;

   private:
    HostHeap& host_;
    pid_t pid_;
  };

 private:
  HostRam memory_;
  Pmm pmm_;
  FrameTable frame_table_;  // over pmm_, outlives the heap
  Pmm table_pmm_;
  ktl::Optional<PageTable<HostFormat>> tables_;
  ktl::Optional<AddressSpace<HostFormat>> space_;
  Reservation reservation_;
  MemfdView memfd_view_;
  AnonymousView anonymous_view_;
  ktl::Optional<LargeObjectMappings<HostFormat>> large_object_space_;
  u64 baseline_free_ = 0;
  ktl::Optional<Heap> heap_;  // destroyed first
};

}  // namespace mm::heap_host
