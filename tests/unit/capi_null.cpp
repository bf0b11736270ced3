// Bad input over the C API (SCENARIOS.md 46-50): NULL handles and out-pointers to every exported
// function (processes included), stale / wrong-type / fabricated handles, wrong struct sizes, buffer and count
// overflows, extreme timeouts, destroy while another thread is blocked.
//
// Every call that could crash runs in a forked child, so a crash is reported as that call's
// failure instead of taking down the test binary.
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <cstdint>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "support/mpx_helpers.hpp"

using namespace std::chrono_literals;
using mpxt::Millis;

namespace {

// ---- running one call in isolation ----------------------------------------------------------

using mpxt::Outcome;
using mpxt::isolated;

std::string show(const Outcome &o) {
  if (!o.completed) return "did not return: " + o.how;
  return "returned " + mpxt::code_str(o.rc);
}

// An operation of one handle type, called with the handle under test and otherwise valid args.
struct Op {
  const char *fn;
  std::function<int(void *)> call;
};

template <typename T>
T *as(void *p) {
  return static_cast<T *>(p);
}

std::vector<Op> segment_ops() {
  return {
      {"mpx_segment_unlink", [](void *h) { return mpx_segment_unlink(as<mpx_segment>(h)); }},
      {"mpx_segment_address", [](void *h) { void *a = nullptr; return mpx_segment_address(as<mpx_segment>(h), &a); }},
      {"mpx_segment_size", [](void *h) { size_t n = 0; return mpx_segment_size(as<mpx_segment>(h), &n); }},
      {"mpx_segment_name", [](void *h) { char b[MPX_TOKEN_MAX]; size_t n = sizeof b; return mpx_segment_name(as<mpx_segment>(h), b, &n); }},
      {"mpx_segment_fd", [](void *h) { int fd = -1; return mpx_segment_fd(as<mpx_segment>(h), &fd); }},
      {"mpx_segment_token", [](void *h) { char b[MPX_TOKEN_MAX]; size_t n = sizeof b; return mpx_segment_token(as<mpx_segment>(h), b, &n); }},
  };
}

std::vector<Op> lock_ops() {
  return {
      {"mpx_lock_acquire", [](void *h) { return mpx_lock_acquire(as<mpx_lock>(h), 0); }},
      {"mpx_lock_try_acquire", [](void *h) { return mpx_lock_try_acquire(as<mpx_lock>(h)); }},
      {"mpx_lock_release", [](void *h) { return mpx_lock_release(as<mpx_lock>(h)); }},
      {"mpx_lock_consistent", [](void *h) { return mpx_lock_consistent(as<mpx_lock>(h)); }},
      {"mpx_lock_locked", [](void *h) { int v = 0; return mpx_lock_locked(as<mpx_lock>(h), &v); }},
      {"mpx_lock_is_owned", [](void *h) { int v = 0; return mpx_lock_is_owned(as<mpx_lock>(h), &v); }},
      {"mpx_lock_count", [](void *h) { uint32_t v = 0; return mpx_lock_count(as<mpx_lock>(h), &v); }},
      {"mpx_lock_is_recursive", [](void *h) { int v = 0; return mpx_lock_is_recursive(as<mpx_lock>(h), &v); }},
      {"mpx_lock_token", [](void *h) { char b[MPX_TOKEN_MAX]; size_t n = sizeof b; return mpx_lock_token(as<mpx_lock>(h), b, &n); }},
  };
}

std::vector<Op> semaphore_ops() {
  return {
      {"mpx_semaphore_acquire", [](void *h) { return mpx_semaphore_acquire(as<mpx_semaphore>(h), 0); }},
      {"mpx_semaphore_try_acquire", [](void *h) { return mpx_semaphore_try_acquire(as<mpx_semaphore>(h)); }},
      {"mpx_semaphore_release", [](void *h) { return mpx_semaphore_release(as<mpx_semaphore>(h)); }},
      {"mpx_semaphore_value", [](void *h) { uint32_t v = 0; return mpx_semaphore_value(as<mpx_semaphore>(h), &v); }},
      {"mpx_semaphore_max_value", [](void *h) { uint32_t v = 0; return mpx_semaphore_max_value(as<mpx_semaphore>(h), &v); }},
      {"mpx_semaphore_token", [](void *h) { char b[MPX_TOKEN_MAX]; size_t n = sizeof b; return mpx_semaphore_token(as<mpx_semaphore>(h), b, &n); }},
  };
}

std::vector<Op> event_ops() {
  return {
      {"mpx_event_set", [](void *h) { return mpx_event_set(as<mpx_event>(h)); }},
      {"mpx_event_clear", [](void *h) { return mpx_event_clear(as<mpx_event>(h)); }},
      {"mpx_event_is_set", [](void *h) { int v = 0; return mpx_event_is_set(as<mpx_event>(h), &v); }},
      {"mpx_event_wait", [](void *h) { return mpx_event_wait(as<mpx_event>(h), 0); }},
      {"mpx_event_token", [](void *h) { char b[MPX_TOKEN_MAX]; size_t n = sizeof b; return mpx_event_token(as<mpx_event>(h), b, &n); }},
  };
}

std::vector<Op> condition_ops() {
  return {
      {"mpx_condition_lock", [](void *h) { mpx_lock *l = nullptr; int rc = mpx_condition_lock(as<mpx_condition>(h), &l); mpx_lock_destroy(l); return rc; }},
      {"mpx_condition_acquire", [](void *h) { return mpx_condition_acquire(as<mpx_condition>(h), 0); }},
      {"mpx_condition_release", [](void *h) { return mpx_condition_release(as<mpx_condition>(h)); }},
      {"mpx_condition_wait", [](void *h) { return mpx_condition_wait(as<mpx_condition>(h), 0); }},
      {"mpx_condition_notify", [](void *h) { return mpx_condition_notify(as<mpx_condition>(h), 1); }},
      {"mpx_condition_notify_all", [](void *h) { return mpx_condition_notify_all(as<mpx_condition>(h)); }},
      {"mpx_condition_token", [](void *h) { char b[MPX_TOKEN_MAX]; size_t n = sizeof b; return mpx_condition_token(as<mpx_condition>(h), b, &n); }},
  };
}

std::vector<Op> barrier_ops() {
  return {
      {"mpx_barrier_wait", [](void *h) { uint32_t i = 0; return mpx_barrier_wait(as<mpx_barrier>(h), 0, &i); }},
      {"mpx_barrier_wait_ex", [](void *h) { uint32_t i = 0; return mpx_barrier_wait_ex(as<mpx_barrier>(h), 0, 0, &i); }},
      {"mpx_barrier_release", [](void *h) { return mpx_barrier_release(as<mpx_barrier>(h)); }},
      {"mpx_barrier_abort", [](void *h) { return mpx_barrier_abort(as<mpx_barrier>(h)); }},
      {"mpx_barrier_reset", [](void *h) { return mpx_barrier_reset(as<mpx_barrier>(h)); }},
      {"mpx_barrier_parties", [](void *h) { uint32_t v = 0; return mpx_barrier_parties(as<mpx_barrier>(h), &v); }},
      {"mpx_barrier_n_waiting", [](void *h) { uint32_t v = 0; return mpx_barrier_n_waiting(as<mpx_barrier>(h), &v); }},
      {"mpx_barrier_broken", [](void *h) { int v = 0; return mpx_barrier_broken(as<mpx_barrier>(h), &v); }},
      {"mpx_barrier_token", [](void *h) { char b[MPX_TOKEN_MAX]; size_t n = sizeof b; return mpx_barrier_token(as<mpx_barrier>(h), b, &n); }},
  };
}

std::vector<Op> array_ops() {
  return {
      {"mpx_array_length", [](void *h) { size_t v = 0; return mpx_array_length(as<mpx_array>(h), &v); }},
      {"mpx_array_typecode", [](void *h) { char v = 0; return mpx_array_typecode(as<mpx_array>(h), &v); }},
      {"mpx_array_item_size", [](void *h) { size_t v = 0; return mpx_array_item_size(as<mpx_array>(h), &v); }},
      {"mpx_array_address", [](void *h) { void *v = nullptr; return mpx_array_address(as<mpx_array>(h), &v); }},
      {"mpx_array_get", [](void *h) { int v = 0; return mpx_array_get(as<mpx_array>(h), 0, &v, sizeof v); }},
      {"mpx_array_set", [](void *h) { int v = 7; return mpx_array_set(as<mpx_array>(h), 0, &v, sizeof v); }},
      {"mpx_array_read", [](void *h) { int v = 0; return mpx_array_read(as<mpx_array>(h), 0, 1, &v, sizeof v); }},
      {"mpx_array_write", [](void *h) { int v = 7; return mpx_array_write(as<mpx_array>(h), 0, 1, &v, sizeof v); }},
      {"mpx_array_lock", [](void *h) { mpx_lock *l = nullptr; int rc = mpx_array_lock(as<mpx_array>(h), &l); mpx_lock_destroy(l); return rc; }},
      {"mpx_array_token", [](void *h) { char b[MPX_TOKEN_MAX]; size_t n = sizeof b; return mpx_array_token(as<mpx_array>(h), b, &n); }},
  };
}

std::vector<Op> process_ops() {
  return {
      {"mpx_process_start", [](void *h) { return mpx_process_start(as<mpx_process>(h)); }},
      {"mpx_process_join", [](void *h) { return mpx_process_join(as<mpx_process>(h), 0); }},
      {"mpx_process_is_alive", [](void *h) { int v = 0; return mpx_process_is_alive(as<mpx_process>(h), &v); }},
      {"mpx_process_exitcode", [](void *h) { int v = 0; return mpx_process_exitcode(as<mpx_process>(h), &v); }},
      {"mpx_process_signal", [](void *h) { return mpx_process_signal(as<mpx_process>(h), SIGCONT); }},
      {"mpx_process_terminate", [](void *h) { return mpx_process_terminate(as<mpx_process>(h)); }},
      {"mpx_process_kill", [](void *h) { return mpx_process_kill(as<mpx_process>(h)); }},
      {"mpx_process_interrupt", [](void *h) { return mpx_process_interrupt(as<mpx_process>(h)); }},
      {"mpx_process_pid", [](void *h) { int64_t v = 0; return mpx_process_pid(as<mpx_process>(h), &v); }},
      {"mpx_process_name", [](void *h) { char b[MPX_TOKEN_MAX]; size_t n = sizeof b; return mpx_process_name(as<mpx_process>(h), b, &n); }},
      {"mpx_process_set_name", [](void *h) { return mpx_process_set_name(as<mpx_process>(h), "renamed"); }},
      {"mpx_process_daemon", [](void *h) { int v = 0; return mpx_process_daemon(as<mpx_process>(h), &v); }},
      {"mpx_process_set_daemon", [](void *h) { return mpx_process_set_daemon(as<mpx_process>(h), 0); }},
      {"mpx_process_sentinel", [](void *h) { int v = 0; return mpx_process_sentinel(as<mpx_process>(h), &v); }},
      {"mpx_process_stdio", [](void *h) { int v = 0; return mpx_process_stdio(as<mpx_process>(h), 1, &v); }},
      {"mpx_process_close_stdio", [](void *h) { return mpx_process_close_stdio(as<mpx_process>(h), 1); }},
      {"mpx_process_close", [](void *h) { return mpx_process_close(as<mpx_process>(h)); }},
  };
}

void noop_target(void *) {}

// A process object, not started (a fork of noop_target).
mpx_process *make_process() {
  mpx_process_options o;
  mpx_process_options_init(&o, sizeof o);
  o.method = MPX_START_FORK;
  o.fn = noop_target;
  mpx_process *p = nullptr;
  int rc = mpx_process_create(&p, &o);
  EXPECT_EQ(rc, MPX_OK) << mpxt::code_str(rc) << ": " << mpx_last_error_message();
  return p;
}

// A started process (spawn of /bin/true with its stdout a pipe), for calls that need one; the
// caller joins and destroys it.
mpx_process *start_true() {
  mpx_process_options o;
  mpx_process_options_init(&o, sizeof o);
  o.method = MPX_START_SPAWN;
  o.file = "/bin/true";
  o.stdio[1].mode = MPX_STDIO_PIPE;
  mpx_process *p = nullptr;
  if (mpx_process_create(&p, &o) != MPX_OK) return nullptr;
  if (mpx_process_start(p) != MPX_OK) {
    mpx_process_destroy(p);
    return nullptr;
  }
  return p;
}

int with_started(const std::function<int(mpx_process *)> &fn) {
  mpx_process *p = start_true();
  if (p == nullptr) return INT_MIN + 1;
  int rc = fn(p);
  mpx_process_join(p, 5000);
  mpx_process_destroy(p);
  return rc;
}

// ---- connections and queues -----------------------------------------------------------------

using ConnPtr = std::unique_ptr<mpx_conn, mpxt::Destroyer<mpx_conn, mpx_conn_destroy>>;
using QueuePtr = std::unique_ptr<mpx_queue, mpxt::Destroyer<mpx_queue, mpx_queue_destroy>>;

// One end of a duplex pair whose other end is closed (the calls made on it here never get
// as far as reading).
mpx_conn *make_conn() {
  mpx_conn *a = nullptr, *b = nullptr;
  int rc = mpx_pipe(1, nullptr, &a, &b);
  EXPECT_EQ(rc, MPX_OK) << mpxt::code_str(rc) << ": " << mpx_last_error_message();
  mpx_conn_destroy(b);
  return a;
}

using ListenerPtr = std::unique_ptr<mpx_listener, mpxt::Destroyer<mpx_listener, mpx_listener_destroy>>;

// A listener on an ephemeral loopback port (nobody connects to it).
mpx_listener *make_listener() {
  mpx_listener *l = nullptr;
  int rc = mpx_listener_create(&l, "127.0.0.1:0", nullptr);
  EXPECT_EQ(rc, MPX_OK) << mpxt::code_str(rc) << ": " << mpx_last_error_message();
  return l;
}

// libuv opens a process-wide signal pipe with its first loop: open it before the leak checks.
void listener_warmup() { ListenerPtr l(make_listener()); }
const bool kListenerWarmupRegistered = mpxt::register_warmup(&listener_warmup);

std::vector<Op> listener_ops() {
  return {
      {"mpx_listener_accept", [](void *h) { mpx_conn *c = nullptr; return mpx_listener_accept(as<mpx_listener>(h), 0, &c); }},
      {"mpx_listener_address", [](void *h) { char b[64]; size_t n = sizeof b; return mpx_listener_address(as<mpx_listener>(h), b, &n); }},
      {"mpx_listener_last_accepted", [](void *h) { char b[64]; size_t n = sizeof b; return mpx_listener_last_accepted(as<mpx_listener>(h), b, &n); }},
      {"mpx_listener_close", [](void *h) { return mpx_listener_close(as<mpx_listener>(h)); }},
  };
}

mpx_queue *make_queue(uint32_t flags = 0) {
  mpx_queue_options o;
  mpx_queue_options_init(&o, sizeof o);
  o.flags = flags;
  mpx_queue *q = nullptr;
  int rc = mpx_queue_create(&q, &o);
  EXPECT_EQ(rc, MPX_OK) << mpxt::code_str(rc) << ": " << mpx_last_error_message();
  return q;
}

std::vector<Op> conn_ops() {
  return {
      {"mpx_conn_detach", [](void *h) { int fd = -1; return mpx_conn_detach(as<mpx_conn>(h), &fd); }},
      {"mpx_conn_fileno", [](void *h) { int fd = -1; return mpx_conn_fileno(as<mpx_conn>(h), &fd); }},
      {"mpx_conn_flags", [](void *h) { uint32_t f = 0; return mpx_conn_flags(as<mpx_conn>(h), &f); }},
      {"mpx_conn_max_message", [](void *h) { uint64_t n = 0; return mpx_conn_max_message(as<mpx_conn>(h), &n); }},
      {"mpx_conn_send", [](void *h) { return mpx_conn_send(as<mpx_conn>(h), "x", 1); }},
      {"mpx_conn_recv", [](void *h) { void *d = nullptr; size_t n = 0; return mpx_conn_recv(as<mpx_conn>(h), 0, &d, &n, 0); }},
      {"mpx_conn_recv_into", [](void *h) { char b[8]; size_t n = 0; return mpx_conn_recv_into(as<mpx_conn>(h), b, sizeof b, &n, 0); }},
      {"mpx_conn_poll", [](void *h) { return mpx_conn_poll(as<mpx_conn>(h), 0); }},
      {"mpx_conn_send_fds", [](void *h) { int fd = 0; return mpx_conn_send_fds(as<mpx_conn>(h), &fd, 1); }},
      {"mpx_conn_recv_fds", [](void *h) { int fds[4]; size_t n = 4; return mpx_conn_recv_fds(as<mpx_conn>(h), fds, &n, 0); }},
      {"mpx_conn_send_conn", [](void *h) { ConnPtr other(make_conn()); return mpx_conn_send_conn(as<mpx_conn>(h), other.get()); }},
      {"mpx_conn_recv_conn", [](void *h) { mpx_conn *c = nullptr; return mpx_conn_recv_conn(as<mpx_conn>(h), &c, 0); }},
      {"mpx_conn_send_segment", [](void *h) { auto s = mpxt::make_segment(4096); return mpx_conn_send_segment(as<mpx_conn>(h), s.get()); }},
      {"mpx_conn_recv_segment", [](void *h) { mpx_segment *s = nullptr; return mpx_conn_recv_segment(as<mpx_conn>(h), &s, 0); }},
      {"mpx_conn_deliver_challenge", [](void *h) { return mpx_conn_deliver_challenge(as<mpx_conn>(h), "k", 1, 0, 0); }},
      {"mpx_conn_answer_challenge", [](void *h) { return mpx_conn_answer_challenge(as<mpx_conn>(h), "k", 1, 0, 0); }},
      {"mpx_wait", [](void *h) { mpx_wait_object o{MPX_WAIT_CONN, -1, h, 0}; return mpx_wait(&o, 1, 0, nullptr); }},
  };
}

std::vector<Op> queue_ops() {
  return {
      {"mpx_queue_token", [](void *h) { char b[MPX_TOKEN_MAX]; size_t n = sizeof b; return mpx_queue_token(as<mpx_queue>(h), b, &n); }},
      {"mpx_queue_put", [](void *h) { return mpx_queue_put(as<mpx_queue>(h), "x", 1, 0); }},
      {"mpx_queue_get", [](void *h) { void *d = nullptr; size_t n = 0; return mpx_queue_get(as<mpx_queue>(h), &d, &n, 0); }},
      {"mpx_queue_get_into", [](void *h) { char b[8]; size_t n = 0; return mpx_queue_get_into(as<mpx_queue>(h), b, sizeof b, &n, 0); }},
      {"mpx_queue_qsize", [](void *h) { size_t n = 0; return mpx_queue_qsize(as<mpx_queue>(h), &n); }},
      {"mpx_queue_empty", [](void *h) { int v = 0; return mpx_queue_empty(as<mpx_queue>(h), &v); }},
      {"mpx_queue_full", [](void *h) { int v = 0; return mpx_queue_full(as<mpx_queue>(h), &v); }},
      {"mpx_queue_maxsize", [](void *h) { uint64_t v = 0; return mpx_queue_maxsize(as<mpx_queue>(h), &v); }},
      {"mpx_queue_capacity", [](void *h) { uint64_t v = 0; return mpx_queue_capacity(as<mpx_queue>(h), &v); }},
      {"mpx_queue_close", [](void *h) { return mpx_queue_close(as<mpx_queue>(h)); }},
      {"mpx_queue_closed", [](void *h) { int v = 0; return mpx_queue_closed(as<mpx_queue>(h), &v); }},
      {"mpx_queue_task_done", [](void *h) { return mpx_queue_task_done(as<mpx_queue>(h)); }},
      {"mpx_queue_join", [](void *h) { return mpx_queue_join(as<mpx_queue>(h), 0); }},
      {"mpx_queue_unfinished", [](void *h) { uint64_t v = 0; return mpx_queue_unfinished(as<mpx_queue>(h), &v); }},
  };
}

mpx_pool *make_external_pool() {
  mpx_pool_options o;
  mpx_pool_options_init(&o, sizeof o);
  o.workers = 1;
  o.flags = MPX_POOL_EXTERNAL;
  mpx_pool *p = nullptr;
  mpx_pool_create(&p, &o);
  return p;
}

mpx_job *make_job() {
  mpx_pool *p = make_external_pool();
  mpx_task t;
  mpx_task_init(&t, sizeof t);
  t.name = "nothing";
  mpx_job *j = nullptr;
  mpx_pool_apply_async(p, &t, &j);
  mpx_pool_destroy(p);  // the job stays, its item cancelled
  return j;
}

mpx_worker *make_worker() {
  mpx_pool *p = make_external_pool();
  char token[MPX_TOKEN_MAX];
  size_t n = sizeof token;
  mpx_worker *w = nullptr;
  if (mpx_pool_token(p, token, &n) == MPX_OK) mpx_worker_attach(token, &w);
  mpx_pool_destroy(p);  // the worker's handle stays valid (it sees the pool terminated)
  return w;
}

std::vector<Op> pool_ops() {
  return {
      {"mpx_pool_close", [](void *h) { return mpx_pool_close(as<mpx_pool>(h)); }},
      {"mpx_pool_terminate", [](void *h) { return mpx_pool_terminate(as<mpx_pool>(h)); }},
      {"mpx_pool_join", [](void *h) { return mpx_pool_join(as<mpx_pool>(h), 0); }},
      {"mpx_pool_size", [](void *h) { size_t n = 0; return mpx_pool_size(as<mpx_pool>(h), &n); }},
      {"mpx_pool_worker_pids", [](void *h) { int64_t p[4]; size_t n = 4; return mpx_pool_worker_pids(as<mpx_pool>(h), p, &n); }},
      {"mpx_pool_stats_get", [](void *h) { mpx_pool_stats st; st.size = sizeof st; return mpx_pool_stats_get(as<mpx_pool>(h), &st); }},
      {"mpx_pool_token", [](void *h) { char b[MPX_TOKEN_MAX]; size_t n = sizeof b; return mpx_pool_token(as<mpx_pool>(h), b, &n); }},
      {"mpx_pool_apply_async", [](void *h) { mpx_task t; mpx_task_init(&t, sizeof t); t.name = "x"; mpx_job *j = nullptr; int rc = mpx_pool_apply_async(as<mpx_pool>(h), &t, &j); if (j) mpx_job_destroy(j); return rc; }},
      {"mpx_pool_apply", [](void *h) { mpx_task t; mpx_task_init(&t, sizeof t); t.name = "x"; t.timeout_ms = 1; void *r = nullptr; size_t n = 0; int rc = mpx_pool_apply(as<mpx_pool>(h), &t, &r, &n); mpx_free(r); return rc; }},
      {"mpx_pool_map", [](void *h) { mpx_map m; mpx_map_init(&m, sizeof m); m.name = "x"; mpx_job *j = nullptr; int rc = mpx_pool_map(as<mpx_pool>(h), &m, &j); if (j) mpx_job_destroy(j); return rc; }},
      {"mpx_pool_submit", [](void *h) { return mpx_pool_submit(as<mpx_pool>(h), "x", nullptr, 0, 0, 0); }},
      {"mpx_pool_collect", [](void *h) { char b[64]; size_t u = 0, c = 0; return mpx_pool_collect(as<mpx_pool>(h), b, sizeof b, &u, &c, 0); }},
      {"mpx_pool_add_worker", [](void *h) { return mpx_pool_add_worker(as<mpx_pool>(h), 1); }},
      {"mpx_pool_worker_exited", [](void *h) { return mpx_pool_worker_exited(as<mpx_pool>(h), 1, 0); }},
      {"mpx_pool_wanted", [](void *h) { size_t n = 0; return mpx_pool_wanted(as<mpx_pool>(h), &n); }},
  };
}

std::vector<Op> job_ops() {
  return {
      {"mpx_job_wait", [](void *h) { return mpx_job_wait(as<mpx_job>(h), 0); }},
      {"mpx_job_ready", [](void *h) { int v = 0; return mpx_job_ready(as<mpx_job>(h), &v); }},
      {"mpx_job_successful", [](void *h) { int v = 0; return mpx_job_successful(as<mpx_job>(h), &v); }},
      {"mpx_job_count", [](void *h) { size_t n = 0; return mpx_job_count(as<mpx_job>(h), &n); }},
      {"mpx_job_result", [](void *h) { const void *d = nullptr; size_t n = 0; return mpx_job_result(as<mpx_job>(h), 0, &d, &n); }},
      {"mpx_job_error", [](void *h) { int c = 0, t = 0; size_t n = 0; return mpx_job_error(as<mpx_job>(h), 0, &c, &t, nullptr, &n); }},
      {"mpx_job_next", [](void *h) { size_t i = 0; return mpx_job_next(as<mpx_job>(h), 0, &i); }},
      {"mpx_job_progress", [](void *h) { mpx_progress p; p.size = sizeof p; return mpx_job_progress(as<mpx_job>(h), &p); }},
      {"mpx_job_cancel", [](void *h) { size_t n = 0; return mpx_job_cancel(as<mpx_job>(h), &n); }},
  };
}

std::vector<Op> worker_ops() {
  return {
      {"mpx_worker_next", [](void *h) { mpx_worker_task t; t.size = sizeof t; return mpx_worker_next(as<mpx_worker>(h), 0, &t); }},
      {"mpx_worker_reply", [](void *h) { return mpx_worker_reply(as<mpx_worker>(h), 0, "x", 1, nullptr); }},
  };
}

// ---- managers ---------------------------------------------------------------------------------

// One manager server (a forked child) and one client for the whole binary, started before the
// first test (so the leak check counts neither): proxies are made through that client. Calls in
// forked children connect clients of their own (with_mclient).
const char kManagerKey[] = "capi_null manager key";

struct GlobalManager {
  mpx_manager *m = nullptr;
  mpx_mclient *c = nullptr;
  std::string address;
};

GlobalManager &global_manager() {
  static GlobalManager g;
  return g;
}

mpx_manager_options manager_options(uint32_t flags) {
  mpx_manager_options o;
  mpx_manager_options_init(&o, sizeof o);
  o.flags = flags;
#if defined(__SANITIZE_THREAD__)
  // ThreadSanitizer: a fork-started server of a threaded process dies (die_after_fork).
  o.method = (flags & MPX_MANAGER_IN_PROCESS) ? 0u : uint32_t(MPX_START_FORKSERVER);
#else
  o.method = (flags & MPX_MANAGER_IN_PROCESS) ? 0u : uint32_t(MPX_START_FORK);
#endif
  o.authkey = kManagerKey;
  o.authkey_len = sizeof kManagerKey - 1;
  return o;
}

mpx_mclient *connect_mclient(const std::string &address) {
  mpx_mclient_options o;
  mpx_mclient_options_init(&o, sizeof o);
  o.authkey = kManagerKey;
  o.authkey_len = sizeof kManagerKey - 1;
  mpx_mclient *c = nullptr;
  int rc = mpx_manager_connect(&c, address.c_str(), &o);
  EXPECT_EQ(rc, MPX_OK) << mpxt::code_str(rc) << ": " << mpx_last_error_message();
  return c;
}

void manager_warmup() {
  auto &g = global_manager();
  const auto o = manager_options(0);
  if (mpx_manager_start(&g.m, &o) != MPX_OK) return;
  char buf[512];
  size_t n = sizeof buf;
  if (mpx_manager_address(g.m, buf, &n) != MPX_OK) return;
  g.address.assign(buf, n);
  g.c = connect_mclient(g.address);
  // And one in-process server started and stopped: its lazy one-time state.
  mpx_manager *m = nullptr;
  const auto ip = manager_options(MPX_MANAGER_IN_PROCESS);
  if (mpx_manager_start(&m, &ip) == MPX_OK) mpx_manager_destroy(m);
}
const bool kManagerWarmupRegistered = mpxt::register_warmup(&manager_warmup);

// An in-process manager (nobody connects to it).
mpx_manager *make_manager() {
  mpx_manager *m = nullptr;
  const auto o = manager_options(MPX_MANAGER_IN_PROCESS);
  int rc = mpx_manager_start(&m, &o);
  EXPECT_EQ(rc, MPX_OK) << mpxt::code_str(rc) << ": " << mpx_last_error_message();
  return m;
}

mpx_mclient *make_mclient() { return connect_mclient(global_manager().address); }

// A proxy of the global client: a dict, or the type asked for.
mpx_proxy *make_proxy(int type = MPX_MOBJ_DICT) {
  mpx_mobj_options o;
  mpx_mobj_options_init(&o, sizeof o);
  o.parties = 2;
  o.length = 4;
  mpx_proxy *p = nullptr;
  int rc = mpx_proxy_create(global_manager().c, type, &o, &p);
  EXPECT_EQ(rc, MPX_OK) << mpxt::code_str(rc) << ": " << mpx_last_error_message();
  return p;
}

using MClientPtr = std::unique_ptr<mpx_mclient, mpxt::Destroyer<mpx_mclient, mpx_mclient_destroy>>;
using ProxyPtr = std::unique_ptr<mpx_proxy, mpxt::Destroyer<mpx_proxy, mpx_proxy_destroy>>;

// In a forked child: a client of its own, and a proxy of `type` through it.
int with_mclient(const std::function<int(mpx_mclient *)> &fn) {
  MClientPtr c(make_mclient());
  if (!c) return INT_MIN + 1;
  return fn(c.get());
}

int with_proxy(int type, const std::function<int(mpx_proxy *)> &fn) {
  return with_mclient([&](mpx_mclient *c) {
    mpx_mobj_options o;
    mpx_mobj_options_init(&o, sizeof o);
    o.parties = 2;
    o.length = 4;
    mpx_proxy *p = nullptr;
    if (mpx_proxy_create(c, type, &o, &p) != MPX_OK) return INT_MIN + 2;
    ProxyPtr pp(p);
    return fn(p);
  });
}

std::vector<Op> manager_ops() {
  return {
      {"mpx_manager_address", [](void *h) { char b[256]; size_t n = sizeof b; return mpx_manager_address(as<mpx_manager>(h), b, &n); }},
      {"mpx_manager_pid", [](void *h) { int64_t v = 0; return mpx_manager_pid(as<mpx_manager>(h), &v); }},
      {"mpx_manager_wait", [](void *h) { return mpx_manager_wait(as<mpx_manager>(h), 0); }},
      {"mpx_manager_shutdown", [](void *h) { return mpx_manager_shutdown(as<mpx_manager>(h), 0); }},
  };
}

std::vector<Op> mclient_ops() {
  return {
      {"mpx_mclient_shm", [](void *h) { int v = 0; return mpx_mclient_shm(as<mpx_mclient>(h), &v); }},
      {"mpx_mclient_shutdown", [](void *h) { return mpx_mclient_shutdown(as<mpx_mclient>(h)); }},
      {"mpx_proxy_create", [](void *h) { mpx_proxy *p = nullptr; int rc = mpx_proxy_create(as<mpx_mclient>(h), MPX_MOBJ_DICT, nullptr, &p); if (p) mpx_proxy_destroy(p); return rc; }},
      {"mpx_proxy_open", [](void *h) { mpx_proxy *p = nullptr; int rc = mpx_proxy_open(as<mpx_mclient>(h), "x", &p); if (p) mpx_proxy_destroy(p); return rc; }},
  };
}

std::vector<Op> proxy_ops() {
  return {
      {"mpx_proxy_token", [](void *h) { char b[MPX_TOKEN_MAX]; size_t n = sizeof b; return mpx_proxy_token(as<mpx_proxy>(h), b, &n); }},
      {"mpx_proxy_type", [](void *h) { int v = 0; return mpx_proxy_type(as<mpx_proxy>(h), &v); }},
      {"mpx_mdict_set", [](void *h) { return mpx_mdict_set(as<mpx_proxy>(h), "k", "v", 1); }},
      {"mpx_mdict_add", [](void *h) { return mpx_mdict_add(as<mpx_proxy>(h), "k", "v", 1); }},
      {"mpx_mdict_get", [](void *h) { void *d = nullptr; size_t n = 0; int rc = mpx_mdict_get(as<mpx_proxy>(h), "k", &d, &n); mpx_free(d); return rc; }},
      {"mpx_mdict_pop", [](void *h) { return mpx_mdict_pop(as<mpx_proxy>(h), "k", nullptr, nullptr); }},
      {"mpx_mdict_len", [](void *h) { size_t n = 0; return mpx_mdict_len(as<mpx_proxy>(h), &n); }},
      {"mpx_mdict_keys", [](void *h) { char *k = nullptr; size_t n = 0, c = 0; int rc = mpx_mdict_keys(as<mpx_proxy>(h), &k, &n, &c); mpx_free(k); return rc; }},
      {"mpx_mdict_clear", [](void *h) { return mpx_mdict_clear(as<mpx_proxy>(h)); }},
      {"mpx_mlist_append", [](void *h) { return mpx_mlist_append(as<mpx_proxy>(h), "v", 1); }},
      {"mpx_mlist_insert", [](void *h) { return mpx_mlist_insert(as<mpx_proxy>(h), 0, "v", 1); }},
      {"mpx_mlist_get", [](void *h) { void *d = nullptr; size_t n = 0; int rc = mpx_mlist_get(as<mpx_proxy>(h), 0, &d, &n); mpx_free(d); return rc; }},
      {"mpx_mlist_set", [](void *h) { return mpx_mlist_set(as<mpx_proxy>(h), 0, "v", 1); }},
      {"mpx_mlist_pop", [](void *h) { return mpx_mlist_pop(as<mpx_proxy>(h), -1, nullptr, nullptr); }},
      {"mpx_mlist_len", [](void *h) { size_t n = 0; return mpx_mlist_len(as<mpx_proxy>(h), &n); }},
      {"mpx_mlist_reverse", [](void *h) { return mpx_mlist_reverse(as<mpx_proxy>(h)); }},
      {"mpx_mlist_sort", [](void *h) { return mpx_mlist_sort(as<mpx_proxy>(h)); }},
      {"mpx_mlist_clear", [](void *h) { return mpx_mlist_clear(as<mpx_proxy>(h)); }},
      {"mpx_mqueue_put", [](void *h) { return mpx_mqueue_put(as<mpx_proxy>(h), "x", 1, 0); }},
      {"mpx_mqueue_get", [](void *h) { void *d = nullptr; size_t n = 0; int rc = mpx_mqueue_get(as<mpx_proxy>(h), &d, &n, 0); mpx_free(d); return rc; }},
      {"mpx_mqueue_qsize", [](void *h) { size_t n = 0; return mpx_mqueue_qsize(as<mpx_proxy>(h), &n); }},
      {"mpx_mqueue_task_done", [](void *h) { return mpx_mqueue_task_done(as<mpx_proxy>(h)); }},
      {"mpx_mqueue_join", [](void *h) { return mpx_mqueue_join(as<mpx_proxy>(h), 0); }},
      {"mpx_mlock_acquire", [](void *h) { return mpx_mlock_acquire(as<mpx_proxy>(h), 0); }},
      {"mpx_mlock_release", [](void *h) { return mpx_mlock_release(as<mpx_proxy>(h)); }},
      {"mpx_msem_value", [](void *h) { int64_t v = 0; return mpx_msem_value(as<mpx_proxy>(h), &v); }},
      {"mpx_mcond_wait", [](void *h) { return mpx_mcond_wait(as<mpx_proxy>(h), 0); }},
      {"mpx_mcond_notify", [](void *h) { return mpx_mcond_notify(as<mpx_proxy>(h), 1); }},
      {"mpx_mcond_notify_all", [](void *h) { return mpx_mcond_notify_all(as<mpx_proxy>(h)); }},
      {"mpx_mevent_set", [](void *h) { return mpx_mevent_set(as<mpx_proxy>(h)); }},
      {"mpx_mevent_clear", [](void *h) { return mpx_mevent_clear(as<mpx_proxy>(h)); }},
      {"mpx_mevent_is_set", [](void *h) { int v = 0; return mpx_mevent_is_set(as<mpx_proxy>(h), &v); }},
      {"mpx_mevent_wait", [](void *h) { return mpx_mevent_wait(as<mpx_proxy>(h), 0); }},
      {"mpx_mbarrier_wait", [](void *h) { int64_t i = 0; return mpx_mbarrier_wait(as<mpx_proxy>(h), 0, &i); }},
      {"mpx_mbarrier_abort", [](void *h) { return mpx_mbarrier_abort(as<mpx_proxy>(h)); }},
      {"mpx_mbarrier_reset", [](void *h) { return mpx_mbarrier_reset(as<mpx_proxy>(h)); }},
      {"mpx_mvalue_get", [](void *h) { int32_t v = 0; return mpx_mvalue_get(as<mpx_proxy>(h), &v, sizeof v); }},
      {"mpx_mvalue_set", [](void *h) { int32_t v = 7; return mpx_mvalue_set(as<mpx_proxy>(h), &v, sizeof v); }},
      {"mpx_mvalue_add", [](void *h) { int32_t d = 1, r = 0; return mpx_mvalue_add(as<mpx_proxy>(h), &d, &r, sizeof d); }},
      {"mpx_marray_len", [](void *h) { size_t n = 0, s = 0; return mpx_marray_len(as<mpx_proxy>(h), &n, &s); }},
      {"mpx_marray_get", [](void *h) { int8_t v[1] = {0}; return mpx_marray_get(as<mpx_proxy>(h), 0, 1, v); }},
      {"mpx_marray_set", [](void *h) { int8_t v[1] = {7}; return mpx_marray_set(as<mpx_proxy>(h), 0, 1, v); }},
  };
}

// One handle type: its operations, how to destroy one, and how to make a valid one.
struct Kind {
  const char *name;
  std::vector<Op> ops;
  Op destroy;
  std::function<void *()> make;
};

std::vector<Kind> kinds() {
  return {
      {"segment", segment_ops(), {"mpx_segment_destroy", [](void *h) { return mpx_segment_destroy(as<mpx_segment>(h)); }},
       [] { return static_cast<void *>(mpxt::make_segment(4096).release()); }},
      {"lock", lock_ops(), {"mpx_lock_destroy", [](void *h) { return mpx_lock_destroy(as<mpx_lock>(h)); }},
       [] { return static_cast<void *>(mpxt::make_lock(false).release()); }},
      {"rlock", lock_ops(), {"mpx_lock_destroy", [](void *h) { return mpx_lock_destroy(as<mpx_lock>(h)); }},
       [] { return static_cast<void *>(mpxt::make_lock(true).release()); }},
      {"semaphore", semaphore_ops(), {"mpx_semaphore_destroy", [](void *h) { return mpx_semaphore_destroy(as<mpx_semaphore>(h)); }},
       [] { return static_cast<void *>(mpxt::make_semaphore(1).release()); }},
      {"event", event_ops(), {"mpx_event_destroy", [](void *h) { return mpx_event_destroy(as<mpx_event>(h)); }},
       [] { return static_cast<void *>(mpxt::make_event().release()); }},
      {"condition", condition_ops(), {"mpx_condition_destroy", [](void *h) { return mpx_condition_destroy(as<mpx_condition>(h)); }},
       [] { return static_cast<void *>(mpxt::make_condition().release()); }},
      {"barrier", barrier_ops(), {"mpx_barrier_destroy", [](void *h) { return mpx_barrier_destroy(as<mpx_barrier>(h)); }},
       [] { return static_cast<void *>(mpxt::make_barrier(2).release()); }},
      {"array", array_ops(), {"mpx_array_destroy", [](void *h) { return mpx_array_destroy(as<mpx_array>(h)); }},
       [] { return static_cast<void *>(mpxt::make_array('i', 4).release()); }},
      {"process", process_ops(), {"mpx_process_destroy", [](void *h) { return mpx_process_destroy(as<mpx_process>(h)); }},
       [] { return static_cast<void *>(make_process()); }},
      {"connection", conn_ops(), {"mpx_conn_destroy", [](void *h) { return mpx_conn_destroy(as<mpx_conn>(h)); }},
       [] { return static_cast<void *>(make_conn()); }},
      {"listener", listener_ops(), {"mpx_listener_destroy", [](void *h) { return mpx_listener_destroy(as<mpx_listener>(h)); }},
       [] { return static_cast<void *>(make_listener()); }},
      {"queue", queue_ops(), {"mpx_queue_destroy", [](void *h) { return mpx_queue_destroy(as<mpx_queue>(h)); }},
       [] { return static_cast<void *>(make_queue(MPX_QUEUE_JOINABLE)); }},
      {"pool", pool_ops(), {"mpx_pool_destroy", [](void *h) { return mpx_pool_destroy(as<mpx_pool>(h)); }},
       [] { return static_cast<void *>(make_external_pool()); }},
      {"job", job_ops(), {"mpx_job_destroy", [](void *h) { return mpx_job_destroy(as<mpx_job>(h)); }},
       [] { return static_cast<void *>(make_job()); }},
      {"worker", worker_ops(), {"mpx_worker_detach", [](void *h) { return mpx_worker_detach(as<mpx_worker>(h)); }},
       [] { return static_cast<void *>(make_worker()); }},
      {"manager", manager_ops(), {"mpx_manager_destroy", [](void *h) { return mpx_manager_destroy(as<mpx_manager>(h)); }},
       [] { return static_cast<void *>(make_manager()); }},
      {"mclient", mclient_ops(), {"mpx_mclient_destroy", [](void *h) { return mpx_mclient_destroy(as<mpx_mclient>(h)); }},
       [] { return static_cast<void *>(make_mclient()); }},
      {"proxy", proxy_ops(), {"mpx_proxy_destroy", [](void *h) { return mpx_proxy_destroy(as<mpx_proxy>(h)); }},
       [] { return static_cast<void *>(make_proxy()); }},
  };
}

// Calls with a NULL out-pointer, a NULL input string, or a NULL buffer with len > 0. Each gets a
// freshly made valid handle of its kind where it needs one. All must return MPX_EINVAL.
struct NullCall {
  const char *fn;
  const char *what;
  std::function<int()> call;
};

std::vector<NullCall> null_out_calls() {
  static char token_buf[MPX_TOKEN_MAX];
  std::vector<NullCall> v;
  auto add = [&](const char *fn, const char *what, std::function<int()> c) { v.push_back({fn, what, std::move(c)}); };
  // common / options
  add("mpx_segment_options_init", "NULL opts", [] { return mpx_segment_options_init(nullptr, sizeof(mpx_segment_options)); });
  add("mpx_lock_options_init", "NULL opts", [] { return mpx_lock_options_init(nullptr, sizeof(mpx_lock_options)); });
  add("mpx_semaphore_options_init", "NULL opts", [] { return mpx_semaphore_options_init(nullptr, sizeof(mpx_semaphore_options)); });
  add("mpx_array_options_init", "NULL opts", [] { return mpx_array_options_init(nullptr, sizeof(mpx_array_options)); });
  add("mpx_typecode_size", "NULL out", [] { return mpx_typecode_size('i', nullptr); });
  // segment
  add("mpx_segment_create", "NULL out", [] { return mpx_segment_create(nullptr, 4096, nullptr); });
  add("mpx_segment_attach", "NULL out", [] { return mpx_segment_attach(nullptr, "mpxt-no-such-segment"); });
  add("mpx_segment_attach", "NULL name", [] { mpx_segment *s = nullptr; return mpx_segment_attach(&s, nullptr); });
  add("mpx_segment_attach_token", "NULL out", [] {
    auto s = mpxt::make_segment(4096);
    auto t = mpxt::token_of(mpx_segment_token, s.get());
    return mpx_segment_attach_token(nullptr, t.c_str());
  });
  add("mpx_segment_attach_token", "NULL token", [] { mpx_segment *s = nullptr; return mpx_segment_attach_token(&s, nullptr); });
  add("mpx_segment_unlink_name", "NULL name", [] { return mpx_segment_unlink_name(nullptr); });
  add("mpx_segment_address", "NULL out", [] { auto s = mpxt::make_segment(4096); return mpx_segment_address(s.get(), nullptr); });
  add("mpx_segment_size", "NULL out", [] { auto s = mpxt::make_segment(4096); return mpx_segment_size(s.get(), nullptr); });
  add("mpx_segment_name", "NULL buf, len>0", [] { auto s = mpxt::make_segment(4096); size_t n = MPX_TOKEN_MAX; return mpx_segment_name(s.get(), nullptr, &n); });
  add("mpx_segment_name", "NULL len", [] { auto s = mpxt::make_segment(4096); return mpx_segment_name(s.get(), token_buf, nullptr); });
  add("mpx_segment_fd", "NULL out", [] { auto s = mpxt::make_segment(4096); return mpx_segment_fd(s.get(), nullptr); });
  add("mpx_segment_token", "NULL buf, len>0", [] { auto s = mpxt::make_segment(4096); size_t n = MPX_TOKEN_MAX; return mpx_segment_token(s.get(), nullptr, &n); });
  add("mpx_segment_token", "NULL len", [] { auto s = mpxt::make_segment(4096); return mpx_segment_token(s.get(), token_buf, nullptr); });
  // lock
  add("mpx_lock_create", "NULL out", [] { return mpx_lock_create(nullptr, nullptr); });
  add("mpx_lock_attach", "NULL out", [] {
    auto l = mpxt::make_lock();
    auto t = mpxt::token_of(mpx_lock_token, l.get());
    return mpx_lock_attach(nullptr, t.c_str());
  });
  add("mpx_lock_attach", "NULL token", [] { mpx_lock *l = nullptr; return mpx_lock_attach(&l, nullptr); });
  add("mpx_lock_locked", "NULL out", [] { auto l = mpxt::make_lock(); return mpx_lock_locked(l.get(), nullptr); });
  add("mpx_lock_is_owned", "NULL out", [] { auto l = mpxt::make_lock(); return mpx_lock_is_owned(l.get(), nullptr); });
  add("mpx_lock_count", "NULL out", [] { auto l = mpxt::make_lock(true); return mpx_lock_count(l.get(), nullptr); });
  add("mpx_lock_is_recursive", "NULL out", [] { auto l = mpxt::make_lock(); return mpx_lock_is_recursive(l.get(), nullptr); });
  add("mpx_lock_token", "NULL buf, len>0", [] { auto l = mpxt::make_lock(); size_t n = MPX_TOKEN_MAX; return mpx_lock_token(l.get(), nullptr, &n); });
  add("mpx_lock_token", "NULL len", [] { auto l = mpxt::make_lock(); return mpx_lock_token(l.get(), token_buf, nullptr); });
  // semaphore
  add("mpx_semaphore_create", "NULL out", [] { return mpx_semaphore_create(nullptr, 1, nullptr); });
  add("mpx_semaphore_attach", "NULL out", [] {
    auto s = mpxt::make_semaphore(1);
    auto t = mpxt::token_of(mpx_semaphore_token, s.get());
    return mpx_semaphore_attach(nullptr, t.c_str());
  });
  add("mpx_semaphore_attach", "NULL token", [] { mpx_semaphore *s = nullptr; return mpx_semaphore_attach(&s, nullptr); });
  add("mpx_semaphore_value", "NULL out", [] { auto s = mpxt::make_semaphore(1); return mpx_semaphore_value(s.get(), nullptr); });
  add("mpx_semaphore_max_value", "NULL out", [] { auto s = mpxt::make_semaphore(1); return mpx_semaphore_max_value(s.get(), nullptr); });
  add("mpx_semaphore_token", "NULL buf, len>0", [] { auto s = mpxt::make_semaphore(1); size_t n = MPX_TOKEN_MAX; return mpx_semaphore_token(s.get(), nullptr, &n); });
  add("mpx_semaphore_token", "NULL len", [] { auto s = mpxt::make_semaphore(1); return mpx_semaphore_token(s.get(), token_buf, nullptr); });
  // event
  add("mpx_event_create", "NULL out", [] { return mpx_event_create(nullptr); });
  add("mpx_event_attach", "NULL out", [] {
    auto e = mpxt::make_event();
    auto t = mpxt::token_of(mpx_event_token, e.get());
    return mpx_event_attach(nullptr, t.c_str());
  });
  add("mpx_event_attach", "NULL token", [] { mpx_event *e = nullptr; return mpx_event_attach(&e, nullptr); });
  add("mpx_event_is_set", "NULL out", [] { auto e = mpxt::make_event(); return mpx_event_is_set(e.get(), nullptr); });
  add("mpx_event_token", "NULL buf, len>0", [] { auto e = mpxt::make_event(); size_t n = MPX_TOKEN_MAX; return mpx_event_token(e.get(), nullptr, &n); });
  add("mpx_event_token", "NULL len", [] { auto e = mpxt::make_event(); return mpx_event_token(e.get(), token_buf, nullptr); });
  // condition
  add("mpx_condition_create", "NULL out", [] { return mpx_condition_create(nullptr, nullptr); });
  add("mpx_condition_attach", "NULL out", [] {
    auto c = mpxt::make_condition();
    auto t = mpxt::token_of(mpx_condition_token, c.get());
    return mpx_condition_attach(nullptr, t.c_str());
  });
  add("mpx_condition_attach", "NULL token", [] { mpx_condition *c = nullptr; return mpx_condition_attach(&c, nullptr); });
  add("mpx_condition_lock", "NULL out", [] { auto c = mpxt::make_condition(); return mpx_condition_lock(c.get(), nullptr); });
  add("mpx_condition_token", "NULL buf, len>0", [] { auto c = mpxt::make_condition(); size_t n = MPX_TOKEN_MAX; return mpx_condition_token(c.get(), nullptr, &n); });
  add("mpx_condition_token", "NULL len", [] { auto c = mpxt::make_condition(); return mpx_condition_token(c.get(), token_buf, nullptr); });
  // barrier
  add("mpx_barrier_create", "NULL out", [] { return mpx_barrier_create(nullptr, 2); });
  add("mpx_barrier_attach", "NULL out", [] {
    auto b = mpxt::make_barrier(2);
    auto t = mpxt::token_of(mpx_barrier_token, b.get());
    return mpx_barrier_attach(nullptr, t.c_str());
  });
  add("mpx_barrier_attach", "NULL token", [] { mpx_barrier *b = nullptr; return mpx_barrier_attach(&b, nullptr); });
  add("mpx_barrier_parties", "NULL out", [] { auto b = mpxt::make_barrier(2); return mpx_barrier_parties(b.get(), nullptr); });
  add("mpx_barrier_n_waiting", "NULL out", [] { auto b = mpxt::make_barrier(2); return mpx_barrier_n_waiting(b.get(), nullptr); });
  add("mpx_barrier_broken", "NULL out", [] { auto b = mpxt::make_barrier(2); return mpx_barrier_broken(b.get(), nullptr); });
  add("mpx_barrier_token", "NULL buf, len>0", [] { auto b = mpxt::make_barrier(2); size_t n = MPX_TOKEN_MAX; return mpx_barrier_token(b.get(), nullptr, &n); });
  add("mpx_barrier_token", "NULL len", [] { auto b = mpxt::make_barrier(2); return mpx_barrier_token(b.get(), token_buf, nullptr); });
  // array
  add("mpx_array_create", "NULL out", [] { return mpx_array_create(nullptr, 'i', 1, nullptr); });
  add("mpx_array_attach", "NULL out", [] {
    auto a = mpxt::make_array('i', 1);
    auto t = mpxt::token_of(mpx_array_token, a.get());
    return mpx_array_attach(nullptr, t.c_str());
  });
  add("mpx_array_attach", "NULL token", [] { mpx_array *a = nullptr; return mpx_array_attach(&a, nullptr); });
  add("mpx_array_length", "NULL out", [] { auto a = mpxt::make_array('i', 1); return mpx_array_length(a.get(), nullptr); });
  add("mpx_array_typecode", "NULL out", [] { auto a = mpxt::make_array('i', 1); return mpx_array_typecode(a.get(), nullptr); });
  add("mpx_array_item_size", "NULL out", [] { auto a = mpxt::make_array('i', 1); return mpx_array_item_size(a.get(), nullptr); });
  add("mpx_array_address", "NULL out", [] { auto a = mpxt::make_array('i', 1); return mpx_array_address(a.get(), nullptr); });
  add("mpx_array_get", "NULL out, size>0", [] { auto a = mpxt::make_array('i', 1); return mpx_array_get(a.get(), 0, nullptr, sizeof(int)); });
  add("mpx_array_set", "NULL in, size>0", [] { auto a = mpxt::make_array('i', 1); return mpx_array_set(a.get(), 0, nullptr, sizeof(int)); });
  add("mpx_array_read", "NULL buf, len>0", [] { auto a = mpxt::make_array('i', 4); return mpx_array_read(a.get(), 0, 1, nullptr, sizeof(int)); });
  add("mpx_array_write", "NULL buf, len>0", [] { auto a = mpxt::make_array('i', 4); return mpx_array_write(a.get(), 0, 1, nullptr, sizeof(int)); });
  add("mpx_array_lock", "NULL out", [] { auto a = mpxt::make_array('i', 1); return mpx_array_lock(a.get(), nullptr); });
  add("mpx_array_token", "NULL buf, len>0", [] { auto a = mpxt::make_array('i', 1); size_t n = MPX_TOKEN_MAX; return mpx_array_token(a.get(), nullptr, &n); });
  add("mpx_array_token", "NULL len", [] { auto a = mpxt::make_array('i', 1); return mpx_array_token(a.get(), token_buf, nullptr); });
  // process
  using ProcPtr = std::unique_ptr<mpx_process, mpxt::Destroyer<mpx_process, mpx_process_destroy>>;
  add("mpx_process_options_init", "NULL opts", [] { return mpx_process_options_init(nullptr, sizeof(mpx_process_options)); });
  add("mpx_process_create", "NULL out", [] {
    mpx_process_options o;
    mpx_process_options_init(&o, sizeof o);
    o.fn = noop_target;
    return mpx_process_create(nullptr, &o);
  });
  add("mpx_process_create", "NULL opts (no target)", [] { mpx_process *p = nullptr; return mpx_process_create(&p, nullptr); });
  add("mpx_process_is_alive", "NULL out", [] { ProcPtr p(make_process()); return mpx_process_is_alive(p.get(), nullptr); });
  add("mpx_process_exitcode", "NULL out", [] { ProcPtr p(make_process()); return mpx_process_exitcode(p.get(), nullptr); });
  add("mpx_process_pid", "NULL out", [] { ProcPtr p(make_process()); return mpx_process_pid(p.get(), nullptr); });
  add("mpx_process_name", "NULL buf, len>0", [] { ProcPtr p(make_process()); size_t n = MPX_TOKEN_MAX; return mpx_process_name(p.get(), nullptr, &n); });
  add("mpx_process_name", "NULL len", [] { ProcPtr p(make_process()); return mpx_process_name(p.get(), token_buf, nullptr); });
  add("mpx_process_set_name", "NULL name", [] { ProcPtr p(make_process()); return mpx_process_set_name(p.get(), nullptr); });
  add("mpx_process_daemon", "NULL out", [] { ProcPtr p(make_process()); return mpx_process_daemon(p.get(), nullptr); });
  add("mpx_process_sentinel", "NULL out, started", [] { return with_started([](mpx_process *p) { return mpx_process_sentinel(p, nullptr); }); });
  add("mpx_process_stdio", "NULL out, a pipe", [] { return with_started([](mpx_process *p) { return mpx_process_stdio(p, 1, nullptr); }); });
  add("mpx_process_adopt", "NULL out", [] {
    pid_t c = fork();
    if (c == 0) _exit(0);
    int rc = mpx_process_adopt(nullptr, c, nullptr);
    waitpid(c, nullptr, 0);
    return rc;
  });
  add("mpx_process_after_fork", "parent_pid -1", [] { return mpx_process_after_fork(nullptr, -1); });
  add("mpx_register", "NULL name", [] { return mpx_register(nullptr, [](const void *, size_t) {}); });
  add("mpx_register", "NULL fn", [] { return mpx_register("mpxt.null-fn", nullptr); });
  add("mpx_forkserver_pid", "NULL out", [] { return mpx_forkserver_pid(nullptr); });
  add("mpx_active_children", "NULL out, count>0", [] { size_t n = 4; return mpx_active_children(nullptr, &n); });
  add("mpx_active_children", "NULL count", [] { mpx_process *out[4]; return mpx_active_children(out, nullptr); });
  add("mpx_cpu_count", "NULL out", [] { return mpx_cpu_count(nullptr); });
  add("mpx_current_name", "NULL buf, len>0", [] { size_t n = MPX_TOKEN_MAX; return mpx_current_name(nullptr, &n); });
  add("mpx_current_name", "NULL len", [] { return mpx_current_name(token_buf, nullptr); });
  add("mpx_set_current_name", "NULL name", [] { return mpx_set_current_name(nullptr); });
  add("mpx_current_daemon", "NULL out", [] { return mpx_current_daemon(nullptr); });
  add("mpx_parent_pid", "NULL out", [] { return mpx_parent_pid(nullptr); });
  add("mpx_handed_fds", "NULL buf, count>0", [] { size_t n = 4; return mpx_handed_fds(nullptr, &n); });
  add("mpx_handed_fds", "NULL count", [] { int fds[4]; return mpx_handed_fds(fds, nullptr); });
  add("mpx_authkey", "NULL buf, len>0", [] { size_t n = MPX_AUTHKEY_SIZE; return mpx_authkey(nullptr, &n); });
  add("mpx_authkey", "NULL len", [] { uint8_t k[MPX_AUTHKEY_SIZE]; return mpx_authkey(k, nullptr); });
  add("mpx_set_authkey", "NULL key, len>0", [] { return mpx_set_authkey(nullptr, 16); });
  // connection
  add("mpx_conn_options_init", "NULL opts", [] { return mpx_conn_options_init(nullptr, sizeof(mpx_conn_options)); });
  // listener
  add("mpx_listener_options_init", "NULL opts", [] { return mpx_listener_options_init(nullptr, sizeof(mpx_listener_options)); });
  add("mpx_client_options_init", "NULL opts", [] { return mpx_client_options_init(nullptr, sizeof(mpx_client_options)); });
  add("mpx_listener_create", "NULL out", [] { return mpx_listener_create(nullptr, "127.0.0.1:0", nullptr); });
  add("mpx_listener_create", "NULL address", [] { mpx_listener *l = nullptr; return mpx_listener_create(&l, nullptr, nullptr); });
  add("mpx_listener_accept", "NULL out", [] { ListenerPtr l(make_listener()); return mpx_listener_accept(l.get(), 0, nullptr); });
  add("mpx_listener_address", "NULL len", [] { ListenerPtr l(make_listener()); char b[8]; return mpx_listener_address(l.get(), b, nullptr); });
  add("mpx_listener_address", "NULL buf, len>0", [] { ListenerPtr l(make_listener()); size_t n = 64; return mpx_listener_address(l.get(), nullptr, &n); });
  add("mpx_listener_last_accepted", "NULL len", [] { ListenerPtr l(make_listener()); char b[8]; return mpx_listener_last_accepted(l.get(), b, nullptr); });
  add("mpx_client_connect", "NULL out", [] { return mpx_client_connect(nullptr, "127.0.0.1:1", nullptr); });
  add("mpx_client_connect", "NULL address", [] { mpx_conn *c = nullptr; return mpx_client_connect(&c, nullptr, nullptr); });
  add("mpx_conn_deliver_challenge", "NULL key", [] { ConnPtr c(make_conn()); return mpx_conn_deliver_challenge(c.get(), nullptr, 1, 0, 0); });
  add("mpx_conn_answer_challenge", "NULL key", [] { ConnPtr c(make_conn()); return mpx_conn_answer_challenge(c.get(), nullptr, 1, 0, 0); });
  add("mpx_pipe", "NULL a", [] { mpx_conn *b = nullptr; return mpx_pipe(1, nullptr, nullptr, &b); });
  add("mpx_pipe", "NULL b", [] { mpx_conn *a = nullptr; return mpx_pipe(0, nullptr, &a, nullptr); });
  add("mpx_conn_from_fd", "NULL out", [] { return mpx_conn_from_fd(dup(0), MPX_CONN_READABLE, nullptr, nullptr); });
  add("mpx_conn_detach", "NULL out", [] { ConnPtr c(make_conn()); return mpx_conn_detach(c.get(), nullptr); });
  add("mpx_conn_fileno", "NULL out", [] { ConnPtr c(make_conn()); return mpx_conn_fileno(c.get(), nullptr); });
  add("mpx_conn_flags", "NULL out", [] { ConnPtr c(make_conn()); return mpx_conn_flags(c.get(), nullptr); });
  add("mpx_conn_max_message", "NULL out", [] { ConnPtr c(make_conn()); return mpx_conn_max_message(c.get(), nullptr); });
  add("mpx_conn_send", "NULL data, len>0", [] { ConnPtr c(make_conn()); return mpx_conn_send(c.get(), nullptr, 4); });
  add("mpx_conn_recv", "NULL data", [] { ConnPtr c(make_conn()); size_t n = 0; return mpx_conn_recv(c.get(), 0, nullptr, &n, 0); });
  add("mpx_conn_recv", "NULL len", [] { ConnPtr c(make_conn()); void *d = nullptr; return mpx_conn_recv(c.get(), 0, &d, nullptr, 0); });
  add("mpx_conn_recv_into", "NULL buf, cap>0", [] { ConnPtr c(make_conn()); size_t n = 0; return mpx_conn_recv_into(c.get(), nullptr, 8, &n, 0); });
  add("mpx_conn_recv_into", "NULL len", [] { ConnPtr c(make_conn()); char b[8]; return mpx_conn_recv_into(c.get(), b, sizeof b, nullptr, 0); });
  add("mpx_conn_send_fds", "NULL fds", [] { ConnPtr c(make_conn()); return mpx_conn_send_fds(c.get(), nullptr, 1); });
  add("mpx_conn_recv_fds", "NULL fds, count>0", [] { ConnPtr c(make_conn()); size_t n = 4; return mpx_conn_recv_fds(c.get(), nullptr, &n, 0); });
  add("mpx_conn_recv_fds", "NULL count", [] { ConnPtr c(make_conn()); int fds[4]; return mpx_conn_recv_fds(c.get(), fds, nullptr, 0); });
  add("mpx_conn_send_conn", "NULL other", [] { ConnPtr c(make_conn()); return mpx_conn_send_conn(c.get(), nullptr); });
  add("mpx_conn_recv_conn", "NULL out", [] { ConnPtr c(make_conn()); return mpx_conn_recv_conn(c.get(), nullptr, 0); });
  add("mpx_conn_send_segment", "NULL segment", [] { ConnPtr c(make_conn()); return mpx_conn_send_segment(c.get(), nullptr); });
  add("mpx_conn_recv_segment", "NULL out", [] { ConnPtr c(make_conn()); return mpx_conn_recv_segment(c.get(), nullptr, 0); });
  add("mpx_wait", "NULL objects, count>0", [] { return mpx_wait(nullptr, 2, 0, nullptr); });
  add("mpx_wait", "NULL handle in an object", [] { mpx_wait_object o{MPX_WAIT_CONN, -1, nullptr, 0}; return mpx_wait(&o, 1, 0, nullptr); });
  // queue
  add("mpx_queue_options_init", "NULL opts", [] { return mpx_queue_options_init(nullptr, sizeof(mpx_queue_options)); });
  add("mpx_queue_create", "NULL out", [] { return mpx_queue_create(nullptr, nullptr); });
  add("mpx_queue_attach", "NULL out", [] {
    QueuePtr q(make_queue());
    auto t = mpxt::token_of(mpx_queue_token, q.get());
    return mpx_queue_attach(nullptr, t.c_str());
  });
  add("mpx_queue_attach", "NULL token", [] { mpx_queue *q = nullptr; return mpx_queue_attach(&q, nullptr); });
  add("mpx_queue_token", "NULL buf, len>0", [] { QueuePtr q(make_queue()); size_t n = MPX_TOKEN_MAX; return mpx_queue_token(q.get(), nullptr, &n); });
  add("mpx_queue_token", "NULL len", [] { QueuePtr q(make_queue()); return mpx_queue_token(q.get(), token_buf, nullptr); });
  add("mpx_queue_put", "NULL data, len>0", [] { QueuePtr q(make_queue()); return mpx_queue_put(q.get(), nullptr, 4, 0); });
  add("mpx_queue_get", "NULL data", [] { QueuePtr q(make_queue()); size_t n = 0; return mpx_queue_get(q.get(), nullptr, &n, 0); });
  add("mpx_queue_get", "NULL len", [] { QueuePtr q(make_queue()); void *d = nullptr; return mpx_queue_get(q.get(), &d, nullptr, 0); });
  add("mpx_queue_get_into", "NULL buf, cap>0", [] { QueuePtr q(make_queue()); size_t n = 0; return mpx_queue_get_into(q.get(), nullptr, 8, &n, 0); });
  add("mpx_queue_get_into", "NULL len", [] { QueuePtr q(make_queue()); char b[8]; return mpx_queue_get_into(q.get(), b, sizeof b, nullptr, 0); });
  add("mpx_queue_qsize", "NULL out", [] { QueuePtr q(make_queue()); return mpx_queue_qsize(q.get(), nullptr); });
  add("mpx_queue_empty", "NULL out", [] { QueuePtr q(make_queue()); return mpx_queue_empty(q.get(), nullptr); });
  add("mpx_queue_full", "NULL out", [] { QueuePtr q(make_queue()); return mpx_queue_full(q.get(), nullptr); });
  add("mpx_queue_maxsize", "NULL out", [] { QueuePtr q(make_queue()); return mpx_queue_maxsize(q.get(), nullptr); });
  add("mpx_queue_capacity", "NULL out", [] { QueuePtr q(make_queue()); return mpx_queue_capacity(q.get(), nullptr); });
  add("mpx_queue_closed", "NULL out", [] { QueuePtr q(make_queue()); return mpx_queue_closed(q.get(), nullptr); });
  add("mpx_queue_unfinished", "NULL out", [] { QueuePtr q(make_queue(MPX_QUEUE_JOINABLE)); return mpx_queue_unfinished(q.get(), nullptr); });
  // pool
  struct PoolGone {
    void operator()(mpx_pool *p) const { mpx_pool_destroy(p); }
  };
  using PoolPtr = std::unique_ptr<mpx_pool, PoolGone>;
  add("mpx_task_return", "NULL out", [] { return mpx_task_return(nullptr, "x", 1); });
  add("mpx_task_reserve", "NULL out", [] { void *b = nullptr; return mpx_task_reserve(nullptr, 4, &b); });
  add("mpx_task_error", "NULL out", [] { return mpx_task_error(nullptr, "x"); });
  add("mpx_register_task", "NULL name", [] { return mpx_register_task(nullptr, [](const void *, size_t, mpx_task_out *) { return 0; }); });
  add("mpx_register_task", "NULL fn", [] { return mpx_register_task("mpxt-null-fn", nullptr); });
  add("mpx_pool_options_init", "NULL opts", [] { return mpx_pool_options_init(nullptr, sizeof(mpx_pool_options)); });
  add("mpx_task_init", "NULL task", [] { return mpx_task_init(nullptr, sizeof(mpx_task)); });
  add("mpx_map_init", "NULL map", [] { return mpx_map_init(nullptr, sizeof(mpx_map)); });
  add("mpx_pool_create", "NULL out", [] { return mpx_pool_create(nullptr, nullptr); });
  add("mpx_pool_size", "NULL out", [] { PoolPtr p(make_external_pool()); return mpx_pool_size(p.get(), nullptr); });
  add("mpx_pool_worker_pids", "NULL count", [] { PoolPtr p(make_external_pool()); int64_t x[2]; return mpx_pool_worker_pids(p.get(), x, nullptr); });
  add("mpx_pool_stats_get", "NULL stats", [] { PoolPtr p(make_external_pool()); return mpx_pool_stats_get(p.get(), nullptr); });
  add("mpx_pool_token", "NULL len", [] { PoolPtr p(make_external_pool()); return mpx_pool_token(p.get(), token_buf, nullptr); });
  add("mpx_pool_apply_async", "NULL task", [] { PoolPtr p(make_external_pool()); mpx_job *j = nullptr; return mpx_pool_apply_async(p.get(), nullptr, &j); });
  add("mpx_pool_apply_async", "NULL out", [] { PoolPtr p(make_external_pool()); mpx_task t; mpx_task_init(&t, sizeof t); t.name = "x"; return mpx_pool_apply_async(p.get(), &t, nullptr); });
  add("mpx_pool_apply", "NULL result", [] { PoolPtr p(make_external_pool()); mpx_task t; mpx_task_init(&t, sizeof t); t.name = "x"; size_t n = 0; return mpx_pool_apply(p.get(), &t, nullptr, &n); });
  add("mpx_pool_map", "NULL map", [] { PoolPtr p(make_external_pool()); mpx_job *j = nullptr; return mpx_pool_map(p.get(), nullptr, &j); });
  add("mpx_pool_submit", "NULL name", [] { PoolPtr p(make_external_pool()); return mpx_pool_submit(p.get(), nullptr, nullptr, 0, 0, 0); });
  add("mpx_pool_collect", "NULL used", [] { PoolPtr p(make_external_pool()); char b[8]; size_t c = 0; return mpx_pool_collect(p.get(), b, sizeof b, nullptr, &c, 0); });
  add("mpx_pool_wanted", "NULL out", [] { PoolPtr p(make_external_pool()); return mpx_pool_wanted(p.get(), nullptr); });
  add("mpx_job_ready", "NULL out", [] { mpx_job *j = make_job(); int rc = mpx_job_ready(j, nullptr); mpx_job_destroy(j); return rc; });
  add("mpx_job_successful", "NULL out", [] { mpx_job *j = make_job(); int rc = mpx_job_successful(j, nullptr); mpx_job_destroy(j); return rc; });
  add("mpx_job_count", "NULL out", [] { mpx_job *j = make_job(); int rc = mpx_job_count(j, nullptr); mpx_job_destroy(j); return rc; });
  add("mpx_job_result", "NULL data", [] { mpx_job *j = make_job(); size_t n; int rc = mpx_job_result(j, 0, nullptr, &n); mpx_job_destroy(j); return rc; });
  add("mpx_job_error", "NULL code", [] { mpx_job *j = make_job(); int rc = mpx_job_error(j, 0, nullptr, nullptr, nullptr, nullptr); mpx_job_destroy(j); return rc; });
  add("mpx_job_next", "NULL index", [] { mpx_job *j = make_job(); int rc = mpx_job_next(j, 0, nullptr); mpx_job_destroy(j); return rc; });
  add("mpx_job_progress", "NULL progress", [] { mpx_job *j = make_job(); int rc = mpx_job_progress(j, nullptr); mpx_job_destroy(j); return rc; });
  add("mpx_worker_attach", "NULL out", [] { return mpx_worker_attach("x", nullptr); });
  add("mpx_worker_next", "NULL task", [] { mpx_worker *w = make_worker(); int rc = mpx_worker_next(w, 0, nullptr); mpx_worker_detach(w); return rc; });
  // manager
  add("mpx_manager_options_init", "NULL opts", [] { return mpx_manager_options_init(nullptr, sizeof(mpx_manager_options)); });
  add("mpx_mclient_options_init", "NULL opts", [] { return mpx_mclient_options_init(nullptr, sizeof(mpx_mclient_options)); });
  add("mpx_mobj_options_init", "NULL opts", [] { return mpx_mobj_options_init(nullptr, sizeof(mpx_mobj_options)); });
  add("mpx_manager_start", "NULL out", [] { const auto o = manager_options(MPX_MANAGER_IN_PROCESS); return mpx_manager_start(nullptr, &o); });
  add("mpx_manager_address", "NULL len", [] { mpx_manager *m = make_manager(); char b[8]; int rc = mpx_manager_address(m, b, nullptr); mpx_manager_destroy(m); return rc; });
  add("mpx_manager_address", "NULL buf, len>0", [] { mpx_manager *m = make_manager(); size_t n = 256; int rc = mpx_manager_address(m, nullptr, &n); mpx_manager_destroy(m); return rc; });
  add("mpx_manager_pid", "NULL out", [] { mpx_manager *m = make_manager(); int rc = mpx_manager_pid(m, nullptr); mpx_manager_destroy(m); return rc; });
  add("mpx_manager_connect", "NULL out", [] { return mpx_manager_connect(nullptr, global_manager().address.c_str(), nullptr); });
  add("mpx_manager_connect", "NULL address", [] { mpx_mclient *c = nullptr; return mpx_manager_connect(&c, nullptr, nullptr); });
  add("mpx_mclient_shm", "NULL out", [] { return with_mclient([](mpx_mclient *c) { return mpx_mclient_shm(c, nullptr); }); });
  add("mpx_proxy_create", "NULL out", [] { return with_mclient([](mpx_mclient *c) { return mpx_proxy_create(c, MPX_MOBJ_DICT, nullptr, nullptr); }); });
  add("mpx_proxy_open", "NULL out", [] { return with_mclient([](mpx_mclient *c) { return mpx_proxy_open(c, "x", nullptr); }); });
  add("mpx_proxy_open", "NULL name", [] { return with_mclient([](mpx_mclient *c) { mpx_proxy *p = nullptr; return mpx_proxy_open(c, nullptr, &p); }); });
  add("mpx_proxy_token", "NULL len", [] { return with_proxy(MPX_MOBJ_DICT, [](mpx_proxy *p) { return mpx_proxy_token(p, token_buf, nullptr); }); });
  add("mpx_proxy_token", "NULL buf, len>0", [] { return with_proxy(MPX_MOBJ_DICT, [](mpx_proxy *p) { size_t n = MPX_TOKEN_MAX; return mpx_proxy_token(p, nullptr, &n); }); });
  add("mpx_proxy_type", "NULL out", [] { return with_proxy(MPX_MOBJ_DICT, [](mpx_proxy *p) { return mpx_proxy_type(p, nullptr); }); });
  add("mpx_mdict_set", "NULL key", [] { return with_proxy(MPX_MOBJ_DICT, [](mpx_proxy *p) { return mpx_mdict_set(p, nullptr, "v", 1); }); });
  add("mpx_mdict_set", "NULL value, len>0", [] { return with_proxy(MPX_MOBJ_DICT, [](mpx_proxy *p) { return mpx_mdict_set(p, "k", nullptr, 4); }); });
  add("mpx_mdict_add", "NULL key", [] { return with_proxy(MPX_MOBJ_DICT, [](mpx_proxy *p) { return mpx_mdict_add(p, nullptr, "v", 1); }); });
  add("mpx_mdict_add", "NULL value, len>0", [] { return with_proxy(MPX_MOBJ_DICT, [](mpx_proxy *p) { return mpx_mdict_add(p, "k", nullptr, 4); }); });
  add("mpx_mdict_get", "NULL key", [] { return with_proxy(MPX_MOBJ_DICT, [](mpx_proxy *p) { void *d = nullptr; size_t n = 0; return mpx_mdict_get(p, nullptr, &d, &n); }); });
  add("mpx_mdict_get", "NULL value", [] { return with_proxy(MPX_MOBJ_DICT, [](mpx_proxy *p) { size_t n = 0; return mpx_mdict_get(p, "k", nullptr, &n); }); });
  add("mpx_mdict_get", "NULL len", [] { return with_proxy(MPX_MOBJ_DICT, [](mpx_proxy *p) { void *d = nullptr; return mpx_mdict_get(p, "k", &d, nullptr); }); });
  add("mpx_mdict_pop", "NULL key", [] { return with_proxy(MPX_MOBJ_DICT, [](mpx_proxy *p) { return mpx_mdict_pop(p, nullptr, nullptr, nullptr); }); });
  add("mpx_mdict_len", "NULL out", [] { return with_proxy(MPX_MOBJ_DICT, [](mpx_proxy *p) { return mpx_mdict_len(p, nullptr); }); });
  add("mpx_mdict_keys", "NULL keys", [] { return with_proxy(MPX_MOBJ_DICT, [](mpx_proxy *p) { size_t n = 0, c = 0; return mpx_mdict_keys(p, nullptr, &n, &c); }); });
  add("mpx_mdict_keys", "NULL len", [] { return with_proxy(MPX_MOBJ_DICT, [](mpx_proxy *p) { char *k = nullptr; size_t c = 0; return mpx_mdict_keys(p, &k, nullptr, &c); }); });
  add("mpx_mdict_keys", "NULL count", [] { return with_proxy(MPX_MOBJ_DICT, [](mpx_proxy *p) { char *k = nullptr; size_t n = 0; return mpx_mdict_keys(p, &k, &n, nullptr); }); });
  add("mpx_mlist_append", "NULL value, len>0", [] { return with_proxy(MPX_MOBJ_LIST, [](mpx_proxy *p) { return mpx_mlist_append(p, nullptr, 4); }); });
  add("mpx_mlist_insert", "NULL value, len>0", [] { return with_proxy(MPX_MOBJ_LIST, [](mpx_proxy *p) { return mpx_mlist_insert(p, 0, nullptr, 4); }); });
  add("mpx_mlist_set", "NULL value, len>0", [] { return with_proxy(MPX_MOBJ_LIST, [](mpx_proxy *p) { mpx_mlist_append(p, "v", 1); return mpx_mlist_set(p, 0, nullptr, 4); }); });
  add("mpx_mlist_get", "NULL value", [] { return with_proxy(MPX_MOBJ_LIST, [](mpx_proxy *p) { mpx_mlist_append(p, "v", 1); size_t n = 0; return mpx_mlist_get(p, 0, nullptr, &n); }); });
  add("mpx_mlist_get", "NULL len", [] { return with_proxy(MPX_MOBJ_LIST, [](mpx_proxy *p) { mpx_mlist_append(p, "v", 1); void *d = nullptr; return mpx_mlist_get(p, 0, &d, nullptr); }); });
  add("mpx_mlist_len", "NULL out", [] { return with_proxy(MPX_MOBJ_LIST, [](mpx_proxy *p) { return mpx_mlist_len(p, nullptr); }); });
  add("mpx_mqueue_put", "NULL item, len>0", [] { return with_proxy(MPX_MOBJ_QUEUE, [](mpx_proxy *p) { return mpx_mqueue_put(p, nullptr, 4, 0); }); });
  add("mpx_mqueue_get", "NULL item", [] { return with_proxy(MPX_MOBJ_QUEUE, [](mpx_proxy *p) { mpx_mqueue_put(p, "x", 1, 0); size_t n = 0; return mpx_mqueue_get(p, nullptr, &n, 0); }); });
  add("mpx_mqueue_get", "NULL len", [] { return with_proxy(MPX_MOBJ_QUEUE, [](mpx_proxy *p) { mpx_mqueue_put(p, "x", 1, 0); void *d = nullptr; return mpx_mqueue_get(p, &d, nullptr, 0); }); });
  add("mpx_mqueue_qsize", "NULL out", [] { return with_proxy(MPX_MOBJ_QUEUE, [](mpx_proxy *p) { return mpx_mqueue_qsize(p, nullptr); }); });
  add("mpx_msem_value", "NULL out", [] { return with_proxy(MPX_MOBJ_SEMAPHORE, [](mpx_proxy *p) { return mpx_msem_value(p, nullptr); }); });
  add("mpx_mevent_is_set", "NULL out", [] { return with_proxy(MPX_MOBJ_EVENT, [](mpx_proxy *p) { return mpx_mevent_is_set(p, nullptr); }); });
  add("mpx_mvalue_get", "NULL out", [] { return with_proxy(MPX_MOBJ_VALUE, [](mpx_proxy *p) { return mpx_mvalue_get(p, nullptr, sizeof(int32_t)); }); });
  add("mpx_mvalue_set", "NULL in", [] { return with_proxy(MPX_MOBJ_VALUE, [](mpx_proxy *p) { return mpx_mvalue_set(p, nullptr, sizeof(int32_t)); }); });
  add("mpx_mvalue_add", "NULL delta", [] { return with_proxy(MPX_MOBJ_VALUE, [](mpx_proxy *p) { int32_t r = 0; return mpx_mvalue_add(p, nullptr, &r, sizeof r); }); });
  add("mpx_marray_len", "NULL length", [] { return with_proxy(MPX_MOBJ_ARRAY, [](mpx_proxy *p) { size_t s = 0; return mpx_marray_len(p, nullptr, &s); }); });
  add("mpx_marray_get", "NULL out, count>0", [] { return with_proxy(MPX_MOBJ_ARRAY, [](mpx_proxy *p) { return mpx_marray_get(p, 0, 2, nullptr); }); });
  add("mpx_marray_set", "NULL in, count>0", [] { return with_proxy(MPX_MOBJ_ARRAY, [](mpx_proxy *p) { return mpx_marray_set(p, 0, 2, nullptr); }); });
  return v;
}

// Functions that return no error code: with NULL or odd arguments they must simply not crash.
std::vector<NullCall> no_code_calls() {
  return {
      {"mpx_strerror", "any code", [] { return mpx_strerror(INT_MIN) == nullptr ? -1 : 0; }},
      {"mpx_error_name", "any code", [] { return mpx_error_name(INT_MAX) == nullptr ? -1 : 0; }},
      {"mpx_last_error_message", "no argument", [] { return mpx_last_error_message() == nullptr ? -1 : 0; }},
      {"mpx_version", "no argument", [] { return mpx_version() == 0 && MPX_VERSION_NUMBER != 0 ? -1 : 0; }},
      {"mpx_version_string", "no argument", [] { return mpx_version_string() == nullptr ? -1 : 0; }},
      {"mpx_free", "NULL", [] { mpx_free(nullptr); return 0; }},
      {"mpx_manager_main", "not started as a server: MPX_EINVAL", [] { return mpx_manager_main() == MPX_EINVAL ? 0 : -1; }},
      {"mpx_worker_main", "no MPX_POOL_TOKEN: exit status 1", [] {
         unsetenv("MPX_POOL_TOKEN");
         return mpx_worker_main() == 1 ? 0 : -1;
       }},
  };
}

// Functions without pointer arguments: in a fresh child they must simply succeed.
std::vector<NullCall> no_pointer_calls() {
  return {
      {"mpx_forkserver_start", "start and stop", [] {
         int a = mpx_forkserver_start();
         int b = mpx_forkserver_stop();
         return a != MPX_OK ? a : b;
       }},
      {"mpx_forkserver_stop", "when not running", [] { return mpx_forkserver_stop(); }},
  };
}

std::string symbols_file() {
#ifdef MPX_EXPORTED_SYMBOLS_FILE
  return MPX_EXPORTED_SYMBOLS_FILE;
#else
  std::string here = __FILE__;
  auto pos = here.rfind("/unit/");
  return pos == std::string::npos ? "exported_symbols.txt" : here.substr(0, pos) + "/abi/exported_symbols.txt";
#endif
}

std::set<std::string> committed_symbols() {
  std::set<std::string> out;
  std::ifstream in(symbols_file());
  std::string line;
  while (std::getline(in, line)) {
    line.erase(0, line.find_first_not_of(" \t"));
    line.erase(line.find_last_not_of(" \t\r") + 1);
    if (!line.empty() && line[0] != '#') out.insert(line);
  }
  return out;
}

std::set<std::string> covered_symbols() {
  std::set<std::string> s;
  for (const auto &k : kinds()) {
    for (const auto &op : k.ops) s.insert(op.fn);
    s.insert(k.destroy.fn);
  }
  for (const auto &c : null_out_calls()) s.insert(c.fn);
  for (const auto &c : no_code_calls()) s.insert(c.fn);
  for (const auto &c : no_pointer_calls()) s.insert(c.fn);
  return s;
}

}  // namespace

