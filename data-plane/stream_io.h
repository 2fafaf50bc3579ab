// SPDX-License-Identifier: GPL-3.0-or-later
// Writing and reading a thin_send stream (stream_format.h, STREAM.md) on file descriptors.
// StreamWriter computes the per-record and running checksums and the END record's counts;
// StreamReader verifies everything as it goes and names the stream byte offset of any damage,
// so a receiver applies only records that are whole and in place.
#pragma once

#include <csignal>
#include <cstdint>
#include <memory>
#include <span>

#include "data-plane/stream_format.h"
#include "persistent-data/result.h"
#include "thin/text_output.h"

namespace thinmeta::dataplane {

class StreamWriter {
 public:
  explicit StreamWriter(int fd);
  Result<> header(const StreamHeader& h);
  Result<> data(std::uint64_t offset, std::span<const std::uint8_t> payload);  // <= kMaxDataPayload
  Result<> zero(std::uint64_t offset, std::uint64_t len);
  // The END record, then everything buffered is written out.
  Result<> end();
  const EndRecord& counts() const { return counts_; }
  std::uint64_t bytes() const { return bytes_; }

 private:
  void put(std::span<const std::uint8_t> b);
  Result<> record(RecordType t, std::uint64_t offset, std::uint64_t len,
                  std::span<const std::uint8_t> payload);

  thin::TextOutput out_;
  StreamCrc chain_;
  std::uint64_t seq_ = 0;
  std::uint64_t bytes_ = 0;
  std::uint64_t virtual_size_ = 0;
  EndRecord counts_;
};

class StreamReader {
 public:
  // `stop` (optional): when it becomes non-zero, a read interrupted by a signal fails as
  // "interrupted" instead of being retried.
  explicit StreamReader(int fd, const volatile std::sig_atomic_t* stop = nullptr);
  // The header (first call only). Errors: "stream truncated ...", "not a thin_send stream".
  Result<StreamHeader> header();
  // The next record's header, checked against the stream: its checksum, the running checksum,
  // its sequence number, ascending non-overlapping offsets inside the virtual size, payload
  // size limits. For DATA, call payload() next; END is checked (counts, running checksum, no
  // bytes after it) before it is returned.
  Result<RecordHeader> next();
  // Reads the current DATA record's payload into buf (its length bytes) and checks it.
  Result<> payload(std::uint8_t* buf);
  // Stream offset of the start of the current record (for messages).
  std::uint64_t record_offset() const { return record_at_; }
  std::uint64_t bytes() const { return pos_; }
  // End of the last range (DATA or ZERO) returned: everything below it that this stream
  // carries has been handed out.
  std::uint64_t covered_end() const { return covered_end_; }
  // Counts of the records read so far.
  const EndRecord& counts() const { return counts_; }

 private:
  // Reads exactly n bytes; 0 if end of stream before any, -1 on a short read.
  Result<std::size_t> read_exact(std::uint8_t* p, std::size_t n);
  Error damaged(const std::string& what, std::uint64_t at) const;

  int fd_;
  const volatile std::sig_atomic_t* stop_;
  std::unique_ptr<std::uint8_t[]> buf_;
  std::size_t buf_len_ = 0, buf_pos_ = 0;
  std::uint64_t pos_ = 0;  // stream bytes consumed
  std::uint64_t record_at_ = 0;
  StreamCrc chain_;
  StreamHeader h_;
  bool have_header_ = false;
  std::uint64_t seq_ = 0;
  std::uint64_t covered_end_ = 0;
  RecordHeader cur_;
  bool payload_due_ = false;
  EndRecord counts_;
};

}  // namespace thinmeta::dataplane
