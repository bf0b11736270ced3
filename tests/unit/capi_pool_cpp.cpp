// mpx::Pool, the C++ RAII class over the pool C API (include/mpx/mpx.hpp), with real fork
// workers: map of squares, apply, callbacks, failures thrown as mpx::task_error (a task's own
// error, a worker killed mid-task, a task timeout, cancel), imap order, close/join, and a
// destructor that terminates.
#include <signal.h>
#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <numeric>
#include <optional>
#include <ranges>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "capi_pool_helpers.hpp"
#include "mpx/mpx.hpp"

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

int64_t square(int64_t x) { return x * x; }

// Squares, except that item 5 kills its own worker.
int64_t square_or_die(int64_t x) {
  if (x == 5) raise(SIGKILL);
  return x * x;
}

struct Pair {
  int32_t a, b;
};
int64_t multiply(Pair p) { return int64_t(p.a) * p.b; }  // starmap-like: the arguments in a struct

std::string shout(std::string_view s) {
  if (s == "boom") throw std::runtime_error("no shouting at boom");
  std::string r(s);
  for (char &c : r) c = char(std::toupper(static_cast<unsigned char>(c)));
  return r + "!";
}

const bool kTasksRegistered = [] {
  mpxt::register_pool_tasks();
  mpx::register_task("shout", mpx::as_task<shout>);
  return true;
}();

// Library state that lives as long as the process, started before the first test so that the
// leak check does not count it (see capi_pool.cpp): the forkserver, and the thread that forks
// daemons for other threads (a pool's supervisor starts replacement workers).
void warm_up_pools() {
  mpx_forkserver_start();
  mpxt::warm_up_daemon_forker();
}
const bool kWarmedUp = mpxt::register_warmup(&warm_up_pools);

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// The mpx::error code of a call that must throw; 0 if it did not.
template <typename F>
int thrown_code(F &&f) {
  try {
    f();
  } catch (const mpx::error &e) {
    return e.value();
  }
  return 0;
}

bool wait_workers(const mpx::Pool &p, size_t n) {
  const auto end = Clock::now() + 5s;
  while (Clock::now() < end) {
    if (p.worker_pids().size() == n) return true;
    std::this_thread::sleep_for(5ms);
  }
  return false;
}

bool process_gone(int64_t pid) { return kill(pid_t(pid), 0) == -1 && errno == ESRCH; }

}  // namespace

TEST(PoolCpp, MapOfSquaresByPointerByTypedTaskAndOverAView) {
  mpx::Pool pool(2);
  EXPECT_EQ(pool.size(), 2u);
  std::vector<int64_t> in(1000);
  std::iota(in.begin(), in.end(), 0);
  const std::vector<int64_t> raw = pool.map_as<int64_t>(mpxt::task_square, in);
  const std::vector<int64_t> typed = pool.map_as<int64_t>(mpx::as_task<square>, in, mpx::job_options().chunksize(7));
  ASSERT_EQ(raw.size(), in.size());
  ASSERT_EQ(typed.size(), in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    ASSERT_EQ(raw[i], int64_t(i * i));
    ASSERT_EQ(typed[i], int64_t(i * i));
  }
  // Any input range: a view is copied into packed items first.
  auto odd = std::views::iota(int64_t{0}, int64_t{100}) | std::views::filter([](int64_t x) { return x % 2; });
  const auto sq = pool.map_as<int64_t>(mpx::as_task<square>, odd);
  ASSERT_EQ(sq.size(), 50u);
  EXPECT_EQ(sq[0], 1);
  EXPECT_EQ(sq[49], 99 * 99);
  // Bytes out: map() copies each result.
  const auto bytes = pool.map(mpxt::task_square, std::vector<int64_t>{3});
  ASSERT_EQ(bytes.size(), 1u);
  EXPECT_EQ(mpxt::as_i64(bytes[0].data(), bytes[0].size()), 9);
  // Starmap: each item a struct of the arguments.
  const std::vector<Pair> pairs = {{2, 3}, {4, 5}, {-6, 7}};
  EXPECT_EQ(pool.map_as<int64_t>(mpx::as_task<multiply>, pairs), (std::vector<int64_t>{6, 20, -42}));
  const mpx_pool_stats st = pool.stats();
  EXPECT_EQ(st.workers_died, 0u);
  EXPECT_EQ(st.tasks_failed, 0u);
  EXPECT_GE(st.tasks_succeeded, 2000u);
}

