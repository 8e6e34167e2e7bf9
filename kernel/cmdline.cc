module;

#include <ktl/macros.h>

module kernel.cmdline;

import ktl;
import kernel.log;

namespace kernel {

namespace {

struct Parser {
  ParsedCommandLine result;
  ktl::Array<ktl::StringView, 8> seen{};
  usize seen_count = 0;

  void warn(WarningKind kind, ktl::StringView word) {
    if (result.warning_count == ParsedCommandLine::kMaxWarnings) {
      ++result.dropped_warnings;
      return;
    }
    result.warnings[result.warning_count++] = Warning{kind, word};
  }

  // False (and a warning) if `key` was given before.
  bool first_time(ktl::StringView key, ktl::StringView word) {
    for (usize i = 0; i < seen_count; ++i) {
      if (seen[i] == key) {
        warn(WarningKind::Repeated, word);
        return false;
      }
    }
    if (seen_count < seen.size()) seen[seen_count++] = key;
    return true;
  }

  void test_option(ktl::StringView value, ktl::StringView word) {
    Options& o = result.options;
    if (value.empty()) {
      warn(WarningKind::BadValue, word);
      return;
    }
    o.test_filter = value;
    if (value == "boot") {
      o.test = TestMode::Boot;
      return;
    }
    if (value == "clock") {
      o.test = TestMode::Clock;
      return;
    }
    if (value == "bench") {
      o.test = TestMode::Bench;
      return;
    }
    if (value == "kswapd") {
      o.test = TestMode::Kswapd;
      return;
    }
    ktl::StringView fault_prefix = "fault:";
    if (!value.starts_with(fault_prefix)) {
      o.test = TestMode::Suites;
      return;
    }
    ktl::StringView kind = value.substr(fault_prefix.size());
    FaultKind k = kind == "pagefault"       ? FaultKind::PageFault
                  : kind == "divide"        ? FaultKind::Divide
                  : kind == "wp"            ? FaultKind::WriteProtect
                  : kind == "stackoverflow" ? FaultKind::StackOverflow
                  : kind == "nmi"           ? FaultKind::Nmi
                  : kind == "panic"         ? FaultKind::Panic
                  : kind == "doublefree"    ? FaultKind::DoubleFree
                  : kind == "iststack"      ? FaultKind::IstStackOverflow
                  : kind == "lockorder"     ? FaultKind::LockOrder
                  : kind == "taskstack"     ? FaultKind::TaskStackOverflow
                                            : FaultKind::None;
    if (k == FaultKind::None) {
      // Still test mode (a typo must fail the test run, not boot normally).
      warn(WarningKind::BadValue, word);
    }
    o.test = TestMode::Fault;
    o.fault = k;
  }

