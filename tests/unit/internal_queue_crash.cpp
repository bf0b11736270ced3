// Queue: a producer or consumer SIGKILLed at each injected crash point (SCENARIOS.md 19).
// The survivors go on within a second; the item in flight is delivered whole or not at all
// (a consumer's, at most once); every other item is delivered exactly once, in order; and the
// space the dead process held is recovered (many laps of the ring follow).
#include <signal.h>

#include <string>
#include <thread>
#include <vector>

#include "capi_queue_helpers.hpp"
#include "queue/layout.hpp"
#include "queue/queue.hpp"

using namespace std::chrono_literals;
using mpx::queue::CrashPoint;
using mpxt::make_queue;

namespace {

CrashPoint g_target;
void die_at_target(CrashPoint p) {
  if (p == g_target) raise(SIGKILL);
}

// Item `seq`: its number in the first 8 bytes, then a pattern of its own.
std::vector<uint8_t> item(uint64_t seq, size_t size) {
  auto v = mpxt::pattern(seq, size);
  std::memcpy(v.data(), &seq, sizeof seq);
  return v;
}

// Take one item; check it is whole; return its number.
uint64_t take(mpx_queue *q, size_t size, int64_t timeout_ms = 5000) {
  void *data = nullptr;
  size_t len = 0;
  EXPECT_MPX_OK(mpx_queue_get(q, &data, &len, timeout_ms));
  uint64_t seq = UINT64_MAX;
  if (data && len == size) {
    std::memcpy(&seq, data, sizeof seq);
    if (std::memcmp(data, item(seq, size).data(), size) != 0) {
      ADD_FAILURE() << "item " << seq << " is not whole";
      seq = UINT64_MAX;
    }
  } else {
    ADD_FAILURE() << "item of " << len << " bytes, expected " << size;
  }
  mpx_free(data);
  return seq;
}

// Many laps of a small ring: the space of the dead process's record was recovered.
void still_flows(mpx_queue *q, size_t size) {
  mpxt::Stopwatch sw;
  for (uint64_t i = 1000; i < 1200; ++i) {
    auto it = item(i, size);
    ASSERT_MPX_OK(mpx_queue_put(q, it.data(), it.size(), 2000)) << i;
    ASSERT_EQ(take(q, size, 2000), i);
  }
  EXPECT_LT(sw.ms(), 3000);
  EXPECT_EQ(mpxt::qsize_of(q), 0u);
}

struct ProducerCase {
  CrashPoint point;
  size_t size;
  bool delivered;  // the item in flight comes out (it was complete when its producer died)
};

struct ConsumerCase {
  CrashPoint point;
  size_t size;
  bool redelivered;  // the item in flight comes out again (the dead get never returned it)
};

constexpr uint64_t kCapacity = 16384;  // records up to 4 KiB; items above 1 KiB copied unlocked
constexpr size_t kSmall = 200, kLarge = 1500, kStreamed = 10000;

}  // namespace

TEST(QueueCrash, ProducerKilledAtEachPointNeverDeliversAPartialItem) {
  const ProducerCase cases[] = {
      {CrashPoint::producer_header, kSmall, false},    {CrashPoint::producer_header, kLarge, false},
      {CrashPoint::producer_counted, kSmall, true},    {CrashPoint::producer_counted, kLarge, false},
      {CrashPoint::producer_reserved, kSmall, true},   {CrashPoint::producer_reserved, kLarge, false},
      {CrashPoint::producer_copying, kLarge, false},   {CrashPoint::producer_streaming, kStreamed, false},
      {CrashPoint::producer_header, kStreamed, false}, {CrashPoint::producer_counted, kStreamed, false},
  };
  for (const auto &c : cases) {
    SCOPED_TRACE("crash point " + std::to_string(int(c.point)) + ", item of " + std::to_string(c.size));
    auto q = make_queue({0, kCapacity, 0, true});
    // The consumer runs throughout (a streamed item needs one), and starts after a few laps.
    for (uint64_t i = 0; i < 3; ++i) {
      auto it = item(i, kSmall);
      ASSERT_MPX_OK(mpx_queue_put(q.get(), it.data(), it.size(), 1000));
      ASSERT_EQ(take(q.get(), kSmall), i);
      ASSERT_MPX_OK(mpx_queue_task_done(q.get()));
    }
    const std::vector<uint64_t> want = c.delivered ? std::vector<uint64_t>{3, 4, 5, 6, 7} : std::vector<uint64_t>{3, 4, 6, 7};
    std::vector<uint64_t> got;
    int64_t last_ms = 0;
    mpxt::Stopwatch sw;
    std::thread consumer([&] {
      for (size_t n = 0; n < want.size(); ++n) got.push_back(take(q.get(), c.size));
      last_ms = sw.ms();
    });
    for (uint64_t i = 3; i < 5; ++i) {
      auto it = item(i, c.size);
      ASSERT_MPX_OK(mpx_queue_put(q.get(), it.data(), it.size(), 5000));
    }
    auto st = mpxt::run_in_child([&] {
      g_target = c.point;
      mpx::queue::g_crash_hook = die_at_target;
      auto it = item(5, c.size);
      mpx_queue_put(q.get(), it.data(), it.size(), 5000);
      return 1;  // not reached
    });
    ASSERT_TRUE(st.killed_by(SIGKILL)) << st.describe();
    const int64_t killed_ms = sw.ms();
    for (uint64_t i = 6; i < 8; ++i) {
      auto it = item(i, c.size);
      ASSERT_MPX_OK(mpx_queue_put(q.get(), it.data(), it.size(), 2000)) << i;
    }
    consumer.join();
    EXPECT_EQ(got, want);
    EXPECT_LT(last_ms - killed_ms, 1000) << "recovery";
    EXPECT_EQ(mpxt::qsize_of(q.get()), 0u);
    // Undelivered items are not left unfinished: join returns once the delivered ones are done.
    for (size_t n = 0; n < got.size(); ++n) EXPECT_MPX_OK(mpx_queue_task_done(q.get()));
    EXPECT_MPX_OK(mpx_queue_join(q.get(), 1000));
    EXPECT_MPX(MPX_EOVERFLOW, mpx_queue_task_done(q.get()));
    if (c.size != kStreamed) still_flows(q.get(), c.size);
  }
}

