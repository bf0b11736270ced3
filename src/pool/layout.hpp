// The pool's shared memory and its two message formats.
//
// The pool object (in shared memory, attachable by token) holds the configuration workers
// need, the tokens of the task queue and the result queue, and one slot per worker. A slot
// says which task (by its ordinal in the task queue) the worker holds: the queue writes it,
// through the take hook, under the consumer lock just before the item counts as taken, so a
// worker killed at any point leaves either the task in the queue or its ordinal in its slot.
//
// Task message (task queue):   TaskHeader, name bytes, payload.
//   single task: the payload is the argument.
//   chunk (kChunk): the payload is count u64 sizes, then the items back to back.
// Result message (result queue): ResultHeader, message bytes, payload.
//   single task: the payload is the result.
//   chunk: count ItemEntry, then each item's result bytes and message bytes in turn.
#pragma once

#include <atomic>
#include <cstdint>

#include "mpx/common.h"
#include "shm/object.hpp"

namespace mpx::pool {

constexpr uint32_t kLayout = 1;
constexpr size_t kTokenBytes = MPX_TOKEN_MAX;
constexpr size_t kNameBytes = 256;
constexpr uint64_t kMaxInitargs = uint64_t(1) << 20;

struct Config {
  uint32_t layout;
  uint32_t slots;
  int64_t maxtasks;      // per worker; 0: unlimited
  uint64_t max_memory;   // bytes of RSS; 0: no cap
  uint64_t initargs_size;
  uint64_t creator_pid;
  uint64_t reserved[3];
  char task_token[kTokenBytes];
  char result_token[kTokenBytes];
  char initializer[kNameBytes];  // registered entry name, or "" (a fork worker may use a pointer)
};

enum : uint32_t { kSlotFree = 0, kSlotServing = 1, kSlotRetiring = 2 };

struct alignas(64) Slot {
  std::atomic<uint32_t> pid;        // the worker's, 0 when free
  std::atomic<uint32_t> state;      // kSlot*
  std::atomic<uint64_t> ordinal;    // the task it holds (task queue ordinal), 0 when idle
  std::atomic<int64_t> started_ns;  // when it took the task (monotonic)
  std::atomic<uint64_t> served;     // tasks finished
};

// Jobs cancelled lately: a worker that takes a task of one of them ends it with
// MPX_ECANCELED instead of running it. A ring of the last kCancelRing ids; cancel_gen counts
// the ids ever written (a worker re-reads the ring only when it has moved).
constexpr uint32_t kCancelRing = 64;

struct alignas(64) SharedStatus {
  std::atomic<uint32_t> terminating;
  std::atomic<uint32_t> cancel_gen;
  std::atomic<uint64_t> cancelled[kCancelRing];
};

// Body: Config, SharedStatus, slots, then initargs. The body starts after the 16-byte object
// header, at a 64-byte boundary plus 16: the offsets put the status and the slots on lines.
constexpr size_t kObjectHeaderBytes = 16;
constexpr size_t kStatusOffset = (kObjectHeaderBytes + sizeof(Config) + 63) / 64 * 64 - kObjectHeaderBytes;
constexpr size_t kSlotsOffset = kStatusOffset + sizeof(SharedStatus);
inline size_t initargs_offset(uint32_t slots) { return kSlotsOffset + size_t(slots) * sizeof(Slot); }
static_assert(kObjectHeaderBytes == sizeof(ObjectHeader) && (kObjectHeaderBytes + kStatusOffset) % 64 == 0 &&
              sizeof(SharedStatus) % 64 == 0);

constexpr uint32_t kTaskMagic = 0x4b534154u;    // "TASK"
constexpr uint32_t kResultMagic = 0x544c5352u;  // "RSLT"

enum : uint32_t { kChunk = 1, kByPointer = 2 };

struct TaskHeader {
  uint32_t magic;
  uint32_t flags;     // kChunk, kByPointer
  uint64_t fn;        // kByPointer: the function's address (fork workers only)
  uint32_t name_len;  // bytes of name that follow
  uint32_t count;     // kChunk: items
  uint64_t job;       // the job's id (0: a task of no job); see SharedStatus::cancelled
};
static_assert(sizeof(TaskHeader) == 32);

struct ResultHeader {
  uint32_t magic;
  int32_t status;    // 0, or the MPX_E* the task ended with (a chunk: see its items)
  uint64_t ordinal;  // the task's
  int32_t code;      // the task function's return value, or the worker's exit code
  uint32_t msg_len;  // bytes of message that follow
  uint32_t count;    // chunk: items (0 for a single task)
  uint32_t reserved;
};
static_assert(sizeof(ResultHeader) == 32);

struct ItemEntry {
  int32_t status;
  int32_t code;
  uint64_t size;
  uint32_t msg_len;
  uint32_t reserved;
};
static_assert(sizeof(ItemEntry) == 24);

}  // namespace mpx::pool
