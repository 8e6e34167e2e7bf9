// ktl.span: bounds-checked views and fixed arrays. Indexing out of range panics; the only way to
// make a view from a raw pointer is the explicitly named `Span::from_raw`.
module;

#include <ktl/macros.h>

export module ktl.span;

import ktl.core;

export namespace ktl {

template <class T>
class Span {
 public:
  class Iterator {
   public:
    constexpr explicit Iterator(T* p) : p_(p) {}
    constexpr T& operator*() const { return *p_; }
    constexpr Iterator& operator++() {
      KTL_UNSAFE_BUFFER_BEGIN  // bounded by the end() the range-for compares against
      ++p_;
      KTL_UNSAFE_BUFFER_END
      return *this;
    }
    constexpr bool operator==(const Iterator&) const = default;

   private:
    T* p_;
  };

  constexpr Span() = default;
  template <usize N>
  constexpr Span(T (&array)[N]) : data_(array), size_(N) {}
  // Unsafe: the caller promises [data, data + size) is valid for the view's lifetime (every call
  // sits in a marked unsafe region; tools/unsafe_lint.py checks).
  KTL_UNSAFE_BUFFER_BEGIN  // the definition: the promise is the caller's
  [[nodiscard]] static constexpr Span from_raw(T* data, usize size) { return Span(data, size); }
  KTL_UNSAFE_BUFFER_END
  // A view of a contiguous container that owns its elements (ktl::Array, std::vector, std::array,
  // ...): the container vouches for [data(), data() + size()). Only lvalues, so a temporary's
  // elements cannot be viewed past the end of the full expression.
  template <class C>
    requires(!is_same<RemoveCvRef<C>, Span> &&
             requires(C& c) {
               requires __is_convertible(decltype(c.data()), T*);
               requires __is_convertible(decltype(c.size()), usize);
             })
  constexpr Span(C& container) : data_(container.data()), size_(container.size()) {}
  // A Span<const T> from a Span<T>.
  template <class U>
    requires(is_same<const U, T> && !is_same<U, T>)
  constexpr Span(Span<U> other) : data_(other.data()), size_(other.size()) {}

  [[nodiscard]] constexpr T* data() const { return data_; }
  [[nodiscard]] constexpr usize size() const { return size_; }
  [[nodiscard]] constexpr usize size_bytes() const { return size_ * sizeof(T); }
  [[nodiscard]] constexpr bool empty() const { return size_ == 0; }

  [[nodiscard]] constexpr T& operator[](usize i) const {
    check(i < size_, "Span index out of range");
    KTL_UNSAFE_BUFFER_BEGIN  // i < size_ checked above
    return data_[i];
    KTL_UNSAFE_BUFFER_END
  }
  [[nodiscard]] constexpr Span subspan(usize offset, usize count) const {
    check(offset <= size_ && count <= size_ - offset, "Span::subspan out of range");
    KTL_UNSAFE_BUFFER_BEGIN  // offset + count <= size_ checked above
    return Span(data_ + offset, count);
    KTL_UNSAFE_BUFFER_END
  }
  [[nodiscard]] constexpr Span subspan(usize offset) const {
    check(offset <= size_, "Span::subspan out of range");
    return subspan(offset, size_ - offset);
  }
  [[nodiscard]] constexpr Span first(usize count) const { return subspan(0, count); }
  [[nodiscard]] constexpr Span last(usize count) const {
    check(count <= size_, "Span::last out of range");
    return subspan(size_ - count, count);
  }
  [[nodiscard]] constexpr Iterator begin() const { return Iterator(data_); }
  [[nodiscard]] constexpr Iterator end() const {
    KTL_UNSAFE_BUFFER_BEGIN  // one past the end of a valid range
    return Iterator(data_ + size_);
    KTL_UNSAFE_BUFFER_END
  }

 private:
  constexpr Span(T* data, usize size) : data_(data), size_(size) {}
  T* data_ = nullptr;
  usize size_ = 0;
};

using Bytes = Span<u8>;
using ConstBytes = Span<const u8>;

template <class T>
[[nodiscard]] constexpr usize string_length(const T* s) {
  usize n = 0;
  KTL_UNSAFE_BUFFER_BEGIN  // NUL-terminated by contract
  while (s[n] != T{}) ++n;
  KTL_UNSAFE_BUFFER_END
  return n;
}

// A non-owning view of characters (not necessarily NUL-terminated).
class StringView {
 public:
  constexpr StringView() = default;
  KTL_UNSAFE_BUFFER_BEGIN  // a C string is valid up to its NUL
  constexpr StringView(const char* s) : chars_(Span<const char>::from_raw(s, string_length(s))) {}
  KTL_UNSAFE_BUFFER_END
  // n characters at s, unchecked like Span::from_raw (and, like it, only inside a marked unsafe
  // region: tools/unsafe_lint.py counts every from_raw call). Containers have the safe form,
  // StringView(span.first(n)).
  KTL_UNSAFE_BUFFER_BEGIN  // the definition: the promise is the caller's
  [[nodiscard]] static constexpr StringView from_raw(const char* s, usize n) {
    return StringView(Span<const char>::from_raw(s, n));
  }
  KTL_UNSAFE_BUFFER_END
  constexpr explicit StringView(Span<const char> chars) : chars_(chars) {}

