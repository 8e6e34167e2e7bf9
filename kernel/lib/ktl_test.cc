#include <gtest/gtest.h>
#include <ktl/macros.h>

#include <string>
#include <string_view>

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

// A view of (pointer, length) exists only as the named, lint-counted StringView::from_raw; the
// safe form goes through a span.
static_assert(!__is_constructible(ktl::StringView, const char*, ktl::usize));
TEST(StringView, FromASpanAndFromRaw) {
  const char text[] = "abcdef";
  EXPECT_EQ(std::string_view(ktl::StringView(ktl::Span<const char>(text).first(3)).data(), 3), "abc");
  KTL_UNSAFE_BUFFER_BEGIN  // text holds 6 characters
  ktl::StringView v = ktl::StringView::from_raw(text + 2, 4);
  KTL_UNSAFE_BUFFER_END
  EXPECT_EQ(v.size(), 4u);
  EXPECT_EQ(v[0], 'c');
  EXPECT_TRUE(v == ktl::StringView("cdef"));
}

TEST(Format, BufferSinkTruncatesSafely) {
  char buf[6];
  ktl::BufferSink sink{ktl::Span<char>(buf)};
  ktl::format_to(sink, "{}", "hello world");
  EXPECT_EQ(std::string(sink.c_str()), "hello");
  EXPECT_TRUE(sink.truncated());
}

// --- enums and their texts ---
enum class Named : ktl::u8 { First, Second };
constexpr const char* to_string(Named n) {
  switch (n) {
    case Named::First: return "first";
    case Named::Second: return "second";
  }
  return "unknown named";
}
enum class Repeated : ktl::u32 { A, B, C };
constexpr const char* to_string(Repeated r) {
  switch (r) {
    case Repeated::A: return "a";
    case Repeated::B: return "b";
    case Repeated::C: return "a";  // the defect check_enum_text must find
  }
  return "?";
}
enum class Empty : ktl::u32 { A, B };
constexpr const char* to_string(Empty e) { return e == Empty::A ? "a" : e == Empty::B ? "" : "?"; }
enum class Gap : int { A = 0, B = 2 };
constexpr const char* to_string(Gap g) {
  switch (g) {
    case Gap::A: return "a";
    case Gap::B: return "b";
  }
  return "?";
}
static_assert(ktl::NamedEnum<Named> && !ktl::NamedEnum<Error>);

TEST(Format, EnumsPrintTheirTextOrTheirNumber) {
  EXPECT_EQ(fmt("{} {}", Named::First, Named::Second), "first second");
  EXPECT_EQ(fmt("[{:>7}]", Named::First), "[  first]");
  EXPECT_EQ(fmt("{:d} {:#x}", Named::Second, Named::Second), "1 0x1");
  EXPECT_EQ(fmt("{}", Error::Worse), "1");  // no to_string: the number
}

TEST(EnumText, FindsEveryEnumeratorAndEveryDefect) {
  constexpr ktl::EnumTextCheck named = ktl::check_enum_text<Named>();
  EXPECT_TRUE(named.ok);
  EXPECT_EQ(named.count, 2u);
  ktl::EnumTextCheck repeated = ktl::check_enum_text<Repeated>();
  EXPECT_FALSE(repeated.ok);
  EXPECT_EQ(repeated.bad, 2u);
  ktl::EnumTextCheck empty = ktl::check_enum_text<Empty>();
  EXPECT_FALSE(empty.ok);
  EXPECT_EQ(empty.bad, 1u);
  ktl::EnumTextCheck gap = ktl::check_enum_text<Gap>();
  EXPECT_FALSE(gap.ok);
  EXPECT_EQ(gap.count, 1u);
  EXPECT_EQ(gap.bad, 2u);
}

ktl::Result<int, Named> fails_named() { return ktl::Err(Named::Second); }

TEST(ResultDeathTest, PanicsNameTheError) {
  EXPECT_DEATH((void)fails_named().value(), "Result::value\\(\\) on an error: second");
  EXPECT_DEATH((void)fails_named().release_value(), "Result::release_value\\(\\) on an error: second");
  EXPECT_DEATH(ktl::check_ok(fails_named(), "cannot fail"), "cannot fail: second");
  ktl::check_ok(ktl::Result<int, Named>(3), "a success passes");
}

TEST(Sync, SpinLockGuards) {
  ktl::SpinLock lock(ktl::LockRank::Test);
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
