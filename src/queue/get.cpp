// The consumer side: take the record at head under the consumer lock, copy out, mark DONE;
// reassemble streamed items; skip what dead producers left half-written; the repair after a
// consumer died holding the lock.
#include <cstring>

#include "platform/process.hpp"
#include "queue/pause.hpp"

namespace mpx {

using namespace queue;

namespace {
// A writer (or a stream's producer) we wait for: look at its liveness after this long, then
// this often.
constexpr int64_t kFirstCheckNs = 10'000'000;
constexpr int64_t kCheckEveryNs = 50'000'000;
}  // namespace

Status QueueObject::get(Sink &sink, uint64_t *len, int64_t timeout_ms) noexcept {
  if (!place_.header_ok()) return place_.corrupt();
  const Timeout t(timeout_ms);
  if (Status s = lock(clock_, t, false); s != MPX_OK) return s;
  return take(sink, len, t);
}

// The consumer lock is held on entry and released on every return. While there is nothing to
// take, it is released and the get sleeps like the others; reassembling a stream, it is kept.
Status QueueObject::take(Sink &sink, uint64_t *len, const Timeout &t) noexcept {
  Stream st;
  bool locked = true, backed_off = false;
  int round = 0;
  uint64_t watched = UINT64_MAX;  // what we wait for (liveness timer): a position, or a stream
  int64_t next_check = 0;
  auto leave = [&](Status s) {
    if (st.active) drop_stream(&st, sink);
    if (locked) clock_.release();
    // We may have been woken for an item we are not taking: hand the wake-up on.
    if ((s == MPX_ETIMEDOUT || s == MPX_ECLOSED) &&
        l_->tail.tail.load(std::memory_order_seq_cst) != l_->consumer.head.load(std::memory_order_seq_cst))
      wake(l_->wait.not_empty, 1);
    return s;
  };
  for (;;) {
    if (!locked) {
      if (Status s = lock(clock_, t, false); s != MPX_OK) return leave(s);
      locked = true;
    }
    const uint64_t h = l_->consumer.head.load(std::memory_order_relaxed);
    if (h >= seen_tail_) {
      // Items taken one by one as soon as each lands cost both sides a cache line transfer
      // per item (tail, then the record, pulled back and forth between the two CPUs). When
      // the last look at tail found little, give the puts a moment (~1 us) to add more before
      // looking again: the items then come in a batch, at the speed of the faster side.
      if (few_ && !backed_off && !st.active && t.ms() != 0 && !closed_now()) {
        backed_off = true;
        clock_.release();
        locked = false;
        for (int i = 0; i < kPollEvery; ++i) platform::cpu_relax();
        continue;
      }
      seen_tail_ = l_->tail.tail.load(std::memory_order_seq_cst);
      if (h > seen_tail_ || seen_tail_ - h > cap_ || (h | seen_tail_) % kAlign != 0 || !place_.header_ok())
        return leave(place_.corrupt());
      few_ = seen_tail_ - h < kFewBytes;
    }
    uint32_t owner_pid = 0, owner_tid = 0;  // whom we wait for, if anyone
    const bool record = h < seen_tail_;
    if (record) {
      View v;
      if (!read_record(h, seen_tail_, &v)) return leave(place_.corrupt());
      const uint32_t state = v.r->state.load(std::memory_order_acquire);
      if (v.kind == kPad) {
        if (state != kDone) return leave(place_.corrupt());
        l_->consumer.head.store(h + v.bytes, std::memory_order_release);
        continue;
      }
      const bool item = v.kind == kWhole || v.kind == kFirst;
      const uint64_t got = l_->consumer.items_got.load(std::memory_order_relaxed);
      if (v.ordinal != (item ? got + 1 : got)) return leave(place_.corrupt());
      if (item && st.active) {  // the stream's producer gave up or died before its LAST
        drop_stream(&st, sink);
        continue;
      }
      if (state == kCommitted) {
        if (item) {
          if (Status s = sink.prepare(v.length); s != MPX_OK) {  // the item stays first
            clock_.release();
            return s;
          }
          if (v.kind == kWhole && v.length <= kInlineBytes) return take_small(h, v, sink, len);
          if (v.kind == kFirst)
            st = Stream{true, h, v.length, 0, v.r->pid.load(std::memory_order_relaxed),
                        v.r->tid.load(std::memory_order_relaxed)};
          claim(h, v);
          if (v.kind == kWhole) {
            crash_point(CrashPoint::consumer_claimed);
            const Status unlocked = clock_.release();
            if (v.length) std::memcpy(sink.data(), payload(v.r), v.length);
            crash_point(CrashPoint::consumer_copying);
            finish(v);
            taken();
            *len = v.length;
            return unlocked;
          }
          std::memcpy(sink.data(), payload(v.r), chunk_);
          st.offset = chunk_;
          finish(v);
          crash_point(CrashPoint::consumer_streaming);
          continue;
        }
        if (!st.active) {  // an orphan chunk: whoever took its FIRST died or gave up
          skip(h, v, kCommitted);
          continue;
        }
        const uint64_t left = st.total - st.offset;
        if ((v.kind == kMiddle) != (left > chunk_) || (v.kind == kLast && v.length != left))
          return leave(place_.corrupt());
        claim(h, v);
        std::memcpy(sink.data() + st.offset, payload(v.r), v.length);
        finish(v);
        st.offset += v.length;
        if (v.kind == kLast) {
          st.active = false;
          *len = st.total;
          const Status unlocked = clock_.release();
          taken();
          return unlocked;
        }
        crash_point(CrashPoint::consumer_streaming);
        continue;
      }
      if (state != kWriting) return leave(place_.corrupt());
      owner_pid = v.r->pid.load(std::memory_order_relaxed);
      owner_tid = v.r->tid.load(std::memory_order_relaxed);
      if (watched != h) {
        watched = h;
        next_check = 0;
      }
      if (next_check != 0 && platform::monotonic_ns() >= next_check && !owner_alive(owner_pid, owner_tid)) {
        // Its writer died before committing: never deliver it. An item is counted as abandoned
        // before it is skipped, under a mark: if we die in between, repair_consumer can tell
        // whether the count was made, and the item is counted exactly once.
        if (item) {
          l_->consumer.items_got.store(v.ordinal, std::memory_order_release);
          l_->status.dropping_base.store(l_->status.abandoned.load(std::memory_order_relaxed),
                                         std::memory_order_relaxed);
          l_->status.dropping.store(h + 1, std::memory_order_seq_cst);
          crash_point(CrashPoint::consumer_abandoning);
          count_abandoned();
          crash_point(CrashPoint::consumer_abandoned);
        }
        skip(h, v, kWriting);
        if (!item && st.active) drop_stream(&st, sink);
        continue;
      }
    } else if (st.active) {
      // Waiting for the stream's next chunk, whatever our timeout, while its producer lives.
      if (l_->status.aborted_stream.load(std::memory_order_seq_cst) == st.first) {
        drop_stream(&st, sink);
        continue;
      }
      owner_pid = st.pid;
      owner_tid = st.tid;
      if (watched != (st.first | 1)) {
        watched = st.first | 1;
        next_check = 0;
      }
      if (next_check != 0 && platform::monotonic_ns() >= next_check && !owner_alive(owner_pid, owner_tid)) {
        drop_stream(&st, sink);
        continue;
      }
    } else if (closed_now()) {
      return leave(closed_error("get"));
    }

    if (closing()) return leave(closed_error("getting"));
    platform::Deadline until = platform::kForever;
    if (!st.active) {
      if (t.ms() == 0) return leave(fail(MPX_ETIMEDOUT, "queue is empty"));
      if (t.expired(platform::monotonic_ns()))
        return leave(fail(MPX_ETIMEDOUT, "queue get timed out after {} ms (the queue is empty)", t.ms()));
      until = t.deadline();
    }
    if (owner_tid != 0 || st.active) {
      if (next_check == 0) next_check = platform::monotonic_ns() + kFirstCheckNs;
      else if (platform::monotonic_ns() >= next_check) next_check = platform::monotonic_ns() + kCheckEveryNs;
      if (next_check < until) until = next_check;
    }
    if (st.active) {
      pause(l_->wait.chunk, &round, until, [&] {
        if (record) return at(h)->state.load(std::memory_order_seq_cst) != kWriting;
        return l_->tail.tail.load(std::memory_order_seq_cst) != h ||
               l_->status.aborted_stream.load(std::memory_order_seq_cst) == st.first;
      });
      continue;
    }
    if (record) {
      // A put is copying the item in. Watch it for a moment, lock held; then sleep without the
      // lock, like the other gets (its commit wakes one of us).
      if (round++ == 0) {
        for (int i = 0; i < kSpinRounds && at(h)->state.load(std::memory_order_acquire) == kWriting; ++i)
          platform::cpu_relax();
        continue;
      }
      sleep(l_->wait.not_empty, until, [&] { return at(h)->state.load(std::memory_order_seq_cst) != kWriting; },
            [&] { clock_.release(); });
      locked = false;
      continue;
    }
    clock_.release();
    locked = false;
    pause(l_->wait.not_empty, &round, until, [&] {
      return closed_now() || l_->tail.tail.load(std::memory_order_seq_cst) != h;
    });
  }
}

void QueueObject::count_taken(uint64_t ordinal) noexcept {
  if (take_hook_) take_hook_(take_ctx_, ordinal);
  // seq_cst when a producer may be waiting for this count to drop below maxsize.
  if (maxsize_) l_->consumer.items_got.store(ordinal, std::memory_order_seq_cst);
  else l_->consumer.items_got.store(ordinal, std::memory_order_release);
  crash_point(CrashPoint::consumer_counted);
}

// A small item: copy it out with the lock held, move head, and move free too when nothing
// before it is still being read; the record itself is not written to (marked DONE only when
// free lags). Store order for repair_consumer: count, head, then free.
Status QueueObject::take_small(uint64_t h, const View &v, Sink &sink, uint64_t *len) noexcept {
  if (v.length) std::memcpy(sink.data(), payload(v.r), v.length);
  count_taken(v.ordinal);
  l_->consumer.head.store(h + v.bytes, std::memory_order_release);
  crash_point(CrashPoint::consumer_claimed);
  uint64_t f = h;
  if (!l_->free.free.compare_exchange_strong(f, h + v.bytes, std::memory_order_seq_cst)) {
    tsan_release(v.r);
    v.r->state.store(kDone, std::memory_order_seq_cst);
    advance_free();
  }
  const Status unlocked = clock_.release();
  wake_producers(v.ordinal);
  taken();
  *len = v.length;
  return unlocked;
}

// An item was taken. If more are queued and gets sleep, wake one: the put of the next item
// may have seen its predecessor still queued and left the waking to us (published(), put.cpp).
void QueueObject::taken() noexcept {
  Wait &w = l_->wait.not_empty;
  if (w.anyone() &&
      l_->tail.tail.load(std::memory_order_seq_cst) > l_->consumer.head.load(std::memory_order_seq_cst)) {
    wake(w, 1);
  }
}

// Take the record at head (consumer lock held). The order of the stores is what
// repair_consumer relies on: the item count, then the record's owner and state, then head.
void QueueObject::claim(uint64_t h, const View &v) noexcept {
  if (v.kind == kWhole || v.kind == kFirst) count_taken(v.ordinal);
  v.r->pid.store(platform::current_pid(), std::memory_order_relaxed);
  v.r->tid.store(platform::current_tid(), std::memory_order_relaxed);
  v.r->state.store(kReading, std::memory_order_release);
  crash_point(CrashPoint::consumer_marked);
  l_->consumer.head.store(h + v.bytes, std::memory_order_release);
}

void QueueObject::finish(const View &v) noexcept {
  tsan_release(v.r);
  v.r->state.store(kDone, std::memory_order_seq_cst);
  advance_free();
  wake_producers(v.kind == kWhole || v.kind == kFirst ? v.ordinal : 0);
}

// Space was freed, and maybe an item taken (ordinal: the last taken): every put waiting for
// bytes (any may fit now), and one waiting for the count if this take made the queue stop
// being full. Were other slots free already, their puts were woken then, and each put wakes
// one more while slots remain (put.cpp): one sleeper per free slot, not a wake-up per get.
void QueueObject::wake_producers(uint64_t ordinal) noexcept {
  Wait &w = l_->wait.slot;
  if (ordinal && maxsize_ && w.anyone() &&
      l_->producer.items_put.load(std::memory_order_seq_cst) - (ordinal - 1) >= maxsize_)
    wake(w, 1);
  wake(l_->wait.room, INT32_MAX);
}

// Pass over the record at head without delivering it (it is DONE from now on).
void QueueObject::skip(uint64_t h, const View &v, uint32_t from_state) noexcept {
  uint32_t expected = from_state;
  tsan_release(v.r);
  v.r->state.compare_exchange_strong(expected, kDone, std::memory_order_seq_cst);
  l_->consumer.head.store(h + v.bytes, std::memory_order_release);
  advance_free();
  wake_producers(v.kind == kWhole || v.kind == kFirst ? v.ordinal : 0);
}

// The item being reassembled will never be complete: drop it (it counts as abandoned).
void QueueObject::drop_stream(Stream *st, Sink &sink) noexcept {
  sink.discard();
  st->active = false;
  count_abandoned();
}

// The previous holder of the consumer lock died (we hold it now, MPX_EOWNERDEAD). If it had
// marked the record at head without moving head past it, finish that record (its item is
// lost, never delivered twice); if it had counted a dead writer's item at head as abandoned
// without skipping it, skip it; if it had counted the item at head without marking it,
// uncount it (the item is delivered to the next get: the dead one never returned it). A
// small item it took but did not free is still COMMITTED behind head: mark it DONE. The rest
// of a stream it was reading is skipped by later gets as orphan chunks.
Status QueueObject::repair_consumer() noexcept {
  const uint64_t h = l_->consumer.head.load(std::memory_order_acquire);
  const uint64_t tail = l_->tail.tail.load(std::memory_order_seq_cst);
  if (h % kAlign != 0 || h > tail || tail - h > cap_ || !place_.header_ok()) return place_.corrupt();
  seen_tail_ = tail;
  if (h < tail) {
    View v;
    if (!read_record(h, tail, &v)) return place_.corrupt();
    const uint32_t state = v.r->state.load(std::memory_order_acquire);
    const bool item = v.kind == kWhole || v.kind == kFirst;
    const uint64_t got = l_->consumer.items_got.load(std::memory_order_acquire);
    const bool dropped = item && state == kWriting && l_->status.dropping.load(std::memory_order_seq_cst) == h + 1 &&
                         l_->status.abandoned.load(std::memory_order_seq_cst) ==
                             l_->status.dropping_base.load(std::memory_order_relaxed) + 1;
    if (v.kind != kPad && (state == kReading || state == kDone || dropped)) {
      if (item) l_->consumer.items_got.store(v.ordinal, std::memory_order_release);
      uint32_t expected = dropped ? kWriting : kReading;
      tsan_release(v.r);
      v.r->state.compare_exchange_strong(expected, kDone, std::memory_order_seq_cst);
      l_->consumer.head.store(h + v.bytes, std::memory_order_release);
    } else if (item && got != 0 && v.ordinal == got) {
      l_->consumer.items_got.store(got - 1, std::memory_order_release);
    }
  }
  if (Status s = free_abandoned_small(); s != MPX_OK) return s;
  advance_free();
  wake(l_->wait.slot, 1);
  wake(l_->wait.room, INT32_MAX);
  return MPX_OK;
}

// Records behind head are READING or DONE, except a small item taken by a consumer that
// died before moving free past it (consumer lock held: no other can be in that window, and
// free cannot pass a COMMITTED record). Free may pass the DONE records we walk over, and
// producers overwrite them; a record's state is written after its position, so a fresh
// state read here always comes with a fresh position, which fails the check.
Status QueueObject::free_abandoned_small() noexcept {
  const uint64_t h = l_->consumer.head.load(std::memory_order_acquire);
  uint64_t f = l_->free.free.load(std::memory_order_seq_cst);
  while (f < h) {
    View v;
    const uint32_t state = peek_state(at(f));
    if (!read_record(f, h, &v) || (state != kCommitted && state != kReading && state != kDone)) {
      // Freed and overwritten meanwhile (readers finishing move free): start again from free.
      const uint64_t now = l_->free.free.load(std::memory_order_seq_cst);
      if (now == f) return place_.corrupt();
      f = now;
      continue;
    }
    if (state == kCommitted && v.kind != kPad) {
      uint32_t expected = kCommitted;
      tsan_release(v.r);
      v.r->state.compare_exchange_strong(expected, kDone, std::memory_order_seq_cst);
    }
    f += v.bytes;
  }
  return MPX_OK;
}

}  // namespace mpx
