// ktl::format_to against abseil's StrFormat (host only): random integers and specs must render
// identically. Seeded; set FERRITE_SEED to replay a failure.
#include <gtest/gtest.h>
#include "testing/seed.h"

#include <cstdint>
#include <cstdlib>
#include <random>
#include <string>

#include "absl/strings/str_format.h"

import ktl;

namespace {

class StringSink final : public ktl::FormatSink {
 public:
  void write(ktl::StringView t) override { out.append(t.data(), t.size()); }
  std::string out;
};

std::uint64_t seed() { return ferrite_testing::test_seed(); }

TEST(FormatDifferential, IntegersMatchAbseil) {
  const std::uint64_t s = seed();
  SCOPED_TRACE(absl::StrFormat("FERRITE_SEED=%d", s));
  std::mt19937_64 rng(s);
  for (int i = 0; i < 200000; ++i) {
    std::uint64_t u = rng() >> (rng() % 64);
    auto v = static_cast<std::int64_t>(rng()) >> (rng() % 64);
    StringSink a;
    ktl::format_to(a, "{} {} {:x} {:X} {:#x} {:o} {:020} {:>12} {:<12}|", v, u, u, u, u, u, u, v, u);
    std::string b = absl::StrFormat("%d %u %x %X %#x %o %020u %12d %-12u|", v, u, u, u, u, u, u, v, u);
    // abseil prints 0 as "0" for %#x; ktl prints "0x0" (an address-like value keeps its prefix).
    if (u == 0) continue;
    ASSERT_EQ(a.out, b) << "value " << v << " / " << u;
  }
}

}  // namespace
