// SPDX-License-Identifier: GPL-3.0-or-later
#include "data-plane/send.h"

#include <algorithm>

#include "data-plane/stream_io.h"
#include "thin/copy_plan.h"
#include "thin/delta.h"
#include "thin/mapping_tree.h"

namespace thinmeta::dataplane {

Result<Identity> device_identity(const thin::Metadata& md, std::uint64_t thin_id) {
  std::optional<thin::DeviceDetails> details;
  std::optional<std::string> damage;
  thin::walk_details(
      md.io(), md.details_root(),
      [&](std::uint64_t id, const thin::DeviceDetails& d) {
        if (id != thin_id) return pdata::Flow::kContinue;
        details = d;
        return pdata::Flow::kStop;
      },
      [&](const pdata::Damage& d) {
        damage = d.what;
        return pdata::Flow::kStop;
      });
  if (damage) return fail(Errc::kDamage, "damage in the device details tree: " + *damage);
  THINMETA_TRY(auto root, thin::lookup_device_root(md.io(), md.mapping_root(), thin_id));
  if (!details || !root)
    return fail(Errc::kNotFound, "unknown thin device " + std::to_string(thin_id));
  Identity i;
  i.pool_uuid = md.sb().uuid;
  i.data_block_sectors = md.sb().data_block_size;
  i.thin_id = thin_id;
  i.creation_time = details->creation_time;
  i.snapshotted_time = details->snapshotted_time;
  i.mapping_root = *root;
  i.mapped_blocks = details->mapped_blocks;
  return i;
}

namespace {

// Plan steps -> byte ranges of the stream: clipped to the virtual size and to the resume
// offset, ZERO ranges joined and left out for --mapped-only. Subclasses say what a range
// becomes.
class RangeCutter : public thin::CopyPlanSink {
 public:
  RangeCutter(std::uint64_t block_bytes, std::uint64_t size, std::uint64_t from, bool mapped_only)
      : bs_(block_bytes), size_(size), from_(from), mapped_only_(mapped_only) {}

  Result<> copy(std::uint64_t v, std::uint64_t d, std::uint64_t len) override {
    std::uint64_t b = v * bs_, e = std::min((v + len) * bs_, size_);
    std::uint64_t src = d * bs_;
    if (e <= from_ || b >= e) return {};
    if (b < from_) {
      src += from_ - b;
      b = from_;
    }
    THINMETA_CHECK(flush_zero());
    stats_.data_bytes += e - b;
    ++stats_.data_ranges;
    return data(src, b, e - b);
  }
  Result<> unprovisioned(std::uint64_t v, std::uint64_t len) override {
    if (mapped_only_) return {};
    std::uint64_t b = std::max(v * bs_, from_), e = std::min((v + len) * bs_, size_);
    if (b >= e) return {};
    if (zlen_ && b == zb_ + zlen_) {
      zlen_ += e - b;
      return {};
    }
    THINMETA_CHECK(flush_zero());
    zb_ = b;
    zlen_ = e - b;
    return {};
  }
  Result<> flush_zero() {
    if (!zlen_) return {};
    stats_.zero_bytes += zlen_;
    ++stats_.zero_ranges;
    std::uint64_t b = zb_, l = zlen_;
    zlen_ = 0;
    return zero(b, l);
  }
  const SendStats& stats() const { return stats_; }

 protected:
  virtual Result<> data(std::uint64_t src, std::uint64_t dst, std::uint64_t len) = 0;
  virtual Result<> zero(std::uint64_t dst, std::uint64_t len) = 0;

 private:
  std::uint64_t bs_, size_, from_;
  bool mapped_only_;
  std::uint64_t zb_ = 0, zlen_ = 0;  // the ZERO range being joined
  SendStats stats_;
};

class Counter final : public RangeCutter {
 public:
  using RangeCutter::RangeCutter;

 protected:
  Result<> data(std::uint64_t, std::uint64_t, std::uint64_t) override { return {}; }
  Result<> zero(std::uint64_t, std::uint64_t) override { return {}; }
};

// DATA through the read pipeline; ZERO as markers in the same pipeline, so records stay in
// offset order.
class Sender final : public RangeCutter, public ChunkSink {
 public:
  Sender(std::uint64_t block_bytes, const SendRequest& req, std::uint64_t from,
         const DataDevice& data, StreamWriter& out, std::atomic<std::uint64_t>* done)
      : RangeCutter(block_bytes, req.size_bytes, from, req.mapped_only),
        rp_(data, *this, req.copier), out_(out), done_(done) {}

