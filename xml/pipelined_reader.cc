// SPDX-License-Identifier: GPL-3.0-or-later
// read_metadata_pipelined: the fast reader on a helper thread, its events handed over in
// chunks to the caller's thread, which feeds the sink: parsing and what the sink does with
// each mapping (counting, building leaves) run on both cores at once.
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

#include "xml/fast_reader.h"

namespace thinmeta::xml {

namespace {

enum class Kind : std::uint8_t {
  kBeginSuperblock, kEndSuperblock, kBeginDevice, kEndDevice, kMap, kBeginDef, kEndDef, kRef
};

struct Event {
  Kind kind;
  std::uint32_t index;  // into the chunk's superblocks / devices / names
  thin::MappingRun run;
};

struct Chunk {
  std::vector<Event> events;
  std::vector<thin::SuperblockInfo> superblocks;
  std::vector<thin::DeviceInfo> devices;
  std::vector<std::string> names;
  void clear() {
    events.clear();
    superblocks.clear();
    devices.clear();
    names.clear();
  }
};

constexpr std::size_t kChunkEvents = 4096;
constexpr std::size_t kChunksInFlight = 4;

// The hand-over between the two threads: full chunks one way, empty ones back.
class Channel {
 public:
  Channel() {
    for (std::size_t i = 0; i < kChunksInFlight; ++i) empty_.push_back(std::make_unique<Chunk>());
  }
  std::unique_ptr<Chunk> take_empty() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return !empty_.empty() || stop_; });
    if (stop_) return nullptr;
    auto c = std::move(empty_.front());
    empty_.pop_front();
    return c;
  }
  void give_full(std::unique_ptr<Chunk> c) {
    std::lock_guard<std::mutex> lock(mu_);
    full_.push_back(std::move(c));
    cv_.notify_all();
  }
  // nullptr once the producer is done and everything was taken.
  std::unique_ptr<Chunk> take_full() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return !full_.empty() || done_; });
    if (full_.empty()) return nullptr;
    auto c = std::move(full_.front());
    full_.pop_front();
    return c;
  }
  void give_empty(std::unique_ptr<Chunk> c) {
    c->clear();
    std::lock_guard<std::mutex> lock(mu_);
    empty_.push_back(std::move(c));
    cv_.notify_all();
  }
  void finish(Result<bool> r) {
    std::lock_guard<std::mutex> lock(mu_);
    result_ = std::move(r);
    done_ = true;
    cv_.notify_all();
  }
  void stop() {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
    cv_.notify_all();
  }
  bool stopped() {
    std::lock_guard<std::mutex> lock(mu_);
    return stop_;
  }
  Result<bool> result() {
    std::lock_guard<std::mutex> lock(mu_);
    return result_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::unique_ptr<Chunk>> empty_, full_;
  bool done_ = false, stop_ = false;
  Result<bool> result_ = false;
};

// The producer's sink: records events into chunks.
class Recorder final : public thin::MetadataSink {
 public:
  explicit Recorder(Channel& ch) : ch_(ch) {}

  Result<> begin_superblock(const thin::SuperblockInfo& sb) override {
    THINMETA_CHECK(room());
    cur_->superblocks.push_back(sb);
    return push(Kind::kBeginSuperblock, cur_->superblocks.size() - 1);
  }
  Result<> end_superblock() override { return simple(Kind::kEndSuperblock); }
  Result<> begin_device(const thin::DeviceInfo& d) override {
    THINMETA_CHECK(room());
    cur_->devices.push_back(d);
    return push(Kind::kBeginDevice, cur_->devices.size() - 1);
  }
  Result<> end_device() override { return simple(Kind::kEndDevice); }
  Result<> map(const thin::MappingRun& run) override {
    THINMETA_CHECK(room());
    cur_->events.push_back(Event{Kind::kMap, 0, run});
    return {};
  }
  Result<> begin_def(std::string_view name) override { return named(Kind::kBeginDef, name); }
  Result<> end_def() override { return simple(Kind::kEndDef); }
  Result<> ref(std::string_view name) override { return named(Kind::kRef, name); }

  void flush() {
    if (cur_ && !cur_->events.empty()) ch_.give_full(std::move(cur_));
  }

 private:
  // A chunk with room for one more event; an error once the consumer has stopped.
  Result<> room() {
    if (cur_ && cur_->events.size() == kChunkEvents) flush();
    if (!cur_) cur_ = ch_.take_empty();
    if (!cur_) return fail(Errc::kInvalidArgument, "stopped");
    return {};
  }
  Result<> push(Kind k, std::size_t index) {
    cur_->events.push_back(Event{k, static_cast<std::uint32_t>(index), {}});
    return {};
  }
  Result<> simple(Kind k) {
    THINMETA_CHECK(room());
    return push(k, 0);
  }
  Result<> named(Kind k, std::string_view name) {
    THINMETA_CHECK(room());
    cur_->names.emplace_back(name);
    return push(k, cur_->names.size() - 1);
  }

  Channel& ch_;
  std::unique_ptr<Chunk> cur_;
};

Result<> replay(const Chunk& c, thin::MetadataSink& sink) {
  for (const Event& e : c.events) {
    switch (e.kind) {
      case Kind::kMap: THINMETA_CHECK(sink.map(e.run)); break;
      case Kind::kBeginSuperblock: THINMETA_CHECK(sink.begin_superblock(c.superblocks[e.index])); break;
      case Kind::kEndSuperblock: THINMETA_CHECK(sink.end_superblock()); break;
      case Kind::kBeginDevice: THINMETA_CHECK(sink.begin_device(c.devices[e.index])); break;
      case Kind::kEndDevice: THINMETA_CHECK(sink.end_device()); break;
      case Kind::kBeginDef: THINMETA_CHECK(sink.begin_def(c.names[e.index])); break;
      case Kind::kEndDef: THINMETA_CHECK(sink.end_def()); break;
      case Kind::kRef: THINMETA_CHECK(sink.ref(c.names[e.index])); break;
    }
  }
  return {};
}

}  // namespace

Result<bool> read_metadata_pipelined(int fd, thin::MetadataSink& sink) {
  Channel ch;
  std::thread producer([&] {
    Recorder rec(ch);
    Result<bool> r = read_metadata_fast(fd, rec);
    rec.flush();
    ch.finish(std::move(r));
  });
  bool sink_failed = false;
  while (auto chunk = ch.take_full()) {
    if (!sink_failed && !replay(*chunk, sink)) {
      sink_failed = true;  // the fast reader's rule: any sink error declines
      ch.stop();
    }
    ch.give_empty(std::move(chunk));
  }
  producer.join();
  if (sink_failed) return false;
  return ch.result();
}

}  // namespace thinmeta::xml
