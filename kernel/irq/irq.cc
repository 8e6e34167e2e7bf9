module;

#include <ktl/macros.h>

module kernel.irq;

import ktl;

namespace kernel::irq {

namespace {
Table g_table;
#if __STDC_HOSTED__
thread_local u32 t_nesting = 0;
#else
u32 t_nesting = 0;
#endif
void (*g_exit_hook)() = nullptr;
}  // namespace

void enter() { ++t_nesting; }

void exit() {
  ktl::check(t_nesting > 0, "irq::exit without enter");
  if (--t_nesting == 0 && g_exit_hook != nullptr) g_exit_hook();
}

bool in_interrupt() { return t_nesting != 0; }

void set_exit_hook(void (*hook)()) { g_exit_hook = hook; }

void Table::set(u8 vector, Handler handler, const char* name) {
  ktl::check(handler != nullptr, "irq::Table::set: no handler");
  if (handlers_[vector].load() != nullptr) {
    ktl::InlineString<128> m;
    ktl::format_to(m, "irq: vector {:#x} already belongs to {} (wanted by {})", u32{vector}, names_[vector],
                   name);
    ktl::panic(m.c_str());
  }
  names_[vector] = name;
  handlers_[vector].store(handler);
}

void Table::clear(u8 vector) {
  handlers_[vector].store(nullptr);
  names_[vector] = nullptr;
}

Outcome Table::dispatch(u8 vector) {
  counts_[vector].fetch_add(1, ktl::MemoryOrder::Relaxed);
  if (Handler h = handlers_[vector].load()) {
    h(vector);
    return Outcome::Handled;
  }
  u64 n = unexpected_.fetch_add(1, ktl::MemoryOrder::Relaxed) + 1;
  if (report_occurrence(n)) {
    ktl::log::warn("irq: unexpected interrupt on vector {:#x} ({} unexpected so far; ignored)", u32{vector},
                   n);
  }
  return Outcome::Unexpected;
}

void Table::count_spurious(u8 vector) {
  counts_[vector].fetch_add(1, ktl::MemoryOrder::Relaxed);
  spurious_.fetch_add(1, ktl::MemoryOrder::Relaxed);
}

u64 Table::total() const {
  u64 sum = 0;
  for (const auto& c : counts_) sum += c.load(ktl::MemoryOrder::Relaxed);
  return sum;
}

Table& table() { return g_table; }

}  // namespace kernel::irq
