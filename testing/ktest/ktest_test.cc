// The ktest framework itself: assertions report through the Reporter, and run_all counts.
#include <gtest/gtest.h>
#include <ktest/ktest.h>

#include <string>
#include <vector>

import ktl;
import ktest;

namespace {

KTEST(Ktest, PassingCaseRunsAsGoogleTest) {
  KEXPECT_EQ(1 + 1, 2);
  KEXPECT_LT(1, 2);
  ktl::Optional<int> v = 3;
  int x = KTRY(v);
  KEXPECT_EQ(x, 3);
}

class Collect final : public ktest::Reporter {
 public:
  void failure(const char* file, int line, ktl::StringView message) override {
    messages.push_back(std::string(file) + ":" + std::to_string(line) + ": " +
                       std::string(message.data(), message.size()));
  }
  std::vector<std::string> messages;
};

void failing_body(ktest::Context& ktest_ctx) {
  KEXPECT_EQ(2 + 2, 5);
  ktl::Optional<int> none;
  int unreachable = KTRY(none);
  KEXPECT_EQ(unreachable, 0);  // not reached: KTRY returned
}

TEST(Ktest, FailuresAreReportedWithValuesAndKtryReturns) {
  Collect c;
  ktest::Context ctx(c);
  failing_body(ctx);
  ASSERT_EQ(ctx.failures(), 2u);
  EXPECT_NE(c.messages[0].find("expected 2 + 2 == 5"), std::string::npos);
  EXPECT_NE(c.messages[0].find("left:  4"), std::string::npos);
  EXPECT_NE(c.messages[1].find("KTRY(none) failed"), std::string::npos);
}

// Fails on purpose; runs only when named (see RunAllSkipsDisabledUnlessNamed).
KTEST(KtestDisabled, DISABLED_FailsWhenNamed) { KEXPECT_EQ(1, 2); }

class StringSink final : public ktl::FormatSink {
 public:
  void write(ktl::StringView t) override { out.append(t.data(), t.size()); }
  std::string out;
};

TEST(Ktest, RunAllFiltersAndSummarises) {
  StringSink out;
  auto s = ktest::run_all(out, "Ktest.Passing");
  EXPECT_EQ(s.passed, 1u);
  EXPECT_EQ(s.failed, 0u);
  EXPECT_NE(out.out.find("ktest: 1 passed, 0 failed"), std::string::npos);
  auto none = ktest::run_all(out, "NoSuchSuite");
  EXPECT_EQ(none.passed + none.failed, 0u);
}

TEST(Ktest, RunAllSkipsDisabledUnlessNamed) {
  StringSink out;
  auto all = ktest::run_all(out, "all");
  EXPECT_EQ(all.failed, 0u);
  EXPECT_EQ(out.out.find("DISABLED_FailsWhenNamed"), std::string::npos);
  auto suite = ktest::run_all(out, "KtestDisabled");
  EXPECT_EQ(suite.passed + suite.failed, 0u);
  auto named = ktest::run_all(out, "KtestDisabled.DISABLED_Fails");
  EXPECT_EQ(named.failed, 1u);
  EXPECT_NE(out.out.find("ktest: 0 passed, 1 failed"), std::string::npos);
}

}  // namespace
