// kernel.fbcon: a text console drawn on a linear 32-bit framebuffer with a bitmap font.
//
//   kernel::Surface s = TRY(kernel::Surface::from_boot(info.framebuffer, pixels));
//   kernel::FramebufferConsole con(s, font);   // a ktl::FormatSink: klog::add_sink(con)
//
// Handles '\n', '\r', '\t' and line wrap; scrolls by moving pixel rows up. Pure over a pixel span
// (host tests in fbcon_test.cc render into memory). Contract: one writer at a time (klog's lock,
// or the panic path with everything else stopped).
module;

#include <ktl/macros.h>

export module kernel.fbcon;

import ktl;
import boot.info;
import kernel.font;

export namespace kernel {

using ktl::u32;
using ktl::u64;
using ktl::usize;

enum class SurfaceError : u32 { NoFramebuffer, UnsupportedFormat, BadGeometry, TooSmall };
[[nodiscard]] constexpr const char* to_string(SurfaceError e) {
  switch (e) {
    case SurfaceError::NoFramebuffer: return "no framebuffer";
    case SurfaceError::UnsupportedFormat: return "unsupported pixel format";
    case SurfaceError::BadGeometry: return "inconsistent framebuffer geometry (width, height, pitch)";
    case SurfaceError::TooSmall: return "framebuffer memory smaller than pitch x height";
  }
  return "unknown framebuffer error";
}

struct Rgb {
  ktl::u8 r, g, b;
};

// 32-bit pixels, `stride` pixels per row (pitch / 4).
class Surface {
 public:
  constexpr Surface() = default;
  // Checks the boot-info description (before anything maps or touches it).
  [[nodiscard]] static ktl::Result<void, SurfaceError> validate(const boot::Framebuffer& fb);
  // A surface over `pixels` (the framebuffer's memory, fb.size bytes) described by `fb`.
  [[nodiscard]] static ktl::Result<Surface, SurfaceError> from_boot(const boot::Framebuffer& fb,
                                                                    ktl::Span<u32> pixels);
  // A surface over plain memory in a fixed format (tests).
  [[nodiscard]] static Surface in_memory(ktl::Span<u32> pixels, u32 width, u32 height, u32 stride);

  [[nodiscard]] inline u32 width() const { return width_; }
  [[nodiscard]] inline u32 height() const { return height_; }
  [[nodiscard]] inline u32 stride() const { return stride_; }
  [[nodiscard]] u32 encode(Rgb c) const;
  inline void put(u32 x, u32 y, u32 value) { pixels_[usize{y} * stride_ + x] = value; }
  [[nodiscard]] inline u32 get(u32 x, u32 y) const { return pixels_[usize{y} * stride_ + x]; }
  // Copies rows [from, from + count) to [to, to + count).
  void move_rows(u32 to, u32 from, u32 count);
  void fill_rows(u32 from, u32 count, u32 value);

 private:
  ktl::Span<u32> pixels_;
  u32 width_ = 0;
  u32 height_ = 0;
  u32 stride_ = 0;
  u32 red_shift_ = 0, green_shift_ = 8, blue_shift_ = 16;
  u32 red_bits_ = 8, green_bits_ = 8, blue_bits_ = 8;
};

class FramebufferConsole final : public ktl::FormatSink {
 public:
  static constexpr Rgb kForeground{0xc0, 0xc0, 0xc0};
  static constexpr Rgb kBackground{0x00, 0x00, 0x20};

  FramebufferConsole(Surface surface, const Font& font);
  FramebufferConsole(const FramebufferConsole&) = delete;
  FramebufferConsole& operator=(const FramebufferConsole&) = delete;

  void write(ktl::StringView text) override;
  void clear();

  [[nodiscard]] inline u32 columns() const { return columns_; }
  [[nodiscard]] inline u32 rows() const { return rows_; }
  [[nodiscard]] inline u32 cursor_column() const { return column_; }
  [[nodiscard]] inline u32 cursor_row() const { return row_; }
  [[nodiscard]] inline const Surface& surface() const { return surface_; }

 private:
  void put_char(char c);
  void draw_glyph(char c, u32 column, u32 row);
  void newline();

  Surface surface_;
  const Font& font_;
  u32 columns_;
  u32 rows_;
  u32 column_ = 0;
  u32 row_ = 0;
  u32 fg_;
  u32 bg_;
};

}  // namespace kernel
