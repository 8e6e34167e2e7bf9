// ktl.format: type-safe, printf-style formatting with a std::format-like syntax.
//
//   ktl::format_to(sink, "frame {} of {}: {:#x}", i, n, addr);
//
// The format string is checked at compile time against the argument count. Replacement fields
// are `{}` or `{:spec}` with spec = [fill][<|>][#][0][width][x|X|b|o|d|c|s|p]; `{{`/`}}` are
// literal braces. Integers, bool, char, C strings, StringView and pointers are built in. An enum
// prints its to_string() (ktl::NamedEnum; `{:d}`/`{:x}` print its number instead), an enum
// without one its number. Any other type T becomes formattable by declaring, in T's namespace
// (found through ADL):
//
//   void format_value(ktl::FormatSink& sink, const T& value, const ktl::FormatSpec& spec);
module;

#include <ktl/macros.h>

export module ktl.format;

import ktl.core;
import ktl.span;

export namespace ktl {

// Where formatted text goes: a serial port, a framebuffer console, a fixed buffer...
class FormatSink {
 public:
  virtual void write(StringView text) = 0;

 protected:
  ~FormatSink() = default;
};

struct FormatSpec {
  char fill = ' ';
  char align = '\0';  // '<', '>' or '\0' (numbers right, text left)
  bool alternate = false;
  bool zero_pad = false;
  u32 width = 0;
  char type = '\0';
};

namespace detail {

// Only called from constant evaluation when a format string is malformed: the call is not a
// constant expression, so the compiler reports the error at the format string.
void format_string_error(const char*);

struct ParsedSpec {
  FormatSpec spec;
  bool valid;
};

constexpr ParsedSpec parse_spec(StringView s) {
  FormatSpec spec;
  usize i = 0;
  auto is_align = [](char c) { return c == '<' || c == '>'; };
  if (s.size() >= 2 && is_align(s[1])) {
    spec.fill = s[0];
    spec.align = s[1];
    i = 2;
  } else if (!s.empty() && is_align(s[0])) {
    spec.align = s[0];
    i = 1;
  }
  if (i < s.size() && s[i] == '#') {
    spec.alternate = true;
    ++i;
  }
  if (i < s.size() && s[i] == '0') {
    spec.zero_pad = true;
    ++i;
  }
  while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
    spec.width = spec.width * 10 + static_cast<u32>(s[i] - '0');
    ++i;
  }
  if (i < s.size()) {
    char t = s[i];
    if (t != 'x' && t != 'X' && t != 'b' && t != 'o' && t != 'd' && t != 'c' && t != 's' && t != 'p') {
      return {spec, false};
    }
    spec.type = t;
    ++i;
  }
  return {spec, i == s.size()};
}

// Counts replacement fields; -1 on a malformed string.
constexpr long count_fields(StringView s) {
  long n = 0;
  for (usize i = 0; i < s.size(); ++i) {
    if (s[i] == '{') {
      if (i + 1 < s.size() && s[i + 1] == '{') {
        ++i;
        continue;
      }
      usize close = s.find('}', i);
      if (close == s.size()) return -1;
      StringView inner = s.substr(i + 1, close - i - 1);
      if (!inner.empty()) {
        if (inner[0] != ':' || !parse_spec(inner.substr(1)).valid) return -1;
      }
      ++n;
      i = close;
    } else if (s[i] == '}') {
      if (i + 1 < s.size() && s[i + 1] == '}') {
        ++i;
        continue;
      }
      return -1;
    }
  }
  return n;
}

}  // namespace detail

template <class... Args>
class FormatString {
 public:
  template <usize N>
  consteval FormatString(const char (&s)[N]) : text_(Span<const char>(s).first(N - 1)) {
    long fields = detail::count_fields(text_);
    if (fields < 0) detail::format_string_error("malformed format string");
    if (fields != static_cast<long>(sizeof...(Args))) {
      detail::format_string_error("format string and argument count differ");
    }
  }
  [[nodiscard]] constexpr StringView text() const { return text_; }

 private:
  StringView text_;
};

// --- built-in formatters ---------------------------------------------------------------------------
void pad_and_write(FormatSink& sink, StringView body, const FormatSpec& spec, bool numeric,
                   StringView prefix = StringView());

void format_unsigned(FormatSink& sink, u64 value, const FormatSpec& spec, bool negative = false);

template <Integral T>
void format_value(FormatSink& sink, T value, const FormatSpec& spec) {
  if constexpr (is_same<T, bool>) {
    pad_and_write(sink, value ? "true" : "false", spec, false);
  } else if constexpr (is_same<T, char>) {
    if (spec.type == '\0' || spec.type == 'c') {
      Array<char, 1> c{{value}};
      pad_and_write(sink, StringView(c.span()), spec, false);
    } else {
      format_unsigned(sink, static_cast<u8>(value), spec);
    }
  } else if constexpr (is_signed<T>) {
    bool negative = value < 0 && spec.type != 'x' && spec.type != 'X' && spec.type != 'b';
    u64 magnitude = negative ? ~static_cast<u64>(value) + 1 : static_cast<u64>(value);
    format_unsigned(sink, magnitude, spec, negative);
  } else {
    format_unsigned(sink, static_cast<u64>(value), spec);
  }
}
inline void format_value(FormatSink& sink, StringView value, const FormatSpec& spec) {
  pad_and_write(sink, value, spec, false);
}
inline void format_value(FormatSink& sink, const char* value, const FormatSpec& spec) {
  pad_and_write(sink, value ? StringView(value) : StringView("(null)"), spec, false);
}
template <class T>
void format_value(FormatSink& sink, T* value, const FormatSpec& spec) {
  FormatSpec s = spec;
  s.type = 'x';
  s.alternate = true;
  format_unsigned(sink, address_of(value), s);
}
template <class E>
  requires is_enum<E>
