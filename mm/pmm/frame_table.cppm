// mm.frame_table: one descriptor per 4 KiB frame of a physical window (Linux's struct page, kept
// small): who owns the frame (kind and owner object), a reference count, flags and intrusive list
// links. The slab finds the slab of a pointer through it (kfree); the page cache, copy-on-write
// and reclaim will keep their per-frame state in the same descriptors.
//
//   FrameTable table;               // one per PMM, beside it (kernel.memory, HostHeap)
//   TRY(table.init(pmm, window));
//   TRY(table.set_owner(slab_frames.range(), FrameOwner::Slab, addr(slab_desc)));
//   auto* s = reinterpret_cast<SlabDesc*>(table.owner_of(pointer, FrameOwner::Slab));
//
// Every user of the frames of one PMM shares its table (the slab allocator now; the page cache,
// anonymous memory and reclaim next), each owning the descriptors of the frames it owns. A user on
// a hot path keeps a copy of `owners()`, the table's read-only lookup (fixed once init returned),
// so that finding an owner costs no load of the table's address.
//
// Storage: a root array (one word per 512 KiB of the window, allocated at init) of leaves, each a
// frame of kLeafEntries descriptors, allocated from the PMM the first time a frame it covers gets
// an owner and freed when the table goes: the cost is paid only where frames are owned.
// kDescBytes (32) per frame under a leaf, 8 bytes per 512 KiB for the root.
//
// Concurrency: owner_of is lock-free (it may race with set_owner/clear_owner of other frames, and
// sees a frame's owner once set_owner returned). set_owner / clear_owner of one frame are
// serialized by its owner (the slab: the cache lock); leaves are installed with a CAS, so callers
// for different frames need no common lock. The reference count is atomic; flags and links belong
// to the owner kind and follow its locking. Takes pmm.arena (leaf allocation) and nothing else.
module;

#include <ktl/macros.h>

export module mm.frame_table;

import ktl;
import mm.addr;
import mm.arch;
import mm.pmm;

export namespace mm {

// Who owns a frame. Each new owner kind (page cache, anonymous memory, page tables) adds itself.
enum class FrameOwner : ktl::u8 { None, Slab, PageCache };
[[nodiscard]] constexpr const char* to_string(FrameOwner o) {
  switch (o) {
    case FrameOwner::None: return "none";
    case FrameOwner::Slab: return "slab";
    case FrameOwner::PageCache: return "page cache";
  }
  return "unknown frame owner";
}

struct FrameDesc {
  ktl::uptr owner = 0;        // the owner's object (Slab: its SlabDesc; PageCache: its entry); 0: none
  FrameDesc* next = nullptr;  // intrusive list links, the owner kind's (LRU, reclaim lists)
  FrameDesc* prev = nullptr;
  ktl::u32 refs = 0;  // references (atomic: ref / unref)
  FrameOwner kind = FrameOwner::None;
  ktl::u16 flags = 0;  // the owner kind's (dirty, referenced, ...)

  // The kind, read and written atomically (owner_of races with set_owner / clear_owner).
  [[nodiscard]] inline FrameOwner load_kind() const {
    KTL_UNSAFE_BUFFER_BEGIN  // FrameOwner is a u8 enum: its storage is a u8
    return static_cast<FrameOwner>(
        __atomic_load_n(reinterpret_cast<const ktl::u8*>(&kind), __ATOMIC_RELAXED));
    KTL_UNSAFE_BUFFER_END
  }
  inline void store_kind(FrameOwner k) {
    KTL_UNSAFE_BUFFER_BEGIN  // FrameOwner is a u8 enum: its storage is a u8
    __atomic_store_n(reinterpret_cast<ktl::u8*>(&kind), ktl::to_underlying(k), __ATOMIC_RELAXED);
    KTL_UNSAFE_BUFFER_END
  }
  // Atomic reference counting; unref returns the count left (panics below zero).
  inline ktl::u32 ref() { return __atomic_add_fetch(&refs, 1, __ATOMIC_RELAXED); }
  inline ktl::u32 unref() {
    ktl::u32 left = __atomic_sub_fetch(&refs, 1, __ATOMIC_ACQ_REL);
    ktl::check(left != ~ktl::u32{0}, "frame table: reference count below zero");
    return left;
  }
};
inline constexpr u64 kDescBytes = 32;
static_assert(sizeof(FrameDesc) == kDescBytes, "a frame descriptor is 32 bytes");

// The lookup half of a FrameTable: where the window starts, its size, and the root. Trivially
// copyable; valid while its table lives and is not reset.
class FrameOwners {
 public:
  // The owner of the frame holding `p` if it is of `kind`, else 0 (also for addresses outside
  // the window and frames without a leaf). The slab's kfree path: two dependent loads.
  [[nodiscard]] inline ktl::uptr owner_of(const void* p, FrameOwner kind) const {
    u64 offset = ktl::address_of(p) - view_;
    if (offset >= size_) return 0;
    u64 frame = offset / kPageSize;
    // offset < size_ bounds the root index (the root covers the whole window): no second check.
    KTL_UNSAFE_BUFFER_BEGIN  // frame / kLeafEntries < the root's length because offset < size_
    auto* leaf =
        reinterpret_cast<const FrameDesc*>(__atomic_load_n(&root_[frame / kLeafEntries], __ATOMIC_ACQUIRE));
    if (leaf == nullptr) return 0;
    const FrameDesc* d = leaf + frame % kLeafEntries;  // < kLeafEntries, the leaf's length
    KTL_UNSAFE_BUFFER_END
    ktl::uptr owner = __atomic_load_n(&d->owner, __ATOMIC_ACQUIRE);
    return d->load_kind() == kind ? owner : 0;
  }

