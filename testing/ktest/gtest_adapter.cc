// Registers every ktest case as a GoogleTest case before main() runs the tests.
#include <gtest/gtest.h>

#include <string>

import ktl;
import ktest;

namespace {

class GtestReporter final : public ktest::Reporter {
 public:
  void failure(const char* file, int line, ktl::StringView message) override {
    ADD_FAILURE_AT(file, line) << std::string(message.data(), message.size());
  }
};

class KtestCase : public testing::Test {
 public:
  explicit KtestCase(ktest::TestFn fn) : fn_(fn) {}
  void TestBody() override {
    GtestReporter reporter;
    ktest::Context ctx(reporter);
    fn_(ctx);
  }

 private:
  ktest::TestFn fn_;
};

// Registers the ktest cases. Called from main(), after every static constructor (and so every
// KTEST registration) of the binary has run.
void register_ktests() {
  {
    for (ktest::TestCase* t = ktest::first(); t != nullptr; t = t->next) {
      ktest::TestFn fn = t->fn;
      testing::RegisterTest(t->suite, t->name, nullptr, nullptr, __FILE__, __LINE__,
                            [fn]() -> testing::Test* { return new KtestCase(fn); });
    }
  }
}

}  // namespace

// The main() of every host test binary that contains ktest cases (it replaces gtest_main; plain
// GoogleTest cases in the same binary run too).
int main(int argc, char** argv) {
  testing::InitGoogleTest(&argc, argv);
  register_ktests();
  return RUN_ALL_TESTS();
}
