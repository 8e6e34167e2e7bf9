// The kernel's entry point after the architecture's start code (entry.S): installs the exception
// handling first, validates the boot information, turns on the CPU's protection features, brings
// up memory management (PMM, the adopted kernel address space, the heap: kernel.memory) and the
// consoles, and reports what it was given; in test mode it then runs the requested test and exits
// QEMU with the result.
#include <ktl/macros.h>
#include <ktl/new.h>

import ktl;
import boot.info;
import kernel.log;
import kernel.cmdline;
import kernel.boot_check;
import kernel.backtrace;
import kernel.symbols;
import kernel.panic;
import kernel.font;
import kernel.fbcon;
import kernel.selftest;
import ktest;
import mm.addr;
import mm.arch;
import mm.heap;
import mm.paging;
import mm.slab;
import kernel.memory;
import arch.x86_64.cpu;
import arch.x86_64.serial;
import arch.x86_64.gdt;
import arch.x86_64.idt;
import arch.x86_64.pic;
import arch.x86_64.features;
import arch.x86_64.platform;
import arch.x86_64.apic;
import kernel.irq;
import kernel.serial_console;
import kernel.time;
import kernel.tasks;
import kernel.pci_bus;
import kernel.virtio_blk;
import kernel.kswapd;
import kernel.storage;
import mm.reclaim;
import kernel.sched;
import kernel.shell;
import kernel.bench;

