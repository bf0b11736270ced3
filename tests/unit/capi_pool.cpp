// Pool: the C API with real workers (SCENARIOS.md 36-40): apply, map, imap, callbacks,
// errors, a worker killed mid-task, crashes, timeouts, maxtasksperchild, terminate with
// thousands pending, every start method, external workers and the batch API.
#include <sys/wait.h>

#include <atomic>
#include <chrono>
#include <set>

#include "capi_pool_helpers.hpp"
#include "support/child.hpp"

using namespace std::chrono_literals;
using namespace mpxt;

namespace {

const bool kTasksRegistered = (register_pool_tasks(), true);

// Library state that lives as long as the process, started before the first test so that the
// leak check does not count it: the forkserver (its process and socket), and the thread that
// forks daemons for other threads (a pool's supervisor starts replacement workers).
void warm_up_pools() {
  mpx_forkserver_start();
  warm_up_daemon_forker();
}
const bool kWarmedUp = register_warmup(&warm_up_pools);

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

std::string job_message(mpx_job *j, size_t i) {
  int code = 0, task_code = 0;
  char buf[512];
  size_t len = sizeof buf;
  if (mpx_job_error(j, i, &code, &task_code, buf, &len) != MPX_OK) return "";
  return std::string(buf, len);
}

JobPtr apply_async(mpx_pool *p, const mpx_task &t) {
  mpx_job *j = nullptr;
  EXPECT_MPX_OK(mpx_pool_apply_async(p, &t, &j));
  return JobPtr(j);
}

// Wait until `n` workers are alive (replacements start asynchronously).
bool wait_workers(mpx_pool *p, size_t n, Millis within = 5000ms) {
  const auto end = Clock::now() + within;
  while (Clock::now() < end) {
    if (worker_pids(p).size() == n) return true;
    std::this_thread::sleep_for(5ms);
  }
  return false;
}

std::string self_exe() {
  char buf[4096];
  const ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  return n > 0 ? std::string(buf, size_t(n)) : std::string();
}

}  // namespace

MPXT_HELPER(pool_worker) {
  register_pool_tasks();
  return mpx_worker_main();
}

// ---- creation ------------------------------------------------------------------------------

TEST(PoolCreate, NullOptionsGiveOneWorkerPerCpu) {
  mpx_pool *p = nullptr;
  ASSERT_MPX_OK(mpx_pool_create(&p, nullptr));
  PoolPtr guard(p);
  int cpus = 0;
  ASSERT_MPX_OK(mpx_cpu_count(&cpus));
  size_t n = 0;
  EXPECT_MPX_OK(mpx_pool_size(p, &n));
  EXPECT_EQ(n, size_t(cpus));
  EXPECT_TRUE(wait_workers(p, size_t(cpus)));
}

TEST(PoolCreate, NegativeWorkersOrMaxtasksAndBadOptionsAreEinval) {  // scenario 40
  mpx_pool_options o;
  ASSERT_MPX_OK(mpx_pool_options_init(&o, sizeof o));
  mpx_pool *p = reinterpret_cast<mpx_pool *>(1);
  o.workers = -1;
  EXPECT_MPX(MPX_EINVAL, mpx_pool_create(&p, &o));
  EXPECT_EQ(p, nullptr);
  o.workers = 1;
  o.maxtasksperchild = -1;
  EXPECT_MPX(MPX_EINVAL, mpx_pool_create(&p, &o));
  o.maxtasksperchild = 0;
  o.method = 99;
  EXPECT_MPX(MPX_EINVAL, mpx_pool_create(&p, &o));
  o.method = MPX_START_SPAWN;  // spawn without a program
  EXPECT_MPX(MPX_EINVAL, mpx_pool_create(&p, &o));
  o.method = MPX_START_FORK;
  o.flags = 0x80;
  EXPECT_MPX(MPX_EINVAL, mpx_pool_create(&p, &o));
  o.flags = 0;
  o.size = 3;
  EXPECT_MPX(MPX_EINVAL, mpx_pool_create(&p, &o));
}

TEST(PoolCreate, TwoHundredWorkersServeAMap) {  // scenario 40
  auto p = make_pool(200);
  ASSERT_TRUE(p) << mpx_last_error_message();
  std::vector<int64_t> in(2000);
  for (size_t i = 0; i < in.size(); ++i) in[i] = int64_t(i);
  mpx_map m;
  mpx_map_init(&m, sizeof m);
  m.fn = task_square;
  m.data = in.data();
  m.item_size = sizeof(int64_t);
  m.count = in.size();
  m.chunksize = 1;
  mpx_job *j = nullptr;
  ASSERT_MPX_OK(mpx_pool_map(p.get(), &m, &j));
  JobPtr job(j);
  ASSERT_MPX_OK(mpx_job_wait(j, 30000));
  for (size_t i = 0; i < in.size(); ++i) {
    const void *d;
    size_t n;
    ASSERT_MPX_OK(mpx_job_result(j, i, &d, &n));
    ASSERT_EQ(as_i64(d, n), int64_t(i * i));
  }
}

// ---- apply and map ---------------------------------------------------------------------------

