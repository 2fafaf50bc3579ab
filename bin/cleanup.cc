// SPDX-License-Identifier: GPL-3.0-or-later
#include "bin/cleanup.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <mutex>

#include "persistent-data/io/mmap_engine.h"

namespace thinmeta::cli {
namespace {

// Each slot holds a heap copy of a path, or nullptr. The handler only reads the pointers;
// a path is freed after its slot is cleared, under the mutex (never inside the handler).
std::atomic<char*> g_paths[kMaxCleanupPaths];
std::mutex g_mutex;
constexpr int kSignals[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};
struct sigaction g_old[std::size(kSignals)];

void unlink_registered() {
  for (auto& slot : g_paths)
    if (char* p = slot.load()) ::unlink(p);
}

extern "C" void cleanup_on_signal(int sig) {
  unlink_registered();
  // Then what was there before: another handler (chained), or death by the signal.
  for (std::size_t i = 0; i < std::size(kSignals); ++i) {
    if (kSignals[i] != sig) continue;
    if (!(g_old[i].sa_flags & SA_SIGINFO) && g_old[i].sa_handler != SIG_DFL &&
        g_old[i].sa_handler != SIG_IGN) {
      g_old[i].sa_handler(sig);
      return;
    }
  }
  ::signal(sig, SIG_DFL);
  ::raise(sig);
}

}  // namespace

void install_cleanup_handlers() {
  static std::once_flag once;
  std::call_once(once, [] {
    // A mapped input that faults (truncated under the mapping) ends the process too.
    pdata::set_mapped_fault_hook(unlink_registered);
    for (std::size_t i = 0; i < std::size(kSignals); ++i) {
      if (::sigaction(kSignals[i], nullptr, &g_old[i]) != 0) continue;
      if (g_old[i].sa_handler == SIG_IGN) continue;  // nohup & co: an ignored signal stays ignored
      struct sigaction sa;
      std::memset(&sa, 0, sizeof sa);
      sa.sa_handler = cleanup_on_signal;
      ::sigfillset(&sa.sa_mask);  // no second signal while the handler unlinks
      ::sigaction(kSignals[i], &sa, nullptr);
    }
  });
}

CleanupSignalsHeld::CleanupSignalsHeld() {
  install_cleanup_handlers();  // a signal other threads take meanwhile unlinks what is registered
  sigset_t block;
  ::sigemptyset(&block);
  for (int s : kSignals) ::sigaddset(&block, s);
  ::pthread_sigmask(SIG_BLOCK, &block, &old_);
}

CleanupSignalsHeld::~CleanupSignalsHeld() {
  ::pthread_sigmask(SIG_SETMASK, &old_, nullptr);
}

int register_cleanup(const std::string& path) {
  install_cleanup_handlers();
  std::lock_guard<std::mutex> lock(g_mutex);
  for (int i = 0; i < kMaxCleanupPaths; ++i) {
    if (g_paths[i].load()) continue;
    char* copy = ::strdup(path.c_str());
    if (!copy) return -1;
    g_paths[i].store(copy);
    return i;
  }
  return -1;
}

void unregister_cleanup(int slot) {
  if (slot < 0 || slot >= kMaxCleanupPaths) return;
  std::lock_guard<std::mutex> lock(g_mutex);
  std::free(g_paths[slot].exchange(nullptr));
}

}  // namespace thinmeta::cli
