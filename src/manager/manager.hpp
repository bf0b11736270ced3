// A manager server this process started: in its own threads, or in a child process.
//
// A child server is told its configuration through an mpx queue (so that the authkey never
// appears in an argument list or an environment) and reports the address it listens on
// through another. The first queue also carries the parent's request to stop.
#pragma once

#include <atomic>
#include <memory>
#include <string>

#include "core/handle.hpp"
#include "manager/server.hpp"
#include "mpx/manager.h"

struct mpx_process;
struct mpx_queue;

namespace mpx::manager {

class ManagerObject final : public Object {
 public:
  ManagerObject() : Object(HandleType::manager) {}
  ~ManagerObject() override;
  Status start(const mpx_manager_options *opts);
  const std::string &address() const { return address_; }
  int64_t pid() const { return pid_; }
  Status wait(int64_t timeout_ms);
  Status shutdown(int64_t timeout_ms);

 private:
  Status start_child(const mpx_manager_options *opts, const ServerConfig &cfg);

  std::unique_ptr<Server> server_;  // in-process
  mpx_process *child_ = nullptr;     // a child server
  mpx_queue *control_ = nullptr;     // to the child: configuration, then "stop"
  std::string address_;
  int64_t pid_ = 0;
  std::atomic<bool> down_{false};
};

// The server side of a child: attach the queues the tokens name, serve, return when done.
Status serve_child(const std::string &tokens);

}  // namespace mpx::manager
