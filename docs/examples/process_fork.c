/* process_fork.c - the fork start method and the lifecycle of a process, Python's way:
 * exit codes, join with a timeout, terminate, close vs destroy, the sentinel, a daemon child
 * started from a thread, active_children, cpu_count and the authkey.
 *
 * Build and run from the repository root, once the library is built:
 *   cc -std=c99 -pthread -Wall -Wextra docs/examples/process_fork.c -I include -L build/default/src -lmpx \
 *      -Wl,-rpath,$PWD/build/default/src -o /tmp/process_fork && /tmp/process_fork
 */
#define _POSIX_C_SOURCE 200809L

#include <mpx/mpx.h>

#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
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

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* ---- children ------------------------------------------------------------------------- */

/* Runs in the child, with a copy of the parent's memory: arg points into that copy. */
static void greet(void *arg) {
  char name[64];
  size_t len = sizeof name;
  int64_t parent = 0;
  mpx_current_name(name, &len);
  mpx_parent_pid(&parent);
  printf("  child: I am %s, pid %d, parent %lld, told \"%s\"\n", name, (int)getpid(), (long long)parent,
         (const char *)arg);
} /* returning is exit code 0 */

static void exit_seven(void *arg) {
  (void)arg;
  exit(7);
}

static void sleep_long(void *arg) {
  (void)arg;
  sleep(30);
}

/* Creates and starts a fork child running fn(arg). */
static int start(mpx_process **out, mpx_process_fn fn, void *arg, const char *name, int daemon) {
  mpx_process_options o;
  CHECK(mpx_process_options_init(&o, sizeof o));
  o.method = MPX_START_FORK; /* also the default when fn is set */
  o.fn = fn;
  o.arg = arg;
  o.name = name; /* NULL: "Process-N" */
  o.daemon = daemon;
  CHECK(mpx_process_create(out, &o));
  CHECK(mpx_process_start(*out));
  return 0;
}

static int exitcode_of(mpx_process *p) {
  int code = 0;
  if (mpx_process_exitcode(p, &code) != MPX_OK) return 999; /* MPX_EAGAIN: still running */
  return code;
}

/* ---- 1. exit codes -------------------------------------------------------------------- */

static int exit_codes(void) {
  printf("exit codes:\n");
  mpx_process *p;
  if (start(&p, greet, "hello from the parent", NULL, 0)) return 1;
  CHECK(mpx_process_join(p, MPX_INFINITE));
  char name[64];
  size_t len = sizeof name;
  CHECK(mpx_process_name(p, name, &len));
  printf("  %s returned: exit code %d\n", name, exitcode_of(p));
  CHECK(mpx_process_close(p)); /* ended: close frees the object */

  if (start(&p, exit_seven, NULL, "sevener", 0)) return 1;
  CHECK(mpx_process_join(p, MPX_INFINITE));
  printf("  sevener called exit(7): exit code %d\n", exitcode_of(p));
  CHECK(mpx_process_close(p));
  return 0;
}

/* ---- 2. join timeout, terminate, close vs destroy, the sentinel ------------------------- */

static int lifecycle(void) {
  printf("lifecycle:\n");
  mpx_process *p;
  if (start(&p, sleep_long, NULL, "sleeper", 0)) return 1;
  int alive = 0;
  CHECK(mpx_process_is_alive(p, &alive));
  int rc = mpx_process_join(p, 100);
  printf("  sleeper alive %d; join(100 ms): %s; exitcode: %s\n", alive, mpx_error_name(rc),
         exitcode_of(p) == 999 ? "not yet (MPX_EAGAIN)" : "?");
  rc = mpx_process_close(p);
  printf("  close while running: %s (the object stays)\n", mpx_error_name(rc));

  /* The sentinel becomes readable when the child ends: poll it beside your own descriptors. */
  int sentinel;
  CHECK(mpx_process_sentinel(p, &sentinel));
  CHECK(mpx_process_terminate(p)); /* SIGTERM, as Python's terminate() */
  struct pollfd pfd = {sentinel, POLLIN, 0};
  int ready = poll(&pfd, 1, 5000);
  CHECK(mpx_process_join(p, MPX_INFINITE));
  printf("  terminate: sentinel readable %d, exit code %d (-SIGTERM)\n", ready == 1, exitcode_of(p));
  CHECK(mpx_process_close(p));

  /* destroy frees the object whatever the child is doing; the library reaps the child later. */
  if (start(&p, sleep_long, NULL, "left alone", 0)) return 1;
  int64_t pid;
  CHECK(mpx_process_pid(p, &pid));
  CHECK(mpx_process_destroy(p));
  printf("  destroy while running: ok; pid %lld still runs (killing it ourselves)\n", (long long)pid);
  kill((pid_t)pid, SIGKILL);
  return 0;
}

