// kernel.fs.fat: a FAT32 file system over a BlockSource (a disk, a partition, a page cache).
//
// Pure code, host-testable: every byte comes through BlockSource::read/write at byte offsets, in
// bounded pieces; nothing is allocated. The volume holds one 512-byte window of the FAT as its
// only buffer (a FatVolume is about 600 bytes, fine on a 16 KiB kernel stack); directory entries
// are read 32 bytes at a time, file data straight into the caller's span.
//
//   mount: sector 0 is a FAT32 boot sector (a "superfloppy"), or an MBR whose first partition of
//          type 0x0B/0x0C holds one, or a protective MBR + GPT whose first basic data (or EFI
//          system) partition holds one. The BPB is validated field by field (see Corruption) and
//          the volume must lie inside the device.
//   lookup: absolute paths, '/'-separated, ASCII case-insensitive against the long name and the
//          8.3 name; "." and ".." are resolved on the path (".." of "/" is "/").
//   read/write: in place; a write never changes a file's size or allocates (past the end: NoSpace).
//
// Outside data is never trusted: every cluster chain walk is bounded by the cluster count and
// checks each link (free, reserved, bad, outside the FAT); a file longer than its chain, a
// directory entry whose first cluster is 0/1/out of range and an inconsistent BPB fail with
// FsError::Corrupt, and the volume records which check failed (FatVolume::last_corruption()).
// Spans are bounds-checked, so a bug here panics rather than corrupting memory. No locking: one
// FatVolume is used by one thread at a time (the caller serialises).
module;

#include <ktl/macros.h>

export module kernel.fs.fat;

import ktl;

