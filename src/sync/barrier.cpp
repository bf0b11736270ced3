#include "platform/wait.hpp"
#include "sync/primitives.hpp"

namespace mpx {

namespace {
constexpr uint32_t kArrivedMask = 0x7fff;
constexpr uint32_t kBroken = 0x8000;
constexpr uint32_t gen_of(uint32_t s) { return s >> 16; }
constexpr uint32_t next_gen(uint32_t s) { return ((gen_of(s) + 1) & 0xffff) << 16; }
constexpr uint32_t gen_bit(uint32_t g) { return 1u << (g % 32); }
}  // namespace

Status BarrierObject::create(uint32_t parties, BarrierObject *out) {
  if (parties == 0 || parties > kMaxParties)
    return fail(MPX_EINVAL, "barrier parties must be 1..{}, not {}", kMaxParties, parties);
  Placement p;
  if (Status s = Placement::allocate(ObjType::barrier, sizeof(BarrierBody), &p); s != MPX_OK) return s;
  p.body<BarrierBody>()->parties = parties;
  p.publish();
  return open(std::move(p), out);
}

Status BarrierObject::open(Placement place, BarrierObject *out) {
  out->b_ = place.body<BarrierBody>();
  out->parties_ = __atomic_load_n(&out->b_->parties, __ATOMIC_RELAXED);
  out->place_ = std::move(place);
  if (out->parties_ == 0 || out->parties_ > kMaxParties) return out->place_.corrupt();
  return out->check();
}

Status BarrierObject::check() const noexcept {
  if (!place_.header_ok() || __atomic_load_n(&b_->parties, __ATOMIC_RELAXED) != parties_ ||
      (b_->state.load(std::memory_order_relaxed) & kArrivedMask) > parties_)
    return place_.corrupt();
  return MPX_OK;
}

void BarrierObject::wake_waiters() noexcept { platform::wake(&b_->state, INT32_MAX); }

Status BarrierObject::pass(uint32_t seen) noexcept {
  b_->reset_gens.fetch_and(~gen_bit(gen_of(seen)), std::memory_order_relaxed);
  if (!b_->state.compare_exchange_strong(seen, next_gen(seen), std::memory_order_acq_rel)) return MPX_EAGAIN;
  platform::wake(&b_->state, INT32_MAX);
  return MPX_OK;
}

Status BarrierObject::wait(int64_t timeout_ms, bool hold, uint32_t *index) noexcept {
  if (Status s = check(); s != MPX_OK) return s;
  const platform::Deadline deadline = platform::deadline_after_ms(timeout_ms);
  uint32_t s = b_->state.load(std::memory_order_acquire);
  uint32_t my_index;
  for (;;) {
    if (s & kBroken) return fail(MPX_EBROKEN, "barrier is broken");
    const uint32_t arrived = s & kArrivedMask;
    if (arrived > parties_) return place_.corrupt();
    if (arrived == parties_) {  // held by the last arrival of this pass: ours is the next one
      if (closing()) return fail(MPX_ECLOSED, "barrier handle was destroyed while waiting");
      if (platform::monotonic_ns() >= deadline) return fail(MPX_ETIMEDOUT, "barrier wait timed out");
      platform::wait_on(&b_->state, s, deadline);
      s = b_->state.load(std::memory_order_acquire);
      continue;
    }
    my_index = arrived;
    if (arrived + 1 == parties_ && !hold) {
      if (pass(s) == MPX_OK) {
        if (index) *index = my_index;
        return MPX_OK;
      }
      s = b_->state.load(std::memory_order_acquire);
      continue;
    }
    if (b_->state.compare_exchange_weak(s, s + 1, std::memory_order_acq_rel, std::memory_order_acquire)) break;
  }
  if (index) *index = my_index;
  if (my_index + 1 == parties_) return MPX_OK;  // held: the caller releases the others

  const uint32_t my_gen = gen_of(s);
  for (;;) {
    const uint32_t cur = b_->state.load(std::memory_order_acquire);
    if (gen_of(cur) != my_gen) {
      if (b_->reset_gens.load(std::memory_order_acquire) & gen_bit(my_gen))
        return fail(MPX_EBROKEN, "barrier was reset while waiting");
      return MPX_OK;
    }
    if (cur & kBroken) return fail(MPX_EBROKEN, "barrier is broken");
    if ((cur & kArrivedMask) > parties_ || !place_.header_ok()) return place_.corrupt();
    if (closing()) return fail(MPX_ECLOSED, "barrier handle was destroyed while waiting");
    if (platform::monotonic_ns() >= deadline) {
      uint32_t expect = cur;
      if (b_->state.compare_exchange_strong(expect, cur | kBroken, std::memory_order_acq_rel)) {
        platform::wake(&b_->state, INT32_MAX);
        return fail(MPX_ETIMEDOUT, "barrier wait timed out after {} ms; the barrier is now broken", timeout_ms);
      }
      continue;
    }
    platform::wait_on(&b_->state, cur, deadline);
  }
}

Status BarrierObject::release() noexcept {
  if (Status s = check(); s != MPX_OK) return s;
  uint32_t s = b_->state.load(std::memory_order_acquire);
  if (s & kBroken) return fail(MPX_EBROKEN, "barrier broke while held");
  if ((s & kArrivedMask) != parties_) return fail(MPX_EINVAL, "barrier is not held by a MPX_BARRIER_HOLD wait");
  if (pass(s) != MPX_OK) return fail(MPX_EINVAL, "barrier changed while held");
  return MPX_OK;
}

Status BarrierObject::abort() noexcept {
  if (Status s = check(); s != MPX_OK) return s;
  b_->state.fetch_or(kBroken, std::memory_order_acq_rel);
  platform::wake(&b_->state, INT32_MAX);
  return MPX_OK;
}

Status BarrierObject::reset() noexcept {
  if (Status s = check(); s != MPX_OK) return s;
  uint32_t s = b_->state.load(std::memory_order_acquire);
  do b_->reset_gens.fetch_or(gen_bit(gen_of(s)), std::memory_order_acq_rel);
  while (!b_->state.compare_exchange_weak(s, next_gen(s), std::memory_order_acq_rel));
  platform::wake(&b_->state, INT32_MAX);
  return MPX_OK;
}

Status BarrierObject::parties(uint32_t *out) noexcept {
  if (Status s = check(); s != MPX_OK) return s;
  *out = parties_;
  return MPX_OK;
}

Status BarrierObject::n_waiting(uint32_t *out) noexcept {
  if (Status s = check(); s != MPX_OK) return s;
  const uint32_t s = b_->state.load(std::memory_order_acquire);
  const uint32_t arrived = s & kArrivedMask;
  *out = (s & kBroken) ? 0 : (arrived == parties_ ? parties_ - 1 : arrived);
  return MPX_OK;
}

Status BarrierObject::broken(int *out) noexcept {
  if (Status s = check(); s != MPX_OK) return s;
  *out = (b_->state.load(std::memory_order_acquire) & kBroken) ? 1 : 0;
  return MPX_OK;
}

}  // namespace mpx
