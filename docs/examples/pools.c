/* pools.c - the seeds' pool programs in C: map of squares, apply_async with a callback, a
 * starmap (the arguments in a struct), imap with progress; then what Python's Pool cannot do:
 * a worker killed mid-task fails only its task, and a task timeout.
 *
 * Build and run from the repository root, once the library is built:
 *   cc -std=c99 -Wall -Wextra docs/examples/pools.c -I include -L build/default/src -lmpx \
 *      -Wl,-rpath,$PWD/build/default/src -o /tmp/pools && /tmp/pools
 */
#define _POSIX_C_SOURCE 200809L

#include <mpx/mpx.h>

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#define CHECK(call)                                                                             \
  do {                                                                                          \
    int rc_ = (call);                                                                           \
    if (rc_ < 0) {                                                                              \
      fprintf(stderr, "%s: %s: %s\n", #call, mpx_error_name(rc_), mpx_last_error_message()); \
      return 1;                                                                                 \
    }                                                                                           \
  } while (0)

#define EXPECT(cond)                                  \
  do {                                                \
    if (!(cond)) {                                    \
      fprintf(stderr, "failed: %s\n", #cond);         \
      return 1;                                       \
    }                                                 \
  } while (0)

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* ---- task functions: they run in the workers ----------------------------------------- */

/* Tasks read their argument from bytes and write their result as bytes. */
static int square(const void *arg, size_t size, mpx_task_out *out) {
  long long x;
  if (size != sizeof x) {
    mpx_task_error(out, "square wants one long long");
    return 22;
  }
  memcpy(&x, arg, sizeof x);
  x *= x;
  return mpx_task_return(out, &x, sizeof x);
}

/* starmap: each item carries several arguments, so it is a struct. */
struct power_args {
  long long base;
  int exp;
  int pad;
};

static int power(const void *arg, size_t size, mpx_task_out *out) {
  struct power_args a;
  long long r = 1;
  if (size != sizeof a) return 22;
  memcpy(&a, arg, sizeof a);
  for (int i = 0; i < a.exp; ++i) r *= a.base;
  return mpx_task_return(out, &r, sizeof r);
}

static int slow_square(const void *arg, size_t size, mpx_task_out *out) {
  sleep_ms(10);
  return square(arg, size, out);
}

/* Created before the pool, so that every forked worker has it: where doomed() says who it is. */
static mpx_queue *g_pids;

static int doomed(const void *arg, size_t size, mpx_task_out *out) {
  long long pid = getpid();
  (void)arg, (void)size, (void)out;
  mpx_queue_put(g_pids, &pid, sizeof pid, MPX_INFINITE);
  sleep_ms(60000);
  return 0;
}

static int sleepy(const void *arg, size_t size, mpx_task_out *out) {
  (void)arg, (void)size, (void)out;
  sleep_ms(60000);
  return 0;
}

/* ---- the callback: it runs on one of the pool's threads, once the job has ended -------- */

struct callback_state {
  long long value;
  int ok;
  mpx_event *done; /* an mpx Event works between threads too */
};

static void on_square(void *ctx, mpx_job *job) {
  struct callback_state *st = ctx;
  const void *data;
  size_t n;
  st->ok = mpx_job_result(job, 0, &data, &n) == MPX_OK && n == sizeof st->value;
  if (st->ok) memcpy(&st->value, data, n);
  mpx_event_set(st->done);
}

/* ---- the programs --------------------------------------------------------------------- */

static long long result_ll(mpx_job *job, size_t i) {
  const void *data;
  size_t n;
  long long v = -1;
  if (mpx_job_result(job, i, &data, &n) == MPX_OK && n == sizeof v) memcpy(&v, data, n);
  return v;
}

static int programs(mpx_pool *pool) {
  /* 1. Pool.map of squares: items packed side by side, automatic chunksize. */
  long long xs[10];
  for (int i = 0; i < 10; ++i) xs[i] = i;
  mpx_map m;
  CHECK(mpx_map_init(&m, sizeof m));
  m.fn = square; /* fork workers: by pointer */
  m.data = xs;
  m.item_size = sizeof xs[0];
  m.count = 10;
  mpx_job *job;
  CHECK(mpx_pool_map(pool, &m, &job));
  CHECK(mpx_job_wait(job, 10000));
  printf("map:");
  for (size_t i = 0; i < 10; ++i) {
    printf(" %lld", result_ll(job, i));
    EXPECT(result_ll(job, i) == (long long)(i * i));
  }
  printf("\n");
  mpx_job_destroy(job);

  /* 2. apply_async with a callback. */
  struct callback_state st = {0, 0, NULL};
  CHECK(mpx_event_create(&st.done));
  long long twelve = 12;
  mpx_task t;
  CHECK(mpx_task_init(&t, sizeof t));
  t.fn = square;
  t.arg = &twelve;
  t.arg_size = sizeof twelve;
  t.callback = on_square;
  t.ctx = &st;
  CHECK(mpx_pool_apply_async(pool, &t, &job));
  CHECK(mpx_job_wait(job, 10000));
  CHECK(mpx_event_wait(st.done, 10000)); /* the callback runs just after the job is ready */
  printf("apply_async: %lld, callback got %lld\n", result_ll(job, 0), st.value);
  EXPECT(st.ok && st.value == 144 && result_ll(job, 0) == 144);
  mpx_job_destroy(job);
  mpx_event_destroy(st.done);

  /* 3. starmap: each item a struct of arguments. */
  struct power_args args[3] = {{2, 10, 0}, {3, 3, 0}, {10, 2, 0}};
  CHECK(mpx_map_init(&m, sizeof m));
  m.fn = power;
  m.data = args;
  m.item_size = sizeof args[0];
  m.count = 3;
  CHECK(mpx_pool_map(pool, &m, &job));
  CHECK(mpx_job_wait(job, 10000));
  printf("starmap: %lld %lld %lld\n", result_ll(job, 0), result_ll(job, 1), result_ll(job, 2));
  EXPECT(result_ll(job, 0) == 1024 && result_ll(job, 1) == 27 && result_ll(job, 2) == 100);
  mpx_job_destroy(job);

  /* 4. imap with progress: items in order as they end, a report every quarter. */
  long long ys[200];
  for (int i = 0; i < 200; ++i) ys[i] = i;
  CHECK(mpx_map_init(&m, sizeof m));
  m.fn = slow_square;
  m.flags = MPX_MAP_ORDERED;
  m.data = ys;
  m.item_size = sizeof ys[0];
  m.count = 200;
  m.chunksize = 4;
  CHECK(mpx_pool_map(pool, &m, &job));
  long long sum = 0;
  size_t index, given = 0;
  int rc;
  while ((rc = mpx_job_next(job, MPX_INFINITE, &index)) == MPX_OK) {
    sum += result_ll(job, index);
    if (++given % 50 == 0) {
      mpx_progress p;
      p.size = sizeof p;
      CHECK(mpx_job_progress(job, &p));
      printf("imap: %3llu/%llu items ended, %.0f items/s, eta %.2f s\n", (unsigned long long)p.done,
             (unsigned long long)p.total, p.rate, p.eta_s);
    }
  }
  EXPECT(rc == MPX_EOF && given == 200);
  printf("imap: sum of squares %lld\n", sum);
  EXPECT(sum == 2646700); /* sum of i*i for i < 200 */
  mpx_job_destroy(job);

  /* 5. A worker killed mid-task: only that task fails (MPX_EWORKERDIED), the pool goes on. */
  CHECK(mpx_task_init(&t, sizeof t));
  t.fn = doomed;
  CHECK(mpx_pool_apply_async(pool, &t, &job));
  long long pid = 0;
  size_t len;
  CHECK(mpx_queue_get_into(g_pids, &pid, sizeof pid, &len, 10000));
  kill((pid_t)pid, SIGKILL);
  CHECK(mpx_job_wait(job, 10000));
  int code = 0, worker_exit = 0;
  char why[256];
  len = sizeof why;
  CHECK(mpx_job_error(job, 0, &code, &worker_exit, why, &len));
  printf("killed worker: %s (exit code %d): %s\n", mpx_error_name(code), worker_exit, why);
  EXPECT(code == MPX_EWORKERDIED && worker_exit == -SIGKILL);
  mpx_job_destroy(job);
  long long five = 5;
  void *r;
  size_t n;
  CHECK(mpx_task_init(&t, sizeof t));
  t.fn = square;
  t.arg = &five;
  t.arg_size = sizeof five;
  CHECK(mpx_pool_apply(pool, &t, &r, &n));
  printf("and then apply: %lld\n", *(long long *)r);
  mpx_free(r);

  /* 6. A task timeout: the task fails with MPX_ETIMEDOUT, its worker is killed and replaced. */
  CHECK(mpx_task_init(&t, sizeof t));
  t.fn = sleepy;
  t.timeout_ms = 200;
  rc = mpx_pool_apply(pool, &t, &r, &n);
  printf("timeout: %s: %s\n", mpx_error_name(rc), mpx_last_error_message());
  EXPECT(rc == MPX_ETIMEDOUT);
  return 0;
}

int main(void) {
  CHECK(mpx_queue_create(&g_pids, NULL));
  mpx_pool_options o;
  CHECK(mpx_pool_options_init(&o, sizeof o));
  o.workers = 2;
  mpx_pool *pool;
  CHECK(mpx_pool_create(&pool, &o));
  int failed = programs(pool);
  /* Python's `with Pool() as p:` then p.join(): no more tasks, wait for the workers. */
  CHECK(mpx_pool_close(pool));
  CHECK(mpx_pool_join(pool, 10000));
  mpx_pool_stats s;
  s.size = sizeof s;
  CHECK(mpx_pool_stats_get(pool, &s));
  printf("stats: %llu items succeeded, %llu failed; %llu workers started, %llu died\n",
         (unsigned long long)s.tasks_succeeded, (unsigned long long)s.tasks_failed,
         (unsigned long long)s.workers_started, (unsigned long long)s.workers_died);
  mpx_pool_destroy(pool);
  mpx_queue_destroy(g_pids);
  if (failed) return 1;
  printf("ok\n");
  return 0;
}