export namespace kernel::fs {

using ktl::u16;
using ktl::u32;
using ktl::u64;
using ktl::u8;
using ktl::usize;

enum class FsError : u32 {
  Io,              // the block source could not read or write (device error)
  OutOfRange,      // a read or write past the end of the block source
  NoFileSystem,    // no FAT boot sector, MBR or GPT found (a blank or unknown disk)
  NotFat32,        // another file system (FAT12/16, exFAT, NTFS, ext2/3/4: MountDetail::foreign)
  Corrupt,         // a structure that breaks FAT32's rules (which one: Corruption)
  NotFound,        // no entry of that name
  NotADirectory,   // a path component or list() on a file
  IsADirectory,    // read/write on a directory
  NameTooLong,     // a path component longer than 255 bytes
  BadPath,         // not absolute, an empty component, or nested deeper than kMaxDepth
  NoSpace,         // a write past the end of the file: writes are in place only
  ReadOnly,        // the block source refuses writes
  DeviceTooSmall,  // the block source is smaller than one sector (no disk)
};

[[nodiscard]] constexpr const char* to_string(FsError e) {
  switch (e) {
    case FsError::Io: return "I/O error";
    case FsError::OutOfRange: return "access past the end of the device";
    case FsError::NoFileSystem: return "no file system found";
    case FsError::NotFat32: return "not FAT32 (another file system)";
    case FsError::Corrupt: return "corrupt FAT32 structure";
    case FsError::NotFound: return "no such file or directory";
    case FsError::NotADirectory: return "not a directory";
    case FsError::IsADirectory: return "is a directory";
    case FsError::NameTooLong: return "name longer than 255 bytes";
    case FsError::BadPath: return "malformed path";
    case FsError::NoSpace: return "write past the end of the file (writes are in place only)";
    case FsError::ReadOnly: return "device is read-only";
    case FsError::DeviceTooSmall: return "device smaller than one sector";
  }
  return "unknown FsError";
}

// Which FAT32 rule a Corrupt error broke.
enum class Corruption : u32 {
  None,
  BadBytesPerSector,       // not 512, 1024, 2048 or 4096
  BadSectorsPerCluster,    // not a power of two, or a cluster above 32 KiB
  NoReservedSectors,       // reserved sector count 0 (the boot sector itself is reserved)
  BadFatCount,             // number of FATs not 1 or 2
  RootEntriesNotZero,      // a FAT32 BPB with a FAT12/16 root directory size
  NoTotalSectors,          // both total sector fields 0
  NoFatSize,               // FAT32 sectors-per-FAT 0
  NoDataArea,              // reserved + FATs reach past the volume's end
  FatTooSmall,             // the FATs cannot hold an entry per cluster
  TooManyClusters,         // above FAT32's 0x0FFFFFF5 clusters
  BadRootCluster,          // the root directory's cluster outside 2..cluster count + 1
  VolumeLargerThanDevice,  // the BPB's sectors reach past the end of the device
  BadPartition,            // a partition table entry starting past the device's end or wrapping
  ChainFreeCluster,        // a chain reaches a free cluster (FAT entry 0)
  ChainReservedCluster,    // a chain reaches reserved entry 1 or 0x0FFFFFF0..F6
  ChainBadCluster,         // a chain reaches a cluster marked bad (0x0FFFFFF7)
  ChainOutsideFat,         // a chain links to a cluster number beyond the data area
  ChainLoops,              // a chain longer than the cluster count: it loops
  ChainTooShort,           // a file's size needs more clusters than its chain has
  EntryBadCluster,         // a directory entry's first cluster is 0 (with data), 1 or too big
};

[[nodiscard]] constexpr const char* to_string(Corruption c) {
  switch (c) {
    case Corruption::None: return "no corruption seen";
    case Corruption::BadBytesPerSector: return "bytes per sector not 512/1024/2048/4096";
    case Corruption::BadSectorsPerCluster: return "sectors per cluster not a power of two up to 32 KiB";
    case Corruption::NoReservedSectors: return "reserved sector count 0";
    case Corruption::BadFatCount: return "number of FATs not 1 or 2";
    case Corruption::RootEntriesNotZero: return "FAT32 BPB with a root entry count";
    case Corruption::NoTotalSectors: return "total sector count 0";
    case Corruption::NoFatSize: return "sectors per FAT 0";
    case Corruption::NoDataArea: return "reserved sectors and FATs fill the volume";
    case Corruption::FatTooSmall: return "FAT smaller than the cluster count needs";
    case Corruption::TooManyClusters: return "more clusters than FAT32 can address";
    case Corruption::BadRootCluster: return "root directory cluster out of range";
    case Corruption::VolumeLargerThanDevice: return "volume larger than the device";
    case Corruption::BadPartition: return "partition entry outside the device";
    case Corruption::ChainFreeCluster: return "cluster chain reaches a free cluster";
    case Corruption::ChainReservedCluster: return "cluster chain reaches a reserved value";
    case Corruption::ChainBadCluster: return "cluster chain reaches a bad cluster";
    case Corruption::ChainOutsideFat: return "cluster chain links past the last cluster";
    case Corruption::ChainLoops: return "cluster chain loops";
    case Corruption::ChainTooShort: return "file size larger than its cluster chain";
    case Corruption::EntryBadCluster: return "directory entry with an invalid first cluster";
  }
  return "unknown Corruption";
}

// What a NotFat32 error found instead.
enum class ForeignFs : u32 { Unknown, Fat12, Fat16, ExFat, Ntfs, Ext };

[[nodiscard]] constexpr const char* to_string(ForeignFs f) {
  switch (f) {
    case ForeignFs::Unknown: return "unknown";
    case ForeignFs::Fat12: return "FAT12";
    case ForeignFs::Fat16: return "FAT16";
    case ForeignFs::ExFat: return "exFAT";
    case ForeignFs::Ntfs: return "NTFS";
    case ForeignFs::Ext: return "ext2/3/4";
  }
  return "unknown ForeignFs";
}

// Where the file system was found.
enum class PartitionKind : u32 { Superfloppy, Mbr, Gpt };

[[nodiscard]] constexpr const char* to_string(PartitionKind p) {
  switch (p) {
    case PartitionKind::Superfloppy: return "superfloppy";
    case PartitionKind::Mbr: return "MBR partition";
    case PartitionKind::Gpt: return "GPT partition";
  }
  return "unknown PartitionKind";
}

// What the volume reads from, in bytes relative to its start. read/write cover the whole span or
// fail (Io; OutOfRange past size_bytes()). Partition tables are read in 512-byte LBAs.
class BlockSource {
 public:
  [[nodiscard]] virtual ktl::Result<void, FsError> read(u64 offset, ktl::Span<u8> out) = 0;
  [[nodiscard]] virtual ktl::Result<void, FsError> write(u64 offset, ktl::Span<const u8> in) = 0;
  [[nodiscard]] virtual u64 size_bytes() const = 0;

