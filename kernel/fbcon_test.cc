// kernel.font and kernel.fbcon: the built-in font parses, text renders pixel for pixel, the
// console wraps and scrolls (host and in-kernel; rendering goes to memory).
#include <ktest/ktest.h>

import ktl;
import ktest;
import boot.info;
import kernel.font;
import kernel.fbcon;

namespace {

using ktl::u32;
using ktl::u8;
using ktl::usize;

KTEST(Font, BuiltinFontParses) {
  auto f = kernel::Font::parse(kernel::builtin_font_data());
  KASSERT(f.is_ok());
  KEXPECT_EQ(f.value().width(), 8u);
  KEXPECT_EQ(f.value().height(), 16u);
  KEXPECT_EQ(f.value().glyph_count(), 256u);
  // 'A' and 'a' differ, ' ' is blank, a non-ASCII byte falls back to '?'.
  u32 upper = f.value().glyph_index('A');
  u32 lower = f.value().glyph_index('a');
  KEXPECT_NE(upper, lower);
  u32 lit = 0;
  for (u32 y = 0; y < 16; ++y)
    for (u32 x = 0; x < 8; ++x) lit += f.value().pixel(f.value().glyph_index(' '), x, y) ? 1 : 0;
  KEXPECT_EQ(lit, 0u);
  KEXPECT_EQ(f.value().glyph_index(static_cast<char>(0xe9)), f.value().glyph_index('?'));
}

KTEST(Font, ParsesPsf2AndRejectsGarbage) {
  // A PSF2 font: 2 glyphs of 10x2 (2 bytes per row), no Unicode table.
  ktl::Array<u8, 32 + 2 * 4> psf2{};
  const ktl::Array<u32, 8> header{{0x864ab572, 0, 32, 0, 2, 4, 2, 10}};
  for (usize i = 0; i < 8; ++i)
    for (usize b = 0; b < 4; ++b) psf2[i * 4 + b] = static_cast<u8>(header[i] >> (8 * b));
  psf2[32 + 4] = 0x80;  // glyph 1, row 0: x = 0
  psf2[32 + 7] = 0x40;  // glyph 1, row 1: x = 9
  auto f = kernel::Font::parse(psf2.span());
  KASSERT(f.is_ok());
  KEXPECT_EQ(f.value().width(), 10u);
  KEXPECT_EQ(f.value().row_bytes(), 2u);
  KEXPECT(f.value().pixel(1, 0, 0));
  KEXPECT(f.value().pixel(1, 9, 1));
  KEXPECT(!f.value().pixel(1, 1, 0));
  KEXPECT(!f.value().pixel(0, 0, 0));

  KEXPECT_EQ(kernel::Font::parse(psf2.span().first(30)).error(), kernel::FontError::BadMagic);
  KEXPECT_EQ(kernel::Font::parse(psf2.span().first(38)).error(), kernel::FontError::Truncated);
  ktl::Array<u8, 3> tiny = {{0x36, 0x04, 0}};
  KEXPECT_EQ(kernel::Font::parse(tiny.span()).error(), kernel::FontError::TooSmall);
}

// A console over an in-memory surface of cols x rows cells of the built-in font.
struct Screen {
  static constexpr u32 kCols = 6;
  static constexpr u32 kRows = 3;
  static constexpr u32 kWidth = kCols * 8 + 3;  // a partial column at the right edge
  static constexpr u32 kHeight = kRows * 16;
  static constexpr u32 kStride = kWidth + 5;  // padding after each row
  ktl::Array<u32, kStride * kHeight> pixels{};
  kernel::Font font = kernel::Font::parse(kernel::builtin_font_data()).value();
  kernel::FramebufferConsole con{kernel::Surface::in_memory(pixels.span(), kWidth, kHeight, kStride), font};

