// bench_pool: mpx_pool_map from C, side by side with Python's multiprocessing.Pool (the peer,
// run by python3 in the same run) and two floors: the work done serially in this process, and
// a raw pool of forked workers fed over socketpairs with a static split (no per-task dispatch,
// no fault handling: the least two processes can do to share the work). Issue 5's targets:
//
//   map of 100k trivial tasks, chunksize=1     per-item overhead <= 1 us     (Python: ~38 us)
//   map of 100k trivial tasks, automatic chunk  per-item overhead <= 0.05 us  (Python: ~0.19 us)
//   map of 1k CPU-bound 10 ms tasks, 2 workers  speedup >= 1.9x over serial
//
// Per-item overhead = wall time of the map / items (the trivial task costs nanoseconds), with
// the pool already started and one untimed map of the same kind run first (both for mpx and
// for Python): the steady state of a program that maps again and again. The first map of a
// fresh pool also pays for touching fresh memory in every process (about 0.5 us/item more at
// the automatic chunksize here). Speedup = (items x the task's serial
// time, measured here) / wall time of the map.
//
//   bench_pool            the full table (about 15 s, most of it the CPU-bound map)
//   bench_pool --quick    small counts; exits 1 only on a wrong result, never on timing
//
// Environment: MPX_BENCH_POOL_N (trivial items, default 100,000), MPX_BENCH_POOL_CPU_N
// (CPU-bound items, default 1,000), MPX_BENCH_POOL_CPU_MS (their length, default 10),
// MPX_BENCH_SCALE (multiplies the counts), MPX_BENCH_REPS (default 5; medians),
// PYTHON (default python3; set MPX_BENCH_NO_PYTHON=1 to skip the peer).
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "bench_common.hpp"

using namespace mpxbench;

namespace {

struct Config {
  bool quick = false;
  long n = 100'000;
  long cpu_n = 1'000;
  long cpu_ms = 10;
  int reps = 5;
  int workers = 2;
} cfg;

int trivial(const void *arg, size_t size, mpx_task_out *out) { return mpx_task_return(out, arg, size); }

// Spin for the int64 argument in microseconds of CPU time; return the iterations.
volatile uint64_t g_sink;
int64_t g_spins_per_us = 100;
uint64_t spin(int64_t us) {
  uint64_t x = 0;
  const int64_t n = us * g_spins_per_us;
  for (int64_t i = 0; i < n; ++i) x = x * 6364136223846793005ull + 1442695040888963407ull;
  return x;
}
int cpu_task(const void *arg, size_t size, mpx_task_out *out) {
  int64_t us = 0;
  if (size == sizeof us) std::memcpy(&us, arg, sizeof us);
  const uint64_t x = spin(us);
  return mpx_task_return(out, &x, sizeof x);
}

void calibrate() {
  const int64_t t0 = now_ns();
  g_spins_per_us = 1;
  g_sink = spin(20'000'000);  // 20 M iterations
  const double ns = double(now_ns() - t0);
  g_spins_per_us = std::max<int64_t>(1, int64_t(20'000'000 / (ns / 1000.0)));
}

mpx_pool *make_pool() {
  mpx_pool_options o;
  mpx_pool_options_init(&o, sizeof o);
  o.workers = cfg.workers;
  mpx_pool *p = nullptr;
  check(mpx_pool_create(&p, &o), "mpx_pool_create");
  return p;
}

// One map; returns seconds, checks every result.
double run_map(mpx_pool *p, mpx_task_fn fn, const std::vector<int64_t> &in, size_t chunk, bool check_echo) {
  mpx_map m;
  mpx_map_init(&m, sizeof m);
  m.fn = fn;
  m.data = in.data();
  m.item_size = sizeof(int64_t);
  m.count = in.size();
  m.chunksize = chunk;
  const int64_t t0 = now_ns();
  mpx_job *j = nullptr;
  check(mpx_pool_map(p, &m, &j), "mpx_pool_map");
  check(mpx_job_wait(j, -1), "mpx_job_wait");
  const double s = double(now_ns() - t0) / 1e9;
  for (size_t i = 0; i < in.size(); ++i) {
    const void *d;
    size_t n;
    if (mpx_job_result(j, i, &d, &n) != MPX_OK || n != sizeof(int64_t)) {
      failure("item %zu: %s", i, mpx_last_error_message());
      break;
    }
    int64_t v;
    std::memcpy(&v, d, sizeof v);
    if (check_echo && v != in[i]) {
      failure("item %zu came back as %lld", i, static_cast<long long>(v));
      break;
    }
  }
  mpx_job_destroy(j);
  return s;
}

// The raw floor: `workers` forked children, each given its share of the items over a
// socketpair in one stream, answering in one stream.
double run_raw(const std::vector<int64_t> &in) {
  const int64_t t0 = now_ns();
  std::vector<int> socks;
  std::vector<pid_t> pids;
  const size_t share = (in.size() + size_t(cfg.workers) - 1) / size_t(cfg.workers);
  for (int w = 0; w < cfg.workers; ++w) {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) std::exit(1);
    const pid_t pid = fork();
    if (pid == 0) {
      close(sv[0]);
      for (int s : socks) close(s);  // the parent's ends of the earlier workers' sockets
      int64_t buf[4096];
      for (;;) {
        ssize_t n = read(sv[1], buf, sizeof buf);
        if (n <= 0) _exit(0);
        while (n % 8) {  // whole items only
          const ssize_t more = read(sv[1], reinterpret_cast<char *>(buf) + n, size_t(8 - n % 8));
          if (more <= 0) _exit(1);
          n += more;
        }
        // The trivial task: each argument back, as it is.
        for (ssize_t off = 0; off < n;) {
          const ssize_t k = write(sv[1], reinterpret_cast<char *>(buf) + off, size_t(n - off));
          if (k <= 0) _exit(1);
          off += k;
        }
      }
    }
    close(sv[1]);
    socks.push_back(sv[0]);
    pids.push_back(pid);
  }
  // Write and read in slices so that neither side's socket buffer fills for good.
  std::vector<int64_t> out(in.size());
  for (int w = 0; w < cfg.workers; ++w) {
    const size_t first = size_t(w) * share, last = std::min(in.size(), first + share);
    size_t sent = first, got = first;
    while (got < last) {
      if (sent < last) {
        const size_t n = std::min<size_t>(4096, last - sent);
        const ssize_t k = write(socks[size_t(w)], &in[sent], n * 8);
        if (k > 0) sent += size_t(k) / 8;
      }
      const ssize_t k = read(socks[size_t(w)], &out[got], (sent - got) * 8);
      if (k > 0) got += size_t(k) / 8;
    }
  }
  for (size_t w = 0; w < socks.size(); ++w) {
    close(socks[w]);
    waitpid(pids[w], nullptr, 0);
  }
  const double s = double(now_ns() - t0) / 1e9;
  if (out != in) failure("raw pool: wrong results");
  return s;
}

