// Lock and RLock in shared memory: one 64-bit word that says everything.
//
//   bits  0..21  owner thread id (Linux tids are unique across processes; 0 = free)
//   bit  22      inconsistent: the owner died; the new owner has not called consistent()
//   bit  23      not recoverable: released while inconsistent; every acquire now fails
//   bit  31      someone may be asleep (futex waiters, on the low 32 bits)
//   bits 32..63  plain lock: the owner's process id
//
// Acquire is one CAS when free; release is one CAS when the caller is the owner (the
// common case), plus a wake only when bit 31 was set. Keeping the state in the word makes
// owner-death recovery atomic, and touching the contended cache line once per operation
// is what keeps two contending processes within reach of a bare futex.
//
// A plain lock may be released by any thread of any process; a recursive one only by its
// owner, which also keeps a depth. Owner death: a waiter that has slept a while (or gives
// up) checks the owner; an RLock's owner is its thread, a Lock's is its process (another of
// its threads may still release it). A dead owner's lock is taken over and the acquirer gets
// MPX_EOWNERDEAD, as with POSIX robust mutexes.
#pragma once

#include <atomic>
#include <cstdint>

#include "core/handle.hpp"
#include "platform/process.hpp"
#include "platform/wait.hpp"
#include "shm/object.hpp"

namespace mpx {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the futex word is the low half of LockBody::word");

struct LockBody {
  std::atomic<uint64_t> word;
  std::atomic<uint32_t> count;  // recursive depth, touched by the owner only
  uint32_t recursive;           // immutable after creation
  uint32_t reserved[4];
};

class SharedLock {
 public:
  static constexpr uint32_t kIdMask = (1u << 22) - 1;  // PID_MAX_LIMIT
  static constexpr uint32_t kInconsistent = 1u << 22;
  static constexpr uint32_t kNotRecoverable = 1u << 23;
  static constexpr uint32_t kWaiters = 1u << 31;
  static constexpr uint32_t kValidBits = kIdMask | kInconsistent | kNotRecoverable | kWaiters;

  SharedLock() = default;
  // Create a new lock object (published, attachable).
  static Status create(bool recursive, SharedLock *out);
  // Wrap the lock at `place` (validated); `owner` answers closing() for blocked waits.
  static Status open(Placement place, SharedLock *out);
  // Wrap a lock word embedded in another object's body (`body` lies inside `place`): the
  // queue keeps its producer and consumer locks next to the indices they guard.
  static Status open_embedded(Placement place, LockBody *body, SharedLock *out);

  void set_owner(const Object *owner) { owner_ = owner; }
  const Placement &placement() const { return place_; }
  bool recursive() const { return recursive_; }

  __attribute__((always_inline)) Status acquire(int64_t timeout_ms) noexcept {
    const uint64_t mine = owner_value();
    if (recursive_ && (low(b_->word.load(std::memory_order_relaxed)) & kIdMask) == uint32_t(mine)) return recurse();
    uint64_t expected = 0;
    if (b_->word.compare_exchange_strong(expected, mine, std::memory_order_acquire, std::memory_order_relaxed))
        [[likely]] {
      if (recursive_) b_->count.store(1, std::memory_order_relaxed);
      // Checked after the CAS: the line is ours by then, so the check costs no extra transfer.
      if (!place_.header_ok()) [[unlikely]] return place_.corrupt();
      return MPX_OK;
    }
    return acquire_slow(mine, timeout_ms);
  }

  __attribute__((always_inline)) Status release() noexcept {
    const uint64_t mine = owner_value();
    if (recursive_) {
      if ((low(b_->word.load(std::memory_order_relaxed)) & kIdMask) != uint32_t(mine)) return release_slow();
      const uint32_t c = b_->count.load(std::memory_order_relaxed);
      if (c > 1) {
        b_->count.store(c - 1, std::memory_order_relaxed);
        return MPX_OK;
      }
      b_->count.store(0, std::memory_order_relaxed);
    }
    uint64_t expected = mine;
    if (b_->word.compare_exchange_strong(expected, 0, std::memory_order_release, std::memory_order_relaxed))
        [[likely]] {
      if (!place_.header_ok()) [[unlikely]] return place_.corrupt();
      return MPX_OK;
    }
    return release_slow();
  }

  Status check() const noexcept;  // MPX_ECORRUPT unless header and word are well-formed
  Status consistent() noexcept;
  Status locked(int *out) noexcept;
  bool owned_by_caller() const noexcept;          // held by the calling thread
  bool owned_by_caller_process() const noexcept;  // plain lock: held by this process
  uint32_t depth_of_caller() const noexcept;  // recursion depth if the caller owns it, else 0
  // Condition support: release completely / re-acquire to a saved depth.
  Status release_all(uint32_t *saved_depth) noexcept;
  Status reacquire(uint32_t saved_depth) noexcept;
  void wake_all() noexcept { platform::wake(futex(), INT32_MAX); }

 private:
  static uint32_t low(uint64_t w) { return uint32_t(w); }
  uint64_t owner_value() const noexcept {
    const uint64_t tid = platform::current_tid();
    return recursive_ ? tid : (uint64_t(platform::current_pid()) << 32) | tid;
  }
  std::atomic<uint32_t> *futex() const noexcept { return reinterpret_cast<std::atomic<uint32_t> *>(&b_->word); }
  Status recurse() noexcept;
  Status acquire_slow(uint64_t mine, int64_t timeout_ms) noexcept;
  Status release_slow() noexcept;
  // quick: one system call per check (a zombie owner passes for alive), for try-acquire.
  Status try_take_over(uint64_t seen, uint64_t mine, bool quick, bool *taken) noexcept;
  bool valid(uint64_t w) const noexcept {
    return (low(w) & ~kValidBits) == 0 && (recursive_ ? (w >> 32) == 0 : (w >> 32) <= kIdMask) && place_.header_ok();
  }
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
