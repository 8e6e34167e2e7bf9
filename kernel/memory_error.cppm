// kernel.memory_error: why the kernel's memory bring-up (kernel.memory) failed. One InitCause per
// step that can fail, and the error of the mm layer that refused, typed (no integer codes):
//
//   InitError e = InitError::pmm_init(mm::PmmError::OverlappingMap);
//   e.cause();       // InitCause::PmmInit
//   e.pmm_error();   // mm::PmmError::OverlappingMap (empty for causes that carry no PmmError)
//   klog::error("memory: {}", e);  // "memory: PMM init: memory map regions overlap"
//
// Separate from kernel.memory (which only builds for the kernel) so host tests can check it.
module;

#include <ktl/macros.h>

export module kernel.memory_error;

import ktl;
import mm.heap;
import mm.paging.types;
import mm.pmm;
import kernel.meminfo;

export namespace kernel::memory {

enum class InitCause : ktl::u32 {
  MapConversion,         // the loader's map did not convert to the PMM's (carries a ConvertError)
  PmmInit,               // Pmm::init refused the converted map (a PmmError)
  PmmInstall,            // install_global_pmm refused (a PmmError)
  FrameTable,            // no frames for the frame table's root (a PmmError)
  RootOutsideDirectMap,  // BootInfo::page_table_root is not covered by the direct map
  AdoptTables,           // the kernel address space could not adopt the loader's tables (a PagingError)
  HeapInit,              // mm::heap::init failed (a HeapError)
  StackFrames,           // no frames for an IST stack (a PmmError)
  StackMapping,          // an IST stack could not be mapped (a PagingError)
};
[[nodiscard]] constexpr const char* to_string(InitCause c) {
  switch (c) {
    case InitCause::MapConversion: return "memory map conversion";
    case InitCause::PmmInit: return "PMM init";
    case InitCause::PmmInstall: return "PMM install";
    case InitCause::FrameTable: return "frame table";
    case InitCause::RootOutsideDirectMap: return "page-table root outside the direct map";
    case InitCause::AdoptTables: return "adopting the loader's page tables";
    case InitCause::HeapInit: return "heap init";
    case InitCause::StackFrames: return "frames for an IST stack";
    case InitCause::StackMapping: return "mapping an IST stack";
  }
  return "unknown memory init cause";
}

class InitError {
 public:
  [[nodiscard]] static constexpr InitError map_conversion(ConvertError e) {
    InitError r(InitCause::MapConversion);
    r.detail_.convert = e;
    return r;
  }
  [[nodiscard]] static constexpr InitError pmm_init(mm::PmmError e) {
    return with_pmm(InitCause::PmmInit, e);
  }
  [[nodiscard]] static constexpr InitError pmm_install(mm::PmmError e) {
    return with_pmm(InitCause::PmmInstall, e);
  }
  [[nodiscard]] static constexpr InitError frame_table(mm::PmmError e) {
    return with_pmm(InitCause::FrameTable, e);
  }
  [[nodiscard]] static constexpr InitError root_outside_direct_map() {
    return InitError(InitCause::RootOutsideDirectMap);
  }
  [[nodiscard]] static constexpr InitError adopt_tables(mm::PagingError e) {
    return with_paging(InitCause::AdoptTables, e);
  }
  [[nodiscard]] static constexpr InitError heap_init(mm::HeapError e) {
    InitError r(InitCause::HeapInit);
    r.detail_.heap = e;
    return r;
  }
  [[nodiscard]] static constexpr InitError stack_frames(mm::PmmError e) {
    return with_pmm(InitCause::StackFrames, e);
  }
  [[nodiscard]] static constexpr InitError stack_mapping(mm::PagingError e) {
    return with_paging(InitCause::StackMapping, e);
  }

  [[nodiscard]] constexpr InitCause cause() const { return cause_; }
  // The error of the layer below, for the causes that carry one of that type.
  [[nodiscard]] constexpr ktl::Optional<ConvertError> convert_error() const {
    if (cause_ == InitCause::MapConversion) return detail_.convert;
    return ktl::nullopt;
  }
  [[nodiscard]] constexpr ktl::Optional<mm::PmmError> pmm_error() const {
    if (cause_ == InitCause::PmmInit || cause_ == InitCause::PmmInstall || cause_ == InitCause::FrameTable ||
        cause_ == InitCause::StackFrames)
      return detail_.pmm;
    return ktl::nullopt;
  }
  [[nodiscard]] constexpr ktl::Optional<mm::PagingError> paging_error() const {
    if (cause_ == InitCause::AdoptTables || cause_ == InitCause::StackMapping) return detail_.paging;
    return ktl::nullopt;
  }
  [[nodiscard]] constexpr ktl::Optional<mm::HeapError> heap_error() const {
    if (cause_ == InitCause::HeapInit) return detail_.heap;
    return ktl::nullopt;
  }
  // The text of the carried error; null for a cause that carries none.
  [[nodiscard]] constexpr const char* detail_text() const {
    if (auto e = convert_error()) return to_string(*e);
    if (auto e = pmm_error()) return to_string(*e);
    if (auto e = paging_error()) return to_string(*e);
    if (auto e = heap_error()) return to_string(*e);
    return nullptr;
  }

  friend constexpr bool operator==(const InitError& a, const InitError& b) {
    return a.cause_ == b.cause_ && a.convert_error() == b.convert_error() && a.pmm_error() == b.pmm_error() &&
           a.paging_error() == b.paging_error() && a.heap_error() == b.heap_error();
  }

 private:
  // Result<void, InitError> holds a value-initialised error on success (never read); nobody else
  // can make an InitError without a cause.
  friend class ktl::Result<void, InitError>;
  constexpr InitError() : cause_(InitCause::MapConversion) {}
  constexpr explicit InitError(InitCause cause) : cause_(cause) {}
  static constexpr InitError with_pmm(InitCause cause, mm::PmmError e) {
    InitError r(cause);
    r.detail_.pmm = e;
    return r;
  }
  static constexpr InitError with_paging(InitCause cause, mm::PagingError e) {
    InitError r(cause);
    r.detail_.paging = e;
    return r;
  }

  InitCause cause_;
  // The member named by cause_ is the active one (set by the factories, read by the accessors).
  union Detail {
    bool none = false;
    ConvertError convert;
    mm::PmmError pmm;
    mm::PagingError paging;
    mm::HeapError heap;
  } detail_;
};

// "<cause>: <the carried error>", or just the cause.
void format_value(ktl::FormatSink& sink, const InitError& e, const ktl::FormatSpec& spec);

}  // namespace kernel::memory

namespace kernel::memory {
void format_value(ktl::FormatSink& sink, const InitError& e, const ktl::FormatSpec& spec) {
  ktl::InlineString<160> text;
  if (const char* detail = e.detail_text()) {
    ktl::format_to(text, "{}: {}", e.cause(), detail);
  } else {
    ktl::format_to(text, "{}", e.cause());
  }
  ktl::format_value(sink, text.view(), spec);
}
}  // namespace kernel::memory
