/* pipes.c - Pipe and Connection in C: a request/reply child, a one-way pipe, end of stream,
 * a large message, descriptor passing, and wait() over connections and a process.
 *
 * Build and run from the repository root, once the library is built:
 *   cc -std=c99 -Wall -Wextra docs/examples/pipes.c -I include -L build/default/src -lmpx \
 *      -Wl,-rpath,$PWD/build/default/src -o /tmp/pipes && /tmp/pipes
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

static pid_t start(void) {
  fflush(stdout);
  return fork();
}

static int reap(pid_t pid) {
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* The child answers each request with it upper-cased, until the parent closes its end. */
static int upper_server(mpx_conn *c) {
  char buf[256];
  for (;;) {
    size_t len = 0;
    int rc = mpx_conn_recv_into(c, buf, sizeof buf, &len, MPX_INFINITE);
    if (rc == MPX_EOF) return 0; /* the parent closed: a clean end */
    CHECK(rc);
    for (size_t i = 0; i < len; ++i)
      if (buf[i] >= 'a' && buf[i] <= 'z') buf[i] = (char)(buf[i] - 'a' + 'A');
    CHECK(mpx_conn_send(c, buf, len));
  }
}

static int request_reply(void) {
  printf("request/reply over a duplex Pipe:\n");
  mpx_conn *mine, *theirs;
  CHECK(mpx_pipe(1, NULL, &mine, &theirs));
  pid_t child = start();
  if (child == 0) {
    mpx_conn_destroy(mine);
    _exit(upper_server(theirs));
  }
  mpx_conn_destroy(theirs);
  const char *words[] = {"hello", "", "pipes"};
  for (int i = 0; i < 3; ++i) {
    CHECK(mpx_conn_send(mine, words[i], strlen(words[i])));
    char buf[256];
    size_t len = 0;
    CHECK(mpx_conn_recv_into(mine, buf, sizeof buf - 1, &len, 5000));
    buf[len] = '\0';
    printf("  sent \"%s\", got \"%s\" (%zu bytes)\n", words[i], buf, len);
  }
  mpx_conn_destroy(mine); /* the child sees MPX_EOF and exits 0 */
  return reap(child);
}

static int one_way(void) {
  printf("a one-way Pipe(duplex=0): the first end receives, the second sends\n");
  mpx_conn *r, *w;
  CHECK(mpx_pipe(0, NULL, &r, &w));
  int rc = mpx_conn_send(r, "x", 1);
  printf("  send on the receiving end: %s\n", mpx_error_name(rc));
  char big[100];
  memset(big, 'z', sizeof big);
  CHECK(mpx_conn_send(w, big, sizeof big));
  char small[10];
  size_t len = 0;
  rc = mpx_conn_recv_into(r, small, sizeof small, &len, 1000);
  printf("  recv_into a 10-byte buffer: %s, %zu bytes needed\n", mpx_error_name(rc), len);
  void *msg = NULL;
  CHECK(mpx_conn_recv(r, 0, &msg, &len, 1000)); /* the message waited for a bigger buffer */
  printf("  then recv: %zu bytes\n", len);
  mpx_free(msg);
  rc = mpx_conn_poll(r, 100);
  printf("  poll(100 ms) with nothing sent: %s\n", mpx_error_name(rc));
  mpx_conn_destroy(w);
  rc = mpx_conn_recv(r, 0, &msg, &len, 1000);
  printf("  recv after the writer closed: %s\n", mpx_error_name(rc));
  mpx_conn_destroy(r);
  return 0;
}

