// ktl.sha256: SHA-256 (FIPS 180-4). The loader checks the kernel file against the digest the build
// embedded in it (a Secure-Boot-signed loader thereby vouches for the kernel too); the kernel's
// shell hashes files with it (sha256sum), which the QEMU tests compare with the host's digests.
//
// Pure code over byte spans: the same module runs in the loader, the kernel and host tests against the
// FIPS 180-4 / NIST CAVP vectors. Not constant time (it hashes public data).
module;

#include <ktl/macros.h>

export module ktl.sha256;

import ktl;

export namespace ktl {

struct Sha256Digest {
  ktl::Array<ktl::u8, 32> bytes{};
  friend constexpr bool operator==(const Sha256Digest& a, const Sha256Digest& b) {
    for (ktl::usize i = 0; i < 32; ++i) {
      if (a.bytes[i] != b.bytes[i]) return false;
    }
    return true;
  }
};

class Sha256 {
 public:
  Sha256();
  // Feeds more message bytes; any split of a message gives the same digest.
  void update(ktl::Span<const ktl::u8> data);
  // Pads, finishes and returns the digest. The object must not be used afterwards.
  [[nodiscard]] Sha256Digest finish();

 private:
  void compress(ktl::Span<const ktl::u8> block);  // exactly 64 bytes

  ktl::Array<ktl::u32, 8> state_;
  ktl::Array<ktl::u8, 64> buffer_{};
  ktl::usize buffered_ = 0;
  ktl::u64 total_bytes_ = 0;
};

[[nodiscard]] Sha256Digest sha256(ktl::Span<const ktl::u8> data);

// Writes the digest as 64 lower-case hex digits.
void format_value(ktl::FormatSink& sink, const Sha256Digest& digest, const ktl::FormatSpec& spec);

}  // namespace ktl
