// SPDX-License-Identifier: GPL-3.0-or-later
#include "data-plane/receive.h"

#include "data-plane/data_device.h"
#include "data-plane/stream_io.h"

namespace thinmeta::dataplane {

namespace {

using Failed = std::unexpected<ReceiveFailure>;

Failed failed(Error e, std::optional<std::string> token = std::nullopt) {
  return Failed(ReceiveFailure{std::move(e), std::move(token)});
}

std::string describe_state(const std::optional<TargetState>& s) {
  if (!s) return "nothing received before";
  if (s->holds) return "it holds " + s->holds->describe();
  if (s->partial_snap) return "an interrupted receive of " + s->partial_snap->describe();
  return "nothing complete";
}

// Whether the stream may be applied onto what the target holds. Error: one line.
Result<> check_base(const StreamHeader& h, const std::optional<TargetState>& s,
                    const std::string& target, bool file_changed) {
  if (!h.incremental() && !h.resumed()) return {};
  if (file_changed)
    return fail(Errc::kInvalidArgument, "'" + target + "' was changed since the last receive: "
                                        "refusing to apply an incremental or resumed stream (--force applies it anyway)");
  std::uint32_t kinds = h.flags & (kIncremental | kMappedOnly);
  if (h.resumed()) {
    if (!s || !s->partial_snap || *s->partial_snap != h.snap || s->partial_base != h.base ||
        s->partial_flags != kinds || s->partial_below < h.resume_offset)
      return fail(Errc::kInvalidArgument,
                  "the resumed stream does not continue the receive interrupted on '" + target +
                      "' (" + describe_state(s) + "; --force applies it anyway)");
    return {};
  }
  if (!s || !s->holds || *s->holds != h.base)
    return fail(Errc::kInvalidArgument,
                "'" + target + "' does not hold the base of this incremental stream (" +
                    h.base.describe() + "): " + describe_state(s) + " (--force applies it anyway)");
  return {};
}

}  // namespace

std::expected<ReceiveResult, ReceiveFailure> receive_stream(const ReceiveOptions& opts, int in_fd,
                                                            std::atomic<std::uint64_t>* bytes_done) {
  StreamReader in(in_fd, opts.stop);
  auto hdr = in.header();
  if (!hdr) return failed(hdr.error());
  ReceiveResult res;
  res.header = *hdr;
  const StreamHeader& h = *hdr;

  // The target: opened (created for a missing file) only after the header has been verified.
  DeviceOptions dopts;
  dopts.writable = !opts.dry_run;
  dopts.exclusive = true;
  dopts.create_size = opts.dry_run ? 0 : h.virtual_size;
  std::unique_ptr<DataDevice> dev;
  if (auto d = DataDevice::open(opts.target, dopts)) {
    dev = std::move(*d);
  } else if (!(opts.dry_run && d.error().code == Errc::kNotFound)) {
    return failed(d.error());
  }
  res.created = dev && dev->created();
  if (dev && dev->is_block_device() && dev->size_bytes() < h.virtual_size)
    return failed(Error{Errc::kTooSmall, "'" + opts.target + "' is smaller (" +
                                            std::to_string(dev->size_bytes()) +
                                            " bytes) than the stream's device (" +
                                            std::to_string(h.virtual_size) + " bytes)"});

  StateStore store(opts.state_dir);
  std::string key;
  std::optional<TargetState> state;
  bool file_changed = false;
  if (dev) {
    key = StateStore::key(*dev);
    if (!res.created) {
      auto st = store.load(key);
      if (!st) {
        if (!opts.force) return failed(st.error());
      } else {
        state = *st;
      }
      if (state && !dev->is_block_device() && state->file_mtime_ns) {
        auto stamp = file_stamp(opts.target);
        if (!stamp) return failed(stamp.error());
        file_changed = stamp->first != state->file_size || stamp->second != state->file_mtime_ns;
      }
    }
  }
  if (!opts.force) {
    if (!dev && (h.incremental() || h.resumed()))
      return failed(Error{Errc::kNotFound, "Couldn't find '" + opts.target +
                                               "': an incremental or resumed stream needs its base"});
    if (auto ok = check_base(h, state, opts.target, file_changed); !ok) {
      if (res.created) ::unlink(opts.target.c_str());
      return failed(ok.error());
    }
  }

  std::uint32_t kinds = h.flags & (kIncremental | kMappedOnly);
  auto token_at = [&](std::uint64_t offset) {
    ResumeToken t;
    t.flags = kinds;
    t.offset = offset;
    t.base_digest = h.incremental() ? h.base.digest() : 0;
    t.snap_digest = h.snap.digest();
    return t.encode();
  };

  if (opts.dry_run) {
    // Every record read and verified; nothing written.
    std::vector<std::uint8_t> buf;
    for (;;) {
      auto r = in.next();
      if (!r) return failed(r.error());
      if (bytes_done) bytes_done->store(in.bytes(), std::memory_order_relaxed);
      if (r->type == RecordType::kEnd) break;
      if (r->type == RecordType::kData) {
        buf.resize(static_cast<std::size_t>(r->length));
        if (auto ok = in.payload(buf.data()); !ok) return failed(ok.error());
      }
    }
    res.counts = in.counts();
    res.stream_bytes = in.bytes();
    return res;
  }

  // Before the first write: the target no longer holds what the state says.
  TargetState ts;
  ts.path = opts.target;
  ts.partial_snap = h.snap;
  ts.partial_base = h.base;
  ts.partial_flags = kinds;
  ts.partial_below = h.resume_offset;
  if (auto ok = store.save(key, ts); !ok) {
    if (res.created) ::unlink(opts.target.c_str());
    return failed(ok.error());
  }
  if (!dev->is_block_device() && dev->size_bytes() != h.virtual_size)
    if (auto ok = dev->truncate(h.virtual_size); !ok) return failed(ok.error());

  WritePipeline wp(*dev, opts.copier);
  Error stream_error;
  bool stream_failed = false;
  std::uint64_t applied = h.resume_offset;  // every record below has been handed to wp
  for (;;) {
    auto r = in.next();
    if (!r) {
      stream_error = r.error();
      stream_failed = true;
      break;
    }
    if (r->type == RecordType::kEnd) break;
    Result<> ok;
    if (r->type == RecordType::kData) {
      auto buf = wp.buffer(static_cast<std::size_t>(r->length));
      if (!buf) return failed(buf.error());
      if (auto p = in.payload(*buf); !p) {
        stream_error = p.error();
        stream_failed = true;
        break;
      }
      ok = wp.write(r->offset, static_cast<std::size_t>(r->length));
    } else {
      ok = wp.make_zero(r->offset, r->length, opts.discard_block_bytes);
    }
    if (!ok) {
      (void)wp.finish();
      return failed(ok.error());  // the target failed: the state stays "interrupted, below resume_offset"
    }
    applied = r->offset + r->length;
    if (bytes_done) bytes_done->store(in.bytes(), std::memory_order_relaxed);
  }
  if (auto ok = wp.finish(); !ok) return failed(ok.error());
  if (auto ok = dev->sync(); !ok) return failed(ok.error());

  if (stream_failed) {
    ts.partial_below = applied;
    if (auto ok = store.save(key, ts); !ok) return failed(stream_error);
    return failed(stream_error, token_at(applied));
  }

  TargetState done;
  done.path = opts.target;
  done.holds = h.snap;
  if (!dev->is_block_device()) {
    auto stamp = file_stamp(opts.target);
    if (!stamp) return failed(stamp.error());
    done.file_size = stamp->first;
    done.file_mtime_ns = stamp->second;
  }
  if (auto ok = store.save(key, done); !ok) return failed(ok.error());
  res.counts = in.counts();
  res.stream_bytes = in.bytes();
  return res;
}

}  // namespace thinmeta::dataplane
