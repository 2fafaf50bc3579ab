// SPDX-License-Identifier: GPL-3.0-or-later
// A minimal std::expected / std::unexpected for compilers whose library lacks them (clang 14
// on libstdc++ 12 cannot compile <expected>; the fuzz build uses clang). Only the members the
// project uses. Not used by g++ builds.
#pragma once

#include <type_traits>
#include <utility>
#include <variant>

namespace std {

template <typename E>
class unexpected {
 public:
  constexpr explicit unexpected(E e) : e_(std::move(e)) {}
  constexpr const E& error() const& { return e_; }
  constexpr E& error() & { return e_; }

 private:
  E e_;
};
template <typename E>
unexpected(E) -> unexpected<E>;

template <typename T, typename E>
class expected {
 public:
  using value_type = T;
  using error_type = E;
  constexpr expected() : v_(std::in_place_index<0>) {}
  template <typename U = T,
            typename = std::enable_if_t<std::is_constructible_v<T, U&&> &&
                                        !std::is_same_v<std::decay_t<U>, expected>>>
  constexpr expected(U&& u) : v_(std::in_place_index<0>, std::forward<U>(u)) {}
  template <typename G>
  constexpr expected(const unexpected<G>& u) : v_(std::in_place_index<1>, u.error()) {}
  template <typename G>
  constexpr expected(unexpected<G>&& u) : v_(std::in_place_index<1>, std::move(u.error())) {}
  constexpr bool has_value() const { return v_.index() == 0; }
  constexpr explicit operator bool() const { return has_value(); }
  constexpr T& operator*() & { return std::get<0>(v_); }
  constexpr const T& operator*() const& { return std::get<0>(v_); }
  constexpr T&& operator*() && { return std::get<0>(std::move(v_)); }
  constexpr T* operator->() { return &std::get<0>(v_); }
  constexpr const T* operator->() const { return &std::get<0>(v_); }
  constexpr T& value() & { return std::get<0>(v_); }
  constexpr const T& value() const& { return std::get<0>(v_); }
  constexpr const E& error() const& { return std::get<1>(v_); }
  constexpr E& error() & { return std::get<1>(v_); }
  template <typename U>
  constexpr T value_or(U&& u) const& {
    return has_value() ? **this : static_cast<T>(std::forward<U>(u));
  }

 private:
  std::variant<T, E> v_;
};

template <typename E>
class expected<void, E> {
 public:
  using value_type = void;
  using error_type = E;
  constexpr expected() = default;
  template <typename G>
  constexpr expected(const unexpected<G>& u) : e_(u.error()), ok_(false) {}
  template <typename G>
  constexpr expected(unexpected<G>&& u) : e_(std::move(u.error())), ok_(false) {}
  constexpr bool has_value() const { return ok_; }
  constexpr explicit operator bool() const { return ok_; }
  constexpr void operator*() const {}
  constexpr void value() const {}
  constexpr const E& error() const& { return e_; }
  constexpr E& error() & { return e_; }

 private:
  E e_{};
  bool ok_ = true;
};

}  // namespace std
