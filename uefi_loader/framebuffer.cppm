// loader.framebuffer: choosing a GOP mode and describing its framebuffer for the kernel.
//
// Pure code, tested on the host with made-up mode lists. Rules (UEFI 2.10 §12.9):
//  - PixelBltOnly modes have no linear framebuffer: never chosen.
//  - Only 32-bit pixels are accepted (RGBX8, BGRX8, or a PixelBitMask whose masks fit 32 bits and
//    do not overlap); the kernel's console draws 4-byte pixels.
//  - pitch = PixelsPerScanLine * 4, never width * 4 (scan lines may be padded).
//  - The current mode is kept when it is usable (on real PCs it is the panel's native mode, and
//    not switching avoids a visible mode set); otherwise the usable mode with the most pixels
//    up to kMaxPixels wins (ties: the lower mode number).
module;

#include <ktl/macros.h>

export module loader.framebuffer;

import ktl;
import boot.info;

export namespace loader {

using ktl::u32;
using ktl::u64;
using ktl::usize;

// One GOP mode as QueryMode reports it (mirrors efi::GraphicsOutputModeInformation, kept separate so
// this module needs no firmware bindings).
struct GopMode {
  u32 number;
  u32 width;
  u32 height;
  u32 pixel_format;  // 0 RGBX8, 1 BGRX8, 2 bitmask, 3 blt-only
  u32 red_mask, green_mask, blue_mask, reserved_mask;
  u32 pixels_per_scan_line;
};

inline constexpr u64 kMaxPixels = u64{3840} * 2160;

enum class ModeProblem : u32 { None, BltOnly, UnknownFormat, BadMasks, BadGeometry };

[[nodiscard]] constexpr const char* to_string(ModeProblem p) {
  switch (p) {
    case ModeProblem::None: return "usable";
    case ModeProblem::BltOnly: return "blt-only (no linear framebuffer)";
    case ModeProblem::UnknownFormat: return "unknown pixel format";
    case ModeProblem::BadMasks: return "pixel masks are not 32-bit, disjoint and non-empty";
    case ModeProblem::BadGeometry: return "zero size or pixels-per-scan-line below the width";
  }
  return "?";
}

// Why `mode` cannot be used (ModeProblem::None if it can).
[[nodiscard]] ModeProblem check_mode(const GopMode& mode);

// The index into `modes` of the mode to use, or none. `current` is the mode number in force.
[[nodiscard]] ktl::Optional<usize> choose_mode(ktl::Span<const GopMode> modes, u32 current);

// The boot-info description of `mode` with its framebuffer at [base, base+size). Fails (returns
// none) if the mode is unusable or the framebuffer is smaller than pitch * height.
[[nodiscard]] ktl::Optional<boot::Framebuffer> describe(const GopMode& mode, u64 base, u64 size);

}  // namespace loader
