// The OS seam for blocking: wait on a 32-bit word in shared memory until it changes or a
// deadline passes, and wake waiters. Linux: futex (shared, not private: other processes
// wait on the same word). Deadlines are CLOCK_MONOTONIC, immune to wall-clock jumps.
#pragma once

#include <atomic>
#include <cstdint>

namespace mpx::platform {

// A point on the monotonic clock, in nanoseconds; kForever never arrives.
using Deadline = int64_t;
constexpr Deadline kForever = INT64_MAX;

int64_t monotonic_ns() noexcept;

// Deadline for an mpx timeout in milliseconds (negative = forever, saturating, no overflow).
Deadline deadline_after_ms(int64_t timeout_ms) noexcept;

// woken: by a wake() (counted in what that wake() returned); changed: the word no longer
// held `expected`, so there was no sleep at all.
enum class WaitResult { woken, timed_out, interrupted, changed };

// Sleep while *word == expected, until woken or the deadline passes. May return spuriously.
WaitResult wait_on(std::atomic<uint32_t> *word, uint32_t expected, Deadline deadline) noexcept;

// Wake up to n waiters on word (n = INT32_MAX: all). Returns how many were woken.
int wake(std::atomic<uint32_t> *word, int n) noexcept;

inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#endif
}

}  // namespace mpx::platform
