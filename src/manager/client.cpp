// Manager clients (client.hpp).
#include "manager/client.hpp"

#include <poll.h>
#include <sys/socket.h>

#include <cstdio>
#include <cstring>
#include <vector>

#include "listen/address.hpp"
#include "platform/fork_mutex.hpp"
#include "platform/process.hpp"
#include "mpx/connection.h"
#include "mpx/listener.h"
#include "mpx/process.h"
#include "mpx/queue.h"

namespace mpx::manager {

namespace {

constexpr int64_t kSliceMs = 100;

}  // namespace

ClientCore::~ClientCore() {
  if (req_) mpx_queue_destroy(req_);
  if (rep_) mpx_queue_destroy(rep_);
  platform::forget_in_fork_child(fd_);
  if (conn_) mpx_conn_destroy(conn_);
}

Status ClientCore::connect(const char *address, const mpx_mclient_options *opts) {
  mpx_client_options co;
  mpx_client_options_init(&co, sizeof co);
  uint8_t key[256];
  if (opts && opts->authkey) {
    co.authkey = opts->authkey;
    co.authkey_len = opts->authkey_len;
  } else {
    size_t len = sizeof key;
    if (Status s = Status(mpx_authkey(key, &len)); s != MPX_OK) return s;
    co.authkey = key;
    co.authkey_len = len;
  }
  co.timeout_ms = opts ? opts->timeout_ms : 0;
  co.max_message = uint64_t(1) << 32;
  if (Status s = Status(mpx_client_connect(&conn_, address, &co)); s != MPX_OK) return s;
  mpx_conn_fileno(conn_, &fd_);
  pid_ = platform::current_pid();
  // A forked child cannot use this client; holding its socket would hide our death (and
  // release of our locks) from the server.
  platform::drop_in_fork_child(fd_);
  sockaddr_storage peer{};
  socklen_t plen = sizeof peer;
  const bool local = ::getpeername(fd_, reinterpret_cast<sockaddr *>(&peer), &plen) == 0 &&
                     listen::is_local_peer(reinterpret_cast<sockaddr *>(&peer), plen);
  if (local && !(opts && (opts->flags & MPX_MCLIENT_SOCKET_ONLY))) setup_shm();
  return MPX_OK;
}

// Offer the server a pair of queues; on any failure stay on the socket.
void ClientCore::setup_shm() {
  mpx_queue_options qo;
  mpx_queue_options_init(&qo, sizeof qo);
  qo.capacity = kRing;
  mpx_queue *a = nullptr, *b = nullptr;
  if (mpx_queue_create(&a, &qo) != MPX_OK) return;
  if (mpx_queue_create(&b, &qo) != MPX_OK) {
    mpx_queue_destroy(a);
    return;
  }
  char ta[MPX_TOKEN_MAX], tb[MPX_TOKEN_MAX];
  size_t la = sizeof ta, lb = sizeof tb;
  std::string body;
  if (mpx_queue_token(a, ta, &la) == MPX_OK && mpx_queue_token(b, tb, &lb) == MPX_OK) {
    Writer(&body).str(std::string_view(ta, la)).str(std::string_view(tb, lb)).str(boot_id());
    std::string out;
    if (call(Op::hello_shm, 0, 0, 0, body, &out) == MPX_OK) {
      std::lock_guard lk(call_mu_);
      req_ = a;
      rep_ = b;
      return;
    }
  }
  mpx_queue_destroy(a);
  mpx_queue_destroy(b);
}

void ClientCore::close() {
  if (closed_.exchange(true)) return;
  if (fd_ >= 0) ::shutdown(fd_, SHUT_RDWR);
}

bool ClientCore::server_gone() { return peer_gone(fd_); }

// One request and its reply (call_mu_ held).
Status ClientCore::exchange(const std::string &req, std::string *rep, uint64_t seq) {
  void *data = nullptr;
  size_t len = 0;
  if (!req_) {
    if (Status s = Status(mpx_conn_send(conn_, req.data(), req.size())); s != MPX_OK) return s;
    for (;;) {
      if (Status s = Status(mpx_conn_recv(conn_, SIZE_MAX, &data, &len, -1)); s != MPX_OK) return s;
      ReplyHeader h{};
      if (len >= sizeof h) std::memcpy(&h, data, sizeof h);
      if (len >= sizeof h && h.seq == seq) break;
      mpx_free(data);  // a reply to an abandoned call
    }
  } else {
    const bool big = req.size() > kQueueInlineMax;
    const char *msg = big ? kOnSocket : req.data();
    const size_t msg_len = big ? sizeof kOnSocket : req.size();
    for (;;) {
      const Status s = Status(mpx_queue_put(req_, msg, msg_len, kSliceMs));
      if (s == MPX_OK) break;
      if (s != MPX_ETIMEDOUT) return s;
      if (closed_.load()) return MPX_ECLOSED;
      if (server_gone()) return fail(MPX_EOF, "the manager has gone");
    }
    if (big) {
      if (Status s = Status(mpx_conn_send(conn_, req.data(), req.size())); s != MPX_OK) return s;
    }
    for (;;) {
      const Status s = Status(mpx_queue_get(rep_, &data, &len, kSliceMs));
      if (s == MPX_OK && is_on_socket(data, len)) {
        mpx_free(data);
        data = nullptr;
        if (Status r = Status(mpx_conn_recv(conn_, SIZE_MAX, &data, &len, -1)); r != MPX_OK) return r;
      }
      if (s == MPX_OK) {
        ReplyHeader h{};
        if (len >= sizeof h) std::memcpy(&h, data, sizeof h);
        if (len >= sizeof h && h.seq == seq) break;
        mpx_free(data);
        continue;
      }
      if (s != MPX_ETIMEDOUT) return s;
      if (closed_.load()) return MPX_ECLOSED;
      if (server_gone()) return fail(MPX_EOF, "the manager has gone");
    }
  }
  rep->assign(static_cast<const char *>(data), len);
  mpx_free(data);
  return MPX_OK;
}

Status ClientCore::call(Op op, uint32_t arg, uint64_t obj, int64_t timeout_ms, const std::string &body, std::string *out) {
  // Its queues are the parent's too: a request from a forked child (a proxy's release, run by
  // a destructor) would be answered as the parent's, and call_mu_ may be held by a thread the
  // child does not have.
  if (platform::current_pid() != pid_) return fail(MPX_EFORKED, "the manager client belongs to the parent process");
  std::lock_guard lk(call_mu_);
  if (closed_.load()) return fail(MPX_ECLOSED, "the manager client was closed");
  if (broken_) return fail(MPX_EOF, "the connection to the manager is broken");
  const RequestHeader h{uint32_t(op), arg, obj, timeout_ms, ++seq_};
  buf_.assign(reinterpret_cast<const char *>(&h), sizeof h);
  buf_ += body;
  std::string rep;
  Status s = exchange(buf_, &rep, h.seq);
  if (s != MPX_OK) {
    broken_ = true;
    if (closed_.load()) return fail(MPX_ECLOSED, "the manager client was closed");
    if (s == MPX_EOF || s == MPX_EPIPE || s == MPX_ECLOSED || s == MPX_EPROTO)
      return fail(MPX_EOF, "the manager has gone ({})", mpx_error_name(s));
    return s;
  }
  ReplyHeader rh{};
  std::memcpy(&rh, rep.data(), sizeof rh);
  if (rh.code != MPX_OK) {
    const std::string msg = rep.substr(sizeof rh);
    return fail(Status(rh.code), "{}", msg);
  }
  out->assign(rep, sizeof rh);
  return MPX_OK;
}

ProxyObject::~ProxyObject() {
  if (core && id) {
    std::string out;
    core->call(Op::release, 0, id, 0, {}, &out);  // best effort: the server drops it with the client anyway
  }
}

}  // namespace mpx::manager
