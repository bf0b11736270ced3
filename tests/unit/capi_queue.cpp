// Queue: the C API contract, one process or a few (SCENARIOS.md 17, 18, 20, 21, 22, 46-50).
#include <sys/mman.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "capi_queue_helpers.hpp"

using namespace std::chrono_literals;
using mpxt::QueuePtr;
using mpxt::make_queue;

// ---- options and creation -----------------------------------------------------------------

TEST(QueueCreate, NullOptionsMeanAnUnboundedQueueWithTheDefaultRing) {
  mpx_queue *q = nullptr;
  ASSERT_MPX_OK(mpx_queue_create(&q, nullptr));
  QueuePtr guard(q);
  uint64_t maxsize = 1, cap = 0;
  EXPECT_MPX_OK(mpx_queue_maxsize(q, &maxsize));
  EXPECT_MPX_OK(mpx_queue_capacity(q, &cap));
  EXPECT_EQ(maxsize, 0u);
  EXPECT_EQ(cap, MPX_QUEUE_DEFAULT_CAPACITY);
  int empty = 0, full = 1, closed = 1;
  EXPECT_MPX_OK(mpx_queue_empty(q, &empty));
  EXPECT_MPX_OK(mpx_queue_full(q, &full));
  EXPECT_MPX_OK(mpx_queue_closed(q, &closed));
  EXPECT_EQ(empty, 1);
  EXPECT_EQ(full, 0);
  EXPECT_EQ(closed, 0);
}

TEST(QueueCreate, CapacityIsRoundedUpToAPowerOfTwoOfAtLeast4KiB) {
  struct Case {
    uint64_t asked, got;
  };
  for (Case c : {Case{1, 4096}, Case{4096, 4096}, Case{4097, 8192}, Case{100000, 131072}, Case{1 << 20, 1 << 20}}) {
    auto q = make_queue({0, c.asked, 0, false});
    ASSERT_TRUE(q);
    uint64_t cap = 0;
    EXPECT_MPX_OK(mpx_queue_capacity(q.get(), &cap));
    EXPECT_EQ(cap, c.got) << "asked " << c.asked;
  }
}

TEST(QueueCreate, BadOptionsAreEinval) {
  mpx_queue_options o;
  ASSERT_MPX_OK(mpx_queue_options_init(&o, sizeof o));
  EXPECT_EQ(o.size, sizeof o);
  EXPECT_EQ(o.flags, 0u);
  EXPECT_EQ(o.capacity, 0u);
  mpx_queue *q = reinterpret_cast<mpx_queue *>(0x1);
  o.flags = 0x80;
  EXPECT_MPX(MPX_EINVAL, mpx_queue_create(&q, &o));
  EXPECT_EQ(q, nullptr);
  o.flags = 0;
  o.capacity = (uint64_t(1) << 31) + 1;
  EXPECT_MPX(MPX_EINVAL, mpx_queue_create(&q, &o));
  o.capacity = 0;
  o.size = sizeof o - 8;
  EXPECT_MPX(MPX_EINVAL, mpx_queue_create(&q, &o));
  EXPECT_MPX(MPX_EINVAL, mpx_queue_options_init(&o, sizeof o + 1));
  EXPECT_MPX(MPX_EINVAL, mpx_queue_options_init(nullptr, sizeof o));
  EXPECT_MPX(MPX_EINVAL, mpx_queue_create(nullptr, nullptr));
}

// ---- put and get --------------------------------------------------------------------------

TEST(QueuePut, ItemsComeOutInOrderAndByteIdentical) {
  auto q = make_queue();
  for (int i = 0; i < 100; ++i) ASSERT_MPX_OK(mpxt::put_str(q.get(), "item " + std::to_string(i)));
  EXPECT_EQ(mpxt::qsize_of(q.get()), 100u);
  for (int i = 0; i < 100; ++i) {
    int rc;
    EXPECT_EQ(mpxt::get_str(q.get(), 0, &rc), "item " + std::to_string(i));
    EXPECT_MPX_OK(rc);
  }
  EXPECT_EQ(mpxt::qsize_of(q.get()), 0u);
}

TEST(QueuePut, SizesZeroOneAnd64KiBRoundTrip) {
  auto q = make_queue();
  for (size_t n : {size_t(0), size_t(1), size_t(63), size_t(64), size_t(65), size_t(64) << 10}) {
    auto item = mpxt::pattern(n, n);
    ASSERT_MPX_OK(mpx_queue_put(q.get(), item.data(), item.size(), 0)) << n;
    void *data = nullptr;
    size_t len = 99;
    ASSERT_MPX_OK(mpx_queue_get(q.get(), &data, &len, 0)) << n;
    EXPECT_NE(data, nullptr) << "a 0-byte item still gets a valid pointer";
    EXPECT_EQ(len, n);
    EXPECT_TRUE(mpxt::matches_pattern(n, data, len)) << n;
    mpx_free(data);
  }
}

