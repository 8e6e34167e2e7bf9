// The four functions a freestanding C++ compiler may emit calls to. Built only for the kernel and
// the UEFI loader (the host has libc's). -ffreestanding keeps the compiler from turning these
// loops back into calls to themselves.
#include <stddef.h>
#include <stdint.h>

#include <ktl/macros.h>

extern "C" {

KTL_UNSAFE_BUFFER_BEGIN  // the C contract: callers pass valid ranges of `n` bytes

void* memcpy(void* __restrict dst, const void* __restrict src, size_t n) {
  auto* d = static_cast<unsigned char*>(dst);
  const auto* s = static_cast<const unsigned char*>(src);
  // Words whatever the alignment (x86_64 and AArch64 load and store unaligned words to normal
  // memory; the constant-size builtins below become plain moves): misaligned buffers used to
  // fall back to a byte loop, 8x the instructions (the page cache copies pages to any buffer).
  for (; n >= 32; n -= 32, d += 32, s += 32) {
    uint64_t w[4];
    __builtin_memcpy(w, s, 32);
    __builtin_memcpy(d, w, 32);
  }
  for (; n >= 8; n -= 8, d += 8, s += 8) {
    uint64_t w;
    __builtin_memcpy(&w, s, 8);
    __builtin_memcpy(d, &w, 8);
  }
  for (; n > 0; --n) *d++ = *s++;
  return dst;
}

void* memmove(void* dst, const void* src, size_t n) {
  auto* d = static_cast<unsigned char*>(dst);
  const auto* s = static_cast<const unsigned char*>(src);
  if (d == s || n == 0) return dst;
  if (d < s || d >= s + n) return memcpy(dst, src, n);
  for (size_t i = n; i > 0; --i) d[i - 1] = s[i - 1];
  return dst;
}

void* memset(void* dst, int value, size_t n) {
  auto* d = static_cast<unsigned char*>(dst);
  auto byte = static_cast<unsigned char>(value);
  if ((reinterpret_cast<uintptr_t>(d) & 7) == 0) {
    uint64_t word = byte * 0x0101010101010101ull;
    for (; n >= 8; n -= 8, d += 8) *reinterpret_cast<uint64_t*>(d) = word;
  }
  for (; n > 0; --n) *d++ = byte;
  return dst;
}

int memcmp(const void* a, const void* b, size_t n) {
  const auto* x = static_cast<const unsigned char*>(a);
  const auto* y = static_cast<const unsigned char*>(b);
  for (size_t i = 0; i < n; ++i) {
    if (x[i] != y[i]) return x[i] < y[i] ? -1 : 1;
  }
  return 0;
}

KTL_UNSAFE_BUFFER_END

}  // extern "C"

// A call through a vtable slot of an abstract class (Itanium ABI: kernel; Microsoft ABI: UEFI).
extern "C" [[noreturn]] void ferrite_panic(const char* message, const char* file, unsigned line,
                                           const char* function);
extern "C" [[noreturn]] void __cxa_pure_virtual() {
  ferrite_panic("pure virtual function called", __FILE__, __LINE__, __func__);
}
extern "C" [[noreturn]] int _purecall() {
  ferrite_panic("pure virtual function called", __FILE__, __LINE__, __func__);
}
