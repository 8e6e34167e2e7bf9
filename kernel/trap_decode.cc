module;

#include <ktl/macros.h>

module kernel.trap_decode;

import ktl;

namespace kernel {

void format_value(ktl::FormatSink& sink, PageFaultCode c, const ktl::FormatSpec&) {
  ktl::u64 e = c.code;
  sink.write((e & 1) != 0 ? "protection violation" : "not present");
  if ((e & (1u << 4)) != 0) {
    sink.write(", instruction fetch");
  } else {
    sink.write((e & 2) != 0 ? ", write" : ", read");
  }
  sink.write((e & 4) != 0 ? ", user mode" : ", supervisor mode");
  if ((e & (1u << 3)) != 0) sink.write(", reserved bit set in a paging entry");
  if ((e & (1u << 5)) != 0) sink.write(", protection key");
  if ((e & (1u << 6)) != 0) sink.write(", shadow stack");
  if ((e & (1u << 15)) != 0) sink.write(", SGX");
}

void format_value(ktl::FormatSink& sink, SelectorCode c, const ktl::FormatSpec&) {
  ktl::u64 e = c.code;
  if (e == 0) {
    sink.write("no selector involved");
    return;
  }
  const char* table = (e & 2) != 0 ? "IDT" : (e & 4) != 0 ? "LDT" : "GDT";
  ktl::format_to(sink, "{} index {} (selector {:#x})", table, (e >> 3) & 0x1fff, e & 0xfff8);
  if ((e & 1) != 0) sink.write(", external event");
}

}  // namespace kernel