  // Whether cell (col, row) shows exactly the glyph of `c`.
  bool shows(u32 col, u32 row, char c) const {
    const kernel::Surface& s = con.surface();
    u32 fg = s.encode(kernel::FramebufferConsole::kForeground);
    u32 bg = s.encode(kernel::FramebufferConsole::kBackground);
    u32 g = font.glyph_index(c);
    for (u32 y = 0; y < 16; ++y) {
      for (u32 x = 0; x < 8; ++x) {
        u32 want = font.pixel(g, x, y) ? fg : bg;
        if (s.get(col * 8 + x, row * 16 + y) != want) return false;
      }
    }
    return true;
  }
};

KTEST(Fbcon, RendersGlyphsPixelForPixel) {
  Screen s;
  s.con.clear();
  KEXPECT_EQ(s.con.columns(), Screen::kCols);
  KEXPECT_EQ(s.con.rows(), Screen::kRows);
  s.con.write("Hi!");
  KEXPECT(s.shows(0, 0, 'H'));
  KEXPECT(s.shows(1, 0, 'i'));
  KEXPECT(s.shows(2, 0, '!'));
  KEXPECT(s.shows(3, 0, ' '));
  KEXPECT(!s.shows(0, 0, 'X'));
  // The partial column at the right edge holds no glyph.
  u32 bg = s.con.surface().encode(kernel::FramebufferConsole::kBackground);
  KEXPECT_EQ(s.con.surface().get(Screen::kCols * 8 + 1, 3), bg);
}

KTEST(Fbcon, WrapsAndScrolls) {
  Screen s;
  s.con.clear();
  s.con.write("abcdefGH\nrow2\nrow3\nlast");
  // "abcdef" filled row 0, "GH" wrapped to row 1; three more lines scrolled two rows up.
  KEXPECT(s.shows(0, 0, 'r'));
  KEXPECT(s.shows(3, 0, '2'));
  KEXPECT(s.shows(3, 1, '3'));
  KEXPECT(s.shows(0, 2, 'l'));
  KEXPECT(s.shows(3, 2, 't'));
  KEXPECT(s.shows(4, 2, ' '));
  KEXPECT_EQ(s.con.cursor_row(), 2u);
  KEXPECT_EQ(s.con.cursor_column(), 4u);
}

KTEST(Fbcon, PixelFormats) {
  ktl::Array<u32, 16> mem{};
  boot::Framebuffer fb{0x80000000, 64, 4, 4, 16, boot::PixelFormat::Bgrx8, 0, 0, 0, 0};
  auto bgr = kernel::Surface::from_boot(fb, mem.span());
  KASSERT(bgr.is_ok());
  KEXPECT_EQ(bgr.value().encode({0x11, 0x22, 0x33}), 0x112233u);
  fb.format = boot::PixelFormat::Rgbx8;
  KEXPECT_EQ(kernel::Surface::from_boot(fb, mem.span()).value().encode({0x11, 0x22, 0x33}), 0x332211u);
  fb.format = boot::PixelFormat::Bitmask;
  fb.red_mask = 0xf800;  // RGB565 in the low half
  fb.green_mask = 0x07e0;
  fb.blue_mask = 0x001f;
  KEXPECT_EQ(kernel::Surface::from_boot(fb, mem.span()).value().encode({0xff, 0xff, 0xff}), 0xffffu);
}

KTEST(Fbcon, RejectsBadFramebuffers) {
  boot::Framebuffer none{};
  KEXPECT_EQ(kernel::Surface::validate(none).error(), kernel::SurfaceError::NoFramebuffer);
  boot::Framebuffer fb{0x80000000, 4096, 640, 480, 2560, boot::PixelFormat::Bgrx8, 0, 0, 0, 0};
  KEXPECT_EQ(kernel::Surface::validate(fb).error(), kernel::SurfaceError::TooSmall);
  fb.size = 2560 * 480;
  KEXPECT(kernel::Surface::validate(fb).is_ok());
  fb.pitch = 1000;  // fewer than width pixels per row
  KEXPECT_EQ(kernel::Surface::validate(fb).error(), kernel::SurfaceError::BadGeometry);
  fb.pitch = 2560;
  fb.format = static_cast<boot::PixelFormat>(7);
  KEXPECT_EQ(kernel::Surface::validate(fb).error(), kernel::SurfaceError::UnsupportedFormat);
  fb.format = boot::PixelFormat::Bitmask;  // with zero masks
  KEXPECT_EQ(kernel::Surface::validate(fb).error(), kernel::SurfaceError::UnsupportedFormat);
}

}  // namespace
