// mm.bitmap: bit arrays over caller-provided storage (the PMM carves it from physical memory).
//
//  * BitSpan: a plain bit array view with word-at-a-time range operations.
//  * SummaryBitmap: a bit array plus two summary trees, so that finding a set bit, or a run of set
//    bits, does not scan from the start however full the array is:
//
//      any[0]  the bits themselves                               (n bits)
//      any[k]  bit w is set iff word w of any[k-1] is non-zero    (until one word is left)
//      full[0] bit w is set iff word w of any[0] is all ones      (n/64 bits)
//      full[k] bit w is set iff word w of full[k-1] is non-zero   (until one word is left)
//
//    find_first_set() descends any[] from its single top word: one word per level (4 levels for
//    64 GiB of 4 KiB frames). find_next_set(p) climbs from p until a level has a set bit to the
//    right, then descends. Runs of 128 or more bits must contain an all-ones word, so
//    find_set_run() jumps between candidates through full[] instead of visiting every fragment.
//    Storage: n/8 bytes for the bits, about n/256 bytes for both summaries together.
//
// Neither type locks: their owner does (the PMM holds its arena lock around every call).
module;

#include <ktl/macros.h>

export module mm.bitmap;

import ktl;

export namespace mm {

using ktl::u32;
using ktl::u64;
using ktl::usize;

[[nodiscard]] constexpr u64 words_for_bits(u64 bits) { return (bits + 63) / 64; }

namespace bits {
inline constexpr u64 kAllOnes = ~u64{0};
// Bits [lo, hi] of a word (0 <= lo <= hi <= 63).
[[nodiscard]] constexpr u64 mask(u32 lo, u32 hi) { return (kAllOnes >> (63 - hi)) & (kAllOnes << lo); }
// The mask of the bits of word `w` that fall in [from, to) (the caller guarantees overlap).
[[nodiscard]] constexpr u64 word_mask(u64 w, u64 from, u64 to) {
  u32 lo = w == from / 64 ? static_cast<u32>(from % 64) : 0;
  u32 hi = w == (to - 1) / 64 ? static_cast<u32>((to - 1) % 64) : 63;
  return mask(lo, hi);
}
}  // namespace bits

// --- BitSpan ----------------------------------------------------------------------------------------
class BitSpan {
 public:
  constexpr BitSpan() = default;
  // A view of `bits` bits stored in `words` (which must hold at least words_for_bits(bits)).
  inline BitSpan(ktl::Span<u64> words, u64 bits) : words_(words.first(words_for_bits(bits))), bits_(bits) {}

  [[nodiscard]] inline u64 size() const { return bits_; }
  [[nodiscard]] inline ktl::Span<u64> words() const { return words_; }

  [[nodiscard]] inline bool test(u64 i) const {
    ktl::check(i < bits_, "BitSpan::test out of range");
    return (words_[i / 64] >> (i % 64)) & 1;
  }
  inline void set(u64 i) {
    ktl::check(i < bits_, "BitSpan::set out of range");
    words_[i / 64] |= u64{1} << (i % 64);
  }
  inline void clear(u64 i) {
    ktl::check(i < bits_, "BitSpan::clear out of range");
    words_[i / 64] &= ~(u64{1} << (i % 64));
  }
  inline void fill(bool value) {
    for (u64& w : words_) w = value ? bits::kAllOnes : 0;
    if (value) trim_tail();
  }
  inline void set_range(u64 from, u64 to) {
    for_each_word(from, to, [](u64& w, u64 m) { w |= m; });
  }
  inline void clear_range(u64 from, u64 to) {
    for_each_word(from, to, [](u64& w, u64 m) { w &= ~m; });
  }
  [[nodiscard]] inline bool all_set(u64 from, u64 to) const {
    return !find_first_clear(from, to).has_value();
  }
  [[nodiscard]] inline bool none_set(u64 from, u64 to) const { return !find_first_set(from, to).has_value(); }
  [[nodiscard]] inline u64 count_set(u64 from, u64 to) const {
    u64 n = 0;
    check_range(from, to);
    for (u64 w = from / 64; from < to && w <= (to - 1) / 64; ++w) {
      n += ktl::popcount(words_[w] & bits::word_mask(w, from, to));
    }
    return n;
  }
  // The first set (clear) bit in [from, to), scanning word by word.
  [[nodiscard]] inline ktl::Optional<u64> find_first_set(u64 from, u64 to) const { return find(from, to, 0); }
  [[nodiscard]] inline ktl::Optional<u64> find_first_clear(u64 from, u64 to) const {
    return find(from, to, bits::kAllOnes);
  }

