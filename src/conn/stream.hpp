// A connected descriptor (stream socket or pipe end) on which whole buffers are written
// and read: partial transfers are resumed, EINTR is retried with the deadline kept,
// SIGPIPE never fires, and every wait can be cut short by destroy (MPX_ECLOSED).
//
// The descriptor stays blocking: it may be shared with other processes (fork, descriptor
// passing, a Python peer), so its file status flags are never changed.
//
// Sockets, the default kind, transfer in plain blocking system calls: one call per small
// send or read, and large messages are gathered by the kernel (MSG_WAITALL), as fast as
// a raw socket. Destroy wakes a thread asleep in such a call by shutting the socket down
// (only when one is asleep in this process): copies of the descriptor held by other
// processes see the shutdown too, as they would see this end closed.
//
// Pipe ends cannot be shut down, so on pipes every transfer is non-blocking (RWF_NOWAIT)
// and waits in ppoll on the descriptor and an eventfd that destroy writes to. Receives
// with a timeout wait the same way on sockets.
#pragma once

#include <sys/types.h>
#include <sys/uio.h>

#include <atomic>
#include <cerrno>
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
  // Wake threads of this process waiting on the descriptor (destroy).
  void wake() noexcept;
  // In a forked child: the eventfd is the parent's (make a new one when needed), and the
  // threads counted as blocked are the parent's.
  void after_fork() noexcept;

 private:
  int wake_fd();
  // One transfer: the byte count (0: end of stream), or -errno (-EAGAIN: try later).
  ssize_t write_some(iovec *iov, int n, void *control, size_t control_len);
  ssize_t read_some(void *buf, size_t len, FdSink *fds, bool block);
  // A system call that may sleep: counted, so that destroy knows to shut the socket down.
  template <typename F>
  ssize_t blocking(F &&call) {
    blocked_.fetch_add(1, std::memory_order_seq_cst);
    ssize_t r = owner_->closing() ? -ECANCELED : call();
    if (r < 0 && r != -ECANCELED) r = -errno;
    blocked_.fetch_sub(1, std::memory_order_release);
    return r;
  }

  const Object *owner_;
  int fd_ = -1;
  bool socket_ = false;
  std::atomic<int> wake_fd_{-1};
  std::atomic<int> blocked_{0};  // threads asleep in a socket system call
};

}  // namespace mpx::conn
