// Randomised differential test of the heap against a shadow model: a seeded stream of kmalloc,
// kcalloc, kmalloc_aligned, krealloc and kfree with sizes from 1 B to 1 MiB. The model keeps every
// live block's size and fill seed; every byte of a block is checked when it is freed or
// reallocated, blocks must never overlap, alignment rules must hold, and at the end every frame
// must be back. FERRITE_SEED=<n> replays a run; the seed is printed on failure.
#include <gtest/gtest.h>
#include "testing/seed.h"

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <random>
#include <vector>

#include <ktl/macros.h>

import ktl;
import mm.heap;
import mm.heap.host;
import mm.slab;

namespace {

using mm::Hardening;
using mm::heap_host::HostHeap;

struct Block {
  std::size_t size;
  std::uint32_t fill;
};

std::uint8_t byte_of(std::uint32_t fill, std::size_t i) {
  return static_cast<std::uint8_t>((fill ^ (i * 0x9e3779b1u) ^ (i >> 8)) & 0xff);
}
void fill(void* p, std::size_t n, std::uint32_t f) {
  auto* b = static_cast<std::uint8_t*>(p);
  for (std::size_t i = 0; i < n; ++i) b[i] = byte_of(f, i);
}
// The first differing byte, or n.
std::size_t verify(const void* p, std::size_t n, std::uint32_t f) {
  auto* b = static_cast<const std::uint8_t*>(p);
  for (std::size_t i = 0; i < n; ++i) {
    if (b[i] != byte_of(f, i)) return i;
  }
  return n;
}

class Differential {
 public:
  Differential(HostHeap& host, std::uint64_t seed) : heap_(host.heap()), rng_(seed) {}

  // 1 B .. 1 MiB, log-uniform-ish, most of them small.
  std::size_t random_size() {
    std::uint32_t r = rng_() % 100;
    if (r < 70) return 1 + rng_() % 512;
    if (r < 92) return 1 + rng_() % 16384;
    if (r < 98) return 1 + rng_() % 131072;
    return 1 + rng_() % (1u << 20);
  }

  ::testing::AssertionResult check_new(void* p, std::size_t size, std::size_t align) {
    if (p == nullptr) return ::testing::AssertionFailure() << "allocation of " << size << " bytes failed";
    auto a = ktl::address_of(p);
    std::size_t want = std::max<std::size_t>(align, size <= 8 ? 8 : 16);
    if (a % want != 0) return ::testing::AssertionFailure() << p << " not aligned to " << want;
    // No overlap with the neighbours in address order.
    auto next = blocks_.lower_bound(a);
    if (next != blocks_.end() && next->first < a + std::max<std::size_t>(size, 1)) {
      return ::testing::AssertionFailure() << "block " << p << "+" << size << " overlaps " << next->first;
    }
    if (next != blocks_.begin()) {
      auto prev = std::prev(next);
      if (prev->first + std::max<std::size_t>(prev->second.size, 1) > a) {
        return ::testing::AssertionFailure() << "block " << p << " overlaps the one at " << prev->first;
      }
    }
    return ::testing::AssertionSuccess();
  }

  ::testing::AssertionResult check_contents(std::uintptr_t a, const Block& b, std::size_t n) {
    KTL_UNSAFE_BUFFER_BEGIN  // the model's keys are addresses of live heap blocks
    std::size_t bad = verify(reinterpret_cast<void*>(a), n, b.fill);
    KTL_UNSAFE_BUFFER_END
    if (bad != n) {
      return ::testing::AssertionFailure()
             << "byte " << bad << " of the " << b.size << "-byte block at " << a << " changed";
    }
    return ::testing::AssertionSuccess();
  }

