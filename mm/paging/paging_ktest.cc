// mm.paging engine tests, written once as KTEST bodies: they run as GoogleTest cases on the host
// (//mm/paging:paging_test, with the software walker as the independent MMU) and in the kernel's test mode.
// Every body runs for each format it applies to, and every fixture checks that the frame allocator
// is back to zero used frames (page-table frames included) when the tables are gone.
#include <ktest/ktest.h>
#include <ktl/macros.h>

import ktl;
import ktest;
import mm.addr;
import mm.arch;
import mm.frames;
import mm.paging;
import mm.paging.testing;
import mm.testing.env;

namespace {

using ktl::u64;
using mm::Frame;
using mm::GigabytePages;
using mm::HugePages;
using mm::Page;
using mm::PageFlags;
using mm::PageTable;
using mm::PagingError;
using mm::PhysAddr;
using mm::Size1G;
using mm::Size2M;
using mm::Size4K;
using mm::Size4M;
using mm::TlbFlush;
using mm::VirtAddr;
using mm::paging_testing::ArenaFrames;
using mm::test_env::TestMemory;

namespace paging = mm::paging;

constexpr u64 kArenaBytes = 4ull << 20;
// Leaf frames are just numbers to the engine; they need not be simulated RAM.
constexpr u64 kPhys = 0x8000'0000ull;

// The second-level leaf size of each format.
template <class F>
struct HugeOf {
  using Type = Size2M;
};
template <>
struct HugeOf<paging::X86_32> {
  using Type = Size4M;
};
template <class F>
using Huge = typename HugeOf<F>::Type;

// Test addresses: 1 GiB into the half the format translates.
template <class F>
VirtAddr va(u64 offset) {
  u64 base = ktl::is_same<F, paging::Aarch64Upper> ? 0xffff'8000'0000'0000ull : 0;
  return VirtAddr::from(base + 0x4000'0000ull + offset);
}
// The start of the `n`-th root slot from the one holding va<F>(0), and the slot's size.
template <class F>
VirtAddr top_slot_start(u64 n) {
  using G = paging::Geometry<F>;
  u64 size = G::level_size(G::kTop);
  return G::virt(ktl::align_down(G::linear(va<F>(0)), size) + n * size);
}
template <class F>
constexpr u64 kTopSlotSize = paging::Geometry<F>::level_size(paging::Geometry<F>::kTop);

template <class S>
Page<S> page_at(VirtAddr v) {
  return Page<S>::from_start(v).value();
}
template <class S>
Frame<S> frame_at(u64 p) {
  return Frame<S>::from_start(PhysAddr::from(p)).value();
}

// What every test sets up: test memory and the frames its tables come from. Its destruction,
// after the tables a test declares later, checks that every table frame went back.
struct Env : ktl::NoCopy {
  ktest::Context& ctx;
  TestMemory mem;
  ArenaFrames frames;
  Env(ktest::Context& c, TestMemory&& m) : ctx(c), mem(ktl::move(m)), frames(mem.window(), mem.range()) {}
  ~Env() {
    ctx.check_eq(frames.used_count(), u64{0}, "table frames in use at the end", "0", __FILE__, __LINE__);
  }
};

// Consumes whatever a successful operation returned (tokens are ignored: these tables are never
// active).
void consume(TlbFlush&& t) { ktl::move(t).ignore(); }
template <class S>
void consume(mm::Unmapped<S>&& u) {
  ktl::move(u.flush).ignore();
}
void consume(mm::RangeUnmapped&& u) { ktl::move(u.flush).ignore(); }
void consume(mm::Reclaimed) {}
template <class F>
void consume(PageTable<F>&&) {}

template <class T>
bool expect_error(ktest::Context& ctx, ktl::Result<T, PagingError>&& r, PagingError want, const char* what,
                  const char* file, int line) {
  if (r.is_ok()) {
    if constexpr (ktl::is_same<T, void>) {
      r.value();
    } else {
      consume(r.release_value());
    }
    ctx.fail(file, line, "expected {} to fail with \"{}\", it succeeded", what, want);
    return false;
  }
  if (r.error() != want) {
    ctx.fail(file, line, "expected {} to fail with \"{}\", got \"{}\"", what, want, r.error());
    return false;
  }
  return true;
}
#define KEXPECT_PAGING_ERR(expr, err) expect_error(ktest_ctx, (expr), (err), #expr, __FILE__, __LINE__)

// The engine's translation of `v` equals the independent MMU's (when the environment has one).
template <class F>
bool consistent(ktest::Context& ktest_ctx, const PageTable<F>& pt, const Env& env, VirtAddr v) {
  mm::paging_testing::IndependentMmu* mmu = mm::paging_testing::independent_mmu();
  if (mmu == nullptr) return true;
  auto theirs = mmu->translate(mm::paging_testing::format_id<F>(), env.mem.window(), pt.root(), v);
  return KEXPECT_EQ(pt.translate(v), theirs);
}
// Every table frame the allocator handed out is reachable, and nothing else is allocated.
template <class F>
bool tables_accounted(ktest::Context& ktest_ctx, const PageTable<F>& pt, const Env& env) {
  bool ok = KEXPECT_EQ(env.frames.used_count(), pt.table_frames());
  if (mm::paging_testing::IndependentMmu* mmu = mm::paging_testing::independent_mmu()) {
    ok = KEXPECT_EQ(mmu->table_count(mm::paging_testing::format_id<F>(), env.mem.window(), pt.root()),
                    pt.table_frames()) &&
         ok;
  }
  return ok;
}

#define PAGING_ENV(env)                                       \
  auto env##_memory = KTRY(TestMemory::acquire(kArenaBytes)); \
  Env env(ktest_ctx, ktl::move(env##_memory))

// Runs body<F> for the formats every test covers.
#define KTEST_ALL_FORMATS(name, body)                                    \
  KTEST(Paging_x86_64, name) { body<paging::X86_64>(ktest_ctx); }        \
  KTEST(Paging_x86_32, name) { body<paging::X86_32>(ktest_ctx); }        \
  KTEST(Paging_aarch64, name) { body<paging::Aarch64Lower>(ktest_ctx); } \
  KTEST(Paging_aarch64_ttbr1, name) { body<paging::Aarch64Upper>(ktest_ctx); }

// --- map, translate, unmap ---------------------------------------------------------------------------------
template <class F>
void map_translate_unmap(ktest::Context& ktest_ctx) {
  PAGING_ENV(env);
  {
    auto pt = KTRY(PageTable<F>::create(env.mem.window(), env.frames));
    KEXPECT_EQ(env.frames.used_count(), 1u);
    VirtAddr v = va<F>(0x5000);
    PageFlags flags = PageFlags::kernel_rw();
    TlbFlush token = KTRY(pt.map(page_at<Size4K>(v), frame_at<Size4K>(kPhys + 0x7000), flags));
    KEXPECT(token.empty());  // filling an empty slot invalidates nothing
    ktl::move(token).flush();

    auto t = KTRY(pt.translate(v + 0x123));
    KEXPECT_EQ(t.phys, PhysAddr::from(kPhys + 0x7123));
    KEXPECT_EQ(t.page, v);
    KEXPECT_EQ(t.frame, PhysAddr::from(kPhys + 0x7000));
    KEXPECT_EQ(t.page_size, Size4K::bytes);
    KEXPECT_EQ(t.flags, F::effective(flags));
    KEXPECT(!pt.translate(v + 0x1000).has_value());
    KEXPECT(!pt.translate(v - 0x1000).has_value());
    consistent(ktest_ctx, pt, env, v + 0x123);
    consistent(ktest_ctx, pt, env, v + 0x1000);
    KEXPECT_EQ(env.frames.used_count(), u64{F::kLevels});  // root + one table per lower level
    tables_accounted(ktest_ctx, pt, env);

    auto un = KTRY(pt.unmap(page_at<Size4K>(v)));
    KEXPECT_EQ(un.frame.start(), PhysAddr::from(kPhys + 0x7000));
    KEXPECT_EQ(un.flush.start(), v);
    KEXPECT_EQ(un.flush.pages(), 1u);
    ktl::move(un.flush).ignore();
    KEXPECT(!pt.translate(v).has_value());
    consistent(ktest_ctx, pt, env, v);
    KEXPECT_PAGING_ERR(pt.unmap(page_at<Size4K>(v)), PagingError::NotMapped);
    // Unmapping frees nothing: the tables stay until reclaimed.
    KEXPECT_EQ(env.frames.used_count(), u64{F::kLevels});
  }
}
KTEST_ALL_FORMATS(MapTranslateUnmap, map_translate_unmap)

// Every combination of flags survives encoding and decoding, as the format can express it.
template <class F>
void flags_round_trip(ktest::Context& ktest_ctx) {
  PAGING_ENV(env);
  {
    auto pt = KTRY(PageTable<F>::create(env.mem.window(), env.frames));
    const mm::CacheMode caches[] = {mm::CacheMode::WriteBack, mm::CacheMode::WriteThrough,
                                    mm::CacheMode::WriteCombining, mm::CacheMode::Uncached};
    u64 i = 0;
    for (mm::CacheMode cache : caches) {
      for (u64 bits = 0; bits < 16; ++bits, ++i) {
        PageFlags f = PageFlags()
                          .with((bits & 1) ? mm::Access::ReadWrite : mm::Access::ReadOnly)
                          .with((bits & 2) ? mm::Exec::Yes : mm::Exec::No)
                          .with((bits & 4) ? mm::Privilege::User : mm::Privilege::Kernel)
                          .with((bits & 8) ? mm::Scope::Global : mm::Scope::Local)
                          .with(cache);
        VirtAddr v = va<F>(i * Size4K::bytes);
        consume(KTRY(pt.map(page_at<Size4K>(v), frame_at<Size4K>(kPhys + i * Size4K::bytes), f)));
        auto t = KTRY(pt.translate(v));
        KEXPECT_EQ(t.flags, F::effective(f));
        consistent(ktest_ctx, pt, env, v);
        // The same flags on a huge page (PAT sits in another bit there).
        VirtAddr hv = va<F>((i + 1) * Huge<F>::bytes);
        consume(KTRY(pt.map(page_at<Huge<F>>(hv), frame_at<Huge<F>>(kPhys), f)));
        KEXPECT_EQ(KTRY(pt.translate(hv + 0x3000)).flags, F::effective(f));
        consistent(ktest_ctx, pt, env, hv + 0x3000);
        consume(KTRY(pt.unmap(page_at<Huge<F>>(hv))));
      }
    }
    tables_accounted(ktest_ctx, pt, env);
  }
}
KTEST_ALL_FORMATS(FlagsRoundTrip, flags_round_trip)

// --- errors
// ----------------------------------------------------------------------------------------------------
template <class F>
void conflicts_are_errors(ktest::Context& ktest_ctx) {
  using H = Huge<F>;
  PAGING_ENV(env);
  {
    auto pt = KTRY(PageTable<F>::create(env.mem.window(), env.frames));
    VirtAddr small = va<F>(H::bytes + 0x3000);  // inside the second huge slot
    consume(KTRY(pt.map(page_at<Size4K>(small), frame_at<Size4K>(kPhys), PageFlags::kernel_rw())));
    u64 used = env.frames.used_count();
    KEXPECT_PAGING_ERR(pt.map(page_at<Size4K>(small), frame_at<Size4K>(kPhys), PageFlags()),
                       PagingError::AlreadyMapped);
    KEXPECT_PAGING_ERR(pt.map(page_at<H>(va<F>(H::bytes)), frame_at<H>(kPhys), PageFlags()),
                       PagingError::TableInTheWay);
    KEXPECT_PAGING_ERR(pt.unmap(page_at<H>(va<F>(H::bytes))), PagingError::SizeMismatch);
    KEXPECT_PAGING_ERR(pt.protect(page_at<H>(va<F>(H::bytes)), PageFlags()), PagingError::SizeMismatch);
    KEXPECT_PAGING_ERR(pt.unmap(page_at<H>(va<F>(0))), PagingError::NotMapped);
    // A huge leaf blocks 4 KiB maps inside it.
    consume(KTRY(pt.map(page_at<H>(va<F>(0)), frame_at<H>(kPhys), PageFlags())));
    KEXPECT_PAGING_ERR(pt.map(page_at<Size4K>(va<F>(0x5000)), frame_at<Size4K>(kPhys), PageFlags()),
                       PagingError::AlreadyMapped);
    KEXPECT_PAGING_ERR(
        pt.map_range(va<F>(H::bytes - 0x1000), PhysAddr::from(kPhys), 0x2000, PageFlags(), HugePages::Allow),
        PagingError::AlreadyMapped);
    // Bad ranges.
    KEXPECT_PAGING_ERR(pt.unmap_range(va<F>(0x10), 0x1000), PagingError::Unaligned);
    KEXPECT_PAGING_ERR(pt.unmap_range(va<F>(0), 0), PagingError::EmptyRange);
    KEXPECT_PAGING_ERR(
        pt.map_range(va<F>(0x10'0000'0000), PhysAddr::from(0x1001), 0x1000, PageFlags(), HugePages::Allow),
        F::kLevels == 2 ? PagingError::OutOfRange : PagingError::Unaligned);
    // Frames the format cannot reach.
    if constexpr (F::kPhysLimit < PhysAddr::kLimit) {
      KEXPECT_PAGING_ERR(pt.map(page_at<Size4K>(va<F>(0x7000)),
                                Frame<Size4K>::containing(PhysAddr::from(F::kPhysLimit)), PageFlags()),
                         PagingError::OutOfRange);
    }
    if constexpr (ktl::is_same<F, paging::X86_32>) {
      KEXPECT_PAGING_ERR(
          pt.map(page_at<Size4K>(VirtAddr::from(0x1'0000'0000ull)), frame_at<Size4K>(kPhys), PageFlags()),
          PagingError::OutOfRange);
    }
    if constexpr (ktl::is_same<F, paging::Aarch64Lower>) {  // a TTBR0 table takes no upper-half address
      KEXPECT_PAGING_ERR(pt.map(page_at<Size4K>(VirtAddr::from(0xffff'8000'0000'0000ull)),
                                frame_at<Size4K>(kPhys), PageFlags()),
                         PagingError::OutOfRange);
      KEXPECT(!pt.translate(VirtAddr::from(0xffff'8000'4000'0000ull)).has_value());
    }
    // None of the failures allocated anything.
    KEXPECT_EQ(env.frames.used_count(), used + 0);
    consume(KTRY(pt.unmap(page_at<H>(va<F>(0)))));
    consume(KTRY(pt.unmap(page_at<Size4K>(small))));
    tables_accounted(ktest_ctx, pt, env);
  }
}
KTEST_ALL_FORMATS(ConflictsAreErrors, conflicts_are_errors)

// --- huge pages
// --------------------------------------------------------------------------------------------------
template <class F>
void huge_page_split_on_unmap(ktest::Context& ktest_ctx) {
  using H = Huge<F>;
  PAGING_ENV(env);
  {
    auto pt = KTRY(PageTable<F>::create(env.mem.window(), env.frames));
    VirtAddr base = va<F>(2 * H::bytes);
    u64 phys = kPhys + 4 * H::bytes;
    PageFlags flags = PageFlags::user_rw().with(mm::Scope::Local).with(mm::CacheMode::WriteCombining);
    consume(KTRY(pt.map(page_at<H>(base), frame_at<H>(phys), flags)));
    u64 tables = env.frames.used_count();
    auto t = KTRY(pt.translate(base + H::bytes - 1));
    KEXPECT_EQ(t.page_size, H::bytes);
    KEXPECT_EQ(t.phys, PhysAddr::from(phys + H::bytes - 1));
    consistent(ktest_ctx, pt, env, base + H::bytes - 1);

    // Unmapping one 4 KiB page inside splits the leaf: one new table, the token covers it all.
    u64 hole = 0x5000;
    auto un = KTRY(pt.unmap(page_at<Size4K>(base + hole)));
    KEXPECT_EQ(un.frame.start(), PhysAddr::from(phys + hole));
    KEXPECT_EQ(un.flush.start(), base);
    KEXPECT_EQ(un.flush.pages(), H::bytes / Size4K::bytes);
    consume(ktl::move(un));
    KEXPECT_EQ(env.frames.used_count(), tables + 1);
    KEXPECT(!pt.translate(base + hole).has_value());
    const u64 offsets[] = {0, hole - 0x1000, hole + 0x1000, H::bytes - 0x1000};
    for (u64 off : offsets) {
      auto piece = KTRY(pt.translate(base + off));
      KEXPECT_EQ(piece.page_size, Size4K::bytes);
      KEXPECT_EQ(piece.frame, PhysAddr::from(phys + off));
      KEXPECT_EQ(piece.flags, F::effective(flags));
      consistent(ktest_ctx, pt, env, base + off);
    }
    // The region is now 4 KiB pages: a huge unmap is a size mismatch.
    KEXPECT_PAGING_ERR(pt.unmap(page_at<H>(base)), PagingError::SizeMismatch);
    auto rest = KTRY(pt.unmap_range(base, H::bytes));
    KEXPECT_EQ(rest.pages, H::bytes / Size4K::bytes - 1);
    consume(ktl::move(rest));
    KEXPECT(!pt.translate(base).has_value());
    tables_accounted(ktest_ctx, pt, env);
  }
}
KTEST_ALL_FORMATS(HugePageSplitOnUnmap, huge_page_split_on_unmap)

template <class F>
void huge_page_split_on_protect(ktest::Context& ktest_ctx) {
  using H = Huge<F>;
  PAGING_ENV(env);
  {
    auto pt = KTRY(PageTable<F>::create(env.mem.window(), env.frames));
    VirtAddr base = va<F>(0);
    PageFlags rw = PageFlags::kernel_rw().with(mm::Scope::Global);
    consume(KTRY(pt.map(page_at<H>(base), frame_at<H>(kPhys), rw)));
    TlbFlush token = KTRY(pt.protect(page_at<Size4K>(base + 0x2000), PageFlags::kernel_ro()));
    KEXPECT_EQ(token.start(), base);
    KEXPECT_EQ(token.pages(), H::bytes / Size4K::bytes);
    consume(ktl::move(token));
    KEXPECT_EQ(KTRY(pt.translate(base + 0x2000)).flags, F::effective(PageFlags::kernel_ro()));
    KEXPECT_EQ(KTRY(pt.translate(base + 0x2000)).frame, PhysAddr::from(kPhys + 0x2000));
    KEXPECT_EQ(KTRY(pt.translate(base + 0x3000)).flags, F::effective(rw));
    KEXPECT_EQ(KTRY(pt.translate(base + 0x1000)).flags, F::effective(rw));
    consistent(ktest_ctx, pt, env, base + 0x2000);
    consistent(ktest_ctx, pt, env, base + 0x3000);
    // protect_range across the whole former leaf sets every piece.
    consume(KTRY(pt.protect_range(base, H::bytes, PageFlags::kernel_rx())));
    for (u64 off = 0; off < H::bytes; off += 0x4'1000) {
      KEXPECT_EQ(KTRY(pt.translate(base + off)).flags, F::effective(PageFlags::kernel_rx()));
    }
    consume(KTRY(pt.unmap_range(base, H::bytes)));
    tables_accounted(ktest_ctx, pt, env);
  }
}
KTEST_ALL_FORMATS(HugePageSplitOnProtect, huge_page_split_on_protect)

// 1 GiB leaves (x86_64, aarch64): split twice down to 4 KiB, and the CPU-support switch.
template <class F>
void gigabyte_pages(ktest::Context& ktest_ctx) {
  PAGING_ENV(env);
  {
    auto pt = KTRY(PageTable<F>::create(env.mem.window(), env.frames));
    VirtAddr base = va<F>(Size1G::bytes);  // 2 GiB
    consume(KTRY(pt.map(page_at<Size1G>(base), frame_at<Size1G>(4 * Size1G::bytes), PageFlags::kernel_rw())));
    KEXPECT_EQ(KTRY(pt.translate(base + 0x1234'5678)).phys, PhysAddr::from(4 * Size1G::bytes + 0x1234'5678));
    KEXPECT_EQ(KTRY(pt.translate(base)).page_size, Size1G::bytes);
    u64 before = env.frames.used_count();
    auto un = KTRY(pt.unmap(page_at<Size4K>(base + 0x20'3000)));
    KEXPECT_EQ(un.flush.pages(), Size1G::bytes / Size4K::bytes);
    consume(ktl::move(un));
    KEXPECT_EQ(env.frames.used_count(), before + 2);  // one PD, one PT
    KEXPECT_EQ(KTRY(pt.translate(base + 0x40'0000)).page_size, Size2M::bytes);
    KEXPECT_EQ(KTRY(pt.translate(base + 0x20'4000)).page_size, Size4K::bytes);
    KEXPECT_EQ(KTRY(pt.translate(base + 0x20'4000)).frame, PhysAddr::from(4 * Size1G::bytes + 0x20'4000));
    consistent(ktest_ctx, pt, env, base + 0x40'0000);
    consistent(ktest_ctx, pt, env, base + 0x20'4000);
    consistent(ktest_ctx, pt, env, base + 0x20'3000);
    // map_range picks 1 GiB leaves where they fit.
    consume(KTRY(pt.map_range(va<F>(3 * Size1G::bytes), PhysAddr::from(0), Size1G::bytes + Size2M::bytes,
                              PageFlags::kernel_ro(), HugePages::Allow)));
    KEXPECT_EQ(KTRY(pt.translate(va<F>(3 * Size1G::bytes))).page_size, Size1G::bytes);
    KEXPECT_EQ(KTRY(pt.translate(va<F>(4 * Size1G::bytes))).page_size, Size2M::bytes);
    consume(KTRY(pt.unmap_range(va<F>(0), 5 * Size1G::bytes)));
    tables_accounted(ktest_ctx, pt, env);
  }
  {
    mm::PageTableOptions no_1g;
    no_1g.gigabytes = GigabytePages::Unsupported;
    auto pt = KTRY(PageTable<F>::create(env.mem.window(), env.frames, no_1g));
    KEXPECT_PAGING_ERR(pt.map(page_at<Size1G>(va<F>(0)), frame_at<Size1G>(0), PageFlags()),
                       PagingError::Unsupported);
    consume(KTRY(pt.map_range(va<F>(0), PhysAddr::from(0), Size1G::bytes, PageFlags(), HugePages::Allow)));
    KEXPECT_EQ(KTRY(pt.translate(va<F>(0))).page_size, Size2M::bytes);
    consume(KTRY(pt.unmap_range(va<F>(0), Size1G::bytes)));
  }
}
KTEST(Paging_x86_64, GigabytePages) { gigabyte_pages<paging::X86_64>(ktest_ctx); }
KTEST(Paging_aarch64, GigabytePages) { gigabyte_pages<paging::Aarch64Lower>(ktest_ctx); }

// --- ranges
// -------------------------------------------------------------------------------------------------------
template <class F>
void map_range_picks_page_sizes(ktest::Context& ktest_ctx) {
  using H = Huge<F>;
  PAGING_ENV(env);
  {
    auto pt = KTRY(PageTable<F>::create(env.mem.window(), env.frames));
    // [H - 8 KiB, 3H + 12 KiB): two 4 KiB pages, two huge pages, three 4 KiB pages.
    VirtAddr start = va<F>(H::bytes - 0x2000);
    u64 bytes = 2 * H::bytes + 0x5000;
    TlbFlush token = KTRY(
        pt.map_range(start, PhysAddr::from(kPhys - 0x2000), bytes, PageFlags::kernel_rw(), HugePages::Allow));
    KEXPECT(token.empty());
    consume(ktl::move(token));
    u64 leaves = 0, huge = 0;
    for (u64 off = 0; off < bytes;) {
      auto t = KTRY(pt.translate(start + off));
      KEXPECT_EQ(t.phys, PhysAddr::from(kPhys - 0x2000 + off));
      consistent(ktest_ctx, pt, env, start + off);
      ++leaves;
      if (t.page_size == H::bytes) ++huge;
      off += t.page_size;
    }
    KEXPECT_EQ(leaves, 7u);
    KEXPECT_EQ(huge, 2u);
    tables_accounted(ktest_ctx, pt, env);
    auto un = KTRY(pt.unmap_range(start, bytes));
    KEXPECT_EQ(un.pages, bytes / Size4K::bytes);
    KEXPECT_EQ(un.flush.start(), start);
    KEXPECT_EQ(un.flush.pages(), bytes / Size4K::bytes);
    consume(ktl::move(un));
    // Deny: 4 KiB pages only; misaligned physical addresses also force them.
    consume(KTRY(pt.map_range(va<F>(0), PhysAddr::from(kPhys), H::bytes, PageFlags(), HugePages::Deny)));
    KEXPECT_EQ(KTRY(pt.translate(va<F>(0))).page_size, Size4K::bytes);
    consume(KTRY(pt.map_range(va<F>(H::bytes), PhysAddr::from(kPhys + 0x1000), H::bytes, PageFlags(),
                              HugePages::Allow)));
    KEXPECT_EQ(KTRY(pt.translate(va<F>(H::bytes))).page_size, Size4K::bytes);
    consume(KTRY(pt.unmap_range(va<F>(0), 2 * H::bytes)));
    // A huge slot that still holds an (empty) table gets 4 KiB pages instead.
    consume(KTRY(pt.map_range(va<F>(0), PhysAddr::from(kPhys), H::bytes, PageFlags(), HugePages::Allow)));
    KEXPECT_EQ(KTRY(pt.translate(va<F>(0))).page_size, Size4K::bytes);
    consume(KTRY(pt.unmap_range(va<F>(0), H::bytes)));
    consume(KTRY(pt.reclaim_empty_tables(va<F>(0), 4 * H::bytes)));
    consume(KTRY(pt.map_range(va<F>(0), PhysAddr::from(kPhys), H::bytes, PageFlags(), HugePages::Allow)));
    KEXPECT_EQ(KTRY(pt.translate(va<F>(0))).page_size, H::bytes);
    consume(KTRY(pt.unmap_range(va<F>(0), H::bytes)));
    tables_accounted(ktest_ctx, pt, env);
  }
}
KTEST_ALL_FORMATS(MapRangePicksPageSizes, map_range_picks_page_sizes)

template <class F>
void range_ops_split_edges(ktest::Context& ktest_ctx) {
  using H = Huge<F>;
  PAGING_ENV(env);
  {
    auto pt = KTRY(PageTable<F>::create(env.mem.window(), env.frames));
    VirtAddr base = va<F>(0);
    consume(KTRY(
        pt.map_range(base, PhysAddr::from(kPhys), 2 * H::bytes, PageFlags::user_rw(), HugePages::Allow)));
    // Unmap [H - 4 KiB, H + 8 KiB): both huge leaves split; the token covers both.
    auto un = KTRY(pt.unmap_range(base + H::bytes - 0x1000, 0x3000));
    KEXPECT_EQ(un.pages, 3u);
    KEXPECT_EQ(un.flush.start(), base);
    KEXPECT_EQ(un.flush.pages(), 2 * H::bytes / Size4K::bytes);
    consume(ktl::move(un));
    const u64 offsets[] = {H::bytes - 0x2000, H::bytes - 0x1000, H::bytes, H::bytes + 0x1000,
                           H::bytes + 0x2000};
    for (u64 off : offsets) {
      bool hole = off >= H::bytes - 0x1000 && off < H::bytes + 0x2000;
      KEXPECT_EQ(pt.translate(base + off).has_value(), !hole);
      consistent(ktest_ctx, pt, env, base + off);
    }
    // protect_range over a hole fails and changes nothing.
    KEXPECT_PAGING_ERR(pt.protect_range(base, 2 * H::bytes, PageFlags::user_ro()), PagingError::NotMapped);
    KEXPECT_EQ(KTRY(pt.translate(base)).flags, F::effective(PageFlags::user_rw()));
    // protect_range inside the first (split) leaf.
    consume(KTRY(pt.protect_range(base + 0x1000, 0x2000, PageFlags::user_ro())));
    KEXPECT_EQ(KTRY(pt.translate(base)).flags, F::effective(PageFlags::user_rw()));
    KEXPECT_EQ(KTRY(pt.translate(base + 0x1000)).flags, F::effective(PageFlags::user_ro()));
    KEXPECT_EQ(KTRY(pt.translate(base + 0x2000)).flags, F::effective(PageFlags::user_ro()));
    KEXPECT_EQ(KTRY(pt.translate(base + 0x3000)).flags, F::effective(PageFlags::user_rw()));
    consistent(ktest_ctx, pt, env, base + 0x2000);
    // Unmapping a range with holes skips them.
    auto all = KTRY(pt.unmap_range(base, 4 * H::bytes));
    KEXPECT_EQ(all.pages, 2 * H::bytes / Size4K::bytes - 3);
    consume(ktl::move(all));
    tables_accounted(ktest_ctx, pt, env);
  }
}
KTEST_ALL_FORMATS(RangeOpsSplitEdges, range_ops_split_edges)

// --- reclaim
// -----------------------------------------------------------------------------------------------------
template <class F>
void reclaim_is_explicit(ktest::Context& ktest_ctx) {
  using H = Huge<F>;
  PAGING_ENV(env);
  {
    auto pt = KTRY(PageTable<F>::create(env.mem.window(), env.frames));
    VirtAddr a = va<F>(0x3000);
    VirtAddr b = va<F>(H::bytes + 0x3000);
    consume(KTRY(pt.map(page_at<Size4K>(a), frame_at<Size4K>(kPhys), PageFlags())));
    consume(KTRY(pt.map(page_at<Size4K>(b), frame_at<Size4K>(kPhys), PageFlags())));
    u64 full = env.frames.used_count();
    KEXPECT_EQ(full, u64{F::kLevels} + 1);  // root, shared upper tables, two leaf tables
    consume(KTRY(pt.unmap(page_at<Size4K>(a))));
    KEXPECT_EQ(env.frames.used_count(), full);
    // A range that does not cover a whole table frees nothing.
    KEXPECT_EQ(KTRY(pt.reclaim_empty_tables(va<F>(0), H::bytes - 0x1000)).tables, 0u);
    // The empty leaf table goes; the one still mapping b stays, and so do its parents.
    KEXPECT_EQ(KTRY(pt.reclaim_empty_tables(va<F>(0), 4 * H::bytes)).tables, 1u);
    KEXPECT_EQ(env.frames.used_count(), full - 1);
    KEXPECT_EQ(KTRY(pt.translate(b)).frame, PhysAddr::from(kPhys));
    consume(KTRY(pt.unmap(page_at<Size4K>(b))));
    // Now everything below the root goes, bottom-up, in one call.
    KEXPECT_EQ(KTRY(pt.reclaim_empty_tables(top_slot_start<F>(0), 2 * kTopSlotSize<F>)).tables,
               u64{F::kLevels} - 1);
    KEXPECT_EQ(env.frames.used_count(), 1u);
    tables_accounted(ktest_ctx, pt, env);
    KEXPECT(!pt.translate(b).has_value());
  }
}
KTEST_ALL_FORMATS(ReclaimIsExplicit, reclaim_is_explicit)

// --- allocation failure
// ----------------------------------------------------------------------------------------- Fails the n-th
// allocation for every n an operation needs: each failure must leave the tables and the allocator exactly as
// they were, and the operation must then succeed.
template <class F>
void no_memory_is_all_or_nothing(ktest::Context& ktest_ctx) {
  using H = Huge<F>;
  PAGING_ENV(env);
  {
    auto pt = KTRY(PageTable<F>::create(env.mem.window(), env.frames));
    VirtAddr v = va<F>(0x4000);
    u64 used = env.frames.used_count();
    for (u64 n = 0; n < F::kLevels - 1; ++n) {
      env.frames.fail_after(n);
      KEXPECT_PAGING_ERR(pt.map(page_at<Size4K>(v), frame_at<Size4K>(kPhys), PageFlags()),
                         PagingError::NoMemory);
      KEXPECT_EQ(env.frames.used_count(), used);
      KEXPECT(!pt.translate(v).has_value());
    }
    env.frames.fail_after(F::kLevels - 1);
    consume(KTRY(pt.map(page_at<Size4K>(v), frame_at<Size4K>(kPhys), PageFlags())));
    env.frames.fail_never();

    // Splitting for unmap and protect.
    VirtAddr big = va<F>(2 * H::bytes);
    consume(KTRY(pt.map(page_at<H>(big), frame_at<H>(kPhys), PageFlags::kernel_rw())));
    used = env.frames.used_count();
    env.frames.fail_after(0);
    KEXPECT_PAGING_ERR(pt.unmap(page_at<Size4K>(big + 0x1000)), PagingError::NoMemory);
    KEXPECT_PAGING_ERR(pt.protect(page_at<Size4K>(big + 0x1000), PageFlags()), PagingError::NoMemory);
    KEXPECT_PAGING_ERR(pt.unmap_range(big + 0x1000, 0x1000), PagingError::NoMemory);
    KEXPECT_PAGING_ERR(pt.protect_range(big + 0x1000, 0x1000, PageFlags()), PagingError::NoMemory);
    env.frames.fail_never();
    KEXPECT_EQ(env.frames.used_count(), used);
    auto t = KTRY(pt.translate(big + 0x1000));
    KEXPECT_EQ(t.page_size, H::bytes);
    KEXPECT_EQ(t.flags, F::effective(PageFlags::kernel_rw()));
    consistent(ktest_ctx, pt, env, big + 0x1000);

    // map_range needing several tables fails at each of them without a trace.
    VirtAddr far = top_slot_start<F>(4);  // clear of everything above
    u64 bytes = H::bytes + 0x3000;
    u64 needed = 0;
    {
      env.frames.fail_never();
      u64 before = env.frames.used_count();
      consume(KTRY(pt.map_range(far, PhysAddr::from(kPhys), bytes, PageFlags(), HugePages::Allow)));
      needed = env.frames.used_count() - before;
      consume(KTRY(pt.unmap_range(far, bytes)));
      consume(KTRY(pt.reclaim_empty_tables(far, 4 * kTopSlotSize<F>)));
      KEXPECT_EQ(env.frames.used_count(), before);
    }
    KEXPECT_LE(1u, needed);
    used = env.frames.used_count();
    for (u64 n = 0; n < needed; ++n) {
      env.frames.fail_after(n);
      KEXPECT_PAGING_ERR(pt.map_range(far, PhysAddr::from(kPhys), bytes, PageFlags(), HugePages::Allow),
                         PagingError::NoMemory);
      KEXPECT_EQ(env.frames.used_count(), used);
      KEXPECT(!pt.translate(far).has_value());
      KEXPECT(!pt.translate(far + H::bytes).has_value());
    }
    env.frames.fail_never();
    consume(KTRY(pt.map_range(far, PhysAddr::from(kPhys), bytes, PageFlags(), HugePages::Allow)));
    KEXPECT_EQ(env.frames.used_count(), used + needed);
    tables_accounted(ktest_ctx, pt, env);
  }
}
KTEST_ALL_FORMATS(NoMemoryIsAllOrNothing, no_memory_is_all_or_nothing)

// --- root slots: ownership, sharing, adoption, the recursive slot
// ------------------------------------------------
template <class F>
void root_slot_ownership(ktest::Context& ktest_ctx) {
  PAGING_ENV(env);
  constexpr ktl::u32 kUser = F::kUserRootSlots;
  if constexpr (kUser == 0 || kUser == F::kEntries) {
    return;  // aarch64: nothing shared between halves
  } else {
    using G = paging::Geometry<F>;
    VirtAddr kernel_va = G::virt(u64{kUser} << G::shift(G::kTop));  // first kernel-half address
    mm::PageTableOptions kernel_options;
    kernel_options.pinned = {kUser, static_cast<ktl::u32>(F::kEntries)};
    auto kernel = KTRY(PageTable<F>::create(env.mem.window(), env.frames, kernel_options));
    KTRY(kernel.populate_root_slots({kUser, static_cast<ktl::u32>(F::kEntries)}));
    KEXPECT_EQ(kernel.table_frames(), 1 + u64{F::kEntries - kUser});
    {
      mm::PageTableOptions user_options;
      user_options.owned = {0, kUser};
      auto user = KTRY(PageTable<F>::create(env.mem.window(), env.frames, user_options));
      user.share_root_slots(kernel, {kUser, static_cast<ktl::u32>(F::kEntries)});
      // The kernel half is read-only through the user table...
      KEXPECT_PAGING_ERR(user.map(page_at<Size4K>(kernel_va), frame_at<Size4K>(kPhys), PageFlags()),
                         PagingError::Reserved);
      // ...but what the kernel maps there later shows up in it.
      consume(KTRY(
          kernel.map(page_at<Size4K>(kernel_va + 0x5000), frame_at<Size4K>(kPhys), PageFlags::kernel_rw())));
      KEXPECT_EQ(KTRY(user.translate(kernel_va + 0x5000)).frame, PhysAddr::from(kPhys));
      consistent(ktest_ctx, user, env, kernel_va + 0x5000);
      // The user half is private.
      consume(KTRY(user.map(page_at<Size4K>(va<F>(0)), frame_at<Size4K>(kPhys), PageFlags::user_rw())));
      KEXPECT(!kernel.translate(va<F>(0)).has_value());
      // Reclaim in the kernel never frees the pinned top-level tables the user table shares.
      consume(KTRY(kernel.unmap(page_at<Size4K>(kernel_va + 0x5000))));
      auto freed =
          KTRY(kernel.reclaim_empty_tables(kernel_va, F::kLevels == 2 ? u64{1} << 30 : u64{1} << 46));
      KEXPECT_EQ(freed.tables, u64{F::kLevels} - 2);  // the tables below the pinned one
      KEXPECT_EQ(kernel.table_frames(), 1 + u64{F::kEntries - kUser});
      consume(KTRY(user.unmap(page_at<Size4K>(va<F>(0)))));
      // Destroying the user table frees only its own tables.
    }
    KEXPECT_EQ(env.frames.used_count(), kernel.table_frames());
  }
}
KTEST(Paging_x86_64, RootSlotOwnership) { root_slot_ownership<paging::X86_64>(ktest_ctx); }
KTEST(Paging_x86_32, RootSlotOwnership) { root_slot_ownership<paging::X86_32>(ktest_ctx); }

template <class F>
void adopted_tables_are_kept(ktest::Context& ktest_ctx) {
  PAGING_ENV(env);
  PhysAddr root = PhysAddr::zero();
  {
    auto built = KTRY(PageTable<F>::create(env.mem.window(), env.frames));
    consume(KTRY(built.map(page_at<Size4K>(va<F>(0x1000)), frame_at<Size4K>(kPhys), PageFlags::kernel_ro())));
    root = built.root();
    // Someone else (the loader) built these: adopt them, map more, drop the adopter.
    auto adopted = KTRY(PageTable<F>::adopt(env.mem.window(), env.frames, root));
    KEXPECT_EQ(KTRY(adopted.translate(va<F>(0x1000))).frame, PhysAddr::from(kPhys));
    consume(KTRY(adopted.map(page_at<Size4K>(va<F>(0x2000)), frame_at<Size4K>(kPhys + 0x1000), PageFlags())));
    KEXPECT_EQ(adopted.table_frames(), 0u);
    u64 used = env.frames.used_count();
    {
      auto second = KTRY(PageTable<F>::adopt(env.mem.window(), env.frames, root));
      KEXPECT(second.translate(va<F>(0x2000)).has_value());
    }
    KEXPECT_EQ(env.frames.used_count(), used);  // dropping an adopter frees nothing
    KEXPECT_PAGING_ERR(PageTable<F>::adopt(env.mem.window(), env.frames, PhysAddr::from(0x1000)),
                       PagingError::OutsideWindow);
    KEXPECT_PAGING_ERR(PageTable<F>::adopt(env.mem.window(), env.frames, root + 8), PagingError::Unaligned);
    consume(KTRY(adopted.unmap(page_at<Size4K>(va<F>(0x2000)))));
  }
}
KTEST_ALL_FORMATS(AdoptedTablesAreKept, adopted_tables_are_kept)

// Recursive-window arithmetic, against the well-known addresses of both classic layouts.
KTEST(Paging_x86_64, RecursiveWindowAddresses) {
  auto view = KTRY(mm::RecursiveView<paging::X86_64>::at_slot(510));
  VirtAddr any = VirtAddr::from(0x0000'1234'5678'9000ull);
  KEXPECT_EQ(view.table_address(3, any), VirtAddr::from(0xffff'ff7f'bfdf'e000ull));  // the PML4
  KEXPECT_EQ(view.window_start(), VirtAddr::from(0xffff'ff00'0000'0000ull));
  // The PT for va: 0xffff'ff00'0000'0000 | (va >> 9 & ~0xfff).
  VirtAddr v = VirtAddr::from(0xffff'8000'0020'3000ull);
  KEXPECT_EQ(view.table_address(0, v),
             VirtAddr::from(0xffff'ff00'0000'0000ull | ((v.value() >> 9) & 0x7f'ffff'f000ull)));
  KEXPECT_EQ(view.entry_address(0, v),
             VirtAddr::from(0xffff'ff00'0000'0000ull | ((v.value() >> 9) & 0x7f'ffff'fff8ull)));
  KEXPECT_EQ(view.table_address(1, v),
             VirtAddr::from(0xffff'ff7f'8000'0000ull | ((v.value() >> 18) & 0x3fff'f000ull)));
  KEXPECT_EQ(view.table_address(2, v),
             VirtAddr::from(0xffff'ff7f'bfc0'0000ull | ((v.value() >> 27) & 0x1f'f000ull)));
  KEXPECT(view.contains(view.table_address(0, v)));
  KEXPECT(!view.contains(v));
  KEXPECT(mm::RecursiveView<paging::X86_64>::at_slot(512).is_err());
}
KTEST(Paging_x86_32, RecursiveWindowAddresses) {
  auto view = KTRY(mm::RecursiveView<paging::X86_32>::at_slot(1023));
  VirtAddr v = VirtAddr::from(0xc012'3000ull);
  KEXPECT_EQ(view.table_address(1, v), VirtAddr::from(0xffff'f000ull));  // the PD
  KEXPECT_EQ(view.table_address(0, v), VirtAddr::from(0xffc0'0000ull + (0xc012'3000ull >> 22) * 0x1000));
  KEXPECT_EQ(view.entry_address(0, v), VirtAddr::from(0xffc0'0000ull + (0xc012'3000ull >> 12) * 4));
  KEXPECT_EQ(view.entry_address(1, v), VirtAddr::from(0xffff'f000ull + (0xc012'3000ull >> 22) * 4));
}

template <class F>
void recursive_slot_is_reserved(ktest::Context& ktest_ctx) {
  PAGING_ENV(env);
  {
    auto pt = KTRY(PageTable<F>::create(env.mem.window(), env.frames));
    constexpr ktl::u32 kSlot = F::kEntries - 2;
    KTRY(pt.install_recursive_slot(kSlot));
    KEXPECT_EQ(pt.recursive_slot().value_or(0), kSlot);
    KTRY(pt.install_recursive_slot(kSlot));  // already the self-reference: accepted
    auto view = KTRY(mm::RecursiveView<F>::at_slot(kSlot));
    VirtAddr window = view.window_start();
    KEXPECT_PAGING_ERR(pt.map(page_at<Size4K>(window + 0x1000), frame_at<Size4K>(kPhys), PageFlags()),
                       PagingError::Reserved);
    KEXPECT_PAGING_ERR(pt.unmap_range(window, 0x1000), PagingError::Reserved);
    // The root is visible through the window at the root's recursive address.
    auto self = KTRY(pt.translate(view.table_address(F::kLevels - 1, va<F>(0))));
    KEXPECT_EQ(self.frame, pt.root());
    KEXPECT(!self.flags.user());
    KEXPECT((!self.flags.executable() || ktl::is_same<F, paging::X86_32>));
    consistent(ktest_ctx, pt, env, view.table_address(F::kLevels - 1, va<F>(0)));
    // Another slot that is in use cannot become the self-reference.
    consume(KTRY(pt.map(page_at<Size4K>(va<F>(0)), frame_at<Size4K>(kPhys), PageFlags())));
    using G = paging::Geometry<F>;
    KEXPECT_PAGING_ERR(
        pt.install_recursive_slot(static_cast<ktl::u32>(G::index(G::linear(va<F>(0)), G::kTop))),
        PagingError::Reserved);
    consume(KTRY(pt.unmap(page_at<Size4K>(va<F>(0)))));
    tables_accounted(ktest_ctx, pt, env);
  }
}
KTEST(Paging_x86_64, RecursiveSlotIsReserved) { recursive_slot_is_reserved<paging::X86_64>(ktest_ctx); }
KTEST(Paging_x86_32, RecursiveSlotIsReserved) { recursive_slot_is_reserved<paging::X86_32>(ktest_ctx); }

// The flush batch coalesces: one range when the tokens are close, a full flush when scattered.
KTEST(Paging, FlushBatchHull) {
  mm::FlushBatch batch;
  KEXPECT(batch.empty());
  batch.add(TlbFlush::covering(VirtAddr::from(0x10000), 2));
  batch.add(TlbFlush::covering(VirtAddr::from(0x13000), 1));
  batch.add(TlbFlush::none());
  KEXPECT_EQ(batch.tokens(), 2u);
  KEXPECT_EQ(batch.hull_pages(), 4u);
  batch.add(TlbFlush::covering(VirtAddr::from(0xffff'ffff'ffff'f000ull), 1));  // the very last page
  KEXPECT_EQ(batch.hull_pages(), (0xffff'ffff'ffff'f000ull - 0x10000) / 0x1000 + 1);
  batch.ignore();
  KEXPECT(batch.empty());
}

}  // namespace
