// Barrier across processes (SCENARIOS.md 29): lockstep, unique arrival indices, timeouts that
// break it, a killed party, abort, reset, and MPX_BARRIER_HOLD + release.
#include <atomic>
#include <string>
#include <vector>

#include "support/mpx_helpers.hpp"

using namespace std::chrono_literals;

namespace {

uint32_t n_waiting(mpx_barrier *b) {
  uint32_t n = 999;
  EXPECT_MPX_OK(mpx_barrier_n_waiting(b, &n));
  return n;
}

int broken(mpx_barrier *b) {
  int v = -1;
  EXPECT_MPX_OK(mpx_barrier_broken(b, &v));
  return v;
}

// Wait until `n` parties are waiting on the barrier (bounded).
bool until_waiting(mpx_barrier *b, uint32_t n) {
  mpxt::Stopwatch sw;
  while (n_waiting(b) < n) {
    if (sw.ms() > 10000) return false;
    mpxt::sleep_ms(2);
  }
  return true;
}

}  // namespace

TEST(BarrierBasics, PartiesWaitingBroken) {
  auto b = mpxt::make_barrier(3);
  uint32_t p = 0;
  EXPECT_MPX_OK(mpx_barrier_parties(b.get(), &p));
  EXPECT_EQ(p, 3u);
  EXPECT_EQ(n_waiting(b.get()), 0u);
  EXPECT_EQ(broken(b.get()), 0);
}

TEST(BarrierBasics, SinglePartyPassesAtOnceWithIndexZero) {
  auto b = mpxt::make_barrier(1);
  for (int i = 0; i < 10; ++i) {
    uint32_t idx = 99;
    EXPECT_MPX_OK(mpx_barrier_wait(b.get(), 0, &idx));
    EXPECT_EQ(idx, 0u);
  }
}

TEST(BarrierBasics, IndexMayBeNull) {
  auto b = mpxt::make_barrier(2);
  mpxt::Child other = mpxt::Child::fork([&] {
    CHILD_MPX_OK(mpx_barrier_wait(b.get(), 5000, nullptr));
    return 0;
  });
  EXPECT_MPX_OK(mpx_barrier_wait(b.get(), 5000, nullptr));
  EXPECT_TRUE(other.wait().ok());
}

TEST(BarrierBasics, UnknownWaitFlagsAreEinval) {
  auto b = mpxt::make_barrier(1);
  uint32_t idx = 0;
  EXPECT_MPX(MPX_EINVAL, mpx_barrier_wait_ex(b.get(), 0, 0x80u, &idx));
}

TEST(BarrierLockstep, FiveProcessesThousandPassesWithUniqueIndices) {
  constexpr int kParties = 5, kPasses = 1000;
  auto b = mpxt::make_barrier(kParties);
  struct Shared {
    std::atomic<int> pass_of[kParties];
    std::atomic<uint32_t> index_mask[kPasses];
    std::atomic<int> lockstep_errors;
  };
  mpxt::Shared<Shared> sh;
  mpxt::Stopwatch sw;
  auto results = mpxt::run_in_children(
      kParties,
      [&](int me) {
        for (int pass = 0; pass < kPasses; ++pass) {
          sh->pass_of[me].store(pass);
          uint32_t idx = 999;
          CHILD_MPX_OK(mpx_barrier_wait(b.get(), 20000, &idx));
          CHILD_CHECK(idx < static_cast<uint32_t>(kParties));
          uint32_t before = sh->index_mask[pass].fetch_or(1u << idx);
          if (before & (1u << idx)) CHILD_FAIL("pass %d: index %u handed out twice", pass, idx);
          // Everyone reached this pass before anyone passed it; nobody is two passes ahead.
          for (int other = 0; other < kParties; ++other) {
            int p = sh->pass_of[other].load();
            if (p < pass || p > pass + 1) sh->lockstep_errors.fetch_add(1);
          }
        }
        return 0;
      },
      60000ms);
  std::string why;
  EXPECT_TRUE(mpxt::all_ok(results, &why)) << why;
  EXPECT_EQ(sh->lockstep_errors.load(), 0);
  for (int pass = 0; pass < kPasses; ++pass)
    ASSERT_EQ(sh->index_mask[pass].load(), (1u << kParties) - 1) << "pass " << pass;
  EXPECT_EQ(broken(b.get()), 0);
  std::printf("[ info ] 5 processes x 1000 barrier passes: %lld ms\n", static_cast<long long>(sw.ms()));
}

