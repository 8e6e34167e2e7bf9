// mm.pmm unit tests written as KTEST bodies: they run as GoogleTest cases on the host (pmm_test)
// and in the kernel's test mode. Their memory is mm.testing.env's TestMemory presented at the
// physical addresses each test's map uses (host: simulated; kernel: real frames), at most a few
// hundred MiB.
//
// Every test ends with a LeakCheck: the free-frame count must be back to where it started and the
// PMM's invariants (summary levels, counters) must hold.
#include <ktest/ktest.h>
#include <ktl/macros.h>

import ktl;
import ktest;
import mm.addr;
import mm.arch;
import mm.frames;
import mm.pmm;
import mm.testing.env;

namespace {

using ktl::u32;
using ktl::u64;
using ktl::usize;
using mm::AllocatedFrames;
using mm::AllocOptions;
using mm::Fallback;
using mm::Frame4K;
using mm::FrameState;
using mm::NodeId;
using mm::PhysAddr;
using mm::PhysKind;
using mm::PhysMapEntry;
using mm::Pmm;
using mm::PmmError;
using mm::test_env::TestMemory;

constexpr u64 KiB = 1024, MiB = 1024 * KiB, GiB = 1024 * MiB;
constexpr u64 kPage = 4096;

PhysMapEntry region(u64 start, u64 end, PhysKind kind, u32 node = 0) {
  return PhysMapEntry{mm::PhysRange::try_from(PhysAddr::from(start), PhysAddr::from(end)).value(), kind,
                      NodeId{node}};
}
Frame4K frame_at(u64 addr) { return Frame4K::from_start(PhysAddr::from(addr)).value(); }

// Checks at the end of the test (declare it after the Pmm and before any owner) that every frame
// came back and the invariants hold.
class LeakCheck {
 public:
  LeakCheck(ktest::Context& ctx, const Pmm& pmm) : ctx_(ctx), pmm_(pmm), baseline_(pmm.free_frame_count()) {}
  LeakCheck(const LeakCheck&) = delete;
  LeakCheck& operator=(const LeakCheck&) = delete;
  ~LeakCheck() {
    ctx_.check_eq(pmm_.free_frame_count(), baseline_, "free frames at the end", "free frames at the start",
                  __FILE__, __LINE__);
    ctx_.check(pmm_.check_invariants(), "pmm.check_invariants()", __FILE__, __LINE__);
  }

