#include <gtest/gtest.h>
#include <ktl/macros.h>

#include <string>

import ktl;

namespace {

using ktl::u64;

enum class Error { Bad, Worse };

ktl::Result<int, Error> parse_digit(char c) {
  if (c < '0' || c > '9') return ktl::Err(Error::Bad);
  return c - '0';
}

ktl::Result<int, Error> parse_two(char a, char b) {
  int hi = TRY(parse_digit(a));
  int lo = TRY(parse_digit(b));
  return hi * 10 + lo;
}

TEST(Result, TryPropagatesErrorsAndValues) {
  auto ok = parse_two('4', '2');
  ASSERT_TRUE(ok.is_ok());
  EXPECT_EQ(ok.value(), 42);
  auto bad = parse_two('4', 'x');
  ASSERT_TRUE(bad.is_err());
  EXPECT_EQ(bad.error(), Error::Bad);
}

TEST(ResultDeathTest, ValueOfErrorPanics) {
  EXPECT_DEATH((void)parse_digit('x').value(), "Result::value\\(\\) on an error");
}

TEST(Optional, EmptyAndFull) {
  ktl::Optional<int> none;
  EXPECT_FALSE(none.has_value());
  ktl::Optional<int> some = 7;
  EXPECT_EQ(*some, 7);
  EXPECT_EQ(none.value_or(3), 3);
}

TEST(SpanDeathTest, OutOfRangeIndexPanics) {
  int a[3] = {1, 2, 3};
  ktl::Span<int> s(a);
  EXPECT_EQ(s[2], 3);
  EXPECT_DEATH((void)s[3], "Span index out of range");
  EXPECT_DEATH((void)s.subspan(2, 2), "subspan out of range");
}

TEST(Bits, AlignAndCheckedArithmetic) {
  EXPECT_EQ(ktl::align_up<u64>(4097, 4096), 8192u);
  EXPECT_EQ(ktl::align_down<u64>(4097, 4096), 4096u);
  EXPECT_TRUE(ktl::checked_add<u64>(~0ull, 1).overflow);
  EXPECT_TRUE(ktl::checked_align_up<u64>(~0ull - 2, 4096).overflow);
  EXPECT_EQ(ktl::bit_ceil(5), 8u);
  EXPECT_EQ(ktl::log2_floor(4096), 12u);
}

class StringSink final : public ktl::FormatSink {
 public:
  void write(ktl::StringView t) override { out.append(t.data(), t.size()); }
  std::string out;
};

template <class... A>
std::string fmt(ktl::FormatString<ktl::TypeIdentityT<A>...> f, const A&... a) {
  StringSink s;
  ktl::format_to(s, f, a...);
  return s.out;
}

TEST(Format, IntegersStringsAndSpecs) {
  EXPECT_EQ(fmt("a{}b", 12), "a12b");
  EXPECT_EQ(fmt("{} {}", -5, 7u), "-5 7");
  EXPECT_EQ(fmt("{:#x}", 255), "0xff");
  EXPECT_EQ(fmt("{:016x}", 0xabcu), "0000000000000abc");
  EXPECT_EQ(fmt("{:#018x}", 0xabcu), "0x0000000000000abc");
  EXPECT_EQ(fmt("[{:>6}]", "ab"), "[    ab]");
  EXPECT_EQ(fmt("[{:<6}]", 42), "[42    ]");
  EXPECT_EQ(fmt("{{}}{}", true), "{}true");
  EXPECT_EQ(fmt("{:b}", 5), "101");
  EXPECT_EQ(fmt("{}", ktl::StringView("view")), "view");
  EXPECT_EQ(fmt("{}", static_cast<long long>(-9223372036854775807LL - 1)), "-9223372036854775808");
}

TEST(Format, BufferSinkTruncatesSafely) {
  char buf[6];
  ktl::BufferSink sink{ktl::Span<char>(buf)};
  ktl::format_to(sink, "{}", "hello world");
  EXPECT_EQ(std::string(sink.c_str()), "hello");
  EXPECT_TRUE(sink.truncated());
}

TEST(Sync, SpinLockGuards) {
  ktl::SpinLock lock("test");
  {
    ktl::LockGuard guard(lock);
    EXPECT_TRUE(lock.is_locked());
  }
  EXPECT_FALSE(lock.is_locked());
  ktl::Atomic<int> a(1);
  EXPECT_EQ(a.fetch_add(2), 1);
  EXPECT_EQ(a.load(), 3);
}

}  // namespace