/* ---- 3. a daemon child, started from a thread that then ends ---------------------------- */

static int g_pipe[2]; /* the daemon holds the write end: EOF on the read end = it died */

static void daemon_body(void *arg) {
  (void)arg;
  close(g_pipe[0]);
  for (;;) pause(); /* runs until it is killed */
}

static void *thread_main(void *out) {
  mpx_process *d;
  if (start(&d, daemon_body, NULL, "daemon", 1) != 0) return NULL;
  *(mpx_process **)out = d;
  return NULL; /* the thread ends here: the daemon must not die with it */
}

/* A middle process starts the daemon from a thread, checks that the daemon outlives the
 * thread, then exits: the daemon is killed with it (PR_SET_PDEATHSIG), even though nobody
 * ran any cleanup code. */
static void middle(void *arg) {
  (void)arg;
  mpx_process *d = NULL;
  pthread_t t;
  pthread_create(&t, NULL, thread_main, &d);
  pthread_join(t, NULL);
  close(g_pipe[1]);
  sleep_ms(200);
  int alive = 0;
  if (d) mpx_process_is_alive(d, &alive);
  printf("  middle: the thread that started the daemon has ended; daemon alive: %d\n", alive);
  fflush(stdout);
  _exit(alive ? 0 : 1); /* no join, no cleanup */
}

static int daemons(void) {
  printf("daemon:\n");
  if (pipe(g_pipe) != 0) return 1;
  mpx_process *m;
  if (start(&m, middle, NULL, "middle", 0)) return 1;
  close(g_pipe[1]);
  CHECK(mpx_process_join(m, 10000));
  printf("  middle exited with %d\n", exitcode_of(m));
  struct pollfd pfd = {g_pipe[0], POLLIN, 0};
  char c;
  int died = poll(&pfd, 1, 5000) == 1 && read(g_pipe[0], &c, 1) == 0;
  printf("  the daemon died with its parent: %s\n", died ? "yes" : "NO");
  close(g_pipe[0]);
  CHECK(mpx_process_close(m));
  return died ? 0 : 1;
}

/* ---- 4. active_children, cpu_count, authkey -------------------------------------------- */

static int current(void) {
  printf("this process:\n");
  mpx_process *a, *b;
  if (start(&a, sleep_long, NULL, NULL, 0) || start(&b, greet, "short", NULL, 0)) return 1;
  CHECK(mpx_process_join(b, MPX_INFINITE));
  mpx_process *kids[8];
  size_t n = 8;
  CHECK(mpx_active_children(kids, &n));
  char name[64];
  size_t len = sizeof name;
  CHECK(mpx_process_name(kids[0], name, &len));
  printf("  active children: %zu (%s)\n", n, name);
  CHECK(mpx_process_kill(a));
  CHECK(mpx_process_join(a, MPX_INFINITE));
  printf("  after kill: exit code %d\n", exitcode_of(a));
  CHECK(mpx_process_close(a));
  CHECK(mpx_process_close(b));

  int cpus;
  CHECK(mpx_cpu_count(&cpus));
  uint8_t key[MPX_AUTHKEY_SIZE];
  size_t key_len = sizeof key;
  CHECK(mpx_authkey(key, &key_len)); /* inherited by children of every start method */
  len = sizeof name;
  CHECK(mpx_current_name(name, &len));
  printf("  %s: %d CPUs usable, authkey of %zu bytes starting %02x%02x...\n", name, cpus, key_len, key[0],
         key[1]);
  return 0;
}

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (exit_codes() || lifecycle() || daemons() || current()) return 1;
  printf("process_fork: done\n");
  return 0;
}
