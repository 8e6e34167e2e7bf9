// Host tests of kernel.pci over a modelled configuration space: a q35-like bus (host bridge,
// multi-function LPC/SATA/SMBus, a PCI-PCI bridge, a virtio device with 32- and 64-bit BARs and
// capabilities), BAR sizing restores every register, and malformed capability lists and BARs.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "kernel/pci/pci_model.h"

import ktl;
import kernel.pci;

namespace {

using kernel::pci::BarKind;
using kernel::pci::Function;
using kernel::pci::FunctionProblem;
using pci_model::FakeConfig;

std::vector<Function> scan(FakeConfig& c, ktl::u8 last_bus = 1) {
  std::vector<Function> out(32);
  kernel::pci::Scan s = kernel::pci::enumerate(c, 0, 0, last_bus, ktl::Span<Function>(out));
  out.resize(s.stored);
  return out;
}

FakeConfig q35_like() {
  FakeConfig c;
  c.add(0, 0, 0, 0x8086, 0x29c0, 0x06, 0x00);                      // host bridge
  c.add(0, 0x1f, 0, 0x8086, 0x2918, 0x06, 0x01, 0x80);             // LPC (multi-function)
  c.add(0, 0x1f, 2, 0x8086, 0x2922, 0x01, 0x06);                   // SATA
  c.add(0, 0x1f, 3, 0x8086, 0x2930, 0x0c, 0x05);                   // SMBus
  auto& br = c.add(0, 0x1e, 0, 0x8086, 0x244e, 0x06, 0x04, 0x01);  // PCI-PCI bridge
  FakeConfig::put32(br, 0x18, 0x00010100);                         // primary 0, secondary 1, subordinate 1
  auto& v = c.add(1, 0, 0, 0x1af4, 0x1042, 0x01, 0x00);            // virtio-blk (modern) behind it
  FakeConfig::put32(v, 0x10, 0x0000c001);                          // BAR0: I/O at 0xc000
  v.bar_sizes[0] = 0x80;
  FakeConfig::put32(v, 0x14, 0xfebd1000);  // BAR1: mem32 at 0xfebd1000
  v.bar_sizes[1] = 0x1000;
  FakeConfig::put32(v, 0x20, 0x0000000c);  // BAR4: mem64, prefetchable
  FakeConfig::put32(v, 0x24, 0x000000e0);  // at 0xe0_0000_0000
  v.bar_sizes[4] = 0x4000;
  FakeConfig::put32(v, 0x2c, 0x11001af4);  // subsystem
  FakeConfig::put32(v, 0x3c, 0x0000010b);  // INTA, line 11
  FakeConfig::put32(v, 0x04, 0x00100007);  // capabilities; I/O, memory, bus master
  v.bytes[0x34] = 0x98;
  v.bytes[0x98] = 0x11;  // MSI-X
  v.bytes[0x99] = 0x84;
  v.bytes[0x84] = 0x09;  // vendor (virtio)
  v.bytes[0x85] = 0x70;
  v.bytes[0x70] = 0x09;
  v.bytes[0x71] = 0x00;
  return c;
}

TEST(Pci, EnumeratesDevicesFunctionsAndBridges) {
  FakeConfig c = q35_like();
  std::vector<Function> f = scan(c);
  ASSERT_EQ(f.size(), 6u);
  EXPECT_EQ(f[0].vendor, 0x8086);
  EXPECT_EQ(f[0].device, 0x29c0);
  EXPECT_STREQ(kernel::pci::class_name(f[0].class_code, f[0].subclass), "bridge (host)");
  EXPECT_EQ(f[1].address, (kernel::pci::Address{0, 0, 0x1e, 0}));
  EXPECT_EQ(f[1].header_type, 1);
  EXPECT_EQ(f[1].secondary_bus, 1);
  EXPECT_EQ(f[1].bar_count, 2);
  EXPECT_TRUE(f[2].multifunction);
  EXPECT_EQ(f[3].address.function, 2);
  EXPECT_STREQ(kernel::pci::class_name(f[3].class_code, f[3].subclass), "storage (SATA)");
  EXPECT_EQ(f[4].address.function, 3);
  const Function& v = f[5];
  EXPECT_EQ(v.address.bus, 1);
  EXPECT_EQ(v.vendor, 0x1af4);
  EXPECT_EQ(v.subsystem, 0x1100);
  EXPECT_EQ(v.interrupt_pin, 1);
  EXPECT_EQ(v.interrupt_line, 11);
  EXPECT_EQ(v.bars[0].kind, BarKind::Io);
  EXPECT_EQ(v.bars[0].base, 0xc000u);
  EXPECT_EQ(v.bars[0].size, 0x80u);
  EXPECT_EQ(v.bars[1].kind, BarKind::Memory32);
  EXPECT_EQ(v.bars[1].base, 0xfebd1000u);
  EXPECT_EQ(v.bars[1].size, 0x1000u);
  EXPECT_EQ(v.bars[2].kind, BarKind::None);
  EXPECT_EQ(v.bars[4].kind, BarKind::Memory64);
  EXPECT_TRUE(v.bars[4].prefetchable);
  EXPECT_EQ(v.bars[4].base, 0xe0'0000'0000ull);
  EXPECT_EQ(v.bars[4].size, 0x4000u);
  EXPECT_EQ(v.bars[5].kind, BarKind::None);  // the upper half
  ASSERT_EQ(v.capability_count, 3);
  EXPECT_EQ(v.capabilities[0], 0x11);
  EXPECT_EQ(v.capabilities[1], 0x09);
  EXPECT_EQ(v.problem, FunctionProblem::None);
  std::string text;
  struct Sink final : ktl::FormatSink {
    std::string* s;
    void write(ktl::StringView t) override { s->append(t.data(), t.size()); }
  } sink;
  sink.s = &text;
  ktl::format_to(sink, "{}", v.address);
  EXPECT_EQ(text, "01:00.0");
}

TEST(Pci, SizingRestoresEveryRegister) {
  FakeConfig c = q35_like();
  auto before = c.functions;
  (void)scan(c);
  for (auto& [k, f] : c.functions)
    EXPECT_EQ(f.bytes, before[k].bytes) << std::get<0>(k) << ":" << std::get<1>(k);
  // Without sizing nothing is written at all.
  FakeConfig d = q35_like();
  std::vector<Function> out(32);
  (void)kernel::pci::enumerate(d, 0, 0, 1, ktl::Span<Function>(out), kernel::pci::SizeBars::No);
  for (auto& [k, f] : d.functions) EXPECT_EQ(f.writes, 0);
}

TEST(Pci, MalformedCapabilitiesAndBarsAreReportedPerFunction) {
  FakeConfig c;
  auto& loop = c.add(0, 1, 0, 0x1234, 1, 0xff, 0);
  FakeConfig::put32(loop, 0x04, 0x00100000);
  loop.bytes[0x34] = 0x40;
  loop.bytes[0x40] = 0x05;
  loop.bytes[0x41] = 0x44;
  loop.bytes[0x44] = 0x05;
  loop.bytes[0x45] = 0x40;  // back to 0x40
  auto& low = c.add(0, 2, 0, 0x1234, 2, 0xff, 0);
  FakeConfig::put32(low, 0x04, 0x00100000);
  low.bytes[0x34] = 0x10;  // inside the header
  auto& bar = c.add(0, 3, 0, 0x1234, 3, 0xff, 0);
  FakeConfig::put32(bar, 0x24, 0x4);  // a 64-bit BAR in the last slot
  bar.bar_sizes[5] = 0x1000;
  c.add(0, 4, 0, 0x1234, 4, 0xff, 0);  // fine
  std::vector<Function> out(8);
  kernel::pci::Scan s = kernel::pci::enumerate(c, 0, 0, 0, ktl::Span<Function>(out));
  ASSERT_EQ(s.stored, 4u);
  EXPECT_EQ(s.problems, 3u);
  EXPECT_EQ(out[0].problem, FunctionProblem::CapabilityLoop);
  EXPECT_EQ(out[0].capability_count, 2);
  EXPECT_EQ(out[1].problem, FunctionProblem::BadCapabilityPointer);
  EXPECT_EQ(out[2].problem, FunctionProblem::BadBar);
  EXPECT_EQ(out[3].problem, FunctionProblem::None);
  ktl::check_enum_text<FunctionProblem>();
  ktl::check_enum_text<BarKind>();
}

TEST(Pci, TheTreeScanFollowsBridgesOnly) {
  FakeConfig c = q35_like();
  c.add(7, 0, 0, 0x1234, 0x77, 0xff, 0);  // on a bus no bridge leads to: not found
  std::vector<Function> out(32);
  kernel::pci::Scan s = kernel::pci::enumerate_tree(c, 0, 0, ktl::Span<Function>(out));
  EXPECT_EQ(s.found, 6u);
  EXPECT_EQ(out[5].vendor, 0x1af4);  // bus 1, behind the bridge
  // A bridge that claims its own bus (a loop) does not rescan it.
  FakeConfig::put32(c.functions[{0, 0x1e, 0}], 0x18, 0x00000000);
  auto& loop = c.add(0, 0x1d, 0, 0x8086, 1, 0x06, 0x04, 0x01);
  FakeConfig::put32(loop, 0x18, 0x00000000);
  EXPECT_EQ(kernel::pci::enumerate_tree(c, 0, 0, ktl::Span<Function>(out)).found, 6u);
}

TEST(Pci, MoreFunctionsThanRoomAreCounted) {
  FakeConfig c;
  for (ktl::u8 d = 0; d < 10; ++d) c.add(0, d, 0, 0x1234, d, 0xff, 0);
  std::vector<Function> out(4);
  kernel::pci::Scan s = kernel::pci::enumerate(c, 0, 0, 0, ktl::Span<Function>(out));
  EXPECT_EQ(s.found, 10u);
  EXPECT_EQ(s.stored, 4u);
}

TEST(Pci, NarrowAccessReadsAndReplacesPartsOfADword) {
  FakeConfig c;
  auto& f = c.add(0, 3, 0, 0x1af4, 0x1042, 0x01, 0x00);
  FakeConfig::put32(f, 0x40, 0x44332211);
  FakeConfig::put32(f, 0x04, 0x00100000);  // status: capability list; command 0
  kernel::pci::Address a{0, 0, 3, 0};
  EXPECT_EQ(kernel::pci::read8(c, a, 0x42), 0x33);
  EXPECT_EQ(kernel::pci::read16(c, a, 0x42), 0x4433);
  EXPECT_EQ(kernel::pci::read16(c, a, 0x41), 0xffff);  // unaligned
  EXPECT_EQ(kernel::pci::read32(c, a, 0x40), 0x44332211u);
  kernel::pci::write16(c, a, 0x42, 0xbeef);
  EXPECT_EQ(FakeConfig::get32(f, 0x40), 0xbeef2211u);
  kernel::pci::write8(c, a, 0x41, 0x99);
  EXPECT_EQ(FakeConfig::get32(f, 0x40), 0xbeef9911u);
  int writes = f.writes;
  kernel::pci::write16(c, a, 0x43, 1);  // unaligned: nothing written
  kernel::pci::write32(c, a, 0x42, 1);
  EXPECT_EQ(f.writes, writes);
  // The command register's write leaves the status half zero (write-one-to-clear bits).
  struct Recorder final : kernel::pci::ConfigSpace {
    ktl::u32 last = 0;
    ktl::u32 read32(kernel::pci::Address, ktl::u16) const override { return 0xffff0000u; }
    void write32(kernel::pci::Address, ktl::u16, ktl::u32 v) override { last = v; }
    ktl::u16 size() const override { return 256; }
  } r;
  kernel::pci::write16(r, a, 0x04, 0x0006);
  EXPECT_EQ(r.last, 0x00000006u);
}

}  // namespace
