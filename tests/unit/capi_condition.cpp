// Condition variables across processes (SCENARIOS.md 26, 27), including the capacity-1
// 10x10 sender/receiver stress of Boost.Interprocess #9221.
#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "support/mpx_helpers.hpp"

using namespace std::chrono_literals;

namespace {

// Shared choreography state for waiter processes.
struct Board {
  std::atomic<int> waiting;  // incremented under the lock just before wait
  std::atomic<int> woken;
  std::atomic<int> errors;
};

// Start n processes that take the lock, announce themselves and wait up to `timeout`.
std::vector<mpxt::Child> start_waiters(mpx_condition *c, Board *b, int n, int64_t timeout) {
  std::vector<mpxt::Child> kids;
  for (int i = 0; i < n; ++i)
    kids.push_back(mpxt::Child::fork([c, b, timeout] {
      CHILD_MPX_OK(mpx_condition_acquire(c, 5000));
      b->waiting.fetch_add(1);
      int rc = mpx_condition_wait(c, timeout);
      if (rc == MPX_OK) b->woken.fetch_add(1);
      else if (rc != MPX_ETIMEDOUT) b->errors.fetch_add(1);
      CHILD_MPX_OK(mpx_condition_release(c));
      return 0;
    }));
  return kids;
}

// Once `n` waiters announced themselves under the lock and the lock is ours, they are all
// inside wait (wait releases the lock atomically with starting to wait).
void wait_until_waiting(mpx_condition *c, Board *b, int n) {
  mpxt::Stopwatch sw;
  for (;;) {
    ASSERT_MPX_OK(mpx_condition_acquire(c, 5000));
    int w = b->waiting.load();
    ASSERT_MPX_OK(mpx_condition_release(c));
    if (w >= n) return;
    ASSERT_LT(sw.ms(), 10000) << "only " << w << " of " << n << " waiters arrived";
    mpxt::sleep_ms(5);
  }
}

}  // namespace

TEST(ConditionCreate, WithoutALockMakesAnRLock) {
  auto c = mpxt::make_condition();
  mpx_lock *l = nullptr;
  ASSERT_MPX_OK(mpx_condition_lock(c.get(), &l));
  mpxt::LockPtr guard(l);
  int rec = -1;
  EXPECT_MPX_OK(mpx_lock_is_recursive(l, &rec));
  EXPECT_EQ(rec, 1);
}

TEST(ConditionCreate, UsesTheGivenLock) {
  auto lock = mpxt::make_lock(false);
  auto c = mpxt::make_condition(lock.get());
  ASSERT_MPX_OK(mpx_condition_acquire(c.get(), 0));
  int locked = -1;
  EXPECT_MPX_OK(mpx_lock_locked(lock.get(), &locked));
  EXPECT_EQ(locked, 1) << "the condition's lock is the lock it was given";
  EXPECT_MPX(MPX_ETIMEDOUT, mpx_lock_acquire(lock.get(), 0));
  EXPECT_MPX_OK(mpx_condition_release(c.get()));
  EXPECT_MPX_OK(mpx_lock_locked(lock.get(), &locked));
  EXPECT_EQ(locked, 0);
  mpx_lock *l = nullptr;
  ASSERT_MPX_OK(mpx_condition_lock(c.get(), &l));
  mpxt::LockPtr guard(l);
  EXPECT_MPX_OK(mpx_lock_acquire(l, 0));
  EXPECT_MPX_OK(mpx_lock_locked(lock.get(), &locked));
  EXPECT_EQ(locked, 1);
  EXPECT_MPX_OK(mpx_lock_release(l));
}

TEST(ConditionCreate, KeepsItsOwnReferenceToTheLock) {
  auto lock = mpxt::make_lock(true);
  mpx_lock *raw = lock.release();
  auto c = mpxt::make_condition(raw);
  ASSERT_MPX_OK(mpx_lock_destroy(raw));  // the caller's handle is gone
  EXPECT_MPX_OK(mpx_condition_acquire(c.get(), 0));
  EXPECT_MPX(MPX_ETIMEDOUT, mpx_condition_wait(c.get(), 10));
  EXPECT_MPX_OK(mpx_condition_release(c.get()));
}

TEST(ConditionWait, WithoutHoldingTheLockIsEperm) {
  auto c = mpxt::make_condition();
  EXPECT_MPX(MPX_EPERM, mpx_condition_wait(c.get(), 10));
  EXPECT_MPX(MPX_EPERM, mpx_condition_notify(c.get(), 1));
  EXPECT_MPX(MPX_EPERM, mpx_condition_notify_all(c.get()));
}

