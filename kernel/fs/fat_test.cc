// kernel.fs.fat on the host: the real data disk (//:data_disk, built by tools/image/mkfat.sh from
// testing/data_disk/) mounted from memory, every file read and compared with its source bytes and
// the manifest's SHA-256; listings, long names, paths, in-place writes; then copies of the image
// with patched bytes for each corruption the module must report, foreign and missing file
// systems, and the same volume inside an MBR and a GPT.
#include <gtest/gtest.h>
#include <ktl/macros.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

import ktl;
import kernel.fs.fat;
import ktl.sha256;

namespace {

namespace fs = kernel::fs;
using fs::Corruption;
using fs::FsError;
using Bytes = std::vector<std::uint8_t>;
using u8 = ktl::u8;
using u32 = ktl::u32;
using u64 = ktl::u64;

// --- a block device in memory ------------------------------------------------------------------------

class MemoryBlockSource final : public fs::BlockSource {
 public:
  explicit MemoryBlockSource(Bytes bytes) : bytes_(std::move(bytes)), size_(bytes_.size()) {}
  ktl::Result<void, FsError> read(u64 offset, ktl::Span<u8> out) override {
    ++reads_;
    if (fail_reads_after_ >= 0 && reads_ > static_cast<u64>(fail_reads_after_)) return ktl::Err(FsError::Io);
    if (offset > bytes_.size() || out.size() > bytes_.size() - offset) return ktl::Err(FsError::OutOfRange);
    std::memcpy(out.data(), bytes_.data() + offset, out.size());
    return ktl::ok();
  }
  ktl::Result<void, FsError> write(u64 offset, ktl::Span<const u8> in) override {
    if (read_only_) return ktl::Err(FsError::ReadOnly);
    if (offset > bytes_.size() || in.size() > bytes_.size() - offset) return ktl::Err(FsError::OutOfRange);
    std::memcpy(bytes_.data() + offset, in.data(), in.size());
    return ktl::ok();
  }
  u64 size_bytes() const override { return size_; }

  Bytes& bytes() { return bytes_; }
  void set_read_only() { read_only_ = true; }
  // Claims `size` bytes while holding fewer (a device whose reads fail past its real end).
  void claim_size(u64 size) { size_ = size; }
  void fail_reads_after(long n) {
    fail_reads_after_ = n;
    reads_ = 0;
  }

 private:
  Bytes bytes_;
  u64 size_;
  bool read_only_ = false;
  long fail_reads_after_ = -1;
  u64 reads_ = 0;
};

Bytes read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in) << path << " is not in the test's runfiles";
  return Bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

const Bytes& image() {
  static const Bytes bytes = read_file("data_disk.img");
  return bytes;
}

void put16(Bytes& b, size_t at, u32 v) {
  b[at] = static_cast<u8>(v);
  b[at + 1] = static_cast<u8>(v >> 8);
}

// --- SHA-256 (ktl.sha256, the kernel's), to check the manifest's digests (Python's hashlib) ------

std::string sha256(const Bytes& data) {
  KTL_UNSAFE_BUFFER_BEGIN  // the vector's size() bytes
  auto bytes = ktl::Span<const u8>::from_raw(data.data(), data.size());
  KTL_UNSAFE_BUFFER_END
  ktl::InlineString<72> hex;
  ktl::format_to(hex, "{}", ktl::sha256(bytes));
  return std::string(hex.c_str());
}

