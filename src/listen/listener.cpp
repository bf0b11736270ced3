// The listener (listener.hpp): a libuv loop thread accepting connections and running their
// handshakes as small state machines over non-blocking sockets. Handshake messages are read
// exactly (a 4-byte header, then at most kMaxHandshakeMessage bytes), so no byte after the
// handshake is consumed; the socket is handed over blocking once the handshake is done.
#include "listen/listener.hpp"

#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "listen/auth.hpp"
#include "platform/fork_mutex.hpp"

namespace mpx::listen {

enum class Stage { wait_response, fail_flush, wait_challenge, wait_verdict, done };

struct Handshake {
  Listener *owner = nullptr;
  int fd = -1;
  bool hand_over = false;  // authenticated: queue the descriptor once the handles are closed
  int open_handles = 0;
  uv_poll_t poll{};
  uv_timer_t timer{};
  Stage stage = Stage::wait_response;
  std::string challenge;  // our challenge body
  std::string in;         // the message being read (header included)
  std::string out;        // bytes to write
  size_t out_off = 0;
  std::string peer;
  bool closing = false;
};

namespace {

std::string frame(const std::string &m) {
  const uint32_t n = uint32_t(m.size());
  std::string f(4, '\0');
  f[0] = char(n >> 24);
  f[1] = char(n >> 16);
  f[2] = char(n >> 8);
  f[3] = char(n);
  return f + m;
}

}  // namespace

void Listener::on_handle_closed(uv_handle_t *handle) {
  auto *h = static_cast<Handshake *>(handle->data);
  if (--h->open_handles == 0) {
    if (h->hand_over && h->fd >= 0) h->owner->hand_over(h);
    if (h->fd >= 0) ::close(h->fd);
    delete h;
  }
}

void Listener::drop(Handshake *h) {
  if (h->closing) return;
  h->closing = true;
  handshakes_.erase(h);
  uv_poll_stop(&h->poll);
  uv_timer_stop(&h->timer);
  uv_close(reinterpret_cast<uv_handle_t *>(&h->poll), on_handle_closed);
  uv_close(reinterpret_cast<uv_handle_t *>(&h->timer), on_handle_closed);
}

void Listener::finish(Handshake *h, bool ok, bool auth_failed) {
  if (ok) {
    // Hand the descriptor over only once libuv has let go of it (the close callback):
    // stopping a poll handle removes its descriptor number from epoll, which must not
    // happen after the number was closed and reused.
    h->hand_over = true;
  } else if (auth_failed) {
    std::lock_guard<std::mutex> g(mu_);
    if (!closed_) {
      ready_.push_back({-1, h->peer});
      cv_.notify_all();
    }
  }
  drop(h);
}

void Listener::hand_over(Handshake *h) {
  {
    std::lock_guard<std::mutex> g(mu_);
    if (!closed_) {
      const int fl = fcntl(h->fd, F_GETFL);
      if (fl >= 0) fcntl(h->fd, F_SETFL, fl & ~O_NONBLOCK);
      ready_.push_back({h->fd, h->peer});
      cv_.notify_all();
      h->fd = -1;
    }
  }
}

namespace {

void update_poll(Handshake *h);

// Write what is pending; false when the connection must be dropped.
bool flush(Handshake *h) {
  while (h->out_off < h->out.size()) {
    const ssize_t n = ::send(h->fd, h->out.data() + h->out_off, h->out.size() - h->out_off, MSG_NOSIGNAL);
    if (n > 0) {
      h->out_off += size_t(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
    return false;
  }
  h->out.clear();
  h->out_off = 0;
  return true;
}

}  // namespace

void Listener::on_listen_readable() {
  for (;;) {
    sockaddr_storage peer{};
    socklen_t plen = sizeof peer;
    const int fd = ::accept4(fd_, reinterpret_cast<sockaddr *>(&peer), &plen, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        // Out of descriptors: the pending connection stays readable, so pause for 100 ms
        // instead of spinning.
        uv_poll_stop(&poll_);
        uv_timer_start(&backoff_, [](uv_timer_t *t) {
          auto *self = static_cast<Listener *>(t->data);
          uv_poll_start(&self->poll_, UV_READABLE, [](uv_poll_t *p, int, int) {
            static_cast<Listener *>(p->data)->on_listen_readable();
          });
        }, 100, 0);
      }
      return;  // EAGAIN
    }
    auto *h = new (std::nothrow) Handshake();
    if (!h) {
      ::close(fd);
      continue;
    }
    h->owner = this;
    h->fd = fd;
    h->peer = format_address(reinterpret_cast<sockaddr *>(&peer), plen);
    if (!has_key_ && !(flags_ & MPX_LISTENER_ALLOW_REMOTE) &&
        !is_local_peer(reinterpret_cast<sockaddr *>(&peer), plen)) {
      ::close(fd);
      delete h;
      continue;
    }
    uv_poll_init(&loop_, &h->poll, fd);
    uv_timer_init(&loop_, &h->timer);
    h->poll.data = h;
    h->timer.data = h;
    h->open_handles = 2;
    handshakes_.insert(h);
    if (!has_key_) {
      finish(h, true, false);
      continue;
    }
    if (make_challenge(&h->challenge) != MPX_OK) {
      drop(h);
      continue;
    }
    h->out = frame(kChallenge + h->challenge);
    uv_timer_start(&h->timer, [](uv_timer_t *t) {
      auto *hs = static_cast<Handshake *>(t->data);
      hs->owner->drop(hs);  // the deadline passed: a silent or slow client
    }, uint64_t(handshake_ms_), 0);
    if (!flush(h)) {
      drop(h);
      continue;
    }
    update_poll(h);
  }
}

namespace {

void on_poll(uv_poll_t *p, int status, int events);

void update_poll(Handshake *h) {
  int ev = UV_READABLE;
  if (!h->out.empty()) ev |= UV_WRITABLE;
  uv_poll_start(&h->poll, ev, on_poll);
}

}  // namespace

struct HandshakeIo {
  static void on_poll(uv_poll_t *p, int status, int events) {
    auto *h = static_cast<Handshake *>(p->data);
    Listener *l = h->owner;
    if (h->closing) return;
    if (status < 0) {
      l->drop(h);
      return;
    }
    if (events & UV_WRITABLE) {
      if (!flush(h)) {
        l->drop(h);
        return;
      }
      if (h->out.empty() && h->stage == Stage::fail_flush) {
        l->finish(h, false, true);
        return;
      }
    }
    if (events & UV_READABLE) {
      for (;;) {
        size_t need;
        if (h->in.size() < 4) {
          need = 4 - h->in.size();
        } else {
          const auto *b = reinterpret_cast<const unsigned char *>(h->in.data());
          const uint32_t n = uint32_t(b[0]) << 24 | uint32_t(b[1]) << 16 | uint32_t(b[2]) << 8 | b[3];
          if ((n & 0x80000000u) || n > kMaxHandshakeMessage) {  // -1 (64-bit length) or too long
            l->drop(h);
            return;
          }
          need = 4 + n - h->in.size();
        }
        if (need == 0) {
          std::string m = h->in.substr(4);
          h->in.clear();
          if (!l->on_message(h, m)) return;
          continue;
        }
        char buf[kMaxHandshakeMessage + 4];
        const ssize_t got = ::recv(h->fd, buf, need, 0);
        if (got > 0) {
          h->in.append(buf, size_t(got));
          continue;
        }
        if (got < 0 && errno == EINTR) continue;
        if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
        l->drop(h);  // end of stream or error mid-handshake
        return;
      }
    }
    update_poll(h);
  }
};

namespace {
void on_poll(uv_poll_t *p, int status, int events) { HandshakeIo::on_poll(p, status, events); }
}  // namespace

bool Listener::on_message(Handshake *h, const std::string &m) {
  const Key key{key_.data(), key_.size()};
  switch (h->stage) {
    case Stage::wait_response:
      if (verify_response(key, h->challenge, m, flags_) != MPX_OK) {
        h->out += frame(kFailure);
        h->stage = Stage::fail_flush;
        if (!flush(h)) {
          drop(h);
          return false;
        }
        if (h->out.empty()) {
          finish(h, false, true);
          return false;
        }
        update_poll(h);
        return false;
      }
      h->out += frame(kWelcome);
      h->stage = Stage::wait_challenge;
      break;
    case Stage::wait_challenge: {
      std::string response;
      const size_t plen = std::strlen(kChallenge);
      if (m.compare(0, plen, kChallenge) != 0 || m.size() < plen + kLegacyMessageLength ||
          make_response(key, m.substr(plen), flags_, &response) != MPX_OK) {
        finish(h, false, true);
        return false;
      }
      h->out += frame(response);
      h->stage = Stage::wait_verdict;
      break;
    }
    case Stage::wait_verdict:
      finish(h, m == kWelcome, m != kWelcome);
      return false;
    default:
      drop(h);
      return false;
  }
  if (!flush(h)) {
    drop(h);
    return false;
  }
  return true;
}

Status Listener::open(const char *address, const mpx_listener_options *opts) {
  bound_pid = uint32_t(getpid());
  if (opts) {
    if (opts->authkey) {
      if (opts->authkey_len == 0) return fail(MPX_EINVAL, "authkey is empty (use NULL for no authentication)");
      key_.assign(static_cast<const char *>(opts->authkey), opts->authkey_len);
      has_key_ = true;
    }
    flags_ = opts->flags;
    if (opts->handshake_timeout_ms > 0) handshake_ms_ = opts->handshake_timeout_ms;
    max_message_ = opts->max_message;
  }
  const int backlog = opts && opts->backlog > 0 ? opts->backlog : 128;
  Address a;
  if (Status s = parse_address(address, &a); s != MPX_OK) return s;
  fd_ = ::socket(a.family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd_ < 0) return fail_errno("socket");
  if (a.family != AF_UNIX) {
    int one = 1;
    setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);  // as Python's Listener does
  }
  // Linux creates a unix socket file with the socket's own mode (less the umask): set it
  // first so that the file is never reachable by others, then again after bind for systems
  // that ignore it.
  if (a.is_unix_path()) ::fchmod(fd_, 0600);
  if (::bind(fd_, reinterpret_cast<sockaddr *>(&a.sa), a.len) < 0) {
    if (errno == EADDRINUSE) return fail(MPX_EADDRINUSE, "address '{}' is already in use", address);
    return fail_errno("bind");
  }
  if (a.is_unix_path()) {
    unix_path_ = address;
    ::chmod(address, 0600);
  }
  if (::listen(fd_, backlog) < 0) return fail_errno("listen");
  // A forked child cannot accept on it (the loop thread is ours) and must not keep it bound.
  platform::drop_in_fork_child(fd_);
  sockaddr_storage got{};
  socklen_t glen = sizeof got;
  if (::getsockname(fd_, reinterpret_cast<sockaddr *>(&got), &glen) == 0 && a.family != AF_UNIX)
    address_ = format_address(reinterpret_cast<sockaddr *>(&got), glen);
  else
    address_ = address;
  if (uv_loop_init(&loop_) != 0) return fail(MPX_ESYS, "uv_loop_init failed");
  loop_ready_ = true;
  uv_async_init(&loop_, &stop_, [](uv_async_t *as) {
    auto *self = static_cast<Listener *>(as->data);
    for (Handshake *h : std::set<Handshake *>(self->handshakes_)) self->drop(h);
    uv_poll_stop(&self->poll_);
    uv_timer_stop(&self->backoff_);
    uv_close(reinterpret_cast<uv_handle_t *>(&self->poll_), nullptr);
    uv_close(reinterpret_cast<uv_handle_t *>(&self->backoff_), nullptr);
    uv_close(reinterpret_cast<uv_handle_t *>(&self->stop_), nullptr);
  });
  stop_.data = this;
  uv_poll_init(&loop_, &poll_, fd_);
  poll_.data = this;
  uv_timer_init(&loop_, &backoff_);
  backoff_.data = this;
  uv_poll_start(&poll_, UV_READABLE, [](uv_poll_t *p, int, int) { static_cast<Listener *>(p->data)->on_listen_readable(); });
  try {
    thread_ = std::thread([this] { run(); });
  } catch (...) {
    uv_async_send(&stop_);
    uv_run(&loop_, UV_RUN_DEFAULT);
    return fail(MPX_ESYS, "cannot start the listener thread");
  }
  return MPX_OK;
}

void Listener::run() { uv_run(&loop_, UV_RUN_DEFAULT); }

Status Listener::accept(int64_t timeout_ms, int *fd) {
  *fd = -1;
  std::unique_lock<std::mutex> g(mu_);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms < 0 ? 0 : timeout_ms);
  for (;;) {
    if (closed_ || closing()) return fail(MPX_ECLOSED, "the listener is closed");
    if (!ready_.empty()) {
      Ready r = std::move(ready_.front());
      ready_.pop_front();
      last_ = r.peer;
      has_last_ = true;
      if (r.fd < 0)
        return fail(MPX_EAUTH, "authentication failed: client '{}' gave a wrong digest or rejected ours", r.peer);
      *fd = r.fd;
      return MPX_OK;
    }
    if (timeout_ms == 0) return fail(MPX_ETIMEDOUT, "no connection is waiting");
    if (timeout_ms < 0)
      cv_.wait(g);
    else if (cv_.wait_until(g, deadline) == std::cv_status::timeout && ready_.empty() && !closed_ && !closing())
      return fail(MPX_ETIMEDOUT, "no connection within {} ms", timeout_ms);
  }
}

