// C entry points of mpx/connection.h.
#include "mpx/connection.h"

#include <unistd.h>

#include <climits>
#include <cstring>
#include <string>

#include "capi/segment.hpp"
#include "capi/util.hpp"
#include "conn/connection.hpp"
#include "conn/frame.hpp"
#include "conn/wait.hpp"

using namespace mpx;
using namespace mpx::capi;
using conn::Connection;

namespace {

Status check_conn_options(const mpx_conn_options *opts) {
  if (Status s = check_options(opts, "mpx_conn_options"); s != MPX_OK) return s;
  if (opts && opts->reserved != 0) return fail(MPX_EINVAL, "mpx_conn_options.reserved must be 0");
  return MPX_OK;
}

uint64_t max_message_of(const mpx_conn_options *opts) {
  return opts && opts->max_message ? opts->max_message : MPX_CONN_DEFAULT_MAX_MESSAGE;
}

// A descriptor received with a message becomes a new handle of type T via make(T*, fd).
template <typename Handle, typename T, typename Make>
int receive_handle(mpx_conn *conn, uint32_t tag, Handle **out, int64_t timeout_ms, Make &&make) {
  return create_handle<Handle, T>(out, [&](T *obj) -> Status {
    MPX_PIN(c, Connection, conn, HandleType::connection);
    int fd = -1;
    size_t count = 1;
    uint8_t extra[conn::kMaxFdFrameExtra];
    size_t extra_len = 0;
    if (Status s = c->recv_fds(tag, &fd, &count, extra, &extra_len, timeout_ms); s != MPX_OK) return s;
    return make(obj, fd, extra, extra_len);  // owns fd
  });
}

}  // namespace

