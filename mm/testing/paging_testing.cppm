// mm.paging.testing: support for page-table tests that run on the host and in the kernel.
//
//  * ArenaFrames: an mm::FrameAllocator over one physical range, with exact accounting (free and
//    used counts for leak checks), detection of double and foreign frees, poisoning (fresh frames
//    are filled with 0xa5 so code that forgets to zero a table fails), and fault injection (fail
//    after N more allocations, or pseudo-randomly one in K).
//  * IndependentMmu: a second opinion on translations. The host's environment (test_env_host.cc)
//    registers the software walker (testing/sim/walker.cppm) so every KTEST check compares the
//    engine with it; the kernel may register one that probes the real MMU. When none is
//    registered the checks use the engine only.
//
// Test memory comes from mm.testing.env.
//
// Not thread-safe: one test owns each instance.
module;

#include <ktl/macros.h>

export module mm.paging.testing;

import ktl;
import mm.addr;
import mm.arch;
import mm.frames;
import mm.paging.formats;
import mm.paging.types;

export namespace mm::paging_testing {

using ktl::u32;
using ktl::u64;

enum class Poison : ktl::u8 { No, Yes };

enum class FormatId : ktl::u8 { X86_64, X86_32, Aarch64Lower, Aarch64Upper };
template <class F>
[[nodiscard]] constexpr FormatId format_id() {
  if constexpr (ktl::is_same<F, paging::X86_64>) {
    return FormatId::X86_64;
  } else if constexpr (ktl::is_same<F, paging::X86_32>) {
    return FormatId::X86_32;
  } else if constexpr (ktl::is_same<F, paging::Aarch64Lower>) {
    return FormatId::Aarch64Lower;
  } else {
    static_assert(ktl::is_same<F, paging::Aarch64Upper>, "unknown page-table format");
    return FormatId::Aarch64Upper;
  }
}

class IndependentMmu {
 public:
  // The translation of `va` by tables of `format` rooted at `root`, decoded independently of the
  // engine (effective flags); nullopt if it faults.
  [[nodiscard]] virtual ktl::Optional<Translation> translate(FormatId format, const PhysWindow& window,
                                                             PhysAddr root, VirtAddr va) = 0;
  // Distinct table frames reachable from `root` (root included, self-references not followed).
  [[nodiscard]] virtual u64 table_count(FormatId format, const PhysWindow& window, PhysAddr root) = 0;

 protected:
  ~IndependentMmu() = default;
};
[[nodiscard]] inline IndependentMmu*& independent_mmu() {
  static IndependentMmu* mmu = nullptr;
  return mmu;
}

class ArenaFrames final : public FrameAllocator {
 public:
  static constexpr ktl::u8 kPoisonByte = 0xa5;

  // Hands out the frames of `arena` (4 KiB aligned, inside `window`). The allocation bitmap lives
  // in the arena's first frames, which are never handed out.
  ArenaFrames(PhysWindow window, PhysRange arena, Poison poison = Poison::Yes)
      : window_(window), first_(arena.start().value() >> 12), poison_(poison) {
    ktl::check(arena.start().is_aligned(kPageSize) && ktl::is_aligned(arena.size(), kPageSize) &&
                   window.covers(arena.start(), arena.size()),
               "ArenaFrames: the arena must be page aligned and inside the window");
    u64 frames = arena.size() / kPageSize;
    u64 bitmap_frames = (frames + kPageSize * 8 - 1) / (kPageSize * 8);
    ktl::check(frames > bitmap_frames, "ArenaFrames: arena too small");
    bitmap_ = window.array<u64>(arena.start(), bitmap_frames * kPageSize / sizeof(u64));
    for (u64& w : bitmap_) w = 0;
    count_ = frames;
    for (u64 i = bitmap_frames; i < frames; ++i) set_bit(i);  // the bitmap's frames stay "allocated"
    // Push in reverse so allocation starts at the lowest frame.
    for (u64 i = frames; i-- > bitmap_frames;) push_free(i, Poison::No);
    reserved_ = bitmap_frames;
  }

