// The object behind mpx_conn: one end of a connection, carrying Python-framed messages
// (frame.hpp) over a Stream.
//
// Receiving. A receive first gets the frame's header; once it is parsed the body must be
// read, so the size is kept as "pending" until it is: a recv_into whose buffer is too
// small, or a recv that cannot allocate, leaves the message for the next receive of any
// kind. A timeout applies until the first byte of a frame arrives; after that the peer is
// sending the frame right now and the receive reads on until it is complete (a byte
// stream cannot be un-read), unless the peer goes (truncated: MPX_EPROTO) or the handle
// is destroyed (MPX_ECLOSED). Errors that leave the stream position unknown (truncation,
// a length over the limit, a malformed header) break the connection: every later receive
// reports the same error.
//
// Threads. Like Python's Connection this is not meant for two concurrent senders or
// receivers, but it is safe: sends hold one lock and receives another. A forked child
// may use an inherited connection: its first call starts the locks afresh (a parent
// thread may have held them at fork) and makes the child its own wake-up eventfd; until
// then, destroying it in the child touches nothing the parent's threads depend on.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>

#include "conn/mutex.hpp"
#include "conn/stream.hpp"
#include "core/handle.hpp"
#include "mpx/connection.h"

namespace mpx::conn {

// Payload of a message that carries descriptors: a tag, the descriptor count (big-endian),
// then what the tag defines (a connection's flags, a segment's name).
constexpr uint32_t kTagFds = 0x6d707846;      // "mpxF": mpx_conn_send_fds
constexpr uint32_t kTagConn = 0x6d707843;     // "mpxC": flags (4) + max_message (8)
constexpr uint32_t kTagSegment = 0x6d707853;  // "mpxS": the segment's name, if any
constexpr size_t kFdFrameHead = 8;
constexpr size_t kMaxFdFrameExtra = 256;

class Connection final : public Object {
 public:
  Connection() : Object(HandleType::connection), stream_(this) {}

  // Take fd (closed by the destructor, also when init fails).
  Status init(int fd, uint32_t flags, uint64_t max_message);
  // A connected pair: a socketpair, or a pipe (a reads, b writes).
  static Status make_pair(bool duplex, uint64_t max_message, Connection *a, Connection *b);

  int fd() const { return stream_.fd(); }
  uint32_t flags() const { return flags_; }
  uint64_t max_message() const { return max_message_; }
  // The destructor will leave the descriptor open. False if already detached.
  bool detach();
  ~Connection() override;

  Status send(const void *data, size_t len);
  Status recv(size_t maxlength, void **data, size_t *len, int64_t timeout_ms);
  Status recv_into(void *buf, size_t cap, size_t *len, int64_t timeout_ms);
  Status poll(int64_t timeout_ms);
  // A receive would return at once: a message is pending, or the connection is broken.
  bool ready_now() const;

  // Messages with descriptors (fds.cpp): send `count` descriptors with tag and extra bytes.
  Status send_fds(uint32_t tag, const int *fds, size_t count, const void *extra, size_t extra_len);
  // Receive a message of `tag` with exactly as many descriptors as it announces, at most
  // *count (in: capacity; out: received). extra: room for kMaxFdFrameExtra bytes.
  Status recv_fds(uint32_t tag, int *fds, size_t *count, void *extra, size_t *extra_len, int64_t timeout_ms);

  void wake_waiters() noexcept override;

 private:
  // Check the direction; in a forked child, adopt the connection first.
  Status enter(uint32_t need);
  void adopt();
  // Under the receive lock: the size of the next message (pending, or from its header).
  Status next_frame(Deadline deadline, uint64_t *size, FdSink *fds = nullptr);
  // Under the receive lock: read the pending message's body.
  Status read_body(void *buf, uint64_t size, FdSink *fds = nullptr);
  Status discard_body(uint64_t size, FdSink *fds);
  // Break the connection (sticky) and return code.
  template <typename... Args>
  Status broken(Status code, fmt::format_string<Args...> f, Args &&...args);
  Status report_broken();
  Status timed_out(int64_t timeout_ms);

  Stream stream_;
  uint32_t flags_ = 0;
  uint64_t max_message_ = MPX_CONN_DEFAULT_MAX_MESSAGE;
  std::atomic<uint32_t> pid_{0};  // the process whose locks and eventfd these are
  std::atomic<bool> detached_{false};
  TimedMutex send_mu_;
  TimedMutex recv_mu_;
  // Receive state, written under recv_mu_ (atomics: poll and wait read them without it).
  std::atomic<bool> has_pending_{false};
  uint64_t pending_ = 0;
  std::atomic<Status> broken_{MPX_OK};
  std::string broken_why_;
};

}  // namespace mpx::conn
