// kernel.cmdline: options, defaults and warnings (host and in-kernel).
#include <ktest/ktest.h>

import ktl;
import ktest;
import kernel.log;
import kernel.cmdline;

namespace {

using kernel::parse_command_line;

KTEST(Cmdline, EmptyGivesDefaults) {
  auto p = parse_command_line("");
  KEXPECT_EQ(p.options.log_level, klog::Level::Info);
  KEXPECT_EQ(p.options.test, kernel::TestMode::None);
  KEXPECT_EQ(p.options.fbcon, kernel::Toggle::On);
  KEXPECT_EQ(p.options.corrupt, kernel::Corruption::None);
  KEXPECT_EQ(p.warning_count, 0u);
}

KTEST(Cmdline, LogLevels) {
  KEXPECT_EQ(parse_command_line("log=debug").options.log_level, klog::Level::Debug);
  KEXPECT_EQ(parse_command_line("log=warn").options.log_level, klog::Level::Warn);
  KEXPECT_EQ(parse_command_line("log=warning").options.log_level, klog::Level::Warn);
  KEXPECT_EQ(parse_command_line("  log=error  ").options.log_level, klog::Level::Error);
  auto bad = parse_command_line("log=loud");
  KEXPECT_EQ(bad.options.log_level, klog::Level::Info);
  KASSERT_EQ(bad.warning_count, 1u);
  KEXPECT_EQ(bad.warnings[0].kind, kernel::WarningKind::BadValue);
  KEXPECT_EQ(bad.warnings[0].word, ktl::StringView("log=loud"));
}

KTEST(Cmdline, TestModes) {
  auto boot = parse_command_line("test=boot");
  KEXPECT_EQ(boot.options.test, kernel::TestMode::Boot);
  auto clock = parse_command_line("test=clock");
  KEXPECT_EQ(clock.options.test, kernel::TestMode::Clock);
  KEXPECT_EQ(parse_command_line("test=bench").options.test, kernel::TestMode::Bench);
  KEXPECT_EQ(parse_command_line("test=kswapd").options.test, kernel::TestMode::Kswapd);
}

KTEST(Cmdline, KswapdWatermarks) {
  auto d = parse_command_line("");
  KEXPECT_EQ(d.options.kswapd_min, 5u);
  KEXPECT_EQ(d.options.kswapd_low, 60u);
  KEXPECT_EQ(d.options.kswapd_high, 80u);
  auto p = parse_command_line("kswapd.high=90 kswapd.low=50 kswapd.min=3");
  KEXPECT_EQ(p.options.kswapd_high, 90u);
  KEXPECT_EQ(p.options.kswapd_low, 50u);
  KEXPECT_EQ(p.options.kswapd_min, 3u);
  KEXPECT_EQ(p.warning_list().size(), 0u);
  auto bad = parse_command_line("kswapd.high=101 kswapd.low=abc kswapd.min=");
  KEXPECT_EQ(bad.options.kswapd_high, 80u);  // refused values keep the defaults
  KEXPECT_EQ(bad.options.kswapd_low, 60u);
  KEXPECT_EQ(bad.options.kswapd_min, 5u);
  KEXPECT_EQ(bad.warning_list().size(), 3u);
  auto suites = parse_command_line("log=warn test=Cmdline.Log");
  KEXPECT_EQ(suites.options.test, kernel::TestMode::Suites);
  KEXPECT_EQ(suites.options.test_filter, ktl::StringView("Cmdline.Log"));
  KEXPECT_EQ(suites.options.log_level, klog::Level::Warn);
  auto fault = parse_command_line("test=fault:pagefault");
  KEXPECT_EQ(fault.options.test, kernel::TestMode::Fault);
  KEXPECT_EQ(fault.options.fault, kernel::FaultKind::PageFault);
  KEXPECT_EQ(parse_command_line("test=fault:divide").options.fault, kernel::FaultKind::Divide);
  KEXPECT_EQ(parse_command_line("test=fault:stackoverflow").options.fault, kernel::FaultKind::StackOverflow);
  KEXPECT_EQ(parse_command_line("test=fault:doublefree").options.fault, kernel::FaultKind::DoubleFree);
  KEXPECT_EQ(parse_command_line("test=fault:iststack").options.fault, kernel::FaultKind::IstStackOverflow);
  KEXPECT_EQ(parse_command_line("test=fault:lockorder").options.fault, kernel::FaultKind::LockOrder);
  KEXPECT_EQ(parse_command_line("test=fault:taskstack").options.fault, kernel::FaultKind::TaskStackOverflow);
  // An unknown fault stays in test mode (so the run fails) and warns.
  auto typo = parse_command_line("test=fault:pagefualt");
  KEXPECT_EQ(typo.options.test, kernel::TestMode::Fault);
  KEXPECT_EQ(typo.options.fault, kernel::FaultKind::None);
  KEXPECT_EQ(typo.warning_count, 1u);
}

KTEST(Cmdline, WarningsForUnknownRepeatedAndMalformed) {
  auto p = parse_command_line("quiet log=debug log=error frobnicate=1 =x fbcon=maybe");
  KEXPECT_EQ(p.options.log_level, klog::Level::Debug);  // the first one wins
  KASSERT_EQ(p.warning_count, 5u);
  KEXPECT_EQ(p.warnings[0].kind, kernel::WarningKind::NotAnOption);
  KEXPECT_EQ(p.warnings[1].kind, kernel::WarningKind::Repeated);
  KEXPECT_EQ(p.warnings[2].kind, kernel::WarningKind::UnknownKey);
  KEXPECT_EQ(p.warnings[3].kind, kernel::WarningKind::NotAnOption);
  KEXPECT_EQ(p.warnings[4].kind, kernel::WarningKind::BadValue);
  ktl::InlineString<128> text;
  ktl::format_to(text, "{}", p.warnings[2]);
  KEXPECT_EQ(text.view(), ktl::StringView("unknown option \"frobnicate=1\" (ignored)"));
}

KTEST(Cmdline, TooManyWarningsAreCounted) {
  auto p = parse_command_line("a b c d e f g h i j");
  KEXPECT_EQ(p.warning_count, kernel::ParsedCommandLine::kMaxWarnings);
  KEXPECT_EQ(p.dropped_warnings, 2u);
}

KTEST(Cmdline, CorruptionOnlyInTestMode) {
  auto ignored = parse_command_line("bootinfo.corrupt=overlap");
  KEXPECT_EQ(ignored.options.corrupt, kernel::Corruption::None);
  KASSERT_EQ(ignored.warning_count, 1u);
  KEXPECT_EQ(ignored.warnings[0].kind, kernel::WarningKind::IgnoredOutsideTestMode);
  auto on = parse_command_line("test=boot bootinfo.corrupt=overlap");
  KEXPECT_EQ(on.options.corrupt, kernel::Corruption::Overlap);
  KEXPECT_EQ(parse_command_line("test=boot bootinfo.corrupt=version").options.corrupt,
             kernel::Corruption::Version);
  KEXPECT_EQ(parse_command_line("test=boot bootinfo.corrupt=huge").options.corrupt, kernel::Corruption::Huge);
  KEXPECT_EQ(parse_command_line("test=boot bootinfo.corrupt=bogus").warning_count, 1u);
}

KTEST(Cmdline, PageTableDump) {
  KEXPECT_EQ(parse_command_line("").options.dump_page_tables, kernel::Toggle::Off);
  KEXPECT_EQ(parse_command_line("log=info pagetables=dump").options.dump_page_tables, kernel::Toggle::On);
  auto bad = parse_command_line("pagetables=yes");
  KEXPECT_EQ(bad.options.dump_page_tables, kernel::Toggle::Off);
  KEXPECT_EQ(bad.warning_count, 1u);
}

KTEST(Cmdline, FramebufferToggle) {
  KEXPECT_EQ(parse_command_line("fbcon=off").options.fbcon, kernel::Toggle::Off);
  KEXPECT_EQ(parse_command_line("fbcon=on").options.fbcon, kernel::Toggle::On);
}

}  // namespace
