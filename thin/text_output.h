// SPDX-License-Identifier: GPL-3.0-or-later
// Buffered text output to a file descriptor: large buffer, integers formatted by
// persistent-data/decimal.h. A closed pipe becomes Errc::kBrokenPipe (reported quietly by the tools).
#pragma once

#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "persistent-data/decimal.h"
#include "persistent-data/result.h"

namespace thinmeta::thin {

using pdata::write_u64;

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
    if (size_ - used_ < pdata::kMaxDecimalU64) drain();
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
