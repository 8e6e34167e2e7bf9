// mm.slab: slab caches (Bonwick 1994) with a per-CPU magazine layer (Bonwick & Adams 2001).
//
//   SlabCache* c = TRY(slab.create_cache("inode", sizeof(Inode), alignof(Inode), nullptr, CacheFlags::None));
//   void* p = c->alloc();          // null when out of memory
//   c->free(p);
//   (void)slab.destroy_cache(c);   // NotEmpty while objects are live
//
// Cache<T> (mm.slab.typed) is the typed surface; the design documents' names (kmem_cache_create, slab_alloc,
// slab_free, kmem_cache_destroy, slab_reclaim) are mm.compat's free functions over the
// installed allocator.
//
// Structure, from the top:
//   * Per-CPU layer (mm.slab.cpu): each CPU has a loaded and a previous magazine per cache.
//     alloc pops from loaded, free pushes to it; both touch only CPU-local memory, no lock.
//   * Depot (per cache, under the cache lock): full and empty magazines. A CPU exchanges a whole
//     magazine with it when both of its own are exhausted, so the lock is taken once per
//     `capacity` operations. When the depot has nothing, a magazine is filled from (or flushed
//     to) the slab layer in one batch under the same lock.
//   * Slab layer (per cache, under the cache lock): slabs are runs of 2^k frames from the PMM,
//     seen through the PhysWindow, cut into objects of `stride` bytes. Free objects of a slab form
//     a singly linked list whose links are stored inside the free objects at a per-cache offset
//     (the middle of the object, or just behind it for constructed and hardened caches). Each link
//     is stored encoded: link ^ secret ^ bswap(address of the link) (Linux's
//     SLAB_FREELIST_HARDENED); a decoded link that is not an object of the same slab stops the
//     kernel with "corrupted free list". Slabs sit on one of three lists: partial, full, empty.
//     Up to kKeepEmptySlabs empty slabs per cache stay for reuse; reclaim() frees the rest.
//   * Slab descriptors (SlabDesc) live in the slab's tail when it has room, otherwise (large
//     strides) in objects of an internal descriptor cache. The frame table (mm.frame_table) gives
//     every frame of a slab its descriptor (owner kind Slab): that is how kfree finds the cache.
//
// Hardened mode (CacheFlags::Hardened; SlabOptions::hardening applies it to every cache): each
// object gets a 16-byte left and a >= 16-byte right redzone (0xbb), the right one starting right
// after the *requested* size, plus a metadata word with the requested size and a live/free state;
// freed objects are filled with 0x6b and checked on reuse. Detected: double free (any order),
// write after free, buffer over/underflow (at free), invalid and foreign frees. Without it, the
// always-on checks are: free-list link validation, the descriptor canary, pointers that are not
// slab objects (not from the heap, misaligned, interior) when the cache is found by pointer
// (kfree), and an immediate double free (the object already on top of the CPU's magazine).
// Every detection panics with a report naming the cache and the address.
//
// With FERRITE_ASAN (the host's asan builds) free objects, redzones and the unused tail of a
// kmalloc object are poisoned in ASan's shadow, so ASan reports use-after-free inside slabs.
//
// LOCK ORDER (also in docs/ARCHITECTURE.md):
//   slab.registry  (list of caches: create, destroy, reclaim, slabinfo)
//     -> slab.cpu_registry  (the per-CPU blocks, mm.slab.cpu; cache slot numbers)
//       -> slab.cache  (one per cache: depot and slab lists)
//         -> slab.internal_cache  (an internal cache: magazines, off-slab descriptors; never the reverse)
//           -> pmm.arena
//   No code holds two ordinary caches' locks at once. The fast paths take no lock. In the kernel
//   the per-CPU work runs with interrupts masked (CpuPin), so a cache lock is never taken by an
//   interrupt handler that interrupted its holder on the same CPU. The one exception is
//   SlabAllocator::lock_all() (for fork): both registry locks, then every ordinary cache in
//   registry order, then every internal cache, all held at once (deadlock-free: see there), taken
//   with SpinLock::lock_ordered. The ranks (ktl::LockRank) are checked at run time.
module;

