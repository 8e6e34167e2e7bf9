// mm.paging.types: the vocabulary of the page-table engine (mm.paging): typed page flags, errors,
// translations, and the TLB-flush token that every low-level operation returns.
//
// TLB flushes cannot be forgotten: map/unmap/protect return a [[nodiscard]], move-only TlbFlush
// that carries the virtual range it covers. It must be consumed exactly once: flush() now,
// ignore() with a reason the caller can defend (a fresh address space nobody runs yet), or
// FlushBatch::add() so that many operations cost one invalidation. In debug builds (no NDEBUG)
// a token that is destroyed unconsumed panics.
module;

#include <ktl/macros.h>

export module mm.paging.types;

import ktl;
import mm.addr;
import mm.arch;

export namespace mm {

// --- flags -------------------------------------------------------------------------------------------
enum class Access : ktl::u8 { ReadOnly, ReadWrite };
enum class Exec : ktl::u8 { No, Yes };
enum class Privilege : ktl::u8 { Kernel, User };
// Global translations survive an address-space switch (x86 G bit, aarch64 nG clear).
enum class Scope : ktl::u8 { Local, Global };
// Memory types. The formats encode them through the attribute tables the kernel programs
// (x86 PAT: paging::X86_64::kPat; aarch64 MAIR_EL1: paging::Aarch64Lower::kMair).
enum class CacheMode : ktl::u8 { WriteBack, WriteThrough, WriteCombining, Uncached };

[[nodiscard]] constexpr const char* to_string(CacheMode c) {
  switch (c) {
    case CacheMode::WriteBack: return "WB";
    case CacheMode::WriteThrough: return "WT";
    case CacheMode::WriteCombining: return "WC";
    case CacheMode::Uncached: return "UC";
  }
  return "??";
}

// What a leaf translation allows. The default is the least: kernel, read-only, not executable,
// not global, write-back. Build others with the presets or with(): `PageFlags::kernel_rw()
// .with(CacheMode::Uncached)`.
class PageFlags {
 public:
  constexpr PageFlags() = default;

  [[nodiscard]] static constexpr PageFlags kernel_ro() { return PageFlags(); }
  [[nodiscard]] static constexpr PageFlags kernel_rw() { return PageFlags().with(Access::ReadWrite); }
  [[nodiscard]] static constexpr PageFlags kernel_rx() { return PageFlags().with(Exec::Yes); }
  [[nodiscard]] static constexpr PageFlags user_ro() { return PageFlags().with(Privilege::User); }
  [[nodiscard]] static constexpr PageFlags user_rw() { return user_ro().with(Access::ReadWrite); }
  [[nodiscard]] static constexpr PageFlags user_rx() { return user_ro().with(Exec::Yes); }
  // Device registers: kernel read-write, strongly uncached.
  [[nodiscard]] static constexpr PageFlags mmio() { return kernel_rw().with(CacheMode::Uncached); }

  [[nodiscard]] constexpr PageFlags with(Access a) const {
    PageFlags f = *this;
    f.access_ = a;
    return f;
  }
  [[nodiscard]] constexpr PageFlags with(Exec e) const {
    PageFlags f = *this;
    f.exec_ = e;
    return f;
  }
  [[nodiscard]] constexpr PageFlags with(Privilege p) const {
    PageFlags f = *this;
    f.privilege_ = p;
    return f;
  }
  [[nodiscard]] constexpr PageFlags with(Scope s) const {
    PageFlags f = *this;
    f.scope_ = s;
    return f;
  }
  [[nodiscard]] constexpr PageFlags with(CacheMode c) const {
    PageFlags f = *this;
    f.cache_ = c;
    return f;
  }

  [[nodiscard]] constexpr Access access() const { return access_; }
  [[nodiscard]] constexpr Exec exec() const { return exec_; }
  [[nodiscard]] constexpr Privilege privilege() const { return privilege_; }
  [[nodiscard]] constexpr Scope scope() const { return scope_; }
  [[nodiscard]] constexpr CacheMode cache() const { return cache_; }
  [[nodiscard]] constexpr bool writable() const { return access_ == Access::ReadWrite; }
  [[nodiscard]] constexpr bool executable() const { return exec_ == Exec::Yes; }
  [[nodiscard]] constexpr bool user() const { return privilege_ == Privilege::User; }
  [[nodiscard]] constexpr bool global() const { return scope_ == Scope::Global; }

