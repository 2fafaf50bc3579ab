// SPDX-License-Identifier: GPL-3.0-or-later
#include "bin/progress.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>

namespace thinmeta::cli {

namespace po = boost::program_options;

namespace {
constexpr auto kPeriod = std::chrono::milliseconds(250);

void write_stderr(const std::string& s) {
  std::size_t off = 0;
  while (off < s.size()) {
    ssize_t n = ::write(STDERR_FILENO, s.data() + off, s.size() - off);
    if (n <= 0) return;
    off += static_cast<std::size_t>(n);
  }
}
}  // namespace

void add_progress_options(po::options_description& opts) {
  opts.add_options()
      ("progress", "show progress on stderr even when it is not a terminal")
      ("no-progress", "never show progress");
}

bool progress_wanted(const po::variables_map& vm) {
  if (vm.count("no-progress")) return false;
  if (vm.count("progress")) return true;
  if (const char* e = std::getenv("THINMETA_PROGRESS"); e && *e) {
    if (std::strcmp(e, "0") == 0) return false;
    if (std::strcmp(e, "1") == 0) return true;
  }
  return ::isatty(STDERR_FILENO) == 1;
}

Progress::Progress(std::string tool, bool enabled)
    : tool_(std::move(tool)), enabled_(enabled), start_(std::chrono::steady_clock::now()) {
  // THINMETA_PROGRESS_DELAY_MS: the quiet first interval (tests set 0 to see every stage).
  if (const char* d = std::getenv("THINMETA_PROGRESS_DELAY_MS"); d && *d)
    delay_ = std::chrono::milliseconds(std::strtoul(d, nullptr, 10));
  if (enabled_) thread_ = std::thread([this] { loop(); });
}

Progress::~Progress() {
  if (!enabled_) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
  std::lock_guard<std::mutex> lock(mu_);
  erase_locked();
}

void Progress::stage(const std::string& title, const std::atomic<std::uint64_t>& counter,
                     std::uint64_t total) {
  stage(title, [&counter] { return counter.load(std::memory_order_relaxed); }, total);
}

void Progress::stage(const std::string& title, std::function<std::uint64_t()> sample,
                     std::uint64_t total, std::string unit) {
  if (!enabled_) return;
  std::uint64_t base = sample();
  std::lock_guard<std::mutex> lock(mu_);
  title_ = title;
  sample_ = std::move(sample);
  unit_ = std::move(unit);
  base_ = base;
  total_ = total;
  if (std::chrono::steady_clock::now() - start_ >= delay_) draw_locked();
}

void Progress::set_total(std::uint64_t total) {
  if (!enabled_) return;
  std::lock_guard<std::mutex> lock(mu_);
  total_ = total;
}

void Progress::clear() {
  if (!enabled_) return;
  std::lock_guard<std::mutex> lock(mu_);
  erase_locked();
}

void Progress::loop() {
  std::unique_lock<std::mutex> lock(mu_);
  if (cv_.wait_for(lock, delay_, [this] { return stop_; })) return;
  while (!stop_) {
    draw_locked();
    cv_.wait_for(lock, kPeriod, [this] { return stop_; });
  }
}

void Progress::draw_locked() {
  if (!sample_) return;
  std::uint64_t now = sample_();
  std::uint64_t done = now >= base_ ? now - base_ : 0;
  std::string line = tool_ + ": " + title_ + " ";
  if (total_) {
    // Never 100% before the end: the counts are estimates (gap reads, re-reads).
    line += std::to_string(std::min<std::uint64_t>(99, done * 100 / total_)) + "%";
  } else {
    line += std::to_string(done) + " " + unit_;
  }
  std::string out = "\r" + line;
  if (line.size() < last_len_) out += std::string(last_len_ - line.size(), ' ') + "\r" + line;
  last_len_ = line.size();
  shown_ = true;
  write_stderr(out);
}

void Progress::erase_locked() {
  if (!shown_) return;
  write_stderr("\r" + std::string(last_len_, ' ') + "\r");
  shown_ = false;
  last_len_ = 0;
}

}  // namespace thinmeta::cli
