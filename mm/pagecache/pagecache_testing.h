// What the page-cache tests and the benchmark share: a small PMM with its frame table over test
// memory (Env), and a backing held in a byte vector that records its calls and fails on request
// (MemBacking). Host only.
#pragma once

#include <cstdint>
#include <cstring>
#include <mutex>
#include <optional>
#include <set>
#include <thread>
#include <vector>

import ktl;
import mm.addr;
import mm.arch;
import mm.frame_table;
import mm.page_cache;
import mm.pmm;
import mm.testing.env;

namespace pagecache_testing {

using ktl::u64;
using ktl::u8;
inline constexpr u64 kPage = mm::kPageSize;

// A PMM over `usable_frames` frames of test memory (plus its metadata), and its frame table. With
// `free_frames`, frames are held back (ballast) until exactly that many are free.
class Env {
 public:
  explicit Env(u64 usable_frames, std::optional<u64> free_frames = std::nullopt)
      : memory_(mm::test_env::TestMemory::acquire_at(mm::PhysAddr::from(16ull << 20),
                                                     (usable_frames + 64) * kPage)
                    .release_value()) {
    const mm::PhysMapEntry map[] = {
        {mm::PhysRange::with_size(memory_.base(), (usable_frames + 64) * kPage).value(), mm::PhysKind::Usable,
         mm::NodeId{0}},
    };
    ktl::check_ok(pmm_.init(ktl::Span<const mm::PhysMapEntry>(map), memory_.window()), "Env: pmm init");
    ktl::check_ok(table_.init(pmm_, memory_.window()), "Env: frame table init");
    // Every leaf of the table now (set_owner on one frame per leaf, whatever its state), so that
    // the free count only moves with the cache's frames.
    for (u64 f = 0; f < memory_.window().size() / kPage; f += mm::FrameTable::kLeafEntries) {
      auto one = mm::PhysRange::with_size(memory_.base() + f * kPage, kPage).value();
      ktl::check_ok(table_.set_owner(one, mm::FrameOwner::Slab, 1), "Env: a leaf of the frame table");
      table_.clear_owner(one);
    }
    if (free_frames.has_value()) {
      while (pmm_.free_frame_count() > *free_frames) ballast_.push_back(pmm_.alloc_page_unowned().value());
    }
    baseline_ = pmm_.free_frame_count();
  }
  ~Env() {
    for (mm::Frame4K f : ballast_) {
      if (pmm_.free_page(f).is_err()) std::abort();
    }
  }
  Env(const Env&) = delete;
  Env& operator=(const Env&) = delete;

  mm::Pmm& pmm() { return pmm_; }
  mm::FrameTable& table() { return table_; }
  mm::PhysWindow window() const { return memory_.window(); }
  u64 free_frames() const { return pmm_.free_frame_count(); }
  u64 baseline() const { return baseline_; }
  // Gives the ballast back (more memory), one frame at a time; false when there is none left.
  bool release_ballast() {
    if (ballast_.empty()) return false;
    if (pmm_.free_page(ballast_.back()).is_err()) std::abort();
    ballast_.pop_back();
    return true;
  }

 private:
  mm::test_env::TestMemory memory_;
  mm::Pmm pmm_;
  mm::FrameTable table_;
  std::vector<mm::Frame4K> ballast_;
  u64 baseline_ = 0;
};

// The host's io_wait hook: give the CPU to the thread doing the I/O.
inline void yield_wait() { std::this_thread::yield(); }

// A backing of `size` bytes in memory. Records every call; read_pages fails (after copying the
// good pages) when a page of the batch is in bad_reads; write_pages fails (writing nothing) when a
// page of the batch is in bad_writes. Thread-safe.
class MemBacking final : public mm::PageBacking {
 public:
  struct Call {
    u64 first;
    u64 count;
  };

  MemBacking(mm::PhysWindow window, u64 size) : window_(window), bytes_(size) {}
  ~MemBacking() = default;

