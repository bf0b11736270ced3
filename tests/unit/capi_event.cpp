// Event across processes (SCENARIOS.md 28).
#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "support/mpx_helpers.hpp"

using namespace std::chrono_literals;

namespace {

int is_set(mpx_event *e) {
  int v = -1;
  EXPECT_MPX_OK(mpx_event_is_set(e, &v));
  return v;
}

}  // namespace

TEST(EventState, SetClearIsSet) {
  auto e = mpxt::make_event();
  EXPECT_EQ(is_set(e.get()), 0);
  EXPECT_MPX_OK(mpx_event_set(e.get()));
  EXPECT_EQ(is_set(e.get()), 1);
  EXPECT_MPX_OK(mpx_event_set(e.get()));
  EXPECT_EQ(is_set(e.get()), 1) << "set is idempotent";
  EXPECT_MPX_OK(mpx_event_clear(e.get()));
  EXPECT_EQ(is_set(e.get()), 0);
  EXPECT_MPX_OK(mpx_event_clear(e.get()));
  EXPECT_EQ(is_set(e.get()), 0);
}

TEST(EventState, VisibleAcrossProcesses) {
  auto e = mpxt::make_event();
  auto st = mpxt::run_in_child([&] {
    CHILD_MPX_OK(mpx_event_set(e.get()));
    return 0;
  });
  EXPECT_TRUE(st.ok());
  EXPECT_EQ(is_set(e.get()), 1);
  st = mpxt::run_in_child([&] {
    int v = -1;
    CHILD_MPX_OK(mpx_event_is_set(e.get(), &v));
    CHILD_CHECK_EQ(v, 1);
    CHILD_MPX_OK(mpx_event_clear(e.get()));
    return 0;
  });
  EXPECT_TRUE(st.ok());
  EXPECT_EQ(is_set(e.get()), 0);
}

TEST(EventWait, ReturnsAtOnceWhenSet) {
  auto e = mpxt::make_event();
  ASSERT_MPX_OK(mpx_event_set(e.get()));
  mpxt::Stopwatch sw;
  EXPECT_MPX_OK(mpx_event_wait(e.get(), 0));
  EXPECT_MPX_OK(mpx_event_wait(e.get(), 1000));
  EXPECT_MPX_OK(mpx_event_wait(e.get(), -1));
  EXPECT_LT(sw.ms(), 20);
}

TEST(EventWait, TimesOutAfterTheTimeoutOnAnUnsetEvent) {
  auto e = mpxt::make_event();
  for (int64_t t : {0, 10, 100, 250})
    EXPECT_TRUE(mpxt::TimesOutWithin(t, [&] { return mpx_event_wait(e.get(), t); })) << "timeout " << t;
}

TEST(EventWait, WokenBySetInAnotherProcess) {
  auto e = mpxt::make_event();
  mpxt::Child setter = mpxt::Child::fork([&] {
    mpxt::sleep_ms(150);
    CHILD_MPX_OK(mpx_event_set(e.get()));
    return 0;
  });
  mpxt::Stopwatch sw;
  EXPECT_MPX_OK(mpx_event_wait(e.get(), 5000));
  EXPECT_GE(sw.ms(), 100);
  EXPECT_LT(sw.ms(), 150 + 500);
  EXPECT_TRUE(setter.wait().ok());
}

TEST(EventWait, HundredWaitingProcessesAllWakeOnOneSet) {
  auto e = mpxt::make_event();
  mpxt::Shared<std::atomic<int>> waiting(0), woken(0);
  std::vector<mpxt::Child> kids;
  for (int i = 0; i < 100; ++i)
    kids.push_back(mpxt::Child::fork([&] {
      waiting->fetch_add(1);
      CHILD_MPX_OK(mpx_event_wait(e.get(), 20000));
      woken->fetch_add(1);
      return 0;
    }));
  mpxt::Stopwatch sw;
  while (waiting->load() < 100 && sw.ms() < 20000) mpxt::sleep_ms(5);
  ASSERT_EQ(waiting->load(), 100);
  mpxt::sleep_ms(200);  // let the last ones go to sleep
  EXPECT_EQ(woken->load(), 0);
  sw.restart();
  ASSERT_MPX_OK(mpx_event_set(e.get()));
  int failed = 0;
  for (auto &k : kids) failed += k.wait(10000ms).ok() ? 0 : 1;
  EXPECT_EQ(failed, 0);
  EXPECT_EQ(woken->load(), 100);
  EXPECT_LT(sw.ms(), 3000) << "all 100 should wake promptly on one set";
}

TEST(EventWait, ClearAfterSetMakesWaitsBlockAgain) {
  auto e = mpxt::make_event();
  ASSERT_MPX_OK(mpx_event_set(e.get()));
  ASSERT_MPX_OK(mpx_event_clear(e.get()));
  auto st = mpxt::run_in_child([&] {
    CHILD_MPX(MPX_ETIMEDOUT, mpx_event_wait(e.get(), 50));
    return 0;
  });
  EXPECT_TRUE(st.ok()) << st.describe();
}

TEST(EventWait, ThreadsAndProcessesWakeTogether) {
  auto e = mpxt::make_event();
  std::atomic<int> thread_ok{0};
  std::vector<std::thread> ts;
  for (int i = 0; i < 4; ++i) ts.emplace_back([&] { thread_ok += mpx_event_wait(e.get(), 5000) == MPX_OK; });
  mpxt::Child proc = mpxt::Child::fork([&] {
    CHILD_MPX_OK(mpx_event_wait(e.get(), 5000));
    return 0;
  });
  mpxt::sleep_ms(150);
  ASSERT_MPX_OK(mpx_event_set(e.get()));
  for (auto &t : ts) t.join();
  EXPECT_EQ(thread_ok.load(), 4);
  EXPECT_TRUE(proc.wait().ok());
}

