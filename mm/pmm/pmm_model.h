// A shadow model of mm.pmm and a harness that drives a real Pmm (over mm::test_env::TestMemory) and the
// model side by side, for the differential test (pmm_diff_test.cc) and the fuzzer
// (fuzz/pmm_fuzz.cc). Host only.
//
// The model is deliberately naive: one state per frame, a bitmap of free frames per node, linear
// run searches. It predicts every result exactly, including *which* frames an allocation returns
// (the PMM's documented policy: lowest address first, the preferred node first), the error of every
// bad free or claim and the frame it names in the log, and the per-node statistics.
#pragma once
//
// Checks: every operation compares its result, then check_touched() compares the state of every
// frame the operation touched and the free count; check_all() compares every frame and the
// statistics and runs the Pmm's own invariant check (O(frames)). The harness is the fuzzer's judge, not its
// target, so it is not instrumented for coverage (see the pragma below).

#include <algorithm>
#include <cinttypes>
#include <cstdarg>
#include <cstdio>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "testing/host_runtime.h"

import ktl;
import mm.addr;
import mm.arch;
import mm.pmm;
import mm.testing.env;

// libFuzzer's comparison hooks on every loop of the model would cost more than the code under test.
#pragma clang attribute push(__attribute__((no_sanitize("coverage"))), apply_to = function)

namespace pmm_model {

using u64 = unsigned long long;
using u32 = std::uint32_t;
constexpr u64 kPage = 4096;
constexpr u32 kNodes = mm::kMaxNumaNodes;

enum class St : std::uint8_t { Hole, Reserved, Metadata, Free, Used };

inline const char* st_name(St s) {
  switch (s) {
    case St::Hole: return "hole";
    case St::Reserved: return "reserved";
    case St::Metadata: return "metadata";
    case St::Free: return "free";
    case St::Used: return "used";
  }
  return "?";
}

// A region in plain numbers (bytes), so generators need not build typed values.
struct ModelMapEntry {
  u64 start;
  u64 end;
  mm::PhysKind kind;
  u32 node;
};

inline std::string addr_text(u64 frame) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "P:0x%016llx", frame * kPage);
  return buf;
}

class Harness {
 public:
  // The model covers [window.base(), + size) (bytes, page aligned, inside the window); every
  // region must lie inside it. The Pmm's metadata goes into the window's memory, which need not
  // be fresh (a fuzzer reuses one simulated memory for every input).
  Harness(mm::PhysWindow window, u64 size, const std::vector<ModelMapEntry>& map)
      : base_frame_(window.base().value() / kPage), frames_(size / kPage) {
    std::vector<mm::PhysMapEntry> typed;
    for (const ModelMapEntry& r : map) {
      typed.push_back(mm::PhysMapEntry{
          mm::PhysRange::try_from(mm::PhysAddr::from(r.start), mm::PhysAddr::from(r.end)).value(), r.kind,
          mm::NodeId{r.node}});
    }
    expected_init_ = predict_init(map);
    auto r = pmm_.init(ktl::Span<const mm::PhysMapEntry>(typed), window);
    if (r.is_err()) {
      init_error_ = r.error();
      bool tolerated = r.error() == mm::PmmError::NoMemoryForMetadata && metadata_may_not_fit_;
      if (!tolerated && (!expected_init_.has_value() || expected_init_.value() != r.error())) {
        fail("init failed with %s, model expected %s", mm::to_string(r.error()),
             expected_init_ ? mm::to_string(*expected_init_) : "success");
      }
      return;
    }
    if (expected_init_.has_value()) {
      fail("init succeeded, model expected %s", mm::to_string(*expected_init_));
      return;
    }
    ready_ = true;
    build_model(map);
    baseline_free_ = pmm_.free_frame_count();
    check_stats();
  }
  Harness(const Harness&) = delete;
  Harness& operator=(const Harness&) = delete;