static int large_message(void) {
  const size_t size = 64u << 20;
  printf("a %zu MiB message:\n", size >> 20);
  mpx_conn *a, *b;
  CHECK(mpx_pipe(1, NULL, &a, &b));
  pid_t child = start();
  if (child == 0) {
    unsigned char *data = malloc(size);
    if (!data) _exit(1);
    for (size_t i = 0; i < size; ++i) data[i] = (unsigned char)(i % 251);
    CHECK(mpx_conn_send(b, data, size));
    _exit(0);
  }
  void *msg = NULL;
  size_t len = 0;
  CHECK(mpx_conn_recv(a, 0, &msg, &len, 10000));
  const unsigned char *m = msg;
  int ok = len == size;
  for (size_t i = 0; ok && i < size; ++i) ok = m[i] == (unsigned char)(i % 251);
  printf("  received %zu bytes, %s\n", len, ok ? "identical" : "DIFFERENT");
  mpx_free(msg);
  mpx_conn_destroy(a);
  mpx_conn_destroy(b);
  return reap(child) == 0 && ok ? 0 : 1;
}

static int pass_descriptor(void) {
  printf("descriptor passing: the child writes to a pipe it received over a connection\n");
  mpx_conn *a, *b;
  CHECK(mpx_pipe(1, NULL, &a, &b));
  pid_t child = start(); /* started before the pipe exists: it cannot have inherited it */
  if (child == 0) {
    int fd = -1;
    size_t n = 1;
    CHECK(mpx_conn_recv_fds(b, &fd, &n, 5000));
    const char note[] = "written through a passed descriptor";
    if (write(fd, note, sizeof note) != (ssize_t)sizeof note) _exit(1);
    close(fd);
    _exit(0);
  }
  int p[2];
  if (pipe(p) != 0) return 1;
  CHECK(mpx_conn_send_fds(a, &p[1], 1));
  close(p[1]);
  char buf[64] = {0};
  ssize_t got = read(p[0], buf, sizeof buf - 1);
  close(p[0]);
  printf("  read %zd bytes: \"%s\"\n", got, buf);
  mpx_conn_destroy(a);
  mpx_conn_destroy(b);
  return reap(child);
}

static void sleeper(void *arg) {
  (void)arg;
  nanosleep(&(struct timespec){0, 200000000}, NULL);
}

static int wait_many(void) {
  printf("wait() over two connections and a process:\n");
  mpx_conn *a1, *b1, *a2, *b2;
  CHECK(mpx_pipe(1, NULL, &a1, &b1));
  CHECK(mpx_pipe(1, NULL, &a2, &b2));
  mpx_process_options o;
  CHECK(mpx_process_options_init(&o, sizeof o));
  o.method = MPX_START_FORK;
  o.fn = sleeper;
  mpx_process *p;
  CHECK(mpx_process_create(&p, &o));
  CHECK(mpx_process_start(p));
  CHECK(mpx_conn_send(b2, "ready", 5));
  mpx_wait_object objs[3] = {{MPX_WAIT_CONN, -1, a1, 0}, {MPX_WAIT_CONN, -1, a2, 0}, {MPX_WAIT_PROCESS, -1, p, 0}};
  size_t nready = 0;
  CHECK(mpx_wait(objs, 3, 1000, &nready));
  printf("  %zu ready: conn1=%d conn2=%d process=%d\n", nready, objs[0].ready, objs[1].ready, objs[2].ready);
  void *msg;
  size_t len;
  CHECK(mpx_conn_recv(a2, 0, &msg, &len, 0));
  mpx_free(msg);
  objs[1].handle = a2;
  CHECK(mpx_wait(objs, 3, 5000, &nready)); /* now only the process can end the wait */
  printf("  then %zu ready: conn1=%d conn2=%d process=%d\n", nready, objs[0].ready, objs[1].ready, objs[2].ready);
  CHECK(mpx_process_join(p, MPX_INFINITE));
  mpx_process_destroy(p);
  mpx_conn_destroy(a1);
  mpx_conn_destroy(b1);
  mpx_conn_destroy(a2);
  mpx_conn_destroy(b2);
  return 0;
}

int main(void) {
  if (request_reply() || one_way() || large_message() || pass_descriptor() || wait_many()) return 1;
  printf("done\n");
  return 0;
}