TEST(QueuePut, ItemsLargerThanTheRingAreStreamedIntact) {
  // 16 MiB through a 1 MiB ring: the consumer must run at the same time.
  auto q = make_queue();
  const size_t n = size_t(16) << 20;
  auto item = mpxt::pattern(7, n);
  std::thread consumer([&] {
    void *data = nullptr;
    size_t len = 0;
    EXPECT_MPX_OK(mpx_queue_get(q.get(), &data, &len, 20000));
    EXPECT_EQ(len, n);
    EXPECT_TRUE(data && std::memcmp(data, item.data(), n) == 0);
    mpx_free(data);
  });
  EXPECT_MPX_OK(mpx_queue_put(q.get(), item.data(), n, 20000));
  consumer.join();
  EXPECT_MPX_OK(mpxt::put_str(q.get(), "after"));
  EXPECT_EQ(mpxt::get_str(q.get(), 0), "after");
}

TEST(QueuePut, StreamedItemsInterleaveWithSmallOnesInOrder) {
  auto q = make_queue({0, 4096, 0, false});  // records of at most 1 KiB
  std::vector<std::vector<uint8_t>> items;
  for (size_t i = 0; i < 40; ++i) items.push_back(mpxt::pattern(i, (i % 3 == 0) ? 5000 + i * 37 : i * 11));
  std::thread producer([&] {
    for (auto &it : items) EXPECT_MPX_OK(mpx_queue_put(q.get(), it.data(), it.size(), 10000));
  });
  for (size_t i = 0; i < items.size(); ++i) {
    void *data = nullptr;
    size_t len = 0;
    ASSERT_MPX_OK(mpx_queue_get(q.get(), &data, &len, 10000)) << i;
    EXPECT_EQ(len, items[i].size()) << i;
    EXPECT_TRUE(std::memcmp(data, items[i].data(), len) == 0) << i;
    mpx_free(data);
  }
  producer.join();
}

TEST(QueuePut, DataNullWithLengthIsEinval) {
  auto q = make_queue();
  EXPECT_MPX(MPX_EINVAL, mpx_queue_put(q.get(), nullptr, 1, 0));
  EXPECT_MPX_OK(mpx_queue_put(q.get(), nullptr, 0, 0));
  EXPECT_EQ(mpxt::qsize_of(q.get()), 1u);
}

TEST(QueuePut, ItemAboveMaxMessageIsEmsgsizeAndNothingChanges) {
  auto q = make_queue({0, 4096, 100, false});
  std::string big(101, 'x');
  EXPECT_MPX(MPX_EMSGSIZE, mpxt::put_str(q.get(), big, 0));
  EXPECT_MPX(MPX_EMSGSIZE, mpxt::put_str(q.get(), std::string(100000, 'y'), -1));
  EXPECT_EQ(mpxt::qsize_of(q.get()), 0u);
  EXPECT_MPX_OK(mpxt::put_str(q.get(), std::string(100, 'z'), 0));
  EXPECT_EQ(mpxt::get_str(q.get(), 0), std::string(100, 'z'));
}

TEST(QueueGet, GetIntoATooSmallBufferIsEnobufsAndTheItemStaysFirst) {
  auto q = make_queue({0, 4096, 0, false});
  ASSERT_MPX_OK(mpxt::put_str(q.get(), "0123456789"));
  ASSERT_MPX_OK(mpxt::put_str(q.get(), "second"));
  char buf[16];
  size_t len = 0;
  EXPECT_MPX(MPX_ENOBUFS, mpx_queue_get_into(q.get(), buf, 4, &len, 0));
  EXPECT_EQ(len, 10u);
  EXPECT_MPX(MPX_ENOBUFS, mpx_queue_get_into(q.get(), nullptr, 0, &len, 0));
  EXPECT_EQ(len, 10u);
  EXPECT_EQ(mpxt::qsize_of(q.get()), 2u);
  EXPECT_MPX_OK(mpx_queue_get_into(q.get(), buf, 10, &len, 0));
  EXPECT_EQ(std::string(buf, len), "0123456789");
  EXPECT_MPX_OK(mpx_queue_get_into(q.get(), buf, sizeof buf, &len, 0));
  EXPECT_EQ(std::string(buf, len), "second");
}