TEST(Sha256, KnownVectors) {
  EXPECT_EQ(sha256(Bytes{'a', 'b', 'c'}), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256(Bytes{}), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

// --- the manifest and the expected contents -----------------------------------------------------------

// path -> sha256, from //:data_disk_sha256.
std::map<std::string, std::string> manifest() {
  std::map<std::string, std::string> out;
  std::ifstream in("data_disk_sha256.txt");
  EXPECT_TRUE(in) << "data_disk_sha256.txt is not in the test's runfiles";
  std::string line;
  while (std::getline(in, line)) {
    const size_t sep = line.find("  ");
    if (sep == std::string::npos) continue;
    out[line.substr(sep + 2)] = line.substr(0, sep);
  }
  return out;
}

// mkfat.sh's pattern: little-endian words i * 2654435761 mod 2^32.
Bytes pattern(size_t n) {
  Bytes out(n);
  for (size_t i = 0; i < n; ++i) {
    const u32 word = static_cast<u32>((i / 4) * 2654435761u);
    out[i] = static_cast<u8>(word >> (8 * (i % 4)));
  }
  return out;
}

constexpr size_t kBigSize = 3145851;
constexpr size_t kScratchSize = 1048576;

// The bytes a file of the disk must hold: its source in testing/data_disk/, or the generated ones.
// Names with spaces are not in the runfiles (Bazel 4 cannot put them there): has_source says so,
// and those files are checked by their SHA-256 in the manifest alone.
bool has_source(const std::string& path) { return path.find(' ') == std::string::npos; }
Bytes expected(const std::string& path) {
  if (path == "/big.bin") return pattern(kBigSize);
  if (path == "/scratch.bin") return Bytes(kScratchSize, 0);
  return read_file("testing/data_disk" + path);
}

ktl::StringView view(const std::string& s) { return ktl::StringView(ktl::Span<const char>(s)); }
std::string str(ktl::StringView v) { return std::string(v.data(), v.size()); }

fs::FatVolume mount_ok(MemoryBlockSource& source) {
  auto r = fs::FatVolume::mount(source);
  if (r.is_err()) ADD_FAILURE() << "mount: " << fs::to_string(r.error());
  return r.release_value();
}

fs::Node lookup_ok(fs::FatVolume& v, const std::string& path) {
  auto r = v.lookup(view(path));
  if (r.is_err()) ADD_FAILURE() << "lookup " << path << ": " << fs::to_string(r.error());
  return r.release_value();
}

Bytes read_all(fs::FatVolume& v, const fs::Node& node, size_t chunk) {
  Bytes out;
  Bytes buf(chunk);
  for (;;) {
    auto r = v.read(node, out.size(), ktl::Span<u8>(buf));
    if (r.is_err()) {
      ADD_FAILURE() << "read: " << fs::to_string(r.error());
      return out;
    }
    if (r.value() == 0) return out;
    out.insert(out.end(), buf.begin(), buf.begin() + static_cast<long>(r.value()));
  }
}

struct Listed {
  std::string name;
  std::string short_name;
  bool long_name;
  fs::Node node;
};

std::vector<Listed> list_ok(fs::FatVolume& v, const fs::Node& dir) {
  std::vector<Listed> out;
  auto r = v.list(dir, [&](const fs::DirEntry& e) {
    out.push_back({str(e.name()), str(e.short_name()), e.long_name, e.node});
    return fs::Visit::Continue;
  });
  if (r.is_err()) {
    ADD_FAILURE() << "list: " << fs::to_string(r.error());
  } else {
    EXPECT_EQ(r.value(), out.size());
  }
  return out;
}

// Every file under `dir` with its path, recursively.
void walk(fs::FatVolume& v, const fs::Node& dir, const std::string& prefix,
          std::map<std::string, fs::Node>& files, std::set<std::string>& dirs) {
  for (const Listed& e : list_ok(v, dir)) {
    const std::string path = prefix + "/" + e.name;
    if (e.node.kind == fs::NodeKind::Directory) {
      dirs.insert(path);
      walk(v, e.node, path, files, dirs);
    } else {
      files[path] = e.node;
    }
  }
}

// --- the real disk ------------------------------------------------------------------------------------

TEST(FatDisk, MountsTheDataDisk) {
  MemoryBlockSource source(image());
  fs::MountDetail detail;
  auto r = fs::FatVolume::mount(source, detail);
  ASSERT_TRUE(r.is_ok()) << fs::to_string(r.error());
  const fs::FatVolume::Info info = r.value().info();
  EXPECT_EQ(str(info.label()), "FERRITE");
  EXPECT_EQ(info.volume_id, 0xfe22d15cu);
  EXPECT_EQ(info.partition, fs::PartitionKind::Superfloppy);
  EXPECT_EQ(detail.where, fs::PartitionKind::Superfloppy);
  EXPECT_EQ(info.volume_offset, 0u);
  EXPECT_EQ(info.volume_bytes, image().size());
  EXPECT_EQ(info.sector_bytes, 512u);
  // The BPB, read here on its own.
  const Bytes& b = image();
  const u32 spc = b[13], reserved = b[14] | b[15] << 8, fats = b[16];
  const u32 fat_sectors = b[36] | b[37] << 8 | b[38] << 16 | u32{b[39]} << 24;
  EXPECT_EQ(info.cluster_bytes, spc * 512);
  EXPECT_EQ(info.total_clusters, (image().size() / 512 - reserved - fats * fat_sectors) / spc);
  ASSERT_TRUE(info.free_clusters.has_value());
  EXPECT_LT(info.free_clusters.value(), info.total_clusters);
  // The files take more than 4 MiB.
  EXPECT_GT(u64{info.total_clusters - info.free_clusters.value()} * info.cluster_bytes, 4u << 20);
  // FSInfo's free count is the number of zero entries in the FAT.
  const u64 fat = u64{reserved} * 512;
  u32 free = 0;
  for (u32 c = 2; c < info.total_clusters + 2; ++c) {
    const u64 at = fat + u64{c} * 4;
    free += (b[at] | b[at + 1] << 8 | b[at + 2] << 16 | u32{b[at + 3] & 0x0Fu} << 24) == 0;
  }
  EXPECT_EQ(info.free_clusters.value(), free);
}

TEST(FatDisk, EveryFileMatchesItsSourceAndTheManifest) {
  MemoryBlockSource source(image());
  fs::FatVolume v = mount_ok(source);
  const auto files = manifest();
  ASSERT_GE(files.size(), 30u);
  size_t with_source = 0;
  for (const auto& [path, digest] : files) with_source += has_source(path);
  EXPECT_GE(with_source, 6u);
  for (const auto& [path, digest] : files) {
    SCOPED_TRACE(path);
    const fs::Node node = lookup_ok(v, path);
    EXPECT_EQ(node.kind, fs::NodeKind::File);
    const Bytes whole = read_all(v, node, node.size + 7);
    EXPECT_EQ(whole.size(), node.size);
    EXPECT_EQ(sha256(whole), digest);
    if (has_source(path)) {
      const Bytes want = expected(path);
      EXPECT_EQ(node.size, want.size());
      EXPECT_TRUE(whole == want);
    }
    // Odd-sized chunks cross cluster boundaries at every offset.
    EXPECT_TRUE(read_all(v, node, 1000) == whole);
  }
}

TEST(FatDisk, TheTreeHoldsExactlyTheManifestsFiles) {
  MemoryBlockSource source(image());
  fs::FatVolume v = mount_ok(source);
  std::map<std::string, fs::Node> files;
  std::set<std::string> dirs;
  walk(v, v.root(), "", files, dirs);
  std::set<std::string> listed, want;
  for (const auto& [path, node] : files) listed.insert(path);
  for (const auto& [path, digest] : manifest()) want.insert(path);
  EXPECT_EQ(listed, want);
  EXPECT_EQ(dirs, (std::set<std::string>{"/docs", "/docs/deep", "/docs/deep/nested", "/many"}));
  // A listing's Node is what lookup finds.
  for (const auto& [path, node] : files) {
    const fs::Node found = lookup_ok(v, path);
    EXPECT_EQ(found.first_cluster, node.first_cluster);
    EXPECT_EQ(found.dirent_offset, node.dirent_offset);
  }
}

TEST(FatDisk, ADirectorySpanningClustersListsInOrder) {
  MemoryBlockSource source(image());
  fs::FatVolume v = mount_ok(source);
  const auto entries = list_ok(v, lookup_ok(v, "/many"));
  ASSERT_EQ(entries.size(), 24u);
  // Each long name takes 3 LFN entries + 1: the directory needs several 512-byte clusters.
  EXPECT_GT(entries.size() * 4 * 32, v.info().cluster_bytes);
  for (size_t i = 0; i < entries.size(); ++i) {
    char name[32];
    std::snprintf(name, sizeof name, "Entry number %02zu.txt", i + 1);
    EXPECT_EQ(entries[i].name, name);
    EXPECT_TRUE(entries[i].long_name);
  }
  // Stop ends the listing.
  u32 seen = 0;
  auto r = v.list(lookup_ok(v, "/many"),
                  [&](const fs::DirEntry&) { return ++seen == 5 ? fs::Visit::Stop : fs::Visit::Continue; });
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(r.value(), 5u);
  EXPECT_EQ(seen, 5u);
}

TEST(FatDisk, LongAndShortNames) {
  MemoryBlockSource source(image());
  fs::FatVolume v = mount_ok(source);
  std::map<std::string, Listed> root;
  for (const Listed& e : list_ok(v, v.root())) root[e.name] = e;
  ASSERT_EQ(root.count("A long file name.txt"), 1u);
  EXPECT_TRUE(root["A long file name.txt"].long_name);
  EXPECT_EQ(root["A long file name.txt"].short_name, "ALONGF~1.TXT");
  ASSERT_EQ(root.count("README.TXT"), 1u);
  EXPECT_FALSE(root["README.TXT"].long_name);
  // mtools stores "big.bin" as an 8.3 name with the lower-case flags.
  ASSERT_EQ(root.count("big.bin"), 1u);
  EXPECT_EQ(root["big.bin"].node.size, kBigSize);
  EXPECT_EQ(root.count("docs"), 1u);
  EXPECT_EQ(root.count("."), 0u);
  EXPECT_EQ(root.count(".."), 0u);
  EXPECT_EQ(root.count("FERRITE"), 0u);  // the volume label entry
  // Case-insensitive, by the long or the 8.3 name.
  const u32 cluster = root["A long file name.txt"].node.first_cluster;
  EXPECT_EQ(lookup_ok(v, "/a LONG file NAME.TXT").first_cluster, cluster);
  EXPECT_EQ(lookup_ok(v, "/alongf~1.txt").first_cluster, cluster);
  EXPECT_EQ(lookup_ok(v, "/readme.txt").size, expected("/README.TXT").size());
}

TEST(FatDisk, ABrokenLongNameFallsBackToTheShortName) {
  MemoryBlockSource good(image());
  fs::FatVolume gv = mount_ok(good);
  const fs::Node node = lookup_ok(gv, "/A long file name.txt");
  for (int what = 0; what < 4; ++what) {
    SCOPED_TRACE(what);
    Bytes b = image();
    const u64 lfn = node.dirent_offset - 32;  // the LFN part numbered 1, just before its 8.3 entry
    ASSERT_EQ(b[lfn + 11], 0x0F);
    ASSERT_EQ(b[lfn - 32 + 11], 0x0F);  // "A long file name.txt" takes two parts
    ASSERT_EQ(b[lfn - 32], 0x42);       // the last part, numbered 2, comes first
    std::string short_name = "ALONGF~1.TXT";
    if (what == 0) b[lfn + 13] ^= 0x5A;  // one part's checksum differs from the others'
    if (what == 1) b[lfn] = 0x03;        // out of sequence
    if (what == 2) {                     // the 8.3 name changed: every part's checksum is stale
      b[node.dirent_offset + 7] = '2';
      short_name = "ALONGF~2.TXT";
    }
    if (what == 3) b[lfn - 32] = 0xE5;  // the first part deleted
    MemoryBlockSource source(std::move(b));
    fs::FatVolume v = mount_ok(source);
    bool found = false;
    for (const Listed& e : list_ok(v, v.root())) {
      if (e.short_name != short_name) continue;
      found = true;
      EXPECT_EQ(e.name, short_name);
      EXPECT_FALSE(e.long_name);
    }
    EXPECT_TRUE(found);
    EXPECT_EQ(v.lookup("/A long file name.txt").error(), FsError::NotFound);
    EXPECT_EQ(lookup_ok(v, "/" + short_name).first_cluster, node.first_cluster);
  }
}

TEST(FatDisk, LongNamesAreUtf16) {
  MemoryBlockSource good(image());
  fs::FatVolume gv = mount_ok(good);
  const fs::Node node = lookup_ok(gv, "/A long file name.txt");
  // Part 2 (the entry 64 bytes before the 8.3 one) holds "ame.txt": its units 1..3 at bytes 3, 5, 7.
  struct Case {
    u32 units[3];
    const char* name;
  };
  for (const Case& c : {Case{{0x00E9, 0xD83D, 0xDE00}, "A long file na\xC3\xA9\xF0\x9F\x98\x80txt"},
                        Case{{0x20AC, 0xD800, '.'}, "A long file na\xE2\x82\xAC\xEF\xBF\xBD.txt"},
                        Case{{0xDC00, 'x', '.'}, "A long file na\xEF\xBF\xBDx.txt"}}) {
    SCOPED_TRACE(c.name);
    Bytes b = image();
    const u64 part2 = node.dirent_offset - 64;
    ASSERT_EQ(b[part2 + 3], 'm');
    for (int i = 0; i < 3; ++i) put16(b, part2 + 3 + 2 * static_cast<size_t>(i), c.units[i]);
    MemoryBlockSource source(std::move(b));
    fs::FatVolume v = mount_ok(source);
    bool found = false;
    for (const Listed& e : list_ok(v, v.root())) found = found || (e.name == c.name && e.long_name);
    EXPECT_TRUE(found);
    EXPECT_EQ(lookup_ok(v, std::string("/") + c.name).first_cluster, node.first_cluster);
  }
}

TEST(FatDisk, Paths) {
  MemoryBlockSource source(image());
  fs::FatVolume v = mount_ok(source);
  const fs::Node leaf = lookup_ok(v, "/docs/deep/nested/leaf.txt");
  EXPECT_TRUE(read_all(v, leaf, 64) == expected("/docs/deep/nested/leaf.txt"));
  EXPECT_EQ(lookup_ok(v, "/docs/./deep/../deep/nested/leaf.txt").first_cluster, leaf.first_cluster);
  EXPECT_EQ(lookup_ok(v, "/").first_cluster, v.root().first_cluster);
  EXPECT_EQ(lookup_ok(v, "/..").first_cluster, v.root().first_cluster);
  EXPECT_EQ(lookup_ok(v, "/docs/..").first_cluster, v.root().first_cluster);
  EXPECT_EQ(lookup_ok(v, "/docs/deep/").kind, fs::NodeKind::Directory);
  EXPECT_EQ(v.lookup("").error(), FsError::BadPath);
  EXPECT_EQ(v.lookup("docs").error(), FsError::BadPath);
  EXPECT_EQ(v.lookup("/docs//guide.txt").error(), FsError::BadPath);
  EXPECT_EQ(v.lookup("/nope").error(), FsError::NotFound);
  EXPECT_EQ(v.lookup("/docs/nope.txt").error(), FsError::NotFound);
  EXPECT_EQ(v.lookup("/README.TXT/x").error(), FsError::NotADirectory);
  EXPECT_EQ(v.lookup("/README.TXT/").error(), FsError::NotADirectory);
  EXPECT_EQ(v.lookup(view("/" + std::string(256, 'a'))).error(), FsError::NameTooLong);
  EXPECT_EQ(v.lookup(view("/" + std::string(255, 'a'))).error(), FsError::NotFound);
  std::string deep;
  for (size_t i = 0; i <= fs::kMaxDepth; ++i) deep += "/docs/..";
  EXPECT_EQ(lookup_ok(v, deep).first_cluster, v.root().first_cluster);  // ".." keeps it shallow
  Bytes buf(16);
  EXPECT_EQ(v.read(lookup_ok(v, "/docs"), 0, ktl::Span<u8>(buf)).error(), FsError::IsADirectory);
  EXPECT_EQ(
      v.list(lookup_ok(v, "/README.TXT"), [](const fs::DirEntry&) { return fs::Visit::Continue; }).error(),
      FsError::NotADirectory);
}

TEST(FatDisk, ReadsAtAndPastTheEndOfAFile) {
  MemoryBlockSource source(image());
  fs::FatVolume v = mount_ok(source);
  const fs::Node big = lookup_ok(v, "/big.bin");
  const Bytes want = pattern(kBigSize);
  Bytes buf(100);
  auto r = v.read(big, kBigSize - 10, ktl::Span<u8>(buf));
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(r.value(), 10u);
  EXPECT_TRUE(std::equal(buf.begin(), buf.begin() + 10, want.end() - 10));
  EXPECT_EQ(v.read(big, kBigSize, ktl::Span<u8>(buf)).value(), 0u);
  EXPECT_EQ(v.read(big, kBigSize + 12345, ktl::Span<u8>(buf)).value(), 0u);
  EXPECT_EQ(v.read(big, ~u64{0}, ktl::Span<u8>(buf)).value(), 0u);
  // Backwards and scattered offsets (the chain cursor restarts).
  for (u64 at : {3000000ull, 17ull, 1500000ull, 511ull, 512ull, 2999999ull}) {
    ASSERT_EQ(v.read(big, at, ktl::Span<u8>(buf)).value(), buf.size());
    EXPECT_TRUE(std::equal(buf.begin(), buf.end(), want.begin() + static_cast<long>(at))) << at;
  }
  EXPECT_GT(kBigSize / v.info().cluster_bytes, 1000u);  // "many clusters"
}

TEST(FatDisk, WritesInPlaceAndRereads) {
  MemoryBlockSource source(image());
  const fs::Node scratch = [&] {
    fs::FatVolume v = mount_ok(source);
    return lookup_ok(v, "/scratch.bin");
  }();
  fs::FatVolume v = mount_ok(source);
  Bytes data = pattern(5000);
  for (u8& b : data) b ^= 0xA5;
  auto w = v.write(scratch, 1000, ktl::Span<const u8>(data));
  ASSERT_TRUE(w.is_ok()) << fs::to_string(w.error());
  EXPECT_EQ(w.value(), data.size());
  Bytes want(kScratchSize, 0);
  std::copy(data.begin(), data.end(), want.begin() + 1000);
  EXPECT_TRUE(read_all(v, scratch, 4096) == want);
  // Exactly the written bytes changed in the image.
  size_t changed = 0;
  for (size_t i = 0; i < image().size(); ++i) changed += source.bytes()[i] != image()[i];
  EXPECT_EQ(changed,
            static_cast<size_t>(std::count_if(data.begin(), data.end(), [](u8 b) { return b != 0; })));
  // A fresh mount sees them.
  MemoryBlockSource copy(source.bytes());
  fs::FatVolume again = mount_ok(copy);
  EXPECT_TRUE(read_all(again, lookup_ok(again, "/scratch.bin"), 65536) == want);
  // Up to the last byte is in place; one more is not, and nothing is written then.
  EXPECT_EQ(v.write(scratch, kScratchSize - 3, ktl::Span<const u8>(data).first(3)).value(), 3u);
  const Bytes before = source.bytes();
  EXPECT_EQ(v.write(scratch, kScratchSize - 3, ktl::Span<const u8>(data).first(4)).error(), FsError::NoSpace);
  EXPECT_EQ(v.write(scratch, kScratchSize + 1, ktl::Span<const u8>(data).first(1)).error(), FsError::NoSpace);
  EXPECT_EQ(v.write(scratch, ~u64{0}, ktl::Span<const u8>(data).first(1)).error(), FsError::NoSpace);
  EXPECT_TRUE(source.bytes() == before);
  EXPECT_EQ(v.write(lookup_ok(v, "/docs"), 0, ktl::Span<const u8>(data).first(1)).error(),
            FsError::IsADirectory);
}

TEST(FatDisk, AReadOnlySourceRefusesWrites) {
  MemoryBlockSource source(image());
  source.set_read_only();
  fs::FatVolume v = mount_ok(source);
  const Bytes data(10, 1);
  EXPECT_EQ(v.write(lookup_ok(v, "/scratch.bin"), 0, ktl::Span<const u8>(data)).error(), FsError::ReadOnly);
}

TEST(FatDisk, DeviceErrorsArePassedOn) {
  MemoryBlockSource probe(image());
  fs::FatVolume pv = mount_ok(probe);
  const fs::Node big = lookup_ok(pv, "/big.bin");
  for (long after : {0l, 1l, 5l, 40l}) {
    MemoryBlockSource source(image());
    source.fail_reads_after(after);
    auto m = fs::FatVolume::mount(source);
    if (m.is_err()) {
      EXPECT_EQ(m.error(), FsError::Io) << after;
      continue;
    }
    Bytes buf(1 << 20);
    auto r = m.value().read(big, 0, ktl::Span<u8>(buf));
    ASSERT_TRUE(r.is_err()) << after;
    EXPECT_EQ(r.error(), FsError::Io);
  }
  // A device that claims its size but ends early: the reads past its real end fail.
  Bytes cut = image();
  cut.resize(2 << 20);
  MemoryBlockSource source(cut);
  source.claim_size(image().size());
  fs::FatVolume v = mount_ok(source);
  Bytes buf(4096);
  const fs::Node scratch = lookup_ok(v, "/scratch.bin");  // written last: far into the volume
  ASSERT_GT(scratch.first_cluster * u64{v.info().cluster_bytes}, cut.size());
  EXPECT_EQ(v.read(scratch, 0, ktl::Span<u8>(buf)).error(), FsError::OutOfRange);
}

// --- the same volume in an MBR or a GPT ----------------------------------------------------------------

constexpr u64 kPartitionLba = 2048;

void put32(Bytes& b, size_t at, u32 v) {
  for (int i = 0; i < 4; ++i) b[at + static_cast<size_t>(i)] = static_cast<u8>(v >> (8 * i));
}
void put64(Bytes& b, size_t at, u64 v) {
  put32(b, at, static_cast<u32>(v));
  put32(b, at + 4, static_cast<u32>(v >> 32));
}

// The image at LBA 2048 behind an MBR with `type` (and its start LBA).
Bytes in_mbr(u8 type, u64 lba = kPartitionLba) {
  Bytes disk(kPartitionLba * 512, 0);
  disk.insert(disk.end(), image().begin(), image().end());
  disk[446 + 4] = type;
  put32(disk, 446 + 8, static_cast<u32>(lba));
  put32(disk, 446 + 12, static_cast<u32>(image().size() / 512));
  disk[510] = 0x55;
  disk[511] = 0xAA;
  return disk;
}

Bytes in_gpt(bool basic_data) {
  Bytes disk = in_mbr(0xEE, 1);
  const size_t h = 512;
  std::memcpy(&disk[h], "EFI PART", 8);
  put64(disk, h + 72, 2);          // partition entries at LBA 2
  put32(disk, h + 80, 4);          // four of them
  put32(disk, h + 84, 128);        // 128 bytes each
  const size_t e = 2 * 512 + 128;  // the second entry (the first stays unused)
  const u8 basic[16] = {0xA2, 0xA0, 0xD0, 0xEB, 0xE5, 0xB9, 0x33, 0x44,
                        0x87, 0xC0, 0x68, 0xB6, 0xB7, 0x26, 0x99, 0xC7};
  const u8 linux_fs[16] = {0xAF, 0x3D, 0xC6, 0x0F, 0x83, 0x84, 0x72, 0x47,
                           0x8E, 0x79, 0x3D, 0x69, 0xD8, 0x47, 0x7D, 0xE4};
  std::memcpy(&disk[e], basic_data ? basic : linux_fs, 16);
  put64(disk, e + 32, kPartitionLba);
  put64(disk, e + 40, kPartitionLba + image().size() / 512 - 1);
  return disk;
}

TEST(FatPartitions, MbrPartition) {
  for (u8 type : {u8{0x0B}, u8{0x0C}}) {
    MemoryBlockSource source(in_mbr(type));
    fs::FatVolume v = mount_ok(source);
    EXPECT_EQ(v.info().partition, fs::PartitionKind::Mbr);
    EXPECT_EQ(v.info().volume_offset, kPartitionLba * 512);
    EXPECT_TRUE(read_all(v, lookup_ok(v, "/docs/guide.txt"), 100) == expected("/docs/guide.txt"));
  }
}

TEST(FatPartitions, GptBasicDataPartition) {
  MemoryBlockSource source(in_gpt(true));
  fs::FatVolume v = mount_ok(source);
  EXPECT_EQ(v.info().partition, fs::PartitionKind::Gpt);
  EXPECT_EQ(v.info().volume_offset, kPartitionLba * 512);
  EXPECT_TRUE(read_all(v, lookup_ok(v, "/big.bin"), 1 << 16) == pattern(kBigSize));
  MemoryBlockSource other(in_gpt(false));
  EXPECT_EQ(fs::FatVolume::mount(other).error(), FsError::NoFileSystem);
}

TEST(FatPartitions, PartitionsThatHoldNoFat32) {
  MemoryBlockSource fat16(in_mbr(0x06));
  fs::MountDetail d;
  EXPECT_EQ(fs::FatVolume::mount(fat16, d).error(), FsError::NotFat32);
  EXPECT_EQ(d.foreign, fs::ForeignFs::Fat16);
  Bytes ntfs_disk = in_mbr(0x07);
  std::memcpy(&ntfs_disk[kPartitionLba * 512 + 3], "NTFS    ", 8);
  MemoryBlockSource ntfs(std::move(ntfs_disk));
  EXPECT_EQ(fs::FatVolume::mount(ntfs, d).error(), FsError::NotFat32);
  EXPECT_EQ(d.foreign, fs::ForeignFs::Ntfs);
  MemoryBlockSource past_end(in_mbr(0x0C, 0x7FFFFFFF));
  EXPECT_EQ(fs::FatVolume::mount(past_end, d).error(), FsError::Corrupt);
  EXPECT_EQ(d.corruption, Corruption::BadPartition);
}

// --- no file system, or another one ----------------------------------------------------------------

TEST(FatForeign, NoDiskOrABlankOne) {
  MemoryBlockSource empty(Bytes{});
  EXPECT_EQ(fs::FatVolume::mount(empty).error(), FsError::DeviceTooSmall);
  MemoryBlockSource tiny(Bytes(100, 0xEB));
  EXPECT_EQ(fs::FatVolume::mount(tiny).error(), FsError::DeviceTooSmall);
  MemoryBlockSource blank(Bytes(1 << 20, 0));
  EXPECT_EQ(fs::FatVolume::mount(blank).error(), FsError::NoFileSystem);
  MemoryBlockSource ones(Bytes(1 << 20, 0xFF));
  EXPECT_EQ(fs::FatVolume::mount(ones).error(), FsError::NoFileSystem);
}

TEST(FatForeign, OtherFileSystems) {
  fs::MountDetail d;
  Bytes ext(1 << 20, 0);
  ext[1080] = 0x53;
  ext[1081] = 0xEF;
  MemoryBlockSource ext_source(ext);
  EXPECT_EQ(fs::FatVolume::mount(ext_source, d).error(), FsError::NotFat32);
  EXPECT_EQ(d.foreign, fs::ForeignFs::Ext);
  for (auto [sig, kind] :
       {std::pair{"EXFAT   ", fs::ForeignFs::ExFat}, std::pair{"NTFS    ", fs::ForeignFs::Ntfs}}) {
    Bytes b = image();
    std::memcpy(&b[3], sig, 8);
    MemoryBlockSource source(std::move(b));
    EXPECT_EQ(fs::FatVolume::mount(source, d).error(), FsError::NotFat32);
    EXPECT_EQ(d.foreign, kind);
  }
  // A FAT16 BPB (sectors per FAT in the 16-bit field), big and small.
  Bytes fat16 = image();
  fat16[22] = 0x00;
  fat16[23] = 0x01;
  MemoryBlockSource fat16_source(fat16);
  EXPECT_EQ(fs::FatVolume::mount(fat16_source, d).error(), FsError::NotFat32);
  EXPECT_EQ(d.foreign, fs::ForeignFs::Fat16);
  fat16[13] = 64;  // 64 sectors per cluster: about 2,000 clusters, FAT12
  MemoryBlockSource fat12_source(fat16);
  EXPECT_EQ(fs::FatVolume::mount(fat12_source, d).error(), FsError::NotFat32);
  EXPECT_EQ(d.foreign, fs::ForeignFs::Fat12);
}

// --- corruption -----------------------------------------------------------------------------------------

// Mounts a copy of the image patched by `patch` and expects Corrupt(`why`).
template <class Patch>
void expect_mount_corrupt(Corruption why, Patch&& patch) {
  Bytes b = image();
  patch(b);
  MemoryBlockSource source(std::move(b));
  fs::MountDetail d;
  auto r = fs::FatVolume::mount(source, d);
  ASSERT_TRUE(r.is_err()) << fs::to_string(why);
  EXPECT_EQ(r.error(), FsError::Corrupt) << fs::to_string(why);
  EXPECT_EQ(d.corruption, why) << "got " << fs::to_string(d.corruption);
}

TEST(FatCorrupt, BootSectorFields) {
  const Bytes& img = image();
  const u32 fat_sectors = img[36] | img[37] << 8 | img[38] << 16 | u32{img[39]} << 24;
  expect_mount_corrupt(Corruption::BadBytesPerSector, [](Bytes& b) { put16(b, 11, 0); });
  expect_mount_corrupt(Corruption::BadBytesPerSector, [](Bytes& b) { put16(b, 11, 513); });
  expect_mount_corrupt(Corruption::BadBytesPerSector, [](Bytes& b) { put16(b, 11, 8192); });
  expect_mount_corrupt(Corruption::BadSectorsPerCluster, [](Bytes& b) { b[13] = 0; });
  expect_mount_corrupt(Corruption::BadSectorsPerCluster, [](Bytes& b) { b[13] = 3; });
  expect_mount_corrupt(Corruption::BadSectorsPerCluster, [](Bytes& b) { b[13] = 128; });  // 64 KiB
  expect_mount_corrupt(Corruption::NoReservedSectors, [](Bytes& b) { put16(b, 14, 0); });
  expect_mount_corrupt(Corruption::BadFatCount, [](Bytes& b) { b[16] = 0; });
  expect_mount_corrupt(Corruption::BadFatCount, [](Bytes& b) { b[16] = 3; });
  expect_mount_corrupt(Corruption::RootEntriesNotZero, [](Bytes& b) { put16(b, 17, 512); });
  expect_mount_corrupt(Corruption::NoTotalSectors, [](Bytes& b) { put32(b, 32, 0); });
  expect_mount_corrupt(Corruption::NoFatSize, [](Bytes& b) { put32(b, 36, 0); });
  expect_mount_corrupt(Corruption::FatTooSmall, [](Bytes& b) { put32(b, 36, 1); });
  expect_mount_corrupt(Corruption::NoDataArea, [](Bytes& b) { put32(b, 36, 0x10000000); });
  expect_mount_corrupt(Corruption::NoDataArea, [&](Bytes& b) { put32(b, 32, 32 + 2 * fat_sectors); });
  expect_mount_corrupt(Corruption::BadRootCluster, [](Bytes& b) { put32(b, 44, 0); });
  expect_mount_corrupt(Corruption::BadRootCluster, [](Bytes& b) { put32(b, 44, 1); });
  expect_mount_corrupt(Corruption::BadRootCluster, [](Bytes& b) { put32(b, 44, 0x0FFFFFF0); });
  expect_mount_corrupt(Corruption::VolumeLargerThanDevice,
                       [&](Bytes& b) { put32(b, 32, static_cast<u32>(img.size() / 512 + 1)); });
  expect_mount_corrupt(Corruption::VolumeLargerThanDevice, [](Bytes& b) { b.resize(b.size() - 512); });
  // Zero everywhere but the jump: a damaged BPB, not "no file system".
  expect_mount_corrupt(Corruption::BadBytesPerSector,
                       [](Bytes& b) { std::fill(b.begin() + 3, b.begin() + 90, 0); });
}

TEST(FatCorrupt, TooManyClusters) {
  // 4 KiB sectors, 8 per cluster: 0x10000000 clusters need 1 TiB, so the device is sparse: a
  // source that claims the size and serves zeros past the image.
  class Sparse final : public fs::BlockSource {
   public:
    explicit Sparse(Bytes b) : b_(std::move(b)) {}
    ktl::Result<void, FsError> read(u64 offset, ktl::Span<u8> out) override {
      for (size_t i = 0; i < out.size(); ++i) out[i] = offset + i < b_.size() ? b_[offset + i] : 0;
      return ktl::ok();
    }
    ktl::Result<void, FsError> write(u64, ktl::Span<const u8>) override {
      return ktl::Err(FsError::ReadOnly);
    }
    u64 size_bytes() const override { return u64{1} << 50; }

   private:
    Bytes b_;
  };
  Bytes b(4096, 0);
  std::copy(image().begin(), image().begin() + 512, b.begin());
  put16(b, 11, 4096);
  b[13] = 8;
  put16(b, 14, 32);
  put32(b, 32, 0xFFFFFFFF);
  put32(b, 36, 0x80000);  // enough FAT for 0x20000000 clusters
  Sparse source(b);
  fs::MountDetail d;
  EXPECT_EQ(fs::FatVolume::mount(source, d).error(), FsError::Corrupt);
  EXPECT_EQ(d.corruption, Corruption::TooManyClusters);
}

// Where things are in the image, from an independent reading of the BPB.
struct Layout {
  u64 fat;
  u64 data;
  u32 cluster_bytes;
  u64 fat_entry(u32 c) const { return fat + u64{c} * 4; }
  u64 cluster(u32 c) const { return data + u64{c - 2} * cluster_bytes; }
};

Layout layout() {
  const Bytes& b = image();
  const u32 bps = b[11] | b[12] << 8;
  const u32 reserved = b[14] | b[15] << 8;
  const u32 fat_sectors = b[36] | b[37] << 8 | b[38] << 16 | u32{b[39]} << 24;
  return Layout{u64{reserved} * bps, (reserved + u64{b[16]} * fat_sectors) * bps, bps * b[13]};
}

u32 fat_value(const Bytes& b, u32 c) {
  const u64 at = layout().fat_entry(c);
  return (b[at] | b[at + 1] << 8 | b[at + 2] << 16 | u32{b[at + 3]} << 24) & 0x0FFFFFFF;
}

// A mounted copy of the image after `patch`, which gets the good image's Nodes for `path`.
template <class Patch>
std::pair<std::unique_ptr<MemoryBlockSource>, fs::Node> patched(const std::string& path, Patch&& patch) {
  MemoryBlockSource good(image());
  fs::FatVolume gv = mount_ok(good);
  const fs::Node node = lookup_ok(gv, path);
  Bytes b = image();
  patch(b, node);
  return {std::make_unique<MemoryBlockSource>(std::move(b)), node};
}

template <class Patch>
void expect_read_corrupt(Corruption why, const std::string& path, Patch&& patch) {
  SCOPED_TRACE(fs::to_string(why));
  auto [source, node] = patched(path, patch);
  (void)node;
  fs::FatVolume v = mount_ok(*source);
  const fs::Node found = lookup_ok(v, path);
  Bytes buf(kBigSize + 10);
  auto r = v.read(found, 0, ktl::Span<u8>(buf));
  ASSERT_TRUE(r.is_err());
  EXPECT_EQ(r.error(), FsError::Corrupt);
  EXPECT_EQ(v.last_corruption(), why) << "got " << fs::to_string(v.last_corruption());
  // A fresh volume, reading only the last byte: the chain is checked whole all the same.
  fs::FatVolume again = mount_ok(*source);
  Bytes tail(16);
  auto t = again.read(found, found.size - 1, ktl::Span<u8>(tail));
  ASSERT_TRUE(t.is_err());
  EXPECT_EQ(again.last_corruption(), why);
}

TEST(FatCorrupt, ClusterChains) {
  const Layout l = layout();
  auto set = [&](Bytes& b, u32 c, u32 v) { put32(b, l.fat_entry(c), v); };
  // The chain's k-th cluster of a Node, from the good image.
  auto nth = [&](const Bytes& b, u32 first, u32 k) {
    u32 c = first;
    for (u32 i = 0; i < k; ++i) c = fat_value(b, c);
    return c;
  };
  expect_read_corrupt(Corruption::ChainLoops, "/big.bin", [&](Bytes& b, const fs::Node& n) {
    set(b, nth(b, n.first_cluster, 100), n.first_cluster);
  });
  expect_read_corrupt(Corruption::ChainLoops, "/big.bin", [&](Bytes& b, const fs::Node& n) {
    const u32 c = nth(b, n.first_cluster, 6000);
    set(b, c, c);  // a one-cluster loop
  });
  expect_read_corrupt(Corruption::ChainOutsideFat, "/big.bin",
                      [&](Bytes& b, const fs::Node& n) { set(b, nth(b, n.first_cluster, 3), 0x0FFFFF00); });
  expect_read_corrupt(Corruption::ChainFreeCluster, "/big.bin",
                      [&](Bytes& b, const fs::Node& n) { set(b, nth(b, n.first_cluster, 10), 0); });
  expect_read_corrupt(Corruption::ChainBadCluster, "/big.bin",
                      [&](Bytes& b, const fs::Node& n) { set(b, nth(b, n.first_cluster, 10), 0x0FFFFFF7); });
  expect_read_corrupt(Corruption::ChainReservedCluster, "/big.bin",
                      [&](Bytes& b, const fs::Node& n) { set(b, nth(b, n.first_cluster, 10), 1); });
  expect_read_corrupt(Corruption::ChainReservedCluster, "/big.bin",
                      [&](Bytes& b, const fs::Node& n) { set(b, nth(b, n.first_cluster, 10), 0x0FFFFFF0); });
  expect_read_corrupt(Corruption::ChainTooShort, "/big.bin",
                      [&](Bytes& b, const fs::Node& n) { set(b, nth(b, n.first_cluster, 10), 0x0FFFFFFF); });
  // A size larger than the chain: README.TXT's one cluster claimed to be 10,000 bytes.
  expect_read_corrupt(Corruption::ChainTooShort, "/README.TXT",
                      [&](Bytes& b, const fs::Node& n) { put32(b, n.dirent_offset + 28, 10000); });
  // The upper 4 bits of a FAT entry are reserved: set, they change nothing.
  {
    auto [source, node] = patched("/big.bin", [&](Bytes& b, const fs::Node& n) {
      const u32 c = nth(b, n.first_cluster, 7);
      set(b, c, fat_value(b, c) | 0xF0000000);
    });
    fs::FatVolume v = mount_ok(*source);
    EXPECT_TRUE(read_all(v, node, 1 << 20) == pattern(kBigSize));
  }
}

TEST(FatCorrupt, WritesCheckTheChainFirst) {
  const Layout l = layout();
  auto [source, node] = patched("/scratch.bin", [&](Bytes& b, const fs::Node& n) {
    u32 c = n.first_cluster;
    for (int i = 0; i < 50; ++i) c = fat_value(b, c);
    put32(b, l.fat_entry(c), n.first_cluster);
  });
  fs::FatVolume v = mount_ok(*source);
  const Bytes before = source->bytes();
  const Bytes data(100, 0x77);
  EXPECT_EQ(v.write(node, 0, ktl::Span<const u8>(data)).error(), FsError::Corrupt);
  EXPECT_EQ(v.last_corruption(), Corruption::ChainLoops);
  EXPECT_TRUE(source->bytes() == before);
}

TEST(FatCorrupt, DirectoryEntries) {
  auto first_cluster = [](Bytes& b, u64 dirent, u32 c) {
    put16(b, dirent + 20, c >> 16);
    put16(b, dirent + 26, c & 0xFFFF);
  };
  for (u32 bad : {0u, 1u, 0x0FFFFFF0u}) {
    for (const char* path : {"/README.TXT", "/docs"}) {
      SCOPED_TRACE(path);
      auto [source, node] =
          patched(path, [&](Bytes& b, const fs::Node& n) { first_cluster(b, n.dirent_offset, bad); });
      fs::FatVolume v = mount_ok(*source);
      auto r = v.lookup(path);
      ASSERT_TRUE(r.is_err()) << bad;
      EXPECT_EQ(r.error(), FsError::Corrupt);
      EXPECT_EQ(v.last_corruption(), Corruption::EntryBadCluster);
      // A Node made up by hand is checked too.
      fs::Node forged = node;
      forged.first_cluster = bad;
      Bytes buf(16);
      if (node.kind == fs::NodeKind::File) {
        EXPECT_EQ(v.read(forged, 0, ktl::Span<u8>(buf)).error(), FsError::Corrupt);
      } else {
        EXPECT_EQ(v.list(forged, [](const fs::DirEntry&) { return fs::Visit::Continue; }).error(),
                  FsError::Corrupt);
      }
    }
  }
  // An empty file with cluster 0 is fine.
  auto [source, node] = patched("/README.TXT", [&](Bytes& b, const fs::Node& n) {
    first_cluster(b, n.dirent_offset, 0);
    put32(b, n.dirent_offset + 28, 0);
  });
  fs::FatVolume v = mount_ok(*source);
  const fs::Node empty = lookup_ok(v, "/README.TXT");
  EXPECT_EQ(empty.size, 0u);
  Bytes buf(16);
  EXPECT_EQ(v.read(empty, 0, ktl::Span<u8>(buf)).value(), 0u);
}

TEST(FatCorrupt, ADirectoryChainThatLoops) {
  // The root directory without an end marker, its cluster linked to itself.
  MemoryBlockSource probe(image());
  fs::FatVolume pv = mount_ok(probe);
  const u32 root = pv.root().first_cluster;
  ASSERT_GE(fat_value(image(), root), 0x0FFFFFF8u);  // one cluster
  const Layout l = layout();
  Bytes b = image();
  for (u64 at = l.cluster(root); at < l.cluster(root) + l.cluster_bytes; at += 32) {
    if (b[at] == 0) b[at] = 0xE5;
  }
  put32(b, l.fat_entry(root), root);
  MemoryBlockSource source(std::move(b));
  fs::FatVolume v = mount_ok(source);
  auto r = v.list(v.root(), [](const fs::DirEntry&) { return fs::Visit::Continue; });
  ASSERT_TRUE(r.is_err());
  EXPECT_EQ(r.error(), FsError::Corrupt);
  EXPECT_EQ(v.last_corruption(), Corruption::ChainLoops);
  EXPECT_EQ(v.lookup("/nope").error(), FsError::Corrupt);
}

TEST(FatErrors, EveryEnumeratorIsNamed) {
  EXPECT_TRUE(ktl::check_enum_text<FsError>().ok);
  EXPECT_EQ(ktl::check_enum_text<FsError>().count, ktl::to_underlying(FsError::DeviceTooSmall) + 1);
  EXPECT_TRUE(ktl::check_enum_text<Corruption>().ok);
  EXPECT_EQ(ktl::check_enum_text<Corruption>().count, ktl::to_underlying(Corruption::EntryBadCluster) + 1);
  EXPECT_TRUE(ktl::check_enum_text<fs::ForeignFs>().ok);
  EXPECT_TRUE(ktl::check_enum_text<fs::PartitionKind>().ok);
  EXPECT_TRUE(ktl::check_enum_text<fs::NodeKind>().ok);
}

}  // namespace

namespace {

// The fuzzer's seeds (make_corpus.py) reach past mount: the tiny volume is read like the real one.
TEST(FatCorpus, TheSeedVolumesMountAndRead) {
  struct Seed {
    const char* name;
    u32 sector_bytes, cluster_bytes, clusters;
  };
  for (const Seed& seed : {Seed{"superfloppy", 512, 512, 28}, Seed{"mbr", 512, 512, 28},
                           Seed{"gpt", 512, 512, 28}, Seed{"fragmented", 512, 512, 28},
                           Seed{"cluster4k", 512, 4096, 10}, Seed{"sector4k", 4096, 4096, 10}}) {
    SCOPED_TRACE(seed.name);
    MemoryBlockSource source(read_file(std::string("kernel/fs/fat_corpus/") + seed.name));
    fs::FatVolume v = mount_ok(source);
    EXPECT_EQ(str(v.info().label()), "FUZZ");
    EXPECT_EQ(v.info().sector_bytes, seed.sector_bytes);
    EXPECT_EQ(v.info().cluster_bytes, seed.cluster_bytes);
    EXPECT_EQ(v.info().total_clusters, seed.clusters);
    const Bytes hello = read_all(v, lookup_ok(v, "/readme.txt"), 64);
    EXPECT_EQ(std::string(hello.begin(), hello.end()), "hello from the fuzz corpus\n");
    const Bytes big = read_all(v, lookup_ok(v, "/A long name.txt"), 300);
    ASSERT_EQ(big.size(), 4u * seed.cluster_bytes - 100);
    for (size_t i = 0; i < big.size(); ++i) {
      ASSERT_EQ(big[i], static_cast<u8>(1 + i * 7 + (i >> 5))) << i;  // make_corpus.py's text()
    }
    EXPECT_EQ(read_all(v, lookup_ok(v, "/sub/nested.txt"), 10).size(), 7u);
    EXPECT_EQ(list_ok(v, lookup_ok(v, "/SUB"))[0].name, "nested.txt");
  }
  MemoryBlockSource loop(read_file("kernel/fs/fat_corpus/loop"));
  fs::FatVolume v = mount_ok(loop);
  Bytes buf(4096);
  EXPECT_EQ(v.read(lookup_ok(v, "/A long name.txt"), 0, ktl::Span<u8>(buf)).error(), FsError::Corrupt);
  EXPECT_EQ(v.last_corruption(), Corruption::ChainLoops);
}

}  // namespace
