// efi: our own typed UEFI bindings (UEFI 2.10), only what the loader uses. No gnu-efi, no EDK2.
//
// The raw tables mirror the specification's layouts exactly (their field order is the ABI). Above
// them sit typed wrappers: every call returns ktl::Result<T, Status>, strings are UCS-2 literals
// (u"..."), protocols are found by their type (`boot.open_protocol<LoadedImage>(handle)`).
// The target triples (x86_64-unknown-windows, aarch64-unknown-windows) give us the UEFI calling
// convention (Microsoft x64 / AAPCS64) for plain function pointers.
module;

#include <ktl/macros.h>

export module efi;

import ktl;

export namespace efi {

using ktl::u16;
using ktl::u32;
using ktl::u64;
using ktl::u8;
using ktl::usize;
using Handle = void*;
using Event = void*;
using Char16 = char16_t;

// --- status codes ------------------------------------------------------------------------------------
inline constexpr u64 kErrorBit = u64{1} << 63;
enum class Status : u64 {
  Success = 0,
  LoadError = kErrorBit | 1,
  InvalidParameter = kErrorBit | 2,
  Unsupported = kErrorBit | 3,
  BadBufferSize = kErrorBit | 4,
  BufferTooSmall = kErrorBit | 5,
  NotReady = kErrorBit | 6,
  DeviceError = kErrorBit | 7,
  WriteProtected = kErrorBit | 8,
  OutOfResources = kErrorBit | 9,
  VolumeCorrupted = kErrorBit | 10,
  VolumeFull = kErrorBit | 11,
  NoMedia = kErrorBit | 12,
  MediaChanged = kErrorBit | 13,
  NotFound = kErrorBit | 14,
  AccessDenied = kErrorBit | 15,
  NoResponse = kErrorBit | 16,
  NoMapping = kErrorBit | 17,
  Timeout = kErrorBit | 18,
  NotStarted = kErrorBit | 19,
  AlreadyStarted = kErrorBit | 20,
  Aborted = kErrorBit | 21,
  ProtocolError = kErrorBit | 24,
  IncompatibleVersion = kErrorBit | 25,
  SecurityViolation = kErrorBit | 26,
  CrcError = kErrorBit | 27,
  EndOfMedia = kErrorBit | 28,
  EndOfFile = kErrorBit | 31,
  CompromisedData = kErrorBit | 33,
};

[[nodiscard]] constexpr bool is_error(Status s) { return (ktl::to_underlying(s) & kErrorBit) != 0; }

[[nodiscard]] constexpr const char* to_string(Status s) {
  switch (s) {
    case Status::Success: return "EFI_SUCCESS";
    case Status::LoadError: return "EFI_LOAD_ERROR";
    case Status::InvalidParameter: return "EFI_INVALID_PARAMETER";
    case Status::Unsupported: return "EFI_UNSUPPORTED";
    case Status::BadBufferSize: return "EFI_BAD_BUFFER_SIZE";
    case Status::BufferTooSmall: return "EFI_BUFFER_TOO_SMALL";
    case Status::NotReady: return "EFI_NOT_READY";
    case Status::DeviceError: return "EFI_DEVICE_ERROR";
    case Status::WriteProtected: return "EFI_WRITE_PROTECTED";
    case Status::OutOfResources: return "EFI_OUT_OF_RESOURCES";
    case Status::VolumeCorrupted: return "EFI_VOLUME_CORRUPTED";
    case Status::VolumeFull: return "EFI_VOLUME_FULL";
    case Status::NoMedia: return "EFI_NO_MEDIA";
    case Status::MediaChanged: return "EFI_MEDIA_CHANGED";
    case Status::NotFound: return "EFI_NOT_FOUND";
    case Status::AccessDenied: return "EFI_ACCESS_DENIED";
    case Status::NoResponse: return "EFI_NO_RESPONSE";
    case Status::NoMapping: return "EFI_NO_MAPPING";
    case Status::Timeout: return "EFI_TIMEOUT";
    case Status::NotStarted: return "EFI_NOT_STARTED";
    case Status::AlreadyStarted: return "EFI_ALREADY_STARTED";
    case Status::Aborted: return "EFI_ABORTED";
    case Status::ProtocolError: return "EFI_PROTOCOL_ERROR";
    case Status::IncompatibleVersion: return "EFI_INCOMPATIBLE_VERSION";
    case Status::SecurityViolation: return "EFI_SECURITY_VIOLATION";
    case Status::CrcError: return "EFI_CRC_ERROR";
    case Status::EndOfMedia: return "EFI_END_OF_MEDIA";
    case Status::EndOfFile: return "EFI_END_OF_FILE";
    case Status::CompromisedData: return "EFI_COMPROMISED_DATA";
  }
  return is_error(s) ? "EFI error" : "EFI warning";
}

template <class T>
using Result = ktl::Result<T, Status>;

// Converts a raw status into a Result<void>.
[[nodiscard]] constexpr Result<void> check(Status s) {
  if (is_error(s)) return ktl::Err(s);
  return ktl::ok();
}

struct Guid {
  u32 data1;
  u16 data2;
  u16 data3;
  u8 data4[8];
  friend constexpr bool operator==(const Guid& a, const Guid& b) {
    if (a.data1 != b.data1 || a.data2 != b.data2 || a.data3 != b.data3) return false;
    for (usize i = 0; i < 8; ++i) {
      if (ktl::Span<const u8>(a.data4)[i] != ktl::Span<const u8>(b.data4)[i]) return false;
    }
    return true;
  }
};
static_assert(sizeof(Guid) == 16);

struct TableHeader {
  u64 signature;
  u32 revision;
  u32 header_size;
  u32 crc32;
  u32 reserved;
};

// --- memory ----------------------------------------------------------------------------------------------
enum class MemoryType : u32 {
  Reserved = 0,
  LoaderCode = 1,
  LoaderData = 2,
  BootServicesCode = 3,
  BootServicesData = 4,
  RuntimeServicesCode = 5,
  RuntimeServicesData = 6,
  Conventional = 7,
  Unusable = 8,
  AcpiReclaim = 9,
  AcpiNvs = 10,
  MemoryMappedIo = 11,
  MemoryMappedIoPortSpace = 12,
  PalCode = 13,
  Persistent = 14,
  Unaccepted = 15,
};

enum class AllocateType : u32 { AnyPages = 0, MaxAddress = 1, Address = 2 };

struct MemoryDescriptor {
  MemoryType type;
  u32 pad;
  u64 physical_start;
  u64 virtual_start;
  u64 number_of_pages;
  u64 attribute;
};
static_assert(sizeof(MemoryDescriptor) == 40);
inline constexpr u64 kMemoryRuntime = u64{1} << 63;

// --- console ---------------------------------------------------------------------------------------------
struct SimpleTextOutput {
  Status (*reset)(SimpleTextOutput*, bool extended);
  Status (*output_string)(SimpleTextOutput*, const Char16* string);
  Status (*test_string)(SimpleTextOutput*, const Char16* string);
  Status (*query_mode)(SimpleTextOutput*, usize mode, usize* columns, usize* rows);
  Status (*set_mode)(SimpleTextOutput*, usize mode);
  Status (*set_attribute)(SimpleTextOutput*, usize attribute);
  Status (*clear_screen)(SimpleTextOutput*);
  Status (*set_cursor_position)(SimpleTextOutput*, usize column, usize row);
  Status (*enable_cursor)(SimpleTextOutput*, bool visible);
  void* mode;
};

// --- boot services -------------------------------------------------------------------------------------
enum class LocateSearchType : u32 { AllHandles = 0, ByRegisterNotify = 1, ByProtocol = 2 };
inline constexpr u32 kOpenProtocolGetProtocol = 0x2;

struct BootServicesTable {
  TableHeader hdr;
  void* raise_tpl;
  void* restore_tpl;
  Status (*allocate_pages)(AllocateType, MemoryType, usize pages, u64* memory);
  Status (*free_pages)(u64 memory, usize pages);
  Status (*get_memory_map)(usize* map_size, MemoryDescriptor* map, usize* map_key, usize* descriptor_size,
                           u32* descriptor_version);
  Status (*allocate_pool)(MemoryType, usize size, void** buffer);
  Status (*free_pool)(void* buffer);
  void* create_event;
  void* set_timer;
  void* wait_for_event;
  void* signal_event;
  void* close_event;
  void* check_event;
  void* install_protocol_interface;
  void* reinstall_protocol_interface;
  void* uninstall_protocol_interface;
  Status (*handle_protocol)(Handle, const Guid*, void** interface);
  void* reserved;
  void* register_protocol_notify;
  Status (*locate_handle)(LocateSearchType, const Guid*, void* key, usize* size, Handle* buffer);
  void* locate_device_path;
  void* install_configuration_table;
  void* load_image;
  void* start_image;
  void* exit;
  void* unload_image;
  Status (*exit_boot_services)(Handle image, usize map_key);
  void* get_next_monotonic_count;
  Status (*stall)(usize microseconds);
  Status (*set_watchdog_timer)(usize timeout, u64 code, usize data_size, const Char16* data);
  void* connect_controller;
  void* disconnect_controller;
  Status (*open_protocol)(Handle, const Guid*, void** interface, Handle agent, Handle controller,
                          u32 attributes);
  void* close_protocol;
  void* open_protocol_information;
  void* protocols_per_handle;
  void* locate_handle_buffer;
  Status (*locate_protocol)(const Guid*, void* registration, void** interface);
  void* install_multiple_protocol_interfaces;
  void* uninstall_multiple_protocol_interfaces;
  void* calculate_crc32;
  void* copy_mem;
  void* set_mem;
  void* create_event_ex;
};

enum class ResetType : u32 { Cold = 0, Warm = 1, Shutdown = 2, PlatformSpecific = 3 };

struct RuntimeServicesTable {
  TableHeader hdr;
  void* get_time;
  void* set_time;
  void* get_wakeup_time;
  void* set_wakeup_time;
  void* set_virtual_address_map;
  void* convert_pointer;
  Status (*get_variable)(const Char16* name, const Guid* vendor, u32* attributes, usize* data_size,
                         void* data);
  void* get_next_variable_name;
  void* set_variable;
  void* get_next_high_monotonic_count;
  void (*reset_system)(ResetType, Status, usize data_size, const void* data);
  void* update_capsule;
  void* query_capsule_capabilities;
  void* query_variable_info;
};

struct ConfigurationTable {
  Guid vendor_guid;
  void* vendor_table;
};

struct SystemTable {
  TableHeader hdr;
  const Char16* firmware_vendor;
  u32 firmware_revision;
  Handle console_in_handle;
  void* con_in;
  Handle console_out_handle;
  SimpleTextOutput* con_out;
  Handle standard_error_handle;
  SimpleTextOutput* std_err;
  RuntimeServicesTable* runtime_services;
  BootServicesTable* boot_services;
  usize number_of_table_entries;
  ConfigurationTable* configuration_table;
};
static_assert(__builtin_offsetof(SystemTable, boot_services) == 96);

// The firmware's configuration tables (ACPI, SMBIOS, ...) as a span.
[[nodiscard]] inline ktl::Span<const ConfigurationTable> configuration_tables(const SystemTable& st) {
  if (st.configuration_table == nullptr) return {};
  KTL_UNSAFE_BUFFER_BEGIN  // the UEFI specification: number_of_table_entries tables at the pointer
  return ktl::Span<const ConfigurationTable>::from_raw(st.configuration_table, st.number_of_table_entries);
  KTL_UNSAFE_BUFFER_END
}

// --- protocols -------------------------------------------------------------------------------------------
struct DevicePath;

struct LoadedImage {
  static constexpr Guid kGuid{0x5b1b31a1, 0x9562, 0x11d2, {0x8e, 0x3f, 0x00, 0xa0, 0xc9, 0x69, 0x72, 0x3b}};
  u32 revision;
  Handle parent_handle;
  SystemTable* system_table;
  Handle device_handle;
  DevicePath* file_path;
  void* reserved;
  u32 load_options_size;
  void* load_options;
  void* image_base;
  u64 image_size;
  MemoryType image_code_type;
  MemoryType image_data_type;
  void* unload;
};

struct Time {
  u16 year;
  u8 month, day, hour, minute, second, pad1;
  u32 nanosecond;
  u16 time_zone;
  u8 daylight, pad2;
};
static_assert(sizeof(Time) == 16);

struct FileInfo {
  static constexpr Guid kGuid{0x09576e92, 0x6d3f, 0x11d2, {0x8e, 0x39, 0x00, 0xa0, 0xc9, 0x69, 0x72, 0x3b}};
  u64 size;
  u64 file_size;
  u64 physical_size;
  Time create_time;
  Time last_access_time;
  Time modification_time;
  u64 attribute;
  // Char16 file_name[] follows.
};
static_assert(sizeof(FileInfo) == 80);

inline constexpr u64 kFileModeRead = 0x1;
inline constexpr u64 kFileDirectory = 0x10;

struct FileProtocol {
  u64 revision;
  Status (*open)(FileProtocol*, FileProtocol** new_handle, const Char16* name, u64 mode, u64 attributes);
  Status (*close)(FileProtocol*);
  Status (*delete_file)(FileProtocol*);
  Status (*read)(FileProtocol*, usize* size, void* buffer);
  Status (*write)(FileProtocol*, usize* size, const void* buffer);
  Status (*get_position)(FileProtocol*, u64* position);
  Status (*set_position)(FileProtocol*, u64 position);
  Status (*get_info)(FileProtocol*, const Guid* type, usize* size, void* buffer);
  void* set_info;
  void* flush;
};

struct SimpleFileSystem {
  static constexpr Guid kGuid{0x964e5b22, 0x6459, 0x11d2, {0x8e, 0x39, 0x00, 0xa0, 0xc9, 0x69, 0x72, 0x3b}};
  u64 revision;
  Status (*open_volume)(SimpleFileSystem*, FileProtocol** root);
};

struct PixelBitmask {
  u32 red_mask;
  u32 green_mask;
  u32 blue_mask;
  u32 reserved_mask;
};

enum class GraphicsPixelFormat : u32 {
  RedGreenBlueReserved8BitPerColor = 0,
  BlueGreenRedReserved8BitPerColor = 1,
  BitMask = 2,
  BltOnly = 3,
};

struct GraphicsOutputModeInformation {
  u32 version;
  u32 horizontal_resolution;
  u32 vertical_resolution;
  GraphicsPixelFormat pixel_format;
  PixelBitmask pixel_information;
  u32 pixels_per_scan_line;
};
static_assert(sizeof(GraphicsOutputModeInformation) == 36);

struct GraphicsOutputMode {
  u32 max_mode;
  u32 mode;
  GraphicsOutputModeInformation* info;
  usize size_of_info;
  u64 frame_buffer_base;
  usize frame_buffer_size;
};

struct GraphicsOutput {
  static constexpr Guid kGuid{0x9042a9de, 0x23dc, 0x4a38, {0x96, 0xfb, 0x7a, 0xde, 0xd0, 0x80, 0x51, 0x6a}};
  Status (*query_mode)(GraphicsOutput*, u32 mode, usize* size_of_info, GraphicsOutputModeInformation** info);
  Status (*set_mode)(GraphicsOutput*, u32 mode);
  void* blt;
  GraphicsOutputMode* mode;
};

// Configuration-table GUIDs.
inline constexpr Guid kAcpi20TableGuid{
    0x8868e871, 0xe4f1, 0x11d3, {0xbc, 0x22, 0x00, 0x80, 0xc7, 0x3c, 0x88, 0x81}};
inline constexpr Guid kAcpi10TableGuid{
    0xeb9d2d30, 0x2d88, 0x11d3, {0x9a, 0x16, 0x00, 0x90, 0x27, 0x3f, 0xc1, 0x4d}};
inline constexpr Guid kSmbiosTableGuid{
    0xeb9d2d31, 0x2d88, 0x11d3, {0x9a, 0x16, 0x00, 0x90, 0x27, 0x3f, 0xc1, 0x4d}};
inline constexpr Guid kSmbios3TableGuid{
    0xf2fd1544, 0x9794, 0x4a2c, {0x99, 0x2e, 0xe5, 0xbb, 0xcf, 0x20, 0xe3, 0x94}};

// Variables of the UEFI global namespace (EFI_GLOBAL_VARIABLE): SecureBoot, SetupMode, BootOrder, ...
inline constexpr Guid kGlobalVariableGuid{
    0x8be4df61, 0x93ca, 0x11d2, {0xaa, 0x0d, 0x00, 0xe0, 0x98, 0x03, 0x2b, 0x8c}};

// --- typed wrappers ----------------------------------------------------------------------------------------

// A console that writes UCS-2 to ConOut; it converts from ASCII/UTF-8 (non-ASCII becomes '?') in
// small chunks and turns "\n" into "\r\n".
class Console final : public ktl::FormatSink {
 public:
  inline explicit Console(SimpleTextOutput* out) : out_(out) {}
  void write(ktl::StringView text) override;

