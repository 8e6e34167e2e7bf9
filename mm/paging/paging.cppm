// mm.paging: the page-table engine, one implementation for every table format (mm.paging.formats).
//
//   auto pt = TRY(mm::PageTable<mm::paging::X86_64>::create(window, frames));
//   TRY(pt.map(page, frame, mm::PageFlags::kernel_rw())).ignore();   // fresh slot: nothing cached
//   auto [frame, flush] = TRY(pt.unmap(page));
//   std::move(flush).flush();
//
// The engine is mechanical (the rust-osdev Mapper model):
//  * map/unmap/protect of one Page<S> with S in the type; a size the format lacks does not compile
//    (SupportsPageSize). Range versions pick page sizes themselves (map_range) or work on whatever
//    leaves they meet (unmap_range, protect_range).
//  * unmap returns the frame and frees nothing; the caller owns frames.
//  * Unmapping or protecting part of a huge leaf splits it into next-smaller leaves first.
//  * Empty tables stay until reclaim_empty_tables(), an explicit step.
//  * Every operation that changes a present entry returns a TlbFlush token covering what changed
//    (a split huge page is covered whole). Filling empty slots returns an empty token.
//  * Operations are all-or-nothing: the frames for new tables are reserved before anything is
//    written, so NoMemory leaves the tables exactly as they were.
//
// Every walk of one address (map, unmap, protect, translate, table_path, the planning steps) is
// the one descent of mm.paging.walk (paging::descend over a WindowCursor); the range operations
// share one traversal of the slots (slots_in, passed_over; for_each_leaf).
//
// Page-table frames come from an mm::FrameAllocator and are read and written only through the
// mm::PhysWindow. Contents of fresh frames are not assumed: tables are zeroed before use.
//
// Concurrency: a PageTable is not internally locked. Its owner (mm.address_space) serialises every
// call under its lock; the frame allocator takes its own lock inside (lock order: address space,
// then allocator). translate() and table_path() only read (relaxed loads) and take no lock.
module;

#include <ktl/macros.h>

export module mm.paging;

export import mm.paging.types;
export import mm.paging.formats;
export import mm.paging.walk;
export import mm.paging.recursive;

import ktl;
import mm.addr;
import mm.arch;
import mm.frames;

export namespace mm {

// --- errors of the frame allocator ---------------------------------------------------------------------
// The PagingError a refused page-table frame becomes: one-to-one, so the allocator's cause survives.
[[nodiscard]] constexpr PagingError to_paging_error(FrameError e) {
  switch (e) {
    case FrameError::OutOfMemory: return PagingError::NoMemory;
    case FrameError::InvalidRequest: return PagingError::FrameRequestInvalid;
    case FrameError::NotInitialized: return PagingError::FrameAllocatorNotReady;
  }
  return PagingError::NoMemory;  // not a FrameError: -Wswitch keeps the cases complete
}

// --- options and results -------------------------------------------------------------------------------
enum class HugePages : ktl::u8 { Allow, Deny };
enum class GigabytePages : ktl::u8 { Supported, Unsupported };  // CPUID 0x80000001 EDX[26] on x86_64

// Root slots [first, end).
struct SlotRange {
  u32 first = 0;
  u32 end = 0;
  [[nodiscard]] static constexpr SlotRange all() { return {0, ~u32{0}}; }
  [[nodiscard]] static constexpr SlotRange none() { return {0, 0}; }
  [[nodiscard]] constexpr bool contains(u32 slot) const { return first <= slot && slot < end; }
};

struct PageTableOptions {
  // Root slots whose subtrees this table may change (and frees when destroyed). The others are
  // shared with another table (a user address space's kernel half): read-only here.
  SlotRange owned = SlotRange::all();
  // Root slots whose top-level tables reclaim never frees: they are shared by reference.
  SlotRange pinned = SlotRange::none();
  GigabytePages gigabytes = GigabytePages::Supported;
};

enum class Ownership : ktl::u8 {
  Owned,    // created by the engine: destroying the PageTable frees every table it owns
  Adopted,  // built by someone else (the loader): never torn down
};

template <PageSize S>
struct [[nodiscard]] Unmapped {
  Frame<S> frame;  // the frame that was mapped; still the caller's
  TlbFlush flush;
};

struct [[nodiscard]] RangeUnmapped {
  u64 pages;  // 4 KiB pages that stopped being mapped
  TlbFlush flush;
};

struct Reclaimed {
  u64 tables;  // table frames returned to the allocator
};

// The tables a walk of one address went through, root first (physical addresses).
template <u32 kLevels>
struct TablePath {
  ktl::Array<u64, kLevels> tables{};
  u32 depth = 0;
  [[nodiscard]] inline PhysAddr at(u32 i) const {
    ktl::check(i < depth, "TablePath index out of range");
    return PhysAddr::unchecked(tables[i]);
  }
};

// --- the engine ------------------------------------------------------------------------------------------
template <PageTableFormat F>
class PageTable {
  using G = paging::Geometry<F>;
  static constexpr u32 kTop = G::kTop;
  static constexpr u32 kNoSlot = ~u32{0};

