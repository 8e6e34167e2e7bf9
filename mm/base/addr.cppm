// mm.addr: strongly typed physical and virtual addresses, page sizes, pages, frames and ranges.
//
// Values are valid by construction: there are no mutators, and every constructor says what it
// checks. `try_from` returns an error, `from` panics on a bad value (for values known to be good),
// and `unchecked` skips the check and says so in its name. Mixing physical and virtual addresses,
// adding two addresses, or building a page from an unaligned address do not compile or return an
// error; the difference of two addresses is a byte count, never an address.
module;

#include <ktl/macros.h>

export module mm.addr;

import ktl;

export namespace mm {

using ktl::u32;
using ktl::u64;
using ktl::usize;

enum class AddrError : u32 {
  NonCanonical,  // a virtual address outside both canonical halves
  OutOfRange,    // a physical address wider than the architecture allows
  Unaligned,     // not aligned to the page size asked for
  Overflow,      // arithmetic left the address space
  Empty,         // an empty or inverted range
};

[[nodiscard]] constexpr const char* to_string(AddrError e) {
  switch (e) {
    case AddrError::NonCanonical: return "non-canonical virtual address";
    case AddrError::OutOfRange: return "physical address out of range";
    case AddrError::Unaligned: return "address not aligned to the page size";
    case AddrError::Overflow: return "address arithmetic overflow";
    case AddrError::Empty: return "empty or inverted range";
  }
  return "unknown address error";
}

// --- page sizes ------------------------------------------------------------------------------------
struct Size4K {
  static constexpr u64 bytes = u64{1} << 12;
  static constexpr u32 shift = 12;
  static constexpr const char* name = "4KiB";
};
struct Size2M {
  static constexpr u64 bytes = u64{1} << 21;
  static constexpr u32 shift = 21;
  static constexpr const char* name = "2MiB";
};
struct Size1G {
  static constexpr u64 bytes = u64{1} << 30;
  static constexpr u32 shift = 30;
  static constexpr const char* name = "1GiB";
};
// The x86 32-bit format's large page.
struct Size4M {
  static constexpr u64 bytes = u64{1} << 22;
  static constexpr u32 shift = 22;
  static constexpr const char* name = "4MiB";
};

template <class S>
concept PageSize = requires {
  S::bytes;
  S::shift;
} && (S::bytes == (u64{1} << S::shift));

inline constexpr u64 kPageSize = Size4K::bytes;

// --- PhysAddr --------------------------------------------------------------------------------------
class PhysAddr {
 public:
  // x86_64 and aarch64 both cap physical addresses at 52 bits.
  static constexpr u32 kBits = 52;
  static constexpr u64 kLimit = u64{1} << kBits;

  [[nodiscard]] static constexpr ktl::Result<PhysAddr, AddrError> try_from(u64 v) {
    if (v >= kLimit) return ktl::Err(AddrError::OutOfRange);
    return PhysAddr(v);
  }
  // For values known to be valid; panics otherwise.
  [[nodiscard]] static constexpr PhysAddr from(u64 v,
                                               ktl::SourceLocation w = ktl::SourceLocation::current()) {
    ktl::check(v < kLimit, "PhysAddr::from: physical address out of range", w);
    return PhysAddr(v);
  }
  // Skips the range check. Only for values that came out of hardware structures whose format
  // already guarantees the width (a page-table entry's address field).
  [[nodiscard]] static constexpr PhysAddr unchecked(u64 v) { return PhysAddr(v); }
  [[nodiscard]] static constexpr PhysAddr zero() { return PhysAddr(0); }

  [[nodiscard]] constexpr u64 value() const { return value_; }

