// SPDX-License-Identifier: GPL-3.0-or-later
#include "thin/delta.h"

#include <limits>

#include "persistent-data/btree/btree_cursor.h"
#include "thin/device_details.h"

namespace thinmeta::thin {

using pdata::BtreeCursor;
using At = BtreeCursor::At;

namespace {

DiffKind kind_of(const std::optional<std::uint64_t>& l, const std::optional<std::uint64_t>& r) {
  if (!r) return DiffKind::kLeftOnly;
  if (!l) return DiffKind::kRightOnly;
  return *l == *r ? DiffKind::kSame : DiffKind::kDifferent;
}

bool breaks(const std::optional<std::uint64_t>& last, const std::optional<std::uint64_t>& d) {
  return last && d && *d != *last + 1;
}

}  // namespace

Result<> PieceBuilder::add(std::uint64_t v, std::optional<std::uint64_t> l,
                           std::optional<std::uint64_t> r) {
  DiffKind k = kind_of(l, r);
  if (cur_.len && k == cur_.kind && v == cur_.begin + cur_.len && !breaks(last_l_, l) &&
      !breaks(last_r_, r)) {
    ++cur_.len;
  } else {
    if (cur_.len) THINMETA_CHECK(out_.piece(cur_));
    cur_ = DiffPiece{k, v, 1, l.value_or(0), r.value_or(0)};
  }
  last_l_ = l;
  last_r_ = r;
  return {};
}

Result<> PieceBuilder::add_same_run(std::uint64_t v, std::uint64_t d, std::uint64_t len) {
  THINMETA_CHECK(add(v, d, d));
  cur_.len += len - 1;
  last_l_ = last_r_ = d + len - 1;
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
  // Both sides stand in leaves: merge them directly until one runs out.
  Result<> merge_leaves() {
    pdata::NodeView ln = l_.leaf(), rn = r_.leaf();
    std::uint32_t i = l_.index(), j = r_.index();
    const std::uint32_t lnr = ln.nr_entries(), rnr = rn.nr_entries();
    auto dat = [](const pdata::NodeView& n, std::uint32_t x) {
      return unpack_block_time(n.value64(x)).data_block;
    };
    while (i < lnr && j < rnr) {
      std::uint64_t lk = ln.key(i), rk = rn.key(j);
      if (lk == rk) {
        std::uint64_t d = dat(ln, i);
        if (d == dat(rn, j)) {
          std::uint32_t n = 1;  // a run the same on both sides
          while (i + n < lnr && j + n < rnr && ln.key(i + n) == lk + n &&
                 rn.key(j + n) == lk + n && dat(ln, i + n) == d + n && dat(rn, j + n) == d + n)
            ++n;
          THINMETA_CHECK(b_.add_same_run(lk, d, n));
          i += n;
          j += n;
        } else {
          THINMETA_CHECK(b_.add(lk, d, dat(rn, j)));
          ++i;
          ++j;
        }
      } else if (lk < rk) {
        THINMETA_CHECK(b_.add(lk, dat(ln, i), std::nullopt));
        ++i;
      } else {
        THINMETA_CHECK(b_.add(rk, std::nullopt, dat(rn, j)));
        ++j;
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
