// ktl.result: Optional<T> and Result<T, E>, the only way fallible code reports failure.
// Both are [[nodiscard]]; reading the value of an empty Optional or a failed Result panics.
// Use TRY() from <ktl/macros.h> to propagate errors.
module;

#include <ktl/new.h>

export module ktl.result;

import ktl.core;

export namespace ktl {

struct NullOpt {
  explicit constexpr NullOpt() = default;
};
inline constexpr NullOpt nullopt{};

template <class T>
class [[nodiscard]] Optional {
 public:
  constexpr Optional() : empty_{}, has_value_(false) {}
  constexpr Optional(NullOpt) : empty_{}, has_value_(false) {}
  constexpr Optional(const T& v) : value_(v), has_value_(true) {}
  constexpr Optional(T&& v) : value_(move(v)), has_value_(true) {}
  constexpr Optional(const Optional& o) : empty_{}, has_value_(o.has_value_) {
    if (has_value_) new (&value_) T(o.value_);
  }
  constexpr Optional(Optional&& o) : empty_{}, has_value_(o.has_value_) {
    if (has_value_) new (&value_) T(move(o.value_));
  }
  constexpr Optional& operator=(const Optional& o) {
    if (this != &o) {
      reset();
      if (o.has_value_) {
        new (&value_) T(o.value_);
        has_value_ = true;
      }
    }
    return *this;
  }
  constexpr Optional& operator=(Optional&& o) {
    if (this != &o) {
      reset();
      if (o.has_value_) {
        new (&value_) T(move(o.value_));
        has_value_ = true;
      }
    }
    return *this;
  }
  constexpr ~Optional() { reset(); }

  constexpr void reset() {
    if (has_value_) {
      value_.~T();
      has_value_ = false;
    }
  }
  template <class... A>
  constexpr T& emplace(A&&... args) {
    reset();
    new (&value_) T(forward<A>(args)...);
    has_value_ = true;
    return value_;
  }

  [[nodiscard]] constexpr bool has_value() const { return has_value_; }
  constexpr explicit operator bool() const { return has_value_; }
  // For TRY(): an empty Optional is the "error".
  [[nodiscard]] constexpr bool is_err() const { return !has_value_; }
  [[nodiscard]] constexpr NullOpt release_error() const { return nullopt; }

  [[nodiscard]] constexpr T& value(SourceLocation w = SourceLocation::current()) & {
    check(has_value_, "Optional::value() on an empty Optional", w);
    return value_;
  }
  [[nodiscard]] constexpr const T& value(SourceLocation w = SourceLocation::current()) const& {
    check(has_value_, "Optional::value() on an empty Optional", w);
    return value_;
  }
  [[nodiscard]] constexpr T release_value(SourceLocation w = SourceLocation::current()) {
    check(has_value_, "Optional::release_value() on an empty Optional", w);
    T v = move(value_);
    reset();
    return v;
  }
  [[nodiscard]] constexpr T value_or(T fallback) const& { return has_value_ ? value_ : fallback; }
  constexpr T* operator->() { return &value(); }
  constexpr const T* operator->() const { return &value(); }
  constexpr T& operator*() { return value(); }
  constexpr const T& operator*() const { return value(); }

  friend constexpr bool operator==(const Optional& a, const Optional& b) {
    if (a.has_value_ != b.has_value_) return false;
    return !a.has_value_ || a.value_ == b.value_;
  }

 private:
  struct Empty {};
  union {
    Empty empty_;
    T value_;
  };
  bool has_value_;
};

// The error half of a Result, spelled Err(e) at the return site: `return ktl::Err(Error::NoMemory);`
template <class E>
struct Err {
  constexpr explicit Err(E e) : error(move(e)) {}
  E error;
};
template <class E>
Err(E) -> Err<E>;

namespace detail {
// The text a panic about error `e` appends: its to_string() when it has one (ktl::NamedEnum).
template <class E>
constexpr const char* error_detail(const E& e) {
  if constexpr (NamedEnum<E>) {
    return to_string(e);
  } else {
    (void)e;
    return nullptr;
  }
}
}  // namespace detail

template <class T, class E>
class [[nodiscard]] Result {
 public:
  using ValueType = T;
  using ErrorType = E;

