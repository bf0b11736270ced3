/* managers.c - a manager shared by processes: the seeds' dict-and-list program, in C.
 *
 * The parent starts a manager server (a child process), then ten worker processes. Each
 * worker connects, writes its entry into a shared dict, appends to a shared list, bumps a
 * counter under a manager lock and sends a line through a managed queue; the parent reads
 * everything back. Build: cc -std=c99 managers.c -lmpx */
#include <mpx/mpx.h>
#include <stdio.h>
#include <string.h>

#define CHECK(call)                                                                       \
  do {                                                                                    \
    int rc_ = (call);                                                                     \
    if (rc_ < 0) {                                                                        \
      fprintf(stderr, "%s: %s (%s)\n", #call, mpx_last_error_message(), mpx_error_name(rc_)); \
      return 1;                                                                           \
    }                                                                                     \
  } while (0)

static char address[256];

/* Named objects: every client that asks for "results" gets the same dict. */
static int open_named(mpx_mclient *c, int type, const char *name, mpx_proxy **out) {
  mpx_mobj_options o;
  mpx_mobj_options_init(&o, sizeof o);
  o.name = name;
  o.flags = MPX_MOBJ_OPEN_EXISTING;
  return mpx_proxy_create(c, type, &o, out);
}

static int work(int i) {
  mpx_mclient *c;
  mpx_proxy *d, *l, *lock, *q;
  char key[16], val[32];
  CHECK(mpx_manager_connect(&c, address, NULL)); /* the authkey is inherited from the parent */
  CHECK(open_named(c, MPX_MOBJ_DICT, "results", &d));
  CHECK(open_named(c, MPX_MOBJ_LIST, "order", &l));
  CHECK(open_named(c, MPX_MOBJ_LOCK, "lock", &lock));
  CHECK(open_named(c, MPX_MOBJ_QUEUE, "lines", &q));
  snprintf(key, sizeof key, "%d", i);
  snprintf(val, sizeof val, "%d squared is %d", i, i * i);
  CHECK(mpx_mdict_set(d, key, val, strlen(val)));
  CHECK(mpx_mlist_append(l, key, strlen(key)));
  {
    void *v;
    size_t n;
    int count = 0;
    CHECK(mpx_mlock_acquire(lock, -1)); /* read-modify-write under the manager's lock */
    if (mpx_mdict_get(d, "count", &v, &n) == 0) {
      memcpy(&count, v, sizeof count);
      mpx_free(v);
    }
    ++count;
    CHECK(mpx_mdict_set(d, "count", &count, sizeof count));
    CHECK(mpx_mlock_release(lock));
  }
  CHECK(mpx_mqueue_put(q, val, strlen(val), -1));
  mpx_mclient_destroy(c); /* proxies made through it are released with it */
  return 0;
}

static void worker(void *arg) {
  if (work((int)(size_t)arg) != 0) _Exit(1);
}

int main(void) {
  mpx_manager *m;
  mpx_mclient *c;
  mpx_proxy *d, *l, *q;
  mpx_process *procs[10];
  size_t len = sizeof address, i, n;
  void *v;
  int count = 0;

  CHECK(mpx_manager_start(&m, NULL)); /* a server process on a fresh abstract unix socket */
  CHECK(mpx_manager_address(m, address, &len));
  CHECK(mpx_manager_connect(&c, address, NULL));
  CHECK(open_named(c, MPX_MOBJ_DICT, "results", &d));
  CHECK(open_named(c, MPX_MOBJ_LIST, "order", &l));
  CHECK(open_named(c, MPX_MOBJ_QUEUE, "lines", &q));

  for (i = 0; i < 10; ++i) {
    mpx_process_options po;
    mpx_process_options_init(&po, sizeof po);
    po.method = MPX_START_FORK;
    po.fn = worker;
    po.arg = (void *)i;
    CHECK(mpx_process_create(&procs[i], &po));
    CHECK(mpx_process_start(procs[i]));
  }
  for (i = 0; i < 10; ++i) {
    int code = -1;
    CHECK(mpx_process_join(procs[i], -1));
    CHECK(mpx_process_exitcode(procs[i], &code));
    if (code != 0) {
      fprintf(stderr, "worker %zu exited with %d\n", i, code);
      return 1;
    }
    mpx_process_destroy(procs[i]);
  }

  for (i = 0; i < 10; ++i) {
    CHECK(mpx_mqueue_get(q, &v, &n, 1000));
    printf("line: %.*s\n", (int)n, (const char *)v);
    mpx_free(v);
  }
  CHECK(mpx_mdict_get(d, "7", &v, &n));
  printf("results[\"7\"] = %.*s\n", (int)n, (const char *)v);
  mpx_free(v);
  CHECK(mpx_mdict_get(d, "count", &v, &n));
  memcpy(&count, v, sizeof count);
  mpx_free(v);
  CHECK(mpx_mlist_len(l, &n));
  CHECK(mpx_mlist_sort(l));
  CHECK(mpx_mlist_reverse(l));
  CHECK(mpx_mlist_get(l, 0, &v, &len));
  printf("count = %d, %zu entries in the list, largest key %.*s\n", count, n, (int)len, (const char *)v);
  mpx_free(v);
  if (count != 10 || n != 10) return 1;

  mpx_mclient_destroy(c);
  CHECK(mpx_manager_shutdown(m, 1000));
  mpx_manager_destroy(m);
  return 0;
}
