// SPDX-License-Identifier: GPL-3.0-or-later
#include "thin/rmap.h"

#include <sys/mman.h>

#include <algorithm>
#include <new>
#include <optional>

#include "thin/device_details.h"
#include "thin/mapping_tree.h"

namespace thinmeta::thin {

namespace {

// Regions as sorted, disjoint intervals, for a binary search per mapping.
std::vector<DataRegion> normalise(std::vector<DataRegion> rs) {
  std::sort(rs.begin(), rs.end(),
            [](const DataRegion& a, const DataRegion& b) { return a.begin < b.begin; });
  std::vector<DataRegion> out;
  for (const DataRegion& r : rs) {
    if (!out.empty() && r.begin <= out.back().end)
      out.back().end = std::max(out.back().end, r.end);
    else
      out.push_back(r);
  }
  return out;
}

bool contains(const std::vector<DataRegion>& rs, std::uint64_t b) {
  auto it = std::upper_bound(rs.begin(), rs.end(), b,
                             [](std::uint64_t v, const DataRegion& r) { return v < r.begin; });
  return it != rs.begin() && b < std::prev(it)->end;
}

}  // namespace

ReverseRuns::~ReverseRuns() {
  if (p_) ::munmap(p_, cap_ * sizeof(ReverseRun));
}

void ReverseRuns::grow() {
  // cap_ * sizeof(ReverseRun) is a multiple of the page size: cap_ is a multiple of 4096.
  std::size_t cap = cap_ ? cap_ * 2 : 4096 * 16;  // 1.5 MiB first
  void* p = p_ ? ::mremap(p_, cap_ * sizeof(ReverseRun), cap * sizeof(ReverseRun), MREMAP_MAYMOVE)
               : ::mmap(nullptr, cap * sizeof(ReverseRun), PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw std::bad_alloc();
  ::madvise(p, cap * sizeof(ReverseRun), MADV_HUGEPAGE);  // a fault per 2 MiB where possible
  p_ = static_cast<ReverseRun*>(p);
  cap_ = cap;
}

Result<ReverseRuns> reverse_map(pdata::IoEngine& io, pdata::BlockAddr mapping_root,
                                std::vector<DataRegion> regions) {
  regions = normalise(std::move(regions));
  ReverseRuns out;
  std::optional<Error> err;
  auto damage = [&](const std::string& where, const pdata::Damage& d) {
    err = Error{Errc::kDamage,
                "metadata contains errors (run thin_check for details): " + where + d.what};
    return Flow::kStop;
  };
  walk_device_roots(
      io, mapping_root,
      [&](std::uint64_t dev, pdata::BlockAddr root) {
        if (out.devs.size() >= kMaxReverseDevices) {
          err = Error{Errc::kDamage, "metadata contains errors (run thin_check for details): "
                                     "more than 2^24 thin devices"};
          return Flow::kStop;
        }
        const std::uint64_t index = out.devs.size();
        out.devs.push_back(dev);
        std::optional<ReverseRun> cur;
        Flow f = walk_mapping_leaves(
            io, root,
            [&](const pdata::NodeContext&, const pdata::NodeView& n) {
              for (std::uint32_t i = 0; i < n.nr_entries(); ++i) {
                std::uint64_t d = unpack_block_time(n.value64(i)).data_block;
                if (!contains(regions, d)) continue;
                std::uint64_t v = n.key(i);
                if (cur && v == cur->thin_begin + cur->len && d == cur->data_begin + cur->len) {
                  ++cur->len;
                  continue;
                }
                if (cur) out.push_back(*cur);
                cur = ReverseRun{d, v, 1, index};
              }
              return Flow::kContinue;
            },
            [&](const pdata::Damage& d) {
              return damage("thin device " + std::to_string(dev) + ": ", d);
            });
        if (cur) out.push_back(*cur);
        return f;
      },
      [&](const pdata::Damage& d) { return damage("top level of the mapping tree: ", d); });
  if (err) return std::unexpected(*err);
  // 0.9.0 sorts with std::sort on the data block alone; the same introsort over the same
  // sequence puts equal data blocks in the same order, which is what makes output identical.
  std::sort(out.begin(), out.end(), [](const ReverseRun& a, const ReverseRun& b) {
    return a.data_begin < b.data_begin;
  });
  return out;
}

}  // namespace thinmeta::thin
