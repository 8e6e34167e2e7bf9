// Every error enum of the kernel has a text of its own for every value (ktl::check_enum_text), and
// kernel::memory::InitError keeps the cause and the mm error behind it, printed together.
#include <ktest/ktest.h>

import ktl;
import ktest;
import mm.heap;
import mm.paging.types;
import mm.pmm;
import kernel.boot_check;
import kernel.fbcon;
import kernel.font;
import kernel.memory_error;
import kernel.meminfo;
import kernel.symbols;

namespace {

using kernel::memory::InitCause;
using kernel::memory::InitError;

template <class E>
bool texts_ok(ktest::Context& ktest_ctx, E last) {
  ktl::EnumTextCheck c = ktl::check_enum_text<E>();
  KEXPECT(c.ok);
  KEXPECT_EQ(c.count, ktl::to_underlying(last) + 1);
  return c.ok && c.count == ktl::to_underlying(last) + 1;
}

KTEST(ErrorText, EveryKernelErrorEnumNamesEveryValue) {
  texts_ok(ktest_ctx, kernel::FontError::UnsupportedSize);
  texts_ok(ktest_ctx, ksym::TableError::BadName);
  texts_ok(ktest_ctx, kernel::ConvertError::BadEntry);
  texts_ok(ktest_ctx, kernel::SurfaceError::TooSmall);
  texts_ok(ktest_ctx, kernel::HeaderProblem::PatMismatch);
  texts_ok(ktest_ctx, kernel::MapProblem::NoUsableMemory);
  texts_ok(ktest_ctx, InitCause::StackMapping);
}

KTEST(ErrorText, ErrorsPrintByName) {
  ktl::InlineString<160> s;
  ktl::format_to(s, "{}|{}|{}", kernel::FontError::BadMagic, kernel::SurfaceError::NoFramebuffer,
                 kernel::ConvertError::TooManyEntries);
  ktl::InlineString<160> expected;
  ktl::format_to(expected, "{}|{}|{}", to_string(kernel::FontError::BadMagic),
                 to_string(kernel::SurfaceError::NoFramebuffer),
                 to_string(kernel::ConvertError::TooManyEntries));
  KEXPECT(s.view() == expected.view());
  KEXPECT(!s.view().contains("1|"));  // not the numbers
}

KTEST(MemoryInitError, CarriesTheCauseAndTheMmError) {
  InitError overlap = InitError::pmm_init(mm::PmmError::OverlappingMap);
  KEXPECT_EQ(overlap.cause(), InitCause::PmmInit);
  KEXPECT(overlap.pmm_error() == ktl::Optional<mm::PmmError>(mm::PmmError::OverlappingMap));
  KEXPECT(!overlap.paging_error().has_value());
  KEXPECT(!overlap.heap_error().has_value());
  // Two steps that fail with the same mm error are still told apart.
  InitError stacks = InitError::stack_frames(mm::PmmError::OutOfMemory);
  InitError install = InitError::pmm_install(mm::PmmError::OutOfMemory);
  KEXPECT(!(stacks == install));
  KEXPECT_EQ(stacks.cause(), InitCause::StackFrames);
  // An IST stack without frames is the PMM's error (it used to be PagingError::NoMemory).
  KEXPECT(stacks.pmm_error() == ktl::Optional<mm::PmmError>(mm::PmmError::OutOfMemory));
  KEXPECT(!stacks.paging_error().has_value());
  InitError table = InitError::frame_table(mm::PmmError::OutOfMemory);
  KEXPECT_EQ(table.cause(), InitCause::FrameTable);
  KEXPECT(!(table == stacks));
  KEXPECT(table.pmm_error() == ktl::Optional<mm::PmmError>(mm::PmmError::OutOfMemory));
  KEXPECT(InitError::stack_mapping(mm::PagingError::AlreadyMapped).paging_error() ==
          ktl::Optional<mm::PagingError>(mm::PagingError::AlreadyMapped));
  KEXPECT(InitError::adopt_tables(mm::PagingError::Reserved).paging_error() ==
          ktl::Optional<mm::PagingError>(mm::PagingError::Reserved));
  KEXPECT(InitError::heap_init(mm::HeapError::TooManyCaches).heap_error() ==
          ktl::Optional<mm::HeapError>(mm::HeapError::TooManyCaches));
  KEXPECT(InitError::map_conversion(kernel::ConvertError::BadEntry).convert_error() ==
          ktl::Optional<kernel::ConvertError>(kernel::ConvertError::BadEntry));
  // The root outside the direct map is a cause of its own (it was PagingError::OutOfRange).
  InitError root = InitError::root_outside_direct_map();
  KEXPECT_EQ(root.cause(), InitCause::RootOutsideDirectMap);
  KEXPECT(root.detail_text() == nullptr);
}

KTEST(MemoryInitError, PrintsTheCauseAndTheMmErrorText) {
  ktl::InlineString<160> s;
  ktl::format_to(s, "{}", InitError::pmm_init(mm::PmmError::OverlappingMap));
  KEXPECT(s.view() == ktl::StringView("PMM init: memory map regions overlap"));
  ktl::InlineString<160> h;
  ktl::format_to(h, "{}", InitError::heap_init(mm::HeapError::PmmNotInitialized));
  KEXPECT(h.view() == ktl::StringView("heap init: the PMM is not initialized"));
  ktl::InlineString<160> r;
  ktl::format_to(r, "{}", InitError::root_outside_direct_map());
  KEXPECT(r.view() == ktl::StringView("page-table root outside the direct map"));
}

}  // namespace
