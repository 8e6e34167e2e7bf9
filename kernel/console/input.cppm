// kernel.console.input: the bytes typed at a console, from its receive interrupt to the task that
// reads them (the shell). A single-producer single-consumer ring: the interrupt handler pushes,
// one reader pops; neither takes a lock, so the handler never waits. A full ring drops the new
// byte and counts it (typing faster than the reader consumes loses input visibly, never silently).
//
// Contract: one producer (one interrupt source on one CPU) and one consumer at a time.
module;

#include <ktl/macros.h>

export module kernel.console.input;

import ktl;

export namespace kernel::console {

class InputQueue {
 public:
  static constexpr ktl::u32 kCapacity = 1024;  // a power of two
  static_assert((kCapacity & (kCapacity - 1)) == 0);

  constexpr InputQueue() = default;
  InputQueue(const InputQueue&) = delete;
  InputQueue& operator=(const InputQueue&) = delete;

  // Producer side. False (and counted) when the ring is full.
  inline bool push(ktl::u8 byte) {
    ktl::u32 tail = tail_.load(ktl::MemoryOrder::Relaxed);
    ktl::u32 head = head_.load(ktl::MemoryOrder::Acquire);
    if (tail - head == kCapacity) {
      dropped_.fetch_add(1, ktl::MemoryOrder::Relaxed);
      return false;
    }
    bytes_[tail % kCapacity] = byte;
    tail_.store(tail + 1, ktl::MemoryOrder::Release);
    return true;
  }
  // Consumer side.
  [[nodiscard]] inline ktl::Optional<ktl::u8> pop() {
    ktl::u32 head = head_.load(ktl::MemoryOrder::Relaxed);
    ktl::u32 tail = tail_.load(ktl::MemoryOrder::Acquire);
    if (head == tail) return ktl::nullopt;
    ktl::u8 byte = bytes_[head % kCapacity];
    head_.store(head + 1, ktl::MemoryOrder::Release);
    return byte;
  }
  [[nodiscard]] inline ktl::u32 size() const {
    return tail_.load(ktl::MemoryOrder::Acquire) - head_.load(ktl::MemoryOrder::Acquire);
  }
  [[nodiscard]] inline ktl::u64 dropped() const { return dropped_.load(ktl::MemoryOrder::Relaxed); }
  [[nodiscard]] inline ktl::u64 received() const { return tail_.load(ktl::MemoryOrder::Relaxed) + dropped(); }

 private:
  ktl::Array<ktl::u8, kCapacity> bytes_{};
  ktl::Atomic<ktl::u32> head_{0};  // next byte to read; counters wrap (differences stay right)
  ktl::Atomic<ktl::u32> tail_{0};  // next slot to write
  ktl::Atomic<ktl::u64> dropped_{0};
};

}  // namespace kernel::console
