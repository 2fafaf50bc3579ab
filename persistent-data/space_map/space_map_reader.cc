// SPDX-License-Identifier: GPL-3.0-or-later
#include "persistent-data/space_map/space_map_reader.h"

#include <algorithm>
#include <cstring>

#include "persistent-data/btree/btree_walker.h"
#include "persistent-data/checksum.h"
#include "persistent-data/helper_thread.h"

namespace thinmeta::pdata {
namespace {

constexpr std::uint32_t kPending = 0xFFFFFFFFu;  // bitmap said 3, tree entry not seen yet
constexpr std::uint32_t kRefCountValueSize = 4;
constexpr std::uint32_t kIndexValueSize = 16;
constexpr std::size_t kBitmapBatch = 64;

// The four entries of a bitmap byte as counts (an entry's first bit is its high bit), 3 as
// kPending.
struct Decode {
  std::uint32_t v[256][4];
  constexpr Decode() : v{} {
    for (unsigned x = 0; x < 256; ++x)
      for (unsigned k = 0; k < 4; ++k) {
        unsigned c = ((x >> (2 * k)) & 1) << 1 | ((x >> (2 * k + 1)) & 1);
        v[x][k] = c == 3 ? kPending : c;
      }
  }
};
constexpr Decode kDecode;
static_assert(kEntriesPerBitmap % 32 == 0);

std::string blk(BlockAddr b) { return "(block " + std::to_string(b) + ")"; }

// Adapts walk_btree to lambdas.
template <typename Enter, typename Leaf, typename Dmg>
class FnVisitor final : public BtreeVisitor {
 public:
  FnVisitor(Enter e, Leaf l, Dmg d) : e_(e), l_(l), d_(d) {}
  bool enter(const NodeContext& c) override { return e_(c); }
  Flow leaf(const NodeContext& c, const NodeView& n) override { return l_(c, n); }
  Flow damage(const Damage& d) override { return d_(d); }

