// kernel.mmio: device registers behind a typed window. An MmioRegion is the virtual range of one
// uncached device mapping (kernel.memory's map_device makes them); every access is volatile,
// naturally aligned and inside the range (a bad offset is a panic naming it, never a stray write).
// Architecture-neutral: the x86_64 APICs and HPET use it, and so will aarch64's GIC and timers.
module;

#include <ktl/macros.h>

export module kernel.mmio;

import ktl;

export namespace kernel {

class MmioRegion {
 public:
  constexpr MmioRegion() = default;
  // `base` must be the virtual address of `size` bytes of device memory mapped uncached (what
  // map_device returns); nothing here can check that.
  [[nodiscard]] static constexpr MmioRegion unchecked(ktl::u64 base, ktl::u64 size) {
    MmioRegion r;
    r.base_ = base;
    r.size_ = size;
    return r;
  }

  [[nodiscard]] inline ktl::u8 read8(ktl::u64 offset) const { return reg<ktl::u8>(offset); }
  inline void write8(ktl::u64 offset, ktl::u8 value) const { reg<ktl::u8>(offset) = value; }
  [[nodiscard]] inline ktl::u16 read16(ktl::u64 offset) const { return reg<ktl::u16>(offset); }
  inline void write16(ktl::u64 offset, ktl::u16 value) const { reg<ktl::u16>(offset) = value; }
  [[nodiscard]] inline ktl::u32 read32(ktl::u64 offset) const { return reg<ktl::u32>(offset); }
  inline void write32(ktl::u64 offset, ktl::u32 value) const { reg<ktl::u32>(offset) = value; }
  [[nodiscard]] inline ktl::u64 read64(ktl::u64 offset) const { return reg<ktl::u64>(offset); }
  inline void write64(ktl::u64 offset, ktl::u64 value) const { reg<ktl::u64>(offset) = value; }

  [[nodiscard]] inline ktl::u64 base() const { return base_; }
  [[nodiscard]] inline ktl::u64 size() const { return size_; }
  [[nodiscard]] inline bool valid() const { return size_ != 0; }
  // The part [offset, offset + size) of this region (panics unless it lies inside).
  [[nodiscard]] inline MmioRegion sub(ktl::u64 offset, ktl::u64 size) const {
    ktl::check(offset <= size_ && size <= size_ - offset, "MmioRegion::sub: outside the region");
    return unchecked(base_ + offset, size);
  }

 private:
  template <class T>
  [[nodiscard]] inline volatile T& reg(ktl::u64 offset) const {
    if (offset % sizeof(T) != 0 || offset > size_ || size_ - offset < sizeof(T)) {
      ktl::InlineString<128> m;
      ktl::format_to(m, "MMIO access at offset {:#x} ({} bytes) outside a {:#x}-byte region or unaligned",
                     offset, sizeof(T), size_);
      ktl::panic(m.c_str());
    }
    KTL_UNSAFE_BUFFER_BEGIN  // [base_, base_ + size_) is a device mapping (unchecked's contract); offset
                             // checked above
    return *reinterpret_cast<volatile T*>(static_cast<ktl::uptr>(base_ + offset));
    KTL_UNSAFE_BUFFER_END
  }

  ktl::u64 base_ = 0;
  ktl::u64 size_ = 0;
};

}  // namespace kernel
