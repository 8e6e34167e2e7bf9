// kernel.bench: the kernel's own micro-benchmarks (the shell's `bench`, test=bench):
//   an empty function call            the unit the others are compared with
//   an interrupt round trip           `int` to a registered no-op handler and back (the full
//                                     trap path: isr.S, ferrite_trap, kernel.irq, EOI, iretq)
//   a context switch                  two tasks yielding to each other (ping-pong)
//   timer interrupt -> task wake-up   a high-priority task's lateness after sleep_until
// Times come from the TSC (calibrated at boot). Under TCG they depend on the host and its load:
// the ratios are the figures to compare.
module;

#include <ktl/macros.h>

export module kernel.bench;

import ktl;

export namespace kernel::bench {

struct Results {
  ktl::u64 call_ps = 0;       // picoseconds per empty call
  ktl::u64 interrupt_ps = 0;  // per interrupt round trip
  ktl::u64 switch_ps = 0;     // per context switch
  ktl::u64 wake_p50_ns = 0;   // timer -> task wake-up lateness
  ktl::u64 wake_p99_ns = 0;
  ktl::u32 wake_samples = 0;
};

// Runs every benchmark and prints its lines to `out`.
Results run_all(ktl::FormatSink& out);

// With a file system mounted at / (kernel.storage):
//   page cache        the largest file read uncached (its pages dropped first: the disk, by DMA,
//                     with read-ahead) against the same file read again from the cache
//   reclaim           the page cache and the slab caches filled past the high watermark, then
//                     the time kswapd takes from crossing high to reaching low, and the latency
//                     of 4 KiB allocations made (one per millisecond) while it works: p50, p99
struct StorageResults {
  bool ran = false;  // false: nothing mounted (a line says so)
  ktl::u64 file_bytes = 0;
  ktl::u64 uncached_ns = 0;     // one uncached read of the file
  ktl::u64 cached_ns = 0;       // one cached read (the mean of several)
  ktl::u64 ratio_x100 = 0;      // uncached / cached, in hundredths
  ktl::u64 high_to_low_ns = 0;  // kswapd's episode
  ktl::u64 alloc_p50_ns = 0;
  ktl::u64 alloc_p99_ns = 0;
  ktl::u32 alloc_samples = 0;
  bool reached_low = false;
};
inline constexpr ktl::u64 kPageCacheTargetX100 = 1000;  // a cached read at least 10x an uncached one
StorageResults run_storage(ktl::FormatSink& out);

}  // namespace kernel::bench