 private:
  friend class FrameTable;
  static constexpr u64 kLeafEntries = kPageSize / kDescBytes;
  ktl::uptr view_ = 0;  // where the window starts, and its size: owner_of's bounds check
  u64 size_ = 0;
  const ktl::uptr* root_ = nullptr;  // the table's root (leaf addresses, 0: none yet), read atomically
};

class FrameTable {
 public:
  static constexpr u64 kLeafEntries = FrameOwners::kLeafEntries;  // 128: one leaf per 512 KiB

  FrameTable() = default;
  FrameTable(const FrameTable&) = delete;
  FrameTable& operator=(const FrameTable&) = delete;
  // The leaves and the root go back to the PMM.
  inline ~FrameTable() { reset(); }

  // A table over every frame of `window`; the root comes from `pmm` now, leaves later. Errors:
  // the PMM's (OutOfMemory, NotInitialized).
  [[nodiscard]] inline ktl::Result<void, PmmError> init(Pmm& pmm, PhysWindow window) {
    ktl::check(root_ == nullptr, "FrameTable::init: called twice");
    u64 root_entries = (window.size() + kLeafEntries * kPageSize - 1) / (kLeafEntries * kPageSize);
    u64 bytes = ktl::align_up<u64>(root_entries * sizeof(ktl::uptr), kPageSize);
    auto frames = pmm.alloc_contiguous(bytes / kPageSize, kPageSize);
    if (frames.is_err()) return ktl::Err(frames.error());
    root_frames_ = frames.release_value();
    ktl::Bytes root = window.bytes(root_frames_.start(), bytes);
    ktl::fill_bytes(root, 0);
    pmm_ = &pmm;
    window_ = window;
    owners_.view_ = ktl::address_of(window.bytes(window.base(), 0).data());
    owners_.size_ = window.size();
    KTL_UNSAFE_BUFFER_BEGIN  // the root frame, zeroed above, holds root_entries words
    root_ = reinterpret_cast<ktl::uptr*>(root.data());
    KTL_UNSAFE_BUFFER_END
    owners_.root_ = root_;
    root_entries_ = root_entries;
    return ktl::ok();
  }
  // Frees the leaves and the root; the table is empty afterwards (owners are forgotten).
  void reset();

  [[nodiscard]] inline bool initialized() const { return root_ != nullptr; }
  // The PMM and window the table was made for.
  [[nodiscard]] inline Pmm& pmm() const { return *pmm_; }
  [[nodiscard]] inline PhysWindow window() const { return window_; }
  // The read-only lookup, for users that keep a copy (valid until reset or destruction).
  [[nodiscard]] inline FrameOwners owners() const { return owners_; }
  // The owner of the frame holding `p` if it is of `kind`, else 0 (FrameOwners::owner_of).
  [[nodiscard]] inline ktl::uptr owner_of(const void* p, FrameOwner kind) const {
    return owners_.owner_of(p, kind);
  }
  // The descriptor of `frame`, or null (outside the window, or no frame under its leaf ever had an
  // owner).
  [[nodiscard]] inline FrameDesc* find(PhysAddr frame) const {
    if (!window_.covers(frame, kPageSize)) return nullptr;
    return leaf_desc((frame - window_.base()) / kPageSize);
  }

  // Every frame of `frames` (inside the window, without an owner) gets `kind` and `owner`
  // (non-zero) and one reference (the owner's). All or nothing: errors
  // (the PMM's, for a leaf) change no descriptor.
  [[nodiscard]] ktl::Result<void, PmmError> set_owner(PhysRange frames, FrameOwner kind, ktl::uptr owner);
  // Every frame of `frames` goes back to no owner (refs, flags and links cleared).
  void clear_owner(PhysRange frames);

