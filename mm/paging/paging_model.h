// A shadow model of mm.paging, and a harness that runs the same operation on the engine and the
// model and checks that they agree. Shared by the randomised differential test
// (//mm/paging:paging_diff_test) and the libFuzzer target (//mm/paging:paging_fuzz). Host only.
//
// The model keeps what the tables must contain, in the simplest form: the set of leaves (linear
// start -> level, frame, effective flags) and the set of non-root tables ((level, first address)).
// It predicts every outcome of every operation: the error, the frame returned, the TLB-flush
// token's range, the number of pages unmapped and of tables reclaimed. After each operation the
// harness compares translations of probe addresses three ways (model, engine, and the independent
// software walker), the allocator's used frames with the model's table count, and periodically the
// complete leaf list enumerated by the walker with the model's.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <sstream>
#include <string>
#include <vector>

import ktl;
import mm.addr;
import mm.arch;
import mm.frames;
import mm.paging;
import mm.paging.testing;
import mm.testing.env;
import sim.walker;

// The model and the harness are the fuzzer's judges, not its target: not instrumented for coverage
// (libFuzzer's comparison hooks on every model loop would cost more than the code under test).
#pragma clang attribute push(__attribute__((no_sanitize("coverage"))), apply_to = function)

namespace paging_model {

using std::uint64_t;

enum class OpKind : std::uint8_t {
  Map,           // one page of `level`
  Unmap,         // one page of `level`
  Protect,       // one page of `level`
  MapRange,      // [va, va + bytes) -> pa, huge pages per `huge`
  UnmapRange,    // [va, va + bytes)
  ProtectRange,  // [va, va + bytes)
  Reclaim,       // reclaim_empty_tables over [va, va + bytes)
  Translate,     // probes only
  kCount,
};

struct Op {
  OpKind kind = OpKind::Translate;
  unsigned level = 0;  // page level for single-page operations (0 = 4 KiB)
  uint64_t va = 0;     // linear address (the format's translated bits), page aligned
  uint64_t pa = 0;
  uint64_t bytes = 0;
  mm::PageFlags flags;
  mm::HugePages huge = mm::HugePages::Allow;
};

std::string describe(const Op& op);

inline const char* name(OpKind k) {
  switch (k) {
    case OpKind::Map: return "map";
    case OpKind::Unmap: return "unmap";
    case OpKind::Protect: return "protect";
    case OpKind::MapRange: return "map_range";
    case OpKind::UnmapRange: return "unmap_range";
    case OpKind::ProtectRange: return "protect_range";
    case OpKind::Reclaim: return "reclaim";
    case OpKind::Translate: return "translate";
    case OpKind::kCount: break;
  }
  return "?";
}

inline std::string describe(const Op& op) {
  std::ostringstream s;
  s << name(op.kind) << " level=" << op.level << " va=0x" << std::hex << op.va << " pa=0x" << op.pa
    << " bytes=0x" << op.bytes << std::dec << " flags=[w" << op.flags.writable() << " x"
    << op.flags.executable() << " u" << op.flags.user() << " g" << op.flags.global() << " c"
    << static_cast<int>(op.flags.cache()) << "]" << (op.huge == mm::HugePages::Allow ? " huge" : " small");
  return s.str();
}

// --- the model -------------------------------------------------------------------------------------------
template <class F>
class Model {
 public:
  static constexpr unsigned kLevels = F::kLevels;
  static constexpr unsigned kTop = kLevels - 1;
  static constexpr unsigned kBits = F::kIndexBits;
  static constexpr uint64_t size(unsigned level) { return uint64_t{1} << (12 + kBits * level); }
  static constexpr uint64_t align(uint64_t a, uint64_t s) { return a & ~(s - 1); }

  struct Leaf {
    unsigned level;
    uint64_t phys;
    mm::PageFlags flags;  // effective (what translate reports)
  };
  struct Hull {
    uint64_t lo = ~uint64_t{0}, hi = 0;
    bool any = false;
    void add(uint64_t start, uint64_t bytes) {
      lo = std::min(lo, start);
      hi = std::max(hi, start + (bytes - 1));
      any = true;
    }
    uint64_t pages() const { return any ? (hi - lo) / 4096 + 1 : 0; }
  };
  struct Expect {
    std::optional<mm::PagingError> error;
    Hull flush;
    uint64_t frame = 0;   // unmap: the frame returned
    uint64_t pages = 0;   // unmap_range: pages unmapped
    uint64_t tables = 0;  // reclaim: tables freed
  };
  struct Found {
    uint64_t start;
    Leaf leaf;
  };

