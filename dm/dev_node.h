// SPDX-License-Identifier: GPL-3.0-or-later
// From a device number (as a table shows it) to a path this process can open. Nothing is
// created: the node must exist already (a busybox guest without udev has /dev/mapper/NAME from
// dmsetup and the devtmpfs nodes /dev/dm-N, /dev/vda; udev adds /dev/block/MAJ:MIN).
#pragma once

#include <sys/types.h>

#include <string>

#include "dm/control.h"
#include "persistent-data/result.h"

namespace thinmeta::dm {

// Tries, in order: /dev/mapper/NAME (a device-mapper device, when `ctl` is given), /dev/DEVNAME
// (sysfs uevent), /dev/block/MAJ:MIN. A candidate counts only if it is a block device node
// with that very number. Errc::kNotFound when none is.
Result<std::string> node_for(dev_t dev, const Control* ctl);

// stat() of `path`: its device number if it is a block device, else an error naming it.
Result<dev_t> block_device_number(const std::string& path);

}  // namespace thinmeta::dm