TEST(QueueGet, GetIntoAStreamedItemChecksTheWholeLengthFirst) {
  auto q = make_queue({0, 4096, 0, false});
  auto item = mpxt::pattern(3, 3000);  // larger than a record of a 4 KiB ring
  std::thread producer([&] { EXPECT_MPX_OK(mpx_queue_put(q.get(), item.data(), item.size(), 5000)); });
  std::vector<uint8_t> buf(4000);
  size_t len = 0;
  // Wait until it is there (the FIRST chunk is committed), then ask with too little room.
  int rc;
  mpxt::Stopwatch sw;
  while ((rc = mpx_queue_get_into(q.get(), buf.data(), 100, &len, 0)) == MPX_ETIMEDOUT && sw.ms() < 5000)
    std::this_thread::sleep_for(1ms);
  EXPECT_MPX(MPX_ENOBUFS, rc);
  EXPECT_EQ(len, 3000u);
  EXPECT_MPX_OK(mpx_queue_get_into(q.get(), buf.data(), buf.size(), &len, 5000));
  EXPECT_EQ(len, 3000u);
  EXPECT_TRUE(mpxt::matches_pattern(3, buf.data(), len));
  producer.join();
}

TEST(QueueGet, NullArgumentsAreEinval) {
  auto q = make_queue();
  void *data = nullptr;
  size_t len = 0;
  EXPECT_MPX(MPX_EINVAL, mpx_queue_get(q.get(), nullptr, &len, 0));
  EXPECT_MPX(MPX_EINVAL, mpx_queue_get(q.get(), &data, nullptr, 0));
  char buf[4];
  EXPECT_MPX(MPX_EINVAL, mpx_queue_get_into(q.get(), buf, sizeof buf, nullptr, 0));
  EXPECT_MPX(MPX_EINVAL, mpx_queue_get_into(q.get(), nullptr, 4, &len, 0));
  size_t n;
  int flag;
  uint64_t u;
  EXPECT_MPX(MPX_EINVAL, mpx_queue_qsize(q.get(), nullptr));
  EXPECT_MPX(MPX_EINVAL, mpx_queue_empty(q.get(), nullptr));
  EXPECT_MPX(MPX_EINVAL, mpx_queue_full(q.get(), nullptr));
  EXPECT_MPX(MPX_EINVAL, mpx_queue_closed(q.get(), nullptr));
  EXPECT_MPX(MPX_EINVAL, mpx_queue_maxsize(q.get(), nullptr));
  EXPECT_MPX(MPX_EINVAL, mpx_queue_capacity(q.get(), nullptr));
  EXPECT_MPX(MPX_EINVAL, mpx_queue_unfinished(q.get(), nullptr));
  EXPECT_MPX(MPX_EINVAL, mpx_queue_token(q.get(), nullptr, nullptr));
  EXPECT_MPX(MPX_EINVAL, mpx_queue_qsize(nullptr, &n));
  EXPECT_MPX(MPX_EINVAL, mpx_queue_closed(nullptr, &flag));
  EXPECT_MPX(MPX_EINVAL, mpx_queue_capacity(nullptr, &u));
  EXPECT_MPX(MPX_EINVAL, mpx_queue_put(nullptr, "x", 1, 0));
  EXPECT_MPX(MPX_EINVAL, mpx_queue_close(nullptr));
  EXPECT_MPX(MPX_EINVAL, mpx_queue_destroy(nullptr));
}

// ---- blocking and timeouts (SCENARIOS.md 18, 22) -------------------------------------------

TEST(QueueGet, TimesOutOnAnEmptyQueueWithinTheTimeoutPlusSlack) {
  auto q = make_queue();
  for (int64_t t : {10, 100, 250}) {
    EXPECT_TRUE(mpxt::TimesOutWithin(t, [&] {
      void *d;
      size_t n;
      return mpx_queue_get(q.get(), &d, &n, t);
    })) << "timeout " << t;
  }
}

TEST(QueueGet, OneSecondTimeoutTakesOneSecondOfMonotonicTime) {
  auto q = make_queue();
  EXPECT_TRUE(mpxt::TimesOutWithin(1000, [&] {
    char b[1];
    size_t n;
    return mpx_queue_get_into(q.get(), b, 1, &n, 1000);
  }));
}

TEST(QueuePut, TimesOutOnAFullQueueWithinTheTimeoutPlusSlack) {
  auto q = make_queue({1, 0, 0, false});
  ASSERT_MPX_OK(mpxt::put_str(q.get(), "only"));
  int full = 0;
  EXPECT_MPX_OK(mpx_queue_full(q.get(), &full));
  EXPECT_EQ(full, 1);
  for (int64_t t : {10, 100}) {
    EXPECT_TRUE(mpxt::TimesOutWithin(t, [&] { return mpxt::put_str(q.get(), "more", t); })) << "timeout " << t;
  }
  EXPECT_EQ(mpxt::qsize_of(q.get()), 1u);
}

