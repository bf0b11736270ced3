// The forkserver: a single-threaded fork of this process (the zygote) that forks each new
// child on request and runs a named entry point in it.
//
// The client holds one end of a SOCK_SEQPACKET control socket; each request carries one end
// of a fresh stream socketpair (the child's channel), the client's stdio and the handed
// descriptors. The child reads its payload from the channel; the zygote writes back
// {started, pid} with a pidfd, then {exited, code} once it has reaped the child. EOF on the
// control socket means the client is gone: the zygote kills its daemon children and exits.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <new>

#include "platform/fork_mutex.hpp"
#include "shm/segment.hpp"
#include "platform/process.hpp"
#include "proc/process.hpp"

namespace mpx::proc {

namespace {

constexpr uint32_t kMagic = 0x6d707866;  // "mpxf"
constexpr uint32_t kVersion = 1;
constexpr int kMaxFds = 4 + 240;
enum : int32_t { kStarted = 1, kExited = 2, kFailed = 3 };

struct RequestHeader {
  uint32_t magic, version;
  uint32_t daemon;
  uint32_t name_len, ident_len, entry_len, authkey_len, cwd_len;
  uint32_t nfds;  // channel, stdin, stdout, stderr, then the handed ones
  uint64_t payload_size;
  int64_t parent_pid;
};

constexpr size_t kMaxRequest = sizeof(RequestHeader) + 3 * 4096 + 256 + PATH_MAX + 64;

// Not a ForkMutex: it is held across the zygote's own fork() (atfork takes every ForkMutex).
struct Zygote {
  std::mutex mu;
  pid_t pid = 0;
  int ctl = -1;
};
Zygote *g_zygote = nullptr;  // once zygote() has made it (until then a fork child has nothing to reset)
Zygote &zygote() {
  static Zygote *z = g_zygote = new Zygote();
  return *z;
}

// A forked child (and the zygote itself) must not hold the client's control socket: the
// zygote sees the client's death as EOF on it.
struct ForkHook {
  ForkHook() {
    platform::on_fork_child([] {
      if (!g_zygote) return;
      auto &z = *g_zygote;
      platform::reset_in_fork_child(z.mu);  // another thread may have held it across this fork
      if (z.ctl >= 0) {
        ::close(z.ctl);
        z.ctl = -1;
      }
      if (z.pid) z.pid = 0;
    });
  }
} g_fork_hook;

Status send_fds(int sock, const void *data, size_t len, const int *fds, size_t nfds) {
  iovec iov{const_cast<void *>(data), len};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFds)];
  if (nfds) {
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
    cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
    memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
  }
  ssize_t n;
  do n = sendmsg(sock, &msg, MSG_NOSIGNAL);
  while (n < 0 && errno == EINTR);
  if (n != ssize_t(len)) return n < 0 ? -errno : -EPROTO;
  return MPX_OK;
}

// Receive one message and up to max_fds descriptors (made CLOEXEC). Returns the byte count,
// 0 at EOF, or -errno; a message with cut descriptors closes them and is -EPROTO.
ssize_t recv_fds(int sock, void *data, size_t len, int *fds, size_t max_fds, size_t *nfds, int flags = 0) {
  iovec iov{data, len};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFds)];
  msg.msg_control = control;
  msg.msg_controllen = CMSG_SPACE(sizeof(int) * max_fds);
  ssize_t n;
  do n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC | flags);
  while (n < 0 && errno == EINTR);
  if (n < 0) return -errno;
  *nfds = 0;
  for (cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c))
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
      const size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (size_t i = 0; i < k; ++i) {
        int fd;
        memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
        if (*nfds < max_fds) fds[(*nfds)++] = fd;
        else ::close(fd);
      }
    }
  if (msg.msg_flags & (MSG_CTRUNC | MSG_TRUNC)) {
    for (size_t i = 0; i < *nfds; ++i) ::close(fds[i]);
    *nfds = 0;
    return -EPROTO;
  }
  return n;
}

bool write_all(int fd, const char *p, size_t n) {
  while (n) {
    const ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    n -= size_t(w);
  }
  return true;
}

