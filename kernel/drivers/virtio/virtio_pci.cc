module;

#include <ktl/macros.h>

module kernel.virtio.pci;

import ktl;
import kernel.pci;

namespace kernel::virtio {

using ktl::Err;

namespace {

constexpr u16 kStatus = 0x06;
constexpr u16 kStatusCapabilities = 1u << 4;
constexpr u16 kCapPointer = 0x34;
constexpr u8 kCapLenVirtio = 16;
constexpr u8 kCapLenNotify = 20;
constexpr u8 kCapLenMsix = 12;

ktl::Result<Region, VirtioPciError> region_in_bar(const pci::Function& f, u32 bar, u64 offset, u64 length) {
  if (bar > 5) return Err(VirtioPciError::BadBarIndex);
  const pci::Bar& b = f.bars[bar];
  if (bar >= f.bar_count || (b.kind != pci::BarKind::Memory32 && b.kind != pci::BarKind::Memory64) ||
      b.size == 0)
    return Err(VirtioPciError::BarNotMemory);
  if (offset > b.size || length > b.size - offset) return Err(VirtioPciError::OutsideBar);
  return Region{static_cast<u8>(bar), static_cast<u32>(offset), static_cast<u32>(length)};
}

bool overlap(const Region& a, const Region& b) {
  if (a.bar != b.bar) return false;
  const u64 a_end = u64{a.offset} + a.length;
  const u64 b_end = u64{b.offset} + b.length;
  return a.offset < b_end && b.offset < a_end;
}

}  // namespace

ktl::Result<Layout, VirtioPciError> parse_layout(const pci::ConfigSpace& config, const pci::Function& f) {
  const pci::Address a = f.address;
  if ((pci::read16(config, a, kStatus) & kStatusCapabilities) == 0)
    return Err(VirtioPciError::NoCapabilities);
  const u16 space = config.size();
  ktl::Array<bool, 4096 / 4> visited{};
  Layout out;
  bool have_common = false, have_notify = false, have_isr = false, have_device = false;
  u16 at = pci::read8(config, a, kCapPointer);
  while (at != 0) {
    if (at < 0x40 || (at & 3u) != 0 || at + 4u > space) return Err(VirtioPciError::BadCapabilityPointer);
    if (visited[at / 4u]) return Err(VirtioPciError::CapabilityLoop);
    visited[at / 4u] = true;
    const u8 id = pci::read8(config, a, at);
    const u8 next = pci::read8(config, a, static_cast<u16>(at + 1));
    if (id == kCapVendor) {
      const u8 cap_len = pci::read8(config, a, static_cast<u16>(at + 2));
      const u8 type = pci::read8(config, a, static_cast<u16>(at + 3));
      const bool known = type >= 1 && type <= 4;
      if (known) {
        const u8 need = type == static_cast<u8>(CapType::Notify) ? kCapLenNotify : kCapLenVirtio;
        if (cap_len < need || at + u32{need} > space) return Err(VirtioPciError::ShortCapability);
        const u8 bar = pci::read8(config, a, static_cast<u16>(at + 4));
        const u32 offset = pci::read32(config, a, static_cast<u16>(at + 8));
        const u32 length = pci::read32(config, a, static_cast<u16>(at + 12));
        const auto t = static_cast<CapType>(type);
        bool& have = t == CapType::Common   ? have_common
                     : t == CapType::Notify ? have_notify
                     : t == CapType::Isr    ? have_isr
                                            : have_device;
        if (!have) {
          Region r = TRY(region_in_bar(f, bar, offset, length));
          switch (t) {
            case CapType::Common:
              if (length < kCommonCfgBytes) return Err(VirtioPciError::TooShort);
              out.common = r;
              break;
            case CapType::Notify: {
              if (length < 2) return Err(VirtioPciError::TooShort);
              out.notify = r;
              out.notify_off_multiplier = pci::read32(config, a, static_cast<u16>(at + 16));
              if ((out.notify_off_multiplier & 1u) != 0) return Err(VirtioPciError::OddNotifyMultiplier);
              break;
            }
            case CapType::Isr:
              if (length < 1) return Err(VirtioPciError::TooShort);
              out.isr = r;
              break;
            case CapType::Device: out.device = r; break;
            case CapType::PciCfg: break;
          }
          have = true;
        }
      }
    } else if (id == kCapMsix && !out.msix.has_value()) {
      if (at + u32{kCapLenMsix} > space) return Err(VirtioPciError::ShortCapability);
      const u16 control = pci::read16(config, a, static_cast<u16>(at + 2));
      const u32 table = pci::read32(config, a, static_cast<u16>(at + 4));
      const u32 pba = pci::read32(config, a, static_cast<u16>(at + 8));
      Msix m;
      m.cap_offset = static_cast<u8>(at);
      m.table_size = static_cast<u16>((control & 0x7ffu) + 1);
      auto t = region_in_bar(f, table & 7u, table & ~7u, u64{16} * m.table_size);
      auto p = region_in_bar(f, pba & 7u, pba & ~7u, (u64{m.table_size} + 63) / 64 * 8);
      if (t.is_err() || p.is_err()) return Err(VirtioPciError::BadMsix);
      m.table = t.value();
      m.pba = p.value();
      out.msix = m;
    }
    at = next;
  }
  if (!have_common) return Err(VirtioPciError::MissingCommon);
  if (!have_notify) return Err(VirtioPciError::MissingNotify);
  if (!have_isr) return Err(VirtioPciError::MissingIsr);
  if (!have_device) return Err(VirtioPciError::MissingDevice);
  const ktl::Array<const Region*, 4> all{&out.common, &out.notify, &out.isr, &out.device};
  for (usize i = 0; i < 4; ++i)
    for (usize j = i + 1; j < 4; ++j)
      if (overlap(*all[i], *all[j])) return Err(VirtioPciError::Overlap);
  if (out.msix.has_value())
    for (const Region* r : all)
      if (overlap(*r, out.msix->table) || overlap(*r, out.msix->pba)) return Err(VirtioPciError::Overlap);
  return out;
}

}  // namespace kernel::virtio
