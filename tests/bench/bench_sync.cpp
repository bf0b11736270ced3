// bench_sync: mpx's sync primitives side by side with the raw baselines, measured in the same
// run (a process-shared pthread mutex, POSIX semaphores, and bare futex primitives written
// below), printing medians and ratios next to the targets of issue 2.
//
//   bench_sync                  the full table (< 60 s with the defaults)
//   bench_sync --quick          a few thousand operations, one repetition; exits 1 only on a
//                               wrong result (counter mismatch, failed call), never on timing
//   bench_sync --uncontended-only   only the single-process loops
//   bench_sync --no-strace      skip the system-call count
//   bench_sync --syscall-probe OP N   run N uncontended OPs and nothing else (used under strace)
//
// Environment: MPX_BENCH_SCALE (multiplies every N, default 1), MPX_BENCH_N (uncontended
// operations per repetition), MPX_BENCH_CONTENDED_N (operations per process when two contend),
// MPX_BENCH_PINGPONG_N (round trips), MPX_BENCH_REPS (repetitions, median reported; default 5),
// MPX_BENCH_PIN=contended (default: pin the two contending processes to CPUs 0 and 1, not the
// ping-pong ones; see pin_to), all, or none.
//
// Every figure is time per operation: lower is better; ratio = mpx / baseline, so < 1 means
// mpx is faster.

#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <climits>
#include <cmath>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <map>
#include <string>
#include <vector>

#include "mpx/mpx.h"
#include "bench_common.hpp"

namespace {

using namespace mpxbench;

// ---- small helpers -----------------------------------------------------------------------

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#endif
}

// ---- the bare futex baselines ------------------------------------------------------------

long futex(std::atomic<uint32_t> *word, int op, uint32_t val) {
  // Shared (not FUTEX_PRIVATE_FLAG): the waiters are in other processes.
  return syscall(SYS_futex, reinterpret_cast<uint32_t *>(word), op, val, nullptr, nullptr, 0);
}

// Drepper's three-state mutex ("Futexes are tricky", mutex 2): 0 free, 1 held, 2 held with
// waiters. Out of line, so that it is a call like mpx_lock_acquire and pthread_mutex_lock.
struct FutexLock {
  std::atomic<uint32_t> w{0};

  __attribute__((noinline)) void lock() {
    uint32_t c = 0;
    if (w.compare_exchange_strong(c, 1, std::memory_order_acquire)) return;
    if (c != 2) c = w.exchange(2, std::memory_order_acquire);
    while (c != 0) {
      futex(&w, FUTEX_WAIT, 2);
      c = w.exchange(2, std::memory_order_acquire);
    }
  }
  __attribute__((noinline)) void unlock() {
    if (w.fetch_sub(1, std::memory_order_release) != 1) {
      w.store(0, std::memory_order_release);
      futex(&w, FUTEX_WAKE, 1);
    }
  }
};

// A counting semaphore: value word plus a sleeper count; `spin` pause rounds before sleeping.
struct FutexSem {
  std::atomic<uint32_t> value{0};
  std::atomic<uint32_t> sleepers{0};
  int spin = 0;

  __attribute__((noinline)) void acquire() {
    for (int i = 0;; ++i) {
      uint32_t v = value.load(std::memory_order_relaxed);
      while (v > 0)
        if (value.compare_exchange_weak(v, v - 1, std::memory_order_acquire, std::memory_order_relaxed)) return;
      if (i >= spin) break;
      cpu_relax();
    }
    sleepers.fetch_add(1, std::memory_order_seq_cst);
    for (;;) {
      uint32_t v = value.load(std::memory_order_seq_cst);
      if (v > 0) {
        if (value.compare_exchange_weak(v, v - 1, std::memory_order_acquire, std::memory_order_relaxed)) break;
        continue;
      }
      futex(&value, FUTEX_WAIT, 0);
    }
    sleepers.fetch_sub(1, std::memory_order_relaxed);
  }
  __attribute__((noinline)) void release() {
    value.fetch_add(1, std::memory_order_seq_cst);
    if (sleepers.load(std::memory_order_seq_cst) > 0) futex(&value, FUTEX_WAKE, 1);
  }
};

// An event: a flag plus a sleeper count, woken only when someone sleeps (as mpx's is).
struct FutexEvent {
  std::atomic<uint32_t> flag{0};
  std::atomic<uint32_t> sleepers{0};
  int spin = 0;

