// SPDX-License-Identifier: GPL-3.0-or-later
#include "thin/delta.h"

#include <algorithm>
#include <limits>

#include "persistent-data/btree/btree_cursor.h"
#include "thin/device_details.h"

namespace thinmeta::thin {

using pdata::BtreeCursor;
using At = BtreeCursor::At;

Result<> PieceBuilder::add(std::uint64_t v, std::optional<std::uint64_t> l,
                           std::optional<std::uint64_t> r) {
  DiffKind k = !r ? DiffKind::kLeftOnly
               : !l ? DiffKind::kRightOnly
               : *l == *r ? DiffKind::kSame
                          : DiffKind::kDifferent;
  return add_run(k, v, l.value_or(0), r.value_or(0), 1);
}

Result<> PieceBuilder::start(const DiffPiece& p) {
  if (cur_.len) THINMETA_CHECK(out_.piece(cur_));
  cur_ = p;
  return {};
}

Result<> PieceBuilder::finish() {
  if (cur_.len) THINMETA_CHECK(out_.piece(cur_));
  cur_.len = 0;
  return out_.complete();
}

namespace {

class TreeDiff {
 public:
  TreeDiff(pdata::IoEngine& io, DiffSink& out)
      : l_(io, kMappingValueSize), r_(io, kMappingValueSize), shared_(io, kMappingValueSize),
        b_(out) {}

  Result<> run(BlockAddr left, BlockAddr right) {
    l_.reset(left);
    r_.reset(right);
    constexpr std::uint64_t kInf = std::numeric_limits<std::uint64_t>::max();
    for (;;) {
      At la = l_.at(), ra = r_.at();
      if (la == At::kEnd && ra == At::kEnd) break;
      if (la == At::kSubtree && ra == At::kSubtree && l_.subtree() == r_.subtree()) {
        THINMETA_CHECK(shared_subtree());
        continue;
      }
      // The next key each side may hold: exact for an entry, a lower bound for a subtree.
      std::uint64_t lk = la == At::kEntry ? l_.key() : la == At::kSubtree ? l_.subtree_lo() : kInf;
      std::uint64_t rk = ra == At::kEntry ? r_.key() : ra == At::kSubtree ? r_.subtree_lo() : kInf;
      bool dl = la == At::kSubtree && lk <= rk;
      bool dr = ra == At::kSubtree && rk <= lk;
      if (dl) THINMETA_CHECK(l_.descend());
      if (dr) THINMETA_CHECK(r_.descend());
      if (dl || dr) continue;
      // Entries only from here; a subtree on the other side starts after this key.
      if (la == At::kEntry && ra == At::kEntry) {
        THINMETA_CHECK(merge_leaves());
        continue;
      }
      if (la == At::kEntry && ra == At::kEntry && lk == rk) {
        THINMETA_CHECK(b_.add(lk, data(l_), data(r_)));
        l_.skip();
        r_.skip();
      } else if (la == At::kEntry && lk < rk) {
        THINMETA_CHECK(b_.add(lk, data(l_), std::nullopt));
        l_.skip();
      } else {
        THINMETA_CHECK(b_.add(rk, std::nullopt, data(r_)));
        r_.skip();
      }
    }
    return b_.finish();
  }