TEST(BarrierTimeout, BreaksTheBarrierForTheOthers) {
  auto b = mpxt::make_barrier(3);
  mpxt::Shared<std::atomic<int>> other_rc(INT32_MIN);
  mpxt::Shared<std::atomic<int64_t>> other_ms(-1);
  mpxt::Child patient = mpxt::Child::fork([&] {
    mpxt::Stopwatch sw;
    other_rc->store(mpx_barrier_wait(b.get(), 10000, nullptr));
    other_ms->store(sw.ms());
    return 0;
  });
  ASSERT_TRUE(until_waiting(b.get(), 1));
  mpxt::Stopwatch sw;
  EXPECT_MPX(MPX_ETIMEDOUT, mpx_barrier_wait(b.get(), 100, nullptr));
  EXPECT_GE(sw.ms_f(), 100.0);
  EXPECT_TRUE(patient.wait(5000ms).ok());
  EXPECT_MPX(MPX_EBROKEN, other_rc->load());
  EXPECT_LT(other_ms->load(), 1000) << "the other waiter must learn of the break at once, not at its own timeout";
  EXPECT_EQ(broken(b.get()), 1);
  EXPECT_MPX(MPX_EBROKEN, mpx_barrier_wait(b.get(), 0, nullptr)) << "broken until reset";
  EXPECT_MPX(MPX_EBROKEN, mpx_barrier_wait(b.get(), 1000, nullptr));
}

TEST(BarrierTimeout, TimesOutWithinTheTimeoutPlusSlack) {
  auto b = mpxt::make_barrier(2);
  for (int64_t t : {10, 100}) {
    EXPECT_TRUE(mpxt::TimesOutWithin(t, [&] {
      mpx_barrier_reset(b.get());
      return mpx_barrier_wait(b.get(), t, nullptr);
    })) << "timeout " << t;
  }
}

TEST(BarrierTimeout, ResetMakesABrokenBarrierReusable) {
  auto b = mpxt::make_barrier(2);
  EXPECT_MPX(MPX_ETIMEDOUT, mpx_barrier_wait(b.get(), 10, nullptr));
  EXPECT_EQ(broken(b.get()), 1);
  EXPECT_MPX_OK(mpx_barrier_reset(b.get()));
  EXPECT_EQ(broken(b.get()), 0);
  EXPECT_EQ(n_waiting(b.get()), 0u);
  mpxt::Child other = mpxt::Child::fork([&] {
    CHILD_MPX_OK(mpx_barrier_wait(b.get(), 5000, nullptr));
    return 0;
  });
  EXPECT_MPX_OK(mpx_barrier_wait(b.get(), 5000, nullptr));
  EXPECT_TRUE(other.wait().ok());
}

