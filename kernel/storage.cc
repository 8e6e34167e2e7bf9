module;

#include <ktl/macros.h>

module kernel.storage;

import ktl;
import kernel.fs.fat;
import kernel.kswapd;
import kernel.log;
import kernel.memory;
import kernel.sched;
import kernel.virtio_blk;
import mm.addr;
import mm.page_cache;
import mm.pmm;
import mm.reclaim;

namespace kernel::storage {

using ktl::u32;
using ktl::u64;
using ktl::usize;

namespace {

constexpr u64 kPage = 4096;
constexpr u64 kSectorsPerPage = kPage / 512;
// Segments per device request (one per page; the page cache's read-ahead window is as large).
constexpr usize kMaxSegments = virtio::kMaxSegments;

[[nodiscard]] mm::IoError to_io_error(virtio::BlkError e) {
  switch (e) {
    case virtio::BlkError::OutOfRange: return mm::IoError::OutOfRange;
    case virtio::BlkError::Timeout: return mm::IoError::Timeout;
    case virtio::BlkError::NoMemory: return mm::IoError::NoMemory;
    default: return mm::IoError::Device;
  }
}

[[nodiscard]] fs::FsError to_fs_error(mm::IoError e) {
  switch (e) {
    case mm::IoError::OutOfRange: return fs::FsError::OutOfRange;
    default: return fs::FsError::Io;
  }
}

// A virtio-blk disk as the page cache sees it: page i is sectors 8i .. 8i+7, read by DMA straight
// into the cache's frames (the kernel's physical addresses are the device's). A last page that
// the disk only partly covers is read up to the disk's end and zeroed beyond it.
class DiskBacking final : public mm::PageBacking {
 public:
  explicit DiskBacking(virtio::BlockDevice& disk) : disk_(disk) {}

  ktl::Result<void, mm::IoError> read_pages(u64 first_index, ktl::Span<const mm::Frame4K> frames) override {
    return transfer(first_index, frames, Direction::Read);
  }
  ktl::Result<void, mm::IoError> write_pages(u64 first_index, ktl::Span<const mm::Frame4K> frames) override {
    return transfer(first_index, frames, Direction::Write);
  }
  ktl::Result<void, mm::IoError> flush() override {
    auto r = disk_.flush();
    if (r.is_err()) return ktl::Err(to_io_error(r.error()));
    return ktl::ok();
  }
  u64 size_bytes() const override { return disk_.capacity_sectors() * 512; }
  [[nodiscard]] virtio::BlockDevice& disk() { return disk_; }

 private:
  enum class Direction : ktl::u8 { Read, Write };

  ktl::Result<void, mm::IoError> transfer(u64 first_index, ktl::Span<const mm::Frame4K> frames, Direction d) {
    const u64 capacity = disk_.capacity_sectors();
    usize done = 0;
    while (done < frames.size()) {
      u64 sector = (first_index + done) * kSectorsPerPage;
      if (sector >= capacity) {
        if (d == Direction::Read) {  // wholly past the end: zeros
          for (usize i = done; i < frames.size(); ++i) zero(frames[i], 0);
        }
        return ktl::ok();
      }
      ktl::Array<virtio::DmaSegment, kMaxSegments> segments{};
      usize n = 0;
      u64 sectors = 0;
      while (done + n < frames.size() && n < kMaxSegments && sector + sectors < capacity) {
        u64 left = capacity - (sector + sectors);
        u32 len = static_cast<u32>(left >= kSectorsPerPage ? kPage : left * 512);
        segments[n] = virtio::DmaSegment{frames[done + n].start(), len};
        sectors += len / 512;
        ++n;
        if (len != kPage) break;  // the disk ends inside this page
      }
      auto segs = segments.span().first(n);
      auto r = d == Direction::Read ? disk_.read(sector, segs) : disk_.write(sector, segs);
      if (r.is_err()) return ktl::Err(to_io_error(r.error()));
      if (d == Direction::Read && segments[n - 1].len != kPage)
        zero(frames[done + n - 1], segments[n - 1].len);
      done += n;
    }
    return ktl::ok();
  }

  static void zero(mm::Frame4K f, u32 from) {
    ktl::Span<ktl::u8> bytes = memory::window().bytes(f.start(), kPage);
    for (usize i = from; i < kPage; ++i) bytes[i] = 0;
  }

