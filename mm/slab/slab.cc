// mm.slab: implementation (see slab.cppm for the design and the lock order).
module;

#include <ktl/macros.h>
#include <ktl/new.h>

// Object memory that may be poisoned in ASan's shadow (free objects, redzones) is read and
// written only by the functions marked SLAB_RAW. no_builtin keeps the compiler from turning their
// loops into memset/memcmp calls, which ASan intercepts and checks. They are not instrumented for
// coverage either: in a fuzzer build every byte of their loops would call libFuzzer's comparison
// hooks, for no feedback (each iteration is the same edge).
#define SLAB_RAW __attribute__((no_sanitize("address", "coverage"), no_builtin))

module mm.slab;

import ktl;
import mm.addr;
import mm.arch;
import mm.frame_table;
import mm.pmm;
import mm.slab.cpu;

namespace mm {

namespace {

using slab_cpu::CpuBlock;
using slab_cpu::CpuSlot;
using slab_cpu::Magazine;

constexpr usize kDescSize = sizeof(SlabDesc);
constexpr u32 kMaxSlabFrames = 1024;
// Magazine kinds by capacity (the magazine object is 16 + 8 * capacity bytes). Bigger objects get
// smaller magazines, so the free objects a CPU holds stay around 4 KiB per cache (footprint).
constexpr ktl::Array<u32, 3> kMagazineCapacity{{6, 14, 62}};

// Which cache owns each per-CPU slot number (null: free).
ktl::Array<SlabCache*, slab_cpu::kMaxSlots> g_slot_owner GUARDED_BY(slab_cpu::g_registry_lock){};

ktl::Atomic<SlabAllocator*> g_installed{nullptr};

u64 splitmix64(u64 x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

ktl::uptr addr(const void* p) { return ktl::address_of(p); }

// p + offset. Callers guarantee the result stays inside the slab (or object) that p points into.
ktl::u8* byte_at(void* p, usize offset) {
  KTL_UNSAFE_BUFFER_BEGIN  // in bounds by the caller's contract (offsets inside one slab)
  return static_cast<ktl::u8*>(p) + offset;
  KTL_UNSAFE_BUFFER_END
}
const ktl::u8* byte_at(const void* p, usize offset) {
  KTL_UNSAFE_BUFFER_BEGIN  // as above
  return static_cast<const ktl::u8*>(p) + offset;
  KTL_UNSAFE_BUFFER_END
}
ktl::u8* byte_before(void* p, usize back) {
  KTL_UNSAFE_BUFFER_BEGIN  // callers step back only into the redzone that precedes an object
  return static_cast<ktl::u8*>(p) - back;
  KTL_UNSAFE_BUFFER_END
}

SLAB_RAW u64 raw_load(const void* p) { return *static_cast<const volatile u64*>(p); }
SLAB_RAW void raw_store(void* p, u64 v) { *static_cast<volatile u64*>(p) = v; }
SLAB_RAW void raw_fill(void* p, usize n, ktl::u8 value) {
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
SLAB_RAW usize raw_find_not(const void* p, usize n, ktl::u8 value) {
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
SLAB_RAW ktl::u8 raw_byte(const void* p, usize i) {
  KTL_UNSAFE_BUFFER_BEGIN  // i < the length the caller just checked
  return static_cast<const volatile ktl::u8*>(p)[i];
  KTL_UNSAFE_BUFFER_END
}

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

// --- formatting ----------------------------------------------------------------------------------------

void format_value(ktl::FormatSink& sink, const SlabInfo& i, const ktl::FormatSpec&) {
  ktl::format_to(sink, "{:<24} {:>8} {:>8} {:>6} {:>6} {:>4} {:>6} {:>6} {:>8} {:>8}", i.name, i.active,
                 i.objects, i.object_size, i.stride, i.objects_per_slab, i.frames_per_slab, i.slabs, i.frames,
                 i.waste_bytes);
}

SlabError to_slab_error(PmmError e) {
  switch (e) {
    case PmmError::OutOfMemory: return SlabError::OutOfMemory;
    case PmmError::NotInitialized: return SlabError::PmmNotInitialized;
    default: ktl::panic("slab: the PMM refused a frame request with an impossible error", to_string(e));
  }
}

// --- SlabCache: setup -----------------------------------------------------------------------------
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

// --- reports ---------------------------------------------------------------------------------------------
void SlabCache::report(const char* what, const void* address) const {
  ktl::InlineString<320> message;
  SlabDesc* slab = owner_ != nullptr ? owner_->slab_of(address) : nullptr;
  if (slab != nullptr && slab->cache == this) {
    usize offset = addr(address) - addr(slab->base);
    usize index = offset < first_offset_ ? 0 : (offset - first_offset_) / stride_;
    ktl::format_to(message, "slab: {} of {} in cache {} (object {} of the slab at {})", what,
                   static_cast<const void*>(address), name(), index, static_cast<const void*>(slab->base));
  } else {
    ktl::format_to(message, "slab: {} of {} in cache {}", what, static_cast<const void*>(address), name());
  }
  ktl::panic(message.c_str());
}

void SlabCache::report_double_free(const void* object) const { report("double free", object); }

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

void SlabCache::report_not_object_start(const void* object, const char* operation) const {
  ktl::InlineString<96> what;
  if (!ktl::is_aligned<ktl::uptr>(addr(object), 8)) {
    ktl::format_to(what, "invalid {} (misaligned pointer)", operation);
  } else {
    ktl::format_to(what, "invalid {} (interior pointer, not the start of an object)", operation);
  }
  report(what.c_str(), object);
}

void SlabCache::check_owner(const void* object) const {
  SlabDesc* slab = owner_->slab_of(object);
  if (slab == nullptr) report("invalid slab_free (not a slab object)", object);
  if (slab->cache != this) {
    ktl::InlineString<96> what;
    ktl::format_to(what, "invalid slab_free (the object belongs to cache {})", slab->cache->name());
    report(what.c_str(), object);
  }
  check_object_start(*slab, object, "slab_free");
}

// --- hardened mode
// -------------------------------------------------------------------------------------------
void SlabCache::hardened_alloc(void* object, usize requested) {
  KTL_UNSAFE_BUFFER_BEGIN  // meta_offset_ + sizeof(Meta) <= stride: the layout computed at create_cache
  auto* meta = reinterpret_cast<Meta*>(byte_at(object, meta_offset_));
  KTL_UNSAFE_BUFFER_END
  u64 word = raw_load(meta);
  u32 state = static_cast<u32>(word >> 32);
  if (state != kStateFree) report("allocator state corrupted (object handed out while not free)", object);
  if (ctor_ == nullptr) {
    usize bad = raw_find_not(object, size_, kPoisonByte);
    if (bad != size_) {
      ktl::InlineString<96> what;
      ktl::format_to(what, "write after free detected (byte {} is {:#x}, not {:#x})", bad,
                     raw_byte(object, bad), kPoisonByte);
      report(what.c_str(), object);
    }
  }
  if (raw_find_not(byte_at(object, size_), meta_offset_ - size_, kRedzoneByte) != meta_offset_ - size_ ||
      raw_find_not(byte_before(object, kRedzone), kRedzone, kRedzoneByte) != kRedzone) {
    report("redzone of a free object overwritten", object);
  }
  raw_fill(byte_at(object, requested), size_ - requested, kRedzoneByte);
  raw_store(meta, (u64{kStateLive} << 32) | requested);
}

void SlabCache::hardened_free(void* object) {
  KTL_UNSAFE_BUFFER_BEGIN  // meta_offset_ + sizeof(Meta) <= stride: the layout computed at create_cache
  auto* meta = reinterpret_cast<Meta*>(byte_at(object, meta_offset_));
  KTL_UNSAFE_BUFFER_END
  u64 word = raw_load(meta);
  u32 state = static_cast<u32>(word >> 32);
  usize requested = static_cast<u32>(word);
  if (state == kStateFree) report_double_free(object);
  if (state != kStateLive || requested > size_) report("invalid free (object metadata corrupted)", object);
  usize right = meta_offset_ - requested;
  usize bad = raw_find_not(byte_at(object, requested), right, kRedzoneByte);
  if (bad != right) {
    ktl::InlineString<112> what;
    ktl::format_to(what, "buffer overflow detected (redzone byte {} past the {}-byte object overwritten)",
                   bad, requested);
    report(what.c_str(), object);
  }
  if (raw_find_not(byte_before(object, kRedzone), kRedzone, kRedzoneByte) != kRedzone) {
    report("buffer underflow detected (left redzone overwritten)", object);
  }
  if (ctor_ == nullptr) raw_fill(object, size_, kPoisonByte);
  raw_store(meta, u64{kStateFree} << 32);
}

void SlabCache::resize_in_place(void* object, usize requested) {
  ktl::check(requested <= size_, "SlabCache::resize_in_place: larger than the object");
  if (hardened_) {
    KTL_UNSAFE_BUFFER_BEGIN  // meta_offset_ + sizeof(Meta) <= stride: the layout computed at create_cache
    auto* meta = reinterpret_cast<Meta*>(byte_at(object, meta_offset_));
    KTL_UNSAFE_BUFFER_END
    u64 word = raw_load(meta);
    if (static_cast<u32>(word >> 32) != kStateLive) report("invalid krealloc (object not live)", object);
    usize old = static_cast<u32>(word);
    if (requested < old) raw_fill(byte_at(object, requested), old - requested, kRedzoneByte);
    raw_store(meta, (u64{kStateLive} << 32) | requested);
  }
  asan_poison(object, size_);
  asan_unpoison(object, requested);
}

usize SlabCache::requested_size(const void* object) const {
  if (!hardened_) return size_;
  return static_cast<u32>(raw_load(byte_at(object, meta_offset_)));
}

// --- slab layer
// ------------------------------------------------------------------------------------------------
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

SlabDesc* SlabCache::new_slab_locked() {
  auto frames = owner_->alloc_slab_frames(slab_frames_);
  if (frames.is_err()) return nullptr;
  AllocatedFrames owned = frames.release_value();
  usize bytes = usize{slab_frames_} * kPageSize;
  ktl::u8* base = owner_->window_.bytes(owned.start(), bytes).data();
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
  if (owner_->frames_.set_owner(owned.range(), FrameOwner::Slab, addr(slab)).is_err()) {
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
  check_desc(*slab);
  ktl::check(slab->inuse == 0, "slab: releasing a slab with live objects");
  list_unlink(lists_[slab->list].head, slab);
  --lists_[slab->list].count;
  AllocatedFrames frames = ktl::move(slab->frames);
  owner_->frames_.clear_owner(frames.range());
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

void* SlabCache::alloc_one_locked(bool may_grow) {
  SlabDesc* slab = lists_[kPartial].head;
  if (slab == nullptr) slab = lists_[kEmpty].head;
  if (slab == nullptr && may_grow) slab = new_slab_locked();
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

void SlabCache::fill_locked(Magazine& m) {
  // From the slabs there are, growing by at most one slab: a refill never builds slabs just to
  // park their objects in a magazine.
  while (!m.full()) {
    void* object = alloc_one_locked(m.empty());
    if (object == nullptr) break;
    m.push(object);
  }
}

void SlabCache::flush_locked(Magazine& m) {
  while (!m.empty()) {
    void* object = m.pop();
    free_one_locked(object, owner_->slab_of(object));
  }
}

// --- depot
// -------------------------------------------------------------------------------------------------------
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

void* SlabCache::alloc_general(usize requested) { return alloc_sized(requested); }
void SlabCache::free_general(void* object) { free_known(object); }

// --- the paths below the per-CPU layer
// ----------------------------------------------------------------------------
void* SlabCache::alloc_slow(CpuBlock& block, CpuSlot& slot) {
  if (!slab_cpu::ensure_registered(block)) return alloc_direct();
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
    if (m == nullptr) return alloc_one_locked();
    slot.loaded = m;
  }
  fill_locked(*m);
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

void* SlabCache::alloc_direct() {
  ktl::LockGuard guard(lock_);
  return alloc_one_locked();
}

void SlabCache::free_direct(void* object) {
  ktl::LockGuard guard(lock_);
  free_one_locked(object, owner_->slab_of(object));
}

// --- reclaim, stats, teardown
// ------------------------------------------------------------------------------------
u64 SlabCache::reclaim(u32 keep) {
  u64 freed = 0;
  ktl::LockGuard guard(lock_);
  purge_depot_locked();
  while (lists_[kEmpty].count > keep) {
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

// --- SlabAllocator
// ----------------------------------------------------------------------------------------------
u64 SlabAllocator::next_secret() {
  return splitmix64(options_.seed ^ splitmix64(secret_counter_.fetch_add(1) + addr(this)));
}

ktl::Result<void, SlabError> SlabAllocator::init(Pmm& pmm, PhysWindow window, const SlabOptions& options) {
  if (pmm_ != nullptr) return ktl::Err(SlabError::AlreadyInitialized);
  options_ = options;
  if (auto r = frames_.init(pmm, window); r.is_err()) return ktl::Err(to_slab_error(r.error()));
  pmm_ = &pmm;
  window_ = window;
  TRY(desc_cache_.setup(*this, "slab-desc", sizeof(SlabDesc), alignof(SlabDesc), nullptr, CacheFlags::None,
                        next_secret(), true));
  register_cache(&desc_cache_);
  for (u32 k = 0; k < kMagazineKinds; ++k) {
    ktl::InlineString<32> name;
    ktl::format_to(name, "slab-magazine-{}", kMagazineCapacity[k]);
    TRY(magazine_cache(k).setup(*this, name.view(), Magazine::bytes_for(kMagazineCapacity[k]), 8, nullptr,
                                CacheFlags::None, next_secret(), true));
    register_cache(&magazine_cache(k));
  }
  TRY(cache_cache_.setup(*this, "slab-cache", sizeof(SlabCache), alignof(SlabCache), nullptr,
                         CacheFlags::None, next_secret(), true));
  register_cache(&cache_cache_);
  return ktl::ok();
}

SlabAllocator::~SlabAllocator() {
  if (pmm_ == nullptr) return;
  for (;;) {
    SlabCache* c = nullptr;
    {
      ktl::LockGuard guard(registry_lock_);
      for (SlabCache* i = registry_; i != nullptr; i = i->registry_next_) {
        if (!i->internal_) {
          c = i;
          break;
        }
      }
    }
    if (c == nullptr) break;
    auto r = destroy_cache(c);
    ktl::check_ok(r, "SlabAllocator destroyed while a cache has live objects");
  }
  cache_cache_.teardown();
  for (u32 k = 0; k < kMagazineKinds; ++k) magazine_cache(k).teardown();
  desc_cache_.teardown();
  frames_.reset();
  if (installed_slab_allocator() == this) install_slab_allocator(nullptr);
}

void SlabAllocator::register_cache(SlabCache* cache) {
  ktl::LockGuard guard(registry_lock_);
  cache->registry_next_ = registry_;
  registry_ = cache;
}

void SlabAllocator::unregister_cache(SlabCache* cache) {
  ktl::LockGuard guard(registry_lock_);
  for (SlabCache** p = &registry_; *p != nullptr; p = &(*p)->registry_next_) {
    if (*p == cache) {
      *p = cache->registry_next_;
      return;
    }
  }
}

ktl::Result<AllocatedFrames, SlabError> SlabAllocator::alloc_slab_frames(u32 frames) {
  u64 budget = fail_after_.load(ktl::MemoryOrder::Relaxed);
  if (budget != ~u64{0}) {
    if (budget == 0) return ktl::Err(SlabError::OutOfMemory);
    fail_after_.fetch_sub(1, ktl::MemoryOrder::Relaxed);
  }
  auto r = pmm_->alloc_contiguous(frames, kPageSize);
  if (r.is_err()) return ktl::Err(to_slab_error(r.error()));
  return r.release_value();
}

ktl::Result<SlabCache*, SlabError> SlabAllocator::create_cache(ktl::StringView name, usize size, usize align,
                                                               Constructor ctor, CacheFlags flags) {
  if (pmm_ == nullptr) return ktl::Err(SlabError::NotInitialized);
  void* place = cache_cache_.alloc();
  if (place == nullptr) return ktl::Err(SlabError::OutOfMemory);
  auto* cache = new (place) SlabCache();
  auto r = cache->setup(*this, name, size, align, ctor, flags, next_secret(), false);
  if (r.is_err()) {
    if (cache->cpu_slot_ != slab_cpu::kNoSlot) {
      ktl::LockGuard guard(slab_cpu::g_registry_lock);
      g_slot_owner[cache->cpu_slot_] = nullptr;
    }
    cache->~SlabCache();
    cache_cache_.free_known(place);
    return ktl::Err(r.release_error());
  }
  register_cache(cache);
  return cache;
}

ktl::Result<void, SlabError> SlabAllocator::destroy_cache(SlabCache* cache) {
  ktl::check(cache != nullptr && cache->owner_ == this && !cache->internal_,
             "destroy_cache: not a cache of this allocator");
  if (cache->cpu_slot_ != slab_cpu::kNoSlot) {
    u32 slot = cache->cpu_slot_;
    slab_cpu::for_each_block([&](CpuBlock& block) { cache->return_magazines(block.slots[slot]); });
  }
  {
    ktl::LockGuard guard(cache->lock_);
    cache->purge_depot_locked();
    if (cache->inuse_ != 0) return ktl::Err(SlabError::NotEmpty);
  }
  unregister_cache(cache);
  if (cache->cpu_slot_ != slab_cpu::kNoSlot) {
    ktl::LockGuard guard(slab_cpu::g_registry_lock);
    g_slot_owner[cache->cpu_slot_] = nullptr;
  }
  cache->teardown();
  cache->~SlabCache();
  cache_cache_.free_known(cache);
  return ktl::ok();
}

u64 SlabAllocator::reclaim(u32 keep) {
  // Ordinary caches first (they free magazines and off-slab descriptors into the internal caches,
  // which come last in the registry because they were registered first).
  u64 freed = 0;
  ktl::LockGuard guard(registry_lock_);
  for (SlabCache* c = registry_; c != nullptr; c = c->registry_next_) freed += c->reclaim(keep);
  return freed;
}

u64 SlabAllocator::live_objects() {
  flush_local_cpu();
  u64 live = 0;
  ktl::LockGuard guard(registry_lock_);
  for (SlabCache* c = registry_; c != nullptr; c = c->registry_next_) {
    if (c->internal_) continue;
    SlabInfo i = c->info();
    live += i.active - i.cached;
  }
  return live;
}

usize SlabAllocator::cache_count() const {
  ktl::LockGuard guard(registry_lock_);
  usize n = 0;
  for (const SlabCache* c = registry_; c != nullptr; c = c->registry_next_) ++n;
  return n;
}

void SlabAllocator::flush_local_cpu() {
  ktl::LockGuard guard(registry_lock_);
  for (SlabCache* c = registry_; c != nullptr; c = c->registry_next_) c->flush_local_cpu();
}

// --- fork -------------------------------------------------------------------------------------------------
// Unchecked (see the declarations): they leave a run-time set of cache locks held / released.
void SlabAllocator::lock_caches(CacheKind kind) {
  for (SlabCache* c = registry_; c != nullptr; c = c->registry_next_) {
    if (c->internal_ == (kind == CacheKind::Internal)) c->lock_.lock();
  }
}

void SlabAllocator::unlock_caches_reverse(CacheKind kind) {
  // The registry is singly linked: each step finds the last cache of the kind before the one just
  // unlocked (quadratic in a few dozen caches, once per fork).
  for (SlabCache* end = nullptr;;) {
    SlabCache* last = nullptr;
    for (SlabCache* c = registry_; c != end; c = c->registry_next_) {
      if (c->internal_ == (kind == CacheKind::Internal)) last = c;
    }
    if (last == nullptr) return;
    last->lock_.unlock();
    end = last;
  }
}

void SlabAllocator::lock_all() {
  registry_lock_.lock();
  slab_cpu::g_registry_lock.lock();
  lock_caches(CacheKind::Ordinary);
  lock_caches(CacheKind::Internal);
}

void SlabAllocator::unlock_all() {
  unlock_caches_reverse(CacheKind::Internal);
  unlock_caches_reverse(CacheKind::Ordinary);
  slab_cpu::g_registry_lock.unlock();
  registry_lock_.unlock();
}

// --- the installed allocator (what mm.compat's seed names use) ------------------------------------
void install_slab_allocator(SlabAllocator* slab) { g_installed.store(slab, ktl::MemoryOrder::Release); }
SlabAllocator* installed_slab_allocator() { return g_installed.load(ktl::MemoryOrder::Acquire); }

}  // namespace mm
