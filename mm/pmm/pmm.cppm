// mm.pmm: the physical memory manager. Hands out 4 KiB frames (single, or contiguous aligned runs
// for 2 MiB pages and DMA) from the usable memory of the boot memory map, one bit per frame.
//
// LOCK ORDER (also in docs/ARCHITECTURE.md):
//   pmm.arena (one ktl::SpinLock per arena) is a leaf. A thread holds at most one arena lock at a
//   time and, while holding it, takes no other lock, does not log, and calls nothing outside this
//   module. Callers may therefore call into the PMM while holding any lock of their own (page-table,
//   slab, address-space locks all rank above pmm.arena). The global instance is an atomic pointer.
//   The one exception: lock_all() (for fork) holds every arena of the PMM, taken in arena order.
//
// Structure:
//   * The memory map (mm::PhysMapEntry, the kernel converts the loader's map into these) is grouped
//     into arenas: runs of usable memory of one NUMA node, merged across holes of at most 64 MiB.
//   * Each arena has a SummaryBitmap (mm.bitmap) of free frames, so allocation is one word per
//     level from the top however full memory is, and a plain bitmap of managed frames (usable and
//     not metadata), so frees of reserved or metadata frames are told apart from double frees.
//   * The metadata (both bitmaps of every arena and a copy of the map for error reports) is carved
//     from the top of usable memory, through the PhysWindow, and reported in the statistics.
//   * Policy: lowest address first, arenas in address order, the preferred node's arenas first.
//
// Ownership: allocation returns an AllocatedFrames, a move-only owner that gives its frames back
// when destroyed. release() hands the frames on as plain values (the unowned calls alloc_page_unowned /
// free_page, and mm::FrameAllocator, deal in those).
module;

#include <ktl/macros.h>

export module mm.pmm;

import ktl;
import mm.addr;
import mm.arch;
import mm.bitmap;
import mm.frames;

