#include <gtest/gtest.h>

#include <string>

import ktl;
import mm.addr;

namespace {

using mm::AddrError;
using mm::Frame;
using mm::Page;
using mm::PhysAddr;
using mm::Size1G;
using mm::Size2M;
using mm::Size4K;
using mm::VirtAddr;

// The misuse that must not compile, checked with concepts so the test itself compiles.
template <class A, class B>
concept Addable = requires(A a, B b) { a + b; };
template <class A, class B>
concept Comparable = requires(A a, B b) { a == b; };

static_assert(!Addable<PhysAddr, PhysAddr>, "adding two physical addresses must not compile");
static_assert(!Addable<VirtAddr, VirtAddr>, "adding two virtual addresses must not compile");
static_assert(!Addable<PhysAddr, VirtAddr>, "mixing physical and virtual must not compile");
static_assert(!Comparable<PhysAddr, VirtAddr>, "comparing physical and virtual must not compile");
static_assert(Addable<PhysAddr, ktl::u64>);
static_assert(!__is_constructible(PhysAddr, ktl::u64), "no implicit construction from integers");
static_assert(!__is_constructible(Page<Size4K>, VirtAddr), "pages come from from_start/containing");
static_assert(sizeof(PhysAddr) == 8 && sizeof(VirtAddr) == 8 && sizeof(Page<Size2M>) == 8);

TEST(VirtAddr, CanonicalFormIsEnforced) {
  EXPECT_TRUE(VirtAddr::try_from(0x0000'7fff'ffff'ffffull).is_ok());
  EXPECT_TRUE(VirtAddr::try_from(0xffff'8000'0000'0000ull).is_ok());
  auto bad = VirtAddr::try_from(0x0000'8000'0000'0000ull);
  ASSERT_TRUE(bad.is_err());
  EXPECT_EQ(bad.error(), AddrError::NonCanonical);
  EXPECT_EQ(VirtAddr::truncate(0x0000'8000'0000'1000ull).value(), 0xffff'8000'0000'1000ull);
}

TEST(VirtAddr, ArithmeticStaysCanonical) {
  VirtAddr top_low = VirtAddr::from(0x0000'7fff'ffff'f000ull);
  EXPECT_TRUE(top_low.checked_add(0x1000).is_err());
  EXPECT_EQ(top_low.checked_add(0xfff).value().value(), 0x0000'7fff'ffff'ffffull);
  VirtAddr a = VirtAddr::from(0x5000);
  VirtAddr b = VirtAddr::from(0x2000);
  EXPECT_EQ(a - b, 0x3000u);  // a byte count
  EXPECT_EQ(VirtAddr::from(0x1234).align_down(0x1000).value(), 0x1000u);
  EXPECT_EQ(VirtAddr::from(0x1234).align_up(0x1000).value().value(), 0x2000u);
  EXPECT_EQ(a.table_index(12, 9), 5u);
}

TEST(VirtAddrDeathTest, BackwardsDifferencePanics) {
  EXPECT_DEATH((void)(VirtAddr::from(0x1000) - VirtAddr::from(0x2000)), "base is above");
  EXPECT_DEATH((void)VirtAddr::from(0x0000'8000'0000'0000ull), "non-canonical");
}

TEST(PhysAddr, RangeIsEnforced) {
  EXPECT_TRUE(PhysAddr::try_from((1ull << 52) - 1).is_ok());
  EXPECT_EQ(PhysAddr::try_from(1ull << 52).error(), AddrError::OutOfRange);
  EXPECT_TRUE(PhysAddr::from(0x1000).checked_sub(0x2000).is_err());
  EXPECT_TRUE(PhysAddr::from((1ull << 52) - 1).checked_add(1).is_err());
}

TEST(Page, AlignmentIsAnErrorNotARounding) {
  EXPECT_EQ(Page<Size4K>::from_start(VirtAddr::from(0x1001)).error(), AddrError::Unaligned);
  EXPECT_EQ(Page<Size2M>::from_start(VirtAddr::from(0x1000)).error(), AddrError::Unaligned);
  auto p = Page<Size2M>::from_start(VirtAddr::from(0x40'0000)).value();
  EXPECT_EQ(p.next().value().start().value(), 0x60'0000u);
  EXPECT_EQ(Page<Size1G>::containing(VirtAddr::from(0x7fff'ffffull)).start().value(), 0x4000'0000u);
  auto f = Frame<Size4K>::from_number(3).value();
  EXPECT_EQ(f.start().value(), 0x3000u);
  EXPECT_EQ(f.number(), 3u);
}

TEST(Range, ContainsAndOverlaps) {
  auto r = mm::PhysRange::with_size(PhysAddr::from(0x1000), 0x3000).value();
  EXPECT_TRUE(r.contains(PhysAddr::from(0x3fff)));
  EXPECT_FALSE(r.contains(PhysAddr::from(0x4000)));
  EXPECT_TRUE(r.overlaps(mm::PhysRange::with_size(PhysAddr::from(0x3000), 0x10).value()));
  EXPECT_FALSE(r.overlaps(mm::PhysRange::with_size(PhysAddr::from(0x4000), 0x10).value()));
  EXPECT_EQ(mm::PhysRange::try_from(PhysAddr::from(2), PhysAddr::from(1)).error(), AddrError::Empty);
  mm::PageRange<Size4K> pages(Page<Size4K>::containing(VirtAddr::from(0x10000)), 4);
  EXPECT_EQ(pages[3].start().value(), 0x13000u);
  EXPECT_EQ(pages.size_bytes(), 0x4000u);
}

class StringSink final : public ktl::FormatSink {
 public:
  void write(ktl::StringView t) override { out.append(t.data(), t.size()); }
  std::string out;
};

TEST(Format, TypedAddressesPrintTheirKind) {
  StringSink s;
  ktl::format_to(s, "{} {}", PhysAddr::from(0x1ff000), VirtAddr::from(0xffff'8000'0000'0000ull));
  EXPECT_EQ(s.out, "P:0x00000000001ff000 V:0xffff800000000000");
}

TEST(Format, AddrErrorsPrintByNameAndEveryValueHasItsOwnText) {
  StringSink s;
  ktl::format_to(s, "{} {:d}", AddrError::NonCanonical, AddrError::Overflow);
  EXPECT_EQ(s.out, std::string(mm::to_string(AddrError::NonCanonical)) + " 3");
  ktl::EnumTextCheck c = ktl::check_enum_text<AddrError>();
  EXPECT_TRUE(c.ok) << "value " << c.bad;
  EXPECT_EQ(c.count, ktl::to_underlying(AddrError::Empty) + 1);
}

}  // namespace