// ---- scenario 46: NULL to every exported function ---------------------------------------------

TEST(CapiNull, TableCoversEveryExportedSymbol) {
  auto committed = committed_symbols();
  ASSERT_FALSE(committed.empty()) << "could not read " << symbols_file();
  auto covered = covered_symbols();
  for (const auto &s : committed) EXPECT_TRUE(covered.count(s)) << s << " is exported but not exercised by capi_null";
  for (const auto &s : covered) EXPECT_TRUE(committed.count(s)) << s << " is exercised but not in exported_symbols.txt";
}

TEST(CapiNull, NullHandleToEveryFunctionIsEinval) {
  for (const auto &k : kinds()) {
    for (const auto &op : k.ops) {
      auto o = isolated([&] { return op.call(nullptr); });
      EXPECT_TRUE(o.completed && o.rc == MPX_EINVAL) << op.fn << "(NULL handle) " << show(o) << ", expected MPX_EINVAL";
    }
  }
}

TEST(CapiNull, NullOutPointersAndInputsAreEinval) {
  for (const auto &c : null_out_calls()) {
    auto o = isolated(c.call);
    EXPECT_TRUE(o.completed && o.rc == MPX_EINVAL) << c.fn << " (" << c.what << ") " << show(o) << ", expected MPX_EINVAL";
  }
}

