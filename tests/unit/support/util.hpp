// Small tools shared by the tests: a monotonic stopwatch, timing slack, anonymous shared
// scratch memory independent of mpx (to report results out of children), and temp names.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <new>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include "support/child.hpp"

namespace mpxt {

/** Slack allowed above a timeout (SCENARIOS.md allows 100 ms; the brief for locks 50 ms). */
inline constexpr int64_t kSlackMs = 50;

class Stopwatch {
 public:
  Stopwatch() : start_(std::chrono::steady_clock::now()) {}
  void restart() { start_ = std::chrono::steady_clock::now(); }
  int64_t ms() const {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start_).count();
  }
  double ms_f() const {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start_).count();
  }

 private:
  std::chrono::steady_clock::time_point start_;
};

/** Raw MAP_SHARED|MAP_ANONYMOUS memory (not mpx): inherited by fork, unmapped on destruction. */
class SharedScratch {
 public:
  explicit SharedScratch(size_t bytes);
  ~SharedScratch();
  SharedScratch(const SharedScratch &) = delete;
  SharedScratch &operator=(const SharedScratch &) = delete;
  void *data() const { return data_; }
  size_t size() const { return size_; }

 private:
  void *data_ = nullptr;
  size_t size_ = 0;
};

/** A T living in SharedScratch (T must be trivially destructible, e.g. atomics). */
template <typename T>
class Shared {
  static_assert(std::is_trivially_destructible_v<T>);

 public:
  template <typename... A>
  explicit Shared(A &&...a) : mem_(sizeof(T)), obj_(new (mem_.data()) T(static_cast<A &&>(a)...)) {}
  T *operator->() const { return obj_; }
  T &operator*() const { return *obj_; }
  T *get() const { return obj_; }

 private:
  SharedScratch mem_;
  T *obj_;
};

/**
 * Start line for processes that must overlap: each child calls arrive_and_wait(); the parent
 * calls open(n) once n children arrived, so they all start their loops together.
 */
class StartGate {
 public:
  void arrive_and_wait() {
    state_->arrived.fetch_add(1);
    while (state_->open.load() == 0) std::this_thread::yield();
  }
  /** Wait for n arrivals (bounded by deadline), then let everyone go. False on timeout. */
  bool open(int n, Millis deadline = Millis(20000));

 private:
  struct State {
    std::atomic<int> arrived;
    std::atomic<int> open;
  };
  Shared<State> state_;
};

/** Like run_in_children, but the children start their work together (through a StartGate). */
std::vector<ExitStatus> run_together(int n, const std::function<int(int)> &fn, Millis deadline = Millis(30000));

/** A name unique to this process and call, for named segments created by tests ("mpxt.<pid>.<n>.<tag>"). */
std::string unique_name(const char *tag);

/** Sleep (for test choreography only; mpx itself must never sleep-poll). */
void sleep_ms(int64_t ms);

}  // namespace mpxt
