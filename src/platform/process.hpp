// The OS seam for process identity: the calling process's pid and thread id, cached and
// refreshed after fork, and whether a process or thread is still alive.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace mpx::platform {

namespace detail {
extern std::atomic<uint32_t> g_pid;
extern __thread uint32_t t_tid __attribute__((tls_model("initial-exec")));  // no TLS wrapper call
uint32_t fetch_pid() noexcept;
uint32_t fetch_tid() noexcept;
}  // namespace detail

// Cached; refreshed in the child after fork() (the lock fast path reads these).
inline uint32_t current_pid() noexcept {
  const uint32_t pid = detail::g_pid.load(std::memory_order_relaxed);
  return pid ? pid : detail::fetch_pid();
}
inline uint32_t current_tid() noexcept {
  const uint32_t tid = detail::t_tid;
  return tid ? tid : detail::fetch_tid();
}

// False only when the process is gone or a zombie (it can no longer release anything).
bool process_alive(uint32_t pid) noexcept;
// Any thread by its system-wide id: gone, or a zombie group leader, is not alive.
bool thread_alive(uint32_t tid) noexcept;
// One system call: false only when the process or thread is gone (a zombie counts as alive).
bool exists(uint32_t id) noexcept;

// Fill buf with n bytes from the kernel's random source.
bool random_bytes(void *buf, std::size_t n) noexcept;

}  // namespace mpx::platform
