module;

#include <ktl/macros.h>

module kernel.shell;

import ktl;
import ktest;
import kernel.bench;
import kernel.kswapd;
import kernel.pci_bus;
import mm.reclaim;
import kernel.log;
import kernel.meminfo;
import kernel.memory;
import kernel.sched;
import kernel.serial_console;
import kernel.shell.line_editor;
import kernel.shell.parse;
import kernel.time;
import mm.heap;
import mm.slab;
import arch.x86_64.cpu;
import arch.x86_64.platform;

namespace kernel::shell {

namespace {

using ktl::u32;
using ktl::u64;
using ktl::usize;

constexpr const char* kPrompt = "ferrite> ";

enum class CommandError : u32 { Usage, NoMemory, Corrupted, NoTests, PowerOff };
[[nodiscard]] constexpr const char* to_string(CommandError e) {
  switch (e) {
    case CommandError::Usage: return "usage";
    case CommandError::NoMemory: return "out of memory";
    case CommandError::Corrupted: return "heap data corrupted";
    case CommandError::NoTests: return "no test matches";
    case CommandError::PowerOff: return "power-off failed";
  }
  return "unknown command error";
}

using Args = ktl::Span<const ktl::StringView>;
using Command = ktl::Result<void, CommandError> (*)(Args args, ktl::FormatSink& out);

struct Entry {
  const char* name;
  const char* usage;
  const char* help;
  Command run;
};

ktl::Result<void, CommandError> cmd_help(Args, ktl::FormatSink& out);

ktl::Result<void, CommandError> cmd_meminfo(Args, ktl::FormatSink& out) {
  MemInfo m = memory::meminfo();
  write_meminfo(out, m);
  return ktl::ok();
}

ktl::Result<void, CommandError> cmd_slabinfo(Args, ktl::FormatSink& out) {
  constexpr usize kMax = 96;
  static ktl::Array<mm::SlabInfo, kMax> infos{};  // 13 KiB: not on the stack (one shell task uses it)
  usize n = 0, more = 0;
  memory::heap().slab().for_each_info([&](const mm::SlabInfo& i) {
    if (n < kMax) {
      infos[n++] = i;
    } else {
      ++more;
    }
  });
  ktl::format_to(out, "{:<24} {:>8} {:>10} {:>10} {:>7} {:>9}\n", "cache", "objsize", "active", "total",
                 "slabs", "memory");
  u64 total_frames = 0;
  for (usize i = 0; i < n; ++i) {
    const mm::SlabInfo& s = infos[i];
    total_frames += s.frames;
    ktl::format_to(out, "{:<24} {:>8} {:>10} {:>10} {:>7} {:>8}K\n", s.name, s.object_size, s.active,
                   s.objects, s.slabs, s.frames * 4);
  }
  ktl::format_to(out, "{} caches, {} KiB in slabs{}\n", n + more, total_frames * 4,
                 more != 0 ? " (some not listed)" : "");
  return ktl::ok();
}

ktl::Result<void, CommandError> cmd_ps(Args, ktl::FormatSink& out) {
  static ktl::Array<sched::TaskInfo, 64> infos{};  // 4 KiB: not on the stack (one shell task uses it)
  usize n = sched::scheduler().snapshot(infos.span());
  ktl::format_to(out, "{:>4} {:<24} {:<9} {:<7} {:>10} {:>9} {:>8}\n", "id", "name", "state", "prio",
                 "cpu-ms", "switches", "wakeups");
  for (usize i = 0; i < n; ++i) {
    const sched::TaskInfo& t = infos[i];
    ktl::format_to(out, "{:>4} {:<24} {:<9} {:<7} {:>10} {:>9} {:>8}\n", t.id, ktl::StringView(t.name.data()),
                   sched::to_string(t.state), sched::to_string(t.priority), t.stats.cpu_ns / time::kNsPerMs,
                   t.stats.switches, t.stats.wakeups);
  }
  return ktl::ok();
}

ktl::Result<void, CommandError> cmd_uptime(Args, ktl::FormatSink& out) {
  u64 ns = time::now_ns();
  ktl::format_to(out, "up {}.{:03} s (clock: {}); {} timer interrupts, {} context switches\n",
                 ns / time::kNsPerSecond, (ns / time::kNsPerMs) % 1000, time::clock().source().name,
                 time::timers().interrupts(), sched::scheduler().context_switches());
  return ktl::ok();
}

ktl::Result<void, CommandError> cmd_vmmap(Args, ktl::FormatSink&) {
  (void)memory::log_page_tables();
  return ktl::ok();
}

// xorshift64*: sizes and fill patterns.
struct Random {
  u64 state;
  u64 next() {
    state ^= state >> 12;
    state ^= state << 25;
    state ^= state >> 27;
    return state * 0x2545'f491'4f6c'dd1dull;
  }
};

struct Live {
  void* p = nullptr;
  u64 size = 0;
  ktl::u8 fill = 0;
};

bool check_and_free(const Live& l) {
  KTL_UNSAFE_BUFFER_BEGIN  // l.size bytes that kmalloc returned at l.p
  auto bytes = ktl::Span<ktl::u8>::from_raw(static_cast<ktl::u8*>(l.p), l.size);
  KTL_UNSAFE_BUFFER_END
  bool ok = bytes[0] == l.fill && bytes[l.size - 1] == l.fill && bytes[l.size / 2] == l.fill;
  mm::kfree(l.p);
  return ok;
}

ktl::Result<void, CommandError> cmd_kmalloc_stress(Args args, ktl::FormatSink& out) {
  if (args.size() != 2) return ktl::Err(CommandError::Usage);
  auto mib = parse_u64(args[1]);
  if (mib.is_err() || mib.value() == 0 || mib.value() > 4096) {
    out.write("kmalloc-stress: N must be a number of MiB from 1 to 4096\n");
    return ktl::Err(CommandError::Usage);
  }
  constexpr usize kSlots = 256;
  ktl::Array<Live, kSlots> live{};
  Random rng{0x9e37'79b9'7f4a'7c15ull ^ time::now_ns()};
  u64 target = mib.value() << 20, total = 0, allocations = 0, smallest = ~u64{0}, largest = 0;
  u64 before = memory::heap().stats().slab_frames + memory::heap().stats().large_frames;
  u64 start = time::now_ns();
  bool corrupted = false, out_of_memory = false;
  u64 last_report = start;
  while (total < target && !out_of_memory) {
    Live& slot = live[rng.next() % kSlots];
    if (slot.p != nullptr) {
      corrupted = !check_and_free(slot) || corrupted;
      slot = Live{};
    }
    // Mostly small (16 B - 4 KiB), some up to 64 KiB, a few large (up to 1 MiB).
    u64 r = rng.next();
    u64 size = r % 100 < 80   ? 16 + (r >> 8) % 4080
               : r % 100 < 97 ? 4096 + (r >> 8) % 61440
                              : 65536 + (r >> 8) % 983040;
    void* p = mm::kmalloc(size);
    if (p == nullptr) {
      out_of_memory = true;
      break;
    }
    auto fill = static_cast<ktl::u8>(rng.next());
    KTL_UNSAFE_BUFFER_BEGIN  // kmalloc returned `size` bytes
    auto bytes = ktl::Span<ktl::u8>::from_raw(static_cast<ktl::u8*>(p), size);
    KTL_UNSAFE_BUFFER_END
    bytes[0] = bytes[size - 1] = bytes[size / 2] = fill;
    slot = Live{p, size, fill};
    total += size;
    ++allocations;
    if (size < smallest) smallest = size;
    if (size > largest) largest = size;
    u64 now = time::now_ns();
    if (now - last_report >= time::kNsPerSecond) {  // progress for long runs
      ktl::format_to(out, "kmalloc-stress: {} of {} MiB...\n", total >> 20, mib.value());
      last_report = now;
    }
  }
  for (Live& l : live) {
    if (l.p != nullptr) corrupted = !check_and_free(l) || corrupted;
  }
  u64 elapsed = time::now_ns() - start;
  u64 after = memory::heap().stats().slab_frames + memory::heap().stats().large_frames;
  u64 ms = elapsed / time::kNsPerMs;
  ktl::format_to(
      out,
      "kmalloc-stress: {} MiB in {} allocations ({} B - {} B) in {} ms: {} MiB/s, {} allocations/s; heap "
      "frames {} before, {} after (freed slabs stay cached until reclaimed)\n",
      total >> 20, allocations, smallest, largest, ms, ms == 0 ? 0 : (total >> 20) * 1000 / ms,
      ms == 0 ? 0 : allocations * 1000 / ms, before, after);
  if (out_of_memory) return ktl::Err(CommandError::NoMemory);
  if (corrupted) return ktl::Err(CommandError::Corrupted);
  return ktl::ok();
}

ktl::Result<void, CommandError> cmd_ktest(Args args, ktl::FormatSink& out) {
  if (args.size() != 2) return ktl::Err(CommandError::Usage);
  ktest::Summary s = ktest::run_all(out, args[1]);
  if (s.passed + s.failed == 0) return ktl::Err(CommandError::NoTests);
  return ktl::ok();
}

ktl::Result<void, CommandError> cmd_kswapd(Args, ktl::FormatSink& out) {
  mm::Reclaim& r = kswapd::engine();
  const mm::Watermarks& w = r.watermarks();
  mm::ReclaimStats s = r.stats();
  ktl::format_to(
      out, "kswapd: usage {}% (background reclaim from {}% down to {}%, direct reclaim below {}% free)\n",
      r.mem_usage_pct(), w.high_pct, w.low_pct, w.min_free_pct);
  ktl::format_to(out, "kswapd: {} ticks, {} wake-ups, {} frames freed, {} gave up, {} ms above high\n",
                 s.ticks, s.wakeups, s.freed, s.gave_up, s.ns_above_high / time::kNsPerMs);
  ktl::format_to(out, "kswapd: direct reclaim: {} times, {} frames, {} refused (another reclaim ran)\n",
                 s.direct, s.direct_freed, s.direct_busy);
  ktl::Array<mm::ReclaimerStats, mm::Reclaim::kMaxReclaimers> rs{};
  usize n = r.reclaimer_stats(rs.span());
  for (usize i = 0; i < n; ++i) {
    ktl::format_to(out, "kswapd: reclaimer {}: {} calls, {} scanned, {} freed, {} fruitless\n", rs[i].name,
                   rs[i].calls, rs[i].scanned, rs[i].freed, rs[i].fruitless);
  }
  return ktl::ok();
}

ktl::Result<void, CommandError> cmd_fill(Args args, ktl::FormatSink& out) {
  if (args.size() != 2) return ktl::Err(CommandError::Usage);
  auto pct = parse_u64(args[1]);
  if (pct.is_err() || pct.value() == 0 || pct.value() > 99) {
    out.write("fill: PCT must be a usage percentage from 1 to 99\n");
    return ktl::Err(CommandError::Usage);
  }
  u32 before = kswapd::mem_usage_pct();
  kswapd::FillResult f = kswapd::fill(static_cast<u32>(pct.value()));
  if (f.no_table) return ktl::Err(CommandError::NoMemory);
  ktl::format_to(
      out, "fill: usage {}% -> {}% with {} objects of 2 KiB, {}% once freed (their slabs stay cached{})\n",
      before, f.usage_peak, f.objects, f.usage_after,
      f.usage_peak >= kswapd::engine().watermarks().high_pct ? "; kswapd reclaims them" : "");
  if (f.out_of_memory) return ktl::Err(CommandError::NoMemory);
  return ktl::ok();
}

ktl::Result<void, CommandError> cmd_lspci(Args, ktl::FormatSink& out) {
  kernel::pci_bus::write_list(out);
  ktl::format_to(out, "{} functions (through {})\n", kernel::pci_bus::functions().size(),
                 kernel::pci_bus::to_string(kernel::pci_bus::access()));
  return ktl::ok();
}

ktl::Result<void, CommandError> cmd_drop(Args, ktl::FormatSink& out) {
  u32 before = kswapd::mem_usage_pct();
  u64 freed = kswapd::slab_reclaim(~u64{0});
  ktl::format_to(out, "drop: {} frames ({} KiB) of empty slabs freed; usage {}% -> {}%\n", freed, freed * 4,
                 before, kswapd::mem_usage_pct());
  return ktl::ok();
}

ktl::Result<void, CommandError> cmd_bench(Args, ktl::FormatSink& out) {
  (void)bench::run_all(out);
  return ktl::ok();
}

ktl::Result<void, CommandError> cmd_poweroff(Args, ktl::FormatSink& out) {
  out.write("poweroff: ACPI S5\n");
  arch::x86_64::PowerOffError e = arch::x86_64::acpi_power_off();
  ktl::format_to(out, "poweroff: ACPI: {}; trying QEMU's exit device\n", arch::x86_64::to_string(e));
  arch::x86_64::qemu_exit(0);  // returns only where there is no such device
  return ktl::Err(CommandError::PowerOff);
}

constexpr ktl::Array<Entry, 14> kCommands{{
    {"help", "help", "this list", &cmd_help},
    {"meminfo", "meminfo", "physical memory: usable, reserved, the kernel's share", &cmd_meminfo},
    {"slabinfo", "slabinfo", "every slab cache: object size, objects in use and total, slabs, memory",
     &cmd_slabinfo},
    {"ps", "ps", "tasks: state, priority, CPU time, switches, wake-ups", &cmd_ps},
    {"uptime", "uptime", "time since the clock started, interrupts, context switches", &cmd_uptime},
    {"vmmap", "vmmap", "the kernel's mappings (as pagetables=dump prints them)", &cmd_vmmap},
    {"kmalloc-stress", "kmalloc-stress N", "allocate and free N MiB in random sizes, report the time",
     &cmd_kmalloc_stress},
    {"ktest", "ktest NAME", "run the in-kernel test suites whose name starts with NAME (all: every one)",
     &cmd_ktest},
    {"kswapd", "kswapd", "reclaim: usage, watermarks, kswapd and direct-reclaim statistics, reclaimers",
     &cmd_kswapd},
    {"fill", "fill PCT", "grow the slab caches until memory usage reaches PCT %, then free the objects",
     &cmd_fill},
    {"drop", "drop", "free every empty slab now (slab_reclaim)", &cmd_drop},
    {"lspci", "lspci", "the PCI functions: IDs, class, interrupt pin, BARs, capabilities", &cmd_lspci},
    {"bench", "bench", "context switch, interrupt and wake-up benchmarks", &cmd_bench},
    {"poweroff", "poweroff", "power off (ACPI S5, else QEMU's exit device)", &cmd_poweroff},
}};

ktl::Result<void, CommandError> cmd_help(Args, ktl::FormatSink& out) {
  for (const Entry& e : kCommands) ktl::format_to(out, "  {:<18} {}\n", e.usage, e.help);
  out.write("  keys: Backspace, Ctrl-U (erase the line), Ctrl-C (abandon it), Up/Down (history)\n");
  return ktl::ok();
}

void execute(ktl::StringView line, ktl::FormatSink& out) {
  auto words = split_words(line);
  if (words.is_err()) {
    ktl::format_to(out, "error: {}\n", to_string(words.error()));
    return;
  }
  Args args = words.value().span();
  if (args.empty()) return;
  for (const Entry& e : kCommands) {
    if (args[0] != ktl::StringView(e.name)) continue;
    auto r = e.run(args, out);
    if (r.is_err()) {
      if (r.error() == CommandError::Usage) {
        ktl::format_to(out, "{}: usage: {}\n", e.name, e.usage);
      } else {
        ktl::format_to(out, "{}: failed: {}\n", e.name, to_string(r.error()));
      }
    }
    return;
  }
  ktl::format_to(out, "unknown command: {} (type help for the list)\n", args[0]);
}

}  // namespace

void run(DumpPageTables dump) {
  if (dump == DumpPageTables::Yes) (void)memory::log_page_tables();
  klog::RawSink out;
  LineEditor editor;
  ktl::format_to(out, "\nFerrite shell on COM1; type help for the commands.\n{}", kPrompt);
  for (;;) {
    ktl::u8 b = serial_console::read_byte_blocking();
    switch (editor.feed(b, out)) {
      case Event::None: continue;
      case Event::Line: execute(editor.line(), out); break;
      case Event::Cancelled: break;
      case Event::TooLong:
        ktl::format_to(out, "error: line too long (the limit is {} characters); discarded\n",
                       LineEditor::kMaxLine);
        break;
    }
    out.write(kPrompt);
  }
}

}  // namespace kernel::shell
