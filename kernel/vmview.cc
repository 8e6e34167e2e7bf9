module;

#include <ktl/macros.h>

module kernel.vmview;

import ktl;
import mm.addr;
import mm.paging;

namespace kernel::vmview {

void format_value(ktl::FormatSink& sink, const Range& r, const ktl::FormatSpec&) {
  ktl::format_to(sink, "{:#018x} {:#015x} {:#013x} {}{}{}{} {}", r.va.value(), r.pa.value(), r.size,
                 r.flags.writable() ? 'W' : '-', r.flags.executable() ? 'X' : '-', r.flags.user() ? 'U' : '-',
                 r.flags.global() ? 'G' : '-', mm::to_string(r.flags.cache()));
}

}  // namespace kernel::vmview
