/* queues.c - the producer/consumer lesson in C: two producers, two consumers, one Queue;
 * a bounded queue's timeouts; a JoinableQueue; an item larger than the ring.
 *
 * Build and run from the repository root, once the library is built:
 *   cc -std=c99 -Wall -Wextra docs/examples/queues.c -I include -L build/default/src -lmpx \
 *      -Wl,-rpath,$PWD/build/default/src -o /tmp/queues && /tmp/queues
 */
#define _POSIX_C_SOURCE 200809L

#include <mpx/mpx.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
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

#define PRODUCERS 2
#define CONSUMERS 2
#define ITEMS 20000 /* per producer */

/* An item: who made it and its number. A zero-length item is the "no more work" sentinel. */
struct item {
  int producer;
  int seq;
};

static pid_t start(void) {
  fflush(stdout);
  return fork();
}

static int reap(pid_t pid) {
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static int producer(mpx_queue *q, int id) {
  for (int i = 0; i < ITEMS; ++i) {
    struct item it = {id, i};
    CHECK(mpx_queue_put(q, &it, sizeof it, MPX_INFINITE));
  }
  return 0; /* no feeder thread: every item is in shared memory already */
}

/* Consume until the sentinel; report how many items came and check each producer's order. */
static int consumer(mpx_queue *q, mpx_queue *results) {
  int count = 0, last[PRODUCERS];
  for (int p = 0; p < PRODUCERS; ++p) last[p] = -1;
  for (;;) {
    struct item it;
    size_t len = 0;
    CHECK(mpx_queue_get_into(q, &it, sizeof it, &len, MPX_INFINITE));
    if (len == 0) break; /* sentinel */
    if (it.seq <= last[it.producer]) {
      fprintf(stderr, "producer %d's items out of order\n", it.producer);
      return 1;
    }
    last[it.producer] = it.seq;
    ++count;
  }
  CHECK(mpx_queue_put(results, &count, sizeof count, MPX_INFINITE));
  return 0;
}

static int producer_consumer(void) {
  printf("producer/consumer: %d producers x %d items, %d consumers\n", PRODUCERS, ITEMS, CONSUMERS);
  mpx_queue *q, *results;
  CHECK(mpx_queue_create(&q, NULL));
  CHECK(mpx_queue_create(&results, NULL));
  pid_t pids[PRODUCERS + CONSUMERS];
  for (int c = 0; c < CONSUMERS; ++c)
    if ((pids[c] = start()) == 0) _exit(consumer(q, results));
  for (int p = 0; p < PRODUCERS; ++p)
    if ((pids[CONSUMERS + p] = start()) == 0) _exit(producer(q, p));
  for (int p = 0; p < PRODUCERS; ++p)
    if (reap(pids[CONSUMERS + p]) != 0) return 1;
  for (int c = 0; c < CONSUMERS; ++c) CHECK(mpx_queue_put(q, NULL, 0, MPX_INFINITE)); /* one sentinel each */
  int total = 0;
  for (int c = 0; c < CONSUMERS; ++c) {
    int n = 0;
    size_t len = 0;
    CHECK(mpx_queue_get_into(results, &n, sizeof n, &len, 5000));
    printf("  a consumer got %d items\n", n);
    total += n;
  }
  for (int c = 0; c < CONSUMERS; ++c)
    if (reap(pids[c]) != 0) return 1;
  printf("  %d items delivered, %d expected\n", total, PRODUCERS * ITEMS);
  mpx_queue_destroy(results);
  mpx_queue_destroy(q);
  return total == PRODUCERS * ITEMS ? 0 : 1;
}

static int bounded(void) {
  printf("a queue of maxsize 2:\n");
  mpx_queue_options o;
  CHECK(mpx_queue_options_init(&o, sizeof o));
  o.maxsize = 2;
  mpx_queue *q;
  CHECK(mpx_queue_create(&q, &o));
  CHECK(mpx_queue_put(q, "a", 1, 0));
  CHECK(mpx_queue_put(q, "b", 1, 0));
  int full = 0;
  CHECK(mpx_queue_full(q, &full));
  int rc = mpx_queue_put(q, "c", 1, 100);
  printf("  full=%d; put(100 ms) on a full queue: %s\n", full, mpx_error_name(rc));
  char buf[4];
  size_t len = 0;
  CHECK(mpx_queue_get_into(q, buf, sizeof buf, &len, 0));
  CHECK(mpx_queue_get_into(q, buf, sizeof buf, &len, 0));
  rc = mpx_queue_get_into(q, buf, sizeof buf, &len, 0);
  printf("  get_nowait on an empty queue: %s\n", mpx_error_name(rc));
  CHECK(mpx_queue_close(q));
  rc = mpx_queue_put(q, "d", 1, 0);
  printf("  put after close: %s\n", mpx_error_name(rc));
  mpx_queue_destroy(q);
  return 0;
}

static int joinable(void) {
  printf("a JoinableQueue:\n");
  mpx_queue_options o;
  CHECK(mpx_queue_options_init(&o, sizeof o));
  o.flags = MPX_QUEUE_JOINABLE;
  mpx_queue *q;
  CHECK(mpx_queue_create(&q, &o));
  for (int i = 0; i < 5; ++i) CHECK(mpx_queue_put(q, &i, sizeof i, MPX_INFINITE));
  pid_t worker = start();
  if (worker == 0) {
    for (int i = 0; i < 5; ++i) {
      int v;
      size_t len;
      CHECK(mpx_queue_get_into(q, &v, sizeof v, &len, MPX_INFINITE));
      nanosleep(&(struct timespec){0, 2000000}, NULL); /* the work */
      CHECK(mpx_queue_task_done(q));
    }
    _exit(0);
  }
  CHECK(mpx_queue_join(q, 5000));
  uint64_t left = 0;
  CHECK(mpx_queue_unfinished(q, &left));
  printf("  join returned: every item processed (%llu unfinished)\n", (unsigned long long)left);
  int rc = mpx_queue_task_done(q);
  printf("  one task_done too many: %s\n", mpx_error_name(rc));
  mpx_queue_destroy(q);
  return reap(worker);
}

static int large_item(void) {
  const size_t size = 8u << 20; /* 8 MiB through a 1 MiB ring: it travels in chunks */
  printf("an item of %zu MiB through a %llu KiB ring:\n", size >> 20,
         (unsigned long long)(MPX_QUEUE_DEFAULT_CAPACITY >> 10));
  mpx_queue *q;
  CHECK(mpx_queue_create(&q, NULL));
  unsigned char *data = malloc(size);
  if (!data) return 1;
  for (size_t i = 0; i < size; ++i) data[i] = (unsigned char)(i * 7);
  pid_t child = start();
  if (child == 0) {
    CHECK(mpx_queue_put(q, data, size, MPX_INFINITE));
    _exit(0);
  }
  void *got = NULL;
  size_t len = 0;
  CHECK(mpx_queue_get(q, &got, &len, 10000));
  printf("  received %zu bytes, %s\n", len, len == size && memcmp(got, data, size) == 0 ? "identical" : "DIFFERENT");
  int ok = len == size && memcmp(got, data, size) == 0;
  mpx_free(got);
  free(data);
  mpx_queue_destroy(q);
  return reap(child) == 0 && ok ? 0 : 1;
}

int main(void) {
  if (producer_consumer() || bounded() || joinable() || large_item()) return 1;
  printf("done\n");
  return 0;
}
