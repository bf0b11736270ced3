// C entry points of mpx/manager.h.
#include "mpx/manager.h"

#include <cstdlib>
#include <cstring>
#include <initializer_list>

#include "capi/util.hpp"
#include "manager/client.hpp"
#include "manager/manager.hpp"
#include "manager/protocol.hpp"
#include "platform/process.hpp"

using namespace mpx;
using namespace mpx::capi;
using namespace mpx::manager;

namespace {

Status check_key(const char *key) {
  if (!key) return fail(MPX_EINVAL, "key is NULL");
  if (std::strlen(key) > MPX_MANAGER_KEY_MAX) return fail(MPX_EINVAL, "a key has at most {} bytes", MPX_MANAGER_KEY_MAX);
  return MPX_OK;
}

Status check_data(const void *data, size_t len, const char *what) {
  if (!data && len > 0) return fail(MPX_EINVAL, "{} is NULL but its length is {}", what, len);
  if (len > (size_t(1) << 32)) return fail(MPX_EMSGSIZE, "{} of {} bytes exceeds the manager's 4 GiB limit", what, len);
  return MPX_OK;
}

// Call op on the proxy's object, which must be of one of `types`.
template <typename Body>
int proxy_call(mpx_proxy *p, std::initializer_list<uint32_t> types, Op op, int64_t timeout_ms, Body &&body,
               std::string *out) {
  MPX_PIN(o, ProxyObject, p, HandleType::proxy);
  bool ok = false;
  for (uint32_t t : types) ok = ok || o->type == t;
  if (!ok) return fail(MPX_EINVAL, "this operation does not apply to a proxy of type {}", o->type);
  return guarded([&]() -> int {
    std::string b;
    Writer w(&b);
    body(w);
    ++o->calls;
    const Status s = o->core->call(op, 0, o->id, timeout_ms, b, out);
    --o->calls;
    return s;
  });
}

const auto kNoBody = [](Writer &) {};

// Give the byte string at the start of `out` to the caller (allocated; mpx_free).
Status give_bytes(const std::string &out, void **value, size_t *len) {
  Reader r(out.data(), out.size());
  const auto v = r.bytes();
  if (r.bad()) return fail(MPX_EPROTO, "malformed reply");
  void *copy = std::malloc(v.size() ? v.size() : 1);
  if (!copy) return fail(MPX_ENOMEM, "out of memory");
  if (!v.empty()) std::memcpy(copy, v.data(), v.size());
  *value = copy;
  *len = v.size();
  return MPX_OK;
}

template <typename T>
Status give_int(const std::string &out, T *value) {
  Reader r(out.data(), out.size());
  const auto v = r.raw<T>();
  if (r.bad()) return fail(MPX_EPROTO, "malformed reply");
  *value = v;
  return MPX_OK;
}

Status make_proxy(const std::shared_ptr<ClientCore> &core, const std::string &out, size_t itemsize, mpx_proxy **result) {
  Reader r(out.data(), out.size());
  const uint64_t id = r.u64();
  const uint32_t type = r.u32();
  if (r.bad()) return fail(MPX_EPROTO, "malformed reply");
  auto *p = new ProxyObject();
  p->core = core;
  p->id = id;
  p->type = type;
  p->itemsize = itemsize;
  p->bound_pid = platform::current_pid();
  if ((type == MPX_MOBJ_VALUE || type == MPX_MOBJ_ARRAY) && !itemsize) {
    std::string lo;
    if (Status s = core->call(Op::array_len, 0, id, 0, {}, &lo); s != MPX_OK) {
      delete p;
      return s;
    }
    Reader lr(lo.data(), lo.size());
    lr.u64();
    p->itemsize = size_t(lr.u64());
  }
  void *h;
  if (Status s = insert_handle(p, &h); s != MPX_OK) return s;
  *result = static_cast<mpx_proxy *>(h);
  return MPX_OK;
}

}  // namespace

