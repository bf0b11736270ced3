#include "platform/process.hpp"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>

namespace mpx::platform {

namespace {
std::atomic<uint32_t> g_pid{0};
std::atomic<uint32_t> g_fork_epoch{0};  // bumped in every forked child: invalidates cached tids
thread_local uint32_t t_tid = 0;
thread_local uint32_t t_tid_epoch = 0;

void after_fork_child() noexcept {
  g_pid.store(uint32_t(getpid()), std::memory_order_relaxed);
  g_fork_epoch.fetch_add(1, std::memory_order_relaxed);
}

struct ForkHook {
  ForkHook() { pthread_atfork(nullptr, nullptr, after_fork_child); }
} g_fork_hook;

// A process or thread whose /proc stat says zombie or dead counts as gone.
bool stat_says_alive(const char *path) noexcept {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno != ENOENT;
  char buf[512];
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return true;
  buf[n] = '\0';
  const char *paren = strrchr(buf, ')');  // the command name may contain anything but ')' last
  if (!paren || paren[1] == '\0' || paren[2] == '\0') return true;
  char state = paren[2];
  return state != 'Z' && state != 'X' && state != 'x';
}
}  // namespace

uint32_t current_pid() noexcept {
  uint32_t pid = g_pid.load(std::memory_order_relaxed);
  if (pid == 0) {
    pid = uint32_t(getpid());
    g_pid.store(pid, std::memory_order_relaxed);
  }
  return pid;
}

uint32_t current_tid() noexcept {
  const uint32_t epoch = g_fork_epoch.load(std::memory_order_relaxed);
  if (t_tid == 0 || t_tid_epoch != epoch) {
    t_tid = uint32_t(syscall(SYS_gettid));
    t_tid_epoch = epoch;
  }
  return t_tid;
}

bool process_alive(uint32_t pid) noexcept {
  if (pid == 0) return false;
  if (kill(pid_t(pid), 0) != 0 && errno == ESRCH) return false;
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%u/stat", pid);
  return stat_says_alive(path);
}

bool thread_alive(uint32_t pid, uint32_t tid) noexcept {
  if (pid == 0 || tid == 0) return false;
  if (syscall(SYS_tgkill, pid_t(pid), pid_t(tid), 0) != 0 && errno == ESRCH) return false;
  char path[96];
  std::snprintf(path, sizeof path, "/proc/%u/task/%u/stat", pid, tid);
  return stat_says_alive(path);
}

bool random_bytes(void *buf, std::size_t n) noexcept {
  auto *p = static_cast<unsigned char *>(buf);
  while (n > 0) {
    ssize_t r = getrandom(p, n, 0);
    if (r < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    p += r;
    n -= std::size_t(r);
  }
  return true;
}

}  // namespace mpx::platform