  [[nodiscard]] inline ktl::Result<Frame4K, FrameError> allocate_frame() override {
    if (should_fail()) {
      ++injected_failures_;
      return ktl::Err(FrameError::OutOfMemory);
    }
    if (free_ == 0) return ktl::Err(FrameError::OutOfMemory);
    u64 i = head_;
    head_ = window_.as<u64>(address(i));
    --free_;
    ktl::check(!test_bit(i), "ArenaFrames: free list holds an allocated frame (corruption)");
    set_bit(i);
    ++allocations_;
    if (poison_ == Poison::Yes) ktl::fill_bytes(window_.bytes(address(i), kPageSize), kPoisonByte);
    return Frame4K::containing(address(i));
  }

  inline void free_frame(Frame4K frame) override {
    u64 n = frame.number();
    ktl::check(n >= first_ + reserved_ && n < first_ + count_,
               "ArenaFrames: freeing a frame it never handed out");
    u64 i = n - first_;
    ktl::check(test_bit(i), "ArenaFrames: double free");
    push_free(i, poison_);
  }

  [[nodiscard]] inline u64 free_count() const { return free_; }
  [[nodiscard]] inline u64 used_count() const { return count_ - reserved_ - free_; }
  [[nodiscard]] inline u64 capacity() const { return count_ - reserved_; }
  [[nodiscard]] inline u64 allocations() const { return allocations_; }
  [[nodiscard]] inline bool is_allocated(Frame4K frame) const {
    u64 n = frame.number();
    return n >= first_ + reserved_ && n < first_ + count_ && test_bit(n - first_);
  }

  // --- fault injection ---
  // After `n` more successful allocations, every allocation fails until fail_never().
  inline void fail_after(u64 n) {
    fail_countdown_ = n;
    fail_one_in_ = 0;
  }
  // Each allocation fails with probability 1/one_in (xorshift from `seed`); 0 disables.
  inline void fail_randomly(u64 seed, u32 one_in) {
    rng_ = seed | 1;
    fail_one_in_ = one_in;
    fail_countdown_ = kNever;
  }
  inline void fail_never() {
    fail_countdown_ = kNever;
    fail_one_in_ = 0;
  }
  [[nodiscard]] inline u64 injected_failures() const { return injected_failures_; }

 private:
  static constexpr u64 kNever = ~u64{0};

  [[nodiscard]] inline PhysAddr address(u64 i) const { return PhysAddr::from((first_ + i) << 12); }
  [[nodiscard]] inline bool test_bit(u64 i) const { return (bitmap_[i / 64] >> (i % 64)) & 1; }
  inline void set_bit(u64 i) { bitmap_[i / 64] |= u64{1} << (i % 64); }
  inline void clear_bit(u64 i) { bitmap_[i / 64] &= ~(u64{1} << (i % 64)); }
  inline void push_free(u64 i, Poison poison) {
    clear_bit(i);
    if (poison == Poison::Yes) ktl::fill_bytes(window_.bytes(address(i), kPageSize), kPoisonByte);
    window_.as<u64>(address(i)) = head_;
    head_ = i;
    ++free_;
  }
  inline bool should_fail() {
    if (fail_countdown_ != kNever) {
      if (fail_countdown_ == 0) return true;
      --fail_countdown_;
      return false;
    }
    if (fail_one_in_ == 0) return false;
    rng_ ^= rng_ << 13;
    rng_ ^= rng_ >> 7;
    rng_ ^= rng_ << 17;
    return rng_ % fail_one_in_ == 0;
  }

  PhysWindow window_;
  ktl::Span<u64> bitmap_;
  u64 first_;         // frame number of the arena's first frame
  u64 count_ = 0;     // frames in the arena
  u64 reserved_ = 0;  // bitmap frames at the start
  u64 free_ = 0;
  u64 head_ = 0;  // index of the first free frame
  u64 allocations_ = 0;
  Poison poison_;
  u64 fail_countdown_ = kNever;
  u32 fail_one_in_ = 0;
  u64 rng_ = 1;
  u64 injected_failures_ = 0;
};

}  // namespace mm::paging_testing
