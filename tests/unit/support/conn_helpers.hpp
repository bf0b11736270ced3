// Helpers for the connection tests (header-only, like mpx_helpers.hpp): owned connections,
// pairs, byte patterns that reveal reordering, and raw frames written by hand.
#pragma once

#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "support/mpx_helpers.hpp"

namespace mpxt {

using ConnPtr = std::unique_ptr<mpx_conn, Destroyer<mpx_conn, mpx_conn_destroy>>;

struct ConnPair {
  ConnPtr a, b;
};

/** mpx_pipe: duplex (a socketpair) or one-way (a receives, b sends). */
inline ConnPair make_pipe(bool duplex = true, uint64_t max_message = 0) {
  mpx_conn_options o;
  mpx_conn_options_init(&o, sizeof o);
  o.max_message = max_message;
  mpx_conn *a = nullptr, *b = nullptr;
  int rc = mpx_pipe(duplex ? 1 : 0, &o, &a, &b);
  EXPECT_EQ(rc, MPX_OK) << code_str(rc) << ": " << mpx_last_error_message();
  return ConnPair{ConnPtr(a), ConnPtr(b)};
}

/** Bytes whose every position depends on seed and index: a misplaced byte is noticed. */
inline std::vector<uint8_t> pattern(size_t n, uint32_t seed = 1) {
  std::vector<uint8_t> v(n);
  uint32_t x = seed * 2654435761u + 1;
  for (size_t i = 0; i < n; ++i) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    v[i] = static_cast<uint8_t>(x);
  }
  return v;
}

/** Receive one message as a vector; the code in *rc. */
inline std::vector<uint8_t> recv_vec(mpx_conn *c, int *rc, int64_t timeout_ms = 10000, size_t maxlength = 0) {
  void *data = nullptr;
  size_t len = 0;
  *rc = mpx_conn_recv(c, maxlength, &data, &len, timeout_ms);
  std::vector<uint8_t> v;
  if (*rc == MPX_OK) {
    v.assign(static_cast<uint8_t *>(data), static_cast<uint8_t *>(data) + len);
    mpx_free(data);
  }
  return v;
}

inline int send_vec(mpx_conn *c, const std::vector<uint8_t> &v) { return mpx_conn_send(c, v.data(), v.size()); }
inline int send_str(mpx_conn *c, const std::string &s) { return mpx_conn_send(c, s.data(), s.size()); }

inline std::string recv_str(mpx_conn *c, int *rc, int64_t timeout_ms = 10000) {
  auto v = recv_vec(c, rc, timeout_ms);
  return std::string(v.begin(), v.end());
}

/** The descriptor of a connection (-1 on error). */
inline int fileno_of(mpx_conn *c) {
  int fd = -1;
  mpx_conn_fileno(c, &fd);
  return fd;
}

/** Write all of buf to a raw descriptor (test choreography: hand-made frames). */
inline bool write_raw(int fd, const void *buf, size_t n) {
  const auto *p = static_cast<const uint8_t *>(buf);
  while (n > 0) {
    ssize_t w = ::send(fd, p, n, MSG_NOSIGNAL);
    if (w < 0 && errno == ENOTSOCK) w = ::write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

/** A Python-framed header for n bytes, in the short or the -1 + Q form. */
inline std::vector<uint8_t> frame_header(uint64_t n, bool long_form = false) {
  std::vector<uint8_t> h;
  auto be32 = [&](uint32_t v) {
    for (int i = 3; i >= 0; --i) h.push_back(static_cast<uint8_t>(v >> (8 * i)));
  };
  if (!long_form && n <= 0x7fffffff) {
    be32(static_cast<uint32_t>(n));
  } else {
    be32(0xffffffffu);
    be32(static_cast<uint32_t>(n >> 32));
    be32(static_cast<uint32_t>(n));
  }
  return h;
}

/** The calling thread's id (for asleep()). */
inline pid_t thread_id() { return static_cast<pid_t>(::gettid()); }

/** Wait until thread `tid` of this process sleeps ('S' in /proc: blocked in a system call). */
inline bool asleep(pid_t tid, Millis deadline = Millis(5000)) {
  const std::string path = "/proc/self/task/" + std::to_string(tid) + "/stat";
  Stopwatch sw;
  for (;;) {
    std::ifstream in(path);
    std::string line;
    std::getline(in, line);
    auto close = line.rfind(')');
    if (close != std::string::npos && close + 2 < line.size() && line[close + 2] == 'S') return true;
    if (sw.ms() > deadline.count()) return false;
    sleep_ms(1);
  }
}

/** Warm the library's lazy state for connections (handle table, first eventfd) before the first test. */
inline void conn_warmup() {
  auto p = make_pipe();
  mpx_conn_poll(p.a.get(), 0);
  send_str(p.b.get(), "x");
  int rc;
  recv_vec(p.a.get(), &rc);
}
inline const bool kConnWarmupRegistered = register_warmup(&conn_warmup);

}  // namespace mpxt
