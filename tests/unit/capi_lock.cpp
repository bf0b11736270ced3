// Lock and RLock across real processes: mutual exclusion, timeouts, ownership, recursion,
// owner death (SCENARIOS.md 23, 24), tokens across fork and exec, locked Value increments (35).
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "support/mpx_helpers.hpp"

using namespace std::chrono_literals;
using mpxt::Millis;

namespace {

int is_locked(mpx_lock *l) {
  int v = -1;
  EXPECT_MPX_OK(mpx_lock_locked(l, &v));
  return v;
}

// N processes each do `iterations` increments of a plain (non-atomic) int under the lock.
void expect_exact_increments(bool recursive, int processes, int iterations) {
  auto lock = mpxt::make_lock(recursive);
  auto seg = mpxt::make_segment(4096);
  ASSERT_TRUE(lock && seg);
  void *addr = nullptr;
  ASSERT_MPX_OK(mpx_segment_address(seg.get(), &addr));
  auto *counter = static_cast<volatile int *>(addr);
  mpxt::Stopwatch sw;
  auto results = mpxt::run_together(
      processes,
      [&](int) {
        for (int i = 0; i < iterations; ++i) {
          CHILD_MPX_OK(mpx_lock_acquire(lock.get(), -1));
          int v = *counter;
          *counter = v + 1;
          CHILD_MPX_OK(mpx_lock_release(lock.get()));
        }
        return 0;
      },
      60000ms);
  std::string why;
  EXPECT_TRUE(mpxt::all_ok(results, &why)) << why;
  EXPECT_EQ(*counter, processes * iterations) << "lost updates: mutual exclusion failed";
  EXPECT_EQ(is_locked(lock.get()), 0);
  std::printf("[ info ] %d processes x %d increments (%s): %lld ms\n", processes, iterations,
              recursive ? "RLock" : "Lock", static_cast<long long>(sw.ms()));
}

// A child that acquires `lock`, announces it, and then holds it until killed.
mpxt::Child hold_in_child(mpx_lock *lock, mpxt::Rendezvous &held, int depth = 1) {
  return mpxt::Child::fork([lock, &held, depth] {
    for (int i = 0; i < depth; ++i) CHILD_MPX_OK(mpx_lock_acquire(lock, 5000));
    held.notify();
    return mpxt::Rendezvous::hang();
  });
}

// Kill a child holding `lock` (acquired `depth` times) with SIGKILL.
void kill_holder(mpx_lock *lock, int depth = 1) {
  mpxt::Rendezvous held;
  auto c = hold_in_child(lock, held, depth);
  auto st = mpxt::kill_at_rendezvous(c, held);
  ASSERT_TRUE(st.killed_by(SIGKILL)) << "holder: " << st.describe();
}

}  // namespace

// ---- mutual exclusion ------------------------------------------------------------------------

TEST(LockMutualExclusion, TwoProcessesIncrementExactly) { expect_exact_increments(false, 2, 100000); }
TEST(LockMutualExclusion, FourProcessesIncrementExactly) { expect_exact_increments(false, 4, 100000); }
TEST(LockMutualExclusion, RLockFourProcessesIncrementExactly) { expect_exact_increments(true, 4, 100000); }

TEST(LockMutualExclusion, RLockNestedAcquiresUnderContentionAreExact) {
  // Depth 2 under contention: the depth of one owner must never leak into the next owner's.
  auto lock = mpxt::make_lock(true);
  mpxt::Shared<int> counter(0);
  auto *c = static_cast<volatile int *>(counter.get());
  auto results = mpxt::run_together(
      4,
      [&](int) {
        for (int i = 0; i < 250000; ++i) {
          CHILD_MPX_OK(mpx_lock_acquire(lock.get(), -1));
          CHILD_MPX_OK(mpx_lock_acquire(lock.get(), 0));
          uint32_t depth = 0;
          CHILD_MPX_OK(mpx_lock_count(lock.get(), &depth));
          CHILD_CHECK_EQ(depth, 2);
          *c = *c + 1;
          CHILD_MPX_OK(mpx_lock_release(lock.get()));
          CHILD_MPX_OK(mpx_lock_release(lock.get()));
        }
        return 0;
      },
      60000ms);
  std::string why;
  EXPECT_TRUE(mpxt::all_ok(results, &why)) << why;
  EXPECT_EQ(*c, 1000000);
}

TEST(LockMutualExclusion, ThreadsOfTwoProcessesIncrementExactly) {
  auto lock = mpxt::make_lock();
  mpxt::Shared<int> counter(0);
  auto *c = static_cast<volatile int *>(counter.get());
  auto work = [&] {
    std::vector<std::thread> ts;
    std::atomic<int> failures{0};
    for (int t = 0; t < 2; ++t)
      ts.emplace_back([&] {
        for (int i = 0; i < 50000; ++i) {
          if (mpx_lock_acquire(lock.get(), -1) != MPX_OK) ++failures;
          *c = *c + 1;
          if (mpx_lock_release(lock.get()) != MPX_OK) ++failures;
        }
      });
    for (auto &t : ts) t.join();
    return failures.load();
  };
  mpxt::Child other = mpxt::Child::fork([&] { return work() == 0 ? 0 : 1; });
  EXPECT_EQ(work(), 0);
  EXPECT_TRUE(other.wait(60000ms).ok());
  EXPECT_EQ(*c, 4 * 50000);
}

