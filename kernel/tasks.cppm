// kernel.tasks: kernel tasks in the running kernel: kernel.sched's scheduler with its x86_64
// ArchOps (arch.x86_64.context), task stacks from kernel.memory (guard pages below and above: an
// overflow is a double fault whose report names the task's stack), the 100 Hz tick, the idle task
// (HLT), and the preemption point at every interrupt's exit (kernel.irq's exit hook).
//
//   auto t = TRY(kernel::tasks::spawn("worker", sched::Priority::Normal, &work, &state));
//   int code = t.join();  // or let the handle's destructor join
//
// Contract: start() runs once, on the boot stack, after interrupts and timers are up; the boot
// flow continues as the task "kernel-main".
module;

#include <ktl/macros.h>

export module kernel.tasks;

import ktl;
import kernel.memory;
import kernel.sched;

export namespace kernel::tasks {

inline constexpr ktl::u64 kStackSize = 16 * 1024;
// The largest stack a task can have (a 64 KiB stride minus its two guard pages).
inline constexpr ktl::u64 kMaxStackSize = 56 * 1024;
inline constexpr ktl::u64 kTickNs = 10'000'000;

enum class SpawnError : ktl::u32 {
  NoMemory,      // no heap memory for the task
  NoStack,       // no kernel stack (see the log for the stack error)
  TooManyTasks,  // the scheduler's limit of live tasks (sched::Scheduler::kMaxTasks)
};
[[nodiscard]] constexpr const char* to_string(SpawnError e) {
  switch (e) {
    case SpawnError::NoMemory: return "no memory for the task";
    case SpawnError::NoStack: return "no kernel stack for the task";
    case SpawnError::TooManyTasks: return "too many live tasks";
  }
  return "unknown spawn error";
}

struct TaskBlock;

// Owns a started task, its stack and its memory. join() waits for it and frees them; the
// destructor joins if nobody did.
class TaskHandle {
 public:
  TaskHandle() = default;
  inline TaskHandle(TaskHandle&& o) : block_(ktl::exchange(o.block_, nullptr)) {}
  TaskHandle& operator=(TaskHandle&& o);
  TaskHandle(const TaskHandle&) = delete;
  TaskHandle& operator=(const TaskHandle&) = delete;
  ~TaskHandle();

  [[nodiscard]] sched::Task& task() const;
  [[nodiscard]] inline bool valid() const { return block_ != nullptr; }
  int join();

 private:
  friend ktl::Result<TaskHandle, SpawnError> spawn(const char*, sched::Priority, sched::Task::Entry, void*,
                                                   ktl::u64);
  inline explicit TaskHandle(TaskBlock* b) : block_(b) {}
  TaskBlock* block_ = nullptr;
};

void start();
[[nodiscard]] ktl::Result<TaskHandle, SpawnError> spawn(const char* name, sched::Priority priority,
                                                        sched::Task::Entry entry, void* arg,
                                                        ktl::u64 stack_bytes = kStackSize);
// The boot flow's task.
[[nodiscard]] sched::Task& main_task();

}  // namespace kernel::tasks