extern "C" {

// ---- servers -----------------------------------------------------------------------------

MPX_API int mpx_manager_options_init(mpx_manager_options *opts, size_t struct_size) {
  return init_options(opts, struct_size, "mpx_manager_options");
}

MPX_API int mpx_manager_start(mpx_manager **out, const mpx_manager_options *opts) {
  MPX_REQUIRE(out, "out is NULL");
  *out = nullptr;
  if (Status s = check_options(opts, "mpx_manager_options"); s != MPX_OK) return s;
  if (opts) {
    MPX_REQUIRE(!(opts->flags & ~uint32_t(MPX_MANAGER_IN_PROCESS | MPX_MANAGER_ALLOW_REMOTE)),
                "mpx_manager_options.flags has unknown bits");
    MPX_REQUIRE(opts->reserved == 0, "mpx_manager_options.reserved must be 0");
    MPX_REQUIRE(opts->method <= MPX_START_SPAWN, "mpx_manager_options.method {} is unknown", opts->method);
    MPX_REQUIRE(!opts->authkey || opts->authkey_len > 0, "authkey is set but authkey_len is 0");
    MPX_REQUIRE(opts->authkey_len <= 256, "an authkey has at most 256 bytes");
  }
  return create_handle<mpx_manager, ManagerObject>(out, [&](ManagerObject *m) { return m->start(opts); });
}

MPX_API int mpx_manager_address(mpx_manager *m, char *buf, size_t *len) {
  MPX_REQUIRE(len, "len is NULL");
  MPX_PIN(o, ManagerObject, m, HandleType::manager);
  return guarded([&]() -> int { return copy_out(o->address(), buf, len); });
}

MPX_API int mpx_manager_pid(mpx_manager *m, int64_t *pid) {
  MPX_REQUIRE(pid, "pid is NULL");
  MPX_PIN(o, ManagerObject, m, HandleType::manager);
  *pid = o->pid();
  return MPX_OK;
}

MPX_API int mpx_manager_wait(mpx_manager *m, int64_t timeout_ms) {
  MPX_PIN(o, ManagerObject, m, HandleType::manager);
  return guarded([&]() -> int { return o->wait(timeout_ms); });
}

MPX_API int mpx_manager_shutdown(mpx_manager *m, int64_t timeout_ms) {
  MPX_PIN(o, ManagerObject, m, HandleType::manager);
  return guarded([&]() -> int { return o->shutdown(timeout_ms); });
}

MPX_API int mpx_manager_destroy(mpx_manager *m) { return destroy_handle(m, HandleType::manager); }

// ---- clients -----------------------------------------------------------------------------

MPX_API int mpx_mclient_options_init(mpx_mclient_options *opts, size_t struct_size) {
  return init_options(opts, struct_size, "mpx_mclient_options");
}

MPX_API int mpx_manager_connect(mpx_mclient **out, const char *address, const mpx_mclient_options *opts) {
  MPX_REQUIRE(out, "out is NULL");
  *out = nullptr;
  MPX_REQUIRE(address, "address is NULL");
  if (Status s = check_options(opts, "mpx_mclient_options"); s != MPX_OK) return s;
  if (opts) {
    MPX_REQUIRE(!(opts->flags & ~uint32_t(MPX_MCLIENT_SOCKET_ONLY)), "mpx_mclient_options.flags has unknown bits");
    MPX_REQUIRE(!opts->authkey || opts->authkey_len > 0, "authkey is set but authkey_len is 0");
  }
  return create_handle<mpx_mclient, ClientObject>(out, [&](ClientObject *c) {
    c->bound_pid = platform::current_pid();
    return c->core->connect(address, opts);
  });
}

MPX_API int mpx_mclient_shm(mpx_mclient *c, int *shm) {
  MPX_REQUIRE(shm, "shm is NULL");
  MPX_PIN(o, ClientObject, c, HandleType::mclient);
  *shm = o->core->shm() ? 1 : 0;
  return MPX_OK;
}

MPX_API int mpx_mclient_shutdown(mpx_mclient *c) {
  MPX_PIN(o, ClientObject, c, HandleType::mclient);
  return guarded([&]() -> int {
    std::string out;
    return o->core->call(Op::shutdown, 0, 0, 0, {}, &out);
  });
}

MPX_API int mpx_mclient_destroy(mpx_mclient *c) { return destroy_handle(c, HandleType::mclient); }

// ---- proxies -----------------------------------------------------------------------------

MPX_API int mpx_mobj_options_init(mpx_mobj_options *opts, size_t struct_size) {
  if (Status s = init_options(opts, struct_size, "mpx_mobj_options"); s != MPX_OK) return s;
  opts->initial = 1;
  return MPX_OK;
}

MPX_API int mpx_proxy_create(mpx_mclient *c, int type, const mpx_mobj_options *opts, mpx_proxy **out) {
  MPX_REQUIRE(out, "out is NULL");
  *out = nullptr;
  if (Status s = check_options(opts, "mpx_mobj_options"); s != MPX_OK) return s;
  MPX_PIN(o, ClientObject, c, HandleType::mclient);
  MPX_REQUIRE(type >= MPX_MOBJ_DICT && type <= MPX_MOBJ_ARRAY, "unknown object type {}", type);
  mpx_mobj_options d;
  mpx_mobj_options_init(&d, sizeof d);
  const mpx_mobj_options &op = opts ? *opts : d;
  MPX_REQUIRE(!(op.flags & ~uint32_t(MPX_MOBJ_OPEN_EXISTING)), "mpx_mobj_options.flags has unknown bits");
  if (op.name) {
    MPX_REQUIRE(*op.name, "name is empty (use NULL for an anonymous object)");
    if (Status s = check_key(op.name); s != MPX_OK) return s;
  }
  if (Status s = check_data(op.data, op.data_len, "data"); s != MPX_OK) return s;
  MPX_REQUIRE(type != MPX_MOBJ_BARRIER || op.parties > 0, "a barrier needs parties > 0");
  MPX_REQUIRE(type != MPX_MOBJ_ARRAY || op.length > 0, "an array needs length > 0");
  uint64_t lock_id = 0;
  if (type == MPX_MOBJ_CONDITION && op.lock) {
    MPX_PIN(l, ProxyObject, op.lock, HandleType::proxy);
    MPX_REQUIRE(l->core == o->core, "the condition's lock belongs to another client");
    MPX_REQUIRE(l->type == MPX_MOBJ_LOCK || l->type == MPX_MOBJ_RLOCK, "a condition's lock must be a lock or an rlock");
    lock_id = l->id;
  }
  size_t itemsize = 0;
  if (type == MPX_MOBJ_VALUE || type == MPX_MOBJ_ARRAY) {
    itemsize = typecode_size(op.typecode ? op.typecode : (type == MPX_MOBJ_VALUE ? 'i' : 'b'));
    MPX_REQUIRE(itemsize, "unknown typecode {} (one of cbBhHiIlLqQfd)", op.typecode);
  }
  return guarded([&]() -> int {
    std::string body, rep;
    Writer(&body)
        .u32(op.flags)
        .str(op.name ? op.name : "")
        .i64(op.typecode)
        .u64(op.parties)
        .u64(op.length)
        .u64(op.maxsize)
        .i64(op.initial)
        .u64(lock_id)
        .bytes(op.data, op.data_len);
    if (Status s = o->core->call(Op::create, uint32_t(type), 0, 0, body, &rep); s != MPX_OK) return s;
    return make_proxy(o->core, rep, itemsize, out);
  });
}

MPX_API int mpx_proxy_open(mpx_mclient *c, const char *name_or_token, mpx_proxy **out) {
  MPX_REQUIRE(out, "out is NULL");
  *out = nullptr;
  MPX_REQUIRE(name_or_token && *name_or_token, "name_or_token is NULL or empty");
  if (Status s = check_key(name_or_token); s != MPX_OK) return s;
  MPX_PIN(o, ClientObject, c, HandleType::mclient);
  return guarded([&]() -> int {
    std::string body, rep;
    Writer(&body).str(name_or_token);
    if (Status s = o->core->call(Op::open, 0, 0, 0, body, &rep); s != MPX_OK) return s;
    return make_proxy(o->core, rep, 0, out);
  });
}

MPX_API int mpx_proxy_token(mpx_proxy *p, char *buf, size_t *len) {
  MPX_REQUIRE(len, "len is NULL");
  MPX_PIN(o, ProxyObject, p, HandleType::proxy);
  return guarded([&]() -> int { return copy_out(std::string(kTokenPrefix) + std::to_string(o->id), buf, len); });
}

MPX_API int mpx_proxy_type(mpx_proxy *p, int *type) {
  MPX_REQUIRE(type, "type is NULL");
  MPX_PIN(o, ProxyObject, p, HandleType::proxy);
  *type = int(o->type);
  return MPX_OK;
}

MPX_API int mpx_proxy_destroy(mpx_proxy *p) { return destroy_handle(p, HandleType::proxy); }

// ---- dict and namespace ------------------------------------------------------------------

#define DICT_TYPES {MPX_MOBJ_DICT, MPX_MOBJ_NAMESPACE}

static int dict_store(mpx_proxy *d, Op op, const char *key, const void *value, size_t len) {
  if (Status s = check_key(key); s != MPX_OK) return s;
  if (Status s = check_data(value, len, "value"); s != MPX_OK) return s;
  std::string rep;
  return proxy_call(d, DICT_TYPES, op, 0, [&](Writer &w) { w.str(key).bytes(value, len); }, &rep);
}

MPX_API int mpx_mdict_set(mpx_proxy *d, const char *key, const void *value, size_t len) {
  return dict_store(d, Op::dict_set, key, value, len);
}

MPX_API int mpx_mdict_add(mpx_proxy *d, const char *key, const void *value, size_t len) {
  return dict_store(d, Op::dict_add, key, value, len);
}

MPX_API int mpx_mdict_get(mpx_proxy *d, const char *key, void **value, size_t *len) {
  MPX_REQUIRE(value && len, "value or len is NULL");
  *value = nullptr;
  *len = 0;
  if (Status s = check_key(key); s != MPX_OK) return s;
  std::string rep;
  if (Status s = proxy_call(d, DICT_TYPES, Op::dict_get, 0, [&](Writer &w) { w.str(key); }, &rep); s != MPX_OK) return s;
  return give_bytes(rep, value, len);
}

MPX_API int mpx_mdict_pop(mpx_proxy *d, const char *key, void **value, size_t *len) {
  MPX_REQUIRE(!value || len, "len is NULL");
  if (value) {
    *value = nullptr;
    *len = 0;
  }
  if (Status s = check_key(key); s != MPX_OK) return s;
  std::string rep;
  if (Status s = proxy_call(d, DICT_TYPES, Op::dict_pop, 0, [&](Writer &w) { w.str(key).u32(value != nullptr); }, &rep);
      s != MPX_OK)
    return s;
  return value ? give_bytes(rep, value, len) : MPX_OK;
}

MPX_API int mpx_mdict_len(mpx_proxy *d, size_t *count) {
  MPX_REQUIRE(count, "count is NULL");
  std::string rep;
  if (Status s = proxy_call(d, DICT_TYPES, Op::dict_len, 0, kNoBody, &rep); s != MPX_OK) return s;
  uint64_t n = 0;
  if (Status s = give_int(rep, &n); s != MPX_OK) return s;
  *count = size_t(n);
  return MPX_OK;
}

MPX_API int mpx_mdict_keys(mpx_proxy *d, char **keys, size_t *len, size_t *count) {
  MPX_REQUIRE(keys && len && count, "keys, len or count is NULL");
  *keys = nullptr;
  *len = *count = 0;
  std::string rep;
  if (Status s = proxy_call(d, DICT_TYPES, Op::dict_keys, 0, kNoBody, &rep); s != MPX_OK) return s;
  uint64_t n = 0;
  if (Status s = give_int(rep, &n); s != MPX_OK) return s;
  void *packed = nullptr;
  if (Status s = give_bytes(rep.substr(8), &packed, len); s != MPX_OK) return s;
  *keys = static_cast<char *>(packed);
  *count = size_t(n);
  return MPX_OK;
}

MPX_API int mpx_mdict_clear(mpx_proxy *d) {
  std::string rep;
  return proxy_call(d, DICT_TYPES, Op::dict_clear, 0, kNoBody, &rep);
}

// ---- list --------------------------------------------------------------------------------

#define LIST_TYPES {MPX_MOBJ_LIST}

MPX_API int mpx_mlist_append(mpx_proxy *l, const void *value, size_t len) {
  if (Status s = check_data(value, len, "value"); s != MPX_OK) return s;
  std::string rep;
  return proxy_call(l, LIST_TYPES, Op::list_append, 0, [&](Writer &w) { w.bytes(value, len); }, &rep);
}

MPX_API int mpx_mlist_insert(mpx_proxy *l, int64_t index, const void *value, size_t len) {
  if (Status s = check_data(value, len, "value"); s != MPX_OK) return s;
  std::string rep;
  return proxy_call(l, LIST_TYPES, Op::list_insert, 0, [&](Writer &w) { w.i64(index).bytes(value, len); }, &rep);
}

MPX_API int mpx_mlist_get(mpx_proxy *l, int64_t index, void **value, size_t *len) {
  MPX_REQUIRE(value && len, "value or len is NULL");
  *value = nullptr;
  *len = 0;
  std::string rep;
  if (Status s = proxy_call(l, LIST_TYPES, Op::list_get, 0, [&](Writer &w) { w.i64(index); }, &rep); s != MPX_OK) return s;
  return give_bytes(rep, value, len);
}

MPX_API int mpx_mlist_set(mpx_proxy *l, int64_t index, const void *value, size_t len) {
  if (Status s = check_data(value, len, "value"); s != MPX_OK) return s;
  std::string rep;
  return proxy_call(l, LIST_TYPES, Op::list_set, 0, [&](Writer &w) { w.i64(index).bytes(value, len); }, &rep);
}

MPX_API int mpx_mlist_pop(mpx_proxy *l, int64_t index, void **value, size_t *len) {
  MPX_REQUIRE(!value || len, "len is NULL");
  if (value) {
    *value = nullptr;
    *len = 0;
  }
  std::string rep;
  if (Status s = proxy_call(l, LIST_TYPES, Op::list_pop, 0, [&](Writer &w) { w.i64(index).u32(value != nullptr); }, &rep);
      s != MPX_OK)
    return s;
  return value ? give_bytes(rep, value, len) : MPX_OK;
}

MPX_API int mpx_mlist_len(mpx_proxy *l, size_t *count) {
  MPX_REQUIRE(count, "count is NULL");
  std::string rep;
  if (Status s = proxy_call(l, LIST_TYPES, Op::list_len, 0, kNoBody, &rep); s != MPX_OK) return s;
  uint64_t n = 0;
  if (Status s = give_int(rep, &n); s != MPX_OK) return s;
  *count = size_t(n);
  return MPX_OK;
}

MPX_API int mpx_mlist_reverse(mpx_proxy *l) {
  std::string rep;
  return proxy_call(l, LIST_TYPES, Op::list_reverse, 0, kNoBody, &rep);
}

MPX_API int mpx_mlist_sort(mpx_proxy *l) {
  std::string rep;
  return proxy_call(l, LIST_TYPES, Op::list_sort, 0, kNoBody, &rep);
}

MPX_API int mpx_mlist_clear(mpx_proxy *l) {
  std::string rep;
  return proxy_call(l, LIST_TYPES, Op::list_clear, 0, kNoBody, &rep);
}

// ---- queues ------------------------------------------------------------------------------

#define QUEUE_TYPES {MPX_MOBJ_QUEUE, MPX_MOBJ_JOINABLE_QUEUE}

MPX_API int mpx_mqueue_put(mpx_proxy *q, const void *item, size_t len, int64_t timeout_ms) {
  if (Status s = check_data(item, len, "item"); s != MPX_OK) return s;
  std::string rep;
  return proxy_call(q, QUEUE_TYPES, Op::queue_put, timeout_ms, [&](Writer &w) { w.bytes(item, len); }, &rep);
}

MPX_API int mpx_mqueue_get(mpx_proxy *q, void **item, size_t *len, int64_t timeout_ms) {
  MPX_REQUIRE(item && len, "item or len is NULL");
  *item = nullptr;
  *len = 0;
  std::string rep;
  if (Status s = proxy_call(q, QUEUE_TYPES, Op::queue_get, timeout_ms, kNoBody, &rep); s != MPX_OK) return s;
  return give_bytes(rep, item, len);
}

MPX_API int mpx_mqueue_qsize(mpx_proxy *q, size_t *count) {
  MPX_REQUIRE(count, "count is NULL");
  std::string rep;
  if (Status s = proxy_call(q, QUEUE_TYPES, Op::queue_size, 0, kNoBody, &rep); s != MPX_OK) return s;
  uint64_t n = 0;
  if (Status s = give_int(rep, &n); s != MPX_OK) return s;
  *count = size_t(n);
  return MPX_OK;
}

MPX_API int mpx_mqueue_task_done(mpx_proxy *q) {
  std::string rep;
  return proxy_call(q, {MPX_MOBJ_JOINABLE_QUEUE}, Op::queue_task_done, 0, kNoBody, &rep);
}

MPX_API int mpx_mqueue_join(mpx_proxy *q, int64_t timeout_ms) {
  std::string rep;
  return proxy_call(q, {MPX_MOBJ_JOINABLE_QUEUE}, Op::queue_join, timeout_ms, kNoBody, &rep);
}

// ---- locks and semaphores ----------------------------------------------------------------

#define LOCK_TYPES {MPX_MOBJ_LOCK, MPX_MOBJ_RLOCK, MPX_MOBJ_SEMAPHORE, MPX_MOBJ_BOUNDED_SEMAPHORE, MPX_MOBJ_CONDITION}

MPX_API int mpx_mlock_acquire(mpx_proxy *lk, int64_t timeout_ms) {
  std::string rep;
  return proxy_call(lk, LOCK_TYPES, Op::lock_acquire, timeout_ms, kNoBody, &rep);
}

MPX_API int mpx_mlock_release(mpx_proxy *lk) {
  std::string rep;
  return proxy_call(lk, LOCK_TYPES, Op::lock_release, 0, kNoBody, &rep);
}

MPX_API int mpx_msem_value(mpx_proxy *s, int64_t *value) {
  MPX_REQUIRE(value, "value is NULL");
  std::string rep;
  if (Status st = proxy_call(s, {MPX_MOBJ_SEMAPHORE, MPX_MOBJ_BOUNDED_SEMAPHORE}, Op::sem_value, 0, kNoBody, &rep); st != MPX_OK)
    return st;
  return give_int(rep, value);
}

// ---- condition, event, barrier -----------------------------------------------------------

MPX_API int mpx_mcond_wait(mpx_proxy *cv, int64_t timeout_ms) {
  std::string rep;
  return proxy_call(cv, {MPX_MOBJ_CONDITION}, Op::cond_wait, timeout_ms, kNoBody, &rep);
}

MPX_API int mpx_mcond_notify(mpx_proxy *cv, size_t n) {
  std::string rep;
  return proxy_call(cv, {MPX_MOBJ_CONDITION}, Op::cond_notify, 0, [&](Writer &w) { w.u64(n); }, &rep);
}

MPX_API int mpx_mcond_notify_all(mpx_proxy *cv) { return mpx_mcond_notify(cv, SIZE_MAX); }

MPX_API int mpx_mevent_set(mpx_proxy *e) {
  std::string rep;
  return proxy_call(e, {MPX_MOBJ_EVENT}, Op::event_set, 0, kNoBody, &rep);
}

MPX_API int mpx_mevent_clear(mpx_proxy *e) {
  std::string rep;
  return proxy_call(e, {MPX_MOBJ_EVENT}, Op::event_clear, 0, kNoBody, &rep);
}

MPX_API int mpx_mevent_is_set(mpx_proxy *e, int *is_set) {
  MPX_REQUIRE(is_set, "is_set is NULL");
  std::string rep;
  if (Status s = proxy_call(e, {MPX_MOBJ_EVENT}, Op::event_is_set, 0, kNoBody, &rep); s != MPX_OK) return s;
  uint32_t v = 0;
  if (Status s = give_int(rep, &v); s != MPX_OK) return s;
  *is_set = v != 0;
  return MPX_OK;
}

MPX_API int mpx_mevent_wait(mpx_proxy *e, int64_t timeout_ms) {
  std::string rep;
  return proxy_call(e, {MPX_MOBJ_EVENT}, Op::event_wait, timeout_ms, kNoBody, &rep);
}

MPX_API int mpx_mbarrier_wait(mpx_proxy *b, int64_t timeout_ms, int64_t *index) {
  std::string rep;
  if (Status s = proxy_call(b, {MPX_MOBJ_BARRIER}, Op::barrier_wait, timeout_ms, kNoBody, &rep); s != MPX_OK) return s;
  int64_t i = 0;
  if (Status s = give_int(rep, &i); s != MPX_OK) return s;
  if (index) *index = i;
  return MPX_OK;
}

MPX_API int mpx_mbarrier_abort(mpx_proxy *b) {
  std::string rep;
  return proxy_call(b, {MPX_MOBJ_BARRIER}, Op::barrier_abort, 0, kNoBody, &rep);
}

MPX_API int mpx_mbarrier_reset(mpx_proxy *b) {
  std::string rep;
  return proxy_call(b, {MPX_MOBJ_BARRIER}, Op::barrier_reset, 0, kNoBody, &rep);
}

// ---- values and arrays -------------------------------------------------------------------

static Status value_size(mpx_proxy *v, size_t size) {
  MPX_PIN(o, ProxyObject, v, HandleType::proxy);
  if (o->type == MPX_MOBJ_VALUE && size != o->itemsize)
    return fail(MPX_EINVAL, "size is {}, the value's element size is {}", size, o->itemsize);
  return MPX_OK;
}

MPX_API int mpx_mvalue_get(mpx_proxy *v, void *out, size_t size) {
  MPX_REQUIRE(out, "out is NULL");
  if (Status s = value_size(v, size); s != MPX_OK) return s;
  std::string rep;
  if (Status s = proxy_call(v, {MPX_MOBJ_VALUE}, Op::value_get, 0, kNoBody, &rep); s != MPX_OK) return s;
  Reader r(rep.data(), rep.size());
  const auto b = r.bytes();
  if (r.bad() || b.size() != size) return fail(MPX_EPROTO, "malformed reply");
  std::memcpy(out, b.data(), size);
  return MPX_OK;
}

MPX_API int mpx_mvalue_set(mpx_proxy *v, const void *in, size_t size) {
  MPX_REQUIRE(in, "in is NULL");
  if (Status s = value_size(v, size); s != MPX_OK) return s;
  std::string rep;
  return proxy_call(v, {MPX_MOBJ_VALUE}, Op::value_set, 0, [&](Writer &w) { w.bytes(in, size); }, &rep);
}

MPX_API int mpx_mvalue_add(mpx_proxy *v, const void *delta, void *result, size_t size) {
  MPX_REQUIRE(delta, "delta is NULL");
  if (Status s = value_size(v, size); s != MPX_OK) return s;
  std::string rep;
  if (Status s = proxy_call(v, {MPX_MOBJ_VALUE}, Op::value_add, 0, [&](Writer &w) { w.bytes(delta, size); }, &rep);
      s != MPX_OK)
    return s;
  Reader r(rep.data(), rep.size());
  const auto b = r.bytes();
  if (r.bad() || b.size() != size) return fail(MPX_EPROTO, "malformed reply");
  if (result) std::memcpy(result, b.data(), size);
  return MPX_OK;
}

MPX_API int mpx_marray_len(mpx_proxy *a, size_t *length, size_t *itemsize) {
  MPX_REQUIRE(length, "length is NULL");
  std::string rep;
  if (Status s = proxy_call(a, {MPX_MOBJ_ARRAY}, Op::array_len, 0, kNoBody, &rep); s != MPX_OK) return s;
  Reader r(rep.data(), rep.size());
  const uint64_t n = r.u64(), is = r.u64();
  if (r.bad()) return fail(MPX_EPROTO, "malformed reply");
  *length = size_t(n);
  if (itemsize) *itemsize = size_t(is);
  return MPX_OK;
}

static Status array_itemsize(mpx_proxy *a, size_t *itemsize) {
  MPX_PIN(o, ProxyObject, a, HandleType::proxy);
  *itemsize = o->itemsize;
  return MPX_OK;
}

MPX_API int mpx_marray_get(mpx_proxy *a, size_t start, size_t count, void *out) {
  MPX_REQUIRE(out || count == 0, "out is NULL");
  size_t is = 0;
  if (Status s = array_itemsize(a, &is); s != MPX_OK) return s;
  std::string rep;
  if (Status s = proxy_call(a, {MPX_MOBJ_ARRAY}, Op::array_get, 0, [&](Writer &w) { w.u64(start).u64(count); }, &rep);
      s != MPX_OK)
    return s;
  Reader r(rep.data(), rep.size());
  const auto b = r.bytes();
  if (r.bad() || b.size() != count * is) return fail(MPX_EPROTO, "malformed reply");
  if (count) std::memcpy(out, b.data(), b.size());
  return MPX_OK;
}

MPX_API int mpx_marray_set(mpx_proxy *a, size_t start, size_t count, const void *in) {
  MPX_REQUIRE(in || count == 0, "in is NULL");
  size_t is = 0;
  if (Status s = array_itemsize(a, &is); s != MPX_OK) return s;
  MPX_REQUIRE(is == 0 || count <= (size_t(1) << 32) / is, "count {} is too large", count);
  std::string rep;
  return proxy_call(a, {MPX_MOBJ_ARRAY}, Op::array_set, 0, [&](Writer &w) { w.u64(start).bytes(in, count * is); }, &rep);
}

}  // extern "C"