TEST(QueuePut, TimesOutWhenTheRingIsFullOfBytes) {
  auto q = make_queue({0, 4096, 0, false});
  std::string item(900, 'b');  // four of these fill a 4 KiB ring
  int n = 0;
  while (mpxt::put_str(q.get(), item, 0) == MPX_OK) ++n;
  EXPECT_GE(n, 3);
  EXPECT_TRUE(mpxt::TimesOutWithin(100, [&] { return mpxt::put_str(q.get(), item, 100); }));
  EXPECT_EQ(mpxt::get_str(q.get(), 0), item);
  EXPECT_MPX_OK(mpxt::put_str(q.get(), item, 0));
}

TEST(QueueNowait, ReturnsAtOnce) {
  auto q = make_queue({1, 0, 0, false});
  mpxt::Stopwatch sw;
  for (int i = 0; i < 100; ++i) {
    void *d;
    size_t n;
    EXPECT_MPX(MPX_ETIMEDOUT, mpx_queue_get(q.get(), &d, &n, 0));
  }
  ASSERT_MPX_OK(mpxt::put_str(q.get(), "x", 0));
  for (int i = 0; i < 100; ++i) EXPECT_MPX(MPX_ETIMEDOUT, mpxt::put_str(q.get(), "y", 0));
  EXPECT_LT(sw.ms(), 20);
}

TEST(QueueGet, BlockedGetIsWokenByAPutInAnotherProcess) {
  auto q = make_queue();
  mpxt::Child producer = mpxt::Child::fork([&]() -> int {
    mpxt::sleep_ms(150);
    CHILD_MPX_OK(mpxt::put_str(q.get(), "hello"));
    _exit(0);  // at once: nothing may be lost (SCENARIOS.md 17)
  });
  mpxt::Stopwatch sw;
  int rc;
  EXPECT_EQ(mpxt::get_str(q.get(), 5000, &rc), "hello");
  EXPECT_MPX_OK(rc);
  EXPECT_GE(sw.ms(), 100);
  EXPECT_LT(sw.ms(), 1000);
  EXPECT_TRUE(producer.wait().ok());
}

TEST(QueuePut, BlockedPutIsWokenByAGetInAnotherProcess) {
  auto q = make_queue({2, 0, 0, false});
  ASSERT_MPX_OK(mpxt::put_str(q.get(), "a"));
  ASSERT_MPX_OK(mpxt::put_str(q.get(), "b"));
  mpxt::Child consumer = mpxt::Child::fork([&] {
    mpxt::sleep_ms(150);
    int rc;
    CHILD_CHECK(mpxt::get_str(q.get(), 1000, &rc) == "a");
    return 0;
  });
  mpxt::Stopwatch sw;
  EXPECT_MPX_OK(mpxt::put_str(q.get(), "c", 5000));
  EXPECT_GE(sw.ms(), 100);
  EXPECT_LT(sw.ms(), 1000);
  EXPECT_TRUE(consumer.wait().ok());
  EXPECT_EQ(mpxt::get_str(q.get(), 0), "b");
  EXPECT_EQ(mpxt::get_str(q.get(), 0), "c");
}

TEST(QueuePut, ProducerExitingRightAfterPutLosesNothing) {
  auto q = make_queue();
  for (int i = 0; i < 20; ++i) {
    auto st = mpxt::run_in_child([&]() -> int {
      if (mpxt::put_str(q.get(), "last words " + std::to_string(i)) != MPX_OK) _exit(1);
      _exit(0);
    });
    ASSERT_TRUE(st.ok()) << st.describe();
  }
  for (int i = 0; i < 20; ++i) EXPECT_EQ(mpxt::get_str(q.get(), 0), "last words " + std::to_string(i));
}

// ---- close (SCENARIOS.md 21) ----------------------------------------------------------------

TEST(QueueClose, GetsDrainTheQueueThenReturnEclosed) {
  auto q = make_queue();
  ASSERT_MPX_OK(mpxt::put_str(q.get(), "one"));
  ASSERT_MPX_OK(mpxt::put_str(q.get(), "two"));
  ASSERT_MPX_OK(mpx_queue_close(q.get()));
  EXPECT_MPX_OK(mpx_queue_close(q.get())) << "closing again does nothing";
  int closed = 0;
  EXPECT_MPX_OK(mpx_queue_closed(q.get(), &closed));
  EXPECT_EQ(closed, 1);
  EXPECT_MPX(MPX_ECLOSED, mpxt::put_str(q.get(), "three", 0));
  EXPECT_MPX(MPX_ECLOSED, mpxt::put_str(q.get(), "three", -1));
  EXPECT_EQ(mpxt::get_str(q.get(), 0), "one");
  EXPECT_EQ(mpxt::get_str(q.get(), -1), "two");
  int rc;
  mpxt::get_str(q.get(), -1, &rc);
  EXPECT_MPX(MPX_ECLOSED, rc);
  mpxt::get_str(q.get(), 0, &rc);
  EXPECT_MPX(MPX_ECLOSED, rc);
}

