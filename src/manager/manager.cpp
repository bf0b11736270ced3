// Starting and stopping manager servers (manager.hpp), and the child server's entry points.
#include "manager/manager.hpp"

#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <fmt/format.h>

#include "manager/protocol.hpp"
#include "mpx/process.h"
#include "mpx/queue.h"
#include "platform/process.hpp"
#include "proc/process.hpp"

namespace mpx::manager {

namespace {

constexpr const char *kEntry = "mpx.manager.server";
constexpr const char *kEnvTokens = "MPX_MANAGER_TOKENS";
constexpr std::string_view kStop = "stop";

Status get_string(mpx_queue *q, std::string *out, int64_t timeout_ms) {
  void *data = nullptr;
  size_t len = 0;
  if (Status s = Status(mpx_queue_get(q, &data, &len, timeout_ms)); s != MPX_OK) return s;
  out->assign(static_cast<const char *>(data), len);
  mpx_free(data);
  return MPX_OK;
}

void entry(const void *payload, size_t size) {
  const Status s = serve_child(std::string(static_cast<const char *>(payload), size));
  std::fflush(nullptr);
  ::_exit(s == MPX_OK ? 0 : 1);
}

const bool g_registered = [] {
  proc::register_entry(kEntry, &entry);
  return true;
}();

}  // namespace

Status serve_child(const std::string &tokens) {
  const size_t nl = tokens.find('\n');
  if (nl == std::string::npos) return fail(MPX_EINVAL, "malformed manager tokens");
  mpx_queue *control = nullptr, *report = nullptr;
  if (Status s = Status(mpx_queue_attach(&control, tokens.substr(0, nl).c_str())); s != MPX_OK) return s;
  if (Status s = Status(mpx_queue_attach(&report, tokens.substr(nl + 1).c_str())); s != MPX_OK) {
    mpx_queue_destroy(control);
    return s;
  }
  std::string config;
  Status s = get_string(control, &config, 10000);
  ServerConfig cfg;
  if (s == MPX_OK) {
    Reader r(config.data(), config.size());
    cfg.address = r.bytes();
    cfg.authkey = r.bytes();
    cfg.allow_remote = r.u32() != 0;
    if (r.bad()) s = fail(MPX_EPROTO, "malformed manager configuration");
  }
  Server server;
  if (s == MPX_OK) s = server.start(cfg);
  std::string out;
  if (s == MPX_OK) out = "OK\n" + server.address();
  else out = fmt::format("ER\n{}\n{}", s, detail::message());
  mpx_queue_put(report, out.data(), out.size(), 1000);
  if (s == MPX_OK) {
    for (;;) {
      std::string m;
      const Status g = get_string(control, &m, 100);
      if (g == MPX_OK && m == kStop) break;
      if (g != MPX_OK && g != MPX_ETIMEDOUT) break;
      if (server.wait_stopped(0)) break;
    }
    server.stop();
  }
  mpx_queue_destroy(control);
  mpx_queue_destroy(report);
  return s;
}

ManagerObject::~ManagerObject() {
  if (bound_pid != 0 && bound_pid != platform::current_pid()) {
    // A forked child's copy: the server (its threads, or its process) is the parent's to
    // stop. Its sockets were let go at the fork; the rest is left as it is.
    (void)server_.release();
    child_ = nullptr;
    return;
  }
  shutdown(1000);
  if (control_) mpx_queue_destroy(control_);
  if (child_) mpx_process_destroy(child_);
}

Status ManagerObject::start(const mpx_manager_options *opts) {
  bound_pid = platform::current_pid();
  ServerConfig cfg;
  if (opts && opts->address) cfg.address = opts->address;
  if (opts && opts->authkey) {
    cfg.authkey.assign(static_cast<const char *>(opts->authkey), opts->authkey_len);
  } else {
    uint8_t key[256];
    size_t len = sizeof key;
    if (Status s = Status(mpx_authkey(key, &len)); s != MPX_OK) return s;
    cfg.authkey.assign(reinterpret_cast<const char *>(key), len);
  }
  cfg.allow_remote = opts && (opts->flags & MPX_MANAGER_ALLOW_REMOTE);
  if (opts && (opts->flags & MPX_MANAGER_IN_PROCESS)) {
    server_ = std::make_unique<Server>();
    if (Status s = server_->start(cfg); s != MPX_OK) return s;
    address_ = server_->address();
    pid_ = ::getpid();
    return MPX_OK;
  }
  return start_child(opts, cfg);
}

Status ManagerObject::start_child(const mpx_manager_options *opts, const ServerConfig &cfg) {
  mpx_queue_options qo;
  mpx_queue_options_init(&qo, sizeof qo);
  qo.capacity = 4096;
  mpx_queue *report = nullptr;
  if (Status s = Status(mpx_queue_create(&control_, &qo)); s != MPX_OK) return s;
  if (Status s = Status(mpx_queue_create(&report, &qo)); s != MPX_OK) return s;
  struct Closer {
    mpx_queue *q;
    ~Closer() { mpx_queue_destroy(q); }
  } closer{report};

  std::string config;
  Writer(&config).str(cfg.address).str(cfg.authkey).u32(cfg.allow_remote);
  if (Status s = Status(mpx_queue_put(control_, config.data(), config.size(), 0)); s != MPX_OK) return s;
  char t1[MPX_TOKEN_MAX], t2[MPX_TOKEN_MAX];
  size_t l1 = sizeof t1, l2 = sizeof t2;
  if (Status s = Status(mpx_queue_token(control_, t1, &l1)); s != MPX_OK) return s;
  if (Status s = Status(mpx_queue_token(report, t2, &l2)); s != MPX_OK) return s;
  const std::string tokens = std::string(t1, l1) + "\n" + std::string(t2, l2);

  mpx_process_options po;
  mpx_process_options_init(&po, sizeof po);
  po.method = opts ? opts->method : 0;
  po.daemon = 1;
  po.name = "SyncManager";
  const std::string env = std::string(kEnvTokens) + "=" + tokens;
  const char *envp[] = {env.c_str(), nullptr};
  if (po.method == MPX_START_SPAWN) {
    po.file = opts && opts->file ? opts->file : "mpx-manager";
    po.env = envp;
    po.env_mode = MPX_ENV_EXTEND;
  } else if (po.method == MPX_START_FORK) {
    po.entry_fn = &entry;
    po.payload = tokens.data();
    po.payload_size = tokens.size();
  } else {
    po.entry = kEntry;
    po.payload = tokens.data();
    po.payload_size = tokens.size();
  }
  if (Status s = Status(mpx_process_create(&child_, &po)); s != MPX_OK) return s;
  if (Status s = Status(mpx_process_start(child_)); s != MPX_OK) return s;
  mpx_process_pid(child_, &pid_);

  const int64_t limit = opts && opts->start_timeout_ms > 0 ? opts->start_timeout_ms : 10000;
  std::string m;
  Status s = MPX_ETIMEDOUT;
  for (int64_t waited = 0; waited < limit; waited += 50) {
    s = get_string(report, &m, 50);
    if (s != MPX_ETIMEDOUT) break;
    int alive = 1;
    mpx_process_is_alive(child_, &alive);
    if (!alive) {
      s = get_string(report, &m, 0);  // it may have reported just before dying
      if (s != MPX_OK) s = fail(MPX_ESYS, "the manager server process exited before it listened");
      break;
    }
  }
  if (s == MPX_OK && m.compare(0, 3, "OK\n") == 0) {
    address_ = m.substr(3);
    return MPX_OK;
  }
  if (s == MPX_OK) {  // "ER\n<code>\n<message>"
    const size_t nl = m.find('\n', 3);
    const int code = std::atoi(m.c_str() + 3);
    s = fail(code < 0 ? Status(code) : MPX_ESYS, "manager server: {}", nl == std::string::npos ? m : m.substr(nl + 1));
  } else if (s == MPX_ETIMEDOUT) {
    s = fail(MPX_ETIMEDOUT, "the manager server did not start listening within {} ms", limit);
  }
  const std::string why = detail::message();
  mpx_process_kill(child_);
  mpx_process_join(child_, -1);
  down_.store(true);
  return fail(s, "{}", why);
}

Status ManagerObject::wait(int64_t timeout_ms) {
  if (server_) return server_->wait_stopped(timeout_ms) ? MPX_OK : fail(MPX_ETIMEDOUT, "the manager still runs");
  if (!child_) return MPX_OK;
  return Status(mpx_process_join(child_, timeout_ms));
}

Status ManagerObject::shutdown(int64_t timeout_ms) {
  if (down_.exchange(true)) return MPX_OK;
  if (server_) {
    server_->stop();
    return MPX_OK;
  }
  if (!child_) return MPX_OK;
  mpx_queue_put(control_, kStop.data(), kStop.size(), 0);
  if (mpx_process_join(child_, timeout_ms < 0 ? -1 : timeout_ms) == MPX_OK) return MPX_OK;
  mpx_process_kill(child_);
  return Status(mpx_process_join(child_, -1));
}

}  // namespace mpx::manager

extern "C" MPX_API int mpx_manager_main(void) {
  const char *tokens = std::getenv("MPX_MANAGER_TOKENS");
  if (!tokens) return mpx::fail(MPX_EINVAL, "MPX_MANAGER_TOKENS is not set: not started as a manager server");
  const std::string t(tokens);
  ::unsetenv("MPX_MANAGER_TOKENS");
  return mpx::manager::serve_child(t);
}
