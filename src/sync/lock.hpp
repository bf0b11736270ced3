// Lock and RLock in shared memory: a futex word holding the owner's id.
//
// word = the owner's thread id (Linux tids are unique across processes). A plain lock may be
// released by any thread of any process; a recursive one only by its owner, which also
// keeps a depth. Bit 31 says someone may be sleeping. Acquire is one CAS when free; release
// is one exchange, plus a wake only when bit 31 was set.
//
// Owner death: a waiter that has slept a while (or gives up) checks whether the owning
// thread is still alive (a process killed with -9 takes all its threads with it); if not, it
// takes the lock over and reports MPX_EOWNERDEAD with the state
// "inconsistent" until mpx_lock_consistent; releasing while inconsistent makes it
// unrecoverable, as with POSIX robust mutexes.
#pragma once

#include <atomic>
#include <cstdint>

#include "core/handle.hpp"
#include "platform/process.hpp"
#include "platform/wait.hpp"
#include "shm/object.hpp"

namespace mpx {

struct LockBody {
  std::atomic<uint32_t> word;   // 0 free; else owner id | kWaiters
  std::atomic<uint32_t> state;  // LockState
  std::atomic<uint32_t> other;  // reserved
  std::atomic<uint32_t> count;  // recursive depth
  uint32_t recursive;           // immutable after creation
  uint32_t reserved[3];
};

enum LockState : uint32_t { kConsistent = 0, kInconsistent = 1, kNotRecoverable = 2 };

class SharedLock {
 public:
  static constexpr uint32_t kWaiters = 0x80000000u;
  static constexpr uint32_t kIdLimit = 1u << 22;  // PID_MAX_LIMIT: ids above are corruption

  SharedLock() = default;
  // Create a new lock object (published, attachable).
  static Status create(bool recursive, SharedLock *out);
  // Wrap the lock at `place` (validated); `owner` answers closing() for blocked waits.
  static Status open(Placement place, SharedLock *out);

  void set_owner(const Object *owner) { owner_ = owner; }
  const Placement &placement() const { return place_; }
  bool recursive() const { return recursive_; }

  __attribute__((always_inline)) Status acquire(int64_t timeout_ms) noexcept {
    if (!place_.header_ok()) [[unlikely]] return place_.corrupt();
    const uint32_t me = platform::current_tid();
    if (recursive_ && (b_->word.load(std::memory_order_relaxed) & ~kWaiters) == me) return recurse();
    uint32_t expected = 0;
    if (b_->word.compare_exchange_strong(expected, me, std::memory_order_acquire, std::memory_order_relaxed))
      return acquired(MPX_OK);
    return acquire_slow(me, timeout_ms);
  }

  __attribute__((always_inline)) Status release() noexcept {
    if (!place_.header_ok()) return place_.corrupt();
    const uint32_t w = b_->word.load(std::memory_order_relaxed);
    if (recursive_) {
      if (w == 0 || (w & ~kWaiters) != platform::current_tid())
        return not_owner();
      const uint32_t c = b_->count.load(std::memory_order_relaxed);
      if (c > 1) {
        b_->count.store(c - 1, std::memory_order_relaxed);
        return MPX_OK;
      }
      b_->count.store(0, std::memory_order_relaxed);
    } else if (w == 0) {
      return not_held();
    }
    if (b_->state.load(std::memory_order_relaxed) == kInconsistent)
      b_->state.store(kNotRecoverable, std::memory_order_relaxed);
    const uint32_t old = b_->word.exchange(0, std::memory_order_release);
    if (old & kWaiters) platform::wake(&b_->word, 1);
    if (old == 0) [[unlikely]] return not_held();
    return MPX_OK;
  }

  Status consistent() noexcept;
  Status locked(int *out) noexcept;
  bool owned_by_caller() const noexcept;
  uint32_t depth_of_caller() const noexcept;  // recursion depth if the caller owns it, else 0
  // Condition support: release completely / re-acquire to a saved depth.
  Status release_all(uint32_t *saved_depth) noexcept;
  Status reacquire(uint32_t saved_depth) noexcept;
  void wake_all() noexcept { platform::wake(&b_->word, INT32_MAX); }

 private:
  Status recurse() noexcept;
  [[gnu::cold]] static Status not_owner() noexcept;
  [[gnu::cold]] static Status not_held() noexcept;
  __attribute__((always_inline)) Status acquired(Status result) noexcept {
    if (b_->state.load(std::memory_order_relaxed) == kNotRecoverable) return unusable();
    if (recursive_) b_->count.store(1, std::memory_order_relaxed);
    return result;
  }
  Status acquire_slow(uint32_t me, int64_t timeout_ms) noexcept;
  Status try_take_over(uint32_t seen, uint32_t me, bool *taken) noexcept;
  Status unusable() noexcept;
  bool closing() const noexcept { return owner_ && owner_->closing(); }

  Placement place_;
  LockBody *b_ = nullptr;
  bool recursive_ = false;
  const Object *owner_ = nullptr;
};

class LockObject final : public Object {
 public:
  LockObject() : Object(HandleType::lock) {}
  void wake_waiters() noexcept override { lock.wake_all(); }
  SharedLock lock;
};

}  // namespace mpx