 private:
  // Both sides stand in leaves: merge them directly until one runs out, a run at a time
  // (keys and data both advancing by one on the sides it has), on the leaves' arrays (value
  // size 8: the cursor checked it).
  Result<> merge_leaves() {
    const std::uint8_t* lk = l_.leaf().raw() + pdata::kNodeHeaderSize;
    const std::uint8_t* rk = r_.leaf().raw() + pdata::kNodeHeaderSize;
    const std::uint8_t* lv = lk + 8ull * l_.leaf().max_entries();
    const std::uint8_t* rv = rk + 8ull * r_.leaf().max_entries();
    std::uint32_t i = l_.index(), j = r_.index();
    const std::uint32_t lnr = l_.leaf().nr_entries(), rnr = r_.leaf().nr_entries();
    auto key = [](const std::uint8_t* k, std::uint32_t x) { return pdata::load_le64(k + 8ull * x); };
    auto dat = [](const std::uint8_t* v, std::uint32_t x) {
      return unpack_block_time(pdata::load_le64(v + 8ull * x)).data_block;
    };
    while (i < lnr && j < rnr) {
      std::uint64_t a = key(lk, i), b = key(rk, j);
      if (a == b) {
        std::uint64_t dl = dat(lv, i), dr = dat(rv, j);
        std::uint32_t n = 1;
        const std::uint32_t m = std::min(lnr - i, rnr - j);
        while (n < m && key(lk, i + n) == a + n && key(rk, j + n) == a + n &&
               dat(lv, i + n) == dl + n && dat(rv, j + n) == dr + n)
          ++n;
        THINMETA_CHECK(
            b_.add_run(dl == dr ? DiffKind::kSame : DiffKind::kDifferent, a, dl, dr, n));
        i += n;
        j += n;
      } else if (a < b) {  // left only, up to the right's next key
        std::uint64_t d = dat(lv, i);
        std::uint32_t n = 1;
        while (i + n < lnr && key(lk, i + n) == a + n && a + n < b && dat(lv, i + n) == d + n) ++n;
        THINMETA_CHECK(b_.add_run(DiffKind::kLeftOnly, a, d, 0, n));
        i += n;
      } else {
        std::uint64_t d = dat(rv, j);
        std::uint32_t n = 1;
        while (j + n < rnr && key(rk, j + n) == b + n && b + n < a && dat(rv, j + n) == d + n) ++n;
        THINMETA_CHECK(b_.add_run(DiffKind::kRightOnly, b, 0, d, n));
        j += n;
      }
    }
    l_.seek_in_leaf(i);
    r_.seek_in_leaf(j);
    return {};
  }

  static std::uint64_t data(const BtreeCursor& c) { return unpack_block_time(c.value64()).data_block; }

  // Both sides stand on the same subtree: its mappings are the same on both; read it once.
  Result<> shared_subtree() {
    shared_.reset(l_.subtree(), l_.subtree_range());
    for (;;) {
      THINMETA_TRY(auto leaf, shared_.next_leaf());
      if (!leaf) break;
      std::uint32_t nr = leaf->nr_entries();
      std::uint32_t i = 0;
      while (i < nr) {
        std::uint64_t v = leaf->key(i);
        std::uint64_t d = unpack_block_time(leaf->value64(i)).data_block;
        std::uint32_t j = i + 1;
        while (j < nr && leaf->key(j) == v + (j - i) &&
               unpack_block_time(leaf->value64(j)).data_block == d + (j - i))
          ++j;
        THINMETA_CHECK(b_.add_same_run(v, d, j - i));
        i = j;
      }
      shared_.skip_leaf();
    }
    l_.skip();
    r_.skip();
    return {};
  }

  BtreeCursor l_, r_, shared_;
  PieceBuilder b_;
};

}  // namespace

Result<> diff_trees(pdata::IoEngine& io, BlockAddr left, BlockAddr right, DiffSink& out) {
  TreeDiff d(io, out);
  return d.run(left, right);
}

}  // namespace thinmeta::thin

namespace thinmeta::thin {

Result<std::optional<BlockAddr>> lookup_device_root(pdata::IoEngine& io, BlockAddr mapping_root,
                                                    std::uint64_t dev_id) {
  BtreeCursor c(io, kMappingValueSize);
  c.reset(mapping_root);
  for (;;) {
    switch (c.at()) {
      case At::kEnd:
        return std::optional<BlockAddr>();
      case At::kSubtree: {
        auto r = c.subtree_range();
        if (r.end && *r.end <= dev_id)
          c.skip();
        else
          THINMETA_CHECK(c.descend());
        break;
      }
      case At::kEntry:
        if (c.key() == dev_id) return std::optional<BlockAddr>(c.value64());
        if (c.key() > dev_id) return std::optional<BlockAddr>();
        c.skip();
        break;
    }
  }
}

}  // namespace thinmeta::thin
