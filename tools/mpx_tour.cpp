// mpx_tour: the README's tour of mpx, in C++ over include/mpx/mpx.hpp.
//
//   cmake --preset default && cmake --build --preset default -j2 && build/default/tools/mpx_tour
//
// Scenes: (1) ten processes buy five tickets through a Lock; (2) a child negates a shared
// Array, then two children negate one half each; (3) Event ping-pong, a Barrier with an
// action, a Semaphore limiting concurrency; (4) a process dies holding a Lock and the next
// owner repairs what it guarded; (5) what a lock and a locked increment cost; (6) the three
// start methods: fork, forkserver, spawn; (7) producers and consumers over a Queue, and a Pipe;
// (8) Pool.map of 100000 squares, and a worker killed mid-task while an imap goes on; (9) the
// seeds' Manager program over the C manager, its call cost, and a client killed holding a lock.
// Every result is checked: the exit status is 0 only if all of them are right.

#include "mpx/mpx.hpp"

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <numeric>
#include <set>
#include <span>
#include <string>
#include <thread>
#include <vector>

namespace {

using clock_type = std::chrono::steady_clock;
using namespace std::chrono_literals;

int g_failures = 0;

void expect(bool ok, const char *what) {
  if (!ok) {
    ++g_failures;
    std::printf("   FAIL: %s\n", what);
  }
}

std::string fmt_time(clock_type::duration d) {
  const double ns = static_cast<double>(std::chrono::duration_cast<std::chrono::nanoseconds>(d).count());
  char buf[32];
  if (ns < 1e3)
    std::snprintf(buf, sizeof buf, "%.0f ns", ns);
  else if (ns < 1e6)
    std::snprintf(buf, sizeof buf, "%.1f us", ns / 1e3);
  else if (ns < 1e9)
    std::snprintf(buf, sizeof buf, "%.2f ms", ns / 1e6);
  else
    std::snprintf(buf, sizeof buf, "%.2f s", ns / 1e9);
  return buf;
}

std::string since(clock_type::time_point t0) { return fmt_time(clock_type::now() - t0); }

/** Start a child (mpx::Process, fork method) that runs body and exits with its result (99 if it threw). */
template <class F>
mpx::Process spawn(F &&body) {
  mpx::Process p([body = std::forward<F>(body)]() mutable {
    int code = 99;
    try {
      code = body();
    } catch (const std::exception &e) {
      std::fprintf(stderr, "child %d: %s\n", static_cast<int>(getpid()), e.what());
    }
    std::fflush(stdout);
    _exit(code);
  });
  p.start();
  return p;
}

/** Join: the exit code, or minus the signal number (Python's exitcode convention). */
int join(mpx::Process &p) {
  p.join();
  return p.exitcode().value_or(-1000);
}

std::string join_values(const mpx::Array<double> &a) {
  std::string s;
  for (double x : a) s += (s.empty() ? "" : " ") + std::to_string(static_cast<int>(x));
  return s;
}

// ---- 1. the ticket counter -------------------------------------------------------------

constexpr int kCustomers = 10;
constexpr int kTickets = 5;
constexpr int kBought = 10;
constexpr int kRefused = 11;

void ticket_counter() {
  std::printf("1. ticket counter: %d processes buy %d tickets through a Lock\n", kCustomers, kTickets);
  auto t0 = clock_type::now();
  mpx::Value<int> tickets(kTickets, mpx::lock_kind::none);  // guarded by `lock`, not its own
  mpx::Array<int> sold_to(kTickets, mpx::lock_kind::none);  // ticket -> customer number
  mpx::Lock lock;
  mpx::Event start;  // the doors open: everyone rushes at once
  const auto setup = clock_type::now() - t0;

  t0 = clock_type::now();
  std::vector<mpx::Process> pids;
  for (int customer = 1; customer <= kCustomers; ++customer) {
    pids.push_back(spawn([&, customer] {
      if (!start.wait(10s)) return 98;
      std::lock_guard guard(lock);
      const int left = tickets;
      if (left > 0) {
        const int ticket = kTickets - left + 1;
        tickets = left - 1;
        sold_to[static_cast<size_t>(ticket - 1)] = customer;
        std::printf("   customer %2d (pid %d) bought ticket %d\n", customer, static_cast<int>(getpid()), ticket);
        std::fflush(stdout);  // while still holding the lock, so the lines come out in order
        return kBought;
      }
      std::printf("   customer %2d (pid %d) refused: sold out\n", customer, static_cast<int>(getpid()));
      std::fflush(stdout);
      return kRefused;
    }));
  }
  const auto forked = clock_type::now() - t0;

  t0 = clock_type::now();
  start.set();
  int sold = 0, refused = 0;
  std::set<int> buyers;
  for (int i = 0; i < kCustomers; ++i) {
    const int code = join(pids[static_cast<size_t>(i)]);
    if (code == kBought) {
      ++sold;
      buyers.insert(i + 1);
    } else if (code == kRefused) {
      ++refused;
    } else {
      std::printf("   customer %d exited with %d\n", i + 1, code);
      expect(false, "every customer either buys or is refused");
    }
  }
  const auto ran = clock_type::now() - t0;
  std::set<int> recorded(sold_to.begin(), sold_to.end());

  std::printf("   => %d sold, %d refused, %d left; setup %s, fork x%d %s, doors open to last exit %s\n", sold,
              refused, tickets.get(), fmt_time(setup).c_str(), kCustomers, fmt_time(forked).c_str(),
              fmt_time(ran).c_str());
  expect(sold == kTickets && refused == kCustomers - kTickets, "5 sold and 5 refused");
  expect(tickets.get() == 0, "no ticket left");
  expect(recorded == buyers, "each ticket recorded once, for the customer who bought it");
}

// ---- 2. negating a shared array ------------------------------------------------------------

void negate_array() {
  std::printf("2. shared Value<double> and Array<double> across fork\n");
  mpx::Value<double> num(0.0);
  mpx::Array<double> arr{1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
  std::printf("   before: num = %g, arr = [%s]\n", num.get(), join_values(arr).c_str());

  auto t0 = clock_type::now();
  auto pid = spawn([&] {  // Python's docs: num.value = 3.1415927; a[i] = -a[i]
    num = 3.1415927;
    std::lock_guard guard(arr);
    for (double &x : arr) x = -x;
    return 0;
  });
  expect(join(pid) == 0, "the child exits cleanly");
  std::printf("   child:  num = %.7f, arr = [%s]  (fork+join %s)\n", num.get(), join_values(arr).c_str(),
              since(t0).c_str());
  bool ok = num.get() == 3.1415927;
  for (size_t i = 0; i < arr.size(); ++i) ok = ok && arr[i] == -static_cast<double>(i + 1);
  expect(ok, "the parent sees the child's writes");

  t0 = clock_type::now();
  const size_t half = arr.size() / 2;
  auto a = spawn([&] {
    for (size_t i = 0; i < half; ++i) arr[i] = -arr[i];
    return 0;
  });
  auto b = spawn([&] {
    for (size_t i = half; i < arr.size(); ++i) arr[i] = -arr[i];
    return 0;
  });
  expect(join(a) == 0 && join(b) == 0, "both children exit cleanly");
  std::printf("   2 kids: arr = [%s]  (one half each, %s)\n", join_values(arr).c_str(), since(t0).c_str());
  ok = true;
  for (size_t i = 0; i < arr.size(); ++i) ok = ok && arr[i] == static_cast<double>(i + 1);
  expect(ok, "two children negating one half each restore the array");
}

// ---- 3. Event, Barrier, Semaphore ----------------------------------------------------------

void event_barrier_semaphore() {
  std::printf("3. Event, Barrier, Semaphore between processes\n");
  {
    constexpr int kRounds = 1000;
    mpx::Event ping, pong;
    auto pid = spawn([&] {
      for (int i = 0; i < kRounds; ++i) {
        if (!ping.wait(10s)) return 1;
        ping.clear();
        pong.set();
      }
      return 0;
    });
    const auto t0 = clock_type::now();
    bool ok = true;
    for (int i = 0; i < kRounds && ok; ++i) {
      ping.set();
      ok = pong.wait(10s);
      pong.clear();
    }
    const auto took = clock_type::now() - t0;
    expect(ok && join(pid) == 0, "every ping is answered");
    std::printf("   Event ping-pong: %d round trips, %s each\n", kRounds, fmt_time(took / kRounds).c_str());
  }
  {
    mpx::Barrier barrier(3);
    mpx::Array<int> seen(3, mpx::lock_kind::none);
    mpx::Value<int> actions(0);
    auto party = [&] {
      const uint32_t index = barrier.wait([&] { actions = actions + 1; }, 10s);
      seen[index] += 1;
      return 0;
    };
    const auto t0 = clock_type::now();
    auto a = spawn(party), b = spawn(party);
    party();
    expect(join(a) == 0 && join(b) == 0, "every party passes the barrier");
    std::printf("   Barrier(3), parent + 2 children: indexes 0,1,2 taken %d,%d,%d times, action ran %d time(s), %s\n",
                seen[0], seen[1], seen[2], actions.get(), since(t0).c_str());
    expect(seen[0] == 1 && seen[1] == 1 && seen[2] == 1, "each arrival index is given once");
    expect(actions.get() == 1, "the action runs once");
  }
  {
    constexpr int kWorkers = 4;
    mpx::Semaphore slots(2);
    mpx::Value<int> inside(0), most(0);
    const auto t0 = clock_type::now();
    std::vector<mpx::Process> pids;
    for (int w = 0; w < kWorkers; ++w) {
      pids.push_back(spawn([&] {
        std::lock_guard slot(slots);
        {
          std::lock_guard g(inside);
          inside = inside + 1;
          most = std::max<int>(most, inside);
        }
        std::this_thread::sleep_for(5ms);  // the "work"
        std::lock_guard g(inside);
        inside = inside - 1;
        return 0;
      }));
    }
    bool ok = true;
    for (auto &p : pids) ok = join(p) == 0 && ok;
    expect(ok, "every worker finishes");
    std::printf("   Semaphore(2), %d workers of 5 ms: at most %d inside at once, %s in all\n", kWorkers, most.get(),
                since(t0).c_str());
    expect(most.get() >= 1 && most.get() <= 2, "never more than 2 workers inside");
  }
}

// ---- 4. owner death ------------------------------------------------------------------------

void owner_death() {
  std::printf("4. a process dies holding a Lock\n");
  mpx::Lock lock;
  mpx::Array<int> accounts{100, 0};  // invariant, under `lock`: the sum is 100
  auto pid = spawn([&] {
    lock.lock();
    accounts[0] -= 50;        // first half of a transfer...
    std::raise(SIGKILL);      // ...and the process is killed before the second half
    return 0;
  });
  const int code = join(pid);
  const auto t0 = clock_type::now();
  const mpx::acquire_result r = lock.acquire(5s);
  const bool dead = r == mpx::acquire_result::owner_dead;
  if (dead) {
    accounts[1] = 100 - accounts[0];  // repair: finish the transfer
    lock.consistent();
  }
  if (r != mpx::acquire_result::timed_out) lock.unlock();
  const bool usable = lock.try_lock_for(1s);
  if (usable) lock.unlock();
  std::printf("   child exit %d; parent's acquire: %s; repaired to [%d, %d], consistent, usable again: %s (%s)\n",
              code, dead ? "owner_dead (held)" : "NOT owner_dead", accounts[0], accounts[1], usable ? "yes" : "no",
              since(t0).c_str());
  expect(code == -SIGKILL, "the child was killed");
  expect(dead, "the next owner is told the previous one died");
  expect(usable && accounts[0] + accounts[1] == 100, "the lock and the invariant are recovered");
}

// ---- 5. costs --------------------------------------------------------------------------------

void costs() {
  std::printf("5. costs\n");
  {
    constexpr int kN = 1'000'000;
    mpx::Lock lock;
    const auto t0 = clock_type::now();
    for (int i = 0; i < kN; ++i) {
      lock.lock();
      lock.unlock();
    }
    std::printf("   Lock lock+unlock, uncontended: %s\n", fmt_time((clock_type::now() - t0) / kN).c_str());
  }
  {
    constexpr int kN = 200'000;
    mpx::Value<long> counter(0);  // with its own RLock, as Python's Value
    const auto t0 = clock_type::now();
    auto add = [&] {
      for (int i = 0; i < kN; ++i) {
        std::lock_guard g(counter);
        counter = counter + 1;
      }
      return 0;
    };
    auto a = spawn(add), b = spawn(add);
    expect(join(a) == 0 && join(b) == 0, "both incrementers finish");
    const auto took = clock_type::now() - t0;
    const double rate = 2.0 * kN / std::chrono::duration<double>(took).count() / 1e6;
    std::printf("   2 processes x %d locked increments of a Value<long>: %ld, %.1f M/s (%s)\n", kN, counter.get(), rate,
                fmt_time(took).c_str());
    expect(counter.get() == 2L * kN, "no increment lost");
  }
}

// ---- 6. start methods ------------------------------------------------------------------------

// A forkserver entry: named, registered before the server starts, fed bytes.
void greet(const void *payload, size_t size) {
  char name[64];
  size_t len = sizeof name;
  mpx_current_name(name, &len);
  std::printf("   [%s, pid %d, started by the forkserver] payload \"%.*s\"\n", name, static_cast<int>(getpid()),
              static_cast<int>(size), static_cast<const char *>(payload));
  std::fflush(stdout);
}

void start_methods() {
  std::printf("6. the three start methods (Process: start, join, exitcode)\n");
  mpx_register("greet", greet);
  mpx_forkserver_start();  // early, as the docs advise: the zygote is a fork of this process

  auto time_one = [](auto &&make) {
    std::fflush(stdout);  // keep this process's lines and the children's in order
    const auto t0 = clock_type::now();
    mpx::Process p = make();
    p.start();
    p.join();
    return std::make_pair(p.exitcode().value_or(-1000), clock_type::now() - t0);
  };
  auto [fork_code, fork_took] = time_one([] { return mpx::Process([] { std::exit(3); }); });
  std::printf("   fork:       a lambda calls exit(3)          -> exitcode %d  (%s start+join)\n", fork_code,
              fmt_time(fork_took).c_str());
  expect(fork_code == 3, "fork: exitcode is the exit() status");

  mpx_process_options o;
  mpx_process_options_init(&o, sizeof o);
  o.method = MPX_START_FORKSERVER;
  o.entry = "greet";
  o.payload = "hello";
  o.payload_size = 5;
  auto [fs_code, fs_took] = time_one([&] { return mpx::Process(o); });
  std::printf("   forkserver: entry \"greet\" returns           -> exitcode %d  (%s start+join)\n", fs_code,
              fmt_time(fs_took).c_str());
  expect(fs_code == 0, "forkserver: exitcode 0 when the entry returns");

  auto [sp_code, sp_took] = time_one([] { return mpx::Process::spawn("sh", {"sh", "-c", "kill -TERM $$"}); });
  std::printf("   spawn:      sh -c 'kill -TERM $$'           -> exitcode %d (%s start+join)\n", sp_code,
              fmt_time(sp_took).c_str());
  expect(sp_code == -SIGTERM, "spawn: a child killed by SIGTERM has exitcode -15");

  mpx_process_options_init(&o, sizeof o);
  o.file = "/no/such/program";
  mpx_process *p = nullptr;
  mpx_process_create(&p, &o);
  const int rc = mpx_process_start(p);
  std::printf("   spawn of a missing program: %s (%s), reported by start, not as exit 127\n", mpx_error_name(rc),
              mpx_last_error_message());
  expect(rc == MPX_ENOENT, "exec failure is an error code");
  mpx_process_destroy(p);
  mpx_forkserver_stop();
}

// ---- 7. producer/consumer over a Queue, and a Pipe -----------------------------------------

constexpr int kProducers = 3;
constexpr int kConsumers = 2;
constexpr int kItems = 20000;  // per producer

void producer_consumer() {
  std::printf("7. producer/consumer: %d producers x %d items -> Queue -> %d consumers; then a Pipe\n", kProducers,
              kItems, kConsumers);
  mpx::Queue work(1024);  // at most 1024 items in flight: producers wait for the consumers
  mpx::Queue results;
  mpx::Value<long long> checksum(0);  // what the consumers took, summed under its lock

  auto t0 = clock_type::now();
  std::vector<mpx::Process> procs;
  for (int c = 0; c < kConsumers; ++c)
    procs.push_back(spawn([&] {
      long long sum = 0, n = 0;
      int last[kProducers];
      std::fill(std::begin(last), std::end(last), -1);
      bool ordered = true;
      int item[2];
      while (auto len = work.get_into(std::as_writable_bytes(std::span(item)))) {
        if (*len == 0) break;  // the sentinel
        ordered = ordered && item[1] > last[item[0]];
        last[item[0]] = item[1];
        sum += item[1];
        ++n;
      }
      {
        std::lock_guard g(checksum);
        checksum = checksum + sum;
      }
      results.put(std::to_string(n));
      return ordered ? 0 : 1;
    }));
  for (int p = 0; p < kProducers; ++p)
    procs.push_back(spawn([&, p] {
      for (int i = 0; i < kItems; ++i) {
        const int item[2] = {p, i};
        work.put(std::as_bytes(std::span(item)));
      }
      return 0;  // returns right after the last put: nothing is lost (no feeder thread)
    }));
  int bad = 0;
  for (int p = 0; p < kProducers; ++p) bad += join(procs[static_cast<size_t>(kConsumers + p)]) != 0;
  for (int c = 0; c < kConsumers; ++c) work.put("");
  long long taken = 0;
  for (int c = 0; c < kConsumers; ++c) {
    const auto n = results.get_string(10s);
    std::printf("   a consumer took %s items\n", n.value_or("?").c_str());
    taken += n ? std::stoll(*n) : 0;
  }
  for (int c = 0; c < kConsumers; ++c) bad += join(procs[static_cast<size_t>(c)]) != 0;
  const auto ran = clock_type::now() - t0;
  const long long want = static_cast<long long>(kProducers) * kItems * (kItems - 1) / 2;
  std::printf("   => %lld of %d items, each exactly once, per-producer order kept; %s (%.2f M items/s with the forks)\n",
              taken, kProducers * kItems, fmt_time(ran).c_str(),
              static_cast<double>(taken) / std::chrono::duration<double>(ran).count() / 1e6);
  expect(bad == 0, "every producer and consumer exited 0 (consumers saw each producer's items in order)");
  expect(taken == kProducers * kItems && checksum.get() == want, "every item delivered exactly once");

  auto [mine, theirs] = mpx::Pipe();
  auto echo = spawn([&] {
    mine.close();
    int n = 0;
    try {
      while (auto m = theirs.recv_string()) {
        theirs.send(*m);
        ++n;
      }
    } catch (const mpx::error &e) {
      if (e.value() != MPX_EOF) throw;
    }
    return n == 1001 ? 0 : 1;
  });
  theirs.close();
  const std::string big(1 << 20, 'x');
  mine.send(big);
  const bool big_ok = mine.recv_string(10s) == big;
  t0 = clock_type::now();
  bool ok = true;
  for (int i = 0; i < 1000; ++i) {
    mine.send("ping");
    ok = ok && mine.recv_string(10s) == "ping";
  }
  const auto rt = (clock_type::now() - t0) / 1000;
  mine.close();  // the child's recv sees end of stream
  std::printf("   Pipe: a 1 MiB message echoed intact: %s; round trip of a small message %s\n", big_ok ? "yes" : "NO",
              fmt_time(rt).c_str());
  expect(big_ok && ok, "messages echoed intact");
  expect(join(echo) == 0, "the echo child saw every message, then end of stream");
}

// ---- 8. Pool.map ---------------------------------------------------------------------------

int64_t square(int64_t x) { return x * x; }

mpx::Queue *g_hung_pids;  // made before the pool, so every forked worker has it

// Item 7 hangs (after saying which worker runs it); the others take 20 ms.
int64_t square_or_hang(int64_t x) {
  if (x == 7) {
    g_hung_pids->put(std::to_string(getpid()));
    std::this_thread::sleep_for(60s);
  }
  std::this_thread::sleep_for(20ms);
  return x * x;
}

void pool_map() {
  int cpus = 1;
  mpx_cpu_count(&cpus);
  std::printf("8. Pool.map: squares of 0..99999 over a pool of %d workers (cpu_count), automatic chunking\n", cpus);
  mpx::Queue hung;
  g_hung_pids = &hung;
  auto t0 = clock_type::now();
  mpx::Pool pool;  // one fork worker per CPU
  const auto started = clock_type::now() - t0;

  std::vector<int64_t> xs(100'000);
  std::iota(xs.begin(), xs.end(), 0);
  clock_type::duration took[2];
  std::vector<int64_t> sq;
  for (auto &t : took) {  // twice: the first map also pays for memory the pool touches first
    t0 = clock_type::now();
    sq = pool.map_as<int64_t>(mpx::as_task<square>, xs);
    t = clock_type::now() - t0;
  }
  bool ok = sq.size() == xs.size();
  for (size_t i = 0; ok && i < sq.size(); ++i) ok = sq[i] == xs[i] * xs[i];
  const size_t chunk = (xs.size() + 4 * pool.size() - 1) / (4 * pool.size());  // Python's automatic chunksize
  std::printf("   map: [%lld, %lld, %lld, ..., %lld]: %zu items in %zu tasks of %zu (pool start %s)\n",
              static_cast<long long>(sq[0]), static_cast<long long>(sq[1]), static_cast<long long>(sq[2]),
              static_cast<long long>(sq.back()), sq.size(), (xs.size() + chunk - 1) / chunk, chunk,
              fmt_time(started).c_str());
  std::printf("        first map %s (%s per item), second %s (%s per item)\n", fmt_time(took[0]).c_str(),
              fmt_time(took[0] / xs.size()).c_str(), fmt_time(took[1]).c_str(), fmt_time(took[1] / xs.size()).c_str());
  expect(ok, "every square right, in order");

  t0 = clock_type::now();
  const auto one = pool.map_as<int64_t>(mpx::as_task<square>, std::span(xs).first(10'000), mpx::job_options().chunksize(1));
  const auto took1 = clock_type::now() - t0;
  std::printf("   chunksize 1: 10000 items, one task each, %s (%s per item)\n", fmt_time(took1).c_str(),
              fmt_time(took1 / 10'000).c_str());
  expect(one.size() == 10'000 && one[9'999] == 9'999LL * 9'999, "chunksize 1 gives the same squares");

  // imap of 20 items of 20 ms: item 7 hangs, and we SIGKILL the worker running it.
  std::vector<int64_t> few(20);
  std::iota(few.begin(), few.end(), 0);
  t0 = clock_type::now();
  mpx::MapResult m = pool.imap(mpx::as_task<square_or_hang>, few, mpx::job_options().chunksize(1));
  const int pid = std::stoi(hung.get_string(10s).value_or("0"));
  if (pid > 0) kill(pid, SIGKILL);
  int good = 0;
  size_t next = 0;
  bool in_order = true;
  std::string failure;
  for (const mpx::MapResult::item &it : m) {
    in_order = in_order && it.index() == next++;
    if (auto e = it.error()) failure = "item " + std::to_string(it.index()) + ": " + e->name() + " (" + e->detail() + ")";
    else good += it.get_as<int64_t>() == few[it.index()] * few[it.index()];
  }
  std::printf("   imap of 20 items, item 7 hangs, its worker (pid %d) gets SIGKILL:\n      %s\n", pid, failure.c_str());
  std::printf("      the other %d items: right and in order: %s; %s in all; workers now %zu, %llu started, %llu died\n",
              good, in_order ? "yes" : "NO", since(t0).c_str(), pool.worker_pids().size(),
              static_cast<unsigned long long>(pool.stats().workers_started),
              static_cast<unsigned long long>(pool.stats().workers_died));
  expect(failure.find("MPX_EWORKERDIED") != std::string::npos && failure.rfind("item 7:", 0) == 0,
         "only the killed worker's item fails, with MPX_EWORKERDIED");
  expect(good == 19 && in_order, "the map goes on: every other item right, in order");
}


// ---- 9. a manager ----------------------------------------------------------------------------

constexpr int kManagerCalls = 20000;

void manager() {
  std::printf("9. Manager: a server process holds a dict and a list; a child sets d[\"1\"], d[\"2\"], "
              "d[\"0.25\"] and reverses l; a client killed holding a manager lock\n");
  auto t0 = clock_type::now();
  mpx::Manager server;  // a server process on a fresh abstract socket
  mpx::ManagerClient c(server.address());
  auto d = c.dict("seeds");
  auto l = c.list("numbers");
  for (int i = 0; i < 10; ++i) l.append(std::to_string(i));
  const std::string address = server.address();
  mpx::Process child = spawn([&] {
    mpx::ManagerClient mine(address);  // children connect: a client belongs to one process
    auto cd = mine.dict("seeds");
    cd.set("1", "'1'");
    cd.set("2", "2");
    cd.set("0.25", "None");
    mine.list("numbers").reverse();
    return 0;
  });
  expect(join(child) == 0, "the child ran");
  std::string dict_text, list_text;
  for (const auto &k : {"1", "2", "0.25"}) dict_text += std::string(dict_text.empty() ? "" : ", ") + k + ": " + d.get(k).value_or("?");
  for (size_t i = 0; i < l.size(); ++i) list_text += (i ? " " : "") + l.at(static_cast<int64_t>(i));
  std::printf("   parent sees {%s} and [%s] (%s, server start included)\n", dict_text.c_str(), list_text.c_str(),
              since(t0).c_str());
  expect(d.size() == 3 && l.at(0) == "9" && l.at(-1) == "0", "the child's changes are in the manager");

  auto t1 = clock_type::now();
  for (int i = 0; i < kManagerCalls; ++i) {
    d.set("k", "v");
    (void)d.get("k");
  }
  const auto per = (clock_type::now() - t1) / (2 * kManagerCalls);
  std::printf("   %d d[\"k\"] set+get from C++: %s per call (%s memory path; Python's Manager: ~50 us)\n",
              kManagerCalls, fmt_time(per).c_str(), c.shm() ? "shared" : "socket");

  auto lock = c.lock("guard");
  mpx::Process holder = spawn([&] {
    mpx::ManagerClient mine(address);
    auto lk = mine.lock("guard");
    lk.lock();
    std::fflush(stdout);
    raise(SIGKILL);  // dies holding it
    return 0;
  });
  expect(join(holder) == -SIGKILL, "the holder was killed");
  auto t2 = clock_type::now();
  bool owner_died = false;
  try {
    lock.lock();
  } catch (const mpx::owner_dead_error &) {
    owner_died = true;  // acquired: the server released the dead client's lock
  }
  std::printf("   a client SIGKILLed holding the manager lock: the next acquire gets it in %s (%s)\n",
              since(t2).c_str(), owner_died ? "MPX_EOWNERDEAD: the previous owner died" : "no owner-death notice");
  expect(owner_died, "the next acquirer is told its owner died");
  lock.unlock();
  server.shutdown();
}
}  // namespace

int main() {
  alarm(120);  // whatever happens, the tour never hangs a terminal or CI
  const auto t0 = clock_type::now();
  std::printf("mpx tour: libmpx %s, pid %d\n", std::string(mpx::version()).c_str(), static_cast<int>(getpid()));
  try {
    ticket_counter();
    negate_array();
    event_barrier_semaphore();
    owner_death();
    costs();
    start_methods();
    producer_consumer();
    pool_map();
    manager();
  } catch (const std::exception &e) {
    std::printf("   FAIL: %s\n", e.what());
    ++g_failures;
  }
  if (g_failures) {
    std::printf("mpx tour: %d check(s) FAILED (%s)\n", g_failures, since(t0).c_str());
    return 1;
  }
  std::printf("mpx tour: every check passed (%s)\n", since(t0).c_str());
  return 0;
}