namespace {

using ktl::u32;
using ktl::u64;
using ktl::usize;

constexpr const char* kVersion = "0.1.0";

kernel::Font g_font;
bool g_test_mode = false;

// Heap and log sizes once memory management is up.
constexpr usize kHeapLogHistory = 64 * 1024;
// Test and debug kernels run the heap hardened (redzones, poisoning, double-free checks).
#ifdef NDEBUG
constexpr bool kDebugKernel = false;
#else
constexpr bool kDebugKernel = true;
#endif

// The boot stack's high-water mark: everything below the entry frame is painted at boot, and test
// mode reports how much of it the tests used (kernel stacks are small; test state belongs on the
// heap).
constexpr u64 kStackPaint = 0x57ac'57ac'57ac'57acull;
struct BootStack {
  u64 bottom = 0;
  u64 top = 0;
};
BootStack g_boot_stack;

[[gnu::noinline]] void paint_boot_stack(u64 bottom, u64 top) {
  g_boot_stack = {bottom, top};
  volatile u64 here = 0;
  // Everything more than 256 bytes below this frame is unused: paint it.
  u64 limit = (ktl::address_of(&here) - 256) & ~u64{7};
  if (limit <= bottom || limit > top) return;
  KTL_UNSAFE_BUFFER_BEGIN  // [bottom, limit) lies inside the boot stack (checked above) and below this frame
  auto words =
      ktl::Span<volatile u64>::from_raw(reinterpret_cast<volatile u64*>(static_cast<ktl::uptr>(bottom)),
                                        static_cast<usize>((limit - bottom) / 8));
  KTL_UNSAFE_BUFFER_END
  for (volatile u64& w : words) w = kStackPaint;
}

// Bytes of the boot stack that were ever in use (from the top down to the lowest unpainted word).
u64 boot_stack_high_water() {
  const BootStack& s = g_boot_stack;
  KTL_UNSAFE_BUFFER_BEGIN  // the boot stack [bottom, top) the loader handed over
  auto words = ktl::Span<const volatile u64>::from_raw(
      reinterpret_cast<const volatile u64*>(static_cast<ktl::uptr>(s.bottom)),
      static_cast<usize>((s.top - s.bottom) / 8));
  KTL_UNSAFE_BUFFER_END
  usize untouched = 0;
  while (untouched < words.size() && words[untouched] == kStackPaint) ++untouched;
  return (s.top - s.bottom) - untouched * 8;
}

// Static constructors of every translation unit (and the C++ module initialisers).
extern "C" {
using InitFn = void (*)();
extern InitFn __init_array_start[];
extern InitFn __init_array_end[];
extern const ktl::u8 __ksymtab_start[];
}

void run_init_array() {
  KTL_UNSAFE_BUFFER_BEGIN  // the linker script brackets .init_array with these two symbols
  for (InitFn* fn = __init_array_start; fn != __init_array_end; ++fn) (*fn)();
  KTL_UNSAFE_BUFFER_END
}

// The table's header says how long it is (see kernel.symbols); bounded here so that a corrupt
// header cannot make the parser read far past the image.
constexpr usize kMaxSymbolTable = 16u << 20;

void load_symbols() {
  ksym::Header h;
  __builtin_memcpy(&h, __ksymtab_start, sizeof h);  // the linker script puts a header there
  if (h.magic != ksym::kMagic || h.total_size > kMaxSymbolTable || h.total_size < sizeof(ksym::Header)) {
    klog::warn("symbol table: missing or corrupt header; backtraces will not be symbolised");
    return;
  }
  KTL_UNSAFE_BUFFER_BEGIN  // the linker script puts total_size bytes (header checked above) at
                           // __ksymtab_start
  auto table = ksym::SymbolTable::parse(
      ktl::Span<const ktl::u8>::from_raw(__ksymtab_start, static_cast<usize>(h.total_size)));
  KTL_UNSAFE_BUFFER_END
  if (table.is_err()) {
    klog::warn("symbol table: {}; backtraces will not be symbolised", table.error());
    return;
  }
  kpanic::set_symbols(table.value());
  klog::debug("symbol table: {} functions", table.value().size());
}

void install_exception_handling() {
  using namespace arch::x86_64;
  load_gdt();
  load_idt();
  set_default_trap_handler(&kpanic::report_exception);
  remap_and_mask_pics();
  klog::debug("interrupts: 8259 PICs remapped to vectors {:#x}-{:#x} and masked", kPicMasterVectorBase,
              kPicSlaveVectorBase + 7);
  auto add = [](IstSlot slot, const char* name) {
    StackRange r = ist_stack(slot);
    kpanic::add_stack(kernel::StackBounds{r.bottom, r.top}, name);
  };
  add(IstSlot::DoubleFault, "IST 1 (double fault) stack");
  add(IstSlot::Nmi, "IST 2 (NMI) stack");
  add(IstSlot::MachineCheck, "IST 3 (machine check) stack");
}

// Bad boot information is fatal: halt (exit QEMU with failure in test mode).
[[noreturn]] void fatal_boot_info(ktl::StringView what) {
  klog::error("boot info: {}: halting", what);
  if (g_test_mode) arch::x86_64::qemu_exit(0x11);  // QEMU exits with status 35
  arch::x86_64::halt_forever();
}

[[noreturn]] void fatal_memory(const kernel::memory::InitError& e) {
  klog::error("memory: {}: halting", e);
  if (g_test_mode) arch::x86_64::qemu_exit(0x11);
  arch::x86_64::halt_forever();
}

template <class E>
[[noreturn]] void fatal_boot_info_error(const E& e) {
  ktl::InlineString<256> text;
  ktl::format_to(text, "{}", e);
  fatal_boot_info(text.view());
}

// test-only (bootinfo.corrupt=): a corrupted copy of the boot information, to exercise the
// checks below on a real boot. The loader's data stays untouched.
constexpr usize kMaxCorruptibleEntries = 512;
boot::BootInfo g_corrupt_info;
ktl::Array<boot::MemoryMapEntry, kMaxCorruptibleEntries> g_corrupt_map;

ktl::Span<const boot::MemoryMapEntry> corrupt_copy(kernel::Corruption c,
                                                   ktl::Span<const boot::MemoryMapEntry> map) {
  if (map.size() < 2 || map.size() > kMaxCorruptibleEntries) {
    fatal_boot_info("bootinfo.corrupt needs a map of 2..512 entries to corrupt");
  }
  for (usize i = 0; i < map.size(); ++i) g_corrupt_map[i] = map[i];
  ktl::Span<boot::MemoryMapEntry> copy = g_corrupt_map.span().first(map.size());
  usize mid = map.size() / 2;
  switch (c) {
    case kernel::Corruption::Overlap: copy[mid].base = copy[mid - 1].base + copy[mid - 1].size - 4096; break;
    case kernel::Corruption::Unsorted: ktl::swap(copy[mid - 1], copy[mid]); break;
    case kernel::Corruption::ZeroSize: copy[mid].size = 0; break;
    case kernel::Corruption::Huge: copy[mid].size = u64{1} << 62; break;
    case kernel::Corruption::Version:
    case kernel::Corruption::None: break;
  }
  klog::warn("test mode: validating a copy of the memory map corrupted with \"{}\" at entry {}",
             kernel::to_string(c), mid);
  return copy;
}

void print_memory_map(ktl::Span<const boot::MemoryMapEntry> map, const kernel::MapSummary& s) {
  for (usize i = 0; i < map.size(); ++i) {
    const boot::MemoryMapEntry& r = map[i];
    klog::debug("  [{:3}] {} - {} {:>8} KiB {}", i, mm::PhysAddr::unchecked(r.base),
                mm::PhysAddr::unchecked(r.base + r.size), r.size >> 10, boot::to_string(r.kind));
  }
  // The loader engineer's matrix tests parse this line: keep its format.
  klog::info("memory map: {} regions, {} MiB usable", s.regions, s.usable_bytes >> 20);
  ktl::InlineString<400> kinds;
  for (usize k = 1; k < kernel::kMemoryKinds; ++k) {
    u64 bytes = s.bytes_by_kind[k];
    if (bytes == 0) continue;
    ktl::format_to(kinds, " {}={}K", boot::to_string(static_cast<boot::MemoryKind>(k)), bytes >> 10);
  }
  klog::info("memory by kind:{}", kinds.view());
}

arch::x86_64::CpuFeatures enable_cpu_protections() {
  using namespace arch::x86_64;
  CpuFeatures f = detect_features();
  klog::info("cpu: {} family {:#x} model {:#x} stepping {}, {}-bit physical / {}-bit linear addresses",
             f.vendor_name(), f.family, f.model, f.stepping, f.physical_address_bits, f.linear_address_bits);
  klog::info("cpu features: {}", f);
  Protections on = enable_protections(f);
  ktl::InlineString<64> missing;
  auto note = [&](bool supported, const char* name) {
    if (!supported) ktl::format_to(missing, " {}", name);
  };
  note(f.nx, "NXE");
  note(f.smep, "SMEP");
  note(f.smap, "SMAP");
  note(f.umip, "UMIP");
  note(f.pge, "PGE");
  klog::info("cpu protections on: {}{}{}", on,
             missing.view().empty() ? "" : "; not supported by this CPU:", missing.view());
  ktl::check(on.wp, "CR0.WP did not stick");
  ktl::check(on.nxe == f.nx && on.smep == f.smep && on.smap == f.smap && on.umip == f.umip,
             "a supported protection bit did not stick");
  return f;
}

// Memory management (kernel.memory), then what the kernel keeps on its heap from now on.
void start_memory(const boot::BootInfo& info, ktl::Span<const boot::MemoryMapEntry> map,
                  const kernel::MapSummary& summary, const arch::x86_64::CpuFeatures& cpu) {
  kernel::memory::Config c;
  c.info = &info;
  c.map = map;
  c.map_end = summary.highest_address;
  c.gigabytes = cpu.gbpages ? mm::GigabytePages::Supported : mm::GigabytePages::Unsupported;
  c.heap_hardening = g_test_mode || kDebugKernel ? mm::Hardening::On : mm::Hardening::Off;
  if (auto r = kernel::memory::init(c); r.is_err()) fatal_memory(r.error());

  // The IST stacks move to mapped stacks with guard pages; the panic report follows them.
  if (auto r = kernel::memory::map_ist_stacks(); r.is_err()) fatal_memory(r.error());
  using arch::x86_64::IstSlot;
  auto moved = [](IstSlot slot, const char* name) {
    arch::x86_64::StackRange r = arch::x86_64::ist_stack(slot);
    kpanic::replace_stack(name, kernel::StackBounds{r.bottom, r.top});
  };
  moved(IstSlot::DoubleFault, "IST 1 (double fault) stack");
  moved(IstSlot::Nmi, "IST 2 (NMI) stack");
  moved(IstSlot::MachineCheck, "IST 3 (machine check) stack");
  arch::x86_64::StackRange df = arch::x86_64::ist_stack(IstSlot::DoubleFault);
  klog::info("exceptions: IST stacks mapped with guard pages at {} (3 x {} KiB)",
             mm::VirtAddr::from(df.bottom), arch::x86_64::kIstStackSize >> 10);

  // The log's replay buffer grows from its static 8 KiB to the heap.
  if (void* history = mm::kmalloc(kHeapLogHistory)) {
    KTL_UNSAFE_BUFFER_BEGIN  // kmalloc returned kHeapLogHistory bytes
        (void)
    klog::grow_history(ktl::Span<char>::from_raw(static_cast<char*>(history), kHeapLogHistory));
    KTL_UNSAFE_BUFFER_END
  } else {
    klog::warn("log: no heap memory for a larger replay buffer");
  }
}

// The kernel's own copy of the command line on the heap (the boot information's memory is the
// loader's: FIXME(reclaim) hands it back to the PMM one day), parsed again so that every view in
// the options points into the copy.
void keep_command_line(ktl::StringView text, kernel::ParsedCommandLine& parsed) {
  if (text.empty()) return;
  auto* copy = static_cast<char*>(mm::kmalloc(text.size()));
  if (copy == nullptr) {
    klog::warn("command line: no heap memory for a copy; using the loader's");
    return;
  }
  KTL_UNSAFE_BUFFER_BEGIN  // kmalloc returned text.size() bytes
  auto bytes = ktl::Span<char>::from_raw(copy, text.size());
  KTL_UNSAFE_BUFFER_END
  for (usize i = 0; i < text.size(); ++i) bytes[i] = text[i];
  parsed = kernel::parse_command_line(ktl::StringView(bytes));  // same options, warnings already shown
}

// All of physical memory the direct map can hold, as the loader maps it (the RAM part is what
// holds page tables).
mm::PhysWindow direct_map_window(const boot::BootInfo& info) {
  KTL_UNSAFE_BUFFER_BEGIN  // the loader maps all of physical memory at direct_map_base
  return mm::PhysWindow(mm::PhysAddr::zero(), boot::layout::kDirectMapSize,
                        reinterpret_cast<ktl::u8*>(static_cast<ktl::uptr>(info.direct_map_base)));
  KTL_UNSAFE_BUFFER_END
}

void start_framebuffer(const boot::BootInfo& info, const kernel::Options& options) {
  const boot::Framebuffer& fb = info.framebuffer;
  auto valid = kernel::Surface::validate(fb);
  if (valid.is_err()) {
    if (valid.error() == kernel::SurfaceError::NoFramebuffer) {
      klog::info("framebuffer: none (serial console only)");
    } else {
      klog::warn("framebuffer ignored: {} ({}x{}, pitch {}, format {}, {} bytes)", valid.error(), fb.width,
                 fb.height, fb.pitch, ktl::to_underlying(fb.format), fb.size);
    }
    return;
  }
  if (options.fbcon == kernel::Toggle::Off) {
    klog::info("framebuffer: {}x{}; console disabled by fbcon=off", fb.width, fb.height);
    return;
  }
  auto font = kernel::Font::parse(kernel::builtin_font_data());
  if (font.is_err()) {
    klog::warn("framebuffer console disabled: built-in font: {}", font.error());
    return;
  }
  g_font = font.value();
  // The direct map must cover the framebuffer, writable, at both ends (the lock-free walk of the
  // active tables).
  u64 virt = info.direct_map_base + fb.base;
  using Format = mm::paging::X86_64;
  auto root = mm::PhysAddr::unchecked(arch::x86_64::read_cr3() & Format::kAddrMask);
  auto first = mm::paging::translate<Format>(direct_map_window(info), root, mm::VirtAddr::from(virt));
  auto last =
      mm::paging::translate<Format>(direct_map_window(info), root, mm::VirtAddr::from(virt + fb.size - 1));
  if (!first.has_value() || !last.has_value() || !first->flags.writable() || !last->flags.writable() ||
      first->phys.value() != fb.base || last->phys.value() != fb.base + fb.size - 1) {
    klog::warn("framebuffer console disabled: {} (+{} bytes) is not mapped writable in the direct map",
               mm::PhysAddr::unchecked(fb.base), fb.size);
    return;
  }
  KTL_UNSAFE_BUFFER_BEGIN  // the framebuffer is mapped writable at virt for fb.size bytes (checked above)
  auto pixels = ktl::Span<ktl::u32>::from_raw(reinterpret_cast<ktl::u32*>(static_cast<ktl::uptr>(virt)),
                                              static_cast<usize>(fb.size / 4));
  KTL_UNSAFE_BUFFER_END
  auto surface = kernel::Surface::from_boot(fb, pixels);
  if (surface.is_err()) {
    klog::warn("framebuffer console disabled: {}", surface.error());
    return;
  }
  // The console lives on the heap for the rest of the kernel's life (the log keeps a reference).
  void* storage = mm::kmalloc(sizeof(kernel::FramebufferConsole));
  if (storage == nullptr) {
    klog::warn("framebuffer console disabled: no heap memory");
    return;
  }
  kernel::FramebufferConsole& con = *new (storage) kernel::FramebufferConsole(surface.value(), g_font);
  con.clear();
  (void)klog::add_sink(con, klog::Replay::History);
  klog::info("framebuffer console: {}x{} pixels at {}, {} columns x {} rows, font {}x{}", fb.width, fb.height,
             mm::PhysAddr::unchecked(fb.base), con.columns(), con.rows(), g_font.width(), g_font.height());
}

// "2599.987 MHz"
struct Mhz {
  u64 hz;
};
void format_value(ktl::FormatSink& out, const Mhz& m, const ktl::FormatSpec&) {
  ktl::format_to(out, "{}.{:03} MHz", m.hz / 1'000'000, (m.hz / 1'000) % 1'000);
}

// Interrupt controllers, calibration, the clock and timers (arch.x86_64.platform), then COM1's
// receive interrupt, then interrupts on. Without them nothing can run: failure is fatal.
void start_interrupts_and_time(const boot::BootInfo& info) {
  using namespace arch::x86_64;
  auto t = start_platform(info);
  if (t.is_err()) {
    const PlatformError& e = t.error();
    klog::error("interrupts: {}{}{}: halting", to_string(e.cause), e.detail ? ": " : "",
                e.detail ? e.detail : "");
    if (g_test_mode) qemu_exit(0x11);
    halt_forever();
  }
  const TimeInfo& ti = t.value();
  klog::info(
      "time: calibrated against the {} ({}, {} samples agree, {} outliers): TSC {} ({} - {}), APIC timer {} "
      "at divide {}",
      to_string(ti.reference), Mhz{ti.reference_hz}, ti.tsc.used, ti.tsc.outliers, Mhz{ti.tsc.hz},
      Mhz{ti.tsc.min_hz}, Mhz{ti.tsc.max_hz}, Mhz{ti.apic_timer.hz}, kApicTimerDivide);
  klog::info("time: clock source {}, one-shot timers on the APIC timer", ti.clock_source);

  constexpr u8 kCom1Vector = kIsaVectorBase + kernel::serial_console::kIrq;
  kernel::irq::table().set(kCom1Vector, &kernel::serial_console::receive_interrupt, "com1");
  if (auto r = route_isa_irq(kernel::serial_console::kIrq); r.is_err()) {
    klog::warn("serial: COM1 receive interrupt not routed: {}", to_string(r.error().cause));
  } else {
    kernel::serial_console::com1().enable_receive_interrupts();
  }
  enable_interrupts();
  klog::info(
      "interrupts: enabled; COM1 receive on vector {:#x}, spurious vector {:#x}, unexpected vectors counted",
      u32{kCom1Vector}, u32{kSpuriousVector});
}

// test=clock: the kernel's uptime at the start and the end of 6 s measured on its own clock,
// waiting in HLT for one-shot timer interrupts (boot_test.py --clock-check compares the two with
// the host's wall clock).
class WakeFlag final : public kernel::time::Timer {
 public:
  ktl::Atomic<bool> fired{false};

 protected:
  void expired() override { fired.store(true); }
};

void sleep_until(u64 deadline_ns) {
  WakeFlag w;
  kernel::time::timers().arm(w, deadline_ns);
  arch::x86_64::idle_until(w.fired);
}

[[noreturn]] void run_clock_test() {
  constexpr u64 kSeconds = 6;
  u64 start = kernel::time::now_ns();
  u64 timer_interrupts = kernel::time::timers().interrupts();
  klog::info("clock check: start uptime_ns={}", start);
  for (u64 s = 1; s <= kSeconds; ++s) {
    sleep_until(start + s * kernel::time::kNsPerSecond);
    klog::info("clock check: {} s", s);
  }
  u64 end = kernel::time::now_ns();
  u64 fired = kernel::time::timers().interrupts() - timer_interrupts;
  klog::info("clock check: end uptime_ns={} elapsed_ns={} timer_interrupts={}", end, end - start, fired);
  bool ok = fired >= kSeconds && end - start >= kSeconds * kernel::time::kNsPerSecond;
  klog::info("test mode: clock test {}, exiting QEMU", ok ? "passed" : "FAILED");
  arch::x86_64::qemu_exit(ok ? 0x10 : 0x11);
}

// test=kswapd: kmalloc 2 KiB objects until usage passes the high watermark by 5 points, free them
// all (their slabs stay cached, empty), then wait up to 5 s for kswapd to bring usage to the low
// watermark; meminfo, slabinfo-like totals and kswapd's statistics before and after.
[[noreturn]] void run_kswapd_test() {
  mm::Reclaim& r = kernel::kswapd::engine();
  const mm::Watermarks& w = r.watermarks();
  u64 before_freed = r.stats().freed;
  u64 start = kernel::time::now_ns();
  // kswapd (woken when the allocations cross high) reclaims the slabs as the frees empty them.
  kernel::kswapd::FillResult f = kernel::kswapd::fill(w.high_pct + 5);
  if (f.no_table) {
    klog::error("test mode: kswapd test: no memory for its table");
    arch::x86_64::qemu_exit(0x11);
  }
  klog::info("kswapd test: {} objects of 2 KiB allocated: usage {}%", f.objects, f.usage_peak);
  klog::info("kswapd test: freed again (the slabs stay cached until reclaimed): usage {}%, {} MiB in slabs",
             f.usage_after, kernel::memory::heap().stats().slab_frames * 4096 >> 20);
  while (r.mem_usage_pct() > w.low_pct && kernel::time::now_ns() - start < 5 * kernel::time::kNsPerSecond) {
    kernel::sched::scheduler().sleep_for(10 * kernel::time::kNsPerMs);
  }
  u64 took = kernel::time::now_ns() - start;
  u32 after = r.mem_usage_pct();
  mm::ReclaimStats s = r.stats();
  klog::info(
      "kswapd test: usage {}% -> {}% in {} ms (kswapd freed {} frames in {} wake-ups; high {}% low {}%)",
      f.usage_peak, after, took / kernel::time::kNsPerMs, s.freed - before_freed, s.wakeups, w.high_pct,
      w.low_pct);
  kernel::memory::log_meminfo();
  bool ok = f.usage_peak >= w.high_pct && after <= w.low_pct && s.freed > before_freed;
  klog::info("test mode: kswapd test {}, exiting QEMU", ok ? "passed" : "FAILED");
  arch::x86_64::qemu_exit(ok ? 0x10 : 0x11);
}

struct Churn {
  ktl::Atomic<bool> stop{false};
  ktl::Atomic<bool> corrupted{false};
  ktl::Atomic<u64> rounds{0};
  ktl::Atomic<u64> allocations{0};
};

void churn_main(void* arg) {
  auto* c = static_cast<Churn*>(arg);
  u64 seed = 0x1234'5678'9abc'def1ull;
  while (!c->stop.load()) {
    kernel::sched::scheduler().sleep_for(2 * kernel::time::kNsPerMs);
    c->rounds.fetch_add(1);
    ktl::Array<void*, 4> held{};
    ktl::Array<usize, 4> sizes{};
    for (usize i = 0; i < held.size(); ++i) {
      seed = seed * 6364136223846793005ull + 1442695040888963407ull;
      sizes[i] = 8 + (seed >> 40) % 1000;
      held[i] = mm::kmalloc(sizes[i]);
      if (held[i] == nullptr) continue;
      KTL_UNSAFE_BUFFER_BEGIN  // kmalloc returned sizes[i] bytes
      auto bytes = ktl::Span<ktl::u8>::from_raw(static_cast<ktl::u8*>(held[i]), sizes[i]);
      KTL_UNSAFE_BUFFER_END
      for (ktl::u8& b : bytes) b = static_cast<ktl::u8>(i + 0x5a);
      c->allocations.fetch_add(1);
    }
    for (usize i = 0; i < held.size(); ++i) {
      if (held[i] == nullptr) continue;
      KTL_UNSAFE_BUFFER_BEGIN  // the same allocation
      auto bytes = ktl::Span<ktl::u8>::from_raw(static_cast<ktl::u8*>(held[i]), sizes[i]);
      KTL_UNSAFE_BUFFER_END
      for (ktl::u8 b : bytes) {
        if (b != static_cast<ktl::u8>(i + 0x5a)) c->corrupted.store(true);
      }
      mm::kfree(held[i]);
    }
  }
}

[[noreturn]] void run_test_mode(const kernel::Options& o, const boot::BootInfo& info) {
  switch (o.test) {
    case kernel::TestMode::Boot:
      klog::info("test mode: boot test passed, exiting QEMU");
      arch::x86_64::qemu_exit(0x10);  // QEMU exits with status 33
    case kernel::TestMode::Clock: run_clock_test();
    case kernel::TestMode::Kswapd: run_kswapd_test();
    case kernel::TestMode::Bench: {
      klog::info("test mode: running the kernel benchmarks");
      klog::RawSink out;
      kernel::bench::Results r = kernel::bench::run_all(out);
      bool ok = r.call_ps != 0 && r.interrupt_ps != 0 && r.switch_ps != 0 && r.wake_samples != 0;
      // With a disk (//testing/kernel:bench attaches the data disk): the page-cache and reclaim
      // benchmarks must run and kswapd must reach low; the 10x target is printed as met or
      // MISSED (the manual //testing/kernel:bench fails on MISSED; `test //...` runs the same
      // boot as bench_test without judging the ratio: performance targets are not tests).
      kernel::bench::StorageResults s = kernel::bench::run_storage(out);
      if (kernel::storage::root_state() == kernel::storage::RootState::Mounted) {
        if (!s.reached_low) klog::error("bench: kswapd did not reach the low watermark");
        ok = ok && s.ran && s.reached_low;
      }
      klog::info("test mode: benchmarks {}, exiting QEMU", ok ? "done" : "FAILED");
      arch::x86_64::qemu_exit(ok ? 0x10 : 0x11);
    }
    case kernel::TestMode::Fault:
      if (o.fault == kernel::FaultKind::None) {
        klog::error("test mode: unknown fault in \"test={}\"", o.test_filter);
        arch::x86_64::qemu_exit(0x11);
      }
      klog::info("test mode: triggering a deliberate fault: {}", kernel::to_string(o.fault));
      kernel::selftest::run_fault(o.fault, info.direct_map_base);
      klog::error("test mode: the deliberate fault \"{}\" did not trap", kernel::to_string(o.fault));
      arch::x86_64::qemu_exit(0x11);
    case kernel::TestMode::Suites: {
      klog::info("test mode: running ktest suites matching \"{}\"", o.test_filter);
      klog::RawSink out;
      // A high-priority task wakes every 2 ms while the suites run and allocates, checks and frees a
      // few small objects: the suites (mm's included) are preempted in the middle of their work.
      Churn churn;
      auto background =
          kernel::tasks::spawn("ktest-churn", kernel::sched::Priority::High, &churn_main, &churn);
      ktest::Summary s = ktest::run_all(out, o.test_filter);
      churn.stop.store(true);
      if (background.is_ok()) (void)background.value().join();
      klog::info("test mode: a background task preempted the suites {} times ({} allocations{})",
                 churn.rounds.load(), churn.allocations.load(), churn.corrupted.load() ? ", CORRUPTED" : "");
      if (churn.corrupted.load()) s.failed += 1;
      if (s.passed + s.failed == 0) {
        klog::error("test mode: no test matches \"{}\"", o.test_filter);
        arch::x86_64::qemu_exit(0x11);
      }
      // A test that used nearly all of the boot stack would overflow it with a little more.
      u64 used = boot_stack_high_water();
      u64 size = g_boot_stack.top - g_boot_stack.bottom;
      bool stack_ok = used + size / 8 <= size;
      klog::info("test mode: boot stack high-water mark {} KiB of {} KiB", (used + 1023) >> 10, size >> 10);
      if (!stack_ok) klog::error("test mode: the tests used more than 7/8 of the boot stack");
      bool passed = s.failed == 0 && stack_ok;
      klog::info("test mode: {}, exiting QEMU", passed ? "all tests passed" : "TESTS FAILED");
      arch::x86_64::qemu_exit(passed ? 0x10 : 0x11);
    }
    case kernel::TestMode::None: break;
  }
  arch::x86_64::qemu_exit(0x11);
}

}  // namespace

extern "C" [[noreturn]] void kernel_entry(const boot::BootInfo* info) {
  run_init_array();
  arch::x86_64::Serial16550& com1 = kernel::serial_console::com1();
  (void)com1.init();
  (void)klog::add_sink(com1);
  klog::info("Ferrite kernel {} (x86_64) starting", kVersion);
  install_exception_handling();
  load_symbols();

  if (auto header = kernel::check_header(info); header.is_err()) fatal_boot_info_error(header.error());
  kpanic::set_direct_map(direct_map_window(*info));
  kpanic::add_stack(kernel::StackBounds{info->stack_virt_top - info->stack_size, info->stack_virt_top},
                    "boot stack");
  paint_boot_stack(info->stack_virt_top - info->stack_size, info->stack_virt_top);

  auto phys = [&](u64 p) { return info->direct_map_base + p; };
  ktl::StringView cmdline;
  if (info->command_line != 0) {
    KTL_UNSAFE_BUFFER_BEGIN  // the boot information's command line: command_line_size bytes, in the direct
                             // map
    cmdline = ktl::StringView::from_raw(reinterpret_cast<const char*>(phys(info->command_line)),
                                        static_cast<usize>(info->command_line_size));
    KTL_UNSAFE_BUFFER_END
  }
  kernel::ParsedCommandLine parsed = kernel::parse_command_line(cmdline);
  const kernel::Options& options = parsed.options;
  klog::set_level(options.log_level);
  g_test_mode = options.test != kernel::TestMode::None;
  if (g_test_mode) kpanic::set_policy(kpanic::OnPanic::ExitQemu);
  klog::info("command line: \"{}\"", cmdline);
  for (const kernel::Warning& w : parsed.warning_list()) klog::warn("command line: {}", w);
  if (parsed.dropped_warnings != 0) klog::warn("command line: {} more warnings", parsed.dropped_warnings);

  arch::x86_64::CpuFeatures cpu = enable_cpu_protections();
  klog::info("exceptions: GDT, TSS (IST stacks for #DF, NMI, #MC) and IDT (256 vectors) loaded");

  const boot::BootInfo* checked = info;
  if (options.corrupt == kernel::Corruption::Version) {
    g_corrupt_info = *info;
    g_corrupt_info.version = boot::kVersion + 1;
    klog::warn("test mode: validating a copy of the boot information with version {}",
               g_corrupt_info.version);
    checked = &g_corrupt_info;
  }
  if (auto header = kernel::check_header(checked); header.is_err()) fatal_boot_info_error(header.error());

  klog::info("kernel image {} ({} KiB) at {}", mm::PhysAddr::from(info->kernel_phys_base),
             info->kernel_phys_size >> 10, mm::VirtAddr::from(info->kernel_virt_base));
  if (info->memory_map == 0 || info->memory_map_count == 0 ||
      info->memory_map_count > kernel::kMaxMapEntries) {
    kernel::MapError e{info->memory_map_count > kernel::kMaxMapEntries ? kernel::MapProblem::TooLarge
                                                                       : kernel::MapProblem::Missing,
                       0,
                       {},
                       {},
                       info->memory_map_count};
    fatal_boot_info_error(e);
  }
  KTL_UNSAFE_BUFFER_BEGIN  // the boot information's memory map: memory_map_count entries, in the direct map
                           // (header checked)
  auto regions = ktl::Span<const boot::MemoryMapEntry>::from_raw(
      reinterpret_cast<const boot::MemoryMapEntry*>(phys(info->memory_map)),
      static_cast<usize>(info->memory_map_count));
  KTL_UNSAFE_BUFFER_END
  if (options.corrupt != kernel::Corruption::None && options.corrupt != kernel::Corruption::Version) {
    regions = corrupt_copy(options.corrupt, regions);
  }
  auto summary = kernel::check_memory_map(regions);
  if (summary.is_err()) fatal_boot_info_error(summary.error());
  print_memory_map(regions, summary.value());

  start_memory(*info, regions, summary.value(), cpu);
  keep_command_line(cmdline, parsed);
  start_framebuffer(*info, options);
  start_interrupts_and_time(*info);
  kernel::tasks::start();
  kernel::kswapd::start(options.kswapd_min, options.kswapd_low, options.kswapd_high);
  kernel::pci_bus::start(arch::x86_64::acpi_tables());
  if (auto blk = kernel::virtio::probe_all(); blk.is_err())
    klog::warn("virtio-blk: no device usable: {}", blk.error());
  kernel::storage::start();
  kernel::memory::log_meminfo();
  klog::info("ready");
  bool dump = options.dump_page_tables == kernel::Toggle::On;
  if (g_test_mode) {
    if (dump) (void)kernel::memory::log_page_tables();
    run_test_mode(options, *info);
  }
  // The shell, in a task of its own (class High: typing stays responsive under load), with the
  // largest stack: `ktest all` runs on it (the suites use about 41 KiB).
  auto shell_main = [](void* arg) {
    kernel::shell::run(arg != nullptr ? kernel::shell::DumpPageTables::Yes
                                      : kernel::shell::DumpPageTables::No);
  };
  static ktl::u8 dump_flag = 1;
  auto shell = kernel::tasks::spawn("shell", kernel::sched::Priority::High, shell_main,
                                    dump ? &dump_flag : nullptr, kernel::tasks::kMaxStackSize);
  if (shell.is_err()) {
    klog::error("shell: {}: halting", shell.error());
    arch::x86_64::halt_forever();
  }
  (void)shell.value().join();
  klog::error("shell: exited");
  arch::x86_64::halt_forever();
}

// The kernel never exits, so static destructors never run: registering one is a no-op.
extern "C" {
void* __dso_handle = nullptr;
int __cxa_atexit(void (*)(void*), void*, void*) { return 0; }
}

// ktl.log's hook: messages from mm and ktl go to the kernel log.
extern "C" void ferrite_log_write(int level, const char* text, ktl::usize length) {
  auto lvl = static_cast<klog::Level>(level < 0 ? 0 : level > 3 ? 3 : level);
  KTL_UNSAFE_BUFFER_BEGIN  // ktl.log passes `length` characters at `text`
  klog::log(lvl, "{}", ktl::StringView::from_raw(text, length));
  KTL_UNSAFE_BUFFER_END
}