// ---- acquire, timeouts, try ------------------------------------------------------------------

TEST(LockAcquire, TimesOutWithinTheTimeoutPlusSlack) {
  auto lock = mpxt::make_lock();
  mpxt::Rendezvous held;
  auto holder = hold_in_child(lock.get(), held);
  ASSERT_TRUE(held.wait());
  for (int64_t t : {1, 10, 100, 250})
    EXPECT_TRUE(mpxt::TimesOutWithin(t, [&] { return mpx_lock_acquire(lock.get(), t); })) << "timeout " << t;
  holder.kill_and_wait(SIGKILL);
}

TEST(LockAcquire, RLockTimesOutWithinTheTimeoutPlusSlack) {
  auto lock = mpxt::make_lock(true);
  mpxt::Rendezvous held;
  auto holder = hold_in_child(lock.get(), held);
  ASSERT_TRUE(held.wait());
  for (int64_t t : {10, 100})
    EXPECT_TRUE(mpxt::TimesOutWithin(t, [&] { return mpx_lock_acquire(lock.get(), t); })) << "timeout " << t;
  holder.kill_and_wait(SIGKILL);
}

TEST(LockAcquire, TryWithTimeoutZeroReturnsAtOnce) {
  auto lock = mpxt::make_lock();
  EXPECT_MPX_OK(mpx_lock_acquire(lock.get(), 0)) << "a free lock is taken by a try";
  EXPECT_EQ(is_locked(lock.get()), 1);
  auto st = mpxt::run_in_child([&] {
    mpxt::Stopwatch sw;
    CHILD_MPX(MPX_ETIMEDOUT, mpx_lock_acquire(lock.get(), 0));
    CHILD_CHECK(sw.ms() < 20);
    int v = -1;
    CHILD_MPX_OK(mpx_lock_locked(lock.get(), &v));
    CHILD_CHECK_EQ(v, 1);
    return 0;
  });
  EXPECT_TRUE(st.ok()) << st.describe();
  EXPECT_MPX_OK(mpx_lock_release(lock.get()));
  EXPECT_EQ(is_locked(lock.get()), 0);
}

TEST(LockAcquire, TryAcquireTakesAFreeLockAndReportsAHeldOneWithoutWaiting) {
  for (bool recursive : {false, true}) {
    auto lock = mpxt::make_lock(recursive);
    EXPECT_MPX_OK(mpx_lock_try_acquire(lock.get()));
    EXPECT_EQ(is_locked(lock.get()), 1);
    if (recursive) {
      EXPECT_MPX_OK(mpx_lock_try_acquire(lock.get())) << "the owner nests";
      EXPECT_MPX_OK(mpx_lock_release(lock.get()));
    } else {
      EXPECT_MPX(MPX_ETIMEDOUT, mpx_lock_try_acquire(lock.get())) << "a plain lock is not reentrant";
    }
    auto st = mpxt::run_in_child([&] {
      mpxt::Stopwatch sw;
      CHILD_MPX(MPX_ETIMEDOUT, mpx_lock_try_acquire(lock.get()));
      CHILD_CHECK(sw.ms() < 20);
      return 0;
    });
    EXPECT_TRUE(st.ok()) << st.describe();
    EXPECT_MPX_OK(mpx_lock_release(lock.get()));
    EXPECT_EQ(is_locked(lock.get()), 0);
  }
}

TEST(LockAcquire, PlainLockIsNotReentrant) {
  auto lock = mpxt::make_lock();
  ASSERT_MPX_OK(mpx_lock_acquire(lock.get(), -1));
  EXPECT_MPX(MPX_ETIMEDOUT, mpx_lock_acquire(lock.get(), 0));
  mpxt::Stopwatch sw;
  EXPECT_MPX(MPX_ETIMEDOUT, mpx_lock_acquire(lock.get(), 50));
  EXPECT_GE(sw.ms(), 50);
  EXPECT_MPX_OK(mpx_lock_release(lock.get()));
}

TEST(LockAcquire, BlockedAcquireWakesWhenAnotherProcessReleases) {
  auto lock = mpxt::make_lock();
  ASSERT_MPX_OK(mpx_lock_acquire(lock.get(), -1));
  mpxt::Shared<std::atomic<int64_t>> waited_ms(-1);
  mpxt::Child waiter = mpxt::Child::fork([&] {
    mpxt::Stopwatch sw;
    CHILD_MPX_OK(mpx_lock_acquire(lock.get(), 5000));
    waited_ms->store(sw.ms());
    CHILD_MPX_OK(mpx_lock_release(lock.get()));
    return 0;
  });
  mpxt::sleep_ms(150);
  EXPECT_MPX_OK(mpx_lock_release(lock.get()));
  auto st = waiter.wait();
  EXPECT_TRUE(st.ok()) << st.describe();
  EXPECT_GE(waited_ms->load(), 100);
  EXPECT_LT(waited_ms->load(), 150 + 500) << "the waiter was not woken promptly by the release";
}

