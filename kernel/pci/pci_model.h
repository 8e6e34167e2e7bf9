// A model of PCI configuration space for the host tests and the fuzzer of kernel.pci: functions
// with their 256 bytes and BAR sizes; a BAR probed with all ones reads back its size mask.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <map>
#include <tuple>

import ktl;
import kernel.pci;

namespace pci_model {

struct FakeFunction {
  std::array<std::uint8_t, 256> bytes{};
  std::array<std::uint64_t, 6> bar_sizes{};  // 0: not implemented
  int writes = 0;
};

class FakeConfig final : public kernel::pci::ConfigSpace {
 public:
  using Key = std::tuple<int, int, int>;
  std::map<Key, FakeFunction> functions;
  int reads = 0;

  static Key key(kernel::pci::Address a) { return {a.bus, a.device, a.function}; }

  FakeFunction& add(std::uint8_t bus, std::uint8_t dev, std::uint8_t fn, std::uint16_t vendor,
                    std::uint16_t device, std::uint8_t cls, std::uint8_t sub, std::uint8_t header = 0) {
    FakeFunction& f = functions[{bus, dev, fn}];
    put16(f, 0, vendor);
    put16(f, 2, device);
    f.bytes[0x0b] = cls;
    f.bytes[0x0a] = sub;
    f.bytes[0x0e] = header;
    return f;
  }
  static void put16(FakeFunction& f, int at, std::uint16_t v) {
    std::memcpy(&f.bytes[static_cast<size_t>(at)], &v, 2);
  }
  static void put32(FakeFunction& f, int at, std::uint32_t v) {
    std::memcpy(&f.bytes[static_cast<size_t>(at)], &v, 4);
  }
  static std::uint32_t get32(const FakeFunction& f, int at) {
    std::uint32_t v;
    std::memcpy(&v, &f.bytes[static_cast<size_t>(at)], 4);
    return v;
  }

  ktl::u32 read32(kernel::pci::Address a, ktl::u16 offset) const override {
    ++const_cast<FakeConfig*>(this)->reads;
    auto it = functions.find(key(a));
    if (it == functions.end() || offset >= 256) return 0xffff'ffffu;
    return get32(it->second, offset);
  }
  void write32(kernel::pci::Address a, ktl::u16 offset, ktl::u32 value) override {
    auto it = functions.find(key(a));
    if (it == functions.end() || offset >= 256) return;
    FakeFunction& f = it->second;
    ++f.writes;
    if (offset >= 0x10 && offset < 0x28 && value == 0xffff'ffffu) {
      int i = (offset - 0x10) / 4;
      std::uint32_t old = get32(f, offset);
      bool upper = i > 0 && ((get32(f, offset - 4) >> 1) & 3) == 2 && (get32(f, offset - 4) & 1) == 0;
      std::uint64_t size =
          upper ? f.bar_sizes[static_cast<size_t>(i - 1)] : f.bar_sizes[static_cast<size_t>(i)];
      std::uint64_t mask = size == 0 ? 0 : ~(size - 1);
      std::uint32_t flags = (old & 1) != 0 ? (old & 3) : (old & 0xf);
      put32(f, offset,
            upper ? static_cast<std::uint32_t>(mask >> 32)
                  : (static_cast<std::uint32_t>(mask) & ~0xfu) | flags);
      return;
    }
    if (offset == 0x04) {  // the status half is read-only / write-one-to-clear: only the command changes
      value = (get32(f, 4) & 0xffff'0000u) | (value & 0xffffu);
    }
    put32(f, offset, value);
  }
  ktl::u16 size() const override { return 256; }
};

}  // namespace pci_model