 private:
  inline void check_range(u64 from, u64 to) const {
    ktl::check(from <= to && to <= bits_, "BitSpan: range out of bounds");
  }
  template <class F>
  inline void for_each_word(u64 from, u64 to, F f) {
    check_range(from, to);
    if (from == to) return;
    for (u64 w = from / 64; w <= (to - 1) / 64; ++w) f(words_[w], bits::word_mask(w, from, to));
  }
  [[nodiscard]] inline ktl::Optional<u64> find(u64 from, u64 to, u64 invert) const {
    check_range(from, to);
    if (from == to) return ktl::nullopt;
    for (u64 w = from / 64; w <= (to - 1) / 64; ++w) {
      u64 hits = (words_[w] ^ invert) & bits::word_mask(w, from, to);
      if (hits != 0) return w * 64 + ktl::countr_zero(hits);
    }
    return ktl::nullopt;
  }
  inline void trim_tail() {
    if (bits_ % 64 != 0) words_[bits_ / 64] &= bits::mask(0, static_cast<u32>(bits_ % 64 - 1));
  }

  ktl::Span<u64> words_;
  u64 bits_ = 0;
};

// --- SummaryBitmap ------------------------------------------------------------------------------------
class SummaryBitmap {
 public:
  // Enough for 2^48 bits (64^8); the PMM needs at most 2^40 (52-bit physical addresses).
  static constexpr u32 kMaxLevels = 8;

  // Words of storage for a bitmap of `bits` bits: the bits, then both summary trees.
  [[nodiscard]] static constexpr u64 storage_words(u64 bits) {
    u64 total = 0;
    for (u64 n = bits;; n = words_for_bits(n)) {  // any[]
      total += words_for_bits(n);
      if (n <= 64) break;
    }
    for (u64 n = words_for_bits(bits);; n = words_for_bits(n)) {  // full[]
      total += words_for_bits(n);
      if (n <= 64) break;
    }
    return total;
  }

  constexpr SummaryBitmap() = default;
  // A bitmap of `bits` bits (at least one) over `storage` (storage_words(bits) words or more), all
  // bits clear. Zeroes the storage it uses.
  inline SummaryBitmap(ktl::Span<u64> storage, u64 bits) : size_(bits) {
    ktl::check(bits > 0, "SummaryBitmap: zero bits");
    ktl::check(storage.size() >= storage_words(bits), "SummaryBitmap: storage too small");
    u64 at = 0;
    auto carve = [&](u64 n) {
      ktl::Span<u64> s = storage.subspan(at, words_for_bits(n));
      at += s.size();
      for (u64& w : s) w = 0;
      return BitSpan(s, n);
    };
    for (u64 n = bits;; n = words_for_bits(n)) {
      ktl::check(any_levels_ < kMaxLevels, "SummaryBitmap: too many bits");
      any_[any_levels_++] = carve(n);
      if (n <= 64) break;
    }
    for (u64 n = words_for_bits(bits);; n = words_for_bits(n)) {
      ktl::check(full_levels_ < kMaxLevels, "SummaryBitmap: too many bits");
      full_[full_levels_++] = carve(n);
      if (n <= 64) break;
    }
  }

  [[nodiscard]] inline u64 size() const { return size_; }
  // Number of set bits.
  [[nodiscard]] inline u64 count() const { return count_; }
  [[nodiscard]] inline u32 levels() const { return any_levels_; }
  // Bytes of storage in use.
  [[nodiscard]] inline u64 storage_bytes() const { return storage_words(size_) * sizeof(u64); }

