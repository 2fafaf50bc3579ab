// SPDX-License-Identifier: GPL-3.0-or-later
#include "dm/snap_hold.h"

#include <errno.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <vector>

#include "thin/mapping_tree.h"

namespace thinmeta::dm {

namespace {

// State shared with the signal handler: set up in acquire(), before the handlers go in.
enum : int { kNone = 0, kReserved = 1, kReleasing = 2 };
std::atomic<int> g_state{kNone};
int g_fd = -1;
alignas(8) std::byte g_release[1024];
unsigned long g_request = 0;

constexpr int kSignals[] = {SIGINT, SIGTERM, SIGHUP, SIGPIPE};
struct sigaction g_old[std::size(kSignals)];
bool g_installed[std::size(kSignals)] = {};
static_assert(std::atomic<int>::is_always_lock_free);

void write_str(const char* s) {
  std::size_t n = std::strlen(s);
  while (n > 0) {
    ssize_t w = ::write(2, s, n);
    if (w <= 0) return;
    s += w;
    n -= static_cast<std::size_t>(w);
  }
}

// The handler that was there before ours, for signal `sig` (nullptr: default or ignore).
void (*previous_handler(int sig))(int) {
  for (std::size_t i = 0; i < std::size(kSignals); ++i)
    if (kSignals[i] == sig && !(g_old[i].sa_flags & SA_SIGINFO) && g_old[i].sa_handler != SIG_DFL &&
        g_old[i].sa_handler != SIG_IGN)
      return g_old[i].sa_handler;
  return nullptr;
}

volatile sig_atomic_t g_in_handler = 0;  // a chain of handlers that leads back to ours

void snap_hold_on_signal(int sig) {
  if (g_in_handler) return;
  g_in_handler = 1;
  const int state = g_state.load();
  if (state == kNone) {
    // Not holding (released; a handler installed after ours still calls it): be transparent.
    if (auto prev = previous_handler(sig)) {
      prev(sig);
    } else {
      ::signal(sig, SIG_DFL);
      ::raise(sig);  // delivered when the handler returns
    }
    g_in_handler = 0;
    return;
  }
  int expected = kReserved;
  bool released = false;
  if (g_state.compare_exchange_strong(expected, kReleasing)) {
    released = ::ioctl(g_fd, g_request, g_release) == 0;
    g_state.store(kNone);
  } else {
    // Another thread is releasing: let it finish (the exit would not stop its ioctl, but the
    // process must not report before the snapshot is gone).
    while (g_state.load() == kReleasing) ::sched_yield();
  }
  if (sig != SIGPIPE) {
    write_str(program_invocation_short_name);
    write_str(sig == SIGINT    ? ": interrupted (SIGINT)"
              : sig == SIGTERM ? ": terminated (SIGTERM)"
                               : ": hangup (SIGHUP)");
    write_str(released ? "; metadata snapshot released\n" : "\n");
  }
  // A handler installed before ours (bin/cleanup.h: temporary files) runs too; a signal it
  // raises stays blocked until the exit.
  if (auto prev = previous_handler(sig)) prev(sig);
  ::_exit(1);
}

void install_handlers() {
  for (std::size_t i = 0; i < std::size(kSignals); ++i) {
    struct sigaction sa;
    std::memset(&sa, 0, sizeof sa);
    sa.sa_handler = snap_hold_on_signal;
    sigfillset(&sa.sa_mask);
    if (::sigaction(kSignals[i], nullptr, &g_old[i]) != 0) continue;
    if (g_old[i].sa_handler == SIG_IGN) continue;  // an ignored signal stays ignored
    g_installed[i] = ::sigaction(kSignals[i], &sa, nullptr) == 0;
  }
}

// Puts the old handlers back where ours is still the one installed; a handler installed over
// ours keeps calling ours, which is then transparent.
void restore_handlers() {
  for (std::size_t i = 0; i < std::size(kSignals); ++i) {
    if (!g_installed[i]) continue;
    struct sigaction cur;
    if (::sigaction(kSignals[i], nullptr, &cur) == 0 && cur.sa_handler == snap_hold_on_signal)
      ::sigaction(kSignals[i], &g_old[i], nullptr);
    g_installed[i] = false;
  }
}

}  // namespace

Result<PoolStatus> pool_status(const Control& ctl, const std::string& pool_name) {
  THINMETA_TRY(auto st, ctl.status(DevRef{pool_name, 0}));
  if (st.size() != 1 || st[0].type != "thin-pool")
    return fail(Errc::kInvalidArgument, "'" + pool_name + "' is not a thin-pool device");
  return parse_pool_status(st[0].params);
}

Result<std::unique_ptr<MetadataSnapHold>> MetadataSnapHold::acquire(const Control& ctl,
                                                                    const std::string& pool) {
  if (g_state.load() != kNone)
    return fail(Errc::kInvalidArgument, "a metadata snapshot is held by this process already");
  THINMETA_TRY(PoolStatus st, pool_status(ctl, pool));
  if (st.held_root)
    return std::unique_ptr<MetadataSnapHold>(new MetadataSnapHold(ctl, pool, *st.held_root, false));
  if (st.mode != "rw")
    return fail(Errc::kIo, "cannot reserve a metadata snapshot: pool '" + pool + "' is in " +
                               st.mode + " mode");

  // Everything the handler needs is ready before the reservation exists, and the handlers are
  // in before the ioctl: a signal in between releases it.
  if (!build_message_request(g_release, pool, 0, "release_metadata_snap"))
    return fail(Errc::kInvalidArgument, "device-mapper name too long: '" + pool + "'");
  g_fd = ctl.fd();
  g_request = message_request_number();
  sigset_t block, old;
  sigemptyset(&block);
  for (int s : kSignals) sigaddset(&block, s);
  ::pthread_sigmask(SIG_BLOCK, &block, &old);
  install_handlers();
  auto r = ctl.message(pool, 0, "reserve_metadata_snap");
  if (r) g_state.store(kReserved);
  ::pthread_sigmask(SIG_SETMASK, &old, nullptr);  // pending signals are handled here
  if (!r) {
    restore_handlers();
    // Someone else may have reserved one meanwhile (the kernel allows one): use theirs.
    THINMETA_TRY(PoolStatus again, pool_status(ctl, pool));
    if (again.held_root)
      return std::unique_ptr<MetadataSnapHold>(
          new MetadataSnapHold(ctl, pool, *again.held_root, false));
    return std::unexpected(r.error());
  }
  std::unique_ptr<MetadataSnapHold> hold(new MetadataSnapHold(ctl, pool, 0, true));
  THINMETA_TRY(PoolStatus now, pool_status(ctl, pool));
  if (!now.held_root)
    return fail(Errc::kIo, "pool '" + pool + "' shows no metadata snapshot after reserving one");
  hold->root_ = *now.held_root;
  return hold;
}

Result<> MetadataSnapHold::release() {
  if (!reserved_) return {};
  reserved_ = false;
  sigset_t block, old;
  sigemptyset(&block);
  for (int s : kSignals) sigaddset(&block, s);
  ::pthread_sigmask(SIG_BLOCK, &block, &old);
  Result<> out;
  int expected = kReserved;
  if (g_state.compare_exchange_strong(expected, kReleasing)) {
    auto r = ctl_.message(pool_, 0, "release_metadata_snap");
    g_state.store(kNone);
    if (!r) out = std::unexpected(r.error());
  }
  restore_handlers();
  ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
  return out;
}

MetadataSnapHold::~MetadataSnapHold() { (void)release(); }

Result<> check_snapshot_has(const thin::Metadata& snap, std::span<const std::uint32_t> ids) {
  std::vector<std::uint32_t> missing(ids.begin(), ids.end());
  std::optional<std::string> damage;
  thin::walk_details(
      snap.io(), snap.details_root(),
      [&](std::uint64_t id, const thin::DeviceDetails&) {
        std::erase(missing, id);
        return missing.empty() ? pdata::Flow::kStop : pdata::Flow::kContinue;
      },
      [&](const pdata::Damage& d) {
        damage = d.what;
        return pdata::Flow::kStop;
      });
  if (damage) return fail(Errc::kDamage, "metadata snapshot: device details: " + *damage);
  if (!missing.empty())
    return fail(Errc::kInvalidArgument,
                "the metadata snapshot held by the pool predates thin device " +
                    std::to_string(missing.front()) +
                    " (release it, or let this tool reserve a new one)");
  return {};
}

}  // namespace thinmeta::dm