  std::map<uint64_t, Leaf> leaves;
  std::set<std::pair<unsigned, uint64_t>> tables;  // (level of the table's entries, first address)
  unsigned largest_leaf = F::kLargestLeafLevel;

  bool has_table(unsigned level, uint64_t base) const {
    return tables.count({level, align(base, size(level + 1))}) != 0;
  }
  const Leaf* leaf_at(unsigned level, uint64_t base) const {
    auto it = leaves.find(base);
    return it != leaves.end() && it->second.level == level ? &it->second : nullptr;
  }
  std::optional<Found> covering(uint64_t a) const {
    auto it = leaves.upper_bound(a);
    if (it == leaves.begin()) return std::nullopt;
    --it;
    if (a - it->first >= size(it->second.level)) return std::nullopt;
    return Found{it->first, it->second};
  }
  // Leaves intersecting [lo, hi].
  template <class Fn>
  void overlapping(uint64_t lo, uint64_t hi, Fn&& fn) const {
    auto it = leaves.upper_bound(lo);
    if (it != leaves.begin()) {
      auto prev = std::prev(it);
      if (lo - prev->first < size(prev->second.level)) fn(prev->first, prev->second);
    }
    for (; it != leaves.end() && it->first <= hi; ++it) fn(it->first, it->second);
  }

  // --- single pages ---
  Expect predict_map(unsigned k, uint64_t v, uint64_t p) const {
    Expect e;
    if (p + size(k) > F::kPhysLimit) {
      e.error = mm::PagingError::OutOfRange;
      return e;
    }
    for (unsigned l = kTop; l > k; --l) {
      uint64_t base = align(v, size(l));
      if (leaf_at(l, base) != nullptr) {
        e.error = mm::PagingError::AlreadyMapped;
        return e;
      }
      if (!has_table(l - 1, base)) return e;
    }
    if (leaf_at(k, v) != nullptr) {
      e.error = mm::PagingError::AlreadyMapped;
    } else if (k > 0 && has_table(k - 1, v)) {
      e.error = mm::PagingError::TableInTheWay;
    }
    return e;
  }
  void apply_map(unsigned k, uint64_t v, uint64_t p, mm::PageFlags effective) {
    for (unsigned j = k; j < kTop; ++j) tables.insert({j, align(v, size(j + 1))});
    leaves[v] = Leaf{k, p, effective};
  }

  // Unmap and protect: the leaf at level >= k covering v.
  Expect predict_unmap(unsigned k, uint64_t v) const {
    Expect e;
    for (unsigned l = kTop;; --l) {
      uint64_t base = align(v, size(l));
      if (const Leaf* leaf = leaf_at(l, base)) {
        e.frame = leaf->phys + (v - base);
        e.flush.add(base, size(l));
        return e;
      }
      bool table = l > 0 && has_table(l - 1, base);
      if (l == k) {
        e.error = table ? mm::PagingError::SizeMismatch : mm::PagingError::NotMapped;
        return e;
      }
      if (!table) {
        e.error = mm::PagingError::NotMapped;
        return e;
      }
    }
  }
  // Splits leaves until the leaf covering `a` is at level <= k (or starts at `a` when k is kTop+1,
  // meaning "until a is a boundary").
  void split_until(uint64_t a, unsigned k) {
    for (;;) {
      auto f = covering(a);
      if (!f || f->leaf.level <= k) return;
      split(f->start, f->leaf);
    }
  }
  void split(uint64_t start, Leaf leaf) {
    unsigned child = leaf.level - 1;
    leaves.erase(start);
    tables.insert({child, start});
    for (uint64_t i = 0; i < (uint64_t{1} << kBits); ++i) {
      leaves[start + i * size(child)] = Leaf{child, leaf.phys + i * size(child), leaf.flags};
    }
  }
  void apply_unmap(unsigned k, uint64_t v) {
    split_until(v, k);
    leaves.erase(v);
  }
  void apply_protect(unsigned k, uint64_t v, mm::PageFlags effective) {
    split_until(v, k);
    leaves.at(v).flags = effective;
  }