TEST(QueueClose, WakesGetsAndPutsBlockedInOtherProcessesAndThreads) {
  auto empty = make_queue();
  auto full = make_queue({1, 0, 0, false});
  ASSERT_MPX_OK(mpxt::put_str(full.get(), "x"));
  mpxt::Shared<std::atomic<int64_t>> woke_ms[4];
  std::vector<mpxt::Child> children;
  std::vector<std::thread> threads;
  mpxt::Stopwatch sw;
  for (int i = 0; i < 2; ++i)
    children.push_back(mpxt::Child::fork([&, i] {
      int rc;
      if (i == 0) mpxt::get_str(empty.get(), 10000, &rc);
      else rc = mpxt::put_str(full.get(), "y", 10000);
      CHILD_MPX(MPX_ECLOSED, rc);
      woke_ms[i]->store(sw.ms());
      return 0;
    }));
  for (int i = 2; i < 4; ++i)
    threads.emplace_back([&, i] {
      int rc;
      if (i == 2) mpxt::get_str(empty.get(), 10000, &rc);
      else rc = mpxt::put_str(full.get(), "y", 10000);
      EXPECT_MPX(MPX_ECLOSED, rc);
      woke_ms[i]->store(sw.ms());
    });
  mpxt::sleep_ms(300);
  const int64_t closed_at = sw.ms();
  ASSERT_MPX_OK(mpx_queue_close(empty.get()));
  ASSERT_MPX_OK(mpx_queue_close(full.get()));
  for (auto &c : children) EXPECT_TRUE(c.wait().ok());
  for (auto &t : threads) t.join();
  for (int i = 0; i < 4; ++i) {
    EXPECT_GE(woke_ms[i]->load(), closed_at) << i;
    EXPECT_LE(woke_ms[i]->load(), closed_at + 100) << i;
  }
}

// ---- handles ------------------------------------------------------------------------------

TEST(QueueHandle, DestroyFromAnotherThreadWakesBlockedCallsWithEclosed) {
  // Blocked in get (empty), put (full), join (unfinished), and behind the consumer lock.
  for (int blocked_in = 0; blocked_in < 4; ++blocked_in) {
    mpx_queue *q = mpxt::make_queue({1, 0, 0, true}).release();
    if (blocked_in == 1 || blocked_in == 2) {
      ASSERT_MPX_OK(mpxt::put_str(q, "item"));
    }
    std::atomic<int> rc[2] = {INT32_MIN, INT32_MIN};
    auto call = [&](int i) {
      int r = INT32_MIN;
      switch (blocked_in) {
        case 0: case 3: mpxt::get_str(q, -1, &r); break;
        case 1: r = mpxt::put_str(q, "more", -1); break;
        case 2: r = mpx_queue_join(q, -1); break;
      }
      rc[i].store(r);
    };
    std::thread a(call, 0), b;
    if (blocked_in == 3) b = std::thread(call, 1);
    mpxt::sleep_ms(100);
    mpxt::Stopwatch sw;
    ASSERT_MPX_OK(mpx_queue_destroy(q));
    a.join();
    if (b.joinable()) b.join();
    EXPECT_LT(sw.ms(), 100) << "case " << blocked_in;
    EXPECT_MPX(MPX_ECLOSED, rc[0].load()) << "case " << blocked_in;
    if (blocked_in == 3) {
      EXPECT_MPX(MPX_ECLOSED, rc[1].load());
    }
  }
}

TEST(QueueHandle, UseAfterDestroyIsEbadhandle) {
  mpx_queue *q = make_queue().release();
  ASSERT_MPX_OK(mpx_queue_destroy(q));
  size_t n;
  EXPECT_MPX(MPX_EBADHANDLE, mpx_queue_qsize(q, &n));
  EXPECT_MPX(MPX_EBADHANDLE, mpxt::put_str(q, "x", 0));
  EXPECT_MPX(MPX_EBADHANDLE, mpx_queue_close(q));
  EXPECT_MPX(MPX_EBADHANDLE, mpx_queue_destroy(q));
  mpx_lock *wrong = reinterpret_cast<mpx_lock *>(q);
  EXPECT_MPX(MPX_EBADHANDLE, mpx_lock_release(wrong));
  auto l = mpxt::make_lock();
  EXPECT_MPX(MPX_EBADHANDLE, mpx_queue_close(reinterpret_cast<mpx_queue *>(l.get())));
  EXPECT_MPX(MPX_EBADHANDLE, mpx_queue_close(reinterpret_cast<mpx_queue *>(uintptr_t(0x123456789))));
}