  [[nodiscard]] bool ready() const { return ready_ && ok(); }
  [[nodiscard]] bool ok() const { return failure_.empty(); }
  [[nodiscard]] const std::string& failure() const { return failure_; }
  [[nodiscard]] std::optional<mm::PmmError> init_error() const { return init_error_; }
  [[nodiscard]] mm::Pmm& pmm() { return pmm_; }
  [[nodiscard]] u64 first_frame() const { return base_frame_; }
  [[nodiscard]] u64 frame_count() const { return frames_; }
  [[nodiscard]] size_t owned_count() const { return owned_.size(); }
  [[nodiscard]] size_t raw_count() const { return raw_.size(); }
  [[nodiscard]] u64 model_free() const {
    u64 n = 0;
    for (u64 c : free_count_) n += c;
    return n;
  }
  u64 ops = 0;
  // How often each outcome happened ("alloc ok", "free DoubleFree", ...), so a test can show that
  // its operation mix reaches every path.
  std::map<std::string, u64> tally;

  // --- operations (each compares the Pmm with the model) ---------------------------------------
  // count == 1 && align == 1 goes through alloc_page (or alloc_page_unowned when `raw`).
  void alloc(u64 count, u64 align_frames, std::optional<u32> node, mm::Fallback fallback,
             std::optional<u64> below_frame, bool raw = false) {
    if (!ready()) return;
    ++ops;
    mm::AllocOptions o;
    if (node) o.node = mm::NodeId{*node};
    o.fallback = fallback;
    if (below_frame) o.below = mm::PhysAddr::from(*below_frame * kPage);
    std::optional<u64> want = predict_alloc(count, align_frames, node, fallback, below_frame);
    bool invalid = count == 0 || (node && *node >= kNodes);
    if (count == 1 && align_frames == 1 && raw) {
      auto r = pmm_.alloc_page_unowned(o);
      if (!check_alloc_result(r.is_ok() ? std::optional<u64>(r.value().number()) : std::nullopt,
                              r.is_err() ? r.error() : mm::PmmError::OutOfMemory, want, invalid, count)) {
        return;
      }
      if (r.is_ok()) {
        mark(r.value().number(), 1, St::Used);
        raw_.push_back({r.value().number(), 1});
      }
      return;
    }
    auto r = count == 1 && align_frames == 1 ? pmm_.alloc_page(o)
                                             : pmm_.alloc_contiguous(count, align_frames * kPage, o);
    if (!check_alloc_result(r.is_ok() ? std::optional<u64>(r.value().first().number()) : std::nullopt,
                            r.is_err() ? r.error() : mm::PmmError::OutOfMemory, want, invalid, count)) {
      return;
    }
    if (r.is_ok()) {
      if (r.value().count() != count)
        return fail("allocation of %llu frames returned %llu", count, r.value().count());
      mark(*want, count, St::Used);
      owned_.push_back(r.release_value());
    }
  }

  // Destroys owned[i]: its frames must become free.
  void drop_owned(size_t i) {
    if (!ready() || owned_.empty()) return;
    ++ops;
    i %= owned_.size();
    u64 first = owned_[i].first().number();
    u64 count = owned_[i].count();
    std::swap(owned_[i], owned_.back());
    owned_.pop_back();  // the destructor frees
    mark(first, count, St::Free);
    ++tally["drop ok"];
    expect_no_log("drop of an owner");
  }

  void split_owned(size_t i, u64 at) {
    if (!ready() || owned_.empty()) return;
    ++ops;
    i %= owned_.size();
    if (owned_[i].count() < 2) return;
    at = 1 + at % (owned_[i].count() - 1);
    u64 first = owned_[i].first().number();
    u64 count = owned_[i].count();
    mm::SplitFrames parts = std::move(owned_[i]).split_at(at);
    if (!owned_[i].empty()) return fail("split_at left the original non-empty");
    if (parts.head.first().number() != first || parts.head.count() != at ||
        parts.tail.first().number() != first + at || parts.tail.count() != count - at) {
      return fail("split_at(%llu) of [%llu, +%llu) gave wrong halves", at, first, count);
    }
    owned_[i] = std::move(parts.head);
    owned_.push_back(std::move(parts.tail));
    ++tally["split ok"];
  }

  // owned[i].release(): the frames stay used and move to the raw list.
  void release_owned(size_t i) {
    if (!ready() || owned_.empty()) return;
    ++ops;
    i %= owned_.size();
    mm::FrameRange<mm::Size4K> r = owned_[i].release();
    if (!owned_[i].empty()) return fail("release() left the owner non-empty");
    raw_.push_back({r.first().number(), r.count()});
    std::swap(owned_[i], owned_.back());
    owned_.pop_back();  // empty: frees nothing
    for (u64 f = r.first().number(); f < r.first().number() + r.count(); ++f) {
      if (state(f) != St::Used)
        return fail("released frame %s is %s in the model", addr_text(f).c_str(), st_name(state(f)));
    }
    expect_no_log("release");
  }

