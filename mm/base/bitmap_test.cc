// mm.bitmap: BitSpan and SummaryBitmap against a std::vector<bool> reference.
#include <gtest/gtest.h>
#include "testing/seed.h"

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <random>
#include <string>
#include <vector>

import ktl;
import mm.bitmap;

namespace {

using ktl::u64;
using mm::BitSpan;
using mm::SummaryBitmap;

std::optional<u64> opt(ktl::Optional<u64> o) {
  return o.has_value() ? std::optional<u64>(o.value()) : std::nullopt;
}

// The obvious implementations.
struct Reference {
  std::vector<bool> bits;
  std::optional<u64> next_set(u64 from) const {
    for (u64 i = from; i < bits.size(); ++i) {
      if (bits[i]) return i;
    }
    return std::nullopt;
  }
  std::optional<u64> first_clear(u64 from, u64 to) const {
    for (u64 i = from; i < to; ++i) {
      if (!bits[i]) return i;
    }
    return std::nullopt;
  }
  std::optional<u64> run(u64 count, u64 align, u64 phase, u64 from, u64 to) const {
    u64 i = from;
    while (i + count <= to) {
      if ((i + phase) % align != 0) {
        ++i;
        continue;
      }
      u64 k = i;
      while (k < i + count && bits[k]) ++k;
      if (k == i + count) return i;
      i = k + 1;  // no run starting at or before k can hold count bits
    }
    return std::nullopt;
  }
};

struct Bitmap {
  explicit Bitmap(u64 bits)
      : storage(SummaryBitmap::storage_words(bits), 0xdeadbeefdeadbeefull), ref{std::vector<bool>(bits)} {
    map = SummaryBitmap(ktl::Span<u64>(storage), bits);
  }
  std::vector<u64> storage;
  SummaryBitmap map;
  Reference ref;
};

TEST(BitSpan, RangesAndSearches) {
  std::vector<u64> words(3, 0);
  BitSpan b(ktl::Span<u64>(words), 150);
  EXPECT_EQ(b.size(), 150u);
  b.set_range(60, 130);
  EXPECT_EQ(b.count_set(0, 150), 70u);
  EXPECT_TRUE(b.all_set(60, 130));
  EXPECT_FALSE(b.all_set(59, 130));
  EXPECT_TRUE(b.none_set(0, 60));
  EXPECT_EQ(opt(b.find_first_set(0, 150)), 60u);
  EXPECT_EQ(opt(b.find_first_clear(60, 150)), 130u);
  b.clear(100);
  EXPECT_EQ(opt(b.find_first_clear(60, 150)), 100u);
  b.fill(true);
  EXPECT_EQ(b.count_set(0, 150), 150u);
  EXPECT_EQ(words[2] >> 22, 0u) << "bits past the end stay clear";
}

TEST(SummaryBitmap, StorageIsAboutOneBitPerBit) {
  // 64 GiB of frames: 2 MiB of bits plus both summaries.
  u64 frames = (u64{64} << 30) / 4096;
  u64 words = SummaryBitmap::storage_words(frames);
  EXPECT_EQ(words, frames / 64 + (frames / 64 / 64 + frames / 64 / 64 / 64 + 1) +
                       (frames / 64 / 64 + frames / 64 / 64 / 64 + 1));
  EXPECT_LT(words * 8, frames / 8 * 104 / 100);  // the summaries add about 2/64
  EXPECT_EQ(SummaryBitmap::storage_words(1), 2u);
  EXPECT_EQ(SummaryBitmap::storage_words(64), 2u);
  EXPECT_EQ(SummaryBitmap::storage_words(65), 4u);
}

TEST(SummaryBitmap, ConstructionZeroesAndCounts) {
  Bitmap b(1000);
  EXPECT_EQ(b.map.count(), 0u);
  EXPECT_FALSE(b.map.find_first_set().has_value());
  EXPECT_TRUE(b.map.check_invariants());
  b.map.set_range(0, 1000);
  EXPECT_EQ(b.map.count(), 1000u);
  EXPECT_EQ(opt(b.map.find_first_set()), 0u);
  EXPECT_TRUE(b.map.all_set(0, 1000));
  EXPECT_TRUE(b.map.check_invariants());
}

TEST(SummaryBitmap, FindsTheLastFreeBitOfAHugeFullMap) {
  // Four levels: 16 Mi bits, all set and then cleared but the very last one.
  Bitmap b(u64{1} << 24);
  EXPECT_EQ(b.map.levels(), 4u);
  b.map.set_range(0, u64{1} << 24);
  b.map.clear_range(0, (u64{1} << 24) - 1);
  EXPECT_EQ(opt(b.map.find_first_set()), (u64{1} << 24) - 1);
  EXPECT_EQ(opt(b.map.find_next_set(5)), (u64{1} << 24) - 1);
  EXPECT_EQ(b.map.count(), 1u);
  EXPECT_TRUE(b.map.check_invariants());
}

TEST(SummaryBitmap, RunSearchHonoursAbsoluteAlignment) {
  Bitmap b(4096);
  b.map.set_range(0, 4096);
  // Bit 0 is absolute number 100: the first 64-aligned start is bit 28 (128 - 100).
  EXPECT_EQ(opt(b.map.find_set_run(64, 64, 100, 0, 4096)), 28u);
  EXPECT_EQ(opt(b.map.find_set_run(512, 512, 100, 0, 4096)), 412u);
  b.map.clear(413);
  EXPECT_EQ(opt(b.map.find_set_run(512, 512, 100, 0, 4096)), 924u);
  EXPECT_FALSE(b.map.find_set_run(512, 512, 100, 0, 924 + 511).has_value());
}

// Random operations on maps of many sizes, every query compared with the reference.
TEST(SummaryBitmap, AgreesWithAReferenceUnderRandomOperations) {
  const u64 seed = ferrite_testing::test_seed();
  SCOPED_TRACE("FERRITE_SEED=" + std::to_string(seed));
  std::mt19937_64 rng(seed);
  for (u64 size :
       {u64{1}, u64{63}, u64{64}, u64{65}, u64{1000}, u64{4096}, u64{4097}, u64{70'000}, u64{300'000}}) {
    SCOPED_TRACE("size " + std::to_string(size));
    Bitmap b(size);
    auto pick = [&](u64 n) { return n == 0 ? 0 : rng() % n; };
    for (int op = 0; op < 3000; ++op) {
      u64 from = pick(size + 1);
      u64 to = from + pick(size - from + 1);
      switch (pick(9)) {
        case 0: {
          u64 i = pick(size);
          b.map.set(i);
          b.ref.bits[i] = true;
          break;
        }
        case 1: {
          u64 i = pick(size);
          b.map.clear(i);
          b.ref.bits[i] = false;
          break;
        }
        case 2:
          b.map.set_range(from, to);
          for (u64 i = from; i < to; ++i) b.ref.bits[i] = true;
          break;
        case 3:
          b.map.clear_range(from, to);
          for (u64 i = from; i < to; ++i) b.ref.bits[i] = false;
          break;
        case 4:
          ASSERT_EQ(opt(b.map.find_next_set(from)), b.ref.next_set(from)) << "find_next_set(" << from << ")";
          ASSERT_EQ(opt(b.map.find_first_set()), b.ref.next_set(0));
          break;
        case 5:
          ASSERT_EQ(opt(b.map.find_first_clear(from, to)), b.ref.first_clear(from, to)) << from << ".." << to;
          ASSERT_EQ(b.map.none_set(from, to), !b.ref.next_set(from) || *b.ref.next_set(from) >= to);
          break;
        default: {
          static const u64 counts[] = {1, 2, 7, 63, 64, 65, 127, 128, 129, 200, 512, 700};
          u64 count = counts[pick(std::size(counts))];
          u64 align = u64{1} << pick(10);
          u64 phase = pick(1024);
          if (size > 20'000 && rng() % 4 != 0) {
            // Keep the reference affordable on big maps: a window near a random place.
            from = pick(size);
            to = std::min(size, from + 4096);
          }
          ASSERT_EQ(opt(b.map.find_set_run(count, align, phase, from, to)),
                    b.ref.run(count, align, phase, from, to))
              << "run " << count << " align " << align << " phase " << phase << " in " << from << ".." << to;
        }
      }
      if (op % 500 == 0) ASSERT_TRUE(b.map.check_invariants());
    }
    ASSERT_EQ(b.map.count(), static_cast<u64>(std::count(b.ref.bits.begin(), b.ref.bits.end(), true)));
    ASSERT_TRUE(b.map.check_invariants());
  }
}

TEST(SummaryBitmapDeathTest, OutOfRangeIsAPanic) {
  Bitmap b(100);
  EXPECT_DEATH(b.map.set(100), "out of range");
  EXPECT_DEATH((void)b.map.find_first_clear(50, 101), "out of bounds");
  EXPECT_DEATH((void)b.map.find_set_run(1, 3, 0, 0, 100), "bad request");
}

}  // namespace