TEST(QueueCrash, ConsumerKilledAtEachPointNeverDuplicates) {
  const ConsumerCase cases[] = {
      {CrashPoint::consumer_counted, kSmall, true},    {CrashPoint::consumer_counted, kLarge, true},
      {CrashPoint::consumer_claimed, kSmall, false},   {CrashPoint::consumer_claimed, kLarge, false},
      {CrashPoint::consumer_marked, kLarge, false},    {CrashPoint::consumer_copying, kLarge, false},
      {CrashPoint::consumer_streaming, kStreamed, false}, {CrashPoint::consumer_counted, kStreamed, true},
      {CrashPoint::consumer_marked, kStreamed, false},
  };
  for (const auto &c : cases) {
    SCOPED_TRACE("crash point " + std::to_string(int(c.point)) + ", item of " + std::to_string(c.size));
    auto q = make_queue({0, kCapacity, 0, false});
    mpxt::Child producer;
    if (c.size == kStreamed) {
      // A streamed item needs its consumer running: put from a child, all in the background.
      producer = mpxt::Child::fork([&] {
        for (uint64_t i = 0; i < 8; ++i) {
          auto it = item(i, c.size);
          CHILD_MPX_OK(mpx_queue_put(q.get(), it.data(), it.size(), 10000));
        }
        return 0;
      });
    } else {
      for (uint64_t i = 0; i < 8; ++i) {
        auto it = item(i, c.size);
        ASSERT_MPX_OK(mpx_queue_put(q.get(), it.data(), it.size(), 1000));
      }
    }
    EXPECT_EQ(take(q.get(), c.size), 0u);
    EXPECT_EQ(take(q.get(), c.size), 1u);
    auto st = mpxt::run_in_child([&] {
      g_target = c.point;
      mpx::queue::g_crash_hook = die_at_target;
      void *data;
      size_t len;
      mpx_queue_get(q.get(), &data, &len, 5000);
      return 1;  // not reached
    });
    ASSERT_TRUE(st.killed_by(SIGKILL)) << st.describe();
    mpxt::Stopwatch sw;
    std::vector<uint64_t> got;
    for (uint64_t n = c.redelivered ? 2 : 3; n < 8; ++n) got.push_back(take(q.get(), c.size));
    std::vector<uint64_t> want;
    for (uint64_t n = c.redelivered ? 2 : 3; n < 8; ++n) want.push_back(n);
    EXPECT_EQ(got, want);
    EXPECT_LT(sw.ms(), 1000);
    if (producer.valid()) {
      EXPECT_TRUE(producer.wait(5000ms).ok());
    }
    EXPECT_EQ(mpxt::qsize_of(q.get()), 0u);
    if (c.size != kStreamed) still_flows(q.get(), c.size);
  }
}

