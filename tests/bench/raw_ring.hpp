// raw_ring.hpp: the honest floor for a queue between two processes, written the way a good
// hand-written single-producer single-consumer ring is, and nothing more.
//
// A ring of bytes in MAP_SHARED memory. Two 64-bit counters that only grow (bytes written,
// bytes consumed), each on its own cache line, each side keeping a private copy of the other's
// counter and reloading it (acquire) only when its copy says full or empty. A record is an
// 8-byte length and the payload, padded to 8 bytes; a payload that crosses the end of the ring
// is copied in two parts, so any item up to the capacity minus 8 fits and nothing is wasted.
//
// Blocking as mpx's DESIGN.md asks of mpx: spin a bounded number of rounds, then sleep on a
// futex. The sleeper announces itself in a flag; the other side checks that flag after every
// publish (behind a full fence: a Dekker handshake), and makes a system call only when someone
// sleeps. One sleeper per side at most (single producer, single consumer), so a flag is enough.
// No timeouts, no close, no crash recovery: the floor, not a product.
#pragma once

#include <linux/futex.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>

namespace rawring {

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#endif
}

inline void futex_wait(std::atomic<uint32_t> *w, uint32_t expected) {
  // Shared futex (no FUTEX_PRIVATE_FLAG): the other side is another process.
  syscall(SYS_futex, reinterpret_cast<uint32_t *>(w), FUTEX_WAIT, expected, nullptr, nullptr, 0);
}

inline void futex_wake(std::atomic<uint32_t> *w) {
  syscall(SYS_futex, reinterpret_cast<uint32_t *>(w), FUTEX_WAKE, INT_MAX, nullptr, nullptr, 0);
}

// Pause instructions spent polling before sleeping: about 40 us here (a pause takes ~19 ns
// on this CPU), twice what a futex wake-up costs (16-24 us, BASELINES.md), so that a side that
// is briefly ahead does not put the other to sleep.
inline constexpr uint32_t kSpinPauses = 2048;

// One side's way to sleep until ready() holds: `seq` is bumped by the waker, so a wake that
// lands between the check and the sleep makes FUTEX_WAIT return at once.
struct Sleeper {
  alignas(64) std::atomic<uint32_t> seq{0};
  std::atomic<uint32_t> waiting{0};

  // Polls ready() every `pauses` pause instructions, then sleeps.
  template <typename Ready>
  void wait(Ready ready, uint32_t pauses) {
    for (uint32_t spent = 0; spent < kSpinPauses; spent += pauses) {
      if (ready()) return;
      for (uint32_t k = 0; k < pauses; ++k) cpu_relax();
    }
    for (;;) {
      const uint32_t s = seq.load(std::memory_order_acquire);
      waiting.store(1, std::memory_order_relaxed);
      std::atomic_thread_fence(std::memory_order_seq_cst);
      if (ready()) break;
      futex_wait(&seq, s);
    }
    waiting.store(0, std::memory_order_relaxed);
  }

  // Called after publishing: wakes the other side if it announced that it sleeps.
  void wake() {
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (waiting.load(std::memory_order_relaxed)) {
      seq.fetch_add(1, std::memory_order_release);
      futex_wake(&seq);
    }
  }
};

struct Shared {
  alignas(64) std::atomic<uint64_t> tail{0};  // bytes published by the producer
  alignas(64) std::atomic<uint64_t> head{0};  // bytes released by the consumer
  Sleeper consumer;                           // sleeps while empty
  Sleeper producer;                           // sleeps while full
  alignas(64) uint64_t capacity = 0;          // a power of two, >= 64
  uint32_t poll_pauses = 1;                   // pauses between two polls of a waiting side

  // The ring's bytes follow the header (whose size is a multiple of 64).
  unsigned char *data() { return reinterpret_cast<unsigned char *>(this + 1); }
};

inline size_t record_size(size_t len) { return 8 + ((len + 7) & ~size_t(7)); }

