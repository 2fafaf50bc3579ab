// SPDX-License-Identifier: GPL-3.0-or-later
// Progress of a long run on stderr (issue 13, item 15): nothing for the first second, then one
// line redrawn in place ("thin_check: checking space map counts 42%") about four times a second,
// erased when the run ends. Only when stderr is a terminal, unless forced:
//   THINMETA_PROGRESS=1 (or --progress) shows it anywhere, THINMETA_PROGRESS=0 (or
//   --no-progress) never; lvm2 and initramfs capture stderr, so a pipe or file never gets it
//   by default.
//
// Usage (any tool, thin_send/thin_receive/pack included):
//   Progress progress("thin_dump", progress_wanted(vm));   // vm: add_progress_options(opts)
//   progress.stage("dumping", pdata::io_counters().blocks_read, nr_blocks_to_read);
//   ... work (the engines advance pdata::io_counters(); or pass any counter you advance) ...
//   progress.stage("writing", my_counter, total);           // a new stage restarts from 0
//   progress.stage("reading", [fd] { return offset(fd); }, file_size, "bytes");
// The counter is sampled by a helper thread; `total` 0 shows the count instead of a percentage.
// The line goes to stderr only; the destructor erases it (also on error paths), so a message
// printed afterwards starts on a clean line. A tool printing while the line may be shown calls
// progress.clear() first. THINMETA_PROGRESS_DELAY_MS replaces the first second (tests: 0).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include <boost/program_options.hpp>

namespace thinmeta::cli {

// Adds --progress and --no-progress to a tool's options.
void add_progress_options(boost::program_options::options_description& opts);
// --progress / --no-progress, else THINMETA_PROGRESS (0 or 1), else whether stderr is a tty.
bool progress_wanted(const boost::program_options::variables_map& vm);

class Progress {
 public:
  Progress(std::string tool, bool enabled);
  ~Progress();
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  // From now on shows `title` and (counter - its value now) of `total`. `counter` must outlive
  // the stage (the next stage() or the destructor).
  void stage(const std::string& title, const std::atomic<std::uint64_t>& counter,
             std::uint64_t total);
  // The same with any sample (called on the helper thread; must be thread-safe), e.g. the
  // offset of an input file descriptor; `unit` names what is counted when total is 0.
  void stage(const std::string& title, std::function<std::uint64_t()> sample,
             std::uint64_t total, std::string unit = "blocks");
  // Sets a new total for the current stage (once it is known).
  void set_total(std::uint64_t total);
  // Erases the line if shown (before printing something else to stderr).
  void clear();

 private:
  void loop();
  void draw_locked();
  void erase_locked();

  std::string tool_;
  bool enabled_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  bool shown_ = false;
  std::string title_;
  std::function<std::uint64_t()> sample_;
  std::string unit_;
  std::uint64_t base_ = 0, total_ = 0;
  std::size_t last_len_ = 0;
  std::chrono::steady_clock::time_point start_;
  std::chrono::milliseconds delay_{1000};
  std::thread thread_;
};

}  // namespace thinmeta::cli
