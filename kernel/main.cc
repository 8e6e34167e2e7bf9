// The kernel's entry point after the architecture's start code: validates the boot information,
// brings up the consoles and reports what it was given.
#include <ktl/macros.h>

import ktl;
import boot.info;
import kernel.log;
import mm.addr;
import arch.x86_64.cpu;
import arch.x86_64.serial;

namespace {

constexpr const char* kVersion = "0.1.0";

arch::x86_64::Serial16550 g_com1(arch::x86_64::Serial16550::kCom1);

// Static constructors of every translation unit (and the C++ module initialisers).
extern "C" {
using InitFn = void (*)();
extern InitFn __init_array_start[];
extern InitFn __init_array_end[];
}

void run_init_array() {
  KTL_UNSAFE_BUFFER_BEGIN  // the linker script brackets .init_array with these two symbols
  for (InitFn* fn = __init_array_start; fn != __init_array_end; ++fn) (*fn)();
  KTL_UNSAFE_BUFFER_END
}

bool g_test_mode = false;

// The command line is "key=value key=value ..."; returns the value of `key` ("" if absent).
ktl::StringView option(ktl::StringView cmdline, ktl::StringView key) {
  ktl::usize i = 0;
  while (i < cmdline.size()) {
    while (i < cmdline.size() && cmdline[i] == ' ') ++i;
    ktl::usize end = cmdline.find(' ', i);
    ktl::StringView word = cmdline.substr(i, end - i);
    if (word.size() > key.size() && word.starts_with(key) && word[key.size()] == '=') {
      return word.substr(key.size() + 1);
    }
    i = end;
  }
  return {};
}

}  // namespace

extern "C" [[noreturn]] void kernel_entry(const boot::BootInfo* info) {
  run_init_array();
  g_com1.init();
  (void)klog::add_sink(g_com1);
  klog::info("Ferrite kernel {} (x86_64) starting", kVersion);

  if (info == nullptr || info->magic != boot::kMagic) {
    klog::error("boot info missing or corrupt (bad magic): halting");
    arch::x86_64::halt_forever();
  }
  if (info->version != boot::kVersion || info->size != sizeof(boot::BootInfo)) {
    klog::error("boot info version {} size {} does not match this kernel (version {} size {}): halting",
                info->version, info->size, boot::kVersion, sizeof(boot::BootInfo));
    arch::x86_64::halt_forever();
  }
  auto phys = [&](ktl::u64 p) { return info->direct_map_base + p; };
  ktl::StringView cmdline;
  if (info->command_line != 0) {
    cmdline = ktl::StringView(reinterpret_cast<const char*>(phys(info->command_line)),
                              static_cast<ktl::usize>(info->command_line_size));
  }
  klog::info("command line: \"{}\"", cmdline);
  g_test_mode = !option(cmdline, "test").empty();

  klog::info("kernel image {} ({} KiB) at {}", mm::PhysAddr::from(info->kernel_phys_base),
             info->kernel_phys_size >> 10, mm::VirtAddr::from(info->kernel_virt_base));
  auto regions = ktl::Span<const boot::MemoryRegion>::from_raw(
      reinterpret_cast<const boot::MemoryRegion*>(phys(info->memory_map)),
      static_cast<ktl::usize>(info->memory_map_count));
  ktl::u64 usable = 0;
  for (const boot::MemoryRegion& r : regions) {
    if (r.kind == boot::MemoryKind::Usable) usable += r.size;
  }
  klog::info("memory map: {} regions, {} MiB usable", regions.size(), usable >> 20);
  klog::info("ready");

  if (g_test_mode) {
    klog::info("test mode: boot test passed, exiting QEMU");
    arch::x86_64::qemu_exit(0x10);  // QEMU exits with status 33
  }
  klog::info("nothing more to do yet: halted (in QEMU, Ctrl-A X quits)");
  arch::x86_64::halt_forever();
}

// ktl.log's hook: messages from mm and ktl go to the kernel log.
extern "C" void ferrite_log_write(int level, const char* text, ktl::usize length) {
  auto lvl = static_cast<klog::Level>(level < 0 ? 0 : level > 3 ? 3 : level);
  klog::log(lvl, "{}", ktl::StringView(text, length));
}

// ktl's panic hook: report on every console and stop. In test mode, exit QEMU with a failure code.
extern "C" [[noreturn]] void ferrite_panic(const char* message, const char* file, unsigned line,
                                           const char* function) {
  klog::detail::LineSink report;
  ktl::format_to(report, "\nKERNEL PANIC: {}\n  at {}:{} in {}\n", message, file, line, function);
  klog::write_all(report.view());
  if (g_test_mode) arch::x86_64::qemu_exit(0x11);  // QEMU exits with status 35
  arch::x86_64::halt_forever();
}
