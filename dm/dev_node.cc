// SPDX-License-Identifier: GPL-3.0-or-later
#include "dm/dev_node.h"

#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <vector>

#include "dm/table.h"

namespace thinmeta::dm {

namespace {

bool is_node_of(const std::string& path, dev_t dev) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISBLK(st.st_mode) && st.st_rdev == dev;
}

std::string devname_from_sysfs(dev_t dev) {
  std::ifstream in("/sys/dev/block/" + format_dev(dev) + "/uevent");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("DEVNAME=", 0) == 0) return line.substr(8);
  return {};
}

}  // namespace

Result<std::string> node_for(dev_t dev, const Control* ctl) {
  std::vector<std::string> tried;
  if (ctl) {
    if (auto i = ctl->info(DevRef{{}, dev}); i && !i->name.empty())
      tried.push_back("/dev/mapper/" + i->name);
  }
  if (auto n = devname_from_sysfs(dev); !n.empty() && n.find("..") == std::string::npos)
    tried.push_back("/dev/" + n);
  tried.push_back("/dev/block/" + format_dev(dev));
  for (const auto& p : tried)
    if (is_node_of(p, dev)) return p;
  return fail(
      Errc::kNotFound, "no device node for " + format_dev(dev) + " (looked for " + [&] {
        std::string s;
        for (const auto& p : tried) s += (s.empty() ? "" : ", ") + p;
        return s;
      }() + ")");
}

Result<dev_t> block_device_number(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0)
    return fail(errno == ENOENT ? Errc::kNotFound : Errc::kIo,
                "cannot stat '" + path + "': " + std::strerror(errno));
  if (!S_ISBLK(st.st_mode))
    return fail(Errc::kInvalidArgument, "'" + path + "' is not a block device");
  return st.st_rdev;
}

}  // namespace thinmeta::dm
