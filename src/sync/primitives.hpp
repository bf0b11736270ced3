// Semaphore, Event, Barrier and Condition in shared memory. Each is a body of futex words
// behind an object header; each Object wrapper wakes its waiters when its handle closes.
#pragma once

#include <atomic>
#include <cstdint>

#include "core/handle.hpp"
#include "shm/object.hpp"
#include "sync/lock.hpp"

namespace mpx {

struct SemaphoreBody {
  std::atomic<uint32_t> value;
  std::atomic<uint32_t> sleepers;  // processes' threads that may be asleep on value
  uint32_t max_value;              // immutable
  uint32_t bounded;                // immutable
};

class SemaphoreObject final : public Object {
 public:
  SemaphoreObject() : Object(HandleType::semaphore) {}
  static Status create(uint32_t value, bool bounded, uint32_t max_value, SemaphoreObject *out);
  static Status open(Placement place, SemaphoreObject *out);
  void wake_waiters() noexcept override;

  Status acquire(int64_t timeout_ms) noexcept;
  Status release() noexcept;
  Status value(uint32_t *v) noexcept;
  Status max_value(uint32_t *v) noexcept;
  const Placement &placement() const { return place_; }

 private:
  Status check() const noexcept;
  Placement place_;
  SemaphoreBody *b_ = nullptr;
  uint32_t max_ = 0;
};

struct EventBody {
  std::atomic<uint32_t> flag;
  std::atomic<uint32_t> sleepers;
};

class EventObject final : public Object {
 public:
  EventObject() : Object(HandleType::event) {}
  static Status create(EventObject *out);
  static Status open(Placement place, EventObject *out);
  void wake_waiters() noexcept override;

  Status set() noexcept;
  Status clear() noexcept;
  Status is_set(int *out) noexcept;
  Status wait(int64_t timeout_ms) noexcept;
  const Placement &placement() const { return place_; }

 private:
  Status check() const noexcept;
  Placement place_;
  EventBody *b_ = nullptr;
};

struct BarrierBody {
  std::atomic<uint32_t> state;  // generation << 16 | broken << 15 | arrived (15 bits)
  std::atomic<uint32_t> reset_gens;  // bit g % 32: generation g ended by reset, not by passing
  uint32_t parties;                  // immutable
  uint32_t reserved;
};

class BarrierObject final : public Object {
 public:
  static constexpr uint32_t kMaxParties = 0x7fff;
  BarrierObject() : Object(HandleType::barrier) {}
  static Status create(uint32_t parties, BarrierObject *out);
  static Status open(Placement place, BarrierObject *out);
  void wake_waiters() noexcept override;

  Status wait(int64_t timeout_ms, bool hold, uint32_t *index) noexcept;
  Status release() noexcept;
  Status abort() noexcept;
  Status reset() noexcept;
  Status parties(uint32_t *out) noexcept;
  Status n_waiting(uint32_t *out) noexcept;
  Status broken(int *out) noexcept;
  const Placement &placement() const { return place_; }

 private:
  Status check() const noexcept;
  Status pass(uint32_t seen) noexcept;  // open the barrier for generation of `seen`
  Placement place_;
  BarrierBody *b_ = nullptr;
  uint32_t parties_ = 0;
};

// One slot per waiting thread: a notification is handed to a particular waiter (the
// longest waiting), so it can be neither stolen by a later waiter nor lost to a timeout.
struct ConditionSlot {
  std::atomic<uint32_t> state;  // kSlotFree / kSlotWaiting / kSlotNotified; the waiter sleeps on it
  uint32_t tid;                 // the waiting thread
  uint64_t ticket;              // arrival order
};

struct ConditionBody {
  static constexpr uint32_t kSlots = 256;  // waiters at once
  uint64_t next_ticket;                    // written under the condition's lock
  char lock_token[256];                    // the lock this condition uses (NUL-terminated)
  ConditionSlot slots[kSlots];
};

class ConditionObject final : public Object {
 public:
  ConditionObject() : Object(HandleType::condition) {}
  // lock: the lock to use (its token is recorded); nullptr creates an RLock.
  static Status create(const SharedLock *lock, ConditionObject *out);
  static Status open(Placement place, ConditionObject *out);
  void wake_waiters() noexcept override;

  SharedLock &lock() { return lock_; }
  Status wait(int64_t timeout_ms) noexcept;
  Status notify(uint32_t n) noexcept;

 private:
  ConditionSlot *claim_slot() noexcept;
  ConditionSlot *oldest_waiter() noexcept;

 public:
  const Placement &placement() const { return place_; }

 private:
  Status check() const noexcept;
  Placement place_;
  ConditionBody *b_ = nullptr;
  SharedLock lock_;
};

}  // namespace mpx
