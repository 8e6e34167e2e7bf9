// kernel.sched: kernel tasks and the scheduler, architecture-neutral. The same code runs in the
// kernel and in the host tests, where tasks really switch stacks (the x86_64 switch routine is
// plain SysV code) and time is a simulated clock.
//
// Policy: strict priority between classes (High > Normal > Idle), round robin inside one. A task
// runs until it blocks, yields, or has used its time slice (kSliceTicks ticks of the caller's
// tick, 10 ms in the kernel) while another task of its class is runnable, or a task of a higher
// class becomes runnable. The tick and wake-ups only set need_resched; the switch happens at a
// preemption point: the interrupt exit path (preempt()), or at once when a task wakes one of a
// higher class from task context. The idle task (class Idle, never in the run queue) runs when
// nothing else can.
//
// Locking: one SpinLock, `sched` (docs/ARCHITECTURE.md), guards every task state, the run queue
// and every WaitQueue. A switch happens with exactly that lock held; the task switched to
// releases it (after its own switch call returns, or in its start trampoline). Holding it masks
// interrupts, so on one CPU nothing interleaves with a switch. Sleep and wake-up cannot lose a
// wake-up: a waiter checks its condition and enqueues itself under the lock, and a waker changes
// the condition before it takes the lock to wake. FIXME(smp): per-CPU run queues and `current`.
//
// Lifetimes: a Task and its stack belong to the code that created it (kernel: kernel.tasks'
// TaskHandle). A task that exits stays Exited until joined; its owner frees it after join().
module;

#include <ktl/macros.h>

export module kernel.sched;

import ktl;
import kernel.time;
import kernel.irq;

export namespace kernel::sched {

using ktl::u32;
using ktl::u64;
using ktl::usize;

enum class Priority : ktl::u8 { Idle, Normal, High };
inline constexpr usize kPriorities = 3;
[[nodiscard]] constexpr const char* to_string(Priority p) {
  switch (p) {
    case Priority::Idle: return "idle";
    case Priority::Normal: return "normal";
    case Priority::High: return "high";
  }
  return "unknown priority";
}

enum class TaskState : ktl::u8 { Created, Runnable, Running, Blocked, Sleeping, Exited };
[[nodiscard]] constexpr const char* to_string(TaskState s) {
  switch (s) {
    case TaskState::Created: return "created";
    case TaskState::Runnable: return "runnable";
    case TaskState::Running: return "running";
    case TaskState::Blocked: return "blocked";
    case TaskState::Sleeping: return "sleeping";
    case TaskState::Exited: return "exited";
  }
  return "unknown task state";
}

inline constexpr u32 kSliceTicks = 2;

struct TaskStats {
  u64 cpu_ns = 0;       // time spent running (up to the last switch away)
  u64 switches = 0;     // times switched to
  u64 wakeups = 0;      // times made runnable by a wake-up or an expired sleep
  u64 preemptions = 0;  // times switched away from while still runnable (slice or priority)
};

// What a CPU port supplies.
struct ArchOps {
  // Saves the running context (callee-saved registers, stack pointer) into *save_sp and resumes
  // the one saved at new_sp; returns when the saved context is resumed.
  void (*switch_context)(u64* save_sp, u64 new_sp) = nullptr;
  // Builds a new task's first frame below `stack_top` so that the first switch to it calls
  // `start(task)` on its stack; returns that stack pointer.
  u64 (*prepare_stack)(u64 stack_top, void (*start)(void* task), void* task) = nullptr;
};

class Task;
class Scheduler;

// Tasks in FIFO order (intrusive: a task is in at most one list, its run queue or a wait queue).
class TaskList {
 public:
  constexpr TaskList() = default;
  TaskList(const TaskList&) = delete;
  TaskList& operator=(const TaskList&) = delete;
  void push_back(Task& t);
  Task* pop_front();
  bool remove(Task& t);
  [[nodiscard]] inline bool empty() const { return head_ == nullptr; }
  [[nodiscard]] inline usize size() const { return size_; }