 public:
  using Format = F;
  using Entry = typename F::Entry;
  static constexpr u32 kLevels = F::kLevels;

  // A new, empty table (one root frame from `frames`).
  [[nodiscard]] static ktl::Result<PageTable, PagingError> create(PhysWindow window, FrameAllocator& frames,
                                                                  PageTableOptions options = {}) {
    auto frame = frames.allocate_frame();
    if (frame.is_err()) return ktl::Err(to_paging_error(frame.error()));
    if (!table_frame_ok(frame.value().start())) {
      frames.free_frame(frame.value());
      return ktl::Err(PagingError::FrameUnreachable);
    }
    PageTable pt(window, frames, frame.value().start(), options, Ownership::Owned);
    pt.zero_table(pt.root_);
    pt.allocated_ = 1;
    return pt;
  }
  // Takes over tables someone else built (the loader's, rooted at CR3). They are never torn
  // down: destroying the PageTable frees nothing.
  [[nodiscard]] static ktl::Result<PageTable, PagingError> adopt(PhysWindow window, FrameAllocator& frames,
                                                                 PhysAddr root,
                                                                 PageTableOptions options = {}) {
    if (!root.is_aligned(kPageSize)) return ktl::Err(PagingError::Unaligned);
    if (!window.covers(root, kPageSize)) return ktl::Err(PagingError::OutsideWindow);
    if (!table_frame_ok(root)) return ktl::Err(PagingError::FrameUnreachable);
    return PageTable(window, frames, root, options, Ownership::Adopted);
  }

  PageTable(PageTable&& o)
      : window_(o.window_),
        frames_(o.frames_),
        root_(o.root_),
        options_(o.options_),
        ownership_(o.ownership_),
        recursive_slot_(o.recursive_slot_),
        allocated_(o.allocated_),
        freed_(o.freed_),
        live_(ktl::exchange(o.live_, false)) {}
  PageTable& operator=(PageTable&&) = delete;
  PageTable(const PageTable&) = delete;
  PageTable& operator=(const PageTable&) = delete;

  // Frees every table frame this PageTable owns (not the frames its leaves map). Contract: the
  // table is not active on any CPU.
  inline ~PageTable() {
    if (!live_ || ownership_ == Ownership::Adopted) return;
    ktl::check(arch::active_root() != root_, "PageTable destroyed while it is the active address space");
    free_subtrees(root_, kTop);
    frames_->free_frame(Frame4K::containing(root_));
    ++freed_;
  }

  [[nodiscard]] inline PhysAddr root() const { return root_; }
  [[nodiscard]] inline const PhysWindow& window() const { return window_; }
  [[nodiscard]] inline FrameAllocator& frames() const { return *frames_; }
  [[nodiscard]] inline Ownership ownership() const { return ownership_; }
  [[nodiscard]] inline const PageTableOptions& options() const { return options_; }
  // Table frames this engine took from the allocator and has not given back (root included).
  [[nodiscard]] inline u64 table_frames() const { return allocated_ - freed_; }
  [[nodiscard]] inline u64 allocated_table_frames() const { return allocated_; }
  [[nodiscard]] inline u64 freed_table_frames() const { return freed_; }

  // --- single pages --------------------------------------------------------------------------------------
  // Maps `page` to `frame`. Errors: AlreadyMapped (a leaf covers part of it), TableInTheWay (the
  // slot holds a lower-level table), NoMemory, OutOfRange, Reserved, Unsupported.
  template <PageSize S>
    requires SupportsPageSize<F, S>
  [[nodiscard]] inline ktl::Result<TlbFlush, PagingError> map(Page<S> page, Frame<S> frame, PageFlags flags) {
    constexpr u32 k = F::template kLevelOf<S>;
    TRY(check_level(k));
    u64 lin = TRY(checked_range(page.start(), S::bytes));
    TRY(check_phys(frame.start(), S::bytes));
    u32 missing = TRY(plan_leaf(k, lin));
    FramePool pool(window_, *frames_);
    TRY(pool.reserve(missing));
    bool relaxed = install_leaf(k, lin, F::leaf_entry(k, frame.start(), flags), pool);
    if (!relaxed) return TlbFlush::none();
    return TlbFlush::covering(page.start(), S::bytes / kPageSize);
  }

