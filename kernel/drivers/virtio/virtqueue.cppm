// kernel.virtio.queue: a split virtqueue (virtio 1.2 §2.7) over memory given to it: the
// descriptor table, the available (driver) ring and the used (device) ring, each a byte span with
// the physical address the device sees. Nothing here touches a device: the owner kicks the
// notify register when needs_kick() says so, so the host test runs it over plain memory with a
// fake device.
//
//   submit(chain): device-readable segments first, then device-writable ones (§2.7.4.2); takes
//   descriptors from the free list, writes them, publishes the head in the available ring
//   (barrier before the index store, a full barrier after it: §2.7.13).
//   next_used(): the next completion from the used ring. The device's word is outside data: an
//   index that runs ahead by more than the queue size, an id out of range or not the head of a
//   chain in flight (a duplicate completion), or a length beyond the chain's writable bytes is an
//   error, and the queue is Broken from then on (every later call says so).
//
// The chains' shape (next links, lengths) is kept in private arrays: the device can scribble on the
// descriptor table without changing which descriptors get freed. Not thread-safe: the owner
// serialises calls (kernel.virtio_blk holds the virtio.queue lock).
module;

#include <ktl/macros.h>

export module kernel.virtio.queue;

import ktl;

export namespace kernel::virtio {

using ktl::u16;
using ktl::u32;
using ktl::u64;
using ktl::u8;
using ktl::usize;

inline constexpr u16 kMaxQueueSize = 256;

inline constexpr u16 kDescFlagNext = 1;
inline constexpr u16 kDescFlagWrite = 2;
inline constexpr u16 kUsedFlagNoNotify = 1;

// Bytes each part needs for `size` entries (§2.7: alignment 16, 2 and 4).
[[nodiscard]] constexpr usize descriptor_table_bytes(u16 size) { return usize{16} * size; }
[[nodiscard]] constexpr usize available_ring_bytes(u16 size) { return 6 + usize{2} * size; }
[[nodiscard]] constexpr usize used_ring_bytes(u16 size) { return 6 + usize{8} * size; }

enum class QueueError : u32 {
  BadSize,                // not a power of two in 1..kMaxQueueSize
  MemoryTooSmall,         // a part's span is shorter than the size needs
  Misaligned,             // a part's span or physical address is not aligned as §2.7 requires
  EmptyChain,             // submit with no segments
  ChainTooLong,           // more segments than the queue has descriptors
  EmptySegment,           // a segment of length 0
  ReadableAfterWritable,  // a device-readable segment after a device-writable one (§2.7.4.2)
  Full,                   // not enough free descriptors now (completions free them)
  UsedIndexJump,          // the device's used index ran ahead by more than the queue size
  BadUsedId,              // a used-ring id outside the descriptor table
  NotInFlight,            // a used-ring id that is not the head of a chain in flight (duplicate completion)
  BadUsedLength,          // a used length larger than the chain's device-writable bytes
  Broken,                 // an earlier used-ring error: the device is not trusted any more
  NotInitialized,         // init was not called (or failed)
};
[[nodiscard]] constexpr const char* to_string(QueueError e) {
  switch (e) {
    case QueueError::BadSize: return "queue size not a power of two in 1..256";
    case QueueError::MemoryTooSmall: return "queue memory too small";
    case QueueError::Misaligned: return "queue memory misaligned";
    case QueueError::EmptyChain: return "empty descriptor chain";
    case QueueError::ChainTooLong: return "descriptor chain longer than the queue";
    case QueueError::EmptySegment: return "zero-length segment";
    case QueueError::ReadableAfterWritable: return "device-readable segment after a writable one";
    case QueueError::Full: return "no free descriptors";
    case QueueError::UsedIndexJump: return "used index ran ahead of the available ring";
    case QueueError::BadUsedId: return "used id outside the descriptor table";
    case QueueError::NotInFlight: return "used id not a chain in flight";
    case QueueError::BadUsedLength: return "used length beyond the chain's writable bytes";
    case QueueError::Broken: return "queue broken by an earlier device error";
    case QueueError::NotInitialized: return "queue not initialized";
  }
  return "unknown queue error";
}

enum class Access : u8 { DeviceReads, DeviceWrites };

struct Segment {
  u64 addr = 0;  // what the device sees (guest-physical)
  u32 len = 0;
  Access access = Access::DeviceReads;
};

// One part of the queue's memory: the bytes (the driver's view) and their physical address.
struct QueueRegion {
  ktl::Span<u8> bytes;
  u64 phys = 0;
};

struct QueueMemory {
  QueueRegion descriptors;
  QueueRegion available;
  QueueRegion used;
};

struct Completion {
  u16 head = 0;
  u32 len = 0;  // bytes the device says it wrote
};

class SplitQueue {
 public:
  constexpr SplitQueue() = default;
  SplitQueue(const SplitQueue&) = delete;
  SplitQueue& operator=(const SplitQueue&) = delete;

  // Zeroes the memory and builds the free list. Errors: BadSize, MemoryTooSmall, Misaligned.
  [[nodiscard]] ktl::Result<void, QueueError> init(u16 size, const QueueMemory& memory);

  // Publishes one chain; returns its head id. Errors: NotInitialized, Broken, EmptyChain,
  // ChainTooLong, EmptySegment, ReadableAfterWritable, Full (nothing is written then).
  [[nodiscard]] ktl::Result<u16, QueueError> submit(ktl::Span<const Segment> chain);
  // After submit: whether the device asked to be notified (used.flags without NO_NOTIFY).
  [[nodiscard]] bool needs_kick() const;
  // The next completion, none when the device has not used more. Errors: NotInitialized, Broken,
  // UsedIndexJump, BadUsedId, NotInFlight, BadUsedLength (the last four make the queue Broken).
  [[nodiscard]] ktl::Result<ktl::Optional<Completion>, QueueError> next_used();

  [[nodiscard]] inline u16 size() const { return size_; }
  [[nodiscard]] inline u16 free_count() const { return free_count_; }
  [[nodiscard]] inline u16 in_flight() const { return in_flight_count_; }
  [[nodiscard]] inline bool broken() const { return broken_; }
  [[nodiscard]] inline u64 descriptors_phys() const { return memory_.descriptors.phys; }
  [[nodiscard]] inline u64 available_phys() const { return memory_.available.phys; }
  [[nodiscard]] inline u64 used_phys() const { return memory_.used.phys; }

 private:
  [[nodiscard]] ktl::Result<void, QueueError> usable() const;
  void free_chain(u16 head);

  QueueMemory memory_{};
  u16 size_ = 0;
  u16 free_head_ = 0;
  u16 free_count_ = 0;
  u16 in_flight_count_ = 0;
  u16 avail_idx_ = 0;  // the next available-ring index the driver publishes
  u16 last_used_ = 0;  // the used-ring index of the next completion to collect
  bool broken_ = false;
  ktl::Array<u16, kMaxQueueSize> next_{};            // free list and chain links (private copy)
  ktl::Array<u16, kMaxQueueSize> chain_length_{};    // per head: descriptors in its chain
  ktl::Array<u32, kMaxQueueSize> writable_bytes_{};  // per head: device-writable bytes
  ktl::Array<bool, kMaxQueueSize> head_in_flight_{};
};

}  // namespace kernel::virtio
