// Host tests of the hand-off memory map normalisation with hostile firmware maps.
#include <gtest/gtest.h>

#include <vector>

import ktl;
import boot.info;
import loader.memory_map;

namespace {

using boot::MemoryKind;
using loader::FirmwareRange;
using loader::Placement;

std::vector<boot::MemoryMapEntry> normalise(const std::vector<FirmwareRange>& fw,
                                            const std::vector<Placement>& pl) {
  std::vector<ktl::u64> scratch(loader::scratch_entries_needed(fw.size(), pl.size()));
  std::vector<boot::MemoryMapEntry> out(loader::output_entries_needed(fw.size(), pl.size()));
  auto n = loader::normalise_memory_map(ktl::Span<const FirmwareRange>(fw), ktl::Span<const Placement>(pl),
                                        ktl::Span<ktl::u64>(scratch), ktl::Span<boot::MemoryMapEntry>(out));
  EXPECT_TRUE(n.is_ok());
  out.resize(n.value());
  return out;
}

void expect_sorted_disjoint(const std::vector<boot::MemoryMapEntry>& m) {
  for (size_t i = 0; i < m.size(); ++i) {
    EXPECT_GT(m[i].size, 0u);
    EXPECT_EQ(m[i].base % 4096, 0u);
    EXPECT_EQ(m[i].size % 4096, 0u);
    if (i > 0) {
      EXPECT_LE(m[i - 1].base + m[i - 1].size, m[i].base);
      if (m[i - 1].base + m[i - 1].size == m[i].base)
        EXPECT_NE(m[i - 1].kind, m[i].kind) << "unmerged neighbours";
    }
  }
}

TEST(MemoryMap, SortsMergesAndDropsEmptyEntries) {
  auto m = normalise(
      {
          {0x100000, 16, 7, 0},  // conventional
          {0x0, 1, 0, 0},        // reserved page 0
          {0x110000, 16, 4, 0},  // boot services data: usable after exit, merges
          {0x50000, 0, 7, 0},    // zero-length: dropped
          {0x1000, 0x9f, 7, 0},  // low conventional
      },
      {});
  expect_sorted_disjoint(m);
  ASSERT_EQ(m.size(), 3u);
  EXPECT_EQ(m[0].kind, MemoryKind::Reserved);
  EXPECT_EQ(m[1].base, 0x1000u);
  EXPECT_EQ(m[2].base, 0x100000u);
  EXPECT_EQ(m[2].size, 0x20000u);
  EXPECT_EQ(m[2].kind, MemoryKind::Usable);
}

TEST(MemoryMap, PlacementsCarveLoaderData) {
  auto m =
      normalise({{0x200000, 64, 2, 0}},  // loader data
                {{0x204000, 0x2000, MemoryKind::KernelImage}, {0x210000, 0x1000, MemoryKind::PageTables}});
  expect_sorted_disjoint(m);
  ASSERT_EQ(m.size(), 5u);
  EXPECT_EQ(m[0].kind, MemoryKind::LoaderReclaimable);
  EXPECT_EQ(m[1].kind, MemoryKind::KernelImage);
  EXPECT_EQ(m[1].base, 0x204000u);
  EXPECT_EQ(m[3].kind, MemoryKind::PageTables);
}

TEST(MemoryMap, OverlappingFirmwareEntriesResolveToTheStricterKind) {
  auto m = normalise({{0x0, 256, 7, 0}, {0x80000, 16, 0, 0}, {0xa0000, 8, 10, 0}}, {});
  expect_sorted_disjoint(m);
  ktl::u64 usable = 0;
  for (auto& r : m) {
    if (r.kind == MemoryKind::Usable) usable += r.size;
    if (r.base <= 0x80000 && 0x80000 < r.base + r.size) EXPECT_EQ(r.kind, MemoryKind::Reserved);
    if (r.base <= 0xa0000 && 0xa0000 < r.base + r.size) EXPECT_EQ(r.kind, MemoryKind::AcpiNvs);
  }
  EXPECT_EQ(usable, (256 - 16 - 8) * 4096u);
}

TEST(MemoryMap, UnalignedUsableShrinksReservedGrows) {
  auto m = normalise({{0x1800, 2, 7, 0}, {0x10800, 1, 0, 0}}, {});
  expect_sorted_disjoint(m);
  ASSERT_EQ(m.size(), 2u);
  EXPECT_EQ(m[0].base, 0x2000u);  // usable [0x1800,0x3800) -> [0x2000,0x3000)
  EXPECT_EQ(m[0].size, 0x1000u);
  EXPECT_EQ(m[1].base, 0x10000u);  // reserved [0x10800,0x11800) -> [0x10000,0x12000)
  EXPECT_EQ(m[1].size, 0x2000u);
}

// Found by uefi_loader/fuzz:memory_map_fuzz: rounding up past 2^64 used to wrap to 0, which made
// a usable entry starting in the last page cover everything from 0, and dropped a placement whose
// end rounds up past 2^64.
TEST(MemoryMap, RangesAtTheTopOfTheAddressSpaceDoNotWrap) {
  auto m = normalise({{0xffff'ffff'ffff'f001ull, 0, 7, 0}, {0x100000, 1, 0, 0}}, {});
  expect_sorted_disjoint(m);
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0].kind, MemoryKind::Reserved);
  m = normalise({}, {{0xffff'ffff'ffff'e800ull, 0x1000, MemoryKind::KernelImage}});
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0].base, 0xffff'ffff'ffff'e000ull);
  EXPECT_EQ(m[0].size, 0x1000u);  // the last page is never reported
  EXPECT_EQ(m[0].kind, MemoryKind::KernelImage);
  m = normalise({{0x0, ~0ull, 7, 0}}, {{0x0, ~0ull, MemoryKind::KernelImage}});
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0].base + m[0].size, 0xffff'ffff'ffff'f000ull);
  EXPECT_EQ(m[0].kind, MemoryKind::KernelImage);
}

TEST(MemoryMap, UnknownTypesAndRuntimeAttributeAreReserved) {
  EXPECT_EQ(loader::classify_efi_type(99, 0), MemoryKind::Reserved);
  EXPECT_EQ(loader::classify_efi_type(15, 0), MemoryKind::Reserved);  // unaccepted
  EXPECT_EQ(loader::classify_efi_type(7, 1ull << 63), MemoryKind::RuntimeServices);
}

TEST(MemoryMap, TooSmallBuffersAreErrorsNotOverflows) {
  std::vector<FirmwareRange> fw = {{0x0, 1, 7, 0}, {0x2000, 1, 0, 0}, {0x4000, 1, 7, 0}};
  std::vector<ktl::u64> scratch(6);
  std::vector<boot::MemoryMapEntry> out(1);
  auto n = loader::normalise_memory_map(ktl::Span<const FirmwareRange>(fw), {}, ktl::Span<ktl::u64>(scratch),
                                        ktl::Span<boot::MemoryMapEntry>(out));
  ASSERT_TRUE(n.is_err());
  EXPECT_EQ(n.error(), loader::MapError::OutputTooSmall);
}

}  // namespace