 protected:
  ~BlockSource() = default;
};

enum class NodeKind : u32 { File, Directory };

[[nodiscard]] constexpr const char* to_string(NodeKind k) {
  switch (k) {
    case NodeKind::File: return "file";
    case NodeKind::Directory: return "directory";
  }
  return "unknown NodeKind";
}

// No directory entry (the root directory's Node).
inline constexpr u64 kNoDirent = ~u64{0};

// A file or directory: where its data starts and how long it is. Valid for the volume that made it.
struct Node {
  u32 first_cluster = 0;  // 0 only for an empty file
  u32 size = 0;           // bytes; 0 for directories
  NodeKind kind = NodeKind::File;
  u64 dirent_offset = kNoDirent;  // the 8.3 entry's byte offset on the source (kNoDirent: root)
};

// The longest name, in UTF-8: 255 UTF-16 units of at most 3 bytes each.
inline constexpr usize kMaxNameBytes = 765;
// The deepest path lookup() resolves (components kept for "..").
inline constexpr usize kMaxDepth = 32;

// One entry of a directory, as list() hands it over.
struct DirEntry {
  ktl::Array<char, kMaxNameBytes> name_bytes;
  usize name_length = 0;
  ktl::Array<char, 12> short_name_bytes;  // "NAME.EXT", NT lower-case flags applied
  usize short_name_length = 0;
  Node node;
  bool long_name = false;  // the name came from a verified LFN chain (else the 8.3 name)

  [[nodiscard]] inline ktl::StringView name() const {
    return ktl::StringView(name_bytes.span().first(name_length));
  }
  [[nodiscard]] inline ktl::StringView short_name() const {
    return ktl::StringView(short_name_bytes.span().first(short_name_length));
  }
  [[nodiscard]] inline NodeKind kind() const { return node.kind; }
  [[nodiscard]] inline u32 size() const { return node.size; }
};

enum class Visit : u32 { Continue, Stop };

// list()'s callback. The entry is valid only during the call.
class DirVisitor {
 public:
  [[nodiscard]] virtual Visit visit(const DirEntry& entry) = 0;

 protected:
  ~DirVisitor() = default;
};

// What mount() saw when it failed (or where it found the volume).
struct MountDetail {
  Corruption corruption = Corruption::None;  // for FsError::Corrupt
  ForeignFs foreign = ForeignFs::Unknown;    // for FsError::NotFat32
  PartitionKind where = PartitionKind::Superfloppy;
};

class FatVolume : ktl::NoCopy {
 public:
  struct Info {
    ktl::Array<char, 11> label_bytes;
    usize label_length = 0;
    u32 volume_id = 0;
    u32 total_clusters = 0;
    ktl::Optional<u32> free_clusters;  // from FSInfo when present and plausible
    u32 sector_bytes = 0;
    u32 cluster_bytes = 0;
    u64 volume_offset = 0;  // bytes from the start of the source
    u64 volume_bytes = 0;
    PartitionKind partition = PartitionKind::Superfloppy;

    // The BPB's volume label without its trailing spaces.
    [[nodiscard]] inline ktl::StringView label() const {
      return ktl::StringView(label_bytes.span().first(label_length));
    }
  };

  // Finds the FAT32 file system (superfloppy, MBR type 0x0B/0x0C, or GPT basic data / EFI system
  // partition) and validates its BPB. `source` must outlive the volume.
  [[nodiscard]] static ktl::Result<FatVolume, FsError> mount(BlockSource& source);
  [[nodiscard]] static ktl::Result<FatVolume, FsError> mount(BlockSource& source, MountDetail& detail);

  FatVolume(FatVolume&&) = default;
  FatVolume& operator=(FatVolume&&) = default;
  ~FatVolume() = default;

