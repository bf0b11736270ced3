// The queue's shared memory: immutable configuration, a few cache lines of indices (each
// written by one side only), and a ring of bytes holding records.
//
// Positions are 64-bit byte counts that only grow; a position's place in the ring is
// position & (capacity - 1). Three of them split the ring:
//
//   free <= head <= tail <= free + capacity
//   [free, head)  records taken by consumers, some still being copied out (READING)
//   [head, tail)  records put by producers, some still being copied in (WRITING)
//
// tail moves under the producer lock, head under the consumer lock, and free, the end of the
// space producers may not overwrite yet, moves (by CAS) over records that are DONE. Large
// payloads are copied outside the locks, so a slow copy delays nobody but the records behind
// it; small ones (up to kInlineBytes) are copied under the locks, which spares the record the
// WRITING and READING states and the stores to it that they cost.
//
// Every record starts on a 64-byte boundary (no two records share a cache line, so the side
// writing one never disturbs the side reading its neighbour) and never crosses the ring's end:
// a record that would is preceded by a PAD record filling the rest of the lap. A record
// carries the position it was written for, which tells a fresh record from the bytes of an
// earlier lap, and its item's ordinal, which keeps the item counts exact across crashes.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "shm/object.hpp"
#include "sync/lock.hpp"

namespace mpx::queue {

constexpr uint64_t kMinCapacity = 4096;
constexpr uint64_t kMaxCapacity = uint64_t(1) << 31;  // object sizes are 32-bit
constexpr uint64_t kDefaultCapacity = uint64_t(1) << 20;
constexpr uint64_t kAlign = 64;
constexpr uint32_t kLayout = 1;
// Items up to this size are copied in and out with the producer or consumer lock held.
constexpr uint64_t kInlineBytes = 1024;

// Record states: unlikely bit patterns, so that stray bytes rarely pass for one.
enum : uint32_t {
  kWriting = 0x57a1e001u,    // reserved; the producer is copying the payload in
  kCommitted = 0x57a1e002u,  // ready to be taken
  kReading = 0x57a1e003u,    // taken; the consumer is copying the payload out
  kDone = 0x57a1e004u,       // finished with (taken, skipped, abandoned or padding)
};

// Record kinds. An item is WHOLE, or FIRST, MIDDLE..., LAST when it is larger than a record
// may be: a FIRST's length is the whole item's; its payload, like a MIDDLE's, is `chunk` bytes.
enum : uint32_t { kWhole = 1, kFirst = 2, kMiddle = 3, kLast = 4, kPad = 5 };

struct Record {
  std::atomic<uint32_t> state;
  std::atomic<uint32_t> kind;
  std::atomic<uint32_t> pid;  // owner: the writer while WRITING or COMMITTED, the reader after
  std::atomic<uint32_t> tid;
  std::atomic<uint64_t> position;  // where it was written (tells this lap from earlier ones)
  std::atomic<uint64_t> length;    // payload bytes; FIRST: the item's; PAD: the record's bytes
  std::atomic<uint64_t> ordinal;   // 1-based item number; chunks carry their item's
};
constexpr uint64_t kRecordHeader = sizeof(Record);
static_assert(kRecordHeader == 40 && kRecordHeader <= kAlign);

// Written once by the creator; each process keeps a validated copy and never re-reads it.
struct Config {
  uint64_t capacity;
  uint64_t maxsize;
  uint64_t max_message;
  uint32_t flags;
  uint32_t layout;
  uint64_t reserved[2];
};
// The object header (16 bytes) plus Config fill the first line: the lines below are aligned.
static_assert(sizeof(ObjectHeader) + sizeof(Config) == 64);

struct alignas(64) ProducerLine {
  LockBody lock;
  std::atomic<uint64_t> items_put;    // ordinal of the last item reserved
  std::atomic<uint64_t> open_stream;  // position of the FIRST of the item being streamed, or 0
};

// Alone on its line: consumers poll it, and must not slow the producer lock down.
struct alignas(64) TailLine {
  std::atomic<uint64_t> tail;
};

struct alignas(64) ConsumerLine {
  LockBody lock;
  std::atomic<uint64_t> head;
  std::atomic<uint64_t> items_got;  // ordinal of the last item taken (or skipped)
};

struct alignas(64) FreeLine {
  std::atomic<uint64_t> free;
};

// A futex word bumped by the side that may wake the other, and who may sleep on it: the
// waking side makes a system call only when someone may. sleepers: the low 16 bits count those
// who announced a sleep and were not woken yet (a waker takes off those it wakes); the high 16
// bits change with every announcement, so that a waker can tell that nothing moved while it
// looked (QueueObject::wake takes back the count of a process that died asleep).
struct Wait {
  static constexpr uint32_t kCount = 0xffff;
  static constexpr uint32_t kAnnounce = 0x10001;
  std::atomic<uint32_t> seq;
  std::atomic<uint32_t> sleepers;

