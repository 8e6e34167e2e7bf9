// kernel.virtio_blk: the virtio-blk driver for modern virtio-pci devices (1af4:1042, and the
// transitional 1af4:1001 driven through its modern capabilities), as QEMU 7.2 models them.
//
// probe_all() (once, after kernel.pci_bus started, with the scheduler and interrupts up) finds up
// to kMaxDevices and initialises each (virtio 1.2 §3.1.1, §4.1.5.1; README.md has the steps):
// reset, ACKNOWLEDGE, DRIVER, features (VERSION_1 required; FLUSH, RO, BLK_SIZE taken when
// offered), FEATURES_OK re-read, queue 0 (at most kQueueSize entries), MSI-X entry 0 to vector
// kVectorBase + index on the boot CPU (polling if the device refuses the vector), queue_enable,
// DRIVER_OK. One log line per device.
//
// Requests: a 16-byte header, the caller's data segments (physical memory; the device reads or
// writes it directly: no IOMMU, ACCESS_PLATFORM not negotiated), a status byte. Several requests
// may be in flight (kSlots of them); each waits for its own completion:
//   Interrupt: MSI-X set up, interrupts on, the scheduler running and not in an interrupt: the
//              caller sleeps on the device's wait queue (timeout kTimeoutNs); the MSI-X handler
//              collects the used ring and wakes the waiters. A waiter that sleeps 100 ms without a
//              wake-up collects the ring itself (a lost interrupt costs 100 ms, not the request).
//   Polling:   otherwise (early boot, interrupts off, no vector), or asked for (Wait::Poll): the
//              caller collects the used ring itself until its request is done or the timeout.
// A device that breaks the used ring's rules (kernel.virtio.queue) is Broken: every request after
// it fails with DeviceBroken.
//
// Locking: virtio.queue (LockRank::BlockQueue) guards the virtqueue and the request slots; it is
// dropped before sleeping and before waking (the scheduler's lock is never taken under it).
module;

#include <ktl/macros.h>

export module kernel.virtio_blk;

import ktl;
import mm.addr;
import mm.pmm;
import kernel.mmio;
import kernel.pci;
import kernel.sched;
import kernel.virtio.pci;
import kernel.virtio.queue;

