// The environment hooks ktl and mm call into, for host binaries (tests, benchmarks, fuzzers,
// tools). The kernel defines the same symbols in kernel/.
#include <cstdio>
#include <cstdlib>

#include "testing/host_runtime.h"

namespace {
ferrite_host::LogCapture* g_capture = nullptr;
}

namespace ferrite_host {
LogCapture::LogCapture() : previous_(g_capture) { g_capture = this; }
LogCapture::~LogCapture() { g_capture = previous_; }
}  // namespace ferrite_host

extern "C" [[noreturn]] void ferrite_panic(const char* message, const char* file, unsigned line,
                                           const char* function) {
  std::fprintf(stderr, "PANIC: %s\n  at %s:%u in %s\n", message, file, line, function);
  std::fflush(stderr);
  std::abort();
}

extern "C" void ferrite_log_write(int level, const char* text, std::size_t length) {
  if (g_capture != nullptr) {
    g_capture->lines.emplace_back(text, length);
    return;
  }
  static const char* const kNames[] = {"debug", "info", "warn", "error"};
  const char* name = level >= 0 && level <= 3 ? kNames[level] : "log";
  std::fprintf(stderr, "[%s] %.*s\n", name, static_cast<int>(length), text);
}
