// SPDX-License-Identifier: GPL-3.0-or-later
// What every frontend shares: tool registration for the multi-call binary, argument
// normalisation, number parsing, safe output files, and the mapping of every failure to one
// line on stderr and exit status 1 (never 2: lvm2 reads 2 as "not installed").
#pragma once

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/program_options.hpp>

#include "persistent-data/result.h"
#include "thin/metadata.h"

namespace thinmeta::cli {

namespace po = boost::program_options;

inline constexpr const char* kVersion = "1.0.0";

using ToolMain = int (*)(int argc, char** argv);
struct ToolRegistration {
  ToolRegistration(const char* name, ToolMain fn);
};
const std::map<std::string, ToolMain>& tools();
#define THINMETA_TOOL(name, fn) \
  static const ::thinmeta::cli::ToolRegistration thinmeta_reg_##name(#name, fn)

// A --help text: `head`, then one "  <option>  <what it does>" line per row (the second column
// aligned; an option too wide for it puts its text on the next line), then `tail`.
struct HelpRow {
  std::string_view option, text;
};
std::string usage_text(std::string_view head, std::initializer_list<HelpRow> rows,
                       std::string_view tail = "");
// The row of --progress/--no-progress (bin/progress.h), the same in every tool that has them.
inline constexpr HelpRow kProgressRow{
    "{--progress|--no-progress}",
    "Force progress on stderr on or off (default: only on a terminal)"};

// Thrown by frontends for argument errors; run() prints "<tool>: <what>" and a pointer to --help.
struct UsageError {
  std::string what;
};

// 1.3.3's (clap's) wording for a required argument left out, e.g. missing_argument("<INPUT>")
// or missing_argument("--input <FILE>").
UsageError missing_argument(const std::string& name);

// Throws missing_argument("--NAME <FILE>") for the first of `names` absent or empty in vm.
void require_file_options(const po::variables_map& vm, std::initializer_list<const char*> names);

// Runs a frontend body: maps UsageError, boost::program_options errors and std::exceptions to
// one line on stderr (UsageError and option errors add one line pointing at --help; the usage
// itself is only printed by --help), and any non-zero status to 1.
int run(const std::string& tool, const std::string& usage, const std::function<int()>& body);

// Prints an Error as one line on stderr (nothing for a broken pipe) and returns 1.
int report(const Error& e);

// The value a bare optional-value option gets after normalize_args.
inline constexpr const char* kNoValue = "<none>";

// argv -> vector, with the optional attached value of an option made explicit: a bare `-m`
// or `--metadata-snap` (or an unambiguous prefix of it) becomes `--metadata-snap=<none>`, so the
// value is only ever taken attached (`-m132`, `--metadata-snap=132`), never from the next word.
std::vector<std::string> normalize_args(int argc, char** argv,
                                        const std::vector<std::pair<char, std::string>>& optional_value_opts);

po::variables_map parse(const std::vector<std::string>& args,
                        const po::options_description& opts,
                        const po::positional_options_description& pos);

// -h prints the usage, -V the bare version (lvm2 parses it), both on stdout. True if either.
bool help_or_version(const po::variables_map& vm, const std::string& usage);

std::uint64_t parse_u64(const std::string& s, const std::string& what);

// The single input path: empty positional arguments (older lvm2 passes "") are ignored;
// the first remaining one is the input.
std::optional<std::string> input_path(const po::variables_map& vm, const char* key = "input");

// The root a read tool starts from: with --metadata-snap (normalised -m) the held root, at the
// block given if any (kNoValue: the one the superblock names), else the live one.
thin::RootSelector root_selector(const po::variables_map& vm);

// -h/--help, -V/--version, -i/--input and -o/--output: the options of the tools that turn one
// file into another (thin_repair, thin_restore, thin_shrink, thin_metadata_pack/unpack).
void add_input_output_options(po::options_description& opts);
// Their --input and --output, both required (missing_argument for the first one absent).
struct InputOutput {
  std::string in, out;
};
InputOutput input_output(const po::variables_map& vm);

// --transaction-id, --data-block-size, --nr-data-blocks (thin_dump --repair, thin_repair,
// thin_restore): add_superblock_override_options declares them, superblock_overrides reads
// them and apply_overrides copies them into a tool's options (the fields of the same names).
void add_superblock_override_options(po::options_description& opts);
struct SuperblockOverrides {
  std::optional<std::uint64_t> trans_id;
  std::optional<std::uint32_t> data_block_size;
  std::optional<std::uint64_t> nr_data_blocks;
};
SuperblockOverrides superblock_overrides(const po::variables_map& vm);
template <class Options>
void apply_overrides(const SuperblockOverrides& o, Options& to) {
  to.trans_id = o.trans_id;
  to.data_block_size = o.data_block_size;
  to.nr_data_blocks = o.nr_data_blocks;
}
// thin_restore / thin_repair write the block size: one the kernel rejects is an argument error
// naming the option (a multiple of 128 sectors from 128 to 2097152).
void require_valid_data_block_size(const SuperblockOverrides& o);

// The output of thin_restore / thin_repair must already exist (its size sets the metadata
// size) and be a regular file (>= 40960 bytes) or a block device. 1.3.3 wording.
Result<> check_output(const std::string& path);

// The guard of 1.3.3's pack, unpack and shrink outputs: unless `force`, an output whose first
// block carries a thin, cache or era superblock checksum is only overwritten after the user
// answers y or yes on stdin to `The destination appears to already contain metadata, are you
// sure? [y/n]: `. Anything else fails with "Output file not overwritten".
Result<> confirm_overwrite(const std::string& path, bool force);

// Whether two paths name the same file or block device, a loop device and its backing file
// included (false when either does not exist). Same as same_storage().
bool same_file(const std::string& a, const std::string& b);

// Output to a path without ever leaving a half-written file (the rules are in the man pages of
// thin_dump and thin_metadata_pack):
// - a regular file (new or replaced) is written to a temporary file beside it and renamed by
//   commit(); a symlink is followed and the temporary made beside its target, so the link
//   stays a link. A new file gets 0666 & ~umask; a replaced one keeps its mode and owner. The
//   temporary is removed on every exit path, SIGINT/SIGTERM/SIGHUP/SIGQUIT included
//   (bin/cleanup.h); without commit() the old file is untouched.
// - devices, pipes, sockets and /proc/self/fd, /dev/fd/N, /dev/std* paths are written in place
//   (an already open descriptor is used through a dup, so a shell's `>>` still appends).
// - a regular file with other hard links is refused (a rename would split the links), and so
//   is one that cannot be replaced (its directory is read-only, or its owner cannot be kept)
//   unless it can be written in place: it is then truncated and written in place.
class OutputFile {
 public:
  static Result<OutputFile> open(const std::string& path);
  OutputFile(OutputFile&& o) noexcept;
  OutputFile& operator=(OutputFile&&) = delete;
  ~OutputFile();
  int fd() const { return fd_; }
  Result<> commit();

