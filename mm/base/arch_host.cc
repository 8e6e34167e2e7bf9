// The host's implementation of mm.arch: nothing to invalidate, so the TLB and activation hooks
// record the requests (tlb_log). No CPU hooks: on the host threads stand in for CPUs.
module;

#include <atomic>
#include <cstdint>

module mm.arch;

import ktl;

namespace {
std::atomic<std::uint64_t> g_range_flushes{0}, g_pages{0}, g_full{0}, g_activations{0}, g_root{0},
    g_last_start{0}, g_last_pages{0};
std::atomic<mm::arch::TlbFlushObserver> g_observer{nullptr};
std::atomic<void*> g_observer_context{nullptr};
thread_local bool t_in_interrupt = false;
std::atomic<mm::arch::WaitForMemoryHook> g_wait_hook{nullptr};
std::atomic<void*> g_wait_context{nullptr};
}  // namespace

extern "C" bool ferrite_arch_in_interrupt() { return t_in_interrupt; }
extern "C" bool ferrite_arch_wait_for_memory(ktl::u32 attempt) {
  mm::arch::WaitForMemoryHook hook = g_wait_hook.load();
  return hook != nullptr && hook(attempt, g_wait_context.load());
}

extern "C" void ferrite_arch_flush_tlb_range(ktl::u64 start, ktl::u64 pages) {
  g_range_flushes.fetch_add(1, std::memory_order_relaxed);
  g_pages.fetch_add(pages, std::memory_order_relaxed);
  g_last_start.store(start, std::memory_order_relaxed);
  g_last_pages.store(pages, std::memory_order_relaxed);
  if (mm::arch::TlbFlushObserver observer = g_observer.load())
    observer(start, pages, g_observer_context.load());
}
extern "C" void ferrite_arch_flush_tlb_all() { g_full.fetch_add(1, std::memory_order_relaxed); }
extern "C" void ferrite_arch_activate_root(ktl::u64 root) {
  g_activations.fetch_add(1, std::memory_order_relaxed);
  g_root.store(root, std::memory_order_relaxed);
}
extern "C" ktl::u64 ferrite_arch_active_root() { return g_root.load(std::memory_order_relaxed); }

namespace mm::arch {
TlbLog tlb_log() {
  return TlbLog{g_range_flushes.load(), g_pages.load(),      g_full.load(),
                g_activations.load(),   g_last_start.load(), g_last_pages.load()};
}
void reset_tlb_log() {
  g_range_flushes = 0;
  g_pages = 0;
  g_full = 0;
  g_activations = 0;
  g_last_start = 0;
  g_last_pages = 0;
}
void set_host_interrupt_context(InterruptContext c) { t_in_interrupt = c == InterruptContext::Inside; }
void set_wait_for_memory_hook(WaitForMemoryHook hook, void* context) {
  g_wait_context.store(context);
  g_wait_hook.store(hook);
}
void set_tlb_flush_observer(TlbFlushObserver observer, void* context) {
  g_observer_context.store(context);
  g_observer.store(observer);
}
}  // namespace mm::arch