TEST(PoolCpp, ApplyByNameAndPointerWithBytesStringsAndObjects) {
  mpx::Pool pool(mpx::pool_options().workers(2).name("Cruncher"));
  EXPECT_EQ(pool.apply_as<int64_t>("square", int64_t{12}), 144);
  EXPECT_EQ(pool.apply_as<int64_t>(mpxt::task_square, int64_t{-3}), 9);
  EXPECT_EQ(pool.apply_as<std::string>("echo", "hello"), "hello");  // a C string: no NUL sent
  EXPECT_EQ(pool.apply_as<std::string>("shout", std::string("hey")), "HEY!");
  const std::vector<std::byte> none = pool.apply("echo");
  EXPECT_TRUE(none.empty());
  // A large argument and result.
  std::vector<uint8_t> big(3 << 20);
  for (size_t i = 0; i < big.size(); ++i) big[i] = uint8_t(i * 7);
  EXPECT_EQ(pool.apply_as<std::vector<uint8_t>>("echo", big), big);
  // A captureless lambda is a task by pointer.
  auto r = pool.apply_async([](const void *, size_t, mpx_task_out *out) { return mpx_task_return(out, "L", 1); });
  EXPECT_EQ(r.get_as<std::string>(10s), "L");
  EXPECT_TRUE(r.ready());
  EXPECT_TRUE(r.successful());
  EXPECT_EQ(r.size(), 1u);
  // A result of the wrong size for the type asked for.
  EXPECT_EQ(thrown_code([&] { (void)pool.apply_as<int32_t>("square", int64_t{2}); }), MPX_EINVAL);
}

TEST(PoolCpp, CallbacksRunOnceBeforeGetReturnsAndEvenWhenTheResultIsDropped) {
  mpx::Pool pool(2);
  static std::atomic<int> dropped_calls{0};
  dropped_calls = 0;
  std::atomic<int64_t> kept_saw{0};
  {
    mpx::AsyncResult kept = pool.apply_async(
        "square", int64_t{7}, mpx::job_options().callback([&](mpx::JobView job) { kept_saw = job.result_as<int64_t>(0); }));
    // Dropped at once, as Python programs often do: the callback still runs, then the job goes.
    pool.apply_async("square", int64_t{7}, mpx::job_options().callback([](mpx::JobView job) {
                       if (job.successful() && job.result_as<int64_t>(0) == 49) dropped_calls.fetch_add(1);
                     }));
    EXPECT_EQ(kept.get_as<int64_t>(10s), 49);
    EXPECT_EQ(kept_saw.load(), 49);  // get() returned after the callback, as in Python
    EXPECT_TRUE(kept.ready());
  }
  // A map's callback sees every item; an empty map's runs before map_async returns.
  std::atomic<size_t> seen{0};
  mpx::MapResult m = pool.map_async("square", std::vector<int64_t>(100, 2),
                                    mpx::job_options().callback([&](mpx::JobView job) { seen = job.size(); }));
  std::vector<int64_t> nothing;
  std::atomic<bool> empty_called{false};
  mpx::MapResult e = pool.map_async("square", nothing, mpx::job_options().callback([&](mpx::JobView) { empty_called = true; }));
  EXPECT_TRUE(empty_called.load());
  EXPECT_TRUE(e.wait(0ms));
  EXPECT_TRUE(e.get().empty());
  EXPECT_TRUE(m.wait(10s));
  EXPECT_EQ(seen.load(), 100u);
  // A failed submission never calls its callback.
  pool.close();
  bool called = false;
  EXPECT_EQ(thrown_code([&] { pool.apply_async("square", int64_t{1}, mpx::job_options().callback([&](mpx::JobView) { called = true; })); }),
            MPX_ECLOSED);
  EXPECT_FALSE(called);
  for (int i = 0; i < 400 && dropped_calls == 0; ++i) std::this_thread::sleep_for(5ms);
  EXPECT_EQ(dropped_calls.load(), 1);
}