  // Frames holding the table (root and leaves).
  [[nodiscard]] inline u64 metadata_frames() const {
    return root_frames_.count() + leaves_.load(ktl::MemoryOrder::Relaxed);
  }

 private:
  // (Raw __atomic builtins: ktl::Atomic's members are not inline across the module boundary.)
  [[nodiscard]] inline FrameDesc* leaf_desc(u64 frame) const {
    if (frame / kLeafEntries >= root_entries_) return nullptr;
    KTL_UNSAFE_BUFFER_BEGIN  // frame / kLeafEntries < root_entries_, the root's length
    auto* leaf =
        reinterpret_cast<FrameDesc*>(__atomic_load_n(&root_[frame / kLeafEntries], __ATOMIC_ACQUIRE));
    if (leaf == nullptr) return nullptr;
    return leaf + frame % kLeafEntries;  // < kLeafEntries, the leaf's length
    KTL_UNSAFE_BUFFER_END
  }
  [[nodiscard]] u64 first_frame(PhysRange frames) const;

  Pmm* pmm_ = nullptr;
  PhysWindow window_;
  FrameOwners owners_;
  AllocatedFrames root_frames_;
  ktl::uptr* root_ = nullptr;  // root_entries_ leaf addresses (0: none yet), accessed atomically
  u64 root_entries_ = 0;
  ktl::Atomic<u64> leaves_{0};
};

// --- implementation ----------------------------------------------------------------------------------
void FrameTable::reset() {
  if (root_ == nullptr) return;
  for (u64 i = 0; i < root_entries_; ++i) {
    FrameDesc* leaf = leaf_desc(i * kLeafEntries);
    if (leaf == nullptr) continue;
    auto r = pmm_->free_frames(Frame4K::from_start(window_.phys_of(leaf).value()).value(), 1);
    ktl::check_ok(r, "frame table: a leaf frame was freed behind the table's back");
  }
  root_ = nullptr;
  owners_ = FrameOwners();
  root_entries_ = 0;
  root_frames_.reset();
  leaves_.store(0);
}

u64 FrameTable::first_frame(PhysRange frames) const {
  ktl::check(root_ != nullptr && window_.covers(frames.start(), frames.size()) &&
                 frames.start().is_aligned(kPageSize) && ktl::is_aligned<u64>(frames.size(), kPageSize),
             "frame table: frames outside the window or not page aligned");
  return (frames.start() - window_.base()) / kPageSize;
}

ktl::Result<void, PmmError> FrameTable::set_owner(PhysRange frames, FrameOwner kind, ktl::uptr owner) {
  ktl::check(kind != FrameOwner::None && owner != 0, "frame table: an owner needs a kind and an object");
  u64 first = first_frame(frames);
  u64 end = first + frames.size() / kPageSize;
  // Every leaf first, so that a failure changes no descriptor.
  for (u64 f = first; f < end; f = (f / kLeafEntries + 1) * kLeafEntries) {
    if (leaf_desc(f) != nullptr) continue;
    auto frame = TRY(pmm_->alloc_page());
    ktl::Bytes leaf = window_.bytes(frame.start(), kPageSize);
    ktl::fill_bytes(leaf, 0);
    ktl::uptr expected = 0;
    KTL_UNSAFE_BUFFER_BEGIN  // f / kLeafEntries < root_entries_: first_frame checked the window
    bool won = __atomic_compare_exchange_n(&root_[f / kLeafEntries], &expected, ktl::address_of(leaf.data()),
                                           false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
    KTL_UNSAFE_BUFFER_END
    if (won) {
      (void)frame.release();  // the table's from now on (freed by reset())
      leaves_.fetch_add(1, ktl::MemoryOrder::Relaxed);
    }
  }
  for (u64 f = first; f < end; ++f) {
    FrameDesc* d = leaf_desc(f);
    ktl::check(d->load_kind() == FrameOwner::None, "frame table: the frame has an owner already");
    d->refs = 1;
    d->store_kind(kind);
    __atomic_store_n(&d->owner, owner, __ATOMIC_RELEASE);
  }
  return ktl::ok();
}

void FrameTable::clear_owner(PhysRange frames) {
  u64 first = first_frame(frames);
  for (u64 f = first; f < first + frames.size() / kPageSize; ++f) {
    FrameDesc* d = leaf_desc(f);
    ktl::check(d != nullptr, "frame table: clearing a frame that never had an owner");
    __atomic_store_n(&d->owner, ktl::uptr{0}, __ATOMIC_RELEASE);
    d->store_kind(FrameOwner::None);
    d->next = nullptr;
    d->prev = nullptr;
    d->refs = 0;
    d->flags = 0;
  }
}

}  // namespace mm
