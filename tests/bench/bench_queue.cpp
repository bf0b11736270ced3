// bench_queue: mpx_queue between two processes, one producer and one consumer, side by side
// with a raw single-producer single-consumer ring in shared memory (raw_ring.hpp, the floor)
// and Boost.Interprocess message_queue (the peer), all measured in the same run, printing
// medians and ratios next to the targets of issue 4.
//
//   bench_queue            the full table (about 15 s with the defaults)
//   bench_queue --quick    a few thousand items, one repetition; exits 1 only on a wrong result
//                          (a failed call, an item lost, repeated, reordered or torn), never on
//                          timing
//
// One measurement: this process puts warm + n items of one size, a forked child takes them;
// the clock starts when the child has taken the warm-up items and stops when it has taken the
// last (so fork, first-touch faults and the filling of an empty queue are outside). A
// repetition cuts N items into 5 blocks in which the columns take turns (each block starting
// with another column), and sums. Each item
// carries its sequence number at both ends and the child checks every one. The producer
// reuses one buffer; the consumer takes each item into one reusable buffer (mpx_queue_get_into,
// the raw ring's get_into, message_queue::receive), or, in the rows marked so, into memory
// mpx allocates (mpx_queue_get + mpx_free).
//
// Every queue holds about 1 MiB: mpx_queue with its default ring (1 MiB), the raw ring 1 MiB,
// message_queue 1024 x 64 B messages or 16 x 64 KiB.
//
// Environment: MPX_BENCH_QUEUE_N (64 B items per measurement, default 1,000,000),
// MPX_BENCH_QUEUE_LARGE_N (64 KiB items, default 40,000), MPX_BENCH_SCALE (multiplies both),
// MPX_BENCH_REPS (default 5; medians reported), MPX_BENCH_PIN (contended (the default) or all:
// producer on CPU 0, consumer on CPU 1; none).
//
// Every figure is a rate: higher is better; ratio = mpx / baseline, so > 1 means mpx is faster.

#include <boost/interprocess/ipc/message_queue.hpp>

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "bench_common.hpp"
#include "bench_ipc.hpp"
#include "mpx/mpx.h"
#include "raw_ring.hpp"

