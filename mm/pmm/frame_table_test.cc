// Tests of mm.frame_table: owners by kind, lazily allocated leaves (and their frames back at
// reset), all-or-nothing set_owner, reference counts, lookups racing with owner changes (TSan), and
// a seeded differential run against a model of owners and leaves (FERRITE_SEED replays it,
// FERRITE_OPS sets its length).
#include <gtest/gtest.h>

#include <map>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "testing/seed.h"

import ktl;
import mm.addr;
import mm.arch;
import mm.frame_table;
import mm.pmm;
import mm.testing.env;

namespace {

using ktl::u64;
using mm::FrameOwner;
using mm::FrameTable;
using mm::PhysAddr;

constexpr u64 kPage = mm::kPageSize;
constexpr u64 kMiB = 1 << 20;

class FrameTableTest : public testing::Test {
 protected:
  void SetUp() override {
    const mm::PhysMapEntry map[] = {
        {mm::PhysRange::with_size(memory_.base(), 8 * kMiB).value(), mm::PhysKind::Usable, mm::NodeId{0}},
    };
    ASSERT_TRUE(pmm_.init(ktl::Span<const mm::PhysMapEntry>(map), memory_.window()).is_ok());
    baseline_ = pmm_.free_frame_count();
  }
  void TearDown() override { EXPECT_EQ(pmm_.free_frame_count(), baseline_); }

  const void* view(PhysAddr p) { return memory_.window().bytes(p, 1).data(); }