#include <ktl/macros.h>
#if defined(FERRITE_ASAN)
#include <sanitizer/asan_interface.h>
#endif

export module mm.slab;

export import mm.slab.types;

import ktl;
import mm.addr;
import mm.arch;
import mm.frame_table;
import mm.frames;
import mm.pmm;
import mm.slab.cpu;

export namespace mm {

// The SlabError a refused frame request becomes: OutOfMemory and NotInitialized (as
// PmmNotInitialized) keep their cause; any other PmmError is not one a slab's request (a
// positive, page-aligned run) can get, and panics.
[[nodiscard]] SlabError to_slab_error(PmmError e);

class SlabAllocator;
class SlabCache;

// The descriptor of one slab (internal; exported only because SlabCache's inline paths use it).
struct SlabDesc {
  u64 canary;  // secret ^ address of this descriptor: checked on every slow-path visit
  SlabCache* cache;
  ktl::u8* base;  // the slab's first byte (window view)
  // Copies of the cache's geometry, so kfree validates and frees with loads from this one line
  // (and not from the cache first: the free path's latency is a chain of dependent loads).
  u32 first_offset;
  u32 stride;
  u32 stride_recip;  // ceil(2^32 / stride)
  u32 objects;
  u32 cpu_slot;    // the cache's per-CPU slot, or slab_cpu::kNoSlot
  SlabDesc* prev;  // links of the partial/full/empty list the slab is on
  SlabDesc* next;
  u64 freelist;  // encoded head of the free-object list (see SlabCache::encode)
  u32 inuse;     // objects not on the free list
  u32 list;      // which list (SlabCache::ListId)
  AllocatedFrames frames;
};

// --- SlabCache ---------------------------------------------------------------------------------------
class SlabCache {
 public:
  static constexpr u32 kKeepEmptySlabs = 2;
  static constexpr usize kMaxObjectSize = usize{1} << 20;
  static constexpr usize kNameLength = 32;

  SlabCache(const SlabCache&) = delete;
  SlabCache& operator=(const SlabCache&) = delete;