TEST(PoolApply, ByPointerAndByName) {
  auto p = make_pool(2);
  ASSERT_TRUE(p);
  int64_t x = 12;
  mpx_task t;
  mpx_task_init(&t, sizeof t);
  t.fn = task_square;
  t.arg = &x;
  t.arg_size = sizeof x;
  void *r = nullptr;
  size_t n = 0;
  ASSERT_MPX_OK(mpx_pool_apply(p.get(), &t, &r, &n));
  EXPECT_EQ(as_i64(r, n), 144);
  mpx_free(r);
  mpx_task byname = named_task("square", &x, sizeof x);
  ASSERT_MPX_OK(mpx_pool_apply(p.get(), &byname, &r, &n));
  EXPECT_EQ(as_i64(r, n), 144);
  mpx_free(r);
  // A large argument and result (streamed through the rings).
  std::vector<uint8_t> big(5 << 20);
  for (size_t i = 0; i < big.size(); ++i) big[i] = uint8_t(i * 7);
  mpx_task echo = named_task("echo", big.data(), big.size());
  ASSERT_MPX_OK(mpx_pool_apply(p.get(), &echo, &r, &n));
  ASSERT_EQ(n, big.size());
  EXPECT_EQ(std::memcmp(r, big.data(), n), 0);
  mpx_free(r);
}

TEST(PoolApply, TaskErrorFailsOnlyThatTaskWithItsCodeAndMessage) {
  auto p = make_pool(2);
  ASSERT_TRUE(p);
  mpx_task t = named_task("fail");
  void *r = nullptr;
  size_t n = 0;
  EXPECT_MPX(MPX_ETASK, mpx_pool_apply(p.get(), &t, &r, &n));
  EXPECT_NE(std::string(mpx_last_error_message()).find("the task said no"), std::string::npos);
  auto j = apply_async(p.get(), t);
  ASSERT_MPX_OK(mpx_job_wait(j.get(), 5000));
  int code = 0, task_code = 0;
  size_t len = 0;
  EXPECT_MPX_OK(mpx_job_error(j.get(), 0, &code, &task_code, nullptr, &len));
  EXPECT_EQ(code, MPX_ETASK);
  EXPECT_EQ(task_code, 7);
  int ok = 1;
  EXPECT_MPX_OK(mpx_job_successful(j.get(), &ok));
  EXPECT_EQ(ok, 0);
  // An unknown name fails the task, not the worker.
  mpx_task unknown = named_task("no-such-task");
  EXPECT_MPX(MPX_ENOENT, mpx_pool_apply(p.get(), &unknown, &r, &n));
  int64_t x = 3;
  mpx_task sq = named_task("square", &x, sizeof x);
  ASSERT_MPX_OK(mpx_pool_apply(p.get(), &sq, &r, &n));
  EXPECT_EQ(as_i64(r, n), 9);
  mpx_free(r);
  mpx_pool_stats st;
  st.size = sizeof st;
  ASSERT_MPX_OK(mpx_pool_stats_get(p.get(), &st));
  EXPECT_EQ(st.workers_died, 0u);
}

TEST(PoolApply, BadTasksAreEinval) {
  auto p = make_pool(1);
  ASSERT_TRUE(p);
  mpx_task t;
  mpx_task_init(&t, sizeof t);
  mpx_job *j = nullptr;
  EXPECT_MPX(MPX_EINVAL, mpx_pool_apply_async(p.get(), &t, &j));  // no function
  t.fn = task_echo;
  t.name = "echo";
  EXPECT_MPX(MPX_EINVAL, mpx_pool_apply_async(p.get(), &t, &j));  // both
  t.name = nullptr;
  t.arg_size = 4;
  EXPECT_MPX(MPX_EINVAL, mpx_pool_apply_async(p.get(), &t, &j));  // NULL arg with a size
  t.size = 5;
  EXPECT_MPX(MPX_EINVAL, mpx_pool_apply_async(p.get(), &t, &j));
  EXPECT_EQ(j, nullptr);
  auto fs = make_pool(1, MPX_START_FORKSERVER);
  ASSERT_TRUE(fs) << mpx_last_error_message();
  mpx_task_init(&t, sizeof t);
  t.fn = task_echo;  // pointers need fork workers
  EXPECT_MPX(MPX_EINVAL, mpx_pool_apply_async(fs.get(), &t, &j));
}

TEST(PoolMap, EveryChunkSizeGivesEveryResultInOrder) {
  auto p = make_pool(2);
  ASSERT_TRUE(p);
  std::vector<int64_t> in(1000);
  for (size_t i = 0; i < in.size(); ++i) in[i] = int64_t(i) - 500;
  for (size_t chunk : {size_t(0), size_t(1), size_t(7), size_t(1000), size_t(5000)}) {
    mpx_map m;
    mpx_map_init(&m, sizeof m);
    m.fn = task_square;
    m.data = in.data();
    m.item_size = sizeof(int64_t);
    m.count = in.size();
    m.chunksize = chunk;
    mpx_job *j = nullptr;
    ASSERT_MPX_OK(mpx_pool_map(p.get(), &m, &j));
    JobPtr job(j);
    ASSERT_MPX_OK(mpx_job_wait(j, 10000));
    size_t count = 0;
    EXPECT_MPX_OK(mpx_job_count(j, &count));
    EXPECT_EQ(count, in.size());
    for (size_t i = 0; i < in.size(); ++i) {
      const void *d;
      size_t n;
      ASSERT_MPX_OK(mpx_job_result(j, i, &d, &n));
      ASSERT_EQ(as_i64(d, n), in[i] * in[i]) << "chunksize " << chunk << " item " << i;
    }
    const void *d;
    size_t n;
    EXPECT_MPX(MPX_ERANGE, mpx_job_result(j, in.size(), &d, &n));
    mpx_progress pr;
    pr.size = sizeof pr;
    ASSERT_MPX_OK(mpx_job_progress(j, &pr));
    EXPECT_EQ(pr.total, in.size());
    EXPECT_EQ(pr.done, in.size());
    EXPECT_EQ(pr.failed, 0u);
    EXPECT_EQ(pr.eta_s, 0.0);
  }
}