export namespace mm {

// --- the map the PMM is built from ---------------------------------------------------------------
struct NodeId {
  u32 value;
  friend constexpr bool operator==(NodeId, NodeId) = default;
};
inline constexpr u32 kMaxNumaNodes = 8;

enum class PhysKind : u32 {
  Usable,             // free RAM: the only kind the PMM hands out
  KernelImage,        // the kernel's segments
  BootData,           // boot info, boot stack, ramdisk: in use by the kernel during boot
  LoaderReclaimable,  // loader data; FIXME(reclaim): returned to the PMM once boot info is consumed
  PageTables,         // the tables the loader built and the kernel runs on
  Firmware,           // ACPI tables and NVS, EFI runtime services
  Device,             // MMIO, framebuffer
  Reserved,           // anything else the firmware keeps
  Bad,                // defective RAM
};
[[nodiscard]] constexpr const char* to_string(PhysKind k) {
  switch (k) {
    case PhysKind::Usable: return "usable";
    case PhysKind::KernelImage: return "kernel-image";
    case PhysKind::BootData: return "boot-data";
    case PhysKind::LoaderReclaimable: return "loader-reclaimable";
    case PhysKind::PageTables: return "page-tables";
    case PhysKind::Firmware: return "firmware";
    case PhysKind::Device: return "device";
    case PhysKind::Reserved: return "reserved";
    case PhysKind::Bad: return "bad";
  }
  return "unknown";
}

// One entry of the memory map. The map given to Pmm::init is sorted by start and its ranges do not
// overlap. Usable ranges are shrunk to whole frames, all others grown to whole frames.
struct PhysMapEntry {
  PhysRange range;
  PhysKind kind;
  NodeId node;
};

// --- errors and queries ----------------------------------------------------------------------------
enum class PmmError : u32 {
  OutOfMemory,          // no free frames (or no run) that the request's context may use satisfy it
  InvalidRequest,       // zero count, alignment not a power of two >= 4 KiB, unknown node
  CrossesArena,         // a claimed or freed range runs from one arena into the next
  DoubleFree,           // freeing a frame that is already free
  NotManaged,           // a frame outside the memory map's RAM (a hole, MMIO, beyond the end)
  Reserved,             // a frame of a reserved region (kernel, firmware, ...)
  Metadata,             // a frame holding the PMM's own bitmaps or region table
  AlreadyAllocated,     // claiming a frame someone else owns
  UnsortedMap,          // a region of the map starts below the one before it
  OverlappingMap,       // a region of the map starts inside the one before it
  UnknownNode,          // a region of the map names a node >= kMaxNumaNodes
  TooManyArenas,        // the map has more separate pieces of RAM than Pmm::kMaxArenas
  NoMemoryForMetadata,  // no usable range can hold the bitmaps
  MetadataNotMapped,    // the PhysWindow does not cover the memory chosen for the bitmaps
  NoUsableMemory,       // the map has no usable frame
  AlreadyInitialized,
  NotInitialized,
  NotInstalled,  // the free functions were called before install_global_pmm
  AlreadyInstalled,
};
[[nodiscard]] constexpr const char* to_string(PmmError e) {
  switch (e) {
    case PmmError::OutOfMemory: return "out of physical memory";
    case PmmError::InvalidRequest: return "invalid request";
    case PmmError::CrossesArena: return "range crosses from one arena into another";
    case PmmError::DoubleFree: return "double free";
    case PmmError::NotManaged: return "frame not managed by the PMM";
    case PmmError::Reserved: return "frame is reserved";
    case PmmError::Metadata: return "frame holds the PMM's metadata";
    case PmmError::AlreadyAllocated: return "frame already allocated";
    case PmmError::UnsortedMap: return "memory map not sorted by address";
    case PmmError::OverlappingMap: return "memory map regions overlap";
    case PmmError::UnknownNode: return "memory map names an unknown NUMA node";
    case PmmError::TooManyArenas: return "too many separate memory ranges";
    case PmmError::NoMemoryForMetadata: return "no memory for PMM metadata";
    case PmmError::MetadataNotMapped: return "PMM metadata outside the physical window";
    case PmmError::NoUsableMemory: return "no usable memory";
    case PmmError::AlreadyInitialized: return "PMM already initialized";
    case PmmError::NotInitialized: return "PMM not initialized";
    case PmmError::NotInstalled: return "no global PMM installed";
    case PmmError::AlreadyInstalled: return "a global PMM is already installed";
  }
  return "unknown PMM error";
}

// The FrameError (mm.frames) an allocation's PmmError becomes behind the FrameAllocator interface:
// one-to-one for every error an allocation can return (OutOfMemory, InvalidRequest,
// NotInitialized); any other value is not an allocation's and panics.
[[nodiscard]] FrameError to_frame_error(PmmError e);

enum class FrameState : u32 { Free, Allocated, Reserved, Metadata, NotManaged };
[[nodiscard]] constexpr const char* to_string(FrameState s) {
  switch (s) {
    case FrameState::Free: return "free";
    case FrameState::Allocated: return "allocated";
    case FrameState::Reserved: return "reserved";
    case FrameState::Metadata: return "pmm-metadata";
    case FrameState::NotManaged: return "not-managed";
  }
  return "unknown";
}

// Byte counts. total = free + used + reserved + metadata, where total is every byte the map
// describes (whole frames), reserved is every non-usable byte, and metadata was usable memory.
struct MemStats {
  u64 total_bytes = 0;
  u64 free_bytes = 0;
  u64 used_bytes = 0;
  u64 reserved_bytes = 0;
  u64 metadata_bytes = 0;
  friend constexpr bool operator==(const MemStats&, const MemStats&) = default;
};

void format_value(ktl::FormatSink& sink, NodeId n, const ktl::FormatSpec& spec);
void format_value(ktl::FormatSink& sink, const MemStats& s, const ktl::FormatSpec& spec);

// --- allocation requests ---------------------------------------------------------------------------
enum class Fallback : u32 {
  AnyNode,  // use other nodes when the preferred one cannot satisfy the request
  None,     // fail instead
};

struct AllocOptions {
  ktl::Optional<NodeId> node{};  // preferred node; none: no preference
  Fallback fallback = Fallback::AnyNode;
  ktl::Optional<PhysAddr> below{};  // every frame must end at or below this address (DMA)
  // Only AllocContext::Atomic may take the last Pmm::atomic_reserve() free frames: an interrupt
  // handler cannot wait for reclaim, everyone else can (Linux's min watermark).
  AllocContext context = AllocContext::MayBlock;
};

class Pmm;

// --- AllocatedFrames ---------------------------------------------------------------------------------
struct SplitFrames;

// Owns `count` contiguous frames from `first`; frees them to their Pmm when destroyed. Move-only.
// The Pmm must outlive it.
class [[nodiscard]] AllocatedFrames {
 public:
  // Owns nothing.
  constexpr AllocatedFrames() = default;
  AllocatedFrames(const AllocatedFrames&) = delete;
  AllocatedFrames& operator=(const AllocatedFrames&) = delete;
  AllocatedFrames(AllocatedFrames&& o)
      : owner_(ktl::exchange(o.owner_, nullptr)), first_(o.first_), count_(ktl::exchange(o.count_, 0)) {}
  inline AllocatedFrames& operator=(AllocatedFrames&& o) {
    if (this != &o) {
      reset();
      owner_ = ktl::exchange(o.owner_, nullptr);
      first_ = o.first_;
      count_ = ktl::exchange(o.count_, 0);
    }
    return *this;
  }
  inline ~AllocatedFrames() { reset(); }