  // Unmaps `page` and returns its frame. If a larger leaf maps it, that leaf is split first (the
  // token then covers the whole former leaf). Errors: NotMapped, SizeMismatch (smaller leaves map
  // it), NoMemory (for the split), OutOfRange, Reserved.
  template <PageSize S>
    requires SupportsPageSize<F, S>
  [[nodiscard]] inline ktl::Result<Unmapped<S>, PagingError> unmap(Page<S> page) {
    constexpr u32 k = F::template kLevelOf<S>;
    u64 lin = TRY(checked_range(page.start(), S::bytes));
    Hull hull;
    LeafRef leaf = TRY(exact_leaf(k, lin, hull));
    Entry old = load(*leaf.slot);
    store(*leaf.slot, 0);
    return Unmapped<S>{Frame<S>::containing(F::target(old, k)), hull.token()};
  }

  // Changes the flags of `page`, splitting a larger leaf first. Errors as for unmap.
  template <PageSize S>
    requires SupportsPageSize<F, S>
  [[nodiscard]] inline ktl::Result<TlbFlush, PagingError> protect(Page<S> page, PageFlags flags) {
    constexpr u32 k = F::template kLevelOf<S>;
    u64 lin = TRY(checked_range(page.start(), S::bytes));
    Hull hull;
    LeafRef leaf = TRY(exact_leaf(k, lin, hull));
    Entry old = load(*leaf.slot);
    store(*leaf.slot, F::leaf_entry(k, F::target(old, k), flags));
    return hull.token();
  }

  // Where `v` translates to, with the effective flags; nullopt if it does not.
  [[nodiscard]] inline ktl::Optional<Translation> translate(VirtAddr v) const {
    if (!F::virt_ok(v)) return ktl::nullopt;
    Cursor c = cursor(G::linear(v));
    return paging::translation<F>(c, v);
  }

  // The tables a walk of `v` visits, root first, down to the leaf's table or the first hole.
  [[nodiscard]] inline TablePath<F::kLevels> table_path(VirtAddr v) const {
    TablePath<F::kLevels> path;
    if (!F::virt_ok(v)) return path;
    path.tables[path.depth++] = root_.value();
    Cursor c = cursor(G::linear(v));
    (void)paging::descend<F>(
        c, 0, [&](u32 level, Entry e) { path.tables[path.depth++] = F::target(e, level).value(); });
    return path;
  }

  // --- ranges --------------------------------------------------------------------------------------------
  // Maps [v, v + bytes) to [p, p + bytes), with the largest pages that alignment, length and the
  // existing tables allow (4 KiB only with HugePages::Deny). Nothing in the range may be mapped
  // (AlreadyMapped). All-or-nothing.
  [[nodiscard]] ktl::Result<TlbFlush, PagingError> map_range(VirtAddr v, PhysAddr p, u64 bytes,
                                                             PageFlags flags, HugePages huge) {
    u64 lo = TRY(checked_range(v, bytes));
    if (!p.is_aligned(kPageSize)) return ktl::Err(PagingError::Unaligned);
    TRY(check_phys(p, bytes));
    if (!for_each_leaf(root_, kTop, 0, lo, lo + (bytes - 1), [](Entry&, u64, u32) { return false; }))
      return ktl::Err(PagingError::AlreadyMapped);
    FramePool pool(window_, *frames_);
    TRY(pool.reserve(plan_range(lo, p.value(), bytes, huge)));
    bool relaxed = false;
    for (u64 done = 0; done < bytes;) {
      u64 pa = p.value() + done;
      u32 k = choose_level(lo + done, pa, bytes - done, huge);
      if (install_leaf(k, lo + done, F::leaf_entry(k, PhysAddr::unchecked(pa), flags), pool)) relaxed = true;
      done += G::level_size(k);
    }
    ktl::check(pool.size() == 0, "map_range: planned and installed tables differ");
    if (!relaxed) return TlbFlush::none();
    return TlbFlush::covering(v, bytes / kPageSize);
  }

  // Unmaps every leaf in [v, v + bytes); holes are skipped. Leaves that straddle an edge are split
  // first. Frames are not returned: the caller knows what it mapped.
  [[nodiscard]] inline ktl::Result<RangeUnmapped, PagingError> unmap_range(VirtAddr v, u64 bytes) {
    u64 lo = TRY(checked_range(v, bytes));
    u64 hi = lo + (bytes - 1);
    Hull hull;
    TRY(split_edges(lo, hi, hull));
    u64 pages = 0;
    for_each_leaf(root_, kTop, 0, lo, hi, [&](Entry& slot, u64 slot_base, u32 level) {
      check_inside(slot_base, level, lo, hi, "unmap_range: a leaf straddles the range after splitting");
      store(slot, 0);
      hull.add(slot_base, G::level_size(level));
      pages += G::level_size(level) / kPageSize;
      return true;
    });
    return RangeUnmapped{pages, hull.token()};
  }

