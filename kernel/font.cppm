// kernel.font: bitmap console fonts in the PC Screen Font format (PSF1 and PSF2).
//
// The kernel's built-in font is not stored in this repository: the build reads a PSF font from
// Debian's console-setup-linux package (see kernel/BUILD, target "console_font") and embeds it
// as `ferrite_console_font`. The parser is pure and validates everything (host tests in
// font_test.cc), so a bad font is an error, never an out-of-bounds read.
module;

#include <ktl/macros.h>

export module kernel.font;

import ktl;

export namespace kernel {

using ktl::u32;
using ktl::u8;
using ktl::usize;

enum class FontError : u32 { TooSmall, BadMagic, BadHeader, Truncated, UnsupportedSize };
[[nodiscard]] constexpr const char* to_string(FontError e) {
  switch (e) {
    case FontError::TooSmall: return "font data smaller than a PSF header";
    case FontError::BadMagic: return "not a PSF1 or PSF2 font (bad magic)";
    case FontError::BadHeader: return "inconsistent PSF header";
    case FontError::Truncated: return "font data shorter than its glyphs";
    case FontError::UnsupportedSize: return "glyph size outside 1..32 x 1..64";
  }
  return "unknown font error";
}

class Font {
 public:
  constexpr Font() = default;
  [[nodiscard]] static ktl::Result<Font, FontError> parse(ktl::Span<const u8> data);

  [[nodiscard]] inline u32 width() const { return width_; }
  [[nodiscard]] inline u32 height() const { return height_; }
  [[nodiscard]] inline u32 glyph_count() const { return count_; }
  // Bytes per glyph row: ceil(width / 8).
  [[nodiscard]] inline u32 row_bytes() const { return (width_ + 7) / 8; }
  // The glyph used for `c` (7-bit ASCII through the font's Unicode table when it has one; other
  // characters and unmapped ones show as '?').
  [[nodiscard]] u32 glyph_index(char c) const;
  // Whether pixel (x, y) of glyph `index` is set (most significant bit first in each row).
  [[nodiscard]] bool pixel(u32 index, u32 x, u32 y) const;

 private:
  ktl::Span<const u8> glyphs_;
  u32 width_ = 0;
  u32 height_ = 0;
  u32 count_ = 0;
  u32 bytes_per_glyph_ = 0;
  ktl::Array<ktl::u16, 128> ascii_{};  // ASCII -> glyph index
};

}  // namespace kernel

// The embedded font (kernel/BUILD, "console_font"): the PSF file's bytes.
export extern "C" const ktl::u8 ferrite_console_font[];
export extern "C" const ktl::usize ferrite_console_font_size;

export namespace kernel {
[[nodiscard]] inline ktl::Span<const ktl::u8> builtin_font_data() {
  KTL_UNSAFE_BUFFER_BEGIN  // the build embeds exactly ferrite_console_font_size bytes
  return ktl::Span<const ktl::u8>::from_raw(ferrite_console_font, ferrite_console_font_size);
  KTL_UNSAFE_BUFFER_END
}
}  // namespace kernel