// ---- JoinableQueue ------------------------------------------------------------------------

TEST(QueueJoinable, TaskDoneAndJoinCountEveryItemPut) {
  auto q = make_queue({0, 0, 0, true});
  uint64_t n = 99;
  EXPECT_MPX_OK(mpx_queue_unfinished(q.get(), &n));
  EXPECT_EQ(n, 0u);
  EXPECT_MPX_OK(mpx_queue_join(q.get(), 0)) << "nothing put: join returns at once";
  EXPECT_MPX(MPX_EOVERFLOW, mpx_queue_task_done(q.get()));
  for (int i = 0; i < 3; ++i) ASSERT_MPX_OK(mpxt::put_str(q.get(), "job"));
  EXPECT_MPX_OK(mpx_queue_unfinished(q.get(), &n));
  EXPECT_EQ(n, 3u);
  EXPECT_MPX(MPX_ETIMEDOUT, mpx_queue_join(q.get(), 0));
  EXPECT_TRUE(mpxt::TimesOutWithin(100, [&] { return mpx_queue_join(q.get(), 100); }));
  for (int i = 0; i < 3; ++i) mpxt::get_str(q.get(), 0);
  EXPECT_MPX_OK(mpx_queue_unfinished(q.get(), &n));
  EXPECT_EQ(n, 3u) << "taken is not done";
  EXPECT_MPX_OK(mpx_queue_task_done(q.get()));
  EXPECT_MPX_OK(mpx_queue_task_done(q.get()));
  EXPECT_MPX(MPX_ETIMEDOUT, mpx_queue_join(q.get(), 0));
  EXPECT_MPX_OK(mpx_queue_task_done(q.get()));
  EXPECT_MPX_OK(mpx_queue_join(q.get(), 0));
  EXPECT_MPX(MPX_EOVERFLOW, mpx_queue_task_done(q.get())) << "called more times than items were put";
  EXPECT_MPX_OK(mpx_queue_unfinished(q.get(), &n));
  EXPECT_EQ(n, 0u);
}

TEST(QueueJoinable, JoinWakesWhenWorkersInOtherProcessesFinish) {
  auto q = make_queue({0, 0, 0, true});
  mpxt::Shared<std::atomic<int>> processed(0);
  std::vector<mpxt::Child> workers;
  for (int w = 0; w < 3; ++w)
    workers.push_back(mpxt::Child::fork([&] {
      for (;;) {
        int rc;
        mpxt::get_str(q.get(), 5000, &rc);
        if (rc == MPX_ECLOSED) return 0;
        CHILD_MPX_OK(rc);
        processed->fetch_add(1);
        CHILD_MPX_OK(mpx_queue_task_done(q.get()));
      }
    }));
  for (int i = 0; i < 300; ++i) ASSERT_MPX_OK(mpxt::put_str(q.get(), "job " + std::to_string(i)));
  EXPECT_MPX_OK(mpx_queue_join(q.get(), 10000));
  EXPECT_EQ(processed->load(), 300);
  ASSERT_MPX_OK(mpx_queue_close(q.get()));
  for (auto &w : workers) EXPECT_TRUE(w.wait().ok());
}

TEST(QueueJoinable, JoinOnAClosedQueueWithUnfinishedItemsIsEclosed) {
  auto q = make_queue({0, 0, 0, true});
  ASSERT_MPX_OK(mpxt::put_str(q.get(), "job"));
  std::atomic<int> rc{INT32_MIN};
  std::thread joiner([&] { rc = mpx_queue_join(q.get(), 10000); });
  mpxt::sleep_ms(100);
  mpxt::Stopwatch sw;
  ASSERT_MPX_OK(mpx_queue_close(q.get()));
  joiner.join();
  EXPECT_MPX(MPX_ECLOSED, rc.load());
  EXPECT_LT(sw.ms(), 100);
  mpxt::get_str(q.get(), 0);
  EXPECT_MPX_OK(mpx_queue_task_done(q.get()));
  EXPECT_MPX_OK(mpx_queue_join(q.get(), 0)) << "nothing unfinished: closed or not";
}

TEST(QueueJoinable, APlainQueueHasNoTaskDoneOrJoin) {
  auto q = make_queue();
  uint64_t n;
  EXPECT_MPX(MPX_EINVAL, mpx_queue_task_done(q.get()));
  EXPECT_MPX(MPX_EINVAL, mpx_queue_join(q.get(), 0));
  EXPECT_MPX(MPX_EINVAL, mpx_queue_unfinished(q.get(), &n));
}

