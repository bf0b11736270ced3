#include "conn/connection.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>

#include "conn/frame.hpp"
#include "platform/fork_mutex.hpp"
#include "platform/process.hpp"

namespace mpx::conn {

namespace {
platform::ForkMutex g_adopt_mu(platform::ForkMutex::kConnection);
constexpr uint32_t kBothWays = MPX_CONN_READABLE | MPX_CONN_WRITABLE;

// A fresh buffer costs a page fault per 4 KiB page as the message lands in it (10 us each
// on a VM): for large messages, ask for transparent huge pages, 512 times fewer faults.
constexpr uint64_t kHugeMessage = 8 << 20;
void huge_pages(void *buf, size_t size) {
  const uintptr_t huge = 2 << 20;
  const uintptr_t begin = (reinterpret_cast<uintptr_t>(buf) + huge - 1) & ~(huge - 1);
  const uintptr_t end = (reinterpret_cast<uintptr_t>(buf) + size) & ~(huge - 1);
  if (end > begin) madvise(reinterpret_cast<void *>(begin), end - begin, MADV_HUGEPAGE);
}
}  // namespace

Connection::~Connection() {
  if (detached_.load()) stream_.release();
}

bool Connection::detach() { return !detached_.exchange(true); }

Status Connection::init(int fd, uint32_t flags, uint64_t max_message) {
  stream_.reset(fd, false);  // owned from here on, closed by the destructor
  if (flags == 0 || (flags & ~kBothWays))
    return fail(MPX_EINVAL, "flags {:#x}: expected MPX_CONN_READABLE and/or MPX_CONN_WRITABLE", flags);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) != 0) return fail(MPX_EINVAL, "descriptor {} is not open", fd);
  bool socket = false;
  if (S_ISSOCK(st.st_mode)) {
    int type = 0;
    socklen_t len = sizeof type;
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0 || type != SOCK_STREAM)
      return fail(MPX_EINVAL, "descriptor {} is not a stream socket", fd);
    socket = true;
  } else if (S_ISFIFO(st.st_mode)) {
    const int mode = fcntl(fd, F_GETFL) & O_ACCMODE;
    if ((flags & MPX_CONN_READABLE) && mode == O_WRONLY)
      return fail(MPX_EINVAL, "descriptor {} is the write end of a pipe, not readable", fd);
    if ((flags & MPX_CONN_WRITABLE) && mode == O_RDONLY)
      return fail(MPX_EINVAL, "descriptor {} is the read end of a pipe, not writable", fd);
  } else {
    return fail(MPX_EINVAL, "descriptor {} is neither a stream socket nor a pipe", fd);
  }
  stream_.reset(fd, socket);
  flags_ = flags;
  max_message_ = max_message ? max_message : MPX_CONN_DEFAULT_MAX_MESSAGE;
  pid_.store(platform::current_pid(), std::memory_order_release);
  return MPX_OK;
}

Status Connection::make_pair(bool duplex, uint64_t max_message, Connection *a, Connection *b) {
  int fds[2];
  if (duplex ? socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0 : pipe2(fds, O_CLOEXEC) != 0)
    return fail_errno(duplex ? "socketpair" : "pipe2");
  Status s = a->init(fds[0], duplex ? kBothWays : MPX_CONN_READABLE, max_message);
  Status t = b->init(fds[1], duplex ? kBothWays : MPX_CONN_WRITABLE, max_message);
  return s != MPX_OK ? s : t;
}

Status Connection::enter(uint32_t need) {
  if (!(flags_ & need)) [[unlikely]]
    return fail(MPX_EPERM, "this end of the pipe only {}", need == MPX_CONN_READABLE ? "sends" : "receives");
  if (pid_.load(std::memory_order_acquire) != platform::current_pid()) [[unlikely]]
    adopt();
  return MPX_OK;
}

void Connection::adopt() {
  platform::ForkMutexGuard g(g_adopt_mu);
  const uint32_t me = platform::current_pid();
  if (pid_.load(std::memory_order_relaxed) == me) return;  // another thread did it
  send_mu_.reset();
  recv_mu_.reset();
  stream_.after_fork();
  pid_.store(me, std::memory_order_release);
}

template <typename... Args>
Status Connection::broken(Status code, fmt::format_string<Args...> f, Args &&...args) {
  try {
    broken_why_ = fmt::format(f, std::forward<Args>(args)...);
  } catch (...) {
    broken_why_ = error_text(code);
  }
  has_pending_.store(false, std::memory_order_relaxed);
  broken_.store(code, std::memory_order_release);
  return report_broken();
}

Status Connection::report_broken() {
  return fail(broken_.load(std::memory_order_relaxed), "the connection is broken: {}", broken_why_);
}

Status Connection::timed_out(int64_t timeout_ms) {
  return fail(MPX_ETIMEDOUT, "no message within {} ms", timeout_ms);
}

void Connection::wake_waiters() noexcept {
  // Not adopted by this process (a forked child that never used it): no thread of ours
  // waits on it, and the wake-up state is the parent's.
  if (pid_.load(std::memory_order_acquire) == platform::current_pid()) stream_.wake();
}

bool Connection::ready_now() const {
  return has_pending_.load(std::memory_order_acquire) || broken_.load(std::memory_order_acquire) != MPX_OK;
}

