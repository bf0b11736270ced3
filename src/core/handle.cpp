#include "core/handle.hpp"

#include "platform/fork_mutex.hpp"

#include <linux/membarrier.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <new>
#include <vector>

namespace mpx {
namespace detail {

std::atomic<Slot *> g_chunks[kMaxChunks];
bool g_asymmetric_fence = false;
__thread ThreadRecord *t_record __attribute__((tls_model("initial-exec"))) = nullptr;

namespace {

std::atomic<ThreadRecord *> g_records{nullptr};

platform::ForkMutex g_table_mu(platform::ForkMutex::kHandleTable);
uint32_t g_next_index = 0;
std::vector<uint32_t> *g_free = nullptr;

bool register_membarrier() noexcept {
#if defined(__SANITIZE_THREAD__)
  return false;  // TSan cannot see membarrier's ordering; use real fences
#else
  long cmds = syscall(SYS_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);
  if (cmds < 0 || !(cmds & MEMBARRIER_CMD_PRIVATE_EXPEDITED)) return false;
  return syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0;
#endif
}

void heavy_fence() noexcept {
#if defined(__SANITIZE_THREAD__)
  // Pins and the slot state use seq_cst accesses under TSan (see handle.hpp).
#else
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (g_asymmetric_fence && syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) != 0) {
    // Cannot happen once registered; if it ever does, readers must fence for themselves.
    g_asymmetric_fence = false;
    syscall(SYS_membarrier, MEMBARRIER_CMD_GLOBAL, 0, 0);
  }
  std::atomic_thread_fence(std::memory_order_seq_cst);
#endif
}

struct RecordReleaser {
  ~RecordReleaser() {
    if (ThreadRecord *r = t_record) {
      for (auto &p : r->pins) p.store(0, std::memory_order_relaxed);
      r->depth = 0;
      t_record = nullptr;
      r->in_use.store(false, std::memory_order_release);
    }
  }
};

void after_fork_child() noexcept {
  // Only the forking thread exists in the child: every other thread's pins are gone.
  for (ThreadRecord *r = g_records.load(); r; r = r->next) {
    if (r == t_record) continue;
    for (auto &p : r->pins)
      if (p.load(std::memory_order_relaxed)) p.store(0, std::memory_order_relaxed);
    if (r->depth) r->depth = 0;
    if (r->in_use.load(std::memory_order_relaxed)) r->in_use.store(false, std::memory_order_relaxed);
  }
  // The child is a new mm: registration does not carry over. (Stored only if it changes:
  // see on_fork_child.)
  if (const bool fence = register_membarrier(); fence != g_asymmetric_fence) g_asymmetric_fence = fence;
}

struct Init {
  Init() {
    g_asymmetric_fence = register_membarrier();
    platform::on_fork_child(after_fork_child);
  }
} g_init;

}  // namespace

ThreadRecord *register_thread() noexcept {
  ThreadRecord *r = nullptr;
  for (ThreadRecord *p = g_records.load(std::memory_order_acquire); p; p = p->next) {
    bool expected = false;
    if (!p->in_use.load(std::memory_order_relaxed) && p->in_use.compare_exchange_strong(expected, true)) {
      r = p;
      break;
    }
  }
  if (!r) {
    r = new (std::nothrow) ThreadRecord();
    if (!r) return nullptr;
    for (auto &p : r->pins) p.store(0, std::memory_order_relaxed);
    r->in_use.store(true, std::memory_order_relaxed);
    ThreadRecord *head = g_records.load(std::memory_order_relaxed);
    do r->next = head;
    while (!g_records.compare_exchange_weak(head, r, std::memory_order_release, std::memory_order_relaxed));
  }
  static thread_local RecordReleaser releaser;
  (void)releaser;
  t_record = r;
  return r;
}

Status bad_handle(const void *h, HandleType want) noexcept {
  static const char *const names[] = {"?", "segment", "lock", "semaphore", "event", "condition", "barrier", "array", "process", "conn", "queue", "pool", "job", "worker", "listener", "manager", "mclient", "proxy"};
  const unsigned t = unsigned(want) < sizeof names / sizeof *names ? unsigned(want) : 0;
  return fail(MPX_EBADHANDLE, "{} is not a live mpx_{} handle (destroyed, of another type, or never issued)", h,
              names[t]);
}

Status null_handle() noexcept { return fail(MPX_EINVAL, "handle is NULL"); }
Status no_thread_record() noexcept { return fail(MPX_ENOMEM, "cannot register the calling thread"); }
Status too_deep() noexcept { return fail(MPX_EDEADLK, "too many nested mpx calls on one thread"); }

Status forked_handle(const void *h) noexcept {
  return fail(MPX_EFORKED, "handle {} belongs to the parent process and cannot be used after fork", h);
}

}  // namespace detail

