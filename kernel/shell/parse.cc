module;

#include <ktl/macros.h>

module kernel.shell.parse;

import ktl;

namespace kernel::shell {

ktl::Result<Words, ParseError> split_words(ktl::StringView line) {
  Words w;
  usize i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
    if (i == line.size()) break;
    usize start = i;
    while (i < line.size() && line[i] != ' ' && line[i] != '\t') ++i;
    if (w.count == kMaxArgs) return ktl::Err(ParseError::TooManyWords);
    w.word[w.count++] = line.substr(start, i - start);
  }
  return w;
}

ktl::Result<ktl::u64, ParseError> parse_u64(ktl::StringView text) {
  if (text.empty()) return ktl::Err(ParseError::Empty);
  ktl::u64 v = 0;
  for (char c : text.span()) {
    if (c < '0' || c > '9') return ktl::Err(ParseError::NotANumber);
    ktl::u64 d = static_cast<ktl::u64>(c - '0');
    if (v > (~ktl::u64{0} - d) / 10) return ktl::Err(ParseError::TooLarge);
    v = v * 10 + d;
  }
  return v;
}

}  // namespace kernel::shell