 private:
  OutputFile(std::string path, std::string tmp, int fd);
  std::string path_, tmp_;
  int fd_ = -1;
  int cleanup_slot_ = -1;
};

// Where a tool that writes stdout unless told otherwise writes (thin_dump, thin_send): the file
// -o/--output names, as an OutputFile the caller commits, else stdout.
struct OutputOption {
  std::optional<OutputFile> file;  // empty: stdout
  int fd() const;
};
Result<OutputOption> open_output_option(const po::variables_map& vm);

// Whether two paths name the same storage: the same inode, the same block device, or a loop
// device and the file behind it (either way round).
bool same_storage(const std::string& a, const std::string& b);

// Takes an exclusive advisory lock (flock) on a regular file that a tool is about to write, so
// a second writer of the same file is refused instead of interleaving; no-op for devices
// (O_EXCL protects those). The lock lasts while `fd` is open.
Result<> lock_output(int fd, const std::string& path);

// Opens `path` only to hold lock_output() on it until destroyed (thin_restore, thin_repair,
// thin_check --auto-repair: the engine's own descriptor stays private to persistent-data).
class OutputLock {
 public:
  static Result<OutputLock> take(const std::string& path);
  OutputLock(OutputLock&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  OutputLock& operator=(OutputLock&&) = delete;
  ~OutputLock();

 private:
  explicit OutputLock(int fd) : fd_(fd) {}
  int fd_;
};

}  // namespace thinmeta::cli
