// efi: the non-template parts of the typed wrappers.
module;

#include <ktl/macros.h>

module efi;

import ktl;

namespace efi {

void Console::write(ktl::StringView text) {
  if (out_ == nullptr) return;
  ktl::Array<Char16, 129> chunk{};
  usize n = 0;
  auto flush = [&] {
    chunk[n] = 0;
    out_->output_string(out_, chunk.data());
    n = 0;
  };
  for (char c : text) {
    if (n + 2 >= chunk.size()) flush();
    auto byte = static_cast<u8>(c);
    if (c == '\n') chunk[n++] = u'\r';
    chunk[n++] = byte < 0x80 ? static_cast<Char16>(byte) : u'?';
  }
  if (n > 0) flush();
}

Result<File> File::open(const Char16* path) const {
  FileProtocol* handle = nullptr;
  TRY(check(f_->open(f_, &handle, path, kFileModeRead, 0)));
  return File(handle);
}

Result<u64> File::size(const BootServices& bs) const {
  usize info_size = 0;
  Status s = f_->get_info(f_, &FileInfo::kGuid, &info_size, nullptr);
  if (s != Status::BufferTooSmall) return ktl::Err(is_error(s) ? s : Status::DeviceError);
  if (info_size < sizeof(FileInfo)) return ktl::Err(Status::VolumeCorrupted);
  PoolBuffer buffer = TRY(bs.allocate_pool(info_size));
  TRY(check(f_->get_info(f_, &FileInfo::kGuid, &info_size, buffer.bytes().data())));
  FileInfo info;
  ktl::copy_bytes(ktl::writable_bytes_of(info), buffer.bytes().first(sizeof info));
  if ((info.attribute & kFileDirectory) != 0) return ktl::Err(Status::NotFound);
  return info.file_size;
}

Result<void> File::read_into(ktl::Span<u8> out) const {
  TRY(check(f_->set_position(f_, 0)));
  usize done = 0;
  while (done < out.size()) {
    usize chunk = out.size() - done;
    TRY(check(f_->read(f_, &chunk, out.subspan(done).data())));
    if (chunk == 0) return ktl::Err(Status::EndOfFile);  // the file shrank under us
    done += chunk;
  }
  return ktl::ok();
}

Result<GraphicsOutputModeInformation> BootServices::query_mode(GraphicsOutput* gop, u32 mode) const {
  usize size = 0;
  GraphicsOutputModeInformation* info = nullptr;
  TRY(check(gop->query_mode(gop, mode, &size, &info)));
  if (info == nullptr) return ktl::Err(Status::DeviceError);
  GraphicsOutputModeInformation out{};
  // Older GOPs may return a shorter structure; copy what is there.
  usize n = ktl::min(size, sizeof out);
  KTL_UNSAFE_BUFFER_BEGIN  // the firmware returned `size` >= n readable bytes at `info`
  ktl::Span<const u8> returned = ktl::Span<const u8>::from_raw(reinterpret_cast<const u8*>(info), n);
  KTL_UNSAFE_BUFFER_END
  ktl::copy_bytes(ktl::writable_bytes_of(out).first(n), returned);
  t_->free_pool(info);
  return out;
}

Result<usize> RuntimeServices::get_variable(const Char16* name, const Guid& vendor, ktl::Span<u8> out) const {
  usize size = out.size();
  u32 attributes = 0;  // optional in the specification, but some firmware writes it unconditionally
  TRY(check(t_->get_variable(name, &vendor, &attributes, &size, out.data())));
  if (size > out.size()) return ktl::Err(Status::BufferTooSmall);  // a firmware bug; do not trust it
  return size;
}

Result<u8> RuntimeServices::get_byte_variable(const Char16* name, const Guid& vendor) const {
  ktl::Array<u8, 8> data{};
  auto size = get_variable(name, vendor, data.span());
  // Longer than the buffer or not one byte: the same answer (the declaration's contract).
  if (size.is_err() && size.error() == Status::BufferTooSmall) return ktl::Err(Status::BadBufferSize);
  if (size.is_err()) return ktl::Err(size.error());
  if (size.value() != 1) return ktl::Err(Status::BadBufferSize);
  return data[0];
}

Result<PoolBuffer> File::read_all(const BootServices& bs, u64 max_size) const {
  u64 size = TRY(this->size(bs));
  if (size > max_size) return ktl::Err(Status::BadBufferSize);
  // Allocate at least one byte so an empty file still yields a valid (empty) buffer.
  PoolBuffer buffer = TRY(bs.allocate_pool(size == 0 ? 1 : size));
  usize done = 0;
  while (done < size) {
    usize chunk = static_cast<usize>(size - done);
    TRY(check(f_->read(f_, &chunk, buffer.bytes().subspan(done).data())));
    if (chunk == 0) return ktl::Err(Status::EndOfFile);  // the file shrank under us
    done += chunk;
  }
  buffer.truncate(static_cast<usize>(size));
  return buffer;
}

}  // namespace efi
