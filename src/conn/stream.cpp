#include "conn/stream.hpp"

#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>

#include "mpx/connection.h"

namespace mpx::conn {

namespace {

// Kernels without RWF_NOWAIT on pipes: poll first, then move at most PIPE_BUF bytes (a
// write that small never blocks once POLLOUT is reported).
std::atomic<bool> g_no_rwf_nowait{false};

// Pipes have no MSG_NOSIGNAL: block SIGPIPE in this thread around the write, and take back
// the SIGPIPE an EPIPE raised, so that dispositions and masks are as they were.
class SigpipeGuard {
 public:
  explicit SigpipeGuard(bool active) {
    if (!active) return;
    sigemptyset(&set_);
    sigaddset(&set_, SIGPIPE);
    sigset_t old;
    if (pthread_sigmask(SIG_BLOCK, &set_, &old) != 0) return;
    active_ = true;
    was_blocked_ = sigismember(&old, SIGPIPE) == 1;
    if (was_blocked_) {
      // Already blocked by the caller: a SIGPIPE pending now is theirs, not ours to take.
      sigset_t pending;
      pending_before_ = sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE) == 1;
    }
  }
  ~SigpipeGuard() {
    if (active_ && !was_blocked_) pthread_sigmask(SIG_UNBLOCK, &set_, nullptr);
  }
  SigpipeGuard(const SigpipeGuard &) = delete;
  SigpipeGuard &operator=(const SigpipeGuard &) = delete;

  // The write failed with EPIPE and raised SIGPIPE for this thread: consume it (standard
  // signals do not queue, so one that was pending before is the same signal: keep it).
  void consume() {
    if (!active_ || pending_before_) return;
    const timespec zero{0, 0};
    while (sigtimedwait(&set_, nullptr, &zero) < 0 && errno == EINTR) {
    }
  }

 private:
  sigset_t set_;
  bool active_ = false;
  bool was_blocked_ = false;
  bool pending_before_ = false;
};

void advance(iovec *&iov, int &n, size_t done) {
  while (n > 0 && done >= iov->iov_len) {
    done -= iov->iov_len;
    ++iov;
    --n;
  }
  if (n > 0) {
    iov->iov_base = static_cast<char *>(iov->iov_base) + done;
    iov->iov_len -= done;
  }
}

void take_fds(msghdr &msg, FdSink *sink) {
  if (msg.msg_flags & MSG_CTRUNC) sink->truncated = true;
  for (cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    const size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    const unsigned char *data = CMSG_DATA(c);
    for (size_t i = 0; i < n; ++i) {
      int fd;
      std::memcpy(&fd, data + i * sizeof(int), sizeof fd);
      if (sink->count < sink->cap) {
        sink->fds[sink->count++] = fd;
      } else {
        ::close(fd);  // more than asked for: never leak, and report it
        sink->truncated = true;
      }
    }
  }
}

}  // namespace

void FdSink::close_all() noexcept {
  for (size_t i = 0; i < count; ++i) ::close(fds[i]);
  count = 0;
}

Stream::~Stream() {
  if (fd_ >= 0) ::close(fd_);
  const int fd = wake_fd_.load(std::memory_order_relaxed);
  if (fd >= 0) ::close(fd);
}

void Stream::reset(int fd, bool socket) noexcept {
  fd_ = fd;
  socket_ = socket;
}

int Stream::release() noexcept {
  const int fd = fd_;
  fd_ = -1;
  return fd;
}

int Stream::wake_fd() {
  int fd = wake_fd_.load(std::memory_order_acquire);
  if (fd >= 0) return fd;
  const int made = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (made < 0) return -1;
  if (wake_fd_.compare_exchange_strong(fd, made, std::memory_order_acq_rel)) return made;
  ::close(made);  // another thread made one first
  return fd;
}

void Stream::wake() noexcept {
  // A thread asleep in a socket system call can only be woken by shutting the socket down.
  if (blocked_.load(std::memory_order_seq_cst) > 0) ::shutdown(fd_, SHUT_RDWR);
  const int fd = wake_fd_.load(std::memory_order_acquire);
  if (fd < 0) return;
  const uint64_t one = 1;
  (void)!::write(fd, &one, sizeof one);
}