TEST(QueueCrash, ConsumerKilledWhileDroppingADeadWritersItemLeavesJoinExact) {
  // A get that finds the record at head half-written by a dead producer drops it and counts
  // it as abandoned (never to be marked done). Killed between the two, its successor must
  // neither lose the count (join would wait for an item that never comes) nor make it twice.
  for (CrashPoint point : {CrashPoint::consumer_abandoning, CrashPoint::consumer_abandoned}) {
    SCOPED_TRACE("crash point " + std::to_string(int(point)));
    auto q = make_queue({0, kCapacity, 0, true});
    for (uint64_t i = 0; i < 2; ++i) {
      auto it = item(i, kLarge);
      ASSERT_MPX_OK(mpx_queue_put(q.get(), it.data(), it.size(), 1000));
    }
    auto writer = mpxt::run_in_child([&] {
      g_target = CrashPoint::producer_copying;  // reserved, payload not committed
      mpx::queue::g_crash_hook = die_at_target;
      auto it = item(2, kLarge);
      mpx_queue_put(q.get(), it.data(), it.size(), 5000);
      return 1;  // not reached
    });
    ASSERT_TRUE(writer.killed_by(SIGKILL)) << writer.describe();
    for (uint64_t i = 3; i < 5; ++i) {
      auto it = item(i, kLarge);
      ASSERT_MPX_OK(mpx_queue_put(q.get(), it.data(), it.size(), 1000));
    }
    for (uint64_t i = 0; i < 2; ++i) {
      ASSERT_EQ(take(q.get(), kLarge), i);
      ASSERT_MPX_OK(mpx_queue_task_done(q.get()));
    }
    auto reader = mpxt::run_in_child([&] {
      g_target = point;
      mpx::queue::g_crash_hook = die_at_target;
      void *data;
      size_t len;
      mpx_queue_get(q.get(), &data, &len, 5000);
      return 1;  // not reached
    });
    ASSERT_TRUE(reader.killed_by(SIGKILL)) << reader.describe();
    mpxt::Stopwatch sw;
    EXPECT_EQ(take(q.get(), kLarge), 3u);
    EXPECT_EQ(take(q.get(), kLarge), 4u);
    EXPECT_LT(sw.ms(), 1000);
    EXPECT_MPX_OK(mpx_queue_task_done(q.get()));
    EXPECT_MPX(MPX_ETIMEDOUT, mpx_queue_join(q.get(), 0)) << "item 4 is not done yet";
    EXPECT_MPX_OK(mpx_queue_task_done(q.get()));
    EXPECT_MPX_OK(mpx_queue_join(q.get(), 1000)) << "the dropped item counted once, not lost";
    EXPECT_MPX(MPX_EOVERFLOW, mpx_queue_task_done(q.get())) << "nor counted twice";
    EXPECT_EQ(mpxt::qsize_of(q.get()), 0u);
    still_flows(q.get(), kLarge);
  }
}

TEST(QueueCrash, AGetKilledWhileAsleepIsNotCountedAsASleeperForLong) {
  // A sleeper that dies never takes itself off the count of sleepers; left there, it would make
  // every later put wake nobody with a system call. The first puts that find nobody to wake
  // take it back.
  auto q = make_queue();
  std::string token = mpxt::token_of(mpx_queue_token, q.get());
  mpx_segment *seg = nullptr;
  ASSERT_MPX_OK(mpx_segment_attach_token(&seg, token.c_str()));
  void *base = nullptr;
  ASSERT_MPX_OK(mpx_segment_address(seg, &base));
  auto *lines = reinterpret_cast<mpx::queue::Lines *>(static_cast<uint8_t *>(base) +
                                                       std::stoull(token.substr(token.rfind(':') + 1)) +
                                                       sizeof(mpx::ObjectHeader) + mpx::queue::kLinesOffset);
  auto count = [&] { return lines->wait.not_empty.sleepers.load() & mpx::queue::Wait::kCount; };
  for (int i = 0; i < 3; ++i) {
    mpxt::Child sleeper = mpxt::Child::fork([&] {
      void *data;
      size_t len;
      mpx_queue_get(q.get(), &data, &len, -1);
      return 1;
    });
    mpxt::Stopwatch sw;
    while (count() < uint32_t(i + 1) && sw.ms() < 5000) mpxt::sleep_ms(1);
    ASSERT_EQ(count(), uint32_t(i + 1)) << "the get went to sleep";
    sleeper.kill_and_wait(SIGKILL);
  }
  EXPECT_EQ(count(), 3u) << "three dead sleepers still counted";
  for (int i = 0; i < 5; ++i) {
    ASSERT_MPX_OK(mpxt::put_str(q.get(), "x"));
    EXPECT_EQ(mpxt::get_str(q.get(), 0), "x");
  }
  EXPECT_EQ(count(), 0u);
  mpx_segment_destroy(seg);
}