TEST(PoolCpp, TaskErrorIsThrownAsTaskErrorWithItsCodeAndMessage) {
  mpx::Pool pool(2);
  try {
    pool.apply("fail");
    ADD_FAILURE() << "apply of a failing task did not throw";
  } catch (const mpx::task_error &e) {
    EXPECT_EQ(e.value(), MPX_ETASK);
    EXPECT_TRUE(e.code() == mpx::errc::task);
    EXPECT_EQ(e.task_code(), 7);
    EXPECT_EQ(e.index(), 0u);
    EXPECT_EQ(e.detail(), "the task said no");
    EXPECT_NE(std::string(e.what()).find("MPX_ETASK"), std::string::npos) << e.what();
  }
  // A C++ task that throws: code 1, what() as the message.
  try {
    pool.apply("shout", "boom");
    ADD_FAILURE() << "no throw";
  } catch (const mpx::task_error &e) {
    EXPECT_EQ(e.value(), MPX_ETASK);
    EXPECT_EQ(e.task_code(), 1);
    EXPECT_EQ(e.detail(), "no shouting at boom");
  }
  // An unknown name fails the task (MPX_ENOENT), not the worker.
  EXPECT_EQ(thrown_code([&] { pool.apply("no-such-task"); }), MPX_ENOENT);
  // In a map only the failing item fails: get() throws the first one; the others are there.
  const std::vector<std::string> words = {"a", "boom", "c", "boom"};
  mpx::MapResult m = pool.map_async("shout", words, mpx::job_options().chunksize(1));
  try {
    m.get(10s);
    ADD_FAILURE() << "no throw";
  } catch (const mpx::task_error &e) {
    EXPECT_EQ(e.index(), 1u);
  }
  EXPECT_FALSE(m.successful());
  EXPECT_EQ(m.result_as<std::string>(0), "A!");
  EXPECT_EQ(m.result_as<std::string>(2), "C!");
  EXPECT_FALSE(m.error(0).has_value());
  ASSERT_TRUE(m.error(3).has_value());
  EXPECT_EQ(m.error(3)->value(), MPX_ETASK);
  EXPECT_EQ(m.error(3)->index(), 3u);
  EXPECT_EQ(thrown_code([&] { (void)m.result(4); }), MPX_ERANGE);
  EXPECT_EQ(pool.stats().workers_died, 0u);
}

TEST(PoolCpp, WorkerKilledMidTaskIsWorkerDiedAndThePoolGoesOn) {  // scenario 36
  mpx::Pool pool(2);
  ASSERT_TRUE(wait_workers(pool, 2));
  mpx::AsyncResult victim = pool.apply_async("sleep", int64_t{10000});
  std::this_thread::sleep_for(200ms);
  const int64_t free_pid = pool.apply_as<int64_t>("sleep", int64_t{0});
  int64_t busy = 0;
  for (int64_t pid : pool.worker_pids())
    if (pid != free_pid) busy = pid;
  ASSERT_NE(busy, 0);
  const auto t0 = Clock::now();
  ASSERT_EQ(kill(pid_t(busy), SIGKILL), 0);
  try {
    victim.get(5s);
    ADD_FAILURE() << "the killed worker's task did not fail";
  } catch (const mpx::task_error &e) {
    EXPECT_EQ(e.value(), MPX_EWORKERDIED);
    EXPECT_TRUE(e.code() == mpx::errc::workerdied);
    EXPECT_EQ(e.task_code(), -SIGKILL);
    EXPECT_NE(e.detail().find("SIGKILL"), std::string::npos) << e.detail();
    EXPECT_NE(e.detail().find(std::to_string(busy)), std::string::npos) << e.detail();
  }
  EXPECT_LT(seconds_since(t0), 2.0);
  // A map whose item 5 kills its worker: only that item fails; imap goes on past it.
  std::vector<int64_t> in(40);
  std::iota(in.begin(), in.end(), 0);
  mpx::MapResult m = pool.imap(mpx::as_task<square_or_die>, in, mpx::job_options().chunksize(1));
  size_t next = 0, failed = 0;
  for (const mpx::MapResult::item &it : m) {
    EXPECT_EQ(it.index(), next++);
    if (it.index() == 5) {
      ASSERT_FALSE(it.ok());
      EXPECT_EQ(it.error()->value(), MPX_EWORKERDIED);
      EXPECT_EQ(it.error()->task_code(), -SIGKILL);
      ++failed;
    } else {
      EXPECT_EQ(it.get_as<int64_t>(), int64_t(it.index() * it.index()));
    }
  }
  EXPECT_EQ(next, in.size());
  EXPECT_EQ(failed, 1u);
  EXPECT_EQ(pool.stats().workers_died, 2u);
  EXPECT_TRUE(wait_workers(pool, 2));
  EXPECT_EQ(pool.apply_as<int64_t>(mpx::as_task<square>, int64_t{9}), 81);
}

