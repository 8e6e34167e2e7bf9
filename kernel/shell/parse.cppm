// kernel.shell.parse: splitting a command line into words and reading numbers (pure, host-tested).
module;

#include <ktl/macros.h>

export module kernel.shell.parse;

import ktl;

export namespace kernel::shell {

using ktl::usize;

inline constexpr usize kMaxArgs = 8;

enum class ParseError : ktl::u32 {
  TooManyWords,  // more than kMaxArgs words
  NotANumber,    // a character other than a digit
  TooLarge,      // does not fit 64 bits
  Empty,         // no digits
};
[[nodiscard]] constexpr const char* to_string(ParseError e) {
  switch (e) {
    case ParseError::TooManyWords: return "too many words (at most 8)";
    case ParseError::NotANumber: return "not a number";
    case ParseError::TooLarge: return "number too large";
    case ParseError::Empty: return "empty number";
  }
  return "unknown parse error";
}

struct Words {
  ktl::Array<ktl::StringView, kMaxArgs> word{};
  usize count = 0;
  [[nodiscard]] inline ktl::Span<const ktl::StringView> span() const { return word.span().first(count); }
};

// Words separated by spaces or tabs.
[[nodiscard]] ktl::Result<Words, ParseError> split_words(ktl::StringView line);
// A decimal number.
[[nodiscard]] ktl::Result<ktl::u64, ParseError> parse_u64(ktl::StringView text);

}  // namespace kernel::shell
