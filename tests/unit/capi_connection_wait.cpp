// mpx_wait over connections, process sentinels and raw descriptors (Python's
// multiprocessing.connection.wait): readiness, timeouts, wake-ups from other processes,
// signals, and bad input.
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include "support/conn_helpers.hpp"

using namespace std::chrono_literals;
using mpxt::ConnPtr;

namespace {

using ProcessPtr = std::unique_ptr<mpx_process, mpxt::Destroyer<mpx_process, mpx_process_destroy>>;

mpx_wait_object conn_obj(mpx_conn *c) { return mpx_wait_object{MPX_WAIT_CONN, -1, c, -1}; }
mpx_wait_object proc_obj(mpx_process *p) { return mpx_wait_object{MPX_WAIT_PROCESS, -1, p, -1}; }
mpx_wait_object fd_obj(int fd) { return mpx_wait_object{MPX_WAIT_FD, fd, nullptr, -1}; }

void sleep_then_exit(void *arg) {
  mpxt::sleep_ms(static_cast<int>(reinterpret_cast<intptr_t>(arg)));
  ::_exit(0);
}

// A forked child that exits after ms milliseconds.
ProcessPtr start_sleeper(int ms) {
  mpx_process_options o;
  mpx_process_options_init(&o, sizeof o);
  o.method = MPX_START_FORK;
  o.fn = sleep_then_exit;
  o.arg = reinterpret_cast<void *>(static_cast<intptr_t>(ms));
  mpx_process *p = nullptr;
  EXPECT_MPX_OK(mpx_process_create(&p, &o));
  EXPECT_MPX_OK(mpx_process_start(p));
  return ProcessPtr(p);
}

void finish(mpx_process *p) {
  mpx_process_kill(p);
  mpx_process_join(p, 5000);
}

struct Fds {
  int r = -1, w = -1;
  Fds() {
    int p[2];
    EXPECT_EQ(pipe2(p, O_CLOEXEC), 0);
    r = p[0];
    w = p[1];
  }
  ~Fds() {
    close(r);
    close(w);
  }
};

TEST(ConnWait, ReportsExactlyTheReadyObjects) {
  auto x = mpxt::make_pipe(true), y = mpxt::make_pipe(false);
  Fds raw;
  auto done = start_sleeper(0);
  ASSERT_MPX_OK(mpx_process_join(done.get(), 5000));
  auto running = start_sleeper(10000);
  ASSERT_MPX_OK(mpxt::send_str(x.b.get(), "ready"));
  mpx_wait_object objs[] = {conn_obj(x.a.get()), conn_obj(y.a.get()), fd_obj(raw.r), proc_obj(done.get()),
                            proc_obj(running.get()), conn_obj(x.b.get())};
  size_t n = 99;
  ASSERT_MPX_OK(mpx_wait(objs, std::size(objs), 1000, &n));
  EXPECT_EQ(n, 2u);
  const int expect[] = {1, 0, 0, 1, 0, 0};
  for (size_t i = 0; i < std::size(objs); ++i) EXPECT_EQ(objs[i].ready, expect[i]) << "object " << i;
  // Nothing is consumed.
  int rc;
  EXPECT_EQ(mpxt::recv_str(x.a.get(), &rc), "ready");
  // Now only the ended process; then the raw descriptor too.
  ASSERT_EQ(write(raw.w, "z", 1), 1);
  ASSERT_MPX_OK(mpx_wait(objs, std::size(objs), 0, &n));
  EXPECT_EQ(n, 2u);
  EXPECT_EQ(objs[0].ready, 0);
  EXPECT_EQ(objs[2].ready, 1);
  EXPECT_EQ(objs[3].ready, 1);
  ASSERT_MPX_OK(mpx_wait(objs, std::size(objs), 0, nullptr)) << "nready may be NULL";
  finish(running.get());
}

TEST(ConnWait, TimesOutWithinTheDeadline) {
  auto x = mpxt::make_pipe(true);
  Fds raw;
  auto running = start_sleeper(10000);
  mpx_wait_object objs[] = {conn_obj(x.a.get()), fd_obj(raw.r), proc_obj(running.get())};
  size_t n = 99;
  EXPECT_TRUE(mpxt::TimesOutWithin(100, [&] { return mpx_wait(objs, std::size(objs), 100, &n); }));
  EXPECT_EQ(n, 0u);
  for (auto &o : objs) EXPECT_EQ(o.ready, 0);
  EXPECT_MPX(MPX_ETIMEDOUT, mpx_wait(objs, std::size(objs), 0, &n));
  EXPECT_TRUE(mpxt::TimesOutWithin(60, [&] { return mpx_wait(nullptr, 0, 60, &n); })) << "nothing, with a timeout: a sleep";
  finish(running.get());
}

TEST(ConnWait, WakesWhenAnotherProcessSendsOrAChildEnds) {
  auto x = mpxt::make_pipe(true), y = mpxt::make_pipe(false);
  auto sender = mpxt::Child::fork([&] {
    mpxt::sleep_ms(50);
    CHILD_MPX_OK(mpxt::send_str(y.b.get(), "from a child"));
    return 0;
  });
  mpx_wait_object objs[] = {conn_obj(x.a.get()), conn_obj(y.a.get())};
  size_t n = 0;
  mpxt::Stopwatch sw;
  ASSERT_MPX_OK(mpx_wait(objs, 2, -1, &n));
  EXPECT_EQ(n, 1u);
  EXPECT_EQ(objs[1].ready, 1);
  EXPECT_LT(sw.ms(), 3000);
  EXPECT_TRUE(sender.wait().ok());

  auto ending = start_sleeper(50);
  mpx_wait_object p[] = {conn_obj(x.a.get()), proc_obj(ending.get())};
  sw.restart();
  ASSERT_MPX_OK(mpx_wait(p, 2, 5000, &n));
  EXPECT_EQ(p[1].ready, 1);
  EXPECT_EQ(p[0].ready, 0);
  EXPECT_GE(sw.ms(), 40);
  EXPECT_MPX_OK(mpx_process_join(ending.get(), 1000));
}

TEST(ConnWait, PendingBrokenAndEndedConnectionsAreReady) {
  auto pending = mpxt::make_pipe(true), broken = mpxt::make_pipe(true, 10), ended = mpxt::make_pipe(false);
  ASSERT_MPX_OK(mpxt::send_str(pending.b.get(), "too long for the buffer"));
  char small[4];
  size_t len;
  ASSERT_MPX(MPX_ENOBUFS, mpx_conn_recv_into(pending.a.get(), small, sizeof small, &len, 1000));
  ASSERT_MPX_OK(mpxt::send_str(broken.b.get(), "longer than ten bytes"));
  int rc;
  mpxt::recv_vec(broken.a.get(), &rc, 1000);
  ASSERT_MPX(MPX_EMSGSIZE, rc);
  ended.b.reset();
  mpx_wait_object objs[] = {conn_obj(pending.a.get()), conn_obj(broken.a.get()), conn_obj(ended.a.get())};
  size_t n = 0;
  ASSERT_MPX_OK(mpx_wait(objs, 3, -1, &n));  // returns at once
  EXPECT_EQ(n, 3u);
}

std::atomic<int> g_signals{0};
void on_usr1(int) { g_signals.fetch_add(1); }

TEST(ConnWait, SignalsDoNotShortenTheTimeout) {
  struct sigaction sa {}, old {};
  sa.sa_handler = on_usr1;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGUSR1, &sa, &old);  // no SA_RESTART
  auto x = mpxt::make_pipe(true);
  mpx_wait_object objs[] = {conn_obj(x.a.get())};
  std::atomic<bool> stop{false};
  EXPECT_TRUE(mpxt::TimesOutWithin(200, [&] {
    stop = false;
    std::thread storm([&, self = pthread_self()] {
      while (!stop.load()) {
        pthread_kill(self, SIGUSR1);
        mpxt::sleep_ms(2);
      }
    });
    const int rc = mpx_wait(objs, 1, 200, nullptr);
    stop = true;
    storm.join();
    return rc;
  }));
  sigaction(SIGUSR1, &old, nullptr);
  EXPECT_GT(g_signals.load(), 0);
}

