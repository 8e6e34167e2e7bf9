// The shadow model of mm.page_cache for the differential test (pagecache_diff_test.cc): each
// backing's contents as a plain byte array, what every read must return and what the backing
// must hold after a sync. The harness drives a real PageCache over two MemBackings and a small
// PMM (so that reclaim and running out of frames happen all the time) beside the model. Host only.
#pragma once

#include <cstdint>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "mm/pagecache/pagecache_testing.h"

import ktl;
import mm.page_cache;
import mm.reclaim;

#pragma clang attribute push(__attribute__((no_sanitize("coverage"))), apply_to = function)

namespace pagecache_model {

using ktl::u64;
using ktl::u8;
using pagecache_testing::kPage;

// What the bytes of each backing are, as every reader must see them.
class Model {
 public:
  void add(std::vector<u8> initial) { content_.push_back(std::move(initial)); }
  [[nodiscard]] u64 size(size_t b) const { return content_[b].size(); }
  // What read(b, offset, len) returns.
  [[nodiscard]] std::vector<u8> read(size_t b, u64 offset, u64 len) const {
    const auto& c = content_[b];
    if (offset >= c.size()) return {};
    u64 n = std::min<u64>(len, c.size() - offset);
    return std::vector<u8>(c.begin() + static_cast<long>(offset), c.begin() + static_cast<long>(offset + n));
  }
  void write(size_t b, u64 offset, const std::vector<u8>& data, u64 n) {
    std::memcpy(content_[b].data() + offset, data.data(), n);
  }
  [[nodiscard]] const std::vector<u8>& bytes(size_t b) const { return content_[b]; }

 private:
  std::vector<std::vector<u8>> content_;
};

// A PageCache and the model side by side. Each operation returns an empty string or what went
// wrong (the test prints it with the seed and the step).
class Harness {
 public:
  static constexpr u64 kFreeFrames = 64;

  explicit Harness(u64 seed)
      : env_(256, kFreeFrames), rng_(seed), cache_(std::make_unique<mm::PageCache>(env_.table(), config())) {
    const u64 sizes[] = {45 * kPage + 123, 30 * kPage};  // 76 pages: more than the 64 frames
    for (u64 i = 0; i < 2; ++i) {
      backings_.push_back(std::make_unique<pagecache_testing::MemBacking>(env_.window(), sizes[i]));
      pagecache_testing::fill_pattern(backings_.back()->bytes(), seed + i);
      model_.add(backings_.back()->bytes());
      ids_.push_back(cache_->attach(*backings_.back()).value());
    }
  }
  ~Harness() {
    for (auto id : ids_) (void)cache_->detach(id);
    cache_.reset();
  }

  // One random operation, then the cache's view of both backings checked against the model.
  std::string step() {
    size_t b = rng_() % 2;
    u64 size = model_.size(b);
    std::string err;
    switch (rng_() % 11) {
      case 0:
      case 1:
      case 2: err = op_read(b, random_offset(size), rng_() % (3 * kPage + 1)); break;
      case 3:
      case 4:
      case 5: err = op_write(b, random_offset(size), rng_() % (2 * kPage + 1)); break;
      case 6: err = op_sync(b); break;
      case 7: (void)cache_->drop_clean(); break;
      case 8: (void)static_cast<mm::Reclaimer&>(*cache_).reclaim(1 + rng_() % 40); break;
      case 9: err = op_sync_all(); break;
      case 10: err = op_failing_write_back(b); break;
    }
    if (!err.empty()) return err;
    if (cache_->stats().pages > kFreeFrames) return "more pages than frames";
    return check_views();
  }

  // Both backings as read through the cache equal the model (kswapd's part played by a reclaim
  // whenever a read runs out of frames).
  std::string check_views() {
    for (size_t b = 0; b < 2; ++b) {
      u64 size = model_.size(b);
      for (u64 off = 0; off < size; off += kPage) {
        std::vector<u8> got;
        std::string err = read_retrying(b, off, kPage, got);
        if (!err.empty()) return err;
        if (got != model_.read(b, off, kPage))
          return "backing " + std::to_string(b) + ": page at " + std::to_string(off) +
                 " differs from the model";
      }
    }
    return "";
  }
  std::string finish() {
    std::string err = op_sync_all();
    if (!err.empty()) return err;
    if (cache_->stats().dirty != 0) return "dirty pages after sync_all";
    for (auto id : ids_) {
      if (cache_->detach(id).is_err()) return "detach failed";
    }
    ids_.clear();
    if (cache_->stats().pages != 0) return "pages left after detach";
    if (env_.free_frames() != env_.baseline() - cache_->stats().entry_frames) return "frames lost";
    return "";
  }
  [[nodiscard]] const mm::PageCacheStats stats() const { return cache_->stats(); }
  [[nodiscard]] u64 no_memory() const { return no_memory_; }