  // --- ranges ---
  Expect predict_map_range(uint64_t lo, uint64_t pa, uint64_t bytes) const {
    Expect e;
    if (pa + bytes > F::kPhysLimit) {
      e.error = mm::PagingError::OutOfRange;
      return e;
    }
    overlapping(lo, lo + bytes - 1, [&](uint64_t, const Leaf&) { e.error = mm::PagingError::AlreadyMapped; });
    return e;
  }
  unsigned choose(uint64_t cur, uint64_t pa, uint64_t left, mm::HugePages huge) const {
    if (huge == mm::HugePages::Allow) {
      for (unsigned k = largest_leaf; k > 0; --k) {
        if (cur % size(k) || pa % size(k) || left < size(k)) continue;
        if (has_table(k - 1, cur)) continue;
        return k;
      }
    }
    return 0;
  }
  void apply_map_range(uint64_t lo, uint64_t pa, uint64_t bytes, mm::PageFlags effective,
                       mm::HugePages huge) {
    for (uint64_t done = 0; done < bytes;) {
      unsigned k = choose(lo + done, pa + done, bytes - done, huge);
      apply_map(k, lo + done, pa + done, effective);
      done += size(k);
    }
  }
  Expect predict_unmap_range(uint64_t lo, uint64_t bytes) const {
    Expect e;
    uint64_t hi = lo + bytes - 1;
    overlapping(lo, hi, [&](uint64_t start, const Leaf& leaf) {
      uint64_t end = start + size(leaf.level) - 1;
      e.pages += (std::min(hi, end) - std::max(lo, start) + 1) / 4096;
      e.flush.add(start, size(leaf.level));
    });
    return e;
  }
  void split_edges(uint64_t lo, uint64_t bytes, uint64_t space_end) {
    auto edge = [&](uint64_t a) {
      for (;;) {
        auto f = covering(a);
        if (!f || f->start == a) return;
        split(f->start, f->leaf);
      }
    };
    edge(lo);
    if (lo + bytes < space_end) edge(lo + bytes);
  }
  void apply_unmap_range(uint64_t lo, uint64_t bytes, uint64_t space_end) {
    split_edges(lo, bytes, space_end);
    leaves.erase(leaves.lower_bound(lo), leaves.lower_bound(lo + bytes));
  }
  Expect predict_protect_range(uint64_t lo, uint64_t bytes) const {
    Expect e = predict_unmap_range(lo, bytes);
    if (e.pages * 4096 != bytes) {
      e = Expect{};
      e.error = mm::PagingError::NotMapped;
    }
    e.pages = 0;
    return e;
  }
  void apply_protect_range(uint64_t lo, uint64_t bytes, mm::PageFlags effective, uint64_t space_end) {
    split_edges(lo, bytes, space_end);
    for (auto it = leaves.lower_bound(lo); it != leaves.end() && it->first < lo + bytes; ++it)
      it->second.flags = effective;
  }
  // Reclaim predicts and applies at once (it cannot fail).
  Expect reclaim(uint64_t lo, uint64_t bytes) {
    Expect e;
    uint64_t hi = lo + bytes - 1;
    for (auto it = tables.begin(); it != tables.end();) {
      uint64_t base = it->second, span = size(it->first + 1);
      bool inside = base >= lo && base + (span - 1) <= hi;
      auto next = leaves.lower_bound(base);
      bool empty = next == leaves.end() || next->first > base + (span - 1);
      if (inside && empty) {
        e.flush.add(base, span);
        ++e.tables;
        it = tables.erase(it);
      } else {
        ++it;
      }
    }
    return e;
  }
};

// --- the harness -------------------------------------------------------------------------------------------
template <class F>
class Harness {
 public:
  using G = mm::paging::Geometry<F>;
  using M = Model<F>;

