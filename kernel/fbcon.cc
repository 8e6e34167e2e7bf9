module;

#include <ktl/macros.h>

module kernel.fbcon;

import ktl;
import boot.info;
import kernel.font;

namespace kernel {

namespace {
constexpr u32 kMaxDimension = 16384;
constexpr u32 kTabWidth = 8;

bool valid_mask(u32 mask) {
  if (mask == 0) return false;
  u32 shifted = mask >> ktl::countr_zero(mask);
  return (shifted & (shifted + 1)) == 0;  // contiguous
}
}  // namespace

ktl::Result<void, SurfaceError> Surface::validate(const boot::Framebuffer& fb) {
  if (fb.format == boot::PixelFormat::None || fb.base == 0) return ktl::Err(SurfaceError::NoFramebuffer);
  if (fb.format == boot::PixelFormat::Bitmask &&
      (!valid_mask(fb.red_mask) || !valid_mask(fb.green_mask) || !valid_mask(fb.blue_mask))) {
    return ktl::Err(SurfaceError::UnsupportedFormat);
  }
  if (fb.format != boot::PixelFormat::Rgbx8 && fb.format != boot::PixelFormat::Bgrx8 &&
      fb.format != boot::PixelFormat::Bitmask) {
    return ktl::Err(SurfaceError::UnsupportedFormat);
  }
  if (fb.width == 0 || fb.height == 0 || fb.width > kMaxDimension || fb.height > kMaxDimension ||
      fb.pitch % 4 != 0 || fb.pitch / 4 < fb.width) {
    return ktl::Err(SurfaceError::BadGeometry);
  }
  if (u64{fb.pitch} * fb.height > fb.size) return ktl::Err(SurfaceError::TooSmall);
  return ktl::ok();
}

ktl::Result<Surface, SurfaceError> Surface::from_boot(const boot::Framebuffer& fb, ktl::Span<u32> pixels) {
  TRY(validate(fb));
  if (usize{fb.pitch / 4} * fb.height > pixels.size()) return ktl::Err(SurfaceError::TooSmall);
  Surface s = in_memory(pixels, fb.width, fb.height, fb.pitch / 4);
  switch (fb.format) {
    case boot::PixelFormat::Rgbx8: break;  // the in_memory default: R at bits 0..7
    case boot::PixelFormat::Bgrx8:
      s.red_shift_ = 16;
      s.blue_shift_ = 0;
      break;
    case boot::PixelFormat::Bitmask:
      s.red_shift_ = ktl::countr_zero(fb.red_mask);
      s.green_shift_ = ktl::countr_zero(fb.green_mask);
      s.blue_shift_ = ktl::countr_zero(fb.blue_mask);
      s.red_bits_ = ktl::popcount(fb.red_mask);
      s.green_bits_ = ktl::popcount(fb.green_mask);
      s.blue_bits_ = ktl::popcount(fb.blue_mask);
      break;
    case boot::PixelFormat::None: break;  // rejected by validate()
  }
  return s;
}

Surface Surface::in_memory(ktl::Span<u32> pixels, u32 width, u32 height, u32 stride) {
  ktl::check(stride >= width && usize{stride} * height <= pixels.size(),
             "Surface: pixels smaller than the geometry");
  Surface s;
  s.pixels_ = pixels.first(usize{stride} * height);
  s.width_ = width;
  s.height_ = height;
  s.stride_ = stride;
  return s;
}

u32 Surface::encode(Rgb c) const {
  auto scale = [](ktl::u8 v, u32 bits, u32 shift) -> u32 {
    u32 value = bits >= 8 ? u32{v} << (bits - 8) : u32{v} >> (8 - bits);
    return value << shift;
  };
  return scale(c.r, red_bits_, red_shift_) | scale(c.g, green_bits_, green_shift_) |
         scale(c.b, blue_bits_, blue_shift_);
}

void Surface::move_rows(u32 to, u32 from, u32 count) {
  ktl::check(to + count <= height_ && from + count <= height_, "Surface::move_rows out of range");
  usize n = usize{count} * stride_;
  usize dst = usize{to} * stride_;
  usize src = usize{from} * stride_;
  if (dst < src) {
    for (usize i = 0; i < n; ++i) pixels_[dst + i] = pixels_[src + i];
  } else {
    for (usize i = n; i > 0; --i) pixels_[dst + i - 1] = pixels_[src + i - 1];
  }
}

void Surface::fill_rows(u32 from, u32 count, u32 value) {
  ktl::check(from + count <= height_, "Surface::fill_rows out of range");
  auto rows = pixels_.subspan(usize{from} * stride_, usize{count} * stride_);
  for (u32& p : rows) p = value;
}

FramebufferConsole::FramebufferConsole(Surface surface, const Font& font)
    : surface_(surface),
      font_(font),
      columns_(font.width() == 0 ? 0 : surface.width() / font.width()),
      rows_(font.height() == 0 ? 0 : surface.height() / font.height()),
      fg_(surface.encode(kForeground)),
      bg_(surface.encode(kBackground)) {}

void FramebufferConsole::clear() {
  surface_.fill_rows(0, surface_.height(), bg_);
  column_ = 0;
  row_ = 0;
}

void FramebufferConsole::write(ktl::StringView text) {
  if (columns_ == 0 || rows_ == 0) return;
  for (char c : text) put_char(c);
}

void FramebufferConsole::put_char(char c) {
  switch (c) {
    case '\n': newline(); return;
    case '\r': column_ = 0; return;
    case '\b':  // the shell erases with "\b \b"
      if (column_ > 0) --column_;
      return;
    case '\a': return;  // no bell here
    case '\t': do { put_char(' ');
      } while (column_ % kTabWidth != 0 && column_ != 0);
      return;
    default: break;
  }
  if (column_ == columns_) newline();
  draw_glyph(c, column_, row_);
  ++column_;
}

void FramebufferConsole::newline() {
  column_ = 0;
  if (row_ + 1 < rows_) {
    ++row_;
    return;
  }
  // Scroll one text row up and clear the last one.
  u32 h = font_.height();
  surface_.move_rows(0, h, (rows_ - 1) * h);
  surface_.fill_rows((rows_ - 1) * h, h, bg_);
}

void FramebufferConsole::draw_glyph(char c, u32 column, u32 row) {
  u32 glyph = font_.glyph_index(c);
  u32 x0 = column * font_.width();
  u32 y0 = row * font_.height();
  for (u32 y = 0; y < font_.height(); ++y) {
    for (u32 x = 0; x < font_.width(); ++x) {
      surface_.put(x0 + x, y0 + y, font_.pixel(glyph, x, y) ? fg_ : bg_);
    }
  }
}

}  // namespace kernel
