// Host tests of kernel.sched with real context switches (arch.x86_64.context, the kernel's own
// switch routine) and a simulated clock: time passes only when a task says it used CPU time
// (advance) or when the idle task "halts" until the next timer. Timer interrupts are simulated at
// those points exactly as the kernel takes them: kernel.irq's enter/exit around the timer
// service's interrupt, whose exit hook is the scheduler's preemption point. A 10 ms periodic
// timer drives Scheduler::tick, as in the kernel.
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

import ktl;
import kernel.irq;
import kernel.sched;
import kernel.time;
import arch.x86_64.context;

namespace {

using kernel::sched::Mutex;
using kernel::sched::Priority;
using kernel::sched::RunningContext;
using kernel::sched::Scheduler;
using kernel::sched::Task;
using kernel::sched::TaskState;
using kernel::sched::WaitQueue;
using ktl::u64;

constexpr u64 kMs = 1'000'000;
constexpr u64 kTickNs = 10 * kMs;

struct Sim;
Sim* g_sim = nullptr;

u64 read_sim_clock();
void program_sim_timer(u64 deadline);
void sim_halt();
void sim_preempt();

class TickTimer final : public kernel::time::Timer {
 public:
  Sim* sim = nullptr;

 protected:
  void expired() override;
};

// One simulated machine: clock, timer device, scheduler, boot and idle tasks.
struct Sim {
  u64 now = 0;
  u64 programmed = 0;  // the one-shot device's deadline (0: stopped)
  u64 halts = 0;
  std::vector<std::unique_ptr<std::vector<unsigned char>>> stacks;
  Task boot{RunningContext{}, "boot", Priority::Normal};
  std::vector<unsigned char> idle_stack = std::vector<unsigned char>(64 * 1024);
  Task idle{"idle", Priority::Idle,      &Sim::idle_entry,
            this,   address(idle_stack), address(idle_stack) + idle_stack.size()};
  kernel::time::TimerService timers;
  TickTimer tick;
  std::unique_ptr<Scheduler> sched = std::make_unique<Scheduler>();

  static u64 address(std::vector<unsigned char>& v) { return ktl::address_of(v.data()); }

