// kernel.trap_decode (host and in-kernel).
#include <ktest/ktest.h>

import ktl;
import ktest;
import kernel.trap_decode;

namespace {

struct Text {
  ktl::InlineString<160> s;
  template <class T>
  explicit Text(T value) {
    ktl::format_to(s, "{}", value);
  }
  [[nodiscard]] ktl::StringView view() const { return s.view(); }
};

KTEST(TrapDecode, PageFaultCodes) {
  KEXPECT_EQ(Text(kernel::PageFaultCode{0}).view(), ktl::StringView("not present, read, supervisor mode"));
  KEXPECT_EQ(Text(kernel::PageFaultCode{3}).view(),
             ktl::StringView("protection violation, write, supervisor mode"));
  KEXPECT_EQ(Text(kernel::PageFaultCode{0x15}).view(),
             ktl::StringView("protection violation, instruction fetch, user mode"));
  KEXPECT_EQ(
      Text(kernel::PageFaultCode{0x9}).view(),
      ktl::StringView("protection violation, read, supervisor mode, reserved bit set in a paging entry"));
}

KTEST(TrapDecode, SelectorCodes) {
  KEXPECT_EQ(Text(kernel::SelectorCode{0}).view(), ktl::StringView("no selector involved"));
  KEXPECT_EQ(Text(kernel::SelectorCode{0x28}).view(), ktl::StringView("GDT index 5 (selector 0x28)"));
  KEXPECT_EQ(Text(kernel::SelectorCode{0x72}).view(), ktl::StringView("IDT index 14 (selector 0x70)"));
  KEXPECT_EQ(Text(kernel::SelectorCode{0x0d}).view(),
             ktl::StringView("LDT index 1 (selector 0x8), external event"));
}

}  // namespace
