// In-kernel tests of kernel.virtio_blk against QEMU's virtio-blk-pci with the pattern disk
// (make_test_disk.py: sector n starts with n as a le64, then bytes (n * 7 + i) & 0xff) attached as
// the first virtio-blk device. Only in the kernel; the boot tests attach the disk.
#include <ktest/ktest.h>
#include <ktl/macros.h>

import ktl;
import ktest;
import kernel.log;
import kernel.memory;
import kernel.sched;
import kernel.tasks;
import kernel.virtio_blk;
import mm.addr;
import mm.arch;
import mm.pmm;
import arch.x86_64.cpu;

namespace {

using kernel::virtio::BlkError;
using kernel::virtio::BlockDevice;
using kernel::virtio::DmaSegment;
using ktl::u32;
using ktl::u64;
using ktl::u8;
using ktl::usize;

constexpr u64 kDiskSectors = 8192;

u8 pattern_byte(u64 sector, usize i) {
  if (i < 8) return static_cast<u8>(sector >> (8 * i));
  return static_cast<u8>((sector * 7 + i) & 0xff);
}

// The sector at `bytes` holds the pattern of `sector`: the index of the first bad byte, or 512.
usize first_mismatch(ktl::Span<const u8> bytes, u64 sector) {
  for (usize i = 0; i < 512; ++i)
    if (bytes[i] != pattern_byte(sector, i)) return i;
  return 512;
}

ktl::Span<u8> bytes_of_frame(const mm::AllocatedFrames& f) {
  return kernel::memory::window().bytes(f.start(), f.size_bytes());
}

void fill(ktl::Span<u8> b, u8 v) {
  for (u8& x : b) x = v;
}

KTEST(VirtioBlk, TheDiskIsFoundWithItsCapacity) {
  KASSERT(kernel::virtio::device_count() >= 1);
  BlockDevice* d = kernel::virtio::device(0);
  KASSERT(d != nullptr);
  KEXPECT(kernel::virtio::device(kernel::virtio::device_count()) == nullptr);
  KEXPECT_EQ(d->capacity_sectors(), kDiskSectors);
  KEXPECT_EQ(d->sector_size(), 512u);
  KEXPECT((d->features() & kernel::virtio::kFeatureVersion1) != 0);
  KEXPECT(!d->read_only());
}

KTEST(VirtioBlk, ReadsSectorsWithTheirPattern) {
  BlockDevice* d = kernel::virtio::device(0);
  KASSERT(d != nullptr);
  auto frame = KTRY(kernel::memory::pmm().alloc_page());
  ktl::Span<u8> b = bytes_of_frame(frame);
  const ktl::Array<u64, 4> sectors{0, 1, 777, kDiskSectors - 8};
  for (u64 sector : sectors) {
    fill(b, 0xee);
    DmaSegment seg[] = {{frame.start(), 4096}};
    KASSERT_OK(d->read(sector, ktl::Span<const DmaSegment>(seg)));
    for (u64 k = 0; k < 8; ++k) KEXPECT_EQ(first_mismatch(b.subspan(512 * k, 512), sector + k), usize{512});
  }
}

KTEST(VirtioBlk, AReadScattersIntoSeveralFrames) {
  BlockDevice* d = kernel::virtio::device(0);
  KASSERT(d != nullptr);
  auto a = KTRY(kernel::memory::pmm().alloc_page());
  auto b = KTRY(kernel::memory::pmm().alloc_page());
  auto c = KTRY(kernel::memory::pmm().alloc_page());
  fill(bytes_of_frame(a), 0);
  fill(bytes_of_frame(b), 0);
  fill(bytes_of_frame(c), 0);
  // 512 bytes at the end of a, 2048 in the middle of b, 1536 at the start of c: 8 sectors from 100.
  DmaSegment segs[] = {{a.start() + 3584, 512}, {b.start() + 1024, 2048}, {c.start(), 1536}};
  KASSERT_OK(d->read(100, ktl::Span<const DmaSegment>(segs)));
  KEXPECT_EQ(first_mismatch(bytes_of_frame(a).subspan(3584, 512), 100), usize{512});
  for (u64 k = 0; k < 4; ++k)
    KEXPECT_EQ(first_mismatch(bytes_of_frame(b).subspan(1024 + 512 * k, 512), 101 + k), usize{512});
  for (u64 k = 0; k < 3; ++k)
    KEXPECT_EQ(first_mismatch(bytes_of_frame(c).subspan(512 * k, 512), 105 + k), usize{512});
  // Nothing outside the segments was touched.
  KEXPECT_EQ(bytes_of_frame(a)[3583], 0);
  KEXPECT_EQ(bytes_of_frame(b)[1023], 0);
  KEXPECT_EQ(bytes_of_frame(b)[3072], 0);
  KEXPECT_EQ(bytes_of_frame(c)[1536], 0);
}

KTEST(VirtioBlk, AWriteIsReadBackAfterAFlush) {
  BlockDevice* d = kernel::virtio::device(0);
  KASSERT(d != nullptr);
  auto out = KTRY(kernel::memory::pmm().alloc_page());
  auto in = KTRY(kernel::memory::pmm().alloc_page());
  ktl::Span<u8> o = bytes_of_frame(out);
  const u64 seed = kernel::virtio::device(0)->stats().requests;  // differs from run to run of the suite
  for (usize i = 0; i < 1024; ++i) o[i] = static_cast<u8>(i * 13 + seed);
  DmaSegment w[] = {{out.start(), 1024}};
  KASSERT_OK(d->write(4000, ktl::Span<const DmaSegment>(w)));
  KASSERT_OK(d->flush());
  fill(bytes_of_frame(in), 0);
  DmaSegment r[] = {{in.start(), 1024}};
  KASSERT_OK(d->read(4000, ktl::Span<const DmaSegment>(r)));
  ktl::Span<u8> got = bytes_of_frame(in);
  usize bad = 1024;
  for (usize i = 0; i < 1024 && bad == 1024; ++i)
    if (got[i] != o[i]) bad = i;
  KEXPECT_EQ(bad, usize{1024});
  // The neighbours keep their pattern.
  DmaSegment n[] = {{in.start(), 512}};
  KASSERT_OK(d->read(4002, ktl::Span<const DmaSegment>(n)));
  KEXPECT_EQ(first_mismatch(bytes_of_frame(in).first(512), 4002), usize{512});
}

KTEST(VirtioBlk, BadRequestsFailBeforeReachingTheDevice) {
  BlockDevice* d = kernel::virtio::device(0);
  KASSERT(d != nullptr);
  auto frame = KTRY(kernel::memory::pmm().alloc_page());
  const u64 before = d->stats().requests;
  DmaSegment two[] = {{frame.start(), 1024}};
  auto past = d->read(kDiskSectors - 1, ktl::Span<const DmaSegment>(two));
  KASSERT(past.is_err());
  KEXPECT_EQ(past.error(), BlkError::OutOfRange);
  auto far = d->read(~u64{0} - 1, ktl::Span<const DmaSegment>(two));
  KASSERT(far.is_err());
  KEXPECT_EQ(far.error(), BlkError::OutOfRange);
  DmaSegment odd[] = {{frame.start(), 100}};
  auto bad = d->read(0, ktl::Span<const DmaSegment>(odd));
  KASSERT(bad.is_err());
  KEXPECT_EQ(bad.error(), BlkError::BadBuffer);
  auto none = d->write(0, ktl::Span<const DmaSegment>());
  KASSERT(none.is_err());
  KEXPECT_EQ(none.error(), BlkError::BadBuffer);
  DmaSegment outside[] = {{mm::PhysAddr::unchecked(u64{1} << 50), 512}};
  auto no_ram = d->read(0, ktl::Span<const DmaSegment>(outside));
  KASSERT(no_ram.is_err());
  KEXPECT_EQ(no_ram.error(), BlkError::BadBuffer);
  KEXPECT_EQ(d->stats().requests, before);  // none was submitted
  // The last sector itself is in range.
  DmaSegment one[] = {{frame.start(), 512}};
  KEXPECT_OK(d->read(kDiskSectors - 1, ktl::Span<const DmaSegment>(one)));
  KEXPECT_EQ(first_mismatch(bytes_of_frame(frame).first(512), kDiskSectors - 1), usize{512});
}

KTEST(VirtioBlk, CompletionsArriveByInterrupt) {
  BlockDevice* d = kernel::virtio::device(0);
  KASSERT(d != nullptr);
  KEXPECT_EQ(d->mode(), kernel::virtio::CompletionMode::Interrupt);
  auto frame = KTRY(kernel::memory::pmm().alloc_page());
  kernel::virtio::BlkStats before = d->stats();
  for (u64 i = 0; i < 4; ++i) {
    DmaSegment seg[] = {{frame.start(), 512}};
    KASSERT_OK(d->read(i * 3, ktl::Span<const DmaSegment>(seg)));
    KEXPECT_EQ(first_mismatch(bytes_of_frame(frame).first(512), i * 3), usize{512});
  }
  kernel::virtio::BlkStats after = d->stats();
  KEXPECT_EQ(after.requests, before.requests + 4);
  KEXPECT(after.interrupts > before.interrupts);
  KEXPECT(after.interrupt_completions > before.interrupt_completions);
  KEXPECT_EQ(after.bytes, before.bytes + 4 * 512);
}

KTEST(VirtioBlk, PollingWorksAskedForAndWithInterruptsOff) {
  BlockDevice* d = kernel::virtio::device(0);
  KASSERT(d != nullptr);
  auto frame = KTRY(kernel::memory::pmm().alloc_page());
  kernel::virtio::BlkStats before = d->stats();
  DmaSegment seg[] = {{frame.start(), 512}};
  KASSERT_OK(d->read(42, ktl::Span<const DmaSegment>(seg), kernel::virtio::Wait::Poll));
  KEXPECT_EQ(first_mismatch(bytes_of_frame(frame).first(512), 42), usize{512});
  {
    ktl::InterruptsOff off;
    KASSERT_OK(d->read(43, ktl::Span<const DmaSegment>(seg)));
    KEXPECT_EQ((arch::x86_64::read_rflags() >> 9) & 1, u64{0});
  }
  KEXPECT_EQ(first_mismatch(bytes_of_frame(frame).first(512), 43), usize{512});
  kernel::virtio::BlkStats after = d->stats();
  // The interrupt handler may collect the first one (interrupts were on); the second it cannot.
  KEXPECT(after.polled_completions >= before.polled_completions + 1);
  KEXPECT_EQ(after.polled_completions + after.interrupt_completions,
             before.polled_completions + before.interrupt_completions + 2);
}

// Three tasks reading at once: each request waits for its own completion, several in flight.
struct Reader {
  u64 first_sector = 0;
  ktl::Atomic<u32> mismatches{0};
  ktl::Atomic<u32> failures{0};
};

void reader_task(void* arg) {
  auto* r = static_cast<Reader*>(arg);
  BlockDevice* d = kernel::virtio::device(0);
  auto frame = kernel::memory::pmm().alloc_page();
  if (frame.is_err() || d == nullptr) {
    r->failures.fetch_add(1);
    return;
  }
  for (u64 i = 0; i < 16; ++i) {
    const u64 sector = r->first_sector + i * 8;
    DmaSegment seg[] = {{frame.value().start(), 4096}};
    if (d->read(sector, ktl::Span<const DmaSegment>(seg)).is_err()) {
      r->failures.fetch_add(1);
      continue;
    }
    for (u64 k = 0; k < 8; ++k)
      if (first_mismatch(bytes_of_frame(frame.value()).subspan(512 * k, 512), sector + k) != 512)
        r->mismatches.fetch_add(1);
  }
}

KTEST(VirtioBlk, ConcurrentReadersEachGetTheirOwnData) {
  BlockDevice* d = kernel::virtio::device(0);
  KASSERT(d != nullptr);
  const u64 before = d->stats().requests;
  ktl::Array<Reader, 3> readers{};
  for (u32 k = 0; k < 3; ++k) readers[k].first_sector = 1000 + u64{k} * 2000;
  auto a = kernel::tasks::spawn("blk-a", kernel::sched::Priority::Normal, &reader_task, &readers[0]);
  auto b = kernel::tasks::spawn("blk-b", kernel::sched::Priority::Normal, &reader_task, &readers[1]);
  auto c = kernel::tasks::spawn("blk-c", kernel::sched::Priority::Normal, &reader_task, &readers[2]);
  KASSERT_OK(a);
  KASSERT_OK(b);
  KASSERT_OK(c);
  (void)a.value().join();
  (void)b.value().join();
  (void)c.value().join();
  for (const Reader& r : readers) {
    KEXPECT_EQ(r.failures.load(), 0u);
    KEXPECT_EQ(r.mismatches.load(), 0u);
  }
  KEXPECT_EQ(d->stats().requests, before + 48);
  klog::info("virtio-blk: concurrent readers: at most {} requests in flight", d->stats().max_in_flight);
  // Each reader sleeps after submitting, so the others submit meanwhile (TCG takes > 1 ms per I/O).
  KEXPECT(d->stats().max_in_flight >= 2);
}

KTEST(VirtioBlk, ErrorsHaveTexts) {
  ktl::EnumTextCheck c = ktl::check_enum_text<BlkError>();
  KEXPECT(c.ok);
  KEXPECT_EQ(c.count, 16u);
  ktl::EnumTextCheck m = ktl::check_enum_text<kernel::virtio::CompletionMode>();
  KEXPECT(m.ok);
  KEXPECT_EQ(m.count, 2u);
}

}  // namespace