  // Frees raw[i] (free_page for one frame, free_frames for runs). When
  // `twice`, frees it again and expects a double free.
  void free_raw(size_t i, bool twice) {
    if (!ready() || raw_.empty()) return;
    ++ops;
    i %= raw_.size();
    auto [first, count] = raw_[i];
    raw_[i] = raw_.back();
    raw_.pop_back();
    free_and_check(first, count, (ops & 1) != 0);
    if (twice) free_and_check(first, count, (ops & 2) != 0);
  }

  // A free of an arbitrary range: only issued when the model says it must fail (a successful
  // one would free frames that an owner still holds).
  void free_arbitrary(u64 first, u64 count) {
    if (!ready()) return;
    if (count == 0) return;
    if (predict_range(first, count, false).error == Outcome::kOk) return;
    ++ops;
    free_and_check(first, count, false);
  }

  // claim_page / claim of a specific range; success becomes an owner.
  void claim(u64 first, u64 count) {
    if (!ready() || count == 0) return;
    ++ops;
    Outcome want = predict_range(first, count, true);
    mm::Frame4K frame = mm::Frame4K::from_number(first).value();
    before_call();
    auto r = count == 1 ? pmm_.claim_page(frame) : pmm_.claim(frame, count);
    if (want.error == Outcome::kOk) {
      if (r.is_err())
        return fail("claim(%s, %llu) failed with %s; model: success", addr_text(first).c_str(), count,
                    mm::to_string(r.error()));
      mark(first, count, St::Used);
      owned_.push_back(r.release_value());
      ++tally["claim ok"];
      expect_no_log("claim");
      return;
    }
    if (r.is_ok())
      return fail("claim(%s, %llu) succeeded; model: %s", addr_text(first).c_str(), count,
                  mm::to_string(want.error));
    touch(first, count);
    check_error("claim", r.error(), want);
  }

  void check_stats() {
    if (!ready()) return;
    u64 total_free = 0;
    for (u32 n = 0; n < kNodes; ++n) {
      auto s = pmm_.node_stats(mm::NodeId{n});
      const NodeCount& c = count_[n];
      if (!c.present) {
        if (s.has_value()) return fail("node %u has statistics but no regions", n);
        continue;
      }
      if (!s.has_value()) return fail("node %u has regions but no statistics", n);
      mm::MemStats want;
      want.free_bytes = free_count_[n] * kPage;
      want.used_bytes = c.used * kPage;
      want.reserved_bytes = c.reserved * kPage;
      want.metadata_bytes = c.metadata * kPage;
      want.total_bytes = want.free_bytes + want.used_bytes + want.reserved_bytes + want.metadata_bytes;
      if (!(*s == want)) {
        ktl::InlineString<256> got, exp;
        ktl::format_to(got, "{}", *s);
        ktl::format_to(exp, "{}", want);
        return fail("node %u stats %s, model %s", n, got.c_str(), exp.c_str());
      }
      total_free += free_count_[n];
    }
    if (pmm_.free_frame_count() != total_free)
      return fail("free_frame_count %llu, model %llu", pmm_.free_frame_count(), total_free);
  }

  // What the operations since the last check can have changed: the state of every frame they
  // touched (marked, or named by a refused free or claim), each once, and the free frame count
  // (any other frame changing state changes it; check_stats() compares the per-node statistics).
  void check_touched() {
    if (!ready()) return;
    for (u64 i : touched_) {
      touched_flag_[i] = 0;
      if (!check_frame(base_frame_ + i)) return;
    }
    touched_.clear();
    if (pmm_.free_frame_count() != model_free())
      fail("free_frame_count %llu, model %llu", pmm_.free_frame_count(), model_free());
  }

