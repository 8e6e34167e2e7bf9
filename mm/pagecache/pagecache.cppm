// mm.page_cache: the page cache. Pages of block devices (later files), 4 KiB each, kept in frames
// of the PMM, keyed by (backing, page index) and shared by every reader; written pages stay dirty
// in the cache until sync or reclaim writes them back. It is a Reclaimer (name "page_cache"):
// kswapd takes clean pages back, dirty ones after writing them.
//
//   mm::PageCache cache(frame_table);              // the frame table of the PMM it allocates from
//   auto id = TRY(cache.attach(device));           // device: a PageBacking
//   usize n = TRY(cache.read(id, offset, bytes));  // short at the end of the backing
//   TRY(cache.write(id, offset, data));            // past the end: IoError::OutOfRange
//   TRY(cache.sync(id));                           // dirty pages written, then backing.flush()
//   TRY(cache.detach(id));                         // sync, then every page dropped
//
// Per-frame state lives in the frame's FrameDesc (mm.frame_table, kind FrameOwner::PageCache):
// owner = the address of the page's entry (its key and hash link), refs = 1 for the cache plus one
// per thread waiting on the page or writing it back, flags = kUptodate, kDirty, kReferenced,
// kLocked (I/O in flight), next/prev = the LRU list.
//
// Concurrency and lock order (docs/ARCHITECTURE.md): pagecache.bucket, then pagecache.lru.
//   * A lookup takes only the lock of its hash bucket (kBuckets of them): no global lock on the
//     hit path. Page bytes are copied in and out under the bucket lock; flags are written only
//     under it (atomic stores, so that a waiter may poll them without it).
//   * The LRU list, the free entries and the backing slots are guarded by the LRU lock, which is
//     taken after a bucket lock if both are held. Reclaim and drop_clean hold the LRU lock and
//     try-lock a page's bucket (a page whose bucket is busy is passed over).
//   * No spinlock is held across backing I/O. A page being read in is in the hash, kLocked and not
//     kUptodate; a page being written back is kLocked and kUptodate (readers may copy it, writers
//     wait). Waiters take a reference, drop the bucket lock and call the configured io_wait hook
//     until kLocked clears (mm knows no scheduler: the hook is the kernel's yield; the default
//     spins with cpu_relax), then look the page up again.
//   * A page is evicted only when its refs are 1 (the cache's) and it is not kLocked.
//   * attach/detach must not race with other calls for the same backing.
//
// Read-ahead: a read starting where the last one of its backing ended is sequential, and a miss
// then reads a window (4, doubling up to config.readahead_pages) in one read_pages call. Write
// back clusters a dirty page with its dirty neighbours into one write_pages call.
//
// Errors: a failed read_pages leaves no page of its batch in the cache (the caller gets the
// error; waiters retry and get their own); a failed write back leaves the page dirty. Frames come
// from the PMM with the configured AllocContext (default NoReclaim): under pressure an allocation
// fails with IoError::NoMemory instead of recursing into reclaim. When all config.max_pages entries are in
// use, a miss first evicts pages of the cache itself (as reclaim does).
module;

#include <ktl/macros.h>

export module mm.page_cache;

import ktl;
import mm.addr;
import mm.arch;
import mm.frames;
import mm.frame_table;
import mm.pmm;
import mm.reclaim;

export namespace mm {

using ktl::u16;
using ktl::u32;
using ktl::u64;
using ktl::u8;
using ktl::usize;

enum class IoError : u32 {
  Device,          // the device reported an error
  OutOfRange,      // past the end of the backing
  NoMemory,        // no frame (or no cache entry) for the page
  Timeout,         // the device did not answer in time
  Busy,            // the device (or the cache's entry for it) is busy
  UnknownBacking,  // a BackingId that is not (or no longer) attached
};
[[nodiscard]] constexpr const char* to_string(IoError e) {
  switch (e) {
    case IoError::Device: return "device error";
    case IoError::OutOfRange: return "past the end of the backing";
    case IoError::NoMemory: return "no memory for the page cache";
    case IoError::Timeout: return "device timeout";
    case IoError::Busy: return "device busy";
    case IoError::UnknownBacking: return "unknown backing";
  }
  return "unknown I/O error";
}

enum class PageCacheError : u32 {
  TooManyBackings,  // all kMaxBackings slots are in use
  AlreadyAttached,  // this backing is attached already
};
[[nodiscard]] constexpr const char* to_string(PageCacheError e) {
  switch (e) {
    case PageCacheError::TooManyBackings: return "too many backings attached to the page cache";
    case PageCacheError::AlreadyAttached: return "backing already attached to the page cache";
  }
  return "unknown page cache error";
}

// What a cached object is backed by: a block device (in 4 KiB pages), later a file.
class PageBacking {
 public:
  // Fills frames[i] with page first_index + i (DMA or copy; the frames are the cache's, 4 KiB
  // each). A page past size_bytes() reads as zeros beyond the end.
  [[nodiscard]] virtual ktl::Result<void, IoError> read_pages(u64 first_index,
                                                              ktl::Span<const Frame4K> frames) = 0;
  // Writes frames[i] to page first_index + i (the part of a page past size_bytes() is ignored).
  [[nodiscard]] virtual ktl::Result<void, IoError> write_pages(u64 first_index,
                                                               ktl::Span<const Frame4K> frames) = 0;
  // Makes what was written durable.
  [[nodiscard]] virtual ktl::Result<void, IoError> flush() = 0;
  [[nodiscard]] virtual u64 size_bytes() const = 0;

