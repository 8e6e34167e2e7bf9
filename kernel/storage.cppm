// kernel.storage: the disks in the running kernel. At boot (after kswapd and the PCI scan) it finds
// the virtio-blk devices (kernel.virtio_blk), puts each behind the page cache (mm.page_cache: a
// PageBacking that DMAs straight into the cache's frames), registers page_cache_reclaim with
// kswapd, and mounts the first disk that holds a FAT32 file system (kernel.fs.fat, reading through
// the cache) as `/`. A missing disk, a blank one or a foreign file system is one log line and no
// root, never a panic; the shell's `mount` says which.
module;

#include <ktl/macros.h>

export module kernel.storage;

import ktl;
import kernel.fs.fat;
import mm.page_cache;
import mm.reclaim;

export namespace kernel::storage {

// Brings up the block devices, the page cache and the root file system. After kswapd.start and
// pci_bus.start.
void start();

// What the page cache frees when kswapd asks (clean pages first, least recently used, second
// chance for referenced ones; dirty ones written back first); frames freed.
ktl::u64 page_cache_reclaim(ktl::u64 frames);

// Why there is no root file system.
enum class RootState : ktl::u8 { NotStarted, NoDisk, Mounted, MountFailed };
[[nodiscard]] constexpr const char* to_string(RootState s) {
  switch (s) {
    case RootState::NotStarted: return "storage not started";
    case RootState::NoDisk: return "no virtio-blk disk";
    case RootState::Mounted: return "mounted";
    case RootState::MountFailed: return "no usable file system";
  }
  return "unknown root state";
}
[[nodiscard]] RootState root_state();
// The volume mounted at `/`; NotMounted (with root_state() saying why) otherwise.
enum class StorageError : ktl::u8 { NotMounted, NoCache };
[[nodiscard]] constexpr const char* to_string(StorageError e) {
  switch (e) {
    case StorageError::NotMounted: return "no file system is mounted at /";
    case StorageError::NoCache: return "no page cache (no disk)";
  }
  return "unknown storage error";
}
[[nodiscard]] ktl::Result<fs::FatVolume*, StorageError> root();
[[nodiscard]] ktl::Result<mm::PageCache*, StorageError> page_cache();

// The disks, what is mounted where and why the rest is not (the shell's `mount`).
void write_mounts(ktl::FormatSink& out);
// The page cache's statistics (the shell's `pagecache`).
void write_page_cache(ktl::FormatSink& out);
// Writes every dirty page back and flushes the disks' caches (the shell's `sync`).
[[nodiscard]] ktl::Result<void, mm::IoError> sync();
// Evicts every clean page now; frames freed (the shell's `drop`).
ktl::u64 drop_clean();
// Reads the whole of every disk through the page cache, page by page, until memory usage reaches
// `pct` or the disks end (the page-cache half of the shell's `fill`); pages read.
struct FillResult {
  ktl::u64 pages = 0;
  bool io_error = false;
};
FillResult fill_cache(ktl::u32 pct);

}  // namespace kernel::storage