  // Every frame's state, and the Pmm's own invariants (summaries, counters). O(frames).
  void check_all() {
    if (!ready()) return;
    for (u64 i : touched_) touched_flag_[i] = 0;
    touched_.clear();
    // Every frame of the regions; inside holes, the edges and every 512th frame are enough (holes
    // never change). The holes are the gaps between spans_, so they are stepped over, not walked.
    u64 hole = 0;  // the first index of the hole before the next span
    for (auto [lo, hi] : spans_) {
      if (!check_hole(hole, lo)) return;
      // One bulk query per span (the arenas' locks taken once), spot-checked against state_of.
      states_.resize(hi - lo);
      pmm_.states_of(mm::Frame4K::from_number(base_frame_ + lo).value(), ktl::Span<mm::FrameState>(states_));
      for (u64 i = lo; i < hi; ++i) {
        mm::FrameState want = to_frame_state(state(base_frame_ + i));
        if (states_[i - lo] != want) {
          return fail("states_of: %s is %s, model %s", addr_text(base_frame_ + i).c_str(),
                      mm::to_string(states_[i - lo]), mm::to_string(want));
        }
      }
      if (!check_frame(base_frame_ + lo) || !check_frame(base_frame_ + hi - 1)) return;
      hole = hi;
    }
    if (!check_hole(hole, frames_)) return;
    if (!pmm_.check_invariants()) return fail("Pmm::check_invariants failed");
    check_stats();
  }

  // Returns everything and checks the free count is back to its baseline.
  void teardown() {
    if (!ready()) return;
    for (const mm::AllocatedFrames& o : owned_) mark(o.first().number(), o.count(), St::Free);
    owned_.clear();
    for (auto [first, count] : raw_) {
      auto r = count == 1 ? pmm_.free_page(mm::Frame4K::from_number(first).value())
                          : pmm_.free_frames(mm::Frame4K::from_number(first).value(), count);
      if (r.is_err())
        return fail("teardown free of %s failed: %s", addr_text(first).c_str(), mm::to_string(r.error()));
      mark(first, count, St::Free);
    }
    raw_.clear();
    if (pmm_.free_frame_count() != baseline_free_) {
      return fail("leak: %llu free frames after teardown, %llu at start", pmm_.free_frame_count(),
                  baseline_free_);
    }
    check_all();
  }

  __attribute__((format(printf, 2, 3))) void fail(const char* fmt, ...) {
    if (!failure_.empty()) return;
    char buf[512];
    va_list args;
    va_start(args, fmt);
    std::vsnprintf(buf, sizeof buf, fmt, args);
    va_end(args);
    failure_ = "after " + std::to_string(ops) + " ops: " + buf;
  }

 private:
  struct Outcome {
    static constexpr mm::PmmError kOk = mm::PmmError::AlreadyInitialized;  // "no error" marker
    mm::PmmError error = kOk;
    u64 frame = 0;  // the frame the log must name
  };
  struct NodeCount {
    bool present = false;
    u64 used = 0;
    u64 reserved = 0;
    u64 metadata = 0;
  };

  // --- model construction ---
  static std::pair<u64, u64> span_of(const ModelMapEntry& r) {
    if (r.kind == mm::PhysKind::Usable) {
      u64 a = (r.start + kPage - 1) / kPage, b = r.end / kPage;
      return {a, b > a ? b : a};
    }
    return {r.start / kPage, (r.end + kPage - 1) / kPage};
  }

  std::optional<mm::PmmError> predict_init(const std::vector<ModelMapEntry>& map) {
    u64 prev_start = 0;
    u64 prev_end = 0;
    u64 largest_usable = 0;
    for (size_t i = 0; i < map.size(); ++i) {
      if (map[i].node >= kNodes) return mm::PmmError::UnknownNode;
      if (i > 0 && map[i].start < prev_start) return mm::PmmError::UnsortedMap;
      if (i > 0 && map[i].start < prev_end) return mm::PmmError::OverlappingMap;
      prev_start = map[i].start;
      prev_end = map[i].end;
    }
    for (const ModelMapEntry& r : map) {
      auto [a, b] = span_of(r);
      if (r.kind == mm::PhysKind::Usable && b > a) largest_usable = std::max(largest_usable, b - a);
    }
    if (largest_usable == 0) return mm::PmmError::NoUsableMemory;
    // The bitmaps of a few arenas fit in a few frames; a tiny map may legitimately have no room.
    metadata_may_not_fit_ = largest_usable < 64;
    return std::nullopt;
  }

