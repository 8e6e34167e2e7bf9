// mm.addr: formatting of typed addresses.
module;

#include <ktl/macros.h>

module mm.addr;

import ktl;

namespace mm {

namespace {
void format_address(ktl::FormatSink& sink, char tag, u64 value, const ktl::FormatSpec& spec) {
  // Always the full 16 hex digits, so columns line up in logs: P:0x00000000001ff000.
  ktl::Array<char, 2> prefix{{tag, ':'}};
  sink.write(ktl::StringView(prefix.span()));
  ktl::FormatSpec hex;
  hex.type = spec.type == 'X' ? 'X' : 'x';
  hex.alternate = true;
  hex.zero_pad = true;
  hex.width = 18;
  ktl::format_value(sink, value, hex);
}
}  // namespace

void format_value(ktl::FormatSink& sink, PhysAddr a, const ktl::FormatSpec& spec) {
  format_address(sink, 'P', a.value(), spec);
}
void format_value(ktl::FormatSink& sink, VirtAddr a, const ktl::FormatSpec& spec) {
  format_address(sink, 'V', a.value(), spec);
}

}  // namespace mm
