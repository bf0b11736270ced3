// Interoperability with the real thing: Python's own multiprocessing.connection Client and
// Listener (Python 3.11, whose handshake is HMAC-MD5, and 3.12 / 3.13, HMAC-SHA256) against
// an mpx Listener and an mpx Client, with right and wrong keys, in both directions.
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "support/child.hpp"
#include "support/listener_helpers.hpp"

using mpxt::ConnPtr;

namespace {

const std::string kKey = "interop key";

// Python's Client: connect to argv[1] (a path, "@abstract" or host:port) with key argv[2],
// exchange one message each way; argv[3] says what to expect ("ok" or "auth").
constexpr const char *kClientScript = R"(
import sys
from multiprocessing.connection import Client, AuthenticationError
addr, key, expect = sys.argv[1], sys.argv[2].encode(), sys.argv[3]
if addr.startswith('@'):
    addr = '\0' + addr[1:]
elif '/' not in addr:
    host, port = addr.rsplit(':', 1)
    addr = (host, int(port))
try:
    c = Client(addr, authkey=key)
except AuthenticationError:
    sys.exit(0 if expect == 'auth' else 5)
c.send_bytes(b'from python')
ok = c.recv_bytes() == b'from mpx'
c.close()
sys.exit(0 if ok and expect == 'ok' else 3)
)";

// Python's Listener on argv[1] (a path or "@abstract") with key argv[2]: accept one
// client, echo one message reversed.
constexpr const char *kListenerScript = R"(
import sys
from multiprocessing.connection import Listener, AuthenticationError
addr, key, expect = sys.argv[1], sys.argv[2].encode(), sys.argv[3]
if addr.startswith('@'):
    addr = '\0' + addr[1:]
l = Listener(addr, authkey=key)
try:
    c = l.accept()
except AuthenticationError:
    l.close()
    sys.exit(0 if expect == 'auth' else 5)
m = c.recv_bytes()
c.send_bytes(m[::-1])
c.close()
l.close()
sys.exit(0 if expect == 'ok' else 3)
)";

std::vector<std::string> interpreters() {
  std::vector<std::string> out;
  if (access("/usr/bin/python3", X_OK) == 0) out.push_back("/usr/bin/python3");
  for (const char *v : {"3.12", "3.13"}) {
    const std::string glob = std::string("ls -d /root/.pyenv/versions/") + v + "*/bin/python3 2>/dev/null | head -1";
    FILE *p = popen(glob.c_str(), "r");
    if (!p) continue;
    char buf[512] = "";
    if (fgets(buf, sizeof buf, p)) {
      std::string s(buf);
      while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
      if (!s.empty()) out.push_back(s);
    }
    pclose(p);
  }
  return out;
}

mpxt::Child run_python(const std::string &python, const char *script, const std::vector<std::string> &args) {
  return mpxt::Child::fork([=]() -> int {
    const int devnull = ::open("/dev/null", O_WRONLY);
    if (devnull >= 0) dup2(devnull, 2);  // AuthenticationError tracebacks are expected
    std::vector<char *> argv{const_cast<char *>("python3"), const_cast<char *>("-c"), const_cast<char *>(script)};
    for (const auto &a : args) argv.push_back(const_cast<char *>(a.c_str()));
    argv.push_back(nullptr);
    execv(python.c_str(), argv.data());
    return 127;
  });
}

class ListenerPython : public ::testing::Test {
 protected:
  void SetUp() override {
    pythons_ = interpreters();
    ASSERT_FALSE(pythons_.empty()) << "no python3 found";
  }
  std::vector<std::string> pythons_;
};

// Python's Client against an mpx Listener at addr.
void python_client_to_mpx(const std::string &python, const std::string &addr_in, const std::string &client_key,
                          uint32_t flags, bool expect_ok) {
  SCOPED_TRACE(python + " Client -> mpx Listener at " + addr_in + (expect_ok ? ", right key" : ", refused"));
  int rc;
  auto l = mpxt::make_listener(addr_in, &kKey, 10000, &rc, flags);
  ASSERT_MPX_OK(rc);
  const std::string addr = mpxt::listener_address(l.get());
  auto child = run_python(python, kClientScript, {addr, client_key, expect_ok ? "ok" : "auth"});
  mpx_conn *a = nullptr;
  rc = mpx_listener_accept(l.get(), 20000, &a);
  ConnPtr ac(a);
  if (expect_ok) {
    ASSERT_MPX_OK(rc);
    EXPECT_EQ(mpxt::recv_str(ac.get(), &rc, 20000), "from python");
    EXPECT_MPX_OK(mpxt::send_str(ac.get(), "from mpx"));
  } else {
    EXPECT_MPX(MPX_EAUTH, rc);
  }
  EXPECT_TRUE(child.wait(mpxt::Millis(20000)).ok()) << child.status().describe();
}

// An mpx Client against Python's Listener at addr.
void mpx_client_to_python(const std::string &python, const std::string &addr, const std::string &listener_key,
                          uint32_t flags, bool expect_ok) {
  SCOPED_TRACE("mpx Client -> " + python + " Listener at " + addr + (expect_ok ? ", right key" : ", refused"));
  auto child = run_python(python, kListenerScript, {addr, listener_key, expect_ok ? "ok" : "auth"});
  int rc = MPX_ETIMEDOUT;
  ConnPtr c;
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (std::chrono::steady_clock::now() < until) {  // until Python listens
    c = mpxt::connect_to(addr, &kKey, &rc, flags, 10000);
    if (rc == MPX_OK || rc == MPX_EAUTH) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (expect_ok) {
    ASSERT_MPX_OK(rc) << mpx_last_error_message();
    ASSERT_MPX_OK(mpxt::send_str(c.get(), "abc"));
    EXPECT_EQ(mpxt::recv_str(c.get(), &rc, 20000), "cba");
  } else {
    EXPECT_MPX(MPX_EAUTH, rc);
  }
  EXPECT_TRUE(child.wait(mpxt::Millis(20000)).ok()) << child.status().describe();
}

TEST_F(ListenerPython, PythonClientToMpxListener) {
  mpxt::TempDir d;
  for (const auto &py : pythons_) {
    python_client_to_mpx(py, d.file("a"), kKey, 0, true);
    python_client_to_mpx(py, "127.0.0.1:0", kKey, 0, true);
    python_client_to_mpx(py, "@" + mpxt::unique_name("pyc"), kKey, 0, true);
    python_client_to_mpx(py, d.file("b"), "not the key", 0, false);
    python_client_to_mpx(py, "127.0.0.1:0", "not the key", 0, false);
  }
}

TEST_F(ListenerPython, MpxClientToPythonListener) {
  mpxt::TempDir d;
  int n = 0;
  for (const auto &py : pythons_) {
    mpx_client_to_python(py, d.file(("ok" + std::to_string(n)).c_str()), kKey, 0, true);
    mpx_client_to_python(py, "@" + mpxt::unique_name("pyl"), kKey, 0, true);
    mpx_client_to_python(py, d.file(("bad" + std::to_string(n)).c_str()), "not the key", 0, false);
    ++n;
  }
}

TEST_F(ListenerPython, RequireSha256RefusesPython311OnlyThere) {
  mpxt::TempDir d;
  for (const auto &py : pythons_) {
    const bool legacy = py == "/usr/bin/python3";  // Debian 12's python3 is 3.11
    python_client_to_mpx(py, "127.0.0.1:0", kKey, MPX_AUTH_REQUIRE_SHA256, !legacy);
  }
}

}  // namespace