  Sim() {
    g_sim = this;
    kernel::time::clock().install({"sim", &read_sim_clock, kernel::time::TickScale::from_hz(1'000'000'000)});
    timers.install(&program_sim_timer);
    kernel::irq::set_exit_hook(&sim_preempt);
    sched->init({&ferrite_switch_context, &arch::x86_64::prepare_task_stack}, timers, boot, idle);
    tick.sim = this;
    timers.arm(tick, now + kTickNs);
  }
  ~Sim() {
    (void)timers.cancel(tick);
    sched.reset();
    kernel::irq::set_exit_hook(nullptr);
    g_sim = nullptr;
  }

  Task& spawn(const char* name, Priority p, Task::Entry entry, void* arg) {
    stacks.push_back(std::make_unique<std::vector<unsigned char>>(64 * 1024));
    auto& st = *stacks.back();
    tasks.push_back(std::make_unique<Task>(name, p, entry, arg, address(st), address(st) + st.size()));
    EXPECT_TRUE(sched->start(*tasks.back()));
    return *tasks.back();
  }

  // The current task uses `ns` of CPU; timer interrupts due meanwhile are taken (and may preempt).
  void advance(u64 ns) {
    u64 target = now + ns;
    while (now < target) {
      u64 step = programmed != 0 && programmed < target ? programmed : target;
      if (step > now) now = step;
      if (programmed != 0 && now >= programmed) interrupt();
    }
  }
  void interrupt() {
    programmed = 0;
    kernel::irq::enter();
    (void)timers.interrupt(now);
    kernel::irq::exit();  // the preemption point
  }
  static void idle_entry(void* arg) {
    auto* s = static_cast<Sim*>(arg);
    for (;;) s->sched->idle_step(&sim_halt);
  }

  std::vector<std::unique_ptr<Task>> tasks;
};

u64 read_sim_clock() { return g_sim->now; }
void program_sim_timer(u64 deadline) { g_sim->programmed = deadline; }
void sim_preempt() { g_sim->sched->preempt(); }
void TickTimer::expired() {
  sim->sched->tick();
  sim->timers.arm(*this, sim->now + kTickNs);
}
// The idle task's HLT: time jumps to the next timer interrupt.
void sim_halt() {
  Sim& s = *g_sim;
  ++s.halts;
  if (s.programmed == 0) {
    ADD_FAILURE() << "idle: halted with no timer armed (every task blocked forever)";
    std::abort();
  }
  if (s.programmed > s.now) s.now = s.programmed;
  s.interrupt();
}

// --- tests -----------------------------------------------------------------------------------------

struct Log {
  std::vector<std::string> entries;
  void add(std::string e) { entries.push_back(std::move(e)); }
  std::string joined() const {
    std::string out;
    for (const auto& e : entries) out += e;
    return out;
  }
};

struct RoundRobinArg {
  Log* log;
  const char* name;
  Sim* sim;
};

void round_robin_task(void* p) {
  auto* a = static_cast<RoundRobinArg*>(p);
  for (int i = 0; i < 3; ++i) {
    a->log->add(a->name);
    a->sim->sched->yield();
  }
}

TEST(Sched, TasksOfOneClassRunRoundRobinInStartOrder) {
  Sim sim;
  Log log;
  RoundRobinArg a{&log, "A", &sim}, b{&log, "B", &sim}, c{&log, "C", &sim};
  Task& ta = sim.spawn("a", Priority::Normal, &round_robin_task, &a);
  Task& tb = sim.spawn("b", Priority::Normal, &round_robin_task, &b);
  Task& tc = sim.spawn("c", Priority::Normal, &round_robin_task, &c);
  EXPECT_EQ(ta.state(), TaskState::Runnable);
  EXPECT_EQ(sim.sched->runnable(), 3u);
  EXPECT_EQ(sim.sched->join(ta), 0);
  EXPECT_EQ(sim.sched->join(tb), 0);
  EXPECT_EQ(sim.sched->join(tc), 0);
  // The boot task joins first (it blocks), so the three alternate, then exit in order.
  EXPECT_EQ(log.joined(), "ABCABCABC");
  EXPECT_EQ(ta.state(), TaskState::Exited);
  EXPECT_GE(ta.stats().switches, 4u);
}

struct BusyArg {
  Sim* sim;
  Log* log;
  const char* name;
  int steps;
};

void busy_task(void* p) {
  auto* a = static_cast<BusyArg*>(p);
  for (int i = 0; i < a->steps; ++i) {
    a->sim->advance(1 * kMs);
    a->log->add(a->name);
  }
}

TEST(Sched, TheTickPreemptsBusyTasksOfOneClassAfterTheirSlice) {
  Sim sim;
  Log log;
  BusyArg a{&sim, &log, "a", 100}, b{&sim, &log, "b", 100};
  Task& ta = sim.spawn("busy-a", Priority::Normal, &busy_task, &a);
  Task& tb = sim.spawn("busy-b", Priority::Normal, &busy_task, &b);
  (void)sim.sched->join(ta);
  (void)sim.sched->join(tb);
  ASSERT_EQ(log.entries.size(), 200u);
  // Both make progress: no run of one task's steps is longer than its slice (2 ticks = 20 ms)
  // plus the partial tick it started in, and they alternate many times.
  size_t longest = 0, run = 0, switches = 0;
  for (size_t i = 0; i < log.entries.size(); ++i) {
    run = i > 0 && log.entries[i] == log.entries[i - 1] ? run + 1 : 1;
    if (i > 0 && log.entries[i] != log.entries[i - 1]) ++switches;
    longest = std::max(longest, run);
  }
  EXPECT_LE(longest, 30u) << log.joined();
  EXPECT_GE(switches, 5u) << log.joined();
  EXPECT_GE(ta.stats().preemptions, 2u);
  EXPECT_GE(tb.stats().preemptions, 2u);
  // CPU time is what they used: 100 ms each (within a tick's worth of accounting).
  EXPECT_NEAR(static_cast<double>(ta.stats().cpu_ns), 100.0 * kMs, 11.0 * kMs);
  EXPECT_NEAR(static_cast<double>(tb.stats().cpu_ns), 100.0 * kMs, 11.0 * kMs);
}

struct SleeperArg {
  Sim* sim;
  Log* log;
  u64 sleep_ns;
  u64 woke_at = 0;
};

void sleeper_task(void* p) {
  auto* a = static_cast<SleeperArg*>(p);
  a->sim->sched->sleep_for(a->sleep_ns);
  a->woke_at = a->sim->now;
  a->log->add("H");
}

TEST(Sched, AWakingHigherClassTaskPreemptsAtOnce) {
  Sim sim;
  Log log;
  SleeperArg h{&sim, &log, 5 * kMs};
  BusyArg n{&sim, &log, "n", 20};
  Task& tn = sim.spawn("normal", Priority::Normal, &busy_task, &n);
  Task& th = sim.spawn("high", Priority::High, &sleeper_task, &h);
  (void)sim.sched->join(tn);
  (void)sim.sched->join(th);
  // The high task ran first (it went to sleep), the normal one got the CPU, and the high one
  // took it back inside the step its sleep ended in (the 5th millisecond, before that step's
  // log entry), not at the normal task's slice end.
  std::string order = log.joined();
  EXPECT_EQ(order.find('H'), 4u) << order;
  EXPECT_EQ(h.woke_at, 5 * kMs);
  EXPECT_EQ(th.stats().wakeups, 1u);
  EXPECT_GE(tn.stats().preemptions, 1u);
}

TEST(Sched, SleepWakesOnTimeAndTheIdleTaskHaltsMeanwhile) {
  Sim sim;
  Log log;
  SleeperArg s1{&sim, &log, 30 * kMs}, s2{&sim, &log, 7 * kMs};
  Task& t1 = sim.spawn("s1", Priority::Normal, &sleeper_task, &s1);
  Task& t2 = sim.spawn("s2", Priority::Normal, &sleeper_task, &s2);
  u64 halts = sim.halts;
  (void)sim.sched->join(t1);
  (void)sim.sched->join(t2);
  EXPECT_EQ(s1.woke_at, 30 * kMs);
  EXPECT_EQ(s2.woke_at, 7 * kMs);
  EXPECT_GT(sim.halts, halts);  // nobody was runnable while both slept
  EXPECT_LT(t1.stats().cpu_ns, kMs);
}

struct WaitArg {
  Sim* sim;
  WaitQueue* q;
  bool* flag;
  u64 timeout;
  bool result = false;
  u64 returned_at = 0;
};

void waiter_task(void* p) {
  auto* a = static_cast<WaitArg*>(p);
  a->result = a->sim->sched->wait_until(*a->q, [a] { return *a->flag; }, a->timeout);
  a->returned_at = a->sim->now;
}

struct SetterArg {
  Sim* sim;
  WaitQueue* q;
  bool* flag;
  u64 after;
};

void setter_task(void* p) {
  auto* a = static_cast<SetterArg*>(p);
  a->sim->sched->sleep_for(a->after);
  *a->flag = true;  // the condition first, then the wake-up
  EXPECT_EQ(a->sim->sched->wake_all(*a->q), 2u);
}

TEST(Sched, WaitQueuesWakeEveryWaiterAndTimeOut) {
  Sim sim;
  WaitQueue q, never;
  bool flag = false, never_flag = false;
  WaitArg w1{&sim, &q, &flag, 0}, w2{&sim, &q, &flag, 100 * kMs}, w3{&sim, &never, &never_flag, 40 * kMs};
  SetterArg s{&sim, &q, &flag, 10 * kMs};
  Task& t1 = sim.spawn("w1", Priority::Normal, &waiter_task, &w1);
  Task& t2 = sim.spawn("w2", Priority::Normal, &waiter_task, &w2);
  Task& t3 = sim.spawn("w3", Priority::Normal, &waiter_task, &w3);
  Task& ts = sim.spawn("setter", Priority::Normal, &setter_task, &s);
  for (Task* t : {&t1, &t2, &t3, &ts}) (void)sim.sched->join(*t);
  EXPECT_TRUE(w1.result);
  EXPECT_TRUE(w2.result);
  EXPECT_EQ(w1.returned_at, 10 * kMs);
  EXPECT_EQ(w2.returned_at, 10 * kMs);
  EXPECT_FALSE(w3.result);  // nobody woke it: it timed out on time
  EXPECT_EQ(w3.returned_at, 40 * kMs);
  EXPECT_EQ(q.waiting(), 0u);
  EXPECT_EQ(never.waiting(), 0u);
}

TEST(Sched, AConditionTrueBeforeWaitingDoesNotBlock) {
  Sim sim;
  WaitQueue q;
  bool flag = true;
  WaitArg w{&sim, &q, &flag, 0};
  Task& t = sim.spawn("w", Priority::Normal, &waiter_task, &w);
  (void)sim.sched->join(t);
  EXPECT_TRUE(w.result);
  EXPECT_EQ(t.stats().wakeups, 0u);
}

struct MutexArg {
  Sim* sim;
  Mutex* m;
  int* inside;
  int* max_inside;
  int* total;
};

void mutex_task(void* p) {
  auto* a = static_cast<MutexArg*>(p);
  for (int i = 0; i < 10; ++i) {
    a->m->lock();
    ++*a->inside;
    *a->max_inside = std::max(*a->max_inside, *a->inside);
    a->sim->advance(7 * kMs);  // long enough to be preempted while holding it
    ++*a->total;
    --*a->inside;
    a->m->unlock();
    a->sim->advance(1 * kMs);
  }
}

TEST(Sched, TheMutexExcludesAcrossPreemptionAndHandsOver) {
  Sim sim;
  Mutex m(*sim.sched);
  int inside = 0, max_inside = 0, total = 0;
  MutexArg a{&sim, &m, &inside, &max_inside, &total};
  std::vector<Task*> ts;
  for (const char* n : {"m1", "m2", "m3"}) ts.push_back(&sim.spawn(n, Priority::Normal, &mutex_task, &a));
  for (Task* t : ts) (void)sim.sched->join(*t);
  EXPECT_EQ(total, 30);
  EXPECT_EQ(max_inside, 1);
  EXPECT_EQ(m.owner(), nullptr);
}

void exit_with_seven(void* p) {
  auto* sim = static_cast<Sim*>(p);
  sim->advance(3 * kMs);
  sim->sched->exit(7);
}

TEST(Sched, JoinWaitsForExitAndReturnsItsCode) {
  Sim sim;
  Task& t = sim.spawn("exiter", Priority::Normal, &exit_with_seven, &sim);
  EXPECT_EQ(sim.sched->join(t), 7);
  EXPECT_EQ(t.state(), TaskState::Exited);
  EXPECT_EQ(t.exit_code(), 7);
  EXPECT_GE(sim.now, 3 * kMs);
}

TEST(Sched, SnapshotListsEveryTaskWithItsAccounting) {
  Sim sim;
  Log log;
  SleeperArg s{&sim, &log, 50 * kMs};
  Task& t = sim.spawn("sleepy", Priority::High, &sleeper_task, &s);
  sim.sched->yield();  // the high task runs and goes to sleep
  std::vector<kernel::sched::TaskInfo> infos(8);
  size_t n = sim.sched->snapshot(ktl::Span<kernel::sched::TaskInfo>(infos));
  ASSERT_EQ(n, 3u);
  EXPECT_EQ(std::string(infos[0].name.data()), "boot");
  EXPECT_EQ(infos[0].state, TaskState::Running);
  EXPECT_EQ(std::string(infos[1].name.data()), "idle");
  EXPECT_EQ(infos[1].priority, Priority::Idle);
  EXPECT_EQ(std::string(infos[2].name.data()), "sleepy");
  EXPECT_EQ(infos[2].state, TaskState::Sleeping);
  EXPECT_EQ(infos[2].priority, Priority::High);
  EXPECT_EQ(infos[2].stats.switches, 1u);
  (void)sim.sched->join(t);
  EXPECT_EQ(sim.sched->snapshot(ktl::Span<kernel::sched::TaskInfo>(infos)), 2u);  // joined: forgotten
  ktl::check_enum_text<TaskState>();
  ktl::check_enum_text<Priority>();
}

void return_at_once(void*) {}

TEST(Sched, StartRefusesTasksBeyondTheLimit) {
  Sim sim;
  // boot and idle are live already.
  std::vector<Task*> started;
  for (size_t i = 2; i < Scheduler::kMaxTasks; ++i)
    started.push_back(&sim.spawn("t", Priority::Normal, &return_at_once, nullptr));
  std::vector<unsigned char> stack(16 * 1024);
  Task extra("extra", Priority::Normal, &return_at_once, nullptr, Sim::address(stack),
             Sim::address(stack) + stack.size());
  EXPECT_FALSE(sim.sched->start(extra));
  EXPECT_EQ(extra.state(), TaskState::Created);
  for (Task* t : started) (void)sim.sched->join(*t);
  EXPECT_TRUE(sim.sched->start(extra));  // joined tasks free their places
  (void)sim.sched->join(extra);
}

TEST(Sched, MisuseIsCaught) {
  EXPECT_DEATH(
      {
        Sim sim;
        Mutex m(*sim.sched);
        m.unlock();
      },
      "sched::Mutex: unlocked by a task that does not own it");
  EXPECT_DEATH(
      {
        Sim sim;
        Mutex m(*sim.sched);
        m.lock();
        m.lock();
      },
      "sched::Mutex: locked twice by one task");
  EXPECT_DEATH(
      {
        Sim sim;
        (void)sim.sched->join(sim.boot);
      },
      "a task cannot join itself");
}

}  // namespace