  [[nodiscard]] inline bool empty() const { return count_ == 0; }
  [[nodiscard]] inline u64 count() const { return count_; }
  [[nodiscard]] inline Frame4K first() const { return first_; }
  [[nodiscard]] inline PhysAddr start() const { return first_.start(); }
  [[nodiscard]] inline u64 size_bytes() const { return count_ * kPageSize; }
  [[nodiscard]] inline FrameRange<Size4K> frames() const { return FrameRange<Size4K>(first_, count_); }
  [[nodiscard]] inline PhysRange range() const { return PhysRange::with_size(start(), size_bytes()).value(); }

  // Gives up ownership without freeing: the caller now answers for the frames (free_page,
  // free_frames). The owner is empty afterwards.
  [[nodiscard]] inline FrameRange<Size4K> release() {
    FrameRange<Size4K> r = frames();
    owner_ = nullptr;
    count_ = 0;
    return r;
  }
  // Frees the frames now; the owner is empty afterwards.
  void reset();
  // Splits into the first `n` frames and the rest, consuming this owner. 0 < n < count().
  [[nodiscard]] SplitFrames split_at(u64 n) &&;

 private:
  friend class Pmm;
  inline AllocatedFrames(Pmm& owner, Frame4K first, u64 count)
      : owner_(&owner), first_(first), count_(count) {}

  Pmm* owner_ = nullptr;  // not owning: the allocator the frames go back to
  Frame4K first_ = Frame4K::containing(PhysAddr::zero());
  u64 count_ = 0;
};
static_assert(!ktl::is_copy_constructible<AllocatedFrames>, "AllocatedFrames is move-only");

struct SplitFrames {
  AllocatedFrames head;
  AllocatedFrames tail;
};

}  // namespace mm

namespace mm {

// One run of usable memory of one node, with its bitmaps. Internal to the PMM.
class PmmArena {
 public:
  struct Fault {
    PmmError error = PmmError::InvalidRequest;
    u64 frame = 0;  // the first offending frame number
  };

  // Init only (before the Pmm is shared): frames [base, base + frames) of `node`, everything
  // unmanaged until add_usable().
  void setup(u64 base, u64 frames, NodeId node, ktl::Span<u64> free_storage, ktl::Span<u64> managed_storage)
      EXCLUDES(lock_);
  // Init only: frames [first, end) become managed and free / unmanaged again.
  void add_usable(u64 first, u64 end) EXCLUDES(lock_);
  void remove_usable(u64 first, u64 end) EXCLUDES(lock_);

  [[nodiscard]] inline u64 base() const { return base_; }
  [[nodiscard]] inline u64 end() const { return base_ + frames_; }
  [[nodiscard]] inline u64 frames() const { return frames_; }
  [[nodiscard]] inline NodeId node() const { return node_; }
  [[nodiscard]] inline bool contains(u64 frame) const { return frame >= base_ && frame - base_ < frames_; }
  [[nodiscard]] inline bool is_managed(u64 frame) const { return managed_.test(frame - base_); }
  [[nodiscard]] inline u64 managed_count() const { return managed_count_; }