 protected:
  ~PageBacking() = default;
};

// An attached backing: a slot and the slot's generation when it was attached.
struct BackingId {
  u32 slot = ~u32{0};
  u32 generation = 0;
  friend constexpr bool operator==(BackingId, BackingId) = default;
};

// Waits a little for a page's I/O (the kernel's yield). Called with no lock held.
using IoWait = void (*)();

inline constexpr u32 kPageCacheDefaultMaxPages = 4096;  // the default limit of one cache's pages
inline constexpr u32 kPageCacheMaxReadahead = 32;

struct PageCacheConfig {
  // The most pages the cache holds (its entries are allocated from the PMM as it grows, a frame
  // of kEntriesPerChunk at a time, and kept until the cache is destroyed: about 1.2 % of what
  // they describe). The kernel sets it to all of memory: reclaim, not a limit, bounds the cache.
  u32 max_pages = kPageCacheDefaultMaxPages;
  u32 readahead_pages = kPageCacheMaxReadahead;  // largest read-ahead window (1: none)
  AllocContext context = AllocContext::NoReclaim;
  IoWait io_wait = nullptr;  // null: spin with cpu_relax
};

struct PageCacheStats {
  u64 pages = 0;            // pages in the cache (being read in included)
  u64 dirty = 0;            // of them dirty
  u64 hits = 0;             // page lookups that found the page up to date
  u64 misses = 0;           // page lookups that had to read (or create) it
  u64 readahead_pages = 0;  // pages read beyond the one a miss asked for
  u64 evicted = 0;          // pages dropped (reclaim, drop_clean, self-eviction, detach)
  u64 written_back = 0;     // pages written to their backing
  u64 io_errors = 0;        // failed read_pages / write_pages calls
  u64 entry_frames = 0;     // frames holding the cache's entries (kept until it is destroyed)
};

class PageCache final : public Reclaimer {
 public:
  static constexpr u32 kDefaultMaxPages = kPageCacheDefaultMaxPages;
  static constexpr u32 kBucketBits = 10;
  static constexpr u32 kBuckets = 1u << kBucketBits;
  static constexpr u32 kMaxBackings = 8;
  static constexpr u32 kMaxReadahead = kPageCacheMaxReadahead;
  // FrameDesc::flags of a cached page.
  static constexpr u16 kUptodate = 1;    // the bytes are the page's
  static constexpr u16 kDirty = 2;       // written since the last write back
  static constexpr u16 kReferenced = 4;  // used since reclaim last looked (second chance)
  static constexpr u16 kLocked = 8;      // I/O in flight (read in, or write back)
  static constexpr u16 kOnLru = 16;      // on the LRU list

  // A cache over the frames of `frames`' PMM (allocated with config.context).
  explicit PageCache(FrameTable& frames, PageCacheConfig config = {});
  PageCache(const PageCache&) = delete;
  PageCache& operator=(const PageCache&) = delete;
  // Every backing must be detached.
  ~PageCache();

  // Errors: TooManyBackings, AlreadyAttached.
  [[nodiscard]] ktl::Result<BackingId, PageCacheError> attach(PageBacking& backing);
  // Writes the dirty pages back (sync: on an error the backing stays attached, nothing is lost),
  // then drops all of its pages.
  [[nodiscard]] ktl::Result<void, IoError> detach(BackingId id);
  // Copies from `offset` on; any offset and length; short at the end of the backing (0 at or past
  // it). Errors: UnknownBacking, NoMemory, and the backing's read errors.
  [[nodiscard]] ktl::Result<usize, IoError> read(BackingId id, u64 offset, ktl::Span<u8> out);
  // Copies `in` to `offset` on, marking the pages dirty (a partial page is read first). Past the
  // end: OutOfRange (nothing written). A failure after the first page returns the bytes written
  // before it (a short write); on the first page, the error.
  [[nodiscard]] ktl::Result<usize, IoError> write(BackingId id, u64 offset, ktl::Span<const u8> in);
  // Writes back every dirty page of the backing, then backing.flush(). The first error is
  // returned (the other pages are still tried; failed ones stay dirty).
  [[nodiscard]] ktl::Result<void, IoError> sync(BackingId id);
  [[nodiscard]] ktl::Result<void, IoError> sync_all();
  // Evicts every clean page nobody uses (refs 1, not locked); returns the frames freed.
  u64 drop_clean();
  [[nodiscard]] PageCacheStats stats() const;

