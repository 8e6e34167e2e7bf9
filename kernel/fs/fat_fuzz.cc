// libFuzzer target for kernel.fs.fat: the input is a whole disk (a FAT32 volume, or an MBR/GPT
// holding one, or anything else), served by a BlockSource over a copy of it.
//
// Per input: mount; on success walk the whole tree (bounded: kMaxEntries entries, kMaxDepth
// levels, kReadBudget bytes read), read every file, look every listed name up again, and write
// one file's bytes back in place.
//
// Checks (an oracle independent of the module's internals):
//   - every access of the source lies inside it (a read or write past its end aborts);
//   - every error is a named FsError; a Corrupt error names a Corruption (last_corruption /
//     MountDetail), a NotFat32 one is not about a Corrupt;
//   - a file read whole equals the same file read in 700-byte chunks and what a reference reader
//     (below: the BPB's geometry and the FAT's links followed cluster by cluster) finds; no read
//     returns more than asked or more than the size allows;
//   - a listed name (without '/', at most 255 bytes, not "." or "..") is found again by lookup;
//   - writing back the bytes just read leaves the disk byte for byte as it was, and a write past
//     the end fails with NoSpace and changes nothing.
//
// Built with -DFERRITE_FUZZER by fuzz_test; otherwise main() replays the files given as arguments
// or, with none, the checked-in corpus (kernel/fs/fat_corpus, written by make_corpus.py).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "testing/fuzz/corpus_replay.h"

import ktl;
import kernel.fs.fat;

// The harness is a judge, not a target: no coverage feedback from its own branches.
#pragma clang attribute push(__attribute__((no_sanitize("coverage"))), apply_to = function)

namespace {

namespace fs = kernel::fs;
using fs::FsError;
using u64 = ktl::u64;
using u32 = ktl::u32;
using u8 = ktl::u8;
using Bytes = std::vector<u8>;

constexpr size_t kMaxEntries = 256;
constexpr size_t kMaxDepth = 8;
constexpr size_t kReadBudget = 256 << 10;
constexpr size_t kChunk = 700;

[[noreturn]] void fail(const char* what, u64 a = 0, u64 b = 0) {
  std::fprintf(stderr, "fat_fuzz: %s (%#llx, %#llx)\n", what, static_cast<unsigned long long>(a),
               static_cast<unsigned long long>(b));
  std::abort();
}

class Disk final : public fs::BlockSource {
 public:
  explicit Disk(Bytes& bytes) : bytes_(bytes) {}
  ktl::Result<void, FsError> read(u64 offset, ktl::Span<u8> out) override {
    if (offset > bytes_.size() || out.size() > bytes_.size() - offset)
      fail("read past the source", offset, out.size());
    if (!out.empty()) std::memcpy(out.data(), bytes_.data() + offset, out.size());
    return ktl::ok();
  }
  ktl::Result<void, FsError> write(u64 offset, ktl::Span<const u8> in) override {
    if (offset > bytes_.size() || in.size() > bytes_.size() - offset)
      fail("write past the source", offset, in.size());
    if (!in.empty()) std::memcpy(bytes_.data() + offset, in.data(), in.size());
    return ktl::ok();
  }
  u64 size_bytes() const override { return bytes_.size(); }

 private:
  Bytes& bytes_;
};

void check_error(FsError e, const fs::FatVolume* v) {
  if (ktl::to_underlying(e) > ktl::to_underlying(FsError::DeviceTooSmall))
    fail("unnamed error", ktl::to_underlying(e));
  if (e == FsError::Corrupt && v != nullptr && v->last_corruption() == fs::Corruption::None)
    fail("Corrupt without a Corruption");
}

u64 le(const Bytes& b, u64 at, int n) {
  u64 v = 0;
  for (int i = n - 1; i >= 0; --i) v = (v << 8) | b[at + static_cast<u64>(i)];
  return v;
}

// A file's bytes by the FAT32 rules, one cluster at a time, from the volume `info` describes. Only
// called after the module read the file, so the chain is trusted as far as `size` needs it; a
// link outside the FAT or the disk is a failure of the module's checks.
Bytes reference_read(const Bytes& disk, const fs::FatVolume::Info& info, const fs::Node& node, size_t size) {
  const u64 base = info.volume_offset;
  const u64 bps = le(disk, base + 11, 2);
  const u64 fat = base + le(disk, base + 14, 2) * bps;
  const u64 data = fat + disk[base + 16] * le(disk, base + 36, 4) * bps;
  Bytes out;
  u32 c = node.first_cluster;
  while (out.size() < size) {
    if (c < 2 || c > info.total_clusters + 1) fail("reference: the chain leaves the volume", c);
    const u64 at = data + u64{c - 2} * info.cluster_bytes;
    if (at + info.cluster_bytes > disk.size()) fail("reference: a cluster past the disk", c);
    const size_t n = std::min<size_t>(info.cluster_bytes, size - out.size());
    out.insert(out.end(), disk.begin() + static_cast<long>(at), disk.begin() + static_cast<long>(at + n));
    c = static_cast<u32>(le(disk, fat + u64{c} * 4, 4) & 0x0FFFFFFF);
  }
  return out;
}

struct Walk {
  fs::FatVolume& v;
  Bytes& disk;
  fs::FatVolume::Info info;
  size_t entries = 0;
  size_t read_bytes = 0;
  bool wrote = false;

