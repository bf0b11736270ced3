// The producer side: reserve under the producer lock, copy in, commit; items streamed in
// chunks; space held by dead readers taken back; the repair after a producer died holding
// the lock.
#include <cstring>

#include "platform/process.hpp"
#include "queue/pause.hpp"

namespace mpx {

using namespace queue;

namespace {
// Prefetch never faults, so a line past the ring's end is harmless.
inline void prefetch_for_write(const void *p) {
#if defined(__x86_64__)
  asm volatile("prefetchw %0" ::"m"(*static_cast<const char *>(p)));
#else
  __builtin_prefetch(p, 1);
#endif
}

// A reader stuck in the record at free: look at its liveness after this long, then this often.
constexpr int64_t kFirstCheckNs = 10'000'000;
constexpr int64_t kCheckEveryNs = 50'000'000;
}  // namespace

Status QueueObject::put(const void *data, size_t len, int64_t timeout_ms) noexcept {
  if (!place_.header_ok()) return place_.corrupt();
  if (len > max_message_)
    return fail(MPX_EMSGSIZE, "item of {} bytes exceeds the queue's max_message of {} bytes", len, max_message_);
  if (closed_now()) return closed_error("put");
  const Timeout t(timeout_ms);
  if (Status s = lock(plock_, t, true); s != MPX_OK) return s;
  const auto *src = static_cast<const uint8_t *>(data);
  if (len > chunk_) return put_stream(src, len, t);
  const bool small = len <= kInlineBytes;
  static constexpr uint8_t kNothing = 0;  // a 0-byte item may come with data == NULL
  Record *r = nullptr;
  uint64_t start = 0;
  bool held = true;
  const Status s = reserve(kWhole, len, small ? (len ? src : &kNothing) : nullptr, t, &r, &start, &held);
  if (s != MPX_OK) {
    if (held) plock_.release();
    return s;
  }
  crash_point(CrashPoint::producer_reserved);
  const Status unlocked = plock_.release();
  if (maxsize_) more_slots();
  if (!small) {
    std::memcpy(payload(r), src, len);
    crash_point(CrashPoint::producer_copying);
    r->state.store(kCommitted, std::memory_order_seq_cst);
  }
  published(start);
  return unlocked;
}

// We took a slot that a get freed (and woke us for, perhaps): if more are free and puts
// sleep, wake one of them (see wake_producers, get.cpp).
void QueueObject::more_slots() noexcept {
  Wait &w = l_->wait.slot;
  if (w.anyone() &&
      l_->producer.items_put.load(std::memory_order_seq_cst) - l_->consumer.items_got.load(std::memory_order_seq_cst) <
          maxsize_)
    wake(w, 1);
}

// An item was published in the reservation at `start`. If gets have taken everything before
// it, it may be what a sleeping get waits for: wake one. If not, whoever takes the item
// before it will see it and wake one (taken(), in get.cpp). The publishing store and the
// loads here are seq_cst; the get moves head, then makes seq_cst read-modify-writes (free,
// its lock) before it looks at tail: of the two, at least one sees the other.
void QueueObject::published(uint64_t start) noexcept {
  Wait &w = l_->wait.not_empty;
  if (w.anyone() && l_->consumer.head.load(std::memory_order_seq_cst) >= start) {
    wake(w, 1);
  }
}

// Wait until the record fits below free + capacity and, for an item, the count allows one
// more; then write the record (its payload too, committed, when `data` is not null) and move
// tail. Entered with the producer lock held; returns with it held (*held) unless re-taking
// it after a wait failed. An item waits with the lock released, like the other puts; a
// stream under way (MIDDLE, LAST) keeps it.
Status QueueObject::reserve(uint32_t kind, uint64_t length, const uint8_t *data, const Timeout &t, Record **out,
                            uint64_t *start, bool *held) noexcept {
  const uint64_t bytes = record_bytes(kind, length);
  const bool item = kind == kWhole || kind == kFirst;
  int round = 0;
  int64_t next_check = 0;
  auto leave = [&](Status s) {
    // We may have been woken for a slot we are not using: hand the wake-up on.
    if (*held && item && maxsize_ && s != MPX_ECORRUPT &&
        l_->producer.items_put.load(std::memory_order_relaxed) - seen_got_ < maxsize_)
      wake(l_->wait.slot, 1);
    return s;
  };
  for (;;) {
    if (!*held) {
      if (Status s = lock(plock_, t, true); s != MPX_OK) return s;
      *held = true;
    }
    const uint64_t tail = l_->tail.tail.load(std::memory_order_relaxed);
    const uint64_t put = l_->producer.items_put.load(std::memory_order_relaxed);
    if (tail % kAlign != 0 || tail < seen_free_ || put < seen_got_ || !place_.header_ok()) return place_.corrupt();
    // A put that waited while the queue was closed fails; a stream under way finishes
    // unless it has to wait.
    if (item && closed_now()) return leave(closed_error("put"));
    const uint64_t off = tail & mask_;
    const uint64_t need = (off + bytes > cap_ ? cap_ - off : 0) + bytes;
    if (tail + need - seen_free_ > cap_) {
      seen_free_ = l_->free.free.load(std::memory_order_seq_cst);
      if (seen_free_ > tail || tail - seen_free_ > cap_ || seen_free_ % kAlign != 0) return place_.corrupt();
    }
    const bool room = tail + need - seen_free_ <= cap_;
    bool count = !item || maxsize_ == 0 || put - seen_got_ < maxsize_;
    if (!count) {
      seen_got_ = l_->consumer.items_got.load(std::memory_order_seq_cst);
      if (seen_got_ > put) return place_.corrupt();
      count = put - seen_got_ < maxsize_;
    }
    if (room && count) {
      *start = tail;
      write_header(tail, kind, length, data, out);
      return MPX_OK;
    }

    if (closing() || closed_now()) return leave(closed_error("put"));
    if (t.ms() == 0) return leave(fail(MPX_ETIMEDOUT, "queue is full"));
    const int64_t now = platform::monotonic_ns();
    if (t.expired(now)) return leave(fail(MPX_ETIMEDOUT, "queue put timed out after {} ms (the queue is full)", t.ms()));
    platform::Deadline until = t.deadline();
    if (!room) {
      // free may be held back by a reader that died while copying out.
      if (next_check == 0) {
        next_check = now + kFirstCheckNs;
      } else if (now >= next_check) {
        if (Status s = recover_reader(); s != MPX_OK) return s;
        next_check = now + kCheckEveryNs;
      }
      if (next_check < until) until = next_check;
    }
    if (item) {
      plock_.release();
      *held = false;
    }
    pause(room ? l_->wait.slot : l_->wait.room, &round, until, [&] {
      if (closed_now()) return true;
      const uint64_t tl = l_->tail.tail.load(std::memory_order_seq_cst);
      const uint64_t f = l_->free.free.load(std::memory_order_seq_cst);
      if (f > tl || tl + need - f > cap_) return false;
      return !item || maxsize_ == 0 ||
             l_->producer.items_put.load(std::memory_order_seq_cst) -
                     l_->consumer.items_got.load(std::memory_order_seq_cst) <
                 maxsize_;
    });
  }
}

// The order of the stores is what repair_producer relies on: payload (if given), header, then
// the item count (release: after them), then tail (consumers read the record after it).
void QueueObject::write_header(uint64_t tail, uint32_t kind, uint64_t length, const uint8_t *data,
                               Record **out) noexcept {
  uint64_t p = tail;
  const uint64_t bytes = record_bytes(kind, length);
  if ((p & mask_) + bytes > cap_) {
    Record *pad = at(p);
    const uint64_t rest = cap_ - (p & mask_);
    pad->kind.store(kPad, std::memory_order_relaxed);
    pad->pid.store(0, std::memory_order_relaxed);
    pad->tid.store(0, std::memory_order_relaxed);
    pad->position.store(p, std::memory_order_relaxed);
    pad->length.store(rest, std::memory_order_relaxed);
    pad->ordinal.store(0, std::memory_order_relaxed);
    tsan_release(pad);
    pad->state.store(kDone, std::memory_order_release);
    p += rest;
  }
  const bool item = kind == kWhole || kind == kFirst;
  const uint64_t ordinal = l_->producer.items_put.load(std::memory_order_relaxed) + (item ? 1 : 0);
  Record *r = at(p);
  if (data && length) std::memcpy(payload(r), data, length);
  r->kind.store(kind, std::memory_order_relaxed);
  r->pid.store(platform::current_pid(), std::memory_order_relaxed);
  r->tid.store(platform::current_tid(), std::memory_order_relaxed);
  r->position.store(p, std::memory_order_relaxed);
  r->length.store(length, std::memory_order_relaxed);
  r->ordinal.store(ordinal, std::memory_order_relaxed);
  // State last (release): whoever reads this state sees this record's position, not the stale
  // one of the record an earlier lap left here (free_abandoned_small relies on it).
  r->state.store(data ? kCommitted : kWriting, std::memory_order_release);
  crash_point(CrashPoint::producer_header);
  if (item) l_->producer.items_put.store(ordinal, std::memory_order_release);
  if (kind == kFirst) l_->producer.open_stream.store(p, std::memory_order_release);
  crash_point(CrashPoint::producer_counted);
  // A committed record is published by this store: seq_cst, against a consumer going to sleep.
  l_->tail.tail.store(p + bytes, data ? std::memory_order_seq_cst : std::memory_order_release);
  *out = r;
  // The next put writes here: ask for the lines (if free) now, while we return and it
  // begins, rather than have its locked instructions wait for them (~35% more small items
  // per second between two CPUs).
  if (p + bytes + 2 * kAlign <= seen_free_ + cap_) {
    prefetch_for_write(at(p + bytes));
    prefetch_for_write(reinterpret_cast<uint8_t *>(at(p + bytes)) + kAlign);
  }
}

// An item larger than a record: FIRST, MIDDLE..., LAST, with the producer lock held
// throughout so that no other record comes between. The timeout covers the whole put: if it
// expires (or the queue closes) while waiting for room midway, the stream is marked aborted
// and the consumer drops what it received; nothing is delivered.
Status QueueObject::put_stream(const uint8_t *data, uint64_t len, const Timeout &t) noexcept {
  uint64_t off = 0;
  while (off < len) {
    const uint64_t left = len - off;
    const uint32_t kind = off == 0 ? kFirst : left > chunk_ ? kMiddle : kLast;
    const uint64_t n = kind == kLast ? left : chunk_;
    Record *r = nullptr;
    uint64_t start = 0;
    bool held = true;
    if (Status s = reserve(kind, kind == kFirst ? len : n, nullptr, t, &r, &start, &held); s != MPX_OK) {
      if (off != 0) abort_stream();  // MIDDLE and LAST keep the lock while they wait
      if (held) plock_.release();
      return s;
    }
    std::memcpy(payload(r), data + off, n);
    r->state.store(kCommitted, std::memory_order_seq_cst);
    if (kind == kFirst) published(start);  // a new item, for any get
    else wake(l_->wait.chunk, INT32_MAX);  // the rest of it, for the get that took the FIRST
    off += n;
    if (off < len) crash_point(CrashPoint::producer_streaming);
  }
  l_->producer.open_stream.store(0, std::memory_order_release);
  const Status unlocked = plock_.release();
  if (maxsize_) more_slots();
  return unlocked;
}

void QueueObject::abort_stream() noexcept {
  l_->status.aborted_stream.store(l_->producer.open_stream.load(std::memory_order_relaxed), std::memory_order_seq_cst);
  l_->producer.open_stream.store(0, std::memory_order_release);
  wake(l_->wait.chunk, INT32_MAX);
}

// free has not moved for a while: if the record there is READING and its reader is dead,
// finish it for them (the item is lost, never delivered twice). Producer lock held, so no
// new record can appear at that place while we look.
Status QueueObject::recover_reader() noexcept {
  const uint64_t f = l_->free.free.load(std::memory_order_seq_cst);
  const uint64_t h = l_->consumer.head.load(std::memory_order_acquire);
  if (f > h) return place_.corrupt();
  if (f == h) return MPX_OK;
  View v;
  const uint32_t state = at(f)->state.load(std::memory_order_acquire);
  const bool valid = read_record(f, h, &v);
  if (l_->free.free.load(std::memory_order_seq_cst) != f) return MPX_OK;  // it moved meanwhile
  if (!valid || (state != kReading && state != kDone && state != kCommitted)) return place_.corrupt();
  // COMMITTED: a small item whose taker is between moving head and moving free; if it died
  // there, the next get repairs it.
  if (state == kReading &&
      !owner_alive(v.r->pid.load(std::memory_order_relaxed), v.r->tid.load(std::memory_order_relaxed))) {
    uint32_t expected = kReading;
    tsan_release(v.r);
    v.r->state.compare_exchange_strong(expected, kDone, std::memory_order_seq_cst);
  }
  advance_free();
  return MPX_OK;
}

// The previous holder of the producer lock died (we hold it now, MPX_EOWNERDEAD). Anything it
// wrote beyond tail is ignored unless it had already counted the item (items_put equals the
// record's ordinal): then the record is published as it stands, COMMITTED (a small item,
// complete) or WRITING (consumers skip it once they see its writer dead). A stream it left
// open is marked aborted.
Status QueueObject::repair_producer() noexcept {
  const uint64_t tail = l_->tail.tail.load(std::memory_order_acquire);
  const uint64_t put = l_->producer.items_put.load(std::memory_order_acquire);
  if (tail % kAlign != 0 || !place_.header_ok()) return place_.corrupt();
  uint64_t p = tail;
  View v;
  if (read_record(p, p + cap_, &v) && v.kind == kPad) p += v.bytes;
  if (read_record(p, p + cap_, &v) && (v.kind == kWhole || v.kind == kFirst) && put != 0 && v.ordinal == put &&
      (v.r->state.load(std::memory_order_acquire) == kWriting ||
       v.r->state.load(std::memory_order_acquire) == kCommitted)) {
    const uint64_t f = l_->free.free.load(std::memory_order_seq_cst);
    if (f > tail || p + v.bytes - f > cap_) return place_.corrupt();
    l_->tail.tail.store(p + v.bytes, std::memory_order_release);
  }
  if (l_->producer.open_stream.load(std::memory_order_acquire) != 0) abort_stream();
  wake(l_->wait.not_empty, 1);  // a record published here wakes one get, as a put would
  return MPX_OK;
}

}  // namespace mpx
