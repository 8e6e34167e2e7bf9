module;

#include <ktl/macros.h>

module kernel.virtio.queue;

import ktl;

namespace kernel::virtio {

using ktl::Err;

namespace {

// Ring fields are shared with the device: every access is one atomic (so the compiler neither
// tears, merges nor reorders it across the fences below), at an offset checked against the span.
template <class T>
T* field(ktl::Span<u8> bytes, usize offset) {
  ktl::Span<u8> f = bytes.subspan(offset, sizeof(T));  // panics outside the span
  ktl::check(ktl::address_of(f.data()) % alignof(T) == 0, "virtqueue: misaligned ring field");
  KTL_UNSAFE_BUFFER_BEGIN  // f is sizeof(T) bytes inside the region, aligned for T (checked above)
  return reinterpret_cast<T*>(f.data());
  KTL_UNSAFE_BUFFER_END
}
template <class T>
void store(ktl::Span<u8> bytes, usize offset, T value) {
  __atomic_store_n(field<T>(bytes, offset), value, __ATOMIC_RELAXED);
}
template <class T>
T load(ktl::Span<u8> bytes, usize offset, int order = __ATOMIC_RELAXED) {
  return __atomic_load_n(field<T>(bytes, offset), order);
}

bool aligned(const QueueRegion& r, usize align) {
  return ktl::address_of(r.bytes.data()) % align == 0 && r.phys % align == 0;
}

// Available ring: flags @0, idx @2, ring[i] @4+2i. Used ring: flags @0, idx @2, {id u32, len u32} @4+8i.
constexpr usize kRingIdx = 2;
constexpr usize kRingEntries = 4;

}  // namespace

ktl::Result<void, QueueError> SplitQueue::init(u16 size, const QueueMemory& memory) {
  size_ = 0;
  if (size == 0 || size > kMaxQueueSize || (size & (size - 1)) != 0) return Err(QueueError::BadSize);
  if (memory.descriptors.bytes.size() < descriptor_table_bytes(size) ||
      memory.available.bytes.size() < available_ring_bytes(size) ||
      memory.used.bytes.size() < used_ring_bytes(size))
    return Err(QueueError::MemoryTooSmall);
  if (!aligned(memory.descriptors, 16) || !aligned(memory.available, 2) || !aligned(memory.used, 4))
    return Err(QueueError::Misaligned);
  memory_ = memory;
  for (u8& b : memory_.descriptors.bytes.first(descriptor_table_bytes(size))) b = 0;
  for (u8& b : memory_.available.bytes.first(available_ring_bytes(size))) b = 0;
  for (u8& b : memory_.used.bytes.first(used_ring_bytes(size))) b = 0;
  for (u16 i = 0; i < size; ++i) {
    next_[i] = static_cast<u16>(i + 1);
    chain_length_[i] = 0;
    writable_bytes_[i] = 0;
    head_in_flight_[i] = false;
  }
  size_ = size;
  free_head_ = 0;
  free_count_ = size;
  in_flight_count_ = 0;
  avail_idx_ = 0;
  last_used_ = 0;
  broken_ = false;
  return ktl::ok();
}

ktl::Result<void, QueueError> SplitQueue::usable() const {
  if (size_ == 0) return Err(QueueError::NotInitialized);
  if (broken_) return Err(QueueError::Broken);
  return ktl::ok();
}

ktl::Result<u16, QueueError> SplitQueue::submit(ktl::Span<const Segment> chain) {
  TRY(usable());
  if (chain.empty()) return Err(QueueError::EmptyChain);
  if (chain.size() > size_) return Err(QueueError::ChainTooLong);
  bool writable_seen = false;
  u64 writable = 0;
  for (const Segment& s : chain) {
    if (s.len == 0) return Err(QueueError::EmptySegment);
    if (s.access == Access::DeviceWrites) {
      writable_seen = true;
      writable += s.len;
    } else if (writable_seen) {
      return Err(QueueError::ReadableAfterWritable);
    }
  }
  if (chain.size() > free_count_) return Err(QueueError::Full);

  ktl::Span<u8> desc = memory_.descriptors.bytes;
  const u16 head = free_head_;
  u16 d = head;
  for (usize i = 0; i < chain.size(); ++i) {
    const Segment& s = chain[i];
    const bool last = i + 1 == chain.size();
    const u16 following = next_[d];
    u16 flags = static_cast<u16>((last ? 0 : kDescFlagNext) |
                                 (s.access == Access::DeviceWrites ? kDescFlagWrite : 0));
    const usize at = usize{16} * d;
    store<u64>(desc, at, s.addr);
    store<u32>(desc, at + 8, s.len);
    store<u16>(desc, at + 12, flags);
    store<u16>(desc, at + 14, last ? u16{0} : following);
    if (!last)
      d = following;
    else
      free_head_ = following;
  }
  free_count_ = static_cast<u16>(free_count_ - chain.size());
  chain_length_[head] = static_cast<u16>(chain.size());
  writable_bytes_[head] = writable > 0xffff'ffffu ? 0xffff'ffffu : static_cast<u32>(writable);
  head_in_flight_[head] = true;
  ++in_flight_count_;

  ktl::Span<u8> avail = memory_.available.bytes;
  store<u16>(avail, kRingEntries + usize{2} * (avail_idx_ & (size_ - 1)), head);
  avail_idx_ = static_cast<u16>(avail_idx_ + 1);
  // The descriptors and the ring entry before the index (§2.7.13.3: virtio_wmb).
  __atomic_store_n(field<u16>(avail, kRingIdx), avail_idx_, __ATOMIC_RELEASE);
  // The index store before the used.flags load in needs_kick (§2.7.13.4.1: store->load, mfence).
  __atomic_thread_fence(__ATOMIC_SEQ_CST);
  return head;
}

bool SplitQueue::needs_kick() const {
  if (size_ == 0) return false;
  return (load<u16>(memory_.used.bytes, 0) & kUsedFlagNoNotify) == 0;
}

void SplitQueue::free_chain(u16 head) {
  u16 n = chain_length_[head];
  u16 last = head;
  for (u16 i = 1; i < n; ++i) last = next_[last];
  next_[last] = free_head_;
  free_head_ = head;
  free_count_ = static_cast<u16>(free_count_ + n);
  chain_length_[head] = 0;
  writable_bytes_[head] = 0;
  head_in_flight_[head] = false;
  --in_flight_count_;
}

ktl::Result<ktl::Optional<Completion>, QueueError> SplitQueue::next_used() {
  TRY(usable());
  ktl::Span<u8> used = memory_.used.bytes;
  // Acquire: the entry is read after the index that published it.
  const u16 device_idx = load<u16>(used, kRingIdx, __ATOMIC_ACQUIRE);
  const u16 pending = static_cast<u16>(device_idx - last_used_);
  if (pending == 0) return ktl::Optional<Completion>{};
  if (pending > in_flight_count_) {
    broken_ = true;
    return Err(pending > size_ ? QueueError::UsedIndexJump : QueueError::NotInFlight);
  }
  const usize at = kRingEntries + usize{8} * (last_used_ & (size_ - 1));
  const u32 id = load<u32>(used, at);
  const u32 len = load<u32>(used, at + 4);
  if (id >= size_) {
    broken_ = true;
    return Err(QueueError::BadUsedId);
  }
  const u16 head = static_cast<u16>(id);
  if (!head_in_flight_[head]) {
    broken_ = true;
    return Err(QueueError::NotInFlight);
  }
  if (len > writable_bytes_[head]) {
    broken_ = true;
    return Err(QueueError::BadUsedLength);
  }
  last_used_ = static_cast<u16>(last_used_ + 1);
  free_chain(head);
  return ktl::Optional<Completion>(Completion{head, len});
}

}  // namespace kernel::virtio