extern "C" {

MPX_API int mpx_conn_options_init(mpx_conn_options *opts, size_t struct_size) {
  return init_options(opts, struct_size, "mpx_conn_options");
}

MPX_API int mpx_pipe(int duplex, const mpx_conn_options *opts, mpx_conn **a, mpx_conn **b) {
  if (a) *a = nullptr;
  if (b) *b = nullptr;
  MPX_REQUIRE(a && b, "a and b must not be NULL");
  if (Status s = check_conn_options(opts); s != MPX_OK) return s;
  return guarded([&]() -> int {
    auto *ca = new Connection();
    Connection *cb = new (std::nothrow) Connection();
    if (!cb) {
      delete ca;
      return fail(MPX_ENOMEM, "out of memory");
    }
    if (Status s = Connection::make_pair(duplex != 0, max_message_of(opts), ca, cb); s != MPX_OK) {
      delete ca;
      delete cb;
      return s;
    }
    void *ha, *hb;
    if (Status s = insert_handle(ca, &ha); s != MPX_OK) {
      delete cb;
      return s;
    }
    if (Status s = insert_handle(cb, &hb); s != MPX_OK) {
      destroy_handle(ha, HandleType::connection);
      return s;
    }
    *a = static_cast<mpx_conn *>(ha);
    *b = static_cast<mpx_conn *>(hb);
    return MPX_OK;
  });
}

MPX_API int mpx_conn_from_fd(int fd, uint32_t flags, const mpx_conn_options *opts, mpx_conn **out) {
  MPX_REQUIRE(out, "out is NULL");  // before taking fd: nothing happened
  *out = nullptr;
  if (Status s = check_conn_options(opts); s != MPX_OK) {
    if (fd >= 0) ::close(fd);
    return s;
  }
  auto *c = new (std::nothrow) Connection();
  if (!c) {
    if (fd >= 0) ::close(fd);
    return fail(MPX_ENOMEM, "out of memory");
  }
  if (Status s = c->init(fd, flags, max_message_of(opts)); s != MPX_OK) {
    delete c;  // closes fd
    return s;
  }
  void *h;
  if (Status s = insert_handle(c, &h); s != MPX_OK) return s;
  *out = static_cast<mpx_conn *>(h);
  return MPX_OK;
}

MPX_API int mpx_conn_destroy(mpx_conn *conn) { return destroy_handle(conn, HandleType::connection); }

MPX_API int mpx_conn_detach(mpx_conn *conn, int *fd) {
  MPX_REQUIRE(fd, "fd is NULL");
  *fd = -1;
  int taken;
  {
    MPX_PIN(c, Connection, conn, HandleType::connection);
    if (!c->detach()) return fail(MPX_EBADHANDLE, "the connection is already being detached");
    taken = c->fd();
  }
  // If another thread destroyed it meanwhile, that destroy left the descriptor open too.
  destroy_handle(conn, HandleType::connection);
  *fd = taken;
  return MPX_OK;
}

MPX_API int mpx_conn_fileno(mpx_conn *conn, int *fd) {
  MPX_REQUIRE(fd, "fd is NULL");
  MPX_PIN(c, Connection, conn, HandleType::connection);
  *fd = c->fd();
  return MPX_OK;
}

MPX_API int mpx_conn_flags(mpx_conn *conn, uint32_t *flags) {
  MPX_REQUIRE(flags, "flags is NULL");
  MPX_PIN(c, Connection, conn, HandleType::connection);
  *flags = c->flags();
  return MPX_OK;
}

MPX_API int mpx_conn_max_message(mpx_conn *conn, uint64_t *bytes) {
  MPX_REQUIRE(bytes, "bytes is NULL");
  MPX_PIN(c, Connection, conn, HandleType::connection);
  *bytes = c->max_message();
  return MPX_OK;
}

MPX_API int mpx_conn_send(mpx_conn *conn, const void *data, size_t len) {
  MPX_REQUIRE(data || len == 0, "data is NULL but len is {}", len);
  MPX_REQUIRE(len <= size_t(SSIZE_MAX), "len {} is over SSIZE_MAX", len);
  MPX_PIN(c, Connection, conn, HandleType::connection);
  return c->send(data, len);
}

MPX_API int mpx_conn_recv(mpx_conn *conn, size_t maxlength, void **data, size_t *len, int64_t timeout_ms) {
  MPX_REQUIRE(data && len, "data and len must not be NULL");
  *data = nullptr;
  *len = 0;
  MPX_PIN(c, Connection, conn, HandleType::connection);
  return c->recv(maxlength, data, len, timeout_ms);
}

MPX_API int mpx_conn_recv_into(mpx_conn *conn, void *buf, size_t cap, size_t *len, int64_t timeout_ms) {
  MPX_REQUIRE(len, "len is NULL");
  MPX_REQUIRE(buf || cap == 0, "buf is NULL but cap is {}", cap);
  MPX_REQUIRE(cap <= size_t(SSIZE_MAX), "cap {} is over SSIZE_MAX", cap);
  MPX_PIN(c, Connection, conn, HandleType::connection);
  return c->recv_into(buf, cap, len, timeout_ms);
}

MPX_API int mpx_conn_poll(mpx_conn *conn, int64_t timeout_ms) {
  MPX_PIN(c, Connection, conn, HandleType::connection);
  return c->poll(timeout_ms);
}

MPX_API int mpx_conn_send_fds(mpx_conn *conn, const int *fds, size_t count) {
  MPX_REQUIRE(fds, "fds is NULL");
  MPX_PIN(c, Connection, conn, HandleType::connection);
  return c->send_fds(conn::kTagFds, fds, count, nullptr, 0);
}

MPX_API int mpx_conn_recv_fds(mpx_conn *conn, int *fds, size_t *count, int64_t timeout_ms) {
  MPX_REQUIRE(fds && count, "fds and count must not be NULL");
  MPX_REQUIRE(*count > 0, "*count is 0: no room for a descriptor");
  MPX_PIN(c, Connection, conn, HandleType::connection);
  uint8_t extra[conn::kMaxFdFrameExtra];
  size_t extra_len = 0;
  const size_t cap = *count;
  Status s = c->recv_fds(conn::kTagFds, fds, count, extra, &extra_len, timeout_ms);
  if (s != MPX_OK) *count = cap;
  return s;
}

MPX_API int mpx_conn_send_conn(mpx_conn *conn, mpx_conn *other) {
  MPX_PIN(c, Connection, conn, HandleType::connection);
  MPX_PIN(o, Connection, other, HandleType::connection);
  uint8_t extra[12];
  conn::put_be32(extra, o->flags());
  conn::put_be64(extra + 4, o->max_message());
  const int fd = o->fd();
  return c->send_fds(conn::kTagConn, &fd, 1, extra, sizeof extra);
}

MPX_API int mpx_conn_recv_conn(mpx_conn *conn, mpx_conn **out, int64_t timeout_ms) {
  return receive_handle<mpx_conn, Connection>(
      conn, conn::kTagConn, out, timeout_ms, [](Connection *c, int fd, const uint8_t *extra, size_t n) -> Status {
        if (n != 12) {
          ::close(fd);
          return fail(MPX_EPROTO, "a connection arrived with {} bytes of description, expected 12", n);
        }
        if (Status s = c->init(fd, conn::get_be32(extra), conn::get_be64(extra + 4)); s != MPX_OK)
          return fail(MPX_EPROTO, "the connection received is unusable: {}", mpx_last_error_message());
        return MPX_OK;
      });
}

MPX_API int mpx_conn_send_segment(mpx_conn *conn, mpx_segment *seg) {
  MPX_PIN(c, Connection, conn, HandleType::connection);
  MPX_PIN(o, SegmentObject, seg, HandleType::segment);
  const std::string &name = o->seg->named() ? o->seg->name() : std::string();
  const int fd = o->seg->fd();
  return c->send_fds(conn::kTagSegment, &fd, 1, name.data(), name.size());
}

MPX_API int mpx_conn_recv_segment(mpx_conn *conn, mpx_segment **out, int64_t timeout_ms) {
  return receive_handle<mpx_segment, SegmentObject>(
      conn, conn::kTagSegment, out, timeout_ms, [](SegmentObject *o, int fd, const uint8_t *extra, size_t n) -> Status {
        return guarded([&]() -> int {
          std::string name(reinterpret_cast<const char *>(extra), n);
          if (!name.empty()) {
            std::string checked;
            if (Status s = Segment::check_name(name.c_str(), &checked); s != MPX_OK || checked != name) {
              ::close(fd);
              return fail(MPX_EPROTO, "a segment arrived with a malformed name");
            }
          }
          return Segment::adopt_fd(fd, std::move(name), &o->seg);
        });
      });
}

MPX_API int mpx_wait(mpx_wait_object *objects, size_t count, int64_t timeout_ms, size_t *nready) {
  if (nready) *nready = 0;
  MPX_REQUIRE(objects || count == 0, "objects is NULL but count is {}", count);
  return guarded([&] { return conn::wait_many(objects, count, timeout_ms, nready); });
}

}  // extern "C"
