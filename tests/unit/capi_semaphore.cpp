// Semaphore and BoundedSemaphore across processes (SCENARIOS.md 25).
#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "support/mpx_helpers.hpp"

using namespace std::chrono_literals;

namespace {

uint32_t value_of(mpx_semaphore *s) {
  uint32_t v = 0xdeadbeef;
  EXPECT_MPX_OK(mpx_semaphore_value(s, &v));
  return v;
}

}  // namespace

TEST(SemaphoreCreate, StartsAtTheGivenValue) {
  for (uint32_t v : {0u, 1u, 7u, MPX_SEMAPHORE_VALUE_MAX}) {
    auto s = mpxt::make_semaphore(v);
    ASSERT_TRUE(s);
    EXPECT_EQ(value_of(s.get()), v);
    uint32_t max = 0;
    EXPECT_MPX_OK(mpx_semaphore_max_value(s.get(), &max));
    EXPECT_EQ(max, MPX_SEMAPHORE_VALUE_MAX) << "unbounded";
  }
}

TEST(SemaphoreCreate, NullOptionsMeanAnUnboundedSemaphore) {
  mpx_semaphore *s = nullptr;
  ASSERT_MPX_OK(mpx_semaphore_create(&s, 2, nullptr));
  mpxt::SemaphorePtr guard(s);
  uint32_t max = 0;
  EXPECT_MPX_OK(mpx_semaphore_max_value(s, &max));
  EXPECT_EQ(max, MPX_SEMAPHORE_VALUE_MAX);
  EXPECT_MPX_OK(mpx_semaphore_release(s));
  EXPECT_EQ(value_of(s), 3u);
}

TEST(SemaphoreAcquire, DecrementsAndReleaseIncrements) {
  auto s = mpxt::make_semaphore(2);
  EXPECT_MPX_OK(mpx_semaphore_acquire(s.get(), 0));
  EXPECT_EQ(value_of(s.get()), 1u);
  EXPECT_MPX_OK(mpx_semaphore_acquire(s.get(), -1));
  EXPECT_EQ(value_of(s.get()), 0u);
  EXPECT_MPX(MPX_ETIMEDOUT, mpx_semaphore_acquire(s.get(), 0));
  EXPECT_MPX_OK(mpx_semaphore_release(s.get()));
  EXPECT_EQ(value_of(s.get()), 1u);
}

TEST(SemaphoreAcquire, TimesOutWithinTheTimeoutPlusSlack) {
  auto s = mpxt::make_semaphore(0);
  for (int64_t t : {10, 100, 250})
    EXPECT_TRUE(mpxt::TimesOutWithin(t, [&] { return mpx_semaphore_acquire(s.get(), t); })) << "timeout " << t;
  EXPECT_EQ(value_of(s.get()), 0u);
}

TEST(SemaphoreAcquire, TryReturnsAtOnce) {
  auto s = mpxt::make_semaphore(0);
  mpxt::Stopwatch sw;
  for (int i = 0; i < 100; ++i) EXPECT_MPX(MPX_ETIMEDOUT, mpx_semaphore_acquire(s.get(), 0));
  EXPECT_LT(sw.ms(), 20);
}

TEST(SemaphoreAcquire, TryAcquireDecrementsOrReportsZero) {
  auto sem = mpxt::make_semaphore(1);
  EXPECT_MPX_OK(mpx_semaphore_try_acquire(sem.get()));
  mpxt::Stopwatch sw;
  EXPECT_MPX(MPX_ETIMEDOUT, mpx_semaphore_try_acquire(sem.get()));
  EXPECT_LT(sw.ms(), 20);
  EXPECT_MPX_OK(mpx_semaphore_release(sem.get()));
  EXPECT_MPX_OK(mpx_semaphore_try_acquire(sem.get()));
}