 private:
  ktest::Context& ctx_;
  const Pmm& pmm_;
  u64 baseline_;
};

// The standard 8 MiB machine at 16 MiB:
//   [16M, 17M)        usable
//   [17M, 17M+256K)   kernel image
//   [17M+256K, 20M)   usable
//   [20M, 20M+64K)    firmware
//   [20M+64K, 21M)    hole
//   [21M, 24M)        usable (the metadata lands at its top)
constexpr u64 kBase = 16 * MiB;
constexpr u64 kSize = 8 * MiB;
constexpr u64 kKernel = 17 * MiB;
constexpr u64 kFirmware = 20 * MiB;
constexpr u64 kHole = 20 * MiB + 64 * KiB;
ktl::Array<PhysMapEntry, 5> standard_map() {
  return {{
      region(16 * MiB, 17 * MiB, PhysKind::Usable),
      region(kKernel, kKernel + 256 * KiB, PhysKind::KernelImage),
      region(kKernel + 256 * KiB, 20 * MiB, PhysKind::Usable),
      region(kFirmware, kHole, PhysKind::Firmware),
      region(21 * MiB, 24 * MiB, PhysKind::Usable),
  }};
}
constexpr u64 kUsableBytes = 1 * MiB + (3 * MiB - 256 * KiB) + 3 * MiB;

// The set-up the tests share: declares `mem` (test memory presented at physical
// [base, base + size)), `pmm` (initialised from `map` over it) and the LeakCheck, which runs after
// every owner the test declares later.
#define PMM_ON(map, base, size)                                        \
  auto mem = KTRY(TestMemory::acquire_at(PhysAddr::from(base), size)); \
  Pmm pmm;                                                             \
  auto&& pmm_map = (map);                                              \
  KASSERT_OK(pmm.init(pmm_map.span(), mem.window()));                  \
  LeakCheck leak(ktest_ctx, pmm)
#define STANDARD_PMM() PMM_ON(standard_map(), kBase, kSize)

bool in_usable(u64 addr) {
  for (const PhysMapEntry& r : standard_map()) {
    if (r.kind == PhysKind::Usable && r.range.contains(PhysAddr::from(addr))) return true;
  }
  return false;
}

// --- building from the map ------------------------------------------------------------------------

KTEST(Pmm, InitAccountsForEveryByte) {
  STANDARD_PMM();

  mm::MemStats s = pmm.stats();
  u64 metadata = 0;
  for (usize i = 0; i < pmm.metadata_block_count(); ++i) metadata += pmm.metadata_block(i).size();
  KEXPECT_LT(0u, metadata);
  KEXPECT_EQ(s.metadata_bytes, metadata);
  KEXPECT_EQ(s.reserved_bytes, 256 * KiB + 64 * KiB);
  KEXPECT_EQ(s.total_bytes, kUsableBytes + 256 * KiB + 64 * KiB);
  KEXPECT_EQ(s.free_bytes, kUsableBytes - metadata);
  KEXPECT_EQ(s.used_bytes, 0u);
  KEXPECT_EQ(s.total_bytes, s.free_bytes + s.used_bytes + s.reserved_bytes + s.metadata_bytes);
  KEXPECT_EQ(pmm.free_frame_count() * kPage, s.free_bytes);
  auto node0 = pmm.node_stats(NodeId{0});
  KASSERT(node0.has_value());
  KEXPECT_EQ(node0.value(), s);
  KEXPECT(!pmm.node_stats(NodeId{1}).has_value());
}

KTEST(Pmm, MetadataIsCarvedFromTheTopOfUsableMemory) {
  STANDARD_PMM();

  KASSERT_LE(1u, pmm.metadata_block_count());
  mm::PhysRange first = pmm.metadata_block(0);
  KEXPECT_EQ(first.end(), PhysAddr::from(24 * MiB));  // the top of the highest usable range
  for (usize i = 0; i < pmm.metadata_block_count(); ++i) {
    mm::PhysRange b = pmm.metadata_block(i);
    for (u64 a = b.start().value(); a < b.end().value(); a += kPage) {
      KEXPECT(in_usable(a));
      KEXPECT_EQ(pmm.state_of(frame_at(a)), FrameState::Metadata);
    }
  }
  // The bitmaps really live there: they are not all zero (usable frames are marked free).
  bool nonzero = false;
  for (ktl::u8 byte : mem.window().bytes(first.start(), first.size())) nonzero = nonzero || byte != 0;
  KEXPECT(nonzero);
}

KTEST(Pmm, HandsOutEveryUsableFrameAndNothingElse) {
  STANDARD_PMM();

  const u64 available = pmm.free_frame_count();
  u64 n = 0;
  u64 previous = 0;
  for (;;) {
    auto r = pmm.alloc_page_unowned();
    if (r.is_err()) {
      KEXPECT_EQ(r.error(), PmmError::OutOfMemory);
      break;
    }
    u64 a = r.value().start().value();
    KEXPECT(in_usable(a));
    KEXPECT_EQ(pmm.state_of(r.value()), FrameState::Allocated);
    KEXPECT_LT(previous, a + 1);  // lowest address first: ascending
    previous = a;
    ++n;
  }
  KEXPECT_EQ(n, available);
  KEXPECT_EQ(pmm.free_frame_count(), 0u);
  KEXPECT_EQ(pmm.stats().used_bytes, available * kPage);
  // Exhaustion is an error, never a reserved frame.
  KEXPECT_EQ(pmm.alloc_page().error(), PmmError::OutOfMemory);
  KEXPECT_EQ(pmm.alloc_contiguous(1, kPage).error(), PmmError::OutOfMemory);
  // Everything allocated is exactly the usable frames minus the metadata (no array of frames:
  // kernel stacks are small).
  u64 freed = 0;
  for (u64 a = kBase; a < kBase + kSize; a += kPage) {
    if (pmm.state_of(frame_at(a)) != FrameState::Allocated) continue;
    KEXPECT(in_usable(a));
    KEXPECT_OK(pmm.free_page(frame_at(a)));
    ++freed;
  }
  KEXPECT_EQ(freed, n);
}

// The last atomic_reserve() frames go to atomic requests only; claims and frees keep the count the
// reserve is checked against exact.
KTEST(Pmm, OnlyAtomicRequestsTakeTheReserve) {
  STANDARD_PMM();
  const u64 available = pmm.free_frame_count();
  KEXPECT_EQ(pmm.set_atomic_reserve(available + 1).error(), PmmError::InvalidRequest);
  constexpr u64 kReserve = 8;
  KASSERT_OK(pmm.set_atomic_reserve(kReserve));
  KEXPECT_EQ(pmm.atomic_reserve(), kReserve);
  mm::AllocOptions atomic;
  atomic.context = mm::AllocContext::Atomic;
  mm::AllocOptions no_reclaim;
  no_reclaim.context = mm::AllocContext::NoReclaim;

  // Non-atomic requests get everything above the reserve, and nothing more.
  u64 taken = 0;
  u64 frame = 0;
  for (;; ++taken) {
    auto r = pmm.alloc_page_unowned(taken % 2 == 0 ? mm::AllocOptions{} : no_reclaim);
    if (r.is_err()) {
      KEXPECT_EQ(r.error(), PmmError::OutOfMemory);
      break;
    }
    frame = r.value().start().value();
  }
  KEXPECT_EQ(taken, available - kReserve);
  KEXPECT_EQ(pmm.free_frame_count(), kReserve);
  KEXPECT_EQ(pmm.alloc_contiguous(1, kPage).error(), PmmError::OutOfMemory);
  // A freed frame is above the reserve again; claiming it takes it back.
  KEXPECT_OK(pmm.free_page(frame_at(frame)));
  {
    auto claimed = KTRY(pmm.claim_page(frame_at(frame)));
    KEXPECT_EQ(pmm.alloc_page().error(), PmmError::OutOfMemory);
  }
  auto page = KTRY(pmm.alloc_page());
  KEXPECT_EQ(page.start().value(), frame);  // lowest address first: the one just given back
  // Atomic requests take the reserve, down to the last frame.
  auto reserve = KTRY(pmm.alloc_page(atomic));
  for (u64 i = 1; i < kReserve; ++i) KEXPECT_OK(pmm.alloc_page_unowned(atomic));
  KEXPECT_EQ(pmm.free_frame_count(), 0u);
  KEXPECT_EQ(pmm.alloc_page(atomic).error(), PmmError::OutOfMemory);
  KEXPECT(pmm.check_invariants());
  // Give back the unowned frames (every allocated frame but the two owned ones).
  for (u64 a = kBase; a < kBase + kSize; a += kPage) {
    if (pmm.state_of(frame_at(a)) == FrameState::Allocated && a != frame && a != reserve.start().value()) {
      KEXPECT_OK(pmm.free_page(frame_at(a)));
    }
  }
  KASSERT_OK(pmm.set_atomic_reserve(0));
}

int g_pressure_calls = 0;
void count_pressure(void* context) { ++*static_cast<int*>(context); }

// The pressure hook (kswapd's wake-up) fires on each crossing below its threshold, not on every
// allocation below it.
KTEST(Pmm, ThePressureHookFiresOnEachCrossing) {
  STANDARD_PMM();
  g_pressure_calls = 0;
  const u64 available = pmm.free_frame_count();
  const u64 threshold = available - 10;
  pmm.set_pressure_hook(threshold, &count_pressure, &g_pressure_calls);
  ktl::Array<u64, 16> frames{};
  for (u64 i = 0; i < 10; ++i) frames[i] = KTRY(pmm.alloc_page_unowned()).start().value();
  KEXPECT_EQ(g_pressure_calls, 0);  // exactly at the threshold: not below yet
  frames[10] = KTRY(pmm.alloc_page_unowned()).start().value();
  KEXPECT_EQ(g_pressure_calls, 1);
  frames[11] = KTRY(pmm.alloc_page_unowned()).start().value();
  KEXPECT_EQ(g_pressure_calls, 1);  // still below: no second call
  KEXPECT_OK(pmm.free_page(frame_at(frames[11])));
  KEXPECT_OK(pmm.free_page(frame_at(frames[10])));  // back at the threshold
  {
    auto claimed = KTRY(pmm.claim_page(frame_at(frames[10])));  // a claim crosses too
    KEXPECT_EQ(g_pressure_calls, 2);
  }
  pmm.set_pressure_hook(0, nullptr, nullptr);
  for (u64 i = 0; i < 10; ++i) KEXPECT_OK(pmm.free_page(frame_at(frames[i])));
  KEXPECT_EQ(pmm.free_frame_count(), available);
}

KTEST(Pmm, UnalignedRegionEdgesAreNeverHandedOut) {
  ktl::Array<PhysMapEntry, 2> map{{
      region(kBase + 0x800, kBase + 2 * MiB + 0x800, PhysKind::Usable),
      region(kBase + 2 * MiB + 0x800, kBase + 4 * MiB, PhysKind::Usable),
  }};
  PMM_ON(map, kBase, 4 * MiB);
  // The frame at kBase is only partly usable and no region covers its start.
  KEXPECT_EQ(pmm.state_of(frame_at(kBase)), FrameState::NotManaged);
  // The frame holding the boundary belongs wholly to neither usable region.
  KEXPECT_EQ(pmm.state_of(frame_at(kBase + 2 * MiB)), FrameState::NotManaged);
  KEXPECT_EQ(pmm.state_of(frame_at(kBase + kPage)), FrameState::Free);
  auto first = pmm.alloc_page();
  KASSERT_OK(first);
  KEXPECT_EQ(first.value().start(), PhysAddr::from(kBase + kPage));
}

KTEST(Pmm, RejectsBadMaps) {
  auto mem = KTRY(TestMemory::acquire_at(PhysAddr::from(kBase), kSize));
  {
    Pmm pmm;
    ktl::Array<PhysMapEntry, 2> unsorted{
        {region(20 * MiB, 24 * MiB, PhysKind::Usable), region(16 * MiB, 20 * MiB, PhysKind::Usable)}};
    KEXPECT_EQ(pmm.init(unsorted.span(), mem.window()).error(), PmmError::UnsortedMap);
  }
  {
    Pmm pmm;
    ktl::Array<PhysMapEntry, 2> overlapping{
        {region(16 * MiB, 20 * MiB, PhysKind::Usable), region(19 * MiB, 21 * MiB, PhysKind::KernelImage)}};
    KEXPECT_EQ(pmm.init(overlapping.span(), mem.window()).error(), PmmError::OverlappingMap);
  }
  {
    Pmm pmm;
    ktl::Array<PhysMapEntry, 1> bad_node{{region(16 * MiB, 20 * MiB, PhysKind::Usable, mm::kMaxNumaNodes)}};
    KEXPECT_EQ(pmm.init(bad_node.span(), mem.window()).error(), PmmError::UnknownNode);
  }
  {
    Pmm pmm;
    ktl::Array<PhysMapEntry, 2> none{{region(16 * MiB, 20 * MiB, PhysKind::Reserved),
                                      region(20 * MiB, 20 * MiB + 0x800, PhysKind::Usable)}};
    KEXPECT_EQ(pmm.init(none.span(), mem.window()).error(), PmmError::NoUsableMemory);
  }
  {
    Pmm pmm;  // one usable frame cannot hold a bitmap and the region table
    ktl::Array<PhysMapEntry, 1> tiny{{region(16 * MiB, 16 * MiB + kPage, PhysKind::Usable)}};
    KEXPECT_EQ(pmm.init(tiny.span(), mem.window()).error(), PmmError::NoMemoryForMetadata);
    KEXPECT_EQ(pmm.alloc_page().error(), PmmError::NotInitialized);
    KEXPECT_EQ(pmm.free_page(frame_at(16 * MiB)).error(), PmmError::NotInitialized);
  }
  {
    Pmm pmm;  // the map goes beyond the window, and the metadata would land there
    ktl::Array<PhysMapEntry, 1> beyond{{region(16 * MiB, 32 * MiB, PhysKind::Usable)}};
    KEXPECT_EQ(pmm.init(beyond.span(), mem.window()).error(), PmmError::MetadataNotMapped);
  }
  {
    Pmm pmm;
    auto map = standard_map();
    KASSERT_OK(pmm.init(map.span(), mem.window()));
    LeakCheck leak(ktest_ctx, pmm);
    KEXPECT_EQ(pmm.init(map.span(), mem.window()).error(), PmmError::AlreadyInitialized);
  }
}

KTEST(Pmm, HolesLargerThanTheMergeGapMakeSeparateArenas) {
  // 3 x 1 MiB of RAM spread over 200 MiB (simulated memory is only touched where metadata goes).
  ktl::Array<PhysMapEntry, 4> map{{
      region(1 * MiB, 2 * MiB, PhysKind::Usable),
      region(2 * MiB + 32 * MiB, 3 * MiB + 32 * MiB, PhysKind::Usable),  // 32 MiB hole: merged
      region(150 * MiB, 151 * MiB, PhysKind::Usable),                    // ~116 MiB hole: new arena
      region(199 * MiB, 200 * MiB, PhysKind::Device),
  }};
  PMM_ON(map, 0, 200 * MiB);
  KEXPECT_EQ(pmm.arena_count(), 2u);
  KEXPECT_EQ(pmm.state_of(frame_at(20 * MiB)), FrameState::NotManaged);  // inside the merged hole
  KEXPECT_EQ(pmm.state_of(frame_at(199 * MiB)), FrameState::Reserved);
  // A run never spans the hole.
  KEXPECT_EQ(pmm.alloc_contiguous(257, kPage).error(), PmmError::OutOfMemory);
}

// --- ownership ------------------------------------------------------------------------------------

KTEST(Pmm, OwnerReturnsItsFramesWhenDestroyed) {
  STANDARD_PMM();
  const u64 before = pmm.free_frame_count();
  {
    AllocatedFrames one = KTRY(pmm.alloc_page());
    AllocatedFrames run = KTRY(pmm.alloc_contiguous(16, 16 * kPage));
    KEXPECT_EQ(one.count(), 1u);
    KEXPECT_EQ(run.count(), 16u);
    KEXPECT(run.start().is_aligned(16 * kPage));
    KEXPECT_EQ(pmm.free_frame_count(), before - 17);
    KEXPECT_EQ(pmm.state_of(one.first()), FrameState::Allocated);
  }
  KEXPECT_EQ(pmm.free_frame_count(), before);
  AllocatedFrames early = KTRY(pmm.alloc_page());
  early.reset();
  KEXPECT(early.empty());
  KEXPECT_EQ(pmm.free_frame_count(), before);
}

KTEST(Pmm, MovingTransfersOwnership) {
  STANDARD_PMM();
  const u64 before = pmm.free_frame_count();
  AllocatedFrames a = KTRY(pmm.alloc_page());
  Frame4K fa = a.first();
  AllocatedFrames b(ktl::move(a));
  KEXPECT(a.empty());  // NOLINT(bugprone-use-after-move): the moved-from owner is defined empty
  KEXPECT_EQ(b.first().start(), fa.start());
  AllocatedFrames c = KTRY(pmm.alloc_page());
  Frame4K fc = c.first();
  c = ktl::move(b);  // c's old frame is freed, c now owns fa
  KEXPECT_EQ(pmm.state_of(fc), FrameState::Free);
  KEXPECT_EQ(pmm.state_of(fa), FrameState::Allocated);
  KEXPECT_EQ(pmm.free_frame_count(), before - 1);
}

KTEST(Pmm, ReleaseHandsOwnershipOn) {
  STANDARD_PMM();
  mm::FrameRange<mm::Size4K> frames(frame_at(kBase), 0);
  {
    AllocatedFrames run = KTRY(pmm.alloc_contiguous(4, kPage));
    frames = run.release();
    KEXPECT(run.empty());
  }
  KEXPECT_EQ(frames.count(), 4u);
  for (u64 i = 0; i < frames.count(); ++i) KEXPECT_EQ(pmm.state_of(frames[i]), FrameState::Allocated);
  KEXPECT_OK(pmm.free_frames(frames.first(), frames.count()));
}

KTEST(Pmm, SplitConsumesTheOriginal) {
  STANDARD_PMM();
  const u64 before = pmm.free_frame_count();
  AllocatedFrames run = KTRY(pmm.alloc_contiguous(8, kPage));
  PhysAddr start = run.start();
  mm::SplitFrames parts = ktl::move(run).split_at(3);
  KEXPECT(run.empty());  // NOLINT(bugprone-use-after-move)
  KEXPECT_EQ(parts.head.start(), start);
  KEXPECT_EQ(parts.head.count(), 3u);
  KEXPECT_EQ(parts.tail.start(), start + 3 * kPage);
  KEXPECT_EQ(parts.tail.count(), 5u);
  parts.head.reset();
  KEXPECT_EQ(pmm.free_frame_count(), before - 5);
  KEXPECT_EQ(pmm.state_of(frame_at(start.value())), FrameState::Free);
  KEXPECT_EQ(pmm.state_of(frame_at(start.value() + 3 * kPage)), FrameState::Allocated);
}

// --- contiguous runs and limits ---------------------------------------------------------------------

KTEST(Pmm, TwoMebibyteFramesAreAlignedRuns) {
  STANDARD_PMM();
  const u64 before = pmm.free_frame_count();
  // [16M, 18M) holds the kernel; [18M, 20M) is the only wholly free aligned 2 MiB ([22M, 24M) holds
  // the metadata).
  AllocatedFrames huge = KTRY(pmm.alloc_frame_of<mm::Size2M>());
  KEXPECT_EQ(huge.start(), PhysAddr::from(18 * MiB));
  KEXPECT_EQ(huge.count(), 512u);
  KEXPECT_EQ(pmm.state_of(frame_at(20 * MiB - kPage)), FrameState::Allocated);
  KEXPECT_EQ(pmm.alloc_frame_of<mm::Size2M>().error(), PmmError::OutOfMemory);
  KEXPECT_EQ(pmm.free_frame_count(), before - 512);  // the failure changed nothing
  // Smaller aligned runs still fit elsewhere.
  AllocatedFrames quad = KTRY(pmm.alloc_contiguous(3, 16 * kPage));
  KEXPECT(quad.start().is_aligned(16 * kPage));
  KEXPECT_EQ(quad.start(), PhysAddr::from(16 * MiB));
  KEXPECT_EQ(pmm.alloc_contiguous(0, kPage).error(), PmmError::InvalidRequest);
  KEXPECT_EQ(pmm.alloc_contiguous(1, 3000).error(), PmmError::InvalidRequest);
  KEXPECT_EQ(pmm.alloc_contiguous(1, 2048).error(), PmmError::InvalidRequest);
}

KTEST(Pmm, RunSearchFindsTheOnlyFittingHole) {
  STANDARD_PMM();
  // Take every free frame, one owner per free run (three usable ranges).
  ktl::Array<AllocatedFrames, 3> all{};
  usize held = 0;
  while (pmm.free_frame_count() > 0) {
    Frame4K start = KTRY(pmm.alloc_page_unowned());  // the lowest free frame
    KEXPECT_OK(pmm.free_page(start));
    u64 len = 0;
    while (pmm.state_of(frame_at(start.start().value() + len * kPage)) == FrameState::Free) ++len;
    KASSERT(held < 3);
    all[held++] = KTRY(pmm.claim(start, len));
  }
  KEXPECT_EQ(held, 3u);
  // Free every other frame of [16M, 17M)...
  mm::FrameRange<mm::Size4K> low = all[0].release();
  KEXPECT_EQ(low.count(), 256u);
  for (u64 i = 0; i < low.count(); i += 2) KEXPECT_OK(pmm.free_page(low[i]));
  // ...and one run of 8 frames inside [17M + 256K, 20M).
  const u64 hole = 19 * MiB + 20 * KiB;
  mm::SplitFrames a = ktl::move(all[1]).split_at((hole - all[1].start().value()) / kPage);
  mm::SplitFrames b = ktl::move(a.tail).split_at(8);
  b.head.reset();
  // Only that run holds 8 frames, or even 2.
  AllocatedFrames eight = KTRY(pmm.alloc_contiguous(8, kPage));
  KEXPECT_EQ(eight.start(), PhysAddr::from(hole));
  const u64 free_now = pmm.free_frame_count();
  KEXPECT_EQ(pmm.alloc_contiguous(2, kPage).error(), PmmError::OutOfMemory);
  KEXPECT_EQ(pmm.free_frame_count(), free_now);
  AllocatedFrames single = KTRY(pmm.alloc_page());
  KEXPECT_EQ(single.start(), PhysAddr::from(16 * MiB));
  single.reset();
  // Give back the odd frames of [16M, 17M); the owners return the rest.
  for (u64 i = 1; i < low.count(); i += 2) KEXPECT_OK(pmm.free_page(low[i]));
}

KTEST(Pmm, DmaLimitKeepsRunsBelowFourGibibytes) {
  ktl::Array<PhysMapEntry, 1> map{{region(4 * GiB - 4 * MiB, 4 * GiB + 4 * MiB, PhysKind::Usable)}};
  PMM_ON(map, 4 * GiB - 4 * MiB, 8 * MiB);
  AllocOptions dma{.below = PhysAddr::from(4 * GiB)};
  // One 2 MiB DMA buffer, then single frames until the space below 4 GiB is gone.
  AllocatedFrames buffer = KTRY(pmm.alloc_contiguous(512, 2 * MiB, dma));
  KEXPECT_LE(buffer.range().end(), PhysAddr::from(4 * GiB));
  u64 below = 512;
  for (;;) {
    auto r = pmm.alloc_page_unowned(dma);
    if (r.is_err()) {
      KEXPECT_EQ(r.error(), PmmError::OutOfMemory);
      break;
    }
    KEXPECT_LT(r.value().start().value(), 4 * GiB);
    ++below;
  }
  KEXPECT_EQ(below, 4 * MiB / kPage);  // every frame below 4 GiB, the metadata is above
  KEXPECT_EQ(pmm.alloc_contiguous(1, kPage, dma).error(), PmmError::OutOfMemory);
  // Memory above the limit is still there for everyone else.
  AllocatedFrames high = KTRY(pmm.alloc_page());
  KEXPECT_EQ(high.start(), PhysAddr::from(4 * GiB));
  KEXPECT_OK(pmm.free_frames(frame_at(4 * GiB - 2 * MiB), 512));
}

KTEST(Pmm, PreferredNodeFirstThenFallback) {
  ktl::Array<PhysMapEntry, 3> map{{
      region(16 * MiB, 18 * MiB, PhysKind::Usable, 0),
      region(18 * MiB, 20 * MiB, PhysKind::Usable, 1),
      region(20 * MiB, 24 * MiB, PhysKind::Usable, 0),
  }};
  PMM_ON(map, kBase, kSize);
  KEXPECT_EQ(pmm.arena_count(), 3u);
  auto n0 = pmm.node_stats(NodeId{0});
  auto n1 = pmm.node_stats(NodeId{1});
  KASSERT(n0.has_value() && n1.has_value());
  KEXPECT_EQ(n0->total_bytes, 6 * MiB);
  KEXPECT_EQ(n1->total_bytes, 2 * MiB);
  KEXPECT_LT(0u, n0->metadata_bytes);  // each node's bitmaps live on that node
  KEXPECT_LT(0u, n1->metadata_bytes);
  KEXPECT_EQ(pmm.state_of(frame_at(20 * MiB - kPage)), FrameState::Metadata);

  AllocOptions on1{.node = NodeId{1}, .fallback = Fallback::None};
  AllocatedFrames first = KTRY(pmm.alloc_page(on1));
  KEXPECT_EQ(first.start(), PhysAddr::from(18 * MiB));
  KEXPECT_EQ(pmm.node_stats(NodeId{1})->used_bytes, kPage);
  KEXPECT_EQ(pmm.node_stats(NodeId{0})->used_bytes, 0u);
  // Drain node 1.
  u64 taken = 0;
  while (pmm.alloc_page_unowned(on1).is_ok()) ++taken;
  KEXPECT_EQ(pmm.node_stats(NodeId{1})->free_bytes, 0u);
  KEXPECT_EQ(pmm.alloc_page(on1).error(), PmmError::OutOfMemory);
  KEXPECT_EQ(pmm.alloc_contiguous(2, kPage, on1).error(), PmmError::OutOfMemory);
  // With fallback the request goes to node 0.
  AllocatedFrames spill = KTRY(pmm.alloc_page(AllocOptions{.node = NodeId{1}}));
  KEXPECT_EQ(spill.start(), PhysAddr::from(16 * MiB));
  // A node without memory; a node that cannot exist.
  KEXPECT_EQ(pmm.alloc_page(AllocOptions{.node = NodeId{5}, .fallback = Fallback::None}).error(),
             PmmError::OutOfMemory);
  KEXPECT_EQ(pmm.alloc_page(AllocOptions{.node = NodeId{mm::kMaxNumaNodes}}).error(),
             PmmError::InvalidRequest);
  KEXPECT(!pmm.node_stats(NodeId{5}).has_value());
  // A range may not run from one arena into the next (node 0 -> node 1 at 18 MiB).
  KEXPECT_EQ(pmm.free_frames(frame_at(18 * MiB - kPage), 2).error(), PmmError::CrossesArena);
  KEXPECT_EQ(pmm.claim(frame_at(18 * MiB - kPage), 2).error(), PmmError::CrossesArena);
  KEXPECT_OK(pmm.free_frames(frame_at(18 * MiB + kPage), taken));
}

// --- misuse is detected, reported, and changes nothing -----------------------------------------------

KTEST(Pmm, DoubleFreeIsDetected) {
  STANDARD_PMM();
  Frame4K f = KTRY(pmm.alloc_page_unowned());
  KEXPECT_OK(pmm.free_page(f));
  const u64 free_now = pmm.free_frame_count();
  KEXPECT_EQ(pmm.free_page(f).error(), PmmError::DoubleFree);
  KEXPECT_EQ(pmm.free_page(f).error(), PmmError::DoubleFree);
  KEXPECT_EQ(pmm.free_frame_count(), free_now);
  // A run with one free frame in the middle: nothing of it is freed.
  AllocatedFrames run = KTRY(pmm.alloc_contiguous(5, kPage));
  mm::FrameRange<mm::Size4K> frames = run.release();
  KEXPECT_OK(pmm.free_page(frames[2]));
  const u64 before = pmm.free_frame_count();
  KEXPECT_EQ(pmm.free_frames(frames.first(), 5).error(), PmmError::DoubleFree);
  KEXPECT_EQ(pmm.free_frame_count(), before);
  KEXPECT_EQ(pmm.state_of(frames[0]), FrameState::Allocated);
  KEXPECT_OK(pmm.free_frames(frames.first(), 2));
  KEXPECT_OK(pmm.free_frames(frames[3], 2));
}

KTEST(Pmm, FreeOfUnmanagedFramesIsDetected) {
  STANDARD_PMM();
  KEXPECT_EQ(pmm.state_of(frame_at(kHole)), FrameState::NotManaged);
  KEXPECT_EQ(pmm.free_page(frame_at(kHole)).error(), PmmError::NotManaged);
  KEXPECT_EQ(pmm.free_page(frame_at(0)).error(), PmmError::NotManaged);
  KEXPECT_EQ(pmm.free_page(frame_at(1 * GiB)).error(), PmmError::NotManaged);
  // A run that starts in RAM and runs off its end into the hole.
  AllocatedFrames last = KTRY(pmm.claim(frame_at(kFirmware - kPage), 1));
  KEXPECT_EQ(pmm.free_frames(last.first(), 2).error(), PmmError::Reserved);  // the firmware frame
  KEXPECT_EQ(pmm.state_of(last.first()), FrameState::Allocated);
  KEXPECT_EQ(pmm.free_frames(frame_at(0), 0).error(), PmmError::InvalidRequest);
}

KTEST(Pmm, FreeOfReservedFramesIsDetected) {
  STANDARD_PMM();
  KEXPECT_EQ(pmm.state_of(frame_at(kKernel)), FrameState::Reserved);
  KEXPECT_EQ(pmm.free_page(frame_at(kKernel)).error(), PmmError::Reserved);
  KEXPECT_EQ(pmm.free_page(frame_at(kFirmware)).error(), PmmError::Reserved);
  Frame4K meta = Frame4K::containing(pmm.metadata_block(0).start());
  KEXPECT_EQ(pmm.free_page(meta).error(), PmmError::Metadata);
  KEXPECT_EQ(pmm.claim_page(meta).error(), PmmError::Metadata);
  KEXPECT_EQ(pmm.state_of(meta), FrameState::Metadata);
  // Nothing became allocatable.
  KEXPECT_EQ(pmm.state_of(frame_at(kKernel)), FrameState::Reserved);
  KEXPECT_EQ(pmm.claim_page(frame_at(kKernel)).error(), PmmError::Reserved);
}

KTEST(Pmm, SetPageUsedClaimsOneSpecificFrame) {
  STANDARD_PMM();
  Frame4K wanted = frame_at(19 * MiB);
  AllocatedFrames mine = KTRY(pmm.claim_page(wanted));
  KEXPECT_EQ(mine.first().start(), wanted.start());
  KEXPECT_EQ(pmm.state_of(wanted), FrameState::Allocated);
  KEXPECT_EQ(pmm.claim_page(wanted).error(), PmmError::AlreadyAllocated);
  KEXPECT_EQ(pmm.claim_page(frame_at(kHole)).error(), PmmError::NotManaged);
  mm::FrameRange<mm::Size4K> raw = mine.release();
  KEXPECT_OK(pmm.free_page(raw.first()));
  KEXPECT_EQ(pmm.state_of(wanted), FrameState::Free);
}

// --- interfaces and names ------------------------------------------------------------------------------

KTEST(Pmm, ServesPageTablesThroughFrameAllocator) {
  STANDARD_PMM();
  mm::FrameAllocator& frames = pmm;
  Frame4K a = KTRY(frames.allocate_frame());
  Frame4K b = KTRY(frames.allocate_frame());
  KEXPECT_NE(a.start(), b.start());
  KEXPECT_EQ(pmm.state_of(a), FrameState::Allocated);
  frames.free_frame(a);
  frames.free_frame(b);
  frames.free_frame(b);  // detected and logged, nothing corrupted (the LeakCheck verifies)
}

KTEST(Pmm, ValuesPrintByName) {
  ktl::InlineString<128> s;
  ktl::format_to(s, "{} {} {} {}", PmmError::DoubleFree, FrameState::Metadata, PhysKind::KernelImage,
                 NodeId{3});
  KEXPECT(s.view() == ktl::StringView("double free pmm-metadata kernel-image node3"));
  // Every enumerator has a text of its own (and no value past the last has one).
  ktl::EnumTextCheck errors = ktl::check_enum_text<PmmError>();
  KEXPECT(errors.ok);
  KEXPECT_EQ(errors.count, ktl::to_underlying(PmmError::AlreadyInstalled) + 1);
  KEXPECT(ktl::check_enum_text<PhysKind>().ok);
  KEXPECT(ktl::check_enum_text<FrameState>().ok);
}

// Each cause of a refused free (or claim) keeps its own code through the public API.
KTEST(Pmm, EachBadFreeCauseHasItsOwnError) {
  STANDARD_PMM();
  Frame4K f = KTRY(pmm.alloc_page_unowned());
  KEXPECT_OK(pmm.free_page(f));
  Frame4K meta = Frame4K::containing(pmm.metadata_block(0).start());
  struct Case {
    Frame4K frame;
    PmmError expected;
  };
  const Case cases[] = {
      {f, PmmError::DoubleFree},
      {frame_at(kHole), PmmError::NotManaged},
      {frame_at(kKernel), PmmError::Reserved},
      {meta, PmmError::Metadata},
  };
  for (const Case& c : cases) KEXPECT_EQ(pmm.free_page(c.frame).error(), c.expected);
  // Pairwise distinct: no two causes share a code.
  for (const Case& a : cases) {
    for (const Case& b : cases) {
      if (&a != &b) KEXPECT_NE(a.expected, b.expected);
    }
  }
  Pmm uninitialized;
  KEXPECT_EQ(uninitialized.free_page(f).error(), PmmError::NotInitialized);
  KEXPECT_EQ(pmm.free_frames(f, 0).error(), PmmError::InvalidRequest);
}

// Behind mm::FrameAllocator an allocation's error keeps its cause (it used to become
// InvalidRequest for everything but OutOfMemory).
KTEST(Pmm, FrameAllocatorErrorsKeepTheirCause) {
  Pmm uninitialized;
  mm::FrameAllocator& none = uninitialized;
  KEXPECT_EQ(none.allocate_frame().error(), mm::FrameError::NotInitialized);
  KEXPECT_EQ(mm::to_frame_error(PmmError::OutOfMemory), mm::FrameError::OutOfMemory);
  KEXPECT_EQ(mm::to_frame_error(PmmError::InvalidRequest), mm::FrameError::InvalidRequest);
  KEXPECT_EQ(mm::to_frame_error(PmmError::NotInitialized), mm::FrameError::NotInitialized);
  KEXPECT(ktl::check_enum_text<mm::FrameError>().ok);
}

}  // namespace