TEST(ConditionWait, WhileAnotherProcessHoldsTheLockIsEperm) {
  auto c = mpxt::make_condition();
  ASSERT_MPX_OK(mpx_condition_acquire(c.get(), 0));
  auto st = mpxt::run_in_child([&] {
    CHILD_MPX(MPX_EPERM, mpx_condition_wait(c.get(), 10));
    CHILD_MPX(MPX_EPERM, mpx_condition_notify(c.get(), 1));
    return 0;
  });
  EXPECT_TRUE(st.ok()) << st.describe();
  EXPECT_MPX_OK(mpx_condition_release(c.get()));
}

TEST(ConditionWait, TimesOutWithTheLockHeldAgain) {
  auto c = mpxt::make_condition();
  mpx_lock *l = nullptr;
  ASSERT_MPX_OK(mpx_condition_lock(c.get(), &l));
  mpxt::LockPtr guard(l);
  ASSERT_MPX_OK(mpx_condition_acquire(c.get(), 0));
  for (int64_t t : {0, 10, 100}) {
    EXPECT_TRUE(mpxt::TimesOutWithin(t, [&] { return mpx_condition_wait(c.get(), t); })) << "timeout " << t;
    int owned = -1;
    EXPECT_MPX_OK(mpx_lock_is_owned(l, &owned));
    EXPECT_EQ(owned, 1) << "the lock is held again after a timed-out wait";
  }
  EXPECT_MPX_OK(mpx_condition_release(c.get()));
}

TEST(ConditionWait, ReleasesAnRLockFullyAndRestoresItsDepth) {
  auto c = mpxt::make_condition();
  mpx_lock *l = nullptr;
  ASSERT_MPX_OK(mpx_condition_lock(c.get(), &l));
  mpxt::LockPtr guard(l);
  for (int i = 0; i < 3; ++i) ASSERT_MPX_OK(mpx_condition_acquire(c.get(), 0));
  mpxt::Child notifier = mpxt::Child::fork([&] {
    mpxt::sleep_ms(100);
    CHILD_MPX_OK(mpx_condition_acquire(c.get(), 2000));  // possible only if wait released all 3 levels
    CHILD_MPX_OK(mpx_condition_notify(c.get(), 1));
    CHILD_MPX_OK(mpx_condition_release(c.get()));
    return 0;
  });
  EXPECT_MPX_OK(mpx_condition_wait(c.get(), 5000));
  uint32_t depth = 0;
  EXPECT_MPX_OK(mpx_lock_count(l, &depth));
  EXPECT_EQ(depth, 3u);
  for (int i = 0; i < 3; ++i) EXPECT_MPX_OK(mpx_condition_release(c.get()));
  EXPECT_TRUE(notifier.wait().ok());
}

TEST(ConditionNotify, WakesAWaiterInAnotherProcess) {
  auto c = mpxt::make_condition();
  mpxt::Shared<Board> b;
  auto kids = start_waiters(c.get(), b.get(), 1, 5000);
  wait_until_waiting(c.get(), b.get(), 1);
  ASSERT_MPX_OK(mpx_condition_acquire(c.get(), 1000));
  ASSERT_MPX_OK(mpx_condition_notify(c.get(), 1));
  ASSERT_MPX_OK(mpx_condition_release(c.get()));
  for (auto &k : kids) EXPECT_TRUE(k.wait().ok());
  EXPECT_EQ(b->woken.load(), 1);
  EXPECT_EQ(b->errors.load(), 0);
}

TEST(ConditionNotify, NotifyNWakesExactlyMinOfNAndWaiters) {
  auto c = mpxt::make_condition();
  mpxt::Shared<Board> b;
  auto kids = start_waiters(c.get(), b.get(), 5, 4000);
  wait_until_waiting(c.get(), b.get(), 5);

  ASSERT_MPX_OK(mpx_condition_acquire(c.get(), 1000));
  ASSERT_MPX_OK(mpx_condition_notify(c.get(), 0));
  ASSERT_MPX_OK(mpx_condition_release(c.get()));
  mpxt::sleep_ms(200);
  EXPECT_EQ(b->woken.load(), 0) << "notify(0) wakes nobody";

  ASSERT_MPX_OK(mpx_condition_acquire(c.get(), 1000));
  ASSERT_MPX_OK(mpx_condition_notify(c.get(), 2));
  ASSERT_MPX_OK(mpx_condition_release(c.get()));
  mpxt::sleep_ms(300);
  EXPECT_EQ(b->woken.load(), 2) << "notify(2) with 5 waiters";

  ASSERT_MPX_OK(mpx_condition_acquire(c.get(), 1000));
  ASSERT_MPX_OK(mpx_condition_notify(c.get(), 10));
  ASSERT_MPX_OK(mpx_condition_release(c.get()));
  mpxt::sleep_ms(300);
  EXPECT_EQ(b->woken.load(), 5) << "notify(10) with 3 waiters left";
  for (auto &k : kids) EXPECT_TRUE(k.wait().ok());
  EXPECT_EQ(b->errors.load(), 0);
}

