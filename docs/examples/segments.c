/* segments.c - named and anonymous shared memory segments, reached from an exec'd process.
 *
 * Build and run from the repository root, once the library is built:
 *   cc -std=c99 -Wall -Wextra docs/examples/segments.c -I include -L build/default/src -lmpx \
 *      -Wl,-rpath,$PWD/build/default/src -o /tmp/segments && /tmp/segments
 *
 * The program runs itself again through exec (a process that inherits nothing, like a
 * program in another language would be) and passes it a segment name or a token on argv.
 */
#define _POSIX_C_SOURCE 200809L

#include <mpx/mpx.h>

#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define CHECK(call)                                                                             \
  do {                                                                                          \
    int rc_ = (call);                                                                           \
    if (rc_ < 0) {                                                                              \
      fprintf(stderr, "%s: %s: %s\n", #call, mpx_error_name(rc_), mpx_last_error_message()); \
      return 1;                                                                                 \
    }                                                                                           \
  } while (0)

/* The exec'd side: attach by name or by token and answer in the segment. */
static int child(const char *how, const char *what) {
  mpx_segment *seg = NULL;
  if (strcmp(how, "--name") == 0)
    CHECK(mpx_segment_attach(&seg, what));
  else
    CHECK(mpx_segment_attach_token(&seg, what));
  char *mem;
  size_t size;
  CHECK(mpx_segment_address(seg, (void **)&mem));
  CHECK(mpx_segment_size(seg, &size));
  /* The parent wrote a greeting at offset 0; answer at offset 512. */
  snprintf(mem + 512, 512, "pid %d read \"%s\" from %zu bytes", (int)getpid(), mem, size);
  return mpx_segment_destroy(seg) == MPX_OK ? 0 : 1;
}

/* Run this program again with (how, what) and wait for it. */
static int run_self(const char *how, const char *what) {
  fflush(stdout);
  pid_t pid = fork();
  if (pid == 0) {
    execl("/proc/self/exe", "segments", how, what, (char *)NULL);
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

int main(int argc, char **argv) {
  if (argc == 3) return child(argv[1], argv[2]);

  /* 1. A named segment with a fresh random name: reachable by name, by any process of this
   *    user, until unlinked. */
  mpx_segment_options o;
  CHECK(mpx_segment_options_init(&o, sizeof o));
  o.flags = MPX_SEGMENT_RANDOM_NAME;
  mpx_segment *named;
  CHECK(mpx_segment_create(&named, 4096, &o));
  char name[MPX_SEGMENT_NAME_MAX + 1];
  size_t len = sizeof name;
  CHECK(mpx_segment_name(named, name, &len));
  char *mem;
  CHECK(mpx_segment_address(named, (void **)&mem));
  strcpy(mem, "hello through a name");
  printf("named segment \"%s\" (/dev/shm/%s, mode 0600)\n", name, name);
  if (run_self("--name", name) != 0) return 1;
  printf("  answer: %s\n", mem + 512);

  /* Creating the same name again is refused: names are created exclusively. */
  mpx_segment *dup;
  o.flags = 0;
  o.name = name;
  int rc = mpx_segment_create(&dup, 4096, &o);
  printf("  create \"%s\" again: %s\n", name, mpx_error_name(rc));
  if (rc != MPX_EEXIST) return 1;

  /* Unlink removes the name; our mapping stays valid until destroyed. */
  CHECK(mpx_segment_unlink(named));
  rc = mpx_segment_attach(&dup, name);
  printf("  after unlink, attach: %s; unlink again: %s; memory still reads \"%s\"\n", mpx_error_name(rc),
         mpx_error_name(mpx_segment_unlink(named)), mem);
  if (rc != MPX_ENOENT) return 1;
  CHECK(mpx_segment_destroy(named));

  /* 2. An anonymous segment (memfd): nothing in /dev/shm, gone when its last holder exits,
   *    crash or not. Forked children inherit it; others attach by token while we live. */
  mpx_segment *anon;
  CHECK(mpx_segment_create(&anon, 1 << 20, NULL));
  char token[MPX_TOKEN_MAX];
  len = sizeof token;
  CHECK(mpx_segment_token(anon, token, &len));
  CHECK(mpx_segment_address(anon, (void **)&mem));
  strcpy(mem, "hello through a token");
  printf("anonymous segment, token %s\n", token);
  if (run_self("--token", token) != 0) return 1;
  printf("  answer: %s\n", mem + 512);

  /* A corrupt token is an error, not a crash. */
  mpx_segment *bad;
  rc = mpx_segment_attach_token(&bad, "mpx1:a:1:99999:1:0");
  printf("  attach a made-up token: %s (%s)\n", mpx_error_name(rc), mpx_last_error_message());
  if (rc == MPX_OK) return 1;

  CHECK(mpx_segment_destroy(anon));
  printf("segments: ok\n");
  return 0;
}