TEST(PoolMap, ItemsByPointerOfDifferentSizesAndOneFailingItem) {
  auto p = make_pool(2);
  ASSERT_TRUE(p);
  std::vector<std::string> in;
  for (int i = 0; i < 300; ++i) in.push_back(std::string(size_t(i * 13 % 2000), char('a' + i % 26)));
  std::vector<const void *> ptrs;
  std::vector<size_t> sizes;
  for (auto &s : in) {
    ptrs.push_back(s.data());
    sizes.push_back(s.size());
  }
  mpx_map m;
  mpx_map_init(&m, sizeof m);
  m.name = "echo";
  m.items = ptrs.data();
  m.sizes = sizes.data();
  m.count = in.size();
  m.chunksize = 16;
  mpx_job *j = nullptr;
  ASSERT_MPX_OK(mpx_pool_map(p.get(), &m, &j));
  JobPtr job(j);
  ASSERT_MPX_OK(mpx_job_wait(j, 10000));
  for (size_t i = 0; i < in.size(); ++i) {
    const void *d;
    size_t n;
    ASSERT_MPX_OK(mpx_job_result(j, i, &d, &n));
    ASSERT_EQ(std::string(static_cast<const char *>(d), n), in[i]);
  }
  // square wants 8 bytes: items of other sizes fail alone, inside their chunk.
  std::vector<int64_t> vals = {2, 3, 4};
  std::vector<const void *> p2 = {&vals[0], "x", &vals[2]};
  std::vector<size_t> s2 = {8, 1, 8};
  mpx_map_init(&m, sizeof m);
  m.name = "square";
  m.items = p2.data();
  m.sizes = s2.data();
  m.count = 3;
  m.chunksize = 3;
  ASSERT_MPX_OK(mpx_pool_map(p.get(), &m, &j));
  JobPtr job2(j);
  ASSERT_MPX_OK(mpx_job_wait(j, 10000));
  const void *d;
  size_t n;
  ASSERT_MPX_OK(mpx_job_result(j, 0, &d, &n));
  EXPECT_EQ(as_i64(d, n), 4);
  EXPECT_MPX(MPX_ETASK, mpx_job_result(j, 1, &d, &n));
  EXPECT_NE(std::string(mpx_last_error_message()).find("square wants 8 bytes"), std::string::npos);
  ASSERT_MPX_OK(mpx_job_result(j, 2, &d, &n));
  EXPECT_EQ(as_i64(d, n), 16);
}

TEST(PoolMap, EmptyMapIsReadyAtOnce) {  // scenario 40
  auto p = make_pool(1);
  ASSERT_TRUE(p);
  mpx_map m;
  mpx_map_init(&m, sizeof m);
  m.fn = task_square;
  mpx_job *j = nullptr;
  const auto t0 = Clock::now();
  ASSERT_MPX_OK(mpx_pool_map(p.get(), &m, &j));
  JobPtr job(j);
  EXPECT_MPX_OK(mpx_job_wait(j, 0));
  EXPECT_LT(seconds_since(t0), 0.1);
  size_t idx;
  EXPECT_MPX(MPX_EOF, mpx_job_next(j, 0, &idx));
}

TEST(PoolMap, NextGivesIndexOrderOrEndOrder) {
  auto p = make_pool(2);
  ASSERT_TRUE(p);
  // Item 0 sleeps longest: unordered gives it last, ordered first.
  std::vector<int64_t> ms = {300, 0, 0, 0, 0};
  for (uint32_t flags : {0u, uint32_t(MPX_MAP_ORDERED)}) {
    mpx_map m;
    mpx_map_init(&m, sizeof m);
    m.name = "sleep";
    m.data = ms.data();
    m.item_size = sizeof(int64_t);
    m.count = ms.size();
    m.chunksize = 1;
    m.flags = flags;
    mpx_job *j = nullptr;
    ASSERT_MPX_OK(mpx_pool_map(p.get(), &m, &j));
    JobPtr job(j);
    std::vector<size_t> order;
    size_t idx;
    int rc;
    while ((rc = mpx_job_next(j, 10000, &idx)) == MPX_OK) order.push_back(idx);
    EXPECT_MPX(MPX_EOF, rc);
    ASSERT_EQ(order.size(), ms.size());
    if (flags) {
      for (size_t i = 0; i < order.size(); ++i) EXPECT_EQ(order[i], i);
    } else {
      EXPECT_EQ(order.back(), 0u);
    }
  }
}

TEST(PoolMap, CallbackRunsOnceWhenTheJobEnds) {
  auto p = make_pool(2);
  ASSERT_TRUE(p);
  static std::atomic<int> calls{0};
  static std::atomic<mpx_job *> seen{nullptr};
  calls = 0;
  std::vector<int64_t> in(100, 3);
  mpx_map m;
  mpx_map_init(&m, sizeof m);
  m.fn = task_square;
  m.data = in.data();
  m.item_size = 8;
  m.count = in.size();
  m.callback = [](void *ctx, mpx_job *j) {
    seen = j;
    static_cast<std::atomic<int> *>(ctx)->fetch_add(1);
  };
  m.ctx = &calls;
  mpx_job *j = nullptr;
  ASSERT_MPX_OK(mpx_pool_map(p.get(), &m, &j));
  JobPtr job(j);
  ASSERT_MPX_OK(mpx_job_wait(j, 10000));
  for (int i = 0; i < 200 && calls == 0; ++i) std::this_thread::sleep_for(5ms);
  EXPECT_EQ(calls.load(), 1);
  EXPECT_EQ(seen.load(), j);
}