  // The lowest run of `count` free frames whose first frame number is a multiple of `align` and
  // that ends at or below frame `limit`; marks it allocated.
  [[nodiscard]] ktl::Optional<u64> alloc(u64 count, u64 align, u64 limit) EXCLUDES(lock_);
  // Frees / claims [first, first + count), which must lie in this arena. All or nothing: on a fault
  // nothing changes.
  [[nodiscard]] ktl::Result<void, Fault> free(u64 first, u64 count) EXCLUDES(lock_);
  [[nodiscard]] ktl::Result<void, Fault> claim(u64 first, u64 count) EXCLUDES(lock_);

  [[nodiscard]] bool is_free(u64 frame) const EXCLUDES(lock_);
  // The states of frames [first, first + out.size()), all in this arena, under one lock hold:
  // Free or Allocated for managed frames, NotManaged for the others.
  void managed_states(u64 first, ktl::Span<FrameState> out) const EXCLUDES(lock_);
  [[nodiscard]] u64 free_count() const EXCLUDES(lock_);
  [[nodiscard]] bool check_invariants() const EXCLUDES(lock_);

 private:
  // The arena's lock held across calls (Pmm::lock_all / unlock_all) and read by
  // Pmm::for_each_lock: private, so nothing else can hold an arena lock beyond one call.
  friend class Pmm;
  inline void lock() ACQUIRE(lock_) { lock_.lock(); }
  inline void unlock() RELEASE(lock_) { lock_.unlock(); }
  // Fork's lock_all: every arena, in arena order (ktl::SpinLock::lock_ordered).
  inline void lock_ordered() ACQUIRE(lock_) { lock_.lock_ordered(); }
  inline void unlock_ordered() RELEASE(lock_) { lock_.unlock_ordered(); }

  mutable ktl::SpinLock lock_{ktl::LockRank::PmmArena};
  u64 base_ = 0;
  u64 frames_ = 0;
  NodeId node_{0};
  SummaryBitmap free_ GUARDED_BY(lock_);
  // Written only during init, read-only afterwards. FIXME(reclaim): guarded by lock_ once
  // LoaderReclaimable memory can be handed over at run time.
  BitSpan managed_;
  u64 managed_count_ = 0;
};

}  // namespace mm

export namespace mm {

// --- Pmm ---------------------------------------------------------------------------------------------
class Pmm final : public FrameAllocator {
 public:
  static constexpr ktl::usize kMaxArenas = 32;
  // Usable ranges of one node closer than this (in frames, 64 MiB) share an arena; the hole costs
  // two bits per frame.
  static constexpr u64 kMergeGapFrames = u64{1} << 14;

  Pmm() = default;
  Pmm(const Pmm&) = delete;
  Pmm& operator=(const Pmm&) = delete;
  // Outstanding AllocatedFrames must be gone (they point back here).
  ~Pmm() = default;

  // Builds the allocator from `map` (sorted by start, non-overlapping; see PhysMapEntry). Only usable
  // frames are ever handed out. The bitmaps are carved from the top of usable memory (the highest
  // range of the arena's own node that fits, else any) and accessed through `window`, which must
  // cover them. Call once, before the Pmm is shared with other CPUs. Errors: UnknownNode,
  // UnsortedMap, OverlappingMap (checked per region, in map order), TooManyArenas, NoUsableMemory,
  // NoMemoryForMetadata, MetadataNotMapped, AlreadyInitialized.
  [[nodiscard]] ktl::Result<void, PmmError> init(ktl::Span<const PhysMapEntry> map, PhysWindow window);

  // --- single frames (the design documents' names for these live in mm.compat) ---
  // One free frame, owned.
  [[nodiscard]] ktl::Result<AllocatedFrames, PmmError> alloc_page(const AllocOptions& options = {});
  // Claims the specific frame `frame` (it must be free): AlreadyAllocated, Reserved, Metadata,
  // NotManaged.
  [[nodiscard]] ktl::Result<AllocatedFrames, PmmError> claim_page(Frame4K frame);
  // The unowned form: the caller must free_page() the frame.
  [[nodiscard]] ktl::Result<Frame4K, PmmError> alloc_page_unowned(const AllocOptions& options = {});
  // Frees a frame that is not owned (released from its owner, or from alloc_page_unowned):
  // DoubleFree, Reserved, Metadata, NotManaged.
  [[nodiscard]] ktl::Result<void, PmmError> free_page(Frame4K frame);

