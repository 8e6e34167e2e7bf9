// Multithreaded stress of the heap and the per-CPU (here: per-thread) magazine layer. Runs under
// TSan too (heap_stress_test_tsan). Seeded (FERRITE_SEED replays; the seed is printed).
#include <gtest/gtest.h>
#include "testing/seed.h"

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include <ktl/macros.h>

import ktl;
import mm.heap;
import mm.heap.host;
import mm.slab;

namespace {

using mm::heap_host::HostHeap;

std::uint64_t balance(HostHeap& host) {
  host.heap().slab().flush_local_cpu();
  (void)host.heap().reclaim(0);
  return host.accounted_free_frames() + host.heap().stats().metadata_frames;
}

struct Block {
  std::uint8_t* p;
  std::size_t size;
  std::uint8_t tag;
};

// A mailbox per thread: blocks other threads hand over to be checked and freed here.
struct Mailbox {
  std::mutex lock;
  std::vector<Block> blocks;
};

bool intact(const Block& b) {
  for (std::size_t i = 0; i < b.size; ++i) {
    if (b.p[i] != static_cast<std::uint8_t>(b.tag + i)) return false;
  }
  return true;
}

TEST(HeapStress, ThreadsAllocateFreeAndHandOverAcrossThreads) {
  std::uint64_t seed = ferrite_testing::test_seed(77);
  SCOPED_TRACE(::testing::Message() << "FERRITE_SEED=" << seed);
  mm::heap_host::HostHeapOptions options;
  options.phys_bytes = std::uint64_t{512} << 20;
  options.hardening = mm::Hardening::On;
  HostHeap host(options);
  mm::Heap& heap = host.heap();
  std::uint64_t before = balance(host);

  constexpr int kThreads = 4;
  constexpr int kOps = 60000;
  std::vector<Mailbox> mail(kThreads);
  std::atomic<int> corrupt{0};
  std::atomic<int> done{0};
  auto worker = [&](int id) {
    std::mt19937_64 rng(seed * 1000 + id);
    std::vector<Block> mine;
    auto free_checked = [&](const Block& b) {
      if (!intact(b)) corrupt.fetch_add(1);
      heap.kfree(b.p);
    };
    for (int op = 0; op < kOps; ++op) {
      std::uint32_t r = rng() % 100;
      if (r < 50 || mine.empty()) {
        std::size_t size = rng() % 8 == 0 ? 1 + rng() % 70000 : 1 + rng() % 600;
        auto* p = static_cast<std::uint8_t*>(heap.kmalloc(size));
        if (p == nullptr) continue;
        Block b{p, size, static_cast<std::uint8_t>(rng())};
        for (std::size_t i = 0; i < size; ++i) p[i] = static_cast<std::uint8_t>(b.tag + i);
        mine.push_back(b);
      } else if (r < 80) {
        std::size_t i = rng() % mine.size();
        free_checked(mine[i]);
        mine[i] = mine.back();
        mine.pop_back();
      } else if (r < 95) {  // hand one over: another thread frees it (a remote free)
        std::size_t i = rng() % mine.size();
        Mailbox& to = mail[(id + 1 + rng() % (kThreads - 1)) % kThreads];
        {
          std::lock_guard<std::mutex> g(to.lock);
          to.blocks.push_back(mine[i]);
        }
        mine[i] = mine.back();
        mine.pop_back();
      } else {
        std::vector<Block> inbox;
        {
          std::lock_guard<std::mutex> g(mail[id].lock);
          inbox.swap(mail[id].blocks);
        }
        for (const Block& b : inbox) free_checked(b);
      }
    }
    for (const Block& b : mine) free_checked(b);
    done.fetch_add(1);
  };
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) threads.emplace_back(worker, i);
  for (auto& t : threads) t.join();  // each thread's exit returns its magazines
  for (Mailbox& m : mail) {
    for (const Block& b : m.blocks) {
      if (!intact(b)) corrupt.fetch_add(1);
      heap.kfree(b.p);
    }
  }
  EXPECT_EQ(corrupt.load(), 0);
  EXPECT_EQ(done.load(), kThreads);
  EXPECT_EQ(balance(host), before) << "frames leaked (magazines of exited threads?)";
  EXPECT_EQ(host.destroy_heap(), 0u);
}

TEST(HeapStress, DestroyDrainsTheMagazinesOfLiveThreads) {
  mm::heap_host::HostHeapOptions options;
  options.phys_bytes = std::uint64_t{64} << 20;
  HostHeap host(options);
  std::uint64_t before = balance(host);
  mm::SlabCache* cache = host.heap().slab().create_cache("shared", 96, 16).value();
  std::mutex m;
  std::condition_variable cv;
  int stage = 0;
  std::thread user([&] {
    std::vector<void*> objects;
    for (int i = 0; i < 500; ++i) objects.push_back(cache->alloc());
    for (void* p : objects) cache->free(p);  // they stay in this thread's magazines
    {
      std::lock_guard<std::mutex> g(m);
      stage = 1;
    }
    cv.notify_all();
    std::unique_lock<std::mutex> g(m);
    cv.wait(g, [&] { return stage == 2; });  // alive while the cache is destroyed
  });
  {
    std::unique_lock<std::mutex> g(m);
    cv.wait(g, [&] { return stage == 1; });
  }
  EXPECT_TRUE(host.heap().slab().destroy_cache(cache).is_ok());
  {
    std::lock_guard<std::mutex> g(m);
    stage = 2;
  }
  cv.notify_all();
  user.join();
  EXPECT_EQ(balance(host), before);
}

TEST(HeapStress, CachesComeAndGoWhileOthersAllocate) {
  mm::heap_host::HostHeapOptions options;
  options.phys_bytes = std::uint64_t{128} << 20;
  HostHeap host(options);
  std::uint64_t before = balance(host);
  std::atomic<bool> stop{false};
  std::thread allocator([&] {
    std::mt19937 rng(1);
    std::vector<void*> live;
    while (!stop.load()) {
      live.push_back(host.heap().kmalloc(1 + rng() % 2000));
      if (live.size() > 200) {
        for (void* p : live) host.heap().kfree(p);
        live.clear();
      }
    }
    for (void* p : live) host.heap().kfree(p);
  });
  for (int round = 0; round < 200; ++round) {
    mm::SlabCache* c = host.heap().slab().create_cache("ephemeral", 40 + round, 8).value();
    std::vector<void*> objects;
    for (int i = 0; i < 100; ++i) objects.push_back(c->alloc());
    for (void* p : objects) c->free(p);
    ASSERT_TRUE(host.heap().slab().destroy_cache(c).is_ok());
  }
  stop.store(true);
  allocator.join();
  EXPECT_EQ(balance(host), before);
}

}  // namespace
