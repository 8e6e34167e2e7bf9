// Host tests of ktl.sha256 against the FIPS 180-4 examples and NIST CAVP SHA256ShortMsg /
// SHA256LongMsg vectors, plus split-invariance (any chunking gives the one-shot digest).
#include <gtest/gtest.h>
#include <ktl/macros.h>
#include "testing/seed.h"

#include <cstdlib>
#include <random>
#include <string>
#include <vector>

import ktl;
import ktl.sha256;

namespace {

std::string hex(const ktl::Sha256Digest& d) {
  ktl::InlineString<80> s;
  ktl::format_to(s, "{}", d);
  return std::string(s.c_str());
}

std::vector<ktl::u8> from_hex(const std::string& h) {
  std::vector<ktl::u8> out;
  for (size_t i = 0; i + 1 < h.size(); i += 2)
    out.push_back(static_cast<ktl::u8>(std::stoi(h.substr(i, 2), nullptr, 16)));
  return out;
}

ktl::Span<const ktl::u8> span(const std::vector<ktl::u8>& v) { return ktl::Span<const ktl::u8>(v); }
ktl::Span<const ktl::u8> span(const std::string& s) {
  KTL_UNSAFE_BUFFER_BEGIN  // the string's characters, read as bytes
  return ktl::Span<const ktl::u8>::from_raw(reinterpret_cast<const ktl::u8*>(s.data()), s.size());
  KTL_UNSAFE_BUFFER_END
}

TEST(Sha256, Fips180Examples) {
  EXPECT_EQ(hex(ktl::sha256(span(std::string("")))),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(hex(ktl::sha256(span(std::string("abc")))),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(hex(ktl::sha256(span(std::string("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")))),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(hex(ktl::sha256(span(std::string("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijk"
                                             "lmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu")))),
            "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
}

TEST(Sha256, MillionAs) {
  std::string a(1000000, 'a');
  EXPECT_EQ(hex(ktl::sha256(span(a))), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

// CAVP SHA256ShortMsg.rsp (byte-oriented): lengths around the 55/56/64-byte padding boundaries.
TEST(Sha256, CavpShortMessages) {
  struct Vector {
    const char* msg;
    const char* md;
  } vectors[] = {
      {"d3", "28969cdfa74a12c82f3bad960b0b000aca2ac329deea5c2328ebc6f2ba9802c1"},
      {"11af", "5ca7133fa735326081558ac312c620eeca9970d1e70a4b95533d956f072d1f98"},
      {"74ba2521", "b16aa56be3880d18cd41e68384cf1ec8c17680c45a02b1575dc1518923ae8b0e"},
      {"5738c929c4f4ccb6", "963bb88f27f512777aab6c8b1a02c70ec0ad651d428f870036e1917120fb48bf"},
      {"0a27847cdc98bd6f62220b046edd762b",
       "80c25ec1600587e7f28b18b1b18e3cdc89928e39cab3bc25e4d4a4c139bcedc4"},
      {"47991301156d1d977c0338efbcad41004133aefbca6bcf7e",
       "feeb4b2b59fec8fdb1e55194a493d8c871757b5723675e93d3ac034b380b7fc9"},
  };
  for (const auto& v : vectors) {
    EXPECT_EQ(hex(ktl::sha256(span(from_hex(v.msg)))), v.md) << "message " << v.msg;
  }
}

TEST(Sha256, AnySplitGivesTheOneShotDigest) {
  const auto seed = static_cast<unsigned>(ferrite_testing::test_seed(20240603u));
  SCOPED_TRACE("FERRITE_SEED=" + std::to_string(seed));
  std::mt19937 rng(seed);
  for (int round = 0; round < 200; ++round) {
    std::vector<ktl::u8> msg(rng() % 700);
    for (auto& b : msg) b = static_cast<ktl::u8>(rng());
    ktl::Sha256Digest whole = ktl::sha256(span(msg));
    ktl::Sha256 h;
    size_t i = 0;
    while (i < msg.size()) {
      size_t n = std::min<size_t>(msg.size() - i, rng() % 130);
      h.update(span(msg).subspan(i, n));
      i += n;
    }
    EXPECT_EQ(h.finish(), whole) << "length " << msg.size();
  }
}

// Every length from 0 to 199 (all padding cases: 55, 56, 63, 64, 119, 120 ...): the digest of the
// 200 concatenated digests, computed with Python's hashlib.
TEST(Sha256, EveryPaddingLengthMatchesAReference) {
  std::vector<ktl::u8> all;
  for (int i = 0; i < 200; ++i) {
    std::vector<ktl::u8> msg(static_cast<size_t>(i));
    for (int j = 0; j < i; ++j) msg[static_cast<size_t>(j)] = static_cast<ktl::u8>((j * 7 + 3) & 0xff);
    auto d = ktl::sha256(span(msg));
    for (ktl::u8 b : d.bytes) all.push_back(b);
  }
  EXPECT_EQ(hex(ktl::sha256(span(all))), "615d67a99b8c846e1f0582dfe127019e93c33a66e89ced6a4f81f932c82ece87");
}

TEST(Sha256, DifferentInputsDiffer) {
  std::vector<ktl::u8> a(4096, 0x5a);
  std::vector<ktl::u8> b = a;
  b[2048] ^= 1;
  EXPECT_NE(ktl::sha256(span(a)), ktl::sha256(span(b)));
}

}  // namespace