  __attribute__((noinline)) void set() {
    flag.store(1, std::memory_order_seq_cst);
    if (sleepers.load(std::memory_order_seq_cst) > 0) futex(&flag, FUTEX_WAKE, INT32_MAX);
  }
  __attribute__((noinline)) void clear() { flag.store(0, std::memory_order_seq_cst); }
  __attribute__((noinline)) void wait() {
    for (int i = 0; i < spin; ++i) {
      if (flag.load(std::memory_order_acquire) == 1) return;
      cpu_relax();
    }
    sleepers.fetch_add(1, std::memory_order_seq_cst);
    while (flag.load(std::memory_order_seq_cst) != 1) futex(&flag, FUTEX_WAIT, 0);
    sleepers.fetch_sub(1, std::memory_order_relaxed);
  }
};

// ---- shared state for the baselines and the two-process harness -------------------------

struct Shared {
  alignas(64) std::atomic<uint32_t> ready;
  alignas(64) int64_t start[2];
  alignas(64) int64_t end[2];
  alignas(64) pthread_mutex_t mutex;
  alignas(64) pthread_mutex_t robust;
  alignas(64) pthread_mutex_t recursive;
  alignas(64) uint64_t counter;
  alignas(64) FutexLock flock;
  alignas(64) sem_t sem[2];
  alignas(64) FutexSem fsem[2];
  alignas(64) FutexEvent fev[2];
};
Shared *sh = nullptr;

void init_mutex(pthread_mutex_t *m, int type, bool robust) {
  pthread_mutexattr_t a;
  pthread_mutexattr_init(&a);
  pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
  pthread_mutexattr_settype(&a, type);
  if (robust) pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
  pthread_mutex_init(m, &a);
  pthread_mutexattr_destroy(&a);
}

void setup_shared() {
  void *p = mmap(nullptr, sizeof(Shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    std::perror("mmap");
    std::exit(1);
  }
  sh = new (p) Shared();
  init_mutex(&sh->mutex, PTHREAD_MUTEX_NORMAL, false);
  init_mutex(&sh->robust, PTHREAD_MUTEX_NORMAL, true);
  init_mutex(&sh->recursive, PTHREAD_MUTEX_RECURSIVE, false);
  for (auto &s : sh->sem) sem_init(&s, 1, 0);
}

int g_ncpu = 1;
// Contending processes are pinned to different CPUs: left to the scheduler, two short-lived
// children often share one CPU and take turns, which measures no contention at all.
// Ping-pong processes are not pinned: here (a VM) waking a process pinned to an idle vCPU
// costs 100-200 us instead of 16-24 us, which would measure the hypervisor, not the lock.
bool g_pin_contended = true;
bool g_pin_pingpong = false;

void pin_to(bool pin, int i) {
  if (!pin || g_ncpu < 2) return;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(i % g_ncpu, &set);
  sched_setaffinity(0, sizeof set, &set);
}

// Run body(0) and body(1) in two forked children released together. Each child records its
// own start and end; body returns true when its results are right. Returns false if a child
// failed.
template <typename Body>
bool run_pair(bool pin, Body body) {
  sh->ready.store(0);
  pid_t pids[2];
  for (int i = 0; i < 2; ++i) {
    pids[i] = fork();
    if (pids[i] < 0) {
      std::perror("fork");
      std::exit(1);
    }
    if (pids[i] == 0) {
      pin_to(pin, i);
      sh->ready.fetch_add(1);
      while (sh->ready.load() < 2) {
        if (g_ncpu < 2) sched_yield();
        else cpu_relax();
      }
      sh->start[i] = now_ns();
      const bool ok = body(i);
      sh->end[i] = now_ns();
      _exit(ok ? 0 : 1);
    }
  }
  bool ok = true;
  for (pid_t pid : pids) {
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) ok = false;
  }
  return ok;
}

double pair_elapsed_ns() { return double(std::max(sh->end[0], sh->end[1]) - std::min(sh->start[0], sh->start[1])); }

template <typename F>
__attribute__((noinline)) double time_loop(long n, F f) {
  const int64_t t0 = now_ns();
  for (long i = 0; i < n; ++i) f();
  return double(now_ns() - t0) / double(n);
}

// ---- configuration and results ----------------------------------------------------------

struct Config {
  long n_uncontended = 5'000'000;
  long n_contended = 2'000'000;  // per process
  long n_pingpong = 10'000;
  int reps = 5;
  bool quick = false;
  bool uncontended_only = false;
  bool strace = true;
} cfg;

struct Base {
  std::string name;
  double value;
};

