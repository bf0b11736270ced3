/* sync.c - process-shared sync in C: owner-death recovery, a Condition, a Barrier, semaphores.
 *
 * Build and run from the repository root, once the library is built:
 *   cc -std=c99 -Wall -Wextra docs/examples/sync.c -I include -L build/default/src -lmpx \
 *      -Wl,-rpath,$PWD/build/default/src -o /tmp/sync && /tmp/sync
 */
#define _POSIX_C_SOURCE 200809L

#include <mpx/mpx.h>

#include <signal.h>
#include <stdio.h>
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

static pid_t child_start(void) {
  fflush(stdout);
  return fork();
}

static int child_wait(pid_t pid) {
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
}

/* ---- owner death ----------------------------------------------------------------------- */

/* What the lock guards: two balances whose sum is always 100 when the lock is free. */
struct accounts {
  long long a, b;
};

/* The recovery protocol: acquire; on MPX_EOWNERDEAD the lock is held and the state may be
 * half-updated: repair it, then mark the lock consistent. */
static int acquire_accounts(mpx_lock *lock, struct accounts *acc) {
  int rc = mpx_lock_acquire(lock, 5000);
  if (rc == MPX_EOWNERDEAD) {
    printf("  acquire: MPX_EOWNERDEAD (%s)\n", mpx_last_error_message());
    printf("  repairing a=%lld b=%lld -> ", acc->a, acc->b);
    acc->b = 100 - acc->a; /* finish the interrupted transfer */
    printf("a=%lld b=%lld\n", acc->a, acc->b);
    rc = mpx_lock_consistent(lock);
  }
  return rc;
}

static int owner_death(void) {
  printf("owner death:\n");
  mpx_lock *lock;
  mpx_array *mem; /* a raw array of 2 'q' as the shared accounts */
  mpx_array_options o;
  CHECK(mpx_array_options_init(&o, sizeof o));
  o.lock = MPX_ARRAY_LOCK_NONE;
  CHECK(mpx_array_create(&mem, 'q', 2, &o));
  struct accounts *acc;
  CHECK(mpx_array_address(mem, (void **)&acc));
  acc->a = 100;
  CHECK(mpx_lock_create(&lock, NULL));

  pid_t pid = child_start();
  if (pid == 0) { /* take the lock, do half a transfer, die */
    mpx_lock_acquire(lock, MPX_INFINITE);
    acc->a -= 30;
    raise(SIGKILL);
  }
  printf("  child exited with %d while holding the lock\n", child_wait(pid));
  CHECK(acquire_accounts(lock, acc));
  CHECK(mpx_lock_release(lock));
  CHECK(acquire_accounts(lock, acc)); /* an ordinary acquire again */
  CHECK(mpx_lock_release(lock));
  if (acc->a + acc->b != 100) return 1;

  /* Without mpx_lock_consistent the lock is unusable from then on, for everyone. */
  pid = child_start();
  if (pid == 0) {
    mpx_lock_acquire(lock, MPX_INFINITE);
    _exit(0);
  }
  child_wait(pid);
  int rc = mpx_lock_acquire(lock, 5000);
  printf("  second death: %s; released without repair; next acquire: ", mpx_error_name(rc));
  mpx_lock_release(lock);
  rc = mpx_lock_acquire(lock, 0);
  printf("%s\n", mpx_error_name(rc));
  if (rc != MPX_ENOTRECOVERABLE) return 1;
  mpx_lock_destroy(lock);
  mpx_array_destroy(mem);
  return 0;
}

/* ---- condition: a consumer waits for a producer in another process ----------------------- */