TEST(ConditionNotify, SurplusNotificationsAreNotBankedForLaterWaiters) {
  auto c = mpxt::make_condition();
  ASSERT_MPX_OK(mpx_condition_acquire(c.get(), 0));
  ASSERT_MPX_OK(mpx_condition_notify(c.get(), 5));  // nobody waits
  ASSERT_MPX_OK(mpx_condition_notify_all(c.get()));
  EXPECT_MPX(MPX_ETIMEDOUT, mpx_condition_wait(c.get(), 50)) << "a notify with no waiters is lost, as in Python";
  EXPECT_MPX_OK(mpx_condition_release(c.get()));
}

TEST(ConditionNotify, NotifyAllWakesEveryWaiter) {
  auto c = mpxt::make_condition();
  mpxt::Shared<Board> b;
  auto kids = start_waiters(c.get(), b.get(), 6, 5000);
  wait_until_waiting(c.get(), b.get(), 6);
  ASSERT_MPX_OK(mpx_condition_acquire(c.get(), 1000));
  ASSERT_MPX_OK(mpx_condition_notify_all(c.get()));
  ASSERT_MPX_OK(mpx_condition_release(c.get()));
  for (auto &k : kids) EXPECT_TRUE(k.wait().ok());
  EXPECT_EQ(b->woken.load(), 6);
  EXPECT_EQ(b->errors.load(), 0);
}

TEST(ConditionNotify, EachNotificationGoesToTheLongestWaitingWaiter) {
  auto c = mpxt::make_condition();
  struct Order {
    std::atomic<int> waiting;
    std::atomic<int> next;
    std::atomic<int> woke_as[6];
  };
  mpxt::Shared<Order> order;
  std::vector<mpxt::Child> kids;
  for (int i = 0; i < 6; ++i) {
    kids.push_back(mpxt::Child::fork([&, i] {
      CHILD_MPX_OK(mpx_condition_acquire(c.get(), 5000));
      order->waiting.fetch_add(1);
      CHILD_MPX_OK(mpx_condition_wait(c.get(), 10000));
      order->woke_as[i].store(order->next.fetch_add(1));
      CHILD_MPX_OK(mpx_condition_release(c.get()));
      return 0;
    }));
    // Waiter i is inside wait before waiter i+1 starts.
    mpxt::Stopwatch sw;
    for (;;) {
      ASSERT_MPX_OK(mpx_condition_acquire(c.get(), 5000));
      int w = order->waiting.load();
      ASSERT_MPX_OK(mpx_condition_release(c.get()));
      if (w == i + 1) break;
      ASSERT_LT(sw.ms(), 5000);
      mpxt::sleep_ms(2);
    }
  }
  for (int i = 0; i < 6; ++i) {
    ASSERT_MPX_OK(mpx_condition_acquire(c.get(), 5000));
    ASSERT_MPX_OK(mpx_condition_notify(c.get(), 1));
    ASSERT_MPX_OK(mpx_condition_release(c.get()));
    mpxt::Stopwatch sw;
    while (order->next.load() < i + 1 && sw.ms() < 5000) mpxt::sleep_ms(1);
  }
  for (auto &k : kids) EXPECT_TRUE(k.wait().ok());
  for (int i = 0; i < 6; ++i) EXPECT_EQ(order->woke_as[i].load(), i) << "waiter " << i << " (FIFO)";
}

