// Queue, SimpleQueue and JoinableQueue in shared memory (layout.hpp describes the ring).
//
// put: under the producer lock, wait for room and for the item count to allow one more,
// write the record's header and move tail; then copy the payload in with no lock held and
// commit. get: under the consumer lock, wait for the record at head to be committed, mark
// it READING and move head; then copy the payload out with no lock held, mark it DONE and
// move free over every DONE record. Small items are copied with the locks held instead (no
// WRITING or READING state). Items too large for one record are streamed in chunks by a
// producer holding its lock throughout, to a consumer holding its lock throughout.
//
// Waiting: a put or get waits for space or an item with its lock released, like the others
// (the get reassembling a stream, and the put streaming, keep theirs), spinning a moment and
// then sleeping on a futex; one sleeper is woken per item put or taken (layout.hpp, WaitLines).
//
// Crashes: a record WRITING whose writer is dead is skipped, never delivered; a record
// READING whose reader is dead is freed, never delivered twice; a lock whose holder died
// comes back as MPX_EOWNERDEAD to the next taker, which repairs the indices from what the
// records say (put.cpp, get.cpp) before going on. Anything read from shared memory is
// checked before use; what cannot be right is MPX_ECORRUPT.
#pragma once

#include <atomic>
#include <cstdint>

#include "core/handle.hpp"
#include "platform/wait.hpp"
#include "queue/layout.hpp"
#include "shm/object.hpp"
#include "sync/lock.hpp"

// Reads of a record that another get may be freeing, and a put overwriting, at that moment
// (advance_free looks at records behind head without a lock): every value read is checked,
// and the read discarded when free has moved meanwhile. ThreadSanitizer cannot know that the
// race is benign, so it does not watch these reads.
// Unwatched, peek_state's load would also hide from ThreadSanitizer the synchronisation it
// makes: whoever moves free over a DONE record has acquired what the record's finisher did
// (its copy out), and passes it on to the producer that reuses the space. tsan_release before
// each store of DONE and tsan_acquire where a peeked DONE is acted on name it.
#if defined(__SANITIZE_THREAD__)
#include <sanitizer/tsan_interface.h>
#define MPX_TSAN_BENIGN __attribute__((no_sanitize("thread")))
inline void tsan_release(const void *p) noexcept { __tsan_release(const_cast<void *>(p)); }
inline void tsan_acquire(const void *p) noexcept { __tsan_acquire(const_cast<void *>(p)); }
#else
#define MPX_TSAN_BENIGN
inline void tsan_release(const void *) noexcept {}
inline void tsan_acquire(const void *) noexcept {}
#endif

namespace mpx {

namespace queue {

// Where get delivers an item: the caller's buffer, or memory allocated for it (mpx_free).
class Sink {
 public:
  static Sink into(void *buf, size_t cap) { return Sink(static_cast<uint8_t *>(buf), cap, false); }
  static Sink allocated() { return Sink(nullptr, 0, true); }
  Sink(const Sink &) = delete;
  Sink &operator=(const Sink &) = delete;
  Sink(Sink &&o) noexcept : buf_(o.buf_), cap_(o.cap_), allocate_(o.allocate_), owned_(o.owned_), needed_(o.needed_) {
    o.owned_ = nullptr;
  }
  ~Sink() { discard(); }

  // Room for n bytes, before the item is taken: MPX_ENOBUFS (needed() = n) or MPX_ENOMEM.
  Status prepare(uint64_t n) noexcept;
  uint8_t *data() const { return allocate_ ? owned_ : buf_; }
  uint64_t needed() const { return needed_; }
  // The item was delivered: the caller owns the allocation now.
  void *release() noexcept {
    void *p = owned_;
    owned_ = nullptr;
    return p;
  }
  // The item was abandoned midway: drop what prepare allocated.
  void discard() noexcept;

