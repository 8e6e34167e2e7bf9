module;

#include <ktl/macros.h>
#include <ktl/new.h>

module mm.page_cache;

import ktl;
import mm.addr;
import mm.arch;
import mm.frames;
import mm.frame_table;
import mm.pmm;
import mm.reclaim;

namespace mm {

namespace {

template <class T, T... I>
struct Seq {};

// An array of N frames (all frame 0 until set): Frame4K has no default value.
template <usize... I>
constexpr ktl::Array<Frame4K, sizeof...(I)> frame_array(Seq<usize, I...>) {
  return {{((void)I, Frame4K::containing(PhysAddr::zero()))...}};
}

// Page copies are the hit path: memcpy/memset (word at a time), not ktl's checked byte loops,
// which cost 5x under QEMU's TCG. The sizes are checked first.
void copy(ktl::Span<u8> to, ktl::Span<const u8> from) {
  ktl::check(to.size() >= from.size(), "PageCache: copy destination too small");
  KTL_UNSAFE_BUFFER_BEGIN  // from.size() bytes on both sides, checked above
  __builtin_memcpy(to.data(), from.data(), from.size());
  KTL_UNSAFE_BUFFER_END
}

ktl::Result<void, IoError> zero_pages(PhysWindow window, ktl::Span<const Frame4K> frames) {
  for (Frame4K f : frames) {
    ktl::Span<u8> page = window.bytes(f.start(), kPageSize);
    KTL_UNSAFE_BUFFER_BEGIN  // the page's kPageSize bytes
    __builtin_memset(page.data(), 0, page.size());
    KTL_UNSAFE_BUFFER_END
  }
  return ktl::ok();
}

PhysRange one_page(PhysAddr frame) { return PhysRange::with_size(frame, kPageSize).value(); }

}  // namespace

PageCache::PageCache(FrameTable& frames, PageCacheConfig config)
    : table_(frames), pmm_(frames.pmm()), window_(frames.window()), config_(config) {
  ktl::check(frames.initialized(), "PageCache: the frame table is not initialized");
  ktl::check(config_.max_pages > 0, "PageCache: max_pages must be above 0");
  ktl::check(config_.readahead_pages > 0 && config_.readahead_pages <= kMaxReadahead,
             "PageCache: readahead_pages out of range");
}

PageCache::~PageCache() {
  for (const Slot& s : slots_) {
    ktl::check(s.backing.load() == nullptr, "PageCache destroyed with a backing attached (detach it first)");
  }
  ktl::check(pages_.load() == 0, "PageCache destroyed with pages left");
  ktl::LockGuard guard(lru_lock_);
  while (chunks_ != PhysAddr::zero()) {
    PhysAddr next = window_.as<ChunkHeader>(chunks_).next;
    ktl::check_ok(pmm_.free_page(Frame4K::containing(chunks_)), "PageCache: freeing an entry chunk");
    chunks_ = next;
  }
  free_ = nullptr;
}

ktl::Result<void, IoError> PageCache::grow() {
  AllocOptions options;
  options.context = config_.context;
  auto frame = pmm_.alloc_page_unowned(options);
  if (frame.is_err()) return ktl::Err(IoError::NoMemory);
  PhysAddr at = frame.value().start();
  ktl::Span<ktl::u8> bytes = window_.bytes(at, 4096);
  KTL_UNSAFE_BUFFER_BEGIN  // the frame's 4096 bytes hold a header and kEntriesPerChunk entries
  auto* header = new (bytes.data()) ChunkHeader{};
  auto* first = reinterpret_cast<Entry*>(bytes.data() + sizeof(ChunkHeader));
  auto entries = ktl::Span<Entry>::from_raw(first, kEntriesPerChunk);
  KTL_UNSAFE_BUFFER_END
  header->cache = this;
  ktl::LockGuard guard(lru_lock_);
  header->next = chunks_;
  chunks_ = at;
  for (u32 i = kEntriesPerChunk; i-- > 0;) {
    Entry* e = new (&entries[i]) Entry{};
    e->next = free_;
    free_ = e;
  }
  entries_ += kEntriesPerChunk;
  entry_frames_.fetch_add(1, ktl::MemoryOrder::Relaxed);
  return ktl::ok();
}

// --- backings --------------------------------------------------------------------------------------

ktl::Result<BackingId, PageCacheError> PageCache::attach(PageBacking& backing) {
  ktl::LockGuard guard(lru_lock_);
  for (const Slot& s : slots_) {
    if (s.backing.load() == &backing) return ktl::Err(PageCacheError::AlreadyAttached);
  }
  for (u32 i = 0; i < kMaxBackings; ++i) {
    Slot& s = slots_[i];
    if (s.backing.load() != nullptr) continue;
    s.next_index.store(~u64{0});
    s.window.store(0);
    s.backing.store(&backing);
    return BackingId{i, s.generation.load()};
  }
  return ktl::Err(PageCacheError::TooManyBackings);
}

ktl::Result<PageBacking*, IoError> PageCache::backing_of(BackingId id) const {
  if (id.slot >= kMaxBackings) return ktl::Err(IoError::UnknownBacking);
  const Slot& s = slots_[id.slot];
  PageBacking* b = s.backing.load(ktl::MemoryOrder::Acquire);
  if (b == nullptr || s.generation.load(ktl::MemoryOrder::Acquire) != id.generation) {
    return ktl::Err(IoError::UnknownBacking);
  }
  return b;
}

ktl::Result<void, IoError> PageCache::detach(BackingId id) {
  (void)TRY(backing_of(id));
  TRY(sync(id));
  for (Bucket& b : buckets_) {
    for (;;) {
      Entry* victim = nullptr;
      bool busy = false;
      {
        ktl::LockGuard guard(b.lock);
        for (Entry* e = b.head; e != nullptr; e = e->next) {
          if (e->backing != id.slot) continue;
          if ((flags_of(e->desc) & kLocked) != 0 || refs_of(e->desc) > 1) {
            busy = true;
            break;
          }
          ktl::check((flags_of(e->desc) & kDirty) == 0,
                     "PageCache::detach raced with a write to the backing");
          unlink_locked(b, *e);
          {
            ktl::LockGuard lru(lru_lock_);
            if ((flags_of(e->desc) & kOnLru) != 0) lru_remove_locked(e->desc);
          }
          victim = e;
          break;
        }
      }
      if (victim != nullptr) {
        release_page(*victim);
        evicted_.fetch_add(1, ktl::MemoryOrder::Relaxed);
        continue;
      }
      if (!busy) break;
      wait_io();
    }
  }
  ktl::LockGuard guard(lru_lock_);
  Slot& s = slots_[id.slot];
  s.backing.store(nullptr, ktl::MemoryOrder::Release);
  s.generation.fetch_add(1);
  return ktl::ok();
}

// --- lookups ---------------------------------------------------------------------------------------

PageCache::Entry* PageCache::find_locked(Bucket& b, u32 slot, u64 index) {
  for (Entry* e = b.head; e != nullptr; e = e->next) {
    if (e->backing == slot && e->index == index) return e;
  }
  return nullptr;
}

PageCache::Entry& PageCache::entry_of(const FrameDesc* d) {
  ktl::uptr owner = __atomic_load_n(&d->owner, __ATOMIC_ACQUIRE);
  ktl::uptr chunk = owner & ~ktl::uptr{4095};
  ktl::uptr offset = owner - chunk;
  ktl::check(
      owner != 0 && offset >= sizeof(ChunkHeader) && (offset - sizeof(ChunkHeader)) % sizeof(Entry) == 0,
      "PageCache: a frame on the LRU list is not the cache's");
  KTL_UNSAFE_BUFFER_BEGIN  // owner is an entry's address (set_owner), inside a chunk whose header says whose
  const auto* header = reinterpret_cast<const ChunkHeader*>(chunk);
  ktl::check(header->cache == this, "PageCache: a frame on the LRU list is not the cache's");
  return *reinterpret_cast<Entry*>(owner);
  KTL_UNSAFE_BUFFER_END
}

void PageCache::wait_io() {
  if (config_.io_wait != nullptr) {
    config_.io_wait();
  } else {
    ktl::cpu_relax();
  }
}

ktl::Result<usize, IoError> PageCache::read(BackingId id, u64 offset, ktl::Span<u8> out) {
  PageBacking* backing = TRY(backing_of(id));
  u64 size = backing->size_bytes();
  if (offset >= size || out.empty()) return usize{0};
  u64 len = ktl::min<u64>(out.size(), size - offset);
  u64 first = offset / kPageSize;
  u64 last = (offset + len - 1) / kPageSize;
  u64 end_page = (size + kPageSize - 1) / kPageSize;
  // Sequential when this read starts where the last one ended (or in its last page).
  Slot& s = slots_[id.slot];
  u64 expected = s.next_index.exchange(last + 1, ktl::MemoryOrder::Relaxed);
  u32 window = 0;
  if (expected == first || expected == first + 1) {
    window = ktl::min<u32>(ktl::max<u32>(s.window.load(ktl::MemoryOrder::Relaxed) * 2, 4),
                           config_.readahead_pages);
  }
  s.window.store(window, ktl::MemoryOrder::Relaxed);
  usize done = 0;
  for (u64 p = first; p <= last; ++p) {
    u64 page_start = p * kPageSize;
    u64 from = ktl::max(offset, page_start);
    u64 to = ktl::min(offset + len, page_start + kPageSize);
    usize n = static_cast<usize>(to - from);
    u64 fill = ktl::min<u64>(ktl::max<u64>(last - p + 1, window), end_page - p);
    fill = ktl::min<u64>(fill, config_.readahead_pages);
    TRY(copy_page(id.slot, *backing, p, fill, Fill::FromBacking, static_cast<u32>(from - page_start),
                  out.subspan(done, n), {}, Access::Read));
    done += n;
  }
  return done;
}

ktl::Result<usize, IoError> PageCache::write(BackingId id, u64 offset, ktl::Span<const u8> in) {
  PageBacking* backing = TRY(backing_of(id));
  u64 size = backing->size_bytes();
  if (offset > size || in.size() > size - offset) return ktl::Err(IoError::OutOfRange);
  if (in.empty()) return usize{0};
  u64 first = offset / kPageSize;
  u64 last = (offset + in.size() - 1) / kPageSize;
  usize done = 0;
  for (u64 p = first; p <= last; ++p) {
    u64 page_start = p * kPageSize;
    u64 from = ktl::max(offset, page_start);
    u64 to = ktl::min(offset + in.size(), page_start + kPageSize);
    usize n = static_cast<usize>(to - from);
    // A write of the whole page (or of all of it up to the end of the backing) needs no read.
    bool whole = from == page_start && (n == kPageSize || to >= size);
    auto r = copy_page(id.slot, *backing, p, 1, whole ? Fill::Zeroed : Fill::FromBacking,
                       static_cast<u32>(from - page_start), {}, in.subspan(done, n), Access::Write);
    if (r.is_err()) {
      if (done == 0) return ktl::Err(r.error());
      return done;
    }
    done += n;
  }
  return done;
}

ktl::Result<void, IoError> PageCache::copy_page(u32 slot, PageBacking& backing, u64 index, u64 fill_pages,
                                                Fill miss, u32 in_page, ktl::Span<u8> out,
                                                ktl::Span<const u8> in, Access access) {
  bool counted = false;
  for (;;) {
    Bucket& b = buckets_[bucket_index(slot, index)];
    FrameDesc* waiting = nullptr;
    {
      ktl::LockGuard guard(b.lock);
      Entry* e = find_locked(b, slot, index);
      if (e != nullptr) {
        FrameDesc* d = e->desc;
        u16 f = flags_of(d);
        bool ready = (f & kUptodate) != 0 && (access == Access::Read || (f & kLocked) == 0);
        if (ready) {
          ktl::Bytes page = window_.bytes(e->frame, kPageSize);
          // The access that brought the page in does not count as a reference (second chance).
          u16 referenced = counted ? 0 : kReferenced;
          if (access == Access::Read) {
            copy(out, page.subspan(in_page, out.size()));
            if (referenced != 0) set_flags(d, referenced);
          } else {
            copy(page.subspan(in_page, in.size()), in);
            if ((set_flags(d, static_cast<u16>(kDirty | referenced)) & kDirty) == 0) {
              dirty_.fetch_add(1, ktl::MemoryOrder::Relaxed);
            }
          }
          if (!counted) hits_.fetch_add(1, ktl::MemoryOrder::Relaxed);
          return ktl::ok();
        }
        d->ref();  // keeps the entry while this thread waits for its I/O
        waiting = d;
      }
    }
    if (waiting != nullptr) {
      while ((flags_of(waiting) & kLocked) != 0) wait_io();
      (void)waiting->unref();
      continue;  // look it up again: up to date now, or gone after an error
    }
    if (!counted) {
      misses_.fetch_add(1, ktl::MemoryOrder::Relaxed);
      counted = true;
    }
    TRY(fill(slot, backing, index, fill_pages, miss));
  }
}

// --- filling ---------------------------------------------------------------------------------------

ktl::Result<PageCache::Entry*, IoError> PageCache::new_page(WhenFull full) {
  Entry* e = nullptr;
  for (u32 attempt = 0; attempt < 2 && e == nullptr; ++attempt) {
    bool may_grow = false;
    {
      ktl::LockGuard guard(lru_lock_);
      // At max_pages the cache is full even with entries to spare (a chunk holds more than the
      // limit may need); concurrent misses may pass the limit by the few in flight.
      bool room = pages_.load(ktl::MemoryOrder::Relaxed) < config_.max_pages;
      if (room && free_ != nullptr) {
        e = free_;
        free_ = e->next;
        e->next = nullptr;
      } else if (room) {
        may_grow = entries_ < config_.max_pages;
      }
    }
    // More entries while under max_pages (a frame of them, allocated without the lock); at the
    // limit, or without memory for them, the cache evicts some of its own pages first.
    if (e == nullptr && may_grow && grow().is_ok()) {
      --attempt;  // the new chunk's entries are there to take
      continue;
    }
    if (e == nullptr && full == WhenFull::Evict && attempt == 0) (void)evict(8, Evict::WriteBackDirty);
  }
  if (e == nullptr) return ktl::Err(IoError::NoMemory);
  AllocOptions options;
  options.context = config_.context;
  auto frame = pmm_.alloc_page_unowned(options);
  if (frame.is_err()) {
    ktl::LockGuard guard(lru_lock_);
    e->next = free_;
    free_ = e;
    return ktl::Err(IoError::NoMemory);
  }
  // FIXME(alloc-context): the table's leaf (once per 512 KiB) is allocated without our context.
  auto owned = table_.set_owner(one_page(frame.value().start()), FrameOwner::PageCache, ktl::address_of(e));
  if (owned.is_err()) {
    ktl::check_ok(pmm_.free_page(frame.value()), "PageCache: freeing a frame just allocated");
    ktl::LockGuard guard(lru_lock_);
    e->next = free_;
    free_ = e;
    return ktl::Err(IoError::NoMemory);
  }
  e->frame = frame.value().start();
  e->desc = table_.find(e->frame);
  __atomic_store_n(&e->desc->flags, kLocked, __ATOMIC_RELEASE);
  pages_.fetch_add(1, ktl::MemoryOrder::Relaxed);
  return e;
}

ktl::Result<void, IoError> PageCache::fill(u32 slot, PageBacking& backing, u64 first, u64 count, Fill how) {
  ktl::Array<Entry*, kMaxReadahead> batch{};
  auto frames = frame_array(__make_integer_seq<Seq, usize, kMaxReadahead>{});
  usize n = 0;
  count = ktl::min<u64>(count, kMaxReadahead);
  for (u64 i = 0; i < count; ++i) {
    auto page = new_page(i == 0 ? WhenFull::Evict : WhenFull::Fail);
    if (page.is_err()) {
      if (i == 0) return ktl::Err(page.error());
      break;  // read-ahead is best effort
    }
    Entry* e = page.value();
    e->index = first + i;
    e->backing = slot;
    e->bucket = bucket_index(slot, e->index);
    Bucket& b = buckets_[e->bucket];
    bool inserted = false;
    {
      ktl::LockGuard guard(b.lock);
      if (find_locked(b, slot, e->index) == nullptr) {
        e->prev = nullptr;
        e->next = b.head;
        if (b.head != nullptr) b.head->prev = e;
        b.head = e;
        inserted = true;
      }
    }
    if (!inserted) {  // someone else has it (in flight or cached): the run ends here
      release_page(*e);
      break;
    }
    batch[n] = e;
    frames[n] = Frame4K::containing(e->frame);
    ++n;
  }
  if (n == 0) return ktl::ok();  // the first page appeared meanwhile: the caller looks again
  ktl::Span<const Frame4K> run = frames.span().first(n);
  auto r = how == Fill::FromBacking ? backing.read_pages(first, run) : zero_pages(window_, run);
  if (r.is_err()) {
    io_errors_.fetch_add(1, ktl::MemoryOrder::Relaxed);
    // No page of the batch stays: out of the hash first (waiters wake and look again), then each
    // is freed once its waiters let go.
    for (usize i = 0; i < n; ++i) {
      Bucket& b = buckets_[batch[i]->bucket];
      ktl::LockGuard guard(b.lock);
      unlink_locked(b, *batch[i]);
      clear_flags(batch[i]->desc, kLocked);
    }
    for (usize i = 0; i < n; ++i) {
      while (refs_of(batch[i]->desc) > 1) wait_io();
      release_page(*batch[i]);
    }
    // A failed read-ahead must not fail the page that was asked for: that one alone again.
    if (n > 1) return fill(slot, backing, first, 1, how);
    return ktl::Err(r.error());
  }
  if (how == Fill::FromBacking) readahead_.fetch_add(n - 1, ktl::MemoryOrder::Relaxed);
  for (usize i = 0; i < n; ++i) {
    Bucket& b = buckets_[batch[i]->bucket];
    ktl::LockGuard guard(b.lock);
    FrameDesc* d = batch[i]->desc;
    {
      ktl::LockGuard lru(lru_lock_);
      lru_push_locked(d);
    }
    set_flags(d, kUptodate);
    clear_flags(d, kLocked);
  }
  return ktl::ok();
}

void PageCache::release_page(Entry& e) {
  ktl::LockGuard guard(lru_lock_);
  release_page_locked(e);
}

void PageCache::release_page_locked(Entry& e) {
  FreeRun run;
  release_entry_locked(e, run);
  free_run(run);
}

void PageCache::release_entry_locked(Entry& e, FreeRun& run) {
  table_.clear_owner(one_page(e.frame));
  if (run.count != 0 && e.frame != run.start + run.count * kPageSize) free_run(run);
  if (run.count == 0) run.start = e.frame;
  ++run.count;
  e.desc = nullptr;
  e.frame = PhysAddr::zero();
  e.index = 0;
  e.backing = 0;
  e.bucket = 0;
  e.next = free_;
  free_ = &e;
}

void PageCache::free_run(FreeRun& run) {
  if (run.count == 0) return;
  if (pmm_.free_frames(Frame4K::containing(run.start), run.count).is_err()) {
    // The run crosses from one arena into the next: one frame at a time.
    for (u64 i = 0; i < run.count; ++i) {
      ktl::check_ok(pmm_.free_page(Frame4K::containing(run.start + i * kPageSize)),
                    "PageCache: freeing a cached page's frame");
    }
  }
  pages_.fetch_sub(run.count, ktl::MemoryOrder::Relaxed);
  run.count = 0;
}

void PageCache::unlink_locked(Bucket& b, Entry& e) {
  if (e.prev != nullptr) {
    ktl::check(e.prev->next == &e, "PageCache: a bucket's chain is broken");
    e.prev->next = e.next;
  } else {
    ktl::check(b.head == &e, "PageCache: unlinking an entry that is not in its bucket");
    b.head = e.next;
  }
  if (e.next != nullptr) e.next->prev = e.prev;
  e.next = nullptr;
  e.prev = nullptr;
}

void PageCache::lru_push_locked(FrameDesc* d) {
  d->prev = nullptr;
  d->next = lru_head_;
  if (lru_head_ != nullptr) lru_head_->prev = d;
  lru_head_ = d;
  if (lru_tail_ == nullptr) lru_tail_ = d;
  set_flags(d, kOnLru);
  lru_count_.store(lru_count_.load(ktl::MemoryOrder::Relaxed) + 1, ktl::MemoryOrder::Relaxed);
}

void PageCache::lru_unlink_locked(FrameDesc* d) {
  if (d->prev != nullptr) {
    d->prev->next = d->next;
  } else {
    lru_head_ = d->next;
  }
  if (d->next != nullptr) {
    d->next->prev = d->prev;
  } else {
    lru_tail_ = d->prev;
  }
  d->next = nullptr;
  d->prev = nullptr;
  lru_count_.store(lru_count_.load(ktl::MemoryOrder::Relaxed) - 1, ktl::MemoryOrder::Relaxed);
}

void PageCache::lru_remove_locked(FrameDesc* d) {
  lru_unlink_locked(d);
  clear_flags(d, kOnLru);
}

void PageCache::lru_rotate_locked(FrameDesc* d) {
  if (d == lru_head_) return;
  lru_unlink_locked(d);
  d->prev = nullptr;
  d->next = lru_head_;
  if (lru_head_ != nullptr) lru_head_->prev = d;
  lru_head_ = d;
  if (lru_tail_ == nullptr) lru_tail_ = d;
  lru_count_.store(lru_count_.load(ktl::MemoryOrder::Relaxed) + 1, ktl::MemoryOrder::Relaxed);
}

// --- write back ------------------------------------------------------------------------------------

void PageCache::begin_write_back_locked(Bucket& b, Entry& e) {
  b.lock.assert_held();
  set_flags(e.desc, kLocked);
  if ((clear_flags(e.desc, kDirty) & kDirty) != 0) dirty_.fetch_sub(1, ktl::MemoryOrder::Relaxed);
  e.desc->ref();
}

ktl::Result<void, IoError> PageCache::write_cluster(Entry& e, PageBacking& backing) {
  // The dirty neighbours before `e` (nearest first), then those after it, each begun under its
  // bucket lock, one bucket at a time.
  ktl::Array<Entry*, kMaxReadahead> before{};
  ktl::Array<Entry*, kMaxReadahead> batch{};
  auto take = [&](u64 index) -> Entry* {
    Bucket& b = buckets_[bucket_index(e.backing, index)];
    ktl::LockGuard guard(b.lock);
    Entry* x = find_locked(b, e.backing, index);
    if (x == nullptr) return nullptr;
    u16 f = flags_of(x->desc);
    if ((f & kLocked) != 0 || (f & kDirty) == 0) return nullptr;
    begin_write_back_locked(b, *x);
    return x;
  };
  usize n_before = 0;
  while (n_before + 1 < kMaxReadahead / 2 && e.index > n_before) {
    Entry* x = take(e.index - n_before - 1);
    if (x == nullptr) break;
    before[n_before++] = x;
  }
  usize n = 0;
  for (usize i = n_before; i > 0; --i) batch[n++] = before[i - 1];
  batch[n++] = &e;
  for (u64 next = e.index + 1; n < kMaxReadahead; ++next) {
    Entry* x = take(next);
    if (x == nullptr) break;
    batch[n++] = x;
  }
  auto frames = frame_array(__make_integer_seq<Seq, usize, kMaxReadahead>{});
  for (usize i = 0; i < n; ++i) frames[i] = Frame4K::containing(batch[i]->frame);
  auto r = backing.write_pages(batch[0]->index, frames.span().first(n));
  if (r.is_err()) io_errors_.fetch_add(1, ktl::MemoryOrder::Relaxed);
  for (usize i = 0; i < n; ++i) {
    if (batch[i] == &e) continue;
    Bucket& b = buckets_[batch[i]->bucket];
    ktl::LockGuard guard(b.lock);
    finish_write_back_locked(b, *batch[i], r);
    (void)batch[i]->desc->unref();
  }
  return r;
}

void PageCache::finish_write_back_locked(Bucket& b, Entry& e, const ktl::Result<void, IoError>& written) {
  b.lock.assert_held();
  if (written.is_err()) {
    if ((set_flags(e.desc, kDirty) & kDirty) == 0) dirty_.fetch_add(1, ktl::MemoryOrder::Relaxed);
  } else {
    written_back_.fetch_add(1, ktl::MemoryOrder::Relaxed);
  }
  clear_flags(e.desc, kLocked);
}

ktl::Result<void, IoError> PageCache::sync(BackingId id) {
  PageBacking* backing = TRY(backing_of(id));
  ktl::Optional<IoError> first_error;
  static constexpr usize kBatch = 16;
  for (Bucket& b : buckets_) {
    for (;;) {
      ktl::Array<Entry*, kBatch> batch{};
      usize n = 0;
      bool busy = false;
      {
        ktl::LockGuard guard(b.lock);
        for (Entry* e = b.head; e != nullptr && n < kBatch; e = e->next) {
          if (e->backing != id.slot) continue;
          u16 f = flags_of(e->desc);
          if ((f & kLocked) != 0) {
            if ((f & kUptodate) != 0) busy = true;  // written back by reclaim now: wait for its outcome
            continue;
          }
          if ((f & kDirty) == 0) continue;
          begin_write_back_locked(b, *e);
          batch[n++] = e;
        }
      }
      if (n == 0 && !busy) break;
      if (n == 0) {
        wait_io();
        continue;
      }
      bool failed = false;
      for (usize i = 0; i < n; ++i) {
        auto r = write_cluster(*batch[i], *backing);
        if (r.is_err()) {
          failed = true;
          if (!first_error.has_value()) first_error = r.error();
        }
        ktl::LockGuard guard(b.lock);
        finish_write_back_locked(b, *batch[i], r);
        (void)batch[i]->desc->unref();
      }
      if (failed || (n < kBatch && !busy)) break;
    }
  }
  if (first_error.has_value()) return ktl::Err(*first_error);
  auto flushed = backing->flush();
  if (flushed.is_err()) io_errors_.fetch_add(1, ktl::MemoryOrder::Relaxed);
  return flushed;
}

ktl::Result<void, IoError> PageCache::sync_all() {
  ktl::Optional<IoError> first_error;
  for (u32 i = 0; i < kMaxBackings; ++i) {
    if (slots_[i].backing.load() == nullptr) continue;
    auto r = sync(BackingId{i, slots_[i].generation.load()});
    if (r.is_err() && r.error() != IoError::UnknownBacking && !first_error.has_value())
      first_error = r.error();
  }
  if (first_error.has_value()) return ktl::Err(*first_error);
  return ktl::ok();
}

// --- eviction --------------------------------------------------------------------------------------

u64 PageCache::reclaimable() { return lru_count_.load(ktl::MemoryOrder::Relaxed); }

ReclaimBatch PageCache::reclaim(u64 frames) { return evict(frames, Evict::WriteBackDirty); }

u64 PageCache::drop_clean() { return evict(~u64{0}, Evict::CleanOnly).freed; }

ReclaimBatch PageCache::evict(u64 want, Evict how) {
  ReclaimBatch out;
  FreeRun run;  // freed whenever the LRU lock is dropped
  // Every page looked at at most twice (once more after its second chance), plus the evictions.
  u64 budget = lru_count_.load(ktl::MemoryOrder::Relaxed) * (how == Evict::CleanOnly ? 1 : 2);
  while (out.freed < want && out.scanned < budget) {
    Entry* to_write = nullptr;
    if (how == Evict::CleanOnly) {
      lru_lock_.lock();
    } else if (!lru_lock_.try_lock()) {
      break;
    }
    while (out.freed < want && out.scanned < budget) {
      FrameDesc* d = lru_tail_;
      if (d == nullptr) {
        budget = out.scanned;
        break;
      }
      ++out.scanned;
      Entry& e = entry_of(d);
      Bucket& b = buckets_[e.bucket];
      // The next victims: the entry after the next one, the bucket of the next one (whose entry was
      // prefetched a round ago), so that the loads below do not wait for memory.
      if (FrameDesc* next = d->prev; next != nullptr) {
        // Only hints: the owners are read without entry_of's check (it runs when they are the victim).
        KTL_UNSAFE_BUFFER_BEGIN  // an LRU page's owner is its entry (set_owner)
        const auto* ne = reinterpret_cast<const Entry*>(__atomic_load_n(&next->owner, __ATOMIC_RELAXED));
        __builtin_prefetch(&buckets_[ne->bucket]);
        if (next->prev != nullptr)
          __builtin_prefetch(
              reinterpret_cast<const void*>(__atomic_load_n(&next->prev->owner, __ATOMIC_RELAXED)));
        KTL_UNSAFE_BUFFER_END
      }
      // The bucket lock ranks below the LRU lock: try it, pass the page over when it is busy.
      if (!b.lock.try_lock()) {
        lru_rotate_locked(d);
        continue;
      }
      u16 f = flags_of(d);
      bool keep = (f & kLocked) != 0 || refs_of(d) > 1 || (how == Evict::CleanOnly && (f & kDirty) != 0);
      if (!keep && how == Evict::WriteBackDirty && (f & kReferenced) != 0) {
        clear_flags(d, kReferenced);  // second chance
        keep = true;
      }
      if (keep) {
        b.lock.unlock();
        lru_rotate_locked(d);
        continue;
      }
      if ((f & kDirty) != 0) {
        begin_write_back_locked(b, e);
        b.lock.unlock();
        lru_rotate_locked(d);
        to_write = &e;
        break;
      }
      unlink_locked(b, e);
      b.lock.unlock();
      lru_unlink_locked(d);
      release_entry_locked(e, run);
      ++out.freed;
    }
    lru_lock_.unlock();
    free_run(run);
    if (to_write == nullptr) break;
    // A dirty page: written back with no lock held, then evicted if nothing touched it meanwhile.
    Entry& e = *to_write;
    PageBacking* backing = slots_[e.backing].backing.load(ktl::MemoryOrder::Acquire);
    ktl::check(backing != nullptr, "PageCache: a cached page of a detached backing");
    auto r = write_cluster(e, *backing);
    Bucket& b = buckets_[e.bucket];
    ktl::LockGuard guard(b.lock);
    finish_write_back_locked(b, e, r);
    u16 f = flags_of(e.desc);
    if (r.is_ok() && (f & (kDirty | kReferenced | kLocked)) == 0 && refs_of(e.desc) == 2) {
      unlink_locked(b, e);
      ktl::LockGuard lru(lru_lock_);
      lru_unlink_locked(e.desc);
      release_entry_locked(e, run);
      ++out.freed;
    } else {
      (void)e.desc->unref();
    }
  }
  free_run(run);
  evicted_.fetch_add(out.freed, ktl::MemoryOrder::Relaxed);
  return out;
}

PageCacheStats PageCache::stats() const {
  PageCacheStats s;
  s.pages = pages_.load(ktl::MemoryOrder::Relaxed);
  s.dirty = dirty_.load(ktl::MemoryOrder::Relaxed);
  s.hits = hits_.load(ktl::MemoryOrder::Relaxed);
  s.misses = misses_.load(ktl::MemoryOrder::Relaxed);
  s.readahead_pages = readahead_.load(ktl::MemoryOrder::Relaxed);
  s.evicted = evicted_.load(ktl::MemoryOrder::Relaxed);
  s.written_back = written_back_.load(ktl::MemoryOrder::Relaxed);
  s.io_errors = io_errors_.load(ktl::MemoryOrder::Relaxed);
  s.entry_frames = entry_frames_.load(ktl::MemoryOrder::Relaxed);
  return s;
}

}  // namespace mm