  // Sets the flags of every page in [v, v + bytes), which must all be mapped (NotMapped
  // otherwise, with nothing changed). Leaves that straddle an edge are split first.
  [[nodiscard]] inline ktl::Result<TlbFlush, PagingError> protect_range(VirtAddr v, u64 bytes,
                                                                        PageFlags flags) {
    u64 lo = TRY(checked_range(v, bytes));
    u64 hi = lo + (bytes - 1);
    u64 covered = 0;
    for_each_leaf(root_, kTop, 0, lo, hi, [&](Entry&, u64 slot_base, u32 level) {
      covered += ktl::min(hi, slot_base + (G::level_size(level) - 1)) - ktl::max(lo, slot_base) + 1;
      return true;
    });
    if (covered != bytes) return ktl::Err(PagingError::NotMapped);
    Hull hull;
    TRY(split_edges(lo, hi, hull));
    for_each_leaf(root_, kTop, 0, lo, hi, [&](Entry& slot, u64 slot_base, u32 level) {
      check_inside(slot_base, level, lo, hi, "protect_range: a leaf straddles the range after splitting");
      store(slot, F::leaf_entry(level, F::target(load(slot), level), flags));
      hull.add(slot_base, G::level_size(level));
      return true;
    });
    return hull.token();
  }

  // Frees every table whose whole range lies in [v, v + bytes) and that maps nothing, bottom-up
  // (a table whose children were all freed is freed too). The root and the pinned top-level
  // tables stay. Detached tables are invalidated (one range flush) before their frames go back to
  // the allocator, so no CPU can walk a reused frame.
  [[nodiscard]] inline ktl::Result<Reclaimed, PagingError> reclaim_empty_tables(VirtAddr v, u64 bytes) {
    u64 lo = TRY(checked_range(v, bytes));
    Detached detached;
    Hull hull;
    reclaim_in(root_, kTop, 0, lo, lo + (bytes - 1), detached, hull);
    if (detached.count == 0) return Reclaimed{0};
    hull.token().flush();
    u64 n = detached.count;
    while (detached.count > 0) {
      PhysAddr frame = detached.head;
      detached.head = PhysAddr::unchecked(load(table(frame)[0]));
      --detached.count;
      frames_->free_frame(Frame4K::containing(frame));
      ++freed_;
    }
    return Reclaimed{n};
  }

  // --- root slots ----------------------------------------------------------------------------------------
  // Makes root slot `slot` the recursive self-reference, or accepts it if it already is one (the
  // loader installs it). The window it opens is Reserved for every other operation.
  [[nodiscard]] ktl::Result<void, PagingError> install_recursive_slot(u32 slot)
    requires(F::kRecursive)
  {
    if (slot >= F::kEntries) return ktl::Err(PagingError::OutOfRange);
    Entry& e = table(root_)[slot];
    Entry cur = load(e);
    if (cur == 0) {
      store(e, F::self_entry(root_));
    } else if (F::kind(cur, kTop) != paging::EntryKind::Table || F::target(cur, kTop) != root_) {
      return ktl::Err(PagingError::Reserved);
    }
    recursive_slot_ = slot;
    return ktl::ok();
  }
  [[nodiscard]] inline ktl::Optional<u32> recursive_slot() const {
    if (recursive_slot_ == kNoSlot) return ktl::nullopt;
    return recursive_slot_;
  }

  // Gives every empty owned root slot in `slots` a table, so that from now on the root entries
  // there never change (a kernel half shared by address spaces that copied them).
  [[nodiscard]] inline ktl::Result<void, PagingError> populate_root_slots(SlotRange slots) {
    u32 end = ktl::min<u32>(slots.end, static_cast<u32>(F::kEntries));
    u64 missing = 0;
    for (u32 s = slots.first; s < end; ++s) {
      if (usable_root_slot(s) && load(table(root_)[s]) == 0) ++missing;
    }
    FramePool pool(window_, *frames_);
    TRY(pool.reserve(missing));
    for (u32 s = slots.first; s < end; ++s) {
      if (usable_root_slot(s) && load(table(root_)[s]) == 0)
        store(table(root_)[s], F::table_entry(new_table(pool)));
    }
    return ktl::ok();
  }

  // Copies root entries `slots` from `source` (which must use the same format): the subtrees are
  // then shared by reference. The slots must not be owned by this table.
  inline void share_root_slots(const PageTable& source, SlotRange slots) {
    u32 end = ktl::min<u32>(slots.end, static_cast<u32>(F::kEntries));
    for (u32 s = slots.first; s < end; ++s) {
      ktl::check(!options_.owned.contains(s), "share_root_slots: the slot is owned by this table");
      if (s == source.recursive_slot_ || s == recursive_slot_) continue;
      store(table(root_)[s], load(source.table(source.root_)[s]));
    }
  }

 private:
  // A leaf slot found by a walk, with the linear address it starts at.
  struct LeafRef {
    Entry* slot;
    u32 level;
    u64 base;
  };

