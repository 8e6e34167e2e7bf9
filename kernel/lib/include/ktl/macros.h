// Macros that C++20 modules cannot export. Include this header in the global module fragment
// (or at the top of an ordinary translation unit) where they are needed.
#pragma once

// --- Result propagation ---------------------------------------------------------------------------
// TRY(expr): evaluates a ktl::Result / ktl::Optional; on error returns the error from the
// enclosing function, otherwise yields the value. The Rust `?` operator, as SerenityOS spells it.
#define TRY(expr)                                         \
  ({                                                      \
    auto&& _ktl_try_result = (expr);                      \
    if (_ktl_try_result.is_err()) [[unlikely]]            \
      return ::ktl::Err(_ktl_try_result.release_error()); \
    _ktl_try_result.release_value();                      \
  })

// --- Clang thread-safety analysis (-Wthread-safety) -----------------------------------------------
#define KTL_TSA(x) __attribute__((x))
#define CAPABILITY(name) KTL_TSA(capability(name))
#define SCOPED_CAPABILITY KTL_TSA(scoped_lockable)
#define GUARDED_BY(m) KTL_TSA(guarded_by(m))
#define PT_GUARDED_BY(m) KTL_TSA(pt_guarded_by(m))
#define ACQUIRED_BEFORE(...) KTL_TSA(acquired_before(__VA_ARGS__))
#define ACQUIRED_AFTER(...) KTL_TSA(acquired_after(__VA_ARGS__))
#define REQUIRES(...) KTL_TSA(requires_capability(__VA_ARGS__))
#define EXCLUDES(...) KTL_TSA(locks_excluded(__VA_ARGS__))
#define ACQUIRE(...) KTL_TSA(acquire_capability(__VA_ARGS__))
#define RELEASE(...) KTL_TSA(release_capability(__VA_ARGS__))
#define TRY_ACQUIRE(...) KTL_TSA(try_acquire_capability(__VA_ARGS__))
#define RETURN_CAPABILITY(x) KTL_TSA(lock_returned(x))
#define ASSERT_CAPABILITY(x) KTL_TSA(assert_capability(x))
#define NO_THREAD_SAFETY_ANALYSIS KTL_TSA(no_thread_safety_analysis)

// --- Unsafe regions (-Wunsafe-buffer-usage) -------------------------------------------------------
// Raw pointer arithmetic, reinterpret_cast and Span::from_raw are allowed only between these two
// markers, the way Rust has `unsafe {}`. Every region carries a `//` comment on its BEGIN line
// saying why it is sound. The compiler (-Wunsafe-buffer-usage) finds pointer arithmetic outside
// them; tools/unsafe_lint.py (part of tools/lint.sh) the casts and from_raw, and counts them.
#define KTL_UNSAFE_BUFFER_BEGIN _Pragma("clang unsafe_buffer_usage begin")
#define KTL_UNSAFE_BUFFER_END _Pragma("clang unsafe_buffer_usage end")

#define KTL_LIFETIMEBOUND [[clang::lifetimebound]]
