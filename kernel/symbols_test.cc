// kernel.symbols: parsing and lookup over hand-built tables (host and in-kernel).
#include <ktest/ktest.h>

import ktl;
import ktest;
import kernel.symbols;

namespace {

using ktl::u8;
using ktl::usize;

// Header, three entries, strings "alpha\0beta\0gamma\0" (17 bytes).
constexpr usize kBlobSize = 32 + 3 * 16 + 17;

template <class T>
void put(ktl::Array<u8, kBlobSize>& blob, usize at, const T& value) {
  auto raw = ktl::bit_cast<ktl::Array<u8, sizeof(T)>>(value);
  for (usize i = 0; i < sizeof(T); ++i) blob[at + i] = raw[i];
}

ktl::Array<u8, kBlobSize> make_blob() {
  ktl::Array<u8, kBlobSize> blob{};
  put(blob, 0, ksym::Header{ksym::kMagic, ksym::kVersion, 3, 17, kBlobSize});
  put(blob, 32, ksym::Entry{0x1000, 0x40, 0});  // alpha [0x1000, 0x1040)
  put(blob, 48, ksym::Entry{0x1040, 0x10, 6});  // beta  [0x1040, 0x1050)
  put(blob, 64, ksym::Entry{0x2000, 0, 11});    // gamma (no size)
  const char names[] = "alpha\0beta\0gamma";
  const ktl::Span<const char> strings(names);  // the three names and their NULs
  for (usize i = 0; i < strings.size(); ++i) blob[80 + i] = static_cast<u8>(strings[i]);
  return blob;
}

KTEST(Symbols, LookupFindsContainingFunction) {
  auto blob = make_blob();
  auto t = ksym::SymbolTable::parse(blob.span());
  KASSERT(t.is_ok());
  KEXPECT_EQ(t.value().size(), 3u);
  auto a = t.value().lookup(0x1010);
  KASSERT(a.has_value());
  KEXPECT_EQ(a->name, ktl::StringView("alpha"));
  KEXPECT_EQ(a->offset, 0x10u);
  auto b = t.value().lookup(0x1040);
  KASSERT(b.has_value());
  KEXPECT_EQ(b->name, ktl::StringView("beta"));
  KEXPECT_EQ(b->offset, 0u);
  KEXPECT(!t.value().lookup(0xfff).has_value());   // before everything
  KEXPECT(!t.value().lookup(0x1050).has_value());  // the gap after beta's size
  auto g = t.value().lookup(0x2100);               // unsized: attributed within the limit
  KASSERT(g.has_value());
  KEXPECT_EQ(g->name, ktl::StringView("gamma"));
  KEXPECT(!t.value().lookup(0x2000 + ksym::kMaxUnsizedDistance).has_value());
  KEXPECT_EQ(t.value().address_of("beta").value_or(0), 0x1040u);
}

KTEST(Symbols, Formatting) {
  auto blob = make_blob();
  auto t = ksym::SymbolTable::parse(blob.span());
  KASSERT(t.is_ok());
  ktl::InlineString<96> text;
  ktl::format_to(text, "{}", ksym::Symbolized{0x1012, t.value().lookup(0x1012)});
  KEXPECT_EQ(text.view(), ktl::StringView("0x0000000000001012 <alpha+0x12>"));
  ktl::InlineString<96> unknown;
  ktl::format_to(unknown, "{}", ksym::Symbolized{0x10, t.value().lookup(0x10)});
  KEXPECT_EQ(unknown.view(), ktl::StringView("0x0000000000000010 <?>"));
}

KTEST(Symbols, RejectsBadTables) {
  auto magic = make_blob();
  magic[0] ^= 1;
  KEXPECT_EQ(ksym::SymbolTable::parse(magic.span()).error(), ksym::TableError::BadMagic);
  auto size = make_blob();
  put(size, 0, ksym::Header{ksym::kMagic, ksym::kVersion, 300, 17, kBlobSize});
  KEXPECT_EQ(ksym::SymbolTable::parse(size.span()).error(), ksym::TableError::BadSize);
  auto order = make_blob();
  put(order, 48, ksym::Entry{0x10, 0x10, 6});
  KEXPECT_EQ(ksym::SymbolTable::parse(order.span()).error(), ksym::TableError::Unsorted);
  auto name = make_blob();
  put(name, 64, ksym::Entry{0x2000, 0, 99});
  KEXPECT_EQ(ksym::SymbolTable::parse(name.span()).error(), ksym::TableError::BadName);
  auto unterminated = make_blob();
  unterminated[kBlobSize - 1] = 'x';
  KEXPECT_EQ(ksym::SymbolTable::parse(unterminated.span()).error(), ksym::TableError::BadName);
  KEXPECT_EQ(ksym::SymbolTable::parse(make_blob().span().first(8)).error(), ksym::TableError::TooSmall);
}

}  // namespace
