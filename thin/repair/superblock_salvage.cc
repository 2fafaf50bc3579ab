// SPDX-License-Identifier: GPL-3.0-or-later
#include "thin/repair/superblock_salvage.h"

#include "persistent-data/checksum.h"
#include "thin/allocation_view.h"

namespace thinmeta::thin {

using namespace thinmeta::pdata;

namespace {

bool valid_block(IoEngine& io, BlockAddr b, BlockKind kind) {
  if (b == 0 || b >= io.nr_blocks()) return false;
  AlignedBuffer buf(1);
  return io.read(b, buf.data()) && !validate_block(buf.data(), b, kind);
}

bool legal_data_block_size(std::uint32_t s) {
  return s >= kMinDataBlockSize && s <= kMaxDataBlockSize && s % kMinDataBlockSize == 0;
}

}  // namespace

std::optional<SalvagedSuperblock> salvage_superblock(IoEngine& io, std::vector<std::string>& notes) {
  AlignedBuffer buf(1);
  if (io.nr_blocks() == 0 || !io.read(0, buf.data())) return std::nullopt;
  Superblock raw = decode_superblock(buf.data());
  int marks = (raw.magic == kSuperblockMagic) + (raw.blocknr == 0) +
              (raw.version == 1 || raw.version == 2) + (raw.metadata_block_size == kSectorsPerBlock);
  if (marks < 2) return std::nullopt;
  SalvagedSuperblock s;
  s.sb = raw;
  s.sb.flags = 0;
  s.sb.incompat_flags = s.sb.compat_flags = s.sb.compat_ro_flags = 0;
  std::optional<Superblock> held;
  if (raw.held_root && raw.held_root < io.nr_blocks())
    if (auto h = read_superblock(io, raw.held_root)) held = *h;
  if (!held) s.sb.held_root = 0;
  if (!valid_block(io, raw.metadata_sm.bitmap_root, BlockKind::kIndex) ||
      raw.metadata_sm.nr_blocks == 0 || raw.metadata_sm.nr_blocks > io.nr_blocks())
    s.sb.metadata_sm = SmRoot{};
  // A root the metadata space map counts free is an old copy (a damaged pointer that happens
  // to land on one): left to the search for the trees. But the space map's own root may be
  // the damaged field, landing on an old index block that copy-on-write left behind (one in
  // every few blocks of a kernel-written device): that old map counts today's blocks free.
  // One damaged field spoils one pointer, so when the map disowns two or more of the
  // superblock's other pointers, the map is the damaged one and is not used.
  if (s.sb.metadata_sm.bitmap_root) {
    if (auto v = AllocationView::read(io, s.sb.metadata_sm.bitmap_root, s.sb.metadata_sm.nr_blocks)) {
      const BlockAddr pointers[] = {raw.data_mapping_root, raw.device_details_root,
                                    raw.data_sm.bitmap_root, raw.data_sm.ref_count_root,
                                    raw.metadata_sm.ref_count_root, s.sb.held_root};
      int disowned = 0;
      for (BlockAddr p : pointers)
        disowned += p && v->state(p) == AllocationView::kFree;
      if (disowned >= 2) {
        notes.push_back("metadata space map root " + std::to_string(raw.metadata_sm.bitmap_root) +
                        " is an older copy (it counts " + std::to_string(disowned) +
                        " of the superblock's blocks free); not used");
        s.sb.metadata_sm = SmRoot{};
      } else {
        for (BlockAddr* r : {&s.sb.data_mapping_root, &s.sb.device_details_root})
          if (v->state(*r) != AllocationView::kAllocated) *r = 0;
      }
    }
  }
  if (held && legal_data_block_size(held->data_block_size)) {
    if (raw.data_block_size != held->data_block_size)
      notes.push_back("data block size " + std::to_string(held->data_block_size) +
                      " taken from the metadata snapshot's copy of the superblock");
    s.sb.data_block_size = held->data_block_size;
    s.data_block_size_known = true;
  } else if (legal_data_block_size(raw.data_block_size)) {
    s.data_block_size_known = true;
  } else {
    s.sb.data_block_size = 0;
  }
  return s;
}

}  // namespace thinmeta::thin
