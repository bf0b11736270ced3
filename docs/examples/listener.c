/* listener.c - Listener and Client in C: a server and its clients authenticated with an
 * authkey (Python's multiprocessing.connection handshake), a client with the wrong key
 * turned away on both sides, and the same program as a server or a client across machines.
 *
 * Build and run from the repository root, once the library is built:
 *   cc -std=c99 -Wall -Wextra docs/examples/listener.c -I include -L build/default/src -lmpx \
 *      -Wl,-rpath,$PWD/build/default/src -o /tmp/listener && /tmp/listener
 *
 * Across two machines (see docs/connections.md):
 *   server$ MPX_KEY=s3cret /tmp/listener serve 0.0.0.0:6000
 *   client$ MPX_KEY=s3cret /tmp/listener connect server.example:6000 "hello"
 */
#define _POSIX_C_SOURCE 200809L

#include <mpx/mpx.h>

#include <stdio.h>
#include <stdlib.h>
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

static const char *key_from_env(void) {
  const char *k = getenv("MPX_KEY");
  return k && *k ? k : "demo key";
}

/* Answer one request per connection, upper-cased. */
static int serve_one(mpx_conn *c) {
  char buf[256];
  size_t len = 0;
  CHECK(mpx_conn_recv_into(c, buf, sizeof buf, &len, 10000));
  for (size_t i = 0; i < len; ++i)
    if (buf[i] >= 'a' && buf[i] <= 'z') buf[i] = (char)(buf[i] - 'a' + 'A');
  CHECK(mpx_conn_send(c, buf, len));
  return 0;
}

static int ask(const char *address, const char *key, const char *text, int quiet_refusal) {
  mpx_client_options o;
  mpx_client_options_init(&o, sizeof o);
  o.authkey = key;
  o.authkey_len = strlen(key);
  mpx_conn *c = NULL;
  int rc = mpx_client_connect(&c, address, &o);
  if (rc == MPX_EAUTH && quiet_refusal) {
    printf("  client with key \"%s\": %s (%s)\n", key, mpx_error_name(rc), mpx_last_error_message());
    return 0;
  }
  CHECK(rc);
  CHECK(mpx_conn_send(c, text, strlen(text)));
  char buf[256];
  size_t len = 0;
  CHECK(mpx_conn_recv_into(c, buf, sizeof buf - 1, &len, 10000));
  buf[len] = '\0';
  printf("  client sent \"%s\", got \"%s\"\n", text, buf);
  mpx_conn_destroy(c);
  return 0;
}

static int serve(const char *address, int count) {
  const char *key = key_from_env();
  mpx_listener_options o;
  mpx_listener_options_init(&o, sizeof o);
  o.authkey = key;
  o.authkey_len = strlen(key);
  mpx_listener *l;
  CHECK(mpx_listener_create(&l, address, &o));
  char where[128];
  size_t n = sizeof where;
  CHECK(mpx_listener_address(l, where, &n));
  printf("listening on %s\n", where);
  fflush(stdout);
  for (int i = 0; count < 0 || i < count; ++i) {
    mpx_conn *c = NULL;
    int rc = mpx_listener_accept(l, MPX_INFINITE, &c);
    if (rc == MPX_EAUTH) { /* a client with another key: Python's accept() raises the same */
      printf("  refused a client: %s\n", mpx_last_error_message());
      continue;
    }
    CHECK(rc);
    char peer[128];
    n = sizeof peer;
    CHECK(mpx_listener_last_accepted(l, peer, &n));
    printf("  accepted %s\n", n ? peer : "(unix socket)");
    serve_one(c);
    mpx_conn_destroy(c);
  }
  return mpx_listener_destroy(l);
}

static int demo(void) {
  const char *key = "demo key";
  mpx_listener_options o;
  mpx_listener_options_init(&o, sizeof o);
  o.authkey = key;
  o.authkey_len = strlen(key);
  mpx_listener *l;
  CHECK(mpx_listener_create(&l, "127.0.0.1:0", &o)); /* port 0: the system picks one */
  char address[128];
  size_t n = sizeof address;
  CHECK(mpx_listener_address(l, address, &n));
  printf("a listener on %s with an authkey\n", address);
  fflush(stdout);
  pid_t child = fork();
  if (child == 0) { /* two clients: the right key, then a wrong one */
    int a = ask(address, key, "hello listener", 0);
    int b = ask(address, "guessed key", "let me in", 1);
    fflush(stdout);
    _exit(a || b);
  }
  for (int i = 0; i < 2; ++i) {
    mpx_conn *c = NULL;
    int rc = mpx_listener_accept(l, 10000, &c);
    if (rc == MPX_EAUTH) {
      printf("  server: %s\n", mpx_error_name(rc));
      continue;
    }
    CHECK(rc);
    CHECK(serve_one(c));
    mpx_conn_destroy(c);
  }
  int status = 0;
  waitpid(child, &status, 0);
  CHECK(mpx_listener_close(l));
  mpx_conn *none = NULL;
  printf("after close, accept: %s\n", mpx_error_name(mpx_listener_accept(l, 0, &none)));
  mpx_listener_destroy(l);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}

int main(int argc, char **argv) {
  if (argc >= 3 && strcmp(argv[1], "serve") == 0) return serve(argv[2], argc >= 4 ? atoi(argv[3]) : -1);
  if (argc >= 3 && strcmp(argv[1], "connect") == 0) return ask(argv[2], key_from_env(), argc >= 4 ? argv[3] : "hello", 0);
  return demo();
}
