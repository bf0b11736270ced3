/* process_forkserver.c - the forkserver start method: a zygote forked early from this
 * process forks each child and runs a named entry point in it, with a byte payload and
 * handed descriptors. Also: the parent a child sees, an entry registered too late for the
 * server, and stopping the server.
 *
 * Build and run from the repository root, once the library is built:
 *   cc -std=c99 -Wall -Wextra docs/examples/process_forkserver.c -I include -L build/default/src -lmpx \
 *      -Wl,-rpath,$PWD/build/default/src -o /tmp/process_forkserver && /tmp/process_forkserver
 */
#define _POSIX_C_SOURCE 200809L

#include <mpx/mpx.h>

#include <stdio.h>
#include <string.h>
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

/* An entry point: the payload is a copy of the bytes the parent gave; the descriptors the
 * parent handed are listed by mpx_handed_fds, under numbers of their own. */
static void square(const void *payload, size_t size) {
  int x = 0;
  if (size == sizeof x) memcpy(&x, payload, sizeof x);
  int fds[4];
  size_t n = 4;
  mpx_handed_fds(fds, &n);
  char name[64];
  size_t len = sizeof name;
  mpx_current_name(name, &len);
  int64_t parent = 0;
  mpx_parent_pid(&parent);
  printf("  %s: pid %d, mpx parent %lld, OS parent %d (the zygote); %d squared, written to fd %d\n", name,
         (int)getpid(), (long long)parent, (int)getppid(), x, n ? fds[0] : -1);
  int y = x * x;
  if (n) (void)!write(fds[0], &y, sizeof y);
} /* returning is exit code 0 */

/* Sleeps for the number of milliseconds in its payload; forever if there is none. */
static void nap(const void *payload, size_t size) {
  int ms = -1;
  if (size == sizeof ms) memcpy(&ms, payload, sizeof ms);
  if (ms < 0)
    for (;;) pause();
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

static void late(const void *payload, size_t size) {
  (void)payload;
  (void)size;
  printf("  late: running in pid %d\n", (int)getpid());
}

static int start_entry(mpx_process **out, uint32_t method, const char *entry, const void *payload, size_t size,
                       const int *fds, size_t fd_count, int daemon) {
  mpx_process_options o;
  CHECK(mpx_process_options_init(&o, sizeof o));
  o.method = method; /* MPX_START_DEFAULT would pick the forkserver for an entry by name */
  o.entry = entry;
  o.payload = payload;
  o.payload_size = size;
  o.fds = fds;
  o.fd_count = fd_count;
  o.daemon = daemon;
  CHECK(mpx_process_create(out, &o));
  return mpx_process_start(*out); /* the caller checks: some starts are meant to fail */
}

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  /* First thing: register the entries, then start the server, so that it is a fork of a
   * small, single-threaded process holding no descriptors its children should not have. */
  CHECK(mpx_register("square", square));
  CHECK(mpx_register("nap", nap));
  CHECK(mpx_forkserver_start());
  int64_t server;
  CHECK(mpx_forkserver_pid(&server));
  printf("forkserver: pid %lld, this process %d\n", (long long)server, (int)getpid());

  int results[2];
  if (pipe(results) != 0) return 1;
  for (int x = 2; x <= 4; ++x) {
    mpx_process *p;
    CHECK(start_entry(&p, MPX_START_FORKSERVER, "square", &x, sizeof x, &results[1], 1, 0));
    CHECK(mpx_process_join(p, 10000));
    int code = -1, y = 0;
    CHECK(mpx_process_exitcode(p, &code));
    if (read(results[0], &y, sizeof y) != sizeof y) return 1;
    printf("  parent: exit code %d, read %d\n", code, y);
    CHECK(mpx_process_close(p));
  }

  /* Names registered after the server started are unknown to it (it is a fork of the past);
   * the fork method, a fork of the present, knows them. */
  CHECK(mpx_register("late", late));
  mpx_process *p;
  int rc = start_entry(&p, MPX_START_FORKSERVER, "late", NULL, 0, NULL, 0, 0);
  printf("late entry with the forkserver: %s\n", mpx_error_name(rc));
  CHECK(mpx_process_destroy(p));
  CHECK(start_entry(&p, MPX_START_FORK, "late", NULL, 0, NULL, 0, 0));
  CHECK(mpx_process_join(p, 10000));
  CHECK(mpx_process_close(p));

  /* Stopping the server kills its daemon children at once; the others go on, but the server
   * was the one to reap them, so their exit codes are lost (they read as 255). */
  mpx_process *d, *q;
  const int forever = -1, ms300 = 300;
  CHECK(start_entry(&d, MPX_START_FORKSERVER, "nap", &forever, sizeof forever, NULL, 0, 1));
  CHECK(start_entry(&q, MPX_START_FORKSERVER, "nap", &ms300, sizeof ms300, NULL, 0, 0));
  CHECK(mpx_forkserver_stop());
  CHECK(mpx_forkserver_pid(&server));
  int alive = 0;
  CHECK(mpx_process_is_alive(q, &alive));
  printf("after mpx_forkserver_stop: server pid %lld; the non-daemon child alive: %d\n", (long long)server,
         alive);
  int dcode, qcode;
  CHECK(mpx_process_join(d, 10000));
  CHECK(mpx_process_join(q, 10000));
  CHECK(mpx_process_exitcode(d, &dcode));
  CHECK(mpx_process_exitcode(q, &qcode));
  printf("  the daemon child, which naps forever, has ended: exit code %d\n", dcode);
  printf("  the other one finished its nap: exit code %d\n", qcode);
  CHECK(mpx_process_close(d));
  CHECK(mpx_process_close(q));
  close(results[0]);
  close(results[1]);
  printf("process_forkserver: done\n");
  return 0;
}