  // `memory` holds the table frames; the harness owns the allocator and the engine.
  explicit Harness(const mm::test_env::TestMemory& memory)
      : window_(memory.window()),
        frames_(memory.window(), memory.range(), mm::paging_testing::Poison::No),
        pt_(mm::PageTable<F>::create(window_, frames_).release_value()) {
    cfg_.mmu = mm::paging_testing::format_id<F>() == mm::paging_testing::FormatId::X86_32 ? sim::Mmu::X86_32
               : mm::paging_testing::format_id<F>() == mm::paging_testing::FormatId::X86_64
                   ? sim::Mmu::X86_64
                   : sim::Mmu::Aarch64;
    cfg_.upper_half = mm::paging_testing::format_id<F>() == mm::paging_testing::FormatId::Aarch64Upper;
  }

  mm::paging_testing::ArenaFrames& frames() { return frames_; }
  mm::PageTable<F>& table() { return pt_; }
  const M& model() const { return model_; }
  // The first linear address the format's half covers (aarch64 TTBR1 tables translate the top half).
  static constexpr uint64_t space_end() {
    return mm::paging_testing::format_id<F>() == mm::paging_testing::FormatId::Aarch64Lower
               ? uint64_t{1} << 47
               : G::kSpaceMask + 1;
  }

  // Runs `op` on both sides; returns a description of the first disagreement, or "".
  std::string run(const Op& op, std::span<const uint64_t> probes) {
    last_error_.reset();
    std::string failure = execute(op);
    if (!failure.empty()) return failure;
    if (frames_.used_count() != 1 + model_.tables.size()) {
      return "table frames in use: " + std::to_string(frames_.used_count()) + ", model expects " +
             std::to_string(1 + model_.tables.size());
    }
    for (uint64_t p : probes) {
      failure = check_translation(p);
      if (!failure.empty()) return failure;
    }
    return "";
  }

  // Compares translations of `lin` (any byte address): model, engine, walker.
  std::string check_translation(uint64_t lin) const {
    mm::VirtAddr v = G::virt(lin);
    auto mine = pt_.translate(v);
    auto theirs = mm::paging_testing::independent_mmu()->translate(mm::paging_testing::format_id<F>(),
                                                                   window_, pt_.root(), v);
    auto f = model_.covering(lin);
    std::optional<mm::Translation> want;
    if (f) {
      uint64_t off = lin - f->start;
      want = mm::Translation{mm::PhysAddr::from(f->leaf.phys + off), G::virt(f->start),
                             mm::PhysAddr::from(f->leaf.phys), M::size(f->leaf.level), f->leaf.flags};
    }
    auto same = [&](const ktl::Optional<mm::Translation>& t) {
      return want ? (t.has_value() && *t == *want) : !t.has_value();
    };
    if (!same(mine) || !same(theirs)) {
      std::ostringstream s;
      s << "translation of 0x" << std::hex << v.value() << std::dec << " differs: model " << show(want)
        << ", engine " << show(mine) << ", walker " << show(theirs);
      return s.str();
    }
    return "";
  }

  // The whole tree, enumerated by the walker (one pass: leaves and tables), against the model; every
  // leaf's translation by model, engine and walker (check_translation).
  std::string check_everything() const {
    sim::Census all = sim::census(window_, cfg_, pt_.root().value());
    if (all.leaves.size() != model_.leaves.size()) {
      return "walker finds " + std::to_string(all.leaves.size()) + " leaves, model has " +
             std::to_string(model_.leaves.size());
    }
    auto it = model_.leaves.begin();
    for (auto [va, size] : all.leaves) {
      uint64_t lin = va & G::kSpaceMask;
      if (lin != it->first || size != M::size(it->second.level)) {
        std::ostringstream s;
        s << "leaf mismatch at 0x" << std::hex << va << " (size 0x" << size << "): model start 0x"
          << it->first << " size 0x" << M::size(it->second.level);
        return s.str();
      }
      std::string f = check_translation(lin);
      if (!f.empty()) return f;
      ++it;
    }
    if (all.tables != 1 + model_.tables.size()) {
      return "walker counts " + std::to_string(all.tables) + " tables, model " +
             std::to_string(1 + model_.tables.size());
    }
    return "";
  }

  // The linear ranges the format's tables translate (x86_64 has two halves, one root).
  static std::vector<std::pair<uint64_t, uint64_t>> halves() {
    using mm::paging_testing::FormatId;
    constexpr FormatId id = mm::paging_testing::format_id<F>();
    if (id == FormatId::X86_64) return {{0, uint64_t{1} << 47}, {uint64_t{1} << 47, uint64_t{1} << 47}};
    if (id == FormatId::Aarch64Lower) return {{0, uint64_t{1} << 47}};
    if (id == FormatId::Aarch64Upper) return {{uint64_t{1} << 47, uint64_t{1} << 47}};
    return {{0, uint64_t{1} << 32}};
  }

