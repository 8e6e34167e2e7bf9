// Macros for ktest test bodies (see testing/ktest/ktest.cppm). Include in the global module
// fragment or at the top of an ordinary translation unit, next to `import ktest;`.
#pragma once

#define KTEST_CONCAT2(a, b) a##b
#define KTEST_CONCAT(a, b) KTEST_CONCAT2(a, b)

// KTEST(Suite, Name) { body } — `ktest_ctx` is the Context inside the body.
#define KTEST(suite, name)                                                             \
  static void KTEST_CONCAT(ktest_body_##suite##_, name)(::ktest::Context & ktest_ctx); \
  static ::ktest::Registration KTEST_CONCAT(ktest_registration_##suite##_, name)(      \
      #suite, #name, &KTEST_CONCAT(ktest_body_##suite##_, name));                      \
  static void KTEST_CONCAT(ktest_body_##suite##_, name)([[maybe_unused]] ::ktest::Context & ktest_ctx)

// EXPECT_* record a failure and continue; ASSERT_* also return from the test body.
#define KEXPECT(cond) ktest_ctx.check(static_cast<bool>(cond), #cond, __FILE__, __LINE__)
#define KEXPECT_EQ(a, b) ktest_ctx.check_eq((a), (b), #a, #b, __FILE__, __LINE__)
#define KEXPECT_NE(a, b) ktest_ctx.check_ne((a), (b), #a, #b, __FILE__, __LINE__)
#define KEXPECT_LT(a, b) ktest_ctx.check_lt((a), (b), #a, #b, __FILE__, __LINE__)
#define KEXPECT_LE(a, b) ktest_ctx.check_le((a), (b), #a, #b, __FILE__, __LINE__)
#define KASSERT(cond)           \
  do {                          \
    if (!KEXPECT(cond)) return; \
  } while (0)
#define KASSERT_EQ(a, b)           \
  do {                             \
    if (!KEXPECT_EQ(a, b)) return; \
  } while (0)
#define KASSERT_LE(a, b)           \
  do {                             \
    if (!KEXPECT_LE(a, b)) return; \
  } while (0)
// KEXPECT_OK(result) / KASSERT_OK(result): a ktl::Result or ktl::Optional that must hold a value.
#define KEXPECT_OK(r) ktest_ctx.check(!(r).is_err(), "is_ok(" #r ")", __FILE__, __LINE__)
#define KASSERT_OK(r)           \
  do {                          \
    if (!KEXPECT_OK(r)) return; \
  } while (0)
// KTRY(expr): the value of a Result/Optional, or a recorded failure and return.
#define KTRY(expr)                                                  \
  ({                                                                \
    auto&& ktest_try_result = (expr);                               \
    if (ktest_try_result.is_err()) {                                \
      ktest_ctx.fail(__FILE__, __LINE__, "KTRY({}) failed", #expr); \
      return;                                                       \
    }                                                               \
    ktest_try_result.release_value();                               \
  })