void Stream::after_fork() noexcept {
  blocked_.store(0, std::memory_order_relaxed);
  const int fd = wake_fd_.exchange(-1, std::memory_order_acq_rel);
  if (fd >= 0) ::close(fd);
}

Status Stream::wait(short events, Deadline deadline) {
  const int efd = wake_fd();
  if (efd < 0) return fail_errno("eventfd");
  for (;;) {
    if (owner_->closing()) return fail(MPX_ECLOSED, "the connection was destroyed");
    pollfd p[2] = {{fd_, events, 0}, {efd, POLLIN, 0}};
    timespec ts;
    timespec *tsp = nullptr;
    if (deadline != kForever) {
      const int64_t left = std::max<int64_t>(0, deadline - platform::monotonic_ns());
      ts.tv_sec = time_t(left / 1000000000);
      ts.tv_nsec = long(left % 1000000000);
      tsp = &ts;
    }
    const int r = ppoll(p, 2, tsp, nullptr);
    if (r < 0) {
      if (errno == EINTR) continue;  // the deadline is absolute: nothing is lost
      return fail_errno("ppoll");
    }
    if (owner_->closing()) continue;  // also when destroy shut the socket down
    if (p[0].revents) return MPX_OK;
    if (p[1].revents) {
      uint64_t v;  // yet not closing: not our destroy (a parent's before after_fork); drain
      (void)!::read(efd, &v, sizeof v);
      continue;
    }
    if (r == 0 && (deadline == kForever || platform::monotonic_ns() >= deadline))
      return fail(MPX_ETIMEDOUT, "timed out");
  }
}

constexpr size_t kSmallSend = 1024;

ssize_t Stream::write_some(iovec *iov, int n, void *control, size_t control_len) {
  ssize_t w;
  if (socket_) {
    // A small frame without descriptors goes out of one buffer through send(): the cheapest
    // socket call (no msghdr to copy in and walk); a round trip of small messages makes two.
    if (!control && n <= 2 && iov[0].iov_len + (n == 2 ? iov[1].iov_len : 0) <= kSmallSend) {
      unsigned char one[kSmallSend];
      size_t len = iov[0].iov_len;
      std::memcpy(one, iov[0].iov_base, len);
      if (n == 2 && iov[1].iov_len) {
        std::memcpy(one + len, iov[1].iov_base, iov[1].iov_len);
        len += iov[1].iov_len;
      }
      return blocking([&] { return ::send(fd_, one, len, MSG_NOSIGNAL); });
    }
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = size_t(n);
    msg.msg_control = control;
    msg.msg_controllen = control_len;
    w = blocking([&] { return ::sendmsg(fd_, &msg, MSG_NOSIGNAL); });
  } else if (!g_no_rwf_nowait.load(std::memory_order_relaxed)) {
    w = ::pwritev2(fd_, iov, n, -1, RWF_NOWAIT);
    if (w < 0 && errno == EOPNOTSUPP) {
      g_no_rwf_nowait.store(true, std::memory_order_relaxed);
      return -EAGAIN;
    }
    if (w < 0) w = -errno;
  } else {
    pollfd p{fd_, POLLOUT, 0};
    if (::poll(&p, 1, 0) <= 0) return -EAGAIN;
    iovec one{iov->iov_base, std::min<size_t>(iov->iov_len, PIPE_BUF)};
    w = ::writev(fd_, &one, 1);
    if (w < 0) w = -errno;
  }
  return w;
}

Status Stream::write_all(iovec *iov, int n, void *control, size_t control_len) {
  SigpipeGuard guard(!socket_);
  advance(iov, n, 0);
  while (n > 0) {
    const ssize_t w = write_some(iov, n, control, control_len);
    if (w > 0) {
      control = nullptr;  // ancillary data goes with the first byte only
      control_len = 0;
      advance(iov, n, size_t(w));
      continue;
    }
    if (owner_->closing()) return fail(MPX_ECLOSED, "the connection was destroyed");
    if (w == -EINTR) continue;
    if (w == -EAGAIN || w == 0) {
      if (Status s = wait(POLLOUT, kForever); s != MPX_OK) return s;
      continue;
    }
    if (w == -EPIPE || w == -ECONNRESET) {
      guard.consume();
      return fail(MPX_EPIPE, "the peer has closed the connection");
    }
    return fail_errno(socket_ ? "sendmsg" : "pwritev2", int(-w));
  }
  return MPX_OK;
}

