/* values.c - shared Value and Array, Python's classic example in C, and a locked counter.
 *
 * Build and run from the repository root, once the library is built:
 *   cc -std=c99 -Wall -Wextra docs/examples/values.c -I include -L build/default/src -lmpx \
 *      -Wl,-rpath,$PWD/build/default/src -o /tmp/values && /tmp/values
 *
 * Python's version (docs of multiprocessing, "Sharing state between processes"):
 *   num = Value('d', 0.0); arr = Array('i', range(10))
 *   p = Process(target=f, args=(num, arr))   # f: num.value = 3.1415927; a[i] = -a[i]
 */
#define _POSIX_C_SOURCE 200809L

#include <mpx/mpx.h>

#include <stdio.h>
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

static void wait_child(pid_t pid) {
  int status;
  waitpid(pid, &status, 0);
}

/* The child of the classic: set the value, negate every element (element by element through
 * the API; the address from mpx_array_address works too). */
static int f(mpx_array *num, mpx_array *arr) {
  double pi = 3.1415927;
  CHECK(mpx_array_set(num, 0, &pi, sizeof pi));
  size_t n;
  CHECK(mpx_array_length(arr, &n));
  for (size_t i = 0; i < n; ++i) {
    int x;
    CHECK(mpx_array_get(arr, i, &x, sizeof x));
    x = -x;
    CHECK(mpx_array_set(arr, i, &x, sizeof x));
  }
  return 0;
}

int main(void) {
  /* A Value is an array of length 1. Both carry an RLock by default, as in Python. */
  mpx_array *num, *arr;
  CHECK(mpx_array_create(&num, 'd', 1, NULL));
  CHECK(mpx_array_create(&arr, 'i', 10, NULL));
  int init[10];
  for (int i = 0; i < 10; ++i) init[i] = i;
  CHECK(mpx_array_write(arr, 0, 10, init, sizeof init)); /* bulk copy in */

  fflush(stdout);
  pid_t pid = fork();
  if (pid == 0) _exit(f(num, arr));
  wait_child(pid);

  double value;
  int out[10];
  CHECK(mpx_array_get(num, 0, &value, sizeof value));
  CHECK(mpx_array_read(arr, 0, 10, out, sizeof out)); /* bulk copy out */
  printf("%.7f\n[", value);
  for (int i = 0; i < 10; ++i) printf("%s%d", i ? ", " : "", out[i]);
  printf("]\n");
  for (int i = 0; i < 10; ++i)
    if (out[i] != -i) return 1;

  /* Element access never takes the lock: hold it around read-modify-write, as in Python's
   * `with counter.get_lock(): counter.value += 1`. Four processes, 10000 increments each. */
  mpx_array *counter;
  CHECK(mpx_array_create(&counter, 'q', 1, NULL));
  mpx_lock *lock;
  CHECK(mpx_array_lock(counter, &lock)); /* a new handle to the value's own lock */
  long long *cell;
  CHECK(mpx_array_address(counter, (void **)&cell));
  fflush(stdout);
  pid_t kids[4];
  for (int k = 0; k < 4; ++k) {
    kids[k] = fork();
    if (kids[k] == 0) {
      for (int i = 0; i < 10000; ++i) {
        if (mpx_lock_acquire(lock, MPX_INFINITE) != MPX_OK) _exit(1);
        *cell += 1; /* direct access through the address: the fastest way */
        mpx_lock_release(lock);
      }
      _exit(0);
    }
  }
  for (int k = 0; k < 4; ++k) wait_child(kids[k]);
  printf("counter after 4 x 10000 locked increments: %lld\n", *cell);
  if (*cell != 40000) return 1;

  /* Typecodes have this platform's C sizes, so the bytes are shared as-is with ctypes. */
  const char codes[] = "cbBhHiIlLqQfd";
  printf("item sizes:");
  for (const char *c = codes; *c; ++c) {
    size_t size;
    CHECK(mpx_typecode_size(*c, &size));
    printf(" %c=%zu", *c, size);
  }
  printf("\n");

  /* A raw array has no lock; out-of-range access is an error code. */
  mpx_array_options o;
  CHECK(mpx_array_options_init(&o, sizeof o));
  o.lock = MPX_ARRAY_LOCK_NONE;
  mpx_array *raw;
  CHECK(mpx_array_create(&raw, 'B', 16, &o));
  mpx_lock *none;
  unsigned char byte = 0;
  int rc1 = mpx_array_lock(raw, &none), rc2 = mpx_array_get(raw, 16, &byte, 1);
  printf("raw array lock: %s; element 16 of 16: %s\n", mpx_error_name(rc1), mpx_error_name(rc2));
  if (rc1 != MPX_ENOENT || rc2 != MPX_ERANGE) return 1;

  mpx_array_destroy(raw);
  mpx_lock_destroy(lock);
  mpx_array_destroy(counter);
  mpx_array_destroy(arr);
  mpx_array_destroy(num);
  printf("values: ok\n");
  return 0;
}