  mm::test_env::TestMemory memory_ =
      mm::test_env::TestMemory::acquire_at(PhysAddr::from(4 * kMiB), 8 * kMiB).release_value();
  mm::Pmm pmm_;
  u64 baseline_ = 0;
};

TEST_F(FrameTableTest, OwnersAreFoundByPointerAndKind) {
  FrameTable table;
  ASSERT_TRUE(table.init(pmm_, memory_.window()).is_ok());
  EXPECT_EQ(table.metadata_frames(), 1u);  // the root: 8 MiB of window need 16 words
  mm::AllocatedFrames frames = pmm_.alloc_contiguous(3, kPage).release_value();
  int owner = 0;
  auto id = ktl::address_of(&owner);
  EXPECT_EQ(table.find(frames.start()), nullptr);  // no leaf yet
  ASSERT_TRUE(table.set_owner(frames.range(), FrameOwner::Slab, id).is_ok());
  EXPECT_EQ(table.metadata_frames(), 2u);  // one leaf
  for (u64 i = 0; i < 3; ++i) {
    PhysAddr p = frames.start() + i * kPage;
    EXPECT_EQ(table.owner_of(view(p + 100), FrameOwner::Slab), id);
    EXPECT_EQ(table.owner_of(view(p), FrameOwner::None), 0u);  // a different kind
    mm::FrameDesc* d = table.find(p);
    ASSERT_NE(d, nullptr);
    EXPECT_EQ(d->kind, FrameOwner::Slab);
    EXPECT_EQ(d->refs, 1u);  // the owner's
  }
  EXPECT_EQ(table.owner_of(view(frames.start() + 3 * kPage), FrameOwner::Slab), 0u);  // next frame
  EXPECT_EQ(table.owner_of(&owner, FrameOwner::Slab), 0u);                            // outside the window
  table.clear_owner(frames.range());
  EXPECT_EQ(table.owner_of(view(frames.start()), FrameOwner::Slab), 0u);
  EXPECT_EQ(table.find(frames.start())->kind, FrameOwner::None);
  table.reset();
  EXPECT_EQ(table.metadata_frames(), 0u);
}

// A copy of owners() taken before any leaf exists (as the slab allocator keeps one) sees owners
// set later through the table, and two owners of the table's frames do not see each other's.
TEST_F(FrameTableTest, ACopiedLookupSeesLaterOwnersOfEveryUser) {
  FrameTable table;
  EXPECT_FALSE(table.initialized());
  ASSERT_TRUE(table.init(pmm_, memory_.window()).is_ok());
  EXPECT_TRUE(table.initialized());
  EXPECT_EQ(&table.pmm(), &pmm_);
  mm::FrameOwners owners = table.owners();
  mm::AllocatedFrames a = pmm_.alloc_contiguous(2, kPage).release_value();
  mm::AllocatedFrames b = pmm_.alloc_contiguous(1, kPage).release_value();
  int first = 0, second = 0;
  ASSERT_TRUE(table.set_owner(a.range(), FrameOwner::Slab, ktl::address_of(&first)).is_ok());
  ASSERT_TRUE(table.set_owner(b.range(), FrameOwner::Slab, ktl::address_of(&second)).is_ok());
  EXPECT_EQ(owners.owner_of(view(a.start() + kPage + 8), FrameOwner::Slab), ktl::address_of(&first));
  EXPECT_EQ(owners.owner_of(view(b.start()), FrameOwner::Slab), ktl::address_of(&second));
  table.clear_owner(a.range());
  EXPECT_EQ(owners.owner_of(view(a.start()), FrameOwner::Slab), 0u);
  EXPECT_EQ(owners.owner_of(view(b.start()), FrameOwner::Slab), ktl::address_of(&second));
  table.clear_owner(b.range());
}

TEST_F(FrameTableTest, DescriptorsAreSmallAndLeavesComeOnlyWhereFramesAreOwned) {
  EXPECT_EQ(sizeof(mm::FrameDesc), 32u);
  EXPECT_EQ(FrameTable::kLeafEntries * sizeof(mm::FrameDesc), kPage);
  FrameTable table;
  ASSERT_TRUE(table.init(pmm_, memory_.window()).is_ok());
  // Two frames 512 KiB apart: two leaves. A run across a leaf boundary: both leaves.
  PhysAddr a = memory_.base() + 1 * kMiB;
  PhysAddr b = a + FrameTable::kLeafEntries * kPage;
  mm::AllocatedFrames fa = pmm_.claim(mm::Frame4K::from_start(a).value(), 1).release_value();
  mm::AllocatedFrames fb = pmm_.claim(mm::Frame4K::from_start(b - kPage).value(), 2).release_value();
  ASSERT_TRUE(table.set_owner(fa.range(), FrameOwner::Slab, 1).is_ok());
  ASSERT_TRUE(table.set_owner(fb.range(), FrameOwner::Slab, 2).is_ok());
  EXPECT_EQ(table.metadata_frames(), 1u + 2u);
  EXPECT_EQ(table.owner_of(view(b), FrameOwner::Slab), 2u);
  EXPECT_EQ(table.owner_of(view(b - kPage), FrameOwner::Slab), 2u);
  EXPECT_EQ(table.owner_of(view(a), FrameOwner::Slab), 1u);
  // The destructor frees leaves and root (TearDown's count).
}

TEST_F(FrameTableTest, SetOwnerIsAllOrNothing) {
  FrameTable table;
  ASSERT_TRUE(table.init(pmm_, memory_.window()).is_ok());
  mm::AllocatedFrames frames = pmm_.alloc_contiguous(2, kPage).release_value();
  std::vector<mm::AllocatedFrames> all;  // no frame left for a leaf
  for (;;) {
    auto f = pmm_.alloc_page();
    if (f.is_err()) break;
    all.push_back(f.release_value());
  }
  auto r = table.set_owner(frames.range(), FrameOwner::Slab, 7);
  ASSERT_TRUE(r.is_err());
  EXPECT_EQ(r.error(), mm::PmmError::OutOfMemory);
  EXPECT_EQ(table.owner_of(view(frames.start()), FrameOwner::Slab), 0u);
  EXPECT_EQ(table.metadata_frames(), 1u);
}

TEST_F(FrameTableTest, ReferenceCountsAndSecondOwnersAreChecked) {
  FrameTable table;
  ASSERT_TRUE(table.init(pmm_, memory_.window()).is_ok());
  mm::AllocatedFrames frames = pmm_.alloc_page().release_value();
  ASSERT_TRUE(table.set_owner(frames.range(), FrameOwner::Slab, 9).is_ok());
  mm::FrameDesc* d = table.find(frames.start());
  EXPECT_EQ(d->ref(), 2u);
  EXPECT_EQ(d->unref(), 1u);
  EXPECT_EQ(d->unref(), 0u);
  EXPECT_DEATH(d->unref(), "below zero");
  EXPECT_DEATH((void)table.set_owner(frames.range(), FrameOwner::Slab, 9), "has an owner already");
  EXPECT_DEATH(table.clear_owner(mm::PhysRange::with_size(memory_.base() + 8 * kMiB, kPage).value()),
               "outside the window");
}

TEST_F(FrameTableTest, LookupsRaceWithOwnerChangesOfOtherFrames) {
  FrameTable table;
  ASSERT_TRUE(table.init(pmm_, memory_.window()).is_ok());
  mm::AllocatedFrames stable = pmm_.alloc_page().release_value();
  ASSERT_TRUE(table.set_owner(stable.range(), FrameOwner::Slab, 42).is_ok());
  std::vector<mm::AllocatedFrames> churn;
  for (int i = 0; i < 64; ++i) churn.push_back(pmm_.alloc_page().release_value());
  std::thread writer([&] {
    for (int round = 0; round < 200; ++round) {
      for (auto& f : churn) EXPECT_TRUE(table.set_owner(f.range(), FrameOwner::Slab, 5).is_ok());
      for (auto& f : churn) table.clear_owner(f.range());
    }
  });
  const void* p = view(stable.start());
  for (int i = 0; i < 100000; ++i) {
    ASSERT_EQ(table.owner_of(p, FrameOwner::Slab), 42u);
    ktl::uptr o = table.owner_of(view(churn[i % churn.size()].start()), FrameOwner::Slab);
    ASSERT_TRUE(o == 0 || o == 5);
  }
  writer.join();
}

// The model: which frames have which owner, and which leaves exist (a leaf, once made, stays until
// reset). Operations: set_owner over a run of unowned frames, clear_owner over a run of owned ones,
// and exhausting the PMM down to 0-2 free frames, so that a set_owner needing more leaves than
// that fails with OutOfMemory after installing as many leaves as there were frames, lowest first,
// and changes no descriptor. After every operation the frames it touched are compared (owner_of
// through the table and through a lookup copied before the first leaf, find, the descriptor's
// fields, metadata_frames), and every 64 operations every frame of the window.
TEST_F(FrameTableTest, AgreesWithAModelOverRandomOwnerChanges) {
  const u64 seed = ferrite_testing::test_seed(1);
  const u64 ops = ferrite_testing::env_u64("FERRITE_OPS", 20'000);
  SCOPED_TRACE("FERRITE_SEED=" + std::to_string(seed));
  std::mt19937_64 rng(seed);
  FrameTable table;
  ASSERT_TRUE(table.init(pmm_, memory_.window()).is_ok());
  const mm::FrameOwners lookup = table.owners();
  const u64 frames = memory_.size() / kPage;
  const u64 leaf = FrameTable::kLeafEntries;
  std::map<u64, ktl::uptr> owner;  // frame index -> owner object
  std::set<u64> leaves;            // leaf indexes
  std::vector<mm::AllocatedFrames> hoard;
  u64 available = ~u64{0};  // frames the PMM can still give (unbounded unless exhausted)

  auto check_frame = [&](u64 f) {
    SCOPED_TRACE("frame " + std::to_string(f));
    PhysAddr p = memory_.base() + f * kPage;
    auto it = owner.find(f);
    const ktl::uptr want = it == owner.end() ? 0 : it->second;
    const void* inside = view(p + (f * 97) % kPage);
    ASSERT_EQ(table.owner_of(inside, FrameOwner::Slab), want);
    ASSERT_EQ(lookup.owner_of(inside, FrameOwner::Slab), want);
    ASSERT_EQ(table.owner_of(inside, FrameOwner::None), 0u);
    mm::FrameDesc* d = table.find(p);
    ASSERT_EQ(d != nullptr, leaves.count(f / leaf) == 1);
    if (d == nullptr) return;
    EXPECT_EQ(d->kind, want != 0 ? FrameOwner::Slab : FrameOwner::None);
    EXPECT_EQ(d->owner, want);
    EXPECT_EQ(d->refs, want != 0 ? 1u : 0u);
    EXPECT_EQ(d->next, nullptr);
    EXPECT_EQ(d->prev, nullptr);
    EXPECT_EQ(d->flags, 0u);
  };
  auto release_hoard = [&] {
    hoard.clear();
    available = ~u64{0};
  };

  for (u64 step = 0; step < ops; ++step) {
    SCOPED_TRACE("operation " + std::to_string(step));
    u64 first = 0, end = 0;  // the frames the operation touched
    const u64 op = rng() % 10;
    if (op < 5) {  // set_owner over a run of unowned frames
      first = rng() % frames;
      u64 limit = first + 1 + rng() % 300;
      for (end = first; end < frames && end < limit && owner.count(end) == 0;) ++end;
      if (end == first) continue;
      const ktl::uptr id = 1 + rng() % 1000;
      std::vector<u64> needed;
      for (u64 l = first / leaf; l <= (end - 1) / leaf; ++l)
        if (leaves.count(l) == 0) needed.push_back(l);
      auto r = table.set_owner(
          mm::PhysRange::with_size(memory_.base() + first * kPage, (end - first) * kPage).value(),
          FrameOwner::Slab, id);
      if (needed.size() > available) {
        ASSERT_TRUE(r.is_err());
        ASSERT_EQ(r.error(), mm::PmmError::OutOfMemory);
        for (u64 i = 0; i < available; ++i) leaves.insert(needed[i]);
        available = 0;
      } else {
        ASSERT_TRUE(r.is_ok()) << mm::to_string(r.error());
        leaves.insert(needed.begin(), needed.end());
        if (available != ~u64{0}) available -= needed.size();
        for (u64 f = first; f < end; ++f) owner[f] = id;
      }
    } else if (op < 8) {  // clear_owner over a run of owned frames
      if (owner.empty()) continue;
      auto it = owner.lower_bound(rng() % frames);
      if (it == owner.end()) it = owner.begin();
      first = it->first;
      u64 limit = first + 1 + rng() % 300;
      for (end = first; end < limit && owner.count(end) == 1;) owner.erase(end++);
      table.clear_owner(
          mm::PhysRange::with_size(memory_.base() + first * kPage, (end - first) * kPage).value());
    } else if (op == 8) {  // the PMM down to 0-2 free frames
      release_hoard();
      for (;;) {
        auto f = pmm_.alloc_page();
        if (f.is_err()) break;
        hoard.push_back(f.release_value());
      }
      available = rng() % 3;
      for (u64 i = 0; i < available; ++i) hoard.pop_back();
    } else {
      release_hoard();
    }
    for (u64 f = first; f < end; ++f) ASSERT_NO_FATAL_FAILURE(check_frame(f));
    ASSERT_EQ(table.metadata_frames(), 1 + leaves.size());
    if (step % 64 == 63)
      for (u64 f = 0; f < frames; ++f) ASSERT_NO_FATAL_FAILURE(check_frame(f));
  }
  release_hoard();
  for (u64 f = 0; f < frames; ++f) ASSERT_NO_FATAL_FAILURE(check_frame(f));
  table.reset();  // every leaf and the root back to the PMM (TearDown's count)
  EXPECT_FALSE(table.initialized());
  EXPECT_EQ(table.metadata_frames(), 0u);
}

}  // namespace