 private:
  SimpleTextOutput* out_;
};

// An owned, firmware-allocated pool buffer (EfiLoaderData), freed on destruction unless released.
class PoolBuffer : ktl::NoCopy {
 public:
  PoolBuffer() = default;
  inline PoolBuffer(BootServicesTable* bs, ktl::u8* data, usize size) : bs_(bs), data_(data), size_(size) {}
  PoolBuffer(PoolBuffer&& o)
      : bs_(o.bs_), data_(ktl::exchange(o.data_, nullptr)), size_(ktl::exchange(o.size_, 0)) {}
  inline PoolBuffer& operator=(PoolBuffer&& o) {
    if (this != &o) {
      reset();
      bs_ = o.bs_;
      data_ = ktl::exchange(o.data_, nullptr);
      size_ = ktl::exchange(o.size_, 0);
    }
    return *this;
  }
  inline ~PoolBuffer() { reset(); }

  [[nodiscard]] inline ktl::Span<ktl::u8> bytes() const {
    KTL_UNSAFE_BUFFER_BEGIN  // the pool allocation this buffer owns holds size_ bytes
    return ktl::Span<ktl::u8>::from_raw(data_, size_);
    KTL_UNSAFE_BUFFER_END
  }
  [[nodiscard]] inline usize size() const { return size_; }
  // Shortens the visible length (the allocation itself is unchanged).
  inline void truncate(usize n) {
    ktl::check(n <= size_, "PoolBuffer::truncate beyond the allocation");
    size_ = n;
  }
  // Hands the memory to whoever outlives boot services (the kernel); it is no longer freed.
  inline ktl::Span<ktl::u8> leak() {
    auto b = bytes();
    data_ = nullptr;
    size_ = 0;
    return b;
  }

