// kernel.virtio.queue over plain memory, with a fake device that consumes the available ring
// (walking the descriptor table the driver wrote) and writes the used ring, and misbehaving ones.
#include <gtest/gtest.h>
#include <ktl/macros.h>

#include <cstdint>
#include <cstring>
#include <vector>

import ktl;
import kernel.virtio.queue;

namespace {

using namespace kernel::virtio;

struct alignas(4096) Memory {
  std::uint8_t desc[4096];
  std::uint8_t avail[4096];
  std::uint8_t used[4096];
};

std::uint64_t addr_of(const void* p) { return ktl::address_of(p); }

QueueMemory memory_of(Memory& m) {
  return QueueMemory{{ktl::Span<ktl::u8>(m.desc), addr_of(m.desc)},
                     {ktl::Span<ktl::u8>(m.avail), addr_of(m.avail)},
                     {ktl::Span<ktl::u8>(m.used), addr_of(m.used)}};
}

template <class T>
T get(const std::uint8_t* base, std::size_t at) {
  T v;
  std::memcpy(&v, base + at, sizeof v);
  return v;
}
template <class T>
void put(std::uint8_t* base, std::size_t at, T v) {
  std::memcpy(base + at, &v, sizeof v);
}

// Reads the available ring as a device would and completes chains: device-writable buffers are
// filled with `fill`, the used length is the writable bytes. Records what it saw.
struct FakeDevice {
  Memory& m;
  std::uint16_t size;
  std::uint16_t last_avail = 0;
  std::uint16_t used_idx = 0;
  struct Seen {
    std::uint16_t head;
    std::vector<std::pair<std::uint32_t, bool>> segs;  // len, writable
    std::uint32_t written;
  };
  std::vector<Seen> pending;