TEST(SemaphoreAcquire, BlockedAcquireIsWokenByAReleaseInAnotherProcess) {
  auto s = mpxt::make_semaphore(0);
  mpxt::Child releaser = mpxt::Child::fork([&] {
    mpxt::sleep_ms(150);
    CHILD_MPX_OK(mpx_semaphore_release(s.get()));
    return 0;
  });
  mpxt::Stopwatch sw;
  EXPECT_MPX_OK(mpx_semaphore_acquire(s.get(), 5000));
  EXPECT_GE(sw.ms(), 100);
  EXPECT_LT(sw.ms(), 150 + 500);
  EXPECT_TRUE(releaser.wait().ok());
  EXPECT_EQ(value_of(s.get()), 0u);
}

TEST(SemaphoreAcquire, OneReleaseWakesExactlyOneOfManyWaiters) {
  auto s = mpxt::make_semaphore(0);
  mpxt::Shared<std::atomic<int>> passed(0);
  std::vector<mpxt::Child> waiters;
  for (int i = 0; i < 3; ++i)
    waiters.push_back(mpxt::Child::fork([&] {
      CHILD_MPX_OK(mpx_semaphore_acquire(s.get(), 10000));
      passed->fetch_add(1);
      return 0;
    }));
  mpxt::sleep_ms(200);
  ASSERT_MPX_OK(mpx_semaphore_release(s.get()));
  mpxt::sleep_ms(300);
  EXPECT_EQ(passed->load(), 1) << "one release, one waiter";
  ASSERT_MPX_OK(mpx_semaphore_release(s.get()));
  ASSERT_MPX_OK(mpx_semaphore_release(s.get()));
  for (auto &w : waiters) EXPECT_TRUE(w.wait(5000ms).ok());
  EXPECT_EQ(passed->load(), 3);
  EXPECT_EQ(value_of(s.get()), 0u);
}

TEST(SemaphoreAcquire, NeverMoreHoldersThanTheValue) {
  auto s = mpxt::make_semaphore(2);
  mpxt::Shared<std::atomic<int>> inside(0), max_inside(0);
  auto results = mpxt::run_together(
      5,
      [&](int) {
        for (int i = 0; i < 2000; ++i) {
          CHILD_MPX_OK(mpx_semaphore_acquire(s.get(), -1));
          int now = inside->fetch_add(1) + 1;
          int m = max_inside->load();
          while (now > m && !max_inside->compare_exchange_weak(m, now)) {
          }
          inside->fetch_sub(1);
          CHILD_MPX_OK(mpx_semaphore_release(s.get()));
        }
        return 0;
      },
      60000ms);
  std::string why;
  EXPECT_TRUE(mpxt::all_ok(results, &why)) << why;
  EXPECT_LE(max_inside->load(), 2);
  EXPECT_GE(max_inside->load(), 1);
  EXPECT_EQ(value_of(s.get()), 2u);
}

TEST(SemaphoreAcquire, AWaiterKilledWhileBlockedDoesNotSwallowAWakeup) {
  auto s = mpxt::make_semaphore(0);
  mpxt::Child doomed = mpxt::Child::fork([&] {
    mpx_semaphore_acquire(s.get(), -1);
    return 0;
  });
  mpxt::sleep_ms(150);
  doomed.kill_and_wait(SIGKILL);
  mpxt::Child survivor = mpxt::Child::fork([&] {
    CHILD_MPX_OK(mpx_semaphore_acquire(s.get(), 5000));
    return 0;
  });
  mpxt::sleep_ms(150);
  ASSERT_MPX_OK(mpx_semaphore_release(s.get()));
  mpxt::Stopwatch sw;
  auto st = survivor.wait(5000ms);
  EXPECT_TRUE(st.ok()) << st.describe();
  EXPECT_LT(sw.ms(), 1000);
}

// ---- bounded --------------------------------------------------------------------------------

TEST(SemaphoreBounded, ReleasePastTheInitialValueIsEoverflowAndValueUnchanged) {
  auto s = mpxt::make_semaphore(2, true);  // max_value 0: the initial value is the bound
  uint32_t max = 0;
  EXPECT_MPX_OK(mpx_semaphore_max_value(s.get(), &max));
  EXPECT_EQ(max, 2u);
  EXPECT_MPX(MPX_EOVERFLOW, mpx_semaphore_release(s.get()));
  EXPECT_EQ(value_of(s.get()), 2u);
  EXPECT_MPX_OK(mpx_semaphore_acquire(s.get(), 0));
  EXPECT_MPX_OK(mpx_semaphore_release(s.get()));
  EXPECT_MPX(MPX_EOVERFLOW, mpx_semaphore_release(s.get()));
  EXPECT_EQ(value_of(s.get()), 2u);
}