 private:
  Task* head_ = nullptr;
  Task* tail_ = nullptr;
  usize size_ = 0;
};

// Tasks waiting for something; guarded by the scheduler's lock.
class WaitQueue {
 public:
  constexpr WaitQueue() = default;
  WaitQueue(const WaitQueue&) = delete;
  WaitQueue& operator=(const WaitQueue&) = delete;
  [[nodiscard]] inline usize waiting() const { return tasks_.size(); }

 private:
  friend class Scheduler;
  TaskList tasks_;
};

// Tag: the task object for a context that is already running (the boot flow).
struct RunningContext {};

class Task {
 public:
  using Entry = void (*)(void* arg);

  // A task that will run `entry(arg)` on the stack [stack_bottom, stack_top).
  Task(const char* name, Priority priority, Entry entry, void* arg, u64 stack_bottom, u64 stack_top);
  // The context that runs now (Scheduler::init adopts it).
  Task(RunningContext, const char* name, Priority priority);
  Task(const Task&) = delete;
  Task& operator=(const Task&) = delete;
  ~Task();

  [[nodiscard]] inline u32 id() const { return id_; }
  [[nodiscard]] inline ktl::StringView name() const { return ktl::StringView(name_.data()); }
  [[nodiscard]] inline const char* name_cstr() const { return name_.data(); }
  [[nodiscard]] inline Priority priority() const { return priority_; }
  [[nodiscard]] inline TaskState state() const { return state_; }
  [[nodiscard]] inline const TaskStats& stats() const { return stats_; }
  [[nodiscard]] inline int exit_code() const { return exit_code_; }
  [[nodiscard]] inline u64 stack_bottom() const { return stack_bottom_; }
  [[nodiscard]] inline u64 stack_top() const { return stack_top_; }

 private:
  friend class Scheduler;
  friend class TaskList;
  // Wakes a sleeping task, or times out a bounded wait.
  class WakeTimer final : public time::Timer {
   public:
    Task* task = nullptr;

   protected:
    void expired() override;
  };
  u32 id_;
  Scheduler* sched_ = nullptr;
  ktl::Array<char, 24> name_{};
  Priority priority_;
  TaskState state_ = TaskState::Created;
  Entry entry_ = nullptr;
  void* arg_ = nullptr;
  u64 stack_bottom_ = 0;
  u64 stack_top_ = 0;
  u64 saved_sp_ = 0;
  Task* next_ = nullptr;
  WaitQueue* waiting_on_ = nullptr;
  WaitQueue joiners_;
  WakeTimer wake_timer_;
  bool timed_out_ = false;
  bool restore_interrupts_ = true;  // ktl's restore flag while this task is switched out
  u64 running_since_ = 0;
  u32 slice_ticks_ = 0;
  int exit_code_ = 0;
  TaskStats stats_;
};

// A sleeping mutex: lock() blocks (the task sleeps on the mutex's wait queue) while another task
// owns it. Not for interrupt handlers. Unlocking wakes the first waiter, which takes it.
class Mutex {
 public:
  inline explicit Mutex(Scheduler& s) : sched_(s) {}
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;
  ~Mutex();
  void lock();
  [[nodiscard]] bool try_lock();
  void unlock();
  [[nodiscard]] inline const Task* owner() const { return owner_; }

 private:
  friend class Scheduler;
  Scheduler& sched_;
  Task* owner_ = nullptr;  // guarded by the scheduler's lock
  WaitQueue waiters_;
  u64 contended_ = 0;
};

// A point-in-time copy of a task's accounting (for `ps`).
struct TaskInfo {
  u32 id;
  ktl::Array<char, 24> name;
  Priority priority;
  TaskState state;
  TaskStats stats;
};

class Scheduler {
 public:
  constexpr Scheduler() = default;
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;
  // Host tests make one per test: every started task must have exited (the boot and idle tasks
  // are retired with it).
  ~Scheduler();

  // Adopts the running context as `boot` (Running) and `idle` as the idle task, which must be a
  // prepared task of class Idle whose entry loops on idle_step(). Timers go to `timers`.
  void init(const ArchOps& arch, time::TimerService& timers, Task& boot, Task& idle);
  [[nodiscard]] inline bool initialized() const { return current_ != nullptr; }

  // Makes a created task runnable. False (nothing changes) when kMaxTasks tasks are live.
  [[nodiscard]] bool start(Task& t) EXCLUDES(lock_);
  [[nodiscard]] Task& current() const;

