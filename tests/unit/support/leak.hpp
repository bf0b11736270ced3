// Resource accounting around every test: open fds, /dev/shm entries, child processes (zombies
// included) and threads are counted before and after each test; a difference fails the test.
// It is installed automatically in every test binary that links the support library.
//
// Environment: MPX_TEST_LEAK_CHECK=0 turns it off; MPX_TEST_SHM_CHECK=0 ignores /dev/shm
// (useful when unrelated programs create shared memory while tests run in parallel).
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