  [[nodiscard]] constexpr ktl::Result<PhysAddr, AddrError> checked_add(u64 bytes) const {
    auto r = ktl::checked_add(value_, bytes);
    if (r.overflow) return ktl::Err(AddrError::Overflow);
    return try_from(r.value);
  }
  [[nodiscard]] constexpr ktl::Result<PhysAddr, AddrError> checked_sub(u64 bytes) const {
    if (bytes > value_) return ktl::Err(AddrError::Overflow);
    return PhysAddr(value_ - bytes);
  }
  // Panicking arithmetic, for offsets known to stay in range.
  constexpr PhysAddr operator+(u64 bytes) const {
    auto r = ktl::checked_add(value_, bytes);
    ktl::check(!r.overflow && r.value < kLimit, "PhysAddr + offset overflowed");
    return PhysAddr(r.value);
  }
  constexpr PhysAddr operator-(u64 bytes) const {
    ktl::check(bytes <= value_, "PhysAddr - offset underflowed");
    return PhysAddr(value_ - bytes);
  }
  // The distance from `base` up to this address, in bytes; panics if `base` is above.
  [[nodiscard]] constexpr u64 operator-(PhysAddr base) const {
    ktl::check(base.value_ <= value_, "PhysAddr - PhysAddr: base is above the address");
    return value_ - base.value_;
  }
  PhysAddr operator+(PhysAddr) const = delete;  // adding two addresses is meaningless

  [[nodiscard]] constexpr PhysAddr align_down(u64 align) const {
    return PhysAddr(ktl::align_down(value_, align));
  }
  [[nodiscard]] constexpr ktl::Result<PhysAddr, AddrError> align_up(u64 align) const {
    auto r = ktl::checked_align_up(value_, align);
    if (r.overflow) return ktl::Err(AddrError::Overflow);
    return try_from(r.value);
  }
  [[nodiscard]] constexpr bool is_aligned(u64 align) const { return ktl::is_aligned(value_, align); }
  [[nodiscard]] constexpr u64 page_offset() const { return value_ & (kPageSize - 1); }

  friend constexpr bool operator==(PhysAddr, PhysAddr) = default;
  friend constexpr bool operator<(PhysAddr a, PhysAddr b) { return a.value_ < b.value_; }
  friend constexpr bool operator<=(PhysAddr a, PhysAddr b) { return a.value_ <= b.value_; }
  friend constexpr bool operator>(PhysAddr a, PhysAddr b) { return a.value_ > b.value_; }
  friend constexpr bool operator>=(PhysAddr a, PhysAddr b) { return a.value_ >= b.value_; }

 private:
  constexpr explicit PhysAddr(u64 v) : value_(v) {}
  u64 value_;
};

// --- VirtAddr --------------------------------------------------------------------------------------
// Canonical form: bits [63:kBits-1] all equal (x86_64 4-level paging; on aarch64 the same rule
// selects TTBR0 (low half) or TTBR1 (high half) with 48-bit regions). Formats with a smaller
// address space (x86 32-bit) reject addresses they cannot translate themselves.
class VirtAddr {
 public:
  static constexpr u32 kBits = 48;

  [[nodiscard]] static constexpr bool is_canonical(u64 v) {
    u64 top = v >> (kBits - 1);
    return top == 0 || top == (~u64{0} >> (kBits - 1));
  }
  [[nodiscard]] static constexpr ktl::Result<VirtAddr, AddrError> try_from(u64 v) {
    if (!is_canonical(v)) return ktl::Err(AddrError::NonCanonical);
    return VirtAddr(v);
  }
  [[nodiscard]] static constexpr VirtAddr from(u64 v,
                                               ktl::SourceLocation w = ktl::SourceLocation::current()) {
    ktl::check(is_canonical(v), "VirtAddr::from: non-canonical virtual address", w);
    return VirtAddr(v);
  }
  // Sign-extends bit kBits-1, like the hardware does (the rust-osdev `new_truncate`).
  [[nodiscard]] static constexpr VirtAddr truncate(u64 v) {
    u32 shift = 64 - kBits;
    return VirtAddr(static_cast<u64>(static_cast<ktl::i64>(v << shift) >> shift));
  }
  [[nodiscard]] static constexpr VirtAddr zero() { return VirtAddr(0); }
  template <class T>
  [[nodiscard]] static VirtAddr of(const T* p) {
    return from(ktl::address_of(p));
  }

  [[nodiscard]] constexpr u64 value() const { return value_; }
  // The address as a pointer. Dereferencing it is the caller's business (an unsafe region).
  template <class T>
  [[nodiscard]] inline T* as_ptr() const {
    KTL_UNSAFE_BUFFER_BEGIN  // forming the pointer creates no access; using it is the caller's region
    return reinterpret_cast<T*>(static_cast<ktl::uptr>(value_));
    KTL_UNSAFE_BUFFER_END
  }

  [[nodiscard]] constexpr bool is_higher_half() const { return (value_ >> 63) != 0; }

