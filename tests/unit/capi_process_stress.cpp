// Processes under pressure: a daemon whose parent is SIGKILLed (SCENARIOS.md 3), fork while
// threads hammer malloc and locks (4), a hundred children terminated at once (5), waits that
// must not be satisfied by another child and children the library must not reap (7), many
// threads starting children at once, and a thousand children in a row.
#include <sys/prctl.h>

#include <atomic>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "support/process_helpers.hpp"

using namespace std::chrono_literals;
using mpxt::Argv;
using mpxt::Millis;
using mpxt::Proc;

namespace {

struct Method {
  uint32_t method;
  const char *name;
};
constexpr Method kFork{MPX_START_FORK, "fork"};
constexpr Method kForkserver{MPX_START_FORKSERVER, "forkserver"};
constexpr Method kSpawn{MPX_START_SPAWN, "spawn"};
constexpr Method kAllMethods[] = {kFork, kForkserver, kSpawn};
constexpr uint32_t kByHand = 99;  // not an mpx start method: fork() and mpx_process_after_fork

// A child of method m that exits with `code` at once (fork: fn; forkserver: entry; spawn: helper).
mpx_process_options exit_with_options(Method m, uint8_t *code, Argv **argv_keep) {
  auto o = mpxt::process_options(m.method);
  if (m.method == MPX_START_FORK) {
    o.entry = "mpxt.exit_with";
    o.payload = code;
    o.payload_size = 1;
  } else if (m.method == MPX_START_FORKSERVER) {
    o.entry = "mpxt.exit_with";
    o.payload = code;
    o.payload_size = 1;
  } else {
    *argv_keep = new Argv{"x", "exit=" + std::to_string(*code)};
    o.file = mpxt::kChildPlain;
    o.argv = (*argv_keep)->get();
  }
  return o;
}

Proc start_behaving(Method m, mpxt::Behave b, bool daemon = false) {
  if (m.method == MPX_START_FORK) return mpxt::start_fork(mpxt::behave_fn, mpxt::behave_arg(b), daemon);
  if (m.method == MPX_START_FORKSERVER) {
    uint8_t byte = b;
    return mpxt::start_entry(MPX_START_FORKSERVER, "mpxt.behave", &byte, 1, {}, daemon);
  }
  Argv argv{"x", b == mpxt::kReturn ? "sleep=0" : b == mpxt::kBlock ? "block" : b == mpxt::kExit7 ? "exit=7" : "sleep=300"};
  auto o = mpxt::spawn_options(mpxt::kChildPlain, argv, false);
  o.daemon = daemon ? 1 : 0;
  return mpxt::start_process(o);
}

// A fork target that blocks in an mpx event wait (arg: the event) until killed.
void event_wait_fn(void *arg) {
  mpx_event_wait(static_cast<mpx_event *>(arg), -1);
  ::_exit(98);
}

}  // namespace

// ---- scenario 3: a daemon whose parent is SIGKILLed ------------------------------------------------

