// What bench_queue and bench_pipe share: the two-process harness (a stream of items from this
// process to a forked consumer, and a ping-pong), the stamping and checking of items, CPU
// placement, and the table, whose rows may be rates (higher is better) or times (lower is
// better).
#pragma once

#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <new>
#include <string>
#include <vector>

#include "bench_common.hpp"

namespace mpxbench::ipc {

// ---- items ----------------------------------------------------------------------------------

// Every item carries its sequence number in its first 8 bytes and a function of it in its
// last 8, so that a lost, repeated, reordered, torn or misframed item is caught.
constexpr uint64_t kTailMix = 0x9e3779b97f4a7c15ull;

inline void stamp(unsigned char *buf, size_t len, uint64_t seq) {
  std::memcpy(buf, &seq, 8);
  const uint64_t t = seq ^ kTailMix;
  std::memcpy(buf + len - 8, &t, 8);
}

// True when (buf, len) is item number seq of size want.
inline bool item_ok(const void *buf, size_t len, size_t want, uint64_t seq) {
  if (len != want) return false;
  uint64_t h, t;
  std::memcpy(&h, buf, 8);
  std::memcpy(&t, static_cast<const unsigned char *>(buf) + len - 8, 8);
  return h == seq && t == (seq ^ kTailMix);
}

// Fill a buffer and touch every page (first touches cost ~10 us each here: not in the timings).
inline std::vector<unsigned char> buffer(size_t len) {
  std::vector<unsigned char> b(len);
  for (size_t i = 0; i < len; ++i) b[i] = static_cast<unsigned char>(i * 131 + 7);
  return b;
}

// ---- placement --------------------------------------------------------------------------------

// Queue streams: producer on CPU 0, consumer on CPU 1 (both sides spin; left alone, they
// sometimes share a CPU and take turns, which measures the scheduler). Pipe streams and
// ping-pongs are not pinned: their processes sleep in the kernel and, in these VMs, waking a
// process pinned to an idle vCPU costs 100-200 us instead of 16-24 us (the hypervisor's cost,
// not the pipe's). MPX_BENCH_PIN = contended (the default: the queue streams, as bench_sync
// pins its contending processes) | all | none.
inline bool g_pin_queue = true;
inline bool g_pin_sleepers = false;  // pipe streams and ping-pongs

inline void read_pin_env() {
  if (const char *p = std::getenv("MPX_BENCH_PIN"); p && *p) {
    const std::string s = p;
    g_pin_queue = s != "none" && s != "0";
    g_pin_sleepers = s == "all";
  }
}

inline const char *pin_description() {
  if (sysconf(_SC_NPROCESSORS_ONLN) < 2) return "one CPU: not pinned";
  if (g_pin_sleepers) return "the two processes pinned to CPUs 0 and 1";
  if (g_pin_queue) return "queue producer and consumer pinned to CPUs 0 and 1, pipe processes not";
  return "not pinned";
}

class Pinned {  // pins this process to a CPU for its lifetime, then restores the mask
 public:
  Pinned(bool pin, int cpu) {
    const long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    if (!pin || ncpu < 2 || sched_getaffinity(0, sizeof old_, &old_) != 0) return;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu % ncpu, &set);
    active_ = sched_setaffinity(0, sizeof set, &set) == 0;
  }
  ~Pinned() {
    if (active_) sched_setaffinity(0, sizeof old_, &old_);
  }
  Pinned(const Pinned &) = delete;
  Pinned &operator=(const Pinned &) = delete;

 private:
  cpu_set_t old_{};
  bool active_ = false;
};

// ---- two processes --------------------------------------------------------------------------

struct Ctl {
  alignas(64) std::atomic<uint32_t> ack;  // the consumer has taken the warm-up items
  alignas(64) int64_t t1;                 // when it took the last item
  uint64_t wrong;                         // items that were not what was sent
};
inline Ctl *g_ctl = nullptr;
inline volatile pid_t g_child = 0;

