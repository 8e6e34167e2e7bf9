module;

#include <ktl/macros.h>

module kernel.sched;

import ktl;
import kernel.time;
import kernel.irq;

namespace kernel::sched {

namespace {
Scheduler g_scheduler;
ktl::Atomic<u32> g_next_id{0};

void copy_name(ktl::Array<char, 24>& out, const char* name) {
  usize i = 0;
  ktl::StringView n(name);
  for (; i + 1 < out.size() && i < n.size(); ++i) out[i] = n[i];
  out[i] = '\0';
}
}  // namespace

Scheduler& scheduler() { return g_scheduler; }

// --- TaskList ------------------------------------------------------------------------------------

void TaskList::push_back(Task& t) {
  ktl::check(t.next_ == nullptr && tail_ != &t, "TaskList: the task is already in a list");
  if (tail_ == nullptr) {
    head_ = tail_ = &t;
  } else {
    tail_->next_ = &t;
    tail_ = &t;
  }
  ++size_;
}

Task* TaskList::pop_front() {
  Task* t = head_;
  if (t == nullptr) return nullptr;
  head_ = t->next_;
  if (head_ == nullptr) tail_ = nullptr;
  t->next_ = nullptr;
  --size_;
  return t;
}

bool TaskList::remove(Task& t) {
  Task* prev = nullptr;
  for (Task* cur = head_; cur != nullptr; prev = cur, cur = cur->next_) {
    if (cur != &t) continue;
    if (prev == nullptr) {
      head_ = cur->next_;
    } else {
      prev->next_ = cur->next_;
    }
    if (tail_ == cur) tail_ = prev;
    cur->next_ = nullptr;
    --size_;
    return true;
  }
  return false;
}

// --- Task ------------------------------------------------------------------------------------------

Task::Task(const char* name, Priority priority, Entry entry, void* arg, u64 stack_bottom, u64 stack_top)
    : id_(g_next_id.fetch_add(1)),
      priority_(priority),
      entry_(entry),
      arg_(arg),
      stack_bottom_(stack_bottom),
      stack_top_(stack_top) {
  ktl::check(entry != nullptr && stack_bottom < stack_top, "Task: no entry or an empty stack");
  copy_name(name_, name);
  wake_timer_.task = this;
}

Task::Task(RunningContext, const char* name, Priority priority)
    : id_(g_next_id.fetch_add(1)), priority_(priority) {
  copy_name(name_, name);
  wake_timer_.task = this;
}

Task::~Task() {
  ktl::check(state_ == TaskState::Created || state_ == TaskState::Exited,
             "a Task was destroyed while it could still run");
  ktl::check(joiners_.waiting() == 0, "a Task was destroyed with tasks waiting to join it");
}

void Task::WakeTimer::expired() { task->sched_->wake_from_timer(*task); }

// --- Scheduler -----------------------------------------------------------------------------------

u64 Scheduler::now() const { return time::now_ns(); }

Task& Scheduler::current() const {
  ktl::check(current_ != nullptr, "sched: not initialised");
  return *current_;
}

Scheduler::~Scheduler() {
  if (current_ == nullptr) return;
  ktl::LockGuard guard(lock_);
  for (Task* t : all_) {
    if (t == nullptr || t == current_ || t == idle_) continue;
    ktl::check(t->state_ == TaskState::Exited, "a Scheduler was destroyed with tasks that can still run");
  }
  current_->state_ = TaskState::Exited;
  idle_->state_ = TaskState::Exited;
}

void Scheduler::init(const ArchOps& arch, time::TimerService& timers, Task& boot, Task& idle) {
  ktl::check(arch.switch_context != nullptr && arch.prepare_stack != nullptr,
             "sched::init: incomplete ArchOps");
  ktl::check(idle.priority_ == Priority::Idle && boot.priority_ != Priority::Idle,
             "sched::init: the idle task must be the only one of class Idle");
  ktl::LockGuard guard(lock_);
  arch_ = arch;
  timers_ = &timers;
  boot.sched_ = this;
  idle.sched_ = this;
  boot.state_ = TaskState::Running;
  boot.running_since_ = now();
  boot.stats_.switches = 1;
  current_ = &boot;
  idle_ = &idle;
  idle.saved_sp_ = arch_.prepare_stack(idle.stack_top_, &Scheduler::start_trampoline, &idle);
  idle.state_ = TaskState::Runnable;
  all_[0] = &boot;
  all_[1] = &idle;
}

bool Scheduler::start(Task& t) {
  ktl::check(t.state_ == TaskState::Created && t.entry_ != nullptr,
             "sched::start: the task is not a new one");
  ktl::check(t.priority_ != Priority::Idle, "sched::start: class Idle is the idle task's");
  t.sched_ = this;
  t.saved_sp_ = arch_.prepare_stack(t.stack_top_, &Scheduler::start_trampoline, &t);
  ktl::LockGuard guard(lock_);
  Task** free_slot = nullptr;
  for (Task*& slot : all_) {
    if (slot == nullptr) {
      free_slot = &slot;
      break;
    }
  }
  if (free_slot == nullptr) return false;
  *free_slot = &t;
  make_runnable_locked(t);
  t.stats_.wakeups = 0;  // starting is not a wake-up
  return true;
}

void Scheduler::start_trampoline(void* arg) {
  auto& t = *static_cast<Task*>(arg);
  // The switch that got here holds the lock (taken by the task switched away from); a new task
  // starts with interrupts on once it is released.
  ktl::set_interrupts_restore_on_release(true);
  t.sched_->lock_.unlock();
  t.entry_(t.arg_);
  t.sched_->exit(0);
}

void Scheduler::make_runnable_locked(Task& t) {
  t.state_ = TaskState::Runnable;
  ++t.stats_.wakeups;
  if (&t == idle_) return;  // picked when nothing else is runnable
  run_queue_[ktl::to_underlying(t.priority_)].push_back(t);
  if (t.priority_ > current_->priority_) need_resched_.store(true, ktl::MemoryOrder::Relaxed);
}

// The first task of the highest non-empty class at or above `at_least`.
Task* Scheduler::pick_locked(Priority at_least) {
  for (usize p = kPriorities; p-- > ktl::to_underlying(at_least);) {
    if (Task* t = run_queue_[p].pop_front()) return t;
  }
  return nullptr;
}

void Scheduler::reschedule_locked() {
  ktl::check(ktl::held_locks().depth() <= 1, "sched: switching while holding a lock other than sched");
  need_resched_.store(false, ktl::MemoryOrder::Relaxed);
  Task& prev = *current_;
  u64 t = now();
  prev.stats_.cpu_ns += t - prev.running_since_;
  prev.running_since_ = t;
  Task* next = nullptr;
  if (prev.state_ == TaskState::Running) {
    // Still runnable: it gives way to its own class (round robin) or a higher one only.
    next = pick_locked(&prev == idle_ ? Priority::Idle : prev.priority_);
    if (next == nullptr) return;
    prev.state_ = TaskState::Runnable;
    ++prev.stats_.preemptions;
    if (&prev != idle_) run_queue_[ktl::to_underlying(prev.priority_)].push_back(prev);
  } else {
    next = pick_locked(Priority::Idle);
    if (next == nullptr) next = idle_;
  }
  ktl::check(next->state_ == TaskState::Runnable, "sched: a task in the run queue is not runnable");
  next->state_ = TaskState::Running;
  next->running_since_ = t;
  next->slice_ticks_ = 0;
  ++next->stats_.switches;
  if (next == &prev) return;
  switches_.fetch_add(1, ktl::MemoryOrder::Relaxed);
  current_ = next;
  prev.restore_interrupts_ = ktl::interrupts_restore_on_release();
  arch_.switch_context(&prev.saved_sp_, next->saved_sp_);
  // Back in `prev`, switched to by another task that holds the lock for us.
  ktl::set_interrupts_restore_on_release(prev.restore_interrupts_);
}

void Scheduler::yield() {
  ktl::LockGuard guard(lock_);
  reschedule_locked();
}

bool Scheduler::block_locked(WaitQueue& q, u64 deadline_ns) {
  Task& t = *current_;
  ktl::check(&t != idle_, "sched: the idle task must not block");
  t.state_ = TaskState::Blocked;
  t.waiting_on_ = &q;
  t.timed_out_ = false;
  q.tasks_.push_back(t);
  if (deadline_ns != 0) timers_->arm(t.wake_timer_, deadline_ns);
  reschedule_locked();
  if (deadline_ns != 0) (void)timers_->cancel(t.wake_timer_);
  return !t.timed_out_;
}

usize Scheduler::wake_locked(WaitQueue& q, usize max) {
  usize woken = 0;
  while (woken < max) {
    Task* t = q.tasks_.pop_front();
    if (t == nullptr) break;
    t->waiting_on_ = nullptr;
    make_runnable_locked(*t);
    ++woken;
  }
  return woken;
}

// A waker in task context yields at once to a woken task of a higher class (unless it holds
// another lock: then the next preemption point does); in an interrupt handler the interrupt's
// exit does (preempt()).
void Scheduler::maybe_switch_locked() {
  if (need_resched() && !irq::in_interrupt() && ktl::interrupt_mask_depth() == 1) reschedule_locked();
}

usize Scheduler::wake_one(WaitQueue& q) {
  ktl::LockGuard guard(lock_);
  usize n = wake_locked(q, 1);
  maybe_switch_locked();
  return n;
}

usize Scheduler::wake_all(WaitQueue& q) {
  ktl::LockGuard guard(lock_);
  usize n = wake_locked(q, ~usize{0});
  maybe_switch_locked();
  return n;
}

void Scheduler::lock_mutex(Mutex& m) {
  ktl::check(!irq::in_interrupt(), "sched::Mutex: locked in an interrupt handler");
  ktl::LockGuard guard(lock_);
  ktl::check(m.owner_ != current_, "sched::Mutex: locked twice by one task");
  if (m.owner_ != nullptr) ++m.contended_;
  while (m.owner_ != nullptr) (void)block_locked(m.waiters_, 0);
  m.owner_ = current_;
}

bool Scheduler::try_lock_mutex(Mutex& m) {
  ktl::LockGuard guard(lock_);
  if (m.owner_ != nullptr) return false;
  m.owner_ = current_;
  return true;
}

void Scheduler::unlock_mutex(Mutex& m) {
  ktl::LockGuard guard(lock_);
  ktl::check(m.owner_ == current_, "sched::Mutex: unlocked by a task that does not own it");
  m.owner_ = nullptr;
  (void)wake_locked(m.waiters_, 1);
  maybe_switch_locked();
}

Mutex::~Mutex() {
  ktl::check(owner_ == nullptr && waiters_.waiting() == 0, "sched::Mutex destroyed while in use");
}
void Mutex::lock() { sched_.lock_mutex(*this); }
bool Mutex::try_lock() { return sched_.try_lock_mutex(*this); }
void Mutex::unlock() { sched_.unlock_mutex(*this); }

void Scheduler::wake_from_timer(Task& t) {
  ktl::LockGuard guard(lock_);
  if (t.state_ == TaskState::Sleeping) {
    make_runnable_locked(t);
  } else if (t.state_ == TaskState::Blocked && t.waiting_on_ != nullptr) {
    (void)t.waiting_on_->tasks_.remove(t);
    t.waiting_on_ = nullptr;
    t.timed_out_ = true;
    make_runnable_locked(t);
  }
}

void Scheduler::sleep_for(u64 ns) { sleep_until(now() + ns); }

void Scheduler::sleep_until(u64 deadline_ns) {
  ktl::LockGuard guard(lock_);
  Task& t = *current_;
  ktl::check(&t != idle_, "sched: the idle task must not sleep");
  if (deadline_ns <= now()) return;
  t.state_ = TaskState::Sleeping;
  timers_->arm(t.wake_timer_, deadline_ns);
  reschedule_locked();
}

void Scheduler::exit(int code) {
  lock_.lock();
  Task& t = *current_;
  ktl::check(&t != idle_, "sched: the idle task must not exit");
  t.exit_code_ = code;
  t.state_ = TaskState::Exited;
  (void)wake_locked(t.joiners_, ~usize{0});
  reschedule_locked();
  ktl::panic("sched: an exited task was switched to");
}

void Scheduler::forget_locked(Task& t) {
  for (Task*& slot : all_) {
    if (slot == &t) slot = nullptr;
  }
}

int Scheduler::join(Task& t) {
  ktl::check(&t != current_, "sched::join: a task cannot join itself");
  (void)wait_until(t.joiners_, [&]() NO_THREAD_SAFETY_ANALYSIS { return t.state_ == TaskState::Exited; });
  ktl::LockGuard guard(lock_);
  forget_locked(t);
  return t.exit_code_;
}

void Scheduler::tick() {
  ktl::LockGuard guard(lock_);
  Task& t = *current_;
  if (&t == idle_) {
    for (const TaskList& q : run_queue_) {
      if (!q.empty()) need_resched_.store(true, ktl::MemoryOrder::Relaxed);
    }
    return;
  }
  if (++t.slice_ticks_ >= kSliceTicks && !run_queue_[ktl::to_underlying(t.priority_)].empty()) {
    need_resched_.store(true, ktl::MemoryOrder::Relaxed);
  }
}

void Scheduler::preempt() {
  if (!need_resched() || current_ == nullptr || irq::in_interrupt()) return;
  ktl::LockGuard guard(lock_);
  reschedule_locked();
}

void Scheduler::idle_step(void (*halt)()) {
  {
    ktl::LockGuard guard(lock_);
    bool any = false;
    for (const TaskList& q : run_queue_) any = any || !q.empty();
    if (any) {
      reschedule_locked();
      return;
    }
  }
  halt();
}

usize Scheduler::snapshot(ktl::Span<TaskInfo> out) const {
  ktl::LockGuard guard(lock_);
  usize n = 0;
  u64 t = now();
  for (Task* task : all_) {
    if (task == nullptr || n == out.size()) continue;
    TaskInfo& i = out[n++];
    i.id = task->id_;
    i.name = task->name_;
    i.priority = task->priority_;
    i.state = task->state_;
    i.stats = task->stats_;
    if (task == current_) i.stats.cpu_ns += t - task->running_since_;
  }
  return n;
}

usize Scheduler::runnable() const {
  ktl::LockGuard guard(lock_);
  usize n = 0;
  for (const TaskList& q : run_queue_) n += q.size();
  return n;
}

}  // namespace kernel::sched
