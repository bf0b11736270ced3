// bench_pipe: mpx_pipe connections between two processes side by side with raw pipes and
// socketpairs carrying the same framing, all measured in the same run, printing medians and
// ratios next to the targets of issue 4.
//
//   bench_pipe            the full table (about 15 s with the defaults)
//   bench_pipe --quick    a few hundred messages, one repetition; exits 1 only on a wrong result
//                         (a failed call, a message lost, reordered, torn or misframed), never on
//                         timing
//
// Round trip: this process sends a 64 B message and waits for it to come back; a forked child
// receives it and sends it back (mpx: mpx_conn_send + mpx_conn_recv_into on a duplex pipe; raw:
// the same over a socketpair). Timed over N round trips after a warm-up.
// Throughput: this process sends warm + N messages of 1 MiB one way, a forked child receives
// each into one reusable buffer and checks it; the clock starts when the child has the warm-up
// messages and stops when it has the last.
// A repetition cuts its N round trips or messages into 5 blocks in which the columns take
// turns (each block a fresh child with its own warm-up, each block starting with another
// column), and sums.
//
// The raw baselines frame a message as mpx and Python's multiprocessing.connection do: a 4-byte
// big-endian length, then the payload; the sender writes both in one system call (one write of
// a copied frame up to 4 KiB, else one writev), the receiver reads the length, then the payload.
//
// Environment: MPX_BENCH_PIPE_RT_N (round trips, default 10,000), MPX_BENCH_PIPE_N (1 MiB
// messages, default 1,000), MPX_BENCH_SCALE (multiplies both), MPX_BENCH_REPS (default 5;
// medians reported), MPX_BENCH_PIN (all: the two processes on CPUs 0 and 1; by default they are
// not pinned, see bench_ipc.hpp).
//
// Round trips are times (lower is better, mpx/base < 1: mpx faster); throughputs are rates
// (higher is better, mpx/base > 1: mpx faster).

#include <arpa/inet.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "bench_common.hpp"
#include "bench_ipc.hpp"
#include "mpx/mpx.h"

