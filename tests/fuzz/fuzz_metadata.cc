// SPDX-License-Identifier: GPL-3.0-or-later
// AFL++ target over the superblock and btree readers: the input is a metadata image (padded
// to whole blocks); it is opened live and as a metadata snapshot and dumped in both formats to
// /dev/null. Any crash, hang or sanitizer report is a bug; errors are fine.
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <vector>

#include "persistent-data/io/io_engine.h"
#include "thin/dump.h"
#include "thin/human_readable.h"
#include "thin/metadata.h"
#include "thin/text_output.h"
#include "xml/metadata_writer.h"

#ifndef __AFL_LOOP
#define __AFL_LOOP(x) (run_once_ ? (run_once_ = false, true) : false)
static bool run_once_ = true;
#endif

namespace {

using namespace thinmeta;

void one(const std::vector<std::uint8_t>& data, bool snapshot, bool human) {
  std::size_t nr = (data.size() + pdata::kBlockSize - 1) / pdata::kBlockSize;
  if (nr == 0) return;
  auto io = pdata::make_memory_engine(nr);
  pdata::AlignedBuffer buf(nr);
  std::memcpy(buf.data(), data.data(), data.size());
  std::vector<pdata::BlockAddr> addrs(nr);
  for (std::size_t i = 0; i < nr; ++i) addrs[i] = i;
  if (!io->write_many(addrs, buf.data())) return;
  auto md = thin::Metadata::open(std::move(io), thin::RootSelector{snapshot, std::nullopt});
  if (!md) return;
  static int devnull = ::open("/dev/null", O_WRONLY);
  thin::TextOutput out(devnull, 1 << 16);
  xml::MetadataWriter x(out);
  thin::HumanReadableWriter h(out);
  (void)thin::dump(*md, thin::DumpOptions{}, human ? static_cast<thin::MetadataSink&>(h) : x);
  (void)out.flush();
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::uint8_t> data;
  while (__AFL_LOOP(10000)) {
    data.clear();
    int fd = argc > 1 ? ::open(argv[1], O_RDONLY) : 0;
    std::uint8_t chunk[65536];
    ssize_t n;
    while ((n = ::read(fd, chunk, sizeof chunk)) > 0 && data.size() < (8u << 20))
      data.insert(data.end(), chunk, chunk + n);
    if (fd > 0) ::close(fd);
    one(data, false, false);
    one(data, true, true);
  }
  return 0;
}
