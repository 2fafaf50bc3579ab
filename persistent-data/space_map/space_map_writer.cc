// SPDX-License-Identifier: GPL-3.0-or-later
#include "persistent-data/space_map/space_map_writer.h"

#include <cassert>
#include <vector>

#include "persistent-data/btree/btree_builder.h"
#include "persistent-data/checksum.h"
#include "persistent-data/endian.h"

namespace thinmeta::pdata {

namespace {

constexpr std::uint32_t kIndexValueSize = 16;
constexpr std::uint32_t kCountValueSize = 4;

// Streams the counts into bitmap blocks, one after another; returns their index entries.
std::vector<IndexEntry> write_bitmaps(BlockWriter& w, const CountSource& counts,
                                      std::uint64_t nr_blocks) {
  std::uint64_t nb = nr_bitmaps(nr_blocks);
  std::vector<IndexEntry> index(nb);
  std::uint64_t cur = 0;
  std::uint8_t* bm = nullptr;
  std::uint64_t used = 0, next_free = 0;
  bool gap = false;
  auto open = [&](std::uint64_t i) {
    bm = w.alloc(index[i].blocknr);
    store_le64(bm + 8, index[i].blocknr);
    used = next_free = 0;
    gap = false;
  };
  auto close = [&](std::uint64_t i) {
    // The kernel's nr_free (FORMAT.md 7.2): the whole bitmap block, the tail past nr_blocks
    // included. The kernel never adds the entries a grown device gains to an existing bitmap's
    // nr_free and skips a bitmap whose nr_free is 0, so the exact count would leave the grown
    // tail of the last bitmap unallocatable (out of space with free blocks: kernel tier, lvm2).
    index[i].nr_free = static_cast<std::uint32_t>(kEntriesPerBitmap - used);
    index[i].none_free_before = static_cast<std::uint32_t>(next_free);
    stamp_checksum(bm, BlockKind::kBitmap);
  };
  if (nb == 0) return index;
  open(0);
  counts.for_each_run([&](std::uint64_t b, std::uint64_t len, std::uint32_t c) {
    assert(b + len <= nr_blocks);
    unsigned v = c >= 3 ? 3 : c;
    while (len) {
      std::uint64_t i = b / kEntriesPerBitmap;
      while (cur < i) {
        close(cur);
        open(++cur);
      }
      std::uint64_t e = b % kEntriesPerBitmap;
      std::uint64_t n = std::min(len, kEntriesPerBitmap - e);
      fill_bitmap_entries(bm, e, n, v);
      used += n;
      if (!gap) {
        if (e == next_free)
          next_free += n;
        else
          gap = true;
      }
      b += n;
      len -= n;
    }
  });
  close(cur);
  while (++cur < nb) {
    open(cur);
    close(cur);
  }
  return index;
}

BlockAddr write_overflow_tree(BlockWriter& w, const CountSource& counts) {
  BtreeBuilder tree(w, kCountValueSize);
  if (counts.nr_overflow())
    counts.for_each_run([&](std::uint64_t b, std::uint64_t len, std::uint32_t c) {
      if (c >= 3) tree.add_u32_run(b, c, len);
    });
  return tree.finish();
}

}  // namespace

std::uint64_t data_space_map_blocks(std::uint64_t nr_blocks, std::uint64_t nr_overflow) {
  std::uint64_t nb = nr_bitmaps(nr_blocks);
  return nb + tree_nodes(nb, kIndexValueSize) + tree_nodes(nr_overflow, kCountValueSize);
}

std::uint64_t metadata_space_map_blocks(std::uint64_t nr_blocks, std::uint64_t nr_overflow) {
  return nr_bitmaps(nr_blocks) + 1 + tree_nodes(nr_overflow, kCountValueSize);
}

SmRoot write_data_space_map(BlockWriter& w, const CountSource& counts, std::uint64_t nr_blocks) {
  SmRoot root;
  root.nr_blocks = nr_blocks;
  root.nr_allocated = counts.nr_nonzero();
  std::vector<IndexEntry> index = write_bitmaps(w, counts, nr_blocks);
  BtreeBuilder tree(w, kIndexValueSize);
  std::uint8_t v[kIndexValueSize];
  for (std::uint64_t i = 0; i < index.size(); ++i) {
    encode_index_entry(index[i], v);
    tree.add(i, v);
  }
  root.bitmap_root = tree.finish();
  root.ref_count_root = write_overflow_tree(w, counts);
  return root;
}

SmRoot write_metadata_space_map(BlockWriter& w, const CountSource& counts, std::uint64_t nr_blocks) {
  assert(nr_blocks <= kMaxMetadataBlocks);
  SmRoot root;
  root.nr_blocks = nr_blocks;
  root.nr_allocated = counts.nr_nonzero();
  std::vector<IndexEntry> index = write_bitmaps(w, counts, nr_blocks);
  root.ref_count_root = write_overflow_tree(w, counts);
  std::uint8_t* p = w.alloc(root.bitmap_root);
  store_le64(p + 8, root.bitmap_root);
  for (std::size_t i = 0; i < index.size(); ++i)
    encode_index_entry(index[i], p + 16 + kIndexEntrySize * i);
  stamp_checksum(p, BlockKind::kIndex);
  return root;
}

}  // namespace thinmeta::pdata