namespace {

struct ParentDeath {
  std::atomic<int64_t> child_pid;
  std::atomic<int> start_rc;
  std::atomic<int64_t> gone_ms;  // from the parent's death until the child was dead; -1: alive at the deadline
  std::atomic<int> leftovers;    // other processes still alive 2 s after the parent's death
  char leftover_names[512];
};

// H (a subreaper, so that orphans become its children) forks M; M starts a child of method m
// (a daemon or not) that blocks forever, reports its pid, and blocks itself. H SIGKILLs M and
// watches the child for `watch`; then it reaps everything, counting what outlived M by 2 s.
mpxt::ExitStatus kill_the_parent(Method m, bool daemon, ParentDeath *r, Millis watch) {
  return mpxt::run_in_child(
      [=] {
        CHILD_CHECK(prctl(PR_SET_CHILD_SUBREAPER, 1) == 0);
        r->child_pid = 0;
        r->start_rc = INT_MIN;
        r->gone_ms = -2;
        r->leftovers = -1;
        mpxt::Rendezvous ready;
        mpxt::Child middle = mpxt::Child::fork([&]() -> int {
          mpx_event *ev = nullptr;
          mpx_process *p = nullptr;
          int rc = MPX_OK;
          if (m.method == MPX_START_FORK) {
            rc = mpx_event_create(&ev);
            auto o = mpxt::process_options(MPX_START_FORK);
            o.fn = event_wait_fn;
            o.arg = ev;
            o.daemon = daemon;
            if (rc == MPX_OK) rc = mpx_process_create(&p, &o);
          } else if (m.method == MPX_START_FORKSERVER) {
            static uint8_t b = mpxt::kBlock;
            auto o = mpxt::process_options(MPX_START_FORKSERVER);
            o.entry = "mpxt.behave";
            o.payload = &b;
            o.payload_size = 1;
            o.daemon = daemon;
            rc = mpx_process_create(&p, &o);
          } else if (m.method == kByHand) {
            // Forked by hand (as Python's os.fork) and tied to M by mpx_process_after_fork.
            const pid_t parent = getpid();
            pid_t c = fork();
            if (c == 0) {
              auto o = mpxt::process_options();
              o.daemon = daemon;
              if (mpx_process_after_fork(&o, parent) != MPX_OK) _exit(97);
              mpxt::block_forever();
            }
            r->start_rc = c > 0 ? MPX_OK : MPX_ESYS;
            r->child_pid = c;
            ready.notify();
            mpxt::Rendezvous::hang();
          } else {
            static Argv argv{"x", "block"};
            auto o = mpxt::spawn_options(mpxt::kChildPlain, argv, false);
            o.daemon = daemon;
            rc = mpx_process_create(&p, &o);
          }
          if (rc == MPX_OK) rc = mpx_process_start(p);
          int64_t pid = 0;
          if (rc == MPX_OK) mpx_process_pid(p, &pid);
          r->start_rc = rc;
          r->child_pid = pid;
          ready.notify();
          mpxt::Rendezvous::hang();
        });
        CHILD_CHECK(ready.wait(10000ms));
        CHILD_MPX_OK(r->start_rc.load());
        const pid_t child = static_cast<pid_t>(r->child_pid.load());
        CHILD_CHECK(child > 0);
        auto st = middle.kill_and_wait(SIGKILL);
        CHILD_CHECK(st.killed_by(SIGKILL));
        mpxt::Stopwatch sw;
        r->gone_ms = mpxt::ms_until([&] { return mpxt::proc_dead(child); }, watch, 2ms);
        // Whatever M left behind (its forkserver, the child if it survived) is ours now.
        if (!mpxt::proc_dead(child)) kill(child, SIGKILL);
        auto reap = [] {
          while (waitpid(-1, nullptr, WNOHANG) > 0) {
          }
        };
        while (sw.ms() < 2000) {
          reap();
          if (!mpxt::has_waitable_child() && mpxt::count_children() == 0) break;
          std::this_thread::sleep_for(10ms);
        }
        reap();
        int left = 0;
        std::string names;
        std::ifstream children("/proc/self/task/" + std::to_string(getpid()) + "/children");
        long long pid;
        while (children >> pid) {
          ++left;
          std::ifstream comm("/proc/" + std::to_string(pid) + "/comm");
          std::string c;
          std::getline(comm, c);
          names += std::to_string(pid) + " (" + c + ") ";
          kill(static_cast<pid_t>(pid), SIGKILL);
        }
        std::snprintf(r->leftover_names, sizeof r->leftover_names, "%s", names.c_str());
        r->leftovers = left;
        while (waitpid(-1, nullptr, 0) > 0) {
        }
        return 0;
      },
      30000ms);
}

}  // namespace