TEST(PoolCpp, ImapGivesIndexOrderAndImapUnorderedEndOrder) {
  mpx::Pool pool(2);
  const std::vector<int64_t> ms = {300, 0, 0, 0, 0};  // item 0 ends last
  for (bool ordered : {true, false}) {
    mpx::MapResult m = ordered ? pool.imap("sleep", ms, mpx::job_options().chunksize(1))
                               : pool.imap_unordered("sleep", ms, mpx::job_options().chunksize(1));
    std::vector<size_t> order;
    for (const auto &it : m) {
      EXPECT_TRUE(it.ok());
      order.push_back(it.index());
    }
    ASSERT_EQ(order.size(), ms.size());
    if (ordered) {
      EXPECT_EQ(order, (std::vector<size_t>{0, 1, 2, 3, 4}));
    } else {
      EXPECT_EQ(order.back(), 0u);
    }
    EXPECT_EQ(thrown_code([&] { (void)m.next(0ms); }), MPX_EOF);
  }
  // next(timeout): nullopt while nothing has ended.
  mpx::MapResult slow = pool.imap("sleep", std::vector<int64_t>{300});
  EXPECT_FALSE(slow.next(20ms).has_value());
  auto it = slow.next(10s);
  ASSERT_TRUE(it.has_value());
  EXPECT_EQ(it->index(), 0u);
}

TEST(PoolCpp, GetTimesOutWithoutEndingTheTaskAndTaskTimeoutsAreTaskErrors) {
  mpx::Pool pool(2);
  mpx::AsyncResult r = pool.apply_async("sleep", int64_t{300});
  EXPECT_FALSE(r.ready());
  EXPECT_FALSE(r.wait(10ms));
  EXPECT_EQ(thrown_code([&] { (void)r.successful(); }), MPX_EAGAIN);
  try {
    r.get(20ms);
    ADD_FAILURE() << "get did not time out";
  } catch (const mpx::task_error &) {
    ADD_FAILURE() << "a timed-out wait is not the task's failure";
  } catch (const mpx::error &e) {
    EXPECT_EQ(e.value(), MPX_ETIMEDOUT);
  }
  EXPECT_GT(r.get_as<int64_t>(10s), 0);  // the worker's pid
  // A task that outruns its own timeout: its worker is killed, the task fails with ETIMEDOUT.
  try {
    pool.apply("sleep", int64_t{5000}, mpx::job_options().task_timeout(200ms));
    ADD_FAILURE() << "no throw";
  } catch (const mpx::task_error &e) {
    EXPECT_EQ(e.value(), MPX_ETIMEDOUT);
    EXPECT_NE(e.detail().find("timeout of 200 ms"), std::string::npos) << e.detail();
  }
}