  void build_model(const std::vector<ModelMapEntry>& map) {
    st_.assign(frames_, St::Hole);
    node_.assign(frames_, 0);
    spans_.clear();
    for (const ModelMapEntry& r : map) {
      auto [a, b] = span_of(r);
      if (a < b && in_range(a) && in_range(b - 1)) spans_.push_back({a - base_frame_, b - base_frame_});
      for (u64 f = a; f < b; ++f) {
        if (!in_range(f)) return fail("region frame %s outside simulated memory", addr_text(f).c_str());
        u64 i = f - base_frame_;
        if (st_[i] != St::Hole) continue;  // an edge frame shared by two grown reserved regions
        st_[i] = r.kind == mm::PhysKind::Usable ? St::Free : St::Reserved;
        node_[i] = static_cast<std::uint8_t>(r.node);
      }
      count_[r.node].present = count_[r.node].present || b > a;
    }
    // Metadata blocks: inside usable memory, each at the top of its usable span or directly below
    // another block.
    std::set<u64> block_starts;
    for (size_t b = 0; b < pmm_.metadata_block_count(); ++b)
      block_starts.insert(pmm_.metadata_block(b).start().value() / kPage);
    for (size_t b = 0; b < pmm_.metadata_block_count(); ++b) {
      mm::PhysRange r = pmm_.metadata_block(b);
      u64 first = r.start().value() / kPage, end = r.end().value() / kPage;
      for (u64 f = first; f < end; ++f) {
        if (!in_range(f) || st_[f - base_frame_] != St::Free)
          return fail("metadata frame %s is not usable memory", addr_text(f).c_str());
        st_[f - base_frame_] = St::Metadata;
      }
      bool top_of_span = !in_range(end) || st_[end - base_frame_] != St::Free ||
                         node_[end - base_frame_] != node_[first - base_frame_];
      if (!top_of_span && block_starts.count(end) == 0)
        return fail("metadata block at %s is not carved from the top", addr_text(first).c_str());
    }
    for (auto& bits : free_bits_) bits.assign((frames_ + 63) / 64, 0);
    touched_flag_.assign(frames_, 0);
    // The regions' spans, sorted and merged: every frame outside them is a hole.
    std::sort(spans_.begin(), spans_.end());
    size_t merged = 0;
    for (size_t k = 0; k < spans_.size(); ++k) {
      if (merged > 0 && spans_[k].first <= spans_[merged - 1].second) {
        spans_[merged - 1].second = std::max(spans_[merged - 1].second, spans_[k].second);
      } else {
        spans_[merged++] = spans_[k];
      }
    }
    spans_.resize(merged);
    for (auto [lo, hi] : spans_) {
      for (u64 i = lo; i < hi; ++i) {
        u32 n = node_[i];
        switch (st_[i]) {
          case St::Free: set_free(n, i, true); break;
          case St::Reserved: ++count_[n].reserved; break;
          case St::Metadata: ++count_[n].metadata; break;
          default: break;
        }
      }
    }
  }

  // The hole [lo, hi) (indices): its first and last frame and every index that is a multiple of 512.
  bool check_hole(u64 lo, u64 hi) {
    if (lo >= hi) return true;
    if (!check_frame(base_frame_ + lo)) return false;
    for (u64 i = (lo / 512 + 1) * 512; i < hi - 1; i += 512) {
      if (!check_frame(base_frame_ + i)) return false;
    }
    return hi - 1 == lo || check_frame(base_frame_ + hi - 1);
  }

  bool check_frame(u64 f) {
    mm::FrameState got = pmm_.state_of(mm::Frame4K::from_number(f).value());
    mm::FrameState want = to_frame_state(state(f));
    if (got == want) return true;
    fail("state_of(%s) = %s, model %s", addr_text(f).c_str(), mm::to_string(got), mm::to_string(want));
    return false;
  }

  // --- model queries ---
  [[nodiscard]] bool in_range(u64 f) const { return f >= base_frame_ && f - base_frame_ < frames_; }
  [[nodiscard]] St state(u64 f) const { return in_range(f) ? st_[f - base_frame_] : St::Hole; }
  [[nodiscard]] u32 node(u64 f) const { return in_range(f) ? node_[f - base_frame_] : 0; }
  [[nodiscard]] static bool managed(St s) { return s == St::Free || s == St::Used; }
  static mm::FrameState to_frame_state(St s) {
    switch (s) {
      case St::Free: return mm::FrameState::Free;
      case St::Used: return mm::FrameState::Allocated;
      case St::Reserved: return mm::FrameState::Reserved;
      case St::Metadata: return mm::FrameState::Metadata;
      case St::Hole: return mm::FrameState::NotManaged;
    }
    return mm::FrameState::NotManaged;
  }

