// Fuzzer of kernel.virtio.pci: the input is one function's 256-byte configuration space and six
// BAR-size bytes (size 2^(b % 40)). Whatever parse_layout accepts must hold what it promises:
// every structure inside a memory BAR of the sized function, no two overlapping, an even notify
// multiplier, an MSI-X table and PBA inside their BARs; a refusal is fine. ASan checks the rest.
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "kernel/pci/pci_model.h"
#include "testing/fuzz/corpus_replay.h"

import ktl;
import kernel.pci;
import kernel.virtio.pci;

namespace {

void check_region(const kernel::pci::Function& f, const kernel::virtio::Region& r) {
  if (r.bar > 5 || r.bar >= f.bar_count) std::abort();
  const kernel::pci::Bar& b = f.bars[r.bar];
  if (b.kind != kernel::pci::BarKind::Memory32 && b.kind != kernel::pci::BarKind::Memory64) std::abort();
  if (std::uint64_t{r.offset} + r.length > b.size) std::abort();
}

bool overlap(const kernel::virtio::Region& a, const kernel::virtio::Region& b) {
  return a.bar == b.bar && a.offset < std::uint64_t{b.offset} + b.length &&
         b.offset < std::uint64_t{a.offset} + a.length;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 256 + 6) return 0;
  pci_model::FakeConfig c;
  pci_model::FakeFunction& f = c.functions[{0, 3, 0}];
  std::memcpy(f.bytes.data(), data, 256);
  for (int b = 0; b < 6; ++b) {
    f.bar_sizes[static_cast<size_t>(b)] = std::uint64_t{1} << (data[256 + b] % 40);
    if (pci_model::FakeConfig::get32(f, 0x10 + 4 * b) == 0xffff'ffffu)
      pci_model::FakeConfig::put32(f, 0x10 + 4 * b, 0);
  }
  pci_model::FakeConfig::put16(f, 0, 0x1af4);
  pci_model::FakeConfig::put16(f, 2, 0x1042);
  f.bytes[0x0e] = 0;  // a device, six BARs
  auto fn = kernel::pci::probe(c, kernel::pci::Address{0, 0, 3, 0}, kernel::pci::SizeBars::Yes);
  if (!fn.has_value()) std::abort();
  auto r = kernel::virtio::parse_layout(c, *fn);
  if (r.is_err()) {
    if (kernel::virtio::to_string(r.error())[0] == '\0') std::abort();
    return 0;
  }
  const kernel::virtio::Layout& l = r.value();
  const kernel::virtio::Region* all[] = {&l.common, &l.notify, &l.isr, &l.device};
  for (const auto* x : all) check_region(*fn, *x);
  for (int i = 0; i < 4; ++i)
    for (int j = i + 1; j < 4; ++j)
      if (overlap(*all[i], *all[j])) std::abort();
  if (l.common.length < kernel::virtio::kCommonCfgBytes || l.isr.length < 1 || l.notify.length < 2)
    std::abort();
  if ((l.notify_off_multiplier & 1u) != 0) std::abort();
  if (l.msix.has_value()) {
    check_region(*fn, l.msix->table);
    check_region(*fn, l.msix->pba);
    if (l.msix->table.length != 16u * l.msix->table_size || l.msix->table_size == 0 ||
        l.msix->table_size > 2048)
      std::abort();
  }
  return 0;
}

#if !defined(FERRITE_FUZZER)
int main(int argc, char** argv) {
  return ferrite_fuzz::replay_corpus(argc, argv, "kernel/drivers/virtio/virtio_pci_corpus",
                                     LLVMFuzzerTestOneInput, "virtio_pci_fuzz");
}
#endif
