// Host tests of the loader's ELF validation with well-formed and deliberately broken images.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

import ktl;
import loader.elf;

namespace {

using loader::ElfError;

constexpr ktl::u64 kBase = 0xffff'ffff'8000'0000ull;

struct Phdr {
  ktl::u32 type, flags;
  ktl::u64 offset, vaddr, paddr, filesz, memsz, align;
};

// A minimal valid kernel: text (RX) at kBase, data (RW) one page later.
class ElfBuilder {
 public:
  ElfBuilder() {
    phdrs_.push_back({1, loader::kPfR | loader::kPfX, 0x1000, kBase, kBase, 0x100, 0x100, 0x1000});
    phdrs_.push_back(
        {1, loader::kPfR | loader::kPfW, 0x2000, kBase + 0x1000, kBase + 0x1000, 0x10, 0x2000, 0x1000});
  }
  std::vector<ktl::u8> build() const {
    std::vector<ktl::u8> f(0x3000, 0);
    ktl::u8 ident[16] = {0x7f, 'E', 'L', 'F', 2, 1, 1};
    std::memcpy(f.data(), ident, 16);
    put16(f, 16, 2);        // ET_EXEC
    put16(f, 18, machine);  // e_machine
    put32(f, 20, 1);
    put64(f, 24, entry);
    put64(f, 32, 64);  // phoff
    put16(f, 52, 64);
    put16(f, 54, 56);
    put16(f, 56, static_cast<ktl::u16>(phdrs_.size()));
    for (size_t i = 0; i < phdrs_.size(); ++i) std::memcpy(f.data() + 64 + i * 56, &phdrs_[i], 56);
    return f;
  }
  std::vector<Phdr> phdrs_;
  ktl::u16 machine = 62;
  ktl::u64 entry = kBase + 0x10;

 private:
  static void put16(std::vector<ktl::u8>& f, size_t o, ktl::u16 v) { std::memcpy(f.data() + o, &v, 2); }
  static void put32(std::vector<ktl::u8>& f, size_t o, ktl::u32 v) { std::memcpy(f.data() + o, &v, 4); }
  static void put64(std::vector<ktl::u8>& f, size_t o, ktl::u64 v) { std::memcpy(f.data() + o, &v, 8); }
};

ktl::Result<loader::KernelImage, ElfError> parse(const std::vector<ktl::u8>& f) {
  return loader::parse_kernel(ktl::Span<const ktl::u8>(f), {loader::Machine::X86_64, kBase});
}

TEST(Elf, AcceptsAWellFormedKernel) {
  auto r = parse(ElfBuilder().build());
  ASSERT_TRUE(r.is_ok()) << loader::to_string(r.error());
  EXPECT_EQ(r.value().segment_count, 2u);
  EXPECT_EQ(r.value().lowest_vaddr, kBase);
  EXPECT_EQ(r.value().highest_vaddr, kBase + 0x3000);
}

TEST(Elf, RejectsBrokenFiles) {
  EXPECT_EQ(parse({}).error(), ElfError::TooSmall);
  auto f = ElfBuilder().build();
  auto truncated = std::vector<ktl::u8>(f.begin(), f.begin() + 0x1050);
  EXPECT_EQ(parse(truncated).error(), ElfError::SegmentOutOfFile);
  auto bad_magic = f;
  bad_magic[1] = 'X';
  EXPECT_EQ(parse(bad_magic).error(), ElfError::BadMagic);
  auto elf32 = f;
  elf32[4] = 1;
  EXPECT_EQ(parse(elf32).error(), ElfError::NotElf64);
  ElfBuilder arm;
  arm.machine = 183;
  EXPECT_EQ(parse(arm.build()).error(), ElfError::WrongMachine);
  auto headers_cut = std::vector<ktl::u8>(f.begin(), f.begin() + 100);
  EXPECT_EQ(parse(headers_cut).error(), ElfError::ProgramHeadersOutOfBounds);
}

TEST(Elf, RejectsBadSegments) {
  ElfBuilder overlap;
  overlap.phdrs_[1].vaddr = kBase + 0x800;
  overlap.phdrs_[1].vaddr = kBase;  // same page as text
  EXPECT_EQ(parse(overlap.build()).error(), ElfError::SegmentOverlap);
  ElfBuilder wx;
  wx.phdrs_[1].flags = loader::kPfR | loader::kPfW | loader::kPfX;
  EXPECT_EQ(parse(wx.build()).error(), ElfError::WritableAndExecutable);
  ElfBuilder low;
  low.phdrs_[0].vaddr = 0x1000;
  EXPECT_EQ(parse(low.build()).error(), ElfError::SegmentOutsideKernelSpace);
  ElfBuilder unaligned;
  unaligned.phdrs_[1].vaddr = kBase + 0x1004;
  EXPECT_EQ(parse(unaligned.build()).error(), ElfError::SegmentMisaligned);
  ElfBuilder fat;
  fat.phdrs_[0].filesz = 0x200;
  fat.phdrs_[0].memsz = 0x100;
  EXPECT_EQ(parse(fat.build()).error(), ElfError::FileSizeExceedsMemSize);
  ElfBuilder entry;
  entry.entry = kBase + 0x1008;  // inside data, not text
  EXPECT_EQ(parse(entry.build()).error(), ElfError::EntryNotExecutable);
  ElfBuilder wrap;
  wrap.phdrs_[1].memsz = ~0ull;
  EXPECT_EQ(parse(wrap.build()).error(), ElfError::SegmentOutsideKernelSpace);
  ElfBuilder none;
  none.phdrs_.clear();
  EXPECT_EQ(parse(none.build()).error(), ElfError::NoLoadableSegments);
}

// The loader puts a guard page and its stack right above the image: an image ending closer to
// 2^64 than that is refused, one ending exactly that far below it is accepted.
TEST(Elf, RequiresTheRoomAboveTheImage) {
  constexpr ktl::u64 kRoom = 17 * 0x1000;
  auto parse_with_room = [](const std::vector<ktl::u8>& f) {
    return loader::parse_kernel(ktl::Span<const ktl::u8>(f), {loader::Machine::X86_64, kBase, 0x1000, kRoom});
  };
  ElfBuilder top;  // data is the last page before 2^64 - kRoom - 1 page: the room fits
  top.phdrs_[1].vaddr = 0 - kRoom - 0x2000;
  top.phdrs_[1].memsz = 0x1000;
  EXPECT_TRUE(parse_with_room(top.build()).is_ok());
  top.phdrs_[1].vaddr += 0x1000;  // the image ends at 2^64 - kRoom: the stack's top would wrap to 0
  EXPECT_EQ(parse_with_room(top.build()).error(), ElfError::NoRoomAbove);
  EXPECT_TRUE(parse(top.build()).is_ok());  // without room asked for, the same file is fine
}

}  // namespace
