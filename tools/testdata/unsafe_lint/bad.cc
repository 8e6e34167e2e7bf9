// unsafe_lint_test: one of each finding, on the lines the test expects.
#include <ktl/macros.h>

unsigned long address(const int* p) { return reinterpret_cast<unsigned long>(p); }
auto view(int* p) { return Span<int>::from_raw(p, 4); }

void no_reason() {
  KTL_UNSAFE_BUFFER_BEGIN
  KTL_UNSAFE_BUFFER_END
}

void nested() {
  KTL_UNSAFE_BUFFER_BEGIN  // outer
  KTL_UNSAFE_BUFFER_BEGIN  // inner
  KTL_UNSAFE_BUFFER_END
}

void stray() { KTL_UNSAFE_BUFFER_END }

void unclosed() {
  KTL_UNSAFE_BUFFER_BEGIN  // never closed
}
