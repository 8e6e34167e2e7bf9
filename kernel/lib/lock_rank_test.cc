// Tests of ktl.sync's lock ranks: increasing ranks pass, an inversion or a second lock of one rank
// panics naming both locks, ordered runs (fork's lock_all) pass and are released in reverse,
// try_lock is not order-checked, assert_held, unlocking a lock not held; and the rank enum agrees
// with the "Lock order" table of docs/ARCHITECTURE.md, row for row. Interrupt masking: a held lock
// masks interrupts through the installed hooks, nesting by count.
#include <gtest/gtest.h>

#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

import ktl;

// These tests do on purpose what the compile-time analysis rejects (wrong orders, unlocking what is
// not held): they test the run-time checker behind it.
#pragma clang diagnostic ignored "-Wthread-safety-analysis"

namespace {

using ktl::LockRank;
using ktl::SpinLock;

TEST(LockRank, IncreasingRanksPassAndAreForgottenOnUnlock) {
  SpinLock registry(LockRank::SlabRegistry), cache(LockRank::SlabCache), arena(LockRank::PmmArena);
  EXPECT_EQ(ktl::held_locks().depth(), 0u);
  registry.lock();
  cache.lock();
  arena.lock();
  EXPECT_EQ(ktl::held_locks().depth(), 3u);
  arena.unlock();
  cache.unlock();
  registry.unlock();
  EXPECT_EQ(ktl::held_locks().depth(), 0u);
  // A lock of a lower rank is fine again once the higher one is released.
  arena.lock();
  arena.unlock();
  registry.lock();
  registry.unlock();
}

TEST(LockRank, AnInversionPanicsNamingBothLocks) {
  SpinLock registry(LockRank::SlabRegistry), arena(LockRank::PmmArena);
  EXPECT_DEATH(
      {
        arena.lock();
        registry.lock();
      },
      "lock order violation: taking slab.registry \\(rank 5\\) while holding pmm.arena \\(rank 9\\)");
}

TEST(LockRank, TwoLocksOfOneRankPanicUnlessOrdered) {
  SpinLock a(LockRank::SlabCache), b(LockRank::SlabCache);
  EXPECT_DEATH(
      {
        a.lock();
        b.lock();
      },
      "taking slab.cache \\(rank 7\\) while holding slab.cache \\(rank 7\\)");
}

TEST(LockRank, OrderedRunsOfOneRankPassAndNestInRankOrder) {
  // Fork's lock_all: the registries, every cache, every arena; then the reverse.
  SpinLock registry(LockRank::SlabRegistry);
  std::vector<std::unique_ptr<SpinLock>> caches, internal, arenas;
  for (int i = 0; i < 40; ++i) caches.push_back(std::make_unique<SpinLock>(LockRank::SlabCache));
  for (int i = 0; i < 3; ++i) internal.push_back(std::make_unique<SpinLock>(LockRank::SlabInternalCache));
  for (int i = 0; i < 20; ++i) arenas.push_back(std::make_unique<SpinLock>(LockRank::PmmArena));
  registry.lock();
  for (auto& l : caches) l->lock_ordered();
  for (auto& l : internal) l->lock_ordered();
  for (auto& l : arenas) l->lock_ordered();
  EXPECT_EQ(ktl::held_locks().depth(), 4u);  // one entry per run
  caches[7]->assert_held();
  for (auto it = arenas.rbegin(); it != arenas.rend(); ++it) (*it)->unlock_ordered();
  for (auto it = internal.rbegin(); it != internal.rend(); ++it) (*it)->unlock_ordered();
  for (auto it = caches.rbegin(); it != caches.rend(); ++it) (*it)->unlock_ordered();
  registry.unlock();
  EXPECT_EQ(ktl::held_locks().depth(), 0u);
}

TEST(LockRank, AnOrderedRunStillRespectsTheRanks) {
  SpinLock cache(LockRank::SlabCache), registry(LockRank::SlabRegistry);
  EXPECT_DEATH(
      {
        cache.lock_ordered();
        registry.lock_ordered();
      },
      "taking \\(ordered\\) slab.registry \\(rank 5\\) while holding slab.cache \\(rank 7\\)");
  SpinLock a(LockRank::PmmArena), b(LockRank::PmmArena);
  EXPECT_DEATH(
      {
        a.lock_ordered();
        b.lock_ordered();
        a.unlock();  // an ordered lock goes back with unlock_ordered
      },
      "unlocking pmm.arena, which this thread does not hold");
}

TEST(LockRank, TryLockIsNotOrderCheckedButWhatItHoldsIs) {
  SpinLock arena(LockRank::PmmArena), registry(LockRank::SlabRegistry), log(LockRank::Log);
  arena.lock();
  ASSERT_TRUE(registry.try_lock());  // never waits, so it cannot deadlock
  registry.assert_held();
  log.lock();  // above both
  log.unlock();
  // Checked against every lock held, not just the innermost (here the try-locked registry).
  EXPECT_DEATH(SpinLock(LockRank::SlabCache).lock(),
               "taking slab.cache \\(rank 7\\) while holding pmm.arena");
  registry.unlock();
  arena.unlock();
}

TEST(LockRank, AssertHeldAndUnlockingALockNotHeld) {
  SpinLock a(LockRank::AddressSpace);
  EXPECT_DEATH(a.assert_held(), "lock not held by this thread");
  a.lock();
  a.assert_held();
  // Held by this thread, not by another one.
  std::thread other([&] { EXPECT_FALSE(ktl::held_locks().holds(a)); });
  other.join();
  a.unlock();
  EXPECT_DEATH(a.unlock(), "unlocking address-space, which this thread does not hold");
}

TEST(LockRank, TooManyLocksAtOnceIsReported) {
  EXPECT_DEATH(
      {
        std::vector<std::unique_ptr<SpinLock>> locks;
        for (int i = 0; i < 17; ++i) {
          locks.push_back(std::make_unique<SpinLock>(LockRank::Test));
          ASSERT_TRUE(locks.back()->try_lock());
        }
      },
      "more than 16 locks held at once");
}

// A fake CPU interrupt flag behind the hooks the kernel installs.
bool g_fake_interrupts_on = true;
int g_fake_enables = 0;
bool fake_disable() {
  bool was = g_fake_interrupts_on;
  g_fake_interrupts_on = false;
  return was;
}
void fake_enable() {
  g_fake_interrupts_on = true;
  ++g_fake_enables;
}

struct FakeInterruptHooks {
  FakeInterruptHooks() {
    g_fake_interrupts_on = true;
    g_fake_enables = 0;
    ktl::set_interrupt_hooks({&fake_disable, &fake_enable});
  }
  ~FakeInterruptHooks() { ktl::set_interrupt_hooks({}); }
};

TEST(InterruptMasking, AHeldLockMasksInterruptsUntilTheLastIsReleasedInAnyOrder) {
  FakeInterruptHooks hooks;
  SpinLock registry(LockRank::SlabRegistry), arena(LockRank::PmmArena);
  registry.lock();
  EXPECT_FALSE(g_fake_interrupts_on);
  arena.lock();
  EXPECT_EQ(ktl::interrupt_mask_depth(), 2u);
  registry.unlock();  // not the innermost: interrupts stay masked
  EXPECT_FALSE(g_fake_interrupts_on);
  EXPECT_EQ(g_fake_enables, 0);
  arena.unlock();
  EXPECT_TRUE(g_fake_interrupts_on);
  EXPECT_EQ(g_fake_enables, 1);
  EXPECT_EQ(ktl::interrupt_mask_depth(), 0u);
}

TEST(InterruptMasking, CodeThatRunsMaskedStaysMaskedAfterItsLocks) {
  FakeInterruptHooks hooks;
  g_fake_interrupts_on = false;  // an interrupt handler, say
  SpinLock arena(LockRank::PmmArena);
  arena.lock();
  arena.unlock();
  EXPECT_FALSE(g_fake_interrupts_on);
  EXPECT_EQ(g_fake_enables, 0);
  {
    ktl::InterruptsOff off;
    EXPECT_EQ(ktl::interrupt_mask_depth(), 1u);
  }
  EXPECT_FALSE(g_fake_interrupts_on);
}

TEST(InterruptMasking, AFailedTryLockLeavesInterruptsAsTheyWere) {
  FakeInterruptHooks hooks;
  SpinLock arena(LockRank::PmmArena);
  std::thread holder([&] { arena.lock(); });
  holder.join();                // the lock stays taken (by a thread that is gone)
  g_fake_interrupts_on = true;  // the fake flag is one for all threads: this thread's is on
  EXPECT_FALSE(arena.try_lock());
  EXPECT_TRUE(g_fake_interrupts_on);
  EXPECT_EQ(ktl::interrupt_mask_depth(), 0u);
}

TEST(InterruptMasking, OrderedRunsAndInterruptsOffNest) {
  FakeInterruptHooks hooks;
  SpinLock a(LockRank::SlabCache), b(LockRank::SlabCache);
  {
    ktl::InterruptsOff off;
    a.lock_ordered();
    b.lock_ordered();
    EXPECT_EQ(ktl::interrupt_mask_depth(), 3u);
    b.unlock_ordered();
    a.unlock_ordered();
    EXPECT_FALSE(g_fake_interrupts_on);
  }
  EXPECT_TRUE(g_fake_interrupts_on);
  EXPECT_EQ(g_fake_enables, 1);
}

TEST(InterruptMasking, UnbalancedPopPanics) {
  EXPECT_DEATH(ktl::pop_interrupts_off(), "pop_interrupts_off without a matching push");
}

TEST(LockRank, TheArchitectureTableListsTheRanksInOrder) {
  std::ifstream in("docs/ARCHITECTURE.md");
  ASSERT_TRUE(in) << "docs/ARCHITECTURE.md is not in the test's runfiles";
  std::string line;
  bool in_section = false;
  std::vector<std::string> rows;
  while (std::getline(in, line)) {
    if (line.rfind("## ", 0) == 0) {
      in_section = line == "## Lock order";
      continue;
    }
    // Table rows: "| `name` (what) | module | rule |"; the header and the rule line have no name.
    if (!in_section || line.rfind("| `", 0) != 0) continue;
    size_t end = line.find('`', 3);
    ASSERT_NE(end, std::string::npos) << line;
    rows.push_back(line.substr(3, end - 3));
  }
  std::vector<std::string> ranks;
  for (unsigned r = 1; r < ktl::kLockRankCount; ++r)  // all but Test, the last
    ranks.push_back(ktl::to_string(static_cast<LockRank>(r)));
  EXPECT_STREQ(ktl::to_string(static_cast<LockRank>(ktl::kLockRankCount)), "test");
  EXPECT_EQ(rows, ranks) << "the table in docs/ARCHITECTURE.md (\"Lock order\") and ktl::LockRank differ";
}

}  // namespace
