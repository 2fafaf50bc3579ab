// SPDX-License-Identifier: GPL-3.0-or-later
// thin_shrink: make a pool's data device smaller. The data blocks at or beyond --nr-blocks N
// are moved into free blocks below N (thin/shrink.h), their contents copied on the data device
// (data-plane copier: large asynchronous O_DIRECT requests) unless --no-copy, and metadata
// whose data device has N blocks is written: XML by default, binary with --binary (1.3.3's
// options). Everything is read and checked, and the space counted, before anything is
// written; the data is copied before the metadata that points at it is written.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <iostream>
#include <memory>
#include <optional>

#include "bin/cli.h"
#include "data-plane/copier.h"
#include "data-plane/data_device.h"
#include "persistent-data/io/io_engine.h"
#include "thin/dump.h"
#include "thin/metadata.h"
#include "thin/restore/restorer.h"
#include "thin/shrink.h"
#include "thin/text_output.h"
#include "xml/metadata_reader.h"
#include "xml/metadata_writer.h"

namespace thinmeta::cli {
namespace {

const char* const kUsage =
    "Moves the data blocks of an inactive pool below a new data device size and writes the\n"
    "metadata for that size.\n"
    "\n"
    "Usage: thin_shrink [OPTIONS] --input <FILE> --output <FILE> --nr-blocks <NUM>\n"
    "                   {--data <DEV> | --no-copy}\n"
    "\n"
    "Options:\n"
    "      --binary           Input and output are binary metadata (default: XML)\n"
    "      --data <DEV>       The pool's data device, on which the data blocks are moved\n"
    "  -h, --help             Print help\n"
    "  -i, --input <FILE>     Specify the input metadata (XML, or binary with --binary)\n"
    "      --no-copy          Do not copy the data (only rewrite the metadata)\n"
    "      --nr-blocks <NUM>  The new size of the data device, in data blocks\n"
    "  -o, --output <FILE>    Specify the output metadata (XML, or an existing binary\n"
    "                         metadata file or device with --binary)\n"
    "  -V, --version          Print version\n";

// Copies the plan's moves on the data device (the sources are all >= N, the destinations
// all < N: no move overwrites the source of another).
Result<> copy_data(const std::string& path, const thin::ShrinkPlan& plan) {
  dataplane::DeviceOptions o;
  o.writable = true;
  o.exclusive = true;
  THINMETA_TRY(auto dev, dataplane::DataDevice::open(path, o));
  const std::uint64_t bytes = std::uint64_t{plan.data_block_size} * 512;
  if (dev->size_bytes() / bytes < plan.old_nr_blocks)
    return fail(Errc::kTooSmall, "unexpected data device size, wanted " +
                                     std::to_string(plan.old_nr_blocks * bytes) + " bytes");
  std::size_t i = 0;
  auto next = [&]() -> Result<std::optional<dataplane::Extent>> {
    if (i == plan.moves.size()) return std::optional<dataplane::Extent>();
    const thin::DataMove& m = plan.moves[i++];
    return std::optional<dataplane::Extent>(dataplane::Extent{m.src * bytes, m.dst * bytes,
                                                              m.len * bytes, 0});
  };
  THINMETA_CHECK(dataplane::copy_extents(*dev, *dev, next));
  return dev->sync();
}

int thin_shrink_main(int argc, char** argv) {
  return run("thin_shrink", kUsage, [&]() -> int {
    po::options_description opts;
    add_input_output_options(opts);
    opts.add_options()
        ("data", po::value<std::string>(), "")
        ("nr-blocks", po::value<std::string>(), "")
        ("no-copy", "")
        ("binary", "");
    auto vm = parse(normalize_args(argc, argv, {}), opts, {});
    if (help_or_version(vm, kUsage)) return 0;
    const auto [in, out] = input_output(vm);
    if (!vm.count("nr-blocks")) throw UsageError{"No --nr-blocks given."};
    const bool copy = !vm.count("no-copy");
    if (copy && !vm.count("data")) throw UsageError{"No data device given (--data, or --no-copy)."};
    const std::uint64_t nr_blocks = parse_u64(vm["nr-blocks"].as<std::string>(), "nr blocks");
    const bool binary = vm.count("binary") > 0;
    if (same_file(in, out))
      return report({Errc::kInvalidArgument, "The input and the output are the same file."});

    // The input, as a source that can be read once per pass.
    std::optional<thin::Metadata> md;
    int xml_fd = -1;
    thin::MetadataSource source;
    if (binary) {
      auto m = thin::open_metadata(in, {});
      if (!m) return report(m.error());
      md.emplace(std::move(*m));
      // Blocks only a held metadata snapshot maps look free to the live trees: moving data over
      // them would damage the snapshot, and the new metadata could not keep it anyway.
      if (md->live().held_root != 0)
        return report({Errc::kInvalidArgument,
                       "The metadata holds a metadata snapshot (block " +
                           std::to_string(md->live().held_root) + "): release it first."});
      source = [&](thin::MetadataSink& s) { return thin::dump(*md, {}, s); };
    } else {
      struct stat st;
      if (::stat(in.c_str(), &st) != 0)
        return report({Errc::kNotFound, "Couldn't find input file '" + in + "'"});
      if (!S_ISREG(st.st_mode))
        return report(
            {Errc::kInvalidArgument, "Not a regular file '" + in + "' (the XML is read twice)."});
      xml_fd = ::open(in.c_str(), O_RDONLY | O_CLOEXEC);
      if (xml_fd < 0)
        return report(
            {Errc::kIo, "Couldn't open input file '" + in + "': " + std::strerror(errno)});
      source = [&](thin::MetadataSink& s) -> Result<> {
        if (::lseek(xml_fd, 0, SEEK_SET) != 0)
          return fail(Errc::kIo,
                      "Couldn't rewind input file '" + in + "': " + std::strerror(errno));
        return xml::read_metadata(xml_fd, s);
      };
    }
    struct Closer {
      int fd;
      ~Closer() { if (fd >= 0) ::close(fd); }
    } closer{xml_fd};

    auto plan = thin::plan_shrink(source, nr_blocks);
    if (!plan) return report(plan.error());

    if (binary) {
      // Validate the whole output (first pass of the restorer) before the data moves.
      if (auto r = check_output(out); !r) return report(r.error());
      thin::RestoreOptions ro;
      ro.streaming = true;
      auto restorer = std::make_unique<thin::Restorer>(ro);
      thin::ShrinkRemapper first(*plan, *restorer);
      auto counted = source(first);
      if (!counted && restorer->needs_memory()) {
        ro.streaming = false;
        restorer = std::make_unique<thin::Restorer>(ro);
        thin::ShrinkRemapper again(*plan, *restorer);
        counted = source(again);
      }
      if (!counted) return report(counted.error());
      if (copy)
        if (auto r = copy_data(vm["data"].as<std::string>(), *plan); !r) return report(r.error());
      pdata::OpenOptions oo;
      oo.writable = true;
      oo.exclusive = true;
      auto io = pdata::open_engine(out, oo);
      if (!io) return report(io.error());
      auto written = ro.streaming
                         ? restorer->commit(**io, [&](thin::MetadataSink& s) -> Result<> {
                             thin::ShrinkRemapper replay(*plan, s);
                             return source(replay);
                           })
                         : restorer->commit(**io);
      if (!written) return report(written.error());
      return 0;
    }

    if (copy)
      if (auto r = copy_data(vm["data"].as<std::string>(), *plan); !r) return report(r.error());
    auto file = OutputFile::open(out);
    if (!file) return report(file.error());
    {
      thin::TextOutput text(file->fd());
      xml::MetadataWriter writer(text);
      thin::ShrinkRemapper remap(*plan, writer);
      if (auto r = source(remap); !r) return report(r.error());
      if (auto r = text.flush(); !r) return report(r.error());
    }
    if (auto r = file->commit(); !r) return report(r.error());
    return 0;
  });
}

}  // namespace
THINMETA_TOOL(thin_shrink, thin_shrink_main);
}  // namespace thinmeta::cli