TEST(CapiNull, OutPointerIsNullAfterAFailedCreate) {
  mpx_lock *l = reinterpret_cast<mpx_lock *>(0x1);
  mpx_lock_options o;
  mpx_lock_options_init(&o, sizeof o);
  o.size = 0;  // wrong
  EXPECT_MPX(MPX_EINVAL, mpx_lock_create(&l, &o));
  EXPECT_EQ(l, nullptr) << "*out is NULL on failure";
  mpx_array *a = reinterpret_cast<mpx_array *>(0x1);
  EXPECT_MPX(MPX_EINVAL, mpx_array_create(&a, 'z', 1, nullptr));
  EXPECT_EQ(a, nullptr);
  mpx_event *e = reinterpret_cast<mpx_event *>(0x1);
  EXPECT_NE(mpx_event_attach(&e, "not a token"), MPX_OK);
  EXPECT_EQ(e, nullptr);
  mpx_process_options po;
  mpx_process_options_init(&po, sizeof po);
  po.fn = noop_target;
  po.size = 0;  // wrong
  mpx_process *p = reinterpret_cast<mpx_process *>(0x1);
  EXPECT_MPX(MPX_EINVAL, mpx_process_create(&p, &po));
  EXPECT_EQ(p, nullptr);
  p = reinterpret_cast<mpx_process *>(0x1);
  EXPECT_NE(mpx_process_adopt(&p, -1, nullptr), MPX_OK);
  EXPECT_EQ(p, nullptr);
}