TEST(ConditionWait, BeyondTheDocumentedWaiterLimitIsEagain) {
  // sync.h: at most 256 threads wait on one condition at once (MPX_EAGAIN beyond).
  constexpr int kLimit = 256;
  auto c = mpxt::make_condition();
  std::atomic<int> waiting{0}, notified{0}, other{0};
  std::vector<std::thread> ts;
  for (int i = 0; i < kLimit; ++i)
    ts.emplace_back([&] {
      if (mpx_condition_acquire(c.get(), 10000) != MPX_OK) {
        ++other;
        return;
      }
      ++waiting;
      int rc = mpx_condition_wait(c.get(), 20000);
      if (rc == MPX_OK) ++notified; else ++other;
      mpx_condition_release(c.get());
    });
  mpxt::Stopwatch sw;
  for (;;) {
    ASSERT_MPX_OK(mpx_condition_acquire(c.get(), 10000));
    if (waiting.load() == kLimit) break;  // all of them are inside wait, we hold the lock
    ASSERT_MPX_OK(mpx_condition_release(c.get()));
    ASSERT_LT(sw.ms(), 20000);
    mpxt::sleep_ms(5);
  }
  EXPECT_MPX(MPX_EAGAIN, mpx_condition_wait(c.get(), 100)) << "waiter number 257";
  int owned = -1;
  mpx_lock *l = nullptr;
  ASSERT_MPX_OK(mpx_condition_lock(c.get(), &l));
  EXPECT_MPX_OK(mpx_lock_is_owned(l, &owned));
  EXPECT_EQ(owned, 1) << "the lock is still held after MPX_EAGAIN";
  mpx_lock_destroy(l);
  EXPECT_MPX_OK(mpx_condition_notify_all(c.get()));
  EXPECT_MPX_OK(mpx_condition_release(c.get()));
  for (auto &t : ts) t.join();
  EXPECT_EQ(notified.load(), kLimit);
  EXPECT_EQ(other.load(), 0);
}

// ---- scenario 26: a waiter killed inside wait --------------------------------------------------

TEST(ConditionWaiterKilled, NotifyReturnsPromptlyAndTheOthersWake) {
  auto c = mpxt::make_condition();
  mpxt::Shared<Board> b;
  auto doomed = start_waiters(c.get(), b.get(), 1, -1);
  wait_until_waiting(c.get(), b.get(), 1);
  auto kids = start_waiters(c.get(), b.get(), 3, 5000);
  wait_until_waiting(c.get(), b.get(), 4);
  auto st = doomed[0].kill_and_wait(SIGKILL);
  ASSERT_TRUE(st.killed_by(SIGKILL));

  ASSERT_MPX_OK(mpx_condition_acquire(c.get(), 1000));
  mpxt::Stopwatch sw;
  EXPECT_MPX_OK(mpx_condition_notify(c.get(), 1));
  EXPECT_MPX_OK(mpx_condition_notify_all(c.get()));
  EXPECT_LE(sw.ms(), 10) << "notify must not wait for a dead waiter";
  ASSERT_MPX_OK(mpx_condition_release(c.get()));
  for (auto &k : kids) EXPECT_TRUE(k.wait(5000ms).ok());
  EXPECT_EQ(b->woken.load(), 3) << "every surviving waiter wakes";
}

TEST(ConditionWaiterKilled, ANotifyOfOneStillReachesTheSurvivor) {
  auto c = mpxt::make_condition();
  mpxt::Shared<Board> b;
  auto doomed = start_waiters(c.get(), b.get(), 1, -1);
  wait_until_waiting(c.get(), b.get(), 1);
  auto survivor = start_waiters(c.get(), b.get(), 1, 3000);
  wait_until_waiting(c.get(), b.get(), 2);
  doomed[0].kill_and_wait(SIGKILL);
  ASSERT_MPX_OK(mpx_condition_acquire(c.get(), 1000));
  ASSERT_MPX_OK(mpx_condition_notify(c.get(), 1));
  ASSERT_MPX_OK(mpx_condition_release(c.get()));
  mpxt::Stopwatch sw;
  EXPECT_TRUE(survivor[0].wait(5000ms).ok());
  EXPECT_EQ(b->woken.load(), 1) << "the one notification went to the dead waiter instead of the live one";
  EXPECT_LT(sw.ms(), 1000);
}

TEST(ConditionWaiterKilled, DestroyDoesNotHang) {
  mpx_condition *c = mpxt::make_condition().release();
  mpxt::Shared<Board> b;
  auto doomed = start_waiters(c, b.get(), 2, -1);
  wait_until_waiting(c, b.get(), 2);
  for (auto &d : doomed) d.kill_and_wait(SIGKILL);
  mpxt::Stopwatch sw;
  EXPECT_MPX_OK(mpx_condition_destroy(c));
  EXPECT_LT(sw.ms(), 100);
}

// ---- tokens ------------------------------------------------------------------------------------