  constexpr Result(const T& v) : value_(v), ok_(true) {}
  constexpr Result(T&& v) : value_(move(v)), ok_(true) {}
  template <class F>
  constexpr Result(Err<F>&& e) : error_(move(e.error)), ok_(false) {}
  constexpr Result(Result&& o) : ok_(o.ok_) {
    if (ok_) {
      new (&value_) T(move(o.value_));
    } else {
      new (&error_) E(move(o.error_));
    }
  }
  constexpr Result(const Result& o)
    requires is_copy_constructible<T>
      : ok_(o.ok_) {
    if (ok_) {
      new (&value_) T(o.value_);
    } else {
      new (&error_) E(o.error_);
    }
  }
  Result& operator=(const Result&) = delete;
  Result& operator=(Result&&) = delete;
  constexpr ~Result() {
    if (ok_) {
      value_.~T();
    } else {
      error_.~E();
    }
  }

  [[nodiscard]] constexpr bool is_ok() const { return ok_; }
  [[nodiscard]] constexpr bool is_err() const { return !ok_; }

  [[nodiscard]] constexpr T& value(SourceLocation w = SourceLocation::current()) & {
    if (!ok_) [[unlikely]]
      panic("Result::value() on an error", detail::error_detail(error_), w);
    return value_;
  }
  [[nodiscard]] constexpr const T& value(SourceLocation w = SourceLocation::current()) const& {
    if (!ok_) [[unlikely]]
      panic("Result::value() on an error", detail::error_detail(error_), w);
    return value_;
  }
  [[nodiscard]] constexpr T release_value(SourceLocation w = SourceLocation::current()) {
    if (!ok_) [[unlikely]]
      panic("Result::release_value() on an error", detail::error_detail(error_), w);
    return move(value_);
  }
  [[nodiscard]] constexpr const E& error(SourceLocation w = SourceLocation::current()) const {
    check(!ok_, "Result::error() on a success", w);
    return error_;
  }
  [[nodiscard]] constexpr E release_error(SourceLocation w = SourceLocation::current()) {
    check(!ok_, "Result::release_error() on a success", w);
    return move(error_);
  }
  [[nodiscard]] constexpr T value_or(T fallback) && { return ok_ ? move(value_) : move(fallback); }

 private:
  union {
    T value_;
    E error_;
  };
  bool ok_;
};

// Result<void, E>: success carries no value.
template <class E>
class [[nodiscard]] Result<void, E> {
 public:
  using ValueType = void;
  using ErrorType = E;

  constexpr Result() : error_(), ok_(true) {}
  template <class F>
  constexpr Result(Err<F>&& e) : error_(move(e.error)), ok_(false) {}

  [[nodiscard]] constexpr bool is_ok() const { return ok_; }
  [[nodiscard]] constexpr bool is_err() const { return !ok_; }
  constexpr void release_value(SourceLocation w = SourceLocation::current()) {
    if (!ok_) [[unlikely]]
      panic("Result::release_value() on an error", detail::error_detail(error_), w);
  }
  constexpr void value(SourceLocation w = SourceLocation::current()) const {
    if (!ok_) [[unlikely]]
      panic("Result::value() on an error", detail::error_detail(error_), w);
  }
  [[nodiscard]] constexpr const E& error(SourceLocation w = SourceLocation::current()) const {
    check(!ok_, "Result::error() on a success", w);
    return error_;
  }
  [[nodiscard]] constexpr E release_error(SourceLocation w = SourceLocation::current()) {
    check(!ok_, "Result::release_error() on a success", w);
    return move(error_);
  }

 private:
  E error_;
  bool ok_;
};

// For a result that can only fail when an invariant is broken: panics with `message` and the
// error's text ("message: <to_string(error)>") unless `r` succeeded.
template <class T, class E>
constexpr void check_ok(const Result<T, E>& r, const char* message,
                        SourceLocation where = SourceLocation::current()) {
  if (r.is_err()) [[unlikely]]
    panic(message, detail::error_detail(r.error()), where);
}

// Convenience: `return ktl::ok();` for Result<void, E>.
struct Ok {
  template <class E>
  constexpr operator Result<void, E>() const {
    return Result<void, E>();
  }
};
[[nodiscard]] constexpr Ok ok() { return Ok{}; }

}  // namespace ktl
