// mpx::Process, the C++ RAII class over the process C API (include/mpx/mpx.hpp): a callable
// run in a forked child, options and spawn, the life cycle, errors as mpx::error, moves, and a
// destructor that never signals a running child.
#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "mpx/mpx.hpp"
#include "support/process_helpers.hpp"

using namespace std::chrono_literals;
using mpxt::Millis;

namespace {

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

}  // namespace

TEST(ProcessCpp, ForksACallableThatSeesTheParentsMemory) {
  mpxt::Shared<std::atomic<int>> seen(0);
  const std::string captured = "captured by value";
  mpx::Process p([&seen, captured] { seen->store(static_cast<int>(captured.size())); });
  EXPECT_EQ(p.pid(), 0);
  EXPECT_FALSE(p.exitcode().has_value());
  p.start();
  EXPECT_GT(p.pid(), 0);
  EXPECT_TRUE(p.join(10s));
  EXPECT_EQ(p.exitcode(), std::optional<int>(0));
  EXPECT_EQ(seen->load(), static_cast<int>(captured.size()));
}

TEST(ProcessCpp, ATargetThatThrowsExitsWithOne) {
  mpx::Process p([] { throw std::runtime_error("boom"); });
  p.start();
  EXPECT_TRUE(p.join(10s));
  EXPECT_EQ(p.exitcode(), std::optional<int>(1));
  mpx::Process q([] { throw 42; });
  q.start();
  EXPECT_TRUE(q.join(10s));
  EXPECT_EQ(q.exitcode(), std::optional<int>(1));
}

TEST(ProcessCpp, ExitAndSignalsGiveTheirCodes) {
  mpx::Process e([] { ::_exit(9); });
  e.start();
  e.join();
  EXPECT_EQ(e.exitcode(), std::optional<int>(9));

  mpx::Process p([] { mpxt::block_forever(); });
  p.start();
  EXPECT_TRUE(p.is_alive());
  EXPECT_FALSE(p.join(mpx::try_once));
  EXPECT_FALSE(p.join(50ms));
  EXPECT_FALSE(p.exitcode().has_value()) << "nullopt while running";
  EXPECT_GE(p.sentinel(), 0);
  p.terminate();
  EXPECT_TRUE(p.join(5s));
  EXPECT_FALSE(p.is_alive());
  EXPECT_EQ(p.exitcode(), std::optional<int>(-SIGTERM));

  for (auto [send, sig] : std::vector<std::pair<void (*)(mpx::Process &), int>>{
           {[](mpx::Process &q) { q.kill(); }, SIGKILL},
           {[](mpx::Process &q) { q.interrupt(); }, SIGINT},
           {[](mpx::Process &q) { q.signal(SIGUSR1); }, SIGUSR1}}) {
    mpx::Process q([] { mpxt::block_forever(); });
    q.start();
    send(q);
    EXPECT_TRUE(q.join(5s));
    EXPECT_EQ(q.exitcode(), std::optional<int>(-sig));
  }
}

TEST(ProcessCpp, NameAndDaemonFlag) {
  mpx::Process p([] {});
  EXPECT_EQ(p.name().rfind("Process-", 0), 0u) << p.name();
  p.set_name("cpp-child");
  EXPECT_EQ(p.name(), "cpp-child");
  EXPECT_FALSE(p.daemon());
  p.set_daemon(true);
  EXPECT_TRUE(p.daemon());
  p.start();
  EXPECT_EQ(thrown_code([&] { p.set_daemon(false); }), MPX_EINVAL) << "after start";
  EXPECT_TRUE(p.join(10s));
  EXPECT_EQ(p.exitcode(), std::optional<int>(0));
}

TEST(ProcessCpp, StartTwiceAndCloseWhileRunningThrow) {
  mpx::Process p([] { mpxt::block_forever(); });
  p.start();
  EXPECT_EQ(thrown_code([&] { p.start(); }), MPX_EINVAL);
  try {
    p.close();
    ADD_FAILURE() << "close while running did not throw";
  } catch (const mpx::error &e) {
    EXPECT_EQ(e.code(), mpx::errc::again);
    EXPECT_EQ(e.code(), std::errc::resource_unavailable_try_again);
    EXPECT_STREQ(e.name(), "MPX_EAGAIN");
  }
  EXPECT_TRUE(p) << "a refused close keeps the object";
  p.kill();
  EXPECT_TRUE(p.join(5s));
  p.close();
  EXPECT_FALSE(p) << "closed";
  EXPECT_EQ(thrown_code([&] { (void)p.is_alive(); }), MPX_EINVAL) << "a closed Process holds no handle";
}

