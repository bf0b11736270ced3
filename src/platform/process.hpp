// The OS seam for process identity: the calling process's pid and thread id, cached and
// refreshed after fork, and whether a process or thread is still alive.
#pragma once

#include <cstdint>

namespace mpx::platform {

uint32_t current_pid() noexcept;  // cached; updated in the child after fork()
uint32_t current_tid() noexcept;  // cached per thread; updated after fork()

// False only when the process is gone or a zombie (it can no longer release anything).
bool process_alive(uint32_t pid) noexcept;
bool thread_alive(uint32_t pid, uint32_t tid) noexcept;

// Fill buf with n bytes from the kernel's random source.
bool random_bytes(void *buf, std::size_t n) noexcept;

}  // namespace mpx::platform