// A consumer that dies early would leave the producer blocked for ever (a full queue, a pipe
// that nobody reads while this process holds both ends): end the benchmark instead.
inline void on_sigchld(int) {
  const int saved = errno;
  const pid_t pid = g_child;
  siginfo_t si{};
  if (pid > 0 && waitid(P_PID, id_t(pid), &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid == pid &&
      !(si.si_code == CLD_EXITED && si.si_status == 0)) {
    static const char msg[] = "FAILED: the benchmark's child process ended early (see above)\n";
    if (write(2, msg, sizeof msg - 1) < 0) {
    }
    _exit(1);
  }
  errno = saved;
}

inline void setup() {
  void *p = mmap(nullptr, sizeof(Ctl), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    std::perror("mmap");
    std::exit(1);
  }
  g_ctl = new (p) Ctl();
  struct sigaction sa{};
  sa.sa_handler = on_sigchld;
  sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
  sigaction(SIGCHLD, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);  // a raw write to a dead reader: EPIPE, reported as a failure
}

inline pid_t fork_child() {
  std::fflush(stdout);
  std::fflush(stderr);
  const pid_t pid = fork();
  if (pid < 0) {
    std::perror("fork");
    std::exit(1);
  }
  if (pid == 0) prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive a benchmark that failed
  else g_child = pid;
  return pid;
}

inline bool reap(pid_t pid) {
  int st = 0;
  while (waitpid(pid, &st, 0) < 0)
    if (errno != EINTR) return false;
  g_child = 0;
  return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

// The outcome of taking one item in the consumer.
enum class Got { ok, wrong, error };

// Stream warm + n items from this process (put(i) -> bool) to a forked child (get(i) -> Got).
// The clock starts once the child has taken the warm-up items (no start-up, no first-touch
// faults in the timing) and stops when it has taken the last. Returns seconds for n items.
// A failed put, a failed get or a wrong item is a failure. pin: producer on CPU 0, consumer
// on CPU 1.
template <typename Put, typename Get>
double stream(const char *what, bool pin, long warm, long n, Put put, Get get) {
  g_ctl->ack.store(0);
  g_ctl->t1 = 0;
  g_ctl->wrong = 0;
  const pid_t pid = fork_child();
  if (pid == 0) {
    Pinned pinned(pin, 1);
    uint64_t wrong = 0;
    for (long i = 0; i < warm + n; ++i) {
      if (i == warm) g_ctl->ack.store(1, std::memory_order_release);
      const Got g = get(i);
      if (g == Got::error) _exit(2);
      wrong += g == Got::wrong;
    }
    g_ctl->t1 = now_ns();
    g_ctl->wrong = wrong;
    _exit(wrong ? 1 : 0);
  }
  Pinned pinned(pin, 0);
  bool ok = true;
  for (long i = 0; i < warm && ok; ++i) ok = put(i);
  while (ok && g_ctl->ack.load(std::memory_order_acquire) == 0) sched_yield();
  const int64_t t0 = now_ns();
  for (long i = warm; i < warm + n && ok; ++i) ok = put(i);
  if (!ok) kill(pid, SIGKILL);
  const bool child_ok = reap(pid);
  if (!ok) failure("%s: a send failed", what);
  else if (!child_ok && g_ctl->wrong) failure("%s: %llu of %ld items received wrong", what,
                                               static_cast<unsigned long long>(g_ctl->wrong), warm + n);
  else if (!child_ok) failure("%s: the consumer failed", what);
  return double(g_ctl->t1 - t0) / 1e9;
}

// warm + n round trips: this process runs ping(i) -> bool (send, then receive the answer), a
// forked child pong(i) -> Got (receive, check, answer). Returns microseconds per round trip
// over the last n.
template <typename Ping, typename Pong>
double pingpong(const char *what, long warm, long n, Ping ping, Pong pong) {
  const pid_t pid = fork_child();
  if (pid == 0) {
    Pinned pin(g_pin_sleepers, 1);
    bool right = true;
    for (long i = 0; i < warm + n; ++i) {
      const Got g = pong(i);
      if (g == Got::error) _exit(2);
      right &= g == Got::ok;
    }
    _exit(right ? 0 : 1);
  }
  Pinned pin(g_pin_sleepers, 0);
  bool ok = true;
  int64_t t0 = now_ns();
  for (long i = 0; i < warm + n && ok; ++i) {
    if (i == warm) t0 = now_ns();
    ok = ping(i);
  }
  const int64_t t1 = now_ns();
  if (!ok) kill(pid, SIGKILL);
  const bool child_ok = reap(pid);
  if (!ok) failure("%s: a round trip failed or returned a wrong item", what);
  else if (!child_ok) failure("%s: the answering process failed or received a wrong item", what);
  return double(t1 - t0) / 1e3 / double(n);
}

// ---- the table ------------------------------------------------------------------------------

struct Base {
  std::string name;
  double value;
  double target = 0;  // 0: information only; else the bound on mpx / value
};

struct Row {
  std::string op;
  std::string unit;
  double mpx;                 // NAN: mpx not measured (see note)
  bool higher_is_better;      // a rate; else a time
  std::vector<Base> bases;
  std::string note = "(information)";  // the verdict column of baselines without a target
};

inline std::string fmt_value(double v) {
  char b[32];
  if (std::isnan(v)) return "-";
  if (std::fabs(v) >= 1000) std::snprintf(b, sizeof b, "%.0f", v);
  else if (std::fabs(v) >= 100) std::snprintf(b, sizeof b, "%.1f", v);
  else if (std::fabs(v) >= 10) std::snprintf(b, sizeof b, "%.2f", v);
  else std::snprintf(b, sizeof b, "%.3f", v);
  return b;
}

// A rate's target is a floor on mpx / baseline (">= 0.50x"), a time's a ceiling ("<= 1.20x").
inline std::string verdict(const Row &r, const Base &b) {
  if (b.target <= 0) return r.note;
  char buf[96];
  const double ratio = r.mpx / b.value;
  const char *op = r.higher_is_better ? ">=" : "<=";
  if (std::isnan(ratio)) std::snprintf(buf, sizeof buf, "%s %.2fx: not measured", op, b.target);
  else if (r.higher_is_better ? ratio >= b.target : ratio <= b.target)
    std::snprintf(buf, sizeof buf, "%s %.2fx: met", op, b.target);
  else if (r.higher_is_better)
    std::snprintf(buf, sizeof buf, "%s %.2fx: MISSED by %.0f%%", op, b.target, (1 - ratio / b.target) * 100);
  else
    std::snprintf(buf, sizeof buf, "%s %.2fx: MISSED by %.0f%%", op, b.target, (ratio / b.target - 1) * 100);
  return buf;
}

inline void print_rows(const char *title, const std::vector<Row> &rows) {
  std::printf("\n%-50s %-5s %9s  %-42s %9s %9s  %s\n", title, "unit", "mpx", "baseline", "baseline", "mpx/base",
              "target");
  std::printf("%s\n", std::string(146, '-').c_str());
  for (const Row &r : rows) {
    for (size_t i = 0; i < r.bases.size(); ++i) {
      const Base &b = r.bases[i];
      const std::string ratio = std::isnan(r.mpx / b.value) ? "-" : fmt_value(r.mpx / b.value) + "x";
      std::printf("%-50s %-5s %9s  %-42s %9s %9s  %s\n", i ? "" : r.op.c_str(), i ? "" : r.unit.c_str(),
                  i ? "" : fmt_value(r.mpx).c_str(), b.name.c_str(), fmt_value(b.value).c_str(), ratio.c_str(),
                  verdict(r, b).c_str());
    }
  }
  std::fflush(stdout);
}

// A repetition is cut into blocks in which mpx and its baselines take turns, each block a
// fresh pair of processes with its own warm-up, so that load from elsewhere on the machine
// (2 vCPUs shared with builds) hits every column alike.
inline constexpr long kBlocks = 5;

inline long blocks_of(long n) { return std::min(kBlocks, n); }

// Items in block b of n items cut into blocks_of(n) blocks.
inline long block_size(long n, long b) {
  const long k = blocks_of(n);
  return n / k + (b < n % k ? 1 : 0);
}

// Run the columns of block b, each once, starting with a different one in each block, so that
// no column always follows the same one (a stream slows the next one down a little while the
// machine settles: the place in the order must not count for one column only).
inline void take_turns(long b, const std::vector<std::function<void()>> &columns) {
  const size_t n = columns.size();
  for (size_t k = 0; k < n; ++k) columns[(k + size_t(b)) % n]();
}

// Columns of samples, one per repetition each; mpx and its baselines take turns within a
// repetition so that drift hits them alike.
struct Sampler {
  std::vector<std::vector<double>> cols;
  explicit Sampler(size_t n) : cols(n) {}
  void add(size_t i, double v) { cols[i].push_back(v); }
  double med(size_t i) const { return cols[i].empty() ? NAN : median(cols[i]); }
};

}  // namespace mpxbench::ipc
