// The queue object: creation, validation, waiting and waking, and the calls that only read
// counters (qsize, closed), close, and the JoinableQueue's task_done/join.
#include "queue/queue.hpp"
#include "queue/pause.hpp"

#include <cstdlib>
#include <cstring>

#include "mpx/queue.h"
#include "platform/process.hpp"

namespace mpx {

using namespace queue;

namespace queue {

void (*g_crash_hook)(CrashPoint) = nullptr;

Status Sink::prepare(uint64_t n) noexcept {
  needed_ = n;
  if (!allocate_) {
    if (n > cap_) return fail(MPX_ENOBUFS, "buffer of {} bytes is too small for an item of {} bytes", cap_, n);
    return MPX_OK;
  }
  discard();
  if (n > uint64_t(PTRDIFF_MAX) || !(owned_ = static_cast<uint8_t *>(std::malloc(n ? size_t(n) : 1))))
    return fail(MPX_ENOMEM, "out of memory for an item of {} bytes", n);
  return MPX_OK;
}

void Sink::discard() noexcept {
  std::free(owned_);
  owned_ = nullptr;
}

int64_t Timeout::remaining_ms() const noexcept {
  if (ms_ <= 0 || deadline_ == platform::kForever) return ms_ <= 0 ? ms_ : MPX_INFINITE;
  const int64_t left = deadline_ - platform::monotonic_ns();
  return left <= 0 ? 0 : (left + 999999) / 1000000;
}

}  // namespace queue

Status QueueObject::create(const Options &o, QueueObject *out) {
  if (o.flags & ~uint32_t(MPX_QUEUE_JOINABLE)) return fail(MPX_EINVAL, "unknown queue flags {:#x}", o.flags);
  uint64_t cap = o.capacity ? o.capacity : kDefaultCapacity;
  if (cap > kMaxCapacity) return fail(MPX_EINVAL, "queue capacity {} exceeds the maximum of {} bytes", cap, kMaxCapacity);
  if (cap < kMinCapacity) cap = kMinCapacity;
  cap = uint64_t(1) << (64 - __builtin_clzll(cap - 1));  // the next power of two
  Placement p;
  if (Status s = Placement::allocate(ObjType::queue, kRingOffset + cap, &p); s != MPX_OK) return s;
  auto *c = p.body<Config>();
  c->capacity = cap;
  c->maxsize = o.maxsize;
  c->max_message = o.max_message;
  c->flags = o.flags;
  c->layout = kLayout;
  // Positions start one lap in: zeroed memory never looks like a record written for one.
  auto *l = reinterpret_cast<Lines *>(p.body<uint8_t>() + kLinesOffset);
  l->tail.tail.store(cap, std::memory_order_relaxed);
  l->consumer.head.store(cap, std::memory_order_relaxed);
  l->free.free.store(cap, std::memory_order_relaxed);
  p.publish();
  return open(std::move(p), out);
}

Status QueueObject::open(Placement place, QueueObject *out) {
  if (place.body_size() < kRingOffset) return fail(MPX_ECORRUPT, "queue object of {} bytes is too small", place.body_size());
  Config c;
  std::memcpy(&c, place.body<Config>(), sizeof c);
  if (c.layout != kLayout || c.capacity < kMinCapacity || c.capacity > kMaxCapacity ||
      (c.capacity & (c.capacity - 1)) != 0 || place.body_size() - kRingOffset < c.capacity ||
      (c.flags & ~uint32_t(MPX_QUEUE_JOINABLE)) != 0)
    return fail(MPX_ECORRUPT, "queue configuration is invalid (layout {}, capacity {}, flags {:#x})", c.layout,
                c.capacity, c.flags);
  out->l_ = reinterpret_cast<Lines *>(place.body<uint8_t>() + kLinesOffset);
  out->ring_ = place.body<uint8_t>() + kRingOffset;
  out->cap_ = c.capacity;
  out->mask_ = c.capacity - 1;
  out->maxsize_ = c.maxsize;
  out->max_message_ = c.max_message ? c.max_message : UINT64_MAX;
  // The largest record is a quarter of the ring, so that one always fits once the ring
  // drains, even behind the padding that skips to the next lap.
  out->chunk_ = c.capacity / 4 - kRecordHeader;
  out->joinable_ = (c.flags & MPX_QUEUE_JOINABLE) != 0;
  if (Status s = SharedLock::open_embedded(place, &out->l_->producer.lock, &out->plock_); s != MPX_OK) return s;
  if (Status s = SharedLock::open_embedded(place, &out->l_->consumer.lock, &out->clock_); s != MPX_OK) return s;
  out->plock_.set_owner(out);
  out->clock_.set_owner(out);
  out->place_ = std::move(place);
  if (Status s = out->check_indices(); s != MPX_OK) return s;
  out->seen_free_ = out->l_->free.free.load(std::memory_order_acquire);
  out->seen_tail_ = out->l_->tail.tail.load(std::memory_order_acquire);
  out->seen_got_ = out->l_->consumer.items_got.load(std::memory_order_acquire);
  return MPX_OK;
}

Status QueueObject::check_indices() const noexcept {
  // Read so that concurrent progress cannot fake a violation: tail before free (tail <=
  // free + capacity), free before head (free <= head), head before tail again.
  const uint64_t t1 = l_->tail.tail.load(std::memory_order_acquire);
  const uint64_t f = l_->free.free.load(std::memory_order_acquire);
  const uint64_t h = l_->consumer.head.load(std::memory_order_acquire);
  const uint64_t t2 = l_->tail.tail.load(std::memory_order_acquire);
  const uint64_t got = l_->consumer.items_got.load(std::memory_order_acquire);
  const uint64_t put = l_->producer.items_put.load(std::memory_order_acquire);
  const uint32_t closed = l_->status.closed.load(std::memory_order_relaxed);
  if (!place_.header_ok() || (f | h | t1 | t2) % kAlign != 0 || f > h || h > t2 || t1 - f > cap_ || got > put ||
      closed > 1)
    return place_.corrupt();
  return MPX_OK;
}

uint32_t QueueObject::peek_state(const Record *r) noexcept { return r->state.load(std::memory_order_seq_cst); }

bool QueueObject::read_record(uint64_t pos, uint64_t limit, View *v) const noexcept {
  Record *r = at(pos);
  v->r = r;
  v->kind = r->kind.load(std::memory_order_relaxed);
  v->length = r->length.load(std::memory_order_relaxed);
  v->ordinal = r->ordinal.load(std::memory_order_relaxed);
  if (r->position.load(std::memory_order_relaxed) != pos) return false;
  switch (v->kind) {
    case kWhole:
      if (v->length > chunk_) return false;
      break;
    case kFirst:
      if (v->length <= chunk_ || v->length > max_message_ || v->length > uint64_t(PTRDIFF_MAX)) return false;
      break;
    case kMiddle:
      if (v->length != chunk_) return false;
      break;
    case kLast:
      if (v->length == 0 || v->length > chunk_) return false;
      break;
    case kPad:
      if (v->length != cap_ - (pos & mask_)) return false;  // always runs to the end of the lap
      break;
    default:
      return false;
  }
  v->bytes = record_bytes(v->kind, v->length);
  return (pos & mask_) + v->bytes <= cap_ && v->bytes <= limit - pos;
}

Status QueueObject::closed_error(const char *what) const noexcept {
  if (closing()) return fail(MPX_ECLOSED, "queue handle was destroyed while {}", what);
  if (l_->status.closed.load(std::memory_order_relaxed) > 1) return place_.corrupt();  // not a flag
  return fail(MPX_ECLOSED, "queue is closed ({})", what);
}

Status QueueObject::lock(SharedLock &lk, const Timeout &t, bool producer) noexcept {
  const Status s = lk.acquire(t.remaining_ms());
  if (s == MPX_OK) [[likely]]
    return MPX_OK;
  if (s == MPX_EOWNERDEAD) {
    const Status r = producer ? repair_producer() : repair_consumer();
    if (r != MPX_OK) {
      lk.release();  // leaves the lock unrecoverable: the state is corrupt anyway
      return r;
    }
    return lk.consistent();
  }
  if (s == MPX_ETIMEDOUT)
    return fail(MPX_ETIMEDOUT, "queue {} timed out after {} ms", producer ? "put" : "get", t.ms());
  return s;
}

// The sleepers count holds those who announced a sleep and were not woken yet: the waker
// takes off the count those it wakes (sleep() does not, then). Woken nobody, yet some count:
// nobody was asleep, so the count is of processes that died asleep, or of ones about to see
// the change and not sleep (they announced before we changed what they wait for, so they
// saw the change, or they will find seq bumped). Take one back if nothing moved while we
// looked; else a dead sleeper would cost every later put or get a system call.
void QueueObject::wake(Wait &w, int n, bool always) noexcept {
  const uint32_t seen = w.sleepers.load(std::memory_order_seq_cst);
  if (!always && (seen & Wait::kCount) == 0) return;
  w.seq.fetch_add(1, std::memory_order_seq_cst);
  if (const int woken = platform::wake(&w.seq, n); woken > 0) {
    w.leave(uint32_t(woken));
  } else if ((seen & Wait::kCount) != 0) {
    uint32_t expected = seen;
    w.sleepers.compare_exchange_strong(expected, seen - 1, std::memory_order_seq_cst);
  }
}

void QueueObject::wake_waiters() noexcept {
  for (Wait *w : {&l_->wait.not_empty, &l_->wait.chunk, &l_->wait.slot, &l_->wait.room, &l_->wait.joined})
    wake(*w, INT32_MAX, true);
  plock_.wake_all();
  clock_.wake_all();
}

bool QueueObject::owner_alive(uint32_t pid, uint32_t tid) noexcept {
  return platform::thread_alive(tid) && (pid == tid || platform::process_alive(pid));
}

// Move free over the DONE records (and padding) behind head. Whoever marks a record DONE
// calls this; the DONE store and the free CAS are seq_cst on both sides, so of two consumers
// finishing neighbouring records at once, at least one sees the other's and moves free on.
void QueueObject::advance_free() noexcept {
  uint64_t f = l_->free.free.load(std::memory_order_seq_cst);
  for (;;) {
    const uint64_t h = l_->consumer.head.load(std::memory_order_acquire);
    if (f >= h) return;
    Record *r = at(f);
    View v;
    const uint32_t state = peek_state(r);
    if (state != kDone || !read_record(f, h, &v)) {
      // Not finished yet, or we read a record that someone already freed and a producer is
      // overwriting: look again only if free has moved.
      const uint64_t now = l_->free.free.load(std::memory_order_seq_cst);
      if (now == f) return;
      f = now;
      continue;
    }
    tsan_acquire(r);
    if (l_->free.free.compare_exchange_strong(f, f + v.bytes, std::memory_order_seq_cst)) f += v.bytes;
  }
}

Status QueueObject::qsize(uint64_t *count) noexcept {
  // got first: items_put only grows, so put >= got unless the state is corrupt.
  const uint64_t got = l_->consumer.items_got.load(std::memory_order_acquire);
  const uint64_t put = l_->producer.items_put.load(std::memory_order_acquire);
  if (!place_.header_ok() || got > put || put - got > cap_ / kAlign) return place_.corrupt();
  *count = put - got;
  return MPX_OK;
}

Status QueueObject::close() noexcept {
  if (!place_.header_ok()) return place_.corrupt();
  const uint32_t was = l_->status.closed.exchange(1, std::memory_order_seq_cst);
  if (was > 1) return place_.corrupt();
  if (was == 0) {
    for (Wait *w : {&l_->wait.not_empty, &l_->wait.chunk, &l_->wait.slot, &l_->wait.room, &l_->wait.joined})
      wake(*w, INT32_MAX, true);
  }
  return MPX_OK;
}

Status QueueObject::closed(int *out) noexcept {
  const uint32_t c = l_->status.closed.load(std::memory_order_acquire);
  if (!place_.header_ok() || c > 1) return place_.corrupt();
  *out = int(c);
  return MPX_OK;
}

// ---- JoinableQueue -------------------------------------------------------------------------
// unfinished = items put - task_done calls - items abandoned (never delivered, so never to be
// marked done). Each term only grows, and items_put is written by producers alone.

namespace {
[[gnu::cold]] Status not_joinable() { return fail(MPX_EINVAL, "queue was not created with MPX_QUEUE_JOINABLE"); }
}  // namespace

Status QueueObject::unfinished(uint64_t *count) noexcept {
  if (!joinable_) return not_joinable();
  if (!place_.header_ok()) return place_.corrupt();
  const uint64_t done = l_->status.tasks_done.load(std::memory_order_seq_cst);
  const uint64_t dropped = l_->status.abandoned.load(std::memory_order_seq_cst);
  const uint64_t put = l_->producer.items_put.load(std::memory_order_seq_cst);
  *count = put > done + dropped ? put - done - dropped : 0;
  return MPX_OK;
}

void QueueObject::count_abandoned() noexcept {
  l_->status.abandoned.fetch_add(1, std::memory_order_seq_cst);
  if (joinable_) wake_join_if_done();
}

void QueueObject::wake_join_if_done() noexcept {
  uint64_t n = 0;
  if (unfinished(&n) == MPX_OK && n == 0) wake(l_->wait.joined, INT32_MAX);
}

Status QueueObject::task_done() noexcept {
  if (!joinable_) return not_joinable();
  if (!place_.header_ok()) return place_.corrupt();
  uint64_t done = l_->status.tasks_done.load(std::memory_order_seq_cst);
  for (;;) {
    const uint64_t dropped = l_->status.abandoned.load(std::memory_order_seq_cst);
    const uint64_t put = l_->producer.items_put.load(std::memory_order_seq_cst);
    if (done + dropped >= put)
      return fail(MPX_EOVERFLOW, "task_done() called more times than there were items placed in the queue");
    if (l_->status.tasks_done.compare_exchange_weak(done, done + 1, std::memory_order_seq_cst)) break;
  }
  wake_join_if_done();
  return MPX_OK;
}

Status QueueObject::join(int64_t timeout_ms) noexcept {
  if (!joinable_) return not_joinable();
  const Timeout t(timeout_ms);
  int round = 0;
  for (;;) {
    uint64_t n = 0;
    if (Status s = unfinished(&n); s != MPX_OK) return s;
    if (n == 0) return MPX_OK;
    if (closing() || closed_now()) return closed_error("joining");
    if (t.expired(platform::monotonic_ns()))
      return fail(MPX_ETIMEDOUT, "queue join timed out after {} ms with {} items unfinished", timeout_ms, n);
    pause(l_->wait.joined, &round, t.deadline(), [&] {
      uint64_t m = 1;
      return unfinished(&m) != MPX_OK || m == 0 || closed_now();
    });
  }
}

}  // namespace mpx