  // Takes everything published, without completing it.
  void consume() {
    std::uint16_t idx = get<std::uint16_t>(m.avail, 2);
    while (last_avail != idx) {
      std::uint16_t head = get<std::uint16_t>(m.avail, 4 + 2 * (last_avail % size));
      ++last_avail;
      Seen s{head, {}, 0};
      std::uint16_t d = head;
      for (int guard = 0; guard <= size; ++guard) {
        std::uint64_t a = get<std::uint64_t>(m.desc, 16u * d);
        std::uint32_t len = get<std::uint32_t>(m.desc, 16u * d + 8);
        std::uint16_t flags = get<std::uint16_t>(m.desc, 16u * d + 12);
        bool w = (flags & kDescFlagWrite) != 0;
        if (w) {
          KTL_UNSAFE_BUFFER_BEGIN  // the driver's segment addresses are host pointers in this test
          std::memset(reinterpret_cast<void*>(static_cast<std::uintptr_t>(a)), 0xab, len);
          KTL_UNSAFE_BUFFER_END
          s.written += len;
        }
        s.segs.push_back({len, w});
        if ((flags & kDescFlagNext) == 0) break;
        d = get<std::uint16_t>(m.desc, 16u * d + 14);
      }
      pending.push_back(s);
    }
  }
  void complete(std::uint32_t id, std::uint32_t len) {
    put<std::uint32_t>(m.used, 4 + 8 * (used_idx % size), id);
    put<std::uint32_t>(m.used, 8 + 8 * (used_idx % size), len);
    ++used_idx;
    put<std::uint16_t>(m.used, 2, used_idx);
  }
  void complete_all() {
    consume();
    for (const Seen& s : pending) complete(s.head, s.written);
    pending.clear();
  }
};

struct Fixture : ::testing::Test {
  Memory* mem = new Memory{};
  SplitQueue q;
  ~Fixture() override { delete mem; }
};

using VirtQueue = Fixture;

TEST_F(VirtQueue, InitChecksSizeMemoryAndAlignment) {
  EXPECT_EQ(q.init(0, memory_of(*mem)).error(), QueueError::BadSize);
  EXPECT_EQ(q.init(6, memory_of(*mem)).error(), QueueError::BadSize);
  EXPECT_EQ(q.init(512, memory_of(*mem)).error(), QueueError::BadSize);
  QueueMemory small = memory_of(*mem);
  small.used.bytes = small.used.bytes.first(used_ring_bytes(256) - 1);
  EXPECT_EQ(q.init(256, small).error(), QueueError::MemoryTooSmall);
  EXPECT_TRUE(q.init(128, small).is_ok());
  QueueMemory odd = memory_of(*mem);
  odd.descriptors.bytes = odd.descriptors.bytes.subspan(8);
  odd.descriptors.phys += 8;
  EXPECT_EQ(q.init(8, odd).error(), QueueError::Misaligned);
  QueueMemory odd_phys = memory_of(*mem);
  odd_phys.used.phys += 2;
  EXPECT_EQ(q.init(8, odd_phys).error(), QueueError::Misaligned);
  Segment s[] = {{0x1000, 16, Access::DeviceReads}};
  SplitQueue fresh;
  EXPECT_EQ(fresh.submit(ktl::Span<const Segment>(s)).error(), QueueError::NotInitialized);
  EXPECT_EQ(fresh.next_used().error(), QueueError::NotInitialized);
}

TEST_F(VirtQueue, ChainsReachTheDeviceInOrderAndComplete) {
  ASSERT_TRUE(q.init(8, memory_of(*mem)).is_ok());
  FakeDevice dev{*mem, 8, 0, 0, {}};
  std::uint8_t hdr[16] = {1, 2, 3};
  std::uint8_t data[1024] = {};
  std::uint8_t status = 0x55;
  Segment chain[] = {{addr_of(hdr), 16, Access::DeviceReads},
                     {addr_of(data), 512, Access::DeviceWrites},
                     {addr_of(data + 512), 512, Access::DeviceWrites},
                     {addr_of(&status), 1, Access::DeviceWrites}};
  auto head = q.submit(ktl::Span<const Segment>(chain));
  ASSERT_TRUE(head.is_ok());
  EXPECT_EQ(q.free_count(), 4);
  EXPECT_EQ(q.in_flight(), 1);
  EXPECT_TRUE(q.needs_kick());
  EXPECT_FALSE(q.next_used().value().has_value());  // nothing used yet
  dev.consume();
  ASSERT_EQ(dev.pending.size(), 1u);
  EXPECT_EQ(dev.pending[0].head, head.value());
  ASSERT_EQ(dev.pending[0].segs.size(), 4u);
  EXPECT_EQ(dev.pending[0].segs[0], (std::pair<std::uint32_t, bool>{16, false}));
  EXPECT_EQ(dev.pending[0].segs[1], (std::pair<std::uint32_t, bool>{512, true}));
  EXPECT_EQ(dev.pending[0].segs[3], (std::pair<std::uint32_t, bool>{1, true}));
  dev.complete(dev.pending[0].head, dev.pending[0].written);
  dev.pending.clear();
  auto c = q.next_used();
  ASSERT_TRUE(c.is_ok());
  ASSERT_TRUE(c.value().has_value());
  EXPECT_EQ(c.value()->head, head.value());
  EXPECT_EQ(c.value()->len, 1025u);
  EXPECT_EQ(status, 0xab);
  EXPECT_EQ(data[700], 0xab);
  EXPECT_EQ(q.free_count(), 8);
  EXPECT_EQ(q.in_flight(), 0);
  put<std::uint16_t>(mem->used, 0, kUsedFlagNoNotify);
  EXPECT_FALSE(q.needs_kick());
}

TEST_F(VirtQueue, ManyChainsWrapTheRingsAndRecycleDescriptors) {
  ASSERT_TRUE(q.init(4, memory_of(*mem)).is_ok());
  FakeDevice dev{*mem, 4, 0, 0, {}};
  std::uint8_t buf[64];
  std::size_t completed = 0;
  // 70000 chains: both 16-bit indices wrap.
  for (int round = 0; round < 35000; ++round) {
    Segment a[] = {{addr_of(buf), 8, Access::DeviceReads}, {addr_of(buf + 8), 8, Access::DeviceWrites}};
    auto h1 = q.submit(ktl::Span<const Segment>(a));
    auto h2 = q.submit(ktl::Span<const Segment>(a));
    ASSERT_TRUE(h1.is_ok() && h2.is_ok());
    EXPECT_NE(h1.value(), h2.value());
    EXPECT_EQ(q.submit(ktl::Span<const Segment>(a)).error(), QueueError::Full);
    dev.complete_all();
    for (;;) {
      auto c = q.next_used();
      ASSERT_TRUE(c.is_ok()) << to_string(c.error());
      if (!c.value().has_value()) break;
      EXPECT_EQ(c.value()->len, 8u);
      ++completed;
    }
    ASSERT_EQ(q.free_count(), 4);
  }
  EXPECT_EQ(completed, 70000u);
}

TEST_F(VirtQueue, BadChainsAreRefusedWithoutWritingAnything) {
  ASSERT_TRUE(q.init(4, memory_of(*mem)).is_ok());
  std::uint8_t buf[8];
  Segment empty_len[] = {{addr_of(buf), 0, Access::DeviceReads}};
  EXPECT_EQ(q.submit(ktl::Span<const Segment>(empty_len)).error(), QueueError::EmptySegment);
  EXPECT_EQ(q.submit(ktl::Span<const Segment>()).error(), QueueError::EmptyChain);
  Segment backwards[] = {{addr_of(buf), 1, Access::DeviceWrites}, {addr_of(buf), 1, Access::DeviceReads}};
  EXPECT_EQ(q.submit(ktl::Span<const Segment>(backwards)).error(), QueueError::ReadableAfterWritable);
  Segment five[5] = {
      {addr_of(buf), 1}, {addr_of(buf), 1}, {addr_of(buf), 1}, {addr_of(buf), 1}, {addr_of(buf), 1}};
  EXPECT_EQ(q.submit(ktl::Span<const Segment>(five)).error(), QueueError::ChainTooLong);
  EXPECT_EQ(get<std::uint16_t>(mem->avail, 2), 0);
  EXPECT_EQ(q.free_count(), 4);
}

// Misbehaving devices: each error breaks the queue for good, and nothing is freed twice.
struct Misbehaviour {
  const char* name;
  void (*act)(FakeDevice&, std::uint16_t head);
  QueueError expected;
};

class VirtQueueBadDevice : public Fixture, public ::testing::WithParamInterface<Misbehaviour> {};

TEST_P(VirtQueueBadDevice, GetsAnErrorAndTheQueueStaysBroken) {
  ASSERT_TRUE(q.init(8, memory_of(*mem)).is_ok());
  FakeDevice dev{*mem, 8, 0, 0, {}};
  std::uint8_t buf[16];
  Segment a[] = {{addr_of(buf), 8, Access::DeviceReads}, {addr_of(buf + 8), 4, Access::DeviceWrites}};
  auto h = q.submit(ktl::Span<const Segment>(a));
  ASSERT_TRUE(h.is_ok());
  dev.consume();
  GetParam().act(dev, h.value());
  // A good completion first where the misbehaviour needs one (duplicate): collect until the error.
  QueueError got = QueueError::NotInitialized;
  for (int i = 0; i < 4; ++i) {
    auto c = q.next_used();
    if (c.is_err()) {
      got = c.error();
      break;
    }
    if (!c.value().has_value()) break;
  }
  EXPECT_EQ(got, GetParam().expected);
  EXPECT_TRUE(q.broken());
  EXPECT_EQ(q.next_used().error(), QueueError::Broken);
  EXPECT_EQ(q.submit(ktl::Span<const Segment>(a)).error(), QueueError::Broken);
  EXPECT_LE(q.free_count(), 8);
}

INSTANTIATE_TEST_SUITE_P(
    All, VirtQueueBadDevice,
    ::testing::Values(
        Misbehaviour{"IdOutOfRange", [](FakeDevice& d, std::uint16_t) { d.complete(8, 4); },
                     QueueError::BadUsedId},
        Misbehaviour{"HugeId", [](FakeDevice& d, std::uint16_t) { d.complete(0xffff'0000u, 4); },
                     QueueError::BadUsedId},
        Misbehaviour{"IdNotAHead", [](FakeDevice& d, std::uint16_t h) { d.complete((h + 1u) % 8u, 4); },
                     QueueError::NotInFlight},
        Misbehaviour{"IdNeverSubmitted", [](FakeDevice& d, std::uint16_t h) { d.complete((h + 3u) % 8u, 4); },
                     QueueError::NotInFlight},
        Misbehaviour{"DuplicateCompletion",
                     [](FakeDevice& d, std::uint16_t h) {
                       d.complete(h, 4);
                       d.complete(h, 4);
                     },
                     QueueError::NotInFlight},
        Misbehaviour{"LengthTooLong", [](FakeDevice& d, std::uint16_t h) { d.complete(h, 5); },
                     QueueError::BadUsedLength},
        Misbehaviour{"IndexJump",
                     [](FakeDevice& d, std::uint16_t h) {
                       d.complete(h, 4);
                       d.used_idx = static_cast<std::uint16_t>(d.used_idx + 100);
                       put<std::uint16_t>(d.m.used, 2, d.used_idx);
                     },
                     QueueError::UsedIndexJump}),
    [](const ::testing::TestParamInfo<Misbehaviour>& i) { return std::string(i.param.name); });

TEST_F(VirtQueue, AScribbledDescriptorTableDoesNotChangeWhatIsFreed) {
  ASSERT_TRUE(q.init(4, memory_of(*mem)).is_ok());
  FakeDevice dev{*mem, 4, 0, 0, {}};
  std::uint8_t buf[16];
  Segment a[] = {{addr_of(buf), 8, Access::DeviceReads}, {addr_of(buf + 8), 4, Access::DeviceWrites}};
  auto h = q.submit(ktl::Span<const Segment>(a));
  ASSERT_TRUE(h.is_ok());
  dev.consume();
  std::memset(mem->desc, 0xff, 64);  // the device rewrites every link
  dev.complete(h.value(), 4);
  ASSERT_TRUE(q.next_used().value().has_value());
  EXPECT_EQ(q.free_count(), 4);
  // All four descriptors are usable again, each once.
  Segment four[] = {{addr_of(buf), 1}, {addr_of(buf), 1}, {addr_of(buf), 1}, {addr_of(buf), 1}};
  EXPECT_TRUE(q.submit(ktl::Span<const Segment>(four)).is_ok());
}

TEST(VirtQueueErrors, HaveTexts) {
  ktl::EnumTextCheck c = ktl::check_enum_text<QueueError>();
  EXPECT_TRUE(c.ok) << c.bad;
  EXPECT_EQ(c.count, 14u);
}

}  // namespace