TEST(LockAcquire, LockedReportsStateAcrossProcesses) {
  auto lock = mpxt::make_lock();
  EXPECT_EQ(is_locked(lock.get()), 0);
  mpxt::Rendezvous held;
  auto holder = hold_in_child(lock.get(), held);
  ASSERT_TRUE(held.wait());
  EXPECT_EQ(is_locked(lock.get()), 1);
  int owned = -1;
  EXPECT_MPX_OK(mpx_lock_is_owned(lock.get(), &owned));
  EXPECT_EQ(owned, 0) << "held by another process";
  holder.kill_and_wait(SIGKILL);
}

// ---- release ---------------------------------------------------------------------------------

TEST(LockRelease, PlainLockMayBeReleasedByAnotherProcess) {
  auto lock = mpxt::make_lock();
  ASSERT_MPX_OK(mpx_lock_acquire(lock.get(), 0));
  auto st = mpxt::run_in_child([&] {
    CHILD_MPX_OK(mpx_lock_release(lock.get()));
    return 0;
  });
  EXPECT_TRUE(st.ok()) << st.describe();
  EXPECT_EQ(is_locked(lock.get()), 0);
  EXPECT_MPX_OK(mpx_lock_acquire(lock.get(), 0));
  EXPECT_MPX_OK(mpx_lock_release(lock.get()));
}

TEST(LockRelease, PlainLockMayBeReleasedByAnotherThread) {
  auto lock = mpxt::make_lock();
  ASSERT_MPX_OK(mpx_lock_acquire(lock.get(), 0));
  int rc = INT32_MIN;
  std::thread t([&] { rc = mpx_lock_release(lock.get()); });
  t.join();
  EXPECT_MPX_OK(rc);
  EXPECT_EQ(is_locked(lock.get()), 0);
}

TEST(LockRelease, ReleasingAnUnlockedPlainLockIsEperm) {
  auto lock = mpxt::make_lock();
  EXPECT_MPX(MPX_EPERM, mpx_lock_release(lock.get()));
  ASSERT_MPX_OK(mpx_lock_acquire(lock.get(), 0));
  EXPECT_MPX_OK(mpx_lock_release(lock.get()));
  EXPECT_MPX(MPX_EPERM, mpx_lock_release(lock.get()));
  EXPECT_MPX_OK(mpx_lock_acquire(lock.get(), 0)) << "a failed release did not break the lock";
  EXPECT_MPX_OK(mpx_lock_release(lock.get()));
}

TEST(LockRelease, RLockReleaseByANonOwnerProcessIsEperm) {
  auto lock = mpxt::make_lock(true);
  ASSERT_MPX_OK(mpx_lock_acquire(lock.get(), 0));
  auto st = mpxt::run_in_child([&] {
    CHILD_MPX(MPX_EPERM, mpx_lock_release(lock.get()));
    int v = -1;
    CHILD_MPX_OK(mpx_lock_locked(lock.get(), &v));
    CHILD_CHECK_EQ(v, 1);
    return 0;
  });
  EXPECT_TRUE(st.ok()) << st.describe();
  EXPECT_EQ(is_locked(lock.get()), 1) << "a refused release must leave the lock held";
  EXPECT_MPX_OK(mpx_lock_release(lock.get()));
}

TEST(LockRelease, RLockReleaseByANonOwnerThreadIsEperm) {
  auto lock = mpxt::make_lock(true);
  ASSERT_MPX_OK(mpx_lock_acquire(lock.get(), 0));
  int rc = INT32_MIN;
  std::thread t([&] { rc = mpx_lock_release(lock.get()); });
  t.join();
  EXPECT_MPX(MPX_EPERM, rc);
  EXPECT_EQ(is_locked(lock.get()), 1);
  EXPECT_MPX_OK(mpx_lock_release(lock.get()));
}

TEST(LockRelease, RLockReleaseWhenUnlockedIsEperm) {
  auto lock = mpxt::make_lock(true);
  EXPECT_MPX(MPX_EPERM, mpx_lock_release(lock.get()));
}

// ---- RLock recursion ---------------------------------------------------------------------------

TEST(RLockRecursion, ThousandDeepBalances) {
  auto lock = mpxt::make_lock(true);
  for (uint32_t i = 1; i <= 1000; ++i) {
    ASSERT_MPX_OK(mpx_lock_acquire(lock.get(), 0)) << "depth " << i;
    uint32_t count = 0;
    ASSERT_MPX_OK(mpx_lock_count(lock.get(), &count));
    ASSERT_EQ(count, i);
  }
  auto st = mpxt::run_in_child([&] {
    CHILD_MPX(MPX_ETIMEDOUT, mpx_lock_acquire(lock.get(), 0));
    uint32_t c = 99;
    CHILD_MPX_OK(mpx_lock_count(lock.get(), &c));
    CHILD_CHECK_EQ(c, 0);
    return 0;
  });
  EXPECT_TRUE(st.ok()) << st.describe();
  for (uint32_t i = 1000; i >= 1; --i) {
    ASSERT_MPX_OK(mpx_lock_release(lock.get())) << "depth " << i;
    uint32_t count = 99;
    ASSERT_MPX_OK(mpx_lock_count(lock.get(), &count));
    ASSERT_EQ(count, i - 1);
    if (i > 1) {
      ASSERT_EQ(is_locked(lock.get()), 1) << "released too early at depth " << i;
    }
  }
  EXPECT_EQ(is_locked(lock.get()), 0);
  EXPECT_MPX(MPX_EPERM, mpx_lock_release(lock.get())) << "release 1001";
  auto st2 = mpxt::run_in_child([&] {
    CHILD_MPX_OK(mpx_lock_acquire(lock.get(), 0));
    CHILD_MPX_OK(mpx_lock_release(lock.get()));
    return 0;
  });
  EXPECT_TRUE(st2.ok()) << st2.describe();
}

