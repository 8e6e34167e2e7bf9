// Host tests of the hand-off page tables: built into simulated memory from an OVMF-like map, then
// walked the way the MMU does (effective permissions: W and U are ANDed, NX is ORed down the levels).
#include <gtest/gtest.h>

#include <cstdint>
#include <map>
#include <vector>

import ktl;
import boot.info;
import loader.x86_64_tables;
import mm.paging.x86;

namespace {

using boot::MemoryKind;
using boot::MemoryMapEntry;
using loader::x86_64::Access;
namespace x = loader::x86_64;
namespace pte = mm::paging::x86;

constexpr ktl::u64 K4 = 4096, M2 = 2ull << 20, G1 = 1ull << 30;
constexpr ktl::u64 kDirect = boot::layout::kDirectMapBase;
constexpr ktl::u64 kKernel = boot::layout::kKernelBase;
constexpr ktl::u64 kPoolBase = 0x7000'0000;  // where the simulated table frames "live"

class SimFrames final : public x::FrameSource {
 public:
  explicit SimFrames(size_t limit = 4096) : limit_(limit) {}
  ktl::u64 allocate_zeroed_frame() override {
    if (frames_.size() == limit_) return 0;
    ktl::u64 phys = kPoolBase + frames_.size() * K4;
    frames_[phys] = std::vector<ktl::u64>(512, 0);
    return phys;
  }
  ktl::Span<ktl::u64> table(ktl::u64 phys) override {
    auto it = frames_.find(phys);
    EXPECT_NE(it, frames_.end()) << "table() of a frame never handed out: " << std::hex << phys;
    return ktl::Span<ktl::u64>(it->second).first(512);
  }
  [[nodiscard]] bool owns(ktl::u64 phys) const { return frames_.count(phys) != 0; }
  [[nodiscard]] size_t used() const { return frames_.size(); }