  // --- allocation ---
  // One object (constructed if the cache has a constructor), or null when out of memory.
  // In hardened mode the object's redzone starts after `requested` bytes (<= object_size()).
  [[nodiscard]] inline void* alloc() { return alloc_sized(size_); }
  // `context` reaches the PMM when the cache grows (only Atomic may take the PMM's reserve).
  [[nodiscard]] inline void* alloc_sized(usize requested, AllocContext context = AllocContext::MayBlock) {
    void* object = nullptr;
    if (cpu_slot_ != slab_cpu::kNoSlot) {
      slab_cpu::CpuPin pin;
      slab_cpu::CpuSlot& slot = local_slot(pin);
      slab_cpu::Magazine* m = slot.loaded;
      if (m != nullptr && !m->empty()) [[likely]] {
        object = m->pop();
      } else {
        object = alloc_slow(pin.block(), slot, context);
      }
    } else {
      object = alloc_direct(context);
    }
    if (object != nullptr) on_alloc(object, requested);
    return object;
  }
  // The complete paths, out of line: callers with their own fast path (kmalloc, kfree) tail-call
  // these for everything else, so the fast path itself needs no stack frame.
  [[nodiscard]] void* alloc_general(usize requested, AllocContext context = AllocContext::MayBlock);
  void free_general(void* object);
  [[nodiscard]] inline bool has_cpu_slot() const { return cpu_slot_ != slab_cpu::kNoSlot; }
  // Frees an object of this cache. Hardened caches check that it is one (foreign, interior and
  // double frees panic); other caches trust the caller (see the module comment).
  inline void free(void* object) {
    if (object == nullptr) return;
    if (hardened_) check_owner(object);
    free_known(object);
  }
  // Frees an object the caller has already checked to be an object of this cache (kfree).
  inline void free_known(void* object) { free_in(object, cpu_slot_); }
  // The same, with the cache's CPU slot number taken from the object's slab descriptor.
  inline void free_in(void* object, u32 cpu_slot) {
    on_free(object);
    if (cpu_slot != slab_cpu::kNoSlot) {
      slab_cpu::CpuPin pin;
      slab_cpu::CpuSlot& slot = slot_at(pin, cpu_slot);
      slab_cpu::Magazine* m = slot.loaded;
      if (m != nullptr && !m->full()) [[likely]] {
        if (m->top() == object) [[unlikely]]
          report_double_free(object);
        m->push(object);
        return;
      }
      free_slow(pin.block(), slot, object);
      return;
    }
    free_direct(object);
  }
  // This CPU's slot of this cache. Unchecked: cpu_slot_ < kMaxSlots is established by setup().
  [[nodiscard]] inline slab_cpu::CpuSlot& local_slot(slab_cpu::CpuPin& pin) const {
    return slot_at(pin, cpu_slot_);
  }
  // Contract: cpu_slot < kMaxSlots (a cache's slot number, established by setup()).
  [[nodiscard]] static inline slab_cpu::CpuSlot& slot_at(slab_cpu::CpuPin& pin, u32 cpu_slot) {
    KTL_UNSAFE_BUFFER_BEGIN  // cpu_slot < slab_cpu::kMaxSlots by contract, the length of `slots`
    return pin.block().slots.data()[cpu_slot];
    KTL_UNSAFE_BUFFER_END
  }
  // Hardened caches: the requested size of a live object changes (krealloc in place): moves the
  // redzone. No-op otherwise.
  void resize_in_place(void* object, usize requested);
  // Hardened caches: the requested size recorded for a live object; object_size() otherwise.
  [[nodiscard]] usize requested_size(const void* object) const;

  // --- queries ---
  [[nodiscard]] inline ktl::StringView name() const {
    return ktl::StringView(ktl::Span<const char>(name_).first(name_length_));
  }
  [[nodiscard]] inline usize object_size() const { return size_; }
  [[nodiscard]] inline usize stride() const { return stride_; }
  [[nodiscard]] inline usize align() const { return align_; }
  [[nodiscard]] inline bool hardened() const { return hardened_; }
  [[nodiscard]] inline u32 objects_per_slab() const { return objects_per_slab_; }
  [[nodiscard]] inline u32 frames_per_slab() const { return slab_frames_; }
  [[nodiscard]] inline u32 magazine_capacity() const { return magazine_capacity_; }
  [[nodiscard]] SlabInfo info() const EXCLUDES(lock_);
  // Whether `object` is exactly an object start in `slab` (a slab of this cache).
  [[nodiscard]] static inline bool is_object_start(const SlabDesc& slab, const void* object) {
    ktl::uptr p = ktl::address_of(object);
    ktl::uptr first = ktl::address_of(slab.base) + slab.first_offset;
    u64 offset = p - first;  // wraps to a huge value below `first`
    u64 index = (offset * slab.stride_recip) >> 32;
    return p >= first && index < slab.objects && index * slab.stride == offset;
  }
  // The index of `object` in its slab if it is exactly an object start, else nullopt.
  [[nodiscard]] ktl::Optional<u32> object_index(const SlabDesc& slab, const void* object) const;
  // Validates a pointer that the frame table says lies in a slab of this cache: panics with a report
  // if it is not an object start ("misaligned" or "interior pointer").
  inline void check_object_start(const SlabDesc& slab, const void* object, const char* operation) const {
    if (!is_object_start(slab, object)) [[unlikely]]
      report_not_object_start(object, operation);
  }
  [[noreturn]] void report_not_object_start(const void* object, const char* operation) const;

