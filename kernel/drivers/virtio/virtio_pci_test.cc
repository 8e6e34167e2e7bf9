// kernel.virtio.pci over kernel.pci's configuration-space model: QEMU's modern virtio-blk layout
// (common/ISR/device/notify in BAR4, MSI-X in BAR1) and the ways a capability list can be wrong.
#include <gtest/gtest.h>

#include <vector>

#include "kernel/pci/pci_model.h"

import ktl;
import kernel.pci;
import kernel.virtio.pci;

namespace {

using kernel::pci::Function;
using kernel::virtio::Layout;
using kernel::virtio::VirtioPciError;
using pci_model::FakeConfig;
using pci_model::FakeFunction;

void vcap(FakeFunction& f, int at, int next, int type, int bar, std::uint32_t offset, std::uint32_t length,
          int cap_len = 16) {
  f.bytes[static_cast<size_t>(at)] = 0x09;
  f.bytes[static_cast<size_t>(at + 1)] = static_cast<std::uint8_t>(next);
  f.bytes[static_cast<size_t>(at + 2)] = static_cast<std::uint8_t>(cap_len);
  f.bytes[static_cast<size_t>(at + 3)] = static_cast<std::uint8_t>(type);
  f.bytes[static_cast<size_t>(at + 4)] = static_cast<std::uint8_t>(bar);
  FakeConfig::put32(f, at + 8, offset);
  FakeConfig::put32(f, at + 12, length);
}

// QEMU 7.2's virtio-blk-pci with disable-legacy=on (research notes D.2).
struct Device {
  FakeConfig c;
  FakeFunction* f = nullptr;
  Device() {
    f = &c.add(0, 3, 0, 0x1af4, 0x1042, 0x01, 0x00);
    FakeConfig::put32(*f, 0x14, 0xc0001000);  // BAR1 mem32
    f->bar_sizes[1] = 0x1000;
    FakeConfig::put32(*f, 0x20, 0x0000000c);  // BAR4 mem64 prefetchable at 0xe0_0000_0000
    FakeConfig::put32(*f, 0x24, 0x000000e0);
    f->bar_sizes[4] = 0x4000;
    FakeConfig::put32(*f, 0x04, 0x00100007);
    f->bytes[0x34] = 0x98;
    f->bytes[0x98] = 0x11;  // MSI-X: 2 entries, table BAR1+0, PBA BAR1+0x800
    f->bytes[0x99] = 0x84;
    FakeConfig::put16(*f, 0x9a, 0x0001);
    FakeConfig::put32(*f, 0x9c, 0x00000001);
    FakeConfig::put32(*f, 0xa0, 0x00000801);
    vcap(*f, 0x84, 0x70, 1, 4, 0x0000, 0x1000);      // common
    vcap(*f, 0x70, 0x60, 2, 4, 0x3000, 0x1000, 20);  // notify
    FakeConfig::put32(*f, 0x80, 4);                  // notify_off_multiplier
    vcap(*f, 0x60, 0x50, 3, 4, 0x1000, 0x1000);      // ISR
    vcap(*f, 0x50, 0x40, 4, 4, 0x2000, 0x1000);      // device
    vcap(*f, 0x40, 0x00, 5, 0, 0, 0, 20);            // PCI cfg access (skipped)
  }
  ktl::Result<Layout, VirtioPciError> parse() {
    auto fn = kernel::pci::probe(c, kernel::pci::Address{0, 0, 3, 0}, kernel::pci::SizeBars::Yes);
    EXPECT_TRUE(fn.has_value());
    return kernel::virtio::parse_layout(c, *fn);
  }
};

TEST(VirtioPci, FindsQemusLayout) {
  Device d;
  auto r = d.parse();
  ASSERT_TRUE(r.is_ok()) << to_string(r.error());
  const Layout& l = r.value();
  EXPECT_EQ(l.common.bar, 4);
  EXPECT_EQ(l.common.offset, 0u);
  EXPECT_EQ(l.isr.offset, 0x1000u);
  EXPECT_EQ(l.device.offset, 0x2000u);
  EXPECT_EQ(l.notify.offset, 0x3000u);
  EXPECT_EQ(l.notify.length, 0x1000u);
  EXPECT_EQ(l.notify_off_multiplier, 4u);
  ASSERT_TRUE(l.msix.has_value());
  EXPECT_EQ(l.msix->cap_offset, 0x98);
  EXPECT_EQ(l.msix->table_size, 2);
  EXPECT_EQ(l.msix->table.bar, 1);
  EXPECT_EQ(l.msix->table.offset, 0u);
  EXPECT_EQ(l.msix->table.length, 32u);
  EXPECT_EQ(l.msix->pba.offset, 0x800u);
}

TEST(VirtioPci, TheFirstCapabilityOfATypeWins) {
  Device d;
  d.f->bytes[0x41] = 0xb0;  // after the PCI-cfg cap: a second ISR cap elsewhere
  vcap(*d.f, 0xb0, 0x00, 3, 4, 0x3800, 4);
  auto r = d.parse();
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(r.value().isr.offset, 0x1000u);
}

TEST(VirtioPci, WithoutMsixTheLayoutHasNone) {
  Device d;
  d.f->bytes[0x34] = 0x84;
  auto r = d.parse();
  ASSERT_TRUE(r.is_ok());
  EXPECT_FALSE(r.value().msix.has_value());
}

struct Breakage {
  const char* name;
  void (*apply)(FakeFunction&);
  VirtioPciError expected;
};

class VirtioPciBad : public ::testing::TestWithParam<Breakage> {};

TEST_P(VirtioPciBad, IsAClearError) {
  Device d;
  GetParam().apply(*d.f);
  auto r = d.parse();
  ASSERT_TRUE(r.is_err());
  EXPECT_EQ(r.error(), GetParam().expected) << to_string(r.error());
}

INSTANTIATE_TEST_SUITE_P(
    All, VirtioPciBad,
    ::testing::Values(
        Breakage{"NoList", [](FakeFunction& f) { FakeConfig::put32(f, 0x04, 0x00000007); },
                 VirtioPciError::NoCapabilities},
        Breakage{"Loop", [](FakeFunction& f) { f.bytes[0x41] = 0x84; }, VirtioPciError::CapabilityLoop},
        Breakage{"PointerIntoHeader", [](FakeFunction& f) { f.bytes[0x51] = 0x20; },
                 VirtioPciError::BadCapabilityPointer},
        Breakage{"UnalignedPointer", [](FakeFunction& f) { f.bytes[0x51] = 0x41; },
                 VirtioPciError::BadCapabilityPointer},
        Breakage{"PointerPastTheSpace", [](FakeFunction& f) { f.bytes[0x51] = 0xfe; },
                 VirtioPciError::BadCapabilityPointer},
        Breakage{"ShortNotifyCap", [](FakeFunction& f) { f.bytes[0x72] = 16; },
                 VirtioPciError::ShortCapability},
        Breakage{"BarIndexTooHigh", [](FakeFunction& f) { f.bytes[0x88] = 6; }, VirtioPciError::BadBarIndex},
        Breakage{"AbsentBar", [](FakeFunction& f) { f.bytes[0x88] = 2; }, VirtioPciError::BarNotMemory},
        Breakage{"PastTheBar", [](FakeFunction& f) { FakeConfig::put32(f, 0x5c, 0x2001); },
                 VirtioPciError::OutsideBar},
        Breakage{"OffsetPastTheBar", [](FakeFunction& f) { FakeConfig::put32(f, 0x58, 0xffff'f000u); },
                 VirtioPciError::OutsideBar},
        Breakage{"CommonTooShort", [](FakeFunction& f) { FakeConfig::put32(f, 0x90, 0x37); },
                 VirtioPciError::TooShort},
        Breakage{"Overlap", [](FakeFunction& f) { FakeConfig::put32(f, 0x68, 0x2800); },
                 VirtioPciError::Overlap},
        Breakage{"OddMultiplier", [](FakeFunction& f) { FakeConfig::put32(f, 0x80, 3); },
                 VirtioPciError::OddNotifyMultiplier},
        Breakage{"NoCommon", [](FakeFunction& f) { f.bytes[0x99] = 0x70; }, VirtioPciError::MissingCommon},
        Breakage{"NoNotify", [](FakeFunction& f) { f.bytes[0x85] = 0x60; }, VirtioPciError::MissingNotify},
        Breakage{"NoIsr", [](FakeFunction& f) { f.bytes[0x71] = 0x50; }, VirtioPciError::MissingIsr},
        Breakage{"NoDevice", [](FakeFunction& f) { f.bytes[0x61] = 0x40; }, VirtioPciError::MissingDevice},
        Breakage{"MsixTableTooBig", [](FakeFunction& f) { FakeConfig::put16(f, 0x9a, 0x07ff); },
                 VirtioPciError::BadMsix},
        Breakage{"MsixInBar4Overlapping",
                 [](FakeFunction& f) {
                   FakeConfig::put32(f, 0x9c, 0x00000004);
                   FakeConfig::put32(f, 0xa0, 0x00003804);
                 },
                 VirtioPciError::Overlap}),
    [](const ::testing::TestParamInfo<Breakage>& i) { return std::string(i.param.name); });

TEST(VirtioPci, ErrorsHaveTexts) {
  ktl::EnumTextCheck c = ktl::check_enum_text<VirtioPciError>();
  EXPECT_TRUE(c.ok) << c.bad;
  EXPECT_EQ(c.count, 15u);
}

}  // namespace
