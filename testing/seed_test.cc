#include "testing/seed.h"

#include <gtest/gtest.h>

#include <cstdlib>

namespace {

using ferrite_testing::env_u64;
using ferrite_testing::parse_u64;

TEST(Seed, ParsesDecimalAndHex) {
  EXPECT_EQ(parse_u64("0"), 0u);
  EXPECT_EQ(parse_u64("1234"), 1234u);
  EXPECT_EQ(parse_u64("0x1f"), 31u);
  EXPECT_EQ(parse_u64("0XFF"), 255u);
  EXPECT_EQ(parse_u64("18446744073709551615"), UINT64_MAX);
  EXPECT_EQ(parse_u64("0xffffffffffffffff"), UINT64_MAX);
}

TEST(Seed, RefusesWhatIsNotAWholeNumber) {
  EXPECT_EQ(parse_u64(""), std::nullopt);
  EXPECT_EQ(parse_u64("0x"), std::nullopt);
  EXPECT_EQ(parse_u64("12ab"), std::nullopt);
  EXPECT_EQ(parse_u64("-1"), std::nullopt);
  EXPECT_EQ(parse_u64(" 7"), std::nullopt);
  EXPECT_EQ(parse_u64("18446744073709551616"), std::nullopt);  // 2^64
  EXPECT_EQ(parse_u64("0x10000000000000000"), std::nullopt);
}

TEST(Seed, EnvironmentValueOrFallback) {
  ::unsetenv("FERRITE_SEED_TEST_VALUE");
  EXPECT_EQ(env_u64("FERRITE_SEED_TEST_VALUE", 9), 9u);
  ::setenv("FERRITE_SEED_TEST_VALUE", "", 1);
  EXPECT_EQ(env_u64("FERRITE_SEED_TEST_VALUE", 9), 9u);
  ::setenv("FERRITE_SEED_TEST_VALUE", "0x40", 1);
  EXPECT_EQ(env_u64("FERRITE_SEED_TEST_VALUE", 9), 64u);
}

TEST(SeedDeathTest, GarbageStopsTheTestNamingTheVariable) {
  ::setenv("FERRITE_SEED_TEST_VALUE", "12z", 1);
  EXPECT_DEATH((void)env_u64("FERRITE_SEED_TEST_VALUE", 9), "FERRITE_SEED_TEST_VALUE=\"12z\" is not");
}

TEST(Seed, ReplaysTheSeedFromTheEnvironment) {
  ::setenv("FERRITE_SEED", "4242", 1);
  EXPECT_EQ(ferrite_testing::test_seed(), 4242u);
  EXPECT_EQ(ferrite_testing::test_seed(7), 4242u);
}

}  // namespace