  // --- reclaim ---
  // Returns depot magazines to the slabs and frees all but kKeepEmptySlabs empty slabs (all of
  // them with keep = 0), stopping once `max_frames` are freed (a whole slab at a time: it may
  // free up to a slab's frames more). Returns the frames freed.
  u64 reclaim(u32 keep = kKeepEmptySlabs, u64 max_frames = ~u64{0}) EXCLUDES(lock_);
  // Returns this CPU's (host: thread's) magazines of this cache to the depot.
  void flush_local_cpu() EXCLUDES(lock_);

  // Internal (SlabAllocator and the CPU layer).
  void return_magazines(slab_cpu::CpuSlot& slot) EXCLUDES(lock_);

 private:
  friend class SlabAllocator;
  enum ListId : u32 { kPartial = 0, kFull = 1, kEmpty = 2, kNone = 3 };
  struct List {
    SlabDesc* head = nullptr;
    u64 count = 0;
  };
  struct Meta {  // hardened objects' metadata word
    u32 requested;
    u32 state;
  };
  static constexpr u32 kStateLive = 0x4c495645;  // "LIVE"
  static constexpr u32 kStateFree = 0x46524545;  // "FREE"
  static constexpr ktl::u8 kRedzoneByte = 0xbb;
  static constexpr ktl::u8 kPoisonByte = 0x6b;
  static constexpr usize kRedzone = 16;

  SlabCache() = default;
  [[nodiscard]] ktl::Result<void, SlabError> setup(SlabAllocator& owner, ktl::StringView name, usize size,
                                                   usize align, Constructor ctor, CacheFlags flags,
                                                   u64 secret, bool internal);
  // Frees every slab (the cache must be empty) and the magazines. Contract: no per-CPU magazines.
  void teardown() EXCLUDES(lock_);

  [[nodiscard]] void* alloc_slow(slab_cpu::CpuBlock& block, slab_cpu::CpuSlot& slot, AllocContext context)
      EXCLUDES(lock_);
  void free_slow(slab_cpu::CpuBlock& block, slab_cpu::CpuSlot& slot, void* object) EXCLUDES(lock_);
  [[nodiscard]] void* alloc_direct(AllocContext context) EXCLUDES(lock_);
  void free_direct(void* object) EXCLUDES(lock_);

  [[nodiscard]] void* alloc_one_locked(AllocContext context, bool may_grow = true) REQUIRES(lock_);
  void free_one_locked(void* object, SlabDesc* slab) REQUIRES(lock_);
  void fill_locked(slab_cpu::Magazine& m, AllocContext context) REQUIRES(lock_);
  void flush_locked(slab_cpu::Magazine& m) REQUIRES(lock_);
  [[nodiscard]] slab_cpu::Magazine* take_empty_magazine_locked() REQUIRES(lock_);
  void put_empty_magazine_locked(slab_cpu::Magazine* m) REQUIRES(lock_);
  void put_full_magazine_locked(slab_cpu::Magazine* m) REQUIRES(lock_);
  void purge_depot_locked() REQUIRES(lock_);
  [[nodiscard]] SlabDesc* new_slab_locked(AllocContext context) REQUIRES(lock_);
  // Unlinks and frees one empty slab; returns its frames (the caller frees them unlocked).
  [[nodiscard]] AllocatedFrames release_slab_locked(SlabDesc* slab) REQUIRES(lock_);
  void list_move_locked(SlabDesc* slab, ListId to) REQUIRES(lock_);
  [[nodiscard]] SlabDesc* slab_of_checked(const void* object, const char* operation) const;