  void file(const fs::Node& node) {
    if (read_bytes >= kReadBudget) return;
    const size_t size = std::min<size_t>(node.size, kReadBudget - read_bytes);
    Bytes whole(size + 1);
    auto r = v.read(node, 0, ktl::Span<u8>(whole));
    if (r.is_err()) {
      check_error(r.error(), &v);
      return;
    }
    if (r.value() > whole.size() || r.value() > node.size) fail("read more than asked", r.value(), node.size);
    if (r.value() != std::min<size_t>(whole.size(), node.size)) fail("short read inside the file", r.value());
    whole.resize(r.value());
    read_bytes += whole.size();
    Bytes chunked;
    Bytes buf(kChunk);
    while (chunked.size() < whole.size()) {
      auto c = v.read(node, chunked.size(), ktl::Span<u8>(buf));
      if (c.is_err()) fail("a chunk failed where the whole read worked", ktl::to_underlying(c.error()));
      if (c.value() == 0 || c.value() > kChunk) fail("chunk size", c.value());
      chunked.insert(chunked.end(), buf.begin(), buf.begin() + static_cast<long>(c.value()));
    }
    chunked.resize(whole.size());
    if (chunked != whole) fail("chunked read differs from the whole read");
    if (reference_read(disk, info, node, whole.size()) != whole)
      fail("the reference reader reads other bytes");
    if (whole.size() == node.size) {
      auto end = v.read(node, node.size, ktl::Span<u8>(buf));
      if (end.is_err() || end.value() != 0) fail("read at the end of the file");
    }
    if (!wrote && !whole.empty()) {
      wrote = true;
      const Bytes before = disk;
      auto w = v.write(node, 0, ktl::Span<const u8>(whole));
      if (w.is_err() || w.value() != whole.size()) fail("writing back what was read");
      if (disk != before) fail("writing back what was read changed the disk");
      auto past = v.write(node, node.size, ktl::Span<const u8>(whole).first(1));
      if (past.is_ok() || past.error() != FsError::NoSpace)
        fail("a write past the end did not fail with NoSpace");
      if (disk != before) fail("a refused write changed the disk");
    }
  }

  // `findable`: every component of `path` is the first entry of its directory with that name,
  // so lookup must find exactly the entries listed here.
  void dir(const fs::Node& node, const std::string& path, size_t depth, bool findable) {
    struct Child {
      std::string name;
      std::string short_name;
      fs::Node node;
    };
    std::vector<Child> children;
    auto r = v.list(node, [&](const fs::DirEntry& e) {
      if (entries >= kMaxEntries) return fs::Visit::Stop;
      ++entries;
      if (e.name().size() > fs::kMaxNameBytes || e.short_name().size() > 12) fail("name too long");
      if (e.name().empty() && e.long_name) fail("an empty long name");
      children.push_back({std::string(e.name().data(), e.name().size()),
                          std::string(e.short_name().data(), e.short_name().size()), e.node});
      return fs::Visit::Continue;
    });
    if (r.is_err()) {
      check_error(r.error(), &v);
      return;
    }
    for (size_t i = 0; i < children.size(); ++i) {
      const Child& c = children[i];
      bool first = true;
      for (size_t j = 0; j < i; ++j)
        first = first && !same_ci(children[j].name, c.name) && !same_ci(children[j].short_name, c.name);
      const bool plain = !c.name.empty() && c.name.size() <= 255 && c.name.find('/') == std::string::npos &&
                         c.name != "." && c.name != ".." && first;
      const std::string child = path + "/" + c.name;
      if (findable && plain) {
        auto found = v.lookup(ktl::StringView(ktl::Span<const char>(child)));
        if (found.is_err()) fail("a listed name is not found", ktl::to_underlying(found.error()));
        if (found.value().dirent_offset != c.node.dirent_offset) fail("lookup found another entry");
      }
      if (c.node.kind == fs::NodeKind::Directory) {
        if (depth + 1 < kMaxDepth) dir(c.node, child, depth + 1, findable && plain);
      } else {
        file(c.node);
      }
    }
  }

  static bool same_ci(const std::string& a, const std::string& b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i) {
      auto up = [](char ch) { return ch >= 'a' && ch <= 'z' ? static_cast<char>(ch - 32) : ch; };
      if (up(a[i]) != up(b[i])) return false;
    }
    return true;
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  Bytes disk(data, data + size);
  Disk source(disk);
  fs::MountDetail detail;
  auto m = fs::FatVolume::mount(source, detail);
  if (m.is_err()) {
    check_error(m.error(), nullptr);
    if (m.error() == FsError::Corrupt && detail.corruption == fs::Corruption::None)
      fail("mount: Corrupt without why");
    return 0;
  }
  fs::FatVolume& v = m.value();
  const fs::FatVolume::Info info = v.info();
  if (info.volume_offset > disk.size() || info.volume_bytes > disk.size() - info.volume_offset)
    fail("volume outside the disk", info.volume_offset, info.volume_bytes);
  if (info.free_clusters.has_value() && info.free_clusters.value() > info.total_clusters)
    fail("free > total");
  Walk walk{v, disk, info};
  walk.dir(v.root(), "", 0, true);
  auto root = v.lookup("/");
  if (root.is_err() || root.value().first_cluster != v.root().first_cluster) fail("lookup(\"/\")");
  return 0;
}

#pragma clang attribute pop

#if !defined(FERRITE_FUZZER)
int main(int argc, char** argv) {
  return ferrite_fuzz::replay_corpus(argc, argv, "kernel/fs/fat_corpus", LLVMFuzzerTestOneInput, "fat_fuzz");
}
#endif
