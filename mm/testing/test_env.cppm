// mm.testing.env: what mm's tests get from the environment they run in, the same on the host and
// in the kernel's test mode. The environment implements the four hooks below once: the host in
// test_env_host.cc (part of this target; it also registers the software walker as the
// IndependentMmu of mm.paging.testing), the kernel in kernel/test_env.cc.
//
//  * TestMemory: zeroed physical memory and the window onto it (host: simulated, MAP_NORESERVE, so
//    only touched pages cost; kernel: contiguous frames from the kernel's PMM below 4 GiB, seen
//    through the direct map, so every byte is real). acquire_at() presents it at physical
//    addresses the test chooses: the window claims them while the bytes stay where the
//    environment found them, so PMM maps and high addresses mean the same on host and kernel.
//  * TestHeap: a private heap (its own PMM over its own memory, its own large-object area) that no one
//    else uses, so tests can count frames exactly. Its destruction checks that every frame came
//    back to that PMM (a leak panics with the counts).
//
// Not thread-safe: one test owns each instance.
module;

#include <ktl/macros.h>

export module mm.testing.env;

import ktl;
import mm.addr;
import mm.arch;
import mm.frame_table;
import mm.heap;
import mm.pmm;
import mm.slab;

// The environment's hooks (C linkage, like ferrite_panic).
export extern "C" {
  struct FerriteTestMemory {
    ktl::u64 base;  // physical address of the block
    ktl::u64 size;  // bytes
    ktl::u8* view;  // where the block is visible
    void* cookie;   // for release
  };
  // Provides `size` bytes (4 KiB multiple) of zeroed memory; false if it cannot. The host's is at
  // 16 MiB, the kernel's below 4 GiB.
  bool ferrite_test_memory_acquire(ktl::u64 size, FerriteTestMemory * out);
  void ferrite_test_memory_release(FerriteTestMemory * memory);

  struct FerriteHeapTestEnv {
    mm::Heap* heap;
    mm::Pmm* pmm;
    mm::FrameTable* frames;  // the frame table beside pmm
    void* cookie;
  };
  // A fresh heap over `phys_bytes` of test memory; false if the environment cannot provide one.
  bool ferrite_heap_test_env_create(ktl::u64 phys_bytes, bool hardened, FerriteHeapTestEnv* out);
  // Destroys the heap and checks that its PMM got every frame back (panics otherwise).
  void ferrite_heap_test_env_destroy(FerriteHeapTestEnv * env);
}

export namespace mm::test_env {

using ktl::u64;

class TestMemory : ktl::NoCopy {
 public:
  // `size` bytes at the environment's own physical addresses.
  [[nodiscard]] static ktl::Optional<TestMemory> acquire(u64 size) {
    FerriteTestMemory m{};
    if (!ferrite_test_memory_acquire(size, &m)) return ktl::nullopt;
    return TestMemory(m, PhysAddr::from(m.base));
  }
  // `size` bytes presented as physical [base, base + size) (4 KiB aligned).
  [[nodiscard]] static ktl::Optional<TestMemory> acquire_at(PhysAddr base, u64 size) {
    ktl::check(base.is_aligned(kPageSize), "TestMemory::acquire_at: unaligned base");
    FerriteTestMemory m{};
    if (!ferrite_test_memory_acquire(size, &m)) return ktl::nullopt;
    return TestMemory(m, base);
  }
  inline TestMemory(TestMemory&& o) : m_(o.m_), base_(o.base_), live_(ktl::exchange(o.live_, false)) {}
  TestMemory& operator=(TestMemory&&) = delete;
  inline ~TestMemory() {
    if (live_) ferrite_test_memory_release(&m_);
  }
  [[nodiscard]] inline PhysWindow window() const { return PhysWindow(base_, m_.size, m_.view); }
  [[nodiscard]] inline PhysAddr base() const { return base_; }
  [[nodiscard]] inline PhysAddr end() const { return base_ + m_.size; }
  [[nodiscard]] inline u64 size() const { return m_.size; }
  [[nodiscard]] inline PhysRange range() const { return PhysRange::with_size(base_, m_.size).value(); }

 private:
  inline TestMemory(FerriteTestMemory m, PhysAddr base) : m_(m), base_(base) {}
  FerriteTestMemory m_;
  PhysAddr base_;
  bool live_ = true;
};

class TestHeap : ktl::NoCopy {
 public:
  [[nodiscard]] static ktl::Optional<TestHeap> create(Hardening hardening = Hardening::On,
                                                      u64 phys_bytes = u64{64} << 20) {
    FerriteHeapTestEnv env{};
    if (!ferrite_heap_test_env_create(phys_bytes, hardening == Hardening::On, &env)) return ktl::nullopt;
    return TestHeap(env);
  }
  inline TestHeap(TestHeap&& o) : env_(o.env_), live_(ktl::exchange(o.live_, false)) {}
  TestHeap& operator=(TestHeap&&) = delete;
  inline ~TestHeap() {
    if (live_) ferrite_heap_test_env_destroy(&env_);
  }
  [[nodiscard]] inline Heap& heap() const { return *env_.heap; }
  [[nodiscard]] inline Pmm& pmm() const { return *env_.pmm; }
  [[nodiscard]] inline SlabAllocator& slab() const { return env_.heap->slab(); }
  [[nodiscard]] inline FrameTable& frames() const { return *env_.frames; }

  // Frames the PMM has free plus the heap's own bookkeeping and the frame table (which only
  // grow): constant across any sequence of operations that frees what it allocated, once caches
  // are drained.
  [[nodiscard]] inline u64 balance() const {
    heap().slab().flush_local_cpu();
    (void)heap().reclaim(0);
    return pmm().free_frame_count() + heap().stats().metadata_frames + frames().metadata_frames();
  }

 private:
  inline explicit TestHeap(FerriteHeapTestEnv env) : env_(env) {}
  FerriteHeapTestEnv env_;
  bool live_ = true;
};

// Writes `n` bytes of a pattern derived from `seed` at `p`; check_pattern verifies them. Tests
// use it to show that an object's contents survive other operations (and krealloc).
inline void fill_pattern(void* p, ktl::usize n, u64 seed) {
  KTL_UNSAFE_BUFFER_BEGIN  // the caller passes n bytes at p
  ktl::Span<ktl::u8> s = ktl::Span<ktl::u8>::from_raw(static_cast<ktl::u8*>(p), n);
  KTL_UNSAFE_BUFFER_END
  for (ktl::usize i = 0; i < n; ++i) s[i] = static_cast<ktl::u8>((seed * 131 + i * 7) >> 1);
}
[[nodiscard]] inline bool check_pattern(const void* p, ktl::usize n, u64 seed) {
  KTL_UNSAFE_BUFFER_BEGIN  // the caller passes n bytes at p
  ktl::Span<const ktl::u8> s = ktl::Span<const ktl::u8>::from_raw(static_cast<const ktl::u8*>(p), n);
  KTL_UNSAFE_BUFFER_END
  for (ktl::usize i = 0; i < n; ++i) {
    if (s[i] != static_cast<ktl::u8>((seed * 131 + i * 7) >> 1)) return false;
  }
  return true;
}

}  // namespace mm::test_env
