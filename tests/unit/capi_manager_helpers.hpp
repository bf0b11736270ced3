// Helpers for the manager tests (mpx/manager.h): owned servers, clients and proxies, servers
// started each way, and the bytes that come back from a proxy as std::string.
#pragma once

#include <memory>
#include <string>

#include "mpx/manager.h"
#include "support/mpx_helpers.hpp"

#ifndef MPX_TEST_MANAGER
#define MPX_TEST_MANAGER "mpx_test_manager"
#endif

namespace mpxt {

using ManagerPtr = std::unique_ptr<mpx_manager, Destroyer<mpx_manager, mpx_manager_destroy>>;
using MClientPtr = std::unique_ptr<mpx_mclient, Destroyer<mpx_mclient, mpx_mclient_destroy>>;
using ProxyPtr = std::unique_ptr<mpx_proxy, Destroyer<mpx_proxy, mpx_proxy_destroy>>;

/** How the server runs: threads of this process, or a child started by fork, forkserver or spawn. */
enum class Start { InProcess, Fork, Forkserver, Spawn };

inline const char *start_name(Start s) {
  switch (s) {
    case Start::InProcess: return "in-process";
    case Start::Fork: return "fork";
    case Start::Forkserver: return "forkserver";
    case Start::Spawn: return "spawn";
  }
  return "?";
}

/** Start a server (address "" = the default fresh unix socket; key nullptr = this process's authkey). */
inline ManagerPtr start_manager(Start s, int *rc = nullptr, const std::string &address = "",
                                const std::string *key = nullptr) {
  mpx_manager_options o;
  mpx_manager_options_init(&o, sizeof o);
  switch (s) {
    case Start::InProcess: o.flags |= MPX_MANAGER_IN_PROCESS; break;
#if defined(__SANITIZE_THREAD__)
    // ThreadSanitizer cannot run a child that starts threads after a fork of a threaded
    // parent (die_after_fork): its fork-started servers come from the forkserver instead.
    case Start::Fork: o.method = MPX_START_FORKSERVER; break;
#else
    case Start::Fork: o.method = MPX_START_FORK; break;
#endif
    case Start::Forkserver: o.method = MPX_START_FORKSERVER; break;
    case Start::Spawn:
      o.method = MPX_START_SPAWN;
      o.file = MPX_TEST_MANAGER;
      break;
  }
  if (!address.empty()) o.address = address.c_str();
  if (key) {
    o.authkey = key->data();
    o.authkey_len = key->size();
  }
  mpx_manager *m = nullptr;
  const int r = mpx_manager_start(&m, &o);
  if (rc) *rc = r;
  return ManagerPtr(m);
}

inline std::string manager_address(mpx_manager *m) {
  char buf[512];
  size_t n = sizeof buf;
  if (mpx_manager_address(m, buf, &n) != MPX_OK) return std::string();
  return std::string(buf, n);
}

inline MClientPtr mconnect(const std::string &address, int *rc = nullptr, uint32_t flags = 0,
                           const std::string *key = nullptr, int64_t timeout_ms = 0) {
  mpx_mclient_options o;
  mpx_mclient_options_init(&o, sizeof o);
  o.flags = flags;
  if (key) {
    o.authkey = key->data();
    o.authkey_len = key->size();
  }
  o.timeout_ms = timeout_ms;
  mpx_mclient *c = nullptr;
  const int r = mpx_manager_connect(&c, address.c_str(), &o);
  if (rc) *rc = r;
  return MClientPtr(c);
}

/** Options for mpx_proxy_create, defaults filled. */
inline mpx_mobj_options mobj_options(const char *name = nullptr) {
  mpx_mobj_options o;
  mpx_mobj_options_init(&o, sizeof o);
  o.name = name;
  return o;
}

inline ProxyPtr mcreate(mpx_mclient *c, int type, const mpx_mobj_options *o = nullptr, int *rc = nullptr) {
  mpx_proxy *p = nullptr;
  const int r = mpx_proxy_create(c, type, o, &p);
  if (rc) *rc = r;
  return ProxyPtr(p);
}

inline ProxyPtr mopen(mpx_mclient *c, const std::string &name_or_token, int *rc = nullptr) {
  mpx_proxy *p = nullptr;
  const int r = mpx_proxy_open(c, name_or_token.c_str(), &p);
  if (rc) *rc = r;
  return ProxyPtr(p);
}

inline std::string proxy_token(mpx_proxy *p) {
  char buf[MPX_TOKEN_MAX];
  size_t n = sizeof buf;
  if (mpx_proxy_token(p, buf, &n) != MPX_OK) return std::string();
  return std::string(buf, n);
}

/** Library-allocated bytes as a string (freed). */
inline std::string take_bytes(void *data, size_t len) {
  std::string s(static_cast<const char *>(data), len);
  mpx_free(data);
  return s;
}

inline std::string dict_get(mpx_proxy *d, const std::string &key, int *rc) {
  void *v = nullptr;
  size_t n = 0;
  *rc = mpx_mdict_get(d, key.c_str(), &v, &n);
  return *rc == MPX_OK ? take_bytes(v, n) : std::string();
}

inline int dict_set(mpx_proxy *d, const std::string &key, const std::string &value) {
  return mpx_mdict_set(d, key.c_str(), value.data(), value.size());
}

inline std::string list_get(mpx_proxy *l, int64_t i, int *rc) {
  void *v = nullptr;
  size_t n = 0;
  *rc = mpx_mlist_get(l, i, &v, &n);
  return *rc == MPX_OK ? take_bytes(v, n) : std::string();
}

inline int list_append(mpx_proxy *l, const std::string &value) {
  return mpx_mlist_append(l, value.data(), value.size());
}

inline int queue_put(mpx_proxy *q, const std::string &item, int64_t timeout_ms = -1) {
  return mpx_mqueue_put(q, item.data(), item.size(), timeout_ms);
}

inline std::string queue_get(mpx_proxy *q, int *rc, int64_t timeout_ms = -1) {
  void *v = nullptr;
  size_t n = 0;
  *rc = mpx_mqueue_get(q, &v, &n, timeout_ms);
  return *rc == MPX_OK ? take_bytes(v, n) : std::string();
}

inline size_t list_len(mpx_proxy *l) {
  size_t n = SIZE_MAX;
  mpx_mlist_len(l, &n);
  return n;
}

inline size_t dict_len(mpx_proxy *d) {
  size_t n = SIZE_MAX;
  mpx_mdict_len(d, &n);
  return n;
}

// The forkserver lives as long as the process: start it before the first test so that the leak
// check does not count it (as the pool tests do).
// Lazy one-time state (random generator, handle tables, the daemon forker) likewise.
inline void manager_warmup() {
  mpx_forkserver_start();
  warm_up_daemon_forker();
  auto m = start_manager(Start::InProcess);
  if (!m) return;
  auto c = mconnect(manager_address(m.get()));
  if (c) {
    auto d = mcreate(c.get(), MPX_MOBJ_DICT);
    if (d) dict_set(d.get(), "k", "v");
  }
}
inline const bool kManagerWarmupRegistered = register_warmup(&manager_warmup);

}  // namespace mpxt
