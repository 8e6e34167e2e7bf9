// unsafe_lint_test: code the checker accepts.
#include <ktl/macros.h>

// reinterpret_cast in a comment, and "from_raw(" in a string, do not count.
const char* kText = "reinterpret_cast<int*> and Span<int>::from_raw(p, 1)";
const char* kRaw = R"(reinterpret_cast)";
constexpr unsigned long kMillion = 1'000'000;  // a digit separator is not a character literal

unsigned long address(const int* p) {
  KTL_UNSAFE_BUFFER_BEGIN  // reading a pointer's value creates no access
  return reinterpret_cast<unsigned long>(p);
  KTL_UNSAFE_BUFFER_END
}

int* pointer(unsigned long a) {
#pragma clang unsafe_buffer_usage begin  // the raw pragma counts as a marker too
  return reinterpret_cast<int*>(a);
#pragma clang unsafe_buffer_usage end
}
