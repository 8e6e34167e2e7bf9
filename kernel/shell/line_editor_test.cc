// Host tests of the shell's line editing and word splitting, fed byte by byte as a terminal sends.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>

import ktl;
import kernel.shell.line_editor;
import kernel.shell.parse;

namespace {

using kernel::shell::Event;
using kernel::shell::LineEditor;

class Echo final : public ktl::FormatSink {
 public:
  void write(ktl::StringView text) override { out.append(text.data(), text.size()); }
  std::string out;
};

// Feeds `bytes`; returns the events other than None, in order.
std::string feed(LineEditor& e, const std::string& bytes, Echo& echo) {
  std::string events;
  for (unsigned char b : bytes) {
    switch (e.feed(b, echo)) {
      case Event::None: break;
      case Event::Line: events += "L"; break;
      case Event::Cancelled: events += "C"; break;
      case Event::TooLong: events += "T"; break;
    }
  }
  return events;
}

std::string view(ktl::StringView v) { return std::string(v.data(), v.size()); }

TEST(LineEditor, TypesEchoesAndSubmits) {
  LineEditor e;
  Echo echo;
  EXPECT_EQ(feed(e, "help\r", echo), "L");
  EXPECT_EQ(view(e.line()), "help");
  EXPECT_EQ(echo.out, "help\r\n");
  // CR LF is one Enter; a lone LF is one too.
  EXPECT_EQ(feed(e, "ps\r\nuptime\n", echo), "LL");
  EXPECT_EQ(view(e.line()), "uptime");
}

TEST(LineEditor, BackspaceCtrlUAndCtrlC) {
  LineEditor e;
  Echo echo;
  EXPECT_EQ(feed(e, "hepl\x7f\x7flp", echo), "");
  EXPECT_EQ(view(e.current()), "help");
  EXPECT_EQ(echo.out, "hepl\b \b\b \blp");
  feed(e, "\x08\x08\x08\x08\x08", echo);  // one more than there is: nothing more erased
  EXPECT_EQ(view(e.current()), "");
  feed(e, "garbage\x15", echo);
  EXPECT_EQ(view(e.current()), "");
  echo.out.clear();
  EXPECT_EQ(feed(e, "half\x03", echo), "C");
  EXPECT_EQ(echo.out, "half^C\r\n");
  EXPECT_EQ(feed(e, "\r", echo), "L");
  EXPECT_EQ(view(e.line()), "");
}

TEST(LineEditor, OverlongLinesRingOnceAndAreDiscarded) {
  LineEditor e;
  Echo echo;
  std::string longline(LineEditor::kMaxLine + 30, 'x');
  EXPECT_EQ(feed(e, longline, echo), "");
  EXPECT_EQ(std::count(echo.out.begin(), echo.out.end(), '\a'), 1);
  EXPECT_EQ(feed(e, "\r", echo), "T");
  EXPECT_EQ(e.history_size(), 0u);
  // Exactly the limit is fine.
  EXPECT_EQ(feed(e, std::string(LineEditor::kMaxLine, 'y') + "\r", echo), "L");
  EXPECT_EQ(e.line().size(), LineEditor::kMaxLine);
}

TEST(LineEditor, HistoryWalksBackAndForth) {
  LineEditor e;
  Echo echo;
  feed(e, "meminfo\rps\rps\ruptime\r", echo);
  EXPECT_EQ(e.history_size(), 3u);  // the repeated ps counts once
  EXPECT_EQ(view(e.history(0)), "uptime");
  feed(e, "\x1b[A\x1b[A", echo);  // up, up
  EXPECT_EQ(view(e.current()), "ps");
  feed(e, "\x1b[A\x1b[A", echo);  // up past the oldest: stays
  EXPECT_EQ(view(e.current()), "meminfo");
  feed(e, "\x1b[B", echo);  // down
  EXPECT_EQ(view(e.current()), "ps");
  EXPECT_EQ(feed(e, "\r", echo), "L");
  EXPECT_EQ(view(e.line()), "ps");
  feed(e, "\x1b[A\x1b[B", echo);  // up and back down: an empty new line
  EXPECT_EQ(view(e.current()), "");
  // Unknown escapes and control bytes are ignored.
  feed(e, "\x1b[Cx\x01y", echo);
  EXPECT_EQ(view(e.current()), "xy");
}

TEST(LineEditor, TheHistoryKeepsTheLastSixteen) {
  LineEditor e;
  Echo echo;
  for (int i = 0; i < 20; ++i) feed(e, "cmd" + std::to_string(i) + "\r", echo);
  EXPECT_EQ(e.history_size(), LineEditor::kHistory);
  EXPECT_EQ(view(e.history(0)), "cmd19");
  EXPECT_EQ(view(e.history(15)), "cmd4");
}

TEST(Parse, SplitsWordsAndNumbers) {
  auto w = kernel::shell::split_words("  kmalloc-stress\t 64  ");
  ASSERT_TRUE(w.is_ok());
  ASSERT_EQ(w.value().count, 2u);
  EXPECT_EQ(view(w.value().word[0]), "kmalloc-stress");
  EXPECT_EQ(view(w.value().word[1]), "64");
  EXPECT_EQ(kernel::shell::split_words("").value().count, 0u);
  EXPECT_EQ(kernel::shell::split_words("a b c d e f g h i").error(), kernel::shell::ParseError::TooManyWords);
  EXPECT_EQ(kernel::shell::parse_u64("18446744073709551615").value(), ~ktl::u64{0});
  EXPECT_EQ(kernel::shell::parse_u64("18446744073709551616").error(), kernel::shell::ParseError::TooLarge);
  EXPECT_EQ(kernel::shell::parse_u64("12a").error(), kernel::shell::ParseError::NotANumber);
  EXPECT_EQ(kernel::shell::parse_u64("").error(), kernel::shell::ParseError::Empty);
  ktl::check_enum_text<kernel::shell::ParseError>();
}

}  // namespace
