// The environment hooks ktl and mm call into, for host binaries (tests, benchmarks, fuzzers,
// tools). The kernel defines the same symbols in kernel/.
#include <cstdio>
#include <cstdlib>

extern "C" [[noreturn]] void ferrite_panic(const char* message, const char* file, unsigned line,
                                           const char* function) {
  std::fprintf(stderr, "PANIC: %s\n  at %s:%u in %s\n", message, file, line, function);
  std::fflush(stderr);
  std::abort();
}
