#include "shm/tracker.hpp"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstring>

#include "mpx/segment.h"
#include "platform/fork_mutex.hpp"
#include "platform/process.hpp"

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
// Serialises daemon starts. Not a ForkMutex: it is held across our own fork().
pthread_mutex_t g_start_mu_raw = PTHREAD_MUTEX_INITIALIZER;
struct {
  void lock() { pthread_mutex_lock(&g_start_mu_raw); }
  void unlock() { pthread_mutex_unlock(&g_start_mu_raw); }
} g_start_mu;
// Our daemon listens on an abstract unix datagram address; we keep no descriptor open
// between calls (a library should not hold hidden fds), and the daemon learns of our death
// by watching our pid and start time.
uint32_t g_daemon_for = 0;  // the pid that started the daemon we talk to (0: none)
sockaddr_un g_addr;
socklen_t g_addr_len = 0;

// A forked child is not the creator of its parent's segments: it starts its own daemon.
struct ForkHook {
  ForkHook() {
    platform::on_fork_child([] {
      if (g_daemon_for) g_daemon_for = 0;
      // Another thread may have held it across this fork.
      platform::reset_in_fork_child(g_start_mu_raw);
    });
  }
} g_fork_hook;

// Field 22 of /proc/<pid>/stat (start time in clock ticks), 0 when the process is gone.
uint64_t start_time(uint32_t pid) {
  char path[64] = "/proc/";
  char digits[16];
  int n = 0;
  do digits[n++] = char('0' + pid % 10);
  while ((pid /= 10) != 0);
  size_t len = 6;
  while (n) path[len++] = digits[--n];
  std::memcpy(path + len, "/stat", 6);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  char buf[1024];
  ssize_t r = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (r <= 0) return 0;
  buf[r] = '\0';
  const char *p = std::strrchr(buf, ')');
  if (!p) return 0;
  ++p;
  if (p[0] == ' ' && (p[1] == 'Z' || p[1] == 'X')) return 0;  // a zombie holds nothing
  for (int field = 2; field < 22 && *p; ++p)
    if (*p == ' ') ++field;
  uint64_t t = 0;
  while (*p >= '0' && *p <= '9') t = t * 10 + uint64_t(*p++ - '0');
  return t;
}

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

[[noreturn]] void daemon_main(int rfd, uint32_t creator, uint64_t creator_start) {
  unmap_shared_mappings();
  bool creator_alive = true;
  for (;;) {
    pollfd p{rfd, POLLIN, 0};
    int n = poll(&p, 1, kPollMs);
    if (n > 0) {
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
      }
      continue;  // drain messages before looking at anything else
    }
    if (creator_alive) creator_alive = start_time(creator) == creator_start;
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

// Bind the daemon's socket here, before forking, so that messages sent right after can
// never race its start.
bool start_daemon() {
  const uint32_t me = platform::current_pid();
  const uint64_t my_start = start_time(me);
  uint64_t nonce = 0;
  if (my_start == 0 || !platform::random_bytes(&nonce, sizeof nonce)) return false;
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  const int n = std::snprintf(addr.sun_path + 1, sizeof addr.sun_path - 1, "mpx-tracker.%u.%016llx", me,
                              static_cast<unsigned long long>(nonce));
  const socklen_t len = socklen_t(offsetof(sockaddr_un, sun_path) + 1 + size_t(n));
  if (bind(fd, reinterpret_cast<sockaddr *>(&addr), len) != 0) {
    close(fd);
    return false;
  }
  pid_t first = fork();
  if (first < 0) {
    close(fd);
    return false;
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
      if (fd != 3) dup2(fd, 3);
      syscall(SYS_close_range, 4u, ~0u, 0u);
      int devnull = open("/dev/null", O_RDWR);
      if (devnull >= 0) {
        dup2(devnull, 0);
        dup2(devnull, 1);
        dup2(devnull, 2);
        if (devnull > 3) close(devnull);
      }
      daemon_main(3, me, my_start);
    }
    _exit(0);
  }
  close(fd);
  int status;
  while (waitpid(first, &status, 0) < 0 && errno == EINTR) {
  }
  g_mu.lock();
  g_addr = addr;
  g_addr_len = len;
  g_daemon_for = me;
  g_mu.unlock();
  return true;
}

void send(uint32_t op, const std::string &name, uint64_t inode) noexcept {
  Message m{};
  m.op = op;
  m.inode = inode;
  std::memcpy(m.name, name.data(), name.size() < sizeof m.name - 1 ? name.size() : sizeof m.name - 1);
  // fork() in start_daemon runs our atfork handlers, which take every ForkMutex: this one
  // is held only around the plain variables, never across the fork.
  const uint32_t me = platform::current_pid();
  for (int attempt = 0; attempt < 2; ++attempt) {
    g_mu.lock();
    const bool have = g_daemon_for == me;
    const sockaddr_un addr = g_addr;
    const socklen_t len = g_addr_len;
    g_mu.unlock();
    if (!have) {
      if (op != 1) return;  // nothing of ours is tracked
      g_start_mu.lock();
      g_mu.lock();
      const bool started = g_daemon_for == me;  // by another thread meanwhile
      g_mu.unlock();
      if (!started && !start_daemon()) {
        g_start_mu.unlock();
        return;  // not tracked; the segment works all the same
      }
      g_start_mu.unlock();
      continue;
    }
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return;
    ssize_t w;
    do w = sendto(fd, &m, sizeof m, MSG_NOSIGNAL, reinterpret_cast<const sockaddr *>(&addr), len);
    while (w < 0 && errno == EINTR);
    const int err = errno;
    close(fd);
    if (w >= 0 || op != 1 || (err != ECONNREFUSED && err != ENOENT)) return;
    g_mu.lock();  // our daemon is gone (killed?): start another and send again
    if (g_daemon_for == me) g_daemon_for = 0;
    g_mu.unlock();
  }
}

}  // namespace

void track(const std::string &name, uint64_t inode) noexcept { send(1, name, inode); }
void untrack(const std::string &name) noexcept { send(2, name, 0); }

}  // namespace mpx::tracker