 private:
  inline void reset() {
    if (data_ != nullptr) bs_->free_pool(data_);
    data_ = nullptr;
    size_ = 0;
  }
  BootServicesTable* bs_ = nullptr;
  ktl::u8* data_ = nullptr;
  usize size_ = 0;
};

class BootServices {
 public:
  inline explicit BootServices(BootServicesTable* table) : t_(table) {}
  [[nodiscard]] inline BootServicesTable* raw() const { return t_; }

  template <class Protocol>
  [[nodiscard]] inline Result<Protocol*> handle_protocol(Handle h) const {
    void* iface = nullptr;
    TRY(check(t_->handle_protocol(h, &Protocol::kGuid, &iface)));
    if (iface == nullptr) return ktl::Err(Status::Unsupported);
    return static_cast<Protocol*>(iface);
  }
  [[nodiscard]] inline Result<PoolBuffer> allocate_pool(usize size) const {
    void* p = nullptr;
    TRY(check(t_->allocate_pool(MemoryType::LoaderData, size, &p)));
    return PoolBuffer(t_, static_cast<ktl::u8*>(p), size);
  }
  // Whole pages of LoaderData anywhere in memory; returns the physical (= identity) address.
  [[nodiscard]] inline Result<u64> allocate_pages(usize pages) const {
    u64 addr = 0;
    TRY(check(t_->allocate_pages(AllocateType::AnyPages, MemoryType::LoaderData, pages, &addr)));
    return addr;
  }
  inline Result<void> disable_watchdog() const {
    return check(t_->set_watchdog_timer(0, 0x10000, 0, nullptr));
  }
  // Every handle that carries `Protocol`, in a pool buffer of Handle values.
  template <class Protocol>
  [[nodiscard]] inline Result<PoolBuffer> locate_handles() const {
    usize size = 0;
    Status s = t_->locate_handle(LocateSearchType::ByProtocol, &Protocol::kGuid, nullptr, &size, nullptr);
    if (s != Status::BufferTooSmall) return ktl::Err(is_error(s) ? s : Status::NotFound);
    PoolBuffer buffer = TRY(allocate_pool(size));
    KTL_UNSAFE_BUFFER_BEGIN  // pool memory is 8-byte aligned and `size` bytes long: room for Handles
    auto* handles = reinterpret_cast<Handle*>(buffer.bytes().data());
    KTL_UNSAFE_BUFFER_END
    TRY(check(t_->locate_handle(LocateSearchType::ByProtocol, &Protocol::kGuid, nullptr, &size, handles)));
    buffer.truncate(size);
    return buffer;
  }
  // GOP's QueryMode, copying the firmware's pool-allocated answer and freeing it.
  [[nodiscard]] Result<GraphicsOutputModeInformation> query_mode(GraphicsOutput* gop, u32 mode) const;