  friend constexpr bool operator==(PageFlags, PageFlags) = default;

 private:
  Access access_ = Access::ReadOnly;
  Exec exec_ = Exec::No;
  Privilege privilege_ = Privilege::Kernel;
  Scope scope_ = Scope::Local;
  CacheMode cache_ = CacheMode::WriteBack;
};

// Prints like "user rw- G WC": privilege, r/w/x, G for global, memory type.
void format_value(ktl::FormatSink& sink, PageFlags f, const ktl::FormatSpec& spec);

// --- errors ------------------------------------------------------------------------------------------
enum class PagingError : ktl::u32 {
  NoMemory,                // the frame allocator is out of frames for a page table; nothing was changed
  AlreadyMapped,           // a leaf already translates (part of) the page
  TableInTheWay,           // the slot holds a lower-level table: unmap what is below and reclaim first
  NotMapped,               // nothing translates (part of) the page or range
  SizeMismatch,            // the page is mapped with smaller pages than the operation's page size
  OutOfRange,              // an address the format cannot translate or a frame it cannot reach
  Unaligned,               // a range not aligned to 4 KiB
  Reserved,                // the recursive window, or root slots this table does not own
  Unsupported,             // a page size the CPU does not support (1 GiB pages without the CPUID bit)
  EmptyRange,              // a range of zero bytes
  NoFrames,                // Mapping::create with an empty AllocatedFrames: nothing to map
  FrameUnreachable,        // a page-table frame the format's entries cannot point at (x86-32: above 4 GiB)
  OutsideWindow,           // a page-table frame the physical window does not cover
  FrameRequestInvalid,     // the frame allocator refused the request as invalid (FrameError::InvalidRequest)
  FrameAllocatorNotReady,  // the frame allocator is not initialized (FrameError::NotInitialized)
};

[[nodiscard]] constexpr const char* to_string(PagingError e) {
  switch (e) {
    case PagingError::NoMemory: return "out of memory for page tables";
    case PagingError::AlreadyMapped: return "already mapped";
    case PagingError::TableInTheWay: return "a page table occupies the slot";
    case PagingError::NotMapped: return "not mapped";
    case PagingError::SizeMismatch: return "mapped with a different page size";
    case PagingError::OutOfRange: return "address out of the format's range";
    case PagingError::Unaligned: return "range not page aligned";
    case PagingError::Reserved: return "reserved virtual range";
    case PagingError::Unsupported: return "page size not supported by the CPU";
    case PagingError::EmptyRange: return "empty range";
    case PagingError::NoFrames: return "no frames to map";
    case PagingError::FrameUnreachable: return "page-table frame out of the format's reach";
    case PagingError::OutsideWindow: return "page-table frame outside the physical window";
    case PagingError::FrameRequestInvalid: return "frame allocator refused an invalid request";
    case PagingError::FrameAllocatorNotReady: return "frame allocator not initialized";
  }
  return "unknown paging error";
}

// --- translations ------------------------------------------------------------------------------------
// The answer to "where does this virtual address go": the leaf that maps it and the effective
// permissions (leaf flags restricted by the tables above it, as the MMU computes them).
struct Translation {
  PhysAddr phys;    // the physical address of the queried byte
  VirtAddr page;    // the first address of the leaf page
  PhysAddr frame;   // the first address of the leaf's frame
  u64 page_size;    // bytes mapped by the leaf (4 KiB, 2 MiB, 1 GiB or 4 MiB)
  PageFlags flags;  // effective permissions and memory type
  friend constexpr bool operator==(const Translation&, const Translation&) = default;
};
void format_value(ktl::FormatSink& sink, const Translation& t, const ktl::FormatSpec& spec);
void format_value(ktl::FormatSink& sink, const ktl::Optional<Translation>& t, const ktl::FormatSpec& spec);

// --- TLB flush tokens --------------------------------------------------------------------------------
#ifdef NDEBUG
inline constexpr bool kCheckFlushTokens = false;
#else
inline constexpr bool kCheckFlushTokens = true;
#endif

// A pending TLB invalidation of [start, start + pages * 4 KiB). Empty tokens (pages() == 0) come
// from operations that only filled previously empty slots: consuming them costs nothing.
// FIXME(smp): the range is what a shootdown needs; the target CPUs (those running this address
// space) are not tracked yet, and arch::flush_tlb only invalidates the local CPU.
class [[nodiscard]] TlbFlush {
 public:
  [[nodiscard]] static constexpr TlbFlush none() { return TlbFlush(VirtAddr::zero(), 0); }
  // A token for [start, start + pages * 4 KiB). Engine-internal; tests build tokens with it too.
  [[nodiscard]] static constexpr TlbFlush covering(VirtAddr start, u64 pages) {
    return TlbFlush(start, pages);
  }

