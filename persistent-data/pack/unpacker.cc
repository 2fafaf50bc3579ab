// SPDX-License-Identifier: GPL-3.0-or-later
#include "persistent-data/pack/unpacker.h"

#include <unistd.h>
#include <zlib.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <deque>
#include <mutex>
#include <optional>

#include "persistent-data/endian.h"
#include "persistent-data/helper_thread.h"
#include "persistent-data/pack/block_program.h"
#include "persistent-data/pack/pack_format.h"

namespace thinmeta::pdata::pack {
namespace {

constexpr std::size_t kInChunk = 1 << 20;          // compressed bytes read at a time
constexpr std::size_t kOutChunk = 256 << 10;       // inflated at a time
constexpr std::size_t kMaxRecordBytes = 1 << 20;   // a legal program is ~4-9 KiB
constexpr std::size_t kWriteBatch = 256;           // blocks per write_many
constexpr std::size_t kMaxPendingFrames = 4;

Result<> pread_all(int fd, std::uint8_t* p, std::size_t len, std::uint64_t off) {
  while (len > 0) {
    ssize_t n = ::pread(fd, p, len, static_cast<off_t>(off));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0)
      return fail(Errc::kIo, std::string("Couldn't read the pack file: ") + std::strerror(errno));
    if (n == 0) return fail(Errc::kIo, "failed to fill whole buffer: the pack file ended early");
    p += n;
    len -= static_cast<std::size_t>(n);
    off += static_cast<std::uint64_t>(n);
  }
  return {};
}

// What the frame jobs share: the output, which blocks were seen, block 0 held back.
struct Shared {
  Shared(IoEngine& o, std::uint64_t nr) : out(o), nr_blocks(nr), covered((nr + 63) / 64) {}
  IoEngine& out;
  std::uint64_t nr_blocks;
  std::mutex m;                                 // covered, block0, warnings
  std::vector<std::uint64_t> covered;
  std::optional<AlignedBuffer> block0;
  std::vector<std::string> warnings;
  std::mutex io_m;                              // one writer at a time
  std::atomic<bool> failed{false};
  std::optional<std::pair<std::uint64_t, Error>> error;  // of the earliest failed frame

  void fail_frame(std::uint64_t frame, const Error& e) {
    std::lock_guard<std::mutex> l(m);
    if (!error || frame < error->first) error.emplace(frame, e);
    failed = true;
  }
};

class FrameJob {
 public:
  FrameJob(Shared& s, int fd, std::uint64_t index, std::uint64_t offset, std::uint64_t len)
      : s_(s), fd_(fd), index_(index), offset_(offset), len_(len), batch_(kWriteBatch) {}

  // The number of records; errors go to Shared::fail_frame (the earliest frame's is
  // reported), and a job that sees another fail stops early.
  std::uint64_t run() {
    if (len_ == 0) return 0;  // 1.3.3 accepts an empty frame (PACK.md §9)
    z_stream z{};
    if (inflateInit(&z) != Z_OK) {
      s_.fail_frame(index_, where("zlib could not start (out of memory?)").error());
      return 0;
    }
    auto r = inflate_all(z);
    inflateEnd(&z);
    if (r) r = write_batch();
    if (!r && !stopped_) s_.fail_frame(index_, r.error());
    return records_;
  }

 private:
  std::unexpected<Error> where(const std::string& what) {
    return fail(Errc::kBadFormat, "frame " + std::to_string(index_) + " at offset " +
                                      std::to_string(offset_) + ": " + what);
  }