struct Row {
  std::string op;
  std::string unit;
  double mpx;
  std::vector<Base> bases;
  double target = 0;  // mpx / bases[0] must be <= target (0: none)
  std::string target_note;
};
std::vector<Row> g_rows;

// Repeat `measure` (which fills one sample per column) cfg.reps times, interleaving mpx and
// its baselines in each repetition so that drift affects all alike; keep the medians.
struct Sampler {
  std::vector<std::vector<double>> cols;
  explicit Sampler(size_t n) : cols(n) {}
  void add(size_t i, double v) { cols[i].push_back(v); }
  double med(size_t i) const { return median(cols[i]); }
};

void print_rows() {
  std::printf("\n%-48s %-4s %9s  %-38s %9s %9s  %s\n", "operation", "unit", "mpx", "baseline", "baseline",
              "mpx/base", "target");
  std::printf("%s\n", std::string(140, '-').c_str());
  for (const Row &r : g_rows) {
    for (size_t i = 0; i < r.bases.size(); ++i) {
      const Base &b = r.bases[i];
      const double ratio = r.mpx / b.value;
      std::string verdict;
      if (i == 0 && r.target > 0) {
        char buf[96];
        if (ratio <= r.target)
          std::snprintf(buf, sizeof buf, "<= %.1fx: met", r.target);
        else
          std::snprintf(buf, sizeof buf, "<= %.1fx: MISSED by %.0f%%", r.target, (ratio / r.target - 1) * 100);
        verdict = buf;
      } else if (i == 0 && !r.target_note.empty()) {
        verdict = r.target_note;
      }
      if (i == 0)
        std::printf("%-48s %-4s %9.3f  %-38s %9.3f %8.2fx  %s\n", r.op.c_str(), r.unit.c_str(), r.mpx,
                    b.name.c_str(), b.value, ratio, verdict.c_str());
      else
        std::printf("%-48s %-4s %9s  %-38s %9.3f %8.2fx  %s\n", "", "", "", b.name.c_str(), b.value, ratio,
                    verdict.c_str());
    }
  }
  std::fflush(stdout);
}

// ---- (a) uncontended Lock / RLock, (c) uncontended Semaphore -----------------------------

void bench_uncontended() {
  const long n = cfg.n_uncontended;
  mpx_lock *lock, *rlock;
  check(mpx_lock_create(&lock, nullptr), "mpx_lock_create");
  mpx_lock_options lo;
  mpx_lock_options_init(&lo, sizeof lo);
  lo.flags = MPX_LOCK_RECURSIVE;
  check(mpx_lock_create(&rlock, &lo), "mpx_lock_create(recursive)");
  mpx_semaphore *sem;
  check(mpx_semaphore_create(&sem, 1, nullptr), "mpx_semaphore_create");
  sem_t *psem = &sh->sem[0];
  sem_post(psem);  // value 1
  FutexSem *fsem = &sh->fsem[0];
  fsem->value.store(1);

  int bad = 0;
  Sampler lk(5), rl(4), se(3);
  for (int rep = -1; rep < cfg.reps; ++rep) {  // rep -1 warms up
    double v[5];
    v[0] = time_loop(n, [&] { bad |= mpx_lock_acquire(lock, MPX_INFINITE) | mpx_lock_release(lock); });
    v[1] = time_loop(n, [&] { bad |= pthread_mutex_lock(&sh->mutex) | pthread_mutex_unlock(&sh->mutex); });
    v[2] = time_loop(n, [&] { bad |= pthread_mutex_lock(&sh->robust) | pthread_mutex_unlock(&sh->robust); });
    v[3] = time_loop(n, [&] {
      sh->flock.lock();
      sh->flock.unlock();
    });
    if (rep >= 0)
      for (int i = 0; i < 4; ++i) lk.add(size_t(i), v[i]);

    v[0] = time_loop(n, [&] { bad |= mpx_lock_acquire(rlock, MPX_INFINITE) | mpx_lock_release(rlock); });
    v[1] = time_loop(n, [&] { bad |= pthread_mutex_lock(&sh->recursive) | pthread_mutex_unlock(&sh->recursive); });
    // Nested: the second acquire is a recursion, as in a Value's RLock taken twice.
    v[2] = time_loop(n, [&] {
      bad |= mpx_lock_acquire(rlock, MPX_INFINITE) | mpx_lock_acquire(rlock, MPX_INFINITE);
      bad |= mpx_lock_release(rlock) | mpx_lock_release(rlock);
    });
    v[3] = time_loop(n, [&] {
      bad |= pthread_mutex_lock(&sh->recursive) | pthread_mutex_lock(&sh->recursive);
      bad |= pthread_mutex_unlock(&sh->recursive) | pthread_mutex_unlock(&sh->recursive);
    });
    if (rep >= 0)
      for (int i = 0; i < 4; ++i) rl.add(size_t(i), v[i]);

    v[0] = time_loop(n, [&] { bad |= mpx_semaphore_acquire(sem, MPX_INFINITE) | mpx_semaphore_release(sem); });
    v[1] = time_loop(n, [&] { bad |= sem_wait(psem) | sem_post(psem); });
    v[2] = time_loop(n, [&] {
      fsem->acquire();
      fsem->release();
    });
    if (rep >= 0)
      for (int i = 0; i < 3; ++i) se.add(size_t(i), v[i]);
  }
  if (bad) failure("uncontended loops: a call returned an error");
  int locked = -1;
  mpx_lock_locked(lock, &locked);
  if (locked != 0) failure("Lock: still held after the loop");
  uint32_t sv = 0;
  mpx_semaphore_value(sem, &sv);
  if (sv != 1) failure("Semaphore: value %u after the loop, expected 1", sv);

  g_rows.push_back({"Lock acquire+release, uncontended", "ns", lk.med(0),
                    {{"pthread mutex (pshared)", lk.med(1)},
                     {"pthread mutex (pshared, robust)", lk.med(2)},
                     {"bare futex lock", lk.med(3)}},
                    1.5});
  g_rows.push_back({"RLock acquire+release, uncontended", "ns", rl.med(0),
                    {{"pthread recursive mutex (pshared)", rl.med(1)}},
                    1.5,
                    {}});
  g_rows.push_back({"RLock acquire x2 + release x2 (nested)", "ns", rl.med(2),
                    {{"pthread recursive mutex, nested", rl.med(3)}},
                    0,
                    "(no target)"});
  g_rows.push_back({"Semaphore acquire+release, uncontended", "ns", se.med(0),
                    {{"POSIX sem_t (pshared)", se.med(1)}, {"bare futex semaphore", se.med(2)}},
                    0,
                    "(no target)"});
  sem_wait(psem);
  mpx_semaphore_destroy(sem);
  mpx_lock_destroy(rlock);
  mpx_lock_destroy(lock);
}