 private:
  Sink(uint8_t *buf, size_t cap, bool allocate) : buf_(buf), cap_(cap), allocate_(allocate) {}
  uint8_t *buf_;
  size_t cap_;
  bool allocate_;
  uint8_t *owned_ = nullptr;
  uint64_t needed_ = 0;
};

// Test-only crash injection: an internal test sets the hook (e.g. to raise SIGKILL at one
// point) to kill a process at a precise moment. Null in production: one predictable branch.
enum class CrashPoint {
  producer_header,     // header written beyond tail, item not counted, tail not moved
  producer_counted,    // item counted, tail not moved
  producer_reserved,   // tail moved, producer lock still held
  producer_copying,    // lock released, payload not committed
  producer_streaming,  // a chunk committed, more to come, producer lock held
  consumer_counted,    // item counted as taken, record not marked
  consumer_marked,     // record READING, head not moved
  consumer_claimed,    // head moved, consumer lock still held
  consumer_copying,    // lock released, record still READING
  consumer_streaming,  // a chunk taken, more to come, consumer lock held
  consumer_abandoning,  // dropping a dead writer's item: marked, not counted as abandoned
  consumer_abandoned,   // the same, counted as abandoned, record not skipped
};
extern void (*g_crash_hook)(CrashPoint);
inline void crash_point(CrashPoint p) noexcept {
  if (g_crash_hook) [[unlikely]]
    g_crash_hook(p);
}

// A timeout in milliseconds as a monotonic deadline (negative: forever; 0: try once).
class Timeout {
 public:
  explicit Timeout(int64_t ms) noexcept
      : ms_(ms), deadline_(ms < 0 ? platform::kForever : ms == 0 ? 0 : platform::deadline_after_ms(ms)) {}
  int64_t ms() const { return ms_; }
  platform::Deadline deadline() const { return deadline_; }
  bool expired(int64_t now) const { return ms_ == 0 || now >= deadline_; }
  // What is left, rounded up, for calls that take milliseconds.
  int64_t remaining_ms() const noexcept;

 private:
  int64_t ms_;
  platform::Deadline deadline_;
};

struct Options {
  uint32_t flags = 0;
  uint64_t maxsize = 0;
  uint64_t capacity = 0;
  uint64_t max_message = 0;
};

}  // namespace queue

class QueueObject final : public Object {
 public:
  QueueObject() : Object(HandleType::queue) {}
  static Status create(const queue::Options &opts, QueueObject *out);
  static Status open(Placement place, QueueObject *out);
  void wake_waiters() noexcept override;

  Status put(const void *data, size_t len, int64_t timeout_ms) noexcept;
  Status get(queue::Sink &sink, uint64_t *len, int64_t timeout_ms) noexcept;
  Status qsize(uint64_t *count) noexcept;
  Status close() noexcept;
  Status closed(int *out) noexcept;
  Status task_done() noexcept;
  Status join(int64_t timeout_ms) noexcept;
  Status unfinished(uint64_t *count) noexcept;

  // For the pool: fn(ctx, ordinal) runs under the consumer lock just before this object's
  // get counts an item as taken, so a taker that dies right after leaves word of what it took.
  void set_take_hook(void (*fn)(void *, uint64_t), void *ctx) noexcept {
    take_hook_ = fn;
    take_ctx_ = ctx;
  }
  // The consumer lock (repairing after a dead holder) for a caller that must see the taken
  // count still: items_got() then says whether an item has been taken (or skipped).
  Status lock_consumer() noexcept { return lock(clock_, queue::Timeout(-1), false); }
  void unlock_consumer() noexcept { clock_.release(); }
  uint64_t items_got() const noexcept { return l_->consumer.items_got.load(std::memory_order_acquire); }
  // The ordinal of the last item put (a sole producer knows its next item's: this plus one).
  uint64_t items_put() const noexcept { return l_->producer.items_put.load(std::memory_order_acquire); }

  uint64_t maxsize() const { return maxsize_; }
  uint64_t capacity() const { return cap_; }
  bool joinable() const { return joinable_; }
  const Placement &placement() const { return place_; }

