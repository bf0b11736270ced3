/* process_spawn.c - the spawn start method: exec a program with argv, an environment, a
 * working directory, stdio redirections and handed descriptors; exec failures reported by
 * start; the identity variables an mpx-aware child reads; terminate.
 *
 * Build and run from the repository root, once the library is built:
 *   cc -std=c99 -Wall -Wextra docs/examples/process_spawn.c -I include -L build/default/src -lmpx \
 *      -Wl,-rpath,$PWD/build/default/src -o /tmp/process_spawn && /tmp/process_spawn
 */
#define _POSIX_C_SOURCE 200809L

#include <mpx/mpx.h>

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define CHECK(call)                                                                             \
  do {                                                                                          \
    int rc_ = (call);                                                                           \
    if (rc_ < 0) {                                                                              \
      fprintf(stderr, "%s: %s: %s\n", #call, mpx_error_name(rc_), mpx_last_error_message()); \
      return 1;                                                                                 \
    }                                                                                           \
  } while (0)

/* Reads fd to EOF into buf (NUL-terminated); returns the length. */
static size_t read_all(int fd, char *buf, size_t cap) {
  size_t n = 0;
  ssize_t r;
  while (n + 1 < cap && (r = read(fd, buf + n, cap - 1 - n)) > 0) n += (size_t)r;
  buf[n] = 0;
  return n;
}

/* Prints each line of text indented, with a prefix. */
static void show(const char *prefix, const char *text) {
  const char *p = text;
  while (*p) {
    const char *e = strchr(p, '\n');
    int len = e ? (int)(e - p) : (int)strlen(p);
    printf("  %s%.*s\n", prefix, len, p);
    p += len + (e ? 1 : 0);
  }
}

static int options(mpx_process_options *o, const char *file, const char *const *argv) {
  CHECK(mpx_process_options_init(o, sizeof *o));
  o->method = MPX_START_SPAWN; /* also the default when file is set */
  o->file = file;              /* searched in PATH when it has no '/' */
  o->argv = argv;              /* NULL: { file, NULL } */
  return 0;
}

/* ---- 1. argv, environment, cwd, a stdout pipe, exit code -------------------------------- */

static int basics(void) {
  printf("argv, env, cwd, stdout pipe:\n");
  const char *const argv[] = {"sh", "-c", "echo \"argv0=$0 arg1=$1 GREETING=$GREETING cwd=$(pwd)\"; exit 3",
                              "my-sh", "first", NULL};
  const char *const env[] = {"GREETING=hello", NULL};
  mpx_process_options o;
  if (options(&o, "sh", argv)) return 1;
  o.env = env;
  o.env_mode = MPX_ENV_EXTEND; /* the parent's environment plus GREETING */
  o.cwd = "/tmp";
  o.stdio[1].mode = MPX_STDIO_PIPE;
  mpx_process *p;
  CHECK(mpx_process_create(&p, &o));
  CHECK(mpx_process_start(p));
  int out;
  CHECK(mpx_process_stdio(p, 1, &out)); /* owned by the process object: do not close it */
  char buf[512];
  read_all(out, buf, sizeof buf);
  CHECK(mpx_process_join(p, 10000));
  int code;
  CHECK(mpx_process_exitcode(p, &code));
  show("child: ", buf);
  printf("  exit code %d\n", code);
  CHECK(mpx_process_close(p));
  return 0;
}

/* ---- 2. stdin pipe, EOF by mpx_process_close_stdio --------------------------------------- */

static int filter(void) {
  printf("stdin and stdout pipes:\n");
  mpx_process_options o;
  const char *const argv[] = {"tr", "a-z", "A-Z", NULL};
  if (options(&o, "tr", argv)) return 1;
  o.stdio[0].mode = MPX_STDIO_PIPE;
  o.stdio[1].mode = MPX_STDIO_PIPE;
  o.stdio[2].mode = MPX_STDIO_NULL;
  mpx_process *p;
  CHECK(mpx_process_create(&p, &o));
  CHECK(mpx_process_start(p));
  int in, out;
  CHECK(mpx_process_stdio(p, 0, &in));
  CHECK(mpx_process_stdio(p, 1, &out));
  const char text[] = "shout this\n";
  if (write(in, text, strlen(text)) < 0) return 1;
  CHECK(mpx_process_close_stdio(p, 0)); /* tr sees EOF and exits */
  char buf[64];
  read_all(out, buf, sizeof buf);
  CHECK(mpx_process_join(p, 10000));
  show("tr: ", buf);
  CHECK(mpx_process_close(p));
  return 0;
}

/* ---- 3. handed descriptors become 3, 4, ...; every other one is closed ---------------------- */

static int handed(void) {
  printf("handed descriptors:\n");
  int results[2];
  if (pipe(results) != 0) return 1;
  int stray = open("/dev/null", O_RDONLY); /* not close-on-exec: a plain exec would leak it */
  char script[256];
  snprintf(script, sizeof script,
           "echo \"fd 3 is the handed pipe\" >&3; for fd in 4 %d; do "
           "[ -e /proc/self/fd/$fd ] && echo \"fd $fd open\" >&3 || echo \"fd $fd closed\" >&3; done",
           stray);
  const char *const argv[] = {"sh", "-c", script, NULL};
  mpx_process_options o;
  if (options(&o, "/bin/sh", argv)) return 1;
  o.fds = &results[1]; /* the write end becomes the child's 3 */
  o.fd_count = 1;
  mpx_process *p;
  CHECK(mpx_process_create(&p, &o));
  CHECK(mpx_process_start(p));
  close(results[1]); /* the child has its own copy: EOF when it exits */
  char buf[256];
  read_all(results[0], buf, sizeof buf);
  CHECK(mpx_process_join(p, 10000));
  printf("  parent: the stray descriptor is %d\n", stray);
  show("child: ", buf);
  CHECK(mpx_process_close(p));
  close(results[0]);
  close(stray);
  return 0;
}

/* ---- 4. exec failures are reported by start ------------------------------------------------ */

static int failures(void) {
  printf("exec failures:\n");
  const char *files[] = {"/no/such/program", "/etc/passwd" /* exists, not executable */};
  for (int i = 0; i < 2; ++i) {
    mpx_process_options o;
    if (options(&o, files[i], NULL)) return 1;
    mpx_process *p;
    CHECK(mpx_process_create(&p, &o));
    int rc = mpx_process_start(p);
    printf("  %s: %s (%s)\n", files[i], mpx_error_name(rc), mpx_last_error_message());
    CHECK(mpx_process_destroy(p));
  }
  return 0;
}

/* ---- 5. the identity variables, with a replaced environment; terminate ------------------------ */

static int identity(void) {
  printf("identity variables (env_mode MPX_ENV_REPLACE with an empty list):\n");
  const char *const argv[] = {"/usr/bin/env", NULL};
  const char *const env[] = {NULL};
  mpx_process_options o;
  if (options(&o, "/usr/bin/env", argv)) return 1;
  o.env = env;
  o.env_mode = MPX_ENV_REPLACE;
  o.name = "worker";
  o.stdio[1].mode = MPX_STDIO_PIPE;
  mpx_process *p;
  CHECK(mpx_process_create(&p, &o));
  CHECK(mpx_process_start(p));
  int out;
  CHECK(mpx_process_stdio(p, 1, &out));
  char buf[1024];
  read_all(out, buf, sizeof buf);
  CHECK(mpx_process_join(p, 10000));
  char *key = strstr(buf, "MPX_AUTHKEY="), *end = key ? strchr(key, '\n') : NULL;
  if (end && end - key > 24) memmove(key + 20, end - 3, strlen(end - 3) + 1); /* shorten the hex */
  if (end && end - key > 24) memcpy(key + 20, "...", 3);
  show("env: ", buf);
  CHECK(mpx_process_close(p));

  printf("terminate:\n");
  const char *const sleep_argv[] = {"sleep", "30", NULL};
  if (options(&o, "sleep", sleep_argv)) return 1;
  CHECK(mpx_process_create(&p, &o));
  CHECK(mpx_process_start(p));
  int rc = mpx_process_join(p, 100);
  CHECK(mpx_process_terminate(p));
  CHECK(mpx_process_join(p, 10000));
  int code;
  CHECK(mpx_process_exitcode(p, &code));
  printf("  sleep 30: join(100 ms) %s; after terminate, exit code %d\n", mpx_error_name(rc), code);
  CHECK(mpx_process_close(p));
  return 0;
}

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (basics() || filter() || handed() || failures() || identity()) return 1;
  printf("process_spawn: done\n");
  return 0;
}