// ---- workers that die, crash or run too long -----------------------------------------------

TEST(PoolDeath, WorkerKilledMidTaskFailsThatTaskAndThePoolRecovers) {  // scenario 36
  auto p = make_pool(2);
  ASSERT_TRUE(p);
  int64_t ms = 10000;
  mpx_task t = named_task("sleep", &ms, sizeof ms);
  auto victim = apply_async(p.get(), t);
  // Find the worker holding it: the one whose pid the other tasks do not report.
  ASSERT_TRUE(wait_workers(p.get(), 2));
  std::this_thread::sleep_for(200ms);
  int64_t zero = 0;
  mpx_task probe = named_task("sleep", &zero, sizeof zero);
  void *r;
  size_t n;
  ASSERT_MPX_OK(mpx_pool_apply(p.get(), &probe, &r, &n));
  const int64_t free_pid = as_i64(r, n);
  mpx_free(r);
  int64_t busy = 0;
  for (int64_t pid : worker_pids(p.get()))
    if (pid != free_pid) busy = pid;
  ASSERT_NE(busy, 0);
  const auto t0 = Clock::now();
  ASSERT_EQ(kill(pid_t(busy), SIGKILL), 0);
  ASSERT_MPX_OK(mpx_job_wait(victim.get(), 5000));
  EXPECT_LT(seconds_since(t0), 2.0);
  const void *d;
  EXPECT_MPX(MPX_EWORKERDIED, mpx_job_result(victim.get(), 0, &d, &n));
  const std::string msg = job_message(victim.get(), 0);
  EXPECT_NE(msg.find("SIGKILL"), std::string::npos) << msg;
  EXPECT_NE(msg.find(std::to_string(busy)), std::string::npos) << msg;
  int code = 0, task_code = 0;
  size_t len = 0;
  ASSERT_MPX_OK(mpx_job_error(victim.get(), 0, &code, &task_code, nullptr, &len));
  EXPECT_EQ(task_code, -SIGKILL);
  // Replaced; later tasks succeed.
  EXPECT_TRUE(wait_workers(p.get(), 2));
  std::vector<int64_t> in(50, 5);
  mpx_map m;
  mpx_map_init(&m, sizeof m);
  m.fn = task_square;
  m.data = in.data();
  m.item_size = 8;
  m.count = in.size();
  mpx_job *j;
  ASSERT_MPX_OK(mpx_pool_map(p.get(), &m, &j));
  JobPtr job(j);
  ASSERT_MPX_OK(mpx_job_wait(j, 10000));
  int ok = 0;
  EXPECT_MPX_OK(mpx_job_successful(j, &ok));
  EXPECT_EQ(ok, 1);
  mpx_pool_stats st;
  st.size = sizeof st;
  ASSERT_MPX_OK(mpx_pool_stats_get(p.get(), &st));
  EXPECT_EQ(st.workers_died, 1u);
  EXPECT_EQ(st.workers_started, 3u);
}

TEST(PoolDeath, SegfaultExitAndErrorEachSayWhatHappened) {  // scenario 37
  auto p = make_pool(2);
  ASSERT_TRUE(p);
  struct Case {
    const char *how;
    int code;
    const char *says;
  };
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  // The sanitizer catches the SIGSEGV, then exits 1 or aborts, as its options say.
  const char *segv_says = "while running the task";
#else
  const char *segv_says = "SIGSEGV";
#endif
  for (Case c : {Case{"segv", MPX_EWORKERDIED, segv_says}, Case{"exit3", MPX_EWORKERDIED, "exited with status 3"},
                 Case{"abort", MPX_EWORKERDIED, "SIGABRT"}, Case{"none", MPX_ETASK, ""}}) {
    mpx_task t = named_task("die", c.how, std::strlen(c.how));
    void *r = nullptr;
    size_t n = 0;
    EXPECT_MPX(c.code, mpx_pool_apply(p.get(), &t, &r, &n)) << c.how;
    EXPECT_NE(std::string(mpx_last_error_message()).find(c.says), std::string::npos)
        << c.how << ": " << mpx_last_error_message();
  }
  // Capacity restored: two tasks run side by side.
  EXPECT_TRUE(wait_workers(p.get(), 2));
  int64_t ms = 300;
  mpx_task t = named_task("sleep", &ms, sizeof ms);
  auto a = apply_async(p.get(), t), b = apply_async(p.get(), t);
  const auto t0 = Clock::now();
  ASSERT_MPX_OK(mpx_job_wait(a.get(), 5000));
  ASSERT_MPX_OK(mpx_job_wait(b.get(), 5000));
  EXPECT_LT(seconds_since(t0), 0.55);
}

