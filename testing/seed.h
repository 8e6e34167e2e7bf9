// The seed of a randomised host test, and numbers from the environment, read one way everywhere.
//
//   const std::uint64_t seed = ferrite_testing::test_seed();        // FERRITE_SEED or random
//   const std::uint64_t seed = ferrite_testing::test_seed(77);      // FERRITE_SEED or 77
//   const std::uint64_t ops = ferrite_testing::env_u64("FERRITE_OPS", 1'000'000);
//
// A value is a whole decimal or 0x-prefixed hexadecimal number; anything else (an empty string
// counts as unset) stops the test with a message naming the variable, so a mistyped replay never
// silently runs another seed. The first call prints the seed and how to replay it.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace ferrite_testing {

// The number in `text`, or nothing when `text` is not a whole decimal/0x-hex u64.
[[nodiscard]] std::optional<std::uint64_t> parse_u64(std::string_view text);

// The environment variable `name` as a number, `fallback` when unset or empty; aborts on garbage.
[[nodiscard]] std::uint64_t env_u64(const char* name, std::uint64_t fallback);

// FERRITE_SEED, else a random 64-bit seed; the same value for the whole process.
[[nodiscard]] std::uint64_t test_seed();
// FERRITE_SEED, else `fallback` (for tests that are deterministic unless asked otherwise). Also
// fixed for the whole process by its first call: one test binary, one seed.
[[nodiscard]] std::uint64_t test_seed(std::uint64_t fallback);

}  // namespace ferrite_testing
