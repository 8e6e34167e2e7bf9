// ktest: test bodies that run both as GoogleTest cases on the host and inside the kernel.
//
// A test is written once with the macros of <ktest/ktest.h>:
//
//   KTEST(Pmm, AllocatesAndFrees) {
//     auto mem = KTRY(mm::test_env::TestMemory::acquire(4 << 20));
//     ...
//     KEXPECT_EQ(stats.free, baseline);
//   }
//
// and registered in a process-wide list by a static constructor (the kernel runs .init_array).
// On the host, //testing/ktest:gtest_adapter turns every registered case into a GoogleTest case;
// in the kernel, test mode calls ktest::run_all(), which prints one line per case and the
// "N passed, N failed" summary that the boot tests check.
module;

#include <ktl/macros.h>

export module ktest;

import ktl;

export namespace ktest {

// Where failures go: GoogleTest on the host, the kernel log in the kernel.
class Reporter {
 public:
  virtual void failure(const char* file, int line, ktl::StringView message) = 0;

 protected:
  ~Reporter() = default;
};

class Context {
 public:
  inline explicit Context(Reporter& reporter) : reporter_(reporter) {}

  inline bool check(bool ok, const char* expression, const char* file, int line) {
    if (!ok) fail(file, line, "expected true: {}", expression);
    return ok;
  }
  template <class A, class B>
  inline bool check_eq(const A& a, const B& b, const char* ea, const char* eb, const char* file, int line) {
    if (a == b) return true;
    fail(file, line, "expected {} == {}\n    left:  {}\n    right: {}", ea, eb, a, b);
    return false;
  }
  template <class A, class B>
  inline bool check_ne(const A& a, const B& b, const char* ea, const char* eb, const char* file, int line) {
    if (!(a == b)) return true;
    fail(file, line, "expected {} != {}\n    both:  {}", ea, eb, a);
    return false;
  }
  template <class A, class B>
  inline bool check_lt(const A& a, const B& b, const char* ea, const char* eb, const char* file, int line) {
    if (a < b) return true;
    fail(file, line, "expected {} < {}\n    left:  {}\n    right: {}", ea, eb, a, b);
    return false;
  }
  template <class A, class B>
  inline bool check_le(const A& a, const B& b, const char* ea, const char* eb, const char* file, int line) {
    if (!(b < a)) return true;
    fail(file, line, "expected {} <= {}\n    left:  {}\n    right: {}", ea, eb, a, b);
    return false;
  }
  template <class... A>
  inline void fail(const char* file, int line, ktl::FormatString<ktl::TypeIdentityT<A>...> fmt,
                   const A&... args) {
    ktl::InlineString<1024> message;
    ktl::format_to(message, fmt, args...);
    ++failures_;
    reporter_.failure(file, line, message.view());
  }
  [[nodiscard]] inline ktl::usize failures() const { return failures_; }

 private:
  Reporter& reporter_;
  ktl::usize failures_ = 0;
};

using TestFn = void (*)(Context&);

struct TestCase {
  const char* suite;
  const char* name;
  TestFn fn;
  TestCase* next;
};

// Adds `test` to the registry (called by the KTEST macro's static object).
void register_test(TestCase& test);
// The registered tests, in registration order.
[[nodiscard]] TestCase* first();

class Registration {
 public:
  inline Registration(const char* suite, const char* name, TestFn fn) : case_{suite, name, fn, nullptr} {
    register_test(case_);
  }
  Registration(const Registration&) = delete;
  Registration& operator=(const Registration&) = delete;

 private:
  TestCase case_;
};

struct Summary {
  ktl::usize passed;
  ktl::usize failed;
};

// Runs every test whose "Suite.Name" starts with `filter` ("" or "all" runs everything), printing
// progress and failures to `out`, and returns the totals. Tests named DISABLED_* run only when
// the filter spells out "Suite.DISABLED_..." (as GoogleTest skips them unless asked).
Summary run_all(ktl::FormatSink& out, ktl::StringView filter);

}  // namespace ktest
