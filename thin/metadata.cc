// SPDX-License-Identifier: GPL-3.0-or-later
#include "thin/metadata.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstring>

namespace thinmeta::thin {

using namespace thinmeta::pdata;

BlockAddr Metadata::nr_metadata_blocks() const {
  BlockAddr n = live_.metadata_sm.nr_blocks ? live_.metadata_sm.nr_blocks
                                            : live_.metadata_nr_blocks;
  return std::min<BlockAddr>(n ? n : io_->nr_blocks(), io_->nr_blocks());
}

Result<Metadata> Metadata::open(std::unique_ptr<IoEngine> io, const RootSelector& root) {
  THINMETA_TRY(Superblock live, read_superblock(*io, 0));
  BlockAddr claimed = live.metadata_sm.nr_blocks ? live.metadata_sm.nr_blocks
                                                 : live.metadata_nr_blocks;
  if (claimed > io->nr_blocks())
    return fail(Errc::kTooSmall, "metadata device is shorter than the superblock says (" +
                                     std::to_string(io->nr_blocks()) + " blocks, superblock says " +
                                     std::to_string(claimed) + ")");
  if (!root.snapshot) return Metadata(std::move(io), live, live, false);

  if (live.held_root == 0) return fail(Errc::kNotFound, "no current metadata snap");
  if (root.snapshot_block && *root.snapshot_block != live.held_root)
    return fail(Errc::kInvalidArgument, "metadata snapshot does not match that in superblock");
  THINMETA_TRY(Superblock held, read_superblock(*io, live.held_root));
  return Metadata(std::move(io), live, held, true);
}

Result<std::unique_ptr<IoEngine>> open_input(const std::string& path, const InputOptions& opts) {
  OpenOptions oo;
  oo.exclusive = opts.exclusive;
  oo.writable = opts.writable;
  THINMETA_TRY(std::unique_ptr<IoEngine> io, open_engine(path, oo));
  // Sniff the first bytes: people pass XML to binary tools.
  std::uint8_t head[64] = {};
  ssize_t n = -1;
  if (int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC); fd >= 0) {
    n = ::pread(fd, head, sizeof head, 0);
    ::close(fd);
  }
  if (n > 0 && looks_like_xml(head, static_cast<std::size_t>(n)))
    return fail(Errc::kBadFormat,
                "This looks like XML.  This tool only supports the binary metadata format.");
  if (io->nr_blocks() == 0)
    return fail(Errc::kTooSmall, "Metadata device/file too small.  Is this binary metadata?");
  return io;
}

Result<Metadata> open_metadata(const std::string& path, const RootSelector& root,
                               const InputOptions& opts) {
  InputOptions o = opts;
  if (root.snapshot) o.exclusive = false;  // the pool is live: only the held trees are stable
  THINMETA_TRY(std::unique_ptr<IoEngine> io, open_input(path, o));
  return Metadata::open(std::move(io), root);
}

}  // namespace thinmeta::thin