// ---- sending --------------------------------------------------------------------------

Status Connection::send(const void *data, size_t len) {
  if (Status s = enter(MPX_CONN_WRITABLE); s != MPX_OK) return s;
  uint8_t header[kLongHeader];
  // Header and payload in one system call: on a socket one send() of a stack copy when the
  // frame is small, else one sendmsg of both (no copy); on a pipe one pwritev2.
  iovec iov[2] = {{header, encode_header(len, header)}, {const_cast<void *>(data), len}};
  TimedLockGuard g(send_mu_, kForever);
  return stream_.write_all(iov, 2);
}

// ---- receiving ------------------------------------------------------------------------

Status Connection::next_frame(Deadline deadline, uint64_t *size, FdSink *fds) {
  if (broken_.load(std::memory_order_relaxed) != MPX_OK) return report_broken();
  if (has_pending_.load(std::memory_order_relaxed)) {
    *size = pending_;
    return MPX_OK;
  }
  uint8_t h[kLongHeader];
  size_t got = 0;
  // The timeout holds until the first byte; the rest of the frame follows without one.
  Status s = stream_.read_first(h, kShortHeader, &got, deadline, fds);
  if (s != MPX_OK) return s;
  if (got == 0) return fail(MPX_EOF, "end of stream: the peer closed the connection");
  if (got < kShortHeader) return broken(MPX_EPROTO, "truncated message: the peer closed within a header");
  const int64_t n = decode_short(h);
  uint64_t length = uint64_t(n);
  if (n == kBadLength) return broken(MPX_EPROTO, "malformed header: length {}", int32_t(get_be32(h)));
  if (n == kLongForm) {
    s = stream_.read_full(h + kShortHeader, 8, &got, fds);
    if (s != MPX_OK) return s;
    if (got < 8) return broken(MPX_EPROTO, "truncated message: the peer closed within a header");
    length = get_be64(h + kShortHeader);
  }
  if (length > max_message_)
    return broken(MPX_EMSGSIZE, "a message of {} bytes was announced; the limit is {} (max_message)", length,
                  max_message_);
  pending_ = length;
  has_pending_.store(true, std::memory_order_release);
  *size = length;
  return MPX_OK;
}

Status Connection::read_body(void *buf, uint64_t size, FdSink *fds) {
  size_t got = 0;
  Status s = size ? stream_.read_full(buf, size, &got, fds) : MPX_OK;
  if (s == MPX_ECLOSED) return s;
  if (s != MPX_OK) return broken(s, "reading a message failed after {} of {} bytes", got, size);
  if (got < size)
    return broken(MPX_EPROTO, "truncated message: {} of {} bytes arrived before the peer closed", got, size);
  has_pending_.store(false, std::memory_order_release);
  return MPX_OK;
}

Status Connection::recv(size_t maxlength, void **data, size_t *len, int64_t timeout_ms) {
  if (Status s = enter(MPX_CONN_READABLE); s != MPX_OK) return s;
  const Deadline deadline = platform::deadline_after_ms(timeout_ms);
  TimedLockGuard g(recv_mu_, deadline);
  if (!g.held()) return timed_out(timeout_ms);
  uint64_t size;
  if (Status s = next_frame(deadline, &size); s != MPX_OK) return s == MPX_ETIMEDOUT ? timed_out(timeout_ms) : s;
  if (maxlength && size > maxlength)  // Python's recv_bytes(maxlength) closes the connection
    return broken(MPX_EMSGSIZE, "a message of {} bytes is longer than maxlength {}", size, maxlength);
  void *buf = std::malloc(size ? size : 1);
  if (!buf) return fail(MPX_ENOMEM, "cannot allocate {} bytes for a message (it stays unread)", size);
  if (size >= kHugeMessage) huge_pages(buf, size);
  if (Status s = read_body(buf, size); s != MPX_OK) {
    std::free(buf);
    return s;
  }
  *data = buf;
  *len = size;
  return MPX_OK;
}

Status Connection::recv_into(void *buf, size_t cap, size_t *len, int64_t timeout_ms) {
  if (Status s = enter(MPX_CONN_READABLE); s != MPX_OK) return s;
  const Deadline deadline = platform::deadline_after_ms(timeout_ms);
  TimedLockGuard g(recv_mu_, deadline);
  if (!g.held()) return timed_out(timeout_ms);
  uint64_t size;
  if (Status s = next_frame(deadline, &size); s != MPX_OK) return s == MPX_ETIMEDOUT ? timed_out(timeout_ms) : s;
  if (size > cap) {
    *len = size;
    return fail(MPX_ENOBUFS, "the message is {} bytes; the buffer holds {} (the message stays unread)", size, cap);
  }
  if (Status s = read_body(buf, size); s != MPX_OK) return s;
  *len = size;
  return MPX_OK;
}

Status Connection::poll(int64_t timeout_ms) {
  if (Status s = enter(MPX_CONN_READABLE); s != MPX_OK) return s;
  if (ready_now()) return MPX_OK;
  Status s = stream_.wait(POLLIN, platform::deadline_after_ms(timeout_ms));
  return s == MPX_ETIMEDOUT ? fail(MPX_ETIMEDOUT, "nothing to receive within {} ms", timeout_ms) : s;
}

}  // namespace mpx::conn
