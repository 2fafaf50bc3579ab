// SPDX-License-Identifier: GPL-3.0-or-later
#include "persistent-data/block_writer.h"

#include <cstring>

namespace thinmeta::pdata {

BlockWriter::BlockWriter(IoEngine* io, BlockAddr first, BlockAddr limit, std::size_t batch_blocks)
    : io_(io), next_(first), limit_(limit), batch_(io ? batch_blocks : 1), buf_(batch_) {
  addrs_.reserve(batch_);
}

std::uint8_t* BlockWriter::alloc(BlockAddr& addr) {
  addr = next_++;
  if (addr >= limit_ && !error_)
    error_ = Error{Errc::kNoSpace, "out of metadata space (block " + std::to_string(addr) +
                                       " is beyond the end of the metadata device)"};
  if (!io_ || error_) {
    std::memset(buf_.data(), 0, kBlockSize);
    return buf_.data();
  }
  if (addrs_.size() == batch_) drain();
  std::uint8_t* p = buf_.block(addrs_.size());
  std::memset(p, 0, kBlockSize);
  addrs_.push_back(addr);
  return p;
}

void BlockWriter::drain() {
  if (addrs_.empty()) return;
  if (!error_)
    if (auto r = io_->write_many(addrs_, buf_.data()); !r) error_ = r.error();
  addrs_.clear();
}

Result<> BlockWriter::finish() {
  if (io_) drain();
  if (error_) return std::unexpected(*error_);
  return {};
}

}  // namespace thinmeta::pdata
