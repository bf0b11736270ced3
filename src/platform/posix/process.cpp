#include "platform/process.hpp"

#include "platform/fork_mutex.hpp"

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

namespace detail {
std::atomic<uint32_t> g_pid{0};
// initial-exec: a plain %fs-relative load, no __tls_get_addr on the lock fast path.
__thread uint32_t t_tid __attribute__((tls_model("initial-exec"))) = 0;

uint32_t fetch_pid() noexcept {
  const uint32_t pid = uint32_t(getpid());
  g_pid.store(pid, std::memory_order_relaxed);
  return pid;
}

uint32_t fetch_tid() noexcept { return t_tid = uint32_t(syscall(SYS_gettid)); }
}  // namespace detail

namespace {
using detail::g_pid;
using detail::t_tid;

// Only the forking thread lives on in the child, and it runs this handler: refreshing its
// own cached tid and the process's pid is enough.
void after_fork_child() noexcept {
  g_pid.store(uint32_t(getpid()), std::memory_order_relaxed);
  t_tid = uint32_t(syscall(SYS_gettid));
}

struct ForkHook {
  ForkHook() { on_fork_child(after_fork_child); }
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

bool process_alive(uint32_t pid) noexcept {
  if (pid == 0) return false;
  if (kill(pid_t(pid), 0) != 0 && errno == ESRCH) return false;
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%u/stat", pid);
  return stat_says_alive(path);
}

bool exists(uint32_t id) noexcept { return id != 0 && !(kill(pid_t(id), 0) != 0 && errno == ESRCH); }

bool thread_alive(uint32_t tid) noexcept {
  // kill() accepts any thread id and /proc/<tid> exists for every thread.
  return process_alive(tid);
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