  // The hull of changed linear ranges, turned into one token.
  struct Hull {
    u64 lo = ~u64{0};
    u64 hi = 0;
    bool any = false;
    inline void add(u64 base, u64 size) {
      lo = ktl::min(lo, base);
      hi = ktl::max(hi, base + (size - 1));
      any = true;
    }
    [[nodiscard]] inline TlbFlush token() const {
      if (!any) return TlbFlush::none();
      return TlbFlush::covering(G::virt(lo), (hi - lo) / kPageSize + 1);
    }
  };

  // Table frames detached by reclaim, chained through their first entry (a value whose valid bit
  // is clear, so a stale walk before the flush sees "not present").
  struct Detached {
    PhysAddr head = PhysAddr::zero();
    u64 count = 0;
  };

  // Frames reserved before an operation writes anything; what is left goes back.
  class FramePool : ktl::NoCopy {
   public:
    inline FramePool(const PhysWindow& window, FrameAllocator& frames) : window_(window), frames_(frames) {}
    inline ~FramePool() {
      while (count_ > 0) frames_.free_frame(Frame4K::containing(pop()));
    }
    [[nodiscard]] inline ktl::Result<void, PagingError> reserve(u64 n) {
      for (u64 i = 0; i < n; ++i) {
        auto frame = frames_.allocate_frame();
        if (frame.is_err()) return ktl::Err(to_paging_error(frame.error()));
        if (!table_frame_ok(frame.value().start())) {  // e.g. above 4 GiB for x86 32-bit tables
          frames_.free_frame(frame.value());
          return ktl::Err(PagingError::FrameUnreachable);
        }
        push(frame.value().start());
      }
      return ktl::ok();
    }
    [[nodiscard]] inline PhysAddr take() {
      ktl::check(count_ > 0, "FramePool: more tables needed than planned");
      return pop();
    }
    [[nodiscard]] inline u64 size() const { return count_; }

   private:
    inline void push(PhysAddr p) {
      window_.as<u64>(p) = head_.value();
      head_ = p;
      ++count_;
    }
    inline PhysAddr pop() {
      PhysAddr p = head_;
      head_ = PhysAddr::unchecked(window_.as<u64>(p));
      --count_;
      return p;
    }
    const PhysWindow& window_;
    FrameAllocator& frames_;
    PhysAddr head_ = PhysAddr::zero();
    u64 count_ = 0;
  };

  PageTable(PhysWindow window, FrameAllocator& frames, PhysAddr root, PageTableOptions options,
            Ownership ownership)
      : window_(window), frames_(&frames), root_(root), options_(options), ownership_(ownership) {}

  // A table frame must be reachable by the format's table entries (and visible in the window,
  // which PhysWindow checks on every access).
  [[nodiscard]] static bool table_frame_ok(PhysAddr frame) {
    return frame.value() + kPageSize <= F::kPhysLimit;
  }

  // --- entry access ---
  [[nodiscard]] inline ktl::Span<Entry> table(PhysAddr t) const {
    return window_.array<Entry>(t, F::kEntries);
  }
  [[nodiscard]] inline Entry& entry(PhysAddr t, u64 lin, u32 level) const {
    return table(t)[G::index(lin, level)];
  }
  [[nodiscard]] static Entry load(const Entry& e) { return __atomic_load_n(&e, __ATOMIC_RELAXED); }
  // Release: a new table's contents are visible before the entry that links it.
  static void store(Entry& e, Entry v) { __atomic_store_n(&e, v, __ATOMIC_RELEASE); }

  inline void zero_table(PhysAddr t) const {
    for (u64& word : window_.array<u64>(t, kPageSize / sizeof(u64))) word = 0;
  }
  [[nodiscard]] inline PhysAddr new_table(FramePool& pool) {
    PhysAddr t = pool.take();
    zero_table(t);
    ++allocated_;
    return t;
  }

