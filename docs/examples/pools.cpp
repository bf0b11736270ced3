// pools.cpp - the seeds' pool programs in C++ with mpx::Pool: map of squares, apply_async with
// a callback, a starmap (the arguments in a struct), imap with progress; then a worker killed
// mid-task (only its task fails) and a task timeout.
//
// Build and run from the repository root, once the library is built:
//   c++ -std=c++20 -Wall -Wextra docs/examples/pools.cpp -I include -L build/default/src -lmpx
//       -Wl,-rpath,$PWD/build/default/src -o /tmp/pools_cpp && /tmp/pools_cpp
// (one command: the line break is only for reading)
#include <mpx/mpx.hpp>

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <numeric>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

// Task functions run in the workers. mpx::as_task<f> turns a C++ function of trivially
// copyable types (or strings) into the C task signature: bytes in, bytes out.
int64_t square(int64_t x) { return x * x; }

struct PowerArgs {  // starmap: an item carries several arguments, so it is a struct
  int64_t base;
  int exp;
};
int64_t power(PowerArgs a) {
  int64_t r = 1;
  for (int i = 0; i < a.exp; ++i) r *= a.base;
  return r;
}

int64_t slow_square(int64_t x) {
  std::this_thread::sleep_for(10ms);
  return x * x;
}

mpx::Queue *g_pids;  // made before the pool: every forked worker has it

void doomed() {
  g_pids->put(std::to_string(getpid()));
  std::this_thread::sleep_for(60s);
}

void sleepy() { std::this_thread::sleep_for(60s); }

int main() try {
  mpx::Queue pids;
  g_pids = &pids;
  bool ok = true;
  {
    mpx::Pool pool(2);  // two fork workers; mpx::Pool() has one per CPU

    // 1. Pool.map of squares.
    std::vector<int64_t> xs(10);
    std::iota(xs.begin(), xs.end(), 0);
    const std::vector<int64_t> squares = pool.map_as<int64_t>(mpx::as_task<square>, xs);
    std::printf("map:");
    for (int64_t s : squares) std::printf(" %lld", static_cast<long long>(s));
    std::printf("\n");
    ok = ok && squares[9] == 81;

    // 2. apply_async with a callback (run on a pool thread once the task has ended).
    std::atomic<int64_t> got{0};
    mpx::AsyncResult r = pool.apply_async(mpx::as_task<square>, int64_t{12},
                                          mpx::job_options().callback([&](mpx::JobView job) { got = job.result_as<int64_t>(0); }));
    const int64_t v = r.get_as<int64_t>(10s);  // returns once the callback has run, as in Python
    std::printf("apply_async: %lld, callback got %lld\n", static_cast<long long>(v), static_cast<long long>(got.load()));
    ok = ok && v == 144 && got == 144;

    // 3. starmap: each item a struct of the arguments.
    const std::vector<PowerArgs> args = {{2, 10}, {3, 3}, {10, 2}};
    const std::vector<int64_t> powers = pool.map_as<int64_t>(mpx::as_task<power>, args);
    std::printf("starmap: %lld %lld %lld\n", static_cast<long long>(powers[0]), static_cast<long long>(powers[1]),
                static_cast<long long>(powers[2]));
    ok = ok && powers == std::vector<int64_t>{1024, 27, 100};

    // 4. imap with progress: iterate the items in order as they end.
    std::vector<int64_t> ys(200);
    std::iota(ys.begin(), ys.end(), 0);
    mpx::MapResult m = pool.imap(mpx::as_task<slow_square>, ys, mpx::job_options().chunksize(4));
    int64_t sum = 0;
    for (const mpx::MapResult::item &it : m) {
      sum += it.get_as<int64_t>();  // a failed item would throw mpx::task_error here
      if ((it.index() + 1) % 50 == 0) {
        const mpx_progress p = m.progress();
        std::printf("imap: %3llu/%llu items ended, %.0f items/s, eta %.2f s\n", static_cast<unsigned long long>(p.done),
                    static_cast<unsigned long long>(p.total), p.rate, p.eta_s);
      }
    }
    std::printf("imap: sum of squares %lld\n", static_cast<long long>(sum));
    ok = ok && sum == 2646700;

    // 5. A worker killed mid-task: only that task fails, with mpx::task_error MPX_EWORKERDIED.
    mpx::AsyncResult d = pool.apply_async(mpx::as_task<doomed>);
    kill(std::stoi(pids.get_string(10s).value_or("0")), SIGKILL);
    try {
      d.get(10s);
      ok = false;
    } catch (const mpx::task_error &e) {
      std::printf("killed worker: %s (exit code %d): %s\n", e.name(), e.task_code(), e.detail().c_str());
      ok = ok && e.value() == MPX_EWORKERDIED && e.task_code() == -SIGKILL;
    }
    std::printf("and then apply: %lld\n", static_cast<long long>(pool.apply_as<int64_t>(mpx::as_task<square>, int64_t{5})));

    // 6. A task timeout: the task fails with MPX_ETIMEDOUT; its worker is killed and replaced.
    try {
      pool.apply(mpx::as_task<sleepy>, {}, mpx::job_options().task_timeout(200ms));
      ok = false;
    } catch (const mpx::task_error &e) {
      std::printf("timeout: %s: %s\n", e.name(), e.detail().c_str());
      ok = ok && e.value() == MPX_ETIMEDOUT;
    }

    pool.close();  // Python's `with Pool() as p: ...` then p.join()
    pool.join(10s);
    const mpx_pool_stats s = pool.stats();
    std::printf("stats: %llu items succeeded, %llu failed; %llu workers started, %llu died\n",
                static_cast<unsigned long long>(s.tasks_succeeded), static_cast<unsigned long long>(s.tasks_failed),
                static_cast<unsigned long long>(s.workers_started), static_cast<unsigned long long>(s.workers_died));
  }  // ~Pool terminates whatever is left and reaps the workers
  std::printf("%s\n", ok ? "ok" : "FAILED");
  return ok ? 0 : 1;
} catch (const mpx::error &e) {
  std::fprintf(stderr, "%s\n", e.what());
  return 1;
}