  ::testing::AssertionResult step() {
    std::uint32_t op = rng_() % 100;
    if (blocks_.empty() || (op < 40 && blocks_.size() < kMaxLive)) {
      std::size_t size = random_size();
      std::size_t align = 0;
      void* p = nullptr;
      if (op % 10 == 0) {
        std::size_t n = 1 + rng_() % 64;
        std::size_t each = 1 + rng_() % 256;
        size = n * each;
        p = heap_.kcalloc(n, each);
        if (p != nullptr && verify_zero(p, size) != size)
          return ::testing::AssertionFailure() << "kcalloc not zeroed";
      } else if (op % 10 == 1) {
        align = std::size_t{1} << (rng_() % 13);
        p = heap_.kmalloc_aligned(size, align);
      } else {
        p = heap_.kmalloc(size);
      }
      auto ok = check_new(p, size, align);
      if (!ok) return ok;
      Block b{size, static_cast<std::uint32_t>(rng_())};
      fill(p, size, b.fill);
      blocks_[ktl::address_of(p)] = b;
      ++allocs_;
    } else if (op < 60) {
      auto it = pick();
      std::size_t size = random_size();
      Block b = it->second;
      std::uintptr_t old = it->first;
      auto ok = check_contents(old, b, b.size);
      if (!ok) return ok;
      blocks_.erase(it);
      KTL_UNSAFE_BUFFER_BEGIN  // the model's keys are addresses of live heap blocks
      void* p = heap_.krealloc(reinterpret_cast<void*>(old), size);
      KTL_UNSAFE_BUFFER_END
      if (p == nullptr) return ::testing::AssertionFailure() << "krealloc to " << size << " failed";
      std::size_t kept = std::min(b.size, size);
      ok = check_contents(ktl::address_of(p), b, kept);
      if (!ok) return ok << " (after krealloc " << b.size << " -> " << size << ")";
      ok = check_new(p, size, 0);
      if (!ok) return ok;
      if (ktl::address_of(p) == old) ++in_place_;
      Block nb{size, static_cast<std::uint32_t>(rng_())};
      fill(p, size, nb.fill);
      blocks_[ktl::address_of(p)] = nb;
      ++reallocs_;
    } else {
      auto it = pick();
      auto ok = check_contents(it->first, it->second, it->second.size);
      if (!ok) return ok;
      KTL_UNSAFE_BUFFER_BEGIN  // the model's keys are addresses of live heap blocks
      heap_.kfree(reinterpret_cast<void*>(it->first));
      KTL_UNSAFE_BUFFER_END
      blocks_.erase(it);
    }
    return ::testing::AssertionSuccess();
  }

  ::testing::AssertionResult free_all() {
    for (auto& [a, b] : blocks_) {
      auto ok = check_contents(a, b, b.size);
      if (!ok) return ok;
      KTL_UNSAFE_BUFFER_BEGIN  // the model's keys are addresses of live heap blocks
      heap_.kfree(reinterpret_cast<void*>(a));
      KTL_UNSAFE_BUFFER_END
    }
    blocks_.clear();
    return ::testing::AssertionSuccess();
  }

  std::size_t allocs_ = 0, reallocs_ = 0, in_place_ = 0;

 private:
  static constexpr std::size_t kMaxLive = 3000;
  static std::size_t verify_zero(const void* p, std::size_t n) {
    auto* b = static_cast<const std::uint8_t*>(p);
    for (std::size_t i = 0; i < n; ++i) {
      if (b[i] != 0) return i;
    }
    return n;
  }
  std::map<std::uintptr_t, Block>::iterator pick() {
    auto it = blocks_.lower_bound(static_cast<std::uintptr_t>(rng_()) << 16 | rng_());
    return it == blocks_.end() ? blocks_.begin() : it;
  }

  mm::Heap& heap_;
  std::mt19937_64 rng_;
  std::map<std::uintptr_t, Block> blocks_;
};

void run(Hardening hardening, std::uint64_t default_seed, std::size_t steps) {
  std::uint64_t seed = ferrite_testing::test_seed(default_seed);
  SCOPED_TRACE(::testing::Message() << "FERRITE_SEED=" << seed);
  mm::heap_host::HostHeapOptions options;
  options.phys_bytes = std::uint64_t{1} << 30;
  options.hardening = hardening;
  options.seed = seed;
  HostHeap host(options);
  std::uint64_t free_before = host.accounted_free_frames() + host.heap().stats().metadata_frames;
  Differential d(host, seed);
  for (std::size_t i = 0; i < steps; ++i) {
    auto ok = d.step();
    if (!ok) {
      std::fprintf(stderr, "differential test failed at step %zu; replay with FERRITE_SEED=%llu\n", i,
                   static_cast<unsigned long long>(seed));
      ASSERT_TRUE(ok) << "step " << i;
    }
  }
  ASSERT_TRUE(d.free_all());
  host.heap().slab().flush_local_cpu();
  (void)host.heap().reclaim(0);
  EXPECT_EQ(host.accounted_free_frames() + host.heap().stats().metadata_frames, free_before)
      << "frames leaked; FERRITE_SEED=" << seed;
  EXPECT_GT(d.in_place_, 0u) << "krealloc never stayed in place";
  std::printf("seed %llu: %zu allocations, %zu reallocations (%zu in place)\n",
              static_cast<unsigned long long>(seed), d.allocs_, d.reallocs_, d.in_place_);
  EXPECT_EQ(host.destroy_heap(), 0u);
}

TEST(HeapDifferential, HardenedAgainstShadowModel) { run(Hardening::On, 20261122, 150000); }
TEST(HeapDifferential, PlainAgainstShadowModel) { run(Hardening::Off, 5, 150000); }

}  // namespace
