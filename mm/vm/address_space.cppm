// mm.address_space: an address space is one set of page tables (mm.paging), the lock that
// serialises every change to them, and what the CPU needs to switch to it.
//
//   auto kernel = TRY(mm::KernelAddressSpace::adopt_kernel(window, pmm, boot_info.page_table_root,
//                                                          {.recursive_slot =
//                                                          boot::layout::kRecursiveSlot}));
//   TRY(kernel.prepare_kernel_half());                 // once, before the first user space
//   auto user = TRY(mm::KernelAddressSpace::create_user(kernel));
//   user.activate();
//
// Halves: root slots [0, F::kUserRootSlots) translate the user half, the rest the kernel half.
//  * The kernel address space adopts the loader's tables (they are never freed) and may change
//    both halves (the loader's identity map lives in the lower one). Its kernel-half top-level
//    tables are pinned: reclaim never frees them, and prepare_kernel_half() creates all of them
//    up front, so the kernel half's root entries never change afterwards.
//  * A user address space has its own root and user-half tables (private, freed with it), and a
//    copy of the kernel's kernel-half root entries: the kernel half is shared by reference, so a
//    kernel mapping made later is visible in every address space without copying. The user
//    address space cannot change the kernel half (PagingError::Reserved). With a recursive slot,
//    each space gets its own self-reference in the same slot.
//  * On aarch64 the halves have separate roots (TTBR0/TTBR1); the formats say so with
//    kUserRootSlots (all or nothing), and nothing is copied.
//
// Lock order: AddressSpace::lock() before the frame allocator's lock (the engine allocates table
// frames while the caller holds the address-space lock). mm.mapping takes it the same way.
module;

#include <ktl/macros.h>

export module mm.address_space;

import ktl;
import mm.addr;
import mm.arch;
import mm.frames;
import mm.paging;

export namespace mm {

enum class SpaceKind : ktl::u8 { Kernel, User };

struct KernelSpaceOptions {
  // The root slot the loader made the recursive self-reference (validated and reserved), if any.
  ktl::Optional<u32> recursive_slot{};
  GigabytePages gigabytes = GigabytePages::Supported;
};

template <PageTableFormat F>
class AddressSpace {
 public:
  static constexpr u32 kUserSlots = F::kUserRootSlots;
  static constexpr u32 kAllSlots = static_cast<u32>(F::kEntries);

  // Adopts the tables rooted at `root` (the loader's, the CR3 the kernel was entered with).
  // Errors: Unaligned (the root is not a frame's start), OutsideWindow (the root is not in the
  // window), FrameUnreachable (the format cannot point at it), Reserved (the recursive slot is not a
  // self-reference and not empty).
  [[nodiscard]] static ktl::Result<AddressSpace, PagingError> adopt_kernel(PhysWindow window,
                                                                           FrameAllocator& frames,
                                                                           PhysAddr root,
                                                                           KernelSpaceOptions options = {}) {
    PageTableOptions o;
    o.owned = SlotRange::all();
    o.pinned = {kUserSlots, kAllSlots};
    o.gigabytes = options.gigabytes;
    PageTable<F> tables = TRY(PageTable<F>::adopt(window, frames, root, o));
    if (options.recursive_slot) {
      if constexpr (F::kRecursive) {
        TRY(tables.install_recursive_slot(*options.recursive_slot));
      } else {
        return ktl::Err(PagingError::Unsupported);
      }
    }
    return AddressSpace(SpaceKind::Kernel, ktl::move(tables));
  }

  // A new user address space sharing `kernel`'s kernel half. Errors: NoMemory; Reserved if
  // prepare_kernel_half() has not run on `kernel`.
  [[nodiscard]] static ktl::Result<AddressSpace, PagingError> create_user(AddressSpace& kernel)
      EXCLUDES(kernel.lock_) {
    ktl::check(kernel.kind_ == SpaceKind::Kernel,
               "create_user: the template must be the kernel address space");
    ktl::LockGuard guard(kernel.lock_);
    if (kUserSlots < kAllSlots && !kernel.kernel_half_prepared_) return ktl::Err(PagingError::Reserved);
    PageTableOptions o;
    o.owned = {0, kUserSlots};
    o.gigabytes = kernel.tables_.options().gigabytes;
    PageTable<F> tables = TRY(PageTable<F>::create(kernel.tables_.window(), kernel.tables_.frames(), o));
    tables.share_root_slots(kernel.tables_, {kUserSlots, kAllSlots});
    if constexpr (F::kRecursive) {
      if (auto slot = kernel.tables_.recursive_slot()) TRY(tables.install_recursive_slot(*slot));
    }
    return AddressSpace(SpaceKind::User, ktl::move(tables));
  }

