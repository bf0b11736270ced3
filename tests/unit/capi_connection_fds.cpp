// Passing descriptors, connections and segments over a connection (SCENARIOS.md 15):
// descriptors arrive close-on-exec, a frame without its descriptors is MPX_EPROTO, and
// truncated control data (MSG_CTRUNC) closes every descriptor that did arrive.
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

#include "support/conn_helpers.hpp"

using mpxt::ConnPtr;

namespace {

// Two descriptors name the same open file (st_dev and st_ino).
bool same_file(int a, int b) {
  struct stat sa, sb;
  return fstat(a, &sa) == 0 && fstat(b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

// sendmsg a hand-made frame (payload) with `fds` attached, bypassing mpx.
bool send_raw_with_fds(int sock, const std::vector<uint8_t> &frame, const std::vector<int> &fds) {
  std::vector<unsigned char> control(CMSG_SPACE(sizeof(int) * fds.size()));
  iovec iov{const_cast<uint8_t *>(frame.data()), frame.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  if (!fds.empty()) {
    msg.msg_control = control.data();
    msg.msg_controllen = control.size();
    cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
  }
  return sendmsg(sock, &msg, MSG_NOSIGNAL) == ssize_t(frame.size());
}

// The frame mpx_conn_send_fds writes for `count` descriptors.
std::vector<uint8_t> fd_frame(uint32_t count) {
  auto f = mpxt::frame_header(8);
  for (uint8_t b : {'m', 'p', 'x', 'F'}) f.push_back(b);
  for (int i = 3; i >= 0; --i) f.push_back(uint8_t(count >> (8 * i)));
  return f;
}

// Descriptor counts are compared around receives: let the connection make its wake-up
// eventfd (made on its first timed wait) beforehand.
void warm(mpx_conn *c) { mpx_conn_poll(c, 0); }

std::vector<int> open_devnulls(size_t n) {
  std::vector<int> v;
  for (size_t i = 0; i < n; ++i) v.push_back(open("/dev/null", O_RDONLY | O_CLOEXEC));
  return v;
}

void close_all(const std::vector<int> &v) {
  for (int fd : v) close(fd);
}

// SCENARIOS.md 15: 4 descriptors in one message, to another process; they arrive CLOEXEC.
TEST(ConnFds, FourDescriptorsArriveCloseOnExecInAnotherProcess) {
  auto p = mpxt::make_pipe(true);
  int pipes[2][2];
  ASSERT_EQ(pipe(pipes[0]), 0);  // no CLOEXEC here: the received copies must have it anyway
  ASSERT_EQ(pipe(pipes[1]), 0);
  const std::vector<int> sent = {pipes[0][0], pipes[0][1], pipes[1][0], pipes[1][1]};
  auto child = mpxt::Child::fork([&] {
    int fds[8];
    size_t n = 8;
    CHILD_MPX_OK(mpx_conn_recv_fds(p.b.get(), fds, &n, 5000));
    CHILD_CHECK_EQ(n, 4);
    for (size_t i = 0; i < n; ++i) CHILD_CHECK(fcntl(fds[i], F_GETFD) & FD_CLOEXEC);
    for (size_t i = 0; i < n; ++i) CHILD_CHECK(same_file(fds[i], sent[i]));
    // They work: write through the received write end of the second pipe.
    CHILD_CHECK(write(fds[3], "ok", 2) == 2);
    for (size_t i = 0; i < n; ++i) close(fds[i]);
    return 0;
  });
  ASSERT_MPX_OK(mpx_conn_send_fds(p.a.get(), sent.data(), sent.size()));
  EXPECT_TRUE(child.wait().ok()) << child.status().describe();
  char buf[2];
  EXPECT_EQ(read(pipes[1][0], buf, 2), 2);
  close_all(sent);
}

TEST(ConnFds, SenderKeepsItsCopiesAndMessagesAroundStayInOrder) {
  auto p = mpxt::make_pipe(true);
  auto fds = open_devnulls(3);
  ASSERT_MPX_OK(mpxt::send_str(p.a.get(), "before"));
  ASSERT_MPX_OK(mpx_conn_send_fds(p.a.get(), fds.data(), fds.size()));
  ASSERT_MPX_OK(mpxt::send_str(p.a.get(), "after"));
  for (int fd : fds) EXPECT_NE(fcntl(fd, F_GETFD), -1);
  int rc;
  EXPECT_EQ(mpxt::recv_str(p.b.get(), &rc), "before");
  int got[3];
  size_t n = 3;
  ASSERT_MPX_OK(mpx_conn_recv_fds(p.b.get(), got, &n, 1000));
  EXPECT_EQ(n, 3u);
  EXPECT_EQ(mpxt::recv_str(p.b.get(), &rc), "after");
  close_all(std::vector<int>(got, got + n));
  close_all(fds);
}

TEST(ConnFds, APlainReceiveOfADescriptorMessageLeaksNothing) {
  auto p = mpxt::make_pipe(true);
  auto fds = open_devnulls(4);
  warm(p.b.get());
  const int before = mpxt::count_fds();
  ASSERT_MPX_OK(mpx_conn_send_fds(p.a.get(), fds.data(), fds.size()));
  int rc;
  auto v = mpxt::recv_vec(p.b.get(), &rc);
  EXPECT_MPX_OK(rc);
  EXPECT_EQ(v.size(), 8u) << "the tag and the count";
  EXPECT_EQ(mpxt::count_fds(), before) << "the kernel dropped the descriptors";
  close_all(fds);
}

// SCENARIOS.md 15: a frame that arrives without its expected descriptors.
TEST(ConnFds, FrameWithoutItsDescriptorsIsProtocolError) {
  auto p = mpxt::make_pipe(true);
  const int sock = mpxt::fileno_of(p.a.get());
  ASSERT_TRUE(send_raw_with_fds(sock, fd_frame(2), {}));
  int fds[4];
  size_t n = 4;
  EXPECT_MPX(MPX_EPROTO, mpx_conn_recv_fds(p.b.get(), fds, &n, 1000));
  EXPECT_EQ(n, 4u) << "count unchanged on failure";

  // Fewer than announced.
  auto one = open_devnulls(1);
  warm(p.b.get());
  const int before = mpxt::count_fds();
  ASSERT_TRUE(send_raw_with_fds(sock, fd_frame(2), one));
  n = 4;
  EXPECT_MPX(MPX_EPROTO, mpx_conn_recv_fds(p.b.get(), fds, &n, 1000));
  EXPECT_EQ(mpxt::count_fds(), before) << "the one that arrived was closed";

  // A plain message where descriptors were expected: consumed, EPROTO; the next one is fine.
  ASSERT_MPX_OK(mpxt::send_str(p.a.get(), "plain"));
  n = 4;
  EXPECT_MPX(MPX_EPROTO, mpx_conn_recv_fds(p.b.get(), fds, &n, 1000));
  ASSERT_MPX_OK(mpxt::send_vec(p.a.get(), mpxt::pattern(100000)));
  EXPECT_MPX(MPX_EPROTO, mpx_conn_recv_fds(p.b.get(), fds, &n, 1000));
  ASSERT_MPX_OK(mpxt::send_str(p.a.get(), "still aligned"));
  int rc;
  EXPECT_EQ(mpxt::recv_str(p.b.get(), &rc), "still aligned");
  close_all(one);
}

// SCENARIOS.md 15: forced MSG_CTRUNC, more descriptors than the receiver has room for.
TEST(ConnFds, TruncatedControlDataClosesEveryArrivedDescriptor) {
  auto p = mpxt::make_pipe(true);
  const int sock = mpxt::fileno_of(p.a.get());
  warm(p.b.get());
  for (size_t count : {size_t(2), size_t(5), size_t(MPX_CONN_MAX_FDS), size_t(100), size_t(250)}) {
    SCOPED_TRACE(std::to_string(count) + " descriptors sent");
    auto fds = open_devnulls(count);
    const int before = mpxt::count_fds();
    ASSERT_TRUE(send_raw_with_fds(sock, fd_frame(uint32_t(count)), fds));
    int got[MPX_CONN_MAX_FDS];
    size_t n = 1;
    EXPECT_MPX(MPX_EPROTO, mpx_conn_recv_fds(p.b.get(), got, &n, 1000));
    EXPECT_EQ(n, 1u);
    EXPECT_EQ(mpxt::count_fds(), before) << "a descriptor leaked";
    close_all(fds);
  }
  // The connection still works.
  auto fds = open_devnulls(2);
  ASSERT_MPX_OK(mpx_conn_send_fds(p.a.get(), fds.data(), fds.size()));
  int got[2];
  size_t n = 2;
  ASSERT_MPX_OK(mpx_conn_recv_fds(p.b.get(), got, &n, 1000));
  EXPECT_EQ(n, 2u);
  close_all(std::vector<int>(got, got + n));
  close_all(fds);
}

TEST(ConnFds, ArgumentsAndPipes) {
  auto p = mpxt::make_pipe(true);
  auto fds = open_devnulls(MPX_CONN_MAX_FDS + 1);
  EXPECT_MPX(MPX_EINVAL, mpx_conn_send_fds(p.a.get(), nullptr, 1));
  EXPECT_MPX(MPX_EINVAL, mpx_conn_send_fds(p.a.get(), fds.data(), 0));
  EXPECT_MPX(MPX_EINVAL, mpx_conn_send_fds(p.a.get(), fds.data(), fds.size()));
  const int bad[] = {fds[0], -1};
  EXPECT_MPX(MPX_EINVAL, mpx_conn_send_fds(p.a.get(), bad, 2));
  EXPECT_MPX_OK(mpx_conn_send_fds(p.a.get(), fds.data(), MPX_CONN_MAX_FDS));
  int got[MPX_CONN_MAX_FDS];
  size_t n = 0;
  EXPECT_MPX(MPX_EINVAL, mpx_conn_recv_fds(p.b.get(), got, &n, 0));
  EXPECT_MPX(MPX_EINVAL, mpx_conn_recv_fds(p.b.get(), nullptr, &n, 0));
  EXPECT_MPX(MPX_EINVAL, mpx_conn_recv_fds(p.b.get(), got, nullptr, 0));
  n = MPX_CONN_MAX_FDS;
  ASSERT_MPX_OK(mpx_conn_recv_fds(p.b.get(), got, &n, 1000));
  EXPECT_EQ(n, size_t(MPX_CONN_MAX_FDS));
  close_all(std::vector<int>(got, got + n));
  n = 4;
  EXPECT_TRUE(mpxt::TimesOutWithin(100, [&] { return mpx_conn_recv_fds(p.b.get(), got, &n, 100); }));

  auto q = mpxt::make_pipe(false);
  EXPECT_MPX(MPX_ENOTSUP, mpx_conn_send_fds(q.b.get(), fds.data(), 1));
  EXPECT_MPX(MPX_ENOTSUP, mpx_conn_recv_fds(q.a.get(), got, &n, 0));
  close_all(fds);
}

TEST(ConnFds, PeerClosingIsEof) {
  auto p = mpxt::make_pipe(true);
  p.a.reset();
  int got[1];
  size_t n = 1;
  EXPECT_MPX(MPX_EOF, mpx_conn_recv_fds(p.b.get(), got, &n, 1000));
}

// ---- connections and segments ----------------------------------------------------------

TEST(ConnSendConn, AConnectionTravelsToAnotherProcessWithItsFlags) {
  auto carrier = mpxt::make_pipe(true);
  auto oneway = mpxt::make_pipe(false);  // the child gets the sending end
  auto child = mpxt::Child::fork([&] {
    oneway.b.reset();  // the inherited copy: only the received one may remain
    mpx_conn *got = nullptr;
    CHILD_MPX_OK(mpx_conn_recv_conn(carrier.b.get(), &got, 5000));
    ConnPtr g(got);
    uint32_t flags = 0;
    CHILD_MPX_OK(mpx_conn_flags(got, &flags));
    CHILD_CHECK_EQ(flags, MPX_CONN_WRITABLE);
    uint64_t max = 0;
    CHILD_MPX_OK(mpx_conn_max_message(got, &max));
    CHILD_CHECK_EQ(max, 4096);
    CHILD_MPX_OK(mpxt::send_str(got, "through a passed pipe"));
    return 0;
  });
  {
    // Rebuild the writable end with a limit, to see that the limit travels too.
    int fd = -1;
    ASSERT_MPX_OK(mpx_conn_detach(oneway.b.release(), &fd));
    mpx_conn_options o;
    mpx_conn_options_init(&o, sizeof o);
    o.max_message = 4096;
    mpx_conn *w = nullptr;
    ASSERT_MPX_OK(mpx_conn_from_fd(fd, MPX_CONN_WRITABLE, &o, &w));
    ConnPtr gw(w);
    ASSERT_MPX_OK(mpx_conn_send_conn(carrier.a.get(), w));
  }  // our copy of the write end is gone: only the child's remains
  int rc;
  EXPECT_EQ(mpxt::recv_str(oneway.a.get(), &rc, 5000), "through a passed pipe");
  EXPECT_MPX_OK(rc);
  EXPECT_TRUE(child.wait().ok()) << child.status().describe();
  mpxt::recv_vec(oneway.a.get(), &rc, 1000);
  EXPECT_MPX(MPX_EOF, rc) << "every writer is gone";
}

TEST(ConnSendConn, WrongKindOfMessageIsProtocolError) {
  auto p = mpxt::make_pipe(true);
  auto fds = open_devnulls(1);
  warm(p.b.get());
  const int before = mpxt::count_fds();
  ASSERT_MPX_OK(mpx_conn_send_fds(p.a.get(), fds.data(), 1));
  mpx_conn *got = reinterpret_cast<mpx_conn *>(1);
  EXPECT_MPX(MPX_EPROTO, mpx_conn_recv_conn(p.b.get(), &got, 1000));
  EXPECT_EQ(got, nullptr);
  mpx_segment *seg = reinterpret_cast<mpx_segment *>(1);
  ASSERT_MPX_OK(mpx_conn_send_conn(p.a.get(), p.a.get()));
  EXPECT_MPX(MPX_EPROTO, mpx_conn_recv_segment(p.b.get(), &seg, 1000));
  EXPECT_EQ(seg, nullptr);
  EXPECT_EQ(mpxt::count_fds(), before);
  EXPECT_MPX(MPX_EINVAL, mpx_conn_recv_conn(p.b.get(), nullptr, 0));
  EXPECT_MPX(MPX_EINVAL, mpx_conn_recv_segment(p.b.get(), nullptr, 0));
  EXPECT_MPX(MPX_EINVAL, mpx_conn_send_conn(p.a.get(), nullptr));
  EXPECT_MPX(MPX_EINVAL, mpx_conn_send_segment(p.a.get(), nullptr));
  close_all(fds);
}

TEST(ConnSendSegment, AnAnonymousSegmentIsMappedByTheReceiver) {
  auto p = mpxt::make_pipe(true);
  auto seg = mpxt::make_segment(3 * 4096 + 100);
  void *addr = nullptr;
  ASSERT_MPX_OK(mpx_segment_address(seg.get(), &addr));
  std::memcpy(addr, "from the parent", 16);
  auto child = mpxt::Child::fork([&] {
    seg.reset();  // the inherited mapping goes: the child maps what it receives
    mpx_segment *got = nullptr;
    CHILD_MPX_OK(mpx_conn_recv_segment(p.b.get(), &got, 5000));
    mpxt::SegmentPtr g(got);
    size_t size = 0;
    CHILD_MPX_OK(mpx_segment_size(got, &size));
    CHILD_CHECK_EQ(size, 3 * 4096 + 100);
    void *a = nullptr;
    CHILD_MPX_OK(mpx_segment_address(got, &a));
    CHILD_CHECK(std::memcmp(a, "from the parent", 16) == 0);
    std::memcpy(a, "from the child!", 16);
    return 0;
  });
  ASSERT_MPX_OK(mpx_conn_send_segment(p.a.get(), seg.get()));
  EXPECT_TRUE(child.wait().ok()) << child.status().describe();
  EXPECT_EQ(std::memcmp(addr, "from the child!", 16), 0) << "the same memory";
}

TEST(ConnSendSegment, ANamedSegmentKeepsItsName) {
  auto p = mpxt::make_pipe(true);
  const std::string name = mpxt::unique_name("connseg");
  auto seg = mpxt::make_segment(4096, name.c_str());
  ASSERT_MPX_OK(mpx_conn_send_segment(p.a.get(), seg.get()));
  mpx_segment *got = nullptr;
  ASSERT_MPX_OK(mpx_conn_recv_segment(p.b.get(), &got, 1000));
  mpxt::SegmentPtr g(got);
  char buf[MPX_TOKEN_MAX];
  size_t len = sizeof buf;
  ASSERT_MPX_OK(mpx_segment_name(got, buf, &len));
  EXPECT_EQ(std::string(buf, len), name);
  EXPECT_MPX_OK(mpx_segment_unlink(seg.get()));
}

}  // namespace
