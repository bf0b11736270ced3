#include "sync/lock.hpp"

namespace mpx {

namespace {
// Spin this many rounds before sleeping: a wake-up costs ~20 us here, a spin round ~0.05 us.
constexpr int kSpinRounds = 5;
// While asleep, look at the owner's liveness this often.
constexpr int64_t kLivenessCheckNs = 100 * 1000000LL;
}  // namespace

Status SharedLock::create(bool recursive, SharedLock *out) {
  Placement p;
  if (Status s = Placement::allocate(ObjType::lock, sizeof(LockBody), &p); s != MPX_OK) return s;
  p.body<LockBody>()->recursive = recursive ? 1 : 0;
  p.publish();
  return open(std::move(p), out);
}

Status SharedLock::open(Placement place, SharedLock *out) {
  auto *b = place.body<LockBody>();
  const uint32_t rec = __atomic_load_n(&b->recursive, __ATOMIC_RELAXED);
  if (rec > 1) return fail(MPX_ECORRUPT, "lock kind {} is invalid", rec);
  out->recursive_ = rec == 1;
  out->b_ = b;
  out->place_ = std::move(place);
  return MPX_OK;
}

Status SharedLock::not_owner() noexcept {
  return fail(MPX_EPERM, "cannot release un-acquired lock (the calling thread does not own this RLock)");
}

Status SharedLock::not_held() noexcept {
  return fail(MPX_EPERM, "semaphore or lock released too many times (the lock is not held)");
}

Status SharedLock::recurse() noexcept {
  const uint32_t c = b_->count.load(std::memory_order_relaxed);
  if (c == UINT32_MAX) return fail(MPX_EOVERFLOW, "RLock recursion depth overflow");
  b_->count.store(c + 1, std::memory_order_relaxed);
  return MPX_OK;
}

Status SharedLock::unusable() noexcept {
  const uint32_t old = b_->word.exchange(0, std::memory_order_release);
  if (old & kWaiters) platform::wake(&b_->word, 1);
  return fail(MPX_ENOTRECOVERABLE,
              "lock is not recoverable: its owner died and it was released without mpx_lock_consistent");
}

Status SharedLock::try_take_over(uint32_t seen, uint32_t me, bool *taken) noexcept {
  *taken = false;
  const uint32_t owner = seen & ~kWaiters;
  if (owner == 0 || platform::thread_alive(owner)) return MPX_OK;
  uint32_t expected = seen;
  if (!b_->word.compare_exchange_strong(expected, me | kWaiters, std::memory_order_acquire))
    return MPX_OK;  // someone else moved first; look again
  *taken = true;
  if (b_->state.load(std::memory_order_relaxed) == kNotRecoverable) return unusable();
  b_->state.store(kInconsistent, std::memory_order_relaxed);
  acquired(MPX_OK);
  return fail(MPX_EOWNERDEAD, "acquired; the previous owner (thread {}) died holding the lock", owner);
}

Status SharedLock::acquire_slow(uint32_t me, int64_t timeout_ms) noexcept {
  // Spin only while nobody sleeps: measured here, spinning against a queue of sleepers
  // costs two processes' throughput more than it saves.
  for (int i = 0; i < kSpinRounds; ++i) {
    uint32_t w = b_->word.load(std::memory_order_relaxed);
    if (w & kWaiters) break;
    if (w == 0) {
      if (b_->word.compare_exchange_weak(w, me, std::memory_order_acquire, std::memory_order_relaxed))
        return acquired(MPX_OK);
      continue;
    }
    platform::cpu_relax();
  }
  const platform::Deadline deadline = platform::deadline_after_ms(timeout_ms);
  int64_t next_check = platform::monotonic_ns() + kLivenessCheckNs;
  for (;;) {
    uint32_t w = b_->word.load(std::memory_order_relaxed);
    if ((w & ~kWaiters) >= kIdLimit || b_->state.load(std::memory_order_relaxed) > kNotRecoverable ||
        !place_.header_ok())
      return place_.corrupt();
    if (w == 0) {
      // Others may still sleep: keep the waiters bit so our release wakes one.
      if (b_->word.compare_exchange_weak(w, me | kWaiters, std::memory_order_acquire, std::memory_order_relaxed))
        return acquired(MPX_OK);
      continue;
    }
    if (closing()) return fail(MPX_ECLOSED, "lock handle was destroyed while waiting");
    const int64_t now = platform::monotonic_ns();
    if (now >= deadline || now >= next_check) {
      bool taken;
      Status s = try_take_over(w, me, &taken);
      if (taken) return s;
      if (now >= deadline) return fail(MPX_ETIMEDOUT, "lock acquire timed out after {} ms", timeout_ms);
      next_check = now + kLivenessCheckNs;
      continue;
    }
    if (!(w & kWaiters)) {
      if (!b_->word.compare_exchange_weak(w, w | kWaiters, std::memory_order_relaxed)) continue;
      w |= kWaiters;
    }
    platform::wait_on(&b_->word, w, deadline < next_check ? deadline : next_check);
  }
}

Status SharedLock::consistent() noexcept {
  if (!place_.header_ok()) return place_.corrupt();
  if (b_->state.load(std::memory_order_relaxed) != kInconsistent)
    return fail(MPX_EINVAL, "lock is not in the owner-died state");
  const uint32_t w = b_->word.load(std::memory_order_relaxed) & ~kWaiters;
  if (w != platform::current_tid())
    return fail(MPX_EPERM, "only the owner that received MPX_EOWNERDEAD may mark the lock consistent");
  b_->state.store(kConsistent, std::memory_order_relaxed);
  return MPX_OK;
}

Status SharedLock::locked(int *out) noexcept {
  if (!place_.header_ok()) return place_.corrupt();
  *out = b_->word.load(std::memory_order_relaxed) != 0;
  return MPX_OK;
}

bool SharedLock::owned_by_caller() const noexcept {
  return (b_->word.load(std::memory_order_relaxed) & ~kWaiters) == platform::current_tid();
}

uint32_t SharedLock::depth_of_caller() const noexcept {
  if (!owned_by_caller()) return 0;
  return recursive_ ? b_->count.load(std::memory_order_relaxed) : 1;
}

Status SharedLock::release_all(uint32_t *saved_depth) noexcept {
  if (!place_.header_ok()) return place_.corrupt();
  if (!owned_by_caller()) return fail(MPX_EPERM, "cannot wait on un-acquired lock");
  *saved_depth = depth_of_caller();
  if (recursive_) b_->count.store(1, std::memory_order_relaxed);
  return release();
}

Status SharedLock::reacquire(uint32_t saved_depth) noexcept {
  const Status s = acquire(MPX_INFINITE);
  if ((s == MPX_OK || s == MPX_EOWNERDEAD) && recursive_) b_->count.store(saved_depth, std::memory_order_relaxed);
  return s;
}

}  // namespace mpx
