// mm.pmm: implementation (see pmm.cppm for the design and the lock order).
module;

#include <ktl/macros.h>

module mm.pmm;

import ktl;
import mm.addr;
import mm.arch;
import mm.bitmap;
import mm.frames;

namespace mm {

namespace {

constexpr u64 kNoLimit = ~u64{0};

struct FrameSpan {
  u64 first;
  u64 end;
  [[nodiscard]] bool empty() const { return end <= first; }
  [[nodiscard]] u64 size() const { return empty() ? 0 : end - first; }
};

// Usable ranges shrink to whole frames (a partial frame is not usable), all others grow (a partial
// frame is not free).
FrameSpan span_of(const PhysMapEntry& r) {
  u64 start = r.range.start().value();
  u64 end = r.range.end().value();
  if (r.kind == PhysKind::Usable) {
    FrameSpan s{ktl::align_up(start, kPageSize) / kPageSize, end / kPageSize};
    return s.empty() ? FrameSpan{s.first, s.first} : s;
  }
  return FrameSpan{start / kPageSize, ktl::align_up(end, kPageSize) / kPageSize};
}

u64 frames_for_bytes(u64 bytes) { return ktl::align_up(bytes, kPageSize) / kPageSize; }

PhysAddr addr_of(u64 frame) { return PhysAddr::unchecked(frame * kPageSize); }
Frame4K frame_of(u64 frame) { return Frame4K::from_number(frame).value(); }

ktl::Atomic<Pmm*> g_global_pmm;

}  // namespace

// --- formatting --------------------------------------------------------------------------------------
void format_value(ktl::FormatSink& sink, NodeId n, const ktl::FormatSpec& spec) {
  ktl::InlineString<24> s;
  ktl::format_to(s, "node{}", n.value);
  ktl::format_value(sink, s.view(), spec);
}
void format_value(ktl::FormatSink& sink, const MemStats& s, const ktl::FormatSpec&) {
  ktl::format_to(sink, "{{total {} free {} used {} reserved {} metadata {}}}", s.total_bytes, s.free_bytes,
                 s.used_bytes, s.reserved_bytes, s.metadata_bytes);
}

// --- AllocatedFrames ----------------------------------------------------------------------------------
void AllocatedFrames::reset() {
  Pmm* owner = ktl::exchange(owner_, nullptr);
  u64 count = ktl::exchange(count_, 0);
  if (owner != nullptr && count != 0) {
    // A failure here means someone freed these frames behind the owner's back: the PMM has
    // already logged it with the address, and changed nothing.
    (void)owner->free_frames(first_, count);
  }
}

SplitFrames AllocatedFrames::split_at(u64 n) && {
  ktl::check(n > 0 && n < count_, "AllocatedFrames::split_at: split point outside (0, count)");
  ktl::check(owner_ != nullptr, "AllocatedFrames::split_at: released owner");
  Pmm& owner = *ktl::exchange(owner_, nullptr);
  u64 count = ktl::exchange(count_, 0);
  return SplitFrames{AllocatedFrames(owner, first_, n),
                     AllocatedFrames(owner, frame_of(first_.number() + n), count - n)};
}

// --- PmmArena -----------------------------------------------------------------------------------------
void PmmArena::setup(u64 base, u64 frames, NodeId node, ktl::Span<u64> free_storage,
                     ktl::Span<u64> managed_storage) {
  ktl::LockGuard guard(lock_);
  base_ = base;
  frames_ = frames;
  node_ = node;
  free_ = SummaryBitmap(free_storage, frames);
  managed_ = BitSpan(managed_storage, frames);
  managed_.fill(false);
  managed_count_ = 0;
}

void PmmArena::add_usable(u64 first, u64 end) {
  ktl::LockGuard guard(lock_);
  ktl::check(first >= base_ && end <= base_ + frames_ && first <= end, "PmmArena::add_usable: outside");
  managed_count_ += (end - first) - managed_.count_set(first - base_, end - base_);
  managed_.set_range(first - base_, end - base_);
  free_.set_range(first - base_, end - base_);
}

void PmmArena::remove_usable(u64 first, u64 end) {
  ktl::LockGuard guard(lock_);
  ktl::check(first >= base_ && end <= base_ + frames_ && first <= end, "PmmArena::remove_usable: outside");
  managed_count_ -= managed_.count_set(first - base_, end - base_);
  managed_.clear_range(first - base_, end - base_);
  free_.clear_range(first - base_, end - base_);
}

ktl::Optional<u64> PmmArena::alloc(u64 count, u64 align, u64 limit) {
  if (limit <= base_) return ktl::nullopt;
  u64 to = ktl::min(frames_, limit - base_);
  ktl::LockGuard guard(lock_);
  if (free_.count() < count) return ktl::nullopt;
  ktl::Optional<u64> index;
  if (count == 1 && align == 1) {
    index = free_.find_first_set();
    if (index.has_value() && index.value() >= to) return ktl::nullopt;
  } else {
    index = free_.find_set_run(count, align, base_ % align, 0, to);
  }
  if (!index.has_value()) return ktl::nullopt;
  u64 i = index.value();
  if (count == 1) {
    free_.clear(i);
  } else {
    free_.clear_range(i, i + count);
  }
  return base_ + i;
}

ktl::Result<void, PmmArena::Fault> PmmArena::free(u64 first, u64 count) {
  ktl::check(contains(first), "PmmArena::free: first frame outside the arena");
  u64 from = first - base_;
  u64 to = from + ktl::min(count, frames_ - from);
  if (count == 1) {
    // The fast path of a single frame.
    if (!managed_.test(from)) return ktl::Err(Fault{PmmError::NotManaged, first});
    ktl::LockGuard guard(lock_);
    if (free_.test(from)) return ktl::Err(Fault{PmmError::DoubleFree, first});
    free_.set(from);
    return ktl::ok();
  }
  if (auto hole = managed_.find_first_clear(from, to); hole.has_value()) {
    return ktl::Err(Fault{PmmError::NotManaged, base_ + hole.value()});
  }
  if (to - from < count) return ktl::Err(Fault{PmmError::NotManaged, end()});
  ktl::LockGuard guard(lock_);
  if (auto already = free_.find_next_set(from); already.has_value() && already.value() < to) {
    return ktl::Err(Fault{PmmError::DoubleFree, base_ + already.value()});
  }
  free_.set_range(from, to);
  return ktl::ok();
}

ktl::Result<void, PmmArena::Fault> PmmArena::claim(u64 first, u64 count) {
  ktl::check(contains(first), "PmmArena::claim: first frame outside the arena");
  u64 from = first - base_;
  u64 to = from + ktl::min(count, frames_ - from);
  if (auto hole = managed_.find_first_clear(from, to); hole.has_value()) {
    return ktl::Err(Fault{PmmError::NotManaged, base_ + hole.value()});
  }
  if (to - from < count) return ktl::Err(Fault{PmmError::NotManaged, end()});
  ktl::LockGuard guard(lock_);
  if (auto taken = free_.find_first_clear(from, to); taken.has_value()) {
    return ktl::Err(Fault{PmmError::AlreadyAllocated, base_ + taken.value()});
  }
  free_.clear_range(from, to);
  return ktl::ok();
}

bool PmmArena::is_free(u64 frame) const {
  ktl::LockGuard guard(lock_);
  return free_.test(frame - base_);
}

void PmmArena::managed_states(u64 first, ktl::Span<FrameState> out) const {
  ktl::check(contains(first) && out.size() <= end() - first,
             "PmmArena::managed_states: frames outside the arena");
  ktl::LockGuard guard(lock_);
  for (usize i = 0; i < out.size(); ++i) {
    u64 bit = first - base_ + i;
    if (!managed_.test(bit)) {
      out[i] = FrameState::NotManaged;
    } else {
      out[i] = free_.test(bit) ? FrameState::Free : FrameState::Allocated;
    }
  }
}

u64 PmmArena::free_count() const {
  ktl::LockGuard guard(lock_);
  return free_.count();
}

bool PmmArena::check_invariants() const {
  ktl::LockGuard guard(lock_);
  if (!free_.check_invariants()) return false;
  if (managed_.count_set(0, frames_) != managed_count_) return false;
  ktl::Span<const u64> free_words = free_.words();
  ktl::Span<u64> managed_words = managed_.words();
  for (usize w = 0; w < free_words.size(); ++w) {
    if ((free_words[w] & ~managed_words[w]) != 0) return false;  // a free frame that is not managed
  }
  return true;
}

// --- Pmm: building ------------------------------------------------------------------------------------
ktl::Result<void, PmmError> Pmm::init(ktl::Span<const PhysMapEntry> map, PhysWindow window) {
  if (initialized_) return ktl::Err(PmmError::AlreadyInitialized);
  InitPlan plan;
  plan.records = TRY(validate_map(map));
  TRY(plan_arenas(map, plan));
  TRY(place_metadata(map, window, plan));
  // Nothing can fail any more: build.
  window_ = window;
  build_arenas(map, plan);
  mark_metadata(plan);
  record_map(map, plan);
  initialized_ = true;
  free_.store(free_frame_count(), ktl::MemoryOrder::Relaxed);
  return ktl::ok();
}

// Sorted, non-overlapping, known nodes (checked per region, in map order). Returns the number of
// non-empty regions (the region table's records).
ktl::Result<u64, PmmError> Pmm::validate_map(ktl::Span<const PhysMapEntry> map) {
  u64 records = 0;
  u64 prev_start = 0;
  u64 prev_end = 0;
  for (usize i = 0; i < map.size(); ++i) {
    const PhysMapEntry& r = map[i];
    if (r.node.value >= kMaxNumaNodes) return ktl::Err(PmmError::UnknownNode);
    if (i > 0 && r.range.start().value() < prev_start) return ktl::Err(PmmError::UnsortedMap);
    if (i > 0 && r.range.start().value() < prev_end) return ktl::Err(PmmError::OverlappingMap);
    prev_start = r.range.start().value();
    prev_end = r.range.end().value();
    if (!span_of(r).empty()) ++records;
  }
  return records;
}

// The arenas: usable spans of one node, merged across small holes (and, once kMaxArenas are
// planned, across any hole of the same node).
ktl::Result<void, PmmError> Pmm::plan_arenas(ktl::Span<const PhysMapEntry> map, InitPlan& plan) {
  for (const PhysMapEntry& r : map) {
    FrameSpan s = span_of(r);
    if (r.kind != PhysKind::Usable || s.empty()) continue;
    if (plan.arena_count > 0) {
      ArenaPlan& last = plan.arenas[plan.arena_count - 1];
      bool same_node = last.node == r.node;
      if (same_node && (s.first - last.end <= kMergeGapFrames || plan.arena_count == kMaxArenas)) {
        last.end = s.end;  // sorted and disjoint, so s.first >= last.end
        continue;
      }
      if (plan.arena_count == kMaxArenas) return ktl::Err(PmmError::TooManyArenas);
    }
    plan.arenas[plan.arena_count++] = ArenaPlan{s.first, s.end, r.node, 0, 0, 0};
  }
  if (plan.arena_count == 0) return ktl::Err(PmmError::NoUsableMemory);
  return ktl::ok();
}

// Every arena's bitmaps (on its own node when possible), then the region table, each carved by
// carve_block(); all of them must lie inside `window`.
ktl::Result<void, PmmError> Pmm::place_metadata(ktl::Span<const PhysMapEntry> map, PhysWindow window,
                                                InitPlan& plan) {
  for (usize i = 0; i < plan.arena_count; ++i) {
    ArenaPlan& p = plan.arenas[i];
    u64 frames = p.end - p.first;
    p.free_words = SummaryBitmap::storage_words(frames);
    p.managed_words = words_for_bits(frames);
    auto block =
        carve_block(map, plan, frames_for_bytes((p.free_words + p.managed_words) * sizeof(u64)), p.node);
    if (!block.has_value()) return ktl::Err(PmmError::NoMemoryForMetadata);
    p.block = plan.block_count;
    plan.blocks[plan.block_count++] = block.value();
  }
  auto table = carve_block(map, plan, frames_for_bytes(plan.records * sizeof(MapRecord)), ktl::nullopt);
  if (!table.has_value()) return ktl::Err(PmmError::NoMemoryForMetadata);
  plan.table_block = plan.block_count;
  plan.blocks[plan.block_count++] = table.value();
  for (usize b = 0; b < plan.block_count; ++b) {
    if (!window.covers(addr_of(plan.blocks[b].first), plan.blocks[b].count * kPageSize)) {
      return ktl::Err(PmmError::MetadataNotMapped);
    }
  }
  return ktl::ok();
}

// `frames` frames from the top of the highest usable span with room (of `node` if it has one,
// else of any node), below any block already carved from that span.
ktl::Optional<Pmm::MetadataBlock> Pmm::carve_block(ktl::Span<const PhysMapEntry> map, const InitPlan& plan,
                                                   u64 frames, ktl::Optional<NodeId> node) {
  for (usize pass = 0; pass < 2; ++pass) {
    for (usize i = map.size(); i-- > 0;) {
      const PhysMapEntry& r = map[i];
      FrameSpan s = span_of(r);
      if (r.kind != PhysKind::Usable || s.empty()) continue;
      if (pass == 0 && node.has_value() && !(r.node == node.value())) continue;
      u64 top = s.end;
      for (usize b = 0; b < plan.block_count; ++b) {
        const MetadataBlock& block = plan.blocks[b];
        if (block.first >= s.first && block.first < s.end) top = ktl::min(top, block.first);
      }
      if (top - s.first >= frames) return MetadataBlock{top - frames, frames, r.node};
    }
    if (!node.has_value()) break;
  }
  return ktl::nullopt;
}

// The arenas over their bitmaps, every usable span managed and free.
void Pmm::build_arenas(ktl::Span<const PhysMapEntry> map, const InitPlan& plan) {
  for (usize i = 0; i < plan.arena_count; ++i) {
    const ArenaPlan& p = plan.arenas[i];
    ktl::Span<u64> storage = window_.array<u64>(addr_of(plan.blocks[p.block].first),
                                                static_cast<usize>(p.free_words + p.managed_words));
    arenas_[i].setup(p.first, p.end - p.first, p.node, storage.first(static_cast<usize>(p.free_words)),
                     storage.subspan(static_cast<usize>(p.free_words)));
  }
  arena_count_ = plan.arena_count;
  for (const PhysMapEntry& r : map) {
    FrameSpan s = span_of(r);
    if (r.kind != PhysKind::Usable || s.empty()) continue;
    PmmArena* a = arena_of(s.first);
    ktl::check(a != nullptr, "pmm: a usable span has no arena");
    a->add_usable(s.first, s.end);
  }
}

// The metadata blocks leave their arenas' managed frames and are remembered (for state_of, the
// statistics and error reports).
void Pmm::mark_metadata(const InitPlan& plan) {
  for (usize b = 0; b < plan.block_count; ++b) {
    const MetadataBlock& block = plan.blocks[b];
    if (block.count == 0) continue;
    PmmArena* a = arena_of(block.first);
    ktl::check(a != nullptr, "pmm: a metadata block has no arena");
    a->remove_usable(block.first, block.first + block.count);
    metadata_[metadata_count_++] = block;
    nodes_[block.node.value].metadata_frames += block.count;
  }
}

// The region table (for error reports) and each node's usable and reserved frame counts.
void Pmm::record_map(ktl::Span<const PhysMapEntry> map, const InitPlan& plan) {
  map_records_ = window_.array<MapRecord>(addr_of(plan.blocks[plan.table_block].first),
                                          static_cast<usize>(plan.records));
  usize next = 0;
  u64 reserved_end = 0;  // grown non-usable spans may share their edge frames
  for (const PhysMapEntry& r : map) {
    FrameSpan s = span_of(r);
    if (s.empty()) continue;
    map_records_[next++] = MapRecord{s.first, s.end, r.kind, r.node};
    NodeInfo& n = nodes_[r.node.value];
    n.present = true;
    if (r.kind == PhysKind::Usable) {
      n.usable_frames += s.size();
    } else {
      u64 first = ktl::max(s.first, reserved_end);
      if (s.end > first) n.reserved_frames += s.end - first;
      reserved_end = ktl::max(reserved_end, s.end);
    }
  }
}

// --- Pmm: lookup and error reports ------------------------------------------------------------------
void Pmm::states_of(Frame4K first, ktl::Span<FrameState> out) const {
  for (usize i = 0; i < out.size();) {
    u64 f = first.number() + i;
    const PmmArena* a = arena_of(f);
    usize run = 1;
    if (a == nullptr) {
      out[i] = classify_unmanaged(f, nullptr);
    } else {
      run = static_cast<usize>(ktl::min<u64>(out.size() - i, a->end() - f));
      ktl::Span<FrameState> part = out.subspan(i, run);
      a->managed_states(f, part);
      for (usize k = 0; k < run; ++k) {
        if (part[k] == FrameState::NotManaged) part[k] = classify_unmanaged(f + k, nullptr);
      }
    }
    i += run;
  }
}

PmmArena* Pmm::arena_of(u64 frame) {
  for (usize i = 0; i < arena_count_; ++i) {
    if (arenas_[i].contains(frame)) return &arenas_[i];
  }
  return nullptr;
}

const PmmArena* Pmm::arena_of(u64 frame) const {
  for (usize i = 0; i < arena_count_; ++i) {
    if (arenas_[i].contains(frame)) return &arenas_[i];
  }
  return nullptr;
}

FrameState Pmm::classify_unmanaged(u64 frame, PhysKind* kind) const {
  for (usize b = 0; b < metadata_count_; ++b) {
    if (frame >= metadata_[b].first && frame - metadata_[b].first < metadata_[b].count)
      return FrameState::Metadata;
  }
  // The last record starting at or before `frame`.
  usize lo = 0;
  usize hi = map_records_.size();
  while (lo < hi) {
    usize mid = lo + (hi - lo) / 2;
    if (map_records_[mid].first <= frame) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  if (lo == 0 || frame >= map_records_[lo - 1].end) return FrameState::NotManaged;
  if (kind != nullptr) *kind = map_records_[lo - 1].kind;
  return FrameState::Reserved;
}

PmmError Pmm::report(PmmArena::Fault fault, const char* operation) const {
  PhysAddr at = addr_of(fault.frame);
  switch (fault.error) {
    case PmmError::NotManaged: {
      const PmmArena* a = arena_of(fault.frame);
      if (a != nullptr && a->is_managed(fault.frame)) {
        ktl::log::error("pmm: {} of {}: the range crosses into another arena ({})", operation, at, a->node());
        return PmmError::CrossesArena;
      }
      PhysKind kind = PhysKind::Reserved;
      switch (classify_unmanaged(fault.frame, &kind)) {
        case FrameState::Metadata:
          ktl::log::error("pmm: {} of {}: frame holds the PMM's own metadata", operation, at);
          return PmmError::Metadata;
        case FrameState::Reserved:
          ktl::log::error("pmm: {} of {}: frame is reserved ({})", operation, at, kind);
          return PmmError::Reserved;
        default:
          ktl::log::error("pmm: {} of {}: frame is not managed (not RAM in the memory map)", operation, at);
          return PmmError::NotManaged;
      }
    }
    case PmmError::DoubleFree:
      ktl::log::error("pmm: {} of {}: double free (frame is already free)", operation, at);
      return PmmError::DoubleFree;
    case PmmError::AlreadyAllocated:
      ktl::log::warn("pmm: {} of {}: frame is already allocated", operation, at);
      return PmmError::AlreadyAllocated;
    default: ktl::log::error("pmm: {} of {}: {}", operation, at, fault.error); return fault.error;
  }
}

// --- Pmm: allocation ------------------------------------------------------------------------------------
ktl::Result<u64, PmmError> Pmm::alloc_run(u64 count, u64 align, const AllocOptions& options) {
  if (!initialized_) return ktl::Err(PmmError::NotInitialized);
  if (count == 0 || (options.node.has_value() && options.node.value().value >= kMaxNumaNodes)) {
    return ktl::Err(PmmError::InvalidRequest);
  }
  // The reserve check reads the counter once: CPUs allocating at the same moment can each pass it
  // and together dip into the reserve by one request each (as Linux's watermark checks can).
  u64 floor = options.context == AllocContext::Atomic ? 0 : reserve_.load(ktl::MemoryOrder::Relaxed);
  if (u64 free = free_.load(ktl::MemoryOrder::Relaxed);
      floor != 0 && (free < floor || free - floor < count)) {
    return ktl::Err(PmmError::OutOfMemory);
  }
  u64 limit = options.below.has_value() ? options.below.value().value() / kPageSize : kNoLimit;
  auto from = [&](PmmArena& a) {
    auto f = a.alloc(count, align, limit);
    if (f.has_value()) took(count);
    return f;
  };
  if (!options.node.has_value()) {
    for (usize i = 0; i < arena_count_; ++i) {
      if (auto f = from(arenas_[i]); f.has_value()) return f.value();
    }
    return ktl::Err(PmmError::OutOfMemory);
  }
  NodeId node = options.node.value();
  for (usize i = 0; i < arena_count_; ++i) {
    if (!(arenas_[i].node() == node)) continue;
    if (auto f = from(arenas_[i]); f.has_value()) return f.value();
  }
  if (options.fallback == Fallback::None) return ktl::Err(PmmError::OutOfMemory);
  for (usize i = 0; i < arena_count_; ++i) {
    if (arenas_[i].node() == node) continue;
    if (auto f = from(arenas_[i]); f.has_value()) return f.value();
  }
  return ktl::Err(PmmError::OutOfMemory);
}

ktl::Result<AllocatedFrames, PmmError> Pmm::alloc_page(const AllocOptions& options) {
  u64 frame = TRY(alloc_run(1, 1, options));
  return AllocatedFrames(*this, frame_of(frame), 1);
}

ktl::Result<Frame4K, PmmError> Pmm::alloc_page_unowned(const AllocOptions& options) {
  u64 frame = TRY(alloc_run(1, 1, options));
  return frame_of(frame);
}

ktl::Result<AllocatedFrames, PmmError> Pmm::alloc_contiguous(u64 count, u64 align_bytes,
                                                             const AllocOptions& options) {
  if (!ktl::is_power_of_two(align_bytes) || align_bytes < kPageSize)
    return ktl::Err(PmmError::InvalidRequest);
  u64 frame = TRY(alloc_run(count, align_bytes / kPageSize, options));
  return AllocatedFrames(*this, frame_of(frame), count);
}

// --- Pmm: claims and frees --------------------------------------------------------------------------------
ktl::Result<AllocatedFrames, PmmError> Pmm::claim(Frame4K first, u64 count) {
  if (!initialized_) return ktl::Err(PmmError::NotInitialized);
  u64 f = first.number();
  if (count == 0 || count > (PhysAddr::kLimit / kPageSize) - f) return ktl::Err(PmmError::InvalidRequest);
  PmmArena* a = arena_of(f);
  if (a == nullptr) return ktl::Err(report({PmmError::NotManaged, f}, "claim"));
  if (auto r = a->claim(f, count); r.is_err()) return ktl::Err(report(r.error(), "claim"));
  took(count);
  return AllocatedFrames(*this, first, count);
}

ktl::Result<AllocatedFrames, PmmError> Pmm::claim_page(Frame4K frame) { return claim(frame, 1); }

ktl::Result<void, PmmError> Pmm::free_frames(Frame4K first, u64 count) {
  if (!initialized_) return ktl::Err(PmmError::NotInitialized);
  u64 f = first.number();
  if (count == 0 || count > (PhysAddr::kLimit / kPageSize) - f) return ktl::Err(PmmError::InvalidRequest);
  PmmArena* a = arena_of(f);
  if (a == nullptr) return ktl::Err(report({PmmError::NotManaged, f}, "free"));
  if (auto r = a->free(f, count); r.is_err()) return ktl::Err(report(r.error(), "free"));
  free_.fetch_add(count, ktl::MemoryOrder::Relaxed);
  return ktl::ok();
}

ktl::Result<void, PmmError> Pmm::free_page(Frame4K frame) { return free_frames(frame, 1); }

// --- Pmm: queries ---------------------------------------------------------------------------------------
FrameState Pmm::state_of(Frame4K frame) const {
  u64 f = frame.number();
  const PmmArena* a = arena_of(f);
  if (a != nullptr && a->is_managed(f)) return a->is_free(f) ? FrameState::Free : FrameState::Allocated;
  return classify_unmanaged(f, nullptr);
}

ktl::Optional<MemStats> Pmm::node_stats(NodeId node) const {
  if (node.value >= kMaxNumaNodes || !nodes_[node.value].present) return ktl::nullopt;
  const NodeInfo& n = nodes_[node.value];
  u64 free = 0;
  for (usize i = 0; i < arena_count_; ++i) {
    if (arenas_[i].node() == node) free += arenas_[i].free_count();
  }
  u64 managed = n.usable_frames - n.metadata_frames;
  MemStats s;
  s.total_bytes = (n.usable_frames + n.reserved_frames) * kPageSize;
  s.free_bytes = free * kPageSize;
  s.used_bytes = (managed - free) * kPageSize;
  s.reserved_bytes = n.reserved_frames * kPageSize;
  s.metadata_bytes = n.metadata_frames * kPageSize;
  return s;
}

MemStats Pmm::stats() const {
  MemStats total;
  for (u32 i = 0; i < kMaxNumaNodes; ++i) {
    auto s = node_stats(NodeId{i});
    if (!s.has_value()) continue;
    total.total_bytes += s->total_bytes;
    total.free_bytes += s->free_bytes;
    total.used_bytes += s->used_bytes;
    total.reserved_bytes += s->reserved_bytes;
    total.metadata_bytes += s->metadata_bytes;
  }
  return total;
}

void Pmm::took(u64 count) {
  u64 before = free_.fetch_sub(count, ktl::MemoryOrder::Relaxed);
  u64 below = pressure_below_.load(ktl::MemoryOrder::Relaxed);
  if (before >= below && before - count < below) {
    if (PressureHook hook = pressure_hook_.load(ktl::MemoryOrder::Acquire)) hook(pressure_context_.load());
  }
}

void Pmm::set_pressure_hook(u64 below_frames, PressureHook hook, void* context) {
  pressure_hook_.store(nullptr);
  pressure_context_.store(context);
  pressure_below_.store(below_frames);
  pressure_hook_.store(hook, ktl::MemoryOrder::Release);
}

u64 Pmm::free_frame_count() const {
  u64 n = 0;
  for (usize i = 0; i < arena_count_; ++i) n += arenas_[i].free_count();
  return n;
}

ktl::Result<void, PmmError> Pmm::set_atomic_reserve(u64 frames) {
  if (!initialized_) return ktl::Err(PmmError::NotInitialized);
  u64 usable = 0;
  for (usize i = 0; i < arena_count_; ++i) usable += arenas_[i].managed_count();
  if (frames > usable) return ktl::Err(PmmError::InvalidRequest);
  reserve_.store(frames, ktl::MemoryOrder::Relaxed);
  return ktl::ok();
}

PhysRange Pmm::metadata_block(usize i) const {
  ktl::check(i < metadata_count_, "Pmm::metadata_block: index out of range");
  return PhysRange::with_size(addr_of(metadata_[i].first), metadata_[i].count * kPageSize).value();
}

bool Pmm::check_invariants() const {
  u64 managed = 0;
  for (usize i = 0; i < arena_count_; ++i) {
    if (!arenas_[i].check_invariants()) return false;
    managed += arenas_[i].managed_count();
  }
  u64 usable = 0;
  u64 metadata = 0;
  for (const NodeInfo& n : nodes_) {
    usable += n.usable_frames;
    metadata += n.metadata_frames;
  }
  MemStats s = stats();
  return managed + metadata == usable && free_.load(ktl::MemoryOrder::Relaxed) == free_frame_count() &&
         s.total_bytes == s.free_bytes + s.used_bytes + s.reserved_bytes + s.metadata_bytes;
}

// --- Pmm: fork -----------------------------------------------------------------------------------------
// Unchecked (see the declaration): a run-time number of arena locks, held when this returns.
void Pmm::lock_all() {
  for (usize i = 0; i < arena_count_; ++i) arenas_[i].lock_ordered();
}

void Pmm::unlock_all() {
  for (usize i = arena_count_; i-- > 0;) arenas_[i].unlock_ordered();
}

// --- Pmm: mm::FrameAllocator ---------------------------------------------------------------------------
FrameError to_frame_error(PmmError e) {
  switch (e) {
    case PmmError::OutOfMemory: return FrameError::OutOfMemory;
    case PmmError::InvalidRequest: return FrameError::InvalidRequest;
    case PmmError::NotInitialized: return FrameError::NotInitialized;
    default: ktl::panic("pmm: to_frame_error of an error no allocation returns", to_string(e));
  }
}

ktl::Result<Frame4K, FrameError> Pmm::allocate_frame() {
  auto r = alloc_page_unowned();
  if (r.is_err()) return ktl::Err(to_frame_error(r.error()));
  return r.value();
}

void Pmm::free_frame(Frame4K frame) { (void)free_page(frame); }

// --- the global instance ----------------------------------------------------------------------------------
ktl::Result<void, PmmError> install_global_pmm(Pmm& pmm) {
  Pmm* expected = nullptr;
  if (!g_global_pmm.compare_exchange(expected, &pmm, ktl::MemoryOrder::AcqRel)) {
    return ktl::Err(PmmError::AlreadyInstalled);
  }
  return ktl::ok();
}

void uninstall_global_pmm(Pmm& pmm) {
  Pmm* expected = &pmm;
  ktl::check(g_global_pmm.compare_exchange(expected, nullptr, ktl::MemoryOrder::AcqRel),
             "uninstall_global_pmm: this Pmm is not the installed one");
}

Pmm* global_pmm() { return g_global_pmm.load(ktl::MemoryOrder::Acquire); }

}  // namespace mm