  [[nodiscard]] constexpr ktl::Result<VirtAddr, AddrError> checked_add(u64 bytes) const {
    auto r = ktl::checked_add(value_, bytes);
    if (r.overflow) return ktl::Err(AddrError::Overflow);
    auto v = try_from(r.value);
    if (v.is_err()) return ktl::Err(AddrError::Overflow);  // walked off the end of a half
    return v;
  }
  [[nodiscard]] constexpr ktl::Result<VirtAddr, AddrError> checked_sub(u64 bytes) const {
    if (bytes > value_) return ktl::Err(AddrError::Overflow);
    auto v = try_from(value_ - bytes);
    if (v.is_err()) return ktl::Err(AddrError::Overflow);
    return v;
  }
  constexpr VirtAddr operator+(u64 bytes) const {
    auto r = checked_add(bytes);
    ktl::check_ok(r, "VirtAddr + offset left the canonical half");
    return r.value();
  }
  constexpr VirtAddr operator-(u64 bytes) const {
    auto r = checked_sub(bytes);
    ktl::check_ok(r, "VirtAddr - offset left the canonical half");
    return r.value();
  }
  // Byte distance from `base`; panics if `base` is above this address.
  [[nodiscard]] constexpr u64 operator-(VirtAddr base) const {
    ktl::check(base.value_ <= value_, "VirtAddr - VirtAddr: base is above the address");
    return value_ - base.value_;
  }
  VirtAddr operator+(VirtAddr) const = delete;

  [[nodiscard]] constexpr VirtAddr align_down(u64 align) const {
    return VirtAddr(ktl::align_down(value_, align));
  }
  [[nodiscard]] constexpr ktl::Result<VirtAddr, AddrError> align_up(u64 align) const {
    auto r = ktl::checked_align_up(value_, align);
    if (r.overflow) return ktl::Err(AddrError::Overflow);
    auto v = try_from(r.value);
    if (v.is_err()) return ktl::Err(AddrError::Overflow);
    return v;
  }
  [[nodiscard]] constexpr bool is_aligned(u64 align) const { return ktl::is_aligned(value_, align); }
  [[nodiscard]] constexpr u64 page_offset() const { return value_ & (kPageSize - 1); }

  // Index of this address in a radix page table whose level covers bits [shift, shift+bits).
  [[nodiscard]] constexpr usize table_index(u32 shift, u32 bits) const {
    return static_cast<usize>((value_ >> shift) & ((u64{1} << bits) - 1));
  }

  friend constexpr bool operator==(VirtAddr, VirtAddr) = default;
  friend constexpr bool operator<(VirtAddr a, VirtAddr b) { return a.value_ < b.value_; }
  friend constexpr bool operator<=(VirtAddr a, VirtAddr b) { return a.value_ <= b.value_; }
  friend constexpr bool operator>(VirtAddr a, VirtAddr b) { return a.value_ > b.value_; }
  friend constexpr bool operator>=(VirtAddr a, VirtAddr b) { return a.value_ >= b.value_; }

 private:
  constexpr explicit VirtAddr(u64 v) : value_(v) {}
  u64 value_;
};

// --- Page<S> and Frame<S> ----------------------------------------------------------------------------
// A virtual page or physical frame of size S: an aligned address with the size in the type.
template <PageSize S>
class Page {
 public:
  using Size = S;
  [[nodiscard]] static constexpr ktl::Result<Page, AddrError> from_start(VirtAddr start) {
    if (!start.is_aligned(S::bytes)) return ktl::Err(AddrError::Unaligned);
    return Page(start);
  }
  [[nodiscard]] static constexpr Page containing(VirtAddr a) { return Page(a.align_down(S::bytes)); }
  [[nodiscard]] constexpr VirtAddr start() const { return start_; }
  [[nodiscard]] static constexpr u64 size() { return S::bytes; }
  [[nodiscard]] constexpr ktl::Result<Page, AddrError> next() const {
    auto n = start_.checked_add(S::bytes);
    if (n.is_err()) return ktl::Err(n.release_error());
    return Page(n.value());
  }
  friend constexpr bool operator==(Page, Page) = default;
  friend constexpr bool operator<(Page a, Page b) { return a.start_ < b.start_; }