  // Moving is for construction only: the source must not be locked or in use.
  AddressSpace(AddressSpace&& o) NO_THREAD_SAFETY_ANALYSIS : lock_(ktl::LockRank::AddressSpace),
                                                             kind_(o.kind_),
                                                             tables_(ktl::move(o.tables_)),
                                                             kernel_half_prepared_(o.kernel_half_prepared_),
                                                             mappings_(o.mappings_.load()) {
    ktl::check(!o.lock_.is_locked(), "AddressSpace moved while locked");
    o.mappings_.store(0);
  }
  AddressSpace& operator=(AddressSpace&&) = delete;
  AddressSpace(const AddressSpace&) = delete;
  AddressSpace& operator=(const AddressSpace&) = delete;

  // Contract: no Mapping of this space is alive, and it is not active (the tables panic if it is).
  inline ~AddressSpace() {
    ktl::check(mappings_.load() == 0, "AddressSpace destroyed while Mappings into it are alive");
  }

  [[nodiscard]] inline SpaceKind kind() const { return kind_; }
  // The root never changes: reading it needs no lock.
  [[nodiscard]] PhysAddr root() const NO_THREAD_SAFETY_ANALYSIS { return tables_.root(); }
  // Loads this address space on this CPU (CR3 / TTBR). FIXME(smp): per-CPU active sets for
  // shootdowns; FIXME(aarch64): TTBR0 for user spaces, ASIDs.
  inline void activate() { arch::activate(root()); }
  [[nodiscard]] inline bool is_active() const { return arch::active_root() == root(); }

  // Creates the top-level tables of the whole kernel half, so its root entries never change and
  // user spaces can copy them once. Idempotent. Errors: NoMemory (nothing changed).
  [[nodiscard]] inline ktl::Result<void, PagingError> prepare_kernel_half() EXCLUDES(lock_) {
    ktl::check(kind_ == SpaceKind::Kernel, "prepare_kernel_half on a user address space");
    ktl::LockGuard guard(lock_);
    TRY(tables_.populate_root_slots({kUserSlots, kAllSlots}));
    kernel_half_prepared_ = true;
    return ktl::ok();
  }

  // The lock that guards the tables; hold it for tables().
  [[nodiscard]] inline ktl::SpinLock& lock() const RETURN_CAPABILITY(lock_) { return lock_; }
  [[nodiscard]] inline PageTable<F>& tables() REQUIRES(lock_) { return tables_; }
  [[nodiscard]] inline const PageTable<F>& tables() const REQUIRES(lock_) { return tables_; }

  // Convenience: one translation under the lock.
  [[nodiscard]] inline ktl::Optional<Translation> translate(VirtAddr v) const EXCLUDES(lock_) {
    ktl::LockGuard guard(lock_);
    return tables_.translate(v);
  }

  // Mapping bookkeeping (mm.mapping): a space must outlive its mappings.
  inline void mapping_created() { mappings_.fetch_add(1); }
  inline void mapping_destroyed() { mappings_.fetch_sub(1); }
  [[nodiscard]] inline u64 live_mappings() const { return mappings_.load(); }

 private:
  inline AddressSpace(SpaceKind kind, PageTable<F>&& tables) : kind_(kind), tables_(ktl::move(tables)) {}

  mutable ktl::SpinLock lock_{ktl::LockRank::AddressSpace};
  SpaceKind kind_;
  PageTable<F> tables_ GUARDED_BY(lock_);
  bool kernel_half_prepared_ GUARDED_BY(lock_) = false;
  ktl::Atomic<u64> mappings_{0};
};

using KernelAddressSpace = AddressSpace<paging::X86_64>;

}  // namespace mm
