// ktl.core: the vocabulary every other module uses: fixed-width integers, move/forward, the few
// type traits we need (from clang builtins, so the kernel needs no library headers), source
// locations, checked integer arithmetic, and the panic entry point.
module;

#include <ktl/macros.h>

export module ktl.core;

export namespace ktl {

using u8 = unsigned char;
using u16 = unsigned short;
using u32 = unsigned int;
using u64 = unsigned long long;
using i8 = signed char;
using i16 = short;
using i32 = int;
using i64 = long long;
using usize = decltype(sizeof 0);
using isize = decltype(static_cast<char*>(nullptr) - static_cast<char*>(nullptr));
using uptr = __UINTPTR_TYPE__;
using nullptr_t = decltype(nullptr);

static_assert(sizeof(u64) == 8 && sizeof(u32) == 4 && sizeof(u16) == 2);
static_assert(sizeof(usize) == 8, "ferrite targets are 64-bit");

// --- type traits ---------------------------------------------------------------------------------
template <class T>
using RemoveReference = __remove_reference_t(T);
template <class T>
using RemoveCvRef = __remove_cvref(T);
template <class T>
struct TypeIdentity {
  using Type = T;
};
template <class T>
using TypeIdentityT = typename TypeIdentity<T>::Type;

template <class A, class B>
inline constexpr bool is_same = __is_same(A, B);
template <class T>
inline constexpr bool is_integral = __is_integral(T);
template <class T>
inline constexpr bool is_signed = __is_signed(T);
template <class T>
inline constexpr bool is_enum = __is_enum(T);
template <class T>
inline constexpr bool is_pointer = __is_pointer(T);
template <class T>
inline constexpr bool is_trivially_copyable = __is_trivially_copyable(T);
template <class T>
inline constexpr bool is_trivially_destructible = __is_trivially_destructible(T);
template <class T>
inline constexpr bool is_copy_constructible = __is_constructible(T, const T&);
template <class T>
inline constexpr bool is_move_constructible = __is_constructible(T, T&&);
template <class T>
inline constexpr bool is_lvalue_reference = __is_lvalue_reference(T);
template <class T>
inline constexpr bool is_const = __is_const(T);
template <class T>
using UnderlyingType = __underlying_type(T);

template <class T>
concept Integral = is_integral<T>;

// An enum that names its values: a `to_string(E)` found by argument-dependent lookup (declared next
// to the enum, in its namespace) returning a never-null `const char*`. The one way an enum gets its
// text (every error enum has one); ktl.format prints it by this name and ktl.result's panics
// append it. See docs/CONVENTIONS.md.
template <class E>
concept NamedEnum = is_enum<E> && requires(E e) { static_cast<const char*>(to_string(e)); };
template <class T>
concept UnsignedIntegral = is_integral<T> && !is_signed<T>;

// --- utility -------------------------------------------------------------------------------------
template <class T>
[[nodiscard]] constexpr RemoveReference<T>&& move(T&& v) noexcept {
  return static_cast<RemoveReference<T>&&>(v);
}
template <class T>
[[nodiscard]] constexpr T&& forward(RemoveReference<T>& v) noexcept {
  return static_cast<T&&>(v);
}
template <class T>
[[nodiscard]] constexpr T&& forward(RemoveReference<T>&& v) noexcept {
  return static_cast<T&&>(v);
}
template <class T, class U = T>
constexpr T exchange(T& slot, U&& replacement) {
  T old = move(slot);
  slot = forward<U>(replacement);
  return old;
}
template <class T>
constexpr void swap(T& a, T& b) {
  T tmp = move(a);
  a = move(b);
  b = move(tmp);
}
template <class E>
  requires is_enum<E>
[[nodiscard]] constexpr UnderlyingType<E> to_underlying(E e) {
  return static_cast<UnderlyingType<E>>(e);
}
template <class T>
[[nodiscard]] constexpr const T& min(const T& a, const T& b) {
  return b < a ? b : a;
}
template <class T>
[[nodiscard]] constexpr const T& max(const T& a, const T& b) {
  return a < b ? b : a;
}

template <class To, class From>
  requires(sizeof(To) == sizeof(From) && is_trivially_copyable<To> && is_trivially_copyable<From>)
[[nodiscard]] constexpr To bit_cast(const From& from) {
  return __builtin_bit_cast(To, from);
}

// The address of an object or a function as a number (to print, compare, align or hash; to turn a
// number back into a pointer, see mm.addr's VirtAddr::as_ptr).
template <class T>
[[nodiscard]] uptr address_of(const volatile T* p) {
  KTL_UNSAFE_BUFFER_BEGIN  // reading a pointer's value as an integer creates no access
  return reinterpret_cast<uptr>(p);
  KTL_UNSAFE_BUFFER_END
}
template <class R, class... A>
[[nodiscard]] uptr address_of(R (*f)(A...)) {
  KTL_UNSAFE_BUFFER_BEGIN  // reading a pointer's value as an integer creates no access
  return reinterpret_cast<uptr>(f);
  KTL_UNSAFE_BUFFER_END
}

// --- source locations ----------------------------------------------------------------------------
class SourceLocation {
 public:
  [[nodiscard]] static consteval SourceLocation current(const char* file = __builtin_FILE(),
                                                        u32 line = __builtin_LINE(),
                                                        const char* function = __builtin_FUNCTION()) {
    return SourceLocation(file, line, function);
  }
  [[nodiscard]] constexpr const char* file() const { return file_; }
  [[nodiscard]] constexpr u32 line() const { return line_; }
  [[nodiscard]] constexpr const char* function() const { return function_; }