// ---- (b) Lock contended by two processes, (e) locked Value increment ---------------------

// Both children do n acquire/increment/release on a shared counter; returns ns per
// acquire+release (elapsed / 2n) and checks the counter.
template <typename Acquire, typename Release>
double contended(const char *what, long n, uint64_t *counter, Acquire acq, Release rel) {
  *counter = 0;
  const bool ok = run_pair(g_pin_contended, [&](int) {
    bool good = true;
    for (long i = 0; i < n; ++i) {
      good &= acq();
      ++*counter;
      good &= rel();
    }
    return good;
  });
  if (!ok) failure("%s: a child process failed", what);
  if (*counter != uint64_t(2 * n)) failure("%s: counter is %" PRIu64 ", expected %ld", what, *counter, 2 * n);
  return pair_elapsed_ns() / double(2 * n);
}

void bench_contended() {
  const long n = cfg.n_contended;
  mpx_lock *lock;
  check(mpx_lock_create(&lock, nullptr), "mpx_lock_create");
  mpx_array *arr;
  check(mpx_array_create(&arr, 'q', 1, nullptr), "mpx_array_create");  // RLock, as Python's Value
  mpx_lock *alock;
  check(mpx_array_lock(arr, &alock), "mpx_array_lock");
  void *addr;
  check(mpx_array_address(arr, &addr), "mpx_array_address");
  auto *value = static_cast<uint64_t *>(addr);
  mpx_array_options ao;
  mpx_array_options_init(&ao, sizeof ao);
  ao.lock = MPX_ARRAY_LOCK_LOCK;
  mpx_array *arr2;
  check(mpx_array_create(&arr2, 'q', 1, &ao), "mpx_array_create(plain lock)");
  mpx_lock *alock2;
  check(mpx_array_lock(arr2, &alock2), "mpx_array_lock");
  check(mpx_array_address(arr2, &addr), "mpx_array_address");
  auto *value2 = static_cast<uint64_t *>(addr);

  auto mpx_acq = [](mpx_lock *l) { return [l] { return mpx_lock_acquire(l, MPX_INFINITE) == MPX_OK; }; };
  auto mpx_rel = [](mpx_lock *l) { return [l] { return mpx_lock_release(l) == MPX_OK; }; };
  auto pt_acq = [](pthread_mutex_t *m) { return [m] { return pthread_mutex_lock(m) == 0; }; };
  auto pt_rel = [](pthread_mutex_t *m) { return [m] { return pthread_mutex_unlock(m) == 0; }; };
  auto fx_acq = [] {
    sh->flock.lock();
    return true;
  };
  auto fx_rel = [] {
    sh->flock.unlock();
    return true;
  };

  Sampler lk(4), va(4), v1(3);
  for (int rep = 0; rep < cfg.reps; ++rep) {
    lk.add(0, contended("mpx Lock, 2 processes", n, &sh->counter, mpx_acq(lock), mpx_rel(lock)));
    lk.add(1, contended("pthread mutex, 2 processes", n, &sh->counter, pt_acq(&sh->mutex), pt_rel(&sh->mutex)));
    lk.add(2, contended("pthread robust mutex, 2 processes", n, &sh->counter, pt_acq(&sh->robust),
                        pt_rel(&sh->robust)));
    lk.add(3, contended("bare futex lock, 2 processes", n, &sh->counter, fx_acq, fx_rel));

    va.add(0, contended("mpx Value('q') + its RLock, 2 processes", n, value, mpx_acq(alock), mpx_rel(alock)));
    va.add(1, contended("mpx Value('q') + plain Lock, 2 processes", n, value2, mpx_acq(alock2), mpx_rel(alock2)));
    va.add(2, contended("pthread mutex + shared int, 2 processes", n, &sh->counter, pt_acq(&sh->mutex),
                        pt_rel(&sh->mutex)));
    va.add(3, contended("futex lock + shared int, 2 processes", n, &sh->counter, fx_acq, fx_rel));

    // The same locked increment in one process.
    const long n1 = cfg.n_uncontended;
    *value = 0;
    v1.add(0, time_loop(n1, [&] {
             mpx_lock_acquire(alock, MPX_INFINITE);
             ++*value;
             mpx_lock_release(alock);
           }));
    sh->counter = 0;
    v1.add(1, time_loop(n1, [&] {
             pthread_mutex_lock(&sh->mutex);
             ++sh->counter;
             pthread_mutex_unlock(&sh->mutex);
           }));
    const uint64_t pthread_count = sh->counter;
    sh->counter = 0;
    v1.add(2, time_loop(n1, [&] {
             sh->flock.lock();
             ++sh->counter;
             sh->flock.unlock();
           }));
    if (*value != uint64_t(n1) || pthread_count != uint64_t(n1) || sh->counter != uint64_t(n1))
      failure("single-process locked increment: counters %" PRIu64 ", %" PRIu64 ", %" PRIu64 ", expected %ld",
              *value, pthread_count, sh->counter, n1);
  }
  g_rows.push_back({"Lock acquire+release, 2 processes contending", "ns", lk.med(0),
                    {{"pthread mutex (pshared)", lk.med(1)},
                     {"pthread mutex (pshared, robust)", lk.med(2)},
                     {"bare futex lock", lk.med(3)}},
                    1.2});
  g_rows.push_back({"Value('q') += 1 under its RLock, 2 processes", "ns", va.med(0),
                    {{"pthread mutex + shared int", va.med(2)}, {"bare futex lock + shared int", va.med(3)}},
                    1.2,
                    {}});
  g_rows.push_back({"Value('q') += 1 under a plain Lock, 2 processes", "ns", va.med(1),
                    {{"pthread mutex + shared int", va.med(2)}},
                    1.2,
                    {}});
  g_rows.push_back({"Value('q') += 1 under its RLock, 1 process", "ns", v1.med(0),
                    {{"pthread mutex + shared int", v1.med(1)}, {"bare futex lock + shared int", v1.med(2)}},
                    1.5,
                    {}});
  mpx_lock_destroy(alock2);
  mpx_array_destroy(arr2);
  mpx_lock_destroy(alock);
  mpx_array_destroy(arr);
  mpx_lock_destroy(lock);
}