TEST(CapiNull, DestroyNullIsEinvalAndHarmless) {
  // NULL-safe destroy: no crash, and like every other function given NULL, MPX_EINVAL.
  for (const auto &k : kinds()) {
    auto o = isolated([&] { return k.destroy.call(nullptr); });
    EXPECT_TRUE(o.completed && o.rc == MPX_EINVAL) << k.destroy.fn << "(NULL) " << show(o) << ", expected MPX_EINVAL";
  }
}

TEST(CapiNull, FunctionsWithoutErrorCodesAcceptAnything) {
  for (const auto &c : no_code_calls()) {
    auto o = isolated(c.call);
    EXPECT_TRUE(o.completed && o.rc == 0) << c.fn << " (" << c.what << ") " << show(o);
  }
}

TEST(CapiNull, FunctionsWithoutPointerArgumentsSucceed) {
  for (const auto &c : no_pointer_calls()) {
    auto o = isolated(c.call);
    EXPECT_TRUE(o.completed && o.rc == MPX_OK) << c.fn << " (" << c.what << ") " << show(o);
  }
}

// ---- scenario 47: stale, wrong-type and fabricated handles -------------------------------------

TEST(CapiBadHandle, DoubleDestroyIsEbadhandle) {
  for (const auto &k : kinds()) {
    void *h = k.make();
    ASSERT_NE(h, nullptr) << k.name;
    EXPECT_MPX(MPX_OK, k.destroy.call(h)) << k.name;
    auto o = isolated([&] { return k.destroy.call(h); });
    EXPECT_TRUE(o.completed && o.rc == MPX_EBADHANDLE) << k.destroy.fn << " twice on a " << k.name << ": " << show(o);
  }
}

