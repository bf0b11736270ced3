// A manager client: one connection, and on the same machine a pair of mpx queues in shared
// memory that carry the requests once the socket handshake is done. One call at a time per
// client (calls from several threads queue up on call_mu_).
//
// Waiting for a reply is done in slices; between slices the client looks at the socket, so
// a dead server is noticed (MPX_EOF) instead of waited for. Closing the client (from any
// thread) wakes a call in progress, which returns MPX_ECLOSED.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "core/error.hpp"
#include "core/handle.hpp"
#include "manager/protocol.hpp"
#include "mpx/manager.h"

struct mpx_conn;
struct mpx_queue;

namespace mpx::manager {

class ClientCore {
 public:
  ~ClientCore();
  Status connect(const char *address, const mpx_mclient_options *opts);
  // Send a request (header fields, then `body`) and wait for its reply; *out = the reply's
  // results. An error reply sets the thread's error message to the server's.
  Status call(Op op, uint32_t arg, uint64_t obj, int64_t timeout_ms, const std::string &body, std::string *out);
  void close();
  bool shm() const { return req_ != nullptr; }

 private:
  bool server_gone();
  Status exchange(const std::string &req, std::string *rep, uint64_t seq);
  void setup_shm();

  uint32_t pid_ = 0;  // the process that connected: a forked child's copy makes no call
  std::mutex call_mu_;
  mpx_conn *conn_ = nullptr;
  int fd_ = -1;
  mpx_queue *req_ = nullptr;
  mpx_queue *rep_ = nullptr;
  uint64_t seq_ = 0;
  std::atomic<bool> closed_{false};
  bool broken_ = false;  // call_mu_: the connection is unusable
  std::string buf_;      // call_mu_: the request being built
};

class ClientObject final : public Object {
 public:
  ClientObject() : Object(HandleType::mclient), core(std::make_shared<ClientCore>()) {}
  ~ClientObject() override { core->close(); }
  void wake_waiters() noexcept override { core->close(); }
  std::shared_ptr<ClientCore> core;
};

class ProxyObject final : public Object {
 public:
  ProxyObject() : Object(HandleType::proxy) {}
  ~ProxyObject() override;
  // Destroying a proxy while another thread's call on it is blocked closes its client (the
  // server then abandons the call): the blocked call returns MPX_ECLOSED.
  void wake_waiters() noexcept override {
    if (calls.load() > 0 && core) core->close();
  }
  std::shared_ptr<ClientCore> core;
  std::atomic<int> calls{0};
  uint64_t id = 0;
  uint32_t type = 0;
  size_t itemsize = 0;  // value, array
};

}  // namespace mpx::manager
