/*
 * A small program that spawn tests exec. Driven by argv: each argument is one command, run in
 * order; most print `key=value` lines on stdout. Built twice: mpx_test_child_plain (no mpx, so
 * nothing but the kernel and libc touches its descriptors) and mpx_test_child (linked with
 * libmpx, for the commands that use the library).
 *
 *   argv           argc=N, then argv[i]=... for each argument; then exit 0 (the arguments after
 *                  it are data, not commands). With no arguments at all, the same.
 *   fds            fds=0,1,2,... (this program's open descriptors, ascending)
 *   fdtargets      fd<N>=<readlink of /proc/self/fd/N> for each open descriptor
 *   env            env=NAME=VALUE for each environment entry
 *   cwd            cwd=<getcwd()>
 *   ppid           ppid=<getppid()>
 *   cat            copy stdin to stdout until EOF
 *   echo=TEXT      TEXT on stdout;  err=TEXT: TEXT on stderr
 *   spew=N         N bytes of a known pattern on stdout (byte i is 'a' + i % 23)
 *   writefd=N:TEXT TEXT written to descriptor N
 *   sleep=MS       sleep MS milliseconds
 *   block          sleep until killed (gives up and exits 99 after 60 s)
 *   exit=N         exit(N) now;  segv: die of SIGSEGV now
 *   mpx commands (mpx_test_child only; the plain build exits 2):
 *   identity       name=, parent=, daemon=, authkey=<hex> (mpx_current_name, mpx_parent_pid, ...)
 *   event=TOKEN    attach the mpx event TOKEN and set it
 *   start-child    try to start /bin/true through mpx: start=<return code>
 *   handed         handed=<mpx_handed_fds, comma-separated>
 *
 * Exit status: 0 when every command ran, 3 when one failed (a message on stderr).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifdef MPX_TEST_CHILD_MPX
#include "mpx/mpx.h"
#endif

extern char **environ;

static void fail(const char *what) {
  fprintf(stderr, "mpx_test_child: %s: %s\n", what, strerror(errno));
  fflush(NULL);
  _exit(3);
}

static void sleep_ms(long ms) {
  struct timespec ts;
  ts.tv_sec = ms / 1000;
  ts.tv_nsec = (ms % 1000) * 1000000L;
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

static int cmp_int(const void *a, const void *b) {
  const int x = *(const int *)a, y = *(const int *)b;
  return (x > y) - (x < y);
}

/* Open descriptors, ascending, without the directory stream's own. Returns the count. */
static int open_fds(int *out, int cap) {
  DIR *d = opendir("/proc/self/fd");
  struct dirent *e;
  int n = 0, self;
  if (d == NULL) fail("opendir /proc/self/fd");
  self = dirfd(d);
  while ((e = readdir(d)) != NULL) {
    int fd;
    if (e->d_name[0] == '.') continue;
    fd = atoi(e->d_name);
    if (fd != self && n < cap) out[n++] = fd;
  }
  closedir(d);
  qsort(out, (size_t)n, sizeof out[0], cmp_int);
  return n;
}

static void write_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) fail("write");
    p += w;
    n -= (size_t)w;
  }
}

#ifdef MPX_TEST_CHILD_MPX
static void mpx_fail(const char *what, int rc) {
  fprintf(stderr, "mpx_test_child: %s: %s (%s)\n", what, mpx_error_name(rc), mpx_last_error_message());
  fflush(NULL);
  _exit(3);
}
#endif