TEST(CapiBadHandle, EveryCallOnADestroyedHandleIsEbadhandle) {
  for (const auto &k : kinds()) {
    void *h = k.make();
    ASSERT_NE(h, nullptr) << k.name;
    ASSERT_MPX_OK(k.destroy.call(h));
    for (const auto &op : k.ops) {
      auto o = isolated([&] { return op.call(h); });
      EXPECT_TRUE(o.completed && o.rc == MPX_EBADHANDLE) << op.fn << " on a destroyed " << k.name << ": " << show(o);
    }
  }
}

TEST(CapiBadHandle, DestroyedHandleStaysInvalidAfterNewObjectsAreCreated) {
  // Generation check: a new object may reuse the slot, but the old handle must not reach it.
  mpx_lock *old = mpxt::make_lock().release();
  ASSERT_MPX_OK(mpx_lock_destroy(old));
  std::vector<mpxt::LockPtr> fresh_locks;
  for (int i = 0; i < 64; ++i) fresh_locks.push_back(mpxt::make_lock());
  EXPECT_MPX(MPX_EBADHANDLE, mpx_lock_acquire(old, 0));
  EXPECT_MPX(MPX_EBADHANDLE, mpx_lock_release(old));
  EXPECT_MPX(MPX_EBADHANDLE, mpx_lock_destroy(old));
  for (auto &l : fresh_locks) {
    int locked = -1;
    EXPECT_MPX_OK(mpx_lock_locked(l.get(), &locked));
    EXPECT_EQ(locked, 0) << "a stale handle touched a new lock";
  }
}