TEST(ProcessDaemonDeath, ADaemonDiesWithinTwoSecondsOfItsParentsSigkill) {
  for (Method m : kAllMethods) {
    SCOPED_TRACE(m.name);
    mpxt::Shared<ParentDeath> r;
    auto st = kill_the_parent(m, true, r.get(), 3000ms);
    ASSERT_TRUE(st.ok()) << st.describe();
    EXPECT_GE(r->gone_ms.load(), 0) << m.name << " daemon still alive 3 s after its parent was SIGKILLed";
    EXPECT_LE(r->gone_ms.load(), 2000) << m.name << " daemon took too long to notice";
    EXPECT_EQ(r->leftovers.load(), 0) << "still alive 2 s after the parent died: " << r->leftover_names;
    std::printf("[ info ] %s daemon gone %lld ms after its parent's SIGKILL\n", m.name,
                static_cast<long long>(r->gone_ms.load()));
  }
}

TEST(ProcessDaemonDeath, AHandForkedDaemonDiesWithItsParent) {
  mpxt::Shared<ParentDeath> r;
  auto st = kill_the_parent(Method{kByHand, "fork() + mpx_process_after_fork"}, true, r.get(), 3000ms);
  ASSERT_TRUE(st.ok()) << st.describe();
  EXPECT_GE(r->gone_ms.load(), 0) << "a daemon by mpx_process_after_fork outlived its parent by 3 s";
  EXPECT_LE(r->gone_ms.load(), 2000);
  EXPECT_EQ(r->leftovers.load(), 0) << r->leftover_names;
}

TEST(ProcessDaemonDeath, ANonDaemonChildOutlivesItsParentsSigkill) {
  // Python's semantics: only daemons are tied to their parent's life.
  for (Method m : {kFork, kSpawn}) {
    SCOPED_TRACE(m.name);
    mpxt::Shared<ParentDeath> r;
    auto st = kill_the_parent(m, false, r.get(), 500ms);
    ASSERT_TRUE(st.ok()) << st.describe();
    EXPECT_EQ(r->gone_ms.load(), -1) << m.name << " non-daemon child died with its parent";
  }
}

TEST(ProcessDaemonDeath, ADaemonStartedFromAShortLivedThreadOutlivesTheThread) {
  // PR_SET_PDEATHSIG fires when the parent *thread* exits: the parent process is still alive
  // here, so the daemon must go on.
  for (Method m : kAllMethods) {
    SCOPED_TRACE(m.name);
    Proc p;
    std::thread t([&] { p = start_behaving(m, mpxt::kBlock, true); });
    t.join();
    ASSERT_TRUE(p);
    const int64_t pid = mpxt::pid_of(p.get());
    mpxt::sleep_ms(500);
    EXPECT_TRUE(mpxt::is_alive(p.get())) << m.name << " daemon died when the thread that started it exited";
    EXPECT_FALSE(mpxt::proc_dead(pid));
    EXPECT_MPX_OK(mpx_process_terminate(p.get()));
    int code = mpxt::join_exitcode(p.get());
    EXPECT_TRUE(code == -SIGTERM) << m.name << ": exit code " << code;
  }
}

// ---- scenario 4: fork while other threads hammer malloc and library locks -------------------------

namespace {
void busy_child_fn(void *arg) {
  auto *lock = static_cast<mpx_lock *>(arg);
  void *m = std::malloc(1000);
  if (m == nullptr) ::_exit(1);
  std::memset(m, 1, 1000);
  std::free(m);
  if (mpx_lock_acquire(lock, 5000) != MPX_OK) ::_exit(2);
  if (mpx_lock_release(lock) != MPX_OK) ::_exit(3);
  mpx_event *ev = nullptr;
  if (mpx_event_create(&ev) != MPX_OK) ::_exit(4);
  if (mpx_event_set(ev) != MPX_OK || mpx_event_wait(ev, 0) != MPX_OK) ::_exit(5);
  mpx_event_destroy(ev);
}
}  // namespace