TEST(PoolCpp, CancelAndProgress) {
  mpx::Pool pool(1);
  // cancel() ends at once the items not yet handed to the workers and returns how many; those
  // already queued end with MPX_ECANCELED, unrun, as the worker reaches them.
  mpx::MapResult m = pool.map_async("sleep", std::vector<int64_t>(1000, 2), mpx::job_options().chunksize(1));
  std::this_thread::sleep_for(50ms);
  const mpx_progress before = m.progress();
  EXPECT_EQ(before.total, 1000u);
  EXPECT_LT(before.done, 1000u);
  EXPECT_GT(before.rate, 0.0);
  const size_t cancelled = m.cancel();
  const auto t0 = Clock::now();
  ASSERT_TRUE(m.wait(10s));
  EXPECT_LT(seconds_since(t0), 1.0);  // running what is left would take about 2 s
  const mpx_progress after = m.progress();
  EXPECT_EQ(after.done, 1000u);
  EXPECT_GE(after.failed, cancelled);
  EXPECT_GT(after.failed, 500u);
  EXPECT_EQ(after.eta_s, 0.0);
  ASSERT_TRUE(m.error(999).has_value());
  EXPECT_EQ(m.error(999)->value(), MPX_ECANCELED);
  EXPECT_EQ(m.error(999)->detail(), "cancelled before it started");
  EXPECT_EQ(thrown_code([&] { (void)m.get(); }), MPX_ECANCELED);
}

TEST(PoolCpp, CloseThenJoinLetsTasksFinish) {
  mpx::Pool pool(mpx::pool_options().workers(2).maxtasksperchild(1));
  EXPECT_EQ(thrown_code([&] { (void)pool.join(0ms); }), MPX_EINVAL);  // not closed yet
  mpx::MapResult m = pool.map_async("pid", std::vector<int64_t>(10, 0), mpx::job_options().chunksize(1));
  pool.close();
  EXPECT_EQ(thrown_code([&] { pool.apply_async("pid"); }), MPX_ECLOSED);
  EXPECT_TRUE(pool.join(30s));
  const std::vector<int64_t> pids = m.get_as<int64_t>(0ms);
  EXPECT_EQ(std::set<int64_t>(pids.begin(), pids.end()).size(), pids.size());  // one task per worker
  EXPECT_EQ(pool.stats().workers_retired, 10u);
  EXPECT_TRUE(pool.worker_pids().empty());
}

TEST(PoolCpp, DestructorTerminatesPendingTasksAndReapsWorkers) {  // scenario 39
  std::optional<mpx::Pool> pool(std::in_place, 2);
  mpx::MapResult m = pool->map_async("sleep", std::vector<int64_t>(2000, 10000), mpx::job_options().chunksize(1));
  ASSERT_TRUE(wait_workers(*pool, 2));
  const std::vector<int64_t> pids = pool->worker_pids();
  std::this_thread::sleep_for(100ms);
  // Moving hands the workers over; the moved-from pool is empty.
  mpx::Pool moved = std::move(*pool);
  EXPECT_FALSE(*pool);
  EXPECT_EQ(thrown_code([&] { (void)pool->size(); }), MPX_EINVAL);
  pool = std::move(moved);
  const auto t0 = Clock::now();
  pool.reset();  // the destructor terminates
  EXPECT_LT(seconds_since(t0), 2.0);
  ASSERT_TRUE(m.wait(0ms));
  EXPECT_EQ(m.error(0)->value(), MPX_ECANCELED);
  EXPECT_EQ(m.error(1999)->value(), MPX_ECANCELED);
  EXPECT_EQ(m.progress().failed, 2000u);
  for (int64_t pid : pids) EXPECT_TRUE(process_gone(pid)) << pid;
}

TEST(PoolCpp, ForkserverWorkersRunTasksByName) {
  mpx::Pool pool(mpx::pool_options().workers(2).method(MPX_START_FORKSERVER));
  const std::vector<std::string> words = {"one", "two", "three"};
  EXPECT_EQ(pool.map_as<std::string>("shout", words), (std::vector<std::string>{"ONE!", "TWO!", "THREE!"}));
  // A task by pointer needs fork workers.
  EXPECT_EQ(thrown_code([&] { pool.apply(mpxt::task_square, int64_t{2}); }), MPX_EINVAL);
}

TEST(PoolCpp, BadOptionsThrowEinval) {
  EXPECT_EQ(thrown_code([] { mpx::Pool p(-1); }), MPX_EINVAL);
  EXPECT_EQ(thrown_code([] { mpx::Pool p(mpx::pool_options().workers(1).maxtasksperchild(-1)); }), MPX_EINVAL);
  EXPECT_EQ(thrown_code([] { mpx::Pool p(mpx::pool_options().method(MPX_START_SPAWN)); }), MPX_EINVAL);
}
