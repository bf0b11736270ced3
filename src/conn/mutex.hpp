// A process-local mutex with a monotonic deadline (a futex word, Drepper's three states):
// one CAS to take and one exchange to release when uncontended. reset() makes it free
// again in a forked child, whose copy may have been held by a thread that no longer exists.
#pragma once

#include <atomic>
#include <cstdint>

#include "platform/wait.hpp"

namespace mpx::conn {

class TimedMutex {
 public:
  // False when the deadline passed first.
  bool lock(platform::Deadline deadline) noexcept {
    uint32_t c = 0;
    if (word_.compare_exchange_strong(c, 1, std::memory_order_acquire, std::memory_order_relaxed)) [[likely]]
      return true;
    return lock_slow(c, deadline);
  }
  void unlock() noexcept {
    if (word_.exchange(0, std::memory_order_release) == 2) platform::wake(&word_, 1);
  }
  void reset() noexcept { word_.store(0, std::memory_order_relaxed); }

 private:
  bool lock_slow(uint32_t c, platform::Deadline deadline) noexcept {
    for (;;) {
      if (c != 2) c = word_.exchange(2, std::memory_order_acquire);  // 2: someone may sleep
      if (c == 0) return true;
      if (deadline != platform::kForever && platform::monotonic_ns() >= deadline) return false;
      platform::wait_on(&word_, 2, deadline);
      c = word_.load(std::memory_order_relaxed);
    }
  }
  std::atomic<uint32_t> word_{0};  // 0 free, 1 held, 2 held and contended
};

class TimedLockGuard {
 public:
  TimedLockGuard(TimedMutex &m, platform::Deadline deadline) noexcept : m_(m), held_(m.lock(deadline)) {}
  ~TimedLockGuard() {
    if (held_) m_.unlock();
  }
  TimedLockGuard(const TimedLockGuard &) = delete;
  TimedLockGuard &operator=(const TimedLockGuard &) = delete;
  bool held() const { return held_; }

 private:
  TimedMutex &m_;
  bool held_;
};

}  // namespace mpx::conn
