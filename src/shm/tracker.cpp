#include "shm/tracker.hpp"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "mpx/segment.h"
#include "platform/fork_mutex.hpp"

namespace mpx::tracker {

namespace {

struct Message {
  uint32_t op;  // 1 track, 2 untrack
  uint32_t reserved;
  uint64_t inode;
  char name[MPX_SEGMENT_NAME_MAX + 2];
};
static_assert(sizeof(Message) < 4096, "one datagram per message");

constexpr int kMaxTracked = 4096;
constexpr int kPollMs = 1000;

platform::ForkMutex g_mu(platform::ForkMutex::kTracker);
int g_sock = -1;  // our end of the socket pair to our daemon

// A forked child is not the creator of its parent's segments: it drops the inherited end
// (so the parent's daemon sees EOF when the parent dies) and starts its own when needed.
struct ForkHook {
  ForkHook() {
    platform::on_fork_child([] {
      if (g_sock >= 0) close(g_sock);
      g_sock = -1;
    });
  }
} g_fork_hook;

// ---- the daemon: async-signal-safe calls only, fixed storage, no allocation -----------

struct Entry {
  bool used;
  uint64_t inode;
  char path[MPX_SEGMENT_NAME_MAX + 16];
};
Entry g_entries[kMaxTracked];

void set_path(Entry &e, const char *name) {
  static const char prefix[] = "/dev/shm/";
  std::memcpy(e.path, prefix, sizeof prefix - 1);
  size_t n = strnlen(name, MPX_SEGMENT_NAME_MAX);
  std::memcpy(e.path + sizeof prefix - 1, name, n);
  e.path[sizeof prefix - 1 + n] = '\0';
}

// True when the entry is settled: removed by us, gone, or replaced by another file.
bool try_remove(Entry &e) {
  int fd = open(e.path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return errno == ENOENT;
  struct stat st;
  if (fstat(fd, &st) != 0 || uint64_t(st.st_ino) != e.inode) {
    close(fd);
    return true;
  }
  bool done = false;
  if (flock(fd, LOCK_EX | LOCK_NB) == 0) {  // nobody holds it: remove the name
    unlink(e.path);
    done = true;
  }
  close(fd);
  return done;
}

// The daemon starts as a fork of the creator and so shares its mappings of segments, which
// would keep their files (and flocks) alive: drop every shared mapping first.
void unmap_shared_mappings() {
  constexpr int kMaxRanges = 4096;
  static uintptr_t starts[kMaxRanges], ends[kMaxRanges];
  int n = 0;
  int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  static char buf[65536];
  size_t len = 0;
  bool eof = false;
  while (!eof || len > 0) {
    if (!eof && len < sizeof buf) {
      ssize_t r = read(fd, buf + len, sizeof buf - len);
      if (r <= 0) eof = true;
      else len += size_t(r);
    }
    char *nl = static_cast<char *>(std::memchr(buf, '\n', len));
    if (!nl) {
      if (eof || len == sizeof buf) break;
      continue;
    }
    // "start-end perms offset dev inode path"
    uintptr_t a = 0, b = 0;
    char *p = buf;
    auto hex = [&](uintptr_t *v) {
      while (p < nl) {
        const char c = *p;
        const int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (d < 0) break;
        *v = *v * 16 + uintptr_t(d);
        ++p;
      }
    };
    hex(&a);
    if (p < nl && *p == '-') ++p;
    hex(&b);
    if (p + 4 < nl && p[4] == 's' && n < kMaxRanges) {
      starts[n] = a;
      ends[n] = b;
      ++n;
    }
    const size_t used = size_t(nl + 1 - buf);
    std::memmove(buf, nl + 1, len - used);
    len -= used;
  }
  close(fd);
  for (int i = 0; i < n; ++i) munmap(reinterpret_cast<void *>(starts[i]), ends[i] - starts[i]);
}

[[noreturn]] void daemon_main(int rfd) {
  unmap_shared_mappings();
  bool creator_alive = true;
  for (;;) {
    pollfd p{rfd, POLLIN, 0};
    int n = creator_alive ? poll(&p, 1, kPollMs) : (poll(nullptr, 0, kPollMs), 0);
    if (creator_alive && n > 0) {
      Message m;
      ssize_t r = read(rfd, &m, sizeof m);
      if (r == ssize_t(sizeof m)) {
        m.name[sizeof m.name - 1] = '\0';
        for (auto &e : g_entries) {
          if (m.op == 1 && !e.used) {
            e.used = true;
            e.inode = m.inode;
            set_path(e, m.name);
            break;
          }
          if (m.op == 2 && e.used) {
            Entry tmp;
            set_path(tmp, m.name);
            if (std::strcmp(tmp.path, e.path) == 0) e.used = false;
          }
        }
      } else if (r == 0 || (r < 0 && errno != EINTR && errno != EAGAIN)) {
        creator_alive = false;  // EOF: the creator exited or was killed
      }
    }
    if (creator_alive) continue;
    bool left = false;
    for (auto &e : g_entries) {
      if (!e.used) continue;
      if (try_remove(e))
        e.used = false;
      else
        left = true;
    }
    if (!left) _exit(0);
  }
}

int start_daemon() {
  // SEQPACKET: one message per record, EOF when the creator is gone, and MSG_NOSIGNAL
  // so that a dead daemon never raises SIGPIPE in the application.
  int fds[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds) != 0) return -1;
  pid_t first = fork();
  if (first < 0) {
    close(fds[0]);
    close(fds[1]);
    return -1;
  }
  if (first == 0) {
    // Intermediate child: fork the daemon and exit, so the daemon is nobody's zombie.
    if (fork() == 0) {
      setsid();
      signal(SIGINT, SIG_IGN);
      signal(SIGHUP, SIG_IGN);
      signal(SIGPIPE, SIG_IGN);
      sigset_t none;
      sigemptyset(&none);
      sigprocmask(SIG_SETMASK, &none, nullptr);
      if (fds[0] != 3) {
        dup2(fds[0], 3);
      }
      syscall(SYS_close_range, 4u, ~0u, 0u);
      int devnull = open("/dev/null", O_RDWR);
      if (devnull >= 0) {
        dup2(devnull, 0);
        dup2(devnull, 1);
        dup2(devnull, 2);
        if (devnull > 3) close(devnull);
      }
      daemon_main(3);
    }
    _exit(0);
  }
  close(fds[0]);
  int status;
  while (waitpid(first, &status, 0) < 0 && errno == EINTR) {
  }
  return fds[1];
}

void send(uint32_t op, const std::string &name, uint64_t inode) noexcept {
  Message m{};
  m.op = op;
  m.inode = inode;
  std::memcpy(m.name, name.data(), name.size() < sizeof m.name - 1 ? name.size() : sizeof m.name - 1);
  g_mu.lock();
  if (g_sock < 0 && op == 1) {
    // fork() runs our atfork handlers, which take g_mu: start the daemon without holding it.
    g_mu.unlock();
    const int fd = start_daemon();
    g_mu.lock();
    if (g_sock < 0)
      g_sock = fd;
    else if (fd >= 0)
      close(fd);  // another thread started one meanwhile; ours sees EOF and exits
  }
  if (g_sock >= 0) {
    ssize_t w;
    do w = ::send(g_sock, &m, sizeof m, MSG_NOSIGNAL);
    while (w < 0 && errno == EINTR);
  }
  g_mu.unlock();
}

}  // namespace

void track(const std::string &name, uint64_t inode) noexcept { send(1, name, inode); }
void untrack(const std::string &name) noexcept { send(2, name, 0); }

}  // namespace mpx::tracker
