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

// Tests named DISABLED_* (GoogleTest's convention, e.g. deliberately failing self-checks) run
// only when the filter names them explicitly: "Suite.DISABLED_Name" (or a prefix of it).
bool matches(const TestCase& t, ktl::StringView filter) {
  ktl::StringView suite(t.suite);
  ktl::StringView name(t.name);
  bool disabled = name.starts_with("DISABLED_");
  if (filter.empty() || filter == "all") return !disabled;
  if (filter.size() <= suite.size()) return !disabled && suite.starts_with(filter);
  // "Suite.Name" prefix
  if (!filter.starts_with(suite) || filter[suite.size()] != '.') return false;
  ktl::StringView name_filter = filter.substr(suite.size() + 1);
  if (disabled && !name_filter.starts_with("DISABLED_")) return false;
  return name.starts_with(name_filter);
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