  [[nodiscard]] constexpr const char* data() const { return chars_.data(); }
  [[nodiscard]] constexpr usize size() const { return chars_.size(); }
  [[nodiscard]] constexpr bool empty() const { return chars_.empty(); }
  [[nodiscard]] constexpr char operator[](usize i) const { return chars_[i]; }
  [[nodiscard]] constexpr Span<const char> span() const { return chars_; }
  [[nodiscard]] constexpr StringView substr(usize offset, usize count) const {
    return StringView(chars_.subspan(offset, count));
  }
  [[nodiscard]] constexpr StringView substr(usize offset) const { return StringView(chars_.subspan(offset)); }
  [[nodiscard]] constexpr bool starts_with(StringView p) const {
    return p.size() <= size() && substr(0, p.size()) == p;
  }
  [[nodiscard]] constexpr bool ends_with(StringView p) const {
    return p.size() <= size() && substr(size() - p.size()) == p;
  }
  // Index of the first `c`, or size() if absent.
  [[nodiscard]] constexpr usize find(char c, usize from = 0) const {
    for (usize i = from; i < size(); ++i) {
      if (chars_[i] == c) return i;
    }
    return size();
  }
  [[nodiscard]] constexpr usize find(StringView needle) const {
    if (needle.size() > size()) return size();
    for (usize i = 0; i + needle.size() <= size(); ++i) {
      if (substr(i, needle.size()) == needle) return i;
    }
    return size();
  }
  [[nodiscard]] constexpr bool contains(StringView needle) const { return find(needle) != size(); }
  [[nodiscard]] constexpr Span<const char>::Iterator begin() const { return chars_.begin(); }
  [[nodiscard]] constexpr Span<const char>::Iterator end() const { return chars_.end(); }

  friend constexpr bool operator==(StringView a, StringView b) {
    if (a.size() != b.size()) return false;
    for (usize i = 0; i < a.size(); ++i) {
      if (a[i] != b[i]) return false;
    }
    return true;
  }

 private:
  Span<const char> chars_;
};

// A fixed-size array with checked indexing (std::array without the unchecked operator[]).
template <class T, usize N>
struct Array {
  T elements[N];

  [[nodiscard]] static constexpr usize size() { return N; }
  [[nodiscard]] constexpr T& operator[](usize i) { return span()[i]; }
  [[nodiscard]] constexpr const T& operator[](usize i) const { return span()[i]; }
  [[nodiscard]] constexpr Span<T> span() { return Span<T>(elements); }
  [[nodiscard]] constexpr Span<const T> span() const { return Span<const T>(elements); }
  [[nodiscard]] constexpr T* data() { return elements; }
  [[nodiscard]] constexpr const T* data() const { return elements; }
  [[nodiscard]] constexpr auto begin() { return span().begin(); }
  [[nodiscard]] constexpr auto end() { return span().end(); }
  [[nodiscard]] constexpr auto begin() const { return span().begin(); }
  [[nodiscard]] constexpr auto end() const { return span().end(); }
  friend constexpr bool operator==(const Array&, const Array&) = default;
};

// The bytes of one trivially copyable object, to read (bytes_of) or fill (writable_bytes_of).
template <class T>
  requires is_trivially_copyable<T>
[[nodiscard]] Span<const u8> bytes_of(const T& object) {
  KTL_UNSAFE_BUFFER_BEGIN  // any object's storage may be read as bytes; sizeof(T) of them exist
  return Span<const u8>::from_raw(reinterpret_cast<const u8*>(&object), sizeof(T));
  KTL_UNSAFE_BUFFER_END
}
template <class T>
  requires is_trivially_copyable<T>
[[nodiscard]] Span<u8> writable_bytes_of(T& object) {
  KTL_UNSAFE_BUFFER_BEGIN  // trivially copyable: any byte pattern written is the object's value
  return Span<u8>::from_raw(reinterpret_cast<u8*>(&object), sizeof(T));
  KTL_UNSAFE_BUFFER_END
}

// Byte-wise helpers over spans (the kernel's memcpy/memset are built on these too).
constexpr void copy_bytes(Span<u8> to, Span<const u8> from) {
  check(to.size() >= from.size(), "copy_bytes: destination too small");
  for (usize i = 0; i < from.size(); ++i) to[i] = from[i];
}
constexpr void fill_bytes(Span<u8> to, u8 value) {
  for (u8& b : to) b = value;
}

}  // namespace ktl