TEST(RLockRecursion, OwnershipQueries) {
  auto lock = mpxt::make_lock(true);
  int rec = -1, owned = -1;
  EXPECT_MPX_OK(mpx_lock_is_recursive(lock.get(), &rec));
  EXPECT_EQ(rec, 1);
  EXPECT_MPX_OK(mpx_lock_is_owned(lock.get(), &owned));
  EXPECT_EQ(owned, 0);
  ASSERT_MPX_OK(mpx_lock_acquire(lock.get(), 0));
  EXPECT_MPX_OK(mpx_lock_is_owned(lock.get(), &owned));
  EXPECT_EQ(owned, 1);
  int other_owned = -1;
  uint32_t other_count = 99;
  std::thread t([&] {
    mpx_lock_is_owned(lock.get(), &other_owned);
    mpx_lock_count(lock.get(), &other_count);
  });
  t.join();
  EXPECT_EQ(other_owned, 0) << "another thread does not own it";
  EXPECT_EQ(other_count, 0u);
  EXPECT_MPX_OK(mpx_lock_release(lock.get()));

  auto plain = mpxt::make_lock(false);
  EXPECT_MPX_OK(mpx_lock_is_recursive(plain.get(), &rec));
  EXPECT_EQ(rec, 0);
  uint32_t count = 99;
  EXPECT_MPX_OK(mpx_lock_count(plain.get(), &count));
  EXPECT_EQ(count, 0u);
}

TEST(LockOwnership, PlainLockIsOwnedByTheHoldingProcess) {
  // mpx_lock_is_owned on a plain lock: "held by this process".
  auto lock = mpxt::make_lock(false);
  ASSERT_MPX_OK(mpx_lock_acquire(lock.get(), 0));
  int owned = -1, other = -1;
  EXPECT_MPX_OK(mpx_lock_is_owned(lock.get(), &owned));
  EXPECT_EQ(owned, 1);
  std::thread t([&] { mpx_lock_is_owned(lock.get(), &other); });
  t.join();
  EXPECT_EQ(other, 1) << "a plain lock is owned by the process, whatever thread asks";
  EXPECT_MPX_OK(mpx_lock_release(lock.get()));
  EXPECT_MPX_OK(mpx_lock_is_owned(lock.get(), &owned));
  EXPECT_EQ(owned, 0);
}

// ---- owner death (scenario 23) ----------------------------------------------------------------

TEST(LockOwnerDead, BlockingAcquireReturnsOwnerDeadAfterHolderKilled) {
  auto lock = mpxt::make_lock();
  kill_holder(lock.get());
  mpxt::Stopwatch sw;
  EXPECT_MPX(MPX_EOWNERDEAD, mpx_lock_acquire(lock.get(), -1));
  EXPECT_LT(sw.ms(), 1000);
  EXPECT_EQ(is_locked(lock.get()), 1) << "EOWNERDEAD means the lock is held";
  auto st = mpxt::run_in_child([&] {
    CHILD_MPX(MPX_ETIMEDOUT, mpx_lock_acquire(lock.get(), 0));
    return 0;
  });
  EXPECT_TRUE(st.ok()) << st.describe();
  EXPECT_MPX_OK(mpx_lock_consistent(lock.get()));
  EXPECT_MPX_OK(mpx_lock_release(lock.get()));
  EXPECT_MPX_OK(mpx_lock_acquire(lock.get(), 0)) << "normal again after consistent + release";
  EXPECT_MPX_OK(mpx_lock_release(lock.get()));
}

TEST(LockOwnerDead, TimedAcquireReturnsOwnerDeadAfterHolderKilled) {
  auto lock = mpxt::make_lock();
  kill_holder(lock.get());
  EXPECT_MPX(MPX_EOWNERDEAD, mpx_lock_acquire(lock.get(), 2000));
  EXPECT_EQ(is_locked(lock.get()), 1);
  EXPECT_MPX_OK(mpx_lock_consistent(lock.get()));
  EXPECT_MPX_OK(mpx_lock_release(lock.get()));
}