TEST(PoolDeath, TaskTimeoutKillsItsWorkerAndFailsOnlyThatTask) {
  auto p = make_pool(2);
  ASSERT_TRUE(p);
  int64_t ms = 5000, quick = 0;
  mpx_task slow = named_task("sleep", &ms, sizeof ms);
  slow.timeout_ms = 200;
  mpx_task fast = named_task("sleep", &quick, sizeof quick);
  fast.timeout_ms = 200;
  const auto t0 = Clock::now();
  auto a = apply_async(p.get(), slow);
  auto b = apply_async(p.get(), fast);
  ASSERT_MPX_OK(mpx_job_wait(a.get(), 5000));
  EXPECT_LT(seconds_since(t0), 1.0);
  EXPECT_GE(seconds_since(t0), 0.19);
  const void *d;
  size_t n;
  EXPECT_MPX(MPX_ETIMEDOUT, mpx_job_result(a.get(), 0, &d, &n));
  EXPECT_NE(job_message(a.get(), 0).find("timeout of 200 ms"), std::string::npos) << job_message(a.get(), 0);
  ASSERT_MPX_OK(mpx_job_wait(b.get(), 5000));
  EXPECT_MPX_OK(mpx_job_result(b.get(), 0, &d, &n));
  EXPECT_TRUE(wait_workers(p.get(), 2));
  // The pool's default applies when the task does not set one.
  auto q = make_pool(1, MPX_START_FORK, 0, 150);
  ASSERT_TRUE(q);
  mpx_task dflt = named_task("sleep", &ms, sizeof ms);
  void *r;
  EXPECT_MPX(MPX_ETIMEDOUT, mpx_pool_apply(q.get(), &dflt, &r, &n));
}

TEST(PoolRetire, MaxtasksperchildOneWithPendingTasksThenCloseAndJoin) {  // scenario 40, #10332
  auto p = make_pool(2, MPX_START_FORK, 1);
  ASSERT_TRUE(p);
  std::vector<int64_t> in(40, 1);
  mpx_map m;
  mpx_map_init(&m, sizeof m);
  m.name = "pid";
  m.data = in.data();
  m.item_size = 8;
  m.count = in.size();
  m.chunksize = 1;
  mpx_job *j;
  ASSERT_MPX_OK(mpx_pool_map(p.get(), &m, &j));
  JobPtr job(j);
  ASSERT_MPX_OK(mpx_pool_close(p.get()));
  ASSERT_MPX_OK(mpx_pool_join(p.get(), 30000));
  ASSERT_MPX_OK(mpx_job_wait(j, 0));
  std::set<int64_t> pids;
  for (size_t i = 0; i < in.size(); ++i) {
    const void *d;
    size_t n;
    ASSERT_MPX_OK(mpx_job_result(j, i, &d, &n));
    pids.insert(as_i64(d, n));
  }
  EXPECT_EQ(pids.size(), in.size());  // one task per worker
  mpx_pool_stats st;
  st.size = sizeof st;
  ASSERT_MPX_OK(mpx_pool_stats_get(p.get(), &st));
  EXPECT_EQ(st.workers_retired, in.size());
  EXPECT_EQ(st.workers_died, 0u);
  EXPECT_TRUE(worker_pids(p.get()).empty());
}

TEST(PoolRetire, MemoryCapRetiresAGrowingWorker) {
  mpx_pool_options o;
  mpx_pool_options_init(&o, sizeof o);
  o.workers = 1;
  o.max_worker_memory = 64 << 20;
  mpx_pool *raw;
  ASSERT_MPX_OK(mpx_pool_create(&raw, &o));
  PoolPtr p(raw);
  int64_t grow = 100, none = 0;
  mpx_task g = named_task("grow", &grow, sizeof grow);
  mpx_task q = named_task("grow", &none, sizeof none);
  void *r;
  size_t n;
  ASSERT_MPX_OK(mpx_pool_apply(p.get(), &g, &r, &n));
  const int64_t first = as_i64(r, n);
  mpx_free(r);
  ASSERT_MPX_OK(mpx_pool_apply(p.get(), &q, &r, &n));
  EXPECT_NE(as_i64(r, n), first);
  mpx_free(r);
  mpx_pool_stats st;
  st.size = sizeof st;
  ASSERT_MPX_OK(mpx_pool_stats_get(p.get(), &st));
  EXPECT_EQ(st.workers_retired, 1u);
}

// ---- close, terminate, join ----------------------------------------------------------------

TEST(PoolStop, AForkedChildMayNotUseItsParentsPoolOrJobs) {
  auto p = make_pool(1);
  ASSERT_TRUE(p);
  mpx_task t = named_task("pid");
  auto j = apply_async(p.get(), t);
  ASSERT_MPX_OK(mpx_job_wait(j.get(), 5000));
  auto c = Child::fork([&] {
    mpx_job *k = nullptr;
    CHILD_MPX(MPX_EFORKED, mpx_pool_apply_async(p.get(), &t, &k));
    CHILD_MPX(MPX_EFORKED, mpx_job_wait(j.get(), 0));
    return 0;
  });
  EXPECT_TRUE(c.wait().ok());
}

TEST(PoolStop, DestroyWakesAThreadBlockedInApply) {
  auto p = make_pool(1);
  ASSERT_TRUE(p);
  int64_t ms = 30000;
  mpx_task t = named_task("sleep", &ms, sizeof ms);
  std::atomic<int> rc{1};
  mpx_pool *pool = p.get();  // the thread must not read p while release() writes it
  std::thread blocked([&rc, &t, pool] {
    void *r = nullptr;
    size_t n = 0;
    rc = mpx_pool_apply(pool, &t, &r, &n);
    mpx_free(r);
  });
  std::this_thread::sleep_for(200ms);
  const auto t0 = Clock::now();
  ASSERT_MPX_OK(mpx_pool_destroy(p.release()));
  blocked.join();
  EXPECT_LT(seconds_since(t0), 2.0);
  EXPECT_MPX(MPX_ECLOSED, rc.load());
}