bool read_all(int fd, char *p, size_t n) {
  while (n) {
    const ssize_t r = read(fd, p, n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    p += r;
    n -= size_t(r);
  }
  return true;
}

// ---- the zygote --------------------------------------------------------------------------

sigset_t g_child_mask;  // the zygote's mask before it blocked SIGINT; its children get it back

struct ZChild {
  pid_t pid;
  int pidfd;
  int chan;
  bool daemon;
};

void reply(int chan, int32_t kind, int32_t value, int fd = -1) {
  const int32_t msg[2] = {kind, value};
  send_fds(chan, msg, sizeof msg, &fd, fd >= 0 ? 1 : 0);
}

// In the new child: its stdio and handed descriptors, its identity, then the entry.
[[noreturn]] void run_child(int ctl, std::vector<ZChild> &others, const RequestHeader &h, const char *strings,
                            int *fds, size_t nfds, mpx_entry_fn entry, pid_t zygote_pid) {
  ::close(ctl);
  for (auto &c : others) {
    ::close(c.pidfd);
    ::close(c.chan);
  }
  sigprocmask(SIG_SETMASK, &g_child_mask, nullptr);  // a SIGINT sent since fork arrives now
  const int chan = fds[0];
  for (int i = 0; i < 3; ++i) {
    if (fds[1 + i] != i) dup2(fds[1 + i], i);  // dup2 leaves the new descriptor inheritable
    if (fds[1 + i] > 2) ::close(fds[1 + i]);
  }
  Identity id;
  id.name.assign(strings, h.name_len);
  id.ident.assign(strings + h.name_len, h.ident_len);
  const char *key = strings + h.name_len + h.ident_len + h.entry_len;
  id.authkey.assign(key, key + h.authkey_len);
  if (h.cwd_len)  // if the client's directory is gone, the child stays where the server is
    (void)!chdir(std::string(key + h.authkey_len, h.cwd_len).c_str());
  id.daemon = h.daemon != 0;
  id.parent_pid = zygote_pid;  // a daemon's tie is to the zygote
  id.handed_fds.assign(fds + 4, fds + nfds);
  become_child(id);
  id.parent_pid = h.parent_pid;  // the client is the parent users know
  set_identity(std::move(id));
  std::vector<char> payload(h.payload_size);
  if (h.payload_size && !read_all(chan, payload.data(), payload.size())) _exit(1);
  ::close(chan);
  entry(payload.data(), payload.size());
  fflush(stdout);
  fflush(stderr);
  _exit(0);
}

void serve_request(int ctl, std::vector<ZChild> &children) {
  char buf[kMaxRequest];
  int fds[kMaxFds];
  size_t nfds = 0;
  const ssize_t n = recv_fds(ctl, buf, sizeof buf, fds, kMaxFds, &nfds, MSG_DONTWAIT);
  if (n == -EAGAIN || n == -EPROTO) return;
  if (n <= 0) {
    // The client is gone: its daemons go with it.
    for (auto &c : children)
      if (c.daemon) syscall(SYS_pidfd_send_signal, c.pidfd, SIGKILL, nullptr, 0);
    _exit(0);
  }
  RequestHeader h;
  auto close_all = [&] {
    for (size_t i = 0; i < nfds; ++i) ::close(fds[i]);
  };
  if (nfds < 4 || size_t(n) < sizeof h) return close_all();
  memcpy(&h, buf, sizeof h);
  const size_t strings = size_t(h.name_len) + h.ident_len + h.entry_len + h.authkey_len + h.cwd_len;
  if (h.magic != kMagic || h.version != kVersion || h.nfds != nfds || strings != size_t(n) - sizeof h)
    return close_all();
  const int chan = fds[0];
  const char *s = buf + sizeof h;
  const std::string entry_name(s + h.name_len + h.ident_len, h.entry_len);
  const mpx_entry_fn entry = find_entry(entry_name);
  if (!entry) {
    reply(chan, kFailed, MPX_ENOENT);
    return close_all();
  }
  const pid_t zygote_pid = getpid();
  const pid_t pid = fork();
  if (pid == 0) run_child(ctl, children, h, s, fds, nfds, entry, zygote_pid);
  if (pid < 0) {
    reply(chan, kFailed, errno_to_status(errno));
    return close_all();
  }
  const int pidfd = open_pidfd(pid);
  reply(chan, kStarted, pid, pidfd);
  for (size_t i = 1; i < nfds; ++i) ::close(fds[i]);
  children.push_back(ZChild{pid, pidfd, chan, h.daemon != 0});
}

// Close every descriptor above 2 but `keep`.
void close_all_except(std::vector<int> keep) {
  std::sort(keep.begin(), keep.end());
  unsigned from = 3;
  for (int fd : keep) {
    if (fd < int(from)) continue;
    if (unsigned(fd) > from) syscall(SYS_close_range, from, unsigned(fd) - 1, 0u);
    from = unsigned(fd) + 1;
  }
  syscall(SYS_close_range, from, ~0u, 0u);
}

[[noreturn]] void zygote_main(int ctl) {
  // Ctrl-C in the terminal is for the client, not for us: block SIGINT (rather than ignore
  // it, so that a child interrupted before it restores the mask still gets it).
  sigset_t intr;
  sigemptyset(&intr);
  sigaddset(&intr, SIGINT);
  sigprocmask(SIG_BLOCK, &intr, &g_child_mask);
  // Hold nothing of the client's but stdio and the library's own segments (objects created
  // before the server started stay usable in its children).
  std::vector<int> keep;
  Segment::live_fds(&keep);
  keep.push_back(ctl);
  close_all_except(std::move(keep));
  std::vector<ZChild> children;
  std::vector<pollfd> pfds;
  for (;;) {
    pfds.assign(1, pollfd{ctl, POLLIN, 0});
    for (auto &c : children) pfds.push_back(pollfd{c.pidfd, POLLIN, 0});
    if (::poll(pfds.data(), pfds.size(), -1) < 0) continue;
    // Reap first: a client that exits right after its last child must still get the status.
    for (size_t i = children.size(); i-- > 0;) {
      if (!(pfds[1 + i].revents & (POLLIN | POLLHUP))) continue;
      int code;
      if (reap_pidfd(children[i].pidfd, &code) == 0) continue;
      reply(children[i].chan, kExited, code);
      ::close(children[i].chan);
      ::close(children[i].pidfd);
      children.erase(children.begin() + long(i));
    }
    if (pfds[0].revents) serve_request(ctl, children);
  }
}

Status start_locked(Zygote &z) {
  if (z.pid > 0) {
    if (waitpid(z.pid, nullptr, WNOHANG) == 0) return MPX_OK;  // running
    ::close(z.ctl);  // it died: reaped now, start another
    z.ctl = -1;
    z.pid = 0;
  }
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) return fail_errno("socketpair");
  fflush(stdout);
  fflush(stderr);
  const pid_t pid = fork();  // the fork hook closes z.ctl (not yet set) in the zygote
  if (pid == 0) {
    ::close(sv[0]);
    zygote_main(sv[1]);
  }
  const int e = errno;
  ::close(sv[1]);
  if (pid < 0) {
    ::close(sv[0]);
    return fail(errno_to_status(e), "fork of the forkserver failed: {}", strerror(e));
  }
  z.pid = pid;
  z.ctl = sv[0];
  return MPX_OK;
}

}  // namespace

