// Host tests of kernel.irq: dispatch to the registered handler, counts, unexpected vectors
// counted and reported at powers of two (never fatal), spurious ones apart, double registration.
#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "testing/host_runtime.h"

import ktl;
import kernel.irq;

namespace {

using kernel::irq::Outcome;
using kernel::irq::Table;

int g_calls = 0;
ktl::u8 g_last = 0;
void handler(ktl::u8 v) {
  ++g_calls;
  g_last = v;
}

TEST(Irq, DispatchRunsTheHandlerAndCounts) {
  auto t = std::make_unique<Table>();
  g_calls = 0;
  t->set(0x30, &handler, "com1");
  EXPECT_TRUE(t->has_handler(0x30));
  EXPECT_STREQ(t->name(0x30), "com1");
  EXPECT_EQ(t->dispatch(0x30), Outcome::Handled);
  EXPECT_EQ(t->dispatch(0x30), Outcome::Handled);
  EXPECT_EQ(g_calls, 2);
  EXPECT_EQ(g_last, 0x30);
  EXPECT_EQ(t->count(0x30), 2u);
  EXPECT_EQ(t->unexpected(), 0u);
  t->clear(0x30);
  EXPECT_EQ(t->dispatch(0x30), Outcome::Unexpected);
  EXPECT_EQ(g_calls, 2);
}

TEST(Irq, UnexpectedVectorsAreCountedAndReportedAtPowersOfTwo) {
  auto t = std::make_unique<Table>();
  ferrite_host::LogCapture log;
  for (int i = 0; i < 9; ++i) EXPECT_EQ(t->dispatch(0x77), Outcome::Unexpected);
  EXPECT_EQ(t->unexpected(), 9u);
  EXPECT_EQ(t->count(0x77), 9u);
  EXPECT_TRUE(log.contains("irq: unexpected interrupt on vector 0x77 (1 unexpected so far; ignored)"));
  EXPECT_EQ(log.lines.size(), 4u);  // the 1st, 2nd, 4th and 8th
  EXPECT_TRUE(log.contains("(8 unexpected so far"));
  EXPECT_FALSE(log.contains("(3 unexpected so far"));
  EXPECT_FALSE(log.contains("(9 unexpected so far"));
  EXPECT_TRUE(kernel::irq::report_occurrence(1));
  EXPECT_TRUE(kernel::irq::report_occurrence(1024));
  EXPECT_FALSE(kernel::irq::report_occurrence(0));
  EXPECT_FALSE(kernel::irq::report_occurrence(6));
}

TEST(Irq, SpuriousInterruptsAreCountedApart) {
  auto t = std::make_unique<Table>();
  t->count_spurious(0xff);
  t->count_spurious(0x27);
  EXPECT_EQ(t->spurious(), 2u);
  EXPECT_EQ(t->unexpected(), 0u);
  EXPECT_EQ(t->count(0xff), 1u);
  EXPECT_EQ(t->total(), 2u);
}

int g_exit_hook_runs = 0;
void exit_hook() {
  EXPECT_FALSE(kernel::irq::in_interrupt());
  ++g_exit_hook_runs;
}

TEST(Irq, TheExitHookRunsWhenTheOutermostInterruptEnds) {
  g_exit_hook_runs = 0;
  kernel::irq::set_exit_hook(&exit_hook);
  EXPECT_FALSE(kernel::irq::in_interrupt());
  kernel::irq::enter();
  kernel::irq::enter();  // nested (an NMI, say)
  EXPECT_TRUE(kernel::irq::in_interrupt());
  kernel::irq::exit();
  EXPECT_EQ(g_exit_hook_runs, 0);
  kernel::irq::exit();
  EXPECT_EQ(g_exit_hook_runs, 1);
  kernel::irq::set_exit_hook(nullptr);
  EXPECT_DEATH(kernel::irq::exit(), "irq::exit without enter");
}

TEST(Irq, TwoHandlersForOneVectorPanicNamingBoth) {
  auto t = std::make_unique<Table>();
  t->set(0x31, &handler, "hpet");
  EXPECT_DEATH(t->set(0x31, &handler, "com1"),
               "irq: vector 0x31 already belongs to hpet \\(wanted by com1\\)");
}

}  // namespace