TEST(PoolStop, CloseLetsTasksFinishAndRefusesNewOnes) {
  auto p = make_pool(2);
  ASSERT_TRUE(p);
  EXPECT_MPX(MPX_EINVAL, mpx_pool_join(p.get(), 0));  // not closed yet
  std::vector<int64_t> ms(6, 100);
  mpx_map m;
  mpx_map_init(&m, sizeof m);
  m.name = "sleep";
  m.data = ms.data();
  m.item_size = 8;
  m.count = ms.size();
  m.chunksize = 1;
  mpx_job *j;
  ASSERT_MPX_OK(mpx_pool_map(p.get(), &m, &j));
  JobPtr job(j);
  ASSERT_MPX_OK(mpx_pool_close(p.get()));
  ASSERT_MPX_OK(mpx_pool_close(p.get()));  // idempotent
  mpx_task t = named_task("pid");
  mpx_job *k = nullptr;
  EXPECT_MPX(MPX_ECLOSED, mpx_pool_apply_async(p.get(), &t, &k));
  ASSERT_MPX_OK(mpx_pool_join(p.get(), 10000));
  int ok = 0;
  ASSERT_MPX_OK(mpx_job_successful(j, &ok));
  EXPECT_EQ(ok, 1);
}

TEST(PoolStop, TerminateWithTenThousandPendingIsQuickAndCancelsThem) {  // scenario 39
  auto p = make_pool(2);
  ASSERT_TRUE(p);
  std::vector<int64_t> ms(10000, 10000);
  mpx_map m;
  mpx_map_init(&m, sizeof m);
  m.name = "sleep";
  m.data = ms.data();
  m.item_size = 8;
  m.count = ms.size();
  m.chunksize = 1;
  mpx_job *j;
  ASSERT_MPX_OK(mpx_pool_map(p.get(), &m, &j));
  JobPtr job(j);
  std::this_thread::sleep_for(100ms);
  const auto t0 = Clock::now();
  ASSERT_MPX_OK(mpx_pool_terminate(p.get()));
  EXPECT_LT(seconds_since(t0), 2.0);
  ASSERT_MPX_OK(mpx_job_wait(j, 0));
  const void *d;
  size_t n;
  for (size_t i = 0; i < ms.size(); i += 997) EXPECT_MPX(MPX_ECANCELED, mpx_job_result(j, i, &d, &n));
  EXPECT_TRUE(worker_pids(p.get()).empty());
  EXPECT_MPX_OK(mpx_pool_join(p.get(), 1000));
  mpx_task t = named_task("pid");
  mpx_job *k = nullptr;
  EXPECT_MPX(MPX_ECLOSED, mpx_pool_apply_async(p.get(), &t, &k));
}

TEST(PoolStop, CancelEndsItemsNoWorkerStarted) {
  auto p = make_pool(1);
  ASSERT_TRUE(p);
  std::vector<int64_t> ms(1000, 20);
  mpx_map m;
  mpx_map_init(&m, sizeof m);
  m.name = "sleep";
  m.data = ms.data();
  m.item_size = 8;
  m.count = ms.size();
  m.chunksize = 1;
  mpx_job *j;
  ASSERT_MPX_OK(mpx_pool_map(p.get(), &m, &j));
  JobPtr job(j);
  std::this_thread::sleep_for(50ms);
  size_t cancelled = 0;
  ASSERT_MPX_OK(mpx_job_cancel(j, &cancelled));
  ASSERT_MPX_OK(mpx_job_wait(j, 10000));
  mpx_progress pr;
  pr.size = sizeof pr;
  ASSERT_MPX_OK(mpx_job_progress(j, &pr));
  EXPECT_EQ(pr.done, ms.size());
  // Those still in the backlog are counted at once; those already queued to the workers end
  // with MPX_ECANCELED as a worker takes them, unrun.
  EXPECT_GE(pr.failed, cancelled);
  EXPECT_GT(pr.failed, ms.size() / 2);
  const void *d;
  size_t n;
  EXPECT_MPX(MPX_ECANCELED, mpx_job_result(j, ms.size() - 1, &d, &n));
}

// ---- start methods ---------------------------------------------------------------------------