  Result<> chunk(const Chunk& c) override {
    if (c.marker) return out_.zero(c.dst, c.len);
    THINMETA_CHECK(out_.data(c.dst, c.data));
    if (done_) done_->fetch_add(c.len, std::memory_order_relaxed);
    return {};
  }
  Result<> finish() {
    THINMETA_CHECK(flush_zero());
    return rp_.finish();
  }

 protected:
  Result<> data(std::uint64_t src, std::uint64_t dst, std::uint64_t len) override {
    return rp_.push(Extent{src, dst, len, 0});
  }
  Result<> zero(std::uint64_t dst, std::uint64_t len) override {
    return rp_.push_marker(dst, len);
  }

 private:
  ReadPipeline rp_;
  StreamWriter& out_;
  std::atomic<std::uint64_t>* done_;
};

struct Prepared {
  StreamHeader header;
  std::uint64_t block_bytes = 0;
  std::uint64_t nr_blocks = 0;
};

Result<Prepared> prepare(const thin::Metadata& md, const SendRequest& req) {
  Prepared p;
  if (req.size_bytes == 0 || req.size_bytes % 512)
    return fail(Errc::kInvalidArgument, "the device size must be a positive number of sectors");
  p.block_bytes = std::uint64_t{md.sb().data_block_size} * 512;
  if (!p.block_bytes) return fail(Errc::kBadFormat, "the superblock has no data block size");
  p.nr_blocks = (req.size_bytes + p.block_bytes - 1) / p.block_bytes;
  StreamHeader& h = p.header;
  h.virtual_size = req.size_bytes;
  h.data_block_sectors = md.sb().data_block_size;
  THINMETA_TRY(h.snap, device_identity(md, req.snap_id));
  if (req.base_id) {
    THINMETA_TRY(h.base, device_identity(md, *req.base_id));
    h.flags |= kIncremental;
  }
  if (req.mapped_only) h.flags |= kMappedOnly;
  if (req.resume) {
    const ResumeToken& t = *req.resume;
    if (t.snap_digest != h.snap.digest() || t.base_digest != (req.base_id ? h.base.digest() : 0) ||
        (t.flags & (kIncremental | kMappedOnly)) != (h.flags & (kIncremental | kMappedOnly)))
      return fail(Errc::kInvalidArgument,
                  "the resume token is for another stream (other snapshot, base or "
                  "--mapped-only), or the snapshot has changed since");
    if (t.offset > req.size_bytes || t.offset % 512)
      return fail(Errc::kInvalidArgument, "the resume token's offset is past the device size");
    h.flags |= kResumed;
    h.resume_offset = t.offset;
  }
  return p;
}

}  // namespace

Result<SendStats> plan_stream(const thin::Metadata& md, const SendRequest& req) {
  THINMETA_TRY(Prepared p, prepare(md, req));
  Counter c(p.block_bytes, req.size_bytes, p.header.resume_offset, req.mapped_only);
  THINMETA_CHECK(thin::plan_copy(md.io(), md.mapping_root(), req.snap_id, req.base_id,
                                 p.nr_blocks, c));
  THINMETA_CHECK(c.flush_zero());
  return c.stats();
}

Result<SendStats> send_stream(const thin::Metadata& md, const DataDevice& data,
                              const SendRequest& req, int fd,
                              std::atomic<std::uint64_t>* data_done) {
  THINMETA_TRY(Prepared p, prepare(md, req));
  StreamWriter out(fd);
  THINMETA_CHECK(out.header(p.header));
  SendStats stats;
  {
    Sender s(p.block_bytes, req, p.header.resume_offset, data, out, data_done);
    THINMETA_CHECK(thin::plan_copy(md.io(), md.mapping_root(), req.snap_id, req.base_id,
                                   p.nr_blocks, s));
    THINMETA_CHECK(s.finish());
    stats = s.stats();
  }
  THINMETA_CHECK(out.end());
  stats.stream_bytes = out.bytes();
  return stats;
}

}  // namespace thinmeta::dataplane
