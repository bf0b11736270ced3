#include "conn/wait.hpp"

#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <ctime>
#include <vector>

#include "conn/connection.hpp"
#include "platform/wait.hpp"
#include "proc/process.hpp"

namespace mpx::conn {

namespace {

constexpr size_t kMaxObjects = 1u << 20;

// The descriptor to poll for one object, and whether it is ready without polling.
Status describe(const mpx_wait_object &o, size_t i, int *fd, bool *ready) {
  *ready = false;
  switch (o.kind) {
    case MPX_WAIT_CONN: {
      Pinned<Connection> c;
      if (Status s = c.pin(o.handle, HandleType::connection); s != MPX_OK) return s;
      if (!(c->flags() & MPX_CONN_READABLE))
        return fail(MPX_EPERM, "objects[{}] is the sending end of a pipe: it never becomes readable", i);
      *fd = c->fd();
      *ready = c->ready_now();
      return MPX_OK;
    }
    case MPX_WAIT_PROCESS: {
      Pinned<proc::Process> p;
      if (Status s = p.pin(o.handle, HandleType::process); s != MPX_OK) return s;
      return p->sentinel(fd);
    }
    case MPX_WAIT_FD:
      if (o.fd < 0) return fail(MPX_EINVAL, "objects[{}].fd is {}", i, o.fd);
      *fd = o.fd;
      return MPX_OK;
    default:
      return fail(MPX_EINVAL, "objects[{}].kind {} is not an MPX_WAIT_* kind", i, o.kind);
  }
}

}  // namespace

Status wait_many(mpx_wait_object *objects, size_t count, int64_t timeout_ms, size_t *nready) {
  if (nready) *nready = 0;
  if (count > kMaxObjects) return fail(MPX_EINVAL, "{} objects is over the limit of {}", count, kMaxObjects);
  if (count == 0 && timeout_ms < 0) return fail(MPX_EINVAL, "nothing to wait for, and no timeout");
  const platform::Deadline deadline = platform::deadline_after_ms(timeout_ms);

  std::vector<pollfd> fds(count);
  bool any_ready = false;
  for (size_t i = 0; i < count; ++i) {
    objects[i].ready = 0;
    int fd = -1;
    bool ready = false;
    if (Status s = describe(objects[i], i, &fd, &ready); s != MPX_OK) return s;
    fds[i] = pollfd{fd, POLLIN, 0};
    if (ready) objects[i].ready = 1;
    any_ready = any_ready || ready;
  }

  for (;;) {
    timespec ts{0, 0};
    if (!any_ready && deadline != platform::kForever) {
      const int64_t left = std::max<int64_t>(0, deadline - platform::monotonic_ns());
      ts = timespec{time_t(left / 1000000000), long(left % 1000000000)};
    }
    const int r = ppoll(fds.data(), nfds_t(count), !any_ready && deadline == platform::kForever ? nullptr : &ts, nullptr);
    if (r < 0) {
      if (errno == EINTR) continue;  // the deadline is absolute
      return fail_errno("ppoll");
    }
    if (r == 0 && !any_ready) {
      if (deadline != platform::kForever && platform::monotonic_ns() < deadline) continue;
      return fail(MPX_ETIMEDOUT, "none of the {} objects became ready within {} ms", count, timeout_ms);
    }
    break;
  }

  size_t n = 0;
  for (size_t i = 0; i < count; ++i) {
    if (fds[i].revents & POLLNVAL)
      return fail(objects[i].kind == MPX_WAIT_FD ? MPX_EINVAL : MPX_EBADHANDLE,
                  "objects[{}]: descriptor {} is not open (closed during the wait?)", i, fds[i].fd);
    if (fds[i].revents) objects[i].ready = 1;
    n += size_t(objects[i].ready);
  }
  if (nready) *nready = n;
  return MPX_OK;
}

}  // namespace mpx::conn
