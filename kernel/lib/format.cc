// Implementation of ktl.format's non-template parts.
module;

#include <ktl/macros.h>

module ktl.format;

import ktl.core;
import ktl.span;

namespace ktl {

void BufferSink::write(StringView text) {
  // Keep one byte for the NUL.
  usize room = buffer_.size() - 1 - used_;
  usize n = min(room, text.size());
  for (usize i = 0; i < n; ++i) buffer_[used_ + i] = text[i];
  used_ += n;
  buffer_[used_] = '\0';
  if (n < text.size()) truncated_ = true;
}

void pad_and_write(FormatSink& sink, StringView body, const FormatSpec& spec, bool numeric,
                   StringView prefix) {
  usize len = body.size() + prefix.size();
  usize pad = spec.width > len ? spec.width - len : 0;
  char align = spec.align != '\0' ? spec.align : (numeric ? '>' : '<');
  auto fill = [&](char c, usize n) {
    Array<char, 16> chunk{};
    for (char& ch : chunk) ch = c;
    while (n > 0) {
      usize k = min<usize>(n, chunk.size());
      sink.write(StringView(chunk.span().first(k)));
      n -= k;
    }
  };
  if (numeric && spec.zero_pad && spec.align == '\0') {
    sink.write(prefix);
    fill('0', pad);
    sink.write(body);
    return;
  }
  if (align == '>') fill(spec.fill, pad);
  sink.write(prefix);
  sink.write(body);
  if (align == '<') fill(spec.fill, pad);
}

void format_unsigned(FormatSink& sink, u64 value, const FormatSpec& spec, bool negative) {
  u32 base = 10;
  StringView digits = "0123456789abcdef";
  StringView prefix;
  switch (spec.type) {
    case 'x':
    case 'p':
      base = 16;
      prefix = spec.alternate || spec.type == 'p' ? "0x" : "";
      break;
    case 'X':
      base = 16;
      digits = "0123456789ABCDEF";
      prefix = spec.alternate ? "0X" : "";
      break;
    case 'b':
      base = 2;
      prefix = spec.alternate ? "0b" : "";
      break;
    case 'o':
      base = 8;
      prefix = spec.alternate ? "0o" : "";
      break;
    default: prefix = negative ? "-" : ""; break;
  }
  Array<char, 64> buffer{};
  usize pos = buffer.size();
  do {
    buffer[--pos] = digits[value % base];
    value /= base;
  } while (value != 0);
  pad_and_write(sink, StringView(buffer.span().subspan(pos)), spec, true, prefix);
}

namespace detail {

void vformat(FormatSink& sink, StringView fmt, Span<const ErasedArg> args) {
  usize next = 0;
  usize literal_start = 0;
  auto flush_literal = [&](usize end) {
    if (end > literal_start) sink.write(fmt.substr(literal_start, end - literal_start));
  };
  for (usize i = 0; i < fmt.size(); ++i) {
    char c = fmt[i];
    if ((c == '{' || c == '}') && i + 1 < fmt.size() && fmt[i + 1] == c) {
      flush_literal(i + 1);  // keep one brace
      ++i;
      literal_start = i + 1;
      continue;
    }
    if (c != '{') continue;
    flush_literal(i);
    usize close = fmt.find('}', i);
    StringView inner = fmt.substr(i + 1, close - i - 1);
    FormatSpec spec = inner.empty() ? FormatSpec{} : parse_spec(inner.substr(1)).spec;
    // The count was checked at compile time; a mismatch here is a bug in this function.
    const ErasedArg& arg = args[next++];
    arg.fn(sink, spec, arg.value);
    i = close;
    literal_start = close + 1;
  }
  flush_literal(fmt.size());
}

}  // namespace detail
}  // namespace ktl
