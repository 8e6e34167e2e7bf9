module;

#include <ktl/macros.h>

module ktl.sha256;

import ktl;

namespace ktl {

namespace {

using ktl::u32;
using ktl::u64;
using ktl::u8;
using ktl::usize;

constexpr ktl::Array<u32, 64> kRoundConstants = {{
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
}};

constexpr ktl::Array<u32, 8> kInitialState = {{
    0x6a09e667,
    0xbb67ae85,
    0x3c6ef372,
    0xa54ff53a,
    0x510e527f,
    0x9b05688c,
    0x1f83d9ab,
    0x5be0cd19,
}};

constexpr u32 rotr(u32 x, u32 n) { return (x >> n) | (x << (32 - n)); }

}  // namespace

Sha256::Sha256() : state_(kInitialState) {}

void Sha256::compress(ktl::Span<const u8> block) {
  ktl::Array<u32, 64> w{};
  for (usize i = 0; i < 16; ++i) {
    w[i] = (u32{block[4 * i]} << 24) | (u32{block[4 * i + 1]} << 16) | (u32{block[4 * i + 2]} << 8) |
           u32{block[4 * i + 3]};
  }
  for (usize i = 16; i < 64; ++i) {
    u32 s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
    u32 s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
    w[i] = w[i - 16] + s0 + w[i - 7] + s1;
  }
  u32 a = state_[0], b = state_[1], c = state_[2], d = state_[3];
  u32 e = state_[4], f = state_[5], g = state_[6], h = state_[7];
  for (usize i = 0; i < 64; ++i) {
    u32 big_s1 = rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25);
    u32 ch = (e & f) ^ (~e & g);
    u32 t1 = h + big_s1 + ch + kRoundConstants[i] + w[i];
    u32 big_s0 = rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22);
    u32 maj = (a & b) ^ (a & c) ^ (b & c);
    u32 t2 = big_s0 + maj;
    h = g;
    g = f;
    f = e;
    e = d + t1;
    d = c;
    c = b;
    b = a;
    a = t1 + t2;
  }
  state_[0] += a;
  state_[1] += b;
  state_[2] += c;
  state_[3] += d;
  state_[4] += e;
  state_[5] += f;
  state_[6] += g;
  state_[7] += h;
}

void Sha256::update(ktl::Span<const u8> data) {
  total_bytes_ += data.size();
  usize i = 0;
  if (buffered_ > 0) {
    usize take = ktl::min(data.size(), 64 - buffered_);
    ktl::copy_bytes(buffer_.span().subspan(buffered_, take), data.first(take));
    buffered_ += take;
    i = take;
    if (buffered_ < 64) return;
    compress(ktl::Span<const u8>(buffer_.span()));
    buffered_ = 0;
  }
  for (; i + 64 <= data.size(); i += 64) compress(data.subspan(i, 64));
  usize rest = data.size() - i;
  ktl::copy_bytes(buffer_.span().first(rest), data.subspan(i, rest));
  buffered_ = rest;
}

Sha256Digest Sha256::finish() {
  u64 bit_length = total_bytes_ * 8;
  // 0x80, zeros up to 56 mod 64, then the length as a 64-bit big-endian number.
  ktl::Array<u8, 72> pad{};
  pad[0] = 0x80;
  usize pad_len = (buffered_ < 56 ? 56 - buffered_ : 120 - buffered_);
  for (usize i = 0; i < 8; ++i) pad[pad_len + i] = static_cast<u8>(bit_length >> (56 - 8 * i));
  u64 saved_total = total_bytes_;
  update(ktl::Span<const u8>(pad.span()).first(pad_len + 8));
  total_bytes_ = saved_total;
  ktl::check(buffered_ == 0, "sha256: padding did not end on a block boundary");
  Sha256Digest out{};
  for (usize i = 0; i < 8; ++i) {
    for (usize j = 0; j < 4; ++j) out.bytes[4 * i + j] = static_cast<u8>(state_[i] >> (24 - 8 * j));
  }
  return out;
}

Sha256Digest sha256(ktl::Span<const u8> data) {
  Sha256 h;
  h.update(data);
  return h.finish();
}

void format_value(ktl::FormatSink& sink, const Sha256Digest& digest, const ktl::FormatSpec&) {
  constexpr const char* kHex = "0123456789abcdef";
  ktl::Array<char, 64> text{};
  for (usize i = 0; i < 32; ++i) {
    text[2 * i] = ktl::StringView(kHex)[digest.bytes[i] >> 4];
    text[2 * i + 1] = ktl::StringView(kHex)[digest.bytes[i] & 0xf];
  }
  sink.write(ktl::StringView(ktl::Span<const char>(text)));
}

}  // namespace ktl