namespace {

using namespace mpxbench;
using namespace mpxbench::ipc;

constexpr size_t kSmall = 64;
constexpr size_t kLarge = 1 << 20;
constexpr size_t kCopyFrame = 4096;  // frames up to this are copied and written at once

struct Config {
  long n_rt = 10'000;
  long warm_rt = 50;  // per block
  long n_large = 1'000;
  long warm_large = 10;
  int reps = 5;
  bool quick = false;
} cfg;

// ---- raw framing over a descriptor ------------------------------------------------------------

bool write_all(int fd, const void *p, size_t n) {
  auto *c = static_cast<const char *>(p);
  while (n > 0) {
    const ssize_t w = write(fd, c, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    c += w;
    n -= size_t(w);
  }
  return true;
}

bool read_all(int fd, void *p, size_t n) {
  auto *c = static_cast<char *>(p);
  while (n > 0) {
    const ssize_t r = read(fd, c, n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    c += r;
    n -= size_t(r);
  }
  return true;
}

bool raw_send(int fd, const void *data, size_t len) {
  const uint32_t be = htonl(uint32_t(len));
  if (len <= kCopyFrame) {
    unsigned char frame[4 + kCopyFrame];
    std::memcpy(frame, &be, 4);
    std::memcpy(frame + 4, data, len);
    return write_all(fd, frame, 4 + len);
  }
  iovec iov[2] = {{const_cast<uint32_t *>(&be), 4}, {const_cast<void *>(data), len}};
  size_t left = 4 + len;
  while (left > 0) {
    const ssize_t w = writev(fd, iov, 2);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    left -= size_t(w);
    for (size_t k = size_t(w), i = 0; i < 2 && k > 0; ++i) {  // skip what was written
      const size_t d = std::min(k, iov[i].iov_len);
      iov[i].iov_base = static_cast<char *>(iov[i].iov_base) + d;
      iov[i].iov_len -= d;
      k -= d;
    }
  }
  return true;
}

bool raw_recv(int fd, void *buf, size_t cap, size_t *len) {
  uint32_t be;
  if (!read_all(fd, &be, 4)) return false;
  *len = ntohl(be);
  return *len <= cap && read_all(fd, buf, *len);
}

// ---- the connections under test ------------------------------------------------------------

struct Fds {
  int rd, wr;  // this process writes to wr; the child reads rd (and answers on it, if duplex)
};

Fds raw_socketpair() {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
    std::perror("socketpair");
    std::exit(1);
  }
  return {sv[1], sv[0]};
}

Fds raw_pipe(int capacity) {
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0) {
    std::perror("pipe2");
    std::exit(1);
  }
  if (capacity > 0 && fcntl(p[1], F_SETPIPE_SZ, capacity) < 0) std::perror("F_SETPIPE_SZ");
  return {p[0], p[1]};
}

struct Conns {
  mpx_conn *rd = nullptr, *wr = nullptr;  // as Fds
  explicit Conns(bool duplex) {
    mpx_conn *a, *b;
    check(mpx_pipe(duplex ? 1 : 0, nullptr, &a, &b), "mpx_pipe");
    rd = a;  // duplex == 0: a receives, b sends
    wr = b;
  }
  ~Conns() {
    if (rd) mpx_conn_destroy(rd);
    if (wr) mpx_conn_destroy(wr);
  }
  Conns(const Conns &) = delete;
  Conns &operator=(const Conns &) = delete;
};

bool mpx_ok(int rc, const char *what) {
  if (rc != MPX_OK) std::fprintf(stderr, "%s: %s (%s)\n", what, mpx_error_name(rc), mpx_last_error_message());
  return rc == MPX_OK;
}

// ---- round trip ---------------------------------------------------------------------------------

struct Msg {
  std::vector<unsigned char> out, in;
  explicit Msg(size_t len) : out(buffer(len)), in(buffer(len)) {}
  size_t size() const { return out.size(); }
};

double rt_mpx(Conns &c, Msg &m, long warm, long n) {
  const size_t len = m.size();
  auto ping = [&](long i) {
    size_t got = 0;
    stamp(m.out.data(), len, uint64_t(i));
    return mpx_ok(mpx_conn_send(c.wr, m.out.data(), len), "mpx_conn_send") &&
           mpx_ok(mpx_conn_recv_into(c.wr, m.in.data(), len, &got, MPX_INFINITE), "mpx_conn_recv_into") &&
           item_ok(m.in.data(), got, len, uint64_t(i));
  };
  auto pong = [&](long i) {
    size_t got = 0;
    if (!mpx_ok(mpx_conn_recv_into(c.rd, m.in.data(), len, &got, MPX_INFINITE), "mpx_conn_recv_into"))
      return Got::error;
    const bool right = item_ok(m.in.data(), got, len, uint64_t(i));
    if (!mpx_ok(mpx_conn_send(c.rd, m.in.data(), got), "mpx_conn_send")) return Got::error;
    return right ? Got::ok : Got::wrong;
  };
  return pingpong("mpx duplex pipe round trip", warm, n, ping, pong);
}

double rt_raw(Fds f, Msg &m, long warm, long n) {
  const size_t len = m.size();
  auto ping = [&](long i) {
    size_t got = 0;
    stamp(m.out.data(), len, uint64_t(i));
    return raw_send(f.wr, m.out.data(), len) && raw_recv(f.wr, m.in.data(), len, &got) &&
           item_ok(m.in.data(), got, len, uint64_t(i));
  };
  auto pong = [&](long i) {
    size_t got = 0;
    if (!raw_recv(f.rd, m.in.data(), len, &got)) return Got::error;
    const bool right = item_ok(m.in.data(), got, len, uint64_t(i));
    if (!raw_send(f.rd, m.in.data(), got)) return Got::error;
    return right ? Got::ok : Got::wrong;
  };
  return pingpong("raw socketpair round trip", warm, n, ping, pong);
}

// ---- one-way stream -------------------------------------------------------------------------

double st_mpx(Conns &c, Msg &m, long warm, long n, bool allocating, const char *what) {
  const size_t len = m.size();
  auto put = [&](long i) {
    stamp(m.out.data(), len, uint64_t(i));
    return mpx_ok(mpx_conn_send(c.wr, m.out.data(), len), "mpx_conn_send");
  };
  auto get = [&](long i) {
    size_t got = 0;
    bool right;
    if (allocating) {
      void *data = nullptr;
      if (!mpx_ok(mpx_conn_recv(c.rd, 0, &data, &got, MPX_INFINITE), "mpx_conn_recv")) return Got::error;
      right = item_ok(data, got, len, uint64_t(i));
      mpx_free(data);
    } else {
      if (!mpx_ok(mpx_conn_recv_into(c.rd, m.in.data(), len, &got, MPX_INFINITE), "mpx_conn_recv_into"))
        return Got::error;
      right = item_ok(m.in.data(), got, len, uint64_t(i));
    }
    return right ? Got::ok : Got::wrong;
  };
  return stream(what, g_pin_sleepers, warm, n, put, get);
}

double st_raw(Fds f, Msg &m, long warm, long n, const char *what) {
  const size_t len = m.size();
  auto put = [&](long i) {
    stamp(m.out.data(), len, uint64_t(i));
    return raw_send(f.wr, m.out.data(), len);
  };
  auto get = [&](long i) {
    size_t got = 0;
    if (!raw_recv(f.rd, m.in.data(), len, &got)) return Got::error;
    return item_ok(m.in.data(), got, len, uint64_t(i)) ? Got::ok : Got::wrong;
  };
  return stream(what, g_pin_sleepers, warm, n, put, get);
}

// ---- the benchmark --------------------------------------------------------------------------------

enum Col {
  kRtMpx,      // round trip: mpx duplex
  kRtRaw,      //             raw socketpair
  kPipeMpx,    // 1 MiB: mpx one-way (a pipe)
  kSockMpx,    //        mpx duplex (a socketpair)
  kSockAlloc,  //        mpx duplex, mpx_conn_recv (allocating)
  kPipeRaw,    //        raw pipe, default capacity
  kPipeBig,    //        raw pipe, 1 MiB capacity
  kSockRaw,    //        raw socketpair
  kCols
};
const char *const kColNames[kCols] = {
    "mpx duplex round trip (us)",  "raw socketpair round trip (us)", "mpx one-way 1 MiB (GB/s)",
    "mpx duplex 1 MiB (GB/s)",     "mpx duplex, recv (GB/s)",        "raw pipe 1 MiB (GB/s)",
    "raw pipe 1 MiB cap. (GB/s)", "raw socketpair 1 MiB (GB/s)"};

void close_fds(Fds f) {
  close(f.rd);
  if (f.wr != f.rd) close(f.wr);
}

}  // namespace

