// SPDX-License-Identifier: GPL-3.0-or-later
// Metadata blocks: 4 KiB, addressed by a u64 block number (FORMAT.md §0, §2).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <cstring>
#include <new>

namespace thinmeta::pdata {

using BlockAddr = std::uint64_t;
inline constexpr std::size_t kBlockSize = 4096;
inline constexpr unsigned kSectorsPerBlock = 8;
inline constexpr BlockAddr kMaxMetadataBlocks = 255ull * 16320ull;  // 4,161,600: one index block

struct FreeDeleter {
  void operator()(std::uint8_t* p) const { std::free(p); }
};

// A run of nr whole blocks, aligned for O_DIRECT. Contents start zeroed (resize) or
// undefined (resize_for_reads).
class AlignedBuffer {
 public:
  AlignedBuffer() = default;
  explicit AlignedBuffer(std::size_t nr_blocks) { resize(nr_blocks); }
  void resize(std::size_t nr_blocks) { grow(nr_blocks, true); }
  // For buffers only ever read into, whose blocks are looked at once read: no zeroing pass
  // (zeroing fresh batch buffers was ~4% of a warm check's CPU).
  void resize_for_reads(std::size_t nr_blocks) { grow(nr_blocks, false); }
  std::uint8_t* data() { return data_.get(); }
  const std::uint8_t* data() const { return data_.get(); }
  std::uint8_t* block(std::size_t i) { return data_.get() + i * kBlockSize; }
  const std::uint8_t* block(std::size_t i) const { return data_.get() + i * kBlockSize; }
  std::size_t capacity() const { return capacity_; }

 private:
  void grow(std::size_t nr_blocks, bool zero) {
    if (nr_blocks <= capacity_) return;
    void* p = std::aligned_alloc(kBlockSize, nr_blocks * kBlockSize);
    if (!p) throw std::bad_alloc();
    if (zero) std::memset(p, 0, nr_blocks * kBlockSize);
    data_.reset(static_cast<std::uint8_t*>(p));
    capacity_ = nr_blocks;
  }

  std::unique_ptr<std::uint8_t, FreeDeleter> data_;
  std::size_t capacity_ = 0;
};

}  // namespace thinmeta::pdata