// ---- (c) Semaphore ping-pong, (d) Event ping-pong ----------------------------------------

// Child 0 sends, child 1 answers; returns the round trip in microseconds, timed by child 0.
template <typename Ping, typename Pong>
double pingpong(const char *what, long n, Ping ping, Pong pong) {
  const bool ok = run_pair(g_pin_pingpong, [&](int i) {
    bool good = true;
    for (long k = 0; k < n; ++k) good &= i == 0 ? ping() : pong();
    return good;
  });
  if (!ok) failure("%s: a child process failed", what);
  return double(sh->end[0] - sh->start[0]) / double(n) / 1000.0;
}

void bench_pingpong() {
  const long n = cfg.n_pingpong;
  mpx_semaphore *s[2];
  mpx_event *e[2];
  for (int i = 0; i < 2; ++i) {
    check(mpx_semaphore_create(&s[i], 0, nullptr), "mpx_semaphore_create");
    check(mpx_event_create(&e[i]), "mpx_event_create");
  }
  // Semaphores: ping = post s0, wait s1; pong = wait s0, post s1.
  auto mpx_ping = [&] {
    return (mpx_semaphore_release(s[0]) | mpx_semaphore_acquire(s[1], MPX_INFINITE)) == MPX_OK;
  };
  auto mpx_pong = [&] {
    return (mpx_semaphore_acquire(s[0], MPX_INFINITE) | mpx_semaphore_release(s[1])) == MPX_OK;
  };
  auto psx_ping = [] { return (sem_post(&sh->sem[0]) | sem_wait(&sh->sem[1])) == 0; };
  auto psx_pong = [] { return (sem_wait(&sh->sem[0]) | sem_post(&sh->sem[1])) == 0; };
  auto fx_ping = [] {
    sh->fsem[0].release();
    sh->fsem[1].acquire();
    return true;
  };
  auto fx_pong = [] {
    sh->fsem[0].acquire();
    sh->fsem[1].release();
    return true;
  };
  // Events: ping = set e0, wait e1, clear e1; pong = wait e0, clear e0, set e1.
  auto ev_ping = [&] {
    return (mpx_event_set(e[0]) | mpx_event_wait(e[1], MPX_INFINITE) | mpx_event_clear(e[1])) == MPX_OK;
  };
  auto ev_pong = [&] {
    return (mpx_event_wait(e[0], MPX_INFINITE) | mpx_event_clear(e[0]) | mpx_event_set(e[1])) == MPX_OK;
  };
  auto fe_ping = [] {
    sh->fev[0].set();
    sh->fev[1].wait();
    sh->fev[1].clear();
    return true;
  };
  auto fe_pong = [] {
    sh->fev[0].wait();
    sh->fev[0].clear();
    sh->fev[1].set();
    return true;
  };
  auto reset = [&](int spin_sem, int spin_ev) {
    for (auto &f : sh->fsem) {
      f.value.store(0);
      f.sleepers.store(0);
      f.spin = spin_sem;
    }
    for (auto &f : sh->fev) {
      f.flag.store(0);
      f.sleepers.store(0);
      f.spin = spin_ev;
    }
  };

  Sampler sp(4), ep(3);
  for (int rep = 0; rep < cfg.reps; ++rep) {
    sp.add(0, pingpong("mpx Semaphore ping-pong", n, mpx_ping, mpx_pong));
    sp.add(1, pingpong("sem_t ping-pong", n, psx_ping, psx_pong));
    reset(0, 0);
    sp.add(2, pingpong("futex semaphore ping-pong", n, fx_ping, fx_pong));
    reset(100, 0);  // mpx's semaphore spins 100 rounds before sleeping
    sp.add(3, pingpong("futex semaphore (spin 100) ping-pong", n, fx_ping, fx_pong));

    ep.add(0, pingpong("mpx Event ping-pong", n, ev_ping, ev_pong));
    reset(0, 0);
    ep.add(1, pingpong("futex event ping-pong", n, fe_ping, fe_pong));
    reset(0, 200);  // mpx's event spins 200 rounds before sleeping
    ep.add(2, pingpong("futex event (spin 200) ping-pong", n, fe_ping, fe_pong));
  }
  uint32_t v0 = 9, v1 = 9;
  mpx_semaphore_value(s[0], &v0);
  mpx_semaphore_value(s[1], &v1);
  if (v0 != 0 || v1 != 0) failure("Semaphore: values %u and %u after ping-pong, expected 0", v0, v1);

  g_rows.push_back({"Semaphore ping-pong (2 sems), round trip", "us", sp.med(0),
                    {{"POSIX sem_t (pshared)", sp.med(1)},
                     {"bare futex semaphore, no spin", sp.med(2)},
                     {"bare futex semaphore, spin 100", sp.med(3)}},
                    0,
                    "(no target)"});
  g_rows.push_back({"Event set/wait/clear ping-pong, round trip", "us", ep.med(0),
                    {{"bare futex event, no spin", ep.med(1)}, {"bare futex event, spin 200", ep.med(2)}},
                    0,
                    "(no target)"});
  for (int i = 0; i < 2; ++i) {
    mpx_semaphore_destroy(s[i]);
    mpx_event_destroy(e[i]);
  }
}