TEST(ProcessCpp, MovesKeepTheTargetAlive) {
  mpxt::Shared<std::atomic<int>> seen(0);
  std::vector<mpx::Process> procs;
  for (int i = 1; i <= 3; ++i) {
    std::string s(static_cast<size_t>(i) * 10, 'x');
    procs.emplace_back([&seen, s] { seen->fetch_add(static_cast<int>(s.size())); });
  }
  procs.reserve(64);  // moves every element
  mpx::Process moved = std::move(procs[0]);
  EXPECT_FALSE(procs[0]);
  mpx::Process assigned([] {});
  assigned = std::move(procs[1]);  // the old object is freed, the moved-in target kept
  for (auto *p : {&moved, &assigned, &procs[2]}) p->start();
  for (auto *p : {&moved, &assigned, &procs[2]}) {
    EXPECT_TRUE(p->join(10s));
    EXPECT_EQ(p->exitcode(), std::optional<int>(0));
  }
  EXPECT_EQ(seen->load(), 10 + 20 + 30);
}

TEST(ProcessCpp, DestroyingARunningProcessDoesNotSignalIt) {
  int64_t pid = 0;
  {
    mpx::Process p([] { mpxt::block_forever(); });
    p.start();
    pid = p.pid();
  }
  mpxt::sleep_ms(100);
  EXPECT_FALSE(mpxt::proc_dead(pid)) << "the destructor killed the child";
  kill(static_cast<pid_t>(pid), SIGKILL);
  // Reaped by the library (ProcessDestroy in capi_process checks how soon); wait for it.
  EXPECT_GE(mpxt::ms_until(
                [&] {
                  size_t none = 0;
                  mpx_active_children(nullptr, &none);
                  return mpxt::proc_state(pid) == 0;
                },
                3000ms),
            0);
}

TEST(ProcessCpp, SpawnAndOptions) {
  auto sh = mpx::Process::spawn("/bin/sh", {"sh", "-c", "exit 3"});
  sh.start();
  EXPECT_TRUE(sh.join(10s));
  EXPECT_EQ(sh.exitcode(), std::optional<int>(3));

  auto t = mpx::Process::spawn("true");
  t.start();
  EXPECT_TRUE(t.join(10s));
  EXPECT_EQ(t.exitcode(), std::optional<int>(0));

  mpxt::Argv argv{"x", "echo=from options"};
  auto o = mpxt::spawn_options(mpxt::kChildPlain, argv);
  mpx::Process p(o);
  p.start();
  EXPECT_EQ(mpxt::read_all(p.stdio(1)), "from options\n");
  EXPECT_TRUE(p.join(10s));
  EXPECT_EQ(p.exitcode(), std::optional<int>(0));

  mpxt::Argv cat{"x", "cat"};
  auto co = mpxt::spawn_options(mpxt::kChildPlain, cat);
  co.stdio[0].mode = MPX_STDIO_PIPE;
  mpx::Process c(co);
  c.start();
  mpxt::write_all(c.stdio(0), "piped");
  c.close_stdio(0);
  EXPECT_EQ(mpxt::read_all(c.stdio(1)), "piped");
  EXPECT_TRUE(c.join(10s));
}

TEST(ProcessCpp, FailuresAreMpxErrors) {
  auto p = mpx::Process::spawn("/nonexistent/mpxt/program");
  try {
    p.start();
    ADD_FAILURE() << "start did not throw";
  } catch (const mpx::error &e) {
    EXPECT_EQ(e.code(), mpx::errc::noent);
    EXPECT_EQ(e.code(), std::errc::no_such_file_or_directory);
    EXPECT_EQ(e.where(), "mpx::Process::start");
    EXPECT_FALSE(e.detail().empty());
  }
  mpx_process_options bad;
  mpx_process_options_init(&bad, sizeof bad);  // no target
  EXPECT_EQ(thrown_code([&] { mpx::Process q(bad); }), MPX_EINVAL);
  EXPECT_EQ(thrown_code([&] { (void)mpx::Process::adopt_child(getpid()); }) < 0, true);
}

TEST(ProcessCpp, AdoptAChildForkedByHand) {
  pid_t c = fork();
  if (c == 0) _exit(6);
  ASSERT_GT(c, 0);
  auto p = mpx::Process::adopt_child(c);
  EXPECT_EQ(p.pid(), c);
  EXPECT_TRUE(p.join(10s));
  EXPECT_EQ(p.exitcode(), std::optional<int>(6));
}

TEST(ProcessCpp, WhatTheTargetPrintsIsFlushed) {
  mpxt::Pipe pipe;
  std::fflush(nullptr);
  const int saved = dup(1);
  ASSERT_GE(saved, 0);
  ASSERT_EQ(dup2(pipe.write_end(), 1), 1);
  mpx::Process p([] { std::printf("no newline, still buffered"); });
  p.start();
  const bool joined = p.join(10s);
  dup2(saved, 1);
  close(saved);
  pipe.close_write();
  EXPECT_TRUE(joined);
  EXPECT_EQ(mpxt::read_all(pipe.read_end()), "no newline, still buffered");
}
