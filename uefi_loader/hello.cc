// HELLO.EFI: the smallest EFI application built the same way as the loader (same toolchain, same
// bindings), printing one line. tools/boot_time.sh boots it exactly like //:image to measure what
// the firmware alone costs, so the loader's and kernel's share of the boot time can be stated as
// a ratio.
#include <ktl/macros.h>

import ktl;
import efi;

namespace {
efi::SimpleTextOutput* g_console = nullptr;
}

extern "C" efi::Status efi_main(efi::Handle, efi::SystemTable* st) {
  g_console = st->con_out;
  efi::Console con(st->con_out);
  ktl::format_to(con, "\nhello from a bare EFI application\n");
  return efi::Status::Success;
}

extern "C" void ferrite_log_write(int, const char* text, ktl::usize length) {
  efi::Console con(g_console);
  KTL_UNSAFE_BUFFER_BEGIN  // ktl.log passes `length` characters at `text`
  con.write(ktl::StringView::from_raw(text, length));
  KTL_UNSAFE_BUFFER_END
}

extern "C" [[noreturn]] void ferrite_panic(const char* message, const char*, unsigned, const char*) {
  efi::Console con(g_console);
  ktl::format_to(con, "hello: PANIC: {}\n", message);
  for (;;) __asm__ volatile("cli; hlt");
}
