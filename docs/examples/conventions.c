/* conventions.c - the rules of docs/conventions.md, one by one.
 *
 * Build and run from the repository root, once the library is built:
 *   cc -std=c99 -Wall -Wextra docs/examples/conventions.c -I include -L build/default/src -lmpx \
 *      -Wl,-rpath,$PWD/build/default/src -o /tmp/conventions && /tmp/conventions
 */
#define _POSIX_C_SOURCE 200809L

#include <mpx/mpx.h>

#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static int failures = 0;

/* Print a call's outcome the way the docs recommend: name, description, detail. */
static void show(const char *what, int rc, int expected) {
  if (rc < 0)
    printf("%-38s -> %s (%s): %s\n", what, mpx_error_name(rc), mpx_strerror(rc), mpx_last_error_message());
  else
    printf("%-38s -> %d\n", what, rc);
  if (rc != expected) {
    printf("   UNEXPECTED: wanted %s\n", mpx_error_name(expected));
    ++failures;
  }
}

int main(void) {
  /* Versions: the header's and the library's. */
  printf("header %d.%d.%d, library %s (ABI %d)\n", MPX_VERSION_MAJOR, MPX_VERSION_MINOR, MPX_VERSION_PATCH,
         mpx_version_string(), MPX_ABI_VERSION);
  if (mpx_version() < MPX_VERSION_NUMBER) printf("warning: the library is older than the headers\n");

  /* Options: initialise, then change what you need; zero means default. */
  mpx_lock_options o;
  show("mpx_lock_options_init", mpx_lock_options_init(&o, sizeof o), MPX_OK);
  o.flags = MPX_LOCK_RECURSIVE;
  mpx_lock *rlock = NULL;
  show("mpx_lock_create(RLock)", mpx_lock_create(&rlock, &o), MPX_OK);

  /* A struct that was never initialised has a wrong size field: refused, not misread. */
  mpx_lock_options junk;
  memset(&junk, 0, sizeof junk);
  junk.size = 3;
  mpx_lock *nothing = (mpx_lock *)&junk; /* any value: *out is set to NULL on failure */
  show("mpx_lock_create(bad options)", mpx_lock_create(&nothing, &junk), MPX_EINVAL);
  if (nothing != NULL) ++failures;

  /* Bad input is an error code, never a crash. */
  show("mpx_lock_acquire(NULL)", mpx_lock_acquire(NULL, 0), MPX_EINVAL);
  mpx_event *ev = NULL;
  mpx_event_create(&ev);
  show("mpx_lock_acquire(an event handle)", mpx_lock_acquire((mpx_lock *)ev, 0), MPX_EBADHANDLE);

  /* Timeouts: 0 tries once, n waits n ms, negative (MPX_INFINITE) blocks forever. */
  show("mpx_event_wait(unset, 0 ms)", mpx_event_wait(ev, 0), MPX_ETIMEDOUT);
  show("mpx_event_wait(unset, 20 ms)", mpx_event_wait(ev, 20), MPX_ETIMEDOUT);
  mpx_event_set(ev);
  show("mpx_event_wait(set, MPX_INFINITE)", mpx_event_wait(ev, MPX_INFINITE), MPX_OK);

  /* Strings: caller's buffer, in/out length, MPX_ENOBUFS with the size needed. */
  char small[8], token[MPX_TOKEN_MAX];
  size_t len = sizeof small;
  show("mpx_lock_token(8-byte buffer)", mpx_lock_token(rlock, small, &len), MPX_ENOBUFS);
  printf("   needed %zu bytes\n", len);
  len = sizeof token;
  show("mpx_lock_token", mpx_lock_token(rlock, token, &len), MPX_OK);
  printf("   token \"%s\" (%zu chars)\n", token, len);

  /* Handles survive fork(): the child uses the parent's RLock handle directly. It does not
   * own the parent's RLock (ownership is per thread), but can take it when it is free. */
  fflush(stdout);
  pid_t pid = fork();
  if (pid == 0) {
    int rc = mpx_lock_acquire(rlock, 1000);
    if (rc == MPX_OK) rc = mpx_lock_release(rlock);
    _exit(rc == MPX_OK ? 0 : 1);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  show("child used the inherited handle", WIFEXITED(status) ? -WEXITSTATUS(status) : -99, MPX_OK);

  /* destroy: a second destroy of the same handle is detected; NULL does nothing. */
  show("mpx_lock_destroy", mpx_lock_destroy(rlock), MPX_OK);
  show("mpx_lock_destroy(again)", mpx_lock_destroy(rlock), MPX_EBADHANDLE);
  show("mpx_lock_acquire(destroyed)", mpx_lock_acquire(rlock, 0), MPX_EBADHANDLE);
  mpx_event_destroy(ev);
  show("mpx_event_destroy(NULL)", mpx_event_destroy(NULL), MPX_EINVAL);

  printf(failures ? "conventions: %d unexpected result(s)\n" : "conventions: all as documented\n", failures);
  return failures != 0;
}