 private:
  constexpr explicit Page(VirtAddr start) : start_(start) {}
  VirtAddr start_;
};

template <PageSize S>
class Frame {
 public:
  using Size = S;
  [[nodiscard]] static constexpr ktl::Result<Frame, AddrError> from_start(PhysAddr start) {
    if (!start.is_aligned(S::bytes)) return ktl::Err(AddrError::Unaligned);
    return Frame(start);
  }
  [[nodiscard]] static constexpr Frame containing(PhysAddr a) { return Frame(a.align_down(S::bytes)); }
  // The frame with this index (address = index * size).
  [[nodiscard]] static constexpr ktl::Result<Frame, AddrError> from_number(u64 number) {
    if (number >= (PhysAddr::kLimit >> S::shift)) return ktl::Err(AddrError::OutOfRange);
    return Frame(PhysAddr::unchecked(number << S::shift));
  }
  [[nodiscard]] constexpr PhysAddr start() const { return start_; }
  [[nodiscard]] constexpr u64 number() const { return start_.value() >> S::shift; }
  [[nodiscard]] static constexpr u64 size() { return S::bytes; }
  friend constexpr bool operator==(Frame, Frame) = default;
  friend constexpr bool operator<(Frame a, Frame b) { return a.start_ < b.start_; }

 private:
  constexpr explicit Frame(PhysAddr start) : start_(start) {}
  PhysAddr start_;
};

using Page4K = Page<Size4K>;
using Frame4K = Frame<Size4K>;

// --- ranges ------------------------------------------------------------------------------------------
// Half-open byte ranges [start, end).
template <class Addr>
class AddrRange {
 public:
  [[nodiscard]] static constexpr ktl::Result<AddrRange, AddrError> try_from(Addr start, Addr end) {
    if (end < start) return ktl::Err(AddrError::Empty);
    return AddrRange(start, end);
  }
  [[nodiscard]] static constexpr ktl::Result<AddrRange, AddrError> with_size(Addr start, u64 size) {
    auto end = start.checked_add(size);
    if (end.is_err()) return ktl::Err(end.release_error());
    return AddrRange(start, end.value());
  }
  [[nodiscard]] constexpr Addr start() const { return start_; }
  [[nodiscard]] constexpr Addr end() const { return end_; }
  [[nodiscard]] constexpr u64 size() const { return end_ - start_; }
  [[nodiscard]] constexpr bool empty() const { return start_ == end_; }
  [[nodiscard]] constexpr bool contains(Addr a) const { return start_ <= a && a < end_; }
  [[nodiscard]] constexpr bool contains(AddrRange r) const { return start_ <= r.start_ && r.end_ <= end_; }
  [[nodiscard]] constexpr bool overlaps(AddrRange r) const { return start_ < r.end_ && r.start_ < end_; }
  friend constexpr bool operator==(AddrRange, AddrRange) = default;

 private:
  constexpr AddrRange(Addr start, Addr end) : start_(start), end_(end) {}
  Addr start_;
  Addr end_;
};
using PhysRange = AddrRange<PhysAddr>;
using VirtRange = AddrRange<VirtAddr>;

// A run of `count` consecutive pages (or frames) of size S starting at `first`.
template <class Unit>
class UnitRange {
 public:
  constexpr UnitRange(Unit first, u64 count) : first_(first), count_(count) {}
  [[nodiscard]] constexpr Unit first() const { return first_; }
  [[nodiscard]] constexpr u64 count() const { return count_; }
  [[nodiscard]] constexpr u64 size_bytes() const { return count_ * Unit::size(); }
  [[nodiscard]] constexpr bool empty() const { return count_ == 0; }
  // The i-th unit; panics when i >= count().
  [[nodiscard]] constexpr Unit operator[](u64 i) const {
    ktl::check(i < count_, "page/frame range index out of range");
    return Unit::containing(first_.start() + i * Unit::size());
  }
  friend constexpr bool operator==(UnitRange, UnitRange) = default;

 private:
  Unit first_;
  u64 count_;
};
template <PageSize S>
using PageRange = UnitRange<Page<S>>;
template <PageSize S>
using FrameRange = UnitRange<Frame<S>>;

// --- formatting: P:0x... and V:0x... -------------------------------------------------------------------
void format_value(ktl::FormatSink& sink, PhysAddr a, const ktl::FormatSpec& spec);
void format_value(ktl::FormatSink& sink, VirtAddr a, const ktl::FormatSpec& spec);

}  // namespace mm
