// Allocation contexts (mm.frames' AllocContext) through the heap: an interrupt handler's C-style
// allocations are Atomic (no large objects, never a wait), and an allocation that may block waits
// for memory (mm::arch::wait_for_memory) and retries, for as long as the arch lets it. The host's
// mm.arch stands in for the kernel's hooks (kernel/mm_context.cc).
#include <gtest/gtest.h>

#include <vector>

import ktl;
import mm.arch;
import mm.frames;
import mm.heap;
import mm.testing.env;
import mm.slab.types;

namespace {

using mm::AllocContext;
using mm::HeapError;
using mm::test_env::TestHeap;

constexpr ktl::usize kLarge = 512 * 1024;

struct InterruptScope {
  InterruptScope() { mm::arch::set_host_interrupt_context(mm::arch::InterruptContext::Inside); }
  ~InterruptScope() { mm::arch::set_host_interrupt_context(mm::arch::InterruptContext::Outside); }
};

TEST(HeapContext, AnInterruptHandlersAllocationsAreAtomic) {
  auto env = TestHeap::create(mm::Hardening::Off, 16u << 20);
  ASSERT_TRUE(env.has_value());
  mm::Heap& heap = env->heap();
  {
    InterruptScope irq;
    EXPECT_TRUE(mm::arch::in_interrupt());
    void* small = heap.kmalloc(64);
    EXPECT_NE(small, nullptr);                 // the size classes serve atomic requests
    EXPECT_EQ(heap.kmalloc(kLarge), nullptr);  // a large object would take heap.large_objects
    EXPECT_EQ(heap.kmalloc_aligned(kLarge, 4096), nullptr);
    heap.kfree(small);
  }
  EXPECT_EQ(heap.allocate(kLarge, 0, AllocContext::Atomic).error(), HeapError::WouldBlock);
  void* large = heap.kmalloc(kLarge);  // outside: fine
  EXPECT_NE(large, nullptr);
  heap.kfree(large);
}

struct Waiting {
  mm::Heap* heap = nullptr;
  std::vector<void*>* held = nullptr;
  int calls = 0;
  int free_at_attempt = -1;  // frees one held block on this attempt
  ktl::u32 last_attempt = 0;
  ktl::u32 give_up_after = 3;
};

bool wait_hook(ktl::u32 attempt, void* p) {
  auto* w = static_cast<Waiting*>(p);
  ++w->calls;
  w->last_attempt = attempt;
  if (static_cast<int>(attempt) == w->free_at_attempt && !w->held->empty()) {
    w->heap->kfree(w->held->back());  // "another task freed memory meanwhile"
    w->held->pop_back();
  }
  return attempt < w->give_up_after;
}

struct HookScope {
  explicit HookScope(Waiting& w) { mm::arch::set_wait_for_memory_hook(&wait_hook, &w); }
  ~HookScope() { mm::arch::set_wait_for_memory_hook(nullptr, nullptr); }
};

TEST(HeapContext, AnAllocationThatMayBlockWaitsForMemoryAndRetries) {
  auto env = TestHeap::create(mm::Hardening::Off, 8u << 20);
  ASSERT_TRUE(env.has_value());
  mm::Heap& heap = env->heap();
  EXPECT_EQ(heap.memory_wait(), mm::MemoryWait::Never);  // test heaps: nobody else frees their memory
  heap.set_memory_wait(mm::MemoryWait::WhenShort);       // as the kernel heap
  std::vector<void*> held;
  // Without a way to wait, exhaustion is an immediate error: no frames, or not in few enough runs.
  HeapError exhausted = HeapError::OutOfMemory;
  for (;;) {
    auto r = heap.allocate(kLarge, 0, AllocContext::MayBlock);
    if (r.is_err()) {
      exhausted = r.error();
      EXPECT_TRUE(exhausted == HeapError::OutOfMemory || exhausted == HeapError::TooFragmented)
          << to_string(exhausted);
      break;
    }
    held.push_back(r.value());
  }
  ASSERT_GE(held.size(), 4u);
  Waiting w;
  w.heap = &heap;
  w.held = &held;
  {
    HookScope hook(w);
    // Memory comes back during the second wait: the allocation succeeds on its third try.
    w.free_at_attempt = 1;
    auto r = heap.allocate(kLarge, 0, AllocContext::MayBlock);
    ASSERT_TRUE(r.is_ok());
    EXPECT_EQ(w.calls, 2);
    held.push_back(r.value());
    // Nothing comes back: it waits while the arch lets it (attempts 0..3), then gives up.
    w.calls = 0;
    w.free_at_attempt = -1;
    EXPECT_EQ(heap.allocate(kLarge, 0, AllocContext::MayBlock).error(), exhausted);
    EXPECT_EQ(w.calls, 4);
    EXPECT_EQ(w.last_attempt, 3u);
    // A heap that never waits does not.
    w.calls = 0;
    heap.set_memory_wait(mm::MemoryWait::Never);
    EXPECT_EQ(heap.allocate(kLarge, 0, AllocContext::MayBlock).error(), exhausted);
    EXPECT_EQ(w.calls, 0);
    heap.set_memory_wait(mm::MemoryWait::WhenShort);
    // Atomic and interrupt-context requests never wait.
    w.calls = 0;
    EXPECT_EQ(heap.allocate(kLarge, 0, AllocContext::Atomic).error(), HeapError::WouldBlock);
    {
      InterruptScope irq;
      EXPECT_EQ(heap.kmalloc(kLarge), nullptr);
    }
    EXPECT_EQ(w.calls, 0);
    // The C-style surface may block outside interrupts: it waits too.
    w.free_at_attempt = 0;
    void* p = heap.kmalloc(kLarge);
    EXPECT_NE(p, nullptr);
    EXPECT_EQ(w.calls, 1);
    held.push_back(p);
  }
  for (void* p : held) heap.kfree(p);
}

}  // namespace
