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
import kernel.storage;
import kernel.fs.fat;
import ktl.sha256;
import mm.heap;
import mm.slab;
import mm.page_cache;
import arch.x86_64.cpu;
import arch.x86_64.platform;

namespace kernel::shell {

namespace {

using ktl::u32;
using ktl::u64;
using ktl::usize;

constexpr const char* kPrompt = "ferrite> ";

enum class CommandError : u32 { Usage, NoMemory, Corrupted, NoTests, PowerOff, NotMounted, Fs, Io };
[[nodiscard]] constexpr const char* to_string(CommandError e) {
  switch (e) {
    case CommandError::Usage: return "usage";
    case CommandError::NoMemory: return "out of memory";
    case CommandError::Corrupted: return "heap data corrupted";
    case CommandError::NoTests: return "no test matches";
    case CommandError::PowerOff: return "power-off failed";
    case CommandError::NotMounted: return "no file system mounted (see mount)";
    case CommandError::Fs: return "file system error (said above)";
    case CommandError::Io: return "I/O error (said above)";
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
  ktl::format_to(out, "kswapd: {} episodes from high to low: last {} ms, longest {} ms\n", s.episodes,
                 s.last_high_to_low_ns / time::kNsPerMs, s.max_high_to_low_ns / time::kNsPerMs);
  ktl::format_to(
      out, "kswapd: direct-reclaim stalls: {} total {} us, p50 <= {} us, p99 <= {} us, longest {} us\n",
      s.direct_stalls.samples, s.direct_stalls.total_ns / 1000, s.direct_stalls.percentile_ns(50) / 1000,
      s.direct_stalls.percentile_ns(99) / 1000, s.direct_stalls.max_ns / 1000);
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
  u32 target = static_cast<u32>(pct.value());
  u32 before = kswapd::mem_usage_pct();
  // The page cache first (every disk read through it, page by page), then the slab caches.
  u64 start = time::now_ns();
  storage::FillResult c = storage::fill_cache(target);
  u32 after_cache = kswapd::mem_usage_pct();
  ktl::format_to(out, "fill: page cache: {} pages ({} MiB) read in {} ms{}: usage {}% -> {}%\n", c.pages,
                 c.pages >> 8, (time::now_ns() - start) / time::kNsPerMs,
                 c.io_error ? " (stopped by an I/O error)" : "", before, after_cache);
  kswapd::FillResult f = kswapd::fill(target);
  if (f.no_table) return ktl::Err(CommandError::NoMemory);
  ktl::format_to(
      out, "fill: usage {}% -> {}% with {} objects of 2 KiB, {}% once freed (their slabs stay cached{})\n",
      after_cache, f.usage_peak, f.objects, f.usage_after,
      f.usage_peak >= kswapd::engine().watermarks().high_pct ? "; kswapd reclaims them and the clean pages"
                                                             : "");
  if (f.out_of_memory) return ktl::Err(CommandError::NoMemory);
  if (c.io_error) return ktl::Err(CommandError::Io);
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
  u64 pages = storage::drop_clean();
  u64 freed = kswapd::slab_reclaim(~u64{0});
  ktl::format_to(
      out, "drop: {} clean cached pages and {} frames of empty slabs freed ({} KiB); usage {}% -> {}%\n",
      pages, freed, (pages + freed) * 4, before, kswapd::mem_usage_pct());
  return ktl::ok();
}

// --- files: ls, cat, sha256sum, mount, sync, pagecache --------------------------------------------

ktl::Result<fs::FatVolume*, CommandError> root_volume(ktl::FormatSink& out) {
  auto v = storage::root();
  if (v.is_err()) {
    ktl::format_to(out, "no file system at / ({})\n", storage::to_string(storage::root_state()));
    return ktl::Err(CommandError::NotMounted);
  }
  return v.value();
}

ktl::Result<fs::Node, CommandError> lookup(fs::FatVolume& v, ktl::StringView path, const char* cmd,
                                           ktl::FormatSink& out) {
  auto n = v.lookup(path);
  if (n.is_err()) {
    ktl::format_to(out, "{}: {}: {}\n", cmd, path, fs::to_string(n.error()));
    return ktl::Err(CommandError::Fs);
  }
  return n.value();
}

ktl::Result<void, CommandError> cmd_ls(Args args, ktl::FormatSink& out) {
  if (args.size() > 2) return ktl::Err(CommandError::Usage);
  fs::FatVolume* v = TRY(root_volume(out));
  ktl::StringView path = args.size() == 2 ? args[1] : ktl::StringView("/");
  fs::Node dir = TRY(lookup(*v, path, "ls", out));
  if (dir.kind == fs::NodeKind::File) {
    ktl::format_to(out, "{:>10}  {}\n", dir.size, path);
    return ktl::ok();
  }
  u64 bytes = 0;
  auto n = v->list(dir, [&](const fs::DirEntry& e) {
    if (e.kind() == fs::NodeKind::Directory) {
      ktl::format_to(out, "{:>10}  {}/\n", "-", e.name());
    } else {
      ktl::format_to(out, "{:>10}  {}\n", e.size(), e.name());
      bytes += e.size();
    }
    return fs::Visit::Continue;
  });
  if (n.is_err()) {
    ktl::format_to(out, "ls: {}: {}\n", path, fs::to_string(n.error()));
    return ktl::Err(CommandError::Fs);
  }
  ktl::format_to(out, "{} entries, {} bytes in files\n", n.value(), bytes);
  return ktl::ok();
}

// One 64 KiB buffer for the file commands (the shell is one task; not on its 16 KiB stack).
ktl::Array<ktl::u8, 65536> g_file_buffer{};

ktl::Result<void, CommandError> cmd_cat(Args args, ktl::FormatSink& out) {
  if (args.size() != 2) return ktl::Err(CommandError::Usage);
  fs::FatVolume* v = TRY(root_volume(out));
  fs::Node file = TRY(lookup(*v, args[1], "cat", out));
  if (file.kind == fs::NodeKind::Directory) {
    ktl::format_to(out, "cat: {}: {}\n", args[1], fs::to_string(fs::FsError::IsADirectory));
    return ktl::Err(CommandError::Fs);
  }
  u64 offset = 0;
  for (;;) {
    auto r = v->read(file, offset, g_file_buffer.span());
    if (r.is_err()) {
      ktl::format_to(out, "\ncat: {}: {} at byte {}\n", args[1], fs::to_string(r.error()), offset);
      return ktl::Err(CommandError::Fs);
    }
    if (r.value() == 0) break;
    KTL_UNSAFE_BUFFER_BEGIN  // the bytes just read, shown as text
    out.write(ktl::StringView::from_raw(reinterpret_cast<const char*>(g_file_buffer.data()), r.value()));
    KTL_UNSAFE_BUFFER_END
    offset += r.value();
  }
  return ktl::ok();
}

// Hashes one file, printing "<hex>  <path>" as sha256sum(1) does.
ktl::Result<void, CommandError> hash_file(fs::FatVolume& v, const fs::Node& file, ktl::StringView path,
                                          ktl::FormatSink& out) {
  if (file.kind == fs::NodeKind::Directory) {
    ktl::format_to(out, "sha256sum: {}: {}\n", path, fs::to_string(fs::FsError::IsADirectory));
    return ktl::Err(CommandError::Fs);
  }
  ktl::Sha256 h;
  u64 offset = 0;
  for (;;) {
    auto r = v.read(file, offset, g_file_buffer.span());
    if (r.is_err()) {
      ktl::format_to(out, "sha256sum: {}: {} at byte {}", path, fs::to_string(r.error()), offset);
      if (r.error() == fs::FsError::Corrupt) ktl::format_to(out, " ({})", fs::to_string(v.last_corruption()));
      out.write("\n");
      return ktl::Err(CommandError::Fs);
    }
    if (r.value() == 0) break;
    h.update(g_file_buffer.span().first(r.value()));
    offset += r.value();
  }
  ktl::format_to(out, "{}  {}\n", h.finish(), path);
  return ktl::ok();
}

// sha256sum -r DIR: every file below DIR, breadth first. The paths wait in a table (not on the
// stack; the volume's list() must not be re-entered from its own callback).
constexpr usize kMaxWalk = 512;
struct Path {
  ktl::Array<char, 256> bytes{};
  usize length = 0;
  bool truncated = false;
  void reset() { length = 0; }
  void write(ktl::StringView text) {
    for (char c : text) {
      if (length == bytes.size()) {
        truncated = true;
        return;
      }
      bytes[length++] = c;
    }
  }
  [[nodiscard]] ktl::StringView view() const { return ktl::StringView(bytes.span().first(length)); }
};
ktl::Array<Path, kMaxWalk> g_walk{};

ktl::Result<void, CommandError> hash_tree(fs::FatVolume& v, ktl::StringView top, ktl::FormatSink& out) {
  usize head = 0, tail = 0;
  bool overflow = false, failed = false;
  auto push = [&](ktl::StringView dir, ktl::StringView name) {
    if (tail == kMaxWalk) {
      overflow = true;
      return;
    }
    Path& p = g_walk[tail++];
    p.reset();
    p.truncated = false;
    if (dir != ktl::StringView("/")) p.write(dir);
    p.write("/");
    p.write(name);
  };
  g_walk[tail].reset();
  g_walk[tail++].write(top);
  usize files = 0;
  while (head < tail) {
    if (g_walk[head].truncated) {
      ktl::format_to(out, "sha256sum: {}...: path longer than 256 bytes\n", g_walk[head++].view());
      failed = true;
      continue;
    }
    ktl::StringView path = g_walk[head++].view();
    fs::Node n = TRY(lookup(v, path, "sha256sum", out));
    if (n.kind == fs::NodeKind::File) {
      failed = hash_file(v, n, path, out).is_err() || failed;
      ++files;
      continue;
    }
    auto listed = v.list(n, [&](const fs::DirEntry& e) {
      push(path, e.name());
      return fs::Visit::Continue;
    });
    if (listed.is_err()) {
      ktl::format_to(out, "sha256sum: {}: {}\n", path, fs::to_string(listed.error()));
      failed = true;
    }
  }
  ktl::format_to(out, "sha256sum: {} files{}\n", files, overflow ? " (the walk stopped at 512 paths)" : "");
  if (failed || overflow) return ktl::Err(CommandError::Fs);
  return ktl::ok();
}

ktl::Result<void, CommandError> cmd_sha256sum(Args args, ktl::FormatSink& out) {
  if (args.size() < 2) return ktl::Err(CommandError::Usage);
  fs::FatVolume* v = TRY(root_volume(out));
  if (args[1] == ktl::StringView("-r")) {
    if (args.size() != 3) return ktl::Err(CommandError::Usage);
    return hash_tree(*v, args[2], out);
  }
  bool failed = false;
  for (usize i = 1; i < args.size(); ++i) {
    auto n = lookup(*v, args[i], "sha256sum", out);
    if (n.is_err()) {
      failed = true;
      continue;
    }
    failed = hash_file(*v, n.value(), args[i], out).is_err() || failed;
  }
  if (failed) return ktl::Err(CommandError::Fs);
  return ktl::ok();
}

// write-pattern PATH SEED: overwrites the file in place, byte i = seed + 13 i + 7 (i / 4096) (mod
// 256), through the page cache: the dirty-page test writes it under memory pressure, syncs, powers
// off and checks the disk image on the host (testing/qemu/storage_test.py computes the same bytes).
ktl::Result<void, CommandError> cmd_write_pattern(Args args, ktl::FormatSink& out) {
  if (args.size() != 3) return ktl::Err(CommandError::Usage);
  auto seed = parse_u64(args[2]);
  if (seed.is_err() || seed.value() > 255) {
    out.write("write-pattern: SEED must be a number from 0 to 255\n");
    return ktl::Err(CommandError::Usage);
  }
  fs::FatVolume* v = TRY(root_volume(out));
  fs::Node file = TRY(lookup(*v, args[1], "write-pattern", out));
  if (file.kind == fs::NodeKind::Directory) {
    ktl::format_to(out, "write-pattern: {}: {}\n", args[1], fs::to_string(fs::FsError::IsADirectory));
    return ktl::Err(CommandError::Fs);
  }
  u64 start = time::now_ns();
  for (u64 offset = 0; offset < file.size;) {
    usize n = static_cast<usize>(ktl::min<u64>(g_file_buffer.size(), file.size - offset));
    for (usize i = 0; i < n; ++i) {
      u64 at = offset + i;
      g_file_buffer[i] = static_cast<ktl::u8>(seed.value() + 13 * at + 7 * (at >> 12));
    }
    auto w = v->write(file, offset, g_file_buffer.span().first(n));
    if (w.is_err()) {
      ktl::format_to(out, "write-pattern: {}: {} at byte {}\n", args[1], fs::to_string(w.error()), offset);
      return ktl::Err(CommandError::Fs);
    }
    offset += n;
  }
  ktl::format_to(out, "write-pattern: {} bytes of {} written in {} ms (dirty in the page cache until sync)\n",
                 file.size, args[1], (time::now_ns() - start) / time::kNsPerMs);
  return ktl::ok();
}

ktl::Result<void, CommandError> cmd_mount(Args, ktl::FormatSink& out) {
  storage::write_mounts(out);
  return ktl::ok();
}

ktl::Result<void, CommandError> cmd_sync(Args, ktl::FormatSink& out) {
  u64 start = time::now_ns();
  auto r = storage::sync();
  if (r.is_err()) {
    ktl::format_to(out, "sync: {}\n", mm::to_string(r.error()));
    return ktl::Err(CommandError::Io);
  }
  ktl::format_to(out, "sync: every dirty page written back and the disks flushed in {} ms\n",
                 (time::now_ns() - start) / time::kNsPerMs);
  return ktl::ok();
}

ktl::Result<void, CommandError> cmd_pagecache(Args, ktl::FormatSink& out) {
  storage::write_page_cache(out);
  return ktl::ok();
}

ktl::Result<void, CommandError> cmd_bench(Args args, ktl::FormatSink& out) {
  if (args.size() == 1) {
    (void)bench::run_all(out);
    return ktl::ok();
  }
  if (args.size() != 2 || args[1] != ktl::StringView("storage")) return ktl::Err(CommandError::Usage);
  (void)bench::run_storage(out);
  return ktl::ok();
}

ktl::Result<void, CommandError> cmd_poweroff(Args, ktl::FormatSink& out) {
  out.write("poweroff: ACPI S5\n");
  arch::x86_64::PowerOffError e = arch::x86_64::acpi_power_off();
  ktl::format_to(out, "poweroff: ACPI: {}; trying QEMU's exit device\n", arch::x86_64::to_string(e));
  arch::x86_64::qemu_exit(0);  // returns only where there is no such device
  return ktl::Err(CommandError::PowerOff);
}

constexpr ktl::Array<Entry, 21> kCommands{{
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
    {"fill", "fill PCT",
     "grow the page cache (reading the disks) and the slab caches until usage reaches PCT %, then free the "
     "objects",
     &cmd_fill},
    {"drop", "drop", "evict every clean cached page and free every empty slab now", &cmd_drop},
    {"pagecache", "pagecache",
     "the page cache: pages, dirty, hits, misses, read-ahead, evictions, write-backs", &cmd_pagecache},
    {"mount", "mount", "the disks, what is mounted at / and why not", &cmd_mount},
    {"ls", "ls [PATH]", "list a directory of the root file system (default /)", &cmd_ls},
    {"cat", "cat PATH", "print a file", &cmd_cat},
    {"sha256sum", "sha256sum PATH...|-r DIR", "SHA-256 of files (-r: every file below DIR)", &cmd_sha256sum},
    {"sync", "sync", "write every dirty page back and flush the disks", &cmd_sync},
    {"write-pattern", "write-pattern PATH SEED",
     "overwrite a file in place with a known pattern (dirty-page test)", &cmd_write_pattern},
    {"lspci", "lspci", "the PCI functions: IDs, class, interrupt pin, BARs, capabilities", &cmd_lspci},
    {"bench", "bench [storage]",
     "context switch, interrupt and wake-up benchmarks (storage: page cache and reclaim under pressure)",
     &cmd_bench},
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