TEST(PoolMethods, ForkserverAndSpawnWorkersRunTasksByName) {
  const std::string exe = self_exe();
  const char *argv[] = {exe.c_str(), "--mpx-test-helper=pool_worker", nullptr};
  for (uint32_t method : {uint32_t(MPX_START_FORKSERVER), uint32_t(MPX_START_SPAWN)}) {
    mpx_pool_options o;
    mpx_pool_options_init(&o, sizeof o);
    o.workers = 2;
    o.method = method;
    if (method == MPX_START_SPAWN) {
      o.file = exe.c_str();
      o.argv = argv;
    }
    mpx_pool *raw = nullptr;
    ASSERT_MPX_OK(mpx_pool_create(&raw, &o)) << method;
    PoolPtr p(raw);
    std::vector<int64_t> in(500);
    for (size_t i = 0; i < in.size(); ++i) in[i] = int64_t(i);
    mpx_map m;
    mpx_map_init(&m, sizeof m);
    m.name = "square";
    m.data = in.data();
    m.item_size = 8;
    m.count = in.size();
    mpx_job *j;
    ASSERT_MPX_OK(mpx_pool_map(p.get(), &m, &j));
    JobPtr job(j);
    ASSERT_MPX_OK(mpx_job_wait(j, 20000));
    for (size_t i = 0; i < in.size(); ++i) {
      const void *d;
      size_t n;
      ASSERT_MPX_OK(mpx_job_result(j, i, &d, &n)) << method;
      ASSERT_EQ(as_i64(d, n), int64_t(i * i));
    }
    // A worker killed mid-task is replaced whatever the method.
    int64_t ms = 10000;
    mpx_task t = named_task("sleep", &ms, sizeof ms);
    auto victim = apply_async(p.get(), t);
    std::this_thread::sleep_for(300ms);
    for (int64_t pid : worker_pids(p.get())) kill(pid_t(pid), SIGKILL);
    ASSERT_MPX_OK(mpx_job_wait(victim.get(), 5000));
    const void *d;
    size_t n;
    EXPECT_MPX(MPX_EWORKERDIED, mpx_job_result(victim.get(), 0, &d, &n));
    int64_t x = 9;
    mpx_task sq = named_task("square", &x, sizeof x);
    void *r;
    ASSERT_MPX_OK(mpx_pool_apply(p.get(), &sq, &r, &n));
    EXPECT_EQ(as_i64(r, n), 81);
    mpx_free(r);
  }
}

TEST(PoolMethods, ForkInitializerRunsOnceInEachWorker) {
  static const auto init = [](const void *arg, size_t size) {
    // Leave a mark the tasks can see.
    setenv("MPX_POOL_TEST_INIT", std::string(static_cast<const char *>(arg), size).c_str(), 1);
  };
  mpx_pool_options o;
  mpx_pool_options_init(&o, sizeof o);
  o.workers = 2;
  o.initializer = +init;
  o.initargs = "hello";
  o.initargs_size = 5;
  mpx_pool *raw;
  ASSERT_MPX_OK(mpx_pool_create(&raw, &o));
  PoolPtr p(raw);
  mpx_task t;
  mpx_task_init(&t, sizeof t);
  t.fn = [](const void *, size_t, mpx_task_out *out) {
    const char *v = getenv("MPX_POOL_TEST_INIT");
    return mpx_task_return(out, v ? v : "", v ? strlen(v) : 0);
  };
  void *r;
  size_t n;
  ASSERT_MPX_OK(mpx_pool_apply(p.get(), &t, &r, &n));
  EXPECT_EQ(std::string(static_cast<char *>(r), n), "hello");
  mpx_free(r);
}

// ---- external workers and the batch API (what bindings use) -----------------------------

namespace {
// An external worker: attach, serve "echo"-like tasks (reversing the bytes), exit.
void external_worker(void *arg) {
  mpx_worker *w = nullptr;
  if (mpx_worker_attach(static_cast<const char *>(arg), &w) != MPX_OK) _exit(10);
  mpx_worker_task t;
  t.size = sizeof t;
  int rc;
  while ((rc = mpx_worker_next(w, -1, &t)) == MPX_OK) {
    std::string s(static_cast<const char *>(t.arg), t.arg_size);
    if (s == "die") _exit(4);
    if (s == "err") {
      mpx_worker_reply(w, 5, "E", 1, "bad input");
      continue;
    }
    std::string rev(s.rbegin(), s.rend());
    if (mpx_worker_reply(w, 0, rev.data(), rev.size(), nullptr) != MPX_OK) _exit(11);
  }
  mpx_worker_detach(w);
  _exit(rc == MPX_ECLOSED ? 0 : 12);
}

std::vector<uint8_t> records(const std::vector<std::pair<uint64_t, std::string>> &tasks) {
  std::vector<uint8_t> out;
  for (auto &[tag, s] : tasks) {
    mpx_record_header h{tag, s.size(), 0, 0, 0, 0};
    const size_t at = out.size();
    out.resize(at + sizeof h + (s.size() + 7) / 8 * 8);
    std::memcpy(out.data() + at, &h, sizeof h);
    std::memcpy(out.data() + at + sizeof h, s.data(), s.size());
  }
  return out;
}
}  // namespace

