// Wire compatibility with Python's own multiprocessing.connection.Connection: a python3
// process on the other end of a socketpair (or pipe) exchanges messages with mpx in both
// directions, the empty message and a 100 KB one included.
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>

#include "support/conn_helpers.hpp"

using mpxt::ConnPtr;

namespace {

constexpr const char *kPython = "/usr/bin/python3";

// Python, on descriptor 3: send three messages of its own, then echo every message back
// reversed until b"bye".
constexpr const char *kEchoScript = R"(
import sys
from multiprocessing.connection import Connection
c = Connection(3)
c.send_bytes(b"")
c.send_bytes(bytes(range(256)) * 400)
c.send_bytes(b"hello from python")
while True:
    m = c.recv_bytes()
    if m == b"bye":
        break
    c.send_bytes(m[::-1])
c.close()
)";

// Python, writing on descriptor 3 (a pipe's write end): two messages, then close.
constexpr const char *kWriterScript = R"(
from multiprocessing.connection import Connection
c = Connection(3, readable=False)
c.send_bytes(b"")
c.send_bytes(b"p" * 100000)
c.close()
)";

// Python, reading on descriptor 3 (a pipe's read end): check what arrives, exit 0 if right.
constexpr const char *kReaderScript = R"(
import sys
from multiprocessing.connection import Connection
c = Connection(3, writable=False)
ok = c.recv_bytes() == b"" and c.recv_bytes() == b"m" * 100000 and c.recv_bytes(10) == b"short"
buf = bytearray(16)
ok = ok and c.recv_bytes_into(buf) == 4 and bytes(buf[:4]) == b"into"
try:
    c.recv_bytes()
    ok = False
except EOFError:
    pass
sys.exit(0 if ok else 3)
)";

bool have_python() { return access(kPython, X_OK) == 0; }

// Fork and exec python3 -c script with fd as its descriptor 3.
mpxt::Child run_python(const char *script, int fd) {
  return mpxt::Child::fork([=]() -> int {
    if (dup2(fd, 3) < 0) return 126;  // dup2 clears close-on-exec
    if (fd == 3) fcntl(3, F_SETFD, 0);
    execl(kPython, "python3", "-c", script, static_cast<char *>(nullptr));
    return 127;
  });
}

std::string bytes_range_400() {
  std::string s;
  for (int i = 0; i < 400; ++i)
    for (int b = 0; b < 256; ++b) s.push_back(static_cast<char>(b));
  return s;
}

TEST(ConnPython, SocketpairBothDirections) {
  ASSERT_TRUE(have_python()) << kPython << " not found (tools/install-deps.sh installs python3)";
  auto p = mpxt::make_pipe(true);
  auto child = run_python(kEchoScript, mpxt::fileno_of(p.b.get()));
  p.b.reset();
  int rc;
  auto m = mpxt::recv_str(p.a.get(), &rc, 20000);
  ASSERT_MPX_OK(rc);
  EXPECT_EQ(m, "");
  m = mpxt::recv_str(p.a.get(), &rc, 20000);
  ASSERT_MPX_OK(rc);
  EXPECT_TRUE(m == bytes_range_400()) << "100 KB from Python, " << m.size() << " bytes";
  EXPECT_EQ(mpxt::recv_str(p.a.get(), &rc, 20000), "hello from python");
  for (size_t size : {size_t(0), size_t(1), size_t(100000), size_t(16384), size_t(16385), size_t(3) << 20}) {
    SCOPED_TRACE(std::to_string(size) + " bytes");
    auto msg = mpxt::pattern(size, uint32_t(size));
    ASSERT_MPX_OK(mpxt::send_vec(p.a.get(), msg));
    auto back = mpxt::recv_vec(p.a.get(), &rc, 20000);
    ASSERT_MPX_OK(rc);
    std::reverse(msg.begin(), msg.end());
    EXPECT_TRUE(back == msg);
  }
  ASSERT_MPX_OK(mpxt::send_str(p.a.get(), "bye"));
  mpxt::recv_vec(p.a.get(), &rc, 20000);
  EXPECT_MPX(MPX_EOF, rc);
  EXPECT_TRUE(child.wait().ok()) << child.status().describe();
}

TEST(ConnPython, PythonWritesAPipe) {
  ASSERT_TRUE(have_python()) << kPython << " not found (tools/install-deps.sh installs python3)";
  auto p = mpxt::make_pipe(false);
  auto child = run_python(kWriterScript, mpxt::fileno_of(p.b.get()));
  p.b.reset();
  int rc;
  EXPECT_EQ(mpxt::recv_str(p.a.get(), &rc, 20000), "");
  EXPECT_MPX_OK(rc);
  EXPECT_EQ(mpxt::recv_str(p.a.get(), &rc, 20000), std::string(100000, 'p'));
  EXPECT_MPX_OK(rc);
  mpxt::recv_vec(p.a.get(), &rc, 20000);
  EXPECT_MPX(MPX_EOF, rc);
  EXPECT_TRUE(child.wait().ok()) << child.status().describe();
}

TEST(ConnPython, PythonReadsAPipe) {
  ASSERT_TRUE(have_python()) << kPython << " not found (tools/install-deps.sh installs python3)";
  auto p = mpxt::make_pipe(false);
  auto child = run_python(kReaderScript, mpxt::fileno_of(p.a.get()));
  p.a.reset();
  ASSERT_MPX_OK(mpxt::send_str(p.b.get(), ""));
  ASSERT_MPX_OK(mpxt::send_str(p.b.get(), std::string(100000, 'm')));
  ASSERT_MPX_OK(mpxt::send_str(p.b.get(), "short"));
  ASSERT_MPX_OK(mpxt::send_str(p.b.get(), "into"));
  p.b.reset();
  EXPECT_TRUE(child.wait(mpxt::Millis(20000)).ok()) << child.status().describe();
}

}  // namespace
