/*
 * A C client of a manager, for the interoperability test (a C++ test, this C program and a
 * Python script share one manager's objects). Driven by argv:
 *
 *   mpx_test_mclient ADDRESS AUTHKEY [socket] COMMAND...
 *
 * AUTHKEY is used as its bytes; "socket" makes the client use the socket only. Objects are
 * named; each command opens (or creates, MPX_MOBJ_OPEN_EXISTING) the object of its type:
 *
 *   dset:NAME:KEY:VALUE       dict NAME, d[KEY] = VALUE
 *   dexpect:NAME:KEY:VALUE    dict NAME, d[KEY] must be VALUE
 *   dlen:NAME:N               dict NAME has N keys
 *   lappend:NAME:VALUE        list NAME, append VALUE
 *   lexpect:NAME:INDEX:VALUE  list NAME, l[INDEX] (may be negative) must be VALUE
 *   llen:NAME:N               list NAME has N items
 *   qput:NAME:VALUE           queue NAME, put VALUE
 *   qget:NAME:VALUE           queue NAME, get (5 s at most) must give VALUE
 *   vadd:NAME:N               value NAME (typecode 'q'), add N
 *   vexpect:NAME:N            value NAME (typecode 'q') must be N
 *   shutdown                  ask the server to stop
 *
 * Exit status: 0 when every command ran, 3 when one failed (a message on stderr).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpx/mpx.h"

static mpx_mclient *g_client;

static void fail(const char *cmd, const char *what, int rc) {
  fprintf(stderr, "mpx_test_mclient: %s: %s: %s (%s)\n", cmd, what, rc ? mpx_error_name(rc) : "wrong",
          rc ? mpx_last_error_message() : "");
  if (g_client) mpx_mclient_destroy(g_client);
  exit(3);
}

static mpx_proxy *open_obj(const char *cmd, int type, const char *name) {
  mpx_mobj_options o;
  mpx_mobj_options_init(&o, sizeof o);
  o.name = name;
  o.flags = MPX_MOBJ_OPEN_EXISTING;
  if (type == MPX_MOBJ_VALUE) o.typecode = 'q';
  mpx_proxy *p = NULL;
  const int rc = mpx_proxy_create(g_client, type, &o, &p);
  if (rc != MPX_OK) fail(cmd, "open", rc);
  return p;
}

static void expect_bytes(const char *cmd, void *data, size_t len, const char *want) {
  const int same = len == strlen(want) && memcmp(data, want, len) == 0;
  if (!same) {
    fprintf(stderr, "mpx_test_mclient: %s: got '%.*s'\n", cmd, (int)len, (const char *)data);
    mpx_free(data);
    fail(cmd, "value", 0);
  }
  mpx_free(data);
}

/* Split "a:b:c" in place into at most n fields; returns the count. The last field keeps its ':'s. */
static int split(char *s, char **f, int n) {
  int k = 0;
  f[k++] = s;
  while (k < n) {
    char *c = strchr(s, ':');
    if (!c) break;
    *c = '\0';
    s = c + 1;
    f[k++] = s;
  }
  return k;
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: mpx_test_mclient ADDRESS AUTHKEY [socket] COMMAND...\n");
    return 2;
  }
  int first = 3;
  mpx_mclient_options co;
  mpx_mclient_options_init(&co, sizeof co);
  co.authkey = argv[2];
  co.authkey_len = strlen(argv[2]);
  if (argc > 3 && strcmp(argv[3], "socket") == 0) {
    co.flags = MPX_MCLIENT_SOCKET_ONLY;
    first = 4;
  }
  int rc = mpx_manager_connect(&g_client, argv[1], &co);
  if (rc != MPX_OK) fail("connect", argv[1], rc);
  for (int i = first; i < argc; ++i) {
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "%s", argv[i]);
    char *f[4] = {0};
    const int n = split(argv[i], f, 4);
    const char *op = f[0];
    void *data = NULL;
    size_t len = 0;
    if (strcmp(op, "shutdown") == 0) {
      rc = mpx_mclient_shutdown(g_client);
      if (rc != MPX_OK) fail(cmd, "shutdown", rc);
      continue;
    }
    if (n < 3) fail(cmd, "too few fields", 0);
    mpx_proxy *p = NULL;
    if (strcmp(op, "dset") == 0 && n == 4) {
      p = open_obj(cmd, MPX_MOBJ_DICT, f[1]);
      rc = mpx_mdict_set(p, f[2], f[3], strlen(f[3]));
    } else if (strcmp(op, "dexpect") == 0 && n == 4) {
      p = open_obj(cmd, MPX_MOBJ_DICT, f[1]);
      rc = mpx_mdict_get(p, f[2], &data, &len);
      if (rc == MPX_OK) expect_bytes(cmd, data, len, f[3]);
    } else if (strcmp(op, "dlen") == 0) {
      p = open_obj(cmd, MPX_MOBJ_DICT, f[1]);
      rc = mpx_mdict_len(p, &len);
      if (rc == MPX_OK && len != strtoull(f[2], NULL, 10)) fail(cmd, "length", 0);
    } else if (strcmp(op, "lappend") == 0) {
      p = open_obj(cmd, MPX_MOBJ_LIST, f[1]);
      rc = mpx_mlist_append(p, f[2], strlen(f[2]));
    } else if (strcmp(op, "lexpect") == 0 && n == 4) {
      p = open_obj(cmd, MPX_MOBJ_LIST, f[1]);
      rc = mpx_mlist_get(p, strtoll(f[2], NULL, 10), &data, &len);
      if (rc == MPX_OK) expect_bytes(cmd, data, len, f[3]);
    } else if (strcmp(op, "llen") == 0) {
      p = open_obj(cmd, MPX_MOBJ_LIST, f[1]);
      rc = mpx_mlist_len(p, &len);
      if (rc == MPX_OK && len != strtoull(f[2], NULL, 10)) fail(cmd, "length", 0);
    } else if (strcmp(op, "qput") == 0) {
      p = open_obj(cmd, MPX_MOBJ_QUEUE, f[1]);
      rc = mpx_mqueue_put(p, f[2], strlen(f[2]), 5000);
    } else if (strcmp(op, "qget") == 0) {
      p = open_obj(cmd, MPX_MOBJ_QUEUE, f[1]);
      rc = mpx_mqueue_get(p, &data, &len, 5000);
      if (rc == MPX_OK) expect_bytes(cmd, data, len, f[2]);
    } else if (strcmp(op, "vadd") == 0) {
      p = open_obj(cmd, MPX_MOBJ_VALUE, f[1]);
      const int64_t delta = strtoll(f[2], NULL, 10);
      rc = mpx_mvalue_add(p, &delta, NULL, sizeof delta);
    } else if (strcmp(op, "vexpect") == 0) {
      p = open_obj(cmd, MPX_MOBJ_VALUE, f[1]);
      int64_t v = 0;
      rc = mpx_mvalue_get(p, &v, sizeof v);
      if (rc == MPX_OK && v != strtoll(f[2], NULL, 10)) fail(cmd, "value", 0);
    } else {
      fail(cmd, "unknown command", 0);
    }
    if (rc != MPX_OK) fail(cmd, "call", rc);
    mpx_proxy_destroy(p);
  }
  rc = mpx_mclient_destroy(g_client);
  if (rc != MPX_OK) {
    g_client = NULL;
    fail("destroy", "client", rc);
  }
  return 0;
}