  void mark(u64 first, u64 count, St s) {
    for (u64 f = first; f < first + count; ++f) {
      u64 i = f - base_frame_;
      u32 n = node_[i];
      if (st_[i] == St::Free) set_free(n, i, false);
      if (st_[i] == St::Used) --count_[n].used;
      st_[i] = s;
      if (s == St::Free) set_free(n, i, true);
      if (s == St::Used) ++count_[n].used;
    }
    touch(first, count);
  }
  // Frames outside the model's range are never managed: nothing to compare there.
  void touch(u64 first, u64 count) {
    for (u64 f = first; f < first + count; ++f) {
      if (!in_range(f) || touched_flag_[f - base_frame_] != 0) continue;
      touched_flag_[f - base_frame_] = 1;
      touched_.push_back(f - base_frame_);
    }
  }

  // Index i (frame base_frame_ + i) is free on node n.
  void set_free(u32 n, u64 i, bool free) {
    u64& word = free_bits_[n][i / 64];
    u64 bit = u64{1} << (i % 64);
    if (free) {
      ++free_count_[n];
      word |= bit;
      if (i / 64 < first_word_[n]) first_word_[n] = i / 64;
    } else {
      --free_count_[n];
      word &= ~bit;
    }
  }
  // The first index >= i that is free on node n, or frames_. Words below first_word_[n] are empty.
  [[nodiscard]] u64 next_free(u32 n, u64 i) const {
    const std::vector<u64>& words = free_bits_[n];
    if (i / 64 < first_word_[n]) i = first_word_[n] * 64;
    for (u64 w = i / 64; w < words.size(); ++w) {
      u64 bits = w == i / 64 ? words[w] & (~u64{0} << (i % 64)) : words[w];
      if (bits != 0) return w * 64 + static_cast<u64>(__builtin_ctzll(bits));
    }
    return frames_;
  }

  // The lowest run on `n`: `count` free frames of node n, first frame a multiple of `align`,
  // ending at or below `limit`.
  std::optional<u64> lowest_run(u32 n, u64 count, u64 align, u64 limit) const {
    for (u64 i = next_free(n, 0); i < frames_;) {
      u64 s = (base_frame_ + i + align - 1) / align * align;
      if (s + count > limit) return std::nullopt;
      u64 k = s;
      while (k < s + count && state(k) == St::Free && node(k) == n) ++k;
      if (k == s + count) return s;
      i = next_free(n, k + 1 - base_frame_);
    }
    return std::nullopt;
  }

  std::optional<u64> predict_alloc(u64 count, u64 align, std::optional<u32> pref, mm::Fallback fallback,
                                   std::optional<u64> below) const {
    if (count == 0 || (pref && *pref >= kNodes)) return std::nullopt;
    u64 limit = below ? *below : ~u64{0} / 2;
    auto best_of = [&](auto accept) {
      std::optional<u64> best;
      for (u32 n = 0; n < kNodes; ++n) {
        if (!accept(n)) continue;
        auto r = lowest_run(n, count, align, limit);
        if (r && (!best || *r < *best)) best = r;
      }
      return best;
    };
    if (!pref) return best_of([](u32) { return true; });
    auto mine = best_of([&](u32 n) { return n == *pref; });
    if (mine || fallback == mm::Fallback::None) return mine;
    return best_of([&](u32 n) { return n != *pref; });
  }

  // The expected result of freeing (claiming) [first, first + count).
  Outcome predict_range(u64 first, u64 count, bool claiming) const {
    if (!managed(state(first))) return classify(first);
    for (u64 f = first; f < first + count; ++f) {
      if (!managed(state(f))) return classify(f);
      if (node(f) != node(first)) return Outcome{mm::PmmError::CrossesArena, f};  // another arena
    }
    for (u64 f = first; f < first + count; ++f) {
      if (!claiming && state(f) == St::Free) return Outcome{mm::PmmError::DoubleFree, f};
      if (claiming && state(f) == St::Used) return Outcome{mm::PmmError::AlreadyAllocated, f};
    }
    return Outcome{};
  }
  Outcome classify(u64 f) const {
    switch (state(f)) {
      case St::Hole: return Outcome{mm::PmmError::NotManaged, f};
      case St::Metadata: return Outcome{mm::PmmError::Metadata, f};
      default: return Outcome{mm::PmmError::Reserved, f};
    }
  }

