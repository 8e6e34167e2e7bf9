module;

#include <ktl/macros.h>

module kernel.symbols;

import ktl;

namespace ksym {

namespace {
template <class T>
T read_at(ktl::Span<const ktl::u8> bytes, usize offset) {
  ktl::Array<ktl::u8, sizeof(T)> raw{};
  for (usize i = 0; i < sizeof(T); ++i) raw[i] = bytes[offset + i];
  return ktl::bit_cast<T>(raw);
}
}  // namespace

ktl::Result<SymbolTable, TableError> SymbolTable::parse(ktl::Span<const ktl::u8> blob) {
  if (blob.size() < sizeof(Header)) return ktl::Err(TableError::TooSmall);
  auto h = read_at<Header>(blob, 0);
  if (h.magic != kMagic) return ktl::Err(TableError::BadMagic);
  if (h.version != kVersion) return ktl::Err(TableError::BadVersion);
  u64 entries_bytes = u64{h.count} * sizeof(Entry);
  if (h.total_size > blob.size() || h.strings_size > h.total_size ||
      sizeof(Header) + entries_bytes > h.total_size - h.strings_size) {
    return ktl::Err(TableError::BadSize);
  }
  SymbolTable t;
  t.count_ = h.count;
  t.entries_ = blob.subspan(sizeof(Header), static_cast<usize>(entries_bytes));
  auto strings =
      blob.subspan(static_cast<usize>(sizeof(Header) + entries_bytes), static_cast<usize>(h.strings_size));
  KTL_UNSAFE_BUFFER_BEGIN  // the same bytes, read as characters (char may alias anything)
  t.strings_ = ktl::Span<const char>::from_raw(reinterpret_cast<const char*>(strings.data()), strings.size());
  KTL_UNSAFE_BUFFER_END
  u64 previous = 0;
  for (usize i = 0; i < t.count_; ++i) {
    Entry e = t.entry(i);
    if (e.address < previous) return ktl::Err(TableError::Unsorted);
    previous = e.address;
    if (e.name_offset >= t.strings_.size()) return ktl::Err(TableError::BadName);
    usize end = ktl::StringView(t.strings_).find('\0', e.name_offset);
    if (end == t.strings_.size()) return ktl::Err(TableError::BadName);
  }
  return t;
}

Entry SymbolTable::entry(usize i) const { return read_at<Entry>(entries_, i * sizeof(Entry)); }

ktl::StringView SymbolTable::name(const Entry& e) const {
  ktl::StringView all(strings_);
  usize end = all.find('\0', e.name_offset);  // present: checked by parse()
  return all.substr(e.name_offset, end - e.name_offset);
}

ktl::Optional<Symbol> SymbolTable::lookup(u64 address) const {
  // The last entry whose address is <= `address`.
  usize lo = 0;
  usize hi = count_;
  while (lo < hi) {
    usize mid = lo + (hi - lo) / 2;
    if (entry(mid).address <= address) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  if (lo == 0) return ktl::nullopt;
  // Among symbols at the same address prefer one with a size that covers `address`.
  for (usize i = lo; i > 0; --i) {
    Entry e = entry(i - 1);
    if (i != lo && e.address != entry(lo - 1).address) break;
    u64 offset = address - e.address;
    bool inside = e.size != 0 ? offset < e.size : offset < kMaxUnsizedDistance;
    if (inside) return Symbol{name(e), e.address, offset};
  }
  return ktl::nullopt;
}

ktl::Optional<u64> SymbolTable::address_of(ktl::StringView wanted) const {
  for (usize i = 0; i < count_; ++i) {
    Entry e = entry(i);
    if (name(e) == wanted) return e.address;
  }
  return ktl::nullopt;
}

void format_value(ktl::FormatSink& sink, const Symbolized& s, const ktl::FormatSpec&) {
  ktl::format_to(sink, "{:#018x}", s.address);
  if (s.symbol.has_value()) {
    if (s.symbol->offset == 0) {
      ktl::format_to(sink, " <{}>", s.symbol->name);
    } else {
      ktl::format_to(sink, " <{}+{:#x}>", s.symbol->name, s.symbol->offset);
    }
  } else {
    sink.write(" <?>");
  }
}

}  // namespace ksym