  void option(ktl::StringView key, ktl::StringView value, ktl::StringView word) {
    Options& o = result.options;
    if (key == "log") {
      if (!first_time(key, word)) return;
      auto level = klog::level_from_string(value);
      if (level.has_value()) {
        o.log_level = *level;
      } else {
        warn(WarningKind::BadValue, word);
      }
    } else if (key == "test") {
      if (!first_time(key, word)) return;
      test_option(value, word);
    } else if (key == "fbcon") {
      if (!first_time(key, word)) return;
      if (value == "on") {
        o.fbcon = Toggle::On;
      } else if (value == "off") {
        o.fbcon = Toggle::Off;
      } else {
        warn(WarningKind::BadValue, word);
      }
    } else if (key == "pagetables") {
      if (!first_time(key, word)) return;
      if (value == "dump") {
        o.dump_page_tables = Toggle::On;
      } else {
        warn(WarningKind::BadValue, word);
      }
    } else if (key == "kswapd.min" || key == "kswapd.low" || key == "kswapd.high") {
      if (!first_time(key, word)) return;
      ktl::u32 pct = 0;
      bool ok = !value.empty() && value.size() <= 3;
      for (char c : value.span()) {
        ok = ok && c >= '0' && c <= '9';
        if (ok) pct = pct * 10 + static_cast<ktl::u32>(c - '0');
      }
      if (!ok || pct > 100) {
        warn(WarningKind::BadValue, word);
        return;
      }
      (key == "kswapd.min" ? o.kswapd_min : key == "kswapd.low" ? o.kswapd_low : o.kswapd_high) = pct;
    } else if (key == "bootinfo.corrupt") {
      if (!first_time(key, word)) return;
      Corruption c = value == "version"     ? Corruption::Version
                     : value == "overlap"   ? Corruption::Overlap
                     : value == "unsorted"  ? Corruption::Unsorted
                     : value == "zero-size" ? Corruption::ZeroSize
                     : value == "huge"      ? Corruption::Huge
                                            : Corruption::None;
      if (c == Corruption::None) {
        warn(WarningKind::BadValue, word);
      } else {
        o.corrupt = c;
      }
    } else {
      warn(WarningKind::UnknownKey, word);
    }
  }
};

}  // namespace

const char* to_string(FaultKind k) {
  switch (k) {
    case FaultKind::None: return "none";
    case FaultKind::PageFault: return "pagefault";
    case FaultKind::Divide: return "divide";
    case FaultKind::WriteProtect: return "wp";
    case FaultKind::StackOverflow: return "stackoverflow";
    case FaultKind::Nmi: return "nmi";
    case FaultKind::Panic: return "panic";
    case FaultKind::DoubleFree: return "doublefree";
    case FaultKind::IstStackOverflow: return "iststack";
    case FaultKind::LockOrder: return "lockorder";
    case FaultKind::TaskStackOverflow: return "taskstack";
  }
  return "?";
}

const char* to_string(Corruption c) {
  switch (c) {
    case Corruption::None: return "none";
    case Corruption::Version: return "version";
    case Corruption::Overlap: return "overlap";
    case Corruption::Unsorted: return "unsorted";
    case Corruption::ZeroSize: return "zero-size";
    case Corruption::Huge: return "huge";
  }
  return "?";
}

void format_value(ktl::FormatSink& sink, const Warning& w, const ktl::FormatSpec&) {
  switch (w.kind) {
    case WarningKind::UnknownKey: ktl::format_to(sink, "unknown option \"{}\" (ignored)", w.word); break;
    case WarningKind::BadValue: ktl::format_to(sink, "bad value in \"{}\" (ignored)", w.word); break;
    case WarningKind::Repeated:
      ktl::format_to(sink, "\"{}\" repeats an earlier option (ignored)", w.word);
      break;
    case WarningKind::NotAnOption: ktl::format_to(sink, "\"{}\" is not key=value (ignored)", w.word); break;
    case WarningKind::IgnoredOutsideTestMode:
      ktl::format_to(sink, "\"{}\" only works with test= (ignored)", w.word);
      break;
  }
}

ParsedCommandLine parse_command_line(ktl::StringView text) {
  Parser p;
  usize i = 0;
  while (i < text.size()) {
    while (i < text.size() && (text[i] == ' ' || text[i] == '\t')) ++i;
    if (i == text.size()) break;
    usize end = i;
    while (end < text.size() && text[end] != ' ' && text[end] != '\t') ++end;
    ktl::StringView word = text.substr(i, end - i);
    i = end;
    usize eq = word.find('=');
    if (eq == word.size() || eq == 0) {
      p.warn(WarningKind::NotAnOption, word);
      continue;
    }
    p.option(word.substr(0, eq), word.substr(eq + 1), word);
  }
  if (p.result.options.corrupt != Corruption::None && p.result.options.test == TestMode::None) {
    p.result.options.corrupt = Corruption::None;
    p.warn(WarningKind::IgnoredOutsideTestMode, "bootinfo.corrupt");
  }
  return p.result;
}

}  // namespace kernel