TEST(EventWait, AWaiterKilledWhileWaitingDoesNotDisturbTheOthers) {
  auto e = mpxt::make_event();
  mpxt::Child doomed = mpxt::Child::fork([&] {
    mpx_event_wait(e.get(), -1);
    return 0;
  });
  mpxt::Child other = mpxt::Child::fork([&] {
    CHILD_MPX_OK(mpx_event_wait(e.get(), 5000));
    return 0;
  });
  mpxt::sleep_ms(150);
  doomed.kill_and_wait(SIGKILL);
  ASSERT_MPX_OK(mpx_event_set(e.get()));
  EXPECT_TRUE(other.wait(5000ms).ok());
  EXPECT_MPX_OK(mpx_event_clear(e.get()));
  EXPECT_MPX(MPX_ETIMEDOUT, mpx_event_wait(e.get(), 10));
}

TEST(EventToken, AttachInAForkedChild) {
  auto e = mpxt::make_event();
  std::string tok = mpxt::token_of(mpx_event_token, e.get());
  ASSERT_FALSE(tok.empty());
  mpx_event *inherited = e.get();
  auto st = mpxt::run_in_child([&] {
    CHILD_MPX_OK(mpx_event_destroy(inherited));
    mpx_event *a = nullptr;
    CHILD_MPX_OK(mpx_event_attach(&a, tok.c_str()));
    CHILD_MPX_OK(mpx_event_set(a));
    CHILD_MPX_OK(mpx_event_destroy(a));
    return 0;
  });
  EXPECT_TRUE(st.ok()) << st.describe();
  EXPECT_EQ(is_set(e.get()), 1);
}

MPXT_HELPER(event_setter) {
  if (args.size() != 1) return 2;
  mpx_event *e = nullptr;
  CHILD_MPX_OK(mpx_event_attach(&e, args[0].c_str()));
  CHILD_MPX_OK(mpx_event_set(e));
  CHILD_MPX_OK(mpx_event_destroy(e));
  return 0;
}

TEST(EventToken, AttachInAnExecedProcessWakesAWaiter) {
  auto e = mpxt::make_event();
  std::string tok = mpxt::token_of(mpx_event_token, e.get());
  auto c = mpxt::Child::exec_helper("event_setter", {tok});
  EXPECT_MPX_OK(mpx_event_wait(e.get(), 10000));
  auto st = c.wait(10000ms);
  EXPECT_TRUE(st.ok()) << st.describe();
}

MPXT_HELPER(event_attach_after_creator_exit) {
  // args: token, fd of a pipe to report on. Attaches once the creator (our parent) has exited,
  // through the descriptor inherited across exec.
  if (args.size() != 2) return 2;
  const int report = std::stoi(args[1]);
  mpxt::sleep_ms(300);  // the creator is gone by now
  mpx_event *e = nullptr;
  int rc = mpx_event_attach(&e, args[0].c_str());
  if (rc == MPX_OK) {
    rc = mpx_event_set(e);
    int v = 0;
    if (rc == MPX_OK) rc = mpx_event_is_set(e, &v);
    if (rc == MPX_OK && v != 1) rc = MPX_ECORRUPT;
    mpx_event_destroy(e);
  }
  signed char out = static_cast<signed char>(rc);
  if (write(report, &out, 1) != 1) return 3;
  return 0;
}

TEST(EventToken, AnonymousObjectAttachesThroughAnInheritedDescriptorAfterItsCreatorExited) {
  // sync.h/segment.h: a token attaches an anonymous object while its creator lives *or the
  // process holds the inherited descriptor*. The creator execs a helper that keeps the
  // segment's descriptor, then exits at once; the helper attaches afterwards.
  int fds[2];
  ASSERT_EQ(pipe2(fds, O_CLOEXEC), 0);
  auto st = mpxt::run_in_child([&]() -> int {
    mpx_event *e = nullptr;
    CHILD_MPX_OK(mpx_event_create(&e));
    std::string tok = mpxt::token_of(mpx_event_token, e);
    // "mpx1:a:<pid>:<fd>:<ino>:<offset>"
    CHILD_CHECK(tok.rfind("mpx1:a:", 0) == 0);
    size_t p1 = tok.find(':', 7), p2 = tok.find(':', p1 + 1);
    const int seg_fd = std::stoi(tok.substr(p1 + 1, p2 - p1 - 1));
    auto helper = mpxt::Child::exec_helper("event_attach_after_creator_exit", {tok, std::to_string(fds[1])},
                                           {seg_fd, fds[1]});
    CHILD_CHECK(helper.valid());
    _exit(0);  // the creator exits without waiting (the helper is reparented)
  });
  ASSERT_TRUE(st.ok()) << st.describe();
  close(fds[1]);
  signed char rc = 127;
  pollfd p{fds[0], POLLIN, 0};
  ASSERT_EQ(poll(&p, 1, 10000), 1) << "the helper never reported";
  ASSERT_EQ(read(fds[0], &rc, 1), 1);
  close(fds[0]);
  EXPECT_MPX(MPX_OK, static_cast<int>(rc));
  mpxt::sleep_ms(50);  // let the helper exit (it is init's child now, not ours)
}