TEST(ProcessForkUnderLoad, TwoHundredForksWhileEightThreadsHammerMallocAndLocks) {
  auto lock = mpxt::make_lock();
  ASSERT_TRUE(lock);
  std::atomic<bool> stop{false};
  std::atomic<long> rounds{0};
  std::vector<std::thread> hammers;
  for (int t = 0; t < 8; ++t)
    hammers.emplace_back([&, t] {
      std::vector<void *> held;
      for (long i = 0; !stop.load(std::memory_order_relaxed); ++i) {
        held.push_back(std::malloc(static_cast<size_t>(16 + (i * 37 + t) % 4000)));
        if (held.size() > 32) {
          for (void *h : held) std::free(h);
          held.clear();
        }
        if (mpx_lock_acquire(lock.get(), -1) == MPX_OK) mpx_lock_release(lock.get());
        int locked = 0;
        mpx_lock_locked(lock.get(), &locked);
        if (i % 512 == 0) {
          mpx_event *ev = nullptr;
          if (mpx_event_create(&ev) == MPX_OK) mpx_event_destroy(ev);
        }
        rounds.fetch_add(1, std::memory_order_relaxed);
      }
      for (void *h : held) std::free(h);
    });
  int failures = 0;
  std::string first;
  mpxt::Stopwatch sw;
  for (int i = 0; i < 200; ++i) {
    auto o = mpxt::process_options(MPX_START_FORK);
    o.fn = busy_child_fn;
    o.arg = lock.get();
    mpx_process *p = nullptr;
    int rc = mpx_process_create(&p, &o);
    if (rc == MPX_OK) rc = mpx_process_start(p);
    int code = mpxt::kNoExitcode;
    if (rc == MPX_OK) {
      rc = mpx_process_join(p, 5000);
      if (rc == MPX_ETIMEDOUT) {
        mpx_process_kill(p);  // deadlocked in the child: do not leave it behind
        mpx_process_join(p, 5000);
      }
      mpx_process_exitcode(p, &code);
    }
    if (p != nullptr) mpx_process_destroy(p);
    if (rc != MPX_OK || code != 0) {
      if (failures++ == 0)
        first = "fork " + std::to_string(i) + ": " + mpxt::code_str(rc) + ", exit code " + std::to_string(code);
    }
  }
  stop = true;
  for (auto &t : hammers) t.join();
  EXPECT_EQ(failures, 0) << "first failure: " << first << " (exit code 2: the child's lock acquire timed out; -9: "
                         << "it hung and was killed)";
  EXPECT_GT(rounds.load(), 1000) << "the hammering threads made no progress";
  std::printf("[ info ] 200 forks under load: %lld ms, %ld hammer rounds\n", static_cast<long long>(sw.ms()),
              rounds.load());
}

// ---- scenario 5: a hundred children terminated at once --------------------------------------------

namespace {
void terminate_all_at_once(const std::vector<Method> &methods, int n) {
  const int fds = mpxt::count_fds();
  const int kids = mpxt::count_children();
  std::vector<Proc> procs;
  for (int i = 0; i < n; ++i) {
    procs.push_back(start_behaving(methods[static_cast<size_t>(i) % methods.size()], mpxt::kBlock));
    ASSERT_TRUE(procs.back()) << "child " << i;
  }
  for (auto &p : procs) EXPECT_MPX_OK(mpx_process_terminate(p.get()));
  mpxt::Stopwatch sw;
  int bad = 0;
  std::string first;
  for (size_t i = 0; i < procs.size(); ++i) {
    int rc = mpx_process_join(procs[i].get(), 10000);
    int code = rc == MPX_OK ? mpxt::exitcode_of(procs[i].get()) : mpxt::kNoExitcode;
    if (code != -SIGTERM && code != -SIGKILL && bad++ == 0)
      first = "child " + std::to_string(i) + " (" + methods[i % methods.size()].name + "): " + mpxt::code_str(rc) +
              ", exit code " + std::to_string(code);
  }
  EXPECT_EQ(bad, 0) << "first: " << first;
  EXPECT_LT(sw.ms(), 5000) << "reaping " << n << " terminated children";
  procs.clear();
  EXPECT_EQ(mpxt::count_fds(), fds) << "fds back to the baseline";
  EXPECT_GE(mpxt::ms_until([&] { return mpxt::count_children() == kids; }, 2000ms), 0)
      << "children back to the baseline: " << mpxt::count_children() << " vs " << kids;
  EXPECT_FALSE(mpxt::has_waitable_child()) << "a zombie is left";
}
}  // namespace