  ktl::Result<void, mm::IoError> read_pages(u64 first, ktl::Span<const mm::Frame4K> frames) override {
    std::lock_guard<std::mutex> g(mu_);
    reads_.push_back({first, frames.size()});
    bool failed = false;
    for (size_t i = 0; i < frames.size(); ++i) {
      u64 page = first + i;
      ktl::Span<u8> dst = window_.bytes(frames[i].start(), kPage);
      std::memset(dst.data(), 0, kPage);
      u64 start = page * kPage;
      if (start < bytes_.size()) {
        u64 n = std::min<u64>(kPage, bytes_.size() - start);
        std::memcpy(dst.data(), bytes_.data() + start, n);
      }
      if (bad_reads_.count(page) != 0) {
        std::memset(dst.data(), 0xEE, kPage);  // what a failing DMA might leave behind
        failed = true;
      }
    }
    if (failed) return ktl::Err(mm::IoError::Device);
    return ktl::ok();
  }
  ktl::Result<void, mm::IoError> write_pages(u64 first, ktl::Span<const mm::Frame4K> frames) override {
    std::lock_guard<std::mutex> g(mu_);
    for (size_t i = 0; i < frames.size(); ++i) {
      if (bad_writes_.count(first + i) != 0) {
        failed_writes_.push_back({first, frames.size()});
        return ktl::Err(mm::IoError::Device);
      }
    }
    writes_.push_back({first, frames.size()});
    for (size_t i = 0; i < frames.size(); ++i) {
      u64 start = (first + i) * kPage;
      if (start >= bytes_.size()) continue;
      u64 n = std::min<u64>(kPage, bytes_.size() - start);
      std::memcpy(bytes_.data() + start, window_.bytes(frames[i].start(), kPage).data(), n);
    }
    return ktl::ok();
  }
  ktl::Result<void, mm::IoError> flush() override {
    std::lock_guard<std::mutex> g(mu_);
    ++flushes_;
    return ktl::ok();
  }
  u64 size_bytes() const override { return bytes_.size(); }

  // --- the test's side (not while the cache does I/O, unless noted) ---
  std::vector<u8>& bytes() { return bytes_; }
  std::vector<Call> reads() {
    std::lock_guard<std::mutex> g(mu_);
    return reads_;
  }
  std::vector<Call> writes() {
    std::lock_guard<std::mutex> g(mu_);
    return writes_;
  }
  std::vector<Call> failed_writes() {
    std::lock_guard<std::mutex> g(mu_);
    return failed_writes_;
  }
  u64 flushes() {
    std::lock_guard<std::mutex> g(mu_);
    return flushes_;
  }
  void clear_calls() {
    std::lock_guard<std::mutex> g(mu_);
    reads_.clear();
    writes_.clear();
    failed_writes_.clear();
  }
  void set_bad_read(u64 page, bool bad) {
    std::lock_guard<std::mutex> g(mu_);
    if (bad)
      bad_reads_.insert(page);
    else
      bad_reads_.erase(page);
  }
  void set_bad_write(u64 page, bool bad) {
    std::lock_guard<std::mutex> g(mu_);
    if (bad)
      bad_writes_.insert(page);
    else
      bad_writes_.erase(page);
  }
  // Pages written so far, in order (each page of each call).
  std::vector<u64> written_pages() {
    std::lock_guard<std::mutex> g(mu_);
    std::vector<u64> out;
    for (const Call& c : writes_)
      for (u64 i = 0; i < c.count; ++i) out.push_back(c.first + i);
    return out;
  }

 private:
  mm::PhysWindow window_;
  std::mutex mu_;
  std::vector<u8> bytes_;
  std::vector<Call> reads_, writes_, failed_writes_;
  std::set<u64> bad_reads_, bad_writes_;
  u64 flushes_ = 0;
};

// Bytes that differ per position and per seed.
inline void fill_pattern(std::vector<u8>& bytes, u64 seed) {
  for (size_t i = 0; i < bytes.size(); ++i)
    bytes[i] = static_cast<u8>((i * 131 + seed * 7 + (i >> 12)) & 0xff);
}

}  // namespace pagecache_testing
