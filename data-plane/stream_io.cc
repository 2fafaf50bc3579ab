// SPDX-License-Identifier: GPL-3.0-or-later
#include "data-plane/stream_io.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "persistent-data/crc32c.h"

namespace thinmeta::dataplane {

namespace {
constexpr std::size_t kReadBuffer = 1 << 20;
}

StreamWriter::StreamWriter(int fd) : out_(fd) {}

void StreamWriter::put(std::span<const std::uint8_t> b) {
  chain_.add(b);
  out_.put(std::string_view(reinterpret_cast<const char*>(b.data()), b.size()));
  bytes_ += b.size();
}

Result<> StreamWriter::header(const StreamHeader& h) {
  std::uint8_t b[kHeaderBytes];
  h.encode(b);
  put(b);
  virtual_size_ = h.virtual_size;
  return out_.status();
}

Result<> StreamWriter::record(RecordType t, std::uint64_t offset, std::uint64_t len,
                              std::span<const std::uint8_t> payload) {
  RecordHeader r;
  r.type = t;
  r.offset = offset;
  r.length = len;
  r.sequence = seq_++;
  r.payload_crc = payload.empty() ? 0 : pdata::crc32c(payload.data(), payload.size());
  r.chain_crc = chain_.value();
  std::uint8_t b[kRecordHeaderBytes];
  r.encode(b);
  put(b);
  if (!payload.empty()) put(payload);
  return out_.status();
}

Result<> StreamWriter::data(std::uint64_t offset, std::span<const std::uint8_t> payload) {
  ++counts_.nr_records;
  counts_.data_bytes += payload.size();
  return record(RecordType::kData, offset, payload.size(), payload);
}

Result<> StreamWriter::zero(std::uint64_t offset, std::uint64_t len) {
  ++counts_.nr_records;
  counts_.zero_bytes += len;
  return record(RecordType::kZero, offset, len, {});
}

Result<> StreamWriter::end() {
  std::uint8_t p[kEndPayloadBytes];
  counts_.encode(p);
  THINMETA_CHECK(record(RecordType::kEnd, virtual_size_, kEndPayloadBytes, p));
  return out_.flush();
}

// ---------------------------------------------------------------------------------------------

StreamReader::StreamReader(int fd, const volatile std::sig_atomic_t* stop)
    : fd_(fd), stop_(stop), buf_(new std::uint8_t[kReadBuffer]) {}

Error StreamReader::damaged(const std::string& what, std::uint64_t at) const {
  return Error{Errc::kChecksum, "stream damaged at byte " + std::to_string(at) + ": " + what};
}

Result<std::size_t> StreamReader::read_exact(std::uint8_t* p, std::size_t n) {
  std::size_t got = 0;
  while (got < n) {
    if (buf_pos_ == buf_len_) {
      // Large reads go straight to the caller's buffer.
      if (n - got >= kReadBuffer) {
        ssize_t r = ::read(fd_, p + got, n - got);
        if (r < 0 && errno == EINTR && !(stop_ && *stop_)) continue;
        if (r < 0 && errno == EINTR) return fail(Errc::kIo, "interrupted");
        if (r < 0) return fail(Errc::kIo, std::string("read of the stream failed: ") + std::strerror(errno));
        if (r == 0) break;
        got += static_cast<std::size_t>(r);
        continue;
      }
      ssize_t r = ::read(fd_, buf_.get(), kReadBuffer);
      if (r < 0 && errno == EINTR && !(stop_ && *stop_)) continue;
      if (r < 0 && errno == EINTR) return fail(Errc::kIo, "interrupted");
      if (r < 0) return fail(Errc::kIo, std::string("read of the stream failed: ") + std::strerror(errno));
      if (r == 0) break;
      buf_len_ = static_cast<std::size_t>(r);
      buf_pos_ = 0;
    }
    std::size_t take = std::min(n - got, buf_len_ - buf_pos_);
    std::memcpy(p + got, buf_.get() + buf_pos_, take);
    buf_pos_ += take;
    got += take;
  }
  pos_ += got;
  return got;
}

Result<StreamHeader> StreamReader::header() {
  std::uint8_t b[kHeaderBytes];
  THINMETA_TRY(std::size_t n, read_exact(b, sizeof b));
  if (n == 0) return fail(Errc::kBadFormat, "empty stream (no header)");
  if (n < sizeof b)
    return fail(Errc::kBadFormat, "stream truncated at byte " + std::to_string(pos_) +
                                      " (in the header)");
  auto h = StreamHeader::decode(b);
  if (!h) return std::unexpected(damaged(h.error().what, 0));
  chain_.add(b);
  h_ = *h;
  have_header_ = true;
  covered_end_ = h_.resume_offset;
  return h_;
}

Result<RecordHeader> StreamReader::next() {
  record_at_ = pos_;
  if (stop_ && *stop_) return fail(Errc::kIo, "interrupted");
  if (payload_due_) return std::unexpected(damaged("payload not read", record_at_));
  std::uint8_t b[kRecordHeaderBytes];
  THINMETA_TRY(std::size_t n, read_exact(b, sizeof b));
  if (n < sizeof b)
    return fail(Errc::kBadFormat, "stream truncated at byte " + std::to_string(pos_) +
                                      " (" + (n ? "in a record header" : "before its end record") + ")");
  auto r = RecordHeader::decode(b);
  if (!r) return std::unexpected(damaged(r.error().what, record_at_));
  if (r->sequence != seq_)
    return std::unexpected(damaged("record " + std::to_string(r->sequence) + " where record " +
                                       std::to_string(seq_) + " was due",
                                   record_at_));
  if (r->chain_crc != chain_.value())
    return std::unexpected(damaged("running checksum mismatch (bytes lost or changed before this record)",
                                   record_at_));
  chain_.add(b);
  ++seq_;
  cur_ = *r;
  switch (r->type) {
    case RecordType::kData:
    case RecordType::kZero: {
      bool data = r->type == RecordType::kData;
      if (r->length == 0 || r->offset % 512 || r->length % 512 || r->offset < covered_end_ ||
          r->offset + r->length > h_.virtual_size || r->offset + r->length < r->offset ||
          (data && r->length > kMaxDataPayload) || (!data && h_.mapped_only()))
        return std::unexpected(damaged("record out of place (offset " + std::to_string(r->offset) +
                                           ", length " + std::to_string(r->length) + ")",
                                       record_at_));
      covered_end_ = r->offset + r->length;
      ++counts_.nr_records;
      if (data) {
        counts_.data_bytes += r->length;
        payload_due_ = true;
      } else {
        counts_.zero_bytes += r->length;
      }
      return *r;
    }
    case RecordType::kEnd: {
      if (r->length != kEndPayloadBytes || r->offset != h_.virtual_size)
        return std::unexpected(damaged("bad end record", record_at_));
      std::uint8_t p[kEndPayloadBytes];
      THINMETA_TRY(std::size_t m, read_exact(p, sizeof p));
      if (m < sizeof p)
        return fail(Errc::kBadFormat, "stream truncated at byte " + std::to_string(pos_) +
                                          " (in the end record)");
      if (pdata::crc32c(p, sizeof p) != r->payload_crc)
        return std::unexpected(damaged("bad end record checksum", record_at_));
      chain_.add(p);
      EndRecord e = EndRecord::decode(p);
      if (e.nr_records != counts_.nr_records || e.data_bytes != counts_.data_bytes ||
          e.zero_bytes != counts_.zero_bytes)
        return std::unexpected(damaged("end record counts differ from the records received",
                                       record_at_));
      std::uint8_t extra;
      THINMETA_TRY(std::size_t x, read_exact(&extra, 1));
      if (x) return std::unexpected(damaged("data after the end record", pos_ - 1));
      return *r;
    }
  }
  return std::unexpected(damaged("unknown record", record_at_));
}

Result<> StreamReader::payload(std::uint8_t* buf) {
  if (!payload_due_) return fail(Errc::kInvalidArgument, "no payload due");
  payload_due_ = false;
  auto len = static_cast<std::size_t>(cur_.length);
  THINMETA_TRY(std::size_t n, read_exact(buf, len));
  if (n < len)
    return fail(Errc::kBadFormat, "stream truncated at byte " + std::to_string(pos_) +
                                      " (in the data of the record at byte " +
                                      std::to_string(record_at_) + ")");
  if (pdata::crc32c(buf, len) != cur_.payload_crc)
    return std::unexpected(damaged("bad checksum of the data at bytes " +
                                       std::to_string(record_at_ + kRecordHeaderBytes) + "-" +
                                       std::to_string(pos_ - 1),
                                   record_at_));
  chain_.add(std::span<const std::uint8_t>(buf, len));
  return {};
}

}  // namespace thinmeta::dataplane