TEST(ConditionToken, AttachInAForkedChildSharesTheLockAndTheWaitQueue) {
  auto c = mpxt::make_condition();
  std::string tok = mpxt::token_of(mpx_condition_token, c.get());
  ASSERT_FALSE(tok.empty());
  mpx_condition *inherited = c.get();
  mpxt::Rendezvous waiting;
  mpxt::Child child = mpxt::Child::fork([&] {
    CHILD_MPX_OK(mpx_condition_destroy(inherited));
    mpx_condition *a = nullptr;
    CHILD_MPX_OK(mpx_condition_attach(&a, tok.c_str()));
    CHILD_MPX_OK(mpx_condition_acquire(a, 2000));
    waiting.notify();
    CHILD_MPX_OK(mpx_condition_wait(a, 5000));
    CHILD_MPX_OK(mpx_condition_release(a));
    CHILD_MPX_OK(mpx_condition_destroy(a));
    return 0;
  });
  ASSERT_TRUE(waiting.wait());
  ASSERT_MPX_OK(mpx_condition_acquire(c.get(), 5000));  // succeeds once the child is inside wait
  ASSERT_MPX_OK(mpx_condition_notify(c.get(), 1));
  ASSERT_MPX_OK(mpx_condition_release(c.get()));
  EXPECT_TRUE(child.wait().ok());
}

// ---- scenario 27: Boost #9221, capacity-1 queue, 10 senders x 10 receivers ---------------------

namespace {

struct Slot {
  int full;
  long long item;
  long long sent_sum;
  long long received_sum;
  int received;
};

}  // namespace

TEST(ConditionStress, Capacity1TenSendersTenReceivers) {
  constexpr int kSenders = 10, kReceivers = 10, kPerSender = 1000;
  constexpr int kTotal = kSenders * kPerSender;
  static_assert(kTotal % kReceivers == 0);
  auto lock = mpxt::make_lock(false);
  auto not_full = mpxt::make_condition(lock.get());
  auto not_empty = mpxt::make_condition(lock.get());
  mpxt::Shared<Slot> slot;
  *slot = Slot{0, 0, 0, 0, 0};
  mpxt::Stopwatch sw;
  std::vector<mpxt::Child> kids;
  for (int s = 0; s < kSenders; ++s)
    kids.push_back(mpxt::Child::fork([&, s] {
      for (int i = 0; i < kPerSender; ++i) {
        const long long item = static_cast<long long>(s) * 1000003 + i;
        CHILD_MPX_OK(mpx_lock_acquire(lock.get(), -1));
        while (slot->full) {
          int rc = mpx_condition_wait(not_full.get(), 20000);
          if (rc != MPX_OK) CHILD_FAIL("sender %d item %d: wait returned %s", s, i, mpx_error_name(rc));
        }
        slot->full = 1;
        slot->item = item;
        slot->sent_sum += item;
        CHILD_MPX_OK(mpx_condition_notify(not_empty.get(), 1));
        CHILD_MPX_OK(mpx_lock_release(lock.get()));
      }
      return 0;
    }));
  for (int r = 0; r < kReceivers; ++r)
    kids.push_back(mpxt::Child::fork([&, r] {
      for (int i = 0; i < kTotal / kReceivers; ++i) {
        CHILD_MPX_OK(mpx_lock_acquire(lock.get(), -1));
        while (!slot->full) {
          int rc = mpx_condition_wait(not_empty.get(), 20000);
          if (rc != MPX_OK) CHILD_FAIL("receiver %d item %d: wait returned %s", r, i, mpx_error_name(rc));
        }
        slot->full = 0;
        slot->received_sum += slot->item;
        slot->received += 1;
        CHILD_MPX_OK(mpx_condition_notify(not_full.get(), 1));
        CHILD_MPX_OK(mpx_lock_release(lock.get()));
      }
      return 0;
    }));
  int failed = 0;
  for (auto &k : kids) {
    auto st = k.wait(90000ms);
    if (!st.ok()) {
      ++failed;
      ADD_FAILURE() << "pid " << k.pid() << ": " << st.describe();
    }
  }
  EXPECT_EQ(failed, 0);
  EXPECT_EQ(slot->received, kTotal);
  EXPECT_EQ(slot->received_sum, slot->sent_sum);
  EXPECT_EQ(slot->full, 0);
  std::printf("[ info ] capacity-1 10x10 x %d items: %lld ms\n", kTotal, static_cast<long long>(sw.ms()));
}
