// C entry points of mpx/listener.h.
#include "mpx/listener.h"

#include <unistd.h>

#include <string>

#include "capi/util.hpp"
#include "conn/connection.hpp"
#include "listen/auth.hpp"
#include "listen/client.hpp"
#include "listen/listener.hpp"

using namespace mpx;
using namespace mpx::capi;
using conn::Connection;
using listen::Listener;

namespace {

Status wrap_fd(int fd, uint64_t max_message, mpx_conn **out) {
  auto *c = new (std::nothrow) Connection();
  if (!c) {
    ::close(fd);
    return fail(MPX_ENOMEM, "out of memory");
  }
  if (Status s = c->init(fd, MPX_CONN_READABLE | MPX_CONN_WRITABLE, max_message ? max_message : MPX_CONN_DEFAULT_MAX_MESSAGE);
      s != MPX_OK) {
    delete c;
    return s;
  }
  void *h;
  if (Status s = insert_handle(c, &h); s != MPX_OK) return s;
  *out = static_cast<mpx_conn *>(h);
  return MPX_OK;
}

// Handshake messages over an mpx connection.
class ConnChannel final : public listen::Channel {
 public:
  ConnChannel(Connection *c, int64_t timeout_ms) : c_(c), timeout_(timeout_ms) {}
  Status send(const std::string &m) override { return c_->send(m.data(), m.size()); }
  Status recv(std::string *m) override {
    void *data = nullptr;
    size_t len = 0;
    if (Status s = c_->recv(listen::kMaxHandshakeMessage, &data, &len, timeout_); s != MPX_OK) return s;
    m->assign(static_cast<const char *>(data), len);
    mpx_free(data);
    return MPX_OK;
  }

 private:
  Connection *c_;
  int64_t timeout_;
};

template <typename F>
int on_conn_key(mpx_conn *conn, const void *authkey, size_t authkey_len, F &&f) {
  MPX_REQUIRE(authkey && authkey_len > 0, "authkey is NULL or empty");
  MPX_PIN(c, Connection, conn, HandleType::connection);
  return guarded([&]() -> int { return f(c.get(), listen::Key{authkey, authkey_len}); });
}

}  // namespace

extern "C" {

MPX_API int mpx_listener_options_init(mpx_listener_options *opts, size_t struct_size) {
  return init_options(opts, struct_size, "mpx_listener_options");
}

MPX_API int mpx_client_options_init(mpx_client_options *opts, size_t struct_size) {
  return init_options(opts, struct_size, "mpx_client_options");
}

MPX_API int mpx_listener_create(mpx_listener **out, const char *address, const mpx_listener_options *opts) {
  MPX_REQUIRE(out, "out is NULL");
  *out = nullptr;
  MPX_REQUIRE(address, "address is NULL");
  if (Status s = check_options(opts, "mpx_listener_options"); s != MPX_OK) return s;
  if (opts && opts->reserved != 0) return fail(MPX_EINVAL, "mpx_listener_options.reserved must be 0");
  if (opts && opts->backlog < 0) return fail(MPX_EINVAL, "mpx_listener_options.backlog is negative");
  if (opts && (opts->flags & ~uint32_t(MPX_AUTH_REQUIRE_SHA256 | MPX_LISTENER_ALLOW_REMOTE)))
    return fail(MPX_EINVAL, "mpx_listener_options.flags has unknown bits");
  return create_handle<mpx_listener, Listener>(out, [&](Listener *l) { return l->open(address, opts); });
}

MPX_API int mpx_listener_accept(mpx_listener *l, int64_t timeout_ms, mpx_conn **conn) {
  MPX_REQUIRE(conn, "conn is NULL");
  *conn = nullptr;
  MPX_PIN(o, Listener, l, HandleType::listener);
  int fd = -1;
  if (Status s = o->accept(timeout_ms, &fd); s != MPX_OK) return s;
  return guarded([&]() -> int { return wrap_fd(fd, o->max_message(), conn); });
}

MPX_API int mpx_listener_address(mpx_listener *l, char *buf, size_t *len) {
  MPX_REQUIRE(len, "len is NULL");
  MPX_PIN(o, Listener, l, HandleType::listener);
  return guarded([&]() -> int { return copy_out(o->address(), buf, len); });
}

MPX_API int mpx_listener_last_accepted(mpx_listener *l, char *buf, size_t *len) {
  MPX_REQUIRE(len, "len is NULL");
  MPX_PIN(o, Listener, l, HandleType::listener);
  return guarded([&]() -> int {
    std::string s;
    if (Status st = o->last_accepted(&s); st != MPX_OK) return st;
    return copy_out(s, buf, len);
  });
}

MPX_API int mpx_listener_close(mpx_listener *l) {
  MPX_PIN(o, Listener, l, HandleType::listener);
  return o->close();
}

MPX_API int mpx_listener_destroy(mpx_listener *l) { return destroy_handle(l, HandleType::listener); }

MPX_API int mpx_client_connect(mpx_conn **out, const char *address, const mpx_client_options *opts) {
  MPX_REQUIRE(out, "out is NULL");
  *out = nullptr;
  MPX_REQUIRE(address, "address is NULL");
  if (Status s = check_options(opts, "mpx_client_options"); s != MPX_OK) return s;
  if (opts && (opts->flags & ~uint32_t(MPX_AUTH_REQUIRE_SHA256)))
    return fail(MPX_EINVAL, "mpx_client_options.flags has unknown bits");
  return guarded([&]() -> int {
    int fd = -1;
    if (Status s = listen::client_connect(address, opts, &fd); s != MPX_OK) return s;
    return wrap_fd(fd, opts ? opts->max_message : 0, out);
  });
}

MPX_API int mpx_conn_deliver_challenge(mpx_conn *conn, const void *authkey, size_t authkey_len, uint32_t flags,
                                       int64_t timeout_ms) {
  return on_conn_key(conn, authkey, authkey_len, [&](Connection *c, const listen::Key &k) {
    ConnChannel ch(c, timeout_ms);
    return listen::deliver_challenge(ch, k, flags);
  });
}

MPX_API int mpx_conn_answer_challenge(mpx_conn *conn, const void *authkey, size_t authkey_len, uint32_t flags,
                                      int64_t timeout_ms) {
  return on_conn_key(conn, authkey, authkey_len, [&](Connection *c, const listen::Key &k) {
    ConnChannel ch(c, timeout_ms);
    return listen::answer_challenge(ch, k, flags);
  });
}

}  // extern "C"