export namespace kernel::virtio {

using ktl::u16;
using ktl::u32;
using ktl::u64;
using ktl::u8;
using ktl::usize;

inline constexpr u32 kMaxDevices = 8;
inline constexpr u16 kQueueSize = 128;
inline constexpr u32 kSlots = 64;        // requests in flight per device
inline constexpr u32 kMaxSegments = 32;  // data segments per request
inline constexpr u32 kSectorSize = 512;
inline constexpr u8 kVectorBase = 0x50;           // device i interrupts on kVectorBase + i
inline constexpr u64 kTimeoutNs = 5'000'000'000;  // TCG is slow: one write took > 1 ms

// Feature bits (§5.2.3, §6).
inline constexpr u64 kFeatureReadOnly = u64{1} << 5;
inline constexpr u64 kFeatureBlkSize = u64{1} << 6;
inline constexpr u64 kFeatureFlush = u64{1} << 9;
inline constexpr u64 kFeatureVersion1 = u64{1} << 32;

enum class BlkError : u32 {
  NoDevice,          // no such device (index past the probed ones; probe found none that works)
  Unsupported,       // the device refused the request type (status UNSUPP), or lacks the feature (flush)
  DeviceError,       // the device reported an I/O error (status IOERR, or an unknown status)
  OutOfRange,        // the request runs past the device's capacity
  Timeout,           // no completion within kTimeoutNs (the request stays in flight)
  ReadOnly,          // a write to a device that offered VIRTIO_BLK_F_RO
  BadBuffer,         // no segments, too many, one empty or outside RAM, or a total not a multiple of 512
  DeviceBroken,      // the device broke the virtqueue's rules earlier (see the log)
  NoVersion1,        // the device does not offer VIRTIO_F_VERSION_1 (legacy only)
  FeaturesRefused,   // FEATURES_OK did not stick (§3.1.1)
  ResetTimeout,      // device_status did not read 0 after the reset
  BadLayout,         // the virtio-pci capabilities are malformed (see the log for which way)
  BarUnassigned,     // a BAR the capabilities name has no address (firmware did not assign it)
  MapFailed,         // mapping a BAR failed (see the log)
  NoMemory,          // no frames for the rings or the request headers
  QueueUnavailable,  // queue 0 has size 0, is not a power of two, or is already enabled
};
[[nodiscard]] constexpr const char* to_string(BlkError e) {
  switch (e) {
    case BlkError::NoDevice: return "no such block device";
    case BlkError::Unsupported: return "request not supported by the device";
    case BlkError::DeviceError: return "device reported an I/O error";
    case BlkError::OutOfRange: return "request past the end of the device";
    case BlkError::Timeout: return "request timed out";
    case BlkError::ReadOnly: return "device is read-only";
    case BlkError::BadBuffer: return "bad data buffer";
    case BlkError::DeviceBroken: return "device broke the virtqueue protocol";
    case BlkError::NoVersion1: return "device does not offer VIRTIO_F_VERSION_1";
    case BlkError::FeaturesRefused: return "device refused the feature set";
    case BlkError::ResetTimeout: return "device reset did not complete";
    case BlkError::BadLayout: return "malformed virtio-pci capabilities";
    case BlkError::BarUnassigned: return "BAR without an address";
    case BlkError::MapFailed: return "mapping a BAR failed";
    case BlkError::NoMemory: return "no memory for the virtqueue";
    case BlkError::QueueUnavailable: return "queue 0 unavailable";
  }
  return "unknown virtio-blk error";
}

// Physical memory the device reads or writes (guest-physical: RAM the direct map covers).
struct DmaSegment {
  mm::PhysAddr addr = mm::PhysAddr::zero();
  u32 len = 0;
};

enum class Wait : u8 { Auto, Poll };
enum class CompletionMode : u8 { Interrupt, Polling };
[[nodiscard]] constexpr const char* to_string(CompletionMode m) {
  switch (m) {
    case CompletionMode::Interrupt: return "MSI-X";
    case CompletionMode::Polling: return "polling";
  }
  return "unknown completion mode";
}

struct BlkStats {
  u64 requests = 0;               // submitted
  u64 bytes = 0;                  // data bytes of the requests that completed OK
  u64 errors = 0;                 // requests that returned an error
  u64 interrupts = 0;             // MSI-X interrupts taken
  u64 interrupt_completions = 0;  // completions collected by the interrupt handler
  u64 polled_completions = 0;     // completions collected by a polling caller
  u64 max_in_flight = 0;          // the most requests in the queue at once
};

class BlockDevice {
 public:
  constexpr BlockDevice() = default;
  BlockDevice(const BlockDevice&) = delete;
  BlockDevice& operator=(const BlockDevice&) = delete;

  [[nodiscard]] inline u64 capacity_sectors() const { return capacity_; }
  [[nodiscard]] inline u32 sector_size() const { return kSectorSize; }
  [[nodiscard]] inline u32 block_size() const { return block_size_; }  // BLK_SIZE (512 without it)
  [[nodiscard]] inline bool read_only() const { return (features_ & kFeatureReadOnly) != 0; }
  [[nodiscard]] inline u64 features() const { return features_; }
  [[nodiscard]] inline CompletionMode mode() const { return mode_; }
  [[nodiscard]] inline pci::Address address() const { return address_; }
  [[nodiscard]] inline u16 queue_size() const { return queue_size_; }