  [[nodiscard]] inline bool test(u64 i) const { return any_[0].test(i); }
  // The bits themselves, 64 to a word (bit i is bit i % 64 of word i / 64).
  [[nodiscard]] inline ktl::Span<const u64> words() const { return any_[0].words(); }
  inline void set(u64 i) {
    ktl::check(i < size_, "SummaryBitmap::set out of range");
    u64 w = i / 64;
    store_word(w, base_word(w) | (u64{1} << (i % 64)));
  }
  inline void clear(u64 i) {
    ktl::check(i < size_, "SummaryBitmap::clear out of range");
    u64 w = i / 64;
    store_word(w, base_word(w) & ~(u64{1} << (i % 64)));
  }
  inline void set_range(u64 from, u64 to) {
    check_range(from, to);
    for (u64 w = from / 64; from < to && w <= (to - 1) / 64; ++w) {
      store_word(w, base_word(w) | bits::word_mask(w, from, to));
    }
  }
  inline void clear_range(u64 from, u64 to) {
    check_range(from, to);
    for (u64 w = from / 64; from < to && w <= (to - 1) / 64; ++w) {
      store_word(w, base_word(w) & ~bits::word_mask(w, from, to));
    }
  }
  [[nodiscard]] inline bool all_set(u64 from, u64 to) const {
    return !find_first_clear(from, to).has_value();
  }
  [[nodiscard]] inline bool none_set(u64 from, u64 to) const {
    check_range(from, to);
    if (from == to) return true;
    auto next = next_in(any_, any_levels_, from);
    return !next.has_value() || next.value() >= to;
  }

  // The lowest set bit: one word per level, from the top.
  [[nodiscard]] inline ktl::Optional<u64> find_first_set() const {
    u32 k = any_levels_ - 1;
    u64 top = any_[k].words()[0];
    if (top == 0) return ktl::nullopt;
    u64 pos = ktl::countr_zero(top);
    while (k > 0) {
      --k;
      pos = pos * 64 + ktl::countr_zero(any_[k].words()[pos]);
    }
    return pos;
  }
  // The lowest set bit at or after `from`.
  [[nodiscard]] inline ktl::Optional<u64> find_next_set(u64 from) const {
    return next_in(any_, any_levels_, from);
  }
  // The lowest clear bit in [from, to); skips all-ones words through full[0].
  [[nodiscard]] inline ktl::Optional<u64> find_first_clear(u64 from, u64 to) const {
    check_range(from, to);
    if (from == to) return ktl::nullopt;
    u64 fw = from / 64;
    u64 lw = (to - 1) / 64;
    u64 head = ~base_word(fw) & bits::word_mask(fw, from, to);
    if (head != 0) return fw * 64 + ktl::countr_zero(head);
    if (fw == lw) return ktl::nullopt;
    if (lw > fw + 1) {
      // Whole words strictly between: the first one that is not all ones.
      auto w = full_[0].find_first_clear(fw + 1, lw);
      if (w.has_value()) return w.value() * 64 + ktl::countr_zero(~base_word(w.value()));
    }
    u64 tail = ~base_word(lw) & bits::word_mask(lw, from, to);
    if (tail != 0) return lw * 64 + ktl::countr_zero(tail);
    return ktl::nullopt;
  }

  // The lowest i in [from, to - count] such that bits [i, i + count) are all set and
  // (i + phase) is a multiple of `align` (a power of two): `phase` is the absolute number of bit 0,
  // so alignment is absolute (a frame number), not relative to this bitmap.
  [[nodiscard]] inline ktl::Optional<u64> find_set_run(u64 count, u64 align, u64 phase, u64 from,
                                                       u64 to) const {
    ktl::check(count > 0 && ktl::is_power_of_two(align), "SummaryBitmap::find_set_run: bad request");
    check_range(from, to);
    auto aligned = [&](u64 i) { return ktl::align_up(i + phase, align) - phase; };
    auto fits = [&](u64 i) { return i < to && to - i >= count; };
    u64 i = aligned(from);
    while (fits(i)) {
      if (count >= 128) {
        // A run of >= 128 bits contains the whole word ceil(i/64), so that word is all ones: jump
        // to the next all-ones word and back over the set bits just before it.
        auto w = next_in(full_, full_levels_, (i + 63) / 64);
        if (!w.has_value()) return ktl::nullopt;
        u64 start = w.value() * 64;
        if (w.value() > 0) start -= ktl::countl_zero(~base_word(w.value() - 1));
        i = aligned(ktl::max(i, start));
      } else {
        auto next = find_next_set(i);
        if (!next.has_value()) return ktl::nullopt;
        i = aligned(next.value());
      }
      if (!fits(i)) return ktl::nullopt;
      auto hole = find_first_clear(i, i + count);
      if (!hole.has_value()) return i;
      i = aligned(hole.value() + 1);
    }
    return ktl::nullopt;
  }