  // Object memory is touched only through these (no_sanitize under ASan: free objects are
  // poisoned).
  [[nodiscard]] u64 encode(void* next, void* slot_address) const;
  [[nodiscard]] void* decode_link(const SlabDesc& slab, void* object) const;
  void store_link(void* object, void* next) const;
  void check_desc(const SlabDesc& slab) const;
  inline void on_alloc(void* object, usize requested) {
    if (hardened_) [[unlikely]]
      hardened_alloc(object, requested);
    asan_unpoison(object, requested);
  }
  inline void on_free(void* object) {
    if (hardened_) [[unlikely]]
      hardened_free(object);
    asan_poison(object, size_);
  }
  void hardened_alloc(void* object, usize requested);
  void hardened_free(void* object);

 public:
  // Without ASan these are no-ops that the fast paths inline away.
  static inline void asan_poison([[maybe_unused]] const void* p, [[maybe_unused]] usize n) {
#if defined(FERRITE_ASAN)
    __asan_poison_memory_region(p, n);
#endif
  }
  static inline void asan_unpoison([[maybe_unused]] const void* p, [[maybe_unused]] usize n) {
#if defined(FERRITE_ASAN)
    __asan_unpoison_memory_region(p, n);
#endif
  }

 private:
  void init_slab_objects(SlabDesc& slab);
  void check_owner(const void* object) const;

  [[noreturn]] void report(const char* what, const void* address) const;
  [[noreturn]] void report_double_free(const void* object) const;

  // Immutable after setup().
  SlabAllocator* owner_ = nullptr;
  ktl::Array<char, kNameLength> name_{};
  usize name_length_ = 0;
  usize size_ = 0;
  usize align_ = 0;
  usize stride_ = 0;
  usize first_offset_ = 0;  // offset of object 0 in the slab (hardened: room for its left redzone)
  usize link_offset_ = 0;   // offset of the free-list link within an object's stride
  usize meta_offset_ = 0;   // hardened: offset of Meta within the stride
  u64 stride_recip_ = 0;    // ceil(2^32 / stride): division-free object index
  u32 objects_per_slab_ = 0;
  u32 slab_frames_ = 0;
  bool desc_on_slab_ = true;
  bool hardened_ = false;
  bool internal_ = false;
  Constructor ctor_ = nullptr;
  u64 secret_ = 0;
  u32 cpu_slot_ = slab_cpu::kNoSlot;
  u32 magazine_capacity_ = 0;
  u32 depot_limit_ = 0;  // full magazines the depot keeps before flushing to the slabs
  SlabCache* magazine_cache_ = nullptr;
  SlabCache* desc_cache_ = nullptr;

  mutable ktl::SpinLock lock_{ktl::LockRank::SlabCache};  // SlabInternalCache for internal caches (setup)
  ktl::Array<List, 3> lists_ GUARDED_BY(lock_){};
  slab_cpu::Magazine* depot_full_ GUARDED_BY(lock_) = nullptr;
  slab_cpu::Magazine* depot_empty_ GUARDED_BY(lock_) = nullptr;
  u32 depot_full_count_ GUARDED_BY(lock_) = 0;
  u32 depot_empty_count_ GUARDED_BY(lock_) = 0;
  u64 inuse_ GUARDED_BY(lock_) = 0;

  SlabCache* registry_next_ = nullptr;  // guarded by the owner's registry lock
};

// --- SlabAllocator -------------------------------------------------------------------------------------
class SlabAllocator {
 public:
  SlabAllocator() = default;
  SlabAllocator(const SlabAllocator&) = delete;
  SlabAllocator& operator=(const SlabAllocator&) = delete;
  // Contract: every cache created here has been destroyed, or has no live objects (they are
  // destroyed now). The Pmm must outlive the allocator.
  ~SlabAllocator();

  // Slabs come from the PMM of `frames` (the frame table beside it, which records which slab each
  // frame belongs to, initialized, and must outlive the allocator) and are accessed through its
  // window. Errors: AlreadyInitialized, and those of the internal caches' set-up.
  [[nodiscard]] ktl::Result<void, SlabError> init(FrameTable& frames, const SlabOptions& options = {});
  [[nodiscard]] inline bool initialized() const { return frames_ != nullptr; }