TEST(CapiBadHandle, HandleOfTheWrongTypeIsEbadhandle) {
  auto all = kinds();
  for (const auto &owner : all) {
    for (const auto &user : all) {
      if (std::string(owner.ops.front().fn) == user.ops.front().fn) continue;  // same handle type
      void *h = owner.make();
      ASSERT_NE(h, nullptr);
      for (const auto &op : user.ops) {
        auto o = isolated([&] { return op.call(h); });
        EXPECT_TRUE(o.completed && o.rc == MPX_EBADHANDLE)
            << op.fn << " given a " << owner.name << " handle: " << show(o) << ", expected MPX_EBADHANDLE";
      }
      auto o = isolated([&] { return user.destroy.call(h); });
      EXPECT_TRUE(o.completed && o.rc == MPX_EBADHANDLE)
          << user.destroy.fn << " given a " << owner.name << " handle: " << show(o);
      // The real destroy still works: the wrong-type destroy did not consume the handle.
      EXPECT_MPX(MPX_OK, owner.destroy.call(h)) << owner.name << " after a wrong-type destroy";
    }
  }
}

TEST(CapiBadHandle, LockHandleCastToSemaphoreIsEbadhandleAndLockStillWorks) {
  auto lock = mpxt::make_lock();
  auto *sem = reinterpret_cast<mpx_semaphore *>(lock.get());
  EXPECT_MPX(MPX_EBADHANDLE, mpx_semaphore_acquire(sem, 0));
  EXPECT_MPX(MPX_EBADHANDLE, mpx_semaphore_release(sem));
  EXPECT_MPX(MPX_EBADHANDLE, mpx_semaphore_destroy(sem));
  EXPECT_MPX_OK(mpx_lock_acquire(lock.get(), 0));
  EXPECT_MPX_OK(mpx_lock_release(lock.get()));
}