  // --- checks ---
  [[nodiscard]] inline bool usable_root_slot(u32 slot) const {
    return options_.owned.contains(slot) && slot != recursive_slot_;
  }
  // Validates [v, v + bytes) and returns its linear start.
  [[nodiscard]] inline ktl::Result<u64, PagingError> checked_range(VirtAddr v, u64 bytes) const {
    if (bytes == 0) return ktl::Err(PagingError::EmptyRange);
    if (!v.is_aligned(kPageSize) || !ktl::is_aligned(bytes, kPageSize))
      return ktl::Err(PagingError::Unaligned);
    auto last = v.checked_add(bytes - 1);
    if (last.is_err() || !F::virt_ok(v) || !F::virt_ok(last.value()))
      return ktl::Err(PagingError::OutOfRange);
    u64 lo = G::linear(v);
    u64 hi = G::linear(last.value());
    if (hi < lo) return ktl::Err(PagingError::OutOfRange);
    u32 first = static_cast<u32>(G::index(lo, kTop));
    u32 final = static_cast<u32>(G::index(hi, kTop));
    if (!options_.owned.contains(first) || !options_.owned.contains(final))
      return ktl::Err(PagingError::Reserved);
    if (recursive_slot_ != kNoSlot && first <= recursive_slot_ && recursive_slot_ <= final) {
      return ktl::Err(PagingError::Reserved);
    }
    return lo;
  }
  [[nodiscard]] static ktl::Result<void, PagingError> check_phys(PhysAddr p, u64 bytes) {
    auto end = ktl::checked_add(p.value(), bytes);
    if (end.overflow || end.value > F::kPhysLimit) return ktl::Err(PagingError::OutOfRange);
    return ktl::ok();
  }
  [[nodiscard]] inline ktl::Result<void, PagingError> check_level(u32 level) const {
    if (G::level_size(level) == Size1G::bytes && options_.gigabytes == GigabytePages::Unsupported) {
      return ktl::Err(PagingError::Unsupported);
    }
    return ktl::ok();
  }

  // --- single-leaf helpers: every walk of one address is paging::descend over a Cursor ---
  using Cursor = paging::WindowCursor<F, paging::OutsideWindow::Panic>;
  [[nodiscard]] inline Cursor cursor(u64 lin) const { return Cursor(window_, root_, lin); }

  // How many tables mapping a level-k leaf at `lin` needs, or why it cannot be mapped.
  [[nodiscard]] inline ktl::Result<u32, PagingError> plan_leaf(u32 k, u64 lin) const {
    Cursor c = cursor(lin);
    paging::Stop<F> s = paging::descend<F>(c, k);
    if (s.kind == paging::EntryKind::Leaf) return ktl::Err(PagingError::AlreadyMapped);
    if (s.kind == paging::EntryKind::Table) return ktl::Err(PagingError::TableInTheWay);  // at level k
    return s.level - k;
  }

  // Writes `leaf` at level k for `lin`, creating missing tables from `pool` and relaxing existing
  // table entries that would restrict it. Returns whether a present entry changed (relaxed).
  // Precondition: plan_leaf(k, lin) succeeded and `pool` holds what it asked for.
  inline bool install_leaf(u32 k, u64 lin, Entry leaf, FramePool& pool) {
    Cursor c = cursor(lin);
    bool relaxed = false;
    paging::Stop<F> s = paging::descend<F>(c, k, [&](u32, Entry cur) {
      Entry loose = F::relax_table(cur);
      if (loose == cur) return;
      store(c.slot(), loose);
      relaxed = true;
    });
    Entry* slot = &c.slot();  // empty (the precondition), at level s.level >= k
    for (u32 level = s.level; level > k; --level) {
      PhysAddr child = new_table(pool);
      store(*slot, F::table_entry(child));
      slot = &entry(child, lin, level - 1);
    }
    store(*slot, leaf);
    return relaxed;
  }

  // The leaf covering `lin` at level >= k. NotMapped if there is none, SizeMismatch if the
  // level-k slot holds a table (smaller pages).
  [[nodiscard]] inline ktl::Result<LeafRef, PagingError> leaf_at_or_above(u32 k, u64 lin) const {
    Cursor c = cursor(lin);
    paging::Stop<F> s = paging::descend<F>(c, k);
    switch (s.kind) {
      case paging::EntryKind::Empty: return ktl::Err(PagingError::NotMapped);
      case paging::EntryKind::Table: return ktl::Err(PagingError::SizeMismatch);
      case paging::EntryKind::Leaf: break;
    }
    return LeafRef{&c.slot(), s.level, ktl::align_down(lin, G::level_size(s.level))};
  }
  // The leaf covering `lin`, if any.
  [[nodiscard]] inline ktl::Optional<LeafRef> find_leaf(u64 lin) const {
    auto leaf = leaf_at_or_above(0, lin);
    if (leaf.is_err()) return ktl::nullopt;
    return leaf.value();
  }
  // The level-k leaf that maps `lin`, after splitting a larger one (which `hull` then covers
  // whole). Errors as leaf_at_or_above, and NoMemory for the split's tables.
  [[nodiscard]] inline ktl::Result<LeafRef, PagingError> exact_leaf(u32 k, u64 lin, Hull& hull) {
    LeafRef leaf = TRY(leaf_at_or_above(k, lin));
    hull.add(leaf.base, G::level_size(leaf.level));
    FramePool pool(window_, *frames_);
    TRY(pool.reserve(leaf.level - k));
    return split_to(leaf, k, lin, pool);
  }