  // --- checks ---
  bool check_alloc_result(std::optional<u64> got, mm::PmmError error, std::optional<u64> want, bool invalid,
                          u64 count) {
    if (got && want && *got == *want) {
      ++tally[count == 1 ? "alloc ok" : "alloc run ok"];
      return true;
    }
    if (!got && !want) {
      mm::PmmError expected = invalid ? mm::PmmError::InvalidRequest : mm::PmmError::OutOfMemory;
      ++tally[std::string(count == 1 ? "alloc " : "alloc run ") + mm::to_string(expected)];
      if (error == expected) return true;
      fail("allocation of %llu failed with %s, model expected %s", count, mm::to_string(error),
           mm::to_string(expected));
      return false;
    }
    fail("allocation of %llu frames returned %s, model expected %s", count,
         got ? addr_text(*got).c_str() : mm::to_string(error), want ? addr_text(*want).c_str() : "failure");
    return false;
  }

  void free_and_check(u64 first, u64 count, bool seed_name) {
    Outcome want = predict_range(first, count, false);
    mm::Frame4K frame = mm::Frame4K::from_number(first).value();
    before_call();
    auto r = count == 1 ? (seed_name ? pmm_.free_page(frame) : pmm_.free_page(frame))
                        : pmm_.free_frames(frame, count);
    if (want.error == Outcome::kOk) {
      if (r.is_err())
        return fail("free(%s, %llu) failed with %s; model: success", addr_text(first).c_str(), count,
                    mm::to_string(r.error()));
      mark(first, count, St::Free);
      ++tally["free ok"];
      expect_no_log("free");
      return;
    }
    if (r.is_ok())
      return fail("free(%s, %llu) succeeded; model: %s", addr_text(first).c_str(), count,
                  mm::to_string(want.error));
    touch(first, count);
    check_error("free", r.error(), want);
  }

  void before_call() { log_.lines.clear(); }
  void expect_no_log(const char* what) {
    if (!log_.lines.empty()) fail("%s logged unexpectedly: %s", what, log_.lines.front().c_str());
    log_.lines.clear();
  }
  void check_error(const char* what, mm::PmmError got, Outcome want) {
    ++tally[std::string(what) + " " + mm::to_string(want.error)];
    if (got != want.error)
      return fail("%s failed with %s, model: %s at %s", what, mm::to_string(got), mm::to_string(want.error),
                  addr_text(want.frame).c_str());
    if (log_.lines.size() != 1 || log_.lines[0].find(addr_text(want.frame)) == std::string::npos) {
      return fail("%s error %s: expected one log line naming %s, got %zu lines (%s)", what,
                  mm::to_string(got), addr_text(want.frame).c_str(), log_.lines.size(),
                  log_.lines.empty() ? "" : log_.lines[0].c_str());
    }
    log_.lines.clear();
  }

  ferrite_host::LogCapture log_;  // captures the PMM's error reports (declared first: outlives pmm_)
  mm::Pmm pmm_;
  u64 base_frame_;
  u64 frames_;
  bool ready_ = false;
  bool metadata_may_not_fit_ = false;
  std::optional<mm::PmmError> expected_init_;
  std::optional<mm::PmmError> init_error_;
  std::string failure_;
  u64 baseline_free_ = 0;

  std::vector<St> st_;
  std::vector<std::uint8_t> node_;
  std::vector<u64> free_bits_[kNodes];  // bit i: frame base_frame_ + i is free (node n)
  u64 free_count_[kNodes] = {};
  u64 first_word_[kNodes] = {};             // free_bits_[n] has no bit set below this word (a lower bound)
  std::vector<std::pair<u64, u64>> spans_;  // the regions' frames, [lo, hi) indices, sorted and disjoint
  std::vector<u64> touched_;  // indices touched since the last check_touched() / check_all(), once each
  std::vector<std::uint8_t> touched_flag_;  // 1: in touched_
  std::vector<mm::FrameState> states_;      // check_all's buffer for Pmm::states_of
  NodeCount count_[kNodes];

  // Declared last: destroyed first, while pmm_ is alive.
  std::vector<mm::AllocatedFrames> owned_;
  std::vector<std::pair<u64, u64>> raw_;
};

}  // namespace pmm_model

#pragma clang attribute pop