// ---- counts -------------------------------------------------------------------------------

TEST(QueueCount, QsizeEmptyAndFullFollowPutsAndGets) {
  auto q = make_queue({3, 0, 0, false});
  int empty = 0, full = 1;
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(mpxt::qsize_of(q.get()), size_t(i));
    EXPECT_MPX_OK(mpx_queue_full(q.get(), &full));
    EXPECT_EQ(full, 0);
    ASSERT_MPX_OK(mpxt::put_str(q.get(), std::string(size_t(i) * 3000, 'x')));  // small, large, streamed... all count 1
    EXPECT_MPX_OK(mpx_queue_empty(q.get(), &empty));
    EXPECT_EQ(empty, 0);
  }
  EXPECT_MPX_OK(mpx_queue_full(q.get(), &full));
  EXPECT_EQ(full, 1);
  uint64_t maxsize = 0;
  EXPECT_MPX_OK(mpx_queue_maxsize(q.get(), &maxsize));
  EXPECT_EQ(maxsize, 3u);
  for (int i = 3; i > 0; --i) {
    EXPECT_EQ(mpxt::qsize_of(q.get()), size_t(i));
    EXPECT_EQ(mpxt::get_str(q.get(), 0).size(), size_t(3 - i) * 3000);
  }
  EXPECT_MPX_OK(mpx_queue_empty(q.get(), &empty));
  EXPECT_EQ(empty, 1);
}

// ---- streams that do not finish -----------------------------------------------------------

TEST(QueueStream, APutThatTimesOutMidwayDeliversNothing) {
  // 4 MiB into a 64 KiB ring with no consumer: the first chunks go in, then the put times
  // out. The next get drops what was sent; the next item comes out whole.
  auto q = make_queue({0, 65536, 0, true});
  std::vector<uint8_t> big(size_t(4) << 20, 0xAB);
  EXPECT_TRUE(mpxt::TimesOutWithin(100, [&] { return mpx_queue_put(q.get(), big.data(), big.size(), 100); }));
  int rc;
  mpxt::get_str(q.get(), 100, &rc);
  EXPECT_MPX(MPX_ETIMEDOUT, rc) << "what was sent is dropped: nothing to get";
  ASSERT_MPX_OK(mpxt::put_str(q.get(), "after", 1000));
  EXPECT_EQ(mpxt::get_str(q.get(), 1000), "after");
  mpxt::get_str(q.get(), 0, &rc);
  EXPECT_MPX(MPX_ETIMEDOUT, rc);
  EXPECT_MPX_OK(mpx_queue_task_done(q.get()));
  EXPECT_MPX_OK(mpx_queue_join(q.get(), 0)) << "the dropped item is not left unfinished";
}

TEST(QueueStream, AStreamingPutBlockedWhenTheQueueClosesReturnsEclosed) {
  auto q = make_queue({0, 65536, 0, false});
  std::vector<uint8_t> big(size_t(4) << 20, 0xCD);
  std::atomic<int> rc{INT32_MIN};
  std::thread producer([&] { rc = mpx_queue_put(q.get(), big.data(), big.size(), 10000); });
  mpxt::sleep_ms(100);
  mpxt::Stopwatch sw;
  ASSERT_MPX_OK(mpx_queue_close(q.get()));
  producer.join();
  EXPECT_MPX(MPX_ECLOSED, rc.load());
  EXPECT_LT(sw.ms(), 100);
  int r;
  mpxt::get_str(q.get(), 1000, &r);
  EXPECT_MPX(MPX_ECLOSED, r) << "the partial item is dropped, not delivered";
}

TEST(QueueStream, AGetWaitsForTheRestOfAStreamBeyondItsTimeout) {
  // The consumer takes the first chunk within its timeout; the rest comes slowly (the
  // producer is slowed down by a tiny ring); the get completes anyway.
  auto q = make_queue({0, 4096, 0, false});
  auto item = mpxt::pattern(9, 200000);
  std::thread producer([&] { EXPECT_MPX_OK(mpx_queue_put(q.get(), item.data(), item.size(), 10000)); });
  void *data = nullptr;
  size_t len = 0;
  EXPECT_MPX_OK(mpx_queue_get(q.get(), &data, &len, 1000));
  EXPECT_EQ(len, item.size());
  EXPECT_TRUE(data && std::memcmp(data, item.data(), len) == 0);
  mpx_free(data);
  producer.join();
}

// ---- other processes ----------------------------------------------------------------------

