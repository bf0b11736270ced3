// Resource accounting around every test: open fds, /dev/shm entries, child processes (zombies
// included) and threads are counted before and after each test; a difference fails the test.
// It is installed automatically in every test binary that links the support library.
//
// /dev/shm is shared by every process, so when tests run in parallel (ctest -j) an entry that
// appeared is only counted as ours if it is not another test's mpxt::unique_name, is not held
// by an unrelated process, and is still there after ~7 s (mpx's tracker removes the names of
// exited creators within 5 s). Other differences get 1 s to settle (children being reaped).
//
// Environment: MPX_TEST_LEAK_CHECK=0 turns it off; MPX_TEST_SHM_CHECK=0 ignores /dev/shm.
#pragma once

#include <set>
#include <string>

namespace mpxt {

struct ResourceSnapshot {
  int fds = 0;
  std::set<std::string> fd_targets;  ///< readlink of each fd (for the report)
  std::set<std::string> shm;         ///< names in /dev/shm
  int children = 0;                  ///< live children of this process
  int zombies = 0;                   ///< unreaped children
  int threads = 0;                   ///< threads of this process
};

ResourceSnapshot take_snapshot();

/** Empty when nothing leaked between before and after; else a description of what did. */
std::string leak_report(const ResourceSnapshot &before, const ResourceSnapshot &after);

/** Number of open fds of this process. */
int count_fds();
/** Names in /dev/shm. */
std::set<std::string> shm_entries();
/** A /dev/shm name that is not this test's: another test's unique_name, or held by an unrelated process. */
bool foreign_shm(const std::string &name);
/** Threads of this process. */
int count_threads();

/**
 * RAII check for a narrower scope than a whole test: records a snapshot, and on destruction
 * ADD_FAILUREs if anything leaked.
 */
class LeakGuard {
 public:
  LeakGuard();
  ~LeakGuard();
  LeakGuard(const LeakGuard &) = delete;
  LeakGuard &operator=(const LeakGuard &) = delete;

 private:
  ResourceSnapshot before_;
};

/** Install the per-test leak check and the helper dispatcher (idempotent; done automatically). */
void install_support();

/** Register a function run once before the first test, so lazy one-time state is not a leak. */
bool register_warmup(void (*fn)());

}  // namespace mpxt