  void yield() EXCLUDES(lock_);
  // Blocks until `ready()` holds; `ready` is re-checked under the scheduler lock after every
  // wake-up. Returns false if `timeout_ns` (0: none) passed first.
  template <class Ready>
  inline bool wait_until(WaitQueue& q, Ready ready, u64 timeout_ns = 0) EXCLUDES(lock_) {
    ktl::LockGuard guard(lock_);
    u64 deadline = timeout_ns == 0 ? 0 : now() + timeout_ns;
    while (!ready()) {
      if (!block_locked(q, deadline)) return ready();
    }
    return true;
  }
  // Wake the first / every task waiting on `q`; return how many.
  usize wake_one(WaitQueue& q) EXCLUDES(lock_);
  usize wake_all(WaitQueue& q) EXCLUDES(lock_);
  void sleep_for(u64 ns) EXCLUDES(lock_);
  void sleep_until(u64 deadline_ns) EXCLUDES(lock_);
  // Ends the current task (it becomes Exited and wakes its joiners); never returns.
  [[noreturn]] void exit(int code) NO_THREAD_SAFETY_ANALYSIS;
  // Waits until `t` has exited; returns its code.
  int join(Task& t) EXCLUDES(lock_);

  void lock_mutex(Mutex& m) EXCLUDES(lock_);
  [[nodiscard]] bool try_lock_mutex(Mutex& m) EXCLUDES(lock_);
  void unlock_mutex(Mutex& m) EXCLUDES(lock_);

  // The periodic tick (from the timer interrupt): accounts the slice of the running task.
  void tick() EXCLUDES(lock_);
  // The interrupt exit path's preemption point: switches if the tick or a wake-up asked for it.
  void preempt() EXCLUDES(lock_);
  [[nodiscard]] inline bool need_resched() const { return need_resched_.load(ktl::MemoryOrder::Relaxed); }
  // One round of the idle task: halts (through `halt`, which must enable interrupts and wait
  // for one atomically) when nothing is runnable, else yields.
  void idle_step(void (*halt)()) EXCLUDES(lock_);

  // Every live task (boot, idle and started ones, until they are forgotten after join).
  usize snapshot(ktl::Span<TaskInfo> out) const EXCLUDES(lock_);
  [[nodiscard]] inline u64 context_switches() const { return switches_.load(ktl::MemoryOrder::Relaxed); }
  [[nodiscard]] usize runnable() const EXCLUDES(lock_);

 private:
  friend class Task;
  [[nodiscard]] u64 now() const;
  // Blocks the current task on `q` (deadline 0: none); false if it timed out.
  bool block_locked(WaitQueue& q, u64 deadline_ns) REQUIRES(lock_);
  void make_runnable_locked(Task& t) REQUIRES(lock_);
  usize wake_locked(WaitQueue& q, usize max) REQUIRES(lock_);
  // After a wake-up from task context: switch now if a higher class became runnable.
  void maybe_switch_locked() REQUIRES(lock_);
  void reschedule_locked() REQUIRES(lock_);
  void wake_from_timer(Task& t) EXCLUDES(lock_);
  void forget_locked(Task& t) REQUIRES(lock_);
  [[noreturn]] static void start_trampoline(void* task) NO_THREAD_SAFETY_ANALYSIS;
  [[nodiscard]] Task* pick_locked(Priority at_least) REQUIRES(lock_);

  mutable ktl::SpinLock lock_{ktl::LockRank::Scheduler};
  ArchOps arch_;
  time::TimerService* timers_ = nullptr;
  Task* current_ = nullptr;
  Task* idle_ = nullptr;
  ktl::Array<TaskList, kPriorities> run_queue_ GUARDED_BY(lock_){};
  ktl::Atomic<bool> need_resched_{false};
  ktl::Atomic<u64> switches_{0};
  // Every live task, for snapshot().
 public:
  static constexpr usize kMaxTasks = 64;

 private:
  ktl::Array<Task*, kMaxTasks> all_ GUARDED_BY(lock_){};
};

// The kernel's scheduler.
[[nodiscard]] Scheduler& scheduler();

}  // namespace kernel::sched
