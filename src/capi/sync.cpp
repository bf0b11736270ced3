// C entry points of mpx/sync.h.
#include "mpx/sync.h"

#include "capi/util.hpp"
#include "sync/primitives.hpp"

using namespace mpx;
using namespace mpx::capi;

namespace {

template <typename Obj>
Status attach_object(Obj *o, const char *token, ObjType type, size_t body) {
  Placement p;
  if (Status s = Placement::attach(token, type, body, &p); s != MPX_OK) return s;
  return Obj::open(std::move(p), o);
}

Status open_lock(LockObject *o, Placement p) {
  if (Status s = SharedLock::open(std::move(p), &o->lock); s != MPX_OK) return s;
  o->lock.set_owner(o);
  return MPX_OK;
}

}  // namespace

extern "C" {

/* ---- Lock ------------------------------------------------------------------------- */

MPX_API int mpx_lock_options_init(mpx_lock_options *opts, size_t struct_size) {
  return init_options(opts, struct_size, "mpx_lock_options");
}

MPX_API int mpx_lock_create(mpx_lock **out, const mpx_lock_options *opts) {
  if (out) *out = nullptr;
  if (Status s = check_options(opts, "mpx_lock_options"); s != MPX_OK) return s;
  const uint32_t flags = opts ? opts->flags : 0;
  if (flags & ~uint32_t(MPX_LOCK_RECURSIVE)) return fail(MPX_EINVAL, "unknown lock flags {:#x}", flags);
  return create_handle<mpx_lock, LockObject>(out, [&](LockObject *o) -> Status {
    if (Status s = SharedLock::create(flags & MPX_LOCK_RECURSIVE, &o->lock); s != MPX_OK) return s;
    o->lock.set_owner(o);
    return MPX_OK;
  });
}

MPX_API int mpx_lock_attach(mpx_lock **out, const char *token) {
  return create_handle<mpx_lock, LockObject>(out, [&](LockObject *o) -> Status {
    Placement p;
    if (Status s = Placement::attach(token, ObjType::lock, sizeof(LockBody), &p); s != MPX_OK) return s;
    return open_lock(o, std::move(p));
  });
}

MPX_API int mpx_lock_destroy(mpx_lock *lock) { return destroy_handle(lock, HandleType::lock); }

MPX_API int mpx_lock_acquire(mpx_lock *lock, int64_t timeout_ms) {
  MPX_PIN(o, LockObject, lock, HandleType::lock);
  return o->lock.acquire(timeout_ms);
}

MPX_API int mpx_lock_try_acquire(mpx_lock *lock) {
  MPX_PIN(o, LockObject, lock, HandleType::lock);
  return o->lock.acquire(0);
}

MPX_API int mpx_lock_release(mpx_lock *lock) {
  MPX_PIN(o, LockObject, lock, HandleType::lock);
  return o->lock.release();
}

MPX_API int mpx_lock_consistent(mpx_lock *lock) {
  MPX_PIN(o, LockObject, lock, HandleType::lock);
  return o->lock.consistent();
}

MPX_API int mpx_lock_locked(mpx_lock *lock, int *locked) {
  MPX_REQUIRE(locked, "locked is NULL");
  MPX_PIN(o, LockObject, lock, HandleType::lock);
  return o->lock.locked(locked);
}

MPX_API int mpx_lock_is_owned(mpx_lock *lock, int *owned) {
  MPX_REQUIRE(owned, "owned is NULL");
  MPX_PIN(o, LockObject, lock, HandleType::lock);
  if (Status s = o->lock.check(); s != MPX_OK) return s;
  *owned = o->lock.owned_by_caller_process() ? 1 : 0;
  return MPX_OK;
}

MPX_API int mpx_lock_count(mpx_lock *lock, uint32_t *count) {
  MPX_REQUIRE(count, "count is NULL");
  MPX_PIN(o, LockObject, lock, HandleType::lock);
  if (Status s = o->lock.check(); s != MPX_OK) return s;
  *count = o->lock.depth_of_caller();
  return MPX_OK;
}

MPX_API int mpx_lock_is_recursive(mpx_lock *lock, int *recursive) {
  MPX_REQUIRE(recursive, "recursive is NULL");
  MPX_PIN(o, LockObject, lock, HandleType::lock);
  *recursive = o->lock.recursive() ? 1 : 0;
  return MPX_OK;
}

MPX_API int mpx_lock_token(mpx_lock *lock, char *buf, size_t *len) {
  MPX_REQUIRE(len, "len is NULL");
  MPX_PIN(o, LockObject, lock, HandleType::lock);
  return guarded([&] { return copy_out(o->lock.placement().token(), buf, len); });
}

/* ---- Semaphore -------------------------------------------------------------------- */

MPX_API int mpx_semaphore_options_init(mpx_semaphore_options *opts, size_t struct_size) {
  return init_options(opts, struct_size, "mpx_semaphore_options");
}

MPX_API int mpx_semaphore_create(mpx_semaphore **out, uint32_t value, const mpx_semaphore_options *opts) {
  if (out) *out = nullptr;
  if (Status s = check_options(opts, "mpx_semaphore_options"); s != MPX_OK) return s;
  const uint32_t flags = opts ? opts->flags : 0;
  if (flags & ~uint32_t(MPX_SEMAPHORE_BOUNDED)) return fail(MPX_EINVAL, "unknown semaphore flags {:#x}", flags);
  if (opts && opts->max_value && !(flags & MPX_SEMAPHORE_BOUNDED))
    return fail(MPX_EINVAL, "max_value is set but MPX_SEMAPHORE_BOUNDED is not");
  return create_handle<mpx_semaphore, SemaphoreObject>(out, [&](SemaphoreObject *o) {
    return SemaphoreObject::create(value, flags & MPX_SEMAPHORE_BOUNDED, opts ? opts->max_value : 0, o);
  });
}

MPX_API int mpx_semaphore_attach(mpx_semaphore **out, const char *token) {
  return create_handle<mpx_semaphore, SemaphoreObject>(
      out, [&](SemaphoreObject *o) { return attach_object(o, token, ObjType::semaphore, sizeof(SemaphoreBody)); });
}

MPX_API int mpx_semaphore_destroy(mpx_semaphore *sem) { return destroy_handle(sem, HandleType::semaphore); }

MPX_API int mpx_semaphore_acquire(mpx_semaphore *sem, int64_t timeout_ms) {
  MPX_PIN(o, SemaphoreObject, sem, HandleType::semaphore);
  return o->acquire(timeout_ms);
}

MPX_API int mpx_semaphore_try_acquire(mpx_semaphore *sem) {
  MPX_PIN(o, SemaphoreObject, sem, HandleType::semaphore);
  return o->acquire(0);
}

MPX_API int mpx_semaphore_release(mpx_semaphore *sem) {
  MPX_PIN(o, SemaphoreObject, sem, HandleType::semaphore);
  return o->release();
}

MPX_API int mpx_semaphore_value(mpx_semaphore *sem, uint32_t *value) {
  MPX_REQUIRE(value, "value is NULL");
  MPX_PIN(o, SemaphoreObject, sem, HandleType::semaphore);
  return o->value(value);
}

MPX_API int mpx_semaphore_max_value(mpx_semaphore *sem, uint32_t *max_value) {
  MPX_REQUIRE(max_value, "max_value is NULL");
  MPX_PIN(o, SemaphoreObject, sem, HandleType::semaphore);
  return o->max_value(max_value);
}

MPX_API int mpx_semaphore_token(mpx_semaphore *sem, char *buf, size_t *len) {
  MPX_REQUIRE(len, "len is NULL");
  MPX_PIN(o, SemaphoreObject, sem, HandleType::semaphore);
  return guarded([&] { return copy_out(o->placement().token(), buf, len); });
}

/* ---- Event ------------------------------------------------------------------------ */

MPX_API int mpx_event_create(mpx_event **out) {
  return create_handle<mpx_event, EventObject>(out, [](EventObject *o) { return EventObject::create(o); });
}

MPX_API int mpx_event_attach(mpx_event **out, const char *token) {
  return create_handle<mpx_event, EventObject>(
      out, [&](EventObject *o) { return attach_object(o, token, ObjType::event, sizeof(EventBody)); });
}

MPX_API int mpx_event_destroy(mpx_event *ev) { return destroy_handle(ev, HandleType::event); }

MPX_API int mpx_event_set(mpx_event *ev) {
  MPX_PIN(o, EventObject, ev, HandleType::event);
  return o->set();
}

MPX_API int mpx_event_clear(mpx_event *ev) {
  MPX_PIN(o, EventObject, ev, HandleType::event);
  return o->clear();
}

MPX_API int mpx_event_is_set(mpx_event *ev, int *is_set) {
  MPX_REQUIRE(is_set, "is_set is NULL");
  MPX_PIN(o, EventObject, ev, HandleType::event);
  return o->is_set(is_set);
}

MPX_API int mpx_event_wait(mpx_event *ev, int64_t timeout_ms) {
  MPX_PIN(o, EventObject, ev, HandleType::event);
  return o->wait(timeout_ms);
}

MPX_API int mpx_event_token(mpx_event *ev, char *buf, size_t *len) {
  MPX_REQUIRE(len, "len is NULL");
  MPX_PIN(o, EventObject, ev, HandleType::event);
  return guarded([&] { return copy_out(o->placement().token(), buf, len); });
}

/* ---- Condition -------------------------------------------------------------------- */

MPX_API int mpx_condition_create(mpx_condition **out, mpx_lock *lock) {
  if (!lock) {
    return create_handle<mpx_condition, ConditionObject>(
        out, [](ConditionObject *o) { return ConditionObject::create(nullptr, o); });
  }
  if (out) *out = nullptr;
  MPX_PIN(l, LockObject, lock, HandleType::lock);
  return create_handle<mpx_condition, ConditionObject>(
      out, [&](ConditionObject *o) { return ConditionObject::create(&l->lock, o); });
}

MPX_API int mpx_condition_attach(mpx_condition **out, const char *token) {
  return create_handle<mpx_condition, ConditionObject>(
      out, [&](ConditionObject *o) { return attach_object(o, token, ObjType::condition, sizeof(ConditionBody)); });
}

MPX_API int mpx_condition_destroy(mpx_condition *cond) { return destroy_handle(cond, HandleType::condition); }

MPX_API int mpx_condition_lock(mpx_condition *cond, mpx_lock **lock) {
  MPX_REQUIRE(lock, "lock is NULL");
  *lock = nullptr;
  MPX_PIN(c, ConditionObject, cond, HandleType::condition);
  return create_handle<mpx_lock, LockObject>(
      lock, [&](LockObject *o) { return open_lock(o, c->lock().placement()); });
}

MPX_API int mpx_condition_acquire(mpx_condition *cond, int64_t timeout_ms) {
  MPX_PIN(c, ConditionObject, cond, HandleType::condition);
  return c->lock().acquire(timeout_ms);
}

MPX_API int mpx_condition_release(mpx_condition *cond) {
  MPX_PIN(c, ConditionObject, cond, HandleType::condition);
  return c->lock().release();
}

MPX_API int mpx_condition_wait(mpx_condition *cond, int64_t timeout_ms) {
  MPX_PIN(c, ConditionObject, cond, HandleType::condition);
  return c->wait(timeout_ms);
}

MPX_API int mpx_condition_notify(mpx_condition *cond, uint32_t n) {
  MPX_PIN(c, ConditionObject, cond, HandleType::condition);
  return c->notify(n);
}

MPX_API int mpx_condition_notify_all(mpx_condition *cond) {
  MPX_PIN(c, ConditionObject, cond, HandleType::condition);
  return c->notify(UINT32_MAX);
}

MPX_API int mpx_condition_token(mpx_condition *cond, char *buf, size_t *len) {
  MPX_REQUIRE(len, "len is NULL");
  MPX_PIN(c, ConditionObject, cond, HandleType::condition);
  return guarded([&] { return copy_out(c->placement().token(), buf, len); });
}

/* ---- Barrier ---------------------------------------------------------------------- */

MPX_API int mpx_barrier_create(mpx_barrier **out, uint32_t parties) {
  return create_handle<mpx_barrier, BarrierObject>(
      out, [&](BarrierObject *o) { return BarrierObject::create(parties, o); });
}

MPX_API int mpx_barrier_attach(mpx_barrier **out, const char *token) {
  return create_handle<mpx_barrier, BarrierObject>(
      out, [&](BarrierObject *o) { return attach_object(o, token, ObjType::barrier, sizeof(BarrierBody)); });
}

MPX_API int mpx_barrier_destroy(mpx_barrier *bar) { return destroy_handle(bar, HandleType::barrier); }

MPX_API int mpx_barrier_wait(mpx_barrier *bar, int64_t timeout_ms, uint32_t *index) {
  MPX_PIN(b, BarrierObject, bar, HandleType::barrier);
  return b->wait(timeout_ms, false, index);
}

MPX_API int mpx_barrier_wait_ex(mpx_barrier *bar, int64_t timeout_ms, uint32_t flags, uint32_t *index) {
  if (flags & ~uint32_t(MPX_BARRIER_HOLD)) return fail(MPX_EINVAL, "unknown barrier flags {:#x}", flags);
  MPX_PIN(b, BarrierObject, bar, HandleType::barrier);
  return b->wait(timeout_ms, flags & MPX_BARRIER_HOLD, index);
}

MPX_API int mpx_barrier_release(mpx_barrier *bar) {
  MPX_PIN(b, BarrierObject, bar, HandleType::barrier);
  return b->release();
}

MPX_API int mpx_barrier_abort(mpx_barrier *bar) {
  MPX_PIN(b, BarrierObject, bar, HandleType::barrier);
  return b->abort();
}

MPX_API int mpx_barrier_reset(mpx_barrier *bar) {
  MPX_PIN(b, BarrierObject, bar, HandleType::barrier);
  return b->reset();
}

MPX_API int mpx_barrier_parties(mpx_barrier *bar, uint32_t *parties) {
  MPX_REQUIRE(parties, "parties is NULL");
  MPX_PIN(b, BarrierObject, bar, HandleType::barrier);
  return b->parties(parties);
}

MPX_API int mpx_barrier_n_waiting(mpx_barrier *bar, uint32_t *n_waiting) {
  MPX_REQUIRE(n_waiting, "n_waiting is NULL");
  MPX_PIN(b, BarrierObject, bar, HandleType::barrier);
  return b->n_waiting(n_waiting);
}

MPX_API int mpx_barrier_broken(mpx_barrier *bar, int *broken) {
  MPX_REQUIRE(broken, "broken is NULL");
  MPX_PIN(b, BarrierObject, bar, HandleType::barrier);
  return b->broken(broken);
}

MPX_API int mpx_barrier_token(mpx_barrier *bar, char *buf, size_t *len) {
  MPX_REQUIRE(len, "len is NULL");
  MPX_PIN(b, BarrierObject, bar, HandleType::barrier);
  return guarded([&] { return copy_out(b->placement().token(), buf, len); });
}

}  // extern "C"
