// Messages that carry descriptors (SCM_RIGHTS) over a unix socket. Each is one ordinary
// frame whose payload is a tag, the descriptor count and the tag's extra bytes; the
// descriptors ride on the sendmsg that carries the frame's first byte, so they arrive with
// the header. A receiver checks that the frame is the kind it expects and that exactly the
// announced descriptors arrived; anything else is MPX_EPROTO and every descriptor that did
// arrive is closed. A plain receive of such a frame gets its payload; the kernel drops the
// descriptors (no control buffer), so they never leak either.
#include <fcntl.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>

#include "conn/connection.hpp"
#include "conn/frame.hpp"

namespace mpx::conn {

namespace {

Status check_unix_socket(const Stream &s) {
  int domain = 0;
  socklen_t len = sizeof domain;
  if (!s.socket() || getsockopt(s.fd(), SOL_SOCKET, SO_DOMAIN, &domain, &len) != 0 || domain != AF_UNIX)
    return fail(MPX_ENOTSUP, "descriptors travel only over unix sockets (this connection is a {})",
                s.socket() ? "socket of another family" : "pipe");
  return MPX_OK;
}

}  // namespace

Status Connection::send_fds(uint32_t tag, const int *fds, size_t count, const void *extra, size_t extra_len) {
  if (Status s = enter(MPX_CONN_WRITABLE); s != MPX_OK) return s;
  if (Status s = check_unix_socket(stream_); s != MPX_OK) return s;
  if (count == 0 || count > MPX_CONN_MAX_FDS)
    return fail(MPX_EINVAL, "{} descriptors: between 1 and {} can be sent at once", count, MPX_CONN_MAX_FDS);
  for (size_t i = 0; i < count; ++i)
    if (fds[i] < 0 || fcntl(fds[i], F_GETFD) < 0) return fail(MPX_EINVAL, "fds[{}] = {} is not open", i, fds[i]);
  if (extra_len > kMaxFdFrameExtra) return fail(MPX_EINVAL, "{} extra bytes is over {}", extra_len, kMaxFdFrameExtra);

  uint8_t frame[kShortHeader + kFdFrameHead + kMaxFdFrameExtra];
  const size_t header = encode_header(kFdFrameHead + extra_len, frame);
  put_be32(frame + header, tag);
  put_be32(frame + header + 4, uint32_t(count));
  if (extra_len) std::memcpy(frame + header + kFdFrameHead, extra, extra_len);
  iovec iov{frame, header + kFdFrameHead + extra_len};

  alignas(cmsghdr) unsigned char control[CMSG_SPACE(sizeof(int) * MPX_CONN_MAX_FDS)] = {};
  auto *c = reinterpret_cast<cmsghdr *>(control);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int) * count);
  std::memcpy(CMSG_DATA(c), fds, sizeof(int) * count);

  TimedLockGuard g(send_mu_, kForever);
  return stream_.write_all(&iov, 1, control, CMSG_SPACE(sizeof(int) * count));
}

Status Connection::discard_body(uint64_t size, FdSink *fds) {
  uint8_t scratch[16384];
  while (size > 0) {
    const size_t n = size_t(std::min<uint64_t>(size, sizeof scratch));
    size_t got = 0;
    Status s = stream_.read_full(scratch, n, &got, fds);
    if (s == MPX_ECLOSED) return s;
    if (s != MPX_OK) return broken(s, "reading a message failed");
    if (got < n) return broken(MPX_EPROTO, "truncated message: the peer closed within a message");
    size -= n;
  }
  has_pending_.store(false, std::memory_order_release);
  return MPX_OK;
}

Status Connection::recv_fds(uint32_t tag, int *fds, size_t *count, void *extra, size_t *extra_len,
                            int64_t timeout_ms) {
  if (Status s = enter(MPX_CONN_READABLE); s != MPX_OK) return s;
  if (Status s = check_unix_socket(stream_); s != MPX_OK) return s;
  const Deadline deadline = platform::deadline_after_ms(timeout_ms);
  TimedLockGuard g(recv_mu_, deadline);
  if (!g.held()) return timed_out(timeout_ms);

  FdSink sink;
  sink.fds = fds;
  sink.cap = *count;
  // On every failure below, the descriptors that arrived are closed.
  auto failed = [&](Status s) {
    sink.close_all();
    return s;
  };
  uint64_t size;
  if (Status s = next_frame(deadline, &size, &sink); s != MPX_OK)
    return failed(s == MPX_ETIMEDOUT ? timed_out(timeout_ms) : s);
  if (size < kFdFrameHead || size > kFdFrameHead + kMaxFdFrameExtra) {
    if (Status s = discard_body(size, &sink); s != MPX_OK) return failed(s);
    return failed(fail(MPX_EPROTO, "expected a message with descriptors; got a plain one of {} bytes (discarded)", size));
  }
  uint8_t body[kFdFrameHead + kMaxFdFrameExtra];
  if (Status s = read_body(body, size, &sink); s != MPX_OK) return failed(s);
  const uint32_t got_tag = get_be32(body);
  const uint32_t announced = get_be32(body + 4);
  if (got_tag != tag)
    return failed(fail(MPX_EPROTO, "expected a message with descriptors of kind {:#x}; got kind {:#x}", tag, got_tag));
  if (sink.truncated || sink.count != announced)
    return failed(fail(MPX_EPROTO,
                       "{} descriptors were announced; {} arrived{} (room for {}; the ones that arrived are closed)",
                       announced, sink.count, sink.truncated ? " and some were cut off" : "", sink.cap));
  *count = sink.count;
  *extra_len = size_t(size - kFdFrameHead);
  if (*extra_len) std::memcpy(extra, body + kFdFrameHead, *extra_len);
  return MPX_OK;
}

}  // namespace mpx::conn
