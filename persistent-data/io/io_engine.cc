// SPDX-License-Identifier: GPL-3.0-or-later
#include "persistent-data/io/io_engine.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace thinmeta::pdata {

Result<> IoEngine::read(BlockAddr addr, std::uint8_t* buf) {
  int err = 0;
  read_many(std::span<const BlockAddr>(&addr, 1), buf, std::span<int>(&err, 1));
  if (err)
    return fail(Errc::kIo, "read of metadata block " + std::to_string(addr) +
                               " failed: " + std::strerror(err));
  return {};
}

Result<> IoEngine::write(BlockAddr addr, const std::uint8_t* buf) {
  return write_many(std::span<const BlockAddr>(&addr, 1), buf);
}

EngineKind engine_from_env() {
  const char* e = std::getenv("THINMETA_IO_ENGINE");
  if (!e) return EngineKind::kAuto;
  std::string s(e);
  if (s == "sync") return EngineKind::kSync;
  if (s == "aio") return EngineKind::kAio;
  if (s == "libaio") return EngineKind::kLibaio;
  if (s == "mmap") return EngineKind::kMmap;
  return EngineKind::kAuto;
}

Result<> check_engine_env() {
  const char* e = std::getenv("THINMETA_IO_ENGINE");
  if (!e || !*e) return {};
  std::string s(e);
  if (s == "sync" || s == "aio" || s == "libaio" || s == "mmap") return {};
  return fail(Errc::kInvalidArgument, "THINMETA_IO_ENGINE='" + s +
                                          "' is not an I/O engine: use sync, aio, libaio or mmap");
}

namespace {

class MemoryEngine final : public IoEngine {
 public:
  explicit MemoryEngine(BlockAddr nr) : nr_(nr), data_(nr * kBlockSize, 0) {}
  BlockAddr nr_blocks() const override { return nr_; }
  bool parallel_reads() const override { return true; }  // reads only copy out
  void read_many(std::span<const BlockAddr> addrs, std::uint8_t* bufs,
                 std::span<int> errs) override {
    for (std::size_t i = 0; i < addrs.size(); ++i) {
      if (addrs[i] >= nr_) {
        errs[i] = EINVAL;
        continue;
      }
      std::memcpy(bufs + i * kBlockSize, data_.data() + addrs[i] * kBlockSize, kBlockSize);
      errs[i] = 0;
    }
  }
  Result<> write_many(std::span<const BlockAddr> addrs, const std::uint8_t* bufs) override {
    for (std::size_t i = 0; i < addrs.size(); ++i) {
      if (addrs[i] >= nr_)
        return fail(Errc::kIo, "write beyond the end of the metadata (block " +
                                   std::to_string(addrs[i]) + ")");
      std::memcpy(data_.data() + addrs[i] * kBlockSize, bufs + i * kBlockSize, kBlockSize);
    }
    return {};
  }
  Result<> flush() override { return {}; }

 private:
  BlockAddr nr_;
  std::vector<std::uint8_t> data_;
};

}  // namespace

std::unique_ptr<IoEngine> make_memory_engine(BlockAddr nr_blocks) {
  return std::make_unique<MemoryEngine>(nr_blocks);
}

}  // namespace thinmeta::pdata