  // --- Reclaimer ---
  [[nodiscard]] inline const char* name() const override { return "page_cache"; }
  // Pages on the LRU list: the clean ones and the dirty ones (written back before eviction).
  [[nodiscard]] u64 reclaimable() override;
  // Evicts up to `frames` pages in LRU order, a page referenced since the last scan getting a
  // second chance; dirty pages are written back first (a failed write keeps the page). Never
  // allocates; try-locks the LRU and bucket locks.
  [[nodiscard]] ReclaimBatch reclaim(u64 frames) override;

 private:
  struct Entry {
    Entry* next = nullptr;  // the bucket's chain (bucket lock) or the free list (LRU lock)
    Entry* prev = nullptr;  // the bucket's chain (null at its head)
    FrameDesc* desc = nullptr;
    PhysAddr frame = PhysAddr::zero();
    u64 index = 0;
    u32 backing = 0;  // the slot
    u32 bucket = 0;
  };
  struct Bucket {
    ktl::SpinLock lock{ktl::LockRank::PageCacheBucket};
    Entry* head GUARDED_BY(lock) = nullptr;
  };
  struct Slot {
    ktl::Atomic<PageBacking*> backing{nullptr};  // written under lru_lock_
    ktl::Atomic<u32> generation{0};
    ktl::Atomic<u64> next_index{~u64{0}};  // the page after the last read (sequential detection)
    ktl::Atomic<u32> window{0};            // the current read-ahead window
  };
  enum class Access : u8 { Read, Write };
  enum class Fill : u8 { FromBacking, Zeroed };  // how fill() makes the pages up to date
  enum class Evict : u8 { WriteBackDirty, CleanOnly };

  [[nodiscard]] static inline u16 flags_of(const FrameDesc* d) {
    return __atomic_load_n(&d->flags, __ATOMIC_ACQUIRE);
  }
  // A page's flags are written only under its bucket lock (or before it is published), and read
  // atomically with or without it: no read-modify-write instruction is needed.
  static inline u16 set_flags(FrameDesc* d, u16 f) {
    u16 old = __atomic_load_n(&d->flags, __ATOMIC_RELAXED);
    __atomic_store_n(&d->flags, static_cast<u16>(old | f), __ATOMIC_RELEASE);
    return old;
  }
  static inline u16 clear_flags(FrameDesc* d, u16 f) {
    u16 old = __atomic_load_n(&d->flags, __ATOMIC_RELAXED);
    __atomic_store_n(&d->flags, static_cast<u16>(old & ~f), __ATOMIC_RELEASE);
    return old;
  }
  [[nodiscard]] static inline u32 refs_of(const FrameDesc* d) {
    return __atomic_load_n(&d->refs, __ATOMIC_ACQUIRE);
  }
  [[nodiscard]] static inline u32 bucket_index(u32 slot, u64 index) {
    u64 h = (index + (u64{slot} << 40)) * 0x9e3779b97f4a7c15ull;  // Fibonacci hashing: the top bits
    return static_cast<u32>(h >> (64 - kBucketBits));
  }