TEST(CapiBadHandle, FabricatedHandleValuesAreEbadhandle) {
  static unsigned char garbage[256];
  static unsigned char zeros[256];
  std::memset(garbage, 0xA5, sizeof garbage);
  auto real = mpxt::make_lock();
  const auto real_bits = reinterpret_cast<uintptr_t>(real.get());
  const std::vector<std::pair<std::string, uintptr_t>> values = {
      {"0x1", 0x1},
      {"0x1234", 0x1234},
      {"0xdeadbeef", 0xdeadbeefu},
      {"~0", ~uintptr_t{0}},
      {"~0 - 7", ~uintptr_t{0} - 7},
      {"INT64_MIN", uintptr_t{1} << 63},
      {"pointer to 0xA5 bytes", reinterpret_cast<uintptr_t>(garbage)},
      {"pointer to zero bytes", reinterpret_cast<uintptr_t>(zeros)},
      {"real handle + 1", real_bits + 1},
      {"real handle ^ 0x10000", real_bits ^ 0x10000u},
      {"real handle ^ (1 << 40)", real_bits ^ (uintptr_t{1} << 40)},
  };
  for (const auto &k : kinds()) {
    for (const auto &[label, bits] : values) {
      void *h = reinterpret_cast<void *>(bits);
      for (const auto &op : k.ops) {
        auto o = isolated([&] { return op.call(h); });
        EXPECT_TRUE(o.completed && o.rc == MPX_EBADHANDLE) << op.fn << "(" << label << ") " << show(o);
      }
      auto o = isolated([&] { return k.destroy.call(h); });
      EXPECT_TRUE(o.completed && o.rc == MPX_EBADHANDLE) << k.destroy.fn << "(" << label << ") " << show(o);
    }
  }
  EXPECT_MPX_OK(mpx_lock_acquire(real.get(), 0));
  EXPECT_MPX_OK(mpx_lock_release(real.get()));
}

// ---- scenario 49: wrong sizes -----------------------------------------------------------------

namespace {

template <typename Opts>
void check_options_init(int (*init)(Opts *, size_t), const char *fn) {
  SCOPED_TRACE(fn);
  // Correct size: size set, everything else zero (= default).
  Opts o;
  std::memset(&o, 0xCD, sizeof o);
  ASSERT_MPX_OK(init(&o, sizeof o));
  EXPECT_EQ(o.size, sizeof o);
  Opts zero;
  std::memset(&zero, 0, sizeof zero);
  zero.size = sizeof zero;
  EXPECT_EQ(std::memcmp(&o, &zero, sizeof o), 0) << "defaults are all zero";
  // Wrong sizes: MPX_EINVAL, and nothing written beyond what the caller declared.
  for (size_t bad : {size_t{0}, size_t{1}, size_t{3}, sizeof(Opts) - 1, sizeof(Opts) + 1, sizeof(Opts) * 2,
                     SIZE_MAX, SIZE_MAX / 2}) {
    unsigned char buf[sizeof(Opts) * 4];
    std::memset(buf, 0xCD, sizeof buf);
    auto *p = reinterpret_cast<Opts *>(buf);
    auto out = isolated([&] { return init(p, bad); });
    EXPECT_TRUE(out.completed && out.rc == MPX_EINVAL) << fn << "(opts, " << bad << ") " << show(out);
    if (!out.completed) continue;
    int rc = init(p, bad);  // again in this process, to inspect the buffer
    if (rc == MPX_EINVAL) {
      for (size_t i = std::min(bad, sizeof buf); i < sizeof buf; ++i) {
        ASSERT_EQ(buf[i], 0xCD) << fn << "(opts, " << bad << ") wrote byte " << i;
      }
    }
  }
}

}  // namespace

TEST(CapiSizes, OptionsInitRejectsWrongStructSize) {
  check_options_init(mpx_segment_options_init, "mpx_segment_options_init");
  check_options_init(mpx_lock_options_init, "mpx_lock_options_init");
  check_options_init(mpx_semaphore_options_init, "mpx_semaphore_options_init");
  check_options_init(mpx_array_options_init, "mpx_array_options_init");
  check_options_init(mpx_process_options_init, "mpx_process_options_init");
  check_options_init(mpx_conn_options_init, "mpx_conn_options_init");
  check_options_init(mpx_queue_options_init, "mpx_queue_options_init");
  check_options_init(mpx_listener_options_init, "mpx_listener_options_init");
  check_options_init(mpx_client_options_init, "mpx_client_options_init");
  check_options_init(mpx_manager_options_init, "mpx_manager_options_init");
  check_options_init(mpx_mclient_options_init, "mpx_mclient_options_init");
}

TEST(CapiSizes, OptionsWithAWrongSizeFieldAreEinval) {
  for (uint32_t bad : {0u, 1u, 4u, 0xFFFFFFFFu, 0x80000000u}) {
    SCOPED_TRACE("size field " + std::to_string(bad));
    {
      mpx_segment_options o;
      mpx_segment_options_init(&o, sizeof o);
      o.size = bad;
      mpx_segment *s = nullptr;
      EXPECT_MPX(MPX_EINVAL, mpx_segment_create(&s, 4096, &o));
      EXPECT_EQ(s, nullptr);
      mpx_segment_destroy(s);
    }
    {
      mpx_lock_options o;
      mpx_lock_options_init(&o, sizeof o);
      o.size = bad;
      mpx_lock *l = nullptr;
      EXPECT_MPX(MPX_EINVAL, mpx_lock_create(&l, &o));
      mpx_lock_destroy(l);
    }
    {
      mpx_semaphore_options o;
      mpx_semaphore_options_init(&o, sizeof o);
      o.size = bad;
      mpx_semaphore *s = nullptr;
      EXPECT_MPX(MPX_EINVAL, mpx_semaphore_create(&s, 1, &o));
      mpx_semaphore_destroy(s);
    }
    {
      mpx_array_options o;
      mpx_array_options_init(&o, sizeof o);
      o.size = bad;
      mpx_array *a = nullptr;
      EXPECT_MPX(MPX_EINVAL, mpx_array_create(&a, 'i', 1, &o));
      mpx_array_destroy(a);
    }
    {
      mpx_process_options o;
      mpx_process_options_init(&o, sizeof o);
      o.fn = noop_target;
      o.size = bad;
      mpx_process *p = nullptr;
      EXPECT_MPX(MPX_EINVAL, mpx_process_create(&p, &o));
      mpx_process *a = nullptr;
      EXPECT_NE(mpx_process_adopt(&a, getpid(), &o), MPX_OK);
      mpx_process_destroy(p);
      mpx_process_destroy(a);
    }
    {
      mpx_conn_options o;
      mpx_conn_options_init(&o, sizeof o);
      o.size = bad;
      mpx_conn *a = nullptr, *b = nullptr;
      EXPECT_MPX(MPX_EINVAL, mpx_pipe(1, &o, &a, &b));
      EXPECT_EQ(a, nullptr);
      EXPECT_EQ(b, nullptr);
    }
    {
      mpx_queue_options o;
      mpx_queue_options_init(&o, sizeof o);
      o.size = bad;
      mpx_queue *q = nullptr;
      EXPECT_MPX(MPX_EINVAL, mpx_queue_create(&q, &o));
      EXPECT_EQ(q, nullptr);
    }
  }
}

TEST(CapiSizes, OptionsWithUnknownFlagsOrKindsAreEinval) {
  mpx_lock_options lo;
  mpx_lock_options_init(&lo, sizeof lo);
  lo.flags = 0x80000000u;
  mpx_lock *l = nullptr;
  EXPECT_MPX(MPX_EINVAL, mpx_lock_create(&l, &lo));
  mpx_lock_destroy(l);

  mpx_semaphore_options so;
  mpx_semaphore_options_init(&so, sizeof so);
  so.flags = 0x100u;
  mpx_semaphore *s = nullptr;
  EXPECT_MPX(MPX_EINVAL, mpx_semaphore_create(&s, 1, &so));
  mpx_semaphore_destroy(s);

  mpx_array_options ao;
  mpx_array_options_init(&ao, sizeof ao);
  ao.lock = 7;
  mpx_array *a = nullptr;
  EXPECT_MPX(MPX_EINVAL, mpx_array_create(&a, 'i', 1, &ao));
  mpx_array_destroy(a);

  mpx_segment_options go;
  mpx_segment_options_init(&go, sizeof go);
  go.flags = 0x40u;
  mpx_segment *g = nullptr;
  EXPECT_MPX(MPX_EINVAL, mpx_segment_create(&g, 4096, &go));
  mpx_segment_destroy(g);
}

TEST(CapiSizes, ImpossibleCreateArgumentsAreEinval) {
  mpx_segment *s = nullptr;
  EXPECT_MPX(MPX_EINVAL, mpx_segment_create(&s, 0, nullptr));
  EXPECT_MPX(MPX_EINVAL, mpx_segment_create(&s, SIZE_MAX, nullptr)) << "a 'negative' size";
  EXPECT_MPX(MPX_EINVAL, mpx_segment_create(&s, static_cast<size_t>(SSIZE_MAX) + 1, nullptr));
  mpx_array *a = nullptr;
  EXPECT_MPX(MPX_EINVAL, mpx_array_create(&a, 'i', 0, nullptr));
  EXPECT_MPX(MPX_EINVAL, mpx_array_create(&a, 'd', SIZE_MAX / 4, nullptr)) << "length * 8 overflows";
  EXPECT_MPX(MPX_EINVAL, mpx_array_create(&a, 'z', 1, nullptr));
  EXPECT_MPX(MPX_EINVAL, mpx_array_create(&a, '\0', 1, nullptr));
  mpx_semaphore *sem = nullptr;
  EXPECT_MPX(MPX_EINVAL, mpx_semaphore_create(&sem, MPX_SEMAPHORE_VALUE_MAX + 1u, nullptr));
  EXPECT_MPX(MPX_EINVAL, mpx_semaphore_create(&sem, 0xFFFFFFFFu, nullptr));
  mpx_barrier *b = nullptr;
  EXPECT_MPX(MPX_EINVAL, mpx_barrier_create(&b, 0));
  size_t n = 0;
  EXPECT_MPX(MPX_EINVAL, mpx_typecode_size('z', &n));
  EXPECT_MPX(MPX_EINVAL, mpx_typecode_size('\0', &n));
}

