// SPDX-License-Identifier: GPL-3.0-or-later
// Buffered text output to a file descriptor: large buffer, integers formatted without
// locale machinery. A closed pipe becomes Errc::kBrokenPipe (reported quietly by the tools).
#pragma once

#include <charconv>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "persistent-data/result.h"

namespace thinmeta::thin {

class TextOutput {
 public:
  // The buffer is not zeroed: its pages are touched only as far as output fills them (a tiny
  // dump does not pay for 1 MiB of page faults).
  explicit TextOutput(int fd, std::size_t buffer_size = 1 << 20)
      : fd_(fd), buf_(std::make_unique_for_overwrite<char[]>(buffer_size)), size_(buffer_size) {}
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
    if (size_ - used_ < 24) drain();
    auto r = std::to_chars(buf_.get() + used_, buf_.get() + size_, v);
    used_ = static_cast<std::size_t>(r.ptr - buf_.get());
  }
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
  std::unique_ptr<char[]> buf_;
  std::size_t size_;
  std::size_t used_ = 0;
  std::optional<Error> error_;
};

}  // namespace thinmeta::thin
