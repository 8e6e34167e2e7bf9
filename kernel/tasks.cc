module;

#include <ktl/macros.h>
#include <ktl/new.h>

module kernel.tasks;

import ktl;
import kernel.irq;
import kernel.log;
import kernel.memory;
import kernel.panic;
import kernel.backtrace;
import kernel.sched;
import kernel.time;
import mm.heap;
import arch.x86_64.context;

namespace kernel::tasks {

struct TaskBlock {
  memory::KernelStack stack;
  ktl::InlineString<48> stack_name;
  sched::Task task;
  TaskBlock(memory::KernelStack&& s, const char* name, sched::Priority p, sched::Task::Entry entry, void* arg)
      : stack(ktl::move(s)), task(name, p, entry, arg, stack.bottom(), stack.top()) {
    ktl::format_to(stack_name, "task {} ({}) stack", task.id(), task.name());
  }
};

namespace {

class TickTimer final : public time::Timer {
 protected:
  void expired() override {
    sched::scheduler().tick();
    time::timers().arm(*this, deadline_ns() + kTickNs);
  }
};

ktl::Optional<sched::Task> g_main;  // the boot flow's task (lives as long as the kernel)
TaskBlock* g_idle = nullptr;
TickTimer g_tick;

void halt() { __asm__ volatile("sti; hlt" ::: "memory"); }

void idle_entry(void*) {
  for (;;) sched::scheduler().idle_step(&halt);
}

void preempt_on_exit() { sched::scheduler().preempt(); }

ktl::Result<TaskBlock*, SpawnError> make_block(const char* name, sched::Priority p, sched::Task::Entry entry,
                                               void* arg, ktl::u64 stack_bytes) {
  auto stack = memory::map_kernel_stack(stack_bytes);
  if (stack.is_err()) {
    klog::warn("tasks: no stack for \"{}\": {}", name, stack.error());
    return ktl::Err(SpawnError::NoStack);
  }
  void* storage = mm::kmalloc(sizeof(TaskBlock));
  if (storage == nullptr) return ktl::Err(SpawnError::NoMemory);
  auto* b = new (storage) TaskBlock(stack.release_value(), name, p, entry, arg);
  kpanic::add_stack(kernel::StackBounds{b->stack.bottom(), b->stack.top()}, b->stack_name.c_str());
  return b;
}

void free_block(TaskBlock* b) {
  kpanic::remove_stack(b->stack_name.c_str());
  b->~TaskBlock();
  mm::kfree(b);
}

}  // namespace

void start() {
  g_main.emplace(sched::RunningContext{}, "kernel-main", sched::Priority::Normal);
  auto idle = make_block("idle", sched::Priority::Idle, &idle_entry, nullptr, kStackSize);
  ktl::check_ok(idle, "tasks: no idle task");
  g_idle = idle.value();
  sched::scheduler().init({&ferrite_switch_context, &arch::x86_64::prepare_task_stack}, time::timers(),
                          *g_main, g_idle->task);
  irq::set_exit_hook(&preempt_on_exit);
  time::timers().arm(g_tick, time::now_ns() + kTickNs);
  klog::info(
      "tasks: scheduler running (priorities high/normal/idle, {} ms tick, slices of {} ticks, {} KiB stacks)",
      kTickNs / 1'000'000, sched::kSliceTicks, kStackSize >> 10);
}

sched::Task& main_task() {
  ktl::check(g_main.has_value(), "tasks: not started");
  return *g_main;
}

ktl::Result<TaskHandle, SpawnError> spawn(const char* name, sched::Priority priority,
                                          sched::Task::Entry entry, void* arg, ktl::u64 stack_bytes) {
  TaskBlock* b = TRY(make_block(name, priority, entry, arg, stack_bytes));
  if (!sched::scheduler().start(b->task)) {
    free_block(b);
    return ktl::Err(SpawnError::TooManyTasks);
  }
  return TaskHandle(b);
}

TaskHandle& TaskHandle::operator=(TaskHandle&& o) {
  if (this != &o) {
    if (block_ != nullptr) (void)join();
    block_ = ktl::exchange(o.block_, nullptr);
  }
  return *this;
}

TaskHandle::~TaskHandle() {
  if (block_ != nullptr) (void)join();
}

sched::Task& TaskHandle::task() const {
  ktl::check(block_ != nullptr, "TaskHandle: empty");
  return block_->task;
}

int TaskHandle::join() {
  ktl::check(block_ != nullptr, "TaskHandle::join: empty");
  int code = sched::scheduler().join(block_->task);
  free_block(ktl::exchange(block_, nullptr));
  return code;
}

}  // namespace kernel::tasks