// Python's multiprocessing.Pool, same machine, same run: prints "chunk1 auto cpu" in seconds.
bool run_python(std::vector<double> *chunk1, std::vector<double> *automatic, double *cpu_wall) {
  if (std::getenv("MPX_BENCH_NO_PYTHON")) return false;
  const char *py = std::getenv("PYTHON") ? std::getenv("PYTHON") : "python3";
  const std::string script =
      "import multiprocessing as mp, time, sys\n"
      "def f(x): return x\n"
      "def spin(n):\n"
      "    t = time.process_time() + n / 1e6\n"
      "    while time.process_time() < t: pass\n"
      "    return n\n"
      "if __name__ == '__main__':\n"
      "    n, reps, cpu_n, cpu_us = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])\n"
      "    with mp.get_context('fork').Pool(2) as p:\n"
      "        def timed(**kw):\n"
      "            t = time.perf_counter(); assert p.map(f, range(n), **kw) == list(range(n)); return time.perf_counter() - t\n"
      "        timed(chunksize=1); a = [timed(chunksize=1) for r in range(reps)]\n"
      "        timed(); b = [timed() for r in range(reps)]\n"
      "        for x, y in zip(a, b): print('map', x, y, flush=True)\n"
      "        t = time.perf_counter(); p.map(spin, [cpu_us] * cpu_n, chunksize=1); print('cpu', time.perf_counter() - t)\n";
  const std::string path = "/tmp/mpx_bench_pool_" + std::to_string(getpid()) + ".py";
  FILE *f = std::fopen(path.c_str(), "w");
  if (!f) return false;
  std::fputs(script.c_str(), f);
  std::fclose(f);
  const long py_n = cfg.quick ? cfg.n : std::min<long>(cfg.n, 100'000);
  const std::string cmd = std::string(py) + " " + path + " " + std::to_string(py_n) + " " +
                          std::to_string(cfg.reps) + " " + std::to_string(cfg.quick ? 20 : 200) + " " +
                          std::to_string(cfg.cpu_ms * 1000);
  FILE *p = popen(cmd.c_str(), "r");
  if (!p) return false;
  char line[256];
  while (std::fgets(line, sizeof line, p)) {
    double a, b;
    if (std::sscanf(line, "map %lf %lf", &a, &b) == 2) {
      chunk1->push_back(a / double(py_n) * 1e6);
      automatic->push_back(b / double(py_n) * 1e6);
    } else if (std::sscanf(line, "cpu %lf", &a) == 1) {
      *cpu_wall = a / double(cfg.quick ? 20 : 200);  // seconds per task
    }
  }
  const int rc = pclose(p);
  std::remove(path.c_str());
  return rc == 0 && !chunk1->empty();
}

void row(const char *what, double value, const char *unit, const char *target) {
  std::printf("  %-58s %10.3f %-8s %s\n", what, value, unit, target);
}

}  // namespace