Status Listener::last_accepted(std::string *out) {
  std::lock_guard<std::mutex> g(mu_);
  if (!has_last_) return fail(MPX_ENOENT, "no connection has been accepted yet");
  *out = last_;
  return MPX_OK;
}

void Listener::wake_waiters() noexcept {
  std::lock_guard<std::mutex> g(mu_);
  cv_.notify_all();
}

Status Listener::close() {
  std::lock_guard<std::mutex> cg(close_mu_);
  {
    std::lock_guard<std::mutex> g(mu_);
    if (closed_) return MPX_OK;
    closed_ = true;
    cv_.notify_all();
  }
  if (loop_ready_) {
    if (thread_.joinable()) {
      uv_async_send(&stop_);
      thread_.join();
    }
    uv_loop_close(&loop_);
    loop_ready_ = false;
  }
  if (fd_ >= 0) {
    platform::forget_in_fork_child(fd_);
    ::close(fd_);
  }
  fd_ = -1;
  if (!unix_path_.empty()) ::unlink(unix_path_.c_str());
  std::lock_guard<std::mutex> g(mu_);
  for (const Ready &r : ready_)
    if (r.fd >= 0) ::close(r.fd);
  ready_.clear();
  return MPX_OK;
}

Listener::~Listener() {
  if (bound_pid == uint32_t(getpid()) || bound_pid == 0) {
    close();
  } else if (fd_ >= 0) {
    ::close(fd_);  // a forked child: the loop thread is the parent's
  }
}

}  // namespace mpx::listen
