// The host's environment for mm.heap.testing: a HostHeap (simulated RAM, PMM, mirrored region).
#include <ktl/macros.h>

#include <cstdio>
#include <new>

import ktl;
import mm.heap;
import mm.heap.host;
import mm.heap.testing;
import mm.pmm;
import mm.slab;

namespace {
struct Env {
  mm::heap_host::HostHeap host;
  explicit Env(const mm::heap_host::HostHeapOptions& o) : host(o) {}
};
}  // namespace

extern "C" bool ferrite_heap_test_env_create(ktl::u64 phys_bytes, bool hardened, FerriteHeapTestEnv* out) {
  mm::heap_host::HostHeapOptions options;
  options.phys_bytes = phys_bytes;
  options.hardening = hardened ? mm::Hardening::On : mm::Hardening::Off;
  auto* env = new (std::nothrow) Env(options);
  if (env == nullptr) return false;
  out->heap = &env->host.heap();
  out->pmm = &env->host.pmm();
  out->cookie = env;
  return true;
}

extern "C" void ferrite_heap_test_env_destroy(FerriteHeapTestEnv* e) {
  auto* env = static_cast<Env*>(e->cookie);
  // With the heap gone every frame must be back in the PMM.
  ktl::u64 leaked = env->host.destroy_heap();
  if (leaked != 0) {
    std::fprintf(stderr, "heap test env: %llu frames did not come back to the PMM\n",
                 static_cast<unsigned long long>(leaked));
    ktl::panic("heap test env: frames leaked");
  }
  delete env;
  e->cookie = nullptr;
}