  // Replaces `leaf` by a table of next-smaller leaves mapping the same frames with the same
  // attributes, repeatedly, until the leaf covering `lin` is at level k. One frame per level.
  inline LeafRef split_to(LeafRef leaf, u32 k, u64 lin, FramePool& pool) {
    while (leaf.level > k) {
      Entry e = load(*leaf.slot);
      u32 child_level = leaf.level - 1;
      PhysAddr child = pool.take();
      ++allocated_;
      ktl::Span<Entry> t = table(child);
      Entry first = F::split_leaf(e, leaf.level);
      u64 step = G::level_size(child_level);
      for (usize i = 0; i < F::kEntries; ++i) t[i] = static_cast<Entry>(first + i * step);
      store(*leaf.slot, F::table_entry(child));
      usize ci = G::index(lin, child_level);
      leaf = LeafRef{&t[ci], child_level, leaf.base + ci * step};
    }
    return leaf;
  }

  // Frames needed to make `a` a leaf boundary (0 if it already is, or nothing maps it).
  [[nodiscard]] inline u32 split_need(u64 a) const {
    if (ktl::is_aligned(a, G::level_size(F::kLargestLeafLevel))) return 0;
    ktl::Optional<LeafRef> leaf = find_leaf(a);
    if (!leaf) return 0;
    u32 n = 0;
    for (u32 level = leaf->level; level > 0 && !ktl::is_aligned(a, G::level_size(level)); --level) ++n;
    return n;
  }
  inline void split_at(u64 a, FramePool& pool, Hull& hull) {
    if (ktl::is_aligned(a, G::level_size(F::kLargestLeafLevel))) return;
    ktl::Optional<LeafRef> leaf = find_leaf(a);
    if (!leaf || ktl::is_aligned(a, G::level_size(leaf->level))) return;
    hull.add(leaf->base, G::level_size(leaf->level));
    u32 k = leaf->level;
    while (k > 0 && !ktl::is_aligned(a, G::level_size(k))) --k;
    (void)split_to(*leaf, k, a, pool);
  }
  // Splits the leaves straddling lo and hi + 1, reserving frames first (all-or-nothing).
  [[nodiscard]] inline ktl::Result<void, PagingError> split_edges(u64 lo, u64 hi, Hull& hull) {
    bool has_end = hi < G::kSpaceMask;
    u64 need = split_need(lo) + (has_end ? split_need(hi + 1) : 0);
    if (need == 0) return ktl::ok();
    FramePool pool(window_, *frames_);
    TRY(pool.reserve(need));  // an overestimate when both edges are in one leaf; the rest goes back
    split_at(lo, pool, hull);
    if (has_end) split_at(hi + 1, pool, hull);
    return ktl::ok();
  }

  // --- traversals over [lo, hi] (inclusive linear bounds) ---
  // A root entry that points back at the root: a recursive slot, whether or not this PageTable
  // installed it (someone else may have, on the same tables). Traversals never follow one.
  [[nodiscard]] inline bool is_self_reference(Entry e) const {
    return F::kind(e, kTop) == paging::EntryKind::Table && F::target(e, kTop) == root_;
  }
  // The slots [first, end) of a level-`level` table (first address `base`) that intersect [lo, hi].
  // The traversals loop over them directly (no visitor lambda per table: under ASan every frame
  // with a captured local costs a fake-stack allocation, which made half the fuzzer's engine time).
  struct Slots {
    usize first = 0;
    usize end = 0;
  };
  [[nodiscard]] static inline Slots slots_in(u32 level, u64 base, u64 lo, u64 hi) {
    u64 span = G::level_size(level) * F::kEntries - 1;  // the table covers [base, base + span]
    u64 a = ktl::max(lo, base);
    u64 b = ktl::min(hi, base + span);
    if (a > b) return {};
    return {G::index(a, level), G::index(b, level) + 1};
  }
  // Whether traversals pass over slot `i` (holding `e`) of a level-`level` table: root slots the
  // engine does not own, and self-references.
  [[nodiscard]] inline bool passed_over(u32 level, usize i, Entry e) const {
    return level == kTop && (!usable_root_slot(static_cast<u32>(i)) || is_self_reference(e));
  }

  // Calls fn(Entry& slot, u64 slot_base, u32 level) for every leaf below table `t` that intersects
  // [lo, hi], in address order. fn returns false to stop; so does for_each_leaf then.
  template <class Fn>
  inline bool for_each_leaf(PhysAddr t, u32 level, u64 base, u64 lo, u64 hi, Fn&& fn) const {
    ktl::Span<Entry> slots = table(t);
    for (auto [i, end] = slots_in(level, base, lo, hi); i < end; ++i) {
      Entry e = load(slots[i]);
      if (passed_over(level, i, e)) continue;
      u64 slot_base = base + i * G::level_size(level);
      switch (F::kind(e, level)) {
        case paging::EntryKind::Empty: break;
        case paging::EntryKind::Leaf:
          if (!fn(slots[i], slot_base, level)) return false;
          break;
        case paging::EntryKind::Table:
          if (!for_each_leaf(F::target(e, level), level - 1, slot_base, lo, hi, fn)) return false;
          break;
      }
    }
    return true;
  }
  // The leaf at `slot_base` of level `level` must lie inside [lo, hi] (split_edges ran).
  static inline void check_inside(u64 slot_base, u32 level, u64 lo, u64 hi, const char* what) {
    ktl::check(slot_base >= lo && slot_base + (G::level_size(level) - 1) <= hi, what);
  }

