// Connections when the peer misbehaves or the process is disturbed: a peer killed in the
// middle of a message (SCENARIOS.md 9), hostile lengths (10), signals during blocking calls
// (13), writing to a closed reader (14), and destroy from another thread while a call is
// blocked (48, 50).
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <thread>

#include "support/conn_helpers.hpp"

using namespace std::chrono_literals;
using mpxt::ConnPtr;
using mpxt::Millis;

namespace {

// Both kinds of pair: (duplex socketpair, one-way pipe).
constexpr bool kKinds[] = {true, false};

const char *kind_name(bool duplex) { return duplex ? "socketpair" : "pipe"; }

// A child that owns the only other copy of p.b writes `raw` through its descriptor, says so,
// and waits to be SIGKILLed; the parent then receives on p.a.
void peer_dies_after(mpxt::ConnPair &p, const std::vector<uint8_t> &raw) {
  mpxt::Rendezvous wrote;
  auto child = mpxt::Child::fork([&]() -> int {
    p.a.reset();
    CHILD_CHECK(mpxt::write_raw(mpxt::fileno_of(p.b.get()), raw.data(), raw.size()));
    wrote.notify();
    return mpxt::Rendezvous::hang();
  });
  p.b.reset();  // the child's copy is the last writer
  EXPECT_TRUE(mpxt::kill_at_rendezvous(child, wrote).killed_by(SIGKILL));
}

std::vector<uint8_t> concat(std::vector<uint8_t> a, const std::vector<uint8_t> &b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// SCENARIOS.md 9: killed after the header only, or within the payload, or within a header.
TEST(ConnTruncated, PeerKilledMidMessageIsProtocolErrorAndSticky) {
  for (bool duplex : kKinds) {
    SCOPED_TRACE(kind_name(duplex));
    const auto long_head = mpxt::frame_header(5, true);
    const std::vector<std::vector<uint8_t>> cuts = {
        mpxt::frame_header(1000),                                    // the header only
        concat(mpxt::frame_header(1000), mpxt::pattern(10)),         // part of the payload
        {0, 0},                                                      // half a header
        long_head,                                                   // the long form, no payload
        std::vector<uint8_t>(long_head.begin(), long_head.begin() + 6),  // within the long form
    };
    for (size_t i = 0; i < cuts.size(); ++i) {
      SCOPED_TRACE("cut " + std::to_string(i));
      auto p = mpxt::make_pipe(duplex);
      peer_dies_after(p, cuts[i]);
      void *data = reinterpret_cast<void *>(1);
      size_t len = 7;
      EXPECT_MPX(MPX_EPROTO, mpx_conn_recv(p.a.get(), 0, &data, &len, 1000));
      EXPECT_EQ(data, nullptr) << "no partial message is returned";
      EXPECT_EQ(len, 0u);
      EXPECT_NE(std::string(mpx_last_error_message()).find("truncated"), std::string::npos) << mpx_last_error_message();
      int rc;
      mpxt::recv_vec(p.a.get(), &rc, 0);
      EXPECT_MPX(MPX_EPROTO, rc) << "sticky";
      char buf[2000];
      EXPECT_MPX(MPX_EPROTO, mpx_conn_recv_into(p.a.get(), buf, sizeof buf, &len, -1));
      EXPECT_MPX_OK(mpx_conn_poll(p.a.get(), 0)) << "broken: a receive returns at once";
    }
  }
}

TEST(ConnTruncated, TimedReceiveOfATruncatedMessageIsProtocolErrorNotTimeout) {
  auto p = mpxt::make_pipe(true);
  peer_dies_after(p, mpxt::frame_header(100));
  int rc;
  mpxt::recv_vec(p.a.get(), &rc, 50);
  EXPECT_MPX(MPX_EPROTO, rc);
}

TEST(ConnTruncated, CompleteMessagesBeforeTheCutAreDelivered) {
  auto p = mpxt::make_pipe(true);
  auto raw = concat(concat(mpxt::frame_header(3), {'a', 'b', 'c'}), mpxt::frame_header(50));
  peer_dies_after(p, raw);
  int rc;
  EXPECT_EQ(mpxt::recv_str(p.a.get(), &rc), "abc");
  EXPECT_MPX_OK(rc);
  mpxt::recv_vec(p.a.get(), &rc);
  EXPECT_MPX(MPX_EPROTO, rc);
}

size_t rss_bytes() {
  std::ifstream in("/proc/self/statm");
  size_t total = 0, resident = 0;
  in >> total >> resident;
  return resident * static_cast<size_t>(sysconf(_SC_PAGESIZE));
}

// SCENARIOS.md 10: refused before allocating, and the connection is broken.
TEST(ConnHostile, LengthsOverTheLimitAreRefusedBeforeAllocating) {
  struct Case {
    const char *what;
    uint64_t max_message;
    std::vector<uint8_t> header;
  };
  const Case cases[] = {
      {"over max_message", 1 << 20, mpxt::frame_header((1 << 20) + 1)},
      {"2^63 in the long form", 0, mpxt::frame_header(uint64_t(1) << 63, true)},
      {"2^64-1 in the long form", 0, mpxt::frame_header(UINT64_MAX, true)},
      {"16 GiB + 1 in the long form", 0, mpxt::frame_header(MPX_CONN_DEFAULT_MAX_MESSAGE + 1, true)},
      {"2 GiB - 1 with a 1 MiB limit", 1 << 20, mpxt::frame_header(0x7fffffff)},
  };
  for (bool duplex : kKinds) {
    for (const Case &c : cases) {
      SCOPED_TRACE(std::string(kind_name(duplex)) + ": " + c.what);
      auto p = mpxt::make_pipe(duplex, c.max_message);
      ASSERT_TRUE(mpxt::write_raw(mpxt::fileno_of(p.b.get()), c.header.data(), c.header.size()));
      ASSERT_MPX_OK(mpxt::send_str(p.b.get(), "never read"));
      const size_t before = rss_bytes();
      int rc;
      mpxt::recv_vec(p.a.get(), &rc, 1000);
      EXPECT_MPX(MPX_EMSGSIZE, rc);
      EXPECT_LT(rss_bytes(), before + (1 << 20)) << "RSS grew by a megabyte or more";
      mpxt::recv_vec(p.a.get(), &rc, 1000);
      EXPECT_MPX(MPX_EMSGSIZE, rc) << "the connection stays broken";
      char buf[16];
      size_t len;
      EXPECT_MPX(MPX_EMSGSIZE, mpx_conn_recv_into(p.a.get(), buf, sizeof buf, &len, 0));
    }
  }
}

TEST(ConnHostile, NegativeLengthIsAProtocolError) {
  auto p = mpxt::make_pipe(true);
  const uint8_t minus_five[4] = {0xff, 0xff, 0xff, 0xfb};
  ASSERT_TRUE(mpxt::write_raw(mpxt::fileno_of(p.b.get()), minus_five, 4));
  int rc;
  mpxt::recv_vec(p.a.get(), &rc, 1000);
  EXPECT_MPX(MPX_EPROTO, rc);
  mpxt::recv_vec(p.a.get(), &rc, 1000);
  EXPECT_MPX(MPX_EPROTO, rc);
}

TEST(ConnHostile, LongFormOfASmallLengthIsAccepted) {
  // Python only writes the long form above 2 GiB but reads it for any length.
  auto p = mpxt::make_pipe(true);
  auto raw = concat(mpxt::frame_header(5, true), {'h', 'e', 'l', 'l', 'o'});
  ASSERT_TRUE(mpxt::write_raw(mpxt::fileno_of(p.b.get()), raw.data(), raw.size()));
  int rc;
  EXPECT_EQ(mpxt::recv_str(p.a.get(), &rc), "hello");
  EXPECT_MPX_OK(rc);
}

// ---- signals ----------------------------------------------------------------------------

std::atomic<int> g_usr1{0};
void count_usr1(int) { g_usr1.fetch_add(1); }

// SIGUSR1 with a handler and without SA_RESTART for the test's duration: every signal
// interrupts the system call it lands in.
class Usr1Handler {
 public:
  Usr1Handler() {
    struct sigaction sa {};
    sa.sa_handler = count_usr1;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;
    sigaction(SIGUSR1, &sa, &old_);
    g_usr1.store(0);
  }
  ~Usr1Handler() { sigaction(SIGUSR1, &old_, nullptr); }

 private:
  struct sigaction old_ {};
};

// Send n SIGUSR1 to thread t, one every `gap`.
void pelt(pthread_t t, int n, std::chrono::microseconds gap) {
  for (int i = 0; i < n; ++i) {
    pthread_kill(t, SIGUSR1);
    std::this_thread::sleep_for(gap);
  }
}

// SCENARIOS.md 13, the send: 4x the pipe's capacity, while the reader starts late.
TEST(ConnSignals, BlockingSendCompletesThroughSignals) {
  Usr1Handler h;
  for (bool duplex : kKinds) {
    SCOPED_TRACE(kind_name(duplex));
    auto p = mpxt::make_pipe(duplex);
    int capacity = duplex ? 0 : fcntl(mpxt::fileno_of(p.b.get()), F_GETPIPE_SZ);
    if (duplex) {
      socklen_t l = sizeof capacity;
      getsockopt(mpxt::fileno_of(p.b.get()), SOL_SOCKET, SO_SNDBUF, &capacity, &l);
    }
    ASSERT_GT(capacity, 0);
    const auto msg = mpxt::pattern(4 * size_t(capacity), 13);
    std::atomic<int> rc{INT32_MIN};
    std::atomic<bool> done{false};
    std::thread sender([&] {
      rc = mpxt::send_vec(p.b.get(), msg);
      done = true;
    });
    const int before = g_usr1.load();
    pelt(sender.native_handle(), 100, 1ms);  // the sender is blocked: nobody reads yet
    EXPECT_FALSE(done.load());
    int r;
    auto got = mpxt::recv_vec(p.a.get(), &r, 10000);
    sender.join();
    EXPECT_MPX_OK(rc.load());
    EXPECT_MPX_OK(r);
    EXPECT_TRUE(got == msg);
    EXPECT_GE(g_usr1.load() - before, 50) << "the signals were delivered";
  }
}

// SCENARIOS.md 13, the timed receive: it ends within deadline + 50 ms, without EINTR.
// SIGUSR1 to thread t every `gap` until destroyed.
class Storm {
 public:
  Storm(pthread_t t, std::chrono::microseconds gap)
      : thread_([this, t, gap] {
          while (!stop_.load()) {
            pthread_kill(t, SIGUSR1);
            sent_.fetch_add(1);
            std::this_thread::sleep_for(gap);
          }
        }) {}
  ~Storm() {
    stop_ = true;
    thread_.join();
  }
  int sent() const { return sent_.load(); }

 private:
  std::atomic<bool> stop_{false};
  std::atomic<int> sent_{0};
  std::thread thread_;
};

TEST(ConnSignals, TimedReceiveKeepsItsDeadlineThroughSignals) {
  Usr1Handler h;
  for (bool duplex : kKinds) {
    SCOPED_TRACE(kind_name(duplex));
    auto p = mpxt::make_pipe(duplex);
    int sent = 0;
    EXPECT_TRUE(mpxt::TimesOutWithin(300, [&] {
      Storm storm(pthread_self(), 3ms);  // about 100 signals
      int r;
      mpxt::recv_vec(p.a.get(), &r, 300);
      sent = storm.sent();
      return r;
    }));
    EXPECT_GE(sent, 50);
  }
  auto p = mpxt::make_pipe(true);

  // And a message that arrives during the storm is received whole.
  const auto msg = mpxt::pattern(200000, 5);
  std::thread late_receiver([&] {
    int r;
    auto got = mpxt::recv_vec(p.a.get(), &r, 5000);
    EXPECT_MPX_OK(r);
    EXPECT_TRUE(got == msg);
  });
  std::thread storm([&] { pelt(late_receiver.native_handle(), 100, 1ms); });
  mpxt::sleep_ms(30);
  EXPECT_MPX_OK(mpxt::send_vec(p.b.get(), msg));
  storm.join();
  late_receiver.join();
}

// SCENARIOS.md 14: in a child (SIGPIPE at SIG_DFL would kill the test binary otherwise).
TEST(ConnSigpipe, WriteAfterTheReaderClosedIsEpipeAndTheProcessSurvives) {
  for (bool duplex : kKinds) {
    for (bool pre_blocked : {false, true}) {
      SCOPED_TRACE(std::string(kind_name(duplex)) + (pre_blocked ? ", SIGPIPE blocked by the caller" : ""));
      auto st = mpxt::run_in_child([&] {
        signal(SIGPIPE, SIG_DFL);
        sigset_t pipe_set;
        sigemptyset(&pipe_set);
        sigaddset(&pipe_set, SIGPIPE);
        if (pre_blocked) pthread_sigmask(SIG_BLOCK, &pipe_set, nullptr);
        sigset_t mask_before;
        pthread_sigmask(SIG_SETMASK, nullptr, &mask_before);
        auto p = mpxt::make_pipe(duplex);
        p.a.reset();
        CHILD_MPX(MPX_EPIPE, mpxt::send_str(p.b.get(), "nobody listens"));
        CHILD_MPX(MPX_EPIPE, mpxt::send_vec(p.b.get(), mpxt::pattern(1 << 20)));
        CHILD_MPX(MPX_EPIPE, mpxt::send_str(p.b.get(), ""));
        struct sigaction now {};
        sigaction(SIGPIPE, nullptr, &now);
        CHILD_CHECK(now.sa_handler == SIG_DFL);
        sigset_t mask_after, pending;
        pthread_sigmask(SIG_SETMASK, nullptr, &mask_after);
        CHILD_CHECK(sigismember(&mask_after, SIGPIPE) == sigismember(&mask_before, SIGPIPE));
        CHILD_CHECK(sigismember(&mask_after, SIGUSR1) == sigismember(&mask_before, SIGUSR1));
        sigpending(&pending);
        CHILD_CHECK(!sigismember(&pending, SIGPIPE));
        return 0;
      });
      EXPECT_TRUE(st.ok()) << st.describe();
    }
  }
}

TEST(ConnSigpipe, ReaderClosingDuringALargeSendIsEpipe) {
  for (bool duplex : kKinds) {
    SCOPED_TRACE(kind_name(duplex));
    auto st = mpxt::run_in_child([&] {
      signal(SIGPIPE, SIG_DFL);
      auto p = mpxt::make_pipe(duplex);
      // The reader is another process that goes away while the send is under way (a
      // process, not a thread: ThreadSanitizer mistrusts threads in forked children).
      auto reader = mpxt::Child::fork([&] {
        p.b.reset();
        mpxt::sleep_ms(50);
        return 0;
      });
      p.a.reset();
      const int rc = mpxt::send_vec(p.b.get(), mpxt::pattern(8 << 20));
      CHILD_CHECK(reader.wait().ok());
      CHILD_MPX(MPX_EPIPE, rc);
      return 0;
    });
    EXPECT_TRUE(st.ok()) << st.describe();
  }
}

// ---- destroy while blocked (SCENARIOS.md 48) ----------------------------------------------

// Run `call` on a thread, destroy the connection once it is blocked, expect MPX_ECLOSED
// promptly (well before any timeout the call has; the bound leaves room for a loaded machine).
void expect_closed_by_destroy(mpx_conn *c, const std::function<int()> &call) {
  std::atomic<int> rc{INT32_MIN};
  std::atomic<pid_t> tid{0};
  std::thread t([&] {
    tid = mpxt::thread_id();
    rc = call();
  });
  while (tid.load() == 0) std::this_thread::yield();
  EXPECT_TRUE(mpxt::asleep(tid.load()));
  mpxt::sleep_ms(10);
  EXPECT_EQ(rc.load(), INT32_MIN) << "the call did not block";
  mpxt::Stopwatch sw;
  EXPECT_MPX_OK(mpx_conn_destroy(c));
  t.join();
  EXPECT_LT(sw.ms(), 300);
  EXPECT_MPX(MPX_ECLOSED, rc.load());
}

TEST(ConnDestroy, WakesABlockedReceiveOrPoll) {
  for (bool duplex : kKinds) {
    for (int64_t timeout : {int64_t(-1), int64_t(10000), INT64_MAX}) {
      SCOPED_TRACE(std::string(kind_name(duplex)) + ", timeout " + std::to_string(timeout));
      {
        auto p = mpxt::make_pipe(duplex);
        mpx_conn *a = p.a.release();
        expect_closed_by_destroy(a, [&] {
          int rc;
          mpxt::recv_vec(a, &rc, timeout);
          return rc;
        });
      }
      {
        auto p = mpxt::make_pipe(duplex);
        mpx_conn *a = p.a.release();
        expect_closed_by_destroy(a, [&] {
          char buf[8];
          size_t len;
          return mpx_conn_recv_into(a, buf, sizeof buf, &len, timeout);
        });
      }
      {
        auto p = mpxt::make_pipe(duplex);
        mpx_conn *a = p.a.release();
        expect_closed_by_destroy(a, [&] { return mpx_conn_poll(a, timeout); });
      }
    }
  }
}

TEST(ConnDestroy, WakesAReceiveBlockedInTheMiddleOfAMessage) {
  auto p = mpxt::make_pipe(true);
  auto head = mpxt::frame_header(100);
  ASSERT_TRUE(mpxt::write_raw(mpxt::fileno_of(p.b.get()), head.data(), head.size()));
  mpx_conn *a = p.a.release();
  expect_closed_by_destroy(a, [&] {
    int rc;
    mpxt::recv_vec(a, &rc, 10);  // past its timeout: it has the header and waits for the rest
    return rc;
  });
}

TEST(ConnDestroy, WakesABlockedSend) {
  for (bool duplex : kKinds) {
    SCOPED_TRACE(kind_name(duplex));
    auto p = mpxt::make_pipe(duplex);
    mpx_conn *b = p.b.release();
    const auto big = mpxt::pattern(16 << 20);  // nobody reads: the send blocks
    expect_closed_by_destroy(b, [&] { return mpxt::send_vec(b, big); });
  }
}

TEST(ConnDestroy, WakesEveryBlockedThread) {
  auto p = mpxt::make_pipe(true);
  mpx_conn *a = p.a.release();
  std::atomic<int> closed{0};
  std::atomic<pid_t> tids[4] = {};
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i)
    threads.emplace_back([&, i] {
      tids[i] = mpxt::thread_id();
      int rc;
      if (i % 2)
        mpxt::recv_vec(a, &rc, -1);  // one holds the receive lock, the other waits for it
      else
        rc = mpx_conn_poll(a, -1);
      if (rc == MPX_ECLOSED) closed.fetch_add(1);
    });
  for (auto &tid : tids) {
    while (tid.load() == 0) std::this_thread::yield();
    EXPECT_TRUE(mpxt::asleep(tid.load()));
  }
  mpxt::Stopwatch sw;
  EXPECT_MPX_OK(mpx_conn_destroy(a));
  for (auto &t : threads) t.join();
  EXPECT_LT(sw.ms(), 300);
  EXPECT_EQ(closed.load(), 4);
}

TEST(ConnDestroy, ConcurrentSendersAndReceiversAreSafe) {
  auto p = mpxt::make_pipe(true);
  constexpr int kThreads = 3, kEach = 300;
  std::vector<std::thread> senders, receivers;
  std::atomic<int> received{0};
  for (int t = 0; t < kThreads; ++t)
    senders.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) EXPECT_MPX_OK(mpxt::send_vec(p.b.get(), mpxt::pattern(size_t(100 + i * 37), uint32_t(t))));
    });
  for (int t = 0; t < kThreads; ++t)
    receivers.emplace_back([&] {
      for (;;) {
        int rc;
        auto v = mpxt::recv_vec(p.a.get(), &rc, 2000);
        if (rc != MPX_OK || v.empty()) break;
        bool whole = false;  // every message is one of the patterns, intact
        for (uint32_t s = 0; s < kThreads && !whole; ++s) whole = v == mpxt::pattern(v.size(), s);
        EXPECT_TRUE(whole);
        received.fetch_add(1);
      }
    });
  for (auto &t : senders) t.join();
  for (int t = 0; t < kThreads; ++t) EXPECT_MPX_OK(mpxt::send_str(p.b.get(), ""));  // stop
  for (auto &t : receivers) t.join();
  EXPECT_EQ(received.load(), kThreads * kEach);
}

TEST(ConnTimeout, HugeTimeoutsDoNotOverflow) {
  auto p = mpxt::make_pipe(true);
  std::thread late([&] {
    mpxt::sleep_ms(30);
    mpxt::send_str(p.b.get(), "x");
  });
  int rc;
  EXPECT_EQ(mpxt::recv_str(p.a.get(), &rc, INT64_MAX), "x");
  EXPECT_MPX_OK(rc);
  late.join();
  EXPECT_MPX(MPX_ETIMEDOUT, mpx_conn_poll(p.a.get(), 0));
  mpxt::send_str(p.b.get(), "y");
  EXPECT_MPX_OK(mpx_conn_poll(p.a.get(), INT64_MAX));
  EXPECT_MPX_OK(mpx_conn_poll(p.a.get(), INT64_MIN)) << "any negative timeout blocks (here: ready at once)";
}

}  // namespace