// ---- system-call count of the uncontended paths ------------------------------------------

const char *const kProbeOps[] = {"lock", "rlock", "semaphore", "event", "value"};

// Run n uncontended operations of one kind and nothing else.
int syscall_probe(const std::string &op, long n) {
  int bad = 0;
  if (op == "lock" || op == "rlock") {
    mpx_lock_options lo;
    mpx_lock_options_init(&lo, sizeof lo);
    lo.flags = op == "rlock" ? MPX_LOCK_RECURSIVE : 0;
    mpx_lock *l;
    check(mpx_lock_create(&l, &lo), "mpx_lock_create");
    for (long i = 0; i < n; ++i) bad |= mpx_lock_acquire(l, MPX_INFINITE) | mpx_lock_release(l);
    mpx_lock_destroy(l);
  } else if (op == "semaphore") {
    mpx_semaphore *s;
    check(mpx_semaphore_create(&s, 1, nullptr), "mpx_semaphore_create");
    for (long i = 0; i < n; ++i) bad |= mpx_semaphore_acquire(s, MPX_INFINITE) | mpx_semaphore_release(s);
    mpx_semaphore_destroy(s);
  } else if (op == "event") {
    mpx_event *e;
    check(mpx_event_create(&e), "mpx_event_create");
    int is_set = 0;
    for (long i = 0; i < n; ++i)
      bad |= mpx_event_set(e) | mpx_event_wait(e, MPX_INFINITE) | mpx_event_is_set(e, &is_set) | mpx_event_clear(e);
    mpx_event_destroy(e);
  } else if (op == "value") {
    mpx_array *a;
    check(mpx_array_create(&a, 'q', 1, nullptr), "mpx_array_create");
    mpx_lock *l;
    check(mpx_array_lock(a, &l), "mpx_array_lock");
    void *addr;
    check(mpx_array_address(a, &addr), "mpx_array_address");
    for (long i = 0; i < n; ++i) {
      bad |= mpx_lock_acquire(l, MPX_INFINITE);
      ++*static_cast<int64_t *>(addr);
      bad |= mpx_lock_release(l);
    }
    mpx_lock_destroy(l);
    mpx_array_destroy(a);
  } else {
    std::fprintf(stderr, "unknown probe %s\n", op.c_str());
    return 2;
  }
  return bad ? 1 : 0;
}