  [[nodiscard]] inline bool table_empty(PhysAddr t) const {
    for (const Entry& e : table(t)) {
      if (load(e) != 0) return false;
    }
    return true;
  }

  // Returns whether table `t` maps nothing after reclaiming below it.
  inline bool reclaim_in(PhysAddr t, u32 level, u64 base, u64 lo, u64 hi, Detached& detached, Hull& hull) {
    ktl::Span<Entry> slots = table(t);
    const u64 size = G::level_size(level);
    for (auto [i, end] = slots_in(level, base, lo, hi); i < end; ++i) {
      Entry e = load(slots[i]);
      if (passed_over(level, i, e) || F::kind(e, level) != paging::EntryKind::Table) continue;
      u64 slot_base = base + i * size;
      PhysAddr child = F::target(e, level);
      bool empty = reclaim_in(child, level - 1, slot_base, lo, hi, detached, hull);
      bool inside = slot_base >= lo && slot_base + (size - 1) <= hi;
      bool pinned = level == kTop && options_.pinned.contains(static_cast<u32>(i));
      if (empty && inside && !pinned) {
        store(slots[i], 0);
        store(table(child)[0], static_cast<Entry>(detached.head.value()));
        detached.head = child;
        ++detached.count;
        hull.add(slot_base, size);
      }
    }
    return table_empty(t);
  }

  // Frees every table below `t` (not `t` itself) in owned slots.
  inline void free_subtrees(PhysAddr t, u32 level) {
    ktl::Span<Entry> slots = table(t);
    for (usize i = 0; i < F::kEntries; ++i) {
      Entry e = load(slots[i]);
      if (passed_over(level, i, e) || F::kind(e, level) != paging::EntryKind::Table) continue;
      PhysAddr child = F::target(e, level);
      free_subtrees(child, level - 1);
      frames_->free_frame(Frame4K::containing(child));
      ++freed_;
    }
  }

  // --- range planning ---
  // The largest level whose leaf fits at (lin, pa) with `left` bytes to go and whose slot is not
  // occupied by a table. Tables created earlier in the same map_range never occupy an eligible
  // slot (an eligible slot starts at `lin`, and earlier pages lie below it), so planning and
  // installation choose alike.
  [[nodiscard]] inline u32 choose_level(u64 lin, u64 pa, u64 left, HugePages huge) const {
    if (huge == HugePages::Allow) {
      for (u32 k = F::kLargestLeafLevel; k > 0; --k) {
        u64 size = G::level_size(k);
        if (!ktl::is_aligned(lin, size) || !ktl::is_aligned(pa, size) || left < size) continue;
        if (check_level(k).is_err()) continue;
        if (slot_holds_table(k, lin)) continue;
        return k;
      }
    }
    return 0;
  }
  [[nodiscard]] inline bool slot_holds_table(u32 k, u64 lin) const {
    Cursor c = cursor(lin);
    return paging::descend<F>(c, k).kind == paging::EntryKind::Table;
  }
  // Tables map_range will create: the same walk as installation, with the tables it would create
  // remembered per level (addresses only grow, so one remembered block per level suffices).
  [[nodiscard]] inline u64 plan_range(u64 lo, u64 pa, u64 bytes, HugePages huge) const {
    ktl::Array<u64, F::kLevels> created;
    for (u64& c : created) c = ~u64{0};
    u64 count = 0;
    for (u64 done = 0; done < bytes;) {
      u64 lin = lo + done;
      u32 k = choose_level(lin, pa + done, bytes - done, huge);
      Cursor walk = cursor(lin);
      // Empty where the existing tables end (leaves were ruled out by the caller): a new table
      // for every level from there down to k.
      for (u32 level = paging::descend<F>(walk, k).level; level > k; --level) {
        u64 block = ktl::align_down(lin, G::level_size(level));
        u64& c = created[level - 1];
        if (c != block) {
          c = block;
          ++count;
        }
      }
      done += G::level_size(k);
    }
    return count;
  }

  PhysWindow window_;
  FrameAllocator* frames_;
  PhysAddr root_;
  PageTableOptions options_;
  Ownership ownership_;
  u32 recursive_slot_ = kNoSlot;
  u64 allocated_ = 0;
  u64 freed_ = 0;
  bool live_ = true;
};

// The kernel's tables.
using KernelPageTable = PageTable<paging::X86_64>;

}  // namespace mm