namespace {

using namespace mpxbench;
using namespace mpxbench::ipc;
namespace bip = boost::interprocess;

constexpr size_t kSmall = 64;
constexpr size_t kLarge = 64 * 1024;
constexpr uint64_t kRingBytes = 1 << 20;

struct Config {
  long n_small = 1'000'000;
  long n_large = 40'000;
  long warm_small = 20'000;  // per block; more than the 1 MiB rings hold: every page is used
  long warm_large = 100;
  int reps = 5;
  bool quick = false;
} cfg;

// ---- the three queues, each as put(i) / get(i) for the harness -------------------------------

struct Item {
  std::vector<unsigned char> out;  // the producer's buffer
  std::vector<unsigned char> in;   // the consumer's (written in the child)
  explicit Item(size_t len) : out(buffer(len)), in(buffer(len)) {}
  size_t size() const { return out.size(); }
};

double run_mpx(mpx_queue *q, Item &it, long warm, long n, bool allocating) {
  const size_t len = it.size();
  auto put = [&](long i) {
    stamp(it.out.data(), len, uint64_t(i));
    const int rc = mpx_queue_put(q, it.out.data(), len, MPX_INFINITE);
    if (rc != MPX_OK) std::fprintf(stderr, "mpx_queue_put: %s (%s)\n", mpx_error_name(rc), mpx_last_error_message());
    return rc == MPX_OK;
  };
  auto get = [&](long i) {
    size_t got = 0;
    int rc;
    bool right;
    if (allocating) {
      void *data = nullptr;
      rc = mpx_queue_get(q, &data, &got, MPX_INFINITE);
      right = rc == MPX_OK && item_ok(data, got, len, uint64_t(i));
      mpx_free(data);
    } else {
      rc = mpx_queue_get_into(q, it.in.data(), len, &got, MPX_INFINITE);
      right = rc == MPX_OK && item_ok(it.in.data(), got, len, uint64_t(i));
    }
    if (rc != MPX_OK) {
      std::fprintf(stderr, "mpx_queue_get%s: %s (%s)\n", allocating ? "" : "_into", mpx_error_name(rc),
                   mpx_last_error_message());
      return Got::error;
    }
    return right ? Got::ok : Got::wrong;
  };
  return stream(allocating ? "mpx_queue_get" : "mpx_queue_get_into", g_pin_queue, warm, n, put, get);
}

double run_raw(rawring::Shared *ring, Item &it, long warm, long n) {
  const size_t len = it.size();
  // Each side's private indices are read from the shared counters when it starts.
  std::unique_ptr<rawring::Producer> prod;
  auto put = [&](long i) {
    if (!prod) prod = std::make_unique<rawring::Producer>(ring);
    stamp(it.out.data(), len, uint64_t(i));
    return prod->put(it.out.data(), len);
  };
  std::unique_ptr<rawring::Consumer> cons;
  auto get = [&](long i) {
    if (!cons) cons = std::make_unique<rawring::Consumer>(ring);
    size_t got = 0;
    if (!cons->get_into(it.in.data(), len, &got)) return Got::error;
    return item_ok(it.in.data(), got, len, uint64_t(i)) ? Got::ok : Got::wrong;
  };
  return stream("raw SPSC ring", g_pin_queue, warm, n, put, get);
}

// A named message_queue (Boost offers no anonymous one) whose name is removed as soon as it
// exists: the mapping stays valid in this process and in children forked later, and nothing
// is left in /dev/shm, even after a crash.
std::unique_ptr<bip::message_queue> boost_queue(size_t depth, size_t msg) {
  std::random_device rd;
  const std::string name = "mpx_bench_mq_" + std::to_string(getpid()) + "_" + std::to_string(rd());
  auto mq = std::make_unique<bip::message_queue>(bip::create_only, name.c_str(), depth, msg);
  bip::message_queue::remove(name.c_str());
  return mq;
}

double run_boost(bip::message_queue &mq, Item &it, long warm, long n) {
  const size_t len = it.size();
  auto put = [&](long i) {
    stamp(it.out.data(), len, uint64_t(i));
    try {
      mq.send(it.out.data(), len, 0);
      return true;
    } catch (const std::exception &e) {
      std::fprintf(stderr, "message_queue::send: %s\n", e.what());
      return false;
    }
  };
  auto get = [&](long i) {
    bip::message_queue::size_type got = 0;
    unsigned prio = 0;
    try {
      mq.receive(it.in.data(), len, got, prio);
    } catch (const std::exception &e) {
      std::fprintf(stderr, "message_queue::receive: %s\n", e.what());
      return Got::error;
    }
    return item_ok(it.in.data(), got, len, uint64_t(i)) ? Got::ok : Got::wrong;
  };
  return stream("Boost message_queue", g_pin_queue, warm, n, put, get);
}

// ---- the benchmark ----------------------------------------------------------------------------

enum Col { kMpx, kMpxAlloc, kRaw, kRawBatch, kBoost, kCols };
const char *const kColNames[kCols] = {"mpx put/get_into", "mpx put/get (allocating)", "raw SPSC ring",
                                      "raw SPSC ring, slow polling", "Boost message_queue"};

// The raw ring's second configuration: a waiting side looks every 128 pauses (~2.5 us here)
// instead of every pause, so the producer runs ahead and the consumer takes batches.
constexpr uint32_t kSlowPoll = 128;

// Items per second for each column, one sample per repetition, for items of `len` bytes.
Sampler measure(size_t len, long warm, long n, size_t boost_depth) {
  Item it(len);
  mpx_queue *q = nullptr;
  check(mpx_queue_create(&q, nullptr), "mpx_queue_create");
  rawring::Shared *ring = rawring::create(kRingBytes);
  rawring::Shared *ring_slow = rawring::create(kRingBytes, kSlowPoll);
  if (!ring || !ring_slow) {
    std::perror("mmap");
    std::exit(1);
  }
  auto mq = boost_queue(boost_depth, len);

  Sampler s(kCols);
  for (int rep = 0; rep < cfg.reps; ++rep) {
    double secs[kCols] = {};
    for (long b = 0; b < blocks_of(n); ++b) {
      const long nb = block_size(n, b);
      take_turns(b, {[&] { secs[kMpx] += run_mpx(q, it, warm, nb, false); },
                     [&] { secs[kMpxAlloc] += run_mpx(q, it, warm, nb, true); },
                     [&] { secs[kRaw] += run_raw(ring, it, warm, nb); },
                     [&] { secs[kRawBatch] += run_raw(ring_slow, it, warm, nb); },
                     [&] { secs[kBoost] += run_boost(*mq, it, warm, nb); }});
    }
    for (int c = 0; c < kCols; ++c) s.add(size_t(c), double(n) / secs[c]);
  }
  size_t left = 1;
  check(mpx_queue_qsize(q, &left), "mpx_queue_qsize");
  if (left != 0) failure("mpx_queue: %zu items left after the benchmark", left);
  mpx_queue_destroy(q);
  for (rawring::Shared *r : {ring, ring_slow}) {
    if (r->head.load() != r->tail.load()) failure("raw ring: not empty after the benchmark");
    rawring::destroy(r);
  }
  if (mq->get_num_msg() != 0) failure("Boost message_queue: not empty after the benchmark");
  return s;
}

void print_reps(const char *what, const Sampler &s, double scale, const char *unit) {
  std::printf("  %s, per repetition (%s):\n", what, unit);
  for (int c = 0; c < kCols; ++c) {
    if (s.cols[size_t(c)].empty()) continue;
    std::printf("    %-28s", kColNames[c]);
    for (double v : s.cols[size_t(c)]) std::printf(" %9s", fmt_value(v * scale).c_str());
    std::printf("\n");
  }
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
    cfg.n_small = 20'000;
    cfg.n_large = 500;
    cfg.warm_small = 20'000;
    cfg.warm_large = 20;
    cfg.reps = 1;
  }
  cfg.n_small = scaled_count("MPX_BENCH_QUEUE_N", cfg.n_small);
  cfg.n_large = scaled_count("MPX_BENCH_QUEUE_LARGE_N", cfg.n_large);
  cfg.reps = int(env_long("MPX_BENCH_REPS", cfg.reps));
  read_pin_env();
  setup();

