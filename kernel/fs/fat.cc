// kernel.fs.fat: mount (boot sector, MBR, GPT), BPB validation, cluster chains, directories with
// long file names, file reads and in-place writes. See fat.cppm for the contracts.
module;

#include <ktl/macros.h>

module kernel.fs.fat;

import ktl;

namespace kernel::fs {

namespace {

constexpr usize kLba = 512;  // partition tables count in 512-byte LBAs
constexpr usize kEntryBytes = 32;
constexpr u32 kEndOfChain = 0x0FFFFFF8;
constexpr u32 kBadCluster = 0x0FFFFFF7;
constexpr u32 kFirstReservedHigh = 0x0FFFFFF0;
constexpr u32 kMaxClusters = 0x0FFFFFF5;
constexpr u8 kAttrVolumeLabel = 0x08;
constexpr u8 kAttrDirectory = 0x10;
constexpr u8 kAttrLongName = 0x0F;
constexpr u32 kMaxGptEntries = 256;

[[nodiscard]] u16 le16(ktl::Span<const u8> b, usize at) {
  return static_cast<u16>(b[at] | static_cast<u16>(b[at + 1] << 8));
}
[[nodiscard]] u32 le32(ktl::Span<const u8> b, usize at) {
  return u32{b[at]} | u32{b[at + 1]} << 8 | u32{b[at + 2]} << 16 | u32{b[at + 3]} << 24;
}
[[nodiscard]] u64 le64(ktl::Span<const u8> b, usize at) {
  return u64{le32(b, at)} | u64{le32(b, at + 4)} << 32;
}

[[nodiscard]] bool same_bytes(ktl::Span<const u8> b, usize at, ktl::StringView text) {
  if (at > b.size() || text.size() > b.size() - at) return false;
  for (usize i = 0; i < text.size(); ++i) {
    if (b[at + i] != static_cast<u8>(text[i])) return false;
  }
  return true;
}

[[nodiscard]] char fold(char c) { return c >= 'a' && c <= 'z' ? static_cast<char>(c - 'a' + 'A') : c; }

[[nodiscard]] bool equal_ci(ktl::StringView a, ktl::StringView b) {
  if (a.size() != b.size()) return false;
  for (usize i = 0; i < a.size(); ++i) {
    if (fold(a[i]) != fold(b[i])) return false;
  }
  return true;
}

// The 8.3 name's checksum that LFN entries carry (Microsoft FAT spec, "ChkSum").
[[nodiscard]] u8 short_name_checksum(ktl::Span<const u8> raw) {
  u8 sum = 0;
  for (usize i = 0; i < 11; ++i) sum = static_cast<u8>(((sum & 1) << 7) + (sum >> 1) + raw[i]);
  return sum;
}

// A jump instruction where a boot sector starts.
[[nodiscard]] bool has_jump(ktl::Span<const u8> s) { return (s[0] == 0xEB && s[2] == 0x90) || s[0] == 0xE9; }

// A BPB whose geometry fields are plausible (used to tell a boot sector from an MBR).
[[nodiscard]] bool plausible_bpb(ktl::Span<const u8> s) {
  const u16 bps = le16(s, 11);
  const u8 spc = s[13];
  return has_jump(s) && bps >= 512 && bps <= 4096 && ktl::is_power_of_two(u32{bps}) && spc != 0 &&
         ktl::is_power_of_two(u32{spc}) && s[16] != 0;
}

// Another file system's signature in a boot sector (or its first 512 bytes).
[[nodiscard]] ForeignFs foreign_signature(ktl::Span<const u8> s) {
  if (same_bytes(s, 3, "EXFAT   ")) return ForeignFs::ExFat;
  if (same_bytes(s, 3, "NTFS    ")) return ForeignFs::Ntfs;
  return ForeignFs::Unknown;
}

// An MBR partition table: 0x55AA, status bytes 0x00/0x80, at least one used entry.
[[nodiscard]] bool plausible_mbr(ktl::Span<const u8> s) {
  if (s[510] != 0x55 || s[511] != 0xAA) return false;
  bool used = false;
  for (usize i = 0; i < 4; ++i) {
    const usize e = 446 + 16 * i;
    if (s[e] != 0x00 && s[e] != 0x80) return false;
    used = used || s[e + 4] != 0;
  }
  return used;
}

constexpr u8 kGptBasicData[16] = {0xA2, 0xA0, 0xD0, 0xEB, 0xE5, 0xB9, 0x33, 0x44,
                                  0x87, 0xC0, 0x68, 0xB6, 0xB7, 0x26, 0x99, 0xC7};
constexpr u8 kGptEfiSystem[16] = {0x28, 0x73, 0x2A, 0xC1, 0x1F, 0xF8, 0xD2, 0x11,
                                  0xBA, 0x4B, 0x00, 0xA0, 0xC9, 0x3E, 0xC9, 0x3B};

[[nodiscard]] bool same_guid(ktl::Span<const u8> entry, ktl::Span<const u8> guid) {
  for (usize i = 0; i < 16; ++i) {
    if (entry[i] != guid[i]) return false;
  }
  return true;
}

// Reads through the source after checking the range against its size.
[[nodiscard]] ktl::Result<void, FsError> read_checked(BlockSource& source, u64 offset, ktl::Span<u8> out) {
  const u64 size = source.size_bytes();
  if (offset > size || out.size() > size - offset) return ktl::Err(FsError::OutOfRange);
  return source.read(offset, out);
}

// UTF-16 code units (stopping at 0x0000) to UTF-8 in `out`; unpaired surrogates become U+FFFD.
// Returns the bytes written, or 0 when the name is empty or does not fit.
[[nodiscard]] usize utf16_to_utf8(ktl::Span<const u16> units, ktl::Span<char> out) {
  usize n = 0;
  auto put = [&](u32 cp) -> bool {
    ktl::Array<u8, 4> bytes{};
    usize len;
    if (cp < 0x80) {
      bytes[0] = static_cast<u8>(cp);
      len = 1;
    } else if (cp < 0x800) {
      bytes[0] = static_cast<u8>(0xC0 | (cp >> 6));
      bytes[1] = static_cast<u8>(0x80 | (cp & 0x3F));
      len = 2;
    } else if (cp < 0x10000) {
      bytes[0] = static_cast<u8>(0xE0 | (cp >> 12));
      bytes[1] = static_cast<u8>(0x80 | ((cp >> 6) & 0x3F));
      bytes[2] = static_cast<u8>(0x80 | (cp & 0x3F));
      len = 3;
    } else {
      bytes[0] = static_cast<u8>(0xF0 | (cp >> 18));
      bytes[1] = static_cast<u8>(0x80 | ((cp >> 12) & 0x3F));
      bytes[2] = static_cast<u8>(0x80 | ((cp >> 6) & 0x3F));
      bytes[3] = static_cast<u8>(0x80 | (cp & 0x3F));
      len = 4;
    }
    if (len > out.size() - n) return false;
    for (usize i = 0; i < len; ++i) out[n + i] = static_cast<char>(bytes[i]);
    n += len;
    return true;
  };
  for (usize i = 0; i < units.size() && units[i] != 0; ++i) {
    u32 cp = units[i];
    if (cp >= 0xD800 && cp <= 0xDBFF && i + 1 < units.size() && units[i + 1] >= 0xDC00 &&
        units[i + 1] <= 0xDFFF) {
      cp = 0x10000 + ((cp - 0xD800) << 10) + (units[i + 1] - 0xDC00);
      ++i;
    } else if (cp >= 0xD800 && cp <= 0xDFFF) {
      cp = 0xFFFD;
    }
    if (!put(cp)) return 0;
  }
  return n;
}

// The 8.3 name of a short entry as "NAME.EXT" (NT case flags applied, bytes >= 0x80 as '?').
usize format_short_name(ktl::Span<const u8> raw, ktl::Span<char> out) {
  usize n = 0;
  const bool lower_base = (raw[12] & 0x08) != 0;
  const bool lower_ext = (raw[12] & 0x10) != 0;
  auto put = [&](u8 c, bool lower) {
    char ch = c >= 0x80 ? '?' : static_cast<char>(c);
    if (lower && ch >= 'A' && ch <= 'Z') ch = static_cast<char>(ch - 'A' + 'a');
    out[n++] = ch;
  };
  usize base_end = 8;
  while (base_end > 0 && raw[base_end - 1] == ' ') --base_end;
  usize ext_end = 11;
  while (ext_end > 8 && raw[ext_end - 1] == ' ') --ext_end;
  for (usize i = 0; i < base_end; ++i) put(i == 0 && raw[0] == 0x05 ? u8{0xE5} : raw[i], lower_base);
  if (ext_end > 8) {
    out[n++] = '.';
    for (usize i = 8; i < ext_end; ++i) put(raw[i], lower_ext);
  }
  return n;
}

// A long file name being assembled from its entries (last part first on disk).
struct LongName {
  ktl::Array<u16, 20 * 13> units{};
  u32 next = 0;  // the sequence number expected next; 0 after the part numbered 1
  u32 parts = 0;
  u8 checksum = 0;
  bool active = false;

