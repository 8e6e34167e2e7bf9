// kernel.memory: the kernel's memory management, brought up from the boot information.
//
//   1. PMM: the loader's map converted to mm::PhysMapEntry (kernel.meminfo), Pmm::init over the
//      direct map (a PhysWindow from physical 0 to the end of the map), install_global_pmm.
//   2. The kernel address space (mm.address_space) adopts the loader's tables rooted at
//      BootInfo::page_table_root, validates the recursive slot the loader installed in PML4[510]
//      (or installs it), and is activated through mm::arch (CR3).
//   3. The heap (mm.heap): slab caches and kmalloc over the PMM; each large allocation is owned by
//      mm::Mappings of the kernel address space in the kernel large-object area (layout::kHeap), kept in
//      the heap's large-object table (HeapSpace, mm.heap.paging).
//   4. The IST stacks move to mapped stacks with an unmapped guard page below each (and above).
//
// Kernel virtual layout beyond the loader's (PML4 slots of the kernel half; docs/ARCHITECTURE.md):
//   slot 256..383  direct map (loader)           slot 507  test heaps (1 GiB each, test mode)
//   slot 508       kernel large-object area (4 GiB)    slot 509  kernel stacks with guard pages
//   slot 506       device MMIO (map_device)       slot 510  recursive self-reference
//   slot 511       kernel image (loader)
//
// Locking: the address space's lock serialises every change to the kernel tables; the heap's
// Mappings take it under heap.large_objects (the lock order of docs/ARCHITECTURE.md). One CPU for now.
module;

#include <ktl/macros.h>

export module kernel.memory;

import ktl;
import boot.info;
import mm.addr;
import mm.arch;
import mm.address_space;
import mm.mapping;
import mm.frame_table;
import mm.heap;
import mm.heap.paging;
import mm.paging;
import mm.pmm;
import mm.slab;
import kernel.meminfo;
export import kernel.memory_error;
export import kernel.mmio;
import kernel.vmview;