 private:
  BootServicesTable* t_;
};

class RuntimeServices {
 public:
  inline explicit RuntimeServices(RuntimeServicesTable* table) : t_(table) {}
  [[nodiscard]] inline RuntimeServicesTable* raw() const { return t_; }

  // GetVariable into `out`; returns the variable's size. EFI_NOT_FOUND if there is no such
  // variable, EFI_BUFFER_TOO_SMALL if it is larger than `out`.
  [[nodiscard]] Result<usize> get_variable(const Char16* name, const Guid& vendor, ktl::Span<u8> out) const;
  // A variable that holds exactly one byte (SecureBoot, SetupMode); EFI_BAD_BUFFER_SIZE if the
  // firmware's variable has another size.
  [[nodiscard]] Result<u8> get_byte_variable(const Char16* name, const Guid& vendor) const;

 private:
  RuntimeServicesTable* t_;
};

// A file opened on a FAT volume; closed on destruction.
class File : ktl::NoCopy {
 public:
  inline explicit File(FileProtocol* f) : f_(f) {}
  inline File(File&& o) : f_(ktl::exchange(o.f_, nullptr)) {}
  File& operator=(File&&) = delete;
  inline ~File() {
    if (f_ != nullptr) f_->close(f_);
  }
  [[nodiscard]] Result<File> open(const Char16* path) const;
  [[nodiscard]] Result<u64> size(const BootServices& bs) const;
  // Reads the whole file into a new pool buffer; fails if it is larger than `max_size`.
  [[nodiscard]] Result<PoolBuffer> read_all(const BootServices& bs, u64 max_size) const;
  // Reads exactly `out.size()` bytes from the start of the file into `out`.
  [[nodiscard]] Result<void> read_into(ktl::Span<ktl::u8> out) const;

 private:
  FileProtocol* f_;
};

}  // namespace efi
