// //mm/heap:kmalloc_fork_stress: fork() while other threads are inside malloc, the way a threaded
// Python program that starts subprocesses or multiprocessing workers does.
//
//   kmalloc_fork_stress [forks=200] [threads=4] [timeout_ms=10000]
//
// `threads` threads malloc, realloc and free without pause (small, size-class and large blocks,
// so every lock of the heap is taken all the time) while the main thread forks `forks` times.
// Each child mallocs, checks and frees a few blocks of every kind (more than a magazine holds, so
// the slow paths and their locks are used); every tenth child also starts and joins two threads
// that do the same (thread stacks and TLS of the parent's threads are reused in the child). The
// child then _exit(0)s. The parent waits for each child with a deadline, polling waitpid with
// WNOHANG: a child that has not exited by then is stuck (a lock that one of the parent's threads
// held at fork time stays locked in the child forever), so it is killed, reported, and the
// program stops and exits with status 1. Output (stdout) is the same for every malloc that works:
// kmalloc_preload_test.sh compares it with a run on glibc's malloc.
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

namespace {

std::atomic<bool> g_stop{false};
std::atomic<std::uint64_t> g_ops{0};

std::uint64_t next(std::uint64_t& x) {
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return x;
}

// Mostly small, some up to the largest size class (64 KiB), a few large (large-object area).
std::size_t pick_size(std::uint64_t& x) {
  std::uint64_t r = next(x) % 1000;
  if (r < 700) return 1 + next(x) % 512;
  if (r < 900) return 512 + next(x) % 16384;
  if (r < 970) return 16384 + next(x) % 49152;
  return 65536 + next(x) % (512 * 1024);
}

struct Slot {
  unsigned char* p = nullptr;
  std::size_t size = 0;
};

void fill(const Slot& s, unsigned char tag) {
  s.p[0] = tag;
  s.p[s.size / 2] = tag;
  s.p[s.size - 1] = tag;
}
bool intact(const Slot& s, unsigned char tag) {
  return s.p[0] == tag && s.p[s.size / 2] == tag && s.p[s.size - 1] == tag;
}

void worker(unsigned id) {
  std::uint64_t x = 0x9e3779b97f4a7c15ull * (id + 1);
  std::vector<Slot> slots(256);  // allocated before the loop: the loop itself is malloc and free only
  auto tag = [](std::size_t i) { return static_cast<unsigned char>(i * 7 + 1); };
  while (!g_stop.load(std::memory_order_relaxed)) {
    std::size_t i = next(x) % slots.size();
    Slot& s = slots[i];
    if (s.p == nullptr) {
      s.size = pick_size(x);
      s.p = static_cast<unsigned char*>(std::malloc(s.size));
      if (s.p == nullptr) std::abort();
      fill(s, tag(i));
    } else if (next(x) % 8 == 0) {
      if (!intact(s, tag(i))) std::abort();
      s.size = pick_size(x);
      s.p = static_cast<unsigned char*>(std::realloc(s.p, s.size));
      if (s.p == nullptr) std::abort();
      fill(s, tag(i));
    } else {
      if (!intact(s, tag(i))) std::abort();
      std::free(s.p);
      s.p = nullptr;
    }
    g_ops.fetch_add(1, std::memory_order_relaxed);
  }
  for (std::size_t i = 0; i < slots.size(); ++i) {
    if (slots[i].p != nullptr && !intact(slots[i], tag(i))) std::abort();
    std::free(slots[i].p);
  }
}

// What a child does: 0 if every block came back intact.
int child_round(std::uint64_t seed) {
  static constexpr std::size_t kSizes[] = {16, 48, 200, 1000, 5000, 40000, 100000, 700000};
  static constexpr std::size_t kEach = 150;  // more than two magazines of any class hold
  static Slot blocks[kEach];
  std::uint64_t x = seed | 1;
  for (std::size_t size : kSizes) {
    std::size_t n = size > 65536 ? 3 : kEach;
    for (std::size_t i = 0; i < n; ++i) {
      blocks[i].size = size + next(x) % 8;
      blocks[i].p = static_cast<unsigned char*>(std::malloc(blocks[i].size));
      if (blocks[i].p == nullptr) return 2;
      fill(blocks[i], static_cast<unsigned char>(i));
    }
    for (std::size_t i = 0; i < n; ++i) {
      if (!intact(blocks[i], static_cast<unsigned char>(i))) return 3;
      std::free(blocks[i].p);
    }
  }
  return 0;
}

void* child_thread(void* arg) {
  int* status = static_cast<int*>(arg);
#pragma clang unsafe_buffer_usage begin  // the pointer's value only seeds the round
  *status = child_round(reinterpret_cast<std::uintptr_t>(arg));
#pragma clang unsafe_buffer_usage end
  return nullptr;
}

int child_main(int round) {
  int status = child_round(static_cast<std::uint64_t>(round) * 2654435761u);
  if (status != 0 || round % 10 != 0) return status;
  // Two threads one after the other: the second may run on the first one's (or one of the
  // parent's threads') recycled stack and TLS.
  for (int t = 0; t < 2; ++t) {
    pthread_t thread;
    int thread_status = -1;
    if (pthread_create(&thread, nullptr, &child_thread, &thread_status) != 0) return 4;
    if (pthread_join(thread, nullptr) != 0) return 5;
    if (thread_status != 0) return 10 + thread_status;
  }
  return 0;
}

long long now_ms() {
  timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return static_cast<long long>(t.tv_sec) * 1000 + t.tv_nsec / 1000000;
}

}  // namespace

int main(int argc, char** argv) {
  int forks = argc > 1 ? std::atoi(argv[1]) : 200;
  unsigned threads = argc > 2 ? static_cast<unsigned>(std::atoi(argv[2])) : 4;
  long long timeout_ms = argc > 3 ? std::atoll(argv[3]) : 10000;

  std::vector<std::thread> workers;
  for (unsigned i = 0; i < threads; ++i) workers.emplace_back(worker, i);
  // Let every worker get going before the first fork.
  while (g_ops.load() < 1000ull * threads) sched_yield();

  int exited = 0;
  int failed = 0;
  int hung = 0;
  for (int round = 0; round < forks && hung == 0; ++round) {
    std::fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) {
      std::perror("fork");
      failed++;
      break;
    }
    if (pid == 0) _exit(child_main(round));
    long long deadline = now_ms() + timeout_ms;
    int status = 0;
    for (;;) {
      pid_t r = waitpid(pid, &status, WNOHANG);
      if (r == pid) break;
      if (r < 0) {
        std::perror("waitpid");
        std::abort();
      }
      if (now_ms() >= deadline) {
        std::printf("child %d of %d still running after %lld ms (deadlocked in the heap?): killed\n",
                    round + 1, forks, timeout_ms);
        kill(pid, SIGKILL);
        (void)waitpid(pid, &status, 0);
        hung++;
        break;
      }
      usleep(200);
    }
    if (hung != 0) break;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
      exited++;
    } else {
      std::printf("child %d failed: %s %d\n", round + 1, WIFEXITED(status) ? "exit status" : "signal",
                  WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
      failed++;
    }
  }

  g_stop.store(true);
  for (std::thread& t : workers) t.join();
  std::printf("%d forks with %u threads in malloc: %d children exited 0, %d failed, %d hung\n", forks,
              threads, exited, failed, hung);
  return exited == forks ? 0 : 1;
}
