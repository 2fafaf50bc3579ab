// SPDX-License-Identifier: GPL-3.0-or-later
#include "persistent-data/io/block_writer.h"

#include <cstring>

namespace thinmeta::pdata {

BlockWriter::BlockWriter(IoEngine* io, BlockAddr first, BlockAddr limit, std::size_t batch_blocks)
    : io_(io), next_(first), limit_(limit), batch_(io ? batch_blocks : 1) {
  bufs_[0].resize(batch_);
  if (io_) bufs_[1].resize(batch_);
  addrs_[0].reserve(batch_);
  addrs_[1].reserve(batch_);
}

BlockWriter::~BlockWriter() { wait(); }

std::uint8_t* BlockWriter::alloc(BlockAddr& addr) {
  addr = next_++;
  if (addr >= limit_ && !error_)
    error_ = Error{Errc::kNoSpace, "out of metadata space (block " + std::to_string(addr) +
                                       " is beyond the end of the metadata device)"};
  if (!io_ || error_) {
    std::memset(bufs_[cur_].data(), 0, kBlockSize);
    return bufs_[cur_].data();
  }
  if (addrs_[cur_].size() == batch_) drain();
  std::uint8_t* p = bufs_[cur_].block(addrs_[cur_].size());
  std::memset(p, 0, kBlockSize);
  addrs_[cur_].push_back(addr);
  return p;
}

void BlockWriter::wait() {
  if (!writing_.valid()) return;
  if (auto r = writing_.get(); !r && !error_) error_ = r.error();
}

void BlockWriter::drain() {
  wait();  // the other buffer is free again
  std::vector<BlockAddr>& addrs = addrs_[cur_];
  if (addrs.empty()) return;
  if (error_) {
    addrs.clear();
    return;
  }
  const std::uint8_t* data = bufs_[cur_].data();
  writing_ = on_helper([this, &addrs, data] { return io_->write_many(addrs, data); });
  cur_ ^= 1;
  addrs_[cur_].clear();
}

Result<> BlockWriter::finish() {
  if (io_) {
    drain();
    wait();
  }
  if (error_) return std::unexpected(*error_);
  return {};
}

}  // namespace thinmeta::pdata