  bool anyone() const noexcept { return (sleepers.load(std::memory_order_seq_cst) & kCount) != 0; }
  void announce() noexcept { sleepers.fetch_add(kAnnounce, std::memory_order_seq_cst); }
  // Take n off the count (never below zero: the count may have been taken back already).
  void leave(uint32_t n = 1) noexcept {
    uint32_t v = sleepers.load(std::memory_order_relaxed);
    for (;;) {
      const uint32_t d = (v & kCount) < n ? (v & kCount) : n;
      if (d == 0 || sleepers.compare_exchange_weak(v, v - d, std::memory_order_seq_cst)) return;
    }
  }
};

// Who sleeps on what. Gets and puts wait for an item or for space without holding their lock,
// and one such sleeper is woken per item put or taken: of many waiting processes, only one
// wakes to do the work. The lock holder reassembling a stream, and the one streaming, must get
// every wake-up meant for them: they have lines of their own (chunk; room is woken whole, as
// space freed may fit any of the waiting items). One line: a waker reads every count at once.
struct alignas(64) WaitLines {
  Wait not_empty;  // gets: an item was put (one woken)
  Wait chunk;      // the get reassembling a stream: a chunk came, or the stream was aborted
  Wait slot;       // puts: the item count dropped below maxsize (one woken)
  Wait room;       // puts, and the one streaming: space was freed (all woken)
  Wait joined;     // JoinableQueue: nothing is unfinished (all woken)
};

struct alignas(64) StatusLine {
  std::atomic<uint32_t> closed;
  uint32_t reserved;
  std::atomic<uint64_t> aborted_stream;  // position of the FIRST of the last item abandoned mid-stream
  std::atomic<uint64_t> tasks_done;      // JoinableQueue: task_done calls
  std::atomic<uint64_t> abandoned;       // items never delivered (their producer died or gave up)
  // A consumer dropping a dead writer's item marks it before counting it: 1 + the record's
  // position, and `abandoned` as it was. A repair finds whether the count was made.
  std::atomic<uint64_t> dropping;
  std::atomic<uint64_t> dropping_base;
};
static_assert(sizeof(StatusLine) == 64, "the status line keeps its size (older peers see zeros)");

struct alignas(64) Lines {
  ProducerLine producer;
  TailLine tail;
  ConsumerLine consumer;
  FreeLine free;
  WaitLines wait;
  StatusLine status;
};

// The body behind the object header: Config, Lines, then the ring.
constexpr size_t kLinesOffset = sizeof(Config);
constexpr size_t kRingOffset = kLinesOffset + sizeof(Lines);
static_assert((sizeof(ObjectHeader) + kRingOffset) % kAlign == 0);

inline constexpr uint64_t align_up(uint64_t n) { return (n + kAlign - 1) & ~(kAlign - 1); }

}  // namespace mpx::queue
