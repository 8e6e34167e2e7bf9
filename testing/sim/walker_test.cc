// sim.walker against tables written by hand from the manuals' bit layouts (no mm.paging code),
// so the referee that checks the engine is itself checked.
#include <gtest/gtest.h>

#include <cstdint>

import ktl;
import mm.addr;
import mm.arch;
import mm.testing.env;
import sim.walker;

namespace {

using std::uint64_t;

constexpr uint64_t kBase = 0x10'0000;  // simulated RAM: [1 MiB, 2 MiB)

class Tables {
 public:
  Tables() : mem_(mm::test_env::TestMemory::acquire_at(mm::PhysAddr::from(kBase), 1 << 20).release_value()) {}
  void set64(uint64_t table, unsigned index, uint64_t value) {
    mem_.window().as<uint64_t>(mm::PhysAddr::from(table + index * 8)) = value;
  }
  void set32(uint64_t table, unsigned index, uint32_t value) {
    mem_.window().as<uint32_t>(mm::PhysAddr::from(table + index * 4)) = value;
  }
  [[nodiscard]] mm::PhysWindow window() const { return mem_.window(); }

 private:
  mm::test_env::TestMemory mem_;
};

// --- x86_64 (SDM vol. 3A, tables 4-15..4-20) -----------------------------------------------------------
constexpr uint64_t P = 1, RW = 2, US = 4, PWT = 8, PCD = 16, PS = 128, G = 256, PAT_LARGE = 1ull << 12,
                   PAT_4K = 128, XD = 1ull << 63;

sim::MmuConfig x86_64_config() {
  sim::MmuConfig c;
  c.mmu = sim::Mmu::X86_64;
  c.pat = 0x0007'0106'0007'0406ull;  // WB WT UC- UC WB WC UC- UC
  return c;
}

TEST(WalkerX86_64, LeavesAtEveryLevel) {
  Tables t;
  const uint64_t pml4 = kBase, pdpt = kBase + 0x1000, pd = kBase + 0x2000, pt = kBase + 0x3000;
  t.set64(pml4, 1, pdpt | P | RW | US);
  t.set64(pdpt, 2, pd | P | RW | US);
  t.set64(pd, 3, 0x4000'0000 | P | RW | PS | PWT | G);            // 2 MiB, PAT index 1 = WT
  t.set64(pd, 4, pt | P | RW);                                    // no US: user access denied below
  t.set64(pt, 5, 0x5000'0000 | P | RW | US | PAT_4K | PWT | XD);  // PAT index 5 = WC
  t.set64(pdpt, 3, 0x8000'0000 | P | PS | PCD | PWT | US);        // 1 GiB, read-only, UC
  auto cfg = x86_64_config();

  uint64_t va2m = (1ull << 39) | (2ull << 30) | (3ull << 21) | 0x1234;
  auto r = sim::walk(t.window(), cfg, pml4, va2m);
  ASSERT_TRUE(r.ok()) << sim::describe(r);
  EXPECT_EQ(r.phys, 0x4000'1234u);
  EXPECT_EQ(r.page_size, 2u << 20);
  EXPECT_EQ(r.page_va, va2m & ~((2ull << 20) - 1));
  EXPECT_TRUE(r.writable);
  EXPECT_FALSE(r.user);  // the leaf lacks U/S
  EXPECT_TRUE(r.exec_kernel);
  EXPECT_TRUE(r.global);
  EXPECT_EQ(r.memtype, sim::MemType::WriteThrough);
  EXPECT_EQ(r.table_list(), (std::vector<uint64_t>{pml4, pdpt, pd}));

  uint64_t va4k = (1ull << 39) | (2ull << 30) | (4ull << 21) | (5ull << 12) | 0x10;
  r = sim::walk(t.window(), cfg, pml4, va4k);
  ASSERT_TRUE(r.ok()) << sim::describe(r);
  EXPECT_EQ(r.phys, 0x5000'0010u);
  EXPECT_EQ(r.page_size, 4096u);
  EXPECT_FALSE(r.user);  // U/S is ANDed over the walk
  EXPECT_TRUE(r.writable);
  EXPECT_FALSE(r.exec_kernel);
  EXPECT_FALSE(r.global);
  EXPECT_EQ(r.memtype, sim::MemType::WriteCombining);

  uint64_t va1g = (1ull << 39) | (3ull << 30) | 0x2345'6789;
  r = sim::walk(t.window(), cfg, pml4, va1g);
  ASSERT_TRUE(r.ok()) << sim::describe(r);
  EXPECT_EQ(r.phys, 0x8000'0000u + 0x2345'6789u);
  EXPECT_EQ(r.page_size, 1u << 30);
  EXPECT_FALSE(r.writable);
  EXPECT_TRUE(r.user);
  EXPECT_EQ(r.memtype, sim::MemType::Uncached);

  // Enumeration finds exactly these three leaves; four tables.
  auto leaves = sim::leaves(t.window(), cfg, pml4);
  ASSERT_EQ(leaves.size(), 3u);
  EXPECT_EQ(leaves[0].va, va2m & ~((2ull << 20) - 1));
  EXPECT_EQ(leaves[1].va, va4k & ~0xfffull);
  EXPECT_EQ(leaves[2].va, (1ull << 39) | (3ull << 30));
  EXPECT_EQ(sim::table_count(t.window(), cfg, pml4), 4u);
  // The one-pass census finds the same leaves and tables.
  sim::Census census = sim::census(t.window(), cfg, pml4);
  ASSERT_EQ(census.leaves.size(), leaves.size());
  for (std::size_t i = 0; i < leaves.size(); ++i) {
    EXPECT_EQ(census.leaves[i].first, leaves[i].va);
    EXPECT_EQ(census.leaves[i].second, leaves[i].size);
  }
  EXPECT_EQ(census.tables, 4u);
}

TEST(WalkerX86_64, FaultsAndReservedBits) {
  Tables t;
  const uint64_t pml4 = kBase, pdpt = kBase + 0x1000;
  t.set64(pml4, 0, pdpt | P | RW);
  t.set64(pml4, 2, 0x4000'0000 | P | PS);              // PS is reserved in a PML4E
  t.set64(pdpt, 4, 0xc000'0000 | P | PS | (1 << 13));  // reserved bit inside a 1 GiB entry
  t.set64(pdpt, 5, 0xc000'0000 | P | PS | XD);
  auto cfg = x86_64_config();
  EXPECT_EQ(sim::walk(t.window(), cfg, pml4, 1ull << 30).fault, sim::Fault::NotPresent);
  EXPECT_EQ(sim::walk(t.window(), cfg, pml4, 2ull << 39).fault, sim::Fault::ReservedBit);
  EXPECT_EQ(sim::walk(t.window(), cfg, pml4, 4ull << 30).fault, sim::Fault::ReservedBit);
  EXPECT_TRUE(sim::walk(t.window(), cfg, pml4, 5ull << 30).ok());
  cfg.nxe = false;  // without EFER.NXE bit 63 is reserved
  EXPECT_EQ(sim::walk(t.window(), cfg, pml4, 5ull << 30).fault, sim::Fault::ReservedBit);
  EXPECT_EQ(sim::walk(t.window(), cfg, pml4, 0x0000'8000'0000'0000ull).fault, sim::Fault::AddressSize);
}

TEST(WalkerX86_64, RecursiveSlotIsNotFollowedButResolves) {
  Tables t;
  const uint64_t pml4 = kBase, pdpt = kBase + 0x1000, pd = kBase + 0x2000;
  t.set64(pml4, 0, pdpt | P | RW);
  t.set64(pdpt, 0, pd | P | RW);
  t.set64(pd, 1, 0x20'0000 | P | PS);
  t.set64(pml4, 510, pml4 | P | RW | XD);
  auto cfg = x86_64_config();
  EXPECT_EQ(sim::leaves(t.window(), cfg, pml4).size(), 1u);
  EXPECT_EQ(sim::table_count(t.window(), cfg, pml4), 3u);
  // The PD of va 0x200000 through the window: indices 510, 510, 0, 0.
  uint64_t pd_va = 0xffff'0000'0000'0000ull | (510ull << 39) | (510ull << 30);
  auto r = sim::walk(t.window(), cfg, pml4, pd_va);
  ASSERT_TRUE(r.ok()) << sim::describe(r);
  EXPECT_EQ(r.phys, pd);
  EXPECT_FALSE(r.user);
  EXPECT_EQ(sim::load(t.window(), cfg, pml4, pd_va + 8, 8).value(), 0x20'0000 | P | PS);
  EXPECT_FALSE(sim::load(t.window(), cfg, pml4, 0x20'0000, 8).has_value());  // not simulated RAM
}

// --- x86 32-bit (SDM vol. 3A, tables 4-4..4-6) ----------------------------------------------------------
TEST(WalkerX86_32, PsePagesAndPageTables) {
  Tables t;
  const uint64_t pd = kBase, pt = kBase + 0x1000;
  t.set32(pd, 1, static_cast<uint32_t>(0x0040'0000 | P | RW | PS | PAT_LARGE | PWT));  // 4 MiB, WC
  t.set32(pd, 2, static_cast<uint32_t>(pt | P | US | RW));
  t.set32(pt, 3, static_cast<uint32_t>(0x0030'0000 | P | US | PCD | PWT));   // UC, read-only
  t.set32(pd, 5, static_cast<uint32_t>(0x0140'0000 | P | PS | (1u << 21)));  // reserved bit 21
  t.set32(pd, 6, static_cast<uint32_t>(0x0180'0000 | P | PS | (1u << 13)));  // PSE-36: bit 32
  sim::MmuConfig cfg;
  cfg.mmu = sim::Mmu::X86_32;
  cfg.pat = 0x0007'0106'0007'0406ull;

  auto r = sim::walk(t.window(), cfg, pd, 0x0041'2345);
  ASSERT_TRUE(r.ok()) << sim::describe(r);
  EXPECT_EQ(r.phys, 0x0041'2345u);
  EXPECT_EQ(r.page_size, 4u << 20);
  EXPECT_EQ(r.memtype, sim::MemType::WriteCombining);
  EXPECT_TRUE(r.exec_user && r.exec_kernel);  // no XD in 32-bit paging

  r = sim::walk(t.window(), cfg, pd, (2u << 22) | (3u << 12) | 0x7);
  ASSERT_TRUE(r.ok()) << sim::describe(r);
  EXPECT_EQ(r.phys, 0x0030'0007u);
  EXPECT_TRUE(r.user);
  EXPECT_FALSE(r.writable);
  EXPECT_EQ(r.memtype, sim::MemType::Uncached);
  EXPECT_EQ(r.table_list(), (std::vector<uint64_t>{pd, pt}));

  EXPECT_EQ(sim::walk(t.window(), cfg, pd, 5u << 22).fault, sim::Fault::ReservedBit);
  EXPECT_EQ(sim::walk(t.window(), cfg, pd, 6u << 22).phys, 0x1'0180'0000ull);
  EXPECT_EQ(sim::walk(t.window(), cfg, pd, 7u << 22).fault, sim::Fault::NotPresent);
  EXPECT_EQ(sim::walk(t.window(), cfg, pd, 1ull << 32).fault, sim::Fault::AddressSize);
  // Root-level 4 MiB leaves are enumerated (PD slots 1, 5, 6) besides the 4 KiB one.
  EXPECT_EQ(sim::leaves(t.window(), cfg, pd).size(), 4u);
  EXPECT_EQ(sim::table_count(t.window(), cfg, pd), 2u);
}

// --- aarch64 (Arm ARM D8.3: VMSAv8-64 descriptors, 4 KiB granule) ---------------------------------------
constexpr uint64_t V = 1, TABLE = 2, AF = 1 << 10, NG = 1 << 11, SH_INNER = 3 << 8, AP_EL0 = 1 << 6,
                   AP_RO = 1 << 7, PXN = 1ull << 53, UXN = 1ull << 54, APTABLE_RO = 1ull << 62;
constexpr uint64_t attr(uint64_t index) { return index << 2; }

TEST(WalkerAarch64, BlocksPagesAndPermissions) {
  Tables t;
  const uint64_t l0 = kBase, l1 = kBase + 0x1000, l2 = kBase + 0x2000, l3 = kBase + 0x3000;
  t.set64(l0, 0, l1 | V | TABLE);
  t.set64(l1, 1, 0x4000'0000 | V | AF | attr(0) | SH_INNER);                 // 1 GiB, kernel RW
  t.set64(l1, 2, l2 | V | TABLE | APTABLE_RO);                               // everything below read-only
  t.set64(l2, 3, 0x8060'0000 | V | AF | attr(2) | AP_EL0 | SH_INNER | UXN);  // 2 MiB, Normal NC
  t.set64(l2, 4, l3 | V | TABLE);
  t.set64(l3, 5, 0x9000'0000 | V | TABLE | AF | attr(3) | AP_EL0 | AP_RO | NG | PXN | UXN);  // Device
  t.set64(l3, 6, 0x9000'1000 | V | TABLE);                                                   // AF = 0
  t.set64(l3, 7, 0x9000'2000 | V);                   // 0b01 at L3: reserved
  t.set64(l2, 8, 0x8000'0000 | V | AF | (1 << 13));  // RES0 bit in a block
  t.set64(l0, 1, 0x80'0000'0000ull | V | AF);        // no L0 blocks
  t.set64(l1, 3, (l2 + 0x1000) | V | TABLE);
  t.set64(l2 + 0x1000, 9, 0xa000'0000 | V | AF | AP_EL0 | SH_INNER | attr(1));  // EL0-writable
  sim::MmuConfig cfg;
  cfg.mmu = sim::Mmu::Aarch64;
  cfg.mair = 0x0044'bbffull;  // Normal WB, Normal WT, Normal NC, Device-nGnRnE

  auto r = sim::walk(t.window(), cfg, l0, 0x4123'4567);
  ASSERT_TRUE(r.ok()) << sim::describe(r);
  EXPECT_EQ(r.phys, 0x4123'4567u);
  EXPECT_EQ(r.page_size, 1u << 30);
  EXPECT_TRUE(r.writable);
  EXPECT_FALSE(r.user);
  EXPECT_TRUE(r.exec_kernel);
  EXPECT_TRUE(r.global);
  EXPECT_EQ(r.memtype, sim::MemType::WriteBack);
  EXPECT_EQ(r.shareability, 3u);

  r = sim::walk(t.window(), cfg, l0, (2ull << 30) | (3ull << 21) | 0x99);
  ASSERT_TRUE(r.ok()) << sim::describe(r);
  EXPECT_EQ(r.phys, 0x8060'0099u);
  EXPECT_EQ(r.page_size, 2u << 20);
  EXPECT_FALSE(r.writable);  // APTable[1]
  EXPECT_TRUE(r.user);
  EXPECT_FALSE(r.exec_user);  // UXN
  EXPECT_EQ(r.memtype, sim::MemType::NormalNonCacheable);

  r = sim::walk(t.window(), cfg, l0, (2ull << 30) | (4ull << 21) | (5ull << 12));
  ASSERT_TRUE(r.ok()) << sim::describe(r);
  EXPECT_EQ(r.phys, 0x9000'0000u);
  EXPECT_EQ(r.page_size, 4096u);
  EXPECT_FALSE(r.global);
  EXPECT_FALSE(r.exec_kernel);
  EXPECT_EQ(r.memtype, sim::MemType::Device);
  EXPECT_EQ(r.device_kind, 0u);
  EXPECT_EQ(r.table_list(), (std::vector<uint64_t>{l0, l1, l2, l3}));

  EXPECT_EQ(sim::walk(t.window(), cfg, l0, (2ull << 30) | (4ull << 21) | (6ull << 12)).fault,
            sim::Fault::AccessFlag);
  EXPECT_EQ(sim::walk(t.window(), cfg, l0, (2ull << 30) | (4ull << 21) | (7ull << 12)).fault,
            sim::Fault::BadDescriptor);
  EXPECT_EQ(sim::walk(t.window(), cfg, l0, (2ull << 30) | (8ull << 21)).fault, sim::Fault::ReservedBit);
  EXPECT_EQ(sim::walk(t.window(), cfg, l0, 1ull << 39).fault, sim::Fault::BadDescriptor);
  EXPECT_EQ(sim::walk(t.window(), cfg, l0, 0xffff'8000'0000'0000ull).fault, sim::Fault::AddressSize);

  // Writable at EL0 means never executable at EL1, whatever PXN says.
  r = sim::walk(t.window(), cfg, l0, (3ull << 30) | (9ull << 21));
  ASSERT_TRUE(r.ok()) << sim::describe(r);
  EXPECT_TRUE(r.user && r.writable);
  EXPECT_FALSE(r.exec_kernel);
  EXPECT_TRUE(r.exec_user);
  EXPECT_EQ(r.memtype, sim::MemType::WriteThrough);

  cfg.upper_half = true;  // the same tables as TTBR1 translate the top of the address space
  r = sim::walk(t.window(), cfg, l0, 0xffff'0000'4000'0000ull);
  ASSERT_TRUE(r.ok()) << sim::describe(r);
  EXPECT_EQ(r.phys, 0x4000'0000u);
  EXPECT_EQ(sim::walk(t.window(), cfg, l0, 0x4000'0000).fault, sim::Fault::AddressSize);
}

TEST(WalkerAarch64, MairDecoding) {
  Tables t;
  const uint64_t l0 = kBase, l1 = kBase + 0x1000;
  t.set64(l0, 0, l1 | V | TABLE);
  for (unsigned i = 0; i < 8; ++i) t.set64(l1, i, (uint64_t{i} << 30) | V | AF | attr(i) | SH_INNER);
  sim::MmuConfig cfg;
  cfg.mmu = sim::Mmu::Aarch64;
  // Attr0..7 = 0xff (WB), 0xbb (WT), 0x44 (NC), 0x00 (Device-nGnRnE), 0x04 (Device-nGnRE),
  // 0x0c (Device-GRE), 0x33 (WT transient), 0x70 (inner 0: UNPREDICTABLE).
  cfg.mair = 0x7033'0c04'0044'bbffull;
  auto type = [&](unsigned i) { return sim::walk(t.window(), cfg, l0, uint64_t{i} << 30); };
  EXPECT_EQ(type(0).memtype, sim::MemType::WriteBack);
  EXPECT_EQ(type(1).memtype, sim::MemType::WriteThrough);
  EXPECT_EQ(type(2).memtype, sim::MemType::NormalNonCacheable);
  EXPECT_EQ(type(3).memtype, sim::MemType::Device);
  EXPECT_EQ(type(3).device_kind, 0u);
  EXPECT_EQ(type(4).device_kind, 1u);
  EXPECT_EQ(type(5).device_kind, 3u);
  EXPECT_EQ(type(6).memtype, sim::MemType::WriteThrough);  // 0x33: WT transient, RW-allocate
  EXPECT_EQ(type(7).memtype, sim::MemType::Invalid);
}

}  // namespace
