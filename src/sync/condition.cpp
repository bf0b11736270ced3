#include <cstring>

#include "platform/wait.hpp"
#include "sync/primitives.hpp"

namespace mpx {

namespace {
enum : uint32_t { kSlotFree = 0, kSlotWaiting = 1, kSlotNotified = 2 };
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
  if (!place_.header_ok()) return place_.corrupt();
  return MPX_OK;
}

void ConditionObject::wake_waiters() noexcept {
  for (auto &slot : b_->slots)
    if (slot.state.load(std::memory_order_relaxed) != kSlotFree) platform::wake(&slot.state, INT32_MAX);
  lock_.wake_all();
}

// Called with the lock held, so claims never race each other; a slot whose waiter died
// (killed inside wait) is taken back.
ConditionSlot *ConditionObject::claim_slot() noexcept {
  for (int pass = 0; pass < 2; ++pass) {
    for (auto &slot : b_->slots) {
      uint32_t st = slot.state.load(std::memory_order_acquire);
      if (st != kSlotFree) {
        if (pass == 0 || platform::thread_alive(slot.tid)) continue;
        if (!slot.state.compare_exchange_strong(st, kSlotFree, std::memory_order_acq_rel)) continue;
      }
      slot.tid = platform::current_tid();
      slot.ticket = b_->next_ticket++;
      slot.state.store(kSlotWaiting, std::memory_order_release);
      return &slot;
    }
  }
  return nullptr;
}

ConditionSlot *ConditionObject::oldest_waiter() noexcept {
  ConditionSlot *best = nullptr;
  for (auto &slot : b_->slots)
    if (slot.state.load(std::memory_order_acquire) == kSlotWaiting && (!best || slot.ticket < best->ticket))
      best = &slot;
  return best;
}

Status ConditionObject::wait(int64_t timeout_ms) noexcept {
  if (Status s = check(); s != MPX_OK) return s;
  if (!lock_.owned_by_caller()) return fail(MPX_EPERM, "cannot wait on un-acquired lock");
  ConditionSlot *slot = claim_slot();
  if (!slot) return fail(MPX_EAGAIN, "more than {} threads waiting on one condition", ConditionBody::kSlots);
  uint32_t depth;
  if (Status s = lock_.release_all(&depth); s != MPX_OK) {
    slot->state.store(kSlotFree, std::memory_order_release);
    return s;
  }
  const platform::Deadline deadline = platform::deadline_after_ms(timeout_ms);
  Status result = MPX_OK;
  for (;;) {
    uint32_t st = slot->state.load(std::memory_order_acquire);
    if (st == kSlotNotified) break;
    if (st != kSlotWaiting || !place_.header_ok()) {
      result = place_.corrupt();
      break;
    }
    const bool closing_now = closing();
    if (closing_now || platform::monotonic_ns() >= deadline) {
      // Withdraw, unless a notify got to us first: then the notification is ours to take.
      if (slot->state.compare_exchange_strong(st, kSlotFree, std::memory_order_acq_rel)) {
        result = closing_now ? fail(MPX_ECLOSED, "condition handle was destroyed while waiting")
                             : fail(MPX_ETIMEDOUT, "condition wait timed out after {} ms", timeout_ms);
        break;
      }
      continue;
    }
    platform::wait_on(&slot->state, kSlotWaiting, deadline);
  }
  if (result != MPX_OK && result != MPX_ETIMEDOUT && result != MPX_ECLOSED) return result;  // corrupt
  if (result == MPX_OK) slot->state.store(kSlotFree, std::memory_order_release);
  if (result == MPX_ECLOSED) return result;
  const Status relock = lock_.reacquire(depth);
  return relock != MPX_OK ? relock : result;
}

Status ConditionObject::notify(uint32_t n) noexcept {
  if (Status s = check(); s != MPX_OK) return s;
  if (!lock_.owned_by_caller()) return fail(MPX_EPERM, "cannot notify on un-acquired lock");
  for (uint32_t woken = 0; woken < n;) {
    ConditionSlot *slot = oldest_waiter();
    if (!slot) break;
    uint32_t expected = kSlotWaiting;
    if (!platform::thread_alive(slot->tid)) {  // killed inside wait: its notification would be lost
      slot->state.compare_exchange_strong(expected, kSlotFree, std::memory_order_acq_rel);
      continue;
    }
    if (!slot->state.compare_exchange_strong(expected, kSlotNotified, std::memory_order_acq_rel))
      continue;  // it timed out just now; try the next
    platform::wake(&slot->state, 1);
    ++woken;
  }
  return MPX_OK;
}

}  // namespace mpx