  // A new cache of `size`-byte objects aligned to `align` (a power of two, 0 meaning 8). The name
  // is copied (truncated to 31 characters). Hardened when the flags or the allocator's options say so.
  [[nodiscard]] ktl::Result<SlabCache*, SlabError> create_cache(ktl::StringView name, usize size, usize align,
                                                                Constructor ctor = nullptr,
                                                                CacheFlags flags = CacheFlags::None);
  // Destroys `cache`: drains every CPU's magazines of it, then frees its slabs. NotEmpty (and
  // nothing destroyed) while objects are live. Contract: every other use of the cache
  // happens-before this call.
  [[nodiscard]] ktl::Result<void, SlabError> destroy_cache(SlabCache* cache);

  // Depot magazines back to slabs, then all but `keep` empty slabs of every cache to the PMM,
  // until `max_frames` are freed (kswapd asks for a batch at a time: reclaim stops near its
  // target instead of emptying every cache). Returns the frames freed. (kswapd calls it through
  // slab_reclaim.)
  u64 reclaim(u32 keep = SlabCache::kKeepEmptySlabs, u64 max_frames = ~u64{0});

  // Returns this CPU's (host: thread's) magazines of every cache to their depots.
  void flush_local_cpu();
  // Objects handed out and not freed, over every ordinary cache (flushes this CPU's magazines
  // first; exact when no other CPU holds magazines).
  [[nodiscard]] u64 live_objects();

  // The slab descriptor of the slab containing `p`, or null.
  [[nodiscard]] inline SlabDesc* slab_of(const void* p) const {
    KTL_UNSAFE_BUFFER_BEGIN  // the frame table records SlabDesc pointers for FrameOwner::Slab frames
    return reinterpret_cast<SlabDesc*>(owners_.owner_of(p, FrameOwner::Slab));
    KTL_UNSAFE_BUFFER_END
  }

  // slabinfo: f(const SlabInfo&) for every cache, internal ones included.
  template <class F>
  inline void for_each_info(F&& f) {
    ktl::LockGuard guard(registry_lock_);
    for (SlabCache* c = registry_; c != nullptr; c = c->registry_next_) f(c->info());
  }
  // Caches in the registry, internal ones included. Takes slab.registry alone (no cache lock).
  [[nodiscard]] usize cache_count() const EXCLUDES(registry_lock_);
  // Frames held: the slabs of every cache, internal ones included (the frame table is its PMM's).
  [[nodiscard]] inline u64 slab_frames() const { return slab_frames_.load(ktl::MemoryOrder::Relaxed); }
  [[nodiscard]] inline FrameTable& frame_table() const { return *frames_; }

  // --- fork (mm.heap.host's HostHeap::lock_for_fork) ---
  // Takes every lock of this allocator and keeps them: slab.registry, slab.cpu_registry, the lock
  // of every ordinary cache in registry order, then of every internal cache (magazines, slab
  // descriptors, SlabCache objects) in registry order. unlock_all() releases them in reverse.
  // While they are held no other thread is inside a critical section of the slab layer (the
  // lock-free per-CPU fast paths touch only their own thread's block), so a fork() child's copy is
  // consistent. Deadlock-free although it holds many cache locks at once: it follows the lock
  // order, and the only orders it adds (ordinary caches among themselves, internal ones among
  // themselves) are between locks no other thread ever holds two of at once, so a thread holding
  // a lock we wait for only waits for locks further down the order, which we do not hold yet.
  // Contract: the caller holds none of these locks nor any pmm.arena lock, no other
  // SlabAllocator's lock_all() is held (slab.cpu_registry is one per process), and the caller
  // neither allocates nor frees from this allocator until unlock_all(). Unchecked by the analysis
  // beyond the two registry locks: the caches are only known at run time.
  void lock_all() ACQUIRE(registry_lock_, slab_cpu::g_registry_lock) NO_THREAD_SAFETY_ANALYSIS;
  void unlock_all() RELEASE(registry_lock_, slab_cpu::g_registry_lock) NO_THREAD_SAFETY_ANALYSIS;
  // For tests of lock_all(): f(lock, cache) for every lock it takes: slab.registry and
  // slab.cpu_registry (cache null), then each cache's, internal ones included, in registry order.
  // Takes none of them (a query: is_locked() tells whether lock_all() holds each) and walks the
  // registry unlocked. Contract: the registry does not change meanwhile (the caller holds
  // lock_all(), or no other thread creates or destroys caches).
  template <class F>
  inline void for_each_lock(F&& f) const NO_THREAD_SAFETY_ANALYSIS {
    f(static_cast<const ktl::SpinLock&>(registry_lock_), static_cast<const SlabCache*>(nullptr));
    f(static_cast<const ktl::SpinLock&>(slab_cpu::g_registry_lock), static_cast<const SlabCache*>(nullptr));
    for (const SlabCache* c = registry_; c != nullptr; c = c->registry_next_) {
      f(static_cast<const ktl::SpinLock&>(c->lock_), c);
    }
  }

