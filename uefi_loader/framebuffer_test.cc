// Host tests of the GOP mode choice and the framebuffer description handed to the kernel.
#include <gtest/gtest.h>

#include <vector>

import ktl;
import boot.info;
import loader.framebuffer;

namespace {

using loader::GopMode;
using loader::ModeProblem;

GopMode bgrx(ktl::u32 number, ktl::u32 w, ktl::u32 h, ktl::u32 pps = 0) {
  return GopMode{number, w, h, 1, 0, 0, 0, 0, pps ? pps : w};
}

ktl::Optional<ktl::usize> choose(const std::vector<GopMode>& modes, ktl::u32 current) {
  return loader::choose_mode(ktl::Span<const GopMode>(modes), current);
}

TEST(Gop, KeepsAUsableCurrentMode) {
  std::vector<GopMode> modes = {bgrx(0, 640, 480), bgrx(1, 800, 600), bgrx(2, 1920, 1080)};
  auto c = choose(modes, 1);
  ASSERT_TRUE(c);
  EXPECT_EQ(modes[*c].number, 1u);
}

TEST(Gop, RejectsBltOnlyAndPicksTheLargestUsableMode) {
  GopMode blt = bgrx(0, 1024, 768);
  blt.pixel_format = 3;
  EXPECT_EQ(loader::check_mode(blt), ModeProblem::BltOnly);
  GopMode huge = bgrx(3, 7680, 4320);  // above kMaxPixels
  std::vector<GopMode> modes = {blt, bgrx(1, 800, 600), bgrx(2, 1280, 1024), huge};
  auto c = choose(modes, 0);
  ASSERT_TRUE(c);
  EXPECT_EQ(modes[*c].number, 2u);
}

TEST(Gop, NoUsableModeMeansNoFramebuffer) {
  GopMode blt = bgrx(0, 1024, 768);
  blt.pixel_format = 3;
  GopMode bad = bgrx(1, 1024, 768, 1000);  // pixels per scan line below the width
  EXPECT_EQ(loader::check_mode(bad), ModeProblem::BadGeometry);
  EXPECT_FALSE(choose({blt, bad}, 0));
  EXPECT_FALSE(choose({}, 0));
}

TEST(Gop, PitchComesFromPixelsPerScanLine) {
  GopMode m = bgrx(0, 1366, 768, 1376);
  auto fb = loader::describe(m, 0x8000'0000, 1376 * 4 * 768);
  ASSERT_TRUE(fb);
  EXPECT_EQ(fb->pitch, 1376u * 4);
  EXPECT_EQ(fb->width, 1366u);
  EXPECT_EQ(fb->format, boot::PixelFormat::Bgrx8);
  EXPECT_EQ(fb->red_mask, 0x00ff0000u);
  // A framebuffer smaller than pitch * height is refused.
  EXPECT_FALSE(loader::describe(m, 0x8000'0000, 1366 * 4 * 768));
  EXPECT_FALSE(loader::describe(m, 0, 1376 * 4 * 768));
}

TEST(Gop, BitmaskModesPassTheirMasks) {
  GopMode m{4, 800, 600, 2, 0x3ff00000, 0x000ffc00, 0x000003ff, 0xc0000000, 800};  // 10:10:10:2
  EXPECT_EQ(loader::check_mode(m), ModeProblem::None);
  auto fb = loader::describe(m, 0xc000'0000, 800 * 600 * 4);
  ASSERT_TRUE(fb);
  EXPECT_EQ(fb->format, boot::PixelFormat::Bitmask);
  EXPECT_EQ(fb->red_mask, 0x3ff00000u);
  EXPECT_EQ(fb->reserved_mask, 0xc0000000u);

  GopMode rgb565{5, 800, 600, 2, 0xf800, 0x07e0, 0x001f, 0, 800};  // 2-byte pixels
  EXPECT_EQ(loader::check_mode(rgb565), ModeProblem::BadMasks);
  GopMode overlapping{6, 800, 600, 2, 0x00ff0000, 0x00ffff00, 0xff, 0xff000000, 800};
  EXPECT_EQ(loader::check_mode(overlapping), ModeProblem::BadMasks);
  GopMode unknown = bgrx(7, 800, 600);
  unknown.pixel_format = 9;
  EXPECT_EQ(loader::check_mode(unknown), ModeProblem::UnknownFormat);
}

}  // namespace