using namespace detail;

Status insert_handle(Object *obj, void **out) noexcept {
  g_table_mu.lock();
  uint32_t index;
  if (g_free && !g_free->empty()) {
    index = g_free->back();
    g_free->pop_back();
  } else if (g_next_index < kMaxSlots) {
    index = g_next_index;
    const uint32_t c = index >> kChunkBits;
    if (!g_chunks[c].load(std::memory_order_relaxed)) {
      Slot *chunk = new (std::nothrow) Slot[kChunkSize];
      if (!chunk) {
        g_table_mu.unlock();
        delete obj;
        return fail(MPX_ENOMEM, "out of memory for the handle table");
      }
      g_chunks[c].store(chunk, std::memory_order_release);
    }
    ++g_next_index;
  } else {
    g_table_mu.unlock();
    delete obj;
    return fail(MPX_EMFILE, "too many live mpx handles ({})", kMaxSlots);
  }
  g_table_mu.unlock();

  Slot &slot = g_chunks[index >> kChunkBits].load(std::memory_order_relaxed)[index & (kChunkSize - 1)];
  const uint64_t gen = slot.state.load(std::memory_order_relaxed) >> 1;
  slot.obj.store(obj, std::memory_order_relaxed);
  slot.state.store((gen << 1) | 1, std::memory_order_release);
  *out = reinterpret_cast<void *>(uintptr_t((gen << 32) | (uint64_t(obj->type()) << 24) | (index + 1)));
  return MPX_OK;
}

Status destroy_handle(const void *h, HandleType type) noexcept {
  const auto v = reinterpret_cast<uintptr_t>(h);
  if (v == 0) return fail(MPX_EINVAL, "handle is NULL");
  const uint32_t index = uint32_t(v & 0xffffffu) - 1;
  const uint64_t gen = uint64_t(v) >> 32;
  if (uint8_t(v >> 24) != uint8_t(type) || index >= kMaxSlots) return bad_handle(h, type);
  Slot *chunk = g_chunks[index >> kChunkBits].load(std::memory_order_acquire);
  if (!chunk) return bad_handle(h, type);
  Slot &slot = chunk[index & (kChunkSize - 1)];
  uint64_t live = (gen << 1) | 1;
  if (!slot.state.compare_exchange_strong(live, gen << 1, std::memory_order_seq_cst)) return bad_handle(h, type);

  Object *obj = slot.obj.load(std::memory_order_acquire);
  obj->closing_.store(true, std::memory_order_seq_cst);
  heavy_fence();
  for (;;) {
    bool pinned = false;
    for (ThreadRecord *r = g_records.load(std::memory_order_acquire); r && !pinned; r = r->next)
      for (auto &p : r->pins)
        if (p.load(std::memory_order_seq_cst) == v) pinned = true;
    if (!pinned) break;
    obj->wake_waiters();
    timespec ts{0, 200000};
    nanosleep(&ts, nullptr);
  }
  delete obj;
  slot.obj.store(nullptr, std::memory_order_relaxed);
  slot.state.store(((gen + 1) & 0xffffffffu) << 1, std::memory_order_release);

  g_table_mu.lock();
  if (!g_free) g_free = new (std::nothrow) std::vector<uint32_t>();
  if (g_free) {
    try {
      g_free->push_back(index);
    } catch (...) {  // the slot is lost, nothing worse
    }
  }
  g_table_mu.unlock();
  return MPX_OK;
}

}  // namespace mpx