  // Fault injection (R8): after `n` more successful slab allocations from the PMM, every further
  // one fails until reset with n = ~0.
  inline void fail_slab_allocations_after(u64 n) { fail_after_.store(n, ktl::MemoryOrder::Relaxed); }

  // The frame table's PMM and window.
  [[nodiscard]] inline Pmm& pmm() const { return frames_->pmm(); }
  [[nodiscard]] inline PhysWindow window() const { return frames_->window(); }
  [[nodiscard]] inline Hardening hardening() const { return options_.hardening; }

 private:
  friend class SlabCache;
  static constexpr u32 kMagazineKinds = 3;

  [[nodiscard]] ktl::Result<AllocatedFrames, SlabError> alloc_slab_frames(u32 frames, AllocContext context);
  [[nodiscard]] u64 next_secret();
  void register_cache(SlabCache* cache) EXCLUDES(registry_lock_);
  void unregister_cache(SlabCache* cache) EXCLUDES(registry_lock_);
  enum class CacheKind : u32 { Ordinary, Internal };
  // lock_all / unlock_all: the caches of one kind, in registry order / in reverse.
  void lock_caches(CacheKind kind) NO_THREAD_SAFETY_ANALYSIS;
  void unlock_caches_reverse(CacheKind kind) NO_THREAD_SAFETY_ANALYSIS;

  SlabOptions options_;
  FrameTable* frames_ = nullptr;  // slab frames -> their SlabDesc (shared with the PMM's other users)
  FrameOwners owners_;            // frames_->owners(), copied: kfree's lookup loads no pointer first
  ktl::Atomic<u64> slab_frames_{0};
  ktl::Atomic<u64> fail_after_{~u64{0}};
  ktl::Atomic<u64> secret_counter_{0};
  // Internal caches, embedded (bootstrap): descriptors, SlabCache objects, magazines.
  SlabCache desc_cache_;
  SlabCache cache_cache_;
  SlabCache magazines6_;
  SlabCache magazines14_;
  SlabCache magazines62_;
  [[nodiscard]] inline SlabCache& magazine_cache(u32 kind) {
    return kind == 0 ? magazines6_ : kind == 1 ? magazines14_ : magazines62_;
  }
  mutable ktl::SpinLock registry_lock_{ktl::LockRank::SlabRegistry};
  SlabCache* registry_ GUARDED_BY(registry_lock_) = nullptr;
};

// --- the installed allocator (mm.compat's seed names use it) ---------------------------------------
// The kernel's heap (mm.heap) installs its SlabAllocator; tests may install their own.
void install_slab_allocator(SlabAllocator* slab);
[[nodiscard]] SlabAllocator* installed_slab_allocator();

}  // namespace mm

