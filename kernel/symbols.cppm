// kernel.symbols: the kernel's embedded symbol table, for symbolised backtraces.
//
// The build links the kernel twice (kernel/kernel_image.bzl): the first link carries an empty
// table; llvm-nm lists its functions, tools/gen_ksymtab.py turns them into the `.ksymtab`
// section, and the second link places that section after everything else (platforms/x86_64/
// kernel.ld), so no other address moves. A build step compares both links and fails if any
// symbol or loaded byte outside `.ksymtab` differs, and checks the table against the final ELF.
//
// Blob layout (little-endian, 8-byte aligned):
//   Header { magic "FESYMTB1", u32 version = 1, u32 count, u64 strings_size, u64 total_size }
//   Entry[count] { u64 address, u32 size, u32 name_offset }   sorted by address
//   char strings[strings_size]                                  NUL-terminated names
module;

#include <ktl/macros.h>

export module kernel.symbols;

import ktl;

export namespace ksym {

using ktl::u32;
using ktl::u64;
using ktl::usize;

inline constexpr u64 kMagic = 0x3142'544d'5953'4546ull;  // "FESYMTB1"
inline constexpr u32 kVersion = 1;

struct Header {
  u64 magic;
  u32 version;
  u32 count;
  u64 strings_size;
  u64 total_size;
};
static_assert(sizeof(Header) == 32);

struct Entry {
  u64 address;
  u32 size;  // 0 if unknown (assembly labels without .size)
  u32 name_offset;
};
static_assert(sizeof(Entry) == 16);

enum class TableError : u32 { TooSmall, BadMagic, BadVersion, BadSize, Unsorted, BadName };
[[nodiscard]] constexpr const char* to_string(TableError e) {
  switch (e) {
    case TableError::TooSmall: return "symbol table smaller than its header";
    case TableError::BadMagic: return "symbol table has a bad magic number";
    case TableError::BadVersion: return "symbol table version is not 1";
    case TableError::BadSize: return "symbol table sizes are inconsistent";
    case TableError::Unsorted: return "symbol table entries are not sorted by address";
    case TableError::BadName: return "symbol name offset outside the string table or not NUL-terminated";
  }
  return "unknown symbol table error";
}

struct Symbol {
  ktl::StringView name;
  u64 address;  // the symbol's start
  u64 offset;   // of the looked-up address from the start
};

// Without a size, an address may be at most this far past a symbol's start to be attributed to it.
inline constexpr u64 kMaxUnsizedDistance = 64 * 1024;

class SymbolTable {
 public:
  constexpr SymbolTable() = default;
  // Validates the whole blob (sizes, order, every name) once, so lookups need no checks.
  [[nodiscard]] static ktl::Result<SymbolTable, TableError> parse(ktl::Span<const ktl::u8> blob);

  [[nodiscard]] inline usize size() const { return count_; }
  [[nodiscard]] inline bool empty() const { return count_ == 0; }
  // The function containing `address`, if any.
  [[nodiscard]] ktl::Optional<Symbol> lookup(u64 address) const;
  // The address of the first symbol named exactly `name` (tests; linear).
  [[nodiscard]] ktl::Optional<u64> address_of(ktl::StringView name) const;

 private:
  [[nodiscard]] Entry entry(usize i) const;
  [[nodiscard]] ktl::StringView name(const Entry& e) const;

  ktl::Span<const ktl::u8> entries_;
  ktl::Span<const char> strings_;
  usize count_ = 0;
};

// An address, printed as "0xffffffff80001234 <name+0x14>" (or just the address if unknown).
struct Symbolized {
  u64 address;
  ktl::Optional<Symbol> symbol;
};
void format_value(ktl::FormatSink& sink, const Symbolized& s, const ktl::FormatSpec& spec);

}  // namespace ksym
