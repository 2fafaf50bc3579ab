// SPDX-License-Identifier: GPL-3.0-or-later
#include "dm/table.h"

#include <sys/sysmacros.h>

#include <charconv>

namespace thinmeta::dm {

namespace {

std::optional<std::uint64_t> number(std::string_view s) {
  std::uint64_t v = 0;
  if (s.empty()) return std::nullopt;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
  return v;
}

// "A/B"
bool fraction(std::string_view s, std::uint64_t& a, std::uint64_t& b) {
  auto slash = s.find('/');
  if (slash == std::string_view::npos) return false;
  auto x = number(s.substr(0, slash)), y = number(s.substr(slash + 1));
  if (!x || !y) return false;
  a = *x;
  b = *y;
  return true;
}

Result<> bad(const char* what, std::string_view text) {
  return fail(Errc::kBadFormat, std::string(what) + ": '" + std::string(text) + "'");
}

}  // namespace

std::vector<std::string_view> split_words(std::string_view s) {
  std::vector<std::string_view> out;
  std::size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n')) ++i;
    std::size_t j = i;
    while (j < s.size() && s[j] != ' ' && s[j] != '\t' && s[j] != '\n') ++j;
    if (j > i) out.push_back(s.substr(i, j - i));
    i = j;
  }
  return out;
}

Result<dev_t> parse_dev(std::string_view s) {
  auto colon = s.find(':');
  if (colon == std::string_view::npos) return std::unexpected(bad("bad device number", s).error());
  auto ma = number(s.substr(0, colon)), mi = number(s.substr(colon + 1));
  if (!ma || !mi || *ma > 0xffffffffu || *mi > 0xffffffffu)
    return std::unexpected(bad("bad device number", s).error());
  return makedev(static_cast<unsigned>(*ma), static_cast<unsigned>(*mi));
}

std::string format_dev(dev_t d) {
  return std::to_string(major(d)) + ":" + std::to_string(minor(d));
}

Result<ThinParams> parse_thin_params(std::string_view params) {
  auto w = split_words(params);
  if (w.size() != 2 && w.size() != 3) return std::unexpected(bad("bad thin table", params).error());
  ThinParams t;
  THINMETA_TRY(t.pool, parse_dev(w[0]));
  auto id = number(w[1]);
  if (!id || *id >= (1u << 24)) return std::unexpected(bad("bad thin device id", w[1]).error());
  t.thin_id = static_cast<std::uint32_t>(*id);
  if (w.size() == 3) {
    THINMETA_TRY(dev_t o, parse_dev(w[2]));
    t.origin = o;
  }
  return t;
}

Result<PoolParams> parse_pool_params(std::string_view params) {
  auto w = split_words(params);
  if (w.size() < 5) return std::unexpected(bad("bad thin-pool table", params).error());
  PoolParams p;
  THINMETA_TRY(p.metadata, parse_dev(w[0]));
  THINMETA_TRY(p.data, parse_dev(w[1]));
  auto bs = number(w[2]), lw = number(w[3]), nf = number(w[4]);
  // Block sizes run from 64 KiB to 1 GiB in multiples of 64 KiB (128 .. 2097152 sectors).
  if (!bs || *bs < 128 || *bs > 2097152 || *bs % 128 != 0)
    return std::unexpected(bad("bad data block size in thin-pool table", params).error());
  if (!lw || !nf || w.size() != 5 + *nf)
    return std::unexpected(bad("bad thin-pool table", params).error());
  p.block_size_sectors = static_cast<std::uint32_t>(*bs);
  p.low_water_blocks = *lw;
  for (std::size_t i = 5; i < w.size(); ++i) p.features.emplace_back(w[i]);
  return p;
}

Result<PoolStatus> parse_pool_status(std::string_view status) {
  auto w = split_words(status);
  if (w.size() == 1 && (w[0] == "Fail" || w[0] == "Error"))
    return fail(Errc::kIo, "the pool has failed (its status is '" + std::string(w[0]) + "')");
  if (w.size() < 5) return std::unexpected(bad("bad thin-pool status", status).error());
  PoolStatus s;
  auto t = number(w[0]);
  if (!t || !fraction(w[1], s.used_metadata_blocks, s.total_metadata_blocks) ||
      !fraction(w[2], s.used_data_blocks, s.total_data_blocks))
    return std::unexpected(bad("bad thin-pool status", status).error());
  s.transaction_id = *t;
  if (w[3] != "-") {
    auto h = number(w[3]);
    if (!h)
      return std::unexpected(bad("bad held metadata root in thin-pool status", status).error());
    s.held_root = *h;
  }
  s.mode = std::string(w[4]);
  for (std::size_t i = 5; i < w.size(); ++i)
    if (w[i] == "needs_check") s.needs_check = true;
  return s;
}

Result<ThinStatus> parse_thin_status(std::string_view status) {
  auto w = split_words(status);
  if (w.size() == 1 && w[0] == "Fail")
    return fail(Errc::kIo, "the thin device has failed (its status is 'Fail')");
  if (w.size() != 2) return std::unexpected(bad("bad thin status", status).error());
  ThinStatus s;
  auto m = number(w[0]);
  if (!m) return std::unexpected(bad("bad thin status", status).error());
  s.mapped_sectors = *m;
  if (w[1] != "-") {
    auto h = number(w[1]);
    if (!h) return std::unexpected(bad("bad thin status", status).error());
    s.highest_mapped_sector = *h;
  }
  return s;
}

}  // namespace thinmeta::dm