// Map a ring of `capacity` bytes (a power of two) shared with children forked afterwards.
// poll_pauses: how often a waiting side looks at the other's counter. 1 is the textbook loop
// (look, pause, look again); a larger value lets the other side run ahead and makes the
// consumer take items in batches (see README.md).
inline Shared *create(uint64_t capacity, uint32_t poll_pauses = 1) {
  void *p = mmap(nullptr, sizeof(Shared) + capacity, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return nullptr;
  Shared *s = new (p) Shared();
  s->capacity = capacity;
  s->poll_pauses = poll_pauses;
  std::memset(s->data(), 0, capacity);  // fault the pages in now, not in the timed region
  return s;
}

inline void destroy(Shared *s) { munmap(s, sizeof(Shared) + s->capacity); }

// The producer's side; lives in the producing process only.
class Producer {
 public:
  explicit Producer(Shared *s) : s_(s), mask_(s->capacity - 1), tail_(s->tail.load()), head_(s->head.load()) {}

  // Blocks while there is no room. Returns false if the item can never fit.
  bool put(const void *data, size_t len) {
    const uint64_t need = record_size(len);
    if (need > s_->capacity) return false;
    if (s_->capacity - (tail_ - head_) < need) {
      head_ = s_->head.load(std::memory_order_acquire);
      if (s_->capacity - (tail_ - head_) < need)
        s_->producer.wait([&] {
          head_ = s_->head.load(std::memory_order_acquire);
          return s_->capacity - (tail_ - head_) >= need;
        }, s_->poll_pauses);
    }
    const uint64_t at = tail_ & mask_;  // 8-aligned, so the length never straddles the end
    const uint64_t n = len;
    std::memcpy(s_->data() + at, &n, 8);
    copy_in(at + 8, data, len);
    tail_ += need;
    s_->tail.store(tail_, std::memory_order_release);
    s_->consumer.wake();
    return true;
  }

 private:
  void copy_in(uint64_t at, const void *src, size_t len) {
    at &= mask_;
    const size_t first = std::min<size_t>(len, s_->capacity - at);
    std::memcpy(s_->data() + at, src, first);
    if (first < len) std::memcpy(s_->data(), static_cast<const unsigned char *>(src) + first, len - first);
  }

  Shared *s_;
  uint64_t mask_;
  uint64_t tail_;  // ours
  uint64_t head_;  // the consumer's, as last seen
};

// The consumer's side; lives in the consuming process only.
class Consumer {
 public:
  explicit Consumer(Shared *s) : s_(s), mask_(s->capacity - 1), head_(s->head.load()), tail_(s->tail.load()) {}

  // Blocks while empty. *len receives the item's size; false (item left queued) if it does
  // not fit in cap bytes.
  bool get_into(void *buf, size_t cap, size_t *len) {
    if (tail_ == head_) {
      tail_ = s_->tail.load(std::memory_order_acquire);
      if (tail_ == head_)
        s_->consumer.wait([&] {
          tail_ = s_->tail.load(std::memory_order_acquire);
          return tail_ != head_;
        }, s_->poll_pauses);
    }
    const uint64_t at = head_ & mask_;
    uint64_t n;
    std::memcpy(&n, s_->data() + at, 8);
    *len = n;
    if (n > cap) return false;
    copy_out(at + 8, buf, n);
    head_ += record_size(n);
    s_->head.store(head_, std::memory_order_release);
    s_->producer.wake();
    return true;
  }

 private:
  void copy_out(uint64_t at, void *dst, size_t len) {
    at &= mask_;
    const size_t first = std::min<size_t>(len, s_->capacity - at);
    std::memcpy(dst, s_->data() + at, first);
    if (first < len) std::memcpy(static_cast<unsigned char *>(dst) + first, s_->data(), len - first);
  }

  Shared *s_;
  uint64_t mask_;
  uint64_t head_;  // ours
  uint64_t tail_;  // the producer's, as last seen
};

}  // namespace rawring