  // Reads sectors [sector, sector + total/512) into `into` (its total a multiple of 512).
  // Errors: BadBuffer, OutOfRange (before submitting), Timeout, DeviceError, Unsupported, DeviceBroken.
  [[nodiscard]] ktl::Result<void, BlkError> read(u64 sector, ktl::Span<const DmaSegment> into,
                                                 Wait wait = Wait::Auto);
  // Writes; also ReadOnly.
  [[nodiscard]] ktl::Result<void, BlkError> write(u64 sector, ktl::Span<const DmaSegment> from,
                                                  Wait wait = Wait::Auto);
  // Makes completed writes durable (VIRTIO_BLK_T_FLUSH). Unsupported without VIRTIO_BLK_F_FLUSH.
  [[nodiscard]] ktl::Result<void, BlkError> flush(Wait wait = Wait::Auto);

  [[nodiscard]] BlkStats stats() const;

  // probe_all's steps for one function; `index` picks the vector.
  [[nodiscard]] ktl::Result<void, BlkError> init(pci::ConfigSpace& config, const pci::Function& f, u32 index);
  // The MSI-X handler's work: collect completions, wake the waiters.
  void interrupt();

 private:
  struct Slot {
    bool busy = false;
    bool abandoned = false;  // its caller timed out; freed when the device completes it
    u16 head = 0;
  };
  [[nodiscard]] ktl::Result<void, BlkError> request(u32 type, u64 sector, ktl::Span<const DmaSegment> data,
                                                    Wait wait);
  [[nodiscard]] ktl::Result<void, BlkError> setup_queue(pci::ConfigSpace& config, const pci::Function& f,
                                                        const Layout& layout, u32 index);
  void collect_locked(CompletionMode by) REQUIRES(lock_);
  [[nodiscard]] ktl::Span<u8> slot_bytes(u32 slot) const;
  [[nodiscard]] u64 read_device_config64(u32 offset) const;
  void set_status(u8 bits) const;
  void fail() const;

  pci::Address address_{};
  MmioRegion common_{};
  MmioRegion notify_{};
  MmioRegion device_cfg_{};
  MmioRegion msix_table_{};
  u64 notify_offset_ = 0;
  u64 capacity_ = 0;
  u32 block_size_ = kSectorSize;
  u64 features_ = 0;
  u16 queue_size_ = 0;
  CompletionMode mode_ = CompletionMode::Polling;
  mm::AllocatedFrames ring_frame_{};
  mm::AllocatedFrames slot_frame_{};

  mutable ktl::SpinLock lock_{ktl::LockRank::BlockQueue};
  SplitQueue queue_ GUARDED_BY(lock_);
  ktl::Array<Slot, kSlots> slots_ GUARDED_BY(lock_){};
  ktl::Array<u8, kQueueSize> slot_of_head_ GUARDED_BY(lock_){};
  ktl::Array<ktl::Atomic<bool>, kSlots> done_{};
  ktl::Atomic<bool> broken_{false};
  sched::WaitQueue waiters_;

  ktl::Atomic<u64> requests_{0};
  ktl::Atomic<u64> bytes_{0};
  ktl::Atomic<u64> errors_{0};
  ktl::Atomic<u64> interrupts_{0};
  ktl::Atomic<u64> interrupt_completions_{0};
  ktl::Atomic<u64> polled_completions_{0};
  ktl::Atomic<u64> max_in_flight_{0};
};

// Finds and initialises every virtio-blk function kernel.pci_bus saw (at most kMaxDevices), one
// log line each. Returns how many work (0 when there are none: "virtio-blk: no devices"); a device
// whose set-up fails is logged and skipped, and when every device found failed the first one's
// error is returned. Call after kernel.pci_bus's start(); later calls return the same count.
[[nodiscard]] ktl::Result<u32, BlkError> probe_all();
[[nodiscard]] u32 device_count();
// Device `index` (< device_count()), or none.
[[nodiscard]] BlockDevice* device(u32 index);

}  // namespace kernel::virtio
