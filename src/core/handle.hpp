// Generation-checked handles. A handle given to C callers is not a pointer: it encodes a
// table index, the object type and the slot's generation, so a destroyed, mistyped or
// invented handle is rejected without touching freed memory.
//
// Each call pins its object for its duration with a per-thread hazard slot (a plain store
// plus a compiler barrier; destroy pays for the ordering with membarrier). destroy() marks
// the slot dead, wakes blocked callers (they see closing() and return MPX_ECLOSED), waits
// until no thread has the object pinned, and only then frees it.
#pragma once

#include <atomic>
#include <cstdint>

#include "core/error.hpp"
#include "platform/process.hpp"

namespace mpx {

enum class HandleType : uint8_t { segment = 1, lock, semaphore, event, condition, barrier, array, process, connection, queue, pool, job, worker, listener, manager, mclient, proxy };

class Object {
 public:
  explicit Object(HandleType type) : type_(type) {}
  virtual ~Object() = default;
  Object(const Object &) = delete;
  Object &operator=(const Object &) = delete;

  HandleType type() const { return type_; }
  // Set by destroy before it waits: blocking calls return MPX_ECLOSED when they see it.
  bool closing() const { return closing_.load(std::memory_order_acquire); }
  // Wake this process's threads blocked on the object so they notice closing().
  virtual void wake_waiters() noexcept {}

  // Nonzero: the object belongs to that process; a forked child gets MPX_EFORKED.
  uint32_t bound_pid = 0;

 private:
  friend Status destroy_handle(const void *, HandleType) noexcept;
  HandleType type_;
  std::atomic<bool> closing_{false};
};

namespace detail {

struct Slot {
  std::atomic<uint64_t> state{0};  // generation << 1 | live
  std::atomic<Object *> obj{nullptr};
};

constexpr unsigned kChunkBits = 10;
constexpr uint32_t kChunkSize = 1u << kChunkBits;
constexpr uint32_t kMaxChunks = 4096;
constexpr uint32_t kMaxSlots = kChunkSize * kMaxChunks;
constexpr unsigned kMaxPins = 4;

extern std::atomic<Slot *> g_chunks[kMaxChunks];
extern bool g_asymmetric_fence;

struct ThreadRecord {
  std::atomic<uintptr_t> pins[kMaxPins];
  unsigned depth = 0;
  std::atomic<bool> in_use{false};
  ThreadRecord *next = nullptr;
};

// __thread, not thread_local: no TLS wrapper call on the hot path (it is constant-initialised).
extern __thread ThreadRecord *t_record __attribute__((tls_model("initial-exec")));
ThreadRecord *register_thread() noexcept;
// Out-of-line, cold failure paths of Pinned::pin.
[[gnu::cold]] Status bad_handle(const void *h, HandleType want) noexcept;
[[gnu::cold]] Status forked_handle(const void *h) noexcept;
[[gnu::cold]] Status null_handle() noexcept;
[[gnu::cold]] Status no_thread_record() noexcept;
[[gnu::cold]] Status too_deep() noexcept;

#if defined(__SANITIZE_THREAD__)
// ThreadSanitizer models neither fences nor membarrier: use seq_cst accesses instead
// (a store-load pair both sides of which are seq_cst is ordered by the C++ model).
constexpr std::memory_order kPinOrder = std::memory_order_seq_cst;
inline void light_fence() noexcept {}
#else
constexpr std::memory_order kPinOrder = std::memory_order_relaxed;
inline void light_fence() noexcept {
  if (g_asymmetric_fence)
    std::atomic_signal_fence(std::memory_order_seq_cst);
  else
    std::atomic_thread_fence(std::memory_order_seq_cst);
}
#endif

}  // namespace detail

// A call's pin on a live object. Pins nest (LIFO) up to detail::kMaxPins per thread.
template <typename T>
class Pinned {
 public:
  Pinned() = default;
  Pinned(const Pinned &) = delete;
  Pinned &operator=(const Pinned &) = delete;
  ~Pinned() {
    if (rec_) {
      rec_->pins[depth_].store(0, std::memory_order_release);
      rec_->depth = depth_;
    }
  }
  T *operator->() const { return obj_; }
  T &operator*() const { return *obj_; }
  T *get() const { return obj_; }

  // Pin the object behind `h`, which must be of type `type`.
  __attribute__((always_inline)) Status pin(const void *h, HandleType type) noexcept {
    using namespace detail;
    const auto v = reinterpret_cast<uintptr_t>(h);
    if (v == 0) [[unlikely]] return null_handle();
    const uint32_t index = uint32_t(v & 0xffffffu) - 1;
    const uint32_t gen = uint32_t(uint64_t(v) >> 32);
    if (uint8_t(v >> 24) != uint8_t(type) || index >= kMaxSlots) return bad_handle(h, type);
    Slot *chunk = g_chunks[index >> kChunkBits].load(std::memory_order_acquire);
    if (!chunk) return bad_handle(h, type);
    Slot &slot = chunk[index & (kChunkSize - 1)];
    const uint64_t live = (uint64_t(gen) << 1) | 1;
    if (slot.state.load(std::memory_order_acquire) != live) return bad_handle(h, type);
    ThreadRecord *r = t_record ? t_record : register_thread();
    if (!r) [[unlikely]] return no_thread_record();
    const unsigned d = r->depth;
    if (d >= kMaxPins) [[unlikely]] return too_deep();
    r->pins[d].store(v, kPinOrder);
    r->depth = d + 1;
    light_fence();
    if (slot.state.load(kPinOrder == std::memory_order_relaxed ? std::memory_order_acquire : kPinOrder) != live) {
      r->pins[d].store(0, std::memory_order_relaxed);
      r->depth = d;
      return bad_handle(h, type);
    }
    rec_ = r;
    depth_ = d;
    obj_ = static_cast<T *>(slot.obj.load(std::memory_order_acquire));
    if (obj_->bound_pid != 0 && obj_->bound_pid != platform::current_pid()) return forked_handle(h);
    return MPX_OK;
  }

 private:
  T *obj_ = nullptr;
  detail::ThreadRecord *rec_ = nullptr;
  unsigned depth_ = 0;
};

// Register an object (ownership passes to the table, also on failure) and return its handle.
Status insert_handle(Object *obj, void **out) noexcept;

// Close a handle: MPX_EBADHANDLE if it is not live (a double destroy included).
Status destroy_handle(const void *h, HandleType type) noexcept;

}  // namespace mpx
