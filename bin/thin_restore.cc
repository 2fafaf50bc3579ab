// SPDX-License-Identifier: GPL-3.0-or-later
// thin_restore: XML (as thin_dump prints it) -> fresh binary metadata on a file or device.
// Order of checks as 0.9.0 (REFERENCE-TOOLS.md §1.3), 1.3.3 wording. The whole input is
// parsed and validated, and the space checked, before the output is touched.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <iostream>
#include <memory>

#include "bin/cli.h"
#include "bin/progress.h"
#include "persistent-data/io/io_counters.h"
#include "persistent-data/io/io_engine.h"
#include "thin/restore/restorer.h"
#include "thin/restore/spill.h"
#include "xml/fast_reader.h"
#include "xml/metadata_reader.h"

namespace thinmeta::cli {
namespace {

const std::string kUsage = usage_text(
    "Usage: thin_restore [options] -i {xml file} -o {device|file}\n"
    "Writes the metadata described by an XML dump onto an existing device or file.\n"
    "Options:\n",
    {{"{-h|--help}", "Print this help and exit"},
     {"{-i|--input} <input xml file>", "The XML to read (as thin_dump prints it)"},
     {"{-o|--output} <output device or file>",
      "Where to write: a block device, or a regular file whose size sets the metadata size"},
     {"{--transaction-id} <natural>", "Use this transaction id instead of the XML's"},
     {"{--data-block-size} <natural>",
      "Use this data block size (sectors: a multiple of 128 from 128 to 2097152) instead of the "
      "XML's"},
     {"{--nr-data-blocks} <natural>",
      "Use this data device size (in data blocks) instead of the XML's"},
     {"{-q|--quiet}", "Accepted for compatibility (nothing is printed on success)"},
     {"{-V|--version}", "Print the version and exit"},
     kProgressRow});

Result<int> open_input(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0)
    return fail(Errc::kNotFound, "Couldn't find input file '" + path + "'");
  if (S_ISDIR(st.st_mode))
    return fail(Errc::kInvalidArgument, "Not a block device or regular file '" + path + "'.");
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return fail(Errc::kIo, "Couldn't open input file '" + path + "': " + std::strerror(errno));
  return fd;
}

int thin_restore_main(int argc, char** argv) {
  return run("thin_restore", kUsage, [&]() -> int {
    po::options_description opts;
    add_input_output_options(opts);
    add_superblock_override_options(opts);
    opts.add_options()("quiet,q", "");
    add_progress_options(opts);
    po::positional_options_description pos;
    auto vm = parse(normalize_args(argc, argv, {}), opts, pos);
    if (help_or_version(vm, kUsage)) return 0;
    const auto [in, out] = input_output(vm);
    thin::RestoreOptions ropts;
    SuperblockOverrides ov = superblock_overrides(vm);
    require_valid_data_block_size(ov);
    apply_overrides(ov, ropts);

    if (auto r = check_output(out); !r) return report(r.error());
    auto fd = open_input(in);
    if (!fd) return report(fd.error());
    if (same_file(in, out)) {
      ::close(*fd);
      return report(Error{Errc::kInvalidArgument, "The input and the output are the same file."});
    }
    auto lock = OutputLock::take(out);  // a second writer of the same file is refused
    if (!lock) {
      ::close(*fd);
      return report(lock.error());
    }

    // Parse and validate everything before the output is opened for writing. A regular file
    // is read twice (validate and count, then build), so memory does not grow with the
    // mappings; other inputs, and files with <def>s or unsorted mappings, are held in memory.
    struct stat st;
    const bool regular = ::fstat(*fd, &st) == 0 && S_ISREG(st.st_mode);
    ropts.streaming = regular;
    Progress progress("thin_restore", progress_wanted(vm));
    const int in_fd = *fd;
    progress.stage("reading the XML", [in_fd] {
      off_t at = ::lseek(in_fd, 0, SEEK_CUR);
      return at > 0 ? static_cast<std::uint64_t>(at) : 0;
    }, regular ? static_cast<std::uint64_t>(st.st_size) : 0, "bytes");
    std::unique_ptr<thin::Restorer> restorer;
    std::unique_ptr<thin::SpillSink> spill;  // the first pass, recorded for the second
    bool fast = false;  // whether the fast reader took the whole input
    auto rewind = [&]() -> Result<> {
      if (::lseek(*fd, 0, SEEK_SET) == 0) return {};
      return fail(Errc::kIo,
                  "Couldn't rewind input file '" + in + "': " + std::strerror(errno));
    };
    // Reads the whole input into a fresh Restorer: the fast reader first (regular files),
    // expat when it declines (anything it does not know, and every error, whose line and
    // column expat reports).
    auto parse = [&](const thin::RestoreOptions& o) -> Result<> {
      restorer = std::make_unique<thin::Restorer>(o);
      spill.reset();
      if (regular) {
        if (o.streaming) spill = std::make_unique<thin::SpillSink>(*restorer);
        thin::MetadataSink& first = spill ? static_cast<thin::MetadataSink&>(*spill) : *restorer;
        THINMETA_TRY(bool done, xml::read_metadata_pipelined(*fd, first));
        if (done) {
          fast = true;
          return {};
        }
        if (restorer->needs_memory())
          return fail(Errc::kInvalidArgument, "unsorted mappings need the in-memory restore");
        THINMETA_CHECK(rewind());
        restorer = std::make_unique<thin::Restorer>(o);
        spill.reset();
        if (o.streaming) spill = std::make_unique<thin::SpillSink>(*restorer);
      }
      fast = false;
      thin::MetadataSink& sink = spill ? static_cast<thin::MetadataSink&>(*spill) : *restorer;
      return xml::read_metadata(*fd, sink);
    };
    auto parsed = parse(ropts);
    if (!parsed && restorer->needs_memory() && rewind()) {
      ropts.streaming = false;
      parsed = parse(ropts);
    }
    if (!parsed) {
      ::close(*fd);
      return report(parsed.error());
    }
    progress.clear();
    // The second pass replays the record: reading the input again could read what the output
    // overwrote (the same storage under another name). No record, no write.
    if (auto r = thin::SpillSink::check(spill.get()); !r) {
      ::close(*fd);
      return report(r.error());
    }
    for (const std::string& w : restorer->warnings()) std::cerr << "Warning: " << w << "\n";

    pdata::OpenOptions oo;
    oo.writable = true;
    oo.exclusive = true;
    oo.engine = pdata::engine_from_env();
    auto io = pdata::open_engine(out, oo);
    if (!io) {
      ::close(*fd);
      return report(io.error());
    }
    if ((*io)->nr_blocks() > pdata::kMaxMetadataBlocks)
      std::cerr << "Warning: truncating metadata device to " << pdata::kMaxMetadataBlocks
                << " 4k blocks\n";
    progress.stage("writing", pdata::io_counters().blocks_written, 0);
    auto stats = restorer->commit(**io, [&](thin::MetadataSink& sink) -> Result<> {
      if (spill && spill->complete()) return spill->replay(sink);
      // Only a record past SpillSink::kMaxBytes gets here: the input is read again.
      THINMETA_CHECK(rewind());
      if (!fast) return xml::read_metadata(*fd, sink);
      THINMETA_TRY(bool done, xml::read_metadata_pipelined(*fd, sink));
      if (!done) return fail(Errc::kIo, "input file '" + in + "' changed while it was read");
      return {};
    });
    ::close(*fd);
    progress.clear();
    if (!stats) return report(stats.error());
    return 0;
  });
}

}  // namespace
THINMETA_TOOL(thin_restore, thin_restore_main);
}  // namespace thinmeta::cli