 private:
  constexpr SourceLocation(const char* file, u32 line, const char* function)
      : file_(file), line_(line), function_(function) {}
  const char* file_;
  u32 line_;
  const char* function_;
};

// --- panic ---------------------------------------------------------------------------------------
// Broken invariants end here. The environment provides ferrite_panic (the kernel prints a report
// and halts; host test binaries print to stderr and abort, which death tests observe).
[[noreturn]] void panic(const char* message, SourceLocation where = SourceLocation::current());
// The same with what went wrong appended, "message: detail" (an error's to_string). A null
// detail is left out.
[[noreturn]] void panic(const char* message, const char* detail,
                        SourceLocation where = SourceLocation::current());

// Checks an invariant in every build mode (this is not a debug-only assert).
constexpr void check(bool condition, const char* message, SourceLocation where = SourceLocation::current()) {
  if (!condition) [[unlikely]] {
    panic(message, where);
  }
}

// --- checked arithmetic --------------------------------------------------------------------------
template <Integral T>
struct Checked {
  T value;
  bool overflow;
};
template <Integral T>
[[nodiscard]] constexpr Checked<T> checked_add(T a, T b) {
  T r{};
  bool o = __builtin_add_overflow(a, b, &r);
  return {r, o};
}
template <Integral T>
[[nodiscard]] constexpr Checked<T> checked_sub(T a, T b) {
  T r{};
  bool o = __builtin_sub_overflow(a, b, &r);
  return {r, o};
}
template <Integral T>
[[nodiscard]] constexpr Checked<T> checked_mul(T a, T b) {
  T r{};
  bool o = __builtin_mul_overflow(a, b, &r);
  return {r, o};
}

// --- bit operations ------------------------------------------------------------------------------
template <UnsignedIntegral T>
[[nodiscard]] constexpr bool is_power_of_two(T v) {
  return v != 0 && (v & (v - 1)) == 0;
}
// `align` must be a power of two. align_up saturates nothing: callers that can overflow check
// with checked_align_up.
template <UnsignedIntegral T>
[[nodiscard]] constexpr T align_down(T v, T align) {
  return v & ~(align - 1);
}
template <UnsignedIntegral T>
[[nodiscard]] constexpr T align_up(T v, T align) {
  return (v + align - 1) & ~(align - 1);
}
template <UnsignedIntegral T>
[[nodiscard]] constexpr Checked<T> checked_align_up(T v, T align) {
  auto sum = checked_add<T>(v, align - 1);
  return {static_cast<T>(sum.value & ~(align - 1)), sum.overflow};
}
template <UnsignedIntegral T>
[[nodiscard]] constexpr bool is_aligned(T v, T align) {
  return (v & (align - 1)) == 0;
}
[[nodiscard]] constexpr u32 countr_zero(u64 v) { return v == 0 ? 64 : static_cast<u32>(__builtin_ctzll(v)); }
[[nodiscard]] constexpr u32 countl_zero(u64 v) { return v == 0 ? 64 : static_cast<u32>(__builtin_clzll(v)); }
[[nodiscard]] constexpr u32 popcount(u64 v) { return static_cast<u32>(__builtin_popcountll(v)); }
// floor(log2(v)) for v > 0.
[[nodiscard]] constexpr u32 log2_floor(u64 v) { return 63 - countl_zero(v); }
[[nodiscard]] constexpr u64 bit_ceil(u64 v) { return v <= 1 ? 1 : u64{1} << (64 - countl_zero(v - 1)); }

// Disables copying; moving stays as declared by the class. Use as a base: `: ktl::NoCopy`.
struct NoCopy {
  NoCopy() = default;
  NoCopy(const NoCopy&) = delete;
  NoCopy& operator=(const NoCopy&) = delete;
  NoCopy(NoCopy&&) = default;
  NoCopy& operator=(NoCopy&&) = default;
};

}  // namespace ktl

// The environment's panic hook (kernel/panic in the kernel, testing/ on the host). C linkage so a
// plain translation unit can define it without attaching to this module.
export extern "C" [[noreturn]] void ferrite_panic(const char* message, const char* file, unsigned line,
                                                  const char* function);

namespace ktl {
void panic(const char* message, SourceLocation where) {
  ferrite_panic(message, where.file(), where.line(), where.function());
}
void panic(const char* message, const char* detail, SourceLocation where) {
  if (detail == nullptr) panic(message, where);
  // A panic does not return, so one buffer serves every panic (a nested one overwrites it after
  // the first report has been written).
  static char text[256];
  usize n = 0;
  auto append = [&](const char* s) {
#pragma clang unsafe_buffer_usage begin  // s is NUL-terminated; n + 1 < sizeof text bounds the writes
    for (; *s != '\0' && n + 1 < sizeof text; ++s) text[n++] = *s;
#pragma clang unsafe_buffer_usage end
  };
  append(message);
  append(": ");
  append(detail);
#pragma clang unsafe_buffer_usage begin  // n < sizeof text
  text[n] = '\0';
#pragma clang unsafe_buffer_usage end
  ferrite_panic(text, where.file(), where.line(), where.function());
}
}  // namespace ktl
