// SPDX-License-Identifier: GPL-3.0-or-later
// Buffered text output to a file descriptor: large buffer, integers formatted without
// locale machinery. A closed pipe becomes Errc::kBrokenPipe (reported quietly by the tools).
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "persistent-data/result.h"

namespace thinmeta::thin {

// Decimal digits of v (1 for 0, 20 for 2^64-1).
inline unsigned decimal_digits(std::uint64_t v) {
  static constexpr std::uint64_t kPow10[20] = {
      1ull, 10ull, 100ull, 1000ull, 10000ull, 100000ull, 1000000ull, 10000000ull,
      100000000ull, 1000000000ull, 10000000000ull, 100000000000ull, 1000000000000ull,
      10000000000000ull, 100000000000000ull, 1000000000000000ull, 10000000000000000ull,
      100000000000000000ull, 1000000000000000000ull, 10000000000000000000ull};
  // floor(log10(2) * bit width) is log10(v) or one less; v | 1 makes 0 count as 1 (10^t is
  // even for t > 0, so the | never crosses a power of ten).
  auto t = static_cast<unsigned>((std::bit_width(v | 1) * 1233) >> 12);
  return t + 1 - ((v | 1) < kPow10[t]);
}

// Writes v in decimal at p (room for 20 characters), returns the end: two digits a step from
// a table, the length known up front (no reversal, no locale).
inline char* write_u64(char* p, std::uint64_t v) {
  static constexpr char kPairs[201] =
      "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
      "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
      "8081828384858687888990919293949596979899";
  unsigned n = decimal_digits(v);
  char* end = p + n;
  char* q = end;
  while (v >= 100) {
    unsigned r = static_cast<unsigned>(v % 100);
    v /= 100;
    q -= 2;
    std::memcpy(q, kPairs + 2 * r, 2);
  }
  if (v >= 10) {
    q -= 2;
    std::memcpy(q, kPairs + 2 * v, 2);
  } else {
    *--q = static_cast<char>('0' + v);
  }
  return end;
}

// Copies a string literal (without its NUL) to p, returns the end.
template <std::size_t N>
inline char* write_lit(char* p, const char (&s)[N]) {
  std::memcpy(p, s, N - 1);
  return p + N - 1;
}

class TextOutput {
 public:
  // The buffer is not zeroed: its pages are touched only as far as output fills them (a tiny
  // dump does not pay for 1 MiB of page faults).
  // At least kMinBuffer bytes, so that any reserve() of a formatted line fits.
  static constexpr std::size_t kMinBuffer = 4096;
  explicit TextOutput(int fd, std::size_t buffer_size = 1 << 20)
      : fd_(fd),
        size_(buffer_size < kMinBuffer ? kMinBuffer : buffer_size),
        buf_(std::make_unique_for_overwrite<char[]>(size_)) {}
  ~TextOutput() = default;

  void put(std::string_view s) {
    if (s.size() > size_ - used_) {
      drain();
      if (s.size() > size_) {
        write_all(s.data(), s.size());
        return;
      }
    }
    std::copy(s.begin(), s.end(), buf_.get() + used_);
    used_ += s.size();
  }
  void put(char c) {
    if (used_ == size_) drain();
    buf_[used_++] = c;
  }
  void put_u64(std::uint64_t v) {
    if (size_ - used_ < 20) drain();
    used_ = static_cast<std::size_t>(write_u64(buf_.get() + used_, v) - buf_.get());
  }
  // Room for n bytes (n <= kMinBuffer), written directly through the pointer returned;
  // commit(end) then keeps [pointer, end). One capacity check for a whole formatted line.
  char* reserve(std::size_t n) {
    if (size_ - used_ < n) drain();
    return buf_.get() + used_;
  }
  void commit(char* end) { used_ = static_cast<std::size_t>(end - buf_.get()); }
  // Writes out everything buffered; returns the first error seen since construction.
  Result<> flush() {
    drain();
    if (error_) return std::unexpected(*error_);
    return {};
  }
  bool failed() const { return error_.has_value(); }
  // Drops what is buffered and not yet written: on an error, output shorter than the buffer
  // never reaches the reader half-done.
  void discard() { used_ = 0; }
  // The first write error, as a Result (for sinks to return after each element).
  Result<> status() const {
    if (error_) return std::unexpected(*error_);
    return {};
  }

 private:
  void drain() {
    if (used_) write_all(buf_.get(), used_);
    used_ = 0;
  }
  void write_all(const char* p, std::size_t n);

  int fd_;
  std::size_t size_;
  std::unique_ptr<char[]> buf_;
  std::size_t used_ = 0;
  std::optional<Error> error_;
};

}  // namespace thinmeta::thin