TEST(LockOwnerDead, TryAcquireReturnsOwnerDeadAfterHolderKilled) {
  auto lock = mpxt::make_lock();
  kill_holder(lock.get());
  EXPECT_MPX(MPX_EOWNERDEAD, mpx_lock_acquire(lock.get(), 0));
  EXPECT_EQ(is_locked(lock.get()), 1);
  EXPECT_MPX_OK(mpx_lock_consistent(lock.get()));
  EXPECT_MPX_OK(mpx_lock_release(lock.get()));
  EXPECT_MPX_OK(mpx_lock_acquire(lock.get(), 0));
  EXPECT_MPX_OK(mpx_lock_release(lock.get()));
}

TEST(LockOwnerDead, TryAcquireFunctionReturnsOwnerDeadAfterHolderKilled) {
  for (bool recursive : {false, true}) {
    auto lock = mpxt::make_lock(recursive);
    kill_holder(lock.get());
    EXPECT_MPX(MPX_EOWNERDEAD, mpx_lock_try_acquire(lock.get()));
    EXPECT_EQ(is_locked(lock.get()), 1);
    EXPECT_MPX_OK(mpx_lock_release(lock.get()));
    EXPECT_MPX(MPX_ENOTRECOVERABLE, mpx_lock_try_acquire(lock.get())) << "released without consistent";
  }
}

TEST(LockOwnerDead, AcquireInAnotherProcessReturnsOwnerDead) {
  auto lock = mpxt::make_lock();
  kill_holder(lock.get());
  auto st = mpxt::run_in_child([&] {
    CHILD_MPX(MPX_EOWNERDEAD, mpx_lock_acquire(lock.get(), 2000));
    CHILD_MPX_OK(mpx_lock_consistent(lock.get()));
    CHILD_MPX_OK(mpx_lock_release(lock.get()));
    return 0;
  });
  EXPECT_TRUE(st.ok()) << st.describe();
  EXPECT_MPX_OK(mpx_lock_acquire(lock.get(), 0));
  EXPECT_MPX_OK(mpx_lock_release(lock.get()));
}

TEST(LockOwnerDead, WaiterBlockedWhenTheHolderDiesGetsOwnerDead) {
  auto lock = mpxt::make_lock();
  mpxt::Rendezvous held;
  auto holder = hold_in_child(lock.get(), held);
  ASSERT_TRUE(held.wait());
  mpxt::Shared<std::atomic<int>> rc(INT32_MIN);
  mpxt::Child waiter = mpxt::Child::fork([&] {
    int r = mpx_lock_acquire(lock.get(), -1);
    rc->store(r);
    if (r == MPX_EOWNERDEAD) {
      CHILD_MPX_OK(mpx_lock_consistent(lock.get()));
      CHILD_MPX_OK(mpx_lock_release(lock.get()));
    }
    return 0;
  });
  mpxt::sleep_ms(200);  // the waiter is asleep in acquire
  holder.kill_and_wait(SIGKILL);
  mpxt::Stopwatch sw;
  auto st = waiter.wait(5000ms);
  EXPECT_TRUE(st.ok()) << st.describe();
  EXPECT_LT(sw.ms(), 1000) << "the sleeping waiter noticed the death late";
  EXPECT_MPX(MPX_EOWNERDEAD, rc->load());
}

TEST(LockOwnerDead, ReleaseWithoutConsistentMakesEveryLaterAcquireNotRecoverable) {
  auto lock = mpxt::make_lock();
  kill_holder(lock.get());
  ASSERT_MPX(MPX_EOWNERDEAD, mpx_lock_acquire(lock.get(), -1));
  EXPECT_MPX_OK(mpx_lock_release(lock.get()));
  EXPECT_MPX(MPX_ENOTRECOVERABLE, mpx_lock_acquire(lock.get(), -1));
  EXPECT_MPX(MPX_ENOTRECOVERABLE, mpx_lock_acquire(lock.get(), 1000));
  EXPECT_MPX(MPX_ENOTRECOVERABLE, mpx_lock_acquire(lock.get(), 0));
  auto st = mpxt::run_in_child([&] {
    CHILD_MPX(MPX_ENOTRECOVERABLE, mpx_lock_acquire(lock.get(), -1));
    CHILD_MPX(MPX_ENOTRECOVERABLE, mpx_lock_acquire(lock.get(), 0));
    return 0;
  });
  EXPECT_TRUE(st.ok()) << st.describe();
  EXPECT_MPX(MPX_ENOTRECOVERABLE, mpx_lock_acquire(lock.get(), 0)) << "still, after another process tried";
}

TEST(LockOwnerDead, ConsistentOutsideTheOwnerDeadStateIsEinval) {
  auto lock = mpxt::make_lock();
  EXPECT_MPX(MPX_EINVAL, mpx_lock_consistent(lock.get()));
  ASSERT_MPX_OK(mpx_lock_acquire(lock.get(), 0));
  EXPECT_MPX(MPX_EINVAL, mpx_lock_consistent(lock.get()));
  EXPECT_MPX_OK(mpx_lock_release(lock.get()));
}