TEST(BarrierPartyKilled, TheOthersGetBrokenWithinTheBarrierTimeout) {
  auto b = mpxt::make_barrier(4);
  mpxt::Child doomed = mpxt::Child::fork([&] {
    mpx_barrier_wait(b.get(), -1, nullptr);
    return 0;
  });
  ASSERT_TRUE(until_waiting(b.get(), 1));
  doomed.kill_and_wait(SIGKILL);
  // Two live parties wait with timeouts 1 s and 5 s; the fourth never comes.
  mpxt::Shared<std::atomic<int>> rc_short(INT32_MIN), rc_long(INT32_MIN);
  mpxt::Shared<std::atomic<int64_t>> ms_long(-1);
  mpxt::Stopwatch sw;
  mpxt::Child a = mpxt::Child::fork([&] {
    rc_short->store(mpx_barrier_wait(b.get(), 1000, nullptr));
    return 0;
  });
  mpxt::Child c = mpxt::Child::fork([&] {
    mpxt::Stopwatch w;
    rc_long->store(mpx_barrier_wait(b.get(), 5000, nullptr));
    ms_long->store(w.ms());
    return 0;
  });
  EXPECT_TRUE(a.wait(10000ms).ok());
  EXPECT_TRUE(c.wait(10000ms).ok());
  EXPECT_TRUE(rc_short->load() == MPX_ETIMEDOUT || rc_short->load() == MPX_EBROKEN)
      << mpxt::code_str(rc_short->load());
  EXPECT_MPX(MPX_EBROKEN, rc_long->load());
  EXPECT_LE(ms_long->load(), 1000 + 300) << "the 5 s waiter should be broken when the 1 s one times out";
  EXPECT_EQ(broken(b.get()), 1);
  EXPECT_MPX_OK(mpx_barrier_reset(b.get()));
  auto results = mpxt::run_in_children(
      4, [&](int) { return mpx_barrier_wait(b.get(), 5000, nullptr) == MPX_OK ? 0 : 1; }, 10000ms);
  std::string why;
  EXPECT_TRUE(mpxt::all_ok(results, &why)) << "after reset: " << why;
}

TEST(BarrierAbort, BreaksEveryWaiterAndFutureWaits) {
  auto b = mpxt::make_barrier(3);
  mpxt::Shared<std::atomic<int>> broken_count(0);
  std::vector<mpxt::Child> kids;
  for (int i = 0; i < 2; ++i)
    kids.push_back(mpxt::Child::fork([&] {
      CHILD_MPX(MPX_EBROKEN, mpx_barrier_wait(b.get(), 10000, nullptr));
      broken_count->fetch_add(1);
      return 0;
    }));
  ASSERT_TRUE(until_waiting(b.get(), 2));
  mpxt::Stopwatch sw;
  EXPECT_MPX_OK(mpx_barrier_abort(b.get()));
  for (auto &k : kids) EXPECT_TRUE(k.wait(5000ms).ok());
  EXPECT_LT(sw.ms(), 500);
  EXPECT_EQ(broken_count->load(), 2);
  EXPECT_EQ(broken(b.get()), 1);
  EXPECT_MPX(MPX_EBROKEN, mpx_barrier_wait(b.get(), 100, nullptr));
  EXPECT_MPX_OK(mpx_barrier_reset(b.get()));
  EXPECT_EQ(broken(b.get()), 0);
}

TEST(BarrierReset, CurrentWaitersGetBrokenAndTheBarrierIsReusable) {
  auto b = mpxt::make_barrier(3);
  mpxt::Shared<std::atomic<int>> broken_count(0);
  std::vector<mpxt::Child> kids;
  for (int i = 0; i < 2; ++i)
    kids.push_back(mpxt::Child::fork([&] {
      CHILD_MPX(MPX_EBROKEN, mpx_barrier_wait(b.get(), 10000, nullptr));
      broken_count->fetch_add(1);
      return 0;
    }));
  ASSERT_TRUE(until_waiting(b.get(), 2));
  EXPECT_MPX_OK(mpx_barrier_reset(b.get()));
  for (auto &k : kids) EXPECT_TRUE(k.wait(5000ms).ok());
  EXPECT_EQ(broken_count->load(), 2);
  EXPECT_EQ(broken(b.get()), 0) << "reset leaves it usable, not broken";
  auto results = mpxt::run_in_children(
      3, [&](int) { return mpx_barrier_wait(b.get(), 5000, nullptr) == MPX_OK ? 0 : 1; }, 10000ms);
  std::string why;
  EXPECT_TRUE(mpxt::all_ok(results, &why)) << why;
}

