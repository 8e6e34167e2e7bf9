#include "testing/seed.h"

#include <cstdio>
#include <cstdlib>
#include <random>

namespace ferrite_testing {

std::optional<std::uint64_t> parse_u64(std::string_view text) {
  unsigned base = 10;
  if (text.size() > 2 && text[0] == '0' && (text[1] == 'x' || text[1] == 'X')) {
    base = 16;
    text.remove_prefix(2);
  }
  if (text.empty()) return std::nullopt;
  std::uint64_t value = 0;
  for (char c : text) {
    unsigned digit;
    if (c >= '0' && c <= '9') {
      digit = static_cast<unsigned>(c - '0');
    } else if (base == 16 && c >= 'a' && c <= 'f') {
      digit = static_cast<unsigned>(c - 'a') + 10;
    } else if (base == 16 && c >= 'A' && c <= 'F') {
      digit = static_cast<unsigned>(c - 'A') + 10;
    } else {
      return std::nullopt;
    }
    if (digit >= base) return std::nullopt;
    if (value > (UINT64_MAX - digit) / base) return std::nullopt;  // overflow
    value = value * base + digit;
  }
  return value;
}

std::uint64_t env_u64(const char* name, std::uint64_t fallback) {
  const char* text = std::getenv(name);
  if (text == nullptr || *text == '\0') return fallback;
  std::optional<std::uint64_t> value = parse_u64(text);
  if (!value) {
    std::fprintf(stderr, "%s=\"%s\" is not a decimal or 0x-hex 64-bit number\n", name, text);
    std::abort();
  }
  return *value;
}

namespace {

std::uint64_t announce(std::uint64_t seed) {
  std::fprintf(stderr, "seed %llu (replay with FERRITE_SEED=%llu)\n", static_cast<unsigned long long>(seed),
               static_cast<unsigned long long>(seed));
  return seed;
}

}  // namespace

std::uint64_t test_seed() {
  static const std::uint64_t seed = [] {
    std::random_device device;
    const std::uint64_t random = (std::uint64_t{device()} << 32) | device();
    return announce(env_u64("FERRITE_SEED", random));
  }();
  return seed;
}

std::uint64_t test_seed(std::uint64_t fallback) {
  static const std::uint64_t seed = announce(env_u64("FERRITE_SEED", fallback));
  return seed;
}

}  // namespace ferrite_testing
