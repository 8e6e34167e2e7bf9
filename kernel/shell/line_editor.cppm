// kernel.shell.line_editor: the shell's line editing, byte by byte, as a terminal sends them.
// Pure (host-tested): feed() takes one input byte and writes its echo to a sink.
//
//   printable ASCII   inserted at the end of the line (up to kMaxLine; more rings the bell and
//                     marks the line too long: Enter then discards it with TooLong)
//   Backspace / DEL   erases the last character ("\b \b")
//   Ctrl-U            erases the whole line
//   Ctrl-C            abandons the line ("^C") -> Cancelled
//   Enter (CR or LF)  -> Line (CR LF counts once); non-empty lines go into the history
//   Up / Down arrows  (ESC [ A / ESC [ B) walk the history of the last kHistory lines
//   anything else     ignored (other control bytes, other escape sequences)
module;

#include <ktl/macros.h>

export module kernel.shell.line_editor;

import ktl;

export namespace kernel::shell {

using ktl::usize;

enum class Event : ktl::u8 { None, Line, Cancelled, TooLong };

class LineEditor {
 public:
  static constexpr usize kMaxLine = 120;
  static constexpr usize kHistory = 16;

  constexpr LineEditor() = default;

  Event feed(ktl::u8 byte, ktl::FormatSink& echo);
  // The line just submitted (valid after Event::Line until the next feed).
  [[nodiscard]] inline ktl::StringView line() const { return submitted_.view(); }
  // The line being edited.
  [[nodiscard]] inline ktl::StringView current() const { return buffer_.view(); }
  [[nodiscard]] inline usize history_size() const { return history_count_; }
  // The n-th most recent line of the history (0 = the newest).
  [[nodiscard]] ktl::StringView history(usize n) const;

 private:
  // A line's characters (at most kMaxLine).
  class Line {
   public:
    [[nodiscard]] inline ktl::StringView view() const { return ktl::StringView(chars_.span().first(size_)); }
    inline void clear() { size_ = 0; }
    inline void push(char c) {
      if (size_ < kMaxLine) chars_[size_++] = c;
    }
    inline void pop() {
      if (size_ > 0) --size_;
    }
    inline void assign(ktl::StringView text) {
      clear();
      for (char c : text.span()) push(c);
    }

   private:
    ktl::Array<char, kMaxLine> chars_{};
    usize size_ = 0;
  };
  enum class Escape : ktl::u8 { None, Esc, Bracket };
  void erase_shown(ktl::FormatSink& echo);
  void show(ktl::StringView text, ktl::FormatSink& echo);
  void recall(usize back, ktl::FormatSink& echo);

  Line buffer_;
  Line submitted_;
  bool too_long_ = false;
  bool last_was_cr_ = false;
  Escape escape_ = Escape::None;
  ktl::Array<Line, kHistory> history_{};
  usize history_count_ = 0;
  usize history_next_ = 0;  // ring slot the next line goes to
  usize browsing_ = 0;      // 0: editing a new line; n: showing history(n - 1)
};

}  // namespace kernel::shell
