// SPDX-License-Identifier: GPL-3.0-or-later
#include "thin/rmap.h"

#include <sys/mman.h>

#include <algorithm>
#include <new>
#include <optional>

#include "persistent-data/endian.h"
#include "thin/data_runs.h"
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
  // 6 MiB first, then doubled: every size a multiple of 2 MiB, so the huge pages asked for fit
  // (a 1.5 MiB start held none, and its doublings only some: 8m rmap 2736 -> 684 faults).
  std::size_t cap = cap_ ? cap_ * 2 : 4096 * 64;
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
  // One region (the usual case): a subtraction and a compare per mapping, no search.
  const bool one = regions.size() == 1;
  const std::uint64_t one_begin = one ? regions[0].begin : 0;
  const std::uint64_t one_len = one ? regions[0].end - regions[0].begin : 0;
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
        // The run being joined (len 0: none yet); copied into locals for each leaf's loop.
        std::uint64_t run_d = 0, run_v = 0, run_len = 0;
        Flow f = walk_mapping_leaves(
            io, root,
            [&](const pdata::NodeContext&, const pdata::NodeView& n) {
              const std::uint32_t nr = n.nr_entries();
              const std::uint8_t* keys = n.raw() + pdata::kNodeHeaderSize;
              const std::uint8_t* vals = n.value(0);
              std::uint64_t cd = run_d, cv = run_v, cl = run_len;
              const bool one_region = one;  // locals: the run stores alias anything
              const std::uint64_t rb = one_begin, rl = one_len;
              // One region holding every data block of the leaf (a whole-pool rmap): the
              // runs' ends marked four mappings a step (AVX2), then a run at a time.
              std::uint64_t ends[kRunEndChunk / 64];
              if (one_region && nr && nr <= kRunEndChunk && mapping_run_ends(keys, vals, nr, rb, rl, ends)) {
                std::uint32_t start = 0;
                for (std::uint32_t w = 0; w * 64 < nr; ++w)
                  for (std::uint64_t x = ends[w]; x; x &= x - 1) {
                    const std::uint32_t e = w * 64 + static_cast<std::uint32_t>(__builtin_ctzll(x));
                    const std::uint64_t d = pdata::load_le64(vals + 8ull * start) >> 24;
                    const std::uint64_t v = pdata::load_le64(keys + 8ull * start);
                    if (start == 0 && cl && v == cv + cl && d == cd + cl) {  // the last leaf's run goes on
                      cl += e + 1;
                    } else {
                      if (cl) out.push_back(ReverseRun{cd, cv, cl, index});
                      cd = d;
                      cv = v;
                      cl = e + 1 - start;
                    }
                    start = e + 1;
                  }
                run_d = cd;
                run_v = cv;
                run_len = cl;
                return Flow::kContinue;
              }
              // Otherwise one mapping at a time (a four-a-step run extension beside the marks
              // gained nothing: the marks take the leaves where runs are long).
              for (std::uint32_t i = 0; i < nr; ++i) {
                std::uint64_t d = unpack_block_time(pdata::load_le64(vals + 8 * i)).data_block;
                if (one_region ? d - rb >= rl : !contains(regions, d)) continue;
                std::uint64_t v = pdata::load_le64(keys + 8 * i);
                if (cl && v == cv + cl && d == cd + cl) {
                  ++cl;
                  continue;
                }
                if (cl) out.push_back(ReverseRun{cd, cv, cl, index});
                cd = d;
                cv = v;
                cl = 1;
              }
              run_d = cd;
              run_v = cv;
              run_len = cl;
              return Flow::kContinue;
            },
            [&](const pdata::Damage& d) {
              return damage("thin device " + std::to_string(dev) + ": ", d);
            });
        if (run_len) out.push_back(ReverseRun{run_d, run_v, run_len, index});
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

void write_reverse_runs(const ReverseRuns& runs, TextOutput& out) {
  // The longest line: four 20-digit numbers, a device id and 22 bytes of text.
  constexpr std::size_t kMaxLine = 160;
  for (const ReverseRun& r : runs) {
    char* p = out.reserve(kMaxLine);
    p = write_lit(p, "data ");
    p = write_u64(p, r.data_begin);
    p = write_lit(p, "..");
    p = write_u64(p, r.data_begin + r.len);
    p = write_lit(p, " -> thin(");
    p = write_u64(p, runs.dev(r));
    p = write_lit(p, ") ");
    p = write_u64(p, r.thin_begin);
    p = write_lit(p, "..");
    p = write_u64(p, r.thin_begin + r.len);
    *p++ = '\n';
    out.commit(p);
  }
}

}  // namespace thinmeta::thin
