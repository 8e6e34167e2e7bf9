module;

#include <ktl/macros.h>

module kernel.log;

import ktl;

namespace klog {

namespace {
struct State {
  ktl::SpinLock lock{"klog"};
  ktl::Array<ktl::FormatSink*, kMaxSinks> sinks GUARDED_BY(lock){};
  ktl::usize count GUARDED_BY(lock) = 0;
  ktl::Atomic<ktl::u32> level{ktl::to_underlying(Level::Info)};
};
State g_state;

const char* prefix(Level l) {
  switch (l) {
    case Level::Debug: return "[debug] ";
    case Level::Info: return "[info]  ";
    case Level::Warn: return "[warn]  ";
    case Level::Error: return "[error] ";
  }
  return "";
}
}  // namespace

bool add_sink(ktl::FormatSink& sink) {
  ktl::LockGuard guard(g_state.lock);
  if (g_state.count == kMaxSinks) return false;
  g_state.sinks[g_state.count++] = &sink;
  return true;
}

void set_level(Level l) { g_state.level.store(ktl::to_underlying(l)); }
Level level() { return static_cast<Level>(g_state.level.load()); }

void write_all(ktl::StringView text) NO_THREAD_SAFETY_ANALYSIS {
  // No lock: panic calls this, possibly while the lock is held by the code that panicked.
  // FIXME(smp): serialise panics across CPUs.
  for (ktl::usize i = 0; i < kMaxSinks; ++i) {
    ktl::FormatSink* s = g_state.sinks.span()[i];
    if (s != nullptr) s->write(text);
  }
}

namespace detail {
void emit(Level l, const LineSink& line) {
  ktl::LockGuard guard(g_state.lock);
  for (ktl::usize i = 0; i < g_state.count; ++i) {
    g_state.sinks[i]->write(prefix(l));
    g_state.sinks[i]->write(line.view());
    g_state.sinks[i]->write("\n");
  }
}
}  // namespace detail

}  // namespace klog
