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
  // A ring of the most recent output, replayed to sinks added later.
  ktl::Array<char, kHistoryBytes> history GUARDED_BY(lock){};
  ktl::usize history_next GUARDED_BY(lock) = 0;
  bool history_wrapped GUARDED_BY(lock) = false;
};
State g_state;

void remember_locked(ktl::StringView text) REQUIRES(g_state.lock) {
  for (char c : text) {
    g_state.history[g_state.history_next] = c;
    if (++g_state.history_next == kHistoryBytes) {
      g_state.history_next = 0;
      g_state.history_wrapped = true;
    }
  }
}

void write_locked(ktl::StringView text) REQUIRES(g_state.lock) {
  remember_locked(text);
  for (ktl::usize i = 0; i < g_state.count; ++i) g_state.sinks[i]->write(text);
}

void replay_locked(ktl::FormatSink& sink) REQUIRES(g_state.lock) {
  ktl::Span<const char> all = g_state.history.span();
  if (g_state.history_wrapped) {
    ktl::StringView older(all.subspan(g_state.history_next));
    // Start at the first complete line.
    ktl::usize nl = older.find('\n');
    if (nl < older.size()) sink.write(older.substr(nl + 1));
  }
  sink.write(ktl::StringView(all.first(g_state.history_next)));
}

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

bool add_sink(ktl::FormatSink& sink, Replay replay) {
  ktl::LockGuard guard(g_state.lock);
  if (g_state.count == kMaxSinks) return false;
  if (replay == Replay::History) replay_locked(sink);
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

void write_first(ktl::StringView text) NO_THREAD_SAFETY_ANALYSIS {
  // No lock, as write_all.
  ktl::FormatSink* s = g_state.sinks.span()[0];
  if (s != nullptr) s->write(text);
}

void write_raw(ktl::StringView text) {
  ktl::LockGuard guard(g_state.lock);
  write_locked(text);
}

namespace detail {
void emit(Level l, const LineSink& line) {
  ktl::LockGuard guard(g_state.lock);
  write_locked(prefix(l));
  write_locked(line.view());
  write_locked("\n");
}
}  // namespace detail

}  // namespace klog
