// A connected descriptor (stream socket or pipe end) on which whole buffers are written
// and read: partial transfers are resumed, EINTR is retried with the deadline kept,
// SIGPIPE never fires, and every wait can be cut short by destroy (MPX_ECLOSED).
//
// The descriptor itself stays blocking: it may be shared with other processes (fork,
// fd passing, a Python peer), so its file status flags are never changed. Per-call flags
// give non-blocking transfers instead: MSG_DONTWAIT on sockets, RWF_NOWAIT on pipes.
// A transfer that cannot proceed waits in ppoll on the descriptor and an eventfd that
// destroy writes to.
#pragma once

#include <sys/types.h>
#include <sys/uio.h>

#include <atomic>
#include <cstddef>

#include "core/handle.hpp"
#include "platform/wait.hpp"

namespace mpx::conn {

using platform::Deadline;
using platform::kForever;

// Descriptors received with a message (SCM_RIGHTS), collected across reads.
struct FdSink {
  int *fds = nullptr;
  size_t cap = 0;
  size_t count = 0;
  bool truncated = false;  // MSG_CTRUNC: some descriptors were lost
  void close_all() noexcept;
};

class Stream {
 public:
  explicit Stream(const Object *owner) : owner_(owner) {}
  ~Stream();
  Stream(const Stream &) = delete;
  Stream &operator=(const Stream &) = delete;

  // Take ownership of fd; `socket` selects sendmsg/recvmsg over pwritev2/preadv2.
  void reset(int fd, bool socket) noexcept;
  // Give up the descriptor without closing it.
  int release() noexcept;
  int fd() const { return fd_; }
  bool socket() const { return socket_; }

  // Wait until the descriptor is ready for `events` (POLLIN / POLLOUT; end of stream and
  // errors count as ready): MPX_OK, MPX_ETIMEDOUT or MPX_ECLOSED.
  Status wait(short events, Deadline deadline);
  // Write every byte of iov[0..n) (modified). control: ancillary data sent with the first
  // byte. MPX_EPIPE when the reader has gone.
  Status write_all(iovec *iov, int n, void *control = nullptr, size_t control_len = 0);
  // Read exactly len bytes, reading first and waiting when nothing is there; *got receives
  // how many arrived (also on error). A short count with MPX_OK means end of stream.
  Status read_full(void *buf, size_t len, size_t *got, FdSink *fds = nullptr);
  // The same, but wait first (the caller expects to block), and only until `deadline` for
  // the first byte (MPX_ETIMEDOUT: nothing was read); after it, without one.
  Status read_first(void *buf, size_t len, size_t *got, Deadline deadline, FdSink *fds = nullptr);
  // One read without blocking: bytes read (0: end of stream), or -errno (-EAGAIN: none).
  ssize_t read_nowait(void *buf, size_t len, FdSink *fds = nullptr);

  // Wake threads of this process waiting on the descriptor (destroy).
  void wake() noexcept;
  // In a forked child: the eventfd is the parent's; make a new one when needed.
  void forget_wake_fd() noexcept;

 private:
  int wake_fd();
  ssize_t write_nowait(iovec *iov, int n, void *control, size_t control_len);

  const Object *owner_;
  int fd_ = -1;
  bool socket_ = false;
  std::atomic<int> wake_fd_{-1};
};

}  // namespace mpx::conn