TEST(BarrierHold, LastArrivalHoldsTheOthersUntilRelease) {
  constexpr uint32_t kParties = 3;
  auto b = mpxt::make_barrier(kParties);
  struct Shared {
    std::atomic<int> action_done;
    std::atomic<int> holders;
    std::atomic<int> saw_action;
    std::atomic<uint32_t> index_mask;
  };
  mpxt::Shared<Shared> sh;
  for (int round = 0; round < 3; ++round) {
    sh->action_done = 0;
    sh->holders = 0;
    sh->saw_action = 0;
    sh->index_mask = 0;
    auto results = mpxt::run_in_children(
        kParties,
        [&](int) {
          uint32_t idx = 999;
          CHILD_MPX_OK(mpx_barrier_wait_ex(b.get(), 10000, MPX_BARRIER_HOLD, &idx));
          CHILD_CHECK(idx < kParties);
          sh->index_mask.fetch_or(1u << idx);
          if (idx == kParties - 1) {
            sh->holders.fetch_add(1);
            mpxt::sleep_ms(150);  // the "action": the others must still be waiting
            uint32_t waiting = 0;
            CHILD_MPX_OK(mpx_barrier_n_waiting(b.get(), &waiting));
            sh->action_done.store(1);
            CHILD_MPX_OK(mpx_barrier_release(b.get()));
          } else if (sh->action_done.load() == 1) {
            sh->saw_action.fetch_add(1);
          }
          return 0;
        },
        20000ms);
    std::string why;
    EXPECT_TRUE(mpxt::all_ok(results, &why)) << "round " << round << ": " << why;
    EXPECT_EQ(sh->holders.load(), 1) << "exactly the last arrival holds";
    EXPECT_EQ(sh->saw_action.load(), static_cast<int>(kParties) - 1) << "nobody passed before release";
    EXPECT_EQ(sh->index_mask.load(), (1u << kParties) - 1);
  }
}

TEST(BarrierHold, ReleaseWithoutAHoldIsEinval) {
  auto b = mpxt::make_barrier(2);
  EXPECT_MPX(MPX_EINVAL, mpx_barrier_release(b.get()));
}

TEST(BarrierHold, AbortInsteadOfReleaseBreaksTheWaiters) {
  auto b = mpxt::make_barrier(2);
  mpxt::Child other = mpxt::Child::fork([&] {
    CHILD_MPX(MPX_EBROKEN, mpx_barrier_wait(b.get(), 10000, nullptr));
    return 0;
  });
  ASSERT_TRUE(until_waiting(b.get(), 1));
  uint32_t idx = 0;
  ASSERT_MPX_OK(mpx_barrier_wait_ex(b.get(), 1000, MPX_BARRIER_HOLD, &idx));
  EXPECT_EQ(idx, 1u);
  EXPECT_MPX_OK(mpx_barrier_abort(b.get()));
  EXPECT_TRUE(other.wait(5000ms).ok());
}

TEST(BarrierToken, AttachInAForkedChild) {
  auto b = mpxt::make_barrier(2);
  std::string tok = mpxt::token_of(mpx_barrier_token, b.get());
  ASSERT_FALSE(tok.empty());
  mpx_barrier *inherited = b.get();
  mpxt::Child child = mpxt::Child::fork([&] {
    CHILD_MPX_OK(mpx_barrier_destroy(inherited));
    mpx_barrier *a = nullptr;
    CHILD_MPX_OK(mpx_barrier_attach(&a, tok.c_str()));
    uint32_t p = 0;
    CHILD_MPX_OK(mpx_barrier_parties(a, &p));
    CHILD_CHECK_EQ(p, 2);
    CHILD_MPX_OK(mpx_barrier_wait(a, 5000, nullptr));
    CHILD_MPX_OK(mpx_barrier_destroy(a));
    return 0;
  });
  EXPECT_MPX_OK(mpx_barrier_wait(b.get(), 5000, nullptr));
  EXPECT_TRUE(child.wait().ok());
}