Status forkserver_start() {
  auto &z = zygote();
  z.mu.lock();
  const Status s = start_locked(z);
  z.mu.unlock();
  return s;
}

Status forkserver_stop() {
  auto &z = zygote();
  z.mu.lock();
  const pid_t pid = z.pid;
  if (z.ctl >= 0) ::close(z.ctl);
  z.ctl = -1;
  z.pid = 0;
  z.mu.unlock();
  if (pid > 0)
    while (waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
    }
  return MPX_OK;
}

pid_t forkserver_pid() {
  auto &z = zygote();
  z.mu.lock();
  pid_t pid = z.pid;
  if (pid > 0 && waitpid(pid, nullptr, WNOHANG) != 0) pid = 0;
  z.mu.unlock();
  return pid;
}

Status forkserver_fork(const ForkserverRequest &req, Child *out) {
  const Spec &spec = *req.spec;
  const Identity &id = req.child_id;
  // The child runs in the client's current directory, as Python's forkserver children do.
  char cwd[PATH_MAX];
  if (!getcwd(cwd, sizeof cwd)) cwd[0] = '\0';  // gone: the child stays in the server's
  RequestHeader h{};
  h.magic = kMagic;
  h.version = kVersion;
  h.daemon = id.daemon;
  h.name_len = uint32_t(id.name.size());
  h.ident_len = uint32_t(id.ident.size());
  h.entry_len = uint32_t(spec.entry.size());
  h.authkey_len = uint32_t(id.authkey.size());
  h.cwd_len = uint32_t(strlen(cwd));
  h.nfds = uint32_t(4 + spec.fds.size());
  h.payload_size = spec.payload.size();
  h.parent_pid = id.parent_pid;
  std::string msg(reinterpret_cast<const char *>(&h), sizeof h);
  msg += id.name;
  msg += id.ident;
  msg += spec.entry;
  msg.append(reinterpret_cast<const char *>(id.authkey.data()), id.authkey.size());
  msg += cwd;
  if (msg.size() > kMaxRequest) return fail(MPX_EINVAL, "name or entry too long for the forkserver");

  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) return fail_errno("socketpair");
  std::vector<int> fds = {sv[1], 0, 1, 2};
  fds.insert(fds.end(), spec.fds.begin(), spec.fds.end());

  auto &z = zygote();
  Status s = MPX_OK;
  int sent = 0;  // 0 or -errno of the request's sendmsg
  for (int attempt = 0; attempt < 2; ++attempt) {
    z.mu.lock();
    s = start_locked(z);
    if (s == MPX_OK) {
      sent = send_fds(z.ctl, msg.data(), msg.size(), fds.data(), fds.size());
      if (sent == -EPIPE || sent == -ECONNRESET) {  // the zygote died since: start another
        waitpid(z.pid, nullptr, 0);
        ::close(z.ctl);
        z.ctl = -1;
        z.pid = 0;
      }
    }
    z.mu.unlock();
    if (s != MPX_OK || (sent != -EPIPE && sent != -ECONNRESET)) break;
  }
  ::close(sv[1]);
  if (s == MPX_OK && sent != 0)
    s = fail(errno_to_status(-sent), "cannot send the request to the forkserver: {}", strerror(-sent));
  if (s != MPX_OK) {
    ::close(sv[0]);
    return s;
  }
  const int chan = sv[0];
  if (!spec.payload.empty() && !write_all(chan, spec.payload.data(), spec.payload.size())) {
    ::close(chan);
    return fail(MPX_ESYS, "the forkserver child did not take its payload");
  }
  int32_t rep[2];
  int pidfd = -1;
  size_t got = 0;
  const ssize_t n = recv_fds(chan, rep, sizeof rep, &pidfd, 1, &got);
  if (n != sizeof rep || rep[0] == kFailed || rep[0] != kStarted) {
    if (got) ::close(pidfd);
    ::close(chan);
    if (n == sizeof rep && rep[0] == kFailed) {
      if (rep[1] == MPX_ENOENT)
        return fail(MPX_ENOENT, "the forkserver knows no entry point named \"{}\" (register it before the server starts, or export the symbol)", spec.entry);
      return fail(rep[1], "the forkserver could not fork: {}", mpx_strerror(rep[1]));
    }
    return fail(MPX_ESYS, "the forkserver did not answer");
  }
  out->pid = rep[1];
  out->pidfd = got ? pidfd : -1;
  out->chan = chan;
  return MPX_OK;
}

Status Process::start_forkserver() {
  const ForkserverRequest req{&spec_, child_identity()};
  Child c;
  if (Status s = forkserver_fork(req, &c); s != MPX_OK) return s;
  std::lock_guard g(mu_);
  child_ = c;
  return MPX_OK;
}

}  // namespace mpx::proc