  Result<> inflate_all(z_stream& z) {
    std::vector<std::uint8_t> in(static_cast<std::size_t>(std::min<std::uint64_t>(kInChunk, len_)));
    std::uint64_t read = 0;        // compressed bytes read so far
    bool ended = false;
    while (!ended) {
      if (s_.failed) {
        stopped_ = true;
        return fail(Errc::kIo, "stopped");
      }
      if (z.avail_in == 0 && read < len_) {
        std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(in.size(), len_ - read));
        THINMETA_CHECK(pread_all(fd_, in.data(), n, offset_ + kFrameHeaderBytes + read));
        read += n;
        z.next_in = in.data();
        z.avail_in = static_cast<uInt>(n);
      }
      std::size_t have = window_.size();
      window_.resize(have + kOutChunk);
      z.next_out = window_.data() + have;
      z.avail_out = static_cast<uInt>(kOutChunk);
      int ret = inflate(&z, Z_NO_FLUSH);
      window_.resize(window_.size() - z.avail_out);
      if (ret == Z_STREAM_END) {
        ended = true;
      } else if (ret == Z_BUF_ERROR) {  // no progress: all input used, stream not finished
        if (read == len_) return where("compressed data ends early (truncated or damaged frame)");
      } else if (ret == Z_NEED_DICT) {
        return where("zlib stream wants a preset dictionary");
      } else if (ret != Z_OK) {
        return where(std::string("damaged compressed data (zlib: ") +
                     (z.msg ? z.msg : "error " + std::to_string(ret)) + ")");
      }
      THINMETA_CHECK(decode_window(ended));
    }
    if (z.avail_in != 0 || read < len_) {
      std::lock_guard<std::mutex> l(s_.m);
      s_.warnings.push_back("frame " + std::to_string(index_) + " at offset " +
                            std::to_string(offset_) + ": " +
                            std::to_string(len_ - read + z.avail_in) +
                            " bytes after the end of its zlib stream ignored");
    }
    return {};
  }

  // Decodes the whole records in window_[start_, end); with `last`, nothing may be left.
  Result<> decode_window(bool last) {
    for (;;) {
      const std::uint8_t* p = window_.data() + start_;
      std::size_t avail = window_.size() - start_;
      if (avail == 0) break;
      std::uint64_t nr = 0;
      std::size_t used = 0;
      std::string err;
      std::uint8_t* block = batch_.block(batch_addrs_.size());
      auto st = decode_record(p, avail, block, nr, used, err);
      if (st == DecodeStatus::kError)
        return where("record " + std::to_string(records_) + " (block " + std::to_string(nr) +
                     "): " + err);
      if (st == DecodeStatus::kNeedMore) {
        if (last) {
          if (avail < 8)
            return where(std::to_string(avail) + " stray bytes after the last record");
          return where("record " + std::to_string(records_) + " (block " +
                       std::to_string(load_le64(p)) + ") ends early");
        }
        if (avail > kMaxRecordBytes)
          return where("record " + std::to_string(records_) + " is longer than 1 MiB");
        break;
      }
      start_ += used;
      THINMETA_CHECK(take(nr, block));
      ++records_;
    }
    if (start_ > 0 && (start_ >= window_.size() / 2 || last)) {
      window_.erase(window_.begin(), window_.begin() + static_cast<std::ptrdiff_t>(start_));
      start_ = 0;
    }
    return {};
  }

  Result<> take(std::uint64_t nr, std::uint8_t* block) {
    std::string rec = "record " + std::to_string(records_) + " (block " + std::to_string(nr) + ")";
    if (!packed_kind(block)) return where(rec + " does not carry a known checksum");
    {
      std::lock_guard<std::mutex> l(s_.m);
      if (nr >= s_.nr_blocks)
        return where(rec + " is beyond the " + std::to_string(s_.nr_blocks) +
                     " blocks of the pack");
      std::uint64_t& word = s_.covered[nr / 64];
      std::uint64_t bit = std::uint64_t{1} << (nr % 64);
      if (word & bit) return where(rec + ": the block is in the pack twice");
      word |= bit;
      if (nr == 0) {
        s_.block0.emplace(1);
        std::memcpy(s_.block0->data(), block, kBlockSize);
        return {};
      }
    }
    batch_addrs_.push_back(nr);
    if (batch_addrs_.size() == kWriteBatch) THINMETA_CHECK(write_batch());
    return {};
  }

  Result<> write_batch() {
    if (batch_addrs_.empty()) return {};
    std::lock_guard<std::mutex> l(s_.io_m);
    auto r = s_.out.write_many(batch_addrs_, batch_.data());
    batch_addrs_.clear();
    return r;
  }

  Shared& s_;
  int fd_;
  std::uint64_t index_, offset_, len_;
  std::vector<std::uint8_t> window_;
  std::size_t start_ = 0;
  std::uint64_t records_ = 0;
  bool stopped_ = false;
  AlignedBuffer batch_;
  std::vector<BlockAddr> batch_addrs_;
};

}  // namespace