TEST(ProcessTerminateMany, AHundredForkedChildrenTerminatedAtOnce) { terminate_all_at_once({kFork}, 100); }

TEST(ProcessTerminateMany, AHundredChildrenOfEveryMethodTerminatedAtOnce) {
  terminate_all_at_once({kFork, kForkserver, kSpawn}, 99);
}

// ---- scenario 7: waits are per child; other children are not ours to reap ----------------------------

TEST(ProcessWaitIsolation, WaitingOnANotSatisfiedByBExiting) {
  for (Method m : kAllMethods) {
    SCOPED_TRACE(m.name);
    auto a = start_behaving(m, mpxt::kBlock);
    auto b = start_behaving(m, mpxt::kSleep300);
    ASSERT_TRUE(a && b);
    mpxt::Stopwatch sw;
    EXPECT_MPX(MPX_ETIMEDOUT, mpx_process_join(a.get(), 700)) << "B's exit satisfied a wait on A";
    EXPECT_GE(sw.ms(), 690);
    EXPECT_EQ(mpxt::join_exitcode(b.get(), 0), 0) << "B ended meanwhile";
    EXPECT_TRUE(mpxt::is_alive(a.get()));
    // An untimed wait on A in another thread, while a second B ends.
    auto b2 = start_behaving(m, mpxt::kReturn);
    ASSERT_TRUE(b2);
    std::atomic<int> rc{INT_MIN};
    std::thread waiter([&] { rc = mpx_process_join(a.get(), -1); });
    EXPECT_EQ(mpxt::join_exitcode(b2.get()), 0);
    mpxt::sleep_ms(200);
    EXPECT_EQ(rc.load(), INT_MIN) << "the wait on A returned when B ended: " << mpxt::code_str(rc.load());
    EXPECT_MPX_OK(mpx_process_kill(a.get()));
    waiter.join();
    EXPECT_MPX_OK(rc.load());
    EXPECT_EQ(mpxt::exitcode_of(a.get()), -SIGKILL);
  }
}

TEST(ProcessWaitIsolation, TheLibraryNeverReapsChildrenItDidNotCreate) {
  // One child of ours has ended before any mpx activity, another ends during it.
  pid_t early = fork();
  if (early == 0) _exit(3);
  pid_t late = fork();
  if (late == 0) {
    std::this_thread::sleep_for(300ms);
    _exit(5);
  }
  ASSERT_GT(early, 0);
  ASSERT_GT(late, 0);
  mpxt::sleep_ms(50);
  std::vector<int64_t> destroyed;
  for (int round = 0; round < 3; ++round) {
    for (Method m : kAllMethods) {
      auto p = start_behaving(m, round == 0 ? mpxt::kReturn : mpxt::kSleep300);
      ASSERT_TRUE(p);
      size_t n = 0;
      mpx_active_children(nullptr, &n);
      mpxt::is_alive(p.get());
      EXPECT_EQ(mpxt::join_exitcode(p.get()), 0);
    }
    auto d = start_behaving(kFork, mpxt::kBlock);  // destroyed while running: the library reaps it
    ASSERT_TRUE(d);
    destroyed.push_back(mpxt::pid_of(d.get()));
    mpx_process_destroy(d.release());
    kill(static_cast<pid_t>(destroyed.back()), SIGKILL);
  }
  size_t n = 0;
  mpx_active_children(nullptr, &n);
  int status = 0;
  EXPECT_EQ(waitpid(early, &status, 0), early) << "the library reaped a child it did not create";
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 3);
  status = 0;
  EXPECT_EQ(waitpid(late, &status, 0), late) << "the library reaped a child it did not create";
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 5);
  // The destroyed ones are the library's to reap (ProcessDestroy checks when); wait for it here.
  for (int64_t pid : destroyed)
    mpxt::ms_until(
        [&] {
          size_t none = 0;
          mpx_active_children(nullptr, &none);
          return mpxt::proc_state(pid) == 0;
        },
        3000ms);
}

