#include "platform/wait.hpp"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>

namespace mpx::platform {

int64_t monotonic_ns() noexcept {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

Deadline deadline_after_ms(int64_t timeout_ms) noexcept {
  if (timeout_ms < 0) return kForever;
  const int64_t now = monotonic_ns();
  if (timeout_ms > (kForever - now) / 1000000) return kForever;
  return now + timeout_ms * 1000000;
}

WaitResult wait_on(std::atomic<uint32_t> *word, uint32_t expected, Deadline deadline) noexcept {
  timespec ts;
  timespec *tsp = nullptr;
  if (deadline != kForever) {
    ts.tv_sec = time_t(deadline / 1000000000);
    ts.tv_nsec = long(deadline % 1000000000);
    tsp = &ts;
  }
  // FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC deadline: no drift across retries.
  long rc = syscall(SYS_futex, reinterpret_cast<uint32_t *>(word), FUTEX_WAIT_BITSET, expected, tsp,
                    nullptr, FUTEX_BITSET_MATCH_ANY);
  if (rc == 0) return WaitResult::woken;
  switch (errno) {
    case ETIMEDOUT: return WaitResult::timed_out;
    case EINTR: return WaitResult::interrupted;
    default: return WaitResult::changed;  // EAGAIN: the word already changed
  }
}

int wake(std::atomic<uint32_t> *word, int n) noexcept {
  long rc = syscall(SYS_futex, reinterpret_cast<uint32_t *>(word), FUTEX_WAKE, n, nullptr, nullptr, 0);
  return rc < 0 ? 0 : int(rc);
}

}  // namespace mpx::platform
