#include "sync/lock.hpp"

namespace mpx {

namespace {
// Spin this many rounds, only while nobody sleeps: measured here, spinning against sleepers
// costs two contending processes more throughput than the wake-ups it saves.
constexpr int kSpinRounds = 5;
// While asleep, look at the owner's liveness after 1 ms, then 4x less often up to every
// 100 ms: a dead owner is noticed fast, a long-held lock costs few checks.
constexpr int64_t kFirstLivenessCheckNs = 1000000LL;
constexpr int64_t kMaxLivenessCheckNs = 100 * 1000000LL;

[[gnu::cold]] Status not_owner() noexcept {
  return fail(MPX_EPERM, "cannot release un-acquired lock (the calling thread does not own this RLock)");
}
[[gnu::cold]] Status not_held() noexcept {
  return fail(MPX_EPERM, "semaphore or lock released too many times (the lock is not held)");
}
[[gnu::cold]] Status unrecoverable() noexcept {
  return fail(MPX_ENOTRECOVERABLE,
              "lock is not recoverable: its owner died and it was released without mpx_lock_consistent");
}
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
  return open_embedded(std::move(place), b, out);
}

Status SharedLock::open_embedded(Placement place, LockBody *b, SharedLock *out) {
  const uint32_t rec = __atomic_load_n(&b->recursive, __ATOMIC_RELAXED);
  if (rec > 1) return fail(MPX_ECORRUPT, "lock kind {} is invalid", rec);
  out->recursive_ = rec == 1;
  out->b_ = b;
  out->place_ = std::move(place);
  if (!out->valid(b->word.load(std::memory_order_relaxed))) return out->place_.corrupt();
  return MPX_OK;
}

Status SharedLock::recurse() noexcept {
  if (!place_.header_ok()) return place_.corrupt();
  const uint32_t c = b_->count.load(std::memory_order_relaxed);
  if (c == UINT32_MAX) return fail(MPX_EOVERFLOW, "RLock recursion depth overflow");
  b_->count.store(c + 1, std::memory_order_relaxed);
  return MPX_OK;
}

Status SharedLock::try_take_over(uint64_t seen, uint64_t mine, bool quick, bool *taken) noexcept {
  *taken = false;
  auto alive = quick ? platform::exists : platform::thread_alive;
  const uint32_t tid = low(seen) & kIdMask;
  if (tid == 0 || alive(tid)) return MPX_OK;
  const uint32_t pid = uint32_t(seen >> 32);
  if (!recursive_ && pid != 0 && alive(pid)) return MPX_OK;
  const uint64_t next = mine | kInconsistent | kWaiters;
  if (!b_->word.compare_exchange_strong(seen, next, std::memory_order_acquire)) return MPX_OK;  // look again
  *taken = true;
  if (recursive_) b_->count.store(1, std::memory_order_relaxed);
  return fail(MPX_EOWNERDEAD, "acquired; the previous owner (thread {}{}) died holding the lock", tid,
              recursive_ ? "" : " and its process");
}

Status SharedLock::acquire_slow(uint64_t mine, int64_t timeout_ms) noexcept {
  platform::Deadline deadline = 0;
  int64_t check_every = kFirstLivenessCheckNs, next_check = 0;
  bool slept = false;
  for (int round = 0;; ++round) {
    uint64_t w = b_->word.load(std::memory_order_relaxed);
    if (!valid(w)) return place_.corrupt();
    const uint32_t lo = low(w);
    if (lo & kNotRecoverable) return unrecoverable();
    if ((lo & kIdMask) == 0) {
      // Free. Having slept, keep the waiters bit: others may sleep too, and our release must wake one.
      if (b_->word.compare_exchange_weak(w, mine | (slept ? kWaiters : 0), std::memory_order_acquire,
                                         std::memory_order_relaxed)) {
        if (recursive_) b_->count.store(1, std::memory_order_relaxed);
        return MPX_OK;
      }
      continue;
    }
    if (round < kSpinRounds && !(lo & kWaiters) && timeout_ms != 0) {
      platform::cpu_relax();
      continue;
    }
    if (closing()) return fail(MPX_ECLOSED, "lock handle was destroyed while waiting");
    const int64_t now = platform::monotonic_ns();
    if (deadline == 0) {
      deadline = platform::deadline_after_ms(timeout_ms);
      next_check = now + check_every;
    }
    if (now >= deadline || now >= next_check) {
      bool taken;
      Status s = try_take_over(w, mine, timeout_ms == 0, &taken);
      if (taken) return s;
      if (now >= deadline) return fail(MPX_ETIMEDOUT, "lock acquire timed out after {} ms", timeout_ms);
      check_every = check_every * 4 < kMaxLivenessCheckNs ? check_every * 4 : kMaxLivenessCheckNs;
      next_check = now + check_every;
      continue;
    }
    if (!(lo & kWaiters)) {
      if (!b_->word.compare_exchange_weak(w, w | kWaiters, std::memory_order_relaxed)) continue;
    }
    platform::wait_on(futex(), lo | kWaiters, deadline < next_check ? deadline : next_check);
    slept = true;
  }
}

Status SharedLock::release_slow() noexcept {
  uint64_t w = b_->word.load(std::memory_order_relaxed);
  for (;;) {
    if (!valid(w)) return place_.corrupt();
    const uint32_t lo = low(w);
    const uint32_t owner = lo & kIdMask;
    if (owner == 0) return not_held();
    if (recursive_ && owner != platform::current_tid()) return not_owner();
    // Releasing a lock whose state was never repaired makes it unusable for everyone.
    const uint64_t next = (lo & kInconsistent) ? kNotRecoverable : 0;
    // (A recursive owner zeroed its count before getting here: once the word is free, the
    // count belongs to the next owner.)
    if (b_->word.compare_exchange_weak(w, next, std::memory_order_release, std::memory_order_relaxed)) {
      if (next) platform::wake(futex(), INT32_MAX);
      else if (lo & kWaiters) platform::wake(futex(), 1);
      return MPX_OK;
    }
  }
}

Status SharedLock::consistent() noexcept {
  uint64_t w = b_->word.load(std::memory_order_relaxed);
  for (;;) {
    if (!valid(w)) return place_.corrupt();
    if (!(low(w) & kInconsistent)) return fail(MPX_EINVAL, "lock is not in the owner-died state");
    if ((low(w) & kIdMask) != platform::current_tid())
      return fail(MPX_EPERM, "only the owner that received MPX_EOWNERDEAD may mark the lock consistent");
    if (b_->word.compare_exchange_weak(w, w & ~uint64_t(kInconsistent), std::memory_order_relaxed)) return MPX_OK;
  }
}

Status SharedLock::check() const noexcept {
  return valid(b_->word.load(std::memory_order_relaxed)) ? MPX_OK : place_.corrupt();
}

Status SharedLock::locked(int *out) noexcept {
  const uint64_t w = b_->word.load(std::memory_order_relaxed);
  if (!valid(w)) return place_.corrupt();
  *out = (low(w) & kIdMask) != 0;
  return MPX_OK;
}

bool SharedLock::owned_by_caller() const noexcept {
  return (low(b_->word.load(std::memory_order_relaxed)) & kIdMask) == platform::current_tid();
}

bool SharedLock::owned_by_caller_process() const noexcept {
  if (recursive_) return owned_by_caller();
  const uint64_t w = b_->word.load(std::memory_order_relaxed);
  return (low(w) & kIdMask) != 0 && uint32_t(w >> 32) == platform::current_pid();
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
