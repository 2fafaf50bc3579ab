// SPDX-License-Identifier: GPL-3.0-or-later
#include "bin/cleanup.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <mutex>

namespace thinmeta::cli {
namespace {

// Each slot holds a heap copy of a path, or nullptr. The handler only reads the pointers;
// a path is freed after its slot is cleared, under the mutex (never inside the handler).
std::atomic<char*> g_paths[kMaxCleanupPaths];
std::mutex g_mutex;
constexpr int kSignals[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};

void on_signal(int sig) {
  for (auto& slot : g_paths)
    if (char* p = slot.load()) ::unlink(p);
  ::signal(sig, SIG_DFL);  // then die of it, as without the handler
  ::raise(sig);
}

}  // namespace

void install_cleanup_handlers() {
  static std::once_flag once;
  std::call_once(once, [] {
    for (int sig : kSignals) {
      struct sigaction old;
      if (::sigaction(sig, nullptr, &old) != 0) continue;
      if (old.sa_handler == SIG_IGN) continue;  // nohup & co: an ignored signal stays ignored
      struct sigaction sa;
      std::memset(&sa, 0, sizeof sa);
      sa.sa_handler = on_signal;
      ::sigfillset(&sa.sa_mask);  // no second signal while the handler unlinks
      ::sigaction(sig, &sa, nullptr);
    }
  });
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
