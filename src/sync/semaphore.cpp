#include "mpx/sync.h"
#include "platform/wait.hpp"
#include "sync/primitives.hpp"

namespace mpx {

namespace {
constexpr int kSpinRounds = 100;
}

Status SemaphoreObject::create(uint32_t value, bool bounded, uint32_t max_value, SemaphoreObject *out) {
  if (value > MPX_SEMAPHORE_VALUE_MAX) return fail(MPX_EINVAL, "semaphore value {} exceeds the maximum", value);
  if (!bounded) max_value = MPX_SEMAPHORE_VALUE_MAX;
  else if (max_value == 0) max_value = value;
  if (max_value > MPX_SEMAPHORE_VALUE_MAX || value > max_value)
    return fail(MPX_EINVAL, "semaphore value {} exceeds its bound {}", value, max_value);
  Placement p;
  if (Status s = Placement::allocate(ObjType::semaphore, sizeof(SemaphoreBody), &p); s != MPX_OK) return s;
  auto *b = p.body<SemaphoreBody>();
  b->value.store(value, std::memory_order_relaxed);
  b->max_value = max_value;
  b->bounded = bounded ? 1 : 0;
  p.publish();
  return open(std::move(p), out);
}

Status SemaphoreObject::open(Placement place, SemaphoreObject *out) {
  auto *b = place.body<SemaphoreBody>();
  const uint32_t max = __atomic_load_n(&b->max_value, __ATOMIC_RELAXED);
  if (max > MPX_SEMAPHORE_VALUE_MAX || b->value.load() > max)
    return fail(MPX_ECORRUPT, "semaphore state is invalid (value {}, max {})", b->value.load(), max);
  out->b_ = b;
  out->max_ = max;
  out->place_ = std::move(place);
  return MPX_OK;
}

Status SemaphoreObject::check() const noexcept {
  if (!place_.header_ok() || b_->value.load(std::memory_order_relaxed) > max_ ||
      __atomic_load_n(&b_->max_value, __ATOMIC_RELAXED) != max_)
    return place_.corrupt();
  return MPX_OK;
}

void SemaphoreObject::wake_waiters() noexcept { platform::wake(&b_->value, INT32_MAX); }

Status SemaphoreObject::acquire(int64_t timeout_ms) noexcept {
  if (Status s = check(); s != MPX_OK) return s;
  uint32_t v = b_->value.load(std::memory_order_relaxed);
  for (int spin = 0;; ++spin) {
    while (v > 0) {
      if (v > max_) return place_.corrupt();
      if (b_->value.compare_exchange_weak(v, v - 1, std::memory_order_acquire, std::memory_order_relaxed))
        return MPX_OK;
    }
    if (spin >= kSpinRounds || timeout_ms == 0) break;
    platform::cpu_relax();
    v = b_->value.load(std::memory_order_relaxed);
  }
  if (timeout_ms == 0) return fail(MPX_ETIMEDOUT, "semaphore is zero");
  const platform::Deadline deadline = platform::deadline_after_ms(timeout_ms);
  b_->sleepers.fetch_add(1, std::memory_order_seq_cst);
  Status result;
  for (;;) {
    v = b_->value.load(std::memory_order_seq_cst);
    if (v > max_ || !place_.header_ok()) {
      result = place_.corrupt();
      break;
    }
    if (v > 0) {
      if (b_->value.compare_exchange_weak(v, v - 1, std::memory_order_acquire, std::memory_order_relaxed)) {
        result = MPX_OK;
        break;
      }
      continue;
    }
    if (closing()) {
      result = fail(MPX_ECLOSED, "semaphore handle was destroyed while waiting");
      break;
    }
    if (platform::monotonic_ns() >= deadline) {
      result = fail(MPX_ETIMEDOUT, "semaphore acquire timed out after {} ms", timeout_ms);
      break;
    }
    platform::wait_on(&b_->value, 0, deadline);
  }
  b_->sleepers.fetch_sub(1, std::memory_order_relaxed);
  return result;
}

Status SemaphoreObject::release() noexcept {
  if (Status s = check(); s != MPX_OK) return s;
  uint32_t v = b_->value.load(std::memory_order_relaxed);
  do {
    if (v >= max_) {
      if (b_->bounded) return fail(MPX_EOVERFLOW, "semaphore or lock released too many times (bound {})", max_);
      return fail(MPX_EOVERFLOW, "semaphore value would exceed {}", max_);
    }
  } while (!b_->value.compare_exchange_weak(v, v + 1, std::memory_order_seq_cst, std::memory_order_relaxed));
  if (b_->sleepers.load(std::memory_order_seq_cst) > 0) platform::wake(&b_->value, 1);
  return MPX_OK;
}

Status SemaphoreObject::value(uint32_t *v) noexcept {
  if (Status s = check(); s != MPX_OK) return s;
  *v = b_->value.load(std::memory_order_relaxed);
  return MPX_OK;
}

Status SemaphoreObject::max_value(uint32_t *v) noexcept {
  if (Status s = check(); s != MPX_OK) return s;
  *v = max_;
  return MPX_OK;
}

}  // namespace mpx