TEST(LockOwnerDead, OnlyOneOfManyWaitersIsToldTheOwnerDied) {
  auto lock = mpxt::make_lock();
  mpxt::Rendezvous held;
  auto holder = hold_in_child(lock.get(), held);
  ASSERT_TRUE(held.wait());
  mpxt::Shared<std::atomic<int>> owner_dead(0), ok(0), other(0);
  std::vector<mpxt::Child> waiters;
  for (int i = 0; i < 4; ++i)
    waiters.push_back(mpxt::Child::fork([&] {
      int r = mpx_lock_acquire(lock.get(), 10000);
      if (r == MPX_EOWNERDEAD) {
        owner_dead->fetch_add(1);
        mpxt::sleep_ms(20);
        CHILD_MPX_OK(mpx_lock_consistent(lock.get()));
      } else if (r == MPX_OK) {
        ok->fetch_add(1);
      } else {
        other->fetch_add(1);
        CHILD_FAIL("acquire returned %s", mpx_error_name(r));
      }
      CHILD_MPX_OK(mpx_lock_release(lock.get()));
      return 0;
    }));
  mpxt::sleep_ms(200);
  holder.kill_and_wait(SIGKILL);
  for (auto &w : waiters) EXPECT_TRUE(w.wait(10000ms).ok());
  EXPECT_EQ(owner_dead->load(), 1);
  EXPECT_EQ(ok->load(), 3);
  EXPECT_EQ(other->load(), 0);
}

TEST(LockOwnerDead, KilledAtARandomPointOfAHotLoopNeverHangsTheOthers) {
  auto lock = mpxt::make_lock();
  mpxt::Shared<int> counter(0);
  for (int round = 0; round < 20; ++round) {
    mpxt::ProgressCounter progress;
    mpxt::Child c = mpxt::Child::fork([&]() -> int {
      for (;;) {
        int r = mpx_lock_acquire(lock.get(), -1);
        if (r == MPX_EOWNERDEAD) r = mpx_lock_consistent(lock.get());
        CHILD_MPX_OK(r);
        *counter.get() += 1;
        CHILD_MPX_OK(mpx_lock_release(lock.get()));
        progress.bump();
      }
    });
    auto st = mpxt::kill_at_progress(c, progress, mpxt::random_between(100, 5000));
    ASSERT_TRUE(st.killed_by(SIGKILL)) << st.describe();
    int r = mpx_lock_acquire(lock.get(), 2000);
    ASSERT_TRUE(r == MPX_OK || r == MPX_EOWNERDEAD) << "round " << round << ": " << mpxt::code_str(r);
    if (r == MPX_EOWNERDEAD) {
      ASSERT_MPX_OK(mpx_lock_consistent(lock.get()));
    }
    ASSERT_MPX_OK(mpx_lock_release(lock.get()));
  }
}

namespace {

void contenders_survive_random_kills(bool recursive) {
  auto lock = mpxt::make_lock(recursive);
  mpxt::Shared<std::atomic<int>> owner_dead_seen(0);
  auto worker = [&](int iterations) {
    return [&, iterations]() -> int {
      for (int i = 0; iterations < 0 || i < iterations; ++i) {
        int r = mpx_lock_acquire(lock.get(), 10000);
        if (r == MPX_EOWNERDEAD) {
          owner_dead_seen->fetch_add(1);
          r = mpx_lock_consistent(lock.get());
        }
        CHILD_MPX_OK(r);
        if (recursive) CHILD_MPX_OK(mpx_lock_acquire(lock.get(), 0));
        if (recursive) CHILD_MPX_OK(mpx_lock_release(lock.get()));
        CHILD_MPX_OK(mpx_lock_release(lock.get()));
      }
      return 0;
    };
  };
  std::vector<mpxt::Child> victims, survivors;
  for (int i = 0; i < 3; ++i) victims.push_back(mpxt::Child::fork(worker(-1)));
  for (int i = 0; i < 2; ++i) survivors.push_back(mpxt::Child::fork(worker(20000)));
  for (auto &v : victims) {
    auto st = mpxt::kill_after_random_delay(v, Millis(1), Millis(30));
    EXPECT_TRUE(st.killed_by(SIGKILL)) << st.describe();
  }
  for (auto &s : survivors) {
    auto st = s.wait(60000ms);
    EXPECT_TRUE(st.ok()) << "survivor: " << st.describe();
  }
  EXPECT_LE(owner_dead_seen->load(), 3) << "at most one EOWNERDEAD per killed holder";
  int r = mpx_lock_acquire(lock.get(), 1000);
  EXPECT_TRUE(r == MPX_OK || r == MPX_EOWNERDEAD) << mpxt::code_str(r);
  if (r == MPX_EOWNERDEAD) {
    EXPECT_MPX_OK(mpx_lock_consistent(lock.get()));
  }
  EXPECT_MPX_OK(mpx_lock_release(lock.get()));
}

}  // namespace

TEST(LockOwnerDead, ContendersSurviveRandomKillsOfOtherContenders) { contenders_survive_random_kills(false); }
TEST(RLockOwnerDead, ContendersSurviveRandomKillsOfOtherContenders) { contenders_survive_random_kills(true); }