  // Recomputes every summary from the bits and compares (tests and debug checks; O(n)).
  [[nodiscard]] inline bool check_invariants() const {
    u64 n = 0;
    for (u64 w : any_[0].words()) n += ktl::popcount(w);
    if (n != count_) return false;
    for (u32 k = 1; k < any_levels_; ++k) {
      for (u64 w = 0; w < any_[k - 1].words().size(); ++w) {
        if (any_[k].test(w) != (any_[k - 1].words()[w] != 0)) return false;
      }
    }
    for (u64 w = 0; w < any_[0].words().size(); ++w) {
      if (full_[0].test(w) != (any_[0].words()[w] == bits::kAllOnes)) return false;
    }
    for (u32 k = 1; k < full_levels_; ++k) {
      for (u64 w = 0; w < full_[k - 1].words().size(); ++w) {
        if (full_[k].test(w) != (full_[k - 1].words()[w] != 0)) return false;
      }
    }
    return true;
  }

 private:
  inline void check_range(u64 from, u64 to) const {
    ktl::check(from <= to && to <= size_, "SummaryBitmap: range out of bounds");
  }
  [[nodiscard]] inline u64 base_word(u64 w) const { return any_[0].words()[w]; }

  // Replaces word `w` of the bits and keeps count_ and both trees in step.
  inline void store_word(u64 w, u64 value) {
    u64& slot = any_[0].words()[w];
    u64 old = slot;
    if (old == value) return;
    slot = value;
    count_ = count_ - ktl::popcount(old) + ktl::popcount(value);
    if ((old == 0) != (value == 0)) flip_summary(any_, any_levels_, 1, w, value != 0);
    if ((old == bits::kAllOnes) != (value == bits::kAllOnes)) {
      flip_summary(full_, full_levels_, 0, w, value == bits::kAllOnes);
    }
  }
  // Sets or clears bit `b` of tree level `k`, and carries the change up while a word turns
  // empty or non-empty.
  static void flip_summary(ktl::Array<BitSpan, kMaxLevels>& tree, u32 levels, u32 k, u64 b, bool set) {
    for (; k < levels; ++k) {
      u64& slot = tree[k].words()[b / 64];
      u64 old = slot;
      slot = set ? old | (u64{1} << (b % 64)) : old & ~(u64{1} << (b % 64));
      if ((old == 0) == (slot == 0)) return;  // the word's emptiness did not change
      b /= 64;
    }
  }
  // The lowest set bit at or after `pos` in tree level 0: climb while the rest of the word is
  // empty, then descend (each summary bit promises a non-empty word below it).
  [[nodiscard]] static ktl::Optional<u64> next_in(const ktl::Array<BitSpan, kMaxLevels>& tree, u32 levels,
                                                  u64 pos) {
    u32 k = 0;
    for (;;) {
      if (pos >= tree[k].size()) return ktl::nullopt;
      u64 w = pos / 64;
      u64 word = tree[k].words()[w] & (bits::kAllOnes << (pos % 64));
      if (word != 0) {
        pos = w * 64 + ktl::countr_zero(word);
        break;
      }
      if (k + 1 == levels) return ktl::nullopt;
      pos = w + 1;
      ++k;
    }
    while (k > 0) {
      --k;
      pos = pos * 64 + ktl::countr_zero(tree[k].words()[pos]);
    }
    return pos;
  }

  ktl::Array<BitSpan, kMaxLevels> any_{};
  ktl::Array<BitSpan, kMaxLevels> full_{};
  u32 any_levels_ = 0;
  u32 full_levels_ = 0;
  u64 size_ = 0;
  u64 count_ = 0;
};

}  // namespace mm
