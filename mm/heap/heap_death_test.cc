// Death tests: every class of bad free and every corruption the heap detects stops the program
// with a report that names what happened, the address and (for slab objects) the cache. Host
// only (GoogleTest death tests fork).
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <string>

#include <ktl/macros.h>

import ktl;
import mm.addr;
import mm.frame_table;
import mm.heap;
import mm.heap.host;
import mm.slab;

namespace {

using mm::Hardening;
using mm::heap_host::HostHeap;
using mm::heap_host::HostHeapOptions;

HostHeapOptions options(Hardening h) {
  HostHeapOptions o;
  o.phys_bytes = 64u << 20;
  o.hardening = h;
  return o;
}

class HeapDeathTest : public testing::TestWithParam<Hardening> {};

TEST_P(HeapDeathTest, DoubleFreeOfASlabObject) {
  EXPECT_DEATH(
      {
        HostHeap host(options(GetParam()));
        void* p = host.heap().kmalloc(64);
        host.heap().kfree(p);
        host.heap().kfree(p);
      },
      "double free of 0x[0-9a-f]+ in cache kmalloc-64");
}

TEST(HeapDeath, DelayedDoubleFreeIsCaughtWhenHardened) {
  EXPECT_DEATH(
      {
        HostHeap host(options(Hardening::On));
        void* p = host.heap().kmalloc(100);
        void* q = host.heap().kmalloc(100);
        host.heap().kfree(p);
        host.heap().kfree(q);  // p is no longer on top of the magazine
        host.heap().kfree(p);
      },
      "slab: double free of 0x[0-9a-f]+ in cache kmalloc-112");
}

TEST_P(HeapDeathTest, FreeOfAPointerNotFromTheHeap) {
  EXPECT_DEATH(
      {
        HostHeap host(options(GetParam()));
        int on_stack = 0;
        host.heap().kfree(&on_stack);
      },
      "invalid kfree of 0x[0-9a-f]+ \\(not from the heap\\)");
}

TEST_P(HeapDeathTest, FreeOfAMisalignedPointer) {
  EXPECT_DEATH(
      {
        HostHeap host(options(GetParam()));
        auto* p = static_cast<char*>(host.heap().kmalloc(64));
        host.heap().kfree(p + 3);
      },
      "invalid kfree \\(misaligned pointer\\) of 0x[0-9a-f]+ in cache kmalloc-64");
}

TEST_P(HeapDeathTest, FreeOfAnInteriorPointer) {
  EXPECT_DEATH(
      {
        HostHeap host(options(GetParam()));
        auto* p = static_cast<char*>(host.heap().kmalloc(256));
        host.heap().kfree(p + 16);
      },
      "invalid kfree \\(interior pointer, not the start of an object\\) of 0x[0-9a-f]+ in cache kmalloc-256");
}

TEST_P(HeapDeathTest, DoubleFreeOfALargeObject) {
  EXPECT_DEATH(
      {
        HostHeap host(options(GetParam()));
        void* p = host.heap().kmalloc(1 << 20);
        host.heap().kfree(p);
        host.heap().kfree(p);
      },
      "heap: double free of 0x[0-9a-f]+ in the large-object area");
}

TEST_P(HeapDeathTest, InteriorPointerIntoALargeObject) {
  EXPECT_DEATH(
      {
        HostHeap host(options(GetParam()));
        auto* p = static_cast<char*>(host.heap().kmalloc(1 << 20));
        host.heap().kfree(p + 8192);
      },
      "heap: invalid kfree \\(not an allocated object");
}

TEST_P(HeapDeathTest, UseAfterFreeOfALargeObjectFaults) {
  // Its Mapping is destroyed at once (the host view hidden first), so the access faults.
  EXPECT_DEATH(
      {
        HostHeap host(options(GetParam()));
        auto* p = static_cast<volatile char*>(host.heap().kmalloc(1 << 20));
        p[0] = 1;
        host.heap().kfree(const_cast<char*>(p));
        p[100] = 2;
      },
      "");
}

INSTANTIATE_TEST_SUITE_P(BothModes, HeapDeathTest, testing::Values(Hardening::On, Hardening::Off),
                         [](const testing::TestParamInfo<Hardening>& info) {
                           return info.param == Hardening::On ? std::string("Hardened")
                                                              : std::string("Plain");
                         });

// --- hardened-only detections ----------------------------------------------------------------------
// Under ASan the same bugs are ASan reports first (the bytes are poisoned): see the asan-only tests.
#if !defined(FERRITE_ASAN)
TEST(HeapDeath, WriteAfterFreeIsCaughtOnReuse) {
  EXPECT_DEATH(
      {
        HostHeap host(options(Hardening::On));
        auto* p = static_cast<char*>(host.heap().kmalloc(200));
        host.heap().kfree(p);
        p[17] = 'x';
        void* again = host.heap().kmalloc(200);  // the same object comes back: its poison is checked
        std::fprintf(stderr, "%p\n", again);
      },
      "slab: write after free detected \\(byte 17 is 0x78, not 0x6b\\) of 0x[0-9a-f]+ in cache kmalloc-224");
}

TEST(HeapDeath, OneByteOverflowIsCaughtAtFree) {
  EXPECT_DEATH(
      {
        HostHeap host(options(Hardening::On));
        auto* p = static_cast<char*>(host.heap().kmalloc(100));  // class 112: 12 spare bytes
        p[100] = 0;
        host.heap().kfree(p);
      },
      "slab: buffer overflow detected \\(redzone byte 0 past the 100-byte object overwritten\\) of "
      "0x[0-9a-f]+ in "
      "cache kmalloc-112");
}

TEST(HeapDeath, UnderflowIsCaughtAtFree) {
  EXPECT_DEATH(
      {
        HostHeap host(options(Hardening::On));
        auto* p = static_cast<char*>(host.heap().kmalloc(64));
        std::memset(p - 4, 0, 4);
        host.heap().kfree(p);
      },
      "slab: buffer underflow detected \\(left redzone overwritten\\) of 0x[0-9a-f]+ in cache kmalloc-64");
}

TEST(HeapDeath, LargeObjectOverflowIsCaughtAtFree) {
  EXPECT_DEATH(
      {
        HostHeap host(options(Hardening::On));
        auto* p = static_cast<char*>(host.heap().kmalloc(100000));
        p[100000] = 1;
        host.heap().kfree(p);
      },
      "heap: buffer overflow detected \\(byte 0 past the 100000-byte object overwritten\\)");
}

TEST(HeapDeath, CorruptedFreeListLinkIsCaught) {
  // A plain (not hardened) cache without magazines: freed objects go straight to the free list,
  // whose link sits in the middle of the object.
  EXPECT_DEATH(
      {
        HostHeap host(options(Hardening::Off));
        mm::SlabCache* c =
            host.heap().slab().create_cache("victim", 64, 8, nullptr, mm::CacheFlags::NoCpuCache).value();
        auto* a = static_cast<char*>(c->alloc());
        auto* b = static_cast<char*>(c->alloc());
        c->free(a);
        c->free(b);
        std::memset(b + 32, 0x41, 8);  // use after free overwrites b's link
        (void)c->alloc();              // b
        (void)c->alloc();              // follows the forged link
      },
      "slab: corrupted free list \\(a free object's link was overwritten\\) of 0x[0-9a-f]+ in cache victim");
}
#endif

TEST(HeapDeath, SlabFreeToTheWrongCacheIsCaughtWhenHardened) {
  EXPECT_DEATH(
      {
        HostHeap host(options(Hardening::On));
        mm::SlabCache* a = host.heap().slab().create_cache("cache-a", 64, 8).value();
        mm::SlabCache* b = host.heap().slab().create_cache("cache-b", 64, 8).value();
        void* p = a->alloc();
        b->free(p);
      },
      "slab: invalid slab_free \\(the object belongs to cache cache-a\\) of 0x[0-9a-f]+ in cache cache-b");
}

#if defined(FERRITE_ASAN)
// With ASan the heap tells it what is poisoned, so a use after free inside a slab is an ASan
// report at the faulting access (not only later, at reuse).
TEST(HeapAsanDeath, UseAfterFreeInsideASlabIsReportedByAsan) {
  EXPECT_DEATH(
      {
        HostHeap host(options(Hardening::Off));
        auto* p = static_cast<volatile char*>(host.heap().kmalloc(64));
        host.heap().kfree(const_cast<char*>(p));
        p[3] = 1;
      },
      "AddressSanitizer: use-after-poison");
}

TEST(HeapAsanDeath, OverflowIntoTheClassTailIsReportedByAsan) {
  EXPECT_DEATH(
      {
        HostHeap host(options(Hardening::Off));
        auto* p = static_cast<volatile char*>(host.heap().kmalloc(100));  // class 112
        p[104] = 1;
      },
      "AddressSanitizer: use-after-poison");
}
#endif

// A heap over a frame table nobody initialized is a programming error, stopped with its name
// before anything touches the missing PMM.
TEST(HeapDeath, AHeapOverAnUninitializedFrameTableStops) {
  EXPECT_DEATH(
      {
        mm::FrameTable frames;
        mm::Heap heap;
        (void)heap.init(frames, mm::HeapConfig{});
      },
      "the frame table is not initialized");
}

}  // namespace