// Run the probe under `strace -f -c`; per-syscall call counts, empty on failure.
std::map<std::string, long> strace_counts(const std::string &strace, const std::string &exe, const char *op, long n) {
  std::map<std::string, long> counts;
  char out[] = "/tmp/mpx_bench_strace_XXXXXX";
  const int fd = mkstemp(out);
  if (fd < 0) return counts;
  close(fd);
  const std::string ns = std::to_string(n);
  const pid_t pid = fork();
  if (pid == 0) {
    const int devnull = open("/dev/null", O_WRONLY);
    dup2(devnull, 1);
    dup2(devnull, 2);
    execl(strace.c_str(), "strace", "-f", "-c", "-U", "calls,name", "-o", out, exe.c_str(), "--syscall-probe", op,
          ns.c_str(), static_cast<char *>(nullptr));
    _exit(127);
  }
  int st = 0;
  waitpid(pid, &st, 0);
  if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
    if (FILE *f = std::fopen(out, "r")) {
      char line[256];
      while (std::fgets(line, sizeof line, f)) {
        long calls;
        char name[128];
        if (std::sscanf(line, " %ld %127s", &calls, name) == 2) counts[name] = calls;
      }
      std::fclose(f);
    }
  } else {
    counts.clear();
    counts["<failed>"] = -1;
  }
  unlink(out);
  return counts;
}

std::string find_in_path(const char *prog) {
  const char *path = std::getenv("PATH");
  std::string p = path ? path : "/usr/bin:/bin";
  size_t start = 0;
  while (start <= p.size()) {
    size_t end = p.find(':', start);
    if (end == std::string::npos) end = p.size();
    std::string cand = p.substr(start, end - start) + "/" + prog;
    if (access(cand.c_str(), X_OK) == 0) return cand;
    start = end + 1;
  }
  return {};
}

