module;

#include <ktl/macros.h>

module ktest;

import ktl;

namespace ktest {

namespace {
TestCase* g_first = nullptr;
TestCase* g_last = nullptr;

class SinkReporter final : public Reporter {
 public:
  explicit SinkReporter(ktl::FormatSink& out) : out_(out) {}
  void failure(const char* file, int line, ktl::StringView message) override {
    ktl::format_to(out_, "  FAILED at {}:{}: {}\n", file, line, message);
  }

 private:
  ktl::FormatSink& out_;
};

bool matches(const TestCase& t, ktl::StringView filter) {
  if (filter.empty() || filter == "all") return true;
  ktl::StringView suite(t.suite);
  if (filter.size() <= suite.size()) return suite.starts_with(filter);
  // "Suite.Name" prefix
  if (!filter.starts_with(suite) || filter[suite.size()] != '.') return false;
  return ktl::StringView(t.name).starts_with(filter.substr(suite.size() + 1));
}
}  // namespace

void register_test(TestCase& test) {
  test.next = nullptr;
  if (g_last == nullptr) {
    g_first = &test;
  } else {
    g_last->next = &test;
  }
  g_last = &test;
}

TestCase* first() { return g_first; }

Summary run_all(ktl::FormatSink& out, ktl::StringView filter) {
  Summary s{0, 0};
  SinkReporter reporter(out);
  for (TestCase* t = g_first; t != nullptr; t = t->next) {
    if (!matches(*t, filter)) continue;
    ktl::format_to(out, "[ RUN      ] {}.{}\n", t->suite, t->name);
    Context ctx(reporter);
    t->fn(ctx);
    if (ctx.failures() == 0) {
      ++s.passed;
      ktl::format_to(out, "[       OK ] {}.{}\n", t->suite, t->name);
    } else {
      ++s.failed;
      ktl::format_to(out, "[  FAILED  ] {}.{}\n", t->suite, t->name);
    }
  }
  ktl::format_to(out, "ktest: {} passed, {} failed\n", s.passed, s.failed);
  return s;
}

}  // namespace ktest
