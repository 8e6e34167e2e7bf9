module;

#include <ktl/macros.h>

module kernel.log;

import ktl;

namespace klog {

namespace {
struct State {
  ktl::SpinLock lock{ktl::LockRank::Log};
  ktl::Array<ktl::FormatSink*, kMaxSinks> sinks GUARDED_BY(lock){};
  ktl::usize count GUARDED_BY(lock) = 0;
  ktl::Atomic<ktl::u32> level{ktl::to_underlying(Level::Info)};
  // A ring of the most recent output, replayed to sinks added later: early_history until
  // grow_history() hands over a larger buffer (`history`, empty until then).
  ktl::Array<char, kHistoryBytes> early_history GUARDED_BY(lock){};
  ktl::Span<char> history GUARDED_BY(lock){};
  ktl::usize history_next GUARDED_BY(lock) = 0;
  bool history_wrapped GUARDED_BY(lock) = false;
};
State g_state;

ktl::Span<char> ring_locked() REQUIRES(g_state.lock) {
  return g_state.history.empty() ? g_state.early_history.span() : g_state.history;
}

void remember_locked(ktl::StringView text) REQUIRES(g_state.lock) {
  ktl::Span<char> ring = ring_locked();
  for (char c : text) {
    ring[g_state.history_next] = c;
    if (++g_state.history_next == ring.size()) {
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
  ktl::Span<const char> all = ring_locked();
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

bool grow_history(ktl::Span<char> buffer) {
  ktl::LockGuard guard(g_state.lock);
  ktl::Span<char> ring = ring_locked();
  if (buffer.size() <= ring.size()) return false;
  // Oldest first: the part after the write position (if the ring wrapped), then the part before.
  ktl::usize n = 0;
  if (g_state.history_wrapped) {
    for (char c : ring.subspan(g_state.history_next)) buffer[n++] = c;
  }
  for (char c : ring.first(g_state.history_next)) buffer[n++] = c;
  g_state.history = buffer;
  g_state.history_next = n;
  g_state.history_wrapped = false;
  return true;
}

ktl::usize history_capacity() {
  ktl::LockGuard guard(g_state.lock);
  return ring_locked().size();
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
