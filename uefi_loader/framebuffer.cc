module;

#include <ktl/macros.h>

module loader.framebuffer;

import ktl;
import boot.info;

namespace loader {

ModeProblem check_mode(const GopMode& m) {
  if (m.pixel_format == 3) return ModeProblem::BltOnly;
  if (m.pixel_format > 3) return ModeProblem::UnknownFormat;
  if (m.pixel_format == 2) {
    u32 r = m.red_mask, g = m.green_mask, b = m.blue_mask, x = m.reserved_mask;
    if (r == 0 || g == 0 || b == 0) return ModeProblem::BadMasks;
    if ((r & g) != 0 || (r & b) != 0 || (g & b) != 0 || ((r | g | b) & x) != 0) return ModeProblem::BadMasks;
    // Only 4-byte pixels: the highest mask bit must lie in the top byte (bits 24..31).
    u32 all = r | g | b | x;
    if (ktl::log2_floor(all) < 24) return ModeProblem::BadMasks;
  }
  if (m.width == 0 || m.height == 0 || m.pixels_per_scan_line < m.width) return ModeProblem::BadGeometry;
  return ModeProblem::None;
}

ktl::Optional<usize> choose_mode(ktl::Span<const GopMode> modes, u32 current) {
  for (usize i = 0; i < modes.size(); ++i) {
    if (modes[i].number == current && check_mode(modes[i]) == ModeProblem::None) return i;
  }
  ktl::Optional<usize> best;
  u64 best_pixels = 0;
  for (usize i = 0; i < modes.size(); ++i) {
    const GopMode& m = modes[i];
    if (check_mode(m) != ModeProblem::None) continue;
    u64 pixels = u64{m.width} * m.height;
    if (pixels > kMaxPixels) continue;
    if (!best || pixels > best_pixels || (pixels == best_pixels && m.number < modes[*best].number)) {
      best = i;
      best_pixels = pixels;
    }
  }
  return best;
}

ktl::Optional<boot::Framebuffer> describe(const GopMode& m, u64 base, u64 size) {
  if (check_mode(m) != ModeProblem::None || base == 0) return ktl::nullopt;
  u64 pitch = u64{m.pixels_per_scan_line} * 4;
  if (pitch > 0xffff'ffffull || pitch * m.height > size) return ktl::nullopt;
  boot::Framebuffer fb{};
  fb.base = base;
  fb.size = size;
  fb.width = m.width;
  fb.height = m.height;
  fb.pitch = static_cast<u32>(pitch);
  switch (m.pixel_format) {
    case 0:
      fb.format = boot::PixelFormat::Rgbx8;
      fb.red_mask = 0x0000'00ff;
      fb.green_mask = 0x0000'ff00;
      fb.blue_mask = 0x00ff'0000;
      fb.reserved_mask = 0xff00'0000;
      break;
    case 1:
      fb.format = boot::PixelFormat::Bgrx8;
      fb.red_mask = 0x00ff'0000;
      fb.green_mask = 0x0000'ff00;
      fb.blue_mask = 0x0000'00ff;
      fb.reserved_mask = 0xff00'0000;
      break;
    default:
      fb.format = boot::PixelFormat::Bitmask;
      fb.red_mask = m.red_mask;
      fb.green_mask = m.green_mask;
      fb.blue_mask = m.blue_mask;
      fb.reserved_mask = m.reserved_mask;
      break;
  }
  return fb;
}

}  // namespace loader
