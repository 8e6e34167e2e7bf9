// The host's environment (mm.testing.env): test memory is simulated physical memory (anonymous,
// MAP_NORESERVE), test heaps are HostHeaps (mm.heap.host), and the independent MMU of
// mm.paging.testing is the software walker (sim.walker), which decodes tables from the manuals'
// bit layouts without any of the engine's code.
module;

#include <sys/mman.h>

#include <cstdint>
#include <cstdio>
#include <new>

#include <ktl/macros.h>

module mm.testing.env;

import ktl;
import mm.addr;
import mm.arch;
import mm.heap;
import mm.heap.host;
import mm.paging.formats;
import mm.paging.types;
import mm.paging.testing;
import mm.pmm;
import sim.walker;

namespace {

// Every block starts at 16 MiB: below 4 GiB (the x86 32-bit format's limit) for blocks under
// 4 GiB - 16 MiB, and not at zero, so a physical address of 0 in a table is always a bug.
constexpr ktl::u64 kBase = 16ull << 20;

// What the loader writes to IA32_PAT (uefi_loader/main.cc): WB, WT, UC-, UC, WB, WC, UC-, UC.
constexpr std::uint64_t kLoaderPat = 0x0007'0106'0007'0406ull;
// What the aarch64 kernel must write to MAIR_EL1: Normal WB, Normal WT, Normal NC, Device-nGnRnE.
constexpr std::uint64_t kKernelMair = 0x0000'0000'0044'bbffull;

sim::MmuConfig config(mm::paging_testing::FormatId f) {
  sim::MmuConfig c;
  c.pat = kLoaderPat;
  c.mair = kKernelMair;
  switch (f) {
    case mm::paging_testing::FormatId::X86_64: c.mmu = sim::Mmu::X86_64; break;
    case mm::paging_testing::FormatId::X86_32: c.mmu = sim::Mmu::X86_32; break;
    case mm::paging_testing::FormatId::Aarch64Lower: c.mmu = sim::Mmu::Aarch64; break;
    case mm::paging_testing::FormatId::Aarch64Upper:
      c.mmu = sim::Mmu::Aarch64;
      c.upper_half = true;
      break;
  }
  return c;
}

// Returns false (and logs why) for attribute combinations the kernel must never produce.
bool cache_of(const sim::WalkResult& w, mm::CacheMode& out) {
  switch (w.memtype) {
    case sim::MemType::WriteBack: out = mm::CacheMode::WriteBack; break;
    case sim::MemType::WriteThrough: out = mm::CacheMode::WriteThrough; break;
    case sim::MemType::WriteCombining:
    case sim::MemType::NormalNonCacheable: out = mm::CacheMode::WriteCombining; break;
    case sim::MemType::Uncached:
    case sim::MemType::UncachedMinus: out = mm::CacheMode::Uncached; break;
    case sim::MemType::Device:
      if (w.device_kind != 0) return false;  // only Device-nGnRnE is used
      out = mm::CacheMode::Uncached;
      break;
    default: return false;
  }
  return true;
}

class WalkerMmu final : public mm::paging_testing::IndependentMmu {
 public:
  ktl::Optional<mm::Translation> translate(mm::paging_testing::FormatId format, const mm::PhysWindow& window,
                                           mm::PhysAddr root, mm::VirtAddr va) override {
    sim::MmuConfig cfg = config(format);
    sim::WalkResult w = sim::walk(window, cfg, root.value(), va.value());
    if (!w.ok()) return ktl::nullopt;
    mm::CacheMode cache = mm::CacheMode::WriteBack;
    const char* violation = nullptr;
    if (!cache_of(w, cache)) violation = "memory type the kernel never programs";
    if (cfg.mmu == sim::Mmu::Aarch64) {
      if (w.memtype != sim::MemType::Device && w.shareability != 3)
        violation = "normal memory not inner shareable";
      if (w.user && w.exec_kernel) violation = "user page executable by the kernel";
      if (!w.user && w.exec_user) violation = "kernel page executable by EL0";
    }
    mm::PageFlags f;
    if (w.writable) f = f.with(mm::Access::ReadWrite);
    if (w.user) f = f.with(mm::Privilege::User);
    if (w.user ? w.exec_user : w.exec_kernel) f = f.with(mm::Exec::Yes);
    if (w.global) f = f.with(mm::Scope::Global);
    f = f.with(cache);
    mm::Translation t{mm::PhysAddr::from(w.phys), mm::VirtAddr::from(w.page_va),
                      mm::PhysAddr::from(w.phys - (va.value() - w.page_va)), w.page_size, f};
    if (violation != nullptr) {
      ktl::log::error("walker: {} at {}", violation, va);
      t.page_size = 0;  // guaranteed to differ from any engine translation
    }
    return t;
  }
  ktl::u64 table_count(mm::paging_testing::FormatId format, const mm::PhysWindow& window,
                       mm::PhysAddr root) override {
    return sim::table_count(window, config(format), root.value());
  }
};

WalkerMmu g_walker;
struct Registration {
  Registration() { mm::paging_testing::independent_mmu() = &g_walker; }
} g_registration;

}  // namespace

extern "C" bool ferrite_test_memory_acquire(ktl::u64 size, FerriteTestMemory* out) {
  if (size == 0 || size % 4096 != 0) return false;
  void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) return false;
  *out = FerriteTestMemory{kBase, size, static_cast<ktl::u8*>(p), nullptr};
  return true;
}

extern "C" void ferrite_test_memory_release(FerriteTestMemory* memory) {
  munmap(memory->view, memory->size);
  memory->view = nullptr;
}

extern "C" bool ferrite_heap_test_env_create(ktl::u64 phys_bytes, bool hardened, FerriteHeapTestEnv* out) {
  mm::heap_host::HostHeapOptions options;
  options.phys_bytes = phys_bytes;
  options.hardening = hardened ? mm::Hardening::On : mm::Hardening::Off;
  auto* host = new (std::nothrow) mm::heap_host::HostHeap(options);
  if (host == nullptr) return false;
  // Nobody else frees a test heap's memory: waiting for it would only delay the test's error.
  host->heap().set_memory_wait(mm::MemoryWait::Never);
  *out = FerriteHeapTestEnv{&host->heap(), &host->pmm(), &host->frame_table(), host};
  return true;
}

extern "C" void ferrite_heap_test_env_destroy(FerriteHeapTestEnv* env) {
  auto* host = static_cast<mm::heap_host::HostHeap*>(env->cookie);
  // With the heap gone every frame must be back in the PMM.
  ktl::u64 leaked = host->destroy_heap();
  if (leaked != 0) {
    std::fprintf(stderr, "heap test env: %llu frames did not come back to the PMM\n",
                 static_cast<unsigned long long>(leaked));
    ktl::panic("heap test env: frames leaked");
  }
  delete host;
  env->cookie = nullptr;
}
