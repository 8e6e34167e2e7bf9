module;

#include <ktl/macros.h>

module kernel.shell.line_editor;

import ktl;

namespace kernel::shell {

namespace {
constexpr ktl::u8 kCtrlC = 0x03;
constexpr ktl::u8 kBackspace = 0x08;
constexpr ktl::u8 kCtrlU = 0x15;
constexpr ktl::u8 kEsc = 0x1b;
constexpr ktl::u8 kDelete = 0x7f;
}  // namespace

ktl::StringView LineEditor::history(usize n) const {
  ktl::check(n < history_count_, "LineEditor::history: no such entry");
  return history_[(history_next_ + kHistory - 1 - n) % kHistory].view();
}

void LineEditor::erase_shown(ktl::FormatSink& echo) {
  for (usize i = 0; i < buffer_.view().size(); ++i) echo.write("\b \b");
  buffer_.clear();
}

void LineEditor::show(ktl::StringView text, ktl::FormatSink& echo) {
  buffer_.assign(text);
  echo.write(text);
}

void LineEditor::recall(usize back, ktl::FormatSink& echo) {
  erase_shown(echo);
  too_long_ = false;
  browsing_ = back;
  if (back != 0) show(history(back - 1), echo);
}

Event LineEditor::feed(ktl::u8 byte, ktl::FormatSink& echo) {
  bool after_cr = last_was_cr_;
  last_was_cr_ = false;
  if (escape_ == Escape::Esc) {
    escape_ = byte == '[' ? Escape::Bracket : Escape::None;
    return Event::None;
  }
  if (escape_ == Escape::Bracket) {
    escape_ = Escape::None;
    if (byte == 'A' && browsing_ < history_count_) recall(browsing_ + 1, echo);
    if (byte == 'B' && browsing_ > 0) recall(browsing_ - 1, echo);
    return Event::None;
  }
  switch (byte) {
    case '\r':
    case '\n': {
      if (byte == '\n' && after_cr) return Event::None;  // CR LF: one Enter
      last_was_cr_ = byte == '\r';
      echo.write("\r\n");
      browsing_ = 0;
      if (too_long_) {
        too_long_ = false;
        buffer_.clear();
        return Event::TooLong;
      }
      submitted_.assign(buffer_.view());
      buffer_.clear();
      if (!submitted_.view().empty() && (history_count_ == 0 || history(0) != submitted_.view())) {
        history_[history_next_].assign(submitted_.view());
        history_next_ = (history_next_ + 1) % kHistory;
        if (history_count_ < kHistory) ++history_count_;
      }
      return Event::Line;
    }
    case kCtrlC:
      echo.write("^C\r\n");
      buffer_.clear();
      too_long_ = false;
      browsing_ = 0;
      return Event::Cancelled;
    case kCtrlU:
      erase_shown(echo);
      too_long_ = false;
      return Event::None;
    case kBackspace:
    case kDelete:
      if (too_long_) return Event::None;  // the line is already lost; Enter reports it
      if (!buffer_.view().empty()) {
        buffer_.pop();
        echo.write("\b \b");
      }
      return Event::None;
    case kEsc: escape_ = Escape::Esc; return Event::None;
    default: break;
  }
  if (byte < 0x20 || byte > 0x7e) return Event::None;
  if (buffer_.view().size() >= kMaxLine) {
    if (!too_long_) echo.write("\a");
    too_long_ = true;
    return Event::None;
  }
  ktl::Array<char, 1> c{{static_cast<char>(byte)}};
  buffer_.push(c[0]);
  echo.write(ktl::StringView(c.span()));
  return Event::None;
}

}  // namespace kernel::shell