static int run(const char *cmd) {
  if (strcmp(cmd, "fds") == 0) {
    int fds[4096], n = open_fds(fds, 4096), i;
    printf("fds=");
    for (i = 0; i < n; ++i) printf("%s%d", i ? "," : "", fds[i]);
    printf("\n");
  } else if (strcmp(cmd, "fdtargets") == 0) {
    int fds[4096], n = open_fds(fds, 4096), i;
    for (i = 0; i < n; ++i) {
      char path[64], target[4096];
      ssize_t len;
      snprintf(path, sizeof path, "/proc/self/fd/%d", fds[i]);
      len = readlink(path, target, sizeof target - 1);
      target[len < 0 ? 0 : len] = '\0';
      printf("fd%d=%s\n", fds[i], target);
    }
  } else if (strcmp(cmd, "env") == 0) {
    char **e;
    for (e = environ; *e != NULL; ++e) printf("env=%s\n", *e);
  } else if (strcmp(cmd, "cwd") == 0) {
    char buf[4096];
    if (getcwd(buf, sizeof buf) == NULL) fail("getcwd");
    printf("cwd=%s\n", buf);
  } else if (strcmp(cmd, "ppid") == 0) {
    printf("ppid=%ld\n", (long)getppid());
  } else if (strcmp(cmd, "cat") == 0) {
    char buf[65536];
    fflush(stdout);
    for (;;) {
      ssize_t r = read(0, buf, sizeof buf);
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) fail("read stdin");
      if (r == 0) break;
      write_all(1, buf, (size_t)r);
    }
  } else if (strncmp(cmd, "echo=", 5) == 0) {
    printf("%s\n", cmd + 5);
  } else if (strncmp(cmd, "err=", 4) == 0) {
    fprintf(stderr, "%s\n", cmd + 4);
    fflush(stderr);
  } else if (strncmp(cmd, "spew=", 5) == 0) {
    long n = atol(cmd + 5), i;
    char buf[65536];
    fflush(stdout);
    for (i = 0; i < n;) {
      size_t k = 0;
      while (k < sizeof buf && i < n) buf[k++] = (char)('a' + (i++) % 23);
      write_all(1, buf, k);
    }
  } else if (strncmp(cmd, "writefd=", 8) == 0) {
    char *end = NULL;
    long fd = strtol(cmd + 8, &end, 10);
    if (end == NULL || *end != ':') {
      fprintf(stderr, "mpx_test_child: bad writefd command '%s'\n", cmd);
      return 3;
    }
    write_all((int)fd, end + 1, strlen(end + 1));
  } else if (strncmp(cmd, "sleep=", 6) == 0) {
    sleep_ms(atol(cmd + 6));
  } else if (strcmp(cmd, "block") == 0) {
    int i;
    fflush(NULL);
    for (i = 0; i < 600; ++i) sleep_ms(100);
    fprintf(stderr, "mpx_test_child: block: never killed\n");
    fflush(NULL);
    _exit(99);
  } else if (strncmp(cmd, "exit=", 5) == 0) {
    fflush(NULL);
    exit(atoi(cmd + 5));
  } else if (strcmp(cmd, "segv") == 0) {
    fflush(NULL);
    signal(SIGSEGV, SIG_DFL); /* a sanitizer's handler would turn it into an exit */
    raise(SIGSEGV);
    _exit(98);
#ifdef MPX_TEST_CHILD_MPX
  } else if (strcmp(cmd, "identity") == 0) {
    char name[256];
    size_t len = sizeof name, i;
    int64_t parent = -1;
    int daemon = -1, rc;
    uint8_t key[512];
    size_t key_len = sizeof key;
    if ((rc = mpx_current_name(name, &len)) != MPX_OK) mpx_fail("mpx_current_name", rc);
    if ((rc = mpx_parent_pid(&parent)) != MPX_OK) mpx_fail("mpx_parent_pid", rc);
    if ((rc = mpx_current_daemon(&daemon)) != MPX_OK) mpx_fail("mpx_current_daemon", rc);
    if ((rc = mpx_authkey(key, &key_len)) != MPX_OK) mpx_fail("mpx_authkey", rc);
    printf("name=%s\nparent=%lld\ndaemon=%d\nauthkey=", name, (long long)parent, daemon);
    for (i = 0; i < key_len; ++i) printf("%02x", key[i]);
    printf("\n");
  } else if (strncmp(cmd, "event=", 6) == 0) {
    mpx_event *ev = NULL;
    int rc = mpx_event_attach(&ev, cmd + 6);
    if (rc != MPX_OK) mpx_fail("mpx_event_attach", rc);
    if ((rc = mpx_event_set(ev)) != MPX_OK) mpx_fail("mpx_event_set", rc);
    mpx_event_destroy(ev);
    printf("event=set\n");
  } else if (strcmp(cmd, "handed") == 0) {
    int fds[64];
    size_t n = 64, i;
    int rc = mpx_handed_fds(fds, &n);
    if (rc != MPX_OK) mpx_fail("mpx_handed_fds", rc);
    printf("handed=");
    for (i = 0; i < n; ++i) printf("%s%d", i ? "," : "", fds[i]);
    printf("\n");
  } else if (strcmp(cmd, "start-child") == 0) {
    mpx_process_options o;
    mpx_process *p = NULL;
    int rc = mpx_process_options_init(&o, sizeof o);
    if (rc != MPX_OK) mpx_fail("mpx_process_options_init", rc);
    o.method = MPX_START_SPAWN;
    o.file = "/bin/true";
    rc = mpx_process_create(&p, &o);
    if (rc == MPX_OK) {
      rc = mpx_process_start(p);
      if (rc == MPX_OK) mpx_process_join(p, -1);
      mpx_process_destroy(p);
    }
    printf("start=%d\n", rc);
#endif
  } else {
    fprintf(stderr, "mpx_test_child: unknown or unsupported command '%s'\n", cmd);
    return 2;
  }
  fflush(stdout);
  return 0;
}

static void print_argv(int argc, char **argv) {
  int j;
  printf("argc=%d\n", argc);
  for (j = 0; j < argc; ++j) printf("argv[%d]=%s\n", j, argv[j]);
}

int main(int argc, char **argv) {
  int i;
  if (argc == 1) print_argv(argc, argv);
  for (i = 1; i < argc; ++i) {
    int rc;
    if (strcmp(argv[i], "argv") == 0) {
      print_argv(argc, argv);
      break;
    }
    rc = run(argv[i]);
    if (rc != 0) {
      fflush(NULL);
      return rc;
    }
  }
  fflush(NULL);
  return 0;
}
