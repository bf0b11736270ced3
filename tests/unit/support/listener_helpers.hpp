// Helpers for the listener tests: owned listeners, clients, raw sockets.
#pragma once

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <string>

#include "mpx/listener.h"
#include "support/conn_helpers.hpp"
#include "support/util.hpp"

namespace mpxt {

using ListenerPtr = std::unique_ptr<mpx_listener, Destroyer<mpx_listener, mpx_listener_destroy>>;

inline ListenerPtr make_listener(const std::string &addr, const std::string *key = nullptr, int64_t handshake_ms = 0,
                                 int *rc = nullptr, uint32_t flags = 0) {
  mpx_listener_options o;
  mpx_listener_options_init(&o, sizeof o);
  if (key) {
    o.authkey = key->data();
    o.authkey_len = key->size();
  }
  o.handshake_timeout_ms = handshake_ms;
  o.flags = flags;
  mpx_listener *l = nullptr;
  const int r = mpx_listener_create(&l, addr.c_str(), &o);
  if (rc) *rc = r;
  return ListenerPtr(l);
}

inline ConnPtr connect_to(const std::string &addr, const std::string *key, int *rc, uint32_t flags = 0,
                          int64_t timeout_ms = 10000) {
  mpx_client_options o;
  mpx_client_options_init(&o, sizeof o);
  if (key) {
    o.authkey = key->data();
    o.authkey_len = key->size();
  }
  o.flags = flags;
  o.timeout_ms = timeout_ms;
  mpx_conn *c = nullptr;
  *rc = mpx_client_connect(&c, addr.c_str(), &o);
  return ConnPtr(c);
}

inline std::string listener_address(mpx_listener *l) {
  char buf[256];
  size_t n = sizeof buf;
  if (mpx_listener_address(l, buf, &n) != MPX_OK) return "?";
  return std::string(buf, n);
}

inline std::string last_accepted(mpx_listener *l, int *rc) {
  char buf[256];
  size_t n = sizeof buf;
  *rc = mpx_listener_last_accepted(l, buf, &n);
  return *rc == MPX_OK ? std::string(buf, n) : std::string();
}

/** A private directory (0700) for socket files, removed with what is left in it. */
struct TempDir {
  std::string path;
  TempDir() {
    char t[] = "/tmp/mpxt-listen-XXXXXX";
    path = mkdtemp(t) ? t : "/tmp";
  }
  ~TempDir() {
    if (path != "/tmp") {
      std::string cmd = "rm -rf '" + path + "'";
      (void)!system(cmd.c_str());
    }
  }
  std::string file(const char *name) const { return path + "/" + name; }
};

/** A raw TCP connection to a 127.0.0.1 or [::1] address string; -1 on failure. */
inline int raw_connect(const std::string &addr) {
  mpx_conn *c = nullptr;
  mpx_client_options o;
  mpx_client_options_init(&o, sizeof o);
  if (mpx_client_connect(&c, addr.c_str(), &o) != MPX_OK) return -1;
  int fd = -1;
  mpx_conn_detach(c, &fd);
  return fd;
}

/** Warm OpenSSL (its random generator) and the resolver before the first test. */
inline void listener_warmup() {
  std::string key = "warm";
  auto l = make_listener("127.0.0.1:0", &key);
  int rc;
  auto c = connect_to(listener_address(l.get()), &key, &rc);
  mpx_conn *a = nullptr;
  mpx_listener_accept(l.get(), 5000, &a);
  mpx_conn_destroy(a);
}
inline const bool kListenerWarmupRegistered = register_warmup(&listener_warmup);

}  // namespace mpxt
