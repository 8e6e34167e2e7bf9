// mm.slab: SlabCache below its inline fast paths: setup, free lists, slab layer, depot, reclaim.
module;

#include <ktl/macros.h>
#include <ktl/new.h>

module mm.slab;

import ktl;
import mm.addr;
import mm.arch;
import mm.frame_table;
import mm.pmm;
import mm.slab.cpu;

namespace mm {

ktl::Array<SlabCache*, slab_cpu::kMaxSlots> g_slot_owner GUARDED_BY(slab_cpu::g_registry_lock){};

namespace {

constexpr usize kDescSize = sizeof(SlabDesc);
constexpr u32 kMaxSlabFrames = 1024;

void list_push(SlabDesc*& head, SlabDesc* s) {
  s->prev = nullptr;
  s->next = head;
  if (head != nullptr) head->prev = s;
  head = s;
}
void list_unlink(SlabDesc*& head, SlabDesc* s) {
  if (s->prev != nullptr) {
    s->prev->next = s->next;
  } else {
    head = s->next;
  }
  if (s->next != nullptr) s->next->prev = s->prev;
  s->prev = s->next = nullptr;
}

void flush_block_on_exit(CpuBlock& block) NO_THREAD_SAFETY_ANALYSIS {
  // Called by mm.slab.cpu with g_registry_lock held.
  for (u32 i = 0; i < slab_cpu::kMaxSlots; ++i) {
    CpuSlot& slot = block.slots[i];
    if (slot.loaded == nullptr && slot.previous == nullptr) continue;
    SlabCache* owner = g_slot_owner[i];
    if (owner != nullptr) owner->return_magazines(slot);
    slot = CpuSlot{nullptr, nullptr};
  }
}

}  // namespace

// --- setup -------------------------------------------------------------------------------------
ktl::Result<void, SlabError> SlabCache::setup(SlabAllocator& owner, ktl::StringView name, usize size,
                                              usize align, Constructor ctor, CacheFlags flags, u64 secret,
                                              bool internal) {
  if (size == 0 || size > kMaxObjectSize) return ktl::Err(SlabError::InvalidArgument);
  if (align == 0) align = 8;
  if (!ktl::is_power_of_two(align) || align > kPageSize) return ktl::Err(SlabError::InvalidArgument);
  owner_ = &owner;
  name_length_ = ktl::min(name.size(), kNameLength - 1);
  for (usize i = 0; i < name_length_; ++i) name_[i] = name[i];
  name_[name_length_] = '\0';
  size_ = size;
  align_ = ktl::max<usize>(align, 8);
  ctor_ = ctor;
  internal_ = internal;
  lock_.set_rank(internal ? ktl::LockRank::SlabInternalCache : ktl::LockRank::SlabCache);
  secret_ = secret;
  hardened_ = has(flags, CacheFlags::Hardened) || (!internal && owner.options_.hardening == Hardening::On);

  if (hardened_) {
    // [object | right redzone (>= 16) | Meta (8) | link (8) | left redzone of the next object (16)]
    stride_ = ktl::align_up<usize>(size + kRedzone + sizeof(Meta) + 8 + kRedzone, align_);
    meta_offset_ = stride_ - kRedzone - 8 - sizeof(Meta);
    link_offset_ = meta_offset_ + sizeof(Meta);
    first_offset_ = ktl::align_up<usize>(kRedzone, align_);
  } else if (ctor != nullptr) {
    // The constructed state must survive while the object is free: the link goes behind it.
    link_offset_ = ktl::align_up<usize>(size, 8);
    stride_ = ktl::align_up<usize>(link_offset_ + 8, align_);
    first_offset_ = 0;
  } else {
    // The link in the middle of the object (SLUB): a small overflow of the previous object or an
    // early-field use after free does not hit it.
    stride_ = ktl::align_up<usize>(ktl::max<usize>(size, 8), align_);
    link_offset_ = size >= 16 ? ktl::align_down<usize>(size / 2, 8) : 0;
    first_offset_ = 0;
  }
  stride_recip_ = ((u64{1} << 32) + stride_ - 1) / stride_;

  // Slab size: the smallest 2^k frames that hold at least 4 objects with at most 1/16 waste (1/8
  // for strides above a page, whose slabs would otherwise grow large).
  bool chosen = false;
  for (u32 f = 1; f <= kMaxSlabFrames && !chosen; f *= 2) {
    usize bytes = usize{f} * kPageSize;
    if (bytes <= first_offset_) continue;
    usize avail = bytes - first_offset_;
    usize off_slab = avail / stride_;
    usize on_slab = avail > kDescSize ? (avail - kDescSize) / stride_ : 0;
    bool on = on_slab == off_slab || stride_ < 512 || internal;
    usize n = on ? on_slab : off_slab;
    if (n == 0) continue;
    usize waste = bytes - n * stride_;
    usize tolerance = stride_ > kPageSize ? 8 : 16;
    if ((n >= 4 && waste * tolerance <= bytes) || f == kMaxSlabFrames ||
        (n >= 1 && bytes >= 16 * stride_ && waste * 8 <= bytes)) {
      slab_frames_ = f;
      objects_per_slab_ = static_cast<u32>(n);
      desc_on_slab_ = on;
      chosen = true;
    }
  }
  if (!chosen) return ktl::Err(SlabError::InvalidArgument);

  if (!internal && !has(flags, CacheFlags::NoCpuCache)) {
    u32 kind = stride_ <= 64 ? 2 : stride_ <= 256 ? 1 : 0;
    magazine_capacity_ = kMagazineCapacity[kind];
    magazine_cache_ = &owner.magazine_cache(kind);
    u64 per_magazine = u64{magazine_capacity_} * stride_;
    depot_limit_ = static_cast<u32>(ktl::min<u64>(ktl::max<u64>((u64{128} << 10) / per_magazine, 2), 64));
    ktl::LockGuard guard(slab_cpu::g_registry_lock);
    for (u32 i = 0; i < slab_cpu::kMaxSlots; ++i) {
      if (g_slot_owner[i] == nullptr) {
        g_slot_owner[i] = this;
        cpu_slot_ = i;
        break;
      }
    }
    if (cpu_slot_ == slab_cpu::kNoSlot) return ktl::Err(SlabError::TooManyCaches);
    if (slab_cpu::g_flush_on_exit == nullptr) slab_cpu::g_flush_on_exit = &flush_block_on_exit;
  }
  if (!desc_on_slab_) desc_cache_ = &owner.desc_cache_;
  return ktl::ok();
}

// --- free-list links ---------------------------------------------------------------------------------------
u64 SlabCache::encode(void* next, void* slot_address) const {
  return addr(next) ^ secret_ ^ __builtin_bswap64(addr(slot_address));
}

void SlabCache::store_link(void* object, void* next) const {
  void* slot = byte_at(object, link_offset_);
  raw_store(slot, encode(next, slot));
}

// The object after `object` on its slab's free list (null at the end). Panics when the stored
// link does not decode to an object of the same slab.
void* SlabCache::decode_link(const SlabDesc& slab, void* object) const {
  void* slot = byte_at(object, link_offset_);
  u64 next = raw_load(slot) ^ secret_ ^ __builtin_bswap64(addr(slot));
  if (next == 0) return nullptr;
  KTL_UNSAFE_BUFFER_BEGIN  // forming the pointer only; object_index checks it is an object of this slab
  auto* p = reinterpret_cast<void*>(static_cast<ktl::uptr>(next));
  KTL_UNSAFE_BUFFER_END
  if (!object_index(slab, p).has_value())
    report("corrupted free list (a free object's link was overwritten)", object);
  return p;
}

void SlabCache::check_desc(const SlabDesc& slab) const {
  if (slab.canary != (secret_ ^ addr(&slab)) || slab.cache != this || slab.cpu_slot != cpu_slot_ ||
      slab.stride != stride_ || slab.objects != objects_per_slab_ || slab.first_offset != first_offset_) {
    report("corrupted slab descriptor (overwritten canary)", slab.base);
  }
}

ktl::Optional<u32> SlabCache::object_index(const SlabDesc& slab, const void* object) const {
  ktl::uptr p = addr(object);
  ktl::uptr first = addr(slab.base) + first_offset_;
  if (p < first) return ktl::nullopt;
  u64 offset = p - first;
  u64 index = (offset * stride_recip_) >> 32;
  if (index >= objects_per_slab_ || index * stride_ != offset) return ktl::nullopt;
  return static_cast<u32>(index);
}

// --- slab layer --------------------------------------------------------------------------------------
void SlabCache::init_slab_objects(SlabDesc& slab) {
  usize end = first_offset_ + usize{objects_per_slab_} * stride_;
  if (hardened_) {
    raw_fill(slab.base, end, kRedzoneByte);
    for (u32 i = 0; i < objects_per_slab_; ++i) {
      void* object = byte_at(slab.base, first_offset_ + usize{i} * stride_);
      if (ctor_ == nullptr) raw_fill(object, size_, kPoisonByte);
      raw_store(byte_at(object, meta_offset_), u64{kStateFree} << 32);
    }
  }
  if (ctor_ != nullptr) {
    for (u32 i = 0; i < objects_per_slab_; ++i) ctor_(byte_at(slab.base, first_offset_ + usize{i} * stride_));
  }
  // The free list in address order, so a fresh slab hands out its objects low to high.
  void* next = nullptr;
  for (u32 i = objects_per_slab_; i-- > 0;) {
    void* object = byte_at(slab.base, first_offset_ + usize{i} * stride_);
    store_link(object, next);
    next = object;
  }
  slab.freelist = encode(next, &slab.freelist);
  asan_poison(slab.base, end);
}

SlabDesc* SlabCache::new_slab_locked(AllocContext context) {
  lock_.assert_held();
  auto frames = owner_->alloc_slab_frames(slab_frames_, context);
  if (frames.is_err()) return nullptr;
  AllocatedFrames owned = frames.release_value();
  usize bytes = usize{slab_frames_} * kPageSize;
  ktl::u8* base = owner_->window().bytes(owned.start(), bytes).data();
  void* place = nullptr;
  if (desc_on_slab_) {
    place = byte_at(base, ktl::align_down<usize>(bytes - kDescSize, alignof(SlabDesc)));
  } else {
    place = desc_cache_->alloc();
    if (place == nullptr) return nullptr;  // `owned` frees the frames
  }
  auto* slab = new (place) SlabDesc{};
  slab->canary = secret_ ^ addr(slab);
  slab->cache = this;
  slab->base = base;
  slab->first_offset = static_cast<u32>(first_offset_);
  slab->stride = static_cast<u32>(stride_);
  slab->stride_recip = static_cast<u32>(stride_recip_);
  slab->objects = objects_per_slab_;
  slab->cpu_slot = cpu_slot_;
  slab->list = kNone;
  init_slab_objects(*slab);
  if (owner_->frames_->set_owner(owned.range(), FrameOwner::Slab, addr(slab)).is_err()) {
    asan_unpoison(base, bytes);
    slab->~SlabDesc();
    if (!desc_on_slab_) desc_cache_->free_known(slab);
    return nullptr;
  }
  slab->frames = ktl::move(owned);
  owner_->slab_frames_.fetch_add(slab_frames_, ktl::MemoryOrder::Relaxed);
  list_move_locked(slab, kEmpty);
  return slab;
}

AllocatedFrames SlabCache::release_slab_locked(SlabDesc* slab) {
  lock_.assert_held();
  check_desc(*slab);
  ktl::check(slab->inuse == 0, "slab: releasing a slab with live objects");
  list_unlink(lists_[slab->list].head, slab);
  --lists_[slab->list].count;
  AllocatedFrames frames = ktl::move(slab->frames);
  owner_->frames_->clear_owner(frames.range());
  asan_unpoison(slab->base, usize{slab_frames_} * kPageSize);
  owner_->slab_frames_.fetch_sub(slab_frames_, ktl::MemoryOrder::Relaxed);
  slab->canary = 0;
  slab->~SlabDesc();
  if (!desc_on_slab_) desc_cache_->free_known(slab);
  return frames;
}

void SlabCache::list_move_locked(SlabDesc* slab, ListId to) {
  if (slab->list == to) return;
  if (slab->list != kNone) {
    list_unlink(lists_[slab->list].head, slab);
    --lists_[slab->list].count;
  }
  slab->list = to;
  list_push(lists_[to].head, slab);
  ++lists_[to].count;
}

void* SlabCache::alloc_one_locked(AllocContext context, bool may_grow) {
  lock_.assert_held();
  SlabDesc* slab = lists_[kPartial].head;
  if (slab == nullptr) slab = lists_[kEmpty].head;
  if (slab == nullptr && may_grow) slab = new_slab_locked(context);
  if (slab == nullptr) return nullptr;
  check_desc(*slab);
  u64 head = slab->freelist ^ secret_ ^ __builtin_bswap64(addr(&slab->freelist));
  KTL_UNSAFE_BUFFER_BEGIN  // forming the pointer only; object_index checks it is an object of this slab
  auto* object = reinterpret_cast<void*>(static_cast<ktl::uptr>(head));
  KTL_UNSAFE_BUFFER_END
  if (object == nullptr || !object_index(*slab, object).has_value()) {
    report("corrupted free list (bad head in the slab descriptor)", slab->base);
  }
  slab->freelist = encode(decode_link(*slab, object), &slab->freelist);
  ++slab->inuse;
  ++inuse_;
  list_move_locked(slab, slab->inuse == objects_per_slab_ ? kFull : kPartial);
  return object;
}

void SlabCache::free_one_locked(void* object, SlabDesc* slab) {
  lock_.assert_held();
  check_desc(*slab);
  u64 head = slab->freelist ^ secret_ ^ __builtin_bswap64(addr(&slab->freelist));
  KTL_UNSAFE_BUFFER_BEGIN  // the decoded head was checked when it was stored (free_one_locked's caller)
  store_link(object, reinterpret_cast<void*>(static_cast<ktl::uptr>(head)));
  KTL_UNSAFE_BUFFER_END
  slab->freelist = encode(object, &slab->freelist);
  ktl::check(slab->inuse > 0, "slab: free to a slab with no objects in use");
  --slab->inuse;
  --inuse_;
  list_move_locked(slab, slab->inuse == 0 ? kEmpty : kPartial);
}

void SlabCache::fill_locked(Magazine& m, AllocContext context) {
  lock_.assert_held();
  // From the slabs there are, growing by at most one slab: a refill never builds slabs just to
  // park their objects in a magazine.
  while (!m.full()) {
    void* object = alloc_one_locked(context, m.empty());
    if (object == nullptr) break;
    m.push(object);
  }
}

void SlabCache::flush_locked(Magazine& m) {
  lock_.assert_held();
  while (!m.empty()) {
    void* object = m.pop();
    free_one_locked(object, owner_->slab_of(object));
  }
}

// --- depot -------------------------------------------------------------------------------------------
Magazine* SlabCache::take_empty_magazine_locked() {
  Magazine* m = depot_empty_;
  if (m != nullptr) {
    depot_empty_ = m->next;
    --depot_empty_count_;
    return m;
  }
  m = static_cast<Magazine*>(magazine_cache_->alloc());
  if (m == nullptr) return nullptr;
  m->rounds = 0;
  m->capacity = magazine_capacity_;
  m->next = nullptr;
  return m;
}

void SlabCache::put_empty_magazine_locked(Magazine* m) {
  if (depot_empty_count_ >= depot_limit_) {
    magazine_cache_->free_known(m);
    return;
  }
  m->next = depot_empty_;
  depot_empty_ = m;
  ++depot_empty_count_;
}

void SlabCache::put_full_magazine_locked(Magazine* m) {
  if (depot_full_count_ >= depot_limit_) {
    flush_locked(*m);
    put_empty_magazine_locked(m);
    return;
  }
  m->next = depot_full_;
  depot_full_ = m;
  ++depot_full_count_;
}

void SlabCache::purge_depot_locked() {
  while (Magazine* m = depot_full_) {
    depot_full_ = m->next;
    flush_locked(*m);
    magazine_cache_->free_known(m);
  }
  while (Magazine* m = depot_empty_) {
    depot_empty_ = m->next;
    magazine_cache_->free_known(m);
  }
  depot_full_count_ = depot_empty_count_ = 0;
}

void SlabCache::return_magazines(CpuSlot& slot) {
  ktl::LockGuard guard(lock_);
  ktl::Array<Magazine*, 2> both{{slot.loaded, slot.previous}};
  for (Magazine* m : both) {
    if (m == nullptr) continue;
    if (m->full()) {
      put_full_magazine_locked(m);
    } else {
      flush_locked(*m);
      put_empty_magazine_locked(m);
    }
  }
  slot = CpuSlot{nullptr, nullptr};
}

void* SlabCache::alloc_general(usize requested, AllocContext context) {
  return alloc_sized(requested, context);
}
void SlabCache::free_general(void* object) { free_known(object); }

// --- the paths below the per-CPU layer ---------------------------------------------------------------
void* SlabCache::alloc_slow(CpuBlock& block, CpuSlot& slot, AllocContext context) {
  if (!slab_cpu::ensure_registered(block)) return alloc_direct(context);
  if (slot.previous != nullptr && !slot.previous->empty()) {
    ktl::swap(slot.loaded, slot.previous);
    return slot.loaded->pop();
  }
  ktl::LockGuard guard(lock_);
  if (Magazine* full = depot_full_) {
    depot_full_ = full->next;
    --depot_full_count_;
    if (slot.previous != nullptr) put_empty_magazine_locked(slot.previous);
    slot.previous = slot.loaded;
    slot.loaded = full;
    return full->pop();
  }
  Magazine* m = slot.loaded;
  if (m == nullptr) {
    m = take_empty_magazine_locked();
    if (m == nullptr) return alloc_one_locked(context);
    slot.loaded = m;
  }
  fill_locked(*m, context);
  return m->empty() ? nullptr : m->pop();
}

void SlabCache::free_slow(CpuBlock& block, CpuSlot& slot, void* object) {
  if ((slot.loaded != nullptr && slot.loaded->top() == object) ||
      (slot.previous != nullptr && slot.previous->top() == object)) {
    report_double_free(object);
  }
  if (!slab_cpu::ensure_registered(block)) {
    free_direct(object);
    return;
  }
  if (slot.previous != nullptr && !slot.previous->full()) {
    ktl::swap(slot.loaded, slot.previous);
    slot.loaded->push(object);
    return;
  }
  ktl::LockGuard guard(lock_);
  // Both magazines are full (or missing): the previous one goes to the depot.
  if (slot.previous != nullptr) put_full_magazine_locked(slot.previous);
  slot.previous = slot.loaded;
  Magazine* empty = take_empty_magazine_locked();
  if (empty == nullptr) {
    slot.loaded = nullptr;
    free_one_locked(object, owner_->slab_of(object));
    return;
  }
  slot.loaded = empty;
  empty->push(object);
}

void* SlabCache::alloc_direct(AllocContext context) {
  ktl::LockGuard guard(lock_);
  return alloc_one_locked(context);
}

void SlabCache::free_direct(void* object) {
  ktl::LockGuard guard(lock_);
  free_one_locked(object, owner_->slab_of(object));
}

// --- reclaim, stats, teardown ------------------------------------------------------------------------
u64 SlabCache::reclaim(u32 keep, u64 max_frames) {
  u64 freed = 0;
  ktl::LockGuard guard(lock_);
  purge_depot_locked();
  while (lists_[kEmpty].count > keep && freed < max_frames) {
    AllocatedFrames frames = release_slab_locked(lists_[kEmpty].head);
    freed += frames.count();
  }
  return freed;
}

void SlabCache::flush_local_cpu() {
  if (cpu_slot_ == slab_cpu::kNoSlot) return;
  slab_cpu::CpuPin pin;
  return_magazines(pin.block().slots[cpu_slot_]);
}

SlabInfo SlabCache::info() const {
  SlabInfo i;
  i.name = name();
  i.object_size = size_;
  i.stride = stride_;
  i.align = align_;
  i.objects_per_slab = objects_per_slab_;
  i.frames_per_slab = slab_frames_;
  ktl::LockGuard guard(lock_);
  i.partial_slabs = lists_[kPartial].count;
  i.full_slabs = lists_[kFull].count;
  i.empty_slabs = lists_[kEmpty].count;
  i.slabs = i.partial_slabs + i.full_slabs + i.empty_slabs;
  i.objects = i.slabs * objects_per_slab_;
  i.active = inuse_;
  for (Magazine* m = depot_full_; m != nullptr; m = m->next) i.cached += m->rounds;
  i.frames = i.slabs * slab_frames_;
  i.waste_bytes = i.frames * kPageSize - i.objects * size_;
  return i;
}

void SlabCache::teardown() {
  ktl::LockGuard guard(lock_);
  purge_depot_locked();
  ktl::check(lists_[kPartial].head == nullptr && lists_[kFull].head == nullptr,
             "slab: tearing down a cache with live objects");
  while (lists_[kEmpty].head != nullptr) {
    AllocatedFrames frames = release_slab_locked(lists_[kEmpty].head);
  }
}

}  // namespace mm
