// kernel.boot_check: the bad-input policy for the boot information (host and in-kernel).
#include <ktest/ktest.h>

import ktl;
import ktest;
import boot.info;
import kernel.boot_check;
import mm.paging;

namespace {

using boot::MemoryKind;
using boot::MemoryMapEntry;
using kernel::MapProblem;

constexpr ktl::u64 kMiB = 1 << 20;

ktl::Array<MemoryMapEntry, 4> good_map() {
  return {{
      {0x0, 0xa0000, MemoryKind::Usable, 0},
      {0x100000, 15 * kMiB, MemoryKind::Usable, 0},
      {16 * kMiB, 2 * kMiB, MemoryKind::KernelImage, 0},
      {0xfd000000, 16 * kMiB, MemoryKind::Framebuffer, 0},
  }};
}

MapProblem problem_of(ktl::Span<const MemoryMapEntry> map) {
  auto r = kernel::check_memory_map(map);
  return r.is_err() ? r.error().problem : static_cast<MapProblem>(0xff);
}

KTEST(BootCheck, GoodMapSummary) {
  auto map = good_map();
  auto r = kernel::check_memory_map(map.span());
  KASSERT(r.is_ok());
  KEXPECT_EQ(r.value().regions, 4u);
  KEXPECT_EQ(r.value().usable_bytes, 0xa0000u + 15 * kMiB);
  KEXPECT_EQ(r.value().bytes_by_kind[ktl::to_underlying(MemoryKind::KernelImage)], 2 * kMiB);
  KEXPECT_EQ(r.value().highest_address, 0xfe000000u);
}

KTEST(BootCheck, RejectsEachImpossibleMap) {
  auto zero = good_map();
  zero[2].size = 0;
  KEXPECT_EQ(problem_of(zero.span()), MapProblem::ZeroSize);

  auto overlap = good_map();
  overlap[2].base = 15 * kMiB;
  KEXPECT_EQ(problem_of(overlap.span()), MapProblem::Overlap);

  auto unsorted = good_map();
  ktl::swap(unsorted[0], unsorted[1]);
  KEXPECT_EQ(problem_of(unsorted.span()), MapProblem::Unsorted);

  auto huge = good_map();
  huge[3].size = ktl::u64{1} << 62;
  KEXPECT_EQ(problem_of(huge.span()), MapProblem::Overflows);

  auto wrap = good_map();
  wrap[3].size = ~ktl::u64{0} - 0xfff;
  KEXPECT_EQ(problem_of(wrap.span()), MapProblem::Overflows);

  auto unaligned = good_map();
  unaligned[1].base += 8;
  KEXPECT_EQ(problem_of(unaligned.span()), MapProblem::Unaligned);

  auto kind = good_map();
  kind[2].kind = static_cast<MemoryKind>(99);
  KEXPECT_EQ(problem_of(kind.span()), MapProblem::UnknownKind);

  auto no_ram = good_map();
  no_ram[0].kind = MemoryKind::Reserved;
  no_ram[1].kind = MemoryKind::Reserved;
  KEXPECT_EQ(problem_of(no_ram.span()), MapProblem::NoUsableMemory);

  KEXPECT_EQ(problem_of(ktl::Span<const MemoryMapEntry>()), MapProblem::Missing);
}

KTEST(BootCheck, MessagesNameTheEntry) {
  auto overlap = good_map();
  overlap[2].base = 15 * kMiB;
  auto r = kernel::check_memory_map(overlap.span());
  KASSERT(r.is_err());
  KEXPECT_EQ(r.error().index, 2u);
  ktl::InlineString<256> text;
  ktl::format_to(text, "{}", r.error());
  KEXPECT_EQ(text.view(),
             ktl::StringView("memory map entry 2 [0x0000000000f00000 - 0x0000000001100000) kernel-image "
                             "(3) overlaps entry 1 [0x0000000000100000 - 0x0000000001000000) usable (1)"));
}

KTEST(BootCheck, Header) {
  boot::BootInfo info{};
  info.magic = boot::kMagic;
  info.version = boot::kVersion;
  info.size = sizeof(boot::BootInfo);
  info.direct_map_base = boot::layout::kDirectMapBase;
  info.pat = mm::paging::X86_64::kPat;
  KEXPECT(kernel::check_header(&info).is_ok());
  KEXPECT(kernel::check_header(nullptr).is_err());

  boot::BootInfo v = info;
  v.version = boot::kVersion + 1;
  auto r = kernel::check_header(&v);
  KASSERT(r.is_err());
  KEXPECT_EQ(r.error().problem, kernel::HeaderProblem::VersionMismatch);
  ktl::InlineString<128> text;
  ktl::format_to(text, "{}", r.error());
  KEXPECT(text.view().contains("does not match this kernel's version"));

  boot::BootInfo m = info;
  m.magic = 0;
  KEXPECT_EQ(kernel::check_header(&m).error().problem, kernel::HeaderProblem::BadMagic);
  boot::BootInfo s = info;
  s.size = 8;
  KEXPECT_EQ(kernel::check_header(&s).error().problem, kernel::HeaderProblem::SizeMismatch);
  boot::BootInfo c = info;
  c.command_line_size = 1 << 20;
  KEXPECT_EQ(kernel::check_header(&c).error().problem, kernel::HeaderProblem::CommandLineTooLong);
  boot::BootInfo d = info;
  d.direct_map_base = 0;
  KEXPECT_EQ(kernel::check_header(&d).error().problem, kernel::HeaderProblem::DirectMapMismatch);
  // A PAT other than the one the x86_64 format's memory types index: WC would silently be UC-.
  boot::BootInfo p = info;
  p.pat = 0x0007'0406'0007'0406ull;  // the power-on PAT
  auto pat = kernel::check_header(&p);
  KASSERT(pat.is_err());
  KEXPECT_EQ(pat.error().problem, kernel::HeaderProblem::PatMismatch);
  ktl::InlineString<160> pat_text;
  ktl::format_to(pat_text, "{}", pat.error());
  KEXPECT_EQ(pat_text.view(), ktl::StringView("the loader programmed IA32_PAT 0x0007040600070406, but the "
                                              "kernel's page tables assume 0x0007010600070406"));
}

}  // namespace