TEST(LockOwnerDead, PlainLockHeldByAnExitedThreadOfALiveProcessIsNotOwnerDead) {
  // A plain Lock belongs to no thread (Python's Lock): while its process lives, another of its
  // threads may still release it, so nobody may take it over.
  auto lock = mpxt::make_lock(false);
  std::thread t([&] { EXPECT_MPX_OK(mpx_lock_acquire(lock.get(), 0)); });
  t.join();
  auto st = mpxt::run_in_child([&] {
    CHILD_MPX(MPX_ETIMEDOUT, mpx_lock_acquire(lock.get(), 300));
    return 0;
  });
  EXPECT_TRUE(st.ok()) << st.describe();
  EXPECT_MPX_OK(mpx_lock_release(lock.get())) << "another thread of the holding process releases it";
  EXPECT_MPX_OK(mpx_lock_acquire(lock.get(), 0));
  EXPECT_MPX_OK(mpx_lock_release(lock.get()));
}

TEST(RLockOwnerDead, OwnerThreadExitingWhileHoldingItIsOwnerDead) {
  // An RLock belongs to its thread: a thread that ends holding it can never release it.
  auto lock = mpxt::make_lock(true);
  std::thread t([&] {
    EXPECT_MPX_OK(mpx_lock_acquire(lock.get(), 0));
    EXPECT_MPX_OK(mpx_lock_acquire(lock.get(), 0));
  });
  t.join();
  EXPECT_MPX(MPX_EOWNERDEAD, mpx_lock_acquire(lock.get(), 2000));
  uint32_t depth = 0;
  EXPECT_MPX_OK(mpx_lock_count(lock.get(), &depth));
  EXPECT_EQ(depth, 1u);
  EXPECT_MPX_OK(mpx_lock_consistent(lock.get()));
  EXPECT_MPX_OK(mpx_lock_release(lock.get()));
  EXPECT_MPX_OK(mpx_lock_acquire(lock.get(), 0));
  EXPECT_MPX_OK(mpx_lock_release(lock.get()));
}

TEST(LockOwnerDead, ConsistentByANonOwnerIsRefused) {
  auto lock = mpxt::make_lock();
  kill_holder(lock.get());
  ASSERT_MPX(MPX_EOWNERDEAD, mpx_lock_acquire(lock.get(), 2000));
  auto st = mpxt::run_in_child([&] {
    int rc = mpx_lock_consistent(lock.get());
    CHILD_CHECK(rc == MPX_EPERM || rc == MPX_EINVAL);
    return 0;
  });
  EXPECT_TRUE(st.ok()) << st.describe();
  EXPECT_MPX_OK(mpx_lock_consistent(lock.get()));
  EXPECT_MPX_OK(mpx_lock_release(lock.get()));
}

// ---- RLock owner death (scenario 24) -----------------------------------------------------------

TEST(RLockOwnerDead, OwnerDyingAtDepthThreeGivesExactlyOneOwnerDead) {
  auto lock = mpxt::make_lock(true);
  kill_holder(lock.get(), 3);
  mpxt::Shared<std::atomic<int>> owner_dead(0), ok(0);
  auto results = mpxt::run_in_children(
      3,
      [&](int) {
        int r = mpx_lock_acquire(lock.get(), 5000);
        if (r == MPX_EOWNERDEAD) {
          owner_dead->fetch_add(1);
          uint32_t depth = 0;
          CHILD_MPX_OK(mpx_lock_count(lock.get(), &depth));
          CHILD_CHECK_EQ(depth, 1);  // the dead owner's depth is not inherited
          CHILD_MPX_OK(mpx_lock_consistent(lock.get()));
        } else {
          CHILD_MPX_OK(r);
          ok->fetch_add(1);
        }
        CHILD_MPX_OK(mpx_lock_release(lock.get()));
        return 0;
      },
      20000ms);
  std::string why;
  EXPECT_TRUE(mpxt::all_ok(results, &why)) << why;
  EXPECT_EQ(owner_dead->load(), 1);
  EXPECT_EQ(ok->load(), 2);
  EXPECT_EQ(is_locked(lock.get()), 0) << "balanced after the new owner released once";
  EXPECT_MPX_OK(mpx_lock_acquire(lock.get(), 0));
  EXPECT_MPX_OK(mpx_lock_release(lock.get()));
}

TEST(RLockOwnerDead, NewOwnerCanRecurseAndRelease) {
  auto lock = mpxt::make_lock(true);
  kill_holder(lock.get(), 5);
  ASSERT_MPX(MPX_EOWNERDEAD, mpx_lock_acquire(lock.get(), 2000));
  EXPECT_MPX_OK(mpx_lock_acquire(lock.get(), 0)) << "recursion after EOWNERDEAD";
  uint32_t depth = 0;
  EXPECT_MPX_OK(mpx_lock_count(lock.get(), &depth));
  EXPECT_EQ(depth, 2u);
  EXPECT_MPX_OK(mpx_lock_consistent(lock.get()));
  EXPECT_MPX_OK(mpx_lock_release(lock.get()));
  EXPECT_MPX_OK(mpx_lock_release(lock.get()));
  EXPECT_EQ(is_locked(lock.get()), 0);
}

// ---- tokens ------------------------------------------------------------------------------------