  // --- runs ---
  // `count` contiguous frames starting at a multiple of `align_bytes` (a power of two >= 4 KiB).
  [[nodiscard]] ktl::Result<AllocatedFrames, PmmError> alloc_contiguous(u64 count, u64 align_bytes,
                                                                        const AllocOptions& options = {});
  // One naturally aligned frame of size S (512 frames for Size2M).
  template <PageSize S>
  [[nodiscard]] inline ktl::Result<AllocatedFrames, PmmError> alloc_frame_of(
      const AllocOptions& options = {}) {
    return alloc_contiguous(S::bytes / kPageSize, S::bytes, options);
  }
  // Claims [first, first + count) (all free), or frees it (all allocated). All or nothing: on an
  // error nothing changes, the error is logged with the first offending frame's address. Errors:
  // those of claim_page / free_page, and CrossesArena for a range that leaves its arena.
  [[nodiscard]] ktl::Result<AllocatedFrames, PmmError> claim(Frame4K first, u64 count);
  [[nodiscard]] ktl::Result<void, PmmError> free_frames(Frame4K first, u64 count);

  // --- queries ---
  [[nodiscard]] FrameState state_of(Frame4K frame) const;
  // The states of frames [first, first + out.size()), as state_of gives them, taking each arena's
  // lock once (a whole-memory check or dump costs a bit test per frame).
  void states_of(Frame4K first, ktl::Span<FrameState> out) const;
  [[nodiscard]] MemStats stats() const;
  [[nodiscard]] ktl::Optional<MemStats> node_stats(NodeId node) const;
  [[nodiscard]] u64 free_frame_count() const;
  // Free frames that only atomic requests may take (0 after init). Errors: NotInitialized,
  // InvalidRequest (more than the usable frames).
  [[nodiscard]] ktl::Result<void, PmmError> set_atomic_reserve(u64 frames);
  [[nodiscard]] inline u64 atomic_reserve() const { return reserve_.load(ktl::MemoryOrder::Relaxed); }
  // Memory pressure (kswapd's wake-up): `hook(context)` runs each time an allocation or claim takes
  // the free count from at or above `below_frames` to under it, after the arena's lock is dropped
  // (so it may take locks above pmm.arena; it must not allocate). Null removes it.
  using PressureHook = void (*)(void* context);
  void set_pressure_hook(u64 below_frames, PressureHook hook, void* context);
  // The carved metadata blocks, for tests and the boot log.
  [[nodiscard]] inline ktl::usize metadata_block_count() const { return metadata_count_; }
  [[nodiscard]] PhysRange metadata_block(ktl::usize i) const;
  [[nodiscard]] inline ktl::usize arena_count() const { return arena_count_; }
  // Recomputes every summary and counter (O(frames)): tests and debug checks.
  [[nodiscard]] bool check_invariants() const;

  // --- fork (mm.heap.host's HostHeap::lock_for_fork) ---
  // Takes every arena's lock, in arena order, and keeps them; unlock_all() releases them in
  // reverse. While they are held no other thread is inside the PMM, so a fork() child's copy of it
  // is consistent. The one exception to "at most one arena lock at a time": it cannot deadlock,
  // because a thread that holds an arena lock waits for nothing (the leaf rule), so each arena is
  // released to us. Contract: the caller holds no arena lock of this PMM and does not call into it
  // until unlock_all(). (The set of arenas is only known at run time, so the thread-safety
  // analysis cannot name it: both functions are unchecked.)
  void lock_all() NO_THREAD_SAFETY_ANALYSIS;
  void unlock_all() NO_THREAD_SAFETY_ANALYSIS;
  // For tests of lock_all(): f(lock) for every arena's lock, in arena order. Takes none of them
  // (a query: is_locked() tells whether lock_all() holds each).
  template <class F>
  inline void for_each_lock(F&& f) const {
    for (ktl::usize i = 0; i < arena_count_; ++i) f(static_cast<const ktl::SpinLock&>(arenas_[i].lock_));
  }

  // --- mm::FrameAllocator ---
  [[nodiscard]] ktl::Result<Frame4K, FrameError> allocate_frame() override;
  // Errors are detected and logged (see free_page); nothing is corrupted.
  void free_frame(Frame4K frame) override;

