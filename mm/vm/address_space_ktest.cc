// mm.address_space and mm.mapping tests as KTEST bodies (host: //mm/vm:address_space_test; kernel:
// test mode). Nothing here activates an address space (in the kernel that would switch CR3 to
// tables that do not map the kernel); activation and flush-order checks are host-only, in
// address_space_test.cc.
//
// The environment: 8 MiB of test memory; a Pmm over the first half hands out data frames (owned by
// AllocatedFrames), an ArenaFrames over the second half holds page tables (with fault injection).
// Every test ends with both back at their starting counts.
#include <ktest/ktest.h>
#include <ktl/macros.h>

import ktl;
import ktest;
import mm.addr;
import mm.arch;
import mm.frames;
import mm.paging;
import mm.paging.testing;
import mm.testing.env;
import mm.address_space;
import mm.mapping;
import mm.pmm;

namespace {

using ktl::u64;
using mm::AddressSpace;
using mm::AllocatedFrames;
using mm::Mapping;
using mm::PageFlags;
using mm::PageTable;
using mm::PagingError;
using mm::PhysAddr;
using mm::Size2M;
using mm::Size4K;
using mm::VirtAddr;
using mm::paging_testing::ArenaFrames;
using mm::test_env::TestMemory;
namespace paging = mm::paging;

constexpr u64 kMiB = 1 << 20;
constexpr u64 kBytes = 16 * kMiB;
constexpr u64 kDataBytes = 12 * kMiB;  // the Pmm's part; the rest holds tables

struct MmEnv {
  TestMemory mem;
  ArenaFrames tables;
  mm::Pmm pmm;
  explicit MmEnv(TestMemory&& m)
      : mem(ktl::move(m)),
        tables(mem.window(), mm::PhysRange::with_size(mem.base() + kDataBytes, kBytes - kDataBytes).value()) {
  }
  [[nodiscard]] ktl::Result<void, mm::PmmError> init() {
    const mm::PhysMapEntry map[] = {
        {mm::PhysRange::with_size(mem.base(), kDataBytes).value(), mm::PhysKind::Usable, mm::NodeId{0}},
        {mm::PhysRange::with_size(mem.base() + kDataBytes, kBytes - kDataBytes).value(),
         mm::PhysKind::PageTables, mm::NodeId{0}},
    };
    return pmm.init(ktl::Span<const mm::PhysMapEntry>(map), mem.window());
  }
};

#define MM_ENV(env)                                      \
  auto env##_memory = KTRY(TestMemory::acquire(kBytes)); \
  MmEnv env(ktl::move(env##_memory));                    \
  KASSERT_OK(env.init())

// Checks at scope end that the data frames and the table frames are back where they started.
class Balance {
 public:
  Balance(ktest::Context& ctx, MmEnv& env)
      : ctx_(ctx), env_(env), data_(env.pmm.free_frame_count()), tables_(env.tables.used_count()) {}
  Balance(const Balance&) = delete;
  Balance& operator=(const Balance&) = delete;
  ~Balance() {
    ctx_.check_eq(env_.pmm.free_frame_count(), data_, "free data frames", "at the start", __FILE__, __LINE__);
    ctx_.check_eq(env_.tables.used_count(), tables_, "table frames in use", "at the start", __FILE__,
                  __LINE__);
  }

 private:
  ktest::Context& ctx_;
  MmEnv& env_;
  u64 data_;
  u64 tables_;
};

// Builds what the loader hands over: an identity map of the first 16 MiB, a direct map of 64 MiB
// at the kernel's base, a kernel image page, and the recursive slot 510.
PageTable<paging::X86_64> build_loader_tables(ktest::Context& ktest_ctx, MmEnv& env, bool& ok) {
  ok = false;
  auto created = PageTable<paging::X86_64>::create(env.mem.window(), env.tables);
  ktl::check(created.is_ok(), "test: no memory for the loader tables");
  PageTable<paging::X86_64> t = created.release_value();
  auto step = [&](ktl::Result<mm::TlbFlush, PagingError>&& r) {
    if (!KEXPECT_OK(r)) return false;
    r.release_value().ignore();
    return true;
  };
  ok = step(t.map_range(VirtAddr::from(0), PhysAddr::from(0), 16 * kMiB, PageFlags::kernel_rw(),
                        mm::HugePages::Allow)) &&
       step(t.map_range(VirtAddr::from(0xffff'8000'0000'0000ull), PhysAddr::from(0), 64 * kMiB,
                        PageFlags::kernel_rw().with(mm::Scope::Global), mm::HugePages::Allow)) &&
       step(t.map_range(VirtAddr::from(0xffff'ffff'8000'0000ull), PhysAddr::from(0x20'0000), 0x1000,
                        PageFlags::kernel_rx().with(mm::Scope::Global), mm::HugePages::Allow)) &&
       KEXPECT_OK(t.install_recursive_slot(510));
  return t;
}

KTEST(AddressSpace, AdoptsTheLoaderTables) {
  MM_ENV(env);
  Balance balance(ktest_ctx, env);
  bool ok = false;
  auto loader = build_loader_tables(ktest_ctx, env, ok);
  KASSERT(ok);
  {
    auto kernel = KTRY(mm::KernelAddressSpace::adopt_kernel(env.mem.window(), env.tables, loader.root(),
                                                            {.recursive_slot = 510}));
    KEXPECT_EQ(kernel.kind(), mm::SpaceKind::Kernel);
    KEXPECT_EQ(kernel.root(), loader.root());
    // What the loader mapped is there.
    auto direct = KTRY(kernel.translate(VirtAddr::from(0xffff'8000'0123'4567ull)));
    KEXPECT_EQ(direct.phys, PhysAddr::from(0x123'4567));
    KEXPECT(direct.flags.global());
    KEXPECT_EQ(KTRY(kernel.translate(VirtAddr::from(0xffff'ffff'8000'0010ull))).phys,
               PhysAddr::from(0x20'0010));
    // The recursive window is reserved.
    {
      ktl::LockGuard guard(kernel.lock());
      auto r = kernel.tables().map(mm::Page<Size4K>::containing(VirtAddr::from(0xffff'ff00'0000'1000ull)),
                                   mm::Frame4K::containing(PhysAddr::from(0x1000)), PageFlags());
      KEXPECT(r.is_err() && r.error() == PagingError::Reserved);
      // New kernel mappings go into the adopted tables (the loader's view sees them too).
      auto t = kernel.tables().map(mm::Page<Size4K>::containing(VirtAddr::from(0xffff'c000'0000'0000ull)),
                                   mm::Frame4K::containing(PhysAddr::from(0x5000)), PageFlags::kernel_rw());
      KASSERT_OK(t);
      t.release_value().ignore();
    }
    KEXPECT_EQ(KTRY(loader.translate(VirtAddr::from(0xffff'c000'0000'0000ull))).frame,
               PhysAddr::from(0x5000));
    ktl::LockGuard guard(kernel.lock());
    kernel.tables()
        .unmap_range(VirtAddr::from(0xffff'c000'0000'0000ull), 0x1000)
        .release_value()
        .flush.ignore();
  }
  // The adopted tables survive the address space object; the loader's builder frees them here.
}

KTEST(AddressSpace, AdoptionValidatesTheRecursiveSlot) {
  MM_ENV(env);
  Balance balance(ktest_ctx, env);
  auto loader = KTRY(PageTable<paging::X86_64>::create(env.mem.window(), env.tables));
  // Slot 510 holds an ordinary table: not a self-reference.
  loader
      .map(mm::Page<Size4K>::containing(VirtAddr::from(0xffff'ff00'0000'0000ull)),
           mm::Frame4K::containing(PhysAddr::from(0)), PageFlags())
      .release_value()
      .ignore();
  auto bad = mm::KernelAddressSpace::adopt_kernel(env.mem.window(), env.tables, loader.root(),
                                                  {.recursive_slot = 510});
  KEXPECT(bad.is_err() && bad.error() == PagingError::Reserved);
  auto outside = mm::KernelAddressSpace::adopt_kernel(env.mem.window(), env.tables, PhysAddr::from(0x1000));
  KEXPECT(outside.is_err() && outside.error() == PagingError::OutsideWindow);
  // An empty slot is made the self-reference.
  auto ok = KTRY(mm::KernelAddressSpace::adopt_kernel(env.mem.window(), env.tables, loader.root(),
                                                      {.recursive_slot = 509}));
  KEXPECT_EQ(KTRY(ok.translate(VirtAddr::from(0xffff'fe80'0000'0000ull | (509ull << 30) | (509ull << 21) |
                                              (509ull << 12))))
                 .frame,
             loader.root());
}

template <class F>
void user_spaces_share_the_kernel_half(ktest::Context& ktest_ctx) {
  using G = paging::Geometry<F>;
  MM_ENV(env);
  Balance balance(ktest_ctx, env);
  auto loader = KTRY(PageTable<F>::create(env.mem.window(), env.tables));
  constexpr ktl::u32 kSlot = F::kEntries - 2;
  KTRY(loader.install_recursive_slot(kSlot));
  auto kernel = KTRY(
      AddressSpace<F>::adopt_kernel(env.mem.window(), env.tables, loader.root(), {.recursive_slot = kSlot}));
  VirtAddr kernel_va = G::virt(u64{F::kUserRootSlots} << G::shift(G::kTop)) + 0x40'0000;
  VirtAddr user_va = VirtAddr::from(0x40'0000);

  auto early = AddressSpace<F>::create_user(kernel);
  KEXPECT(early.is_err() && early.error() == PagingError::Reserved);  // prepare_kernel_half first
  KTRY(kernel.prepare_kernel_half());
  KTRY(kernel.prepare_kernel_half());  // idempotent
  u64 tables_before_user = env.tables.used_count();
  {
    auto user = KTRY(AddressSpace<F>::create_user(kernel));
    KEXPECT_EQ(user.kind(), mm::SpaceKind::User);
    KEXPECT_NE(user.root(), kernel.root());
    KEXPECT_EQ(env.tables.used_count(), tables_before_user + 1);  // just the root
    {
      // A kernel mapping made now shows up in the user space.
      ktl::LockGuard guard(kernel.lock());
      kernel.tables()
          .map(mm::Page<Size4K>::containing(kernel_va), mm::Frame4K::containing(PhysAddr::from(0x7000)),
               PageFlags::kernel_rw())
          .release_value()
          .ignore();
    }
    KEXPECT_EQ(KTRY(user.translate(kernel_va)).frame, PhysAddr::from(0x7000));
    {
      // The user half is private; the kernel half cannot be changed through the user space.
      ktl::LockGuard guard(user.lock());
      user.tables()
          .map(mm::Page<Size4K>::containing(user_va), mm::Frame4K::containing(PhysAddr::from(0x9000)),
               PageFlags::user_rw())
          .release_value()
          .ignore();
      auto r = user.tables().map(mm::Page<Size4K>::containing(kernel_va + 0x1000),
                                 mm::Frame4K::containing(PhysAddr::from(0)), PageFlags());
      KEXPECT(r.is_err() && r.error() == PagingError::Reserved);
    }
    KEXPECT_EQ(KTRY(user.translate(user_va)).flags, F::effective(PageFlags::user_rw()));
    KEXPECT(!kernel.translate(user_va).has_value());
    // Each space's recursive window shows its own root.
    auto view = KTRY(mm::RecursiveView<F>::at_slot(kSlot));
    KEXPECT_EQ(KTRY(user.translate(view.table_address(G::kTop, user_va))).frame, user.root());
    KEXPECT_EQ(KTRY(kernel.translate(view.table_address(G::kTop, user_va))).frame, kernel.root());
    ktl::LockGuard guard(user.lock());
    user.tables().unmap_range(user_va, 0x1000).release_value().flush.ignore();
  }
  // The user space freed its own tables only; the kernel keeps the tables its mapping needed
  // below the pinned top-level one.
  KEXPECT_EQ(env.tables.used_count(), tables_before_user + F::kLevels - 2);
  KEXPECT_EQ(KTRY(kernel.translate(kernel_va)).frame, PhysAddr::from(0x7000));
  ktl::LockGuard guard(kernel.lock());
  kernel.tables().unmap_range(kernel_va, 0x1000).release_value().flush.ignore();
}
KTEST(AddressSpace_x86_64, UserSpacesShareTheKernelHalf) {
  user_spaces_share_the_kernel_half<paging::X86_64>(ktest_ctx);
}
KTEST(AddressSpace_x86_32, UserSpacesShareTheKernelHalf) {
  user_spaces_share_the_kernel_half<paging::X86_32>(ktest_ctx);
}

// In the kernel the PMM is the page tables' frame allocator: the engine over it, leak-checked.
KTEST(Paging, TablesFromThePmm) {
  MM_ENV(env);
  Balance balance(ktest_ctx, env);
  u64 free = env.pmm.free_frame_count();
  {
    auto pt = KTRY(PageTable<paging::X86_64>::create(env.mem.window(), env.pmm));
    VirtAddr va = VirtAddr::from(0xffff'c000'0000'0000ull - 0x3000);
    u64 bytes = 2 * Size2M::bytes + 0x6000;
    pt.map_range(va, PhysAddr::from(0x1000'0000 - 0x3000), bytes, PageFlags::kernel_rw(),
                 mm::HugePages::Allow)
        .release_value()
        .ignore();
    KEXPECT_EQ(env.pmm.free_frame_count(), free - pt.table_frames());
    KEXPECT_EQ(KTRY(pt.translate(va + 0x3000)).page_size, Size2M::bytes);
    KEXPECT_EQ(KTRY(pt.translate(va + bytes - 1)).phys, PhysAddr::from(0x1000'0000 - 0x3000 + bytes - 1));
    pt.unmap_range(va, bytes).release_value().flush.ignore();
    u64 below_root = pt.table_frames() - 1;
    KEXPECT_LE(3u, below_root);
    auto reclaimed = KTRY(pt.reclaim_empty_tables(VirtAddr::from(0xffff'8000'0000'0000ull), u64{1} << 47));
    KEXPECT_EQ(reclaimed.tables, below_root);
    KEXPECT_EQ(env.pmm.free_frame_count(), free - 1);  // the root
  }
  KEXPECT_EQ(env.pmm.free_frame_count(), free);
}

// --- Mapping ---------------------------------------------------------------------------------------------
template <class F>
struct Spaces {
  PageTable<F> loader;
  AddressSpace<F> kernel;
};
template <class F>
ktl::Optional<Spaces<F>> kernel_space(MmEnv& env) {
  auto loader = PageTable<F>::create(env.mem.window(), env.tables);
  if (loader.is_err()) return ktl::nullopt;
  PageTable<F> l = loader.release_value();
  auto kernel = AddressSpace<F>::adopt_kernel(env.mem.window(), env.tables, l.root());
  if (kernel.is_err()) return ktl::nullopt;
  return Spaces<F>{ktl::move(l), kernel.release_value()};
}

template <class F>
VirtAddr mapping_va() {
  return VirtAddr::from(ktl::is_same<F, paging::Aarch64Upper> ? 0xffff'8000'4000'0000ull : 0x4000'0000ull);
}

template <class F>
void mapping_owns_its_frames(ktest::Context& ktest_ctx) {
  MM_ENV(env);
  Balance balance(ktest_ctx, env);
  auto spaces = KTRY(kernel_space<F>(env));
  VirtAddr va = mapping_va<F>();
  u64 free_before = env.pmm.free_frame_count();
  {
    AllocatedFrames frames = KTRY(env.pmm.alloc_contiguous(16, Size4K::bytes));
    PhysAddr phys = frames.start();
    auto m = KTRY(Mapping<F>::create(spaces.kernel, va, ktl::move(frames), PageFlags::kernel_rw()));
    KEXPECT(frames.empty());  // the Mapping owns them now
    KEXPECT_EQ(env.pmm.free_frame_count(), free_before - 16);
    KEXPECT_EQ(m.start(), va);
    KEXPECT_EQ(m.size(), 16 * Size4K::bytes);
    KEXPECT_EQ(spaces.kernel.live_mappings(), 1u);
    for (u64 i = 0; i < 16; ++i) {
      auto t = KTRY(spaces.kernel.translate(va + i * Size4K::bytes + 8));
      KEXPECT_EQ(t.phys, phys + i * Size4K::bytes + 8);
      KEXPECT_EQ(t.flags, F::effective(PageFlags::kernel_rw()));
    }
    // Views write the mapped frames (checked through the physical window independently).
    ktl::Span<u64> words = m.template span<u64>();
    KEXPECT_EQ(words.size(), 16 * Size4K::bytes / 8);
    for (u64 i = 0; i < words.size(); ++i) words[i] = i * 0x9e37'79b9'7f4a'7c15ull;
    KEXPECT_EQ(env.mem.window().template as<u64>(phys + 8 * 1000), 1000 * 0x9e37'79b9'7f4a'7c15ull);
    struct Header {
      ktl::u32 magic;
      ktl::u32 count;
    };
    m.template as<Header>(Size4K::bytes).magic = 0xfe44'17e0;
    KEXPECT_EQ(env.mem.window().template as<ktl::u32>(phys + Size4K::bytes), 0xfe44'17e0u);
    KEXPECT_EQ(m.template as<const Header>(Size4K::bytes).magic, 0xfe44'17e0u);
  }
  // Destroyed: unmapped and the frames are back.
  KEXPECT(!spaces.kernel.translate(va).has_value());
  KEXPECT_EQ(env.pmm.free_frame_count(), free_before);
  KEXPECT_EQ(spaces.kernel.live_mappings(), 0u);
}
KTEST(Mapping_x86_64, OwnsItsFrames) { mapping_owns_its_frames<paging::X86_64>(ktest_ctx); }
KTEST(Mapping_x86_32, OwnsItsFrames) { mapping_owns_its_frames<paging::X86_32>(ktest_ctx); }
KTEST(Mapping_aarch64, OwnsItsFrames) { mapping_owns_its_frames<paging::Aarch64Lower>(ktest_ctx); }

KTEST(Mapping, UsesHugePagesWhenAligned) {
  MM_ENV(env);
  Balance balance(ktest_ctx, env);
  auto spaces = KTRY(kernel_space<paging::X86_64>(env));
  AllocatedFrames frames = KTRY(env.pmm.alloc_frame_of<Size2M>());
  {
    auto m = KTRY(mm::KernelMapping::create(spaces.kernel, VirtAddr::from(0xffff'c000'0020'0000ull),
                                            ktl::move(frames), PageFlags::kernel_rw()));
    KEXPECT_EQ(KTRY(spaces.kernel.translate(m.start() + 0x1234)).page_size, Size2M::bytes);
  }
  AllocatedFrames small = KTRY(env.pmm.alloc_frame_of<Size2M>());
  auto m = KTRY(mm::KernelMapping::create(spaces.kernel, VirtAddr::from(0xffff'c000'0020'0000ull),
                                          ktl::move(small), PageFlags::kernel_rw(), mm::HugePages::Deny));
  KEXPECT_EQ(KTRY(spaces.kernel.translate(m.start() + 0x1234)).page_size, Size4K::bytes);
}

KTEST(Mapping, MoveTransfersOwnership) {
  MM_ENV(env);
  Balance balance(ktest_ctx, env);
  auto spaces = KTRY(kernel_space<paging::X86_64>(env));
  VirtAddr a = VirtAddr::from(0x4000'0000), b = VirtAddr::from(0x5000'0000);
  auto first = KTRY(mm::KernelMapping::create(spaces.kernel, a, KTRY(env.pmm.alloc_contiguous(2, 4096)),
                                              PageFlags::kernel_rw()));
  mm::KernelMapping moved(ktl::move(first));
  KEXPECT(first.empty());
  KEXPECT(!moved.empty());
  KEXPECT_EQ(spaces.kernel.live_mappings(), 1u);
  auto second = KTRY(mm::KernelMapping::create(spaces.kernel, b, KTRY(env.pmm.alloc_contiguous(3, 4096)),
                                               PageFlags::kernel_rw()));
  u64 free = env.pmm.free_frame_count();
  moved = ktl::move(second);  // releases the first mapping
  KEXPECT_EQ(env.pmm.free_frame_count(), free + 2);
  KEXPECT(!spaces.kernel.translate(a).has_value());
  KEXPECT(spaces.kernel.translate(b).has_value());
  KEXPECT_EQ(spaces.kernel.live_mappings(), 1u);
  moved.reset();
  KEXPECT(moved.empty());
  KEXPECT(!spaces.kernel.translate(b).has_value());
  KEXPECT_EQ(spaces.kernel.live_mappings(), 0u);
}

KTEST(Mapping, FailureLeavesTheFramesWithTheCaller) {
  MM_ENV(env);
  Balance balance(ktest_ctx, env);
  auto spaces = KTRY(kernel_space<paging::X86_64>(env));
  VirtAddr va = VirtAddr::from(0x4000'0000);
  auto m = KTRY(mm::KernelMapping::create(spaces.kernel, va, KTRY(env.pmm.alloc_contiguous(4, 4096)),
                                          PageFlags::kernel_rw()));
  AllocatedFrames frames = KTRY(env.pmm.alloc_contiguous(4, 4096));
  auto clash =
      mm::KernelMapping::create(spaces.kernel, va + 0x2000, ktl::move(frames), PageFlags::kernel_rw());
  KEXPECT(clash.is_err() && clash.error() == PagingError::AlreadyMapped);
  KEXPECT_EQ(frames.count(), 4u);  // still ours
  // No memory for the tables a far-away mapping needs: nothing mapped, frames still ours.
  env.tables.fail_after(0);
  auto far = mm::KernelMapping::create(spaces.kernel, VirtAddr::from(0xffff'c000'0000'0000ull),
                                       ktl::move(frames), PageFlags::kernel_rw());
  env.tables.fail_never();
  KEXPECT(far.is_err() && far.error() == PagingError::NoMemory);
  KEXPECT_EQ(frames.count(), 4u);
  KEXPECT(!spaces.kernel.translate(VirtAddr::from(0xffff'c000'0000'0000ull)).has_value());
  KEXPECT_EQ(spaces.kernel.live_mappings(), 1u);
}

KTEST(Mapping, NoFramesIsItsOwnError) {
  MM_ENV(env);
  Balance balance(ktest_ctx, env);
  auto spaces = KTRY(kernel_space<paging::X86_64>(env));
  // An empty AllocatedFrames: nothing to map. Its own error (it was Unaligned), distinct from a
  // misaligned start, which map_range reports as Unaligned.
  auto none = mm::KernelMapping::create(spaces.kernel, VirtAddr::from(0x4000'0000), AllocatedFrames(),
                                        PageFlags::kernel_rw());
  KEXPECT(none.is_err() && none.error() == PagingError::NoFrames);
  auto misaligned =
      mm::KernelMapping::create(spaces.kernel, VirtAddr::from(0x4000'0800),
                                KTRY(env.pmm.alloc_contiguous(1, 4096)), PageFlags::kernel_rw());
  KEXPECT(misaligned.is_err() && misaligned.error() == PagingError::Unaligned);
  KEXPECT_EQ(spaces.kernel.live_mappings(), 0u);
}

KTEST(Mapping, ProtectChangesTheWholeRange) {
  MM_ENV(env);
  Balance balance(ktest_ctx, env);
  auto spaces = KTRY(kernel_space<paging::X86_64>(env));
  auto m = KTRY(mm::KernelMapping::create(spaces.kernel, VirtAddr::from(0x4000'0000),
                                          KTRY(env.pmm.alloc_contiguous(5, 4096)), PageFlags::kernel_rw()));
  m.as<u64>(0) = 7;
  KTRY(m.protect(PageFlags::kernel_ro()));
  KEXPECT_EQ(m.flags(), PageFlags::kernel_ro());
  for (u64 i = 0; i < 5; ++i) {
    KEXPECT_EQ(KTRY(spaces.kernel.translate(m.start() + i * 4096)).flags, PageFlags::kernel_ro());
  }
  KEXPECT_EQ(m.as<const u64>(0), 7u);  // reading is still fine
}

}  // namespace
