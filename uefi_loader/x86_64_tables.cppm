// loader.x86_64_tables: builds fresh x86_64 4-level page tables for the kernel hand-off.
//
// The builder never edits the firmware's tables: every table comes from a FrameSource, which also
// says where a table frame can be written (the loader runs identity-mapped; host tests use
// simulated memory). Mapping is "first come wins": an address that is already mapped keeps its
// mapping, which lets the caller map special pages (the hand-off trampoline) with 4 KiB precision
// first and then cover the rest with large pages.
//
// build_address_space() is the policy (the hand-off address space of docs/ARCHITECTURE.md):
//   identity map   RAM only (usable, loader, runtime, ACPI), read-write, NX; the null page is never
//                  mapped; the one hand-off trampoline page is read-execute.
//   direct map     kDirectMapBase + phys for RAM (write-back), MMIO (the firmware's, plus the
//                  local and I/O APIC pages the loader adds) and reserved ranges (uncached), the
//                  framebuffer (write-combining); bad memory and holes are not mapped.
//   kernel         each PT_LOAD segment with its own permissions (RX, R+NX, RW+NX), global.
//   stack          read-write NX, with the page below it left unmapped (guard).
//   recursive slot PML4[kRecursiveSlot] -> PML4, read-write NX.
// Nothing is ever both writable and executable.
module;

#include <ktl/macros.h>

export module loader.x86_64_tables;

import ktl;
import boot.info;
import mm.paging.x86; // the entry bits and the PAT, shared with the kernel's paging formats

export namespace loader::x86_64 {

using ktl::u32;
using ktl::u64;
using ktl::usize;

enum class Access : u32 { ReadOnly, ReadWrite, ReadExecute };
enum class Cache : u32 { WriteBack, WriteCombining, Uncached };

// Where page-table frames come from (UEFI AllocatePages in the loader). allocate_zeroed_frame
// returns a zeroed 4 KiB frame's physical address, or 0 when out of memory; table() gives the
// 512 entries of a frame it handed out.
class FrameSource {
 public:
  virtual u64 allocate_zeroed_frame() = 0;
  virtual ktl::Span<u64> table(u64 phys) = 0;

 protected:
  ~FrameSource() = default;
};

enum class TableError : ktl::u32 { OutOfMemory, Misaligned, AddressOverflow };

[[nodiscard]] constexpr const char* to_string(TableError e) {
  switch (e) {
    case TableError::OutOfMemory: return "out of memory for page tables";
    case TableError::Misaligned: return "mapping not 4 KiB aligned";
    case TableError::AddressOverflow: return "mapping wraps around the address space";
  }
  return "unknown page-table error";
}

class TableBuilder {
 public:
  inline explicit TableBuilder(FrameSource& frames) : frames_(frames) {}

  // Allocates the PML4. Must succeed before anything else.
  [[nodiscard]] ktl::Result<void, TableError> init();
  [[nodiscard]] inline u64 root() const { return root_; }
  [[nodiscard]] inline usize table_frames() const { return table_frames_; }
  // Whether the CPU supports 1 GiB pages (CPUID 0x80000001 EDX bit 26).
  inline void set_gigabyte_pages(bool supported) { gigabyte_pages_ = supported; }
  // Whether EFER.NXE will be set (CPUID 0x80000001 EDX bit 20). Without it bit 63 is reserved, so
  // no entry carries it (and nothing can be made non-executable).
  inline void set_no_execute(bool supported) { no_execute_ = supported; }
  [[nodiscard]] inline bool no_execute() const { return no_execute_; }

  // Maps [virt, virt+size) to [phys, phys+size), using 1 GiB / 2 MiB pages where alignment and
  // `allow_huge` permit. Already-mapped pages are left alone.
  [[nodiscard]] ktl::Result<void, TableError> map(u64 virt, u64 phys, u64 size, Access access, Cache cache,
                                                  bool allow_huge, bool global);

  // Installs PML4[slot] -> the PML4 itself (the recursive mapping), writable, NX, supervisor.
  void install_recursive_slot(usize slot);

 private:
  // Makes `entry` point at a table, allocating a zeroed one if it is empty.
  [[nodiscard]] ktl::Result<void, TableError> ensure_table(u64& entry);
  [[nodiscard]] u64 leaf_bits(Access access, Cache cache, bool huge, bool global) const;

  FrameSource& frames_;
  u64 root_ = 0;
  usize table_frames_ = 0;
  bool gigabyte_pages_ = false;
  bool no_execute_ = true;
};

// One loaded kernel segment: [virt, virt+size) -> [phys, phys+size), all page aligned.
struct SegmentMapping {
  u64 virt;
  u64 phys;
  u64 size;
  Access access;
};

struct AddressSpaceSpec {
  // Physical memory: sorted, disjoint, page-aligned regions (normalise_memory_map's output over
  // the firmware map plus the framebuffer).
  ktl::Span<const boot::MemoryMapEntry> physical;
  u64 direct_map_base;
  u64 trampoline_page;  // identity-mapped read-execute (0: none)
  ktl::Span<const SegmentMapping> kernel;
  u64 stack_virt_bottom;  // the guard page is the one below
  u64 stack_phys;
  u64 stack_size;
  u32 recursive_slot;
};

// How a kind of physical memory appears in the identity and direct maps.
[[nodiscard]] bool identity_mapped(boot::MemoryKind kind);
[[nodiscard]] ktl::Optional<Cache> direct_map_cache(boot::MemoryKind kind);

// Upper bound of the table frames build_address_space needs for `spec` (without 1 GiB pages).
[[nodiscard]] u64 frames_needed(const AddressSpaceSpec& spec);

// Builds the whole hand-off address space into `tables` (already init()ed).
[[nodiscard]] ktl::Result<void, TableError> build_address_space(TableBuilder& tables,
                                                                const AddressSpaceSpec& spec);

}  // namespace loader::x86_64