  virtio::BlockDevice& disk_;
};

// The file system's view of a disk: bytes through the page cache.
class CachedDisk final : public fs::BlockSource {
 public:
  CachedDisk(mm::PageCache& cache, mm::BackingId id, u64 size) : cache_(cache), id_(id), size_(size) {}
  ktl::Result<void, fs::FsError> read(u64 offset, ktl::Span<ktl::u8> out) override {
    if (offset > size_ || out.size() > size_ - offset) return ktl::Err(fs::FsError::OutOfRange);
    auto r = cache_.read(id_, offset, out);
    if (r.is_err()) return ktl::Err(to_fs_error(r.error()));
    if (r.value() != out.size()) return ktl::Err(fs::FsError::OutOfRange);
    return ktl::ok();
  }
  ktl::Result<void, fs::FsError> write(u64 offset, ktl::Span<const ktl::u8> in) override {
    if (offset > size_ || in.size() > size_ - offset) return ktl::Err(fs::FsError::OutOfRange);
    auto r = cache_.write(id_, offset, in);
    if (r.is_err()) return ktl::Err(to_fs_error(r.error()));
    if (r.value() != in.size()) return ktl::Err(fs::FsError::Io);
    return ktl::ok();
  }
  u64 size_bytes() const override { return size_; }