  [[nodiscard]] ktl::Result<PageBacking*, IoError> backing_of(BackingId id) const;
  [[nodiscard]] Entry* find_locked(Bucket& b, u32 slot, u64 index) REQUIRES(b.lock);
  [[nodiscard]] Entry& entry_of(const FrameDesc* d);
  void wait_io();
  // One page: copies `out.size()` bytes from `in_page` (Read) or `in` to `in_page` (Write). A
  // miss makes the page first: fill(index, fill_pages, miss).
  [[nodiscard]] ktl::Result<void, IoError> copy_page(u32 slot, PageBacking& backing, u64 index,
                                                     u64 fill_pages, Fill miss, u32 in_page,
                                                     ktl::Span<u8> out, ktl::Span<const u8> in,
                                                     Access access);
  // Reads pages [first, first + count) that are not cached in one read_pages call (stops at the
  // first page that is cached or cannot get a frame; at least the first unless it is cached).
  [[nodiscard]] ktl::Result<void, IoError> fill(u32 slot, PageBacking& backing, u64 first, u64 count,
                                                Fill how);
  // A free entry with a frame owned in the frame table (flags kLocked), or NoMemory. WhenFull::Evict:
  // with no free entry, evicts some pages of the cache first.
  enum class WhenFull : u8 { Evict, Fail };
  [[nodiscard]] ktl::Result<Entry*, IoError> new_page(WhenFull full);
  // Frames on their way back to the PMM: a run of contiguous ones is freed in one call.
  struct FreeRun {
    PhysAddr start = PhysAddr::zero();
    u64 count = 0;
  };
  // Gives the entry and its frame back (the entry is in no list, and nobody refers to it).
  void release_page(Entry& e) EXCLUDES(lru_lock_);
  void release_page_locked(Entry& e) REQUIRES(lru_lock_);
  // The same, the frame added to `run` (the run freed first when the frame does not extend it).
  void release_entry_locked(Entry& e, FreeRun& run) REQUIRES(lru_lock_);
  void free_run(FreeRun& run);
  void unlink_locked(Bucket& b, Entry& e) REQUIRES(b.lock);
  void lru_push_locked(FrameDesc* d) REQUIRES(lru_lock_);
  void lru_remove_locked(FrameDesc* d) REQUIRES(lru_lock_);
  // lru_remove_locked without clearing kOnLru (the page is released next, its flags with it).
  void lru_unlink_locked(FrameDesc* d) REQUIRES(lru_lock_);
  // Moves a page to the head (flags untouched: no bucket lock needed).
  void lru_rotate_locked(FrameDesc* d) REQUIRES(lru_lock_);
  // Write back: begin (under the bucket lock: kLocked set, kDirty cleared, a reference taken), the
  // I/O (no lock), finish (under the bucket lock: kLocked cleared, kDirty again on an error; the
  // reference stays the caller's to drop).
  void begin_write_back_locked(Bucket& b, Entry& e) REQUIRES(b.lock);
  // The I/O: `e` (begun by the caller) and its dirty neighbours in the backing (begun here: up to
  // 15 before it, up to kMaxReadahead in all) in one write_pages call; the neighbours are finished
  // here, `e` stays the caller's to finish.
  [[nodiscard]] ktl::Result<void, IoError> write_cluster(Entry& e, PageBacking& backing);
  void finish_write_back_locked(Bucket& b, Entry& e, const ktl::Result<void, IoError>& written)
      REQUIRES(b.lock);
  // Evicts up to `want` pages in LRU order (reclaim's body; CleanOnly: drop_clean's, every page
  // looked at once, no second chance, dirty ones left).
  ReclaimBatch evict(u64 want, Evict how);

  FrameTable& table_;
  Pmm& pmm_;
  PhysWindow window_;
  PageCacheConfig config_;
  ktl::Array<Bucket, kBuckets> buckets_{};
  mutable ktl::SpinLock lru_lock_{ktl::LockRank::PageCacheLru};
  FrameDesc* lru_head_ GUARDED_BY(lru_lock_) = nullptr;  // most recently added
  FrameDesc* lru_tail_ GUARDED_BY(lru_lock_) = nullptr;  // oldest: reclaim starts here
  ktl::Atomic<u64> lru_count_{0};                        // written under lru_lock_
  Entry* free_ GUARDED_BY(lru_lock_) = nullptr;
  ktl::Array<Slot, kMaxBackings> slots_{};
  // Entries live in chunks, one PMM frame each, chained through their headers.
  struct ChunkHeader {
    PhysAddr next = PhysAddr::zero();
    const PageCache* cache = nullptr;  // entry_of's check that an owner is one of ours
  };

 public:
  static constexpr u32 kEntriesPerChunk = static_cast<u32>((4096 - sizeof(ChunkHeader)) / sizeof(Entry));

 private:
  // A chunk more on the free list (its frame allocated before the LRU lock is taken); NoMemory
  // when the PMM has no frame.
  [[nodiscard]] ktl::Result<void, IoError> grow() EXCLUDES(lru_lock_);
  PhysAddr chunks_ GUARDED_BY(lru_lock_) = PhysAddr::zero();  // the newest chunk; zero: none
  u32 entries_ GUARDED_BY(lru_lock_) = 0;                     // entries in all chunks
  ktl::Atomic<u64> entry_frames_{0};                          // chunks (written under lru_lock_)
  ktl::Atomic<u64> pages_{0};
  ktl::Atomic<u64> dirty_{0};
  ktl::Atomic<u64> hits_{0};
  ktl::Atomic<u64> misses_{0};
  ktl::Atomic<u64> readahead_{0};
  ktl::Atomic<u64> evicted_{0};
  ktl::Atomic<u64> written_back_{0};
  ktl::Atomic<u64> io_errors_{0};
};

}  // namespace mm
