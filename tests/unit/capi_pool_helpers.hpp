// Shared by the pool tests: task functions (registered by name, so that forkserver and spawn
// workers know them too), RAII pointers, and small helpers.
#pragma once

#include <signal.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "mpx/mpx.h"
#include "support/mpx_helpers.hpp"

namespace mpxt {

struct PoolDeleter {
  void operator()(mpx_pool *p) const { mpx_pool_destroy(p); }
};
using PoolPtr = std::unique_ptr<mpx_pool, PoolDeleter>;
struct JobDeleter {
  void operator()(mpx_job *j) const { mpx_job_destroy(j); }
};
using JobPtr = std::unique_ptr<mpx_job, JobDeleter>;

// ---- task functions ----------------------------------------------------------------------

// The int64 argument, squared.
inline int task_square(const void *arg, size_t size, mpx_task_out *out) {
  int64_t v = 0;
  if (size != sizeof v) {
    mpx_task_error(out, "square wants 8 bytes");
    return 22;
  }
  std::memcpy(&v, arg, sizeof v);
  v *= v;
  return mpx_task_return(out, &v, sizeof v);
}

// The argument back.
inline int task_echo(const void *arg, size_t size, mpx_task_out *out) { return mpx_task_return(out, arg, size); }

// This worker's pid.
inline int task_pid(const void *, size_t, mpx_task_out *out) {
  int64_t pid = getpid();
  return mpx_task_return(out, &pid, sizeof pid);
}

// Sleep the int64 argument in milliseconds, then return the worker's pid.
inline int task_sleep(const void *arg, size_t size, mpx_task_out *out) {
  int64_t ms = 0;
  if (size == sizeof ms) std::memcpy(&ms, arg, sizeof ms);
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  return task_pid(arg, size, out);
}

// Fail with code 7 and a message.
inline int task_fail(const void *, size_t, mpx_task_out *out) {
  mpx_task_error(out, "the task said no");
  return 7;
}

// Die: argument "segv", "exit3", "kill9" or "abort".
inline int task_die(const void *arg, size_t size, mpx_task_out *) {
  const std::string how(static_cast<const char *>(arg), size);
  if (how == "segv") raise(SIGSEGV);
  if (how == "exit3") _exit(3);
  if (how == "kill9") raise(SIGKILL);
  if (how == "abort") abort();
  return 1;
}

// Grow by the int64 argument in MiB (touched), and keep it.
inline int task_grow(const void *arg, size_t size, mpx_task_out *out) {
  int64_t mib = 0;
  if (size == sizeof mib) std::memcpy(&mib, arg, sizeof mib);
  static char *volatile kept;  // so that the compiler cannot drop the allocation
  kept = static_cast<char *>(malloc(size_t(mib) << 20));
  if (kept) std::memset(kept, 1, size_t(mib) << 20);
  return task_pid(arg, size, out);
}

inline void register_pool_tasks() {
  mpx_register_task("square", task_square);
  mpx_register_task("echo", task_echo);
  mpx_register_task("pid", task_pid);
  mpx_register_task("sleep", task_sleep);
  mpx_register_task("fail", task_fail);
  mpx_register_task("die", task_die);
  mpx_register_task("grow", task_grow);
}

inline PoolPtr make_pool(int workers, uint32_t method = MPX_START_FORK, int64_t maxtasks = 0,
                         int64_t task_timeout_ms = 0) {
  mpx_pool_options o;
  mpx_pool_options_init(&o, sizeof o);
  o.workers = workers;
  o.method = method;
  o.maxtasksperchild = maxtasks;
  o.task_timeout_ms = task_timeout_ms;
  mpx_pool *p = nullptr;
  if (mpx_pool_create(&p, &o) != MPX_OK) return nullptr;
  return PoolPtr(p);
}

inline mpx_task named_task(const char *name, const void *arg = nullptr, size_t size = 0) {
  mpx_task t;
  mpx_task_init(&t, sizeof t);
  t.name = name;
  t.arg = arg;
  t.arg_size = size;
  return t;
}

inline int64_t as_i64(const void *p, size_t n) {
  int64_t v = -1;
  if (n == sizeof v) std::memcpy(&v, p, sizeof v);
  return v;
}

inline std::vector<int64_t> worker_pids(mpx_pool *p) {
  std::vector<int64_t> pids(256);
  size_t n = pids.size();
  if (mpx_pool_worker_pids(p, pids.data(), &n) != MPX_OK) n = 0;
  pids.resize(n);
  return pids;
}

}  // namespace mpxt