 private:
  Enter e_;
  Leaf l_;
  Dmg d_;
};

}  // namespace

SpaceMapReader::SpaceMapReader(IoEngine& io, const SmRoot& root, SpaceMapKind kind,
                               BlockAddr nr_metadata_blocks, SpaceMapVisitor& v)
    : io_(io), root_(root), kind_(kind), nr_meta_(std::min(nr_metadata_blocks, io.nr_blocks())),
      v_(v) {
  // Each bitmap is a metadata block of its own: a map claiming more bitmaps than the metadata
  // device holds is damage, and nothing is sized from the claim (a hostile nr_blocks of 2^45
  // would otherwise cost gigabytes here and minutes in for_each_bitmap).
  const std::uint64_t limit =
      kind_ == SpaceMapKind::kMetadata ? std::uint64_t{kMaxMetadataBitmaps} : nr_meta_;
  if (nr_bitmaps() > limit && kind_ == SpaceMapKind::kData) {
    v_.damage("data space map has " + std::to_string(root_.nr_blocks) + " blocks, whose " +
              std::to_string(nr_bitmaps()) + " bitmaps cannot fit in the " +
              std::to_string(nr_meta_) + " blocks of the metadata device");
    return;
  }
  index_.assign(std::min(nr_bitmaps(), limit), IndexEntry{});
  if (kind_ == SpaceMapKind::kMetadata)
    read_metadata_index();
  else
    read_data_index();
}

void SpaceMapReader::read_metadata_index() {
  if (nr_bitmaps() > kMaxMetadataBitmaps)
    v_.damage("metadata space map has " + std::to_string(root_.nr_blocks) +
              " blocks, more than one index block can describe");
  if (root_.bitmap_root == 0 || root_.bitmap_root >= nr_meta_) {
    v_.damage("metadata space map index block " + std::to_string(root_.bitmap_root) +
              " is beyond the end of the metadata device");
    return;
  }
  AlignedBuffer buf(1);
  if (auto r = io_.read(root_.bitmap_root, buf.data()); !r) {
    v_.damage(r.error().what);
    return;
  }
  if (auto bad = validate_block(buf.data(), root_.bitmap_root, BlockKind::kIndex)) {
    v_.damage(*bad);
    return;
  }
  index_ok_ = true;
  for (std::size_t i = 0; i < index_.size(); ++i) {
    IndexEntry e = decode_index_entry(buf.data() + 16 + kIndexEntrySize * i);
    if (e.blocknr == 0 || e.blocknr >= nr_meta_) {
      v_.damage("metadata space map index entry " + std::to_string(i) + " names bitmap block " +
                std::to_string(e.blocknr) + ", outside the metadata device " +
                blk(root_.bitmap_root));
      e.blocknr = 0;
    }
    index_[i] = e;
  }
}

void SpaceMapReader::read_data_index() {
  std::vector<bool> seen(index_.size(), false);
  auto enter = [&](const NodeContext& c) {
    index_nodes_.push_back(c.addr);
    return true;
  };
  auto leaf = [&](const NodeContext&, const NodeView& n) {
    for (std::uint32_t i = 0; i < n.nr_entries(); ++i) {
      std::uint64_t k = n.key(i);
      IndexEntry e = decode_index_entry(n.value(i));
      if (k >= index_.size()) {
        v_.damage("data space map index has an entry for bitmap " + std::to_string(k) +
                  " beyond the " + std::to_string(index_.size()) + " bitmaps the map needs");
        continue;
      }
      if (e.blocknr == 0 || e.blocknr >= nr_meta_) {
        v_.damage("data space map index entry " + std::to_string(k) + " names bitmap block " +
                  std::to_string(e.blocknr) + ", outside the metadata device");
        e.blocknr = 0;
      }
      index_[k] = e;
      seen[k] = true;
    }
    return Flow::kContinue;
  };
  auto dmg = [&](const Damage& d) {
    v_.damage("data space map index: " + d.what);
    return Flow::kContinue;
  };
  FnVisitor fv(enter, leaf, dmg);
  WalkOptions o;
  o.leaf_value_size = kIndexValueSize;
  walk_btree(io_, root_.bitmap_root, o, fv);
  index_ok_ = true;
  std::uint64_t missing = 0, first = 0;
  for (std::size_t i = 0; i < seen.size(); ++i)
    if (!seen[i] && !missing++) first = i;
  if (missing)
    v_.damage("data space map index lacks " + std::to_string(missing) +
              " bitmap entries (first: bitmap " + std::to_string(first) + ")");
}

void SpaceMapReader::count_structure(bool ref_count_tree) {
  if (kind_ == SpaceMapKind::kMetadata) {
    v_.uses(root_.bitmap_root);
  } else {
    for (BlockAddr b : index_nodes_) v_.uses(b);
  }
  for (const IndexEntry& e : index_)
    if (e.blocknr) v_.uses(e.blocknr);
  if (!ref_count_tree) return;
  // Damage in the reference-count tree is reported by for_each_bitmap, not here.
  auto enter = [&](const NodeContext& c) {
    v_.uses(c.addr);
    return true;
  };
  auto leaf = [](const NodeContext&, const NodeView&) { return Flow::kContinue; };
  auto dmg = [](const Damage&) { return Flow::kContinue; };
  FnVisitor fv(enter, leaf, dmg);
  WalkOptions o;
  o.leaf_value_size = kRefCountValueSize;
  walk_btree(io_, root_.ref_count_root, o, fv);
}

void SpaceMapReader::for_each_bitmap(const CountsFn& fn, bool count_ref_count_tree,
                                     const RefCountTreeImage* pre, const QuickFn* quick) {
  const std::string name = kind_ == SpaceMapKind::kMetadata ? "metadata" : "data";
  std::vector<std::uint32_t> counts(kEntriesPerBitmap);
  AlignedBuffer batch;  // small maps: small; read into only (a slot is looked at once read)
  batch.resize_for_reads(std::clamp<std::size_t>(index_.size(), 1, kBitmapBatch));
  std::uint64_t batch_first = 0, batch_len = 0;
  std::vector<int> errs(kBitmapBatch);
  std::vector<KeyRange> lost;  // reference-count tree ranges lost to damage
  std::uint64_t cur = 0;
  bool valid = false, counts_zero = true, any_pending = false;
  std::size_t len = 0;

  // Reads the bitmaps named by index entries [i, i + kBitmapBatch) (entry i names a block).
  auto read_batch = [&](std::uint64_t i) {
    BlockAddr at = index_[i].blocknr;
    batch_first = i;
    batch_len = std::min<std::uint64_t>(kBitmapBatch, index_.size() - i);
    std::vector<BlockAddr> addrs;
    for (std::uint64_t k = 0; k < batch_len; ++k)
      addrs.push_back(index_[i + k].blocknr ? index_[i + k].blocknr : at);
    io_.read_many(addrs, batch.data(), std::span<int>(errs.data(), batch_len));
  };
  auto load = [&](std::uint64_t i) {
    std::uint64_t first = i * kEntriesPerBitmap;
    len = static_cast<std::size_t>(std::min<std::uint64_t>(kEntriesPerBitmap, root_.nr_blocks - first));
    if (!counts_zero) std::fill(counts.begin(), counts.end(), 0);
    counts_zero = true;
    last_zero_ = true;
    any_pending = false;
    valid = false;
    BlockAddr at = index_[i].blocknr;
    if (!at) return;  // already reported with the index
    if (i < batch_first || i >= batch_first + batch_len) read_batch(i);
    std::size_t slot = static_cast<std::size_t>(i - batch_first);
    const std::uint8_t* b = batch.block(slot);
    if (errs[slot]) {
      v_.damage("read error on " + name + " space map bitmap " + blk(at) + ": " +
                std::strerror(errs[slot]));
      return;
    }
    if (auto bad = validate_block(b, at, BlockKind::kBitmap)) {
      v_.damage(*bad);
      return;
    }
    valid = true;
    // Word by word: the zero words of a sparsely used map (billions of blocks) cost nothing.
    // An entry's first bit is its high bit (bitmap_entry()).
    for (std::size_t w = 0; w * 32 < len; ++w) {
      std::uint64_t x = load_le64(b + 16 + 8 * w);
      std::size_t end = std::min(len, w * 32 + 32);
      if (end < w * 32 + 32) x &= (1ull << (2 * (end - w * 32))) - 1;
      if (!x) continue;
      counts_zero = last_zero_ = false;
      any_pending |= (x & (x >> 1) & 0x5555555555555555ull) != 0;
      // A byte (four entries) at a time; entries past `end` are 0 (masked above) and the
      // array holds whole words.
      std::uint32_t* out = counts.data() + w * 32;
      for (unsigned k = 0; k < 8; ++k)
        std::memcpy(out + 4 * k, kDecode.v[(x >> (8 * k)) & 0xff], sizeof(kDecode.v[0]));
    }
    for (std::size_t e = len; e < kEntriesPerBitmap; ++e)
      if (bitmap_entry(b, e)) {
        v_.damage(name + " space map bitmap " + blk(at) + " has counts beyond the end of the map");
        break;
      }
  };
  auto emit = [&]() {
    std::uint64_t first = cur * kEntriesPerBitmap;
    std::uint64_t pending = 0, first_pending = 0;
    for (std::size_t e = 0; any_pending && e < len; ++e) {
      if (counts[e] != kPending) continue;
      counts[e] = 3;
      std::uint64_t b = first + e;
      bool in_lost = std::any_of(lost.begin(), lost.end(), [&](const KeyRange& r) {
        return b >= r.begin && (!r.end || b < *r.end);
      });
      if (!in_lost && !pending++) first_pending = b;
    }
    if (pending)
      v_.damage(name + " space map: " + std::to_string(pending) +
                " blocks have a bitmap count of 3 but no entry in the reference count tree "
                "(first: block " + std::to_string(first_pending) + ")");
    fn(first, std::span<const std::uint32_t>(counts.data(), len), valid);
  };

  // A tree entry for a block whose bitmap entry is not 3.
  auto not_pending = [&](std::uint64_t b, std::uint32_t c, std::uint32_t bitmap) {
    v_.damage(name + " space map reference count tree says block " + std::to_string(b) +
              " has count " + std::to_string(c) + ", but its bitmap entry is " +
              std::to_string(bitmap));
  };
  // The reference-count tree walked with `leaf`: its nodes counted when asked, damage reported
  // and the key ranges it hides kept in `lost`.
  auto walk_ref_count_tree = [&](const auto& leaf) {
    auto enter = [&](const NodeContext& c) {
      if (count_ref_count_tree) v_.uses(c.addr);
      return true;
    };
    auto dmg = [&](const Damage& d) {
      lost.push_back(d.lost);
      v_.damage(name + " space map reference count tree: " + d.what);
      return Flow::kContinue;
    };
    FnVisitor fv(enter, leaf, dmg);
    WalkOptions o;
    o.leaf_value_size = kRefCountValueSize;
    walk_btree(io_, root_.ref_count_root, o, fv);
  };
  if (index_.empty()) {
    // A map of no blocks still has its reference-count tree: the kernel formats the data map
    // with 0 blocks, an empty index btree and an empty reference-count tree (FORMAT.md §7.6),
    // and a pool whose data device was never resized keeps them. Count its nodes; any entry
    // is beyond the end of the map.
    if (pre && pre->usable) {
      if (count_ref_count_tree)
        for (BlockAddr b : pre->nodes) v_.uses(b);
      return;
    }
    auto leaf = [&](const NodeContext&, const NodeView& n) {
      if (n.nr_entries())
        v_.damage(name + " space map reference count tree has an entry for block " +
                  std::to_string(n.key(0)) + ", beyond the end of the map");
      return Flow::kContinue;
    };
    walk_ref_count_tree(leaf);
    return;
  }
  if (pre && pre->usable) {
    // The tree's entries a bitmap at a time, in the order a walk would have reported them.
    if (count_ref_count_tree)
      for (BlockAddr b : pre->nodes) v_.uses(b);
    std::vector<std::uint32_t> tree(kEntriesPerBitmap);
    std::vector<std::uint8_t> done(kBitmapBatch);  // quick said so, per slot of the batch
    auto in_batch = [&](std::uint64_t i) { return i >= batch_first && i < batch_first + batch_len; };
    for (cur = 0; cur < index_.size(); ++cur) {
      if (quick && index_[cur].blocknr && !in_batch(cur)) {
        read_batch(cur);  // as load(cur) would; then the batch's bitmaps on the workers
        run_parallel(batch_len, [&](std::size_t k) {
          done[k] = 0;
          std::uint64_t i = batch_first + k, first = i * kEntriesPerBitmap;
          BlockAddr at = index_[i].blocknr;
          if (!at || errs[k] || root_.nr_blocks - first < kEntriesPerBitmap) return;
          const std::uint8_t* b = batch.block(k);
          if (validate_block(b, at, BlockKind::kBitmap)) return;
          done[k] = (*quick)(first, b + 16, kEntriesPerBitmap);
        });
      }
      if (quick && in_batch(cur) && done[cur - batch_first]) continue;
      load(cur);
      std::uint64_t first = cur * kEntriesPerBitmap;
      if (valid && pre->counts.any_nonzero(first, len)) {
        pre->counts.get_range(first, std::span<std::uint32_t>(tree.data(), len));
        for (std::size_t e = 0; e < len; ++e) {
          std::uint32_t c = tree[e];
          if (!c) continue;
          if (counts[e] != kPending) {
            not_pending(first + e, c, counts[e]);
            continue;
          }
          counts[e] = c;
        }
      }
      emit();
    }
    return;
  }
  load(0);
  auto leaf = [&](const NodeContext&, const NodeView& n) {
    for (std::uint32_t i = 0; i < n.nr_entries(); ++i) {
      std::uint64_t k = n.key(i);
      std::uint32_t c = load_le32(n.value(i));
      if (k >= root_.nr_blocks) {
        v_.damage(name + " space map reference count tree has an entry for block " +
                  std::to_string(k) + ", beyond the end of the map");
        return Flow::kContinue;  // keys ascend: the rest are beyond too
      }
      std::uint64_t bi = k / kEntriesPerBitmap;
      while (cur < bi) {
        emit();
        load(++cur);
      }
      if (!valid) continue;
      std::uint32_t& slot = counts[k - bi * kEntriesPerBitmap];
      if (slot != kPending) {
        not_pending(k, c, slot);
        continue;
      }
      if (c < 3)
        v_.damage(name + " space map reference count tree holds count " + std::to_string(c) +
                  " (< 3) for block " + std::to_string(k));
      slot = c;
    }
    return Flow::kContinue;
  };
  walk_ref_count_tree(leaf);
  for (;;) {
    emit();
    if (cur + 1 >= index_.size()) break;
    load(++cur);
  }
}

std::optional<CountLocation> SpaceMapReader::locate(std::uint64_t block) const {
  if (block >= root_.nr_blocks) return std::nullopt;
  std::uint64_t i = block / kEntriesPerBitmap;
  if (i >= index_.size() || !index_[i].blocknr) return std::nullopt;
  return CountLocation{i, index_[i].blocknr, block % kEntriesPerBitmap};
}

}  // namespace thinmeta::pdata
