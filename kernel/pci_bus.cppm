// kernel.pci_bus: the machine's PCI functions, found at boot (after interrupts and time) by
// kernel.pci over ECAM (the ACPI MCFG's window, each bus mapped uncached on first use through
// kernel.memory's map_device) or, without an MCFG (`-machine pc`), the 0xcf8/0xcfc ports. Bus 0
// and whatever the firmware's bridges route to are scanned. The shell's `lspci` lists them.
module;

#include <ktl/macros.h>

export module kernel.pci_bus;

import ktl;
import kernel.acpi;
import kernel.pci;

export namespace kernel::pci_bus {

enum class Access : ktl::u8 { Ecam, Ports };
[[nodiscard]] constexpr const char* to_string(Access a) {
  switch (a) {
    case Access::Ecam: return "ECAM";
    case Access::Ports: return "configuration ports";
  }
  return "unknown PCI access";
}

inline constexpr ktl::usize kMaxFunctions = 64;

void start(const acpi::Tables& tables);
[[nodiscard]] ktl::Span<const pci::Function> functions();
[[nodiscard]] Access access();
// The configuration space the scan used (ECAM, or the ports without an MCFG), for drivers: their
// capability walks and MSI-X set-up go through kernel.pci's read8 .. write32 on it. Valid after start().
[[nodiscard]] pci::ConfigSpace& config();
// One line per function ("00:1f.2 8086:2922 storage (SATA) ...").
void write_list(ktl::FormatSink& out);

}  // namespace kernel::pci_bus