ssize_t Stream::read_some(void *buf, size_t len, FdSink *sink, bool block) {
  ssize_t r;
  if (socket_) {
    // Blocking reads ask for everything (MSG_WAITALL): the kernel gathers a large message
    // in one call. A plain receive has no control buffer: descriptors sent with these
    // bytes, if any, are dropped by the kernel, so they never leak.
    const int flags = (block ? MSG_WAITALL : MSG_DONTWAIT) | (sink ? MSG_CMSG_CLOEXEC : 0);
    if (!sink) {
      r = block ? blocking([&] { return ::recv(fd_, buf, len, flags); }) : ::recv(fd_, buf, len, flags);
      if (!block && r < 0) r = -errno;
      return r;
    }
    iovec iov{buf, len};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    // Room for the descriptors asked for, no more: extra ones arrive as MSG_CTRUNC.
    alignas(cmsghdr) unsigned char control[CMSG_SPACE(sizeof(int) * MPX_CONN_MAX_FDS)];
    if (sink) {
      msg.msg_control = control;
      msg.msg_controllen = CMSG_SPACE(sizeof(int) * std::clamp<size_t>(sink->cap, 1, MPX_CONN_MAX_FDS));
    }
    r = block ? blocking([&] { return ::recvmsg(fd_, &msg, flags); }) : ::recvmsg(fd_, &msg, flags);
    if (r >= 0 && sink) take_fds(msg, sink);
    if (!block && r < 0) r = -errno;
  } else if (!g_no_rwf_nowait.load(std::memory_order_relaxed)) {
    iovec iov{buf, len};
    r = ::preadv2(fd_, &iov, 1, -1, RWF_NOWAIT);
    if (r < 0 && errno == EOPNOTSUPP) {
      g_no_rwf_nowait.store(true, std::memory_order_relaxed);
      return -EAGAIN;
    }
    if (r < 0) r = -errno;
  } else {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, 0) <= 0) return -EAGAIN;
    r = ::read(fd_, buf, len);
    if (r < 0) r = -errno;
  }
  return r;
}

Status Stream::read_full(void *buf, size_t len, size_t *got, FdSink *sink) {
  auto *p = static_cast<uint8_t *>(buf);
  size_t done = 0;
  Status s = MPX_OK;
  while (s == MPX_OK && done < len) {
    const ssize_t r = read_some(p + done, len - done, sink, true);
    if (r > 0) {
      done += size_t(r);
    } else if (owner_->closing()) {
      s = fail(MPX_ECLOSED, "the connection was destroyed");  // destroy shut the socket down
    } else if (r == 0 || r == -ECONNRESET) {
      break;  // end of stream (a reset peer is a gone peer)
    } else if (r == -EAGAIN) {
      s = wait(POLLIN, kForever);
    } else if (r != -EINTR) {
      s = fail_errno(socket_ ? "recvmsg" : "preadv2", int(-r));
    }
  }
  *got = done;
  return s;
}

Status Stream::read_first(void *buf, size_t len, size_t *got, Deadline deadline, FdSink *sink) {
  // Without a deadline a socket read may simply block (the cheapest wait there is).
  if (socket_ && deadline == kForever) return read_full(buf, len, got, sink);
  *got = 0;
  for (;;) {
    if (Status s = wait(POLLIN, deadline); s != MPX_OK) return s;
    const ssize_t r = read_some(buf, len, sink, false);
    if (r == -EAGAIN || r == -EINTR) continue;  // another reader took it: wait again
    if (r == 0 || r == -ECONNRESET) return MPX_OK;
    if (r < 0) return fail_errno(socket_ ? "recvmsg" : "preadv2", int(-r));
    if (size_t(r) == len) {
      *got = len;
      return MPX_OK;
    }
    Status s = read_full(static_cast<uint8_t *>(buf) + r, len - size_t(r), got, sink);
    *got += size_t(r);
    return s;
  }
}

}  // namespace mpx::conn
