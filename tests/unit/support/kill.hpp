// Killing a child at the worst moment: either at a point it announces (a rendezvous over a
// pipe, e.g. "I now hold the lock"), after it made a given amount of progress through a hot
// loop (a counter in shared memory), or after a random delay.
#pragma once

#include <atomic>
#include <cstdint>

#include "support/child.hpp"

namespace mpxt {

/** A one-way signal from child to parent (a pipe created before fork). */
class Rendezvous {
 public:
  Rendezvous();
  ~Rendezvous();
  Rendezvous(const Rendezvous &) = delete;
  Rendezvous &operator=(const Rendezvous &) = delete;

  /** In the child: tell the parent we reached the point. */
  void notify();
  /** In the parent: wait up to deadline for notify(); false on timeout or if the child died first. */
  bool wait(Millis deadline = Millis(5000));
  /** In the child after notify(): block until killed (bounded by a safety deadline). */
  [[noreturn]] static int hang(Millis safety = Millis(60000));

 private:
  int fds_[2] = {-1, -1};
};

/** Wait for the child to reach its rendezvous, then send sig and reap it. */
ExitStatus kill_at_rendezvous(Child &child, Rendezvous &point, int sig = 9, Millis deadline = Millis(5000));

/** Kill after a random delay in [min, max] and reap. */
ExitStatus kill_after_random_delay(Child &child, Millis min, Millis max, int sig = 9);

/**
 * Shared progress counter (anonymous MAP_SHARED page, inherited by fork). A child bumps it in its
 * hot loop; the parent kills it once it has reached `at` iterations: the kill lands mid-loop.
 */
class ProgressCounter {
 public:
  ProgressCounter();
  ~ProgressCounter();
  ProgressCounter(const ProgressCounter &) = delete;
  ProgressCounter &operator=(const ProgressCounter &) = delete;
  void bump() { value_->fetch_add(1, std::memory_order_relaxed); }
  uint64_t get() const { return value_->load(std::memory_order_relaxed); }
  /** Wait until at least `at` (false if the child ended or the deadline passed first). */
  bool wait_for(uint64_t at, Child &child, Millis deadline = Millis(5000));

 private:
  std::atomic<uint64_t> *value_ = nullptr;
};

/** Kill once the counter reached `at` and reap. */
ExitStatus kill_at_progress(Child &child, ProgressCounter &c, uint64_t at, int sig = 9);

/** Random number in [lo, hi] (seeded once per process from the clock and pid). */
uint64_t random_between(uint64_t lo, uint64_t hi);

}  // namespace mpxt