 private:
  // The record being reassembled by a get that took a FIRST.
  struct Stream {
    bool active = false;
    uint64_t first = 0;   // position of its FIRST
    uint64_t total = 0;   // the item's bytes
    uint64_t offset = 0;  // bytes received
    uint32_t pid = 0, tid = 0;  // its producer
  };
  // A validated record header.
  struct View {
    queue::Record *r;
    uint32_t kind;
    uint64_t length, ordinal, bytes;
  };

  // queue.cpp
  queue::Record *at(uint64_t pos) const { return reinterpret_cast<queue::Record *>(ring_ + (pos & mask_)); }
  static uint8_t *payload(queue::Record *r) { return reinterpret_cast<uint8_t *>(r) + queue::kRecordHeader; }
  uint64_t record_bytes(uint32_t kind, uint64_t length) const {
    return kind == queue::kPad ? length : queue::align_up(queue::kRecordHeader + (kind == queue::kFirst ? chunk_ : length));
  }
  MPX_TSAN_BENIGN bool read_record(uint64_t pos, uint64_t limit, View *v) const noexcept;
  MPX_TSAN_BENIGN static uint32_t peek_state(const queue::Record *r) noexcept;
  Status check_indices() const noexcept;
  bool closed_now() const noexcept { return l_->status.closed.load(std::memory_order_seq_cst) != 0; }
  Status closed_error(const char *what) const noexcept;
  Status lock(SharedLock &lock, const queue::Timeout &t, bool producer) noexcept;
  void wake(queue::Wait &w, int n, bool always = false) noexcept;
  void wake_producers(uint64_t ordinal) noexcept;
  void more_slots() noexcept;
  template <typename Ready>
  void pause(queue::Wait &w, int *round, platform::Deadline until, Ready &&ready) noexcept;
  template <typename Ready, typename Unlock>
  void sleep(queue::Wait &w, platform::Deadline until, Ready &&ready, Unlock &&unlock) noexcept;
  void advance_free() noexcept;
  void count_abandoned() noexcept;
  void wake_join_if_done() noexcept;
  static bool owner_alive(uint32_t pid, uint32_t tid) noexcept;

  // put.cpp
  Status reserve(uint32_t kind, uint64_t length, const uint8_t *data, const queue::Timeout &t, queue::Record **out,
                 uint64_t *start, bool *held) noexcept;
  void write_header(uint64_t tail, uint32_t kind, uint64_t length, const uint8_t *data, queue::Record **out) noexcept;
  void published(uint64_t start) noexcept;
  Status put_stream(const uint8_t *data, uint64_t len, const queue::Timeout &t) noexcept;
  void abort_stream() noexcept;
  Status recover_reader() noexcept;
  Status repair_producer() noexcept;

  // get.cpp
  Status take(queue::Sink &sink, uint64_t *len, const queue::Timeout &t) noexcept;
  Status take_small(uint64_t head, const View &v, queue::Sink &sink, uint64_t *len) noexcept;
  void count_taken(uint64_t ordinal) noexcept;
  void claim(uint64_t head, const View &v) noexcept;
  void finish(const View &v) noexcept;
  void taken() noexcept;
  void skip(uint64_t head, const View &v, uint32_t from_state) noexcept;
  void drop_stream(Stream *st, queue::Sink &sink) noexcept;
  Status repair_consumer() noexcept;
  Status free_abandoned_small() noexcept;

  Placement place_;
  queue::Lines *l_ = nullptr;
  uint8_t *ring_ = nullptr;
  uint64_t cap_ = 0, mask_ = 0, maxsize_ = 0, max_message_ = 0, chunk_ = 0;
  bool joinable_ = false;
  SharedLock plock_, clock_;
  // Lower bounds of the other side's indices, re-read only when they no longer suffice.
  // Each is touched only by the holder of the matching lock.
  uint64_t seen_free_ = 0, seen_got_ = 0;  // producer side
  uint64_t seen_tail_ = 0;                 // consumer side
  bool few_ = false;  // the consumer's last look at tail found little (see take())
  void (*take_hook_)(void *, uint64_t) = nullptr;
  void *take_ctx_ = nullptr;
};

}  // namespace mpx