  void reset() { active = false; }
  void add(ktl::Span<const u8> raw) {
    const u8 ord = raw[0];
    const u32 seq = ord & 0x1F;
    if ((ord & 0x40) != 0) {
      if (seq == 0 || seq > 20) {
        active = false;
        return;
      }
      active = true;
      parts = seq;
      next = seq;
      checksum = raw[13];
      for (u16& u : units) u = 0xFFFF;
    } else if (!active || next == 0 || seq != next || raw[13] != checksum) {
      active = false;
      return;
    }
    constexpr usize kOffsets[13] = {1, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24, 28, 30};
    const usize base = (seq - 1) * 13;
    for (usize k = 0; k < 13; ++k) units[base + k] = le16(raw, ktl::Span<const usize>(kOffsets)[k]);
    next = seq - 1;
  }
  // Complete and belonging to the short entry `raw`.
  [[nodiscard]] bool matches(ktl::Span<const u8> raw) const {
    return active && next == 0 && checksum == short_name_checksum(raw);
  }
  // The name's UTF-16 units up to its terminator; empty when longer than 255 units.
  [[nodiscard]] ktl::Span<const u16> name() const {
    const usize limit = parts * 13;
    usize len = 0;
    while (len < limit && units[len] != 0) ++len;
    if (len > 255) return {};
    return units.span().first(len);
  }
};

}  // namespace

ktl::Err<FsError> FatVolume::corrupt(Corruption why) {
  last_corruption_ = why;
  return ktl::Err(FsError::Corrupt);
}

ktl::Result<void, FsError> FatVolume::source_read(u64 offset, ktl::Span<u8> out) {
  return read_checked(*source_, offset, out);
}

// --- mount -------------------------------------------------------------------------------------------

namespace {

struct Candidate {
  u64 offset;  // the boot sector, absolute
  PartitionKind kind;
};

}  // namespace

ktl::Result<FatVolume, FsError> FatVolume::mount(BlockSource& source) {
  MountDetail detail;
  return mount(source, detail);
}

namespace {

// The BPB at `offset` (its first 512 bytes in `s`) as a volume, or why not.
ktl::Result<void, FsError> parse_bpb(BlockSource& source, ktl::Span<u8> s, u64 offset, MountDetail& detail,
                                     u64& fat_offset, u64& data_offset, u64& volume_bytes, u32& sector_bytes,
                                     u32& cluster_bytes, u32& cluster_count, u32& root_cluster, u32& fsinfo) {
  auto bad = [&](Corruption why) {
    detail.corruption = why;
    return ktl::Err(FsError::Corrupt);
  };
  const ForeignFs foreign = foreign_signature(s);
  if (foreign != ForeignFs::Unknown) {
    detail.foreign = foreign;
    return ktl::Err(FsError::NotFat32);
  }
  const u32 bps = le16(s, 11);
  const u32 spc = s[13];
  const u32 reserved = le16(s, 14);
  const u32 fats = s[16];
  const u32 root_entries = le16(s, 17);
  const u32 total16 = le16(s, 19);
  const u32 fat16 = le16(s, 22);
  const u32 total32 = le32(s, 32);
  const u32 fat32 = le32(s, 36);
  if (bps < 512 || bps > 4096 || !ktl::is_power_of_two(bps)) return bad(Corruption::BadBytesPerSector);
  if (spc == 0 || !ktl::is_power_of_two(spc) || spc * bps > 32768)
    return bad(Corruption::BadSectorsPerCluster);
  if (reserved == 0) return bad(Corruption::NoReservedSectors);
  if (fats == 0 || fats > 2) return bad(Corruption::BadFatCount);
  const u64 total = total16 != 0 ? total16 : total32;
  if (total == 0) return bad(Corruption::NoTotalSectors);
  if (fat16 != 0) {
    // FAT12/16: the cluster count says which (Microsoft's rule).
    const u64 root_sectors = (u64{root_entries} * 32 + bps - 1) / bps;
    const u64 data = reserved + u64{fats} * fat16 + root_sectors;
    const u64 clusters = data < total ? (total - data) / spc : 0;
    detail.foreign = clusters < 4085 ? ForeignFs::Fat12 : ForeignFs::Fat16;
    return ktl::Err(FsError::NotFat32);
  }
  if (root_entries != 0) return bad(Corruption::RootEntriesNotZero);
  if (fat32 == 0) return bad(Corruption::NoFatSize);
  const u64 data_sector = reserved + u64{fats} * fat32;
  if (data_sector >= total) return bad(Corruption::NoDataArea);
  const u64 clusters = (total - data_sector) / spc;
  if (clusters == 0) return bad(Corruption::NoDataArea);
  if (clusters > kMaxClusters) return bad(Corruption::TooManyClusters);
  if (u64{fat32} * bps / 4 < clusters + 2) return bad(Corruption::FatTooSmall);
  const u32 root = le32(s, 44);
  if (root < 2 || root > clusters + 1) return bad(Corruption::BadRootCluster);
  volume_bytes = total * bps;
  const u64 device = source.size_bytes();
  if (offset > device || volume_bytes > device - offset) return bad(Corruption::VolumeLargerThanDevice);
  fat_offset = offset + u64{reserved} * bps;
  data_offset = offset + data_sector * bps;
  sector_bytes = bps;
  cluster_bytes = spc * bps;
  cluster_count = static_cast<u32>(clusters);
  root_cluster = root;
  fsinfo = le16(s, 48) < reserved ? le16(s, 48) : 0;
  return ktl::ok();
}

}  // namespace

ktl::Result<FatVolume, FsError> FatVolume::mount(BlockSource& source, MountDetail& detail) {
  detail = MountDetail{};
  if (source.size_bytes() < kLba) return ktl::Err(FsError::DeviceTooSmall);
  ktl::Array<u8, 512> sector{};
  TRY(read_checked(source, 0, sector.span()));

  // Where boot sectors may be: sector 0 itself, or the FAT32 partitions of an MBR or GPT.
  ktl::Array<Candidate, 4> candidates{};
  usize count = 0;
  ForeignFs foreign = foreign_signature(sector.span());
  if (foreign == ForeignFs::Unknown && source.size_bytes() >= 1082) {
    ktl::Array<u8, 2> magic{};
    TRY(read_checked(source, 1080, magic.span()));
    if (magic[0] == 0x53 && magic[1] == 0xEF) foreign = ForeignFs::Ext;
  }
  if (foreign != ForeignFs::Unknown) {
    detail.foreign = foreign;
    return ktl::Err(FsError::NotFat32);
  }
  const u64 device = source.size_bytes();
  auto partition = [&](u64 lba, PartitionKind kind) -> ktl::Result<void, FsError> {
    if (lba == 0 || lba > device / kLba - 1) {
      detail.corruption = Corruption::BadPartition;
      detail.where = kind;
      return ktl::Err(FsError::Corrupt);
    }
    if (count < candidates.size()) candidates[count++] = Candidate{lba * kLba, kind};
    return ktl::ok();
  };
  if (plausible_bpb(sector.span())) {
    candidates[count++] = Candidate{0, PartitionKind::Superfloppy};
  } else if (plausible_mbr(sector.span())) {
    bool gpt = false;
    for (usize i = 0; i < 4; ++i) gpt = gpt || sector[446 + 16 * i + 4] == 0xEE;
    if (gpt) {
      if (device < 2 * kLba) return ktl::Err(FsError::NoFileSystem);
      TRY(read_checked(source, kLba, sector.span()));
      if (!same_bytes(sector.span(), 0, "EFI PART")) return ktl::Err(FsError::NoFileSystem);
      const u64 entries_lba = le64(sector.span(), 72);
      const u32 entries = ktl::min(le32(sector.span(), 80), kMaxGptEntries);
      const u32 entry_size = le32(sector.span(), 84);
      if (entry_size < 128 || entry_size > 4096 || entry_size % 8 != 0 || entries_lba == 0 ||
          entries_lba > device / kLba) {
        return ktl::Err(FsError::NoFileSystem);
      }
      ktl::Array<u8, 128> entry{};
      for (u32 i = 0; i < entries && count < candidates.size(); ++i) {
        const u64 at = entries_lba * kLba + u64{i} * entry_size;
        TRY(read_checked(source, at, entry.span()));
        if (same_guid(entry.span(), ktl::Span<const u8>(kGptBasicData)) ||
            same_guid(entry.span(), ktl::Span<const u8>(kGptEfiSystem))) {
          TRY(partition(le64(entry.span(), 32), PartitionKind::Gpt));
        }
      }
    } else {
      for (usize i = 0; i < 4; ++i) {
        const usize e = 446 + 16 * i;
        const u8 type = sector[e + 4];
        if (type == 0x0B || type == 0x0C) {
          TRY(partition(le32(sector.span(), e + 8), PartitionKind::Mbr));
        } else if (type == 0x01 || type == 0x04 || type == 0x06 || type == 0x0E) {
          foreign = type == 0x01 ? ForeignFs::Fat12 : ForeignFs::Fat16;
        } else if (type == 0x83 && foreign == ForeignFs::Unknown) {
          foreign = ForeignFs::Ext;
        } else if (type == 0x07 && foreign == ForeignFs::Unknown) {
          // exFAT or NTFS: the partition's boot sector says which.
          const u64 lba = le32(sector.span(), e + 8);
          ktl::Array<u8, 512> boot{};
          if (lba != 0 && lba < device / kLba && read_checked(source, lba * kLba, boot.span()).is_ok()) {
            foreign = foreign_signature(boot.span());
          }
        }
      }
    }
  } else if (has_jump(sector.span())) {
    candidates[count++] = Candidate{0, PartitionKind::Superfloppy};  // a damaged BPB: say what is wrong
  }
  if (count == 0) {
    if (foreign != ForeignFs::Unknown) {
      detail.foreign = foreign;
      return ktl::Err(FsError::NotFat32);
    }
    return ktl::Err(FsError::NoFileSystem);
  }

  // The first candidate that is FAT32 wins; otherwise the first candidate's error.
  ktl::Optional<FsError> first_error;
  MountDetail first_detail;
  for (usize i = 0; i < count; ++i) {
    const Candidate c = candidates[i];
    MountDetail d;
    d.where = c.kind;
    auto read = read_checked(source, c.offset, sector.span());
    if (read.is_err()) return ktl::Err(read.release_error());
    FatVolume v;
    u32 fsinfo = 0;
    auto r = parse_bpb(source, sector.span(), c.offset, d, v.fat_offset_, v.data_offset_, v.volume_bytes_,
                       v.sector_bytes_, v.cluster_bytes_, v.cluster_count_, v.root_cluster_, fsinfo);
    if (r.is_err()) {
      if (!first_error.has_value()) {
        first_error = r.error();
        first_detail = d;
      }
      continue;
    }
    v.source_ = &source;
    v.volume_offset_ = c.offset;
    v.partition_ = c.kind;
    v.volume_id_ = le32(sector.span(), 67);
    usize label = 11;
    while (label > 0 && sector[71 + label - 1] == ' ') --label;
    for (usize k = 0; k < 11; ++k)
      v.label_[k] = static_cast<char>(sector[71 + k] >= 0x80 ? '?' : sector[71 + k]);
    v.label_length_ = label;
    if (fsinfo != 0) {
      const u64 at = c.offset + u64{fsinfo} * v.sector_bytes_;
      if (read_checked(source, at, sector.span()).is_ok() && le32(sector.span(), 0) == 0x41615252 &&
          le32(sector.span(), 484) == 0x61417272 && le32(sector.span(), 508) == 0xAA550000) {
        const u32 free = le32(sector.span(), 488);
        if (free <= v.cluster_count_) v.free_clusters_ = free;
      }
    }
    detail = d;
    return v;
  }
  detail = first_detail;
  return ktl::Err(first_error.value());
}

FatVolume::Info FatVolume::info() const {
  Info i;
  i.label_bytes = label_;
  i.label_length = label_length_;
  i.volume_id = volume_id_;
  i.total_clusters = cluster_count_;
  i.free_clusters = free_clusters_;
  i.sector_bytes = sector_bytes_;
  i.cluster_bytes = cluster_bytes_;
  i.volume_offset = volume_offset_;
  i.volume_bytes = volume_bytes_;
  i.partition = partition_;
  return i;
}

// --- clusters ----------------------------------------------------------------------------------------

ktl::Result<u32, FsError> FatVolume::fat_entry(u32 cluster) {
  // valid_cluster(cluster) holds, and mount checked the FAT holds cluster_count_ + 2 entries.
  const u64 at = fat_offset_ + u64{cluster} * 4;
  const u64 window = at / fat_window_bytes_.size();
  if (window != fat_window_) {
    fat_window_ = ~u64{0};
    TRY(source_read(window * fat_window_bytes_.size(), fat_window_bytes_.span()));
    fat_window_ = window;
  }
  return le32(fat_window_bytes_.span(), static_cast<usize>(at % fat_window_bytes_.size())) & 0x0FFFFFFF;
}

ktl::Result<u32, FsError> FatVolume::next_cluster(u32 cluster) {
  const u32 v = TRY(fat_entry(cluster));
  if (v >= kEndOfChain) return u32{0};
  if (v == kBadCluster) return corrupt(Corruption::ChainBadCluster);
  if (v == 0) return corrupt(Corruption::ChainFreeCluster);
  if (v == 1 || v >= kFirstReservedHigh) return corrupt(Corruption::ChainReservedCluster);
  if (v > cluster_count_ + 1) return corrupt(Corruption::ChainOutsideFat);
  return v;
}

ktl::Result<u32, FsError> FatVolume::cluster_at(u32 first, u32 index) {
  u32 c = first;
  u32 i = 0;
  if (cursor_.first == first && cursor_.index <= index) {
    c = cursor_.cluster;
    i = cursor_.index;
  }
  if (index >= cluster_count_) return corrupt(Corruption::ChainTooShort);
  while (i < index) {
    const u32 n = TRY(next_cluster(c));
    if (n == 0) return corrupt(Corruption::ChainTooShort);
    c = n;
    ++i;
  }
  cursor_ = Cursor{first, index, c};
  return c;
}

ktl::Result<void, FsError> FatVolume::validate_chain(const Node& file) {
  if (!valid_cluster(file.first_cluster)) return corrupt(Corruption::EntryBadCluster);
  if (validated_first_ == file.first_cluster && validated_size_ == file.size) return ktl::ok();
  const u64 needed = (u64{file.size} + cluster_bytes_ - 1) / cluster_bytes_;
  u64 length = 1;
  u32 c = file.first_cluster;
  while (true) {
    const u32 n = TRY(next_cluster(c));
    if (n == 0) break;
    if (++length > cluster_count_) return corrupt(Corruption::ChainLoops);
    c = n;
  }
  if (length < needed) return corrupt(Corruption::ChainTooShort);
  validated_first_ = file.first_cluster;
  validated_size_ = file.size;
  return ktl::ok();
}

template <class Transfer>
ktl::Result<void, FsError> FatVolume::transfer(const Node& file, u64 offset, usize length, Transfer&& io) {
  TRY(validate_chain(file));
  usize done = 0;
  while (done < length) {
    const u64 pos = offset + done;
    u32 index = static_cast<u32>(pos / cluster_bytes_);
    const u32 within = static_cast<u32>(pos % cluster_bytes_);
    u32 c = TRY(cluster_at(file.first_cluster, index));
    const u64 start = cluster_offset(c) + within;
    usize n = ktl::min<usize>(length - done, cluster_bytes_ - within);
    // Contiguous clusters go in one transfer.
    while (done + n < length) {
      const u32 next = TRY(cluster_at(file.first_cluster, index + 1));
      if (next != c + 1) break;
      c = next;
      ++index;
      n += ktl::min<usize>(length - done - n, cluster_bytes_);
    }
    TRY(io(start, done, n));
    done += n;
  }
  return ktl::ok();
}

ktl::Result<usize, FsError> FatVolume::read(const Node& file, u64 offset, ktl::Span<u8> out) {
  if (file.kind != NodeKind::File) return ktl::Err(FsError::IsADirectory);
  if (offset >= file.size || out.empty()) return usize{0};
  const usize n = static_cast<usize>(ktl::min<u64>(out.size(), file.size - offset));
  TRY(transfer(file, offset, n, [&](u64 at, usize from, usize count) -> ktl::Result<void, FsError> {
    return source_read(at, out.subspan(from, count));
  }));
  return n;
}

ktl::Result<usize, FsError> FatVolume::write(const Node& file, u64 offset, ktl::Span<const u8> in) {
  if (file.kind != NodeKind::File) return ktl::Err(FsError::IsADirectory);
  if (offset > file.size || in.size() > file.size - offset) return ktl::Err(FsError::NoSpace);
  if (in.empty()) return usize{0};
  TRY(transfer(file, offset, in.size(), [&](u64 at, usize from, usize count) -> ktl::Result<void, FsError> {
    const u64 size = source_->size_bytes();
    if (at > size || count > size - at) return ktl::Err(FsError::OutOfRange);
    return source_->write(at, in.subspan(from, count));
  }));
  return in.size();
}

// --- directories -------------------------------------------------------------------------------------

ktl::Result<u32, FsError> FatVolume::list(const Node& dir, DirVisitor& visitor) {
  if (dir.kind != NodeKind::Directory) return ktl::Err(FsError::NotADirectory);
  if (!valid_cluster(dir.first_cluster)) return corrupt(Corruption::EntryBadCluster);
  LongName lfn;
  DirEntry entry;
  ktl::Array<u8, kEntryBytes> raw{};
  u32 visited = 0;
  u32 c = dir.first_cluster;
  u32 clusters = 1;
  while (true) {
    for (u32 off = 0; off < cluster_bytes_; off += kEntryBytes) {
      const u64 at = cluster_offset(c) + off;
      TRY(source_read(at, raw.span()));
      const u8 first = raw[0];
      const u8 attr = raw[11];
      if (first == 0x00) return visited;  // the end of the directory
      if (first == 0xE5) {                // deleted
        lfn.reset();
        continue;
      }
      if ((attr & 0x3F) == kAttrLongName) {
        lfn.add(raw.span());
        continue;
      }
      if ((attr & kAttrVolumeLabel) != 0 ||
          (first == '.' && (raw[1] == ' ' || (raw[1] == '.' && raw[2] == ' ')))) {
        lfn.reset();
        continue;
      }
      entry.short_name_length = format_short_name(raw.span(), entry.short_name_bytes.span());
      entry.long_name = false;
      if (lfn.matches(raw.span())) {
        entry.name_length = utf16_to_utf8(lfn.name(), entry.name_bytes.span());
        entry.long_name = entry.name_length != 0;
      }
      lfn.reset();
      if (!entry.long_name) {
        entry.name_length = entry.short_name_length;
        for (usize i = 0; i < entry.short_name_length; ++i) entry.name_bytes[i] = entry.short_name_bytes[i];
      }
      const u32 cluster = u32{le16(raw.span(), 20)} << 16 | le16(raw.span(), 26);
      const u32 size = le32(raw.span(), 28);
      if ((attr & kAttrDirectory) != 0) {
        if (!valid_cluster(cluster)) return corrupt(Corruption::EntryBadCluster);
        entry.node = Node{cluster, 0, NodeKind::Directory, at};
      } else {
        if (cluster == 0 ? size != 0 : !valid_cluster(cluster)) return corrupt(Corruption::EntryBadCluster);
        entry.node = Node{cluster, size, NodeKind::File, at};
      }
      ++visited;
      if (visitor.visit(entry) == Visit::Stop) return visited;
    }
    const u32 n = TRY(next_cluster(c));
    if (n == 0) return visited;
    if (++clusters > cluster_count_) return corrupt(Corruption::ChainLoops);
    c = n;
  }
}

ktl::Result<Node, FsError> FatVolume::find_in(const Node& dir, ktl::StringView name) {
  ktl::Optional<Node> found;
  TRY(list(dir, [&](const DirEntry& e) {
    if (equal_ci(e.name(), name) || equal_ci(e.short_name(), name)) {
      found = e.node;
      return Visit::Stop;
    }
    return Visit::Continue;
  }));
  if (!found.has_value()) return ktl::Err(FsError::NotFound);
  return found.value();
}

ktl::Result<Node, FsError> FatVolume::lookup(ktl::StringView path) {
  if (path.empty() || path[0] != '/') return ktl::Err(FsError::BadPath);
  ktl::Array<Node, kMaxDepth> parents{};
  usize depth = 0;
  Node current = root();
  usize i = 1;
  while (i < path.size()) {
    const usize slash = path.find('/', i);
    const ktl::StringView part = path.substr(i, slash - i);
    if (part.empty()) return ktl::Err(FsError::BadPath);  // "//"
    if (part.size() > 255) return ktl::Err(FsError::NameTooLong);
    if (current.kind != NodeKind::Directory) return ktl::Err(FsError::NotADirectory);
    if (part == ".") {
      // stays
    } else if (part == "..") {
      if (depth > 0) current = parents[--depth];
    } else {
      if (depth == parents.size()) return ktl::Err(FsError::BadPath);
      const Node child = TRY(find_in(current, part));
      parents[depth++] = current;
      current = child;
    }
    i = slash + 1;
    if (slash + 1 == path.size() && current.kind != NodeKind::Directory) {
      return ktl::Err(FsError::NotADirectory);  // "file/"
    }
  }
  return current;
}

}  // namespace kernel::fs