 private:
  size_t limit_;
  std::map<ktl::u64, std::vector<ktl::u64>> frames_;
};

struct Leaf {
  ktl::u64 va, pa, size;
  bool writable, executable, global;
  ktl::u32 pat_index;
};

ktl::u64 canonical(ktl::u64 va) { return (va & (1ull << 47)) ? (va | 0xffff'0000'0000'0000ull) : va; }

// All leaf mappings except through `skip_slot` (the recursive slot).
std::vector<Leaf> walk(SimFrames& f, ktl::u64 root, ktl::u32 skip_slot) {
  std::vector<Leaf> out;
  auto rec = [&](auto& self, ktl::u64 table, int level, ktl::u64 va_base, bool w, bool nx) -> void {
    auto t = f.table(table);
    for (ktl::u64 i = 0; i < 512; ++i) {
      ktl::u64 e = t[i];
      if (!(e & pte::kPresent)) continue;
      if (level == 4 && i == skip_slot) continue;
      ktl::u64 shift = 12 + 9 * static_cast<ktl::u64>(level - 1);
      ktl::u64 va = va_base + (i << shift);
      bool ew = w && (e & pte::kWritable), enx = nx || (e & pte::kNoExecute);
      bool leaf = level == 1 || ((level == 2 || level == 3) && (e & pte::kPageSize));
      if (!leaf) {
        self(self, e & pte::kAddrMask, level - 1, va, ew, enx);
        continue;
      }
      ktl::u64 size = 1ull << shift;
      ktl::u64 pat_bit = level == 1 ? pte::kPat4K : pte::kPatLarge;
      ktl::u32 pat = ((e & pat_bit) ? 4u : 0u) | ((e & pte::kPcd) ? 2u : 0u) | ((e & pte::kPwt) ? 1u : 0u);
      ktl::u64 pa_mask = pte::kAddrMask & ~(size - 1);
      out.push_back({canonical(va), e & pa_mask, size, ew, !enx, (e & pte::kGlobal) != 0, pat});
    }
  };
  rec(rec, root, 4, 0, true, false);
  return out;
}

// The leaf covering `va`, if any.
const Leaf* lookup(const std::vector<Leaf>& leaves, ktl::u64 va) {
  for (const Leaf& l : leaves) {
    if (l.va <= va && va - l.va < l.size) return &l;
  }
  return nullptr;
}

struct Fixture {
  // OVMF-like, 6 GiB: low RAM with a hole, ACPI tables, runtime services, the MMIO flash, RAM above 4 GiB.
  std::vector<MemoryMapEntry> physical = {
      {0x0, 0xa0000, MemoryKind::Usable, 0},
      {0x100000, 0x7f00000, MemoryKind::Usable, 0},
      {0x8000000, 0x800000, MemoryKind::LoaderReclaimable, 0},
      {0x8800000, 0x76fe0000 - 0x8800000, MemoryKind::Usable, 0},
      {0x76fe0000, 0x10000, MemoryKind::AcpiReclaimable, 0},
      {0x76ff0000, 0x10000, MemoryKind::AcpiNvs, 0},
      {0x77000000, 0x200000, MemoryKind::RuntimeServices, 0},
      {0x77200000, 0x8e00000, MemoryKind::Reserved, 0},
      {0x80000000, 0x400000, MemoryKind::Framebuffer, 0},
      {0xffc00000, 0x400000, MemoryKind::Mmio, 0},
      {0x100000000, 0x100000000 + 0x6000000, MemoryKind::Usable, 0},
      {0x206000000, 0x1000, MemoryKind::Bad, 0},
  };
  std::vector<x::SegmentMapping> kernel = {
      {kKernel, 0x1000000, 0x5000, Access::ReadExecute},
      {kKernel + 0x5000, 0x1005000, 0x2000, Access::ReadOnly},
      {kKernel + 0x7000, 0x1007000, 0x3000, Access::ReadWrite},
  };
  ktl::u64 guard = kKernel + 0xa000;
  ktl::u64 trampoline = 0x8012000;
  x::AddressSpaceSpec spec() const {
    return {ktl::Span<const MemoryMapEntry>(physical),
            kDirect,
            trampoline,
            ktl::Span<const x::SegmentMapping>(kernel),
            guard + K4,
            0x2000000,
            16 * K4,
            boot::layout::kRecursiveSlot};
  }
};

std::vector<Leaf> build(const Fixture& fx, SimFrames& frames, bool gigabyte_pages, bool nx = true,
                        ktl::u64* root = nullptr) {
  x::TableBuilder t(frames);
  t.set_gigabyte_pages(gigabyte_pages);
  t.set_no_execute(nx);
  EXPECT_TRUE(t.init().is_ok());
  auto r = x::build_address_space(t, fx.spec());
  EXPECT_TRUE(r.is_ok()) << (r.is_ok() ? "" : x::to_string(r.error()));
  EXPECT_LE(frames.used(), x::frames_needed(fx.spec())) << "frames_needed is not an upper bound";
  if (root) *root = t.root();
  return walk(frames, t.root(), boot::layout::kRecursiveSlot);
}

class Tables : public ::testing::TestWithParam<bool> {};

TEST_P(Tables, NothingIsWritableAndExecutable) {
  Fixture fx;
  SimFrames frames;
  auto leaves = build(fx, frames, GetParam());
  ASSERT_FALSE(leaves.empty());
  for (const Leaf& l : leaves) EXPECT_FALSE(l.writable && l.executable) << std::hex << l.va;
}

TEST_P(Tables, OnlyTheTrampolineAndKernelTextAreExecutable) {
  Fixture fx;
  SimFrames frames;
  ktl::u64 exec_bytes = 0;
  for (const Leaf& l : build(fx, frames, GetParam())) {
    if (!l.executable) continue;
    exec_bytes += l.size;
    bool text = l.va >= kKernel && l.va < kKernel + 0x5000;
    EXPECT_TRUE(l.va == fx.trampoline || text) << "unexpected executable page " << std::hex << l.va;
  }
  EXPECT_EQ(exec_bytes, K4 + 0x5000);
}

TEST_P(Tables, NullPageAndGuardPageAreUnmapped) {
  Fixture fx;
  SimFrames frames;
  auto leaves = build(fx, frames, GetParam());
  EXPECT_EQ(lookup(leaves, 0), nullptr);
  EXPECT_EQ(lookup(leaves, 0xfff), nullptr);
  ASSERT_NE(lookup(leaves, 0x1000), nullptr);  // the rest of low RAM is there
  EXPECT_EQ(lookup(leaves, fx.guard), nullptr);
  const Leaf* stack = lookup(leaves, fx.guard + K4);
  ASSERT_NE(stack, nullptr);
  EXPECT_TRUE(stack->writable);
  EXPECT_FALSE(stack->executable);
  EXPECT_EQ(lookup(leaves, fx.guard + K4 + 16 * K4), nullptr);  // nothing above the stack
}

TEST_P(Tables, KernelSegmentsHaveTheirPermissions) {
  Fixture fx;
  SimFrames frames;
  auto leaves = build(fx, frames, GetParam());
  for (const auto& s : fx.kernel) {
    for (ktl::u64 off = 0; off < s.size; off += K4) {
      const Leaf* l = lookup(leaves, s.virt + off);
      ASSERT_NE(l, nullptr);
      EXPECT_EQ(l->size, K4);
      EXPECT_EQ(l->pa + (s.virt + off - l->va), s.phys + off);
      EXPECT_EQ(l->writable, s.access == Access::ReadWrite);
      EXPECT_EQ(l->executable, s.access == Access::ReadExecute);
      EXPECT_TRUE(l->global);
    }
  }
}

TEST_P(Tables, IdentityMapCoversRamOnly) {
  Fixture fx;
  SimFrames frames;
  auto leaves = build(fx, frames, GetParam());
  auto ram = [&](ktl::u64 pa) {
    for (const auto& r : fx.physical) {
      if (pa >= r.base && pa < r.base + r.size) return x::identity_mapped(r.kind);
    }
    return false;
  };
  for (const Leaf& l : leaves) {
    if (l.va >= (1ull << 47)) continue;  // higher half
    EXPECT_EQ(l.va, l.pa);
    EXPECT_FALSE(l.global);
    for (ktl::u64 p = l.pa; p < l.pa + l.size; p += K4) {
      ASSERT_TRUE(ram(p)) << "identity map covers non-RAM " << std::hex << p;
    }
  }
  // Every RAM page is identity mapped (except page 0) and RAM above 4 GiB too.
  for (ktl::u64 pa :
       {0x1000ull, 0x9f000ull, 0x8000000ull, 0x76fe0000ull, 0x771ff000ull, 0x100000000ull, 0x205fff000ull}) {
    const Leaf* l = lookup(leaves, pa);
    ASSERT_NE(l, nullptr) << std::hex << pa;
    EXPECT_TRUE(l->writable);
  }
  EXPECT_EQ(lookup(leaves, 0xa0000), nullptr);      // the legacy VGA hole
  EXPECT_EQ(lookup(leaves, 0x80000000), nullptr);   // the framebuffer
  EXPECT_EQ(lookup(leaves, 0xffc00000), nullptr);   // flash
  EXPECT_EQ(lookup(leaves, 0x206000000), nullptr);  // bad memory
}

TEST_P(Tables, DirectMapHasTheRightCacheTypes) {
  Fixture fx;
  SimFrames frames;
  auto leaves = build(fx, frames, GetParam());
  struct Want {
    ktl::u64 pa;
    int pat;  // -1: unmapped
  } wants[] = {
      {0x0, 0},        {0x100000, 0},   {0x76ff0000, 0}, {0x77000000, 0},  {0x77200000, 3},   {0x80000000, 5},
      {0x803ff000, 5}, {0xffc00000, 3}, {0x1ffff000, 0}, {0x205fff000, 0}, {0x206000000, -1}, {0xa0000, -1},
  };
  for (const Want& w : wants) {
    const Leaf* l = lookup(leaves, kDirect + w.pa);
    if (w.pat < 0) {
      EXPECT_EQ(l, nullptr) << std::hex << w.pa;
      continue;
    }
    ASSERT_NE(l, nullptr) << std::hex << w.pa;
    EXPECT_EQ(l->pa + (kDirect + w.pa - l->va), w.pa);
    EXPECT_EQ(static_cast<int>(l->pat_index), w.pat) << std::hex << w.pa;
    EXPECT_TRUE(l->writable);
    EXPECT_FALSE(l->executable);
  }
}

TEST_P(Tables, LargePagesAreUsedWhereAligned) {
  Fixture fx;
  SimFrames frames;
  auto leaves = build(fx, frames, GetParam());
  const Leaf* high = lookup(leaves, kDirect + 0x140000000ull);
  ASSERT_NE(high, nullptr);
  EXPECT_EQ(high->size, GetParam() ? G1 : M2);
  EXPECT_LT(frames.used(), 64u);
}

TEST_P(Tables, RecursiveSlotPointsAtTheRoot) {
  Fixture fx;
  SimFrames frames;
  ktl::u64 root = 0;
  build(fx, frames, GetParam(), true, &root);
  ktl::u64 e = frames.table(root)[boot::layout::kRecursiveSlot];
  EXPECT_EQ(e & pte::kAddrMask, root);
  EXPECT_TRUE(e & pte::kNoExecute);
  EXPECT_FALSE(e & pte::kUser);
}

INSTANTIATE_TEST_SUITE_P(GigabytePages, Tables, ::testing::Bool());

TEST(Tables, WithoutNxNoEntryHasBit63) {
  Fixture fx;
  SimFrames frames;
  ktl::u64 root = 0;
  build(fx, frames, false, false, &root);
  for (ktl::u64 e : frames.table(root)) EXPECT_FALSE(e & pte::kNoExecute);
  for (const Leaf& l : walk(frames, root, boot::layout::kRecursiveSlot)) EXPECT_TRUE(l.executable);
}

TEST(Tables, RunningOutOfFramesIsAnError) {
  Fixture fx;
  SimFrames frames(6);
  x::TableBuilder t(frames);
  ASSERT_TRUE(t.init().is_ok());
  auto r = x::build_address_space(t, fx.spec());
  ASSERT_TRUE(r.is_err());
  EXPECT_EQ(r.error(), x::TableError::OutOfMemory);
}

}  // namespace