  std::printf("bench_queue: mpx %s vs a raw SPSC ring and Boost %d.%d message_queue, same run. CPUs %ld (%s); "
              "median of %d; %ld x 64 B and %ld x 64 KiB items per measurement\n",
              mpx_version_string(), BOOST_VERSION / 100000, BOOST_VERSION / 100 % 1000,
              sysconf(_SC_NPROCESSORS_ONLN), pin_description(), cfg.reps, cfg.n_small, cfg.n_large);
  std::fflush(stdout);
  const int64_t t0 = now_ns();

  const Sampler small = measure(kSmall, cfg.warm_small, cfg.n_small, 1024);
  const Sampler large = measure(kLarge, cfg.warm_large, cfg.n_large, 16);

  const double mb_small = kSmall / 1e6, gb_large = kLarge / 1e9;
  const std::string ring = "raw SPSC ring (1 MiB, spin then futex)";
  const std::string slow = "raw SPSC ring, polling every ~2.5 us";
  const std::string boost_small = "Boost message_queue (1024 x 64 B)";
  const std::string boost_large = "Boost message_queue (16 x 64 KiB)";
  auto m = [](const Sampler &s, Col c, double k) { return s.med(c) * k; };
  const double M = 1e-6;
  std::vector<Row> rows = {
      {"64 B items, put + get_into", "M/s", m(small, kMpx, M), true,
       {{ring, m(small, kRaw, M), 0.5}, {boost_small, m(small, kBoost, M), 1.0}, {slow, m(small, kRawBatch, M)}}},
      {"64 B items, put + get_into", "MB/s", m(small, kMpx, mb_small), true,
       {{ring, m(small, kRaw, mb_small), 0.5}, {boost_small, m(small, kBoost, mb_small), 1.0}}},
      {"64 B items, put + get (mpx allocates)", "M/s", m(small, kMpxAlloc, M), true,
       {{ring, m(small, kRaw, M)}, {"mpx put + get_into (above)", m(small, kMpx, M)}}},
      {"64 KiB items, put + get_into", "GB/s", m(large, kMpx, gb_large), true,
       {{ring, m(large, kRaw, gb_large), 0.5}, {boost_large, m(large, kBoost, gb_large)},
        {slow, m(large, kRawBatch, gb_large)}}},
      {"64 KiB items, put + get (mpx allocates)", "GB/s", m(large, kMpxAlloc, gb_large), true,
       {{ring, m(large, kRaw, gb_large)}, {"mpx put + get_into (above)", m(large, kMpx, gb_large)}}},
  };
  print_rows("queue, 1 producer -> 1 consumer process", rows);
  std::printf("\nRates: items (M = 10^6) or bytes (MB = 10^6, GB = 10^9) per second, from the end of the warm-up (the\n"
              "consumer has taken every warm-up item) to its taking of the last; higher is better. Every queue holds\n"
              "about 1 MiB (mpx: its default ring). \"polling every ~2.5 us\": the same raw ring whose waiting side looks\n"
              "every 128 pauses instead of every pause, so that the consumer takes items in batches.\n");
  print_reps("64 B items", small, 1e-6, "M items/s");
  print_reps("64 KiB items", large, gb_large, "GB/s");
  std::printf("\nbench_queue: %.1f s%s\n", double(now_ns() - t0) / 1e9,
              g_failed ? "; WRONG RESULTS (see FAILED above)" : "; all results verified");
  return g_failed ? 1 : 0;
}