  [[nodiscard]] inline Node root() const { return Node{root_cluster_, 0, NodeKind::Directory, kNoDirent}; }
  // "/", "/dir/file.txt": case-insensitive (ASCII) against the long and the 8.3 names.
  [[nodiscard]] ktl::Result<Node, FsError> lookup(ktl::StringView absolute_path);
  // Calls `visitor` for each entry of `dir` (not deleted ones, volume labels, "." and ".."), in
  // directory order, until it returns Visit::Stop; returns the number of entries visited.
  [[nodiscard]] ktl::Result<u32, FsError> list(const Node& dir, DirVisitor& visitor);
  template <class F>
    requires requires(F& f, const DirEntry& e) { static_cast<Visit>(f(e)); }
  [[nodiscard]] ktl::Result<u32, FsError> list(const Node& dir, F&& visit);
  // Reads from `offset`: short at the end of the file, 0 at or past it.
  [[nodiscard]] ktl::Result<usize, FsError> read(const Node& file, u64 offset, ktl::Span<u8> out);
  // Writes in place within the file's current size; a range reaching past the end fails with
  // NoSpace and writes nothing (files never grow, nothing is allocated). Returns in.size().
  [[nodiscard]] ktl::Result<usize, FsError> write(const Node& file, u64 offset, ktl::Span<const u8> in);
  [[nodiscard]] Info info() const;
  // Which check the last Corrupt error came from (Corruption::None before any).
  [[nodiscard]] inline Corruption last_corruption() const { return last_corruption_; }

 private:
  FatVolume() = default;

  struct Cursor {
    u32 first = 0;    // the chain's first cluster (0: empty)
    u32 index = 0;    // position in the chain
    u32 cluster = 0;  // the cluster at that position
  };

  [[nodiscard]] ktl::Err<FsError> corrupt(Corruption why);
  // Walks the whole chain of a file once (cached for the last file): loops, bad links, too short.
  [[nodiscard]] ktl::Result<void, FsError> validate_chain(const Node& file);
  [[nodiscard]] ktl::Result<void, FsError> source_read(u64 offset, ktl::Span<u8> out);
  [[nodiscard]] ktl::Result<u32, FsError> fat_entry(u32 cluster);
  // The cluster after `cluster` in its chain, or 0 at the end of the chain.
  [[nodiscard]] ktl::Result<u32, FsError> next_cluster(u32 cluster);
  // The cluster at position `index` of the chain starting at `first` (resuming from cursor_).
  [[nodiscard]] ktl::Result<u32, FsError> cluster_at(u32 first, u32 index);
  [[nodiscard]] ktl::Result<Node, FsError> find_in(const Node& dir, ktl::StringView name);
  template <class Transfer>
  [[nodiscard]] ktl::Result<void, FsError> transfer(const Node& file, u64 offset, usize length,
                                                    Transfer&& io);
  [[nodiscard]] inline u64 cluster_offset(u32 cluster) const {
    return data_offset_ + u64{cluster - 2} * cluster_bytes_;
  }
  [[nodiscard]] inline bool valid_cluster(u32 c) const { return c >= 2 && c <= cluster_count_ + 1; }

  BlockSource* source_ = nullptr;
  u64 volume_offset_ = 0;
  u64 volume_bytes_ = 0;
  u64 fat_offset_ = 0;   // the first FAT, absolute
  u64 data_offset_ = 0;  // cluster 2, absolute
  u32 sector_bytes_ = 0;
  u32 cluster_bytes_ = 0;
  u32 cluster_count_ = 0;
  u32 root_cluster_ = 0;
  u32 volume_id_ = 0;
  ktl::Optional<u32> free_clusters_;
  ktl::Array<char, 11> label_{};
  usize label_length_ = 0;
  PartitionKind partition_ = PartitionKind::Superfloppy;
  Corruption last_corruption_ = Corruption::None;
  Cursor cursor_;
  u32 validated_first_ = 0;  // the last file whose chain validate_chain accepted
  u32 validated_size_ = 0;
  // One 512-byte window of the first FAT (128 entries), index fat_window_ (or none).
  ktl::Array<u8, 512> fat_window_bytes_{};
  u64 fat_window_ = ~u64{0};
};

// list() with any callable taking (const DirEntry&) and returning Visit.
template <class F>
  requires requires(F& f, const DirEntry& e) { static_cast<Visit>(f(e)); }
ktl::Result<u32, FsError> FatVolume::list(const Node& dir, F&& visit) {
  struct Adapter final : DirVisitor {
    inline explicit Adapter(F& f) : f_(f) {}
    Visit visit(const DirEntry& e) override { return f_(e); }
    F& f_;
  };
  Adapter adapter(visit);
  return list(dir, static_cast<DirVisitor&>(adapter));
}

}  // namespace kernel::fs