// ---- threads starting children at once ------------------------------------------------------------

TEST(ProcessThreads, FourThreadsStartChildrenAtOnce) {
  for (Method m : kAllMethods) {
    SCOPED_TRACE(m.name);
    std::atomic<int> bad{0};
    std::atomic<int> go{0};
    std::string first;
    std::mutex first_mu;
    std::vector<std::thread> ts;
    for (int t = 0; t < 4; ++t)
      ts.emplace_back([&, t] {
        while (go.load() == 0) std::this_thread::yield();
        for (int i = 0; i < 10; ++i) {
          uint8_t code = static_cast<uint8_t>(t * 10 + i + 1);
          Argv *keep = nullptr;
          auto o = exit_with_options(m, &code, &keep);
          mpx_process *p = nullptr;
          int rc = mpx_process_create(&p, &o);
          delete keep;
          if (rc == MPX_OK) rc = mpx_process_start(p);
          int got = mpxt::kNoExitcode;
          if (rc == MPX_OK) rc = mpx_process_join(p, 10000);
          if (rc == MPX_OK) mpx_process_exitcode(p, &got);
          if (p != nullptr) {
            int alive = 0;
            if (mpx_process_is_alive(p, &alive) == MPX_OK && alive) {
              mpx_process_kill(p);
              mpx_process_join(p, 5000);
            }
            mpx_process_destroy(p);
          }
          if (rc != MPX_OK || got != code) {
            std::lock_guard<std::mutex> g(first_mu);
            if (bad++ == 0)
              first = "thread " + std::to_string(t) + " child " + std::to_string(i) + ": " + mpxt::code_str(rc) +
                      ", exit code " + std::to_string(got) + " instead of " + std::to_string(code);
          }
        }
      });
    go = 1;
    for (auto &t : ts) t.join();
    EXPECT_EQ(bad.load(), 0) << m.name << ": " << first;
  }
}

// ---- a thousand children in a row ------------------------------------------------------------------

TEST(ProcessMany, AThousandShortForkChildrenLeaveNothingBehind) {
  const int fds = mpxt::count_fds();
  const int kids = mpxt::count_children();
  mpxt::Stopwatch sw;
  int bad = 0;
  std::string first;
  for (int i = 0; i < 1000; ++i) {
    auto o = mpxt::process_options(MPX_START_FORK);
    o.fn = mpxt::behave_fn;
    o.arg = mpxt::behave_arg(mpxt::kReturn);
    mpx_process *p = nullptr;
    int rc = mpx_process_create(&p, &o);
    if (rc == MPX_OK) rc = mpx_process_start(p);
    if (rc == MPX_OK) rc = mpx_process_join(p, 10000);
    int code = mpxt::kNoExitcode;
    if (rc == MPX_OK) mpx_process_exitcode(p, &code);
    if (p != nullptr) mpx_process_destroy(p);
    if ((rc != MPX_OK || code != 0) && bad++ == 0)
      first = "child " + std::to_string(i) + ": " + mpxt::code_str(rc) + ", exit code " + std::to_string(code);
  }
  EXPECT_EQ(bad, 0) << first;
  EXPECT_EQ(mpxt::count_fds(), fds) << "fds leaked";
  EXPECT_EQ(mpxt::count_children(), kids) << "children (zombies included) left behind";
  EXPECT_FALSE(mpxt::has_waitable_child()) << "a zombie is left";
  std::printf("[ info ] 1000 fork children in a row: %lld ms\n", static_cast<long long>(sw.ms()));
}
