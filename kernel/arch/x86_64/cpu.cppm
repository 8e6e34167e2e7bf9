// arch.x86_64.cpu: the privileged x86_64 instructions the kernel (and the loader) need, each a
// one-line inline wrapper. Nothing here keeps state.
module;

#include <ktl/macros.h>

export module arch.x86_64.cpu;

import ktl;

export namespace arch::x86_64 {

using ktl::u16;
using ktl::u32;
using ktl::u64;
using ktl::u8;

inline void outb(u16 port, u8 value) { __asm__ volatile("outb %0, %1" : : "a"(value), "Nd"(port)); }
inline u8 inb(u16 port) {
  u8 v;
  __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
  return v;
}
inline void outw(u16 port, u16 value) { __asm__ volatile("outw %0, %1" : : "a"(value), "Nd"(port)); }
inline void outl(u16 port, u32 value) { __asm__ volatile("outl %0, %1" : : "a"(value), "Nd"(port)); }
inline u32 inl(u16 port) {
  u32 v;
  __asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port));
  return v;
}

inline u64 read_cr0() {
  u64 v;
  __asm__ volatile("mov %%cr0, %0" : "=r"(v));
  return v;
}
inline void write_cr0(u64 v) { __asm__ volatile("mov %0, %%cr0" : : "r"(v) : "memory"); }
inline u64 read_cr2() {
  u64 v;
  __asm__ volatile("mov %%cr2, %0" : "=r"(v));
  return v;
}
inline u64 read_cr3() {
  u64 v;
  __asm__ volatile("mov %%cr3, %0" : "=r"(v));
  return v;
}
inline void write_cr3(u64 v) { __asm__ volatile("mov %0, %%cr3" : : "r"(v) : "memory"); }
inline u64 read_cr4() {
  u64 v;
  __asm__ volatile("mov %%cr4, %0" : "=r"(v));
  return v;
}
inline void write_cr4(u64 v) { __asm__ volatile("mov %0, %%cr4" : : "r"(v) : "memory"); }

inline u64 rdmsr(u32 msr) {
  u32 lo, hi;
  __asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr));
  return (u64{hi} << 32) | lo;
}
inline void wrmsr(u32 msr, u64 v) {
  __asm__ volatile("wrmsr" : : "c"(msr), "a"(static_cast<u32>(v)), "d"(static_cast<u32>(v >> 32)));
}

struct CpuidResult {
  u32 eax, ebx, ecx, edx;
};
inline CpuidResult cpuid(u32 leaf, u32 subleaf = 0) {
  CpuidResult r;
  __asm__ volatile("cpuid" : "=a"(r.eax), "=b"(r.ebx), "=c"(r.ecx), "=d"(r.edx) : "a"(leaf), "c"(subleaf));
  return r;
}

inline u64 rdtsc() {
  u32 lo, hi;
  __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
  return (u64{hi} << 32) | lo;
}

inline void invlpg(u64 virt) { __asm__ volatile("invlpg (%0)" : : "r"(virt) : "memory"); }
inline u64 read_rflags() {
  u64 v;
  __asm__ volatile("pushfq; popq %0" : "=r"(v));
  return v;
}
inline u64 read_rbp() {
  u64 v;
  __asm__ volatile("mov %%rbp, %0" : "=r"(v));
  return v;
}
inline u64 read_rsp() {
  u64 v;
  __asm__ volatile("mov %%rsp, %0" : "=r"(v));
  return v;
}
inline u16 read_cs() {
  u16 v;
  __asm__ volatile("mov %%cs, %0" : "=r"(v));
  return v;
}

// The operand of lgdt/lidt/sgdt/sidt.
struct [[gnu::packed]] DescriptorTablePointer {
  u16 limit;
  u64 base;
};
static_assert(sizeof(DescriptorTablePointer) == 10);
inline void lgdt(const DescriptorTablePointer& p) { __asm__ volatile("lgdt %0" : : "m"(p) : "memory"); }
inline void lidt(const DescriptorTablePointer& p) { __asm__ volatile("lidt %0" : : "m"(p) : "memory"); }
inline DescriptorTablePointer sgdt() {
  DescriptorTablePointer p{};
  __asm__ volatile("sgdt %0" : "=m"(p));
  return p;
}
inline DescriptorTablePointer sidt() {
  DescriptorTablePointer p{};
  __asm__ volatile("sidt %0" : "=m"(p));
  return p;
}
inline void ltr(u16 selector) { __asm__ volatile("ltr %0" : : "r"(selector) : "memory"); }
inline u16 str() {
  u16 v;
  __asm__ volatile("str %0" : "=r"(v));
  return v;
}
inline void cli() { __asm__ volatile("cli" ::: "memory"); }
inline void sti() { __asm__ volatile("sti" ::: "memory"); }
inline void hlt() { __asm__ volatile("hlt" ::: "memory"); }
[[noreturn]] inline void halt_forever() {
  for (;;) {
    cli();
    hlt();
  }
}

// Model-specific registers and control-register bits used across the tree.
namespace msr {
inline constexpr u32 kEfer = 0xc000'0080;
inline constexpr u32 kPat = 0x277;
inline constexpr u32 kFsBase = 0xc000'0100;
inline constexpr u32 kGsBase = 0xc000'0101;
}  // namespace msr
namespace efer {
inline constexpr u64 kNxe = u64{1} << 11;
inline constexpr u64 kLme = u64{1} << 8;
}  // namespace efer
namespace cr0 {
inline constexpr u64 kWp = u64{1} << 16;
inline constexpr u64 kPg = u64{1} << 31;
}  // namespace cr0
namespace cr4 {
inline constexpr u64 kPae = u64{1} << 5;
inline constexpr u64 kPge = u64{1} << 7;
inline constexpr u64 kOsfxsr = u64{1} << 9;
inline constexpr u64 kUmip = u64{1} << 11;
inline constexpr u64 kLa57 = u64{1} << 12;
inline constexpr u64 kSmep = u64{1} << 20;
inline constexpr u64 kSmap = u64{1} << 21;
}  // namespace cr4

// QEMU's isa-debug-exit device (-device isa-debug-exit,iobase=0xf4,iosize=0x04): writing v makes
// QEMU exit with status (v << 1) | 1. Harmless on real hardware (nothing decodes the port).
inline constexpr u16 kQemuDebugExitPort = 0xf4;
[[noreturn]] inline void qemu_exit(u8 value) {
  outl(kQemuDebugExitPort, value);
  halt_forever();
}

}  // namespace arch::x86_64
