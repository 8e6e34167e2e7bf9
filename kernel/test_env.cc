// The kernel's implementation of mm.testing.env, the environment of mm's KTEST bodies (test mode
// runs them in-kernel; the host's implementation is mm/testing/test_env_host.cc):
//
//  * TestMemory (ferrite_test_memory_acquire/release): zeroed, 2 MiB-aligned contiguous frames
//    below 4 GiB from the kernel's PMM, seen through the direct map.
//  * TestHeap (ferrite_heap_test_env_create/destroy): a private Pmm over such
//    a block, and a private Heap whose large allocations are Mappings of the kernel address space
//    (a 1 GiB slice of the test-heap slot, kernel::memory::layout), built like the kernel heap's
//    (kernel::memory::HeapSpace). Destroying it checks that every frame came back to the private
//    Pmm, frees the page tables the slice used, and returns the block.
//
// The environment objects live on the kernel heap (kmalloc): test state stays off the small
// kernel stacks.
#include <ktl/macros.h>
#include <ktl/new.h>

import ktl;
import mm.addr;
import mm.arch;
import mm.frame_table;
import mm.heap;
import mm.pmm;
import mm.slab;
import mm.testing.env;
import kernel.log;
import kernel.memory;

namespace {

using ktl::u64;
namespace layout = kernel::memory::layout;

constexpr u64 kFourGiB = u64{1} << 32;
constexpr u64 kTwoMiB = u64{2} << 20;

mm::AllocOptions below_4g() {
  mm::AllocOptions o;
  o.below = mm::PhysAddr::from(kFourGiB);
  return o;
}

// Contiguous, zeroed frames below 4 GiB (2 MiB aligned when the block is that large).
ktl::Optional<mm::AllocatedFrames> take_block(u64 bytes) {
  if (bytes == 0 || !ktl::is_aligned<u64>(bytes, mm::kPageSize) || !kernel::memory::initialized())
    return ktl::nullopt;
  u64 align = bytes >= kTwoMiB ? kTwoMiB : mm::kPageSize;
  auto frames = kernel::memory::pmm().alloc_contiguous(bytes / mm::kPageSize, align, below_4g());
  if (frames.is_err()) {
    klog::warn("test env: no {} KiB of contiguous memory below 4 GiB: {}", bytes >> 10, frames.error());
    return ktl::nullopt;
  }
  mm::AllocatedFrames block = frames.release_value();
  ktl::fill_bytes(kernel::memory::window().bytes(block.start(), block.size_bytes()), 0);
  return block;
}

struct HeapEnv {
  mm::AllocatedFrames block;
  mm::Pmm pmm;
  mm::FrameTable frames;  // over pmm, outlives the heap
  kernel::memory::HeapSpace space;
  ktl::u32 slot;
  u64 baseline_free = 0;
  ktl::Optional<mm::Heap> heap;

  // The PMM's free frames plus the frame table's (which only grows).
  [[nodiscard]] u64 accounted_free() const { return pmm.free_frame_count() + frames.metadata_frames(); }

  HeapEnv(mm::AllocatedFrames&& b, ktl::u32 s)
      : block(ktl::move(b)), space(kernel::memory::kernel_space()), slot(s) {}
  [[nodiscard]] mm::VirtRange large_object_range() const {
    return mm::VirtRange::with_size(mm::VirtAddr::from(layout::kTestHeapBase + slot * layout::kTestHeapBytes),
                                    layout::kTestHeapBytes)
        .value();
  }
};

ktl::u32 g_slots_used = 0;  // bit i: region slice i belongs to a live HeapEnv
static_assert(layout::kMaxTestHeaps <= 32);
static_assert(layout::kMaxTestHeaps * layout::kTestHeapBytes <= u64{1} << 39,
              "test heaps outside their slot");

}  // namespace

extern "C" bool ferrite_test_memory_acquire(u64 size, FerriteTestMemory* out) {
  auto block = take_block(size);
  if (!block) return false;
  mm::FrameRange<mm::Size4K> frames = block->release();
  out->base = frames.first().start().value();
  out->size = frames.size_bytes();
  out->view = kernel::memory::window().bytes(frames.first().start(), 0).data();
  out->cookie = nullptr;
  return true;
}

extern "C" void ferrite_test_memory_release(FerriteTestMemory* memory) {
  auto r = kernel::memory::pmm().free_frames(
      mm::Frame4K::from_start(mm::PhysAddr::from(memory->base)).value(), memory->size / mm::kPageSize);
  ktl::check_ok(r, "test memory: the block did not go back to the PMM");
  memory->size = 0;
}

extern "C" bool ferrite_heap_test_env_create(u64 phys_bytes, bool hardened, FerriteHeapTestEnv* out) {
  ktl::u32 slot = 0;
  while (slot < layout::kMaxTestHeaps && (g_slots_used & (1u << slot)) != 0) ++slot;
  if (slot == layout::kMaxTestHeaps) return false;
  auto block = take_block(phys_bytes);
  if (!block) return false;
  void* storage = mm::kmalloc(sizeof(HeapEnv));
  if (storage == nullptr) return false;
  auto* env = new (storage) HeapEnv(block.release_value(), slot);
  ktl::Array<mm::PhysMapEntry, 1> map{{{env->block.range(), mm::PhysKind::Usable, mm::NodeId{0}}}};
  if (auto r = env->pmm.init(map.span(), kernel::memory::window()); r.is_err()) {
    klog::warn("test env: the test PMM refused its block: {}", r.error());
    env->~HeapEnv();
    mm::kfree(env);
    return false;
  }
  if (auto r = env->frames.init(env->pmm, kernel::memory::window()); r.is_err()) {
    klog::warn("test env: no frame for the test PMM's frame table: {}", r.error());
    env->~HeapEnv();
    mm::kfree(env);
    return false;
  }
  env->baseline_free = env->accounted_free();
  mm::HeapConfig config;
  config.large_objects = env->large_object_range();
  config.space = &env->space;
  config.hardening = hardened ? mm::Hardening::On : mm::Hardening::Off;
  if (auto r = env->heap.emplace().init(env->frames, config); r.is_err()) {
    klog::warn("test env: the test heap did not start: {}", r.error());
    env->heap.reset();
    env->~HeapEnv();
    mm::kfree(env);
    return false;
  }
  // Nobody else frees a test heap's memory: waiting for it would only delay the test's error.
  env->heap->set_memory_wait(mm::MemoryWait::Never);
  g_slots_used |= 1u << slot;
  out->heap = &*env->heap;
  out->pmm = &env->pmm;
  out->frames = &env->frames;
  out->cookie = env;
  return true;
}

extern "C" void ferrite_heap_test_env_destroy(FerriteHeapTestEnv* e) {
  auto* env = static_cast<HeapEnv*>(e->cookie);
  env->heap.reset();  // frees every large object (destroying its Mappings) and every slab
  u64 free = env->accounted_free();
  if (free != env->baseline_free) {
    klog::error("test env: {} frames did not come back to the test heap's PMM", env->baseline_free - free);
    ktl::panic("heap test env: frames leaked");
  }
  kernel::memory::reclaim_tables(env->large_object_range());
  g_slots_used &= ~(1u << env->slot);
  env->~HeapEnv();  // the block goes back to the kernel's PMM
  mm::kfree(env);
  e->cookie = nullptr;
}