  constexpr TlbFlush(TlbFlush&& o) : start_(o.start_), pages_(ktl::exchange(o.pages_, 0)) {}
  inline TlbFlush& operator=(TlbFlush&& o) {
    if (this != &o) {
      check_consumed();
      start_ = o.start_;
      pages_ = ktl::exchange(o.pages_, 0);
    }
    return *this;
  }
  TlbFlush(const TlbFlush&) = delete;
  TlbFlush& operator=(const TlbFlush&) = delete;
  constexpr ~TlbFlush() { check_consumed(); }

  [[nodiscard]] constexpr VirtAddr start() const { return start_; }
  [[nodiscard]] constexpr u64 pages() const { return pages_; }
  [[nodiscard]] constexpr bool empty() const { return pages_ == 0; }

  // Invalidates the range on this CPU now.
  inline void flush() && {
    if (pages_ != 0) arch::flush_tlb(start_, pages_);
    pages_ = 0;
  }
  // Drops the obligation. Only sound when no CPU can hold a translation for the range (the
  // tables are not active anywhere, or the range was never mapped before).
  constexpr void ignore() && { pages_ = 0; }

 private:
  friend class FlushBatch;
  constexpr TlbFlush(VirtAddr start, u64 pages) : start_(start), pages_(pages) {}
  constexpr void check_consumed() const {
    if constexpr (kCheckFlushTokens) {
      ktl::check(pages_ == 0, "TlbFlush token destroyed without flush(), ignore() or a batch");
    }
  }
  VirtAddr start_;
  u64 pages_;
};

// Collects tokens and invalidates once: one range covering them all, or the whole TLB when the
// tokens are so scattered that their hull is much larger than what they cover. A batch with
// pending work must be flushed or ignored before it is destroyed, like a token.
class [[nodiscard]] FlushBatch : ktl::NoCopy {
 public:
  // Above this many pages of hull that no token asked for, flush everything instead.
  static constexpr u64 kSlackPages = 64;

  constexpr FlushBatch() = default;
  FlushBatch(FlushBatch&& o)
      : lo_(o.lo_), hi_(o.hi_), pages_(ktl::exchange(o.pages_, 0)), tokens_(ktl::exchange(o.tokens_, 0)) {}
  FlushBatch& operator=(FlushBatch&&) = delete;
  inline ~FlushBatch() {
    if constexpr (kCheckFlushTokens) {
      ktl::check(pages_ == 0, "FlushBatch destroyed with pending invalidations");
    }
  }

  inline void add(TlbFlush&& token) {
    u64 pages = ktl::exchange(token.pages_, 0);
    if (pages == 0) return;
    u64 lo = token.start_.value();
    u64 hi = lo + (pages * kPageSize - 1);  // inclusive: the last page of the address space ends at 2^64
    if (pages_ == 0) {
      lo_ = lo;
      hi_ = hi;
    } else {
      lo_ = ktl::min(lo_, lo);
      hi_ = ktl::max(hi_, hi);
    }
    pages_ += pages;
    ++tokens_;
  }
  [[nodiscard]] inline bool empty() const { return pages_ == 0; }
  [[nodiscard]] inline u64 tokens() const { return tokens_; }
  // The hull of every token added so far, in 4 KiB pages.
  [[nodiscard]] inline u64 hull_pages() const { return pages_ == 0 ? 0 : (hi_ - lo_) / kPageSize + 1; }

  inline void flush() {
    if (pages_ == 0) return;
    u64 hull = hull_pages();
    if (hull - ktl::min(hull, pages_) > kSlackPages) {
      arch::flush_tlb_all();
    } else {
      arch::flush_tlb(VirtAddr::from(lo_), hull);
    }
    pages_ = 0;
    tokens_ = 0;
  }
  inline void ignore() {
    pages_ = 0;
    tokens_ = 0;
  }

 private:
  u64 lo_ = 0;
  u64 hi_ = 0;     // the last byte of the hull (inclusive)
  u64 pages_ = 0;  // sum of the tokens' pages (overlaps counted twice; only a heuristic)
  u64 tokens_ = 0;
};

}  // namespace mm
