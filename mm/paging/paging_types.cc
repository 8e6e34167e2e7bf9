// mm.paging.types: formatting of flags, errors and translations.
module;

#include <ktl/macros.h>

module mm.paging.types;

import ktl;

namespace mm {

void format_value(ktl::FormatSink& sink, PageFlags f, const ktl::FormatSpec& spec) {
  ktl::InlineString<32> text;
  ktl::format_to(text, "{} {}{}{}{} {}", f.user() ? "user" : "kern", 'r', f.writable() ? 'w' : '-',
                 f.executable() ? 'x' : '-', f.global() ? " G" : "", to_string(f.cache()));
  ktl::format_value(sink, text.view(), spec);
}

void format_value(ktl::FormatSink& sink, const Translation& t, const ktl::FormatSpec&) {
  ktl::format_to(sink, "{} -> {} (page {} -> {}, {:#x} bytes, {})", t.page + (t.phys - t.frame), t.phys,
                 t.page, t.frame, t.page_size, t.flags);
}

void format_value(ktl::FormatSink& sink, const ktl::Optional<Translation>& t, const ktl::FormatSpec& spec) {
  if (t) {
    format_value(sink, *t, spec);
  } else {
    ktl::format_value(sink, ktl::StringView("(not mapped)"), spec);
  }
}

}  // namespace mm
