// C entry points of mpx/pool.h.
#include "mpx/pool.h"

#include <chrono>
#include <cstdlib>
#include <cstring>

#include "capi/util.hpp"
#include "platform/process.hpp"
#include "platform/wait.hpp"
#include "pool/pool.hpp"

using namespace mpx;
using namespace mpx::capi;
using mpx::pool::JobObject;
using mpx::pool::JobState;
using mpx::pool::PoolObject;
using mpx::pool::WorkerObject;

namespace {

// A job handle, made before its tasks are queued (a callback may need it at once); fill(state)
// then queues them, and the handle goes again if that fails.
template <typename Fill>
int new_job(mpx_pool *pool, mpx_job **out, Fill &&fill) {
  auto state = std::make_shared<JobState>();
  state->pool_handle = pool;
  if (Status s = create_handle<mpx_job, JobObject>(out, [&](JobObject *j) {
        j->state = state;
        j->bound_pid = platform::current_pid();  // results arrive through this process's threads
        return MPX_OK;
      });
      s != MPX_OK)
    return s;
  state->handle = *out;
  if (Status s = fill(state); s != MPX_OK) {
    const std::string why = detail::message();
    destroy_handle(*out, HandleType::job);
    *out = nullptr;
    return fail(s, "{}", why);
  }
  return MPX_OK;
}

// Wait on the job until pred() holds (job mutex held), the deadline passes or the handle closes.
template <typename Pred>
Status wait_job(JobObject *o, std::unique_lock<std::mutex> &lk, int64_t timeout_ms, bool whole, Pred pred) {
  JobState &j = *o->state;
  const auto until = timeout_ms < 0 ? std::chrono::steady_clock::time_point::max()
                                    : std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  int &count = whole ? j.waiting_all : j.waiting_next;
  ++count;
  const bool ok = j.cv.wait_until(lk, until, [&] { return pred() || o->closing(); });
  --count;
  if (o->closing()) return fail(MPX_ECLOSED, "the job was destroyed");
  if (!ok) return fail(MPX_ETIMEDOUT, "timed out after {} ms", timeout_ms);
  return MPX_OK;
}

Status item_error(const JobState &j, const pool::Item &it, size_t index) {
  if (it.message) return fail(it.status, "{}", j.message_of(it));
  if (it.status == MPX_ETASK) return fail(MPX_ETASK, "item {}: the task function returned {}", index, it.code);
  return fail(it.status, "item {}: {}", index, mpx_strerror(it.status));
}

}  // namespace