Result<PackHeader> read_header(int fd) {
  std::uint8_t h[kHeaderBytes];
  ssize_t n = ::pread(fd, h, sizeof h, 0);
  if (n < 0)
    return fail(Errc::kIo, std::string("Couldn't read the pack file: ") + std::strerror(errno));
  if (n < 8)
    return fail(Errc::kBadFormat, "failed to fill whole buffer: not a pack file (too short)");
  if (load_le64(h) != kMagic) return fail(Errc::kBadFormat, "Not a pack file");
  if (n < static_cast<ssize_t>(kHeaderBytes))
    return fail(Errc::kBadFormat, "failed to fill whole buffer: the pack header is truncated");
  if (load_le64(h + 8) != kVersion)
    return fail(Errc::kBadFormat,
                "unsupported pack file version (" + std::to_string(kVersion) + ").");
  if (load_le64(h + 16) != kPackBlockSize) return fail(Errc::kBadFormat, "block size is not 4096");
  PackHeader ph;
  ph.nr_blocks = load_le64(h + 24);
  if (ph.nr_blocks == 0)
    return fail(Errc::kBadFormat, "the pack file describes a device of 0 blocks");
  if (ph.nr_blocks > kMaxPackBlocks)
    return fail(Errc::kBadFormat, "the pack file describes a device of " +
                                      std::to_string(ph.nr_blocks) + " blocks (more than 16 TiB)");
  return ph;
}

Result<UnpackStats> unpack(int fd, std::uint64_t file_size, const PackHeader& header,
                           IoEngine& out, const ZeroRange& zero) {
  AlignedBuffer zeros(1);
  THINMETA_CHECK(out.write(0, zeros.data()));  // no valid superblock until the very end
  THINMETA_CHECK(out.flush());

  Shared s(out, header.nr_blocks);
  UnpackStats stats;
  std::deque<Pending<std::uint64_t>> pending;
  std::optional<Error> scan_error;
  auto finish_oldest = [&] {
    stats.records += pending.front().get();
    pending.pop_front();
  };
  std::uint64_t pos = kHeaderBytes;
  while (file_size - pos >= kFrameHeaderBytes && !s.failed) {
    std::uint8_t lb[8];
    if (auto r = pread_all(fd, lb, 8, pos); !r) {
      scan_error = r.error();
      break;
    }
    std::uint64_t len = load_le64(lb);
    std::uint64_t left = file_size - pos - kFrameHeaderBytes;
    if (len > left) {
      scan_error = Error{Errc::kBadFormat,
                          "frame " + std::to_string(stats.frames) + " at offset " +
                              std::to_string(pos) + ": length " + std::to_string(len) +
                              " but only " + std::to_string(left) +
                              " bytes left (truncated pack file?)"};
      break;
    }
    if (pending.size() >= kMaxPendingFrames) finish_oldest();
    auto job = std::make_shared<FrameJob>(s, fd, stats.frames, pos, len);
    pending.push_back(on_helper([job] { return job->run(); },
                                static_cast<unsigned>(stats.frames % kHelperLanes)));
    ++stats.frames;
    pos += kFrameHeaderBytes + len;
  }
  while (!pending.empty()) finish_oldest();
  if (s.error) return std::unexpected(s.error->second);  // an earlier frame's damage first
  if (scan_error) return std::unexpected(*scan_error);
  if (file_size > pos)
    s.warnings.push_back(std::to_string(file_size - pos) +
                         " stray bytes after the last frame ignored");
  THINMETA_CHECK(out.flush());

  // Blocks the pack does not cover read as zeros (a device keeps old contents otherwise).
  if (zero) {
    BlockAddr b = 1;
    while (b < header.nr_blocks) {
      if (s.covered[b / 64] >> (b % 64) & 1) {
        ++b;
        continue;
      }
      BlockAddr e = b + 1;
      while (e < header.nr_blocks && !(s.covered[e / 64] >> (e % 64) & 1)) ++e;
      THINMETA_CHECK(zero(b, e));
      b = e;
    }
  }
  if (s.block0) {
    THINMETA_CHECK(out.write(0, s.block0->data()));
    THINMETA_CHECK(out.flush());
  }
  stats.warnings = std::move(s.warnings);
  return stats;
}

}  // namespace thinmeta::pdata::pack
