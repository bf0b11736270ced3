// The object behind mpx_listener: a listening socket served by one libuv loop thread that
// accepts connections and runs their handshakes concurrently (each with its deadline), and
// a queue of authenticated connections (and of authentication failures, reported once each
// by accept, as Python's accept() raises AuthenticationError) for mpx_listener_accept.
#pragma once

#include <uv.h>

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "core/handle.hpp"
#include "listen/address.hpp"
#include "mpx/listener.h"

namespace mpx::listen {

struct Handshake;

class Listener final : public Object {
 public:
  Listener() : Object(HandleType::listener) {}
  ~Listener() override;

  Status open(const char *address, const mpx_listener_options *opts);
  // The next connection: *fd (blocking, close-on-exec) and its peer address.
  Status accept(int64_t timeout_ms, int *fd);
  Status close();
  std::string address() const { return address_; }
  Status last_accepted(std::string *out);
  uint64_t max_message() const { return max_message_; }
  void wake_waiters() noexcept override;

 private:
  friend struct Handshake;
  friend struct HandshakeIo;
  struct Ready {
    int fd;            // -1: an authentication failure
    std::string peer;
  };
  void run();
  void on_listen_readable();
  void finish(Handshake *h, bool ok, bool auth_failed);
  void drop(Handshake *h);
  void hand_over(Handshake *h);
  static void on_handle_closed(uv_handle_t *handle);
  // One complete handshake message; false when h was finished or dropped.
  bool on_message(Handshake *h, const std::string &m);

  // Configuration.
  std::string key_;
  bool has_key_ = false;
  uint32_t flags_ = 0;
  int64_t handshake_ms_ = MPX_HANDSHAKE_DEFAULT_TIMEOUT_MS;
  uint64_t max_message_ = 0;
  std::string address_;
  std::string unix_path_;  // removed by close

  int fd_ = -1;
  uv_loop_t loop_{};
  uv_async_t stop_{};
  uv_poll_t poll_{};
  uv_timer_t backoff_{};  // out of descriptors: stop accepting for a while
  bool loop_ready_ = false;
  std::thread thread_;
  std::set<Handshake *> handshakes_;  // loop thread only

  std::mutex close_mu_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Ready> ready_;
  bool closed_ = false;
  bool has_last_ = false;
  std::string last_;
};

}  // namespace mpx::listen
