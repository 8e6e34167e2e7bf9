module;

#include <ktl/macros.h>

module kernel.font;

import ktl;

namespace kernel {

namespace {
constexpr u8 kPsf1Magic0 = 0x36;
constexpr u8 kPsf1Magic1 = 0x04;
constexpr u32 kPsf1Mode512 = 0x01;
constexpr u32 kPsf1ModeHasTab = 0x02;
constexpr u32 kPsf1ModeHasSeq = 0x04;
constexpr u32 kPsf2Magic = 0x864a'b572;
constexpr u32 kPsf2HasUnicodeTable = 0x01;
constexpr ktl::u16 kUnmapped = 0xffff;

u32 le32(ktl::Span<const u8> d, usize at) {
  return u32{d[at]} | (u32{d[at + 1]} << 8) | (u32{d[at + 2]} << 16) | (u32{d[at + 3]} << 24);
}
}  // namespace

ktl::Result<Font, FontError> Font::parse(ktl::Span<const u8> data) {
  Font f;
  for (auto& slot : f.ascii_) slot = kUnmapped;
  usize glyphs_at = 0;
  ktl::Span<const u8> table;
  bool psf2 = false;
  bool has_table = false;
  if (data.size() >= 4 && data[0] == kPsf1Magic0 && data[1] == kPsf1Magic1) {
    u32 mode = data[2];
    f.height_ = data[3];
    f.width_ = 8;
    f.count_ = (mode & kPsf1Mode512) != 0 ? 512 : 256;
    f.bytes_per_glyph_ = f.height_;
    glyphs_at = 4;
    has_table = (mode & (kPsf1ModeHasTab | kPsf1ModeHasSeq)) != 0;
  } else if (data.size() >= 32 && le32(data, 0) == kPsf2Magic) {
    psf2 = true;
    u32 header_size = le32(data, 8);
    u32 flags = le32(data, 12);
    f.count_ = le32(data, 16);
    f.bytes_per_glyph_ = le32(data, 20);
    f.height_ = le32(data, 24);
    f.width_ = le32(data, 28);
    if (header_size < 32 || header_size > data.size()) return ktl::Err(FontError::BadHeader);
    glyphs_at = header_size;
    has_table = (flags & kPsf2HasUnicodeTable) != 0;
  } else {
    return ktl::Err(data.size() < 4 ? FontError::TooSmall : FontError::BadMagic);
  }
  if (f.width_ == 0 || f.width_ > 32 || f.height_ == 0 || f.height_ > 64)
    return ktl::Err(FontError::UnsupportedSize);
  if (f.count_ == 0 || f.count_ > 65535) return ktl::Err(FontError::BadHeader);
  if (f.bytes_per_glyph_ != f.row_bytes() * f.height_) return ktl::Err(FontError::BadHeader);
  ktl::u64 glyph_bytes = ktl::u64{f.count_} * f.bytes_per_glyph_;
  if (glyph_bytes > data.size() - glyphs_at) return ktl::Err(FontError::Truncated);
  f.glyphs_ = data.subspan(glyphs_at, static_cast<usize>(glyph_bytes));
  table = data.subspan(glyphs_at + static_cast<usize>(glyph_bytes));

  if (!has_table) {
    for (u32 c = 0; c < 128 && c < f.count_; ++c) f.ascii_[c] = static_cast<ktl::u16>(c);
  } else {
    // One entry per glyph: code points, then (after a sequence marker) combining sequences we
    // skip, then a terminator. PSF1 uses u16 code points (0xfffe sequence, 0xffff end); PSF2
    // uses UTF-8 (0xfe sequence, 0xff end). Only single-byte ASCII code points matter here.
    usize at = 0;
    for (u32 glyph = 0; glyph < f.count_ && at < table.size(); ++glyph) {
      bool in_sequence = false;
      while (at < table.size()) {
        u32 cp = 0;
        if (psf2) {
          u8 b = table[at++];
          if (b == 0xff) break;
          if (b == 0xfe) {
            in_sequence = true;
            continue;
          }
          if (b >= 0x80) continue;  // part of a multi-byte character: never ASCII
          cp = b;
        } else {
          if (at + 2 > table.size()) {
            at = table.size();
            break;
          }
          cp = u32{table[at]} | (u32{table[at + 1]} << 8);
          at += 2;
          if (cp == 0xffff) break;
          if (cp == 0xfffe) {
            in_sequence = true;
            continue;
          }
        }
        if (!in_sequence && cp < 128 && f.ascii_[cp] == kUnmapped)
          f.ascii_[cp] = static_cast<ktl::u16>(glyph);
      }
    }
  }
  return f;
}

u32 Font::glyph_index(char c) const {
  auto code = static_cast<u8>(c);
  ktl::u16 g = code < 128 ? ascii_[code] : kUnmapped;
  if (g == kUnmapped) g = ascii_['?'];
  return g == kUnmapped ? 0 : g;
}

bool Font::pixel(u32 index, u32 x, u32 y) const {
  if (index >= count_ || x >= width_ || y >= height_) return false;
  usize at = usize{index} * bytes_per_glyph_ + usize{y} * row_bytes() + x / 8;
  return (glyphs_[at] & (0x80u >> (x % 8))) != 0;
}

}  // namespace kernel
