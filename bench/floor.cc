// SPDX-License-Identifier: GPL-3.0-or-later
// bench/floor: the I/O floor of an image. Reads every metadata block the metadata space map
// marks as used, once, and checksums each one. Every tool's time is shown against this in the
// benchmark table. Cold (default): O_DIRECT through the asynchronous engine, what reading the
// device costs. Warm (--warm): the same blocks read through the page cache with the sync
// engine (the same batches, one pread per run of adjacent blocks), after one untimed pass has
// pulled them in: what a device faster than the CPU costs. Prints the number of used blocks,
// the wall seconds, the checksums' xor and the CPU seconds (user + system) of the timed pass.
//
// Write floor (--write <xml> <out> <blocks>): what thin_restore cannot avoid on that XML. It
// reads the XML once (1 MiB reads, as restore's reader does: the input's page-cache copy),
// then writes <blocks> blocks (the count our restore writes for that XML: the used blocks of
// its output) the way restore writes them: the engine THINMETA_IO_ENGINE names (O_DIRECT or
// not, as restore opens its output), block 0 zeroed and flushed first, blocks 1.. in
// ascending batches of kRestoreBatchBlocks through BlockWriter (a helper thread writes one
// batch while the next is filled), each block zeroed, given its address and checksummed,
// then a flush, block 0 and a last flush. Prints the blocks written, the wall seconds, the
// checksums' xor and the CPU seconds, like the read floors.
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <cstdio>
#include <vector>

#include "persistent-data/checksum.h"
#include "persistent-data/crc32c.h"
#include "persistent-data/endian.h"
#include "persistent-data/io/block_writer.h"
#include "persistent-data/io/io_engine.h"
#include "persistent-data/space_map/space_map_format.h"
#include "thin/restore/restorer.h"
#include "thin/superblock.h"

using namespace thinmeta;
using namespace thinmeta::pdata;

namespace {

double cpu_seconds() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  auto s = [](const timeval& t) { return static_cast<double>(t.tv_sec) + t.tv_usec * 1e-6; };
  return s(ru.ru_utime) + s(ru.ru_stime);
}

// Reads `used` in batches and checksums every block; returns the checksums' xor.
std::uint32_t read_all(IoEngine& io, const std::vector<BlockAddr>& used) {
  constexpr std::size_t kBatch = 1024;
  AlignedBuffer buf(kBatch);
  std::vector<int> errs(kBatch);
  std::uint32_t x = 0;
  for (std::size_t i = 0; i < used.size(); i += kBatch) {
    std::size_t n = std::min(kBatch, used.size() - i);
    io.read_many(std::span<const BlockAddr>(used.data() + i, n), buf.data(),
                 std::span<int>(errs.data(), n));
    for (std::size_t k = 0; k < n; ++k) x ^= crc32c_update(~0u, buf.block(k) + 4, kBlockSize - 4);
  }
  return x;
}

// The used metadata blocks, from the superblock and the metadata space map's bitmaps.
bool collect_used(IoEngine& io, std::vector<BlockAddr>& used) {
  auto sb = thin::read_superblock(io, 0);
  if (!sb) {
    std::fprintf(stderr, "%s\n", sb.error().what.c_str());
    return false;
  }
  AlignedBuffer index(1);
  if (!io.read(sb->metadata_sm.bitmap_root, index.data())) return false;
  std::uint64_t nr = sb->metadata_sm.nr_blocks;
  std::uint64_t nr_bitmaps = (nr + kEntriesPerBitmap - 1) / kEntriesPerBitmap;
  AlignedBuffer bm(1);
  for (std::uint64_t i = 0; i < nr_bitmaps; ++i) {
    IndexEntry e = decode_index_entry(index.data() + 16 + i * kIndexEntrySize);
    if (!io.read(e.blocknr, bm.data())) return false;
    for (std::uint64_t k = 0; k < kEntriesPerBitmap && i * kEntriesPerBitmap + k < nr; ++k)
      if (bitmap_entry(bm.data(), k)) used.push_back(i * kEntriesPerBitmap + k);
  }
  return true;
}

// Reads the whole file once in 1 MiB reads; returns its size or -1.
long long read_input(const char* path) {
  int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  constexpr std::size_t kBuf = 1 << 20;
  std::vector<char> buf(kBuf);
  long long total = 0;
  for (;;) {
    ssize_t n = ::read(fd, buf.data(), kBuf);
    if (n <= 0) {
      ::close(fd);
      return n < 0 ? -1 : total;
    }
    total += n;
  }
}

int write_floor(const char* xml, const char* out, const char* count) {
  char* endp = nullptr;
  unsigned long long blocks = std::strtoull(count, &endp, 10);
  if (!*count || *endp || blocks < 1) {
    std::fprintf(stderr, "bad block count '%s'\n", count);
    return 1;
  }
  OpenOptions oo;
  oo.writable = true;
  oo.exclusive = true;
  oo.engine = engine_from_env();  // as thin_restore opens its output
  auto io = open_engine(out, oo);
  if (!io) {
    std::fprintf(stderr, "%s\n", io.error().what.c_str());
    return 1;
  }
  double c0 = cpu_seconds();
  auto t0 = std::chrono::steady_clock::now();
  if (read_input(xml) < 0) {
    std::fprintf(stderr, "cannot read %s\n", xml);
    return 1;
  }
  AlignedBuffer sb(1);
  std::uint32_t x = 0;
  auto ok = (*io)->write(0, sb.data());
  if (ok) ok = (*io)->flush();
  if (ok) {
    BlockWriter w(io->get(), 1, (*io)->nr_blocks(), thin::kRestoreBatchBlocks);
    for (std::uint64_t i = 1; i < blocks; ++i) {
      BlockAddr a;
      std::uint8_t* p = w.alloc(a);
      std::memcpy(p + 8, &a, sizeof a);  // a node header's own address (blocknr)
      stamp_checksum(p, BlockKind::kNode);
      x ^= load_le32(p);
    }
    ok = w.finish();
  }
  if (ok) ok = (*io)->flush();
  if (ok) ok = (*io)->write(0, sb.data());
  if (ok) ok = (*io)->flush();
  if (!ok) {
    std::fprintf(stderr, "%s\n", ok.error().what.c_str());
    return 1;
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("%llu %.4f %08x %.4f\n", blocks, secs, x, cpu_seconds() - c0);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 5 && std::strcmp(argv[1], "--write") == 0)
    return write_floor(argv[2], argv[3], argv[4]);
  bool warm = argc == 3 && std::strcmp(argv[1], "--warm") == 0;
  if (argc != 2 && !warm) {
    std::fprintf(stderr, "usage: floor [--warm] <metadata image>\n"
                         "       floor --write <xml> <output> <blocks>\n");
    return 1;
  }
  OpenOptions oo;
  // Cold: O_DIRECT, what reading the device costs; warm: pread from the page cache.
  oo.engine = warm ? EngineKind::kSync : EngineKind::kAio;
  auto io = open_engine(argv[argc - 1], oo);
  if (!io) {
    std::fprintf(stderr, "%s\n", io.error().what.c_str());
    return 1;
  }
  std::vector<BlockAddr> used;
  if (warm) {  // one untimed pass: everything the timed one reads is in the page cache
    if (!collect_used(**io, used)) return 1;
    read_all(**io, used);
    used.clear();
  }
  double c0 = cpu_seconds();
  auto t0 = std::chrono::steady_clock::now();
  if (!collect_used(**io, used)) return 1;
  std::uint32_t x = read_all(**io, used);
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("%zu %.4f %08x %.4f\n", used.size(), secs, x, cpu_seconds() - c0);
  return 0;
}
