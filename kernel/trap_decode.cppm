// kernel.trap_decode: turning x86_64 exception error codes into words for the panic report.
// Pure (host tests in trap_decode_test.cc).
module;

#include <ktl/macros.h>

export module kernel.trap_decode;

import ktl;

export namespace kernel {

// A page-fault error code (SDM vol. 3, 4.7): "not present, write, supervisor mode", ...
struct PageFaultCode {
  ktl::u64 code;
};
void format_value(ktl::FormatSink& sink, PageFaultCode c, const ktl::FormatSpec& spec);

// A segment-selector error code (#TS, #NP, #SS, #GP; SDM vol. 3, 6.13): "GDT index 5", ...
struct SelectorCode {
  ktl::u64 code;
};
void format_value(ktl::FormatSink& sink, SelectorCode c, const ktl::FormatSpec& spec);

}  // namespace kernel
