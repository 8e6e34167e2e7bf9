// kernel.cmdline: the kernel command line ("key=value key=value ..."), parsed once at boot.
//
//   log=debug|info|warn|error     the log level (default info)
//   test=boot                     test mode: boot, report, exit QEMU with 33
//   test=bench                    test mode: run the kernel benchmarks (kernel.bench), exit 33
//   test=kswapd                   test mode: fill memory with cached slabs past the high watermark
//                                 and wait for kswapd to bring usage to the low one; exit 33
//   kswapd.min=P kswapd.low=P kswapd.high=P
//                                 reclaim watermarks in percent (defaults 5 free, 60, 80 used;
//                                 invalid combinations: a warning and the defaults)
//   test=clock                    test mode: print the uptime over 6 s of the kernel's clock (timer
//                                 interrupts), then exit with 33 (boot_test.py --clock-check)
//   test=<filter>                 test mode: run the KTEST suites whose "Suite.Name" starts with
//                                 <filter> ("all" = every suite except DISABLED_ ones); exit 33
//                                 if all passed, 35 otherwise
//   test=fault:<kind>             test mode: trigger a deliberate fault (pagefault, divide, wp,
//                                 stackoverflow, nmi, panic, doublefree, iststack, lockorder,
//                                 taskstack) whose panic
//                                 report exits with 35
//   fbcon=on|off                  the framebuffer console (default on when there is a framebuffer)
//   pagetables=dump               print the kernel's own view of its page tables (the "vm:" block of
//                                 kernel.vmview) after boot; boot_inspect_test compares it with QEMU's
//   bootinfo.corrupt=<kind>       test mode only: validate a corrupted copy of the boot information
//                                 (version, overlap, unsorted, zero-size, huge) to exercise the
//                                 bad-input policy
//
// Unknown keys, bad values and repeated keys are reported as warnings, never fatal: a typo must
// not keep a machine from booting. The parser is pure (host tests in cmdline_test.cc).
module;

#include <ktl/macros.h>

export module kernel.cmdline;

import ktl;
import kernel.log;

export namespace kernel {

using ktl::usize;

enum class TestMode { None, Boot, Clock, Bench, Kswapd, Suites, Fault };
enum class FaultKind {
  None,
  PageFault,
  Divide,
  WriteProtect,
  StackOverflow,
  Nmi,
  Panic,
  DoubleFree,
  IstStackOverflow,
  LockOrder,
  TaskStackOverflow
};
enum class Corruption { None, Version, Overlap, Unsorted, ZeroSize, Huge };
enum class Toggle { On, Off };

[[nodiscard]] const char* to_string(FaultKind k);
[[nodiscard]] const char* to_string(Corruption c);

struct Options {
  klog::Level log_level = klog::Level::Info;
  TestMode test = TestMode::None;
  ktl::StringView test_filter;  // the value of test= (for Suites: the ktest filter)
  FaultKind fault = FaultKind::None;
  Toggle fbcon = Toggle::On;
  Toggle dump_page_tables = Toggle::Off;
  Corruption corrupt = Corruption::None;
  // kswapd.min= / kswapd.low= / kswapd.high= (percent; checked together by kernel.kswapd).
  ktl::u32 kswapd_min = 5;
  ktl::u32 kswapd_low = 60;
  ktl::u32 kswapd_high = 80;
};

enum class WarningKind { UnknownKey, BadValue, Repeated, NotAnOption, IgnoredOutsideTestMode };
struct Warning {
  WarningKind kind;
  ktl::StringView word;  // the offending "key=value" (or word)
};
void format_value(ktl::FormatSink& sink, const Warning& w, const ktl::FormatSpec& spec);

struct ParsedCommandLine {
  Options options;
  static constexpr usize kMaxWarnings = 8;
  ktl::Array<Warning, kMaxWarnings> warnings{};
  usize warning_count = 0;  // at most kMaxWarnings are kept
  usize dropped_warnings = 0;

  [[nodiscard]] inline ktl::Span<const Warning> warning_list() const {
    return warnings.span().first(warning_count);
  }
};

// The views in the result point into `text`, which must outlive it.
[[nodiscard]] ParsedCommandLine parse_command_line(ktl::StringView text);

}  // namespace kernel