TEST(ConnWait, BadInput) {
  auto x = mpxt::make_pipe(false);
  size_t n = 7;
  EXPECT_MPX(MPX_EINVAL, mpx_wait(nullptr, 1, 0, &n));
  EXPECT_EQ(n, 0u);
  EXPECT_MPX(MPX_EINVAL, mpx_wait(nullptr, 0, -1, &n)) << "nothing to wait for, forever";
  mpx_wait_object bad_kind{42, -1, nullptr, 0};
  EXPECT_MPX(MPX_EINVAL, mpx_wait(&bad_kind, 1, 0, &n));
  mpx_wait_object neg_fd = fd_obj(-1);
  EXPECT_MPX(MPX_EINVAL, mpx_wait(&neg_fd, 1, 0, &n));
  int closed_fd;
  {
    Fds f;
    closed_fd = f.r;
  }
  mpx_wait_object gone = fd_obj(closed_fd);
  EXPECT_MPX(MPX_EINVAL, mpx_wait(&gone, 1, 0, &n));
  mpx_wait_object null_conn = conn_obj(nullptr);
  EXPECT_MPX(MPX_EINVAL, mpx_wait(&null_conn, 1, 0, &n));
  mpx_wait_object write_end = conn_obj(x.b.get());
  EXPECT_MPX(MPX_EPERM, mpx_wait(&write_end, 1, 0, &n)) << "a sending end never becomes readable";
  mpx_wait_object wrong_type = proc_obj(reinterpret_cast<mpx_process *>(x.a.get()));
  EXPECT_MPX(MPX_EBADHANDLE, mpx_wait(&wrong_type, 1, 0, &n));
  mpx_conn *stale = x.a.release();
  mpx_conn_destroy(stale);
  mpx_wait_object dead = conn_obj(stale);
  EXPECT_MPX(MPX_EBADHANDLE, mpx_wait(&dead, 1, 0, &n));
  mpx_process_options o;
  mpx_process_options_init(&o, sizeof o);
  o.method = MPX_START_FORK;
  o.fn = sleep_then_exit;
  mpx_process *p = nullptr;
  ASSERT_MPX_OK(mpx_process_create(&p, &o));
  ProcessPtr guard(p);
  mpx_wait_object unstarted = proc_obj(p);
  EXPECT_MPX(MPX_EINVAL, mpx_wait(&unstarted, 1, 0, &n)) << "not started: no sentinel yet";
}

}  // namespace
