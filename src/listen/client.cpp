// Client side (client.hpp): the socket stays non-blocking during connect and handshake so
// that every step keeps the deadline; it is handed over blocking.
#include "listen/client.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <string>

#include "listen/address.hpp"
#include "listen/auth.hpp"

namespace mpx::listen {

namespace {

using Clock = std::chrono::steady_clock;

class FdChannel final : public Channel {
 public:
  FdChannel(int fd, Clock::time_point deadline) : fd_(fd), deadline_(deadline) {}

  Status send(const std::string &m) override {
    std::string f(4, '\0');
    const uint32_t n = uint32_t(m.size());
    f[0] = char(n >> 24);
    f[1] = char(n >> 16);
    f[2] = char(n >> 8);
    f[3] = char(n);
    f += m;
    size_t off = 0;
    while (off < f.size()) {
      const ssize_t w = ::send(fd_, f.data() + off, f.size() - off, MSG_NOSIGNAL);
      if (w > 0) {
        off += size_t(w);
        continue;
      }
      if (w < 0 && errno == EINTR) continue;
      if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        if (Status s = wait(POLLOUT); s != MPX_OK) return s;
        continue;
      }
      if (w < 0 && errno == EPIPE) return fail(MPX_EPIPE, "the listener closed the connection during the handshake");
      return fail_errno("send");
    }
    return MPX_OK;
  }

  Status recv(std::string *m) override {
    unsigned char h[4];
    if (Status s = read_exact(h, 4); s != MPX_OK) return s;
    const uint32_t n = uint32_t(h[0]) << 24 | uint32_t(h[1]) << 16 | uint32_t(h[2]) << 8 | h[3];
    if ((n & 0x80000000u) || n > kMaxHandshakeMessage)
      return fail(MPX_EPROTO, "handshake message over {} bytes", kMaxHandshakeMessage);
    m->resize(n);
    return read_exact(m->data(), n);
  }

 private:
  Status wait(short events) {
    for (;;) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline_ - Clock::now()).count();
      if (left <= 0) return fail(MPX_ETIMEDOUT, "the handshake did not complete in time");
      pollfd p{fd_, events, 0};
      const int r = ::poll(&p, 1, int(left > 1000000 ? 1000000 : left));
      if (r > 0) return MPX_OK;
      if (r < 0 && errno != EINTR) return fail_errno("poll");
    }
  }
  Status read_exact(void *buf, size_t len) {
    size_t got = 0;
    while (got < len) {
      const ssize_t r = ::recv(fd_, static_cast<char *>(buf) + got, len - got, 0);
      if (r > 0) {
        got += size_t(r);
        continue;
      }
      if (r == 0) return fail(MPX_EOF, "the listener closed the connection during the handshake");
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        if (Status s = wait(POLLIN); s != MPX_OK) return s;
        continue;
      }
      return fail_errno("recv");
    }
    return MPX_OK;
  }

  int fd_;
  Clock::time_point deadline_;
};

}  // namespace

Status client_connect(const char *address, const mpx_client_options *opts, int *out) {
  *out = -1;
  Key key;
  uint32_t flags = 0;
  int64_t timeout = MPX_HANDSHAKE_DEFAULT_TIMEOUT_MS;
  if (opts) {
    if (opts->authkey) {
      if (opts->authkey_len == 0) return fail(MPX_EINVAL, "authkey is empty (use NULL for no authentication)");
      key = Key{opts->authkey, opts->authkey_len};
    }
    flags = opts->flags;
    if (opts->timeout_ms > 0) timeout = opts->timeout_ms;
  }
  Address a;
  if (Status s = parse_address(address, &a); s != MPX_OK) return s;
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeout);
  const int fd = ::socket(a.family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return fail_errno("socket");
  Status s = MPX_OK;
  if (::connect(fd, reinterpret_cast<sockaddr *>(&a.sa), a.len) < 0) {
    if (errno == EINPROGRESS || errno == EAGAIN) {
      for (;;) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
        if (left <= 0) {
          s = fail(MPX_ETIMEDOUT, "connecting to '{}' timed out", address);
          break;
        }
        pollfd p{fd, POLLOUT, 0};
        const int r = ::poll(&p, 1, int(left));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) continue;
        int err = 0;
        socklen_t el = sizeof err;
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el);
        if (err) s = fail_errno("connect", err);
        break;
      }
    } else {
      s = fail_errno("connect");
    }
  }
  if (s == MPX_OK && key.data) {
    // Python's Client: answer the listener's challenge, then challenge it.
    FdChannel ch(fd, deadline);
    s = answer_challenge(ch, key, flags);
    if (s == MPX_OK) s = deliver_challenge(ch, key, flags);
  }
  if (s != MPX_OK) {
    ::close(fd);
    return s;
  }
  const int fl = fcntl(fd, F_GETFL);
  if (fl >= 0) fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
  *out = fd;
  return MPX_OK;
}

}  // namespace mpx::listen