TEST(PoolExternal, WorkersStartedByTheCallerServeBatchesAndDeathsAreReported) {
  mpx_pool_options o;
  mpx_pool_options_init(&o, sizeof o);
  o.workers = 2;
  o.flags = MPX_POOL_EXTERNAL;
  mpx_pool *raw;
  ASSERT_MPX_OK(mpx_pool_create(&raw, &o));
  PoolPtr p(raw);
  char token[MPX_TOKEN_MAX];
  size_t len = sizeof token;
  ASSERT_MPX_OK(mpx_pool_token(p.get(), token, &len));
  std::vector<mpx_process *> procs;
  auto start = [&] {
    mpx_process_options po;
    mpx_process_options_init(&po, sizeof po);
    po.fn = external_worker;
    po.arg = token;
    mpx_process *h;
    ASSERT_MPX_OK(mpx_process_create(&h, &po));
    ASSERT_MPX_OK(mpx_process_start(h));
    int64_t pid;
    mpx_process_pid(h, &pid);
    ASSERT_MPX_OK(mpx_pool_add_worker(p.get(), pid));
    procs.push_back(h);
  };
  size_t wanted = 0;
  ASSERT_MPX_OK(mpx_pool_wanted(p.get(), &wanted));
  EXPECT_EQ(wanted, 2u);
  {  // maps travel in chunks only the library's worker loop unpacks
    const char *items[] = {"a"};
    size_t sizes[] = {1};
    mpx_map m;
    mpx_map_init(&m, sizeof m);
    m.name = "rev";
    m.items = reinterpret_cast<const void *const *>(items);
    m.sizes = sizes;
    m.count = 1;
    mpx_job *j = nullptr;
    EXPECT_MPX(MPX_EINVAL, mpx_pool_map(p.get(), &m, &j));
  }
  for (size_t i = 0; i < wanted; ++i) start();
  ASSERT_MPX_OK(mpx_pool_wanted(p.get(), &wanted));
  EXPECT_EQ(wanted, 0u);
  auto batch = records({{1, "abc"}, {2, ""}, {3, "err"}, {4, std::string(3000, 'z') + "!"}, {5, "die"}});
  ASSERT_MPX_OK(mpx_pool_submit(p.get(), "rev", batch.data(), batch.size(), 5, 0));
  // The worker that took "die" exits 4: report it as a binding would.
  std::map<uint64_t, std::pair<int, std::string>> got;
  std::vector<uint8_t> buf(64);
  const auto end = Clock::now() + 10s;
  while (got.size() < 5 && Clock::now() < end) {
    for (size_t i = 0; i < procs.size(); ++i) {
      if (mpx_process_join(procs[i], 0) != MPX_OK) continue;
      int code = 0;
      mpx_process_exitcode(procs[i], &code);
      int64_t pid;
      mpx_process_pid(procs[i], &pid);
      EXPECT_EQ(code, 4);
      ASSERT_MPX_OK(mpx_pool_worker_exited(p.get(), pid, code));
      mpx_process_destroy(procs[i]);
      procs.erase(procs.begin() + long(i));
      ASSERT_MPX_OK(mpx_pool_wanted(p.get(), &wanted));
      EXPECT_EQ(wanted, 1u);
      start();
      break;
    }
    size_t used = 0, count = 0;
    const int rc = mpx_pool_collect(p.get(), buf.data(), buf.size(), &used, &count, 50);
    if (rc == MPX_ENOBUFS) {
      buf.resize(used);
      continue;
    }
    if (rc == MPX_ETIMEDOUT) continue;
    ASSERT_MPX_OK(rc);
    size_t off = 0;
    for (size_t i = 0; i < count; ++i) {
      mpx_record_header h;
      std::memcpy(&h, buf.data() + off, sizeof h);
      const char *data = reinterpret_cast<const char *>(buf.data() + off + sizeof h);
      got[h.tag] = {h.status, h.status == 0 ? std::string(data, h.size) : std::string(data + h.size, h.message)};
      off += sizeof h + (h.size + h.message + 7) / 8 * 8;
    }
    EXPECT_EQ(off, used);
  }
  ASSERT_EQ(got.size(), 5u);
  EXPECT_EQ(got[1], std::make_pair(0, std::string("cba")));
  EXPECT_EQ(got[2], std::make_pair(0, std::string()));
  EXPECT_EQ(got[3].first, MPX_ETASK);
  EXPECT_EQ(got[3].second, "bad input");
  EXPECT_EQ(got[4].second, "!" + std::string(3000, 'z'));
  EXPECT_EQ(got[5].first, MPX_EWORKERDIED);
  EXPECT_NE(got[5].second.find("exited with status 4"), std::string::npos) << got[5].second;
  // Close: workers drain and exit 0; wanted says the pool is finished.
  ASSERT_MPX_OK(mpx_pool_close(p.get()));
  for (auto *h : procs) {
    ASSERT_MPX_OK(mpx_process_join(h, 5000));
    int code = -1;
    mpx_process_exitcode(h, &code);
    EXPECT_EQ(code, 0);
    int64_t pid;
    mpx_process_pid(h, &pid);
    EXPECT_MPX_OK(mpx_pool_worker_exited(p.get(), pid, code));
    mpx_process_destroy(h);
  }
  EXPECT_MPX(MPX_ECLOSED, mpx_pool_wanted(p.get(), &wanted));
  EXPECT_MPX_OK(mpx_pool_join(p.get(), 1000));
}

TEST(PoolExternal, TerminateKillsWorkersThatIgnoreSigterm) {
  mpx_pool_options o;
  mpx_pool_options_init(&o, sizeof o);
  o.workers = 1;
  o.flags = MPX_POOL_EXTERNAL;
  mpx_pool *raw;
  ASSERT_MPX_OK(mpx_pool_create(&raw, &o));
  PoolPtr p(raw);
  auto c = Child::fork([] {
    signal(SIGTERM, SIG_IGN);
    sleep(30);
    return 0;
  });
  ASSERT_MPX_OK(mpx_pool_add_worker(p.get(), c.pid()));
  std::this_thread::sleep_for(50ms);  // its SIG_IGN is in place
  const auto t0 = Clock::now();
  ASSERT_MPX_OK(mpx_pool_terminate(p.get()));
  const double took = seconds_since(t0);
  EXPECT_GE(took, 0.19);
  EXPECT_LT(took, 1.5);
  const ExitStatus st = c.wait(2000ms);
  EXPECT_TRUE(st.killed_by(SIGKILL)) << st.describe();
  EXPECT_MPX_OK(mpx_pool_worker_exited(p.get(), c.pid(), -SIGKILL));
  EXPECT_MPX_OK(mpx_pool_join(p.get(), 1000));
}
