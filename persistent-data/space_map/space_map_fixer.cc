// SPDX-License-Identifier: GPL-3.0-or-later
#include "persistent-data/space_map/space_map_fixer.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <optional>

#include "persistent-data/btree/btree_walker.h"
#include "persistent-data/checksum.h"

namespace thinmeta::pdata {
namespace {

// Modified blocks, written together at the end.
struct Pending {
  std::map<BlockAddr, std::vector<std::uint8_t>> blocks;
  std::vector<std::uint8_t>& get(BlockAddr b) { return blocks[b]; }
};

Result<> read_copy(IoEngine& io, BlockAddr b, std::vector<std::uint8_t>& out) {
  AlignedBuffer buf(1);
  THINMETA_CHECK(io.read(b, buf.data()));
  out.assign(buf.data(), buf.data() + kBlockSize);
  return {};
}

// Walks a btree and hands each leaf holding one of `keys` to fn(addr, depth, bytes) for
// in-place editing.
template <typename Fn>
Result<> edit_leaves(IoEngine& io, BlockAddr root, std::uint32_t value_size,
                     const std::vector<std::uint64_t>& keys, Pending& pending, Fn fn) {
  struct V final : BtreeVisitor {
    Flow leaf(const NodeContext& c, const NodeView& n) override {
      if (!n.nr_entries()) return Flow::kContinue;
      auto lo = std::lower_bound(keys->begin(), keys->end(), n.key(0));
      if (lo == keys->end() || *lo > n.key(n.nr_entries() - 1)) return Flow::kContinue;
      auto& bytes = pending->get(c.addr);
      bytes.assign(n.raw(), n.raw() + kBlockSize);
      if (auto r = (*fn)(c.addr, c.depth, bytes.data()); !r) {
        err = r.error();
        return Flow::kStop;
      }
      stamp_checksum(bytes.data(), BlockKind::kNode);
      return Flow::kContinue;
    }
    Flow damage(const Damage& d) override {
      err = Error{Errc::kDamage, "cannot repair: " + d.what};
      return Flow::kStop;
    }
    const std::vector<std::uint64_t>* keys;
    Pending* pending;
    Fn* fn;
    std::optional<Error> err;
  } v;
  v.keys = &keys;
  v.pending = &pending;
  v.fn = &fn;
  WalkOptions o;
  o.leaf_value_size = value_size;
  walk_btree(io, root, o, v);
  if (v.err) return std::unexpected(*v.err);
  return {};
}

}  // namespace

Result<std::uint64_t> fix_counts(IoEngine& io, const SpaceMapReader& reader, const SmRoot& root,
                                 std::span<const CountFix> fixes) {
  Pending pending;
  std::map<std::uint64_t, std::uint64_t> freed_per_bitmap;         // index -> blocks freed
  std::map<std::uint64_t, std::uint64_t> first_freed;              // index -> lowest entry freed
  std::map<std::uint64_t, std::optional<std::uint32_t>> overflow;  // block -> new value / remove
  std::uint64_t freed = 0;

  for (const CountFix& f : fixes) {
    auto loc = reader.locate(f.block);
    if (!loc) return fail(Errc::kDamage, "cannot repair: no bitmap for block " + std::to_string(f.block));
    auto& bytes = pending.get(loc->bitmap_block);
    if (bytes.empty()) THINMETA_CHECK(read_copy(io, loc->bitmap_block, bytes));
    unsigned old = bitmap_entry(bytes.data(), loc->entry);
    unsigned now = std::min<std::uint32_t>(f.count, 3);
    if (old == 3 && f.count >= 3) overflow[f.block] = f.count;
    if (old == 3 && f.count < 3) overflow[f.block] = std::nullopt;
    set_bitmap_entry(bytes.data(), loc->entry, now);
    if (old && !now) {
      ++freed;
      ++freed_per_bitmap[loc->bitmap_index];
      auto [it, fresh] = first_freed.emplace(loc->bitmap_index, loc->entry);
      if (!fresh) it->second = std::min(it->second, loc->entry);
    }
  }
  for (auto& [b, bytes] : pending.blocks) stamp_checksum(bytes.data(), BlockKind::kBitmap);

  // Reference-count tree: update values, remove entries of blocks now below 3.
  if (!overflow.empty()) {
    std::vector<std::uint64_t> keys;
    for (auto& [k, v] : overflow) keys.push_back(k);
    std::size_t done = 0;
    THINMETA_CHECK(edit_leaves(io, root.ref_count_root, 4, keys, pending,
        [&](BlockAddr at, unsigned depth, std::uint8_t* b) -> Result<> {
          std::uint32_t nr = load_le32(b + 16), max = load_le32(b + 20);
          std::uint8_t* vals = b + 32 + 8ull * max;
          std::uint32_t out = 0;
          for (std::uint32_t i = 0; i < nr; ++i) {
            std::uint64_t k = load_le64(b + 32 + 8ull * i);
            std::uint32_t v = load_le32(vals + 4ull * i);
            if (auto it = overflow.find(k); it != overflow.end()) {
              ++done;
              if (!it->second) continue;
              v = *it->second;
            }
            store_le64(b + 32 + 8ull * out, k);
            store_le32(vals + 4ull * out, v);
            ++out;
          }
          if (depth > 0 && out < max / 3)
            return fail(Errc::kDamage,
                        "cannot repair in place: removing reference count entries would leave "
                        "btree node " + std::to_string(at) + " under-full");
          for (std::uint32_t i = out; i < nr; ++i) {
            store_le64(b + 32 + 8ull * i, 0);
            store_le32(vals + 4ull * i, 0);
          }
          store_le32(b + 16, out);
          return {};
        }));
    if (done != overflow.size())
      return fail(Errc::kDamage, "cannot repair: the reference count tree lacks entries");
  }

  // Index hints: more free entries, and none_free_before no higher than the first freed.
  auto adjust = [&](std::uint64_t i, std::uint8_t* e) {
    IndexEntry ie = decode_index_entry(e);
    ie.nr_free = static_cast<std::uint32_t>(
        std::min<std::uint64_t>(kEntriesPerBitmap, ie.nr_free + freed_per_bitmap[i]));
    ie.none_free_before =
        static_cast<std::uint32_t>(std::min<std::uint64_t>(ie.none_free_before, first_freed[i]));
    encode_index_entry(ie, e);
  };
  if (!freed_per_bitmap.empty()) {
    if (reader.kind() == SpaceMapKind::kMetadata) {
      auto& bytes = pending.get(root.bitmap_root);
      THINMETA_CHECK(read_copy(io, root.bitmap_root, bytes));
      for (auto& [i, n] : freed_per_bitmap) adjust(i, bytes.data() + 16 + kIndexEntrySize * i);
      stamp_checksum(bytes.data(), BlockKind::kIndex);
    } else {
      std::vector<std::uint64_t> keys;
      for (auto& [i, n] : freed_per_bitmap) keys.push_back(i);
      THINMETA_CHECK(edit_leaves(io, root.bitmap_root, kIndexEntrySize, keys, pending,
          [&](BlockAddr, unsigned, std::uint8_t* b) -> Result<> {
            std::uint32_t nr = load_le32(b + 16), max = load_le32(b + 20);
            for (std::uint32_t i = 0; i < nr; ++i) {
              std::uint64_t k = load_le64(b + 32 + 8ull * i);
              if (freed_per_bitmap.count(k)) adjust(k, b + 32 + 8ull * max + kIndexEntrySize * i);
            }
            return {};
          }));
    }
  }

  AlignedBuffer buf(1);
  for (auto& [b, bytes] : pending.blocks) {
    std::memcpy(buf.data(), bytes.data(), kBlockSize);
    THINMETA_CHECK(io.write(b, buf.data()));
  }
  THINMETA_CHECK(io.flush());
  return freed;
}

}  // namespace thinmeta::pdata