void bench_syscalls() {
  std::printf("\nSystem calls made by uncontended operations: strace -f -c around `bench_sync --syscall-probe OP N`,\n"
              "minus the same run with N = 1 (start-up, set-up and one-time costs such as caching the thread id):\n");
  const std::string strace = find_in_path("strace");
  if (strace.empty()) {
    std::printf("  skipped: strace is not installed (apt-get install strace)\n");
    return;
  }
  char exe[PATH_MAX];
  const ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (len <= 0) {
    std::printf("  skipped: cannot read /proc/self/exe\n");
    return;
  }
  exe[len] = 0;
  const long n = cfg.quick ? 20'000 : 1'000'000;
  std::printf("  %-46s %12s %18s  %s\n", ("operation, N = " + std::to_string(n)).c_str(), "extra calls",
              "per million ops", "target: 0");
  const char *labels[] = {"Lock acquire+release", "RLock acquire+release", "Semaphore acquire+release",
                          "Event set+wait+is_set+clear (already set)", "Value lock + increment + release"};
  for (size_t k = 0; k < sizeof kProbeOps / sizeof *kProbeOps; ++k) {
    const auto base = strace_counts(strace, exe, kProbeOps[k], 1);
    const auto run = strace_counts(strace, exe, kProbeOps[k], n);
    if (base.count("<failed>") || run.count("<failed>") || !base.count("total") || !run.count("total")) {
      std::printf("  %-46s   strace failed (ptrace not permitted here?)\n", labels[k]);
      continue;
    }
    const long extra = run.at("total") - base.at("total");  // over n - 1 operations
    std::string detail;
    for (const auto &[name, calls] : run) {
      if (name == "total") continue;
      const auto it = base.find(name);
      const long d = calls - (it == base.end() ? 0 : it->second);
      if (d != 0) detail += " " + name + " " + std::to_string(d);
    }
    std::printf("  %-46s %12ld %18.1f  %s%s\n", labels[k], extra, double(extra) * 1e6 / double(n - 1),
                extra == 0 ? "met" : "MISSED:", detail.c_str());
  }
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char **argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--syscall-probe" && i + 2 < argc) return syscall_probe(argv[i + 1], std::atol(argv[i + 2]));
    if (a == "--quick") cfg.quick = true;
    else if (a == "--uncontended-only") cfg.uncontended_only = true;
    else if (a == "--no-strace") cfg.strace = false;
    else {
      std::fprintf(stderr,
                   "usage: %s [--quick] [--uncontended-only] [--no-strace] | --syscall-probe "
                   "lock|rlock|semaphore|event|value N\n",
                   argv[0]);
      return 2;
    }
  }
  if (cfg.quick) {
    cfg.n_uncontended = 20'000;
    cfg.n_contended = 20'000;
    cfg.n_pingpong = 200;
    cfg.reps = 1;
    cfg.strace = false;
  }
  cfg.n_uncontended = scaled_count("MPX_BENCH_N", cfg.n_uncontended);
  cfg.n_contended = scaled_count("MPX_BENCH_CONTENDED_N", cfg.n_contended);
  cfg.n_pingpong = scaled_count("MPX_BENCH_PINGPONG_N", cfg.n_pingpong);
  cfg.reps = int(env_long("MPX_BENCH_REPS", cfg.reps));
  if (const char *pin = std::getenv("MPX_BENCH_PIN")) {
    const std::string p = pin;
    g_pin_contended = p == "all" || p == "contended" || p == "1";
    g_pin_pingpong = p == "all";
  }
  g_ncpu = int(sysconf(_SC_NPROCESSORS_ONLN));

  std::printf("bench_sync: mpx %s vs raw baselines, same run. CPUs %d%s; median of %d; N uncontended %ld, "
              "contended %ld per process, ping-pong %ld round trips\n",
              mpx_version_string(), g_ncpu, g_ncpu < 2 ? "" : g_pin_pingpong ? " (2 processes pinned to CPUs 0 and 1)" : g_pin_contended ? " (contending processes pinned to CPUs 0 and 1, ping-pong not pinned)" : " (not pinned)",
              cfg.reps, cfg.n_uncontended, cfg.n_contended, cfg.n_pingpong);
  std::fflush(stdout);
  const int64_t t0 = now_ns();
  setup_shared();
  bench_uncontended();
  if (!cfg.uncontended_only) {
    bench_contended();
    bench_pingpong();
  }
  print_rows();
  if (cfg.strace) bench_syscalls();
  std::printf("\nbench_sync: %.1f s%s\n", double(now_ns() - t0) / 1e9, g_failed ? "; WRONG RESULTS (see FAILED above)" : "; all results verified");
  return g_failed ? 1 : 0;
}