TEST(SemaphoreBounded, ExplicitMaximumAboveTheInitialValue) {
  auto s = mpxt::make_semaphore(1, true, 3);
  uint32_t max = 0;
  EXPECT_MPX_OK(mpx_semaphore_max_value(s.get(), &max));
  EXPECT_EQ(max, 3u);
  EXPECT_MPX_OK(mpx_semaphore_release(s.get()));
  EXPECT_MPX_OK(mpx_semaphore_release(s.get()));
  EXPECT_MPX(MPX_EOVERFLOW, mpx_semaphore_release(s.get()));
  EXPECT_EQ(value_of(s.get()), 3u);
}

TEST(SemaphoreBounded, OverReleaseFromAnotherProcessIsEoverflow) {
  auto s = mpxt::make_semaphore(1, true);
  auto st = mpxt::run_in_child([&] {
    CHILD_MPX(MPX_EOVERFLOW, mpx_semaphore_release(s.get()));
    return 0;
  });
  EXPECT_TRUE(st.ok()) << st.describe();
  EXPECT_EQ(value_of(s.get()), 1u);
}

TEST(SemaphoreBounded, InitialValueAboveTheMaximumIsEinval) {
  mpx_semaphore_options o;
  mpx_semaphore_options_init(&o, sizeof o);
  o.flags = MPX_SEMAPHORE_BOUNDED;
  o.max_value = 2;
  mpx_semaphore *s = nullptr;
  EXPECT_MPX(MPX_EINVAL, mpx_semaphore_create(&s, 3, &o));
  EXPECT_EQ(s, nullptr);
}

TEST(SemaphoreBounded, BoundedZeroIsUsable) {
  // BoundedSemaphore(0): the bound is 0, so every release overflows.
  auto s = mpxt::make_semaphore(0, true);
  ASSERT_TRUE(s);
  EXPECT_MPX(MPX_EOVERFLOW, mpx_semaphore_release(s.get()));
  EXPECT_MPX(MPX_ETIMEDOUT, mpx_semaphore_acquire(s.get(), 0));
}

TEST(SemaphoreUnbounded, ReleaseAtTheMaximumValueIsEoverflow) {
  auto s = mpxt::make_semaphore(MPX_SEMAPHORE_VALUE_MAX);
  EXPECT_MPX(MPX_EOVERFLOW, mpx_semaphore_release(s.get()));
  EXPECT_EQ(value_of(s.get()), MPX_SEMAPHORE_VALUE_MAX);
}

// ---- tokens ------------------------------------------------------------------------------------

TEST(SemaphoreToken, AttachInAForkedChildSeesTheSameSemaphore) {
  auto s = mpxt::make_semaphore(3, true, 5);
  std::string tok = mpxt::token_of(mpx_semaphore_token, s.get());
  ASSERT_FALSE(tok.empty());
  mpx_semaphore *inherited = s.get();
  auto st = mpxt::run_in_child([&] {
    CHILD_MPX_OK(mpx_semaphore_destroy(inherited));
    mpx_semaphore *a = nullptr;
    CHILD_MPX_OK(mpx_semaphore_attach(&a, tok.c_str()));
    uint32_t v = 0, m = 0;
    CHILD_MPX_OK(mpx_semaphore_value(a, &v));
    CHILD_MPX_OK(mpx_semaphore_max_value(a, &m));
    CHILD_CHECK_EQ(v, 3);
    CHILD_CHECK_EQ(m, 5);
    CHILD_MPX_OK(mpx_semaphore_acquire(a, 0));
    CHILD_MPX_OK(mpx_semaphore_destroy(a));
    return 0;
  });
  EXPECT_TRUE(st.ok()) << st.describe();
  EXPECT_EQ(value_of(s.get()), 2u);
}