TEST(LockToken, AttachInAForkedChildThatClosedItsInheritedHandle) {
  auto lock = mpxt::make_lock(true);
  std::string tok = mpxt::token_of(mpx_lock_token, lock.get());
  ASSERT_FALSE(tok.empty());
  ASSERT_MPX_OK(mpx_lock_acquire(lock.get(), 0));
  mpx_lock *inherited = lock.get();
  auto st = mpxt::run_in_child([&] {
    CHILD_MPX_OK(mpx_lock_destroy(inherited));
    mpx_lock *l = nullptr;
    CHILD_MPX_OK(mpx_lock_attach(&l, tok.c_str()));
    int rec = -1;
    CHILD_MPX_OK(mpx_lock_is_recursive(l, &rec));
    CHILD_CHECK_EQ(rec, 1);
    CHILD_MPX(MPX_ETIMEDOUT, mpx_lock_acquire(l, 0));
    CHILD_MPX_OK(mpx_lock_destroy(l));
    return 0;
  });
  EXPECT_TRUE(st.ok()) << st.describe();
  EXPECT_MPX_OK(mpx_lock_release(lock.get()));
}

TEST(LockToken, TwoHandlesInOneProcessAreTheSameLock) {
  auto lock = mpxt::make_lock();
  std::string tok = mpxt::token_of(mpx_lock_token, lock.get());
  mpx_lock *b = nullptr;
  ASSERT_MPX_OK(mpx_lock_attach(&b, tok.c_str()));
  ASSERT_MPX_OK(mpx_lock_acquire(lock.get(), 0));
  EXPECT_MPX(MPX_ETIMEDOUT, mpx_lock_acquire(b, 0));
  EXPECT_MPX_OK(mpx_lock_release(b));
  EXPECT_MPX_OK(mpx_lock_destroy(b));
  EXPECT_EQ(is_locked(lock.get()), 0);
}

MPXT_HELPER(lock_helper) {
  // args: token, mode ("try-busy": acquire(0) must time out; "take-and-die": acquire and exit holding it)
  if (args.size() != 2) return 2;
  mpx_lock *l = nullptr;
  CHILD_MPX_OK(mpx_lock_attach(&l, args[0].c_str()));
  if (args[1] == "try-busy") {
    CHILD_MPX(MPX_ETIMEDOUT, mpx_lock_acquire(l, 0));
    CHILD_MPX_OK(mpx_lock_destroy(l));
    return 0;
  }
  if (args[1] == "take-and-die") {
    CHILD_MPX_OK(mpx_lock_acquire(l, 0));
    _exit(0);  // exits holding it
  }
  return 3;
}

TEST(LockToken, AttachInAnExecedProcessAndOwnerDeathAcrossExec) {
  auto lock = mpxt::make_lock();
  std::string tok = mpxt::token_of(mpx_lock_token, lock.get());
  ASSERT_MPX_OK(mpx_lock_acquire(lock.get(), 0));
  auto busy = mpxt::Child::exec_helper("lock_helper", {tok, "try-busy"});
  auto st = busy.wait(10000ms);
  EXPECT_TRUE(st.ok()) << st.describe();
  ASSERT_MPX_OK(mpx_lock_release(lock.get()));

  auto taker = mpxt::Child::exec_helper("lock_helper", {tok, "take-and-die"});
  st = taker.wait(10000ms);
  ASSERT_TRUE(st.ok()) << st.describe();
  EXPECT_MPX(MPX_EOWNERDEAD, mpx_lock_acquire(lock.get(), 2000)) << "the exec'ed holder exited holding the lock";
  EXPECT_MPX_OK(mpx_lock_consistent(lock.get()));
  EXPECT_MPX_OK(mpx_lock_release(lock.get()));
}

// ---- scenario 35: eight processes, locked increments on a shared Value -----------------------

TEST(LockedValue, EightProcessesTimes100kIncrementsAreExact) {
  auto value = mpxt::make_array('q', 1);  // a Value('q') with its default RLock
  ASSERT_TRUE(value);
  mpx_lock *lock = nullptr;
  ASSERT_MPX_OK(mpx_array_lock(value.get(), &lock));
  mpxt::LockPtr lock_guard(lock);
  mpxt::Stopwatch sw;
  auto results = mpxt::run_together(
      8,
      [&](int) {
        for (int i = 0; i < 100000; ++i) {
          CHILD_MPX_OK(mpx_lock_acquire(lock, -1));
          long long v = 0;
          CHILD_MPX_OK(mpx_array_get(value.get(), 0, &v, sizeof v));
          ++v;
          CHILD_MPX_OK(mpx_array_set(value.get(), 0, &v, sizeof v));
          CHILD_MPX_OK(mpx_lock_release(lock));
        }
        return 0;
      },
      100000ms);
  std::string why;
  EXPECT_TRUE(mpxt::all_ok(results, &why)) << why;
  long long total = 0;
  ASSERT_MPX_OK(mpx_array_get(value.get(), 0, &total, sizeof total));
  EXPECT_EQ(total, 800000);
  std::printf("[ info ] 8 x 100k locked Value increments: %lld ms\n", static_cast<long long>(sw.ms()));
}