// Internal to mm.slab's implementation units (not exported).
namespace mm {

using slab_cpu::CpuBlock;
using slab_cpu::CpuSlot;
using slab_cpu::Magazine;

// Magazine kinds by capacity (the magazine object is 16 + 8 * capacity bytes). Bigger objects get
// smaller magazines, so the free objects a CPU holds stay around 4 KiB per cache (footprint).
inline constexpr ktl::Array<u32, 3> kMagazineCapacity{{6, 14, 62}};

// Which cache owns each per-CPU slot number (null: free).
extern ktl::Array<SlabCache*, slab_cpu::kMaxSlots> g_slot_owner GUARDED_BY(slab_cpu::g_registry_lock);

inline ktl::uptr addr(const void* p) { return ktl::address_of(p); }

// p + offset. Callers guarantee the result stays inside the slab (or object) that p points into.
inline ktl::u8* byte_at(void* p, usize offset) {
  KTL_UNSAFE_BUFFER_BEGIN  // in bounds by the caller's contract (offsets inside one slab)
  return static_cast<ktl::u8*>(p) + offset;
  KTL_UNSAFE_BUFFER_END
}
inline const ktl::u8* byte_at(const void* p, usize offset) {
  KTL_UNSAFE_BUFFER_BEGIN  // as above
  return static_cast<const ktl::u8*>(p) + offset;
  KTL_UNSAFE_BUFFER_END
}

// Object memory that may be poisoned in ASan's shadow (free objects, redzones) is read and
// written only by the functions marked SLAB_RAW. no_builtin keeps the compiler from turning their
// loops into memset/memcmp calls, which ASan intercepts and checks. They are not instrumented for
// coverage either: in a fuzzer build every byte of their loops would call libFuzzer's comparison
// hooks, for no feedback (each iteration is the same edge).
#define SLAB_RAW __attribute__((no_sanitize("address", "coverage"), no_builtin))
inline SLAB_RAW u64 raw_load(const void* p) { return *static_cast<const volatile u64*>(p); }
inline SLAB_RAW void raw_store(void* p, u64 v) { *static_cast<volatile u64*>(p) = v; }
inline SLAB_RAW void raw_fill(void* p, usize n, ktl::u8 value) {
  auto* b = static_cast<volatile ktl::u8*>(p);
  u64 word = 0x0101010101010101ull * value;
  usize i = 0;
  KTL_UNSAFE_BUFFER_BEGIN  // [p, p + n) is one object or redzone of a slab (caller's contract)
  for (; i < n && (addr(const_cast<ktl::u8*>(b + i)) & 7) != 0; ++i) b[i] = value;
  for (; i + 8 <= n; i += 8) *reinterpret_cast<volatile u64*>(b + i) = word;
  for (; i < n; ++i) b[i] = value;
  KTL_UNSAFE_BUFFER_END
}
// The offset of the first byte in [p, p + n) that differs from `value`, or n.
inline SLAB_RAW usize raw_find_not(const void* p, usize n, ktl::u8 value) {
  auto* b = static_cast<const volatile ktl::u8*>(p);
  u64 word = 0x0101010101010101ull * value;
  usize i = 0;
  KTL_UNSAFE_BUFFER_BEGIN  // as raw_fill
  for (; i < n && (addr(const_cast<const ktl::u8*>(b + i)) & 7) != 0; ++i) {
    if (b[i] != value) return i;
  }
  for (; i + 8 <= n; i += 8) {
    if (*reinterpret_cast<const volatile u64*>(b + i) != word) break;
  }
  for (; i < n; ++i) {
    if (b[i] != value) return i;
  }
  KTL_UNSAFE_BUFFER_END
  return n;
}
inline SLAB_RAW ktl::u8 raw_byte(const void* p, usize i) {
  KTL_UNSAFE_BUFFER_BEGIN  // i < the length the caller just checked
  return static_cast<const volatile ktl::u8*>(p)[i];
  KTL_UNSAFE_BUFFER_END
}

}  // namespace mm