namespace {

// A buffer of exactly `bytes` usable bytes, immediately followed by a PROT_NONE page: reading or
// writing one byte past it faults.
class GuardedBuffer {
 public:
  explicit GuardedBuffer(size_t bytes) {
    page_ = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    size_t data_pages = (bytes + page_ - 1) / page_ + 1;
    total_ = (data_pages + 1) * page_;
    base_ = static_cast<unsigned char *>(mmap(nullptr, total_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    mprotect(base_ + data_pages * page_, page_, PROT_NONE);
    data_ = base_ + data_pages * page_ - bytes;
    std::memset(data_, 0x5A, bytes);
  }
  ~GuardedBuffer() { munmap(base_, total_); }
  unsigned char *data() const { return data_; }

 private:
  size_t page_ = 0, total_ = 0;
  unsigned char *base_ = nullptr;
  unsigned char *data_ = nullptr;
};

}  // namespace

TEST(CapiSizes, ArrayBufferSizesAreCheckedAndNothingIsAccessedPastLen) {
  auto arr = mpxt::make_array('i', 16);
  ASSERT_TRUE(arr);
  mpx_array *a = arr.get();
  GuardedBuffer g(8);  // room for 2 ints
  struct Case {
    const char *what;
    std::function<int()> call;
  };
  std::vector<Case> cases = {
      {"read 4 ints into 8 bytes", [&] { return mpx_array_read(a, 0, 4, g.data(), 8); }},
      {"write 4 ints from 8 bytes", [&] { return mpx_array_write(a, 0, 4, g.data(), 8); }},
      {"read with buf_size > SSIZE_MAX", [&] { return mpx_array_read(a, 0, 1, g.data(), static_cast<size_t>(SSIZE_MAX) + 1); }},
      {"write with buf_size > SSIZE_MAX", [&] { return mpx_array_write(a, 0, 1, g.data(), static_cast<size_t>(SSIZE_MAX) + 1); }},
      {"get with out_size 8 for an int", [&] { return mpx_array_get(a, 0, g.data(), 8); }},
      {"get with out_size 2 for an int", [&] { return mpx_array_get(a, 0, g.data(), 2); }},
      {"set with in_size 8 for an int", [&] { return mpx_array_set(a, 0, g.data(), 8); }},
      {"set with in_size 0", [&] { return mpx_array_set(a, 0, g.data(), 0); }},
      {"get with out_size SIZE_MAX", [&] { return mpx_array_get(a, 0, g.data(), SIZE_MAX); }},
  };
  for (const auto &c : cases) {
    auto o = isolated(c.call);
    EXPECT_TRUE(o.completed && (o.rc == MPX_EINVAL || o.rc == MPX_ENOBUFS))
        << c.what << ": " << show(o) << ", expected MPX_EINVAL (or MPX_ENOBUFS)";
  }
  // The array was not changed by any rejected write.
  std::vector<int> all(16, -1);
  ASSERT_MPX_OK(mpx_array_read(a, 0, 16, all.data(), all.size() * sizeof(int)));
  for (int v : all) EXPECT_EQ(v, 0);
}

TEST(CapiSizes, ArrayCountOverflowIsRejected) {
  auto arr = mpxt::make_array('d', 8);
  ASSERT_TRUE(arr);
  mpx_array *a = arr.get();
  GuardedBuffer g(64);
  struct Case {
    const char *what;
    std::function<int()> call;
  };
  std::vector<Case> cases = {
      {"read start=SIZE_MAX count=2", [&] { return mpx_array_read(a, SIZE_MAX, 2, g.data(), 16); }},
      {"write start=SIZE_MAX count=2", [&] { return mpx_array_write(a, SIZE_MAX, 2, g.data(), 16); }},
      {"read start=1 count=SIZE_MAX", [&] { return mpx_array_read(a, 1, SIZE_MAX, g.data(), 64); }},
      {"write start=1 count=SIZE_MAX", [&] { return mpx_array_write(a, 1, SIZE_MAX, g.data(), 64); }},
      // count * 8 wraps to 0 or 8: a naive size check would pass.
      {"read count*size wraps to 0", [&] { return mpx_array_read(a, 0, (SIZE_MAX / 8) + 1, g.data(), 0); }},
      {"read count*size wraps to 8", [&] { return mpx_array_read(a, 0, (SIZE_MAX / 8) + 2, g.data(), 8); }},
      {"write count*size wraps to 8", [&] { return mpx_array_write(a, 0, (SIZE_MAX / 8) + 2, g.data(), 8); }},
      {"read start+count past the end", [&] { return mpx_array_read(a, 7, 2, g.data(), 16); }},
      {"write start+count past the end", [&] { return mpx_array_write(a, 7, 2, g.data(), 16); }},
      {"read start past the end", [&] { return mpx_array_read(a, 9, 0, g.data(), 0); }},
      {"get index == length", [&] { return mpx_array_get(a, 8, g.data(), 8); }},
      {"get index SIZE_MAX", [&] { return mpx_array_get(a, SIZE_MAX, g.data(), 8); }},
      {"set index SIZE_MAX", [&] { return mpx_array_set(a, SIZE_MAX, g.data(), 8); }},
  };
  for (const auto &c : cases) {
    auto o = isolated(c.call);
    EXPECT_TRUE(o.completed && (o.rc == MPX_EINVAL || o.rc == MPX_ERANGE))
        << c.what << ": " << show(o) << ", expected MPX_EINVAL or MPX_ERANGE";
  }
  std::vector<double> all(8, -1.0);
  ASSERT_MPX_OK(mpx_array_read(a, 0, 8, all.data(), all.size() * sizeof(double)));
  for (double v : all) EXPECT_EQ(v, 0.0);
}

TEST(CapiSizes, TokenBufferTooSmallIsEnobufsWithTheNeededSize) {
  auto lock = mpxt::make_lock();
  char full[MPX_TOKEN_MAX];
  size_t full_len = sizeof full;
  ASSERT_MPX_OK(mpx_lock_token(lock.get(), full, &full_len));
  ASSERT_GT(full_len, 0u);
  EXPECT_EQ(std::strlen(full), full_len) << "*len is the length written, without NUL";
  GuardedBuffer g(4);
  size_t len = 4;
  auto o = isolated([&] { size_t l = 4; return mpx_lock_token(lock.get(), reinterpret_cast<char *>(g.data()), &l); });
  EXPECT_TRUE(o.completed && o.rc == MPX_ENOBUFS) << show(o);
  EXPECT_MPX(MPX_ENOBUFS, mpx_lock_token(lock.get(), reinterpret_cast<char *>(g.data()), &len));
  EXPECT_EQ(len, full_len + 1) << "needed size, with the NUL";
  size_t zero = 0;
  EXPECT_MPX(MPX_ENOBUFS, mpx_lock_token(lock.get(), nullptr, &zero)) << "a size query with a NULL buffer and len 0";
  EXPECT_EQ(zero, full_len + 1);
  size_t exact = full_len;  // no room for the NUL
  std::vector<char> b(exact);
  EXPECT_MPX(MPX_ENOBUFS, mpx_lock_token(lock.get(), b.data(), &exact));
  EXPECT_EQ(exact, full_len + 1);
}

// ---- scenario 50: extreme timeouts ------------------------------------------------------------

namespace {

constexpr int64_t kHugeTimeouts[] = {INT64_MAX, INT64_MAX - 1, 9223372036855LL /* ms -> ns overflows */,
                                     18446744073710LL /* ms -> ns overflows uint64 */};
constexpr int64_t kNegativeTimeouts[] = {-1, -2, -1000, INT64_MIN, INT64_MIN + 1};

// Blocks on `wait(timeout)` while another process does `wake()` after 200 ms; the wait must
// return MPX_OK after >= 150 ms (a wrapped deadline would return at once with MPX_ETIMEDOUT).
void expect_blocks_until_woken(const char *what, int64_t timeout, const std::function<int(int64_t)> &wait,
                               const std::function<void()> &wake) {
  SCOPED_TRACE(std::string(what) + " timeout " + std::to_string(timeout));
  mpxt::Child waker = mpxt::Child::fork([&] {
    mpxt::sleep_ms(200);
    wake();
    return 0;
  });
  mpxt::Stopwatch sw;
  int rc = wait(timeout);
  int64_t ms = sw.ms();
  EXPECT_MPX(MPX_OK, rc);
  EXPECT_GE(ms, 150) << "returned before the other process woke it";
  EXPECT_LE(ms, 200 + 1000);
  auto st = waker.wait(5000ms);
  EXPECT_TRUE(st.ok()) << st.describe();
}

}  // namespace

TEST(CapiTimeouts, HugeAndNegativeTimeoutsBlockOnALockUntilReleased) {
  auto lock = mpxt::make_lock();
  std::vector<int64_t> all(std::begin(kHugeTimeouts), std::end(kHugeTimeouts));
  all.insert(all.end(), std::begin(kNegativeTimeouts), std::end(kNegativeTimeouts));
  for (int64_t t : all) {
    ASSERT_MPX_OK(mpx_lock_acquire(lock.get(), 0));
    // Plain Lock: another process may release it.
    expect_blocks_until_woken("lock", t, [&](int64_t tt) { return mpx_lock_acquire(lock.get(), tt); },
                              [&] { CHILD_MPX_OK(mpx_lock_release(lock.get())); });
    EXPECT_MPX_OK(mpx_lock_release(lock.get()));
  }
}

TEST(CapiTimeouts, HugeAndNegativeTimeoutsBlockOnASemaphoreUntilReleased) {
  auto sem = mpxt::make_semaphore(0);
  std::vector<int64_t> all(std::begin(kHugeTimeouts), std::end(kHugeTimeouts));
  all.insert(all.end(), std::begin(kNegativeTimeouts), std::end(kNegativeTimeouts));
  for (int64_t t : all)
    expect_blocks_until_woken("semaphore", t, [&](int64_t tt) { return mpx_semaphore_acquire(sem.get(), tt); },
                              [&] { CHILD_MPX_OK(mpx_semaphore_release(sem.get())); });
}

TEST(CapiTimeouts, HugeAndNegativeTimeoutsBlockOnAnEventUntilSet) {
  auto ev = mpxt::make_event();
  std::vector<int64_t> all(std::begin(kHugeTimeouts), std::end(kHugeTimeouts));
  all.insert(all.end(), std::begin(kNegativeTimeouts), std::end(kNegativeTimeouts));
  for (int64_t t : all) {
    ASSERT_MPX_OK(mpx_event_clear(ev.get()));
    expect_blocks_until_woken("event", t, [&](int64_t tt) { return mpx_event_wait(ev.get(), tt); },
                              [&] { CHILD_MPX_OK(mpx_event_set(ev.get())); });
  }
}

TEST(CapiTimeouts, HugeAndNegativeTimeoutsBlockOnAConditionUntilNotified) {
  auto cond = mpxt::make_condition();
  for (int64_t t : {INT64_MAX, int64_t{-1}, INT64_MIN}) {
    ASSERT_MPX_OK(mpx_condition_acquire(cond.get(), -1));
    expect_blocks_until_woken("condition", t, [&](int64_t tt) { return mpx_condition_wait(cond.get(), tt); },
                              [&] {
                                CHILD_MPX_OK(mpx_condition_acquire(cond.get(), 5000));
                                CHILD_MPX_OK(mpx_condition_notify_all(cond.get()));
                                CHILD_MPX_OK(mpx_condition_release(cond.get()));
                              });
    EXPECT_MPX_OK(mpx_condition_release(cond.get()));
  }
}

TEST(CapiTimeouts, HugeAndNegativeTimeoutsBlockOnABarrierUntilThePartyArrives) {
  for (int64_t t : {INT64_MAX, int64_t{9223372036855LL}, int64_t{-1}, INT64_MIN}) {
    auto bar = mpxt::make_barrier(2);
    expect_blocks_until_woken("barrier", t, [&](int64_t tt) { return mpx_barrier_wait(bar.get(), tt, nullptr); },
                              [&] { CHILD_MPX_OK(mpx_barrier_wait(bar.get(), 5000, nullptr)); });
  }
}

TEST(CapiTimeouts, ZeroTimeoutTriesOnceAndReturnsAtOnce) {
  auto lock = mpxt::make_lock();
  ASSERT_MPX_OK(mpx_lock_acquire(lock.get(), 0));
  mpxt::Stopwatch sw;
  EXPECT_MPX(MPX_ETIMEDOUT, mpx_lock_acquire(lock.get(), 0));
  auto sem = mpxt::make_semaphore(0);
  EXPECT_MPX(MPX_ETIMEDOUT, mpx_semaphore_acquire(sem.get(), 0));
  auto ev = mpxt::make_event();
  EXPECT_MPX(MPX_ETIMEDOUT, mpx_event_wait(ev.get(), 0));
  EXPECT_LT(sw.ms(), 20);
  EXPECT_MPX_OK(mpx_lock_release(lock.get()));
}

// ---- scenario 48: destroy while another thread is blocked on the same handle -------------------

namespace {

// `block` runs in a thread and must return MPX_ECLOSED soon after `destroy` runs in this one.
void expect_destroy_wakes_blocked_thread(const char *what, const std::function<int()> &block,
                                         const std::function<int()> &destroy) {
  SCOPED_TRACE(what);
  std::atomic<int> rc{INT_MIN};
  std::atomic<int64_t> returned_at{-1};
  mpxt::Stopwatch sw;
  std::thread t([&] {
    rc = block();
    returned_at = sw.ms();
  });
  mpxt::sleep_ms(150);  // let it block
  EXPECT_EQ(returned_at.load(), -1) << what << " did not block (returned " << mpxt::code_str(rc.load()) << ")";
  int64_t destroyed_at = sw.ms();
  int drc = destroy();
  EXPECT_MPX(MPX_OK, drc) << "destroy";
  for (int i = 0; i < 200 && returned_at.load() < 0; ++i) mpxt::sleep_ms(10);
  if (returned_at.load() < 0) {
    ADD_FAILURE() << what << " still blocked 2 s after destroy; the test process will be killed by ctest";
    t.detach();
    std::fflush(nullptr);
    _exit(1);  // cannot join a thread that never returns
  }
  t.join();
  EXPECT_MPX(MPX_ECLOSED, rc.load());
  EXPECT_LE(returned_at.load() - destroyed_at, 200) << "woke too slowly after destroy";
}

}  // namespace

TEST(CapiDestroyWhileBlocked, LockAcquireReturnsEclosed) {
  auto holder = mpxt::make_lock();
  std::string tok = mpxt::token_of(mpx_lock_token, holder.get());
  mpx_lock *h = nullptr;
  ASSERT_MPX_OK(mpx_lock_attach(&h, tok.c_str()));
  ASSERT_MPX_OK(mpx_lock_acquire(holder.get(), 0));
  expect_destroy_wakes_blocked_thread("mpx_lock_acquire", [&] { return mpx_lock_acquire(h, -1); },
                                      [&] { return mpx_lock_destroy(h); });
  EXPECT_MPX(MPX_EBADHANDLE, mpx_lock_acquire(h, 0));
  EXPECT_MPX_OK(mpx_lock_release(holder.get()));
  EXPECT_MPX_OK(mpx_lock_acquire(holder.get(), 0)) << "the lock itself is intact";
  EXPECT_MPX_OK(mpx_lock_release(holder.get()));
}

TEST(CapiDestroyWhileBlocked, TimedLockAcquireReturnsEclosed) {
  auto holder = mpxt::make_lock(true);
  std::string tok = mpxt::token_of(mpx_lock_token, holder.get());
  mpx_lock *h = nullptr;
  ASSERT_MPX_OK(mpx_lock_attach(&h, tok.c_str()));
  mpxt::Child owner = mpxt::Child::fork([&] {
    CHILD_MPX_OK(mpx_lock_acquire(holder.get(), 0));
    mpxt::sleep_ms(5000);
    return 0;
  });
  mpxt::sleep_ms(100);
  expect_destroy_wakes_blocked_thread("mpx_lock_acquire(10 s) on an RLock", [&] { return mpx_lock_acquire(h, 10000); },
                                      [&] { return mpx_lock_destroy(h); });
  owner.kill_and_wait(SIGKILL);
}

TEST(CapiDestroyWhileBlocked, SemaphoreAcquireReturnsEclosed) {
  mpx_semaphore *s = mpxt::make_semaphore(0).release();
  expect_destroy_wakes_blocked_thread("mpx_semaphore_acquire", [&] { return mpx_semaphore_acquire(s, -1); },
                                      [&] { return mpx_semaphore_destroy(s); });
}

TEST(CapiDestroyWhileBlocked, EventWaitReturnsEclosed) {
  mpx_event *e = mpxt::make_event().release();
  expect_destroy_wakes_blocked_thread("mpx_event_wait", [&] { return mpx_event_wait(e, -1); },
                                      [&] { return mpx_event_destroy(e); });
}

TEST(CapiDestroyWhileBlocked, ConditionWaitReturnsEclosed) {
  mpx_condition *c = mpxt::make_condition().release();
  expect_destroy_wakes_blocked_thread(
      "mpx_condition_wait",
      [&] {
        int rc = mpx_condition_acquire(c, -1);
        if (rc != MPX_OK) return rc;
        return mpx_condition_wait(c, -1);
      },
      [&] { return mpx_condition_destroy(c); });
}

TEST(CapiDestroyWhileBlocked, BarrierWaitReturnsEclosed) {
  mpx_barrier *b = mpxt::make_barrier(2).release();
  expect_destroy_wakes_blocked_thread("mpx_barrier_wait", [&] { return mpx_barrier_wait(b, -1, nullptr); },
                                      [&] { return mpx_barrier_destroy(b); });
}

TEST(CapiDestroyWhileBlocked, ProcessJoinReturnsEclosed) {
  mpx_process_options o;
  mpx_process_options_init(&o, sizeof o);
  o.method = MPX_START_SPAWN;
  o.file = "/bin/sleep";
  const char *argv[] = {"sleep", "30", nullptr};
  o.argv = argv;
  mpx_process *p = nullptr;
  ASSERT_MPX_OK(mpx_process_create(&p, &o));
  ASSERT_MPX_OK(mpx_process_start(p));
  int64_t pid = 0;
  ASSERT_MPX_OK(mpx_process_pid(p, &pid));
  expect_destroy_wakes_blocked_thread("mpx_process_join", [&] { return mpx_process_join(p, -1); },
                                      [&] { return mpx_process_destroy(p); });
  // destroy does not signal the child; end it, and let the library reap it.
  kill(static_cast<pid_t>(pid), SIGKILL);
  for (int i = 0; i < 300; ++i) {
    size_t none = 0;
    mpx_active_children(nullptr, &none);
    if (waitpid(static_cast<pid_t>(pid), nullptr, WNOHANG) < 0 && errno == ECHILD) break;
    mpxt::sleep_ms(10);
  }
}

TEST(CapiDestroyWhileBlocked, OtherHandlesToTheSameObjectKeepWorking) {
  auto ev = mpxt::make_event();
  std::string tok = mpxt::token_of(mpx_event_token, ev.get());
  mpx_event *h = nullptr;
  ASSERT_MPX_OK(mpx_event_attach(&h, tok.c_str()));
  expect_destroy_wakes_blocked_thread("mpx_event_wait on a second handle", [&] { return mpx_event_wait(h, -1); },
                                      [&] { return mpx_event_destroy(h); });
  // A waiter on the surviving handle is woken by a set from another process.
  mpxt::Child setter = mpxt::Child::fork([&] {
    mpxt::sleep_ms(50);
    CHILD_MPX_OK(mpx_event_set(ev.get()));
    return 0;
  });
  EXPECT_MPX_OK(mpx_event_wait(ev.get(), 5000));
  EXPECT_TRUE(setter.wait().ok());
}