extern "C" {

// ---- tasks (worker side) ------------------------------------------------------------------

MPX_API int mpx_task_return(mpx_task_out *out, const void *data, size_t size) {
  MPX_REQUIRE(out, "out is NULL");
  MPX_REQUIRE(data || size == 0, "data is NULL but size is {}", size);
  return guarded([&] {
    out->buf->resize(out->start + size);
    if (size) std::memcpy(out->buf->data() + out->start, data, size);
    return MPX_OK;
  });
}

MPX_API int mpx_task_reserve(mpx_task_out *out, size_t size, void **buf) {
  MPX_REQUIRE(out, "out is NULL");
  MPX_REQUIRE(buf, "buf is NULL");
  *buf = nullptr;
  return guarded([&] {
    out->buf->resize(out->start + size);
    *buf = out->buf->data() + out->start;
    return MPX_OK;
  });
}

MPX_API int mpx_task_error(mpx_task_out *out, const char *message) {
  MPX_REQUIRE(out, "out is NULL");
  MPX_REQUIRE(message, "message is NULL");
  return guarded([&] {
    out->message.assign(message, strnlen(message, 65536));
    return MPX_OK;
  });
}

MPX_API int mpx_register_task(const char *name, mpx_task_fn fn) { return pool::register_task(name, fn); }

// ---- the pool -------------------------------------------------------------------------------

MPX_API int mpx_pool_options_init(mpx_pool_options *opts, size_t struct_size) {
  return init_options(opts, struct_size, "mpx_pool_options");
}

MPX_API int mpx_task_init(mpx_task *task, size_t struct_size) { return init_options(task, struct_size, "mpx_task"); }

MPX_API int mpx_map_init(mpx_map *map, size_t struct_size) { return init_options(map, struct_size, "mpx_map"); }

MPX_API int mpx_pool_create(mpx_pool **out, const mpx_pool_options *opts) {
  if (out) *out = nullptr;
  if (Status s = check_options(opts, "mpx_pool_options"); s != MPX_OK) return s;
  return create_handle<mpx_pool, PoolObject>(out, [&](PoolObject *p) { return p->init(opts); });
}

MPX_API int mpx_pool_close(mpx_pool *pool) {
  MPX_PIN(o, PoolObject, pool, HandleType::pool);
  return guarded([&] { return o->close(); });
}

MPX_API int mpx_pool_terminate(mpx_pool *pool) {
  MPX_PIN(o, PoolObject, pool, HandleType::pool);
  return guarded([&] { return o->terminate(); });
}

MPX_API int mpx_pool_join(mpx_pool *pool, int64_t timeout_ms) {
  MPX_PIN(o, PoolObject, pool, HandleType::pool);
  return guarded([&] { return o->join(timeout_ms); });
}

MPX_API int mpx_pool_destroy(mpx_pool *pool) { return destroy_handle(pool, HandleType::pool); }

MPX_API int mpx_pool_size(mpx_pool *pool, size_t *workers) {
  MPX_REQUIRE(workers, "workers is NULL");
  MPX_PIN(o, PoolObject, pool, HandleType::pool);
  *workers = o->size();
  return MPX_OK;
}

MPX_API int mpx_pool_worker_pids(mpx_pool *pool, int64_t *pids, size_t *count) {
  MPX_REQUIRE(count, "count is NULL");
  MPX_PIN(o, PoolObject, pool, HandleType::pool);
  return guarded([&] {
    std::vector<int64_t> v;
    o->worker_pids(&v);
    return copy_out_items(v, pids, count, "pids");
  });
}

MPX_API int mpx_pool_stats_get(mpx_pool *pool, mpx_pool_stats *stats) {
  MPX_REQUIRE(stats, "stats is NULL");
  MPX_REQUIRE(stats->size == sizeof *stats, "stats->size is {}, expected {}", stats->size, sizeof *stats);
  MPX_PIN(o, PoolObject, pool, HandleType::pool);
  return o->stats(stats);
}

MPX_API int mpx_pool_token(mpx_pool *pool, char *buf, size_t *len) {
  MPX_REQUIRE(len, "len is NULL");
  MPX_PIN(o, PoolObject, pool, HandleType::pool);
  return guarded([&] { return copy_out(o->token(), buf, len); });
}

// ---- jobs -----------------------------------------------------------------------------------

MPX_API int mpx_pool_apply_async(mpx_pool *pool, const mpx_task *task, mpx_job **out) {
  MPX_REQUIRE(out, "out is NULL");
  *out = nullptr;
  MPX_REQUIRE(task, "task is NULL");
  if (Status s = check_options(task, "mpx_task"); s != MPX_OK) return s;
  MPX_PIN(o, PoolObject, pool, HandleType::pool);
  return guarded([&] { return new_job(pool, out, [&](const std::shared_ptr<JobState> &j) { return o->apply_async(task, j); }); });
}

MPX_API int mpx_pool_map(mpx_pool *pool, const mpx_map *map, mpx_job **out) {
  MPX_REQUIRE(out, "out is NULL");
  *out = nullptr;
  MPX_REQUIRE(map, "map is NULL");
  if (Status s = check_options(map, "mpx_map"); s != MPX_OK) return s;
  MPX_PIN(o, PoolObject, pool, HandleType::pool);
  return guarded([&] { return new_job(pool, out, [&](const std::shared_ptr<JobState> &j) { return o->map(map, j); }); });
}

MPX_API int mpx_pool_apply(mpx_pool *pool, const mpx_task *task, void **result, size_t *size) {
  MPX_REQUIRE(result, "result is NULL");
  MPX_REQUIRE(size, "size is NULL");
  *result = nullptr;
  *size = 0;
  MPX_REQUIRE(task, "task is NULL");
  if (Status s = check_options(task, "mpx_task"); s != MPX_OK) return s;
  MPX_PIN(o, PoolObject, pool, HandleType::pool);
  return guarded([&]() -> int {
    auto job = std::make_shared<JobState>();
    if (Status s = o->apply_async(task, job); s != MPX_OK) return s;
    std::unique_lock<std::mutex> lk(job->mu);
    // Woken when the job ends; and every 100 ms to see whether the pool is being destroyed
    // (destroy waits for this call, and only the end of the job would wake it otherwise).
    ++job->waiting_all;
    while (!job->cv.wait_for(lk, std::chrono::milliseconds(100), [&] { return job->ready() || o->closing(); })) {
    }
    --job->waiting_all;
    if (!job->ready()) return fail(MPX_ECLOSED, "the pool was destroyed");
    const pool::Item &it = job->items[0];
    if (it.status != 0) return item_error(*job, it, 0);
    void *p = std::malloc(it.size ? size_t(it.size) : 1);
    if (!p) return fail(MPX_ENOMEM, "out of memory for a result of {} bytes", it.size);
    if (it.size) std::memcpy(p, it.data, size_t(it.size));
    *result = p;
    *size = size_t(it.size);
    return MPX_OK;
  });
}

MPX_API int mpx_job_wait(mpx_job *job, int64_t timeout_ms) {
  MPX_PIN(o, JobObject, job, HandleType::job);
  std::unique_lock<std::mutex> lk(o->state->mu);
  JobState &j = *o->state;
  if (j.ready()) return MPX_OK;
  if (timeout_ms == 0) return fail(MPX_ETIMEDOUT, "{} of {} items have ended", j.done, j.items.size());
  return wait_job(o.get(), lk, timeout_ms, true, [&] { return j.ready(); });
}

MPX_API int mpx_job_ready(mpx_job *job, int *ready) {
  MPX_REQUIRE(ready, "ready is NULL");
  MPX_PIN(o, JobObject, job, HandleType::job);
  std::lock_guard<std::mutex> g(o->state->mu);
  *ready = o->state->ready();
  return MPX_OK;
}

MPX_API int mpx_job_successful(mpx_job *job, int *ok) {
  MPX_REQUIRE(ok, "ok is NULL");
  MPX_PIN(o, JobObject, job, HandleType::job);
  std::lock_guard<std::mutex> g(o->state->mu);
  if (!o->state->ready()) return fail(MPX_EAGAIN, "the job is not ready");
  *ok = o->state->failed == 0;
  return MPX_OK;
}

MPX_API int mpx_job_count(mpx_job *job, size_t *count) {
  MPX_REQUIRE(count, "count is NULL");
  MPX_PIN(o, JobObject, job, HandleType::job);
  *count = o->state->items.size();
  return MPX_OK;
}

MPX_API int mpx_job_result(mpx_job *job, size_t index, const void **data, size_t *size) {
  MPX_REQUIRE(data, "data is NULL");
  MPX_REQUIRE(size, "size is NULL");
  *data = nullptr;
  *size = 0;
  MPX_PIN(o, JobObject, job, HandleType::job);
  std::lock_guard<std::mutex> g(o->state->mu);
  JobState &j = *o->state;
  if (index >= j.items.size()) return fail(MPX_ERANGE, "index {} is past the job's {} items", index, j.items.size());
  const pool::Item &it = j.items[index];
  if (it.status == 1) return fail(MPX_EAGAIN, "item {} has not ended", index);
  if (it.status != 0) return item_error(j, it, index);
  *data = it.data;
  *size = size_t(it.size);
  return MPX_OK;
}

MPX_API int mpx_job_error(mpx_job *job, size_t index, int *code, int *task_code, char *buf, size_t *len) {
  MPX_REQUIRE(code, "code is NULL");
  MPX_PIN(o, JobObject, job, HandleType::job);
  std::lock_guard<std::mutex> g(o->state->mu);
  JobState &j = *o->state;
  if (index >= j.items.size()) return fail(MPX_ERANGE, "index {} is past the job's {} items", index, j.items.size());
  const pool::Item &it = j.items[index];
  if (it.status == 1) return fail(MPX_EAGAIN, "item {} has not ended", index);
  *code = it.status;
  if (task_code) *task_code = it.code;
  if (len && (buf || *len)) return guarded([&] { return copy_out(j.message_of(it), buf, len); });
  return MPX_OK;
}

MPX_API int mpx_job_next(mpx_job *job, int64_t timeout_ms, size_t *index) {
  MPX_REQUIRE(index, "index is NULL");
  MPX_PIN(o, JobObject, job, HandleType::job);
  std::unique_lock<std::mutex> lk(o->state->mu);
  JobState &j = *o->state;
  if (j.next >= j.items.size()) return fail(MPX_EOF, "every item has been given");
  auto have = [&] { return j.ordered ? j.items[j.next].status != 1 : j.ended_order.size() > j.next; };
  if (!have()) {
    if (timeout_ms == 0) return fail(MPX_ETIMEDOUT, "no item has ended yet");
    if (Status s = wait_job(o.get(), lk, timeout_ms, false, have); s != MPX_OK) return s;
  }
  *index = j.ordered ? j.next : j.ended_order[j.next];
  ++j.next;
  return MPX_OK;
}

MPX_API int mpx_job_progress(mpx_job *job, mpx_progress *p) {
  MPX_REQUIRE(p, "progress is NULL");
  MPX_REQUIRE(p->size == sizeof *p, "progress->size is {}, expected {}", p->size, sizeof *p);
  MPX_PIN(o, JobObject, job, HandleType::job);
  std::lock_guard<std::mutex> g(o->state->mu);
  JobState &j = *o->state;
  p->total = j.items.size();
  p->done = j.done;
  p->failed = j.failed;
  p->elapsed_s = double(platform::monotonic_ns() - j.started_ns) / 1e9;
  p->rate = p->elapsed_s > 0 ? double(j.done) / p->elapsed_s : 0;
  p->eta_s = j.done == j.items.size() ? 0 : p->rate > 0 ? double(p->total - p->done) / p->rate : -1;
  return MPX_OK;
}

MPX_API int mpx_job_cancel(mpx_job *job, size_t *cancelled) {
  MPX_PIN(o, JobObject, job, HandleType::job);
  std::shared_ptr<JobState> st = o->state;
  if (cancelled) *cancelled = 0;
  // A pool that is gone has ended every item already: nothing to cancel.
  Pinned<PoolObject> p;
  if (!st->pool_handle || p.pin(st->pool_handle, HandleType::pool) != MPX_OK) return MPX_OK;
  return guarded([&] { return p->cancel(st.get(), cancelled); });
}

MPX_API int mpx_job_destroy(mpx_job *job) { return destroy_handle(job, HandleType::job); }

// ---- batches (bindings) -----------------------------------------------------------------------

MPX_API int mpx_pool_submit(mpx_pool *pool, const char *name, const void *records, size_t bytes, size_t count,
                            int64_t timeout_ms) {
  MPX_REQUIRE(records || bytes == 0, "records is NULL but bytes is {}", bytes);
  MPX_PIN(o, PoolObject, pool, HandleType::pool);
  return guarded([&] { return o->submit(name, static_cast<const uint8_t *>(records), bytes, count, timeout_ms); });
}

MPX_API int mpx_pool_collect(mpx_pool *pool, void *buf, size_t cap, size_t *used, size_t *count, int64_t timeout_ms) {
  MPX_REQUIRE(used, "used is NULL");
  MPX_REQUIRE(count, "count is NULL");
  MPX_REQUIRE(buf || cap == 0, "buf is NULL but cap is {}", cap);
  MPX_PIN(o, PoolObject, pool, HandleType::pool);
  return guarded([&] { return o->collect(static_cast<uint8_t *>(buf), cap, used, count, timeout_ms); });
}

MPX_API int mpx_pool_add_worker(mpx_pool *pool, int64_t pid) {
  MPX_PIN(o, PoolObject, pool, HandleType::pool);
  return guarded([&] { return o->add_worker(pid); });
}

MPX_API int mpx_pool_worker_exited(mpx_pool *pool, int64_t pid, int exitcode) {
  MPX_PIN(o, PoolObject, pool, HandleType::pool);
  return guarded([&] { return o->worker_exited(pid, exitcode); });
}

MPX_API int mpx_pool_wanted(mpx_pool *pool, size_t *wanted) {
  MPX_REQUIRE(wanted, "wanted is NULL");
  MPX_PIN(o, PoolObject, pool, HandleType::pool);
  return o->wanted(wanted);
}

// ---- the worker side -------------------------------------------------------------------------

MPX_API int mpx_worker_attach(const char *token, mpx_worker **out) {
  return create_handle<mpx_worker, WorkerObject>(out, [&](WorkerObject *w) { return w->attach(token); });
}

MPX_API int mpx_worker_next(mpx_worker *w, int64_t timeout_ms, mpx_worker_task *task) {
  MPX_REQUIRE(task, "task is NULL");
  MPX_REQUIRE(task->size == sizeof *task, "task->size is {}, expected {}", task->size, sizeof *task);
  MPX_PIN(o, WorkerObject, w, HandleType::worker);
  return guarded([&] { return o->next(timeout_ms, task); });
}

MPX_API int mpx_worker_reply(mpx_worker *w, int status, const void *data, size_t size, const char *message) {
  MPX_REQUIRE(data || size == 0, "data is NULL but size is {}", size);
  MPX_PIN(o, WorkerObject, w, HandleType::worker);
  return guarded([&] { return o->reply(status, data, size, message); });
}

MPX_API int mpx_worker_detach(mpx_worker *w) { return destroy_handle(w, HandleType::worker); }

MPX_API int mpx_worker_main(void) {
  WorkerObject w;
  Status s = w.attach(nullptr);
  if (s == MPX_OK) s = w.run_initializer(nullptr);
  if (s == MPX_OK) s = w.serve(false);
  return s == MPX_OK ? 0 : 1;
}

}  // extern "C"
