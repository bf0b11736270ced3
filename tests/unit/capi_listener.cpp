// Listener and Client (mpx/listener.h): unix paths, abstract names, TCP v4 and v6, accept
// timeouts, close waking accept, peer addresses, many clients; scenarios 41 (wrong key),
// 42 (silent and trickling clients dropped at their deadline) and 44 (address in use,
// accept after close, socket file mode and removal).
#include <arpa/inet.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <sys/stat.h>

#include <atomic>
#include <cstddef>
#include <chrono>
#include <thread>
#include <vector>

#include "support/listener_helpers.hpp"

using mpxt::ConnPtr;
using mpxt::ListenerPtr;

namespace {

const std::string kKey = "secret key";
const std::string kWrongKey = "wrong key";

// Accept one connection and check a round trip with the client on another thread.
void round_trip(const std::string &addr, const std::string *key) {
  auto l = mpxt::make_listener(addr, key);
  ASSERT_TRUE(l) << mpx_last_error_message();
  const std::string real = mpxt::listener_address(l.get());
  std::thread client([&] {
    int rc;
    auto c = mpxt::connect_to(real, key, &rc);
    ASSERT_MPX_OK(rc);
    ASSERT_MPX_OK(mpxt::send_str(c.get(), "ping"));
    EXPECT_EQ(mpxt::recv_str(c.get(), &rc), "pong");
    EXPECT_MPX_OK(rc);
  });
  mpx_conn *a = nullptr;
  ASSERT_MPX_OK(mpx_listener_accept(l.get(), 10000, &a));
  ConnPtr ac(a);
  int rc;
  EXPECT_EQ(mpxt::recv_str(ac.get(), &rc), "ping");
  EXPECT_MPX_OK(mpxt::send_str(ac.get(), "pong"));
  client.join();
}

TEST(Listener, UnixPathWithKey) {
  mpxt::TempDir d;
  const std::string path = d.file("sock");
  {
    auto l = mpxt::make_listener(path, &kKey);
    ASSERT_TRUE(l) << mpx_last_error_message();
    EXPECT_EQ(mpxt::listener_address(l.get()), path);
    struct stat st {};
    ASSERT_EQ(::stat(path.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);
    ASSERT_MPX_OK(mpx_listener_close(l.get()));
    EXPECT_NE(::access(path.c_str(), F_OK), 0) << "the socket file is removed by close";
    mpx_conn *a = nullptr;
    EXPECT_MPX(MPX_ECLOSED, mpx_listener_accept(l.get(), 0, &a));
  }
  round_trip(path, &kKey);
  round_trip(path, nullptr);
}

TEST(Listener, AbstractName) {
  const std::string name = "@" + mpxt::unique_name("listen");
  round_trip(name, &kKey);
  auto l = mpxt::make_listener(name, nullptr);
  ASSERT_TRUE(l);
  EXPECT_EQ(mpxt::listener_address(l.get()), name);
}

TEST(Listener, TcpV4AndPeerAddress) {
  auto l = mpxt::make_listener("127.0.0.1:0", &kKey);
  ASSERT_TRUE(l) << mpx_last_error_message();
  const std::string addr = mpxt::listener_address(l.get());
  ASSERT_EQ(addr.rfind("127.0.0.1:", 0), 0u) << addr;
  EXPECT_NE(addr, "127.0.0.1:0");
  int rc;
  mpxt::last_accepted(l.get(), &rc);
  EXPECT_MPX(MPX_ENOENT, rc);
  auto c = mpxt::connect_to(addr, &kKey, &rc);
  ASSERT_MPX_OK(rc);
  mpx_conn *a = nullptr;
  ASSERT_MPX_OK(mpx_listener_accept(l.get(), 10000, &a));
  ConnPtr ac(a);
  const std::string peer = mpxt::last_accepted(l.get(), &rc);
  ASSERT_MPX_OK(rc);
  EXPECT_EQ(peer.rfind("127.0.0.1:", 0), 0u) << peer;
  round_trip("127.0.0.1:0", &kKey);
  round_trip("localhost:0", nullptr);
}

TEST(Listener, TcpV6) {
  int rc;
  auto l = mpxt::make_listener("[::1]:0", &kKey, 0, &rc);
  if (rc == MPX_ENOTSUP || rc == MPX_ESYS) GTEST_SKIP() << "no IPv6 loopback here";
  ASSERT_TRUE(l) << mpx_last_error_message();
  const std::string addr = mpxt::listener_address(l.get());
  ASSERT_EQ(addr.rfind("[::1]:", 0), 0u) << addr;
  auto c = mpxt::connect_to(addr, &kKey, &rc);
  ASSERT_MPX_OK(rc);
  mpx_conn *a = nullptr;
  ASSERT_MPX_OK(mpx_listener_accept(l.get(), 10000, &a));
  ConnPtr ac(a);
  EXPECT_EQ(mpxt::last_accepted(l.get(), &rc).rfind("[::1]:", 0), 0u);
  ASSERT_MPX_OK(mpxt::send_str(c.get(), "v6"));
  EXPECT_EQ(mpxt::recv_str(ac.get(), &rc), "v6");
}

TEST(Listener, AcceptTimeout) {
  auto l = mpxt::make_listener("127.0.0.1:0", nullptr);
  ASSERT_TRUE(l);
  mpx_conn *a = nullptr;
  EXPECT_MPX(MPX_ETIMEDOUT, mpx_listener_accept(l.get(), 0, &a));
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_MPX(MPX_ETIMEDOUT, mpx_listener_accept(l.get(), 100, &a));
  EXPECT_GE(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(90));
  EXPECT_EQ(a, nullptr);
}

TEST(Listener, CloseWakesAccept) {
  mpxt::TempDir d;
  const std::string path = d.file("s");
  auto l = mpxt::make_listener(path, &kKey);
  ASSERT_TRUE(l);
  std::atomic<int> got{1};
  std::thread t([&] {
    mpx_conn *a = nullptr;
    got = mpx_listener_accept(l.get(), -1, &a);
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  ASSERT_MPX_OK(mpx_listener_close(l.get()));
  t.join();
  EXPECT_MPX(MPX_ECLOSED, got.load());
  EXPECT_NE(::access(path.c_str(), F_OK), 0);
  int rc;
  auto c = mpxt::connect_to(path, &kKey, &rc, 0, 1000);
  EXPECT_NE(rc, MPX_OK);
}

TEST(Listener, DestroyWakesAccept) {
  auto l = mpxt::make_listener("127.0.0.1:0", nullptr);
  ASSERT_TRUE(l);
  std::atomic<int> got{1};
  mpx_listener *raw = l.release();
  std::thread t([&] {
    mpx_conn *a = nullptr;
    got = mpx_listener_accept(raw, -1, &a);
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  ASSERT_MPX_OK(mpx_listener_destroy(raw));
  t.join();
  EXPECT_TRUE(got == MPX_ECLOSED || got == MPX_EBADHANDLE) << got;
}

TEST(Listener, AddressInUse) {
  mpxt::TempDir d;
  const std::string path = d.file("s");
  auto l = mpxt::make_listener(path, nullptr);
  ASSERT_TRUE(l);
  int rc;
  auto l2 = mpxt::make_listener(path, nullptr, 0, &rc);
  EXPECT_MPX(MPX_EADDRINUSE, rc);
  EXPECT_EQ(::access(path.c_str(), F_OK), 0) << "the first listener's socket stays";
  auto t = mpxt::make_listener("127.0.0.1:0", nullptr);
  ASSERT_TRUE(t);
  auto t2 = mpxt::make_listener(mpxt::listener_address(t.get()), nullptr, 0, &rc);
  EXPECT_MPX(MPX_EADDRINUSE, rc);
  const std::string name = "@" + mpxt::unique_name("inuse");
  auto a1 = mpxt::make_listener(name, nullptr);
  ASSERT_TRUE(a1);
  auto a2 = mpxt::make_listener(name, nullptr, 0, &rc);
  EXPECT_MPX(MPX_EADDRINUSE, rc);
}

TEST(Listener, OptionsLayout) {  // the Python binding's ctypes mirrors rely on it (LP64)
  EXPECT_EQ(sizeof(mpx_listener_options), 48u);
  EXPECT_EQ(offsetof(mpx_listener_options, authkey), 8u);
  EXPECT_EQ(offsetof(mpx_listener_options, handshake_timeout_ms), 24u);
  EXPECT_EQ(offsetof(mpx_listener_options, backlog), 32u);
  EXPECT_EQ(offsetof(mpx_listener_options, max_message), 40u);
  EXPECT_EQ(sizeof(mpx_client_options), 40u);
  EXPECT_EQ(offsetof(mpx_client_options, timeout_ms), 24u);
  EXPECT_EQ(offsetof(mpx_client_options, max_message), 32u);
}

TEST(Listener, BadArguments) {
  int rc;
  for (const char *bad : {"", "nocolon", "127.0.0.1:99999", "127.0.0.1:x", "[::1]80", "a:b:c"}) {
    auto l = mpxt::make_listener(bad, nullptr, 0, &rc);
    EXPECT_MPX(MPX_EINVAL, rc) << bad;
  }
  std::string empty;
  auto l = mpxt::make_listener("127.0.0.1:0", &empty, 0, &rc);
  EXPECT_MPX(MPX_EINVAL, rc) << "an empty key is refused (NULL means no authentication)";
  mpx_listener_options o;
  mpx_listener_options_init(&o, sizeof o);
  o.size = 3;
  mpx_listener *x = nullptr;
  EXPECT_MPX(MPX_EINVAL, mpx_listener_create(&x, "127.0.0.1:0", &o));
}

TEST(Listener, ManyClients) {
  auto l = mpxt::make_listener("127.0.0.1:0", &kKey);
  ASSERT_TRUE(l);
  const std::string addr = mpxt::listener_address(l.get());
  constexpr int kClients = 24;
  std::vector<std::thread> ts;
  std::atomic<int> ok{0};
  for (int i = 0; i < kClients; ++i)
    ts.emplace_back([&, i] {
      int rc;
      auto c = mpxt::connect_to(addr, &kKey, &rc);
      if (rc != MPX_OK) return;
      if (mpxt::send_str(c.get(), std::to_string(i)) != MPX_OK) return;
      if (mpxt::recv_str(c.get(), &rc) == "ok " + std::to_string(i)) ++ok;
    });
  std::vector<bool> seen(kClients);
  for (int i = 0; i < kClients; ++i) {
    mpx_conn *a = nullptr;
    ASSERT_MPX_OK(mpx_listener_accept(l.get(), 10000, &a));
    ConnPtr ac(a);
    int rc;
    const std::string m = mpxt::recv_str(ac.get(), &rc);
    ASSERT_MPX_OK(rc);
    const int id = std::stoi(m);
    ASSERT_TRUE(id >= 0 && id < kClients && !seen[id]);
    seen[id] = true;
    EXPECT_MPX_OK(mpxt::send_str(ac.get(), "ok " + m));
  }
  for (auto &t : ts) t.join();
  EXPECT_EQ(ok.load(), kClients);
}

// ---- scenario 41 --------------------------------------------------------------------------

TEST(Listener, WrongKeyBothSidesAndServerGoesOn) {
  auto l = mpxt::make_listener("127.0.0.1:0", &kKey);
  ASSERT_TRUE(l);
  const std::string addr = mpxt::listener_address(l.get());
  int rc;
  auto bad = mpxt::connect_to(addr, &kWrongKey, &rc);
  EXPECT_MPX(MPX_EAUTH, rc);
  EXPECT_FALSE(bad);
  mpx_conn *a = nullptr;
  EXPECT_MPX(MPX_EAUTH, mpx_listener_accept(l.get(), 10000, &a));
  EXPECT_EQ(a, nullptr);
  // A client with no key at all: it reads the challenge as a message; the server waits for
  // an answer, gets payload instead, and reports a failure: the payload never surfaces.
  {
    auto nokey = mpxt::connect_to(addr, nullptr, &rc);
    ASSERT_MPX_OK(rc);
    ASSERT_MPX_OK(mpxt::send_str(nokey.get(), "payload before auth"));
    EXPECT_MPX(MPX_EAUTH, mpx_listener_accept(l.get(), 10000, &a));
    auto challenge = mpxt::recv_str(nokey.get(), &rc);
    EXPECT_EQ(challenge.rfind("#CHALLENGE#{sha256}", 0), 0u);
    EXPECT_EQ(mpxt::recv_str(nokey.get(), &rc), "#FAILURE#");
  }
  // The server still serves a good client.
  auto good = mpxt::connect_to(addr, &kKey, &rc);
  ASSERT_MPX_OK(rc);
  ASSERT_MPX_OK(mpx_listener_accept(l.get(), 10000, &a));
  ConnPtr ac(a);
  ASSERT_MPX_OK(mpxt::send_str(good.get(), "after"));
  EXPECT_EQ(mpxt::recv_str(ac.get(), &rc), "after");
}

TEST(Listener, OversizedHandshakeMessagesAreDropped) {
  auto l = mpxt::make_listener("127.0.0.1:0", &kKey);
  ASSERT_TRUE(l);
  const std::string addr = mpxt::listener_address(l.get());
  for (bool huge : {false, true}) {
    const int fd = mpxt::raw_connect(addr);
    ASSERT_GE(fd, 0);
    // Answer with a 257-byte message, or a 2^63 long-form header.
    auto h = huge ? mpxt::frame_header(uint64_t(1) << 62, true) : mpxt::frame_header(257);
    ASSERT_TRUE(mpxt::write_raw(fd, h.data(), h.size()));
    // The server hangs up without allocating or waiting for the body.
    char buf[512];
    ssize_t n;
    size_t total = 0;
    while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) total += size_t(n);
    EXPECT_TRUE(n == 0 || errno == ECONNRESET) << "hung up: " << n << ", after " << total << " bytes";
    ::close(fd);
  }
  mpx_conn *a = nullptr;
  EXPECT_MPX(MPX_ETIMEDOUT, mpx_listener_accept(l.get(), 100, &a));
}

TEST(Listener, RequireSha256RefusesLegacyAnswers) {
  // The answering side (client) with the flag refuses a legacy challenge; the delivering
  // side refuses a 16-byte MD5 answer. Over a pipe, with the challenge functions.
  for (int variant = 0; variant < 3; ++variant) {
    auto p = mpxt::make_pipe(true);
    std::atomic<int> server_rc{1};
    const uint32_t server_flags = variant == 1 ? MPX_AUTH_REQUIRE_SHA256 : 0;
    const std::string &client_key = variant == 2 ? kWrongKey : kKey;
    std::thread t([&] {
      server_rc = mpx_conn_deliver_challenge(p.a.get(), kKey.data(), kKey.size(), server_flags, 5000);
    });
    const int client_rc = mpx_conn_answer_challenge(p.b.get(), client_key.data(), client_key.size(), 0, 5000);
    t.join();
    if (variant == 2) {
      EXPECT_MPX(MPX_EAUTH, client_rc);
      EXPECT_MPX(MPX_EAUTH, server_rc.load());
    } else {
      EXPECT_MPX_OK(client_rc);
      EXPECT_MPX_OK(server_rc.load());
    }
  }
  // A hand-made legacy answer (bare 16 bytes) to a server that requires sha256.
  auto p = mpxt::make_pipe(true);
  std::atomic<int> server_rc{1};
  std::thread t([&] {
    server_rc = mpx_conn_deliver_challenge(p.a.get(), kKey.data(), kKey.size(), MPX_AUTH_REQUIRE_SHA256, 5000);
  });
  int rc;
  auto ch = mpxt::recv_str(p.b.get(), &rc);
  ASSERT_MPX_OK(rc);
  ASSERT_MPX_OK(mpxt::send_str(p.b.get(), std::string(16, 'x')));
  EXPECT_EQ(mpxt::recv_str(p.b.get(), &rc), "#FAILURE#");
  t.join();
  EXPECT_MPX(MPX_EAUTH, server_rc.load());
}

TEST(Listener, ReplayedAnswerFails) {
  // Scenario 43: an answer recorded on one connection does not open another.
  auto l = mpxt::make_listener("127.0.0.1:0", &kKey);
  ASSERT_TRUE(l);
  const std::string addr = mpxt::listener_address(l.get());
  int rc;
  auto c1 = mpxt::connect_to(addr, nullptr, &rc);  // no key: reads the challenge raw
  ASSERT_MPX_OK(rc);
  auto ch1 = mpxt::recv_str(c1.get(), &rc);
  ASSERT_MPX_OK(rc);
  // Compute a right answer for connection 1 through the library (a pipe as the channel).
  auto p = mpxt::make_pipe(true);
  std::thread t([&] {
    mpxt::send_str(p.a.get(), ch1);
    int r;
    std::string ans = mpxt::recv_str(p.a.get(), &r);
    mpxt::send_str(c1.get(), ans);   // the right answer for c1
    mpxt::send_str(p.a.get(), "#FAILURE#");
    // Replay that answer on a second connection.
    auto c2 = mpxt::connect_to(addr, nullptr, &r);
    mpxt::recv_str(c2.get(), &r);
    mpxt::send_str(c2.get(), ans);
    EXPECT_EQ(mpxt::recv_str(c2.get(), &r), "#FAILURE#");
  });
  EXPECT_MPX(MPX_EAUTH, mpx_conn_answer_challenge(p.b.get(), kKey.data(), kKey.size(), 0, 5000));
  t.join();
  EXPECT_EQ(mpxt::recv_str(c1.get(), &rc), "#WELCOME#") << "the answer was right for its own connection";
  mpx_conn *a = nullptr;
  EXPECT_MPX(MPX_EAUTH, mpx_listener_accept(l.get(), 5000, &a)) << "the replay";
}

// ---- scenario 42 --------------------------------------------------------------------------

TEST(Listener, SilentAndTricklingClientsDroppedAtDeadline) {
  auto l = mpxt::make_listener("127.0.0.1:0", &kKey, 1000);
  ASSERT_TRUE(l);
  const std::string addr = mpxt::listener_address(l.get());
  const int silent = mpxt::raw_connect(addr);
  ASSERT_GE(silent, 0);
  std::atomic<bool> stop{false};
  const int trickle = mpxt::raw_connect(addr);
  ASSERT_GE(trickle, 0);
  std::thread trickler([&] {
    // An answer announced as 40 bytes, sent one byte every 50 ms (it would take 2.2 s).
    auto h = mpxt::frame_header(40);
    std::string bytes(h.begin(), h.end());
    bytes += std::string(40, 'z');
    for (char b : bytes) {
      if (stop) break;
      if (::send(trickle, &b, 1, MSG_NOSIGNAL) != 1) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  });
  // Meanwhile good clients are served at once.
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < 3; ++i) {
    int rc;
    auto c = mpxt::connect_to(addr, &kKey, &rc);
    ASSERT_MPX_OK(rc);
    mpx_conn *a = nullptr;
    ASSERT_MPX_OK(mpx_listener_accept(l.get(), 5000, &a));
    mpx_conn_destroy(a);
  }
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(800)) << "served before the deadline";
  // The silent one is hung up on at its deadline (it reads the challenge, then EOF).
  auto drained = [](int fd) {
    char buf[512];
    ssize_t n;
    while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) {
    }
    return n == 0 || errno == ECONNRESET;
  };
  EXPECT_TRUE(drained(silent));
  const auto t_silent = std::chrono::steady_clock::now() - t0;
  EXPECT_GE(t_silent, std::chrono::milliseconds(900));
  EXPECT_LT(t_silent, std::chrono::milliseconds(5000));
  EXPECT_TRUE(drained(trickle));
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(2000)) << "the trickler needs 2.2 s";
  stop = true;
  trickler.join();
  ::close(silent);
  ::close(trickle);
  mpx_conn *a = nullptr;
  EXPECT_MPX(MPX_ETIMEDOUT, mpx_listener_accept(l.get(), 50, &a)) << "nothing reaches accept";
}

TEST(Listener, NoKeyLocalOnly) {
  // Without a key loopback clients are served; a remote one would be refused (not testable
  // without a second address). The handshake is skipped: payload flows at once.
  auto l = mpxt::make_listener("127.0.0.1:0", nullptr);
  ASSERT_TRUE(l);
  int rc;
  auto c = mpxt::connect_to(mpxt::listener_address(l.get()), nullptr, &rc);
  ASSERT_MPX_OK(rc);
  ASSERT_MPX_OK(mpxt::send_str(c.get(), "direct"));
  mpx_conn *a = nullptr;
  ASSERT_MPX_OK(mpx_listener_accept(l.get(), 5000, &a));
  ConnPtr ac(a);
  EXPECT_EQ(mpxt::recv_str(ac.get(), &rc), "direct");
}

// A non-loopback IPv4 address of this machine, or "".
std::string external_ipv4() {
  ifaddrs *ifs = nullptr;
  if (getifaddrs(&ifs) != 0) return "";
  std::string out;
  for (ifaddrs *i = ifs; i && out.empty(); i = i->ifa_next) {
    if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET) continue;
    const auto *in = reinterpret_cast<const sockaddr_in *>(i->ifa_addr);
    if ((ntohl(in->sin_addr.s_addr) >> 24) == 127) continue;
    char buf[INET_ADDRSTRLEN];
    if (inet_ntop(AF_INET, &in->sin_addr, buf, sizeof buf)) out = buf;
  }
  freeifaddrs(ifs);
  return out;
}

TEST(Listener, NoKeyRefusesRemoteUnlessAllowed) {
  const std::string ip = external_ipv4();
  if (ip.empty()) GTEST_SKIP() << "no non-loopback IPv4 address here";
  for (bool allow : {false, true}) {
    SCOPED_TRACE(allow ? "MPX_LISTENER_ALLOW_REMOTE" : "local only");
    int rc;
    auto l = mpxt::make_listener(ip + ":0", nullptr, 0, &rc, allow ? MPX_LISTENER_ALLOW_REMOTE : 0);
    ASSERT_MPX_OK(rc);
    auto c = mpxt::connect_to(mpxt::listener_address(l.get()), nullptr, &rc);  // from `ip`: not loopback
    ASSERT_MPX_OK(rc);
    mpx_conn *a = nullptr;
    rc = mpx_listener_accept(l.get(), 500, &a);
    ConnPtr ac(a);
    if (allow) {
      ASSERT_MPX_OK(rc);
      ASSERT_MPX_OK(mpxt::send_str(c.get(), "remote"));
      EXPECT_EQ(mpxt::recv_str(ac.get(), &rc), "remote");
    } else {
      EXPECT_MPX(MPX_ETIMEDOUT, rc);
      mpxt::recv_str(c.get(), &rc, 2000);
      EXPECT_TRUE(rc == MPX_EOF || rc == MPX_EPIPE || rc == MPX_EPROTO || rc == MPX_ESYS) << mpxt::code_str(rc);
    }
  }
}

}  // namespace