 private:
  mm::PageCache& cache_;
  mm::BackingId id_;
  u64 size_;
};

struct Disk {
  ktl::Optional<DiskBacking> backing;
  mm::BackingId id;
  ktl::Optional<CachedDisk> source;
  ktl::Optional<fs::FsError> mount_error;
  fs::MountDetail detail;
};

constexpr usize kMaxDisks = virtio::kMaxDevices;
ktl::Array<Disk, kMaxDisks> g_disks{};
usize g_disk_count = 0;
ktl::Optional<mm::PageCache> g_cache;
mm::ReclaimerRegistration g_registration;
ktl::Optional<fs::FatVolume> g_root;
usize g_root_disk = 0;
RootState g_state = RootState::NotStarted;

// The cache's wait for another task's I/O on a page: give the CPU away.
void io_wait() { sched::scheduler().yield(); }

}  // namespace

void start() {
  u32 found = virtio::device_count();  // probed by kernel_entry after the PCI scan
  mm::PageCacheConfig config;
  config.io_wait = &io_wait;
  // No limit but memory: the cache grows into free memory and reclaim takes it back.
  mm::MemStats st = memory::pmm().stats();
  config.max_pages = static_cast<u32>((st.free_bytes + st.used_bytes) / kPage);
  g_cache.emplace(memory::frame_table(), config);
  auto reg = kswapd::kswapd_register_reclaimer(*g_cache);
  if (reg.is_err()) {
    klog::error("storage: page_cache_reclaim not registered: {}", mm::to_string(reg.error()));
  } else {
    g_registration = reg.release_value();
  }
  if (found == 0) {
    g_state = RootState::NoDisk;
    klog::warn("storage: no virtio-blk disk: nothing mounted at /");
    return;
  }
  g_state = RootState::MountFailed;
  for (u32 i = 0; i < found && g_disk_count < kMaxDisks; ++i) {
    virtio::BlockDevice* dev = virtio::device(i);
    if (dev == nullptr) continue;
    Disk& d = g_disks[g_disk_count++];
    DiskBacking& b = d.backing.emplace(*dev);
    auto id = g_cache->attach(b);
    if (id.is_err()) {
      klog::error("storage: disk {}: not cached: {}", i, mm::to_string(id.error()));
      d.mount_error = fs::FsError::Io;
      continue;
    }
    d.id = id.value();
    CachedDisk& src = d.source.emplace(*g_cache, d.id, b.size_bytes());
    if (g_root.has_value()) continue;  // one root; the others stay raw disks
    auto v = fs::FatVolume::mount(src, d.detail);
    if (v.is_err()) {
      d.mount_error = v.error();
      klog::warn("storage: disk {} ({} MiB): no root file system: {}{}{}", i, b.size_bytes() >> 20,
                 fs::to_string(v.error()), v.error() == fs::FsError::NotFat32 ? ": " : "",
                 v.error() == fs::FsError::NotFat32 ? fs::to_string(d.detail.foreign) : "");
      continue;
    }
    g_root.emplace(v.release_value());
    g_root_disk = g_disk_count - 1;
    g_state = RootState::Mounted;
    fs::FatVolume::Info info = g_root->info();
    klog::info("storage: disk {} mounted at / (FAT32 \"{}\", {} MiB, {}-byte clusters, {})", i, info.label(),
               info.volume_bytes >> 20, info.cluster_bytes, fs::to_string(info.partition));
  }
}

u64 page_cache_reclaim(u64 frames) {
  if (!g_cache.has_value()) return 0;
  return g_cache->reclaim(frames).freed;
}

RootState root_state() { return g_state; }

ktl::Result<fs::FatVolume*, StorageError> root() {
  if (!g_root.has_value()) return ktl::Err(StorageError::NotMounted);
  return &g_root.value();
}

ktl::Result<mm::PageCache*, StorageError> page_cache() {
  if (!g_cache.has_value()) return ktl::Err(StorageError::NoCache);
  return &g_cache.value();
}

void write_mounts(ktl::FormatSink& out) {
  if (g_disk_count == 0) ktl::format_to(out, "mount: {}\n", to_string(g_state));
  for (usize i = 0; i < g_disk_count; ++i) {
    Disk& d = g_disks[i];
    u64 bytes = d.backing->size_bytes();
    ktl::format_to(out, "disk{}: virtio-blk, {} sectors ({} MiB)", i, bytes / 512, bytes >> 20);
    if (g_root.has_value() && g_root_disk == i) {
      fs::FatVolume::Info info = g_root->info();
      ktl::format_to(out, " on / type fat32 (label \"{}\", {} clusters of {} bytes, {}, at byte {})\n",
                     info.label(), info.total_clusters, info.cluster_bytes, fs::to_string(info.partition),
                     info.volume_offset);
    } else if (d.mount_error.has_value()) {
      ktl::format_to(out, " not mounted: {}", fs::to_string(*d.mount_error));
      if (*d.mount_error == fs::FsError::NotFat32)
        ktl::format_to(out, " ({})", fs::to_string(d.detail.foreign));
      if (*d.mount_error == fs::FsError::Corrupt)
        ktl::format_to(out, " ({})", fs::to_string(d.detail.corruption));
      out.write("\n");
    } else {
      out.write(" (raw, through the page cache)\n");
    }
  }
}

void write_page_cache(ktl::FormatSink& out) {
  if (!g_cache.has_value()) {
    out.write("pagecache: none\n");
    return;
  }
  mm::PageCacheStats s = g_cache->stats();
  u64 lookups = s.hits + s.misses;
  ktl::format_to(out, "pagecache: {} pages ({} KiB), {} dirty; {} reclaimable\n", s.pages, s.pages * 4,
                 s.dirty, g_cache->reclaimable());
  ktl::format_to(out, "pagecache: {} hits, {} misses ({}% hits), {} pages read ahead\n", s.hits, s.misses,
                 lookups == 0 ? 0 : s.hits * 100 / lookups, s.readahead_pages);
  ktl::format_to(out, "pagecache: {} evicted, {} written back, {} I/O errors\n", s.evicted, s.written_back,
                 s.io_errors);
}

ktl::Result<void, mm::IoError> sync() {
  if (!g_cache.has_value()) return ktl::ok();
  return g_cache->sync_all();
}

u64 drop_clean() { return g_cache.has_value() ? g_cache->drop_clean() : 0; }

FillResult fill_cache(u32 pct) {
  FillResult f;
  if (!g_cache.has_value()) return f;
  static ktl::Array<ktl::u8, kPage> page{};
  for (usize i = 0; i < g_disk_count; ++i) {
    Disk& d = g_disks[i];
    if (!d.source.has_value()) continue;
    u64 size = d.backing->size_bytes();
    for (u64 off = 0; off < size; off += kPage) {
      if (kswapd::mem_usage_pct() >= pct) return f;
      auto r = g_cache->read(d.id, off, page.span());
      if (r.is_err()) {
        klog::warn("storage: fill: disk {} at byte {}: {}", i, off, mm::to_string(r.error()));
        f.io_error = true;
        return f;
      }
      ++f.pages;
    }
  }
  return f;
}

}  // namespace kernel::storage