int main(int argc, char **argv) {
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--quick") == 0) cfg.quick = true;
    else {
      std::fprintf(stderr, "usage: %s [--quick]\n", argv[0]);
      return 2;
    }
  }
  if (cfg.quick) {
    cfg.n = 5'000;
    cfg.cpu_n = 20;
    cfg.cpu_ms = 2;
    cfg.reps = 1;
  }
  cfg.n = scaled_count("MPX_BENCH_POOL_N", cfg.n);
  cfg.cpu_n = scaled_count("MPX_BENCH_POOL_CPU_N", cfg.cpu_n);
  cfg.cpu_ms = env_long("MPX_BENCH_POOL_CPU_MS", cfg.cpu_ms);
  cfg.reps = int(env_long("MPX_BENCH_REPS", cfg.reps));
  calibrate();
  std::printf("bench_pool: mpx %s, Pool(%d) of fork workers, CPUs %ld; median of %d; %ld trivial items, %ld x %ld ms "
              "CPU-bound items\n",
              mpx_version_string(), cfg.workers, sysconf(_SC_NPROCESSORS_ONLN), cfg.reps, cfg.n, cfg.cpu_n,
              cfg.cpu_ms);
  std::fflush(stdout);

  std::vector<int64_t> in(size_t(cfg.n));
  for (size_t i = 0; i < in.size(); ++i) in[i] = int64_t(i) * 3 - 7;
  // The first map of a fresh pool (each kind on a pool of its own), for the record.
  double cold1, cold_auto;
  {
    mpx_pool *q = make_pool();
    cold1 = run_map(q, trivial, in, 1, true) / double(in.size()) * 1e6;
    mpx_pool_destroy(q);
    q = make_pool();
    cold_auto = run_map(q, trivial, in, 0, true) / double(in.size()) * 1e6;
    mpx_pool_destroy(q);
  }
  mpx_pool *p = make_pool();
  // Steady state, as a program mapping again and again sees it: each kind of map runs once
  // untimed (the first touch of fresh memory in every process), then reps times. The Python
  // peer is measured the same way.
  std::vector<double> c1, au, serial, raw;
  run_map(p, trivial, in, 1, true);
  for (int r = 0; r < cfg.reps; ++r) c1.push_back(run_map(p, trivial, in, 1, true) / double(in.size()) * 1e6);
  run_map(p, trivial, in, 0, true);
  for (int r = 0; r < cfg.reps; ++r) au.push_back(run_map(p, trivial, in, 0, true) / double(in.size()) * 1e6);
  for (int r = 0; r < cfg.reps; ++r) {
    raw.push_back(run_raw(in) / double(in.size()) * 1e6);
    // Serial: the task function called in this process, result copied out.
    const int64_t t0 = now_ns();
    for (int64_t v : in) g_sink = uint64_t(v);
    serial.push_back(double(now_ns() - t0) / double(in.size()) / 1e3);
  }

  // CPU-bound: serial time of one task measured here, then the map.
  std::vector<int64_t> cpu(size_t(cfg.cpu_n), cfg.cpu_ms * 1000);
  const int64_t s0 = now_ns();
  const long sample = std::min<long>(cfg.cpu_n, 20);
  for (long i = 0; i < sample; ++i) g_sink = spin(cfg.cpu_ms * 1000);
  const double per_task = double(now_ns() - s0) / 1e9 / double(sample);
  const double cpu_wall = run_map(p, cpu_task, cpu, 1, false);
  const double speedup = per_task * double(cfg.cpu_n) / cpu_wall;
  check(mpx_pool_close(p), "close");
  check(mpx_pool_join(p, -1), "join");
  mpx_pool_destroy(p);

  std::vector<double> py1, pyau;
  double py_cpu_per_task = 0;
  const bool have_py = run_python(&py1, &pyau, &py_cpu_per_task);

  std::printf("\nmap of %ld trivial tasks (per-item overhead, lower is better)\n", cfg.n);
  row("mpx_pool_map, chunksize=1", median(c1), "us/item", "target <= 1 us");
  row("mpx_pool_map, automatic chunksize", median(au), "us/item", "target <= 0.05 us");
  row("  the first map of a fresh pool, chunksize=1", cold1, "us/item", "");
  row("  the first map of a fresh pool, automatic chunksize", cold_auto, "us/item", "");
  row("floor: raw fork + socketpairs, static split", median(raw), "us/item", "");
  row("floor: serial loop in this process", median(serial), "us/item", "");
  if (have_py) {
    row("Python multiprocessing.Pool(2).map, chunksize=1", median(py1), "us/item", "");
    row("Python multiprocessing.Pool(2).map, automatic chunksize", median(pyau), "us/item", "");
    std::printf("  ratios (Python time / mpx time): chunksize=1 %.1fx, automatic %.1fx\n", median(py1) / median(c1),
                median(pyau) / median(au));
  } else {
    std::printf("  (Python's multiprocessing not measured: MPX_BENCH_NO_PYTHON or python3 failed)\n");
  }
  std::printf("\nmap of %ld CPU-bound %ld ms tasks over %d workers (higher is better)\n", cfg.cpu_n, cfg.cpu_ms,
              cfg.workers);
  row("mpx speedup over serial", speedup, "x", "target >= 1.9x");
  if (have_py && py_cpu_per_task > 0)
    row("Python multiprocessing.Pool(2), seconds per task (wall/items)", py_cpu_per_task, "s", "");
  std::printf("\n");
  return g_failed ? 1 : 0;
}