  // Empties the tables (unmap everything, reclaim everything) and checks that only the root is left.
  std::string drain() {
    for (auto [start, bytes] : halves()) {
      pt_.unmap_range(G::virt(start), bytes).release_value().flush.ignore();
      (void)pt_.reclaim_empty_tables(G::virt(start), bytes).release_value();
    }
    model_.leaves.clear();
    model_.tables.clear();
    if (frames_.used_count() != 1)
      return "after draining, " + std::to_string(frames_.used_count()) + " frames in use";
    return check_everything();
  }

  // The outcome of the last run(): the engine's error, if any.
  std::optional<mm::PagingError> last_error() const { return last_error_; }

 private:
  static std::string show(const std::optional<mm::Translation>& t) {
    if (!t) return "(none)";
    std::ostringstream s;
    s << std::hex << "{phys 0x" << t->phys.value() << " page 0x" << t->page.value() << " frame 0x"
      << t->frame.value() << " size 0x" << t->page_size << std::dec << " w" << t->flags.writable() << " x"
      << t->flags.executable() << " u" << t->flags.user() << " g" << t->flags.global() << " c"
      << static_cast<int>(t->flags.cache()) << "}";
    return s.str();
  }
  static std::string show(const ktl::Optional<mm::Translation>& t) {
    return t ? show(std::optional<mm::Translation>(*t)) : show(std::optional<mm::Translation>());
  }
  static std::string show_error(const std::optional<mm::PagingError>& e) {
    return e ? mm::to_string(*e) : "success";
  }

  template <class R>
  std::string compare_error(const R& result, const typename M::Expect& want, uint64_t failures_before) {
    std::optional<mm::PagingError> got;
    if (result.is_err()) got = result.error();
    last_error_ = got;
    if (got == want.error) return "";
    // An injected allocation failure may turn a predicted success into NoMemory.
    if (!want.error && got == mm::PagingError::NoMemory && frames_.injected_failures() > failures_before)
      return "";
    return "expected " + show_error(want.error) + ", engine says " + show_error(got);
  }
  static std::string compare_flush(const mm::TlbFlush& t, const typename M::Hull& want) {
    uint64_t start = want.any ? G::virt(want.lo).value() : 0;
    if (t.pages() != want.pages() || (want.any && t.start().value() != start)) {
      std::ostringstream s;
      s << "flush token covers 0x" << std::hex << t.start().value() << " +" << std::dec << t.pages()
        << " pages, expected 0x" << std::hex << start << " +" << std::dec << want.pages();
      return s.str();
    }
    return "";
  }

  template <class S>
  std::string single(const Op& op) {
    mm::VirtAddr v = G::virt(op.va);
    auto page = mm::Page<S>::from_start(v).value();
    uint64_t before = frames_.injected_failures();
    mm::PageFlags effective = F::effective(op.flags);
    switch (op.kind) {
      case OpKind::Map: {
        auto want = model_.predict_map(op.level, op.va, op.pa);
        auto r = pt_.map(page, mm::Frame<S>::containing(mm::PhysAddr::from(op.pa)), op.flags);
        std::string f = compare_error(r, want, before);
        if (!f.empty() || r.is_err()) return f;
        mm::TlbFlush t = r.release_value();
        f = compare_flush(t, typename M::Hull{});
        std::move(t).ignore();
        if (f.empty()) model_.apply_map(op.level, op.va, op.pa, effective);
        return f;
      }
      case OpKind::Unmap: {
        auto want = model_.predict_unmap(op.level, op.va);
        auto r = pt_.unmap(page);
        std::string f = compare_error(r, want, before);
        if (!f.empty() || r.is_err()) return f;
        auto u = r.release_value();
        f = compare_flush(u.flush, want.flush);
        std::move(u.flush).ignore();
        if (f.empty() && u.frame.start().value() != want.frame) f = "unmap returned the wrong frame";
        if (f.empty()) model_.apply_unmap(op.level, op.va);
        return f;
      }
      case OpKind::Protect: {
        auto want = model_.predict_unmap(op.level, op.va);
        auto r = pt_.protect(page, op.flags);
        std::string f = compare_error(r, want, before);
        if (!f.empty() || r.is_err()) return f;
        mm::TlbFlush t = r.release_value();
        f = compare_flush(t, want.flush);
        std::move(t).ignore();
        if (f.empty()) model_.apply_protect(op.level, op.va, effective);
        return f;
      }
      default: return "bad single-page op";
    }
  }