 private:
  static mm::PageCacheConfig config() {
    mm::PageCacheConfig c;
    c.readahead_pages = 8;
    c.io_wait = pagecache_testing::yield_wait;
    return c;
  }
  u64 random_offset(u64 size) {
    switch (rng_() % 4) {
      case 0: return (rng_() % (size / kPage + 1)) * kPage;     // a page boundary
      case 1: return size - std::min<u64>(size, rng_() % 200);  // near the end
      default: return rng_() % (size + kPage);                  // anywhere, past the end too
    }
  }
  std::string read_retrying(size_t b, u64 off, u64 len, std::vector<u8>& got) {
    for (int attempt = 0; attempt < 4; ++attempt) {
      got.assign(len, 0xCC);
      auto r = cache_->read(ids_[b], off, ktl::Span<u8>(got));
      if (r.is_ok()) {
        got.resize(r.value());
        return "";
      }
      if (r.error() != mm::IoError::NoMemory) return std::string("read: ") + mm::to_string(r.error());
      ++no_memory_;
      (void)static_cast<mm::Reclaimer&>(*cache_).reclaim(16);
    }
    return "read: no memory even after reclaim";
  }
  std::string op_read(size_t b, u64 off, u64 len) {
    std::vector<u8> got(len, 0xCC);
    auto r = cache_->read(ids_[b], off, ktl::Span<u8>(got));
    if (r.is_err()) {
      if (r.error() == mm::IoError::NoMemory) {
        ++no_memory_;
        return "";
      }
      return std::string("read: ") + mm::to_string(r.error());
    }
    got.resize(r.value());
    if (got != model_.read(b, off, len)) return "read at " + std::to_string(off) + " differs from the model";
    return "";
  }
  std::string op_write(size_t b, u64 off, u64 len) {
    std::vector<u8> data(len);
    for (auto& c : data) c = static_cast<u8>(rng_());
    auto r = cache_->write(ids_[b], off, ktl::Span<const u8>(data));
    bool past_end = off > model_.size(b) || len > model_.size(b) - off;
    if (r.is_err()) {
      if (r.error() == mm::IoError::OutOfRange && past_end) return "";
      if (r.error() == mm::IoError::NoMemory && !past_end) {
        ++no_memory_;
        return "";
      }
      return std::string("write: ") + mm::to_string(r.error());
    }
    if (past_end) return "write past the end succeeded";
    if (r.value() > len) return "write wrote more than asked";
    model_.write(b, off, data, r.value());
    return "";
  }
  std::string op_sync(size_t b) {
    auto r = cache_->sync(ids_[b]);
    if (r.is_err()) return std::string("sync: ") + mm::to_string(r.error());
    if (backings_[b]->bytes() != model_.bytes(b))
      return "backing " + std::to_string(b) + " differs after sync";
    return "";
  }
  // Write back (sync, or reclaim) while one page of the backing cannot be written: sync may fail
  // with Device, nothing may be lost (the views are checked after the step).
  std::string op_failing_write_back(size_t b) {
    u64 page = rng_() % ((model_.size(b) + kPage - 1) / kPage);
    backings_[b]->set_bad_write(page, true);
    std::string err;
    if (rng_() % 2 == 0) {
      auto r = cache_->sync(ids_[b]);
      if (r.is_err() && r.error() != mm::IoError::Device)
        err = std::string("sync: ") + mm::to_string(r.error());
    } else {
      (void)static_cast<mm::Reclaimer&>(*cache_).reclaim(1 + rng_() % 40);
    }
    backings_[b]->set_bad_write(page, false);
    return err;
  }
  std::string op_sync_all() {
    auto r = cache_->sync_all();
    if (r.is_err()) return std::string("sync_all: ") + mm::to_string(r.error());
    for (size_t b = 0; b < 2; ++b) {
      if (backings_[b]->bytes() != model_.bytes(b))
        return "backing " + std::to_string(b) + " differs after sync_all";
    }
    return "";
  }

  pagecache_testing::Env env_;
  std::mt19937_64 rng_;
  Model model_;
  std::vector<std::unique_ptr<pagecache_testing::MemBacking>> backings_;  // outlive the cache
  std::unique_ptr<mm::PageCache> cache_;
  std::vector<mm::BackingId> ids_;
  u64 no_memory_ = 0;
};

}  // namespace pagecache_model

#pragma clang attribute pop
