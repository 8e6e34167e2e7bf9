// mm.slab: hardened mode and the reports.
module;

#include <ktl/macros.h>

module mm.slab;

import ktl;
import mm.addr;
import mm.slab.cpu;

namespace mm {

namespace {

ktl::u8* byte_before(void* p, usize back) {
  KTL_UNSAFE_BUFFER_BEGIN  // callers step back only into the redzone that precedes an object
  return static_cast<ktl::u8*>(p) - back;
  KTL_UNSAFE_BUFFER_END
}

}  // namespace

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

// --- hardened mode -----------------------------------------------------------------------------------
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

}  // namespace mm
