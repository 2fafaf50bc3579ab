// SPDX-License-Identifier: GPL-3.0-or-later
// The worker pool: every index runs exactly once, whatever the number of workers and callers.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "persistent-data/helper_thread.h"

using namespace thinmeta::pdata;

TEST(WorkerPool, CountIsAtLeastOne) {
  EXPECT_GE(worker_count(), 1u);
  EXPECT_LE(worker_count(), 64u);
}

TEST(WorkerPool, EveryIndexRunsOnce) {
  for (std::size_t n : {0u, 1u, 2u, 3u, 7u, 1000u}) {
    std::vector<std::atomic<int>> ran(n);
    run_parallel(n, [&](std::size_t i) { ran[i].fetch_add(1); });
    for (std::size_t i = 0; i < n; ++i) EXPECT_EQ(ran[i].load(), 1) << n << " " << i;
  }
}

TEST(WorkerPool, CallersOnSeveralThreads) {
  // The walk calls from a helper lane while another walk (or the main thread) calls too.
  constexpr std::size_t kN = 500;
  std::vector<std::atomic<int>> a(kN), b(kN);
  auto go = [](std::vector<std::atomic<int>>& v) {
    for (int rep = 0; rep < 20; ++rep) run_parallel(v.size(), [&](std::size_t i) { v[i]++; });
  };
  std::thread t([&] { go(a); });
  go(b);
  t.join();
  for (std::size_t i = 0; i < kN; ++i) {
    EXPECT_EQ(a[i].load(), 20);
    EXPECT_EQ(b[i].load(), 20);
  }
}

TEST(WorkerPool, TasksStartedAheadRunOnceEach) {
  // A walk keeps one task in flight per depth while it joins a deeper one first (tasks are
  // joined out of submission order), and a task may be joined before any pool thread saw it.
  for (std::size_t n : {0u, 1u, 2u, 8u, 333u}) {
    std::vector<std::atomic<int>> x(n), y(n);
    ParallelTask outer(n, [&](std::size_t i) { x[i].fetch_add(1); });
    {
      ParallelTask inner(n, [&](std::size_t i) { y[i].fetch_add(1); });
      inner.join();
      for (std::size_t i = 0; i < n; ++i) EXPECT_EQ(y[i].load(), 1) << n << " " << i;
      inner.join();  // a second join does nothing
    }
    outer = ParallelTask();  // replacing joins the task first
    for (std::size_t i = 0; i < n; ++i) EXPECT_EQ(x[i].load(), 1) << n << " " << i;
  }
}

TEST(WorkerPool, TaskJoinedWhenDestroyed) {
  constexpr std::size_t kN = 64;
  std::vector<std::atomic<int>> v(kN);
  for (int rep = 0; rep < 50; ++rep) {
    ParallelTask t(kN, [&](std::size_t i) { v[i].fetch_add(1); });
  }
  for (std::size_t i = 0; i < kN; ++i) EXPECT_EQ(v[i].load(), 50);
}
