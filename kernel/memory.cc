module;

#include <ktl/macros.h>

module kernel.memory;

import ktl;
import boot.info;
import mm.addr;
import mm.arch;
import mm.address_space;
import mm.frame_table;
import mm.heap;
import mm.heap.paging;
import mm.mapping;
import mm.paging;
import mm.pmm;
import mm.slab;
import kernel.log;
import kernel.meminfo;
import kernel.memory_error;
import kernel.vmview;
import arch.x86_64.cpu;
import arch.x86_64.gdt;

namespace kernel::memory {

namespace {

using Format = mm::paging::X86_64;

struct State {
  bool initialized = false;
  bool loader_recursive = false;
  ktl::Span<const boot::MemoryMapEntry> boot_map;
  mm::PhysWindow window;
  mm::Pmm pmm;
  mm::FrameTable frames;  // the per-frame descriptors of pmm's frames
  ktl::Optional<mm::KernelAddressSpace> space;
  ktl::Optional<HeapSpace> heap_space;
  ktl::Array<ktl::Optional<mm::KernelMapping>, 3> ist_stacks{};
  u64 device_next = layout::kDeviceBase;  // the device window's next free address
};
State g_state;
// The converted map only lives until Pmm::init has copied what it needs; static because the
// kernel has no allocator yet (kNoMapEntry is all zeroes, so this is .bss).
constinit ktl::Array<mm::PhysMapEntry, kMaxMapEntries> g_map = make_map_array<kMaxMapEntries>();

}  // namespace

ktl::Result<void, InitError> init(const Config& c) {
  ktl::check(!g_state.initialized, "kernel::memory::init: called twice");
  State& s = g_state;
  s.boot_map = c.map;

  // 1. The PMM.
  auto converted = convert_memory_map(c.map, g_map.span());
  if (converted.is_err()) return ktl::Err(InitError::map_conversion(converted.error()));
  usize regions = converted.value();
  KTL_UNSAFE_BUFFER_BEGIN  // the loader maps all of physical memory at direct_map_base
  s.window = mm::PhysWindow(mm::PhysAddr::zero(), c.map_end,
                            reinterpret_cast<ktl::u8*>(static_cast<ktl::uptr>(c.info->direct_map_base)));
  KTL_UNSAFE_BUFFER_END
  if (auto r = s.pmm.init(g_map.span().first(regions), s.window); r.is_err()) {
    return ktl::Err(InitError::pmm_init(r.error()));
  }
  if (auto r = mm::install_global_pmm(s.pmm); r.is_err()) return ktl::Err(InitError::pmm_install(r.error()));
  // Kept for atomic requests (interrupt handlers cannot wait for reclaim): 1/256 of free memory,
  // 32 to 4096 frames (128 KiB to 16 MiB).
  u64 reserve = ktl::min<u64>(ktl::max<u64>(s.pmm.free_frame_count() / 256, 32), 4096);
  if (auto r = s.pmm.set_atomic_reserve(ktl::min(reserve, s.pmm.free_frame_count() / 2)); r.is_err())
    return ktl::Err(InitError::pmm_init(r.error()));
  if (auto r = s.frames.init(s.pmm, s.window); r.is_err()) return ktl::Err(InitError::frame_table(r.error()));
  mm::MemStats st = s.pmm.stats();
  klog::info(
      "pmm: {} regions (from the loader's {}), {} arenas, {} MiB free, {} KiB metadata, {} KiB atomic "
      "reserve",
      regions, c.map.size(), s.pmm.arena_count(), st.free_bytes >> 20, st.metadata_bytes >> 10,
      s.pmm.atomic_reserve() * 4);
  for (usize i = 0; i < s.pmm.metadata_block_count(); ++i) {
    mm::PhysRange b = s.pmm.metadata_block(i);
    klog::debug("pmm: metadata block {} - {}", b.start(), b.end());
  }

  // 2. The kernel address space: the loader's tables, with the recursive slot checked.
  mm::PhysAddr root = mm::PhysAddr::from(c.info->page_table_root);
  if (!s.window.covers(root, mm::kPageSize)) return ktl::Err(InitError::root_outside_direct_map());
  u64 self = s.window.array<u64>(root, Format::kEntries)[boot::layout::kRecursiveSlot];
  s.loader_recursive =
      Format::kind(self, 3) == mm::paging::EntryKind::Table && Format::target(self, 3) == root;
  mm::KernelSpaceOptions options;
  options.recursive_slot = boot::layout::kRecursiveSlot;
  options.gigabytes = c.gigabytes;
  auto adopted = mm::KernelAddressSpace::adopt_kernel(s.window, s.pmm, root, options);
  if (adopted.is_err()) return ktl::Err(InitError::adopt_tables(adopted.error()));
  mm::KernelAddressSpace& space = s.space.emplace(adopted.release_value());
  space.activate();
  klog::info("address space: adopted the loader's tables at {}, recursive slot {} {}, active (CR3 {})", root,
             boot::layout::kRecursiveSlot, s.loader_recursive ? "validated" : "installed",
             mm::arch::active_root());

  // 3. The heap: its large objects are Mappings of the kernel address space (created and destroyed
  // under the space's lock, inside heap.large_objects), owned by the heap's large-object records.
  mm::HeapConfig hc;
  hc.large_objects =
      mm::VirtRange::with_size(mm::VirtAddr::from(layout::kHeapBase), layout::kHeapBytes).value();
  hc.space = &s.heap_space.emplace(space);
  hc.hardening = c.heap_hardening;
  hc.seed = arch::x86_64::rdtsc();  // free-list secrets differ from boot to boot
  if (auto r = mm::heap::init(s.frames, hc); r.is_err()) return ktl::Err(InitError::heap_init(r.error()));
  klog::info(
      "heap: {} size classes up to {} KiB, large allocations in {} - {}{}", mm::heap_classes::kCount,
      mm::heap_classes::kMaxSize >> 10, hc.large_objects.start(), hc.large_objects.end(),
      c.heap_hardening == mm::Hardening::On ? ", hardened (redzones, poisoning, double-free checks)" : "");
  s.initialized = true;
  return ktl::ok();
}

bool initialized() { return g_state.initialized; }

ktl::Result<void, InitError> map_ist_stacks() {
  State& s = g_state;
  ktl::check(s.initialized, "map_ist_stacks before kernel::memory::init");
  constexpr ktl::Array<arch::x86_64::IstSlot, 3> slots{
      {arch::x86_64::IstSlot::DoubleFault, arch::x86_64::IstSlot::Nmi, arch::x86_64::IstSlot::MachineCheck}};
  static_assert(arch::x86_64::kIstStackSize + 2 * mm::kPageSize <= layout::kStackStride);
  for (usize i = 0; i < slots.size(); ++i) {
    auto frames = s.pmm.alloc_contiguous(arch::x86_64::kIstStackSize / mm::kPageSize, mm::kPageSize);
    if (frames.is_err()) return ktl::Err(InitError::stack_frames(frames.error()));
    // [guard page][stack][guard page ...] inside this stack's stride.
    mm::VirtAddr bottom = mm::VirtAddr::from(layout::kStackBase + i * layout::kStackStride + mm::kPageSize);
    auto mapping =
        mm::KernelMapping::create(*s.space, bottom, frames.release_value(),
                                  mm::PageFlags::kernel_rw().with(mm::Scope::Global), mm::HugePages::Deny);
    if (mapping.is_err()) return ktl::Err(InitError::stack_mapping(mapping.error()));
    mm::KernelMapping& m = s.ist_stacks[i].emplace(mapping.release_value());
    arch::x86_64::set_ist_stack(slots[i],
                                arch::x86_64::StackRange{m.start().value(), m.range().end().value()});
  }
  return ktl::ok();
}

namespace {
// Stride i of the stack region: the IST stacks use strides 0..2, tasks from kFirstTaskStride.
constexpr u32 kFirstTaskStride = 4;
ktl::Array<ktl::Atomic<u64>, kTaskStackSlots / 64> g_stack_slots{};

ktl::Optional<u32> take_stack_slot() {
  for (u32 w = 0; w < g_stack_slots.size(); ++w) {
    u64 bits = g_stack_slots[w].load();
    while (bits != ~u64{0}) {
      u32 bit = static_cast<u32>(__builtin_ctzll(~bits));
      if (g_stack_slots[w].compare_exchange(bits, bits | (u64{1} << bit))) return w * 64 + bit;
    }
  }
  return ktl::nullopt;
}

void give_stack_slot(u32 slot) {
  ktl::Atomic<u64>& word = g_stack_slots[slot / 64];
  u64 bits = word.load();
  while (!word.compare_exchange(bits, bits & ~(u64{1} << (slot % 64)))) {
  }
}
}  // namespace

KernelStack::KernelStack(KernelStack&& o)
    : mapping_(ktl::move(o.mapping_)), slot_(o.slot_), bottom_(o.bottom_), top_(o.top_) {
  o.mapping_.reset();
  o.bottom_ = o.top_ = 0;
}

KernelStack& KernelStack::operator=(KernelStack&& o) {
  if (this != &o) {
    reset();
    mapping_ = ktl::move(o.mapping_);
    o.mapping_.reset();
    slot_ = o.slot_;
    bottom_ = ktl::exchange(o.bottom_, 0);
    top_ = ktl::exchange(o.top_, 0);
  }
  return *this;
}

KernelStack::~KernelStack() { reset(); }

void KernelStack::reset() {
  if (!mapping_.has_value()) return;
  mapping_.reset();  // unmaps and frees the frames
  give_stack_slot(slot_);
  bottom_ = top_ = 0;
}

ktl::Result<KernelStack, StackError> map_kernel_stack(u64 bytes) {
  State& s = g_state;
  ktl::check(s.initialized, "map_kernel_stack before kernel::memory::init");
  u64 pages = (bytes + mm::kPageSize - 1) / mm::kPageSize;
  if (pages == 0 || (pages + 2) * mm::kPageSize > layout::kStackStride) return ktl::Err(StackError::TooLarge);
  ktl::Optional<u32> slot = take_stack_slot();
  if (!slot.has_value()) return ktl::Err(StackError::NoSlot);
  auto frames = s.pmm.alloc_contiguous(pages, mm::kPageSize);
  if (frames.is_err()) {
    give_stack_slot(*slot);
    return ktl::Err(StackError::NoFrames);
  }
  // The stack ends one guard page below the stride's end; the pages below it are unmapped.
  u64 stride = layout::kStackBase + (kFirstTaskStride + *slot) * layout::kStackStride;
  mm::VirtAddr bottom =
      mm::VirtAddr::from(stride + layout::kStackStride - mm::kPageSize - pages * mm::kPageSize);
  auto mapping =
      mm::KernelMapping::create(*s.space, bottom, frames.release_value(),
                                mm::PageFlags::kernel_rw().with(mm::Scope::Global), mm::HugePages::Deny);
  if (mapping.is_err()) {
    give_stack_slot(*slot);
    ktl::check(mapping.error() == mm::PagingError::NoMemory,
               "map_kernel_stack: the stack slot was mapped already");
    return ktl::Err(StackError::NoTables);
  }
  KernelStack st;
  st.mapping_.emplace(mapping.release_value());
  st.slot_ = *slot;
  st.bottom_ = bottom.value();
  st.top_ = bottom.value() + pages * mm::kPageSize;
  return st;
}

u32 kernel_stacks_in_use() {
  u32 n = 0;
  for (const auto& w : g_stack_slots) n += static_cast<u32>(__builtin_popcountll(w.load()));
  return n;
}

ktl::Result<MmioRegion, DeviceMapError> map_device(mm::PhysAddr phys, u64 bytes) {
  State& s = g_state;
  ktl::check(s.initialized, "map_device before kernel::memory::init");
  if (bytes == 0) return ktl::Err(DeviceMapError::EmptyRange);
  constexpr u64 kPhysLimit = u64{1} << 52;
  u64 first = phys.value() & ~(mm::kPageSize - 1);
  if (phys.value() >= kPhysLimit || bytes > kPhysLimit - phys.value())
    return ktl::Err(DeviceMapError::AddressTooHigh);
  u64 span = ((phys.value() + bytes + mm::kPageSize - 1) & ~(mm::kPageSize - 1)) - first;
  mm::KernelAddressSpace& space = *s.space;
  ktl::LockGuard guard(space.lock());  // also serialises device_next
  u64 virt = s.device_next;
  if (span + mm::kPageSize > layout::kDeviceBase + layout::kDeviceBytes - virt) {
    return ktl::Err(DeviceMapError::WindowFull);
  }
  auto flush = space.tables().map_range(mm::VirtAddr::from(virt), mm::PhysAddr::unchecked(first), span,
                                        mm::PageFlags::mmio().with(mm::Scope::Global), mm::HugePages::Deny);
  if (flush.is_err()) {
    switch (flush.error()) {
      case mm::PagingError::NoMemory: return ktl::Err(DeviceMapError::NoMemory);
      case mm::PagingError::AlreadyMapped: return ktl::Err(DeviceMapError::AlreadyMapped);
      default: ktl::check_ok(flush, "map_device: the device window refused a mapping");
    }
  }
  flush.release_value().flush();
  s.device_next = virt + span + mm::kPageSize;  // an unmapped guard page after each device
  return MmioRegion::unchecked(virt + (phys.value() - first), bytes);
}

mm::Pmm& pmm() { return g_state.pmm; }
mm::PhysWindow window() { return g_state.window; }
mm::FrameTable& frame_table() { return g_state.frames; }
mm::KernelAddressSpace& kernel_space() { return *g_state.space; }
mm::Heap& heap() {
  mm::Heap* h = mm::heap::installed();
  ktl::check(h != nullptr, "kernel::memory::heap: no heap installed");
  return *h;
}
bool loader_installed_recursive_slot() { return g_state.loader_recursive; }

void reclaim_tables(mm::VirtRange range) {
  mm::KernelAddressSpace& space = kernel_space();
  ktl::LockGuard guard(space.lock());
  auto r = space.tables().reclaim_empty_tables(range.start(), range.size());
  ktl::check_ok(r, "reclaim_tables: the range is not the kernel's to reclaim");
}

MemInfo meminfo() {
  State& s = g_state;
  MemUse use;
  use.pmm = s.pmm.stats();
  {
    ktl::LockGuard guard(s.space->lock());
    use.kernel_table_bytes = s.space->tables().table_frames() * mm::kPageSize;
  }
  if (mm::Heap* h = mm::heap::installed()) {
    mm::HeapStats hs = h->stats();
    use.heap_slab_bytes = hs.slab_frames * mm::kPageSize;
    use.heap_large_bytes = hs.large_frames * mm::kPageSize;
    use.heap_metadata_bytes = hs.metadata_frames * mm::kPageSize;
  }
  use.frame_table_bytes = s.frames.metadata_frames() * mm::kPageSize;
  return compute_meminfo(s.boot_map, use);
}

void log_meminfo() {
  MemInfo m = meminfo();
  ktl::InlineString<1536> text;
  write_meminfo(text, m);
  // One log record per line.
  for (ktl::StringView rest = text.view(); !rest.empty();) {
    usize nl = rest.find('\n');
    klog::info("{}", rest.substr(0, nl));
    rest = nl < rest.size() ? rest.substr(nl + 1) : ktl::StringView();
  }
  if (!m.consistent())
    klog::warn("meminfo: the totals do not add up (a PMM or allocator statistic is wrong)");
}

vmview::Summary log_page_tables() {
  mm::KernelAddressSpace& space = kernel_space();
  // The walk reads the tables under their lock; nothing maps or unmaps meanwhile.
  ktl::LockGuard guard(space.lock());
  mm::PhysAddr root = space.tables().root();
  klog::info("vm: begin page tables root={:#x} format={}", root.value(), Format::kName);
  vmview::Summary s = vmview::for_each_range<Format>(g_state.window, root,
                                                     [](const vmview::Range& r) { klog::info("vm: {}", r); });
  if (s.recursive_slot) klog::info("vm: recursive slot={}", *s.recursive_slot);
  klog::info("vm: end ranges={} leaves={} bytes={:#x}", s.ranges, s.leaves, s.bytes);
  return s;
}

}  // namespace kernel::memory
