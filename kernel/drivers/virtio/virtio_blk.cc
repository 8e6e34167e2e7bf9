module;

#include <ktl/macros.h>

module kernel.virtio_blk;

import ktl;
import mm.addr;
import mm.arch;
import mm.pmm;
import kernel.irq;
import kernel.log;
import kernel.memory;
import kernel.mmio;
import kernel.pci;
import kernel.pci_bus;
import kernel.sched;
import kernel.time;
import kernel.virtio.pci;
import kernel.virtio.queue;
import arch.x86_64.cpu;
import arch.x86_64.platform;

namespace kernel::virtio {

using ktl::Err;

namespace {

// Common configuration (§4.1.4.3).
constexpr u64 kDeviceFeatureSelect = 0x00;
constexpr u64 kDeviceFeature = 0x04;
constexpr u64 kDriverFeatureSelect = 0x08;
constexpr u64 kDriverFeature = 0x0c;
constexpr u64 kConfigMsixVector = 0x10;
constexpr u64 kDeviceStatus = 0x14;
constexpr u64 kConfigGeneration = 0x15;
constexpr u64 kQueueSelect = 0x16;
constexpr u64 kQueueSizeReg = 0x18;
constexpr u64 kQueueMsixVector = 0x1a;
constexpr u64 kQueueEnable = 0x1c;
constexpr u64 kQueueNotifyOff = 0x1e;
constexpr u64 kQueueDesc = 0x20;
constexpr u64 kQueueDriver = 0x28;
constexpr u64 kQueueDevice = 0x30;

constexpr u8 kStatusAcknowledge = 1;
constexpr u8 kStatusDriver = 2;
constexpr u8 kStatusDriverOk = 4;
constexpr u8 kStatusFeaturesOk = 8;
constexpr u8 kStatusFailed = 128;
constexpr u16 kNoVector = 0xffff;

// Device configuration (§5.2.4).
constexpr u32 kCfgCapacity = 0;
constexpr u32 kCfgBlkSize = 20;

// Request types and status (§5.2.6).
constexpr u32 kTypeIn = 0;
constexpr u32 kTypeOut = 1;
constexpr u32 kTypeFlush = 4;
constexpr u8 kBlkOk = 0;
constexpr u8 kBlkIoErr = 1;
constexpr u8 kBlkUnsupp = 2;

constexpr u64 kRecheckNs = 100'000'000;  // a sleeping waiter looks at the used ring itself this often

constexpr u32 kSlotBytes = 32;  // header (16) + status (1), padded
static_assert(kSlotBytes * kSlots <= mm::kPageSize);

// Ring layout in one page: descriptors, then the available ring, then the used ring (align 4).
constexpr usize kAvailOffset = descriptor_table_bytes(kQueueSize);
constexpr usize kUsedOffset = (kAvailOffset + available_ring_bytes(kQueueSize) + 3) & ~usize{3};
static_assert(kUsedOffset + used_ring_bytes(kQueueSize) <= mm::kPageSize);

constexpr u16 kCommandMemory = 1u << 1;
constexpr u16 kCommandBusMaster = 1u << 2;
constexpr u16 kMsixEnable = 1u << 15;
constexpr u16 kMsixFunctionMask = 1u << 14;

ktl::Array<BlockDevice, kMaxDevices> g_devices{};
u32 g_count = 0;

void on_interrupt(u8 vector) {
  u32 i = vector - kVectorBase;
  if (i < g_count) g_devices[i].interrupt();
}

bool interrupts_enabled() { return (arch::x86_64::read_rflags() & (u64{1} << 9)) != 0; }

ktl::Result<MmioRegion, BlkError> map_region(const pci::Function& f, const Region& r) {
  const pci::Bar& bar = f.bars[r.bar];
  if (bar.base == 0) return Err(BlkError::BarUnassigned);
  auto m = memory::map_device(mm::PhysAddr::unchecked(bar.base + r.offset), r.length);
  if (m.is_err()) {
    klog::warn("virtio-blk: {}: BAR{} +{:#x} not mapped: {}", f.address, u32{r.bar}, r.offset, m.error());
    return Err(BlkError::MapFailed);
  }
  return m.value();
}

}  // namespace

void BlockDevice::set_status(u8 bits) const {
  common_.write8(kDeviceStatus, static_cast<u8>(common_.read8(kDeviceStatus) | bits));
}
void BlockDevice::fail() const {
  if (!common_.valid()) return;
  set_status(kStatusFailed);
  common_.write8(kDeviceStatus, 0);  // and reset: the device lets go of the rings before they are reused
}

u64 BlockDevice::read_device_config64(u32 offset) const {
  // §2.5.1: retry while the configuration generation changes; 64-bit fields as two 32-bit reads.
  for (;;) {
    u8 before = common_.read8(kConfigGeneration);
    u64 lo = device_cfg_.read32(offset);
    u64 hi = device_cfg_.read32(offset + 4);
    if (common_.read8(kConfigGeneration) == before) return lo | (hi << 32);
  }
}

ktl::Result<void, BlkError> BlockDevice::init(pci::ConfigSpace& config, const pci::Function& f, u32 index) {
  address_ = f.address;
  auto parsed = parse_layout(config, f);
  if (parsed.is_err()) {
    klog::warn("virtio-blk: {}: {}", f.address, parsed.error());
    return Err(BlkError::BadLayout);
  }
  const Layout& layout = parsed.value();
  if (layout.device.length < kCfgBlkSize + 4) {
    klog::warn("virtio-blk: {}: device configuration only {} bytes", f.address, layout.device.length);
    return Err(BlkError::BadLayout);
  }
  common_ = TRY(map_region(f, layout.common));
  notify_ = TRY(map_region(f, layout.notify));
  device_cfg_ = TRY(map_region(f, layout.device));

  const u16 command = pci::read16(config, f.address, 0x04);
  pci::write16(config, f.address, 0x04, command | kCommandMemory | kCommandBusMaster);

  // Reset, and wait for it to finish (§4.1.4.3.2).
  common_.write8(kDeviceStatus, 0);
  const u64 deadline = time::now_ns() + kTimeoutNs;
  while (common_.read8(kDeviceStatus) != 0) {
    if (time::now_ns() > deadline) return Err(BlkError::ResetTimeout);
    __builtin_ia32_pause();
  }
  set_status(kStatusAcknowledge);
  set_status(kStatusDriver);

  common_.write32(kDeviceFeatureSelect, 0);
  u64 offered = common_.read32(kDeviceFeature);
  common_.write32(kDeviceFeatureSelect, 1);
  offered |= u64{common_.read32(kDeviceFeature)} << 32;
  if ((offered & kFeatureVersion1) == 0) {
    fail();
    return Err(BlkError::NoVersion1);
  }
  features_ = offered & (kFeatureVersion1 | kFeatureFlush | kFeatureReadOnly | kFeatureBlkSize);
  common_.write32(kDriverFeatureSelect, 0);
  common_.write32(kDriverFeature, static_cast<u32>(features_));
  common_.write32(kDriverFeatureSelect, 1);
  common_.write32(kDriverFeature, static_cast<u32>(features_ >> 32));
  set_status(kStatusFeaturesOk);
  if ((common_.read8(kDeviceStatus) & kStatusFeaturesOk) == 0) {
    fail();
    return Err(BlkError::FeaturesRefused);
  }

  if (auto q = setup_queue(config, f, layout, index); q.is_err()) {
    fail();
    return Err(q.error());
  }
  // The notify address of queue 0 (§4.1.4.4).
  notify_offset_ = u64{common_.read16(kQueueNotifyOff)} * layout.notify_off_multiplier;
  if (notify_offset_ + 2 > notify_.size()) {
    klog::warn("virtio-blk: {}: queue notify offset {:#x} outside the notify structure", f.address,
               notify_offset_);
    fail();
    return Err(BlkError::BadLayout);
  }
  common_.write16(kQueueEnable, 1);  // last (§4.1.4.3.2)
  set_status(kStatusDriverOk);

  capacity_ = read_device_config64(kCfgCapacity);
  if ((features_ & kFeatureBlkSize) != 0) block_size_ = device_cfg_.read32(kCfgBlkSize);
  return ktl::ok();
}

ktl::Result<void, BlkError> BlockDevice::setup_queue(pci::ConfigSpace& config, const pci::Function& f,
                                                     const Layout& layout, u32 index) {
  common_.write16(kQueueSelect, 0);
  const u16 max = common_.read16(kQueueSizeReg);
  if (max == 0 || (max & (max - 1)) != 0 || common_.read16(kQueueEnable) != 0)
    return Err(BlkError::QueueUnavailable);
  queue_size_ = max < kQueueSize ? max : kQueueSize;
  common_.write16(kQueueSizeReg, queue_size_);

  auto ring = memory::pmm().alloc_page();
  auto slots = memory::pmm().alloc_page();
  if (ring.is_err() || slots.is_err()) return Err(BlkError::NoMemory);
  ring_frame_ = ring.release_value();
  slot_frame_ = slots.release_value();
  mm::PhysWindow w = memory::window();
  const mm::PhysAddr base = ring_frame_.start();
  ktl::Span<u8> page = w.bytes(base, mm::kPageSize);
  for (u8& b : w.bytes(slot_frame_.start(), mm::kPageSize)) b = 0;
  QueueMemory mem{{page.first(kAvailOffset), base.value()},
                  {page.subspan(kAvailOffset, kUsedOffset - kAvailOffset), base.value() + kAvailOffset},
                  {page.subspan(kUsedOffset), base.value() + kUsedOffset}};
  {
    ktl::LockGuard guard(lock_);
    if (queue_.init(queue_size_, mem).is_err()) return Err(BlkError::QueueUnavailable);
  }
  common_.write32(kQueueDesc, static_cast<u32>(base.value()));
  common_.write32(kQueueDesc + 4, static_cast<u32>(base.value() >> 32));
  common_.write32(kQueueDriver, static_cast<u32>(mem.available.phys));
  common_.write32(kQueueDriver + 4, static_cast<u32>(mem.available.phys >> 32));
  common_.write32(kQueueDevice, static_cast<u32>(mem.used.phys));
  common_.write32(kQueueDevice + 4, static_cast<u32>(mem.used.phys >> 32));

  // MSI-X (§4.1.5.1.2): entry 0 to this device's vector on the boot CPU; polling if refused.
  mode_ = CompletionMode::Polling;
  common_.write16(kConfigMsixVector, kNoVector);
  common_.write16(kQueueMsixVector, kNoVector);
  if (!layout.msix.has_value()) return ktl::ok();
  const Msix& msix = *layout.msix;
  auto table = map_region(f, msix.table);
  if (table.is_err()) {
    klog::warn("virtio-blk: {}: MSI-X table not mapped ({}): polling", f.address, table.error());
    return ktl::ok();
  }
  msix_table_ = table.value();
  const u32 vector = kVectorBase + index;
  msix_table_.write32(0, 0xfee0'0000u | ((arch::x86_64::boot_apic_id() & 0xffu) << 12));
  msix_table_.write32(4, 0);
  msix_table_.write32(8, vector);
  msix_table_.write32(12, 0);  // vector control: unmasked
  const u16 control_at = static_cast<u16>(msix.cap_offset + 2);
  const u16 control = pci::read16(config, f.address, control_at);
  pci::write16(config, f.address, control_at, static_cast<u16>((control | kMsixEnable) & ~kMsixFunctionMask));
  common_.write16(kConfigMsixVector, kNoVector);
  common_.write16(kQueueMsixVector, 0);
  if (common_.read16(kQueueMsixVector) == kNoVector) {
    klog::warn("virtio-blk: {}: the device refused MSI-X entry 0 for queue 0: polling", f.address);
    msix_table_.write32(12, 1);  // masked
    return ktl::ok();
  }
  mode_ = CompletionMode::Interrupt;
  return ktl::ok();
}

ktl::Span<u8> BlockDevice::slot_bytes(u32 slot) const {
  return memory::window().bytes(slot_frame_.start() + u64{slot} * kSlotBytes, kSlotBytes);
}

void BlockDevice::collect_locked(CompletionMode by) {
  for (;;) {
    auto c = queue_.next_used();
    if (c.is_err()) {
      if (!broken_.exchange(true))
        klog::error("virtio-blk: {}: device broke the used ring: {}; no more requests", address_, c.error());
      return;
    }
    if (!c.value().has_value()) return;
    const u16 head = c.value()->head;
    const u32 s = slot_of_head_[head];
    if (s >= kSlots || !slots_[s].busy || slots_[s].head != head) continue;  // cannot happen: queue validated
    (by == CompletionMode::Interrupt ? interrupt_completions_ : polled_completions_)
        .fetch_add(1, ktl::MemoryOrder::Relaxed);
    if (slots_[s].abandoned) {
      slots_[s] = Slot{};
    } else {
      done_[s].store(true, ktl::MemoryOrder::Release);
    }
  }
}

void BlockDevice::interrupt() {
  interrupts_.fetch_add(1, ktl::MemoryOrder::Relaxed);
  {
    ktl::LockGuard guard(lock_);
    collect_locked(CompletionMode::Interrupt);
  }
  if (sched::scheduler().initialized()) (void)sched::scheduler().wake_all(waiters_);
}

ktl::Result<void, BlkError> BlockDevice::request(u32 type, u64 sector, ktl::Span<const DmaSegment> data,
                                                 Wait wait) {
  auto failed = [this](BlkError e) {
    errors_.fetch_add(1, ktl::MemoryOrder::Relaxed);
    return Err(e);
  };
  if (queue_size_ == 0) return failed(BlkError::NoDevice);
  u64 total = 0;
  if (type != kTypeFlush) {
    if (data.empty() || data.size() > kMaxSegments || data.size() + 2 > queue_size_)
      return failed(BlkError::BadBuffer);
    mm::PhysWindow w = memory::window();
    for (const DmaSegment& d : data) {
      if (d.len == 0 || !w.covers(d.addr, d.len)) return failed(BlkError::BadBuffer);
      total += d.len;
    }
    if (total % kSectorSize != 0) return failed(BlkError::BadBuffer);
    const u64 sectors = total / kSectorSize;
    if (sector > capacity_ || sectors > capacity_ - sector) return failed(BlkError::OutOfRange);
    if (type == kTypeOut && read_only()) return failed(BlkError::ReadOnly);
  } else if ((features_ & kFeatureFlush) == 0) {
    return failed(BlkError::Unsupported);
  }
  if (broken_.load()) return failed(BlkError::DeviceBroken);

  const bool sleep = wait == Wait::Auto && mode_ == CompletionMode::Interrupt && interrupts_enabled() &&
                     sched::scheduler().initialized() && !irq::in_interrupt();
  const u64 deadline = time::now_ns() + kTimeoutNs;

  // Submit: a free slot and enough descriptors, else wait for completions to free them.
  u32 slot = kSlots;
  for (;;) {
    {
      ktl::LockGuard guard(lock_);
      collect_locked(CompletionMode::Polling);
      if (broken_.load()) return failed(BlkError::DeviceBroken);
      for (u32 s = 0; s < kSlots && slot == kSlots; ++s)
        if (!slots_[s].busy) slot = s;
      if (slot != kSlots && queue_.free_count() >= data.size() + 2) {
        ktl::Span<u8> bytes = slot_bytes(slot);
        for (u8& b : bytes) b = 0;
        bytes[0] = static_cast<u8>(type);
        for (u32 i = 0; i < 8; ++i) bytes[8 + i] = static_cast<u8>(sector >> (8 * i));
        bytes[16] = 0xff;  // status: the device overwrites it
        const u64 slot_phys = slot_frame_.start().value() + u64{slot} * kSlotBytes;
        ktl::Array<Segment, kMaxSegments + 2> chain{};
        usize n = 0;
        chain[n++] = Segment{slot_phys, 16, Access::DeviceReads};
        for (const DmaSegment& d : data)
          chain[n++] =
              Segment{d.addr.value(), d.len, type == kTypeIn ? Access::DeviceWrites : Access::DeviceReads};
        chain[n++] = Segment{slot_phys + 16, 1, Access::DeviceWrites};
        auto head = queue_.submit(chain.span().first(n));
        if (head.is_err()) return failed(BlkError::DeviceBroken);
        slots_[slot] = Slot{true, false, head.value()};
        slot_of_head_[head.value()] = static_cast<u8>(slot);
        done_[slot].store(false);
        requests_.fetch_add(1, ktl::MemoryOrder::Relaxed);
        if (queue_.in_flight() > max_in_flight_.load(ktl::MemoryOrder::Relaxed))
          max_in_flight_.store(queue_.in_flight(), ktl::MemoryOrder::Relaxed);
        if (queue_.needs_kick()) notify_.write16(notify_offset_, 0);
        break;
      }
      slot = kSlots;
    }
    if (time::now_ns() > deadline) return failed(BlkError::Timeout);
    if (sleep) {
      sched::scheduler().sleep_for(1'000'000);  // completions free slots and descriptors
    } else {
      __builtin_ia32_pause();
    }
  }

  // Wait for this request's completion.
  auto finished = [this, slot] { return done_[slot].load(ktl::MemoryOrder::Acquire) || broken_.load(); };
  if (sleep) {
    // In slices: a lost interrupt costs one slice, then this caller collects the ring itself.
    for (u64 now = time::now_ns(); !finished() && now < deadline; now = time::now_ns()) {
      const u64 slice = deadline - now < kRecheckNs ? deadline - now : kRecheckNs;
      if (!sched::scheduler().wait_until(waiters_, finished, slice)) {
        ktl::LockGuard guard(lock_);
        collect_locked(CompletionMode::Polling);
      }
    }
  } else {
    while (!finished() && time::now_ns() < deadline) {
      {
        ktl::LockGuard guard(lock_);
        collect_locked(CompletionMode::Polling);
      }
      if (!finished()) __builtin_ia32_pause();
    }
  }

  ktl::LockGuard guard(lock_);
  if (!done_[slot].load(ktl::MemoryOrder::Acquire)) {
    slots_[slot].abandoned = true;  // freed when (if) the device completes it
    return failed(broken_.load() ? BlkError::DeviceBroken : BlkError::Timeout);
  }
  const u8 status = slot_bytes(slot)[16];
  slots_[slot] = Slot{};
  done_[slot].store(false);
  switch (status) {
    case kBlkOk: bytes_.fetch_add(total, ktl::MemoryOrder::Relaxed); return ktl::ok();
    case kBlkUnsupp: return failed(BlkError::Unsupported);
    case kBlkIoErr:
    default: return failed(BlkError::DeviceError);
  }
}

ktl::Result<void, BlkError> BlockDevice::read(u64 sector, ktl::Span<const DmaSegment> into, Wait wait) {
  return request(kTypeIn, sector, into, wait);
}
ktl::Result<void, BlkError> BlockDevice::write(u64 sector, ktl::Span<const DmaSegment> from, Wait wait) {
  return request(kTypeOut, sector, from, wait);
}
ktl::Result<void, BlkError> BlockDevice::flush(Wait wait) {
  return request(kTypeFlush, 0, ktl::Span<const DmaSegment>(), wait);
}

BlkStats BlockDevice::stats() const {
  BlkStats s;
  s.requests = requests_.load(ktl::MemoryOrder::Relaxed);
  s.bytes = bytes_.load(ktl::MemoryOrder::Relaxed);
  s.errors = errors_.load(ktl::MemoryOrder::Relaxed);
  s.interrupts = interrupts_.load(ktl::MemoryOrder::Relaxed);
  s.interrupt_completions = interrupt_completions_.load(ktl::MemoryOrder::Relaxed);
  s.polled_completions = polled_completions_.load(ktl::MemoryOrder::Relaxed);
  s.max_in_flight = max_in_flight_.load(ktl::MemoryOrder::Relaxed);
  return s;
}

ktl::Result<u32, BlkError> probe_all() {
  static bool probed = false;
  if (probed) return g_count;  // once: the devices are live
  probed = true;
  u32 found = 0;
  ktl::Optional<BlkError> first_error;
  for (const pci::Function& f : pci_bus::functions()) {
    if (f.vendor != kVirtioVendor || (f.device != kBlockModernDevice && f.device != kBlockTransitionalDevice))
      continue;
    ++found;
    if (g_count == kMaxDevices) {
      klog::warn("virtio-blk: {}: more than {} devices, ignored", f.address, kMaxDevices);
      continue;
    }
    BlockDevice& d = g_devices[g_count];
    const u8 vector = static_cast<u8>(kVectorBase + g_count);
    if (!irq::table().has_handler(vector)) irq::table().set(vector, &on_interrupt, "virtio-blk");
    auto r = d.init(pci_bus::config(), f, g_count);
    if (r.is_err()) {
      klog::warn("virtio-blk: {} ({:04x}:{:04x}): not used: {}", f.address, u32{f.vendor}, u32{f.device},
                 r.error());
      if (!first_error.has_value()) first_error = r.error();
      continue;
    }
    klog::info(
        "virtio-blk: {} ({:04x}:{:04x}): {} sectors ({} KiB), block size {}, features {:#x}{}, queue {}, {}",
        f.address, u32{f.vendor}, u32{f.device}, d.capacity_sectors(), d.capacity_sectors() / 2,
        d.block_size(), d.features(), d.read_only() ? " (read-only)" : "", u32{d.queue_size()},
        to_string(d.mode()));
    ++g_count;
  }
  if (found == 0) klog::info("virtio-blk: no devices");
  if (g_count == 0 && first_error.has_value()) return Err(*first_error);
  return g_count;
}

u32 device_count() { return g_count; }
BlockDevice* device(u32 index) { return index < g_count ? &g_devices[index] : nullptr; }

}  // namespace kernel::virtio
