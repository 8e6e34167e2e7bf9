// kernel.log: the kernel's one log, with levels, fanned out to every registered console (serial,
// framebuffer). Formatting is ktl.format's: type-safe and checked at compile time.
//
//   klog::info("memory: {} MiB usable", mib);
module;

#include <ktl/macros.h>

export module kernel.log;

import ktl;

export namespace klog {

enum class Level : ktl::u32 { Debug = 0, Info = 1, Warn = 2, Error = 3 };

[[nodiscard]] constexpr const char* to_string(Level l) {
  switch (l) {
    case Level::Debug: return "debug";
    case Level::Info: return "info";
    case Level::Warn: return "warn";
    case Level::Error: return "error";
  }
  return "?";
}
// "debug", "info", "warn" (or "warning"), "error"; nullopt for anything else.
[[nodiscard]] constexpr ktl::Optional<Level> level_from_string(ktl::StringView s) {
  if (s == "debug") return Level::Debug;
  if (s == "info") return Level::Info;
  if (s == "warn" || s == "warning") return Level::Warn;
  if (s == "error") return Level::Error;
  return ktl::nullopt;
}

// Registers a console. At most kMaxSinks; the sinks live for the rest of the kernel's life.
// With Replay::History the sink first receives the recent output (the last kHistoryBytes), so a
// console that comes up late (the framebuffer) still shows the boot messages.
inline constexpr ktl::usize kMaxSinks = 4;
inline constexpr ktl::usize kHistoryBytes = 8192;
enum class Replay { None, History };
bool add_sink(ktl::FormatSink& sink, Replay replay = Replay::None);
// Moves the history into `buffer` (larger than the current one: the kernel hands over a heap
// buffer once its heap is up), keeping what it holds. The buffer must live for the rest of the
// kernel's life (or until the next grow_history). Returns false (nothing changes) if it is not
// larger.
bool grow_history(ktl::Span<char> buffer);
[[nodiscard]] ktl::usize history_capacity();
void set_level(Level level);
[[nodiscard]] Level level();

// Writes raw text to every sink, without taking the log lock (used by panic, which may have
// interrupted a holder of the lock). FIXME(smp): serialise panics across CPUs.
void write_all(ktl::StringView text);
// Writes raw text to the first sink only (the serial port): for a panic inside a console.
void write_first(ktl::StringView text);
// Writes raw text to every sink under the log lock, unprefixed (test output, reports).
void write_raw(ktl::StringView text);

// A FormatSink over write_raw(): `ktl::format_to(klog::raw(), "...", ...)`.
class RawSink final : public ktl::FormatSink {
 public:
  void write(ktl::StringView text) override { write_raw(text); }
};

namespace detail {
// Collects one message in a line buffer, then hands it to every sink at once.
class LineSink final : public ktl::FormatSink {
 public:
  void write(ktl::StringView text) override { buffer_.write(text); }
  [[nodiscard]] inline ktl::StringView view() const { return buffer_.view(); }

 private:
  ktl::InlineString<512> buffer_;
};
void emit(Level level, const LineSink& line);
}  // namespace detail

template <class... A>
void log(Level lvl, ktl::FormatString<ktl::TypeIdentityT<A>...> fmt, const A&... args) {
  if (ktl::to_underlying(lvl) < ktl::to_underlying(level())) return;
  detail::LineSink line;
  ktl::format_to(line, fmt, args...);
  detail::emit(lvl, line);
}
template <class... A>
void debug(ktl::FormatString<ktl::TypeIdentityT<A>...> fmt, const A&... args) {
  log<A...>(Level::Debug, fmt, args...);
}
template <class... A>
void info(ktl::FormatString<ktl::TypeIdentityT<A>...> fmt, const A&... args) {
  log<A...>(Level::Info, fmt, args...);
}
template <class... A>
void warn(ktl::FormatString<ktl::TypeIdentityT<A>...> fmt, const A&... args) {
  log<A...>(Level::Warn, fmt, args...);
}
template <class... A>
void error(ktl::FormatString<ktl::TypeIdentityT<A>...> fmt, const A&... args) {
  log<A...>(Level::Error, fmt, args...);
}

}  // namespace klog
