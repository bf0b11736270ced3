// Pipes and connections over the C API: creation, the one-way direction rule, message
// boundaries and sizes (SCENARIOS.md 8), end of stream (9), poll (11), recv_into (12),
// timeouts, options, detach and from_fd. Faults and signals are in capi_connection_fault.cpp,
// descriptor passing in capi_connection_fds.cpp, wait in capi_connection_wait.cpp, Python
// interoperability in capi_connection_python.cpp.
#include <fcntl.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <thread>

#include "support/conn_helpers.hpp"

using namespace std::chrono_literals;
using mpxt::ConnPtr;
using mpxt::Millis;

namespace {

TEST(ConnPipe, DuplexEndsBothSendAndReceive) {
  auto p = mpxt::make_pipe(true);
  ASSERT_MPX_OK(mpxt::send_str(p.a.get(), "ping"));
  int rc;
  EXPECT_EQ(mpxt::recv_str(p.b.get(), &rc), "ping");
  EXPECT_MPX_OK(rc);
  ASSERT_MPX_OK(mpxt::send_str(p.b.get(), "pong"));
  EXPECT_EQ(mpxt::recv_str(p.a.get(), &rc), "pong");
  EXPECT_MPX_OK(rc);
  uint32_t fa = 0, fb = 0;
  EXPECT_MPX_OK(mpx_conn_flags(p.a.get(), &fa));
  EXPECT_MPX_OK(mpx_conn_flags(p.b.get(), &fb));
  EXPECT_EQ(fa, MPX_CONN_READABLE | MPX_CONN_WRITABLE);
  EXPECT_EQ(fb, MPX_CONN_READABLE | MPX_CONN_WRITABLE);
}

TEST(ConnPipe, OneWayPipeRefusesTheWrongDirection) {
  auto p = mpxt::make_pipe(false);
  uint32_t fa = 0, fb = 0;
  EXPECT_MPX_OK(mpx_conn_flags(p.a.get(), &fa));
  EXPECT_MPX_OK(mpx_conn_flags(p.b.get(), &fb));
  EXPECT_EQ(fa, MPX_CONN_READABLE);
  EXPECT_EQ(fb, MPX_CONN_WRITABLE);
  EXPECT_MPX(MPX_EPERM, mpxt::send_str(p.a.get(), "x"));
  int rc;
  mpxt::recv_vec(p.b.get(), &rc, 0);
  EXPECT_MPX(MPX_EPERM, rc);
  EXPECT_MPX(MPX_EPERM, mpx_conn_poll(p.b.get(), 0));
  char buf[4];
  size_t len = 0;
  EXPECT_MPX(MPX_EPERM, mpx_conn_recv_into(p.b.get(), buf, sizeof buf, &len, 0));
  // The right way works.
  ASSERT_MPX_OK(mpxt::send_str(p.b.get(), "one way"));
  EXPECT_EQ(mpxt::recv_str(p.a.get(), &rc), "one way");
  EXPECT_MPX_OK(rc);
}

TEST(ConnPipe, DescriptorsAreCloseOnExec) {
  for (bool duplex : {true, false}) {
    auto p = mpxt::make_pipe(duplex);
    for (mpx_conn *c : {p.a.get(), p.b.get()}) {
      int fd = mpxt::fileno_of(c);
      ASSERT_GE(fd, 0);
      EXPECT_TRUE(fcntl(fd, F_GETFD) & FD_CLOEXEC);
      EXPECT_FALSE(fcntl(fd, F_GETFL) & O_NONBLOCK) << "the descriptor must stay blocking for other holders";
    }
  }
}

TEST(ConnPipe, OptionsSetTheReceiveLimit) {
  auto p = mpxt::make_pipe(true, 1000);
  uint64_t max = 0;
  EXPECT_MPX_OK(mpx_conn_max_message(p.a.get(), &max));
  EXPECT_EQ(max, 1000u);
  auto d = mpxt::make_pipe(true);
  EXPECT_MPX_OK(mpx_conn_max_message(d.a.get(), &max));
  EXPECT_EQ(max, MPX_CONN_DEFAULT_MAX_MESSAGE);
  mpx_conn_options o;
  EXPECT_MPX(MPX_EINVAL, mpx_conn_options_init(&o, sizeof o - 1));
  EXPECT_MPX_OK(mpx_conn_options_init(&o, sizeof o));
  o.size = 4;
  mpx_conn *a = reinterpret_cast<mpx_conn *>(1), *b = reinterpret_cast<mpx_conn *>(1);
  EXPECT_MPX(MPX_EINVAL, mpx_pipe(1, &o, &a, &b));
  EXPECT_EQ(a, nullptr);
  EXPECT_EQ(b, nullptr);
  EXPECT_MPX(MPX_EINVAL, mpx_pipe(1, nullptr, &a, nullptr));
  mpx_conn_options_init(&o, sizeof o);
  o.reserved = 1;
  EXPECT_MPX(MPX_EINVAL, mpx_pipe(0, &o, &a, &b));
  EXPECT_EQ(a, nullptr);
}

TEST(ConnMessage, ThreeSendsGiveThreeReceives) {
  for (bool duplex : {true, false}) {
    auto p = mpxt::make_pipe(duplex);
    mpx_conn *tx = p.b.get(), *rx = p.a.get();
    ASSERT_MPX_OK(mpxt::send_str(tx, "first"));
    ASSERT_MPX_OK(mpxt::send_str(tx, ""));
    ASSERT_MPX_OK(mpxt::send_str(tx, "third message"));
    int rc;
    EXPECT_EQ(mpxt::recv_str(rx, &rc), "first");
    EXPECT_MPX_OK(rc);
    void *data = nullptr;
    size_t len = 99;
    ASSERT_MPX_OK(mpx_conn_recv(rx, 0, &data, &len, 1000));
    EXPECT_NE(data, nullptr) << "a 0-byte message gives a valid pointer";
    EXPECT_EQ(len, 0u);
    mpx_free(data);
    EXPECT_EQ(mpxt::recv_str(rx, &rc), "third message");
    EXPECT_MPX_OK(rc);
    EXPECT_MPX(MPX_ETIMEDOUT, mpx_conn_poll(rx, 0));
  }
}

// SCENARIOS.md 8: 0 B, 1 B, 16 MiB between two processes, byte-identical, both directions.
TEST(ConnMessage, SizesRoundTripBetweenProcesses) {
  for (bool duplex : {true, false}) {
    auto there = mpxt::make_pipe(duplex);  // parent -> child: there.b sends, there.a receives
    auto back = mpxt::make_pipe(duplex);   // child -> parent
    const size_t sizes[] = {0, 1, 16u << 20, 100000, 65536, 65535};
    auto child = mpxt::Child::fork([&] {
      for (size_t i = 0; i < std::size(sizes); ++i) {
        int rc;
        auto v = mpxt::recv_vec(there.a.get(), &rc, 20000);
        CHILD_MPX_OK(rc);
        CHILD_CHECK(v == mpxt::pattern(sizes[i], uint32_t(i)));
        CHILD_MPX_OK(mpxt::send_vec(back.b.get(), v));
      }
      return 0;
    });
    // A thread sends while this one receives: the child echoes as it goes, and neither side
    // may wait for the other with full buffers.
    std::thread sender([&] {
      for (size_t i = 0; i < std::size(sizes); ++i) EXPECT_MPX_OK(mpxt::send_vec(there.b.get(), mpxt::pattern(sizes[i], uint32_t(i))));
    });
    for (size_t i = 0; i < std::size(sizes); ++i) {
      int rc;
      auto v = mpxt::recv_vec(back.a.get(), &rc, 20000);
      EXPECT_MPX_OK(rc);
      if (rc != MPX_OK) break;
      EXPECT_TRUE(v == mpxt::pattern(sizes[i], uint32_t(i))) << "message " << i << " of " << sizes[i] << " bytes differs";
    }
    sender.join();
    EXPECT_TRUE(child.wait().ok()) << child.status().describe();
  }
}

// Bytes of a 2 GiB message, made and checked a word at a time (a pattern vector would be slow).
uint64_t word_at(uint64_t k) { return (k + 1) * 0x9E3779B97F4A7C15ull ^ (k >> 7); }

void fill_words(uint8_t *p, size_t n) {
  for (size_t k = 0; k * 8 < n; ++k) {
    const uint64_t w = word_at(k);
    std::memcpy(p + k * 8, &w, std::min<size_t>(8, n - k * 8));
  }
}

bool check_words(const uint8_t *p, size_t n) {
  for (size_t k = 0; k * 8 < n; ++k) {
    const uint64_t w = word_at(k);
    if (std::memcmp(p + k * 8, &w, std::min<size_t>(8, n - k * 8)) != 0) return false;
  }
  return true;
}

// SCENARIOS.md 8: 2^31 + 1 bytes (the -1 + 8-byte length form) there and back.
TEST(ConnMessage, TwoGigabytesPlusOneRoundTripBetweenProcesses) {
#if defined(__SANITIZE_THREAD__)
  GTEST_SKIP() << "4 GiB through ThreadSanitizer's memory model takes minutes; the default and asan builds run it";
#endif
  const size_t n = (size_t(1) << 31) + 1;
  auto p = mpxt::make_pipe(true);
  auto child = mpxt::Child::fork([&] {
    void *data = nullptr;
    size_t len = 0;
    CHILD_MPX_OK(mpx_conn_recv(p.b.get(), 0, &data, &len, 60000));
    CHILD_CHECK_EQ(len, n);
    CHILD_CHECK(check_words(static_cast<uint8_t *>(data), len));
    CHILD_MPX_OK(mpx_conn_send(p.b.get(), data, len));
    mpx_free(data);
    return 0;
  });
  {
    // Huge pages: 1024 page faults instead of half a million (10 us each on a VM).
    void *msg = mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ASSERT_NE(msg, MAP_FAILED);
    madvise(msg, n, MADV_HUGEPAGE);
    fill_words(static_cast<uint8_t *>(msg), n);
    EXPECT_MPX_OK(mpx_conn_send(p.a.get(), msg, n));
    munmap(msg, n);
  }
  void *back = nullptr;
  size_t len = 0;
  ASSERT_MPX_OK(mpx_conn_recv(p.a.get(), 0, &back, &len, 60000));
  EXPECT_EQ(len, n);
  EXPECT_TRUE(check_words(static_cast<uint8_t *>(back), len));
  mpx_free(back);
  EXPECT_TRUE(child.wait(mpxt::Millis(120000)).ok()) << child.status().describe();
}

TEST(ConnEnd, PeerClosingBetweenFramesIsEof) {
  for (bool duplex : {true, false}) {
    auto p = mpxt::make_pipe(duplex);
    ASSERT_MPX_OK(mpxt::send_str(p.b.get(), "last"));
    p.b.reset();
    int rc;
    EXPECT_EQ(mpxt::recv_str(p.a.get(), &rc), "last");
    EXPECT_MPX_OK(rc);
    EXPECT_MPX_OK(mpx_conn_poll(p.a.get(), 0)) << "end of stream counts as readable";
    mpxt::recv_vec(p.a.get(), &rc);
    EXPECT_MPX(MPX_EOF, rc);
    mpxt::recv_vec(p.a.get(), &rc, 0);
    EXPECT_MPX(MPX_EOF, rc);
  }
}

TEST(ConnEnd, PeerProcessExitingIsEof) {
  auto p = mpxt::make_pipe(true);
  auto child = mpxt::Child::fork([&] {
    p.a.reset();
    CHILD_MPX_OK(mpxt::send_str(p.b.get(), "bye"));
    return 0;
  });
  p.b.reset();
  int rc;
  EXPECT_EQ(mpxt::recv_str(p.a.get(), &rc), "bye");
  mpxt::recv_vec(p.a.get(), &rc);
  EXPECT_MPX(MPX_EOF, rc);
  EXPECT_TRUE(child.wait().ok());
}

TEST(ConnPoll, ReportsReadinessWithoutConsuming) {
  auto p = mpxt::make_pipe(true);
  EXPECT_MPX(MPX_ETIMEDOUT, mpx_conn_poll(p.a.get(), 0));
  ASSERT_MPX_OK(mpxt::send_str(p.b.get(), "abc"));
  EXPECT_MPX_OK(mpx_conn_poll(p.a.get(), 0));
  EXPECT_MPX_OK(mpx_conn_poll(p.a.get(), 1000));
  int rc;
  EXPECT_EQ(mpxt::recv_str(p.a.get(), &rc), "abc");
  EXPECT_MPX(MPX_ETIMEDOUT, mpx_conn_poll(p.a.get(), 0));
}

TEST(ConnPoll, TimesOutWithinTheDeadline) {
  auto p = mpxt::make_pipe(true);
  EXPECT_TRUE(mpxt::TimesOutWithin(100, [&] { return mpx_conn_poll(p.a.get(), 100); }));
  EXPECT_TRUE(mpxt::TimesOutWithin(150, [&] {
    int rc;
    mpxt::recv_vec(p.a.get(), &rc, 150);
    return rc;
  }));
  char buf[8];
  size_t len;
  EXPECT_TRUE(mpxt::TimesOutWithin(80, [&] { return mpx_conn_recv_into(p.a.get(), buf, sizeof buf, &len, 80); }));
  auto q = mpxt::make_pipe(false);
  EXPECT_TRUE(mpxt::TimesOutWithin(100, [&] { return mpx_conn_poll(q.a.get(), 100); }));
}

TEST(ConnPoll, WakesWhenAMessageArrives) {
  auto p = mpxt::make_pipe(true);
  std::thread t([&] {
    mpxt::sleep_ms(50);
    mpxt::send_str(p.b.get(), "late");
  });
  mpxt::Stopwatch sw;
  EXPECT_MPX_OK(mpx_conn_poll(p.a.get(), 5000));
  EXPECT_LT(sw.ms(), 2000);
  int rc;
  EXPECT_EQ(mpxt::recv_str(p.a.get(), &rc, 1000), "late");
  t.join();
}

// SCENARIOS.md 11 (CPython test_boundaries): a process polls while two messages arrive.
TEST(ConnPoll, AnotherProcessPollingConsumesNothing) {
  auto p = mpxt::make_pipe(true);
  mpxt::Rendezvous polled;
  auto child = mpxt::Child::fork([&] {
    for (int i = 0; i < 200; ++i) {
      const int r = mpx_conn_poll(p.a.get(), 1);
      CHILD_CHECK(r == MPX_OK || r == MPX_ETIMEDOUT);
    }
    CHILD_MPX_OK(mpx_conn_poll(p.a.get(), 5000));
    polled.notify();
    return 0;
  });
  mpxt::sleep_ms(20);
  const auto m1 = mpxt::pattern(1000, 1), m2 = mpxt::pattern(70000, 2);
  ASSERT_MPX_OK(mpxt::send_vec(p.b.get(), m1));
  ASSERT_MPX_OK(mpxt::send_vec(p.b.get(), m2));
  EXPECT_TRUE(polled.wait());
  EXPECT_TRUE(child.wait().ok()) << child.status().describe();
  int rc;
  EXPECT_TRUE(mpxt::recv_vec(p.a.get(), &rc) == m1);
  EXPECT_MPX_OK(rc);
  EXPECT_TRUE(mpxt::recv_vec(p.a.get(), &rc) == m2);
  EXPECT_MPX_OK(rc);
  EXPECT_MPX(MPX_ETIMEDOUT, mpx_conn_poll(p.a.get(), 0));
}

// SCENARIOS.md 12: too small a buffer keeps the message; the next receive of any kind gets it.
TEST(ConnRecvInto, TooSmallKeepsTheMessageForTheNextReceive) {
  auto p = mpxt::make_pipe(true);
  const auto big = mpxt::pattern(5000, 7);
  ASSERT_MPX_OK(mpxt::send_vec(p.b.get(), big));
  ASSERT_MPX_OK(mpxt::send_str(p.b.get(), "next"));
  std::vector<uint8_t> small(100);
  size_t len = 0;
  EXPECT_MPX(MPX_ENOBUFS, mpx_conn_recv_into(p.a.get(), small.data(), small.size(), &len, 1000));
  EXPECT_EQ(len, big.size());
  EXPECT_MPX(MPX_ENOBUFS, mpx_conn_recv_into(p.a.get(), nullptr, 0, &len, 0)) << "still pending";
  EXPECT_EQ(len, big.size());
  EXPECT_MPX_OK(mpx_conn_poll(p.a.get(), 0)) << "a pending message is ready";
  std::vector<uint8_t> fit(len);
  size_t got = 0;
  ASSERT_MPX_OK(mpx_conn_recv_into(p.a.get(), fit.data(), fit.size(), &got, 1000));
  EXPECT_EQ(got, big.size());
  EXPECT_TRUE(fit == big);
  char buf[16];
  ASSERT_MPX_OK(mpx_conn_recv_into(p.a.get(), buf, sizeof buf, &got, 1000));
  EXPECT_EQ(std::string(buf, got), "next");
}

TEST(ConnRecvInto, PendingMessageGoesToAPlainReceive) {
  auto p = mpxt::make_pipe(false);
  const auto big = mpxt::pattern(300, 3);
  ASSERT_MPX_OK(mpxt::send_vec(p.b.get(), big));
  char small[10];
  size_t len = 0;
  EXPECT_MPX(MPX_ENOBUFS, mpx_conn_recv_into(p.a.get(), small, sizeof small, &len, 1000));
  EXPECT_EQ(len, 300u);
  int rc;
  EXPECT_TRUE(mpxt::recv_vec(p.a.get(), &rc) == big);
  EXPECT_MPX_OK(rc);
}

TEST(ConnRecv, MaxlengthRefusesLongerMessagesAndBreaksTheConnection) {
  auto p = mpxt::make_pipe(true);
  ASSERT_MPX_OK(mpxt::send_str(p.b.get(), "0123456789"));
  ASSERT_MPX_OK(mpxt::send_str(p.b.get(), "x"));
  int rc;
  mpxt::recv_vec(p.a.get(), &rc, 1000, 5);
  EXPECT_MPX(MPX_EMSGSIZE, rc);
  mpxt::recv_vec(p.a.get(), &rc, 1000);
  EXPECT_MPX(MPX_EMSGSIZE, rc) << "broken for good, like Python's recv_bytes(maxlength)";
  EXPECT_MPX_OK(mpx_conn_poll(p.a.get(), 0)) << "a broken connection is ready (to report its error)";
}

TEST(ConnRecv, MaxlengthAllowsShorterMessages) {
  auto p = mpxt::make_pipe(true);
  ASSERT_MPX_OK(mpxt::send_str(p.b.get(), "12345"));
  int rc;
  auto v = mpxt::recv_vec(p.a.get(), &rc, 1000, 5);
  EXPECT_MPX_OK(rc);
  EXPECT_EQ(v.size(), 5u);
}

TEST(ConnArgs, NullsAndBadSizes) {
  auto p = mpxt::make_pipe(true);
  mpx_conn *c = p.a.get();
  void *data = nullptr;
  size_t len = 0;
  int fd;
  uint32_t flags;
  uint64_t max;
  EXPECT_MPX(MPX_EINVAL, mpx_conn_send(c, nullptr, 1));
  EXPECT_MPX(MPX_EINVAL, mpx_conn_send(c, "x", SIZE_MAX));
  EXPECT_MPX_OK(mpx_conn_send(c, nullptr, 0));
  EXPECT_MPX(MPX_EINVAL, mpx_conn_recv(c, 0, nullptr, &len, 0));
  EXPECT_MPX(MPX_EINVAL, mpx_conn_recv(c, 0, &data, nullptr, 0));
  EXPECT_MPX(MPX_EINVAL, mpx_conn_recv_into(c, nullptr, 10, &len, 0));
  EXPECT_MPX(MPX_EINVAL, mpx_conn_recv_into(c, &fd, 4, nullptr, 0));
  EXPECT_MPX(MPX_EINVAL, mpx_conn_fileno(c, nullptr));
  EXPECT_MPX(MPX_EINVAL, mpx_conn_flags(c, nullptr));
  EXPECT_MPX(MPX_EINVAL, mpx_conn_max_message(c, nullptr));
  EXPECT_MPX(MPX_EINVAL, mpx_conn_detach(c, nullptr));
  EXPECT_MPX(MPX_EINVAL, mpx_conn_send(nullptr, "x", 1));
  EXPECT_MPX(MPX_EINVAL, mpx_conn_poll(nullptr, 0));
  EXPECT_MPX(MPX_EINVAL, mpx_conn_fileno(nullptr, &fd));
  EXPECT_MPX(MPX_EINVAL, mpx_conn_flags(nullptr, &flags));
  EXPECT_MPX(MPX_EINVAL, mpx_conn_max_message(nullptr, &max));
  EXPECT_MPX(MPX_EINVAL, mpx_conn_destroy(nullptr));
  EXPECT_MPX(MPX_EINVAL, mpx_conn_from_fd(0, MPX_CONN_READABLE, nullptr, nullptr));
  // The 0-byte message sent above is still there.
  auto v = mpxt::recv_vec(p.b.get(), &fd, 1000);
  EXPECT_MPX_OK(fd);
  EXPECT_TRUE(v.empty());
}

TEST(ConnArgs, DestroyedAndWrongTypeHandles) {
  auto p = mpxt::make_pipe(true);
  mpx_conn *stale = p.a.release();
  ASSERT_MPX_OK(mpx_conn_destroy(stale));
  EXPECT_MPX(MPX_EBADHANDLE, mpx_conn_destroy(stale));
  EXPECT_MPX(MPX_EBADHANDLE, mpxt::send_str(stale, "x"));
  EXPECT_MPX(MPX_EBADHANDLE, mpx_conn_poll(stale, 0));
  int rc;
  mpxt::recv_vec(stale, &rc, 0);
  EXPECT_MPX(MPX_EBADHANDLE, rc);
  auto seg = mpxt::make_segment(4096);
  auto *wrong = reinterpret_cast<mpx_conn *>(seg.get());
  EXPECT_MPX(MPX_EBADHANDLE, mpx_conn_poll(wrong, 0));
  EXPECT_MPX(MPX_EBADHANDLE, mpx_conn_destroy(wrong));
  EXPECT_MPX(MPX_EBADHANDLE, mpx_conn_poll(reinterpret_cast<mpx_conn *>(uintptr_t(0x0900001234)), 0));
}

TEST(ConnFromFd, WrapsSocketsAndPipes) {
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  mpx_conn *a = nullptr, *b = nullptr;
  ASSERT_MPX_OK(mpx_conn_from_fd(sv[0], MPX_CONN_READABLE | MPX_CONN_WRITABLE, nullptr, &a));
  ASSERT_MPX_OK(mpx_conn_from_fd(sv[1], MPX_CONN_READABLE | MPX_CONN_WRITABLE, nullptr, &b));
  ConnPtr pa(a), pb(b);
  EXPECT_EQ(mpxt::fileno_of(a), sv[0]);
  ASSERT_MPX_OK(mpxt::send_str(a, "wrapped"));
  int rc;
  EXPECT_EQ(mpxt::recv_str(b, &rc), "wrapped");

  int pp[2];
  ASSERT_EQ(pipe2(pp, O_CLOEXEC), 0);
  mpx_conn *r = nullptr, *w = nullptr;
  ASSERT_MPX_OK(mpx_conn_from_fd(pp[0], MPX_CONN_READABLE, nullptr, &r));
  ASSERT_MPX_OK(mpx_conn_from_fd(pp[1], MPX_CONN_WRITABLE, nullptr, &w));
  ConnPtr pr(r), pw(w);
  ASSERT_MPX_OK(mpxt::send_str(w, "through a pipe"));
  EXPECT_EQ(mpxt::recv_str(r, &rc), "through a pipe");
  EXPECT_MPX(MPX_EPERM, mpxt::send_str(r, "x"));
}

TEST(ConnFromFd, RejectsWhatIsNotAConnectionAndClosesIt) {
  mpx_conn *c = reinterpret_cast<mpx_conn *>(1);
  EXPECT_MPX(MPX_EINVAL, mpx_conn_from_fd(-1, MPX_CONN_READABLE, nullptr, &c));
  EXPECT_EQ(c, nullptr);
  int fd = open("/dev/null", O_RDWR | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  EXPECT_MPX(MPX_EINVAL, mpx_conn_from_fd(fd, MPX_CONN_READABLE, nullptr, &c));
  EXPECT_EQ(fcntl(fd, F_GETFD), -1) << "the descriptor is owned (closed) also on failure";
  int pp[2];
  ASSERT_EQ(pipe2(pp, O_CLOEXEC), 0);
  EXPECT_MPX(MPX_EINVAL, mpx_conn_from_fd(pp[0], MPX_CONN_WRITABLE, nullptr, &c)) << "read end, writable";
  EXPECT_MPX(MPX_EINVAL, mpx_conn_from_fd(pp[1], 0, nullptr, &c)) << "no direction";
  int dg[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, dg), 0);
  EXPECT_MPX(MPX_EINVAL, mpx_conn_from_fd(dg[0], MPX_CONN_READABLE, nullptr, &c)) << "datagram socket";
  close(dg[1]);
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  EXPECT_MPX(MPX_EINVAL, mpx_conn_from_fd(sv[0], 0x4, nullptr, &c)) << "unknown flag";
  close(sv[1]);
}

TEST(ConnDetach, GivesTheDescriptorBackOpen) {
  auto p = mpxt::make_pipe(true);
  int fd = -1;
  ASSERT_MPX_OK(mpx_conn_detach(p.a.release(), &fd));
  ASSERT_GE(fd, 0);
  EXPECT_NE(fcntl(fd, F_GETFD), -1);
  ASSERT_MPX_OK(mpxt::send_str(p.b.get(), "still here"));
  mpx_conn *again = nullptr;
  ASSERT_MPX_OK(mpx_conn_from_fd(fd, MPX_CONN_READABLE | MPX_CONN_WRITABLE, nullptr, &again));
  ConnPtr g(again);
  int rc;
  EXPECT_EQ(mpxt::recv_str(again, &rc), "still here");
}

TEST(ConnFork, ChildUsesAnEndWhoseLockAParentThreadHeldAtFork) {
  auto p = mpxt::make_pipe(true);
  // A parent thread is in a receive (holding the receive lock) when we fork.
  std::thread blocked([&] {
    int rc;
    mpxt::recv_vec(p.a.get(), &rc, 300);
  });
  mpxt::sleep_ms(50);
  auto child = mpxt::Child::fork([&] {
    int rc;
    auto s = mpxt::recv_str(p.a.get(), &rc, 5000);  // the child's copy of the lock starts afresh
    CHILD_MPX_OK(rc);
    CHILD_CHECK(s == "hello");
    return 0;
  });
  blocked.join();  // the parent's receive timed out: the message below is the child's
  ASSERT_MPX_OK(mpxt::send_str(p.b.get(), "hello"));
  EXPECT_TRUE(child.wait().ok()) << child.status().describe();
}

}  // namespace