export namespace kernel::memory {

using ktl::u32;
using ktl::u64;
using ktl::usize;

namespace layout {
[[nodiscard]] constexpr u64 slot_base(u32 slot) { return 0xffff'0000'0000'0000ull | (u64{slot} << 39); }
inline constexpr u32 kDeviceSlot = 506;
inline constexpr u64 kDeviceBase = slot_base(kDeviceSlot);
inline constexpr u64 kDeviceBytes = u64{1} << 39;
inline constexpr u32 kTestHeapSlot = 507;
inline constexpr u32 kHeapSlot = 508;
inline constexpr u32 kStackSlot = 509;
inline constexpr u64 kTestHeapBase = slot_base(kTestHeapSlot);
inline constexpr u64 kTestHeapBytes = u64{1} << 30;  // one test heap's region
inline constexpr u32 kMaxTestHeaps = 16;
inline constexpr u64 kHeapBase = slot_base(kHeapSlot);
inline constexpr u64 kHeapBytes = u64{4} << 30;
inline constexpr u64 kStackBase = slot_base(kStackSlot);
inline constexpr u64 kStackStride = u64{64}
                                    << 10;  // one stack (at most 60 KiB) per stride, guard pages between
}  // namespace layout

// The converted map holds at most this many regions (merged neighbours count once).
inline constexpr usize kMaxMapEntries = 1024;

// Failures are InitErrors (kernel.memory_error): the step that failed and the mm error behind it.

struct Config {
  const boot::BootInfo* info = nullptr;
  ktl::Span<const boot::MemoryMapEntry> map;  // validated (kernel.boot_check)
  u64 map_end = 0;                            // end of the highest region
  mm::GigabytePages gigabytes = mm::GigabytePages::Unsupported;
  mm::Hardening heap_hardening = mm::Hardening::On;
};

// Steps 1-3 of the module comment, logging what they did. Call once, on the boot CPU. Errors:
// MapConversion, PmmInit, PmmInstall, RootOutsideDirectMap, AdoptTables, HeapInit.
[[nodiscard]] ktl::Result<void, InitError> init(const Config& config);
[[nodiscard]] bool initialized();

// Step 4: the IST stacks (arch.x86_64.gdt) move to mapped stacks with guard pages. Errors:
// StackFrames, StackMapping.
[[nodiscard]] ktl::Result<void, InitError> map_ist_stacks();

[[nodiscard]] mm::Pmm& pmm();
[[nodiscard]] mm::PhysWindow window();  // the direct map
// The descriptors of the PMM's frames, shared by their owners (the heap's slabs today).
[[nodiscard]] mm::FrameTable& frame_table();
[[nodiscard]] mm::KernelAddressSpace& kernel_space();
[[nodiscard]] mm::Heap& heap();
// Whether PML4[510] already pointed at the root when the kernel adopted the tables.
[[nodiscard]] bool loader_installed_recursive_slot();

// Where a heap's large objects live: Mappings of the kernel address space (the kernel heap's, and
// the test heaps'), held in the heap's large-object records.
using HeapSpace = mm::LargeObjectMappings<mm::paging::X86_64>;

// Frees the page tables left empty in `range` of the kernel address space (after a test heap).
void reclaim_tables(mm::VirtRange range);

// Device registers: map_device maps [phys, phys + bytes) uncached, not executable and global at
// the next free place of the device window (layout::kDeviceBase; page granular, with an unmapped
// guard page after each mapping), and returns its registers as an MmioRegion (offset within the
// first page kept). Device mappings live as long as the kernel (FIXME(drivers): unmap on detach).
enum class DeviceMapError : u32 {
  EmptyRange,      // bytes == 0
  AddressTooHigh,  // phys + bytes does not fit the physical address space (52 bits)
  WindowFull,      // the device window has no room left
  NoMemory,        // no frame for a page table
  AlreadyMapped,   // the window's next range was mapped by someone else (a kernel bug)
};
[[nodiscard]] constexpr const char* to_string(DeviceMapError e) {
  switch (e) {
    case DeviceMapError::EmptyRange: return "empty range";
    case DeviceMapError::AddressTooHigh: return "physical range beyond 52 bits";
    case DeviceMapError::WindowFull: return "the device window is full";
    case DeviceMapError::NoMemory: return "no memory for page tables";
    case DeviceMapError::AlreadyMapped: return "the device window's next range is already mapped";
  }
  return "unknown device mapping error";
}
[[nodiscard]] ktl::Result<MmioRegion, DeviceMapError> map_device(mm::PhysAddr phys, u64 bytes);

// Kernel stacks for tasks: [guard page][stack][guard pages] in a 64 KiB stride of the kernel-stack
// region (layout::kStackBase; the first strides are the IST stacks'). Move-only; the destructor
// unmaps the stack, frees its frames and its stride.
enum class StackError : u32 {
  TooLarge,  // more than a stride minus two guard pages
  NoSlot,    // every stride is in use
  NoFrames,  // the PMM had no frames for it
  NoTables,  // no frame for a page table
};
[[nodiscard]] constexpr const char* to_string(StackError e) {
  switch (e) {
    case StackError::TooLarge: return "stack larger than a stride minus its guard pages";
    case StackError::NoSlot: return "no free kernel-stack slot";
    case StackError::NoFrames: return "no frames for the stack";
    case StackError::NoTables: return "no memory for page tables";
  }
  return "unknown kernel stack error";
}
inline constexpr u32 kTaskStackSlots = 256;
class KernelStack {
 public:
  KernelStack() = default;
  KernelStack(KernelStack&& o);
  KernelStack& operator=(KernelStack&& o);
  KernelStack(const KernelStack&) = delete;
  KernelStack& operator=(const KernelStack&) = delete;
  ~KernelStack();
  [[nodiscard]] inline u64 bottom() const { return bottom_; }
  [[nodiscard]] inline u64 top() const { return top_; }

 private:
  friend ktl::Result<KernelStack, StackError> map_kernel_stack(u64 bytes);
  void reset();
  ktl::Optional<mm::KernelMapping> mapping_;
  u32 slot_ = 0;
  u64 bottom_ = 0;
  u64 top_ = 0;
};
[[nodiscard]] ktl::Result<KernelStack, StackError> map_kernel_stack(u64 bytes);
[[nodiscard]] u32 kernel_stacks_in_use();

// The summary (kernel.meminfo) as of now, and its "meminfo:" lines in the log.
[[nodiscard]] MemInfo meminfo();
void log_meminfo();

// The "vm:" block (kernel.vmview) of the active kernel tables, under the address-space lock.
vmview::Summary log_page_tables();

}  // namespace kernel::memory
