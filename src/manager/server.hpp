// The manager server: a table of objects, a listener, and one thread per client session.
//
// Every object has its own mutex and condition variable; an operation runs whole under the
// mutex, so each is atomic. A blocking operation (queue get, lock acquire, event wait...)
// waits on the condition variable in slices, and between slices checks that its client is
// still connected and the server still running: a client that dies while blocked is noticed
// within a slice and its wait abandoned. A session that ends for any reason releases the
// locks its client holds (the next acquirer is told MPX_EOWNERDEAD), breaks a barrier it
// was waiting at, and drops its references (an anonymous object dies with its last one).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>

#include "core/error.hpp"
#include "mpx/listener.h"

namespace mpx::manager {

struct MObj;
class Session;

struct ServerConfig {
  std::string address;   // empty: a fresh abstract unix socket
  std::string authkey;   // empty: none (local clients only, unless allow_remote)
  bool allow_remote = false;
};

class Server {
 public:
  Server();
  ~Server();
  Server(const Server &) = delete;
  Server &operator=(const Server &) = delete;

  // Listen and start serving (the accept thread).
  Status start(const ServerConfig &cfg);
  const std::string &address() const { return address_; }
  // Ask the server to stop (a client's shutdown request, or the owner); returns at once.
  void request_stop();
  // Wait until the server has stopped; false at the timeout.
  bool wait_stopped(int64_t timeout_ms);
  // Stop and wait for every thread.
  void stop();
  bool stopping() const { return stop_.load(std::memory_order_acquire); }

  // For sessions: the object table.
  std::shared_ptr<MObj> find(uint64_t id);
  Status create(Session &s, uint32_t type, const char *p, size_t n, uint64_t *id);
  Status open(Session &s, std::string_view name, uint64_t *id, uint32_t *type);
  void add_ref(uint64_t id);
  void drop_ref(uint64_t id);

 private:
  void accept_loop();
  void teardown();

  std::string address_;
  std::atomic<bool> stop_{false};
  void *listener_ = nullptr;  // mpx_listener *
  std::thread accept_thread_;

  std::mutex mu_;  // the tables and the session list
  std::condition_variable stopped_cv_;
  bool stopped_ = false;
  uint64_t next_id_ = 1;
  std::unordered_map<uint64_t, std::shared_ptr<MObj>> objs_;
  std::unordered_map<std::string, uint64_t> names_;
  struct SessionRec {
    std::unique_ptr<Session> session;
    std::thread thread;
  };
  std::list<SessionRec> sessions_;
  uint64_t next_session_ = 1;
};

}  // namespace mpx::manager
