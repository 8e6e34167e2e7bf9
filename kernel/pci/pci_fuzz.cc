// Fuzzer of kernel.pci: the input is the configuration space of up to 8 functions of device 0..7
// on bus 0 (256 bytes each, BAR sizes from the last bytes); enumeration must terminate, stay in
// bounds (ASan), restore what it sized, and agree with itself without sizing.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "kernel/pci/pci_model.h"
#include "testing/fuzz/corpus_replay.h"

import ktl;
import kernel.pci;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  pci_model::FakeConfig c;
  constexpr std::size_t kChunk = 256 + 8;
  for (std::size_t i = 0; i < 8 && (i + 1) * kChunk <= size; ++i) {
    pci_model::FakeFunction& f = c.functions[{0, static_cast<int>(i), 0}];
    std::memcpy(f.bytes.data(), data + i * kChunk, 256);
    for (int b = 0; b < 6; ++b) {
      f.bar_sizes[static_cast<size_t>(b)] = std::uint64_t{1} << (data[i * kChunk + 256 + b] % 40);
      // All ones is the probe itself, never a BAR's value (hardware reads back its size mask).
      if (pci_model::FakeConfig::get32(f, 0x10 + 4 * b) == 0xffff'ffffu)
        pci_model::FakeConfig::put32(f, 0x10 + 4 * b, 0);
    }
  }
  auto before = c.functions;
  std::vector<kernel::pci::Function> sized(16), plain(16);
  kernel::pci::Scan a = kernel::pci::enumerate(c, 0, 0, 0, ktl::Span<kernel::pci::Function>(sized));
  for (auto& [k, f] : c.functions) {
    if (f.bytes != before[k].bytes) std::abort();  // sizing must restore every register
  }
  kernel::pci::Scan b =
      kernel::pci::enumerate(c, 0, 0, 0, ktl::Span<kernel::pci::Function>(plain), kernel::pci::SizeBars::No);
  if (a.found != b.found || a.stored != b.stored) std::abort();
  for (std::size_t i = 0; i < a.stored; ++i) {
    if (sized[i].vendor != plain[i].vendor || sized[i].capability_count != plain[i].capability_count)
      std::abort();
    if (sized[i].capability_count > kernel::pci::kMaxCapabilities) std::abort();
  }
  return 0;
}

#if !defined(FERRITE_FUZZER)
int main(int argc, char** argv) {
  return ferrite_fuzz::replay_corpus(argc, argv, "kernel/pci/pci_corpus", LLVMFuzzerTestOneInput, "pci_fuzz");
}
#endif
