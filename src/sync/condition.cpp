#include <cstring>

#include "platform/wait.hpp"
#include "sync/primitives.hpp"

namespace mpx {

namespace {
constexpr uint32_t kCountLimit = 1u << 24;  // more waiters than this means scribbled state
}

Status ConditionObject::create(const SharedLock *lock, ConditionObject *out) {
  SharedLock own;
  if (!lock) {
    if (Status s = SharedLock::create(true, &own); s != MPX_OK) return s;
    lock = &own;
  }
  const std::string token = lock->placement().token();
  if (token.size() >= sizeof(ConditionBody::lock_token)) return fail(MPX_EINVAL, "lock token too long");
  Placement p;
  if (Status s = Placement::allocate(ObjType::condition, sizeof(ConditionBody), &p); s != MPX_OK) return s;
  std::memcpy(p.body<ConditionBody>()->lock_token, token.c_str(), token.size() + 1);
  p.publish();
  out->b_ = p.body<ConditionBody>();
  out->place_ = std::move(p);
  out->lock_ = *lock;
  out->lock_.set_owner(out);
  return MPX_OK;
}

Status ConditionObject::open(Placement place, ConditionObject *out) {
  auto *b = place.body<ConditionBody>();
  char token[sizeof b->lock_token];
  std::memcpy(token, b->lock_token, sizeof token);
  if (!std::memchr(token, '\0', sizeof token)) return place.corrupt();
  Placement lp;
  if (Status s = Placement::attach(token, ObjType::lock, sizeof(LockBody), &lp); s != MPX_OK) return s;
  if (Status s = SharedLock::open(std::move(lp), &out->lock_); s != MPX_OK) return s;
  out->lock_.set_owner(out);
  out->b_ = b;
  out->place_ = std::move(place);
  return out->check();
}

Status ConditionObject::check() const noexcept {
  if (!place_.header_ok() || b_->pending.load(std::memory_order_relaxed) > kCountLimit ||
      b_->tokens.load(std::memory_order_relaxed) > kCountLimit)
    return place_.corrupt();
  return MPX_OK;
}

void ConditionObject::wake_waiters() noexcept {
  platform::wake(&b_->tokens, INT32_MAX);
  lock_.wake_all();
}

Status ConditionObject::wait(int64_t timeout_ms) noexcept {
  if (Status s = check(); s != MPX_OK) return s;
  if (!lock_.owned_by_caller()) return fail(MPX_EPERM, "cannot wait on un-acquired lock");
  b_->pending.fetch_add(1, std::memory_order_seq_cst);
  uint32_t depth;
  if (Status s = lock_.release_all(&depth); s != MPX_OK) {
    b_->pending.fetch_sub(1, std::memory_order_relaxed);
    return s;
  }
  const platform::Deadline deadline = platform::deadline_after_ms(timeout_ms);
  Status result = MPX_OK;
  for (;;) {
    uint32_t t = b_->tokens.load(std::memory_order_seq_cst);
    if (t > kCountLimit) {
      result = place_.corrupt();
      break;
    }
    if (t > 0) {
      if (b_->tokens.compare_exchange_weak(t, t - 1, std::memory_order_acq_rel)) break;
      continue;
    }
    const bool closing_now = closing();
    if (closing_now || platform::monotonic_ns() >= deadline) {
      // Withdraw from pending; if a notifier already counted us, a token is on its way: take it.
      uint32_t p = b_->pending.load(std::memory_order_seq_cst);
      bool withdrawn = false;
      while (p > 0 && !(withdrawn = b_->pending.compare_exchange_weak(p, p - 1, std::memory_order_seq_cst))) {
      }
      if (withdrawn) {
        result = closing_now ? fail(MPX_ECLOSED, "condition handle was destroyed while waiting")
                             : fail(MPX_ETIMEDOUT, "condition wait timed out after {} ms", timeout_ms);
        break;
      }
      const int64_t give_up = platform::monotonic_ns() + 10 * 1000000LL;
      bool took = false;
      while (!took && platform::monotonic_ns() < give_up) {
        uint32_t t2 = b_->tokens.load(std::memory_order_seq_cst);
        if (t2 > 0 && b_->tokens.compare_exchange_weak(t2, t2 - 1, std::memory_order_acq_rel)) took = true;
        else platform::cpu_relax();
      }
      if (!took) result = fail(MPX_ETIMEDOUT, "condition wait timed out after {} ms", timeout_ms);
      break;
    }
    platform::wait_on(&b_->tokens, 0, deadline);
  }
  if (result == MPX_ECLOSED) return result;
  const Status relock = lock_.reacquire(depth);
  return relock != MPX_OK ? relock : result;
}

Status ConditionObject::notify(uint32_t n) noexcept {
  if (Status s = check(); s != MPX_OK) return s;
  if (!lock_.owned_by_caller()) return fail(MPX_EPERM, "cannot notify on un-acquired lock");
  uint32_t p = b_->pending.load(std::memory_order_seq_cst);
  uint32_t k;
  do {
    k = p < n ? p : n;
    if (k == 0) return MPX_OK;
  } while (!b_->pending.compare_exchange_weak(p, p - k, std::memory_order_seq_cst));
  b_->tokens.fetch_add(k, std::memory_order_seq_cst);
  platform::wake(&b_->tokens, k > INT32_MAX ? INT32_MAX : int(k));
  return MPX_OK;
}

}  // namespace mpx