 private:
  struct MapRecord {
    u64 first;  // frame numbers [first, end)
    u64 end;
    PhysKind kind;
    NodeId node;
  };
  struct MetadataBlock {
    u64 first = 0;  // frame numbers
    u64 count = 0;
    NodeId node{0};
  };
  struct NodeInfo {
    bool present = false;
    u64 usable_frames = 0;  // metadata included
    u64 reserved_frames = 0;
    u64 metadata_frames = 0;
  };

  // What init() decides before it changes anything: the arenas and where their bitmaps and the
  // region table go.
  struct ArenaPlan {
    u64 first;
    u64 end;
    NodeId node;
    u64 free_words;
    u64 managed_words;
    ktl::usize block;  // index of its bitmaps in InitPlan::blocks
  };
  struct InitPlan {
    u64 records = 0;  // non-empty regions of the map
    ktl::Array<ArenaPlan, kMaxArenas> arenas{};
    ktl::usize arena_count = 0;
    ktl::Array<MetadataBlock, kMaxArenas + 1> blocks{};
    ktl::usize block_count = 0;
    ktl::usize table_block = 0;
  };
  // init()'s steps, in order (pmm.cc). The first three only plan and may fail; the last three
  // build and cannot.
  [[nodiscard]] static ktl::Result<u64, PmmError> validate_map(ktl::Span<const PhysMapEntry> map);
  [[nodiscard]] static ktl::Result<void, PmmError> plan_arenas(ktl::Span<const PhysMapEntry> map,
                                                               InitPlan& plan);
  [[nodiscard]] static ktl::Result<void, PmmError> place_metadata(ktl::Span<const PhysMapEntry> map,
                                                                  PhysWindow window, InitPlan& plan);
  [[nodiscard]] static ktl::Optional<MetadataBlock> carve_block(ktl::Span<const PhysMapEntry> map,
                                                                const InitPlan& plan, u64 frames,
                                                                ktl::Optional<NodeId> node);
  void build_arenas(ktl::Span<const PhysMapEntry> map, const InitPlan& plan);
  void mark_metadata(const InitPlan& plan);
  void record_map(ktl::Span<const PhysMapEntry> map, const InitPlan& plan);

  [[nodiscard]] ktl::Result<u64, PmmError> alloc_run(u64 count, u64 align, const AllocOptions& options);
  [[nodiscard]] PmmArena* arena_of(u64 frame);
  [[nodiscard]] const PmmArena* arena_of(u64 frame) const;
  // What a frame that no arena manages is: Reserved (with its kind), Metadata, or NotManaged.
  [[nodiscard]] FrameState classify_unmanaged(u64 frame, PhysKind* kind) const;
  [[nodiscard]] PmmError report(PmmArena::Fault fault, const char* operation) const;

  bool initialized_ = false;
  PhysWindow window_;
  ktl::Array<PmmArena, kMaxArenas> arenas_;
  ktl::usize arena_count_ = 0;
  ktl::Array<MetadataBlock, kMaxArenas + 1> metadata_{};
  ktl::usize metadata_count_ = 0;
  ktl::Span<MapRecord> map_records_;
  ktl::Array<NodeInfo, kMaxNumaNodes> nodes_{};
  // Free frames, kept beside the arenas' bitmaps (updated after each successful alloc, claim and
  // free) so the reserve check is one load. check_invariants() compares it with the bitmaps.
  ktl::Atomic<u64> free_{0};
  ktl::Atomic<u64> reserve_{0};
  ktl::Atomic<u64> pressure_below_{0};
  ktl::Atomic<PressureHook> pressure_hook_{nullptr};
  ktl::Atomic<void*> pressure_context_{nullptr};
  void took(u64 count);  // free_ -= count, and the pressure hook on a crossing
};

// --- the global instance -------------------------------------------------------------------------
// The kernel builds its Pmm from the boot map and registers it; mm.compat's free functions use it.
[[nodiscard]] ktl::Result<void, PmmError> install_global_pmm(Pmm& pmm);
// Unregisters `pmm` (which must be the installed one). For tests; the kernel never does this.
void uninstall_global_pmm(Pmm& pmm);
// The installed Pmm, or null.
[[nodiscard]] Pmm* global_pmm();

}  // namespace mm
