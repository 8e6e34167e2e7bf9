// mm.heap.testing: what the heap's KTEST bodies need from their environment, so the same bodies
// run on the host (GoogleTest, heap_testing_host.cc) and in the kernel's test mode.
//
// A TestHeap is a private heap (its own PMM over its own memory, its own heap region) that no one
// else uses, so tests can count frames exactly. Its destruction checks that every frame came back
// to that PMM (a leak panics with the counts).
//
// The kernel defines the two hooks (kernel/test_env.cc): a Pmm over a block of frames taken from
// the kernel's PMM (seen through the direct map), and large objects as Mappings of the kernel
// address space (mm.heap.paging) in a 1 GiB slice of the kernel's test-heap slot. The host's: the
// same Mappings over an address space in simulated memory (mm.heap.host).
module;

#include <ktl/macros.h>

export module mm.heap.testing;

import ktl;
import mm.addr;
import mm.heap;
import mm.pmm;
import mm.slab;

export extern "C" {
  struct FerriteHeapTestEnv {
    mm::Heap* heap;
    mm::Pmm* pmm;
    void* cookie;
  };
  // A fresh heap over `phys_bytes` of test memory; false if the environment cannot provide one.
  bool ferrite_heap_test_env_create(ktl::u64 phys_bytes, bool hardened, FerriteHeapTestEnv* out);
  // Destroys the heap and checks that its PMM got every frame back (panics otherwise).
  void ferrite_heap_test_env_destroy(FerriteHeapTestEnv * env);
}

export namespace mm::heap_testing {

class TestHeap : ktl::NoCopy {
 public:
  [[nodiscard]] static ktl::Optional<TestHeap> create(Hardening hardening = Hardening::On,
                                                      ktl::u64 phys_bytes = ktl::u64{64} << 20) {
    FerriteHeapTestEnv env{};
    if (!ferrite_heap_test_env_create(phys_bytes, hardening == Hardening::On, &env)) return ktl::nullopt;
    return TestHeap(env);
  }
  TestHeap(TestHeap&& o) : env_(o.env_), live_(ktl::exchange(o.live_, false)) {}
  TestHeap& operator=(TestHeap&&) = delete;
  ~TestHeap() {
    if (live_) ferrite_heap_test_env_destroy(&env_);
  }
  [[nodiscard]] Heap& heap() const { return *env_.heap; }
  [[nodiscard]] Pmm& pmm() const { return *env_.pmm; }
  [[nodiscard]] SlabAllocator& slab() const { return env_.heap->slab(); }

  // Frames the PMM has free plus the heap's own bookkeeping (which only grows): constant across
  // any sequence of operations that frees what it allocated, once caches are drained.
  [[nodiscard]] ktl::u64 balance() const {
    heap().slab().flush_local_cpu();
    (void)heap().reclaim(0);
    return pmm().free_frame_count() + heap().stats().metadata_frames;
  }

 private:
  explicit TestHeap(FerriteHeapTestEnv env) : env_(env) {}
  FerriteHeapTestEnv env_;
  bool live_ = true;
};

// Writes `n` bytes of a pattern derived from `seed` at `p`; check_pattern verifies them. Tests
// use it to show that an object's contents survive other operations (and krealloc).
inline void fill_pattern(void* p, ktl::usize n, ktl::u64 seed) {
  ktl::Span<ktl::u8> s = ktl::Span<ktl::u8>::from_raw(static_cast<ktl::u8*>(p), n);
  for (ktl::usize i = 0; i < n; ++i) s[i] = static_cast<ktl::u8>((seed * 131 + i * 7) >> 1);
}
[[nodiscard]] inline bool check_pattern(const void* p, ktl::usize n, ktl::u64 seed) {
  ktl::Span<const ktl::u8> s = ktl::Span<const ktl::u8>::from_raw(static_cast<const ktl::u8*>(p), n);
  for (ktl::usize i = 0; i < n; ++i) {
    if (s[i] != static_cast<ktl::u8>((seed * 131 + i * 7) >> 1)) return false;
  }
  return true;
}

}  // namespace mm::heap_testing
