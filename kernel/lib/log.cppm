// ktl.log: leveled, formatted messages from code that does not know where it runs (mm, ktl).
// The environment provides ferrite_log_write: the kernel routes it to its consoles (kernel.log),
// host binaries to stderr (testing/host_runtime.cc), where tests can also capture it.
//
//   ktl::log::warn("pmm: double free of {}", frame.start());
module;

#include <ktl/macros.h>

export module ktl.log;

import ktl.core;
import ktl.span;
import ktl.format;

export extern "C" void ferrite_log_write(int level, const char* text, ktl::usize length);

export namespace ktl::log {

enum class Level : int { Debug = 0, Info = 1, Warn = 2, Error = 3 };

template <class... A>
void write(Level level, FormatString<TypeIdentityT<A>...> fmt, const A&... args) {
  InlineString<512> line;
  format_to(line, fmt, args...);
  ferrite_log_write(static_cast<int>(level), line.view().data(), line.view().size());
}
template <class... A>
void debug(FormatString<TypeIdentityT<A>...> fmt, const A&... args) {
  write<A...>(Level::Debug, fmt, args...);
}
template <class... A>
void info(FormatString<TypeIdentityT<A>...> fmt, const A&... args) {
  write<A...>(Level::Info, fmt, args...);
}
template <class... A>
void warn(FormatString<TypeIdentityT<A>...> fmt, const A&... args) {
  write<A...>(Level::Warn, fmt, args...);
}
template <class... A>
void error(FormatString<TypeIdentityT<A>...> fmt, const A&... args) {
  write<A...>(Level::Error, fmt, args...);
}

}  // namespace ktl::log