TEST(QueueToken, AForkedChildUsesTheInheritedHandleOrAttachesByToken) {
  auto q = make_queue({0, 8192, 0, false});
  std::string tok = mpxt::token_of(mpx_queue_token, q.get());
  ASSERT_FALSE(tok.empty());
  mpx_queue *inherited = q.get();
  auto st = mpxt::run_in_child([&] {
    CHILD_MPX_OK(mpxt::put_str(inherited, "from the inherited handle"));
    CHILD_MPX_OK(mpx_queue_destroy(inherited));
    mpx_queue *a = nullptr;
    CHILD_MPX_OK(mpx_queue_attach(&a, tok.c_str()));
    uint64_t cap = 0;
    CHILD_MPX_OK(mpx_queue_capacity(a, &cap));
    CHILD_CHECK_EQ(cap, 8192);
    CHILD_MPX_OK(mpxt::put_str(a, "from an attached handle"));
    CHILD_MPX_OK(mpx_queue_destroy(a));
    return 0;
  });
  EXPECT_TRUE(st.ok()) << st.describe();
  EXPECT_EQ(mpxt::get_str(q.get(), 0), "from the inherited handle");
  EXPECT_EQ(mpxt::get_str(q.get(), 0), "from an attached handle");
}

TEST(QueueToken, AttachingSomethingElseFails) {
  auto lock = mpxt::make_lock();
  std::string lock_token = mpxt::token_of(mpx_lock_token, lock.get());
  mpx_queue *q = reinterpret_cast<mpx_queue *>(0x1);
  EXPECT_MPX(MPX_EINVAL, mpx_queue_attach(&q, lock_token.c_str()));
  EXPECT_EQ(q, nullptr);
  EXPECT_NE(mpx_queue_attach(&q, "not a token"), MPX_OK);
  EXPECT_MPX(MPX_EINVAL, mpx_queue_attach(&q, nullptr));
  EXPECT_MPX(MPX_EINVAL, mpx_queue_attach(nullptr, lock_token.c_str()));
  char small[4];
  size_t len = sizeof small;
  auto qq = make_queue();
  EXPECT_MPX(MPX_ENOBUFS, mpx_queue_token(qq.get(), small, &len));
  EXPECT_GT(len, sizeof small);
}

MPXT_HELPER(queue_echo) {
  // args: request token, reply token, count. Take `count` requests, reply with each reversed.
  mpx_queue *in = nullptr, *out = nullptr;
  if (mpx_queue_attach(&in, args.at(0).c_str()) != MPX_OK) return 2;
  if (mpx_queue_attach(&out, args.at(1).c_str()) != MPX_OK) return 2;
  const int n = std::stoi(args.at(2));
  for (int i = 0; i < n; ++i) {
    int rc;
    std::string s = mpxt::get_str(in, 5000, &rc);
    if (rc != MPX_OK) return 3;
    if (mpxt::put_str(out, std::string(s.rbegin(), s.rend()), 5000) != MPX_OK) return 4;
  }
  mpx_queue_destroy(in);
  mpx_queue_destroy(out);
  return 0;
}

TEST(QueueToken, AnExecedProcessAttachesByToken) {
  auto requests = make_queue();
  auto replies = make_queue({0, 4096, 0, false});
  mpxt::Child echo = mpxt::Child::exec_helper(
      "queue_echo", {mpxt::token_of(mpx_queue_token, requests.get()), mpxt::token_of(mpx_queue_token, replies.get()), "3"});
  for (const char *s : {"abc", "hello", ""}) {
    ASSERT_MPX_OK(mpxt::put_str(requests.get(), s));
    std::string want(s);
    EXPECT_EQ(mpxt::get_str(replies.get(), 5000), std::string(want.rbegin(), want.rend()));
  }
  auto st = echo.wait(10000ms);
  EXPECT_TRUE(st.ok()) << st.describe();
}

TEST(QueueTimeout, Int64MaxBlocksWithoutOverflowAndAnyNegativeBlocksForever) {
  auto q = make_queue({1, 0, 0, false});
  for (int64_t t : {INT64_MAX, int64_t(-1), int64_t(-12345), INT64_MIN}) {
    std::thread producer([&] {
      mpxt::sleep_ms(100);
      EXPECT_MPX_OK(mpxt::put_str(q.get(), "late", t));
      EXPECT_MPX_OK(mpxt::put_str(q.get(), "later", t)) << "blocks while full, then goes in";
    });
    mpxt::Stopwatch sw;
    int rc;
    EXPECT_EQ(mpxt::get_str(q.get(), t, &rc), "late") << "timeout " << t;
    EXPECT_MPX_OK(rc);
    EXPECT_GE(sw.ms(), 90);
    mpxt::sleep_ms(100);
    EXPECT_EQ(mpxt::get_str(q.get(), t, &rc), "later");
    producer.join();
  }
}
