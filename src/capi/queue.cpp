// C entry points of mpx/queue.h.
#include "mpx/queue.h"

#include "capi/util.hpp"
#include "queue/queue.hpp"

using namespace mpx;
using namespace mpx::capi;

extern "C" {

MPX_API int mpx_queue_options_init(mpx_queue_options *opts, size_t struct_size) {
  return init_options(opts, struct_size, "mpx_queue_options");
}

MPX_API int mpx_queue_create(mpx_queue **out, const mpx_queue_options *opts) {
  if (out) *out = nullptr;
  if (Status s = check_options(opts, "mpx_queue_options"); s != MPX_OK) return s;
  queue::Options o;
  if (opts) {
    o.flags = opts->flags;
    o.maxsize = opts->maxsize;
    o.capacity = opts->capacity;
    o.max_message = opts->max_message;
  }
  return create_handle<mpx_queue, QueueObject>(out, [&](QueueObject *q) { return QueueObject::create(o, q); });
}

MPX_API int mpx_queue_attach(mpx_queue **out, const char *token) {
  return create_handle<mpx_queue, QueueObject>(out, [&](QueueObject *q) -> Status {
    Placement p;
    if (Status s = Placement::attach(token, ObjType::queue, queue::kRingOffset, &p); s != MPX_OK) return s;
    return QueueObject::open(std::move(p), q);
  });
}

MPX_API int mpx_queue_destroy(mpx_queue *q) { return destroy_handle(q, HandleType::queue); }

MPX_API int mpx_queue_token(mpx_queue *q, char *buf, size_t *len) {
  MPX_REQUIRE(len, "len is NULL");
  MPX_PIN(o, QueueObject, q, HandleType::queue);
  return guarded([&] { return copy_out(o->placement().token(), buf, len); });
}

MPX_API int mpx_queue_put(mpx_queue *q, const void *data, size_t len, int64_t timeout_ms) {
  MPX_REQUIRE(data || len == 0, "data is NULL but len is {}", len);
  MPX_PIN(o, QueueObject, q, HandleType::queue);
  return o->put(data, len, timeout_ms);
}

MPX_API int mpx_queue_get(mpx_queue *q, void **data, size_t *len, int64_t timeout_ms) {
  MPX_REQUIRE(data, "data is NULL");
  MPX_REQUIRE(len, "len is NULL");
  *data = nullptr;
  *len = 0;
  MPX_PIN(o, QueueObject, q, HandleType::queue);
  queue::Sink sink = queue::Sink::allocated();
  uint64_t n = 0;
  if (Status s = o->get(sink, &n, timeout_ms); s != MPX_OK) return s;
  *data = sink.release();
  *len = size_t(n);
  return MPX_OK;
}

MPX_API int mpx_queue_get_into(mpx_queue *q, void *buf, size_t cap, size_t *len, int64_t timeout_ms) {
  MPX_REQUIRE(len, "len is NULL");
  MPX_REQUIRE(buf || cap == 0, "buf is NULL but cap is {}", cap);
  MPX_PIN(o, QueueObject, q, HandleType::queue);
  queue::Sink sink = queue::Sink::into(buf, cap);
  uint64_t n = 0;
  const Status s = o->get(sink, &n, timeout_ms);
  if (s == MPX_ENOBUFS) *len = size_t(sink.needed());
  else if (s == MPX_OK) *len = size_t(n);
  return s;
}

MPX_API int mpx_queue_qsize(mpx_queue *q, size_t *count) {
  MPX_REQUIRE(count, "count is NULL");
  MPX_PIN(o, QueueObject, q, HandleType::queue);
  uint64_t n = 0;
  if (Status s = o->qsize(&n); s != MPX_OK) return s;
  *count = size_t(n);
  return MPX_OK;
}

MPX_API int mpx_queue_empty(mpx_queue *q, int *empty) {
  MPX_REQUIRE(empty, "empty is NULL");
  MPX_PIN(o, QueueObject, q, HandleType::queue);
  uint64_t n = 0;
  if (Status s = o->qsize(&n); s != MPX_OK) return s;
  *empty = n == 0;
  return MPX_OK;
}

MPX_API int mpx_queue_full(mpx_queue *q, int *full) {
  MPX_REQUIRE(full, "full is NULL");
  MPX_PIN(o, QueueObject, q, HandleType::queue);
  uint64_t n = 0;
  if (Status s = o->qsize(&n); s != MPX_OK) return s;
  *full = o->maxsize() != 0 && n >= o->maxsize();
  return MPX_OK;
}

MPX_API int mpx_queue_maxsize(mpx_queue *q, uint64_t *maxsize) {
  MPX_REQUIRE(maxsize, "maxsize is NULL");
  MPX_PIN(o, QueueObject, q, HandleType::queue);
  *maxsize = o->maxsize();
  return MPX_OK;
}

MPX_API int mpx_queue_capacity(mpx_queue *q, uint64_t *bytes) {
  MPX_REQUIRE(bytes, "bytes is NULL");
  MPX_PIN(o, QueueObject, q, HandleType::queue);
  *bytes = o->capacity();
  return MPX_OK;
}

MPX_API int mpx_queue_close(mpx_queue *q) {
  MPX_PIN(o, QueueObject, q, HandleType::queue);
  return o->close();
}

MPX_API int mpx_queue_closed(mpx_queue *q, int *closed) {
  MPX_REQUIRE(closed, "closed is NULL");
  MPX_PIN(o, QueueObject, q, HandleType::queue);
  return o->closed(closed);
}

MPX_API int mpx_queue_task_done(mpx_queue *q) {
  MPX_PIN(o, QueueObject, q, HandleType::queue);
  return o->task_done();
}

MPX_API int mpx_queue_join(mpx_queue *q, int64_t timeout_ms) {
  MPX_PIN(o, QueueObject, q, HandleType::queue);
  return o->join(timeout_ms);
}

MPX_API int mpx_queue_unfinished(mpx_queue *q, uint64_t *count) {
  MPX_REQUIRE(count, "count is NULL");
  MPX_PIN(o, QueueObject, q, HandleType::queue);
  return o->unfinished(count);
}

}  // extern "C"