int main(int argc, char **argv) {
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--quick") == 0) cfg.quick = true;
    else {
      std::fprintf(stderr, "usage: %s [--quick]\n", argv[0]);
      return 2;
    }
  }
  if (cfg.quick) {
    cfg.n_rt = 200;
    cfg.warm_rt = 10;
    cfg.n_large = 20;
    cfg.warm_large = 2;
    cfg.reps = 1;
  }
  cfg.n_rt = scaled_count("MPX_BENCH_PIPE_RT_N", cfg.n_rt);
  cfg.n_large = scaled_count("MPX_BENCH_PIPE_N", cfg.n_large);
  cfg.reps = int(env_long("MPX_BENCH_REPS", cfg.reps));
  read_pin_env();
  setup();

  std::printf("bench_pipe: mpx %s vs raw pipes and socketpairs with the same framing, same run. CPUs %ld (%s); "
              "median of %d; %ld round trips of 64 B, %ld messages of 1 MiB per measurement\n",
              mpx_version_string(), sysconf(_SC_NPROCESSORS_ONLN), pin_description(), cfg.reps, cfg.n_rt,
              cfg.n_large);
  std::fflush(stdout);
  const int64_t t0 = now_ns();

  Msg small(kSmall), large(kLarge);
  Conns duplex(true), oneway(false);
  const Fds sock = raw_socketpair(), pipe_default = raw_pipe(0), pipe_big = raw_pipe(int(kLarge));
  const Fds sock_rt = raw_socketpair();

  Sampler s(kCols);
  for (int rep = 0; rep < cfg.reps; ++rep) {
    double us[kCols] = {}, secs[kCols] = {};  // round trips: us x trips; streams: seconds
    for (long b = 0; b < blocks_of(cfg.n_rt); ++b) {
      const long nb = block_size(cfg.n_rt, b);
      take_turns(b, {[&] { us[kRtMpx] += rt_mpx(duplex, small, cfg.warm_rt, nb) * double(nb); },
                     [&] { us[kRtRaw] += rt_raw(sock_rt, small, cfg.warm_rt, nb) * double(nb); }});
    }
    for (long b = 0; b < blocks_of(cfg.n_large); ++b) {
      const long nb = block_size(cfg.n_large, b);
      const long w = cfg.warm_large;
      take_turns(b, {
          [&] { secs[kPipeMpx] += st_mpx(oneway, large, w, nb, false, "mpx one-way pipe"); },
          [&] { secs[kSockMpx] += st_mpx(duplex, large, w, nb, false, "mpx duplex pipe"); },
          [&] { secs[kSockAlloc] += st_mpx(duplex, large, w, nb, true, "mpx duplex pipe, recv"); },
          [&] { secs[kPipeRaw] += st_raw(pipe_default, large, w, nb, "raw pipe"); },
          [&] { secs[kPipeBig] += st_raw(pipe_big, large, w, nb, "raw pipe, 1 MiB capacity"); },
          [&] { secs[kSockRaw] += st_raw(sock, large, w, nb, "raw socketpair"); },
      });
    }
    const double gb = double(kLarge) * double(cfg.n_large) / 1e9;
    for (int c = 0; c < kCols; ++c)
      s.add(size_t(c), c == kRtMpx || c == kRtRaw ? us[c] / double(cfg.n_rt) : gb / secs[c]);
  }
  for (Fds f : {sock, pipe_default, pipe_big, sock_rt}) close_fds(f);

  const std::string raw_sock = "raw socketpair, same framing";
  std::vector<Row> rows = {
      {"round trip, 64 B, duplex Pipe (socketpair)", "us", s.med(kRtMpx), false,
       {{raw_sock, s.med(kRtRaw), 1.2}}},
      {"1 MiB messages one way, Pipe(duplex=0) (pipe)", "GB/s", s.med(kPipeMpx), true,
       {{"raw pipe, same framing", s.med(kPipeRaw)}, {"raw pipe enlarged to 1 MiB (F_SETPIPE_SZ)", s.med(kPipeBig)}},
       "(no target)"},
      {"1 MiB messages one way, duplex Pipe (socketpair)", "GB/s", s.med(kSockMpx), true,
       {{raw_sock, s.med(kSockRaw)}},
       "(no target)"},
      {"  the same, mpx_conn_recv (mpx allocates)", "GB/s", s.med(kSockAlloc), true,
       {{raw_sock, s.med(kSockRaw)}, {"mpx recv_into (above)", s.med(kSockMpx)}}},
  };
  print_rows("pipe, 2 processes", rows);
  std::printf("\nRound trips in microseconds (lower is better); throughput in GB/s = 10^9 bytes/s (higher is better).\n"
              "Per repetition:\n");
  for (int c = 0; c < kCols; ++c) {
    if (s.cols[size_t(c)].empty()) continue;
    std::printf("    %-32s", kColNames[c]);
    for (double v : s.cols[size_t(c)]) std::printf(" %9s", fmt_value(v).c_str());
    std::printf("\n");
  }
  std::printf("\nbench_pipe: %.1f s%s\n", double(now_ns() - t0) / 1e9,
              g_failed ? "; WRONG RESULTS (see FAILED above)" : "; all results verified");
  return g_failed ? 1 : 0;
}
