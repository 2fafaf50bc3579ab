// SPDX-License-Identifier: GPL-3.0-or-later
#include "dm/thin_device.h"

#include "dm/dev_node.h"
#include "dm/table.h"

namespace thinmeta::dm {

namespace {

Result<Target> single_target(const Control& ctl, const DevRef& ref, const std::string& label,
                             const char* type, DeviceInfo& info) {
  auto t = ctl.table(ref, &info);
  if (!t) {
    if (t.error().code == Errc::kNotFound)
      return fail(Errc::kInvalidArgument, label + " is not a device-mapper device");
    return std::unexpected(t.error());
  }
  if (!info.live_table || t->empty())
    return fail(Errc::kInvalidArgument, label + " has no active table");
  if (t->size() != 1 || (*t)[0].start != 0 || (*t)[0].type != type) {
    std::string got =
        t->size() == 1 ? "'" + (*t)[0].type + "'" : std::to_string(t->size()) + " targets";
    return fail(Errc::kInvalidArgument,
                label + " is not a " + type + " device (its table has " + got + ")");
  }
  return (*t)[0];
}

}  // namespace

Result<PoolDevice> resolve_pool(const Control& ctl, const DevRef& ref) {
  DeviceInfo info;
  std::string label = ref.name.empty() ? "pool " + format_dev(ref.dev) : "'" + ref.name + "'";
  THINMETA_TRY(Target t, single_target(ctl, ref, label, "thin-pool", info));
  THINMETA_TRY(PoolParams p, parse_pool_params(t.params));
  PoolDevice pool;
  pool.name = info.name;
  pool.dev = info.dev;
  pool.metadata_dev = p.metadata;
  pool.data_dev = p.data;
  pool.block_size_sectors = p.block_size_sectors;
  pool.size_sectors = t.length;
  pool.features = p.features;
  THINMETA_TRY(pool.metadata_path, node_for(p.metadata, &ctl));
  THINMETA_TRY(pool.data_path, node_for(p.data, &ctl));
  return pool;
}

Result<ThinDevice> resolve_thin(const Control& ctl, const std::string& path) {
  THINMETA_TRY(dev_t dev, block_device_number(path));
  DeviceInfo info;
  THINMETA_TRY(Target t, single_target(ctl, DevRef{{}, dev}, "'" + path + "'", "thin", info));
  THINMETA_TRY(ThinParams p, parse_thin_params(t.params));
  ThinDevice thin;
  thin.path = path;
  thin.name = info.name;
  thin.dev = info.dev;
  thin.thin_id = p.thin_id;
  thin.size_sectors = t.length;
  thin.read_only = info.read_only;
  thin.open_count = info.open_count;
  thin.origin_dev = p.origin;
  if (p.origin) {
    THINMETA_TRY(thin.origin_path, node_for(*p.origin, &ctl));
  }
  THINMETA_TRY(thin.pool, resolve_pool(ctl, DevRef{{}, p.pool}));
  return thin;
}

}  // namespace thinmeta::dm
