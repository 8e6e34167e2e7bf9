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

// Registers a console. At most kMaxSinks; the sinks live for the rest of the kernel's life.
inline constexpr ktl::usize kMaxSinks = 4;
bool add_sink(ktl::FormatSink& sink);
void set_level(Level level);
[[nodiscard]] Level level();

// Writes raw text to every sink (used by panic, which formats itself).
void write_all(ktl::StringView text);

namespace detail {
// Collects one message in a line buffer, then hands it to every sink at once.
class LineSink final : public ktl::FormatSink {
 public:
  void write(ktl::StringView text) override { buffer_.write(text); }
  [[nodiscard]] ktl::StringView view() const { return buffer_.view(); }

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