static int condition(void) {
  printf("condition:\n");
  mpx_condition *cond;
  CHECK(mpx_condition_create(&cond, NULL)); /* with a new RLock, like Python's Condition() */
  mpx_array *items;
  CHECK(mpx_array_create(&items, 'i', 1, NULL));
  int *count;
  CHECK(mpx_array_address(items, (void **)&count));

  pid_t pid = child_start();
  if (pid == 0) { /* producer: three items, one notification each */
    for (int i = 0; i < 3; ++i) {
      struct timespec ten_ms = {0, 10000000};
      nanosleep(&ten_ms, NULL);
      if (mpx_condition_acquire(cond, MPX_INFINITE) < 0) _exit(1);
      *count += 1;
      mpx_condition_notify(cond, 1);
      mpx_condition_release(cond);
    }
    _exit(0);
  }
  /* consumer: wait until three items are there; wait() re-checks after every wake-up */
  CHECK(mpx_condition_acquire(cond, MPX_INFINITE));
  int wakeups = 0;
  while (*count < 3) {
    int rc = mpx_condition_wait(cond, 5000);
    if (rc == MPX_ETIMEDOUT) break;
    CHECK(rc);
    ++wakeups;
  }
  printf("  consumer saw %d items after %d wake-up(s)\n", *count, wakeups);
  int ok = *count == 3;
  CHECK(mpx_condition_release(cond));
  child_wait(pid);
  mpx_array_destroy(items);
  mpx_condition_destroy(cond);
  return ok ? 0 : 1;
}

/* ---- barrier and semaphores ------------------------------------------------------------- */

static int barrier_and_semaphores(void) {
  printf("barrier:\n");
  mpx_barrier *bar;
  CHECK(mpx_barrier_create(&bar, 3));
  pid_t kids[2];
  for (int k = 0; k < 2; ++k) {
    kids[k] = child_start();
    if (kids[k] == 0) {
      uint32_t index;
      _exit(mpx_barrier_wait(bar, 5000, &index) == MPX_OK ? (int)index : 100);
    }
  }
  uint32_t mine;
  CHECK(mpx_barrier_wait(bar, 5000, &mine));
  int a = child_wait(kids[0]), b = child_wait(kids[1]);
  printf("  arrival indexes: parent %u, children %d and %d\n", mine, a, b);
  if ((int)mine + a + b != 0 + 1 + 2) return 1;

  /* A timeout breaks the barrier for everyone, until reset. */
  int rc = mpx_barrier_wait(bar, 10, NULL);
  int broken;
  CHECK(mpx_barrier_broken(bar, &broken));
  printf("  waiting alone for 10 ms: %s, broken=%d; ", mpx_error_name(rc), broken);
  rc = mpx_barrier_wait(bar, 0, NULL);
  printf("next wait: %s; ", mpx_error_name(rc));
  CHECK(mpx_barrier_reset(bar));
  CHECK(mpx_barrier_broken(bar, &broken));
  printf("after reset: broken=%d\n", broken);
  mpx_barrier_destroy(bar);

  printf("semaphores:\n");
  mpx_semaphore_options so;
  CHECK(mpx_semaphore_options_init(&so, sizeof so));
  so.flags = MPX_SEMAPHORE_BOUNDED; /* max_value 0: the initial value, Python's rule */
  mpx_semaphore *sem;
  CHECK(mpx_semaphore_create(&sem, 2, &so));
  CHECK(mpx_semaphore_acquire(sem, 0));
  CHECK(mpx_semaphore_acquire(sem, 0));
  int third = mpx_semaphore_acquire(sem, 0);
  CHECK(mpx_semaphore_release(sem));
  CHECK(mpx_semaphore_release(sem));
  int over = mpx_semaphore_release(sem);
  uint32_t value;
  CHECK(mpx_semaphore_value(sem, &value));
  printf("  BoundedSemaphore(2): third acquire %s, third release %s, value %u\n", mpx_error_name(third),
         mpx_error_name(over), value);
  mpx_semaphore_destroy(sem);
  return third == MPX_ETIMEDOUT && over == MPX_EOVERFLOW && value == 2 ? 0 : 1;
}

int main(void) {
  if (owner_death() || condition() || barrier_and_semaphores()) {
    printf("sync: FAILED\n");
    return 1;
  }
  printf("sync: ok\n");
  return 0;
}