void format_value(FormatSink& sink, E value, const FormatSpec& spec) {
  bool numeric =
      spec.type == 'd' || spec.type == 'x' || spec.type == 'X' || spec.type == 'b' || spec.type == 'o';
  if constexpr (NamedEnum<E>) {
    if (!numeric) {
      pad_and_write(sink, StringView(to_string(value)), spec, false);
      return;
    }
  }
  format_value(sink, to_underlying(value), spec);
}

// --- checking an enum's texts (for tests) -----------------------------------------------------------
// What check_enum_text<E>() found: `count` enumerators (values 0..count-1); `ok` when every one has
// a non-empty text of its own and every value from `count` up to the probe limit gets the text of a
// non-enumerator (what to_string returns after its switch); otherwise `bad` is the first offending
// value (a missing, empty or repeated text, or an enumerator after a gap).
struct EnumTextCheck {
  u32 count = 0;
  bool ok = false;
  u32 bad = 0;
};

template <NamedEnum E>
constexpr EnumTextCheck check_enum_text(u32 probe_limit = 256) {
  using U = UnderlyingType<E>;
  auto text = [](u32 v) -> const char* { return to_string(static_cast<E>(static_cast<U>(v))); };
  const char* unknown_text = to_string(static_cast<E>(static_cast<U>(~static_cast<U>(0))));
  EnumTextCheck r;
  if (unknown_text == nullptr) return r;
  const StringView unknown(unknown_text);
  u32 count = 0;
  while (count < probe_limit && text(count) != nullptr && StringView(text(count)) != unknown) ++count;
  r.count = count;
  if (count == 0) return r;
  for (u32 v = 0; v < count; ++v) {
    StringView t(text(v));
    bool repeated = false;
    for (u32 w = 0; w < v; ++w) repeated = repeated || StringView(text(w)) == t;
    if (t.empty() || repeated) {
      r.bad = v;
      return r;
    }
  }
  for (u32 v = count; v < probe_limit; ++v) {
    if (text(v) == nullptr || StringView(text(v)) != unknown) {
      r.bad = v;
      return r;
    }
  }
  r.ok = true;
  return r;
}

namespace detail {

template <class T>
void format_one(FormatSink& sink, const FormatSpec& spec, const T& value) {
  format_value(sink, value, spec);
}

using FormatFn = void (*)(FormatSink&, const FormatSpec&, const void*);

template <class T>
void erased(FormatSink& sink, const FormatSpec& spec, const void* value) {
  format_one(sink, spec, *static_cast<const T*>(value));
}

struct ErasedArg {
  FormatFn fn;
  const void* value;
};

void vformat(FormatSink& sink, StringView fmt, Span<const ErasedArg> args);

}  // namespace detail

template <class... Args>
void format_to(FormatSink& sink, FormatString<TypeIdentityT<Args>...> fmt, const Args&... args) {
  if constexpr (sizeof...(Args) == 0) {
    detail::vformat(sink, fmt.text(), Span<const detail::ErasedArg>());
  } else {
    const detail::ErasedArg erased[] = {{&detail::erased<Args>, &args}...};
    detail::vformat(sink, fmt.text(), Span<const detail::ErasedArg>(erased));
  }
}

// Formats into a caller-provided buffer, truncating (never overflowing); always NUL-terminated.
class BufferSink final : public FormatSink {
 public:
  inline explicit BufferSink(Span<char> buffer) : buffer_(buffer) {
    check(!buffer.empty(), "BufferSink needs room for the terminating NUL");
    buffer_[0] = '\0';
  }
  void write(StringView text) override;
  [[nodiscard]] inline StringView view() const { return StringView(buffer_.first(used_)); }
  [[nodiscard]] inline const char* c_str() const { return buffer_.data(); }
  [[nodiscard]] inline bool truncated() const { return truncated_; }

 private:
  Span<char> buffer_;
  usize used_ = 0;
  bool truncated_ = false;
};

// A BufferSink with its own storage.
template <usize N>
class InlineString final : public FormatSink {
 public:
  inline InlineString() : sink_(Span<char>(storage_)) {}
  InlineString(const InlineString&) = delete;
  InlineString& operator=(const InlineString&) = delete;
  void write(StringView text) override { sink_.write(text); }
  [[nodiscard]] inline StringView view() const { return sink_.view(); }
  [[nodiscard]] inline const char* c_str() const { return sink_.c_str(); }

 private:
  char storage_[N];
  BufferSink sink_;
};

}  // namespace ktl