  std::string execute(const Op& op) {
    mm::VirtAddr v = G::virt(op.va);
    uint64_t before = frames_.injected_failures();
    mm::PageFlags effective = F::effective(op.flags);
    switch (op.kind) {
      case OpKind::Map:
      case OpKind::Unmap:
      case OpKind::Protect:
        if (op.level == 0) return single<mm::Size4K>(op);
        if constexpr (mm::SupportsPageSize<F, mm::Size4M>) {
          return single<mm::Size4M>(op);
        } else {
          if (op.level == 1) return single<mm::Size2M>(op);
          return single<mm::Size1G>(op);
        }
      case OpKind::MapRange: {
        auto want = model_.predict_map_range(op.va, op.pa, op.bytes);
        auto r = pt_.map_range(v, mm::PhysAddr::from(op.pa), op.bytes, op.flags, op.huge);
        std::string f = compare_error(r, want, before);
        if (!f.empty() || r.is_err()) return f;
        mm::TlbFlush t = r.release_value();
        f = compare_flush(t, typename M::Hull{});
        std::move(t).ignore();
        if (f.empty()) model_.apply_map_range(op.va, op.pa, op.bytes, effective, op.huge);
        return f;
      }
      case OpKind::UnmapRange: {
        auto want = model_.predict_unmap_range(op.va, op.bytes);
        auto r = pt_.unmap_range(v, op.bytes);
        std::string f = compare_error(r, want, before);
        if (!f.empty() || r.is_err()) return f;
        auto u = r.release_value();
        f = compare_flush(u.flush, want.flush);
        std::move(u.flush).ignore();
        if (f.empty() && u.pages != want.pages)
          f = "unmap_range unmapped " + std::to_string(u.pages) + " pages, expected " +
              std::to_string(want.pages);
        if (f.empty()) model_.apply_unmap_range(op.va, op.bytes, space_end());
        return f;
      }
      case OpKind::ProtectRange: {
        auto want = model_.predict_protect_range(op.va, op.bytes);
        auto r = pt_.protect_range(v, op.bytes, op.flags);
        std::string f = compare_error(r, want, before);
        if (!f.empty() || r.is_err()) return f;
        mm::TlbFlush t = r.release_value();
        f = compare_flush(t, want.flush);
        std::move(t).ignore();
        if (f.empty()) model_.apply_protect_range(op.va, op.bytes, effective, space_end());
        return f;
      }
      case OpKind::Reclaim: {
        mm::arch::TlbLog log_before = mm::arch::tlb_log();
        auto r = pt_.reclaim_empty_tables(v, op.bytes);
        if (r.is_err()) return std::string("reclaim failed: ") + mm::to_string(r.error());
        auto want = model_.reclaim(op.va, op.bytes);
        if (r.value().tables != want.tables) {
          return "reclaim freed " + std::to_string(r.value().tables) + " tables, expected " +
                 std::to_string(want.tables);
        }
        mm::arch::TlbLog log = mm::arch::tlb_log();
        uint64_t flushes = log.range_flushes - log_before.range_flushes;
        if (flushes != (want.tables > 0 ? 1u : 0u))
          return "reclaim flushed " + std::to_string(flushes) + " times";
        if (want.tables > 0 &&
            (log.last_start != G::virt(want.flush.lo).value() || log.last_pages != want.flush.pages())) {
          return "reclaim flushed the wrong range";
        }
        return "";
      }
      case OpKind::Translate:
      case OpKind::kCount: return "";
    }
    return "unknown op";
  }

  mm::PhysWindow window_;
  mm::paging_testing::ArenaFrames frames_;
  mm::PageTable<F> pt_;
  M model_;
  sim::MmuConfig cfg_;
  std::optional<mm::PagingError> last_error_;
};

}  // namespace paging_model

#pragma clang attribute pop
