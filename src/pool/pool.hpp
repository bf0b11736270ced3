// Process pools: the parent side (PoolObject, jobs) and the worker side (WorkerObject).
//
// The parent runs three threads per pool:
//  - the feeder moves tasks from the backlog (parent memory, unbounded, cancellable) into the
//    task queue, noting each task under the ordinal the queue will give it;
//  - the collector takes results from the result queue and ends their tasks;
//  - the supervisor watches the workers: on a death it works out whether the worker held a
//    task (its slot's ordinal, checked against the task queue's taken count under the
//    consumer lock) and posts the failure into the result queue, behind anything the worker
//    itself committed, so every task ends exactly once; it kills workers whose task outran
//    its timeout, and starts replacements.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "core/handle.hpp"
#include "mpx/pool.h"
#include "pool/layout.hpp"
#include "queue/queue.hpp"
#include "shm/object.hpp"

struct mpx_task_out {
  std::vector<uint8_t> *buf;  // the result bytes are appended here
  size_t start;               // where this task's result begins in buf
  std::string message;
};

namespace mpx::pool {

// One item's outcome, inside a job (32 bytes: a map of millions is millions of these).
struct Item {
  int32_t status = 1;  // 1: not ended yet
  int32_t code = 0;
  const uint8_t *data = nullptr;
  uint64_t size = 0;
  uint32_t message = 0;  // 1 + index in JobState::messages; 0: none
};

// Bytes allocated without being zeroed first (a task message is written over at once).
class Bytes {
 public:
  Bytes() = default;
  explicit Bytes(size_t n) : p_(n ? new uint8_t[n] : nullptr), n_(n) {}
  uint8_t *data() const { return p_.get(); }
  size_t size() const { return n_; }

 private:
  std::unique_ptr<uint8_t[]> p_;
  size_t n_ = 0;
};

enum ChunkState : uint8_t { kQueued, kSent, kEnded };

struct JobState {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<Item> items;
  std::vector<uint32_t> chunk_first;  // chunk c covers [chunk_first[c], chunk_first[c + 1])
  std::vector<ChunkState> chunks;     // guarded by the pool's mutex
  // The items' result bytes, copied out of the result queue into blocks the job owns.
  std::vector<std::unique_ptr<uint8_t[]>> blocks;
  uint8_t *cursor = nullptr;
  size_t room = 0;
  std::vector<uint32_t> ended_order;  // item indices as they ended
  std::vector<std::string> messages;  // failed items' messages (Item::message)
  size_t done = 0, failed = 0;
  size_t next = 0;  // mpx_job_next's cursor
  bool ordered = false;
  int waiting_all = 0;   // threads waiting for the whole job (woken once, when it is ready)
  int waiting_next = 0;  // threads waiting for the next item (woken as items end)
  int64_t started_ns = 0;
  mpx_job_callback callback = nullptr;
  void *ctx = nullptr;
  void *handle = nullptr;       // the job's mpx_job (for callbacks)
  void *pool_handle = nullptr;  // its pool's mpx_pool (for cancel; checked when used)
  uint64_t id = 0;              // in its task messages (see SharedStatus::cancelled)
  bool ready() const { return done == items.size(); }
  const std::string &message_of(const Item &it) const {
    static const std::string none;
    return it.message ? messages[it.message - 1] : none;
  }
  // A copy of (p, n) that lives as long as the job (mu held).
  const uint8_t *keep(const uint8_t *p, size_t n);
};

class JobObject final : public Object {
 public:
  JobObject() : Object(HandleType::job) {}
  std::shared_ptr<JobState> state;
  void wake_waiters() noexcept override;
};

// A task waiting in the backlog or held by a worker.
struct Pending {
  std::shared_ptr<JobState> job;  // null: a raw task (mpx_pool_submit)
  uint32_t chunk = 0;
  bool live = false;  // in the inflight table: not ended yet
  uint64_t tag = 0;
  int64_t timeout_ms = -1;
  Bytes msg;  // the task message (moved out once the feeder takes it)
};

// A raw task's result, until mpx_pool_collect copies it out.
struct Done {
  uint64_t tag;
  int32_t status, code;
  std::unique_ptr<uint8_t[]> data;
  uint64_t size;
  std::string message;
};

struct WorkerRec {
  int64_t pid = 0;
  mpx_process *proc = nullptr;  // internal workers
  int fd = -1;                  // external workers: a pidfd, for signals
  std::string name;
  bool timed_out = false;  // we killed it for a task timeout
  std::string task_info;   // what for
};

struct PoolConfig {
  int32_t workers = 0;
  uint32_t method = 0;
  uint32_t flags = 0;
  int64_t maxtasks = 0;
  uint64_t max_memory = 0;
  int64_t task_timeout_ms = 0;
  mpx_entry_fn init_fn = nullptr;
  std::string init_name;
  std::vector<uint8_t> initargs;
  std::string name = "PoolWorker";
  std::string file;
  std::vector<std::string> argv, env;
  uint32_t env_mode = 0;
  uint64_t capacity = 0;
};

class PoolObject final : public Object {
 public:
  PoolObject() : Object(HandleType::pool) {}
  ~PoolObject() override;
  Status init(const mpx_pool_options *opts);
  void wake_waiters() noexcept override;

  // Fill job (made by the caller, with its handle) and queue its tasks.
  Status apply_async(const mpx_task *task, const std::shared_ptr<JobState> &job);
  Status map(const mpx_map *m, const std::shared_ptr<JobState> &job);
  Status submit(const char *name, const uint8_t *records, size_t bytes, size_t count, int64_t timeout_ms);
  Status collect(uint8_t *buf, size_t cap, size_t *used, size_t *count, int64_t timeout_ms);
  Status cancel(JobState *job, size_t *cancelled);
  Status close();
  Status terminate();
  Status join(int64_t timeout_ms);
  Status add_worker(int64_t pid);
  Status worker_exited(int64_t pid, int exitcode);
  Status wanted(size_t *n);
  Status worker_pids(std::vector<int64_t> *out);
  Status stats(mpx_pool_stats *out);
  void stop_threads();
  size_t size() const { return size_t(cfg_.workers); }
  const std::string &token() const { return token_; }
  void run_forked_worker();  // in a fork worker

 private:
  enum class State { running, closed, terminated };
  Status create_shared();
  Status start_worker();  // mu_ held
  Status check_target(mpx_task_fn fn, const char *name);
  int64_t task_timeout(int64_t ms) const;
  Bytes task_message(mpx_task_fn fn, const char *name, uint64_t job, uint32_t count, size_t payload);
  Status enqueue(std::vector<Pending> &tasks, size_t items);
  void feeder();
  void collector();
  void supervisor();
  Pending *find_inflight(uint64_t ordinal);  // mu_ held
  // mu_ held: end the task noted under `ordinal` (nothing if it has ended); payload is copied.
  void end_task(uint64_t ordinal, int32_t status, int32_t code, const uint8_t *payload, uint64_t size,
                const std::string &msg, uint32_t count, std::vector<std::shared_ptr<JobState>> *calls);
  void settle(Pending &task, int32_t status, int32_t code, const uint8_t *payload, uint64_t size,
              const std::string &msg, uint32_t count, std::vector<std::shared_ptr<JobState>> *calls);
  void run_callbacks(std::vector<std::shared_ptr<JobState>> &calls);
  void worker_ended(const WorkerRec &rec, int exitcode, std::vector<std::vector<uint8_t>> *notices);  // mu_ held
  void post(std::vector<std::vector<uint8_t>> &notices);  // mu_ not held
  void check_timeouts();       // mu_ held
  bool replacing() const;      // mu_ held: dead workers are to be replaced
  bool finished() const;       // mu_ held: no task will run any more
  void maybe_close_tasks();    // mu_ held
  void wake_supervisor();
  void start_threads();  // mu_ held, or before any thread runs

  PoolConfig cfg_;
  Placement place_;
  std::string token_;
  Config *shared_ = nullptr;
  SharedStatus *status_ = nullptr;
  Slot *slots_ = nullptr;
  QueueObject tasks_, results_;

  std::mutex mu_;
  std::condition_variable feed_cv_, done_cv_, state_cv_;
  State state_ = State::running;
  bool tasks_closed_ = false;
  bool feeding_ = false;
  bool collector_done_ = false;
  std::deque<Pending> backlog_;
  std::deque<Pending> inflight_;  // by ordinal, from inflight_base_
  uint64_t inflight_base_ = 0;
  size_t inflight_live_ = 0;
  size_t window_ = 256;
  std::deque<Done> done_;
  int collecting_ = 0;
  std::vector<WorkerRec> workers_;
  uint64_t worker_number_ = 0;
  uint64_t job_number_ = 0;
  size_t external_wanted_ = 0;
  bool timeouts_used_ = false;
  mpx_pool_stats stats_{};
  int wake_fd_ = -1;
  std::thread feeder_, collector_, supervisor_;
  bool threads_started_ = false;
  bool threads_stopped_ = false;
};

// The worker's end: attach, take tasks, reply.
class WorkerObject final : public Object {
 public:
  WorkerObject() : Object(HandleType::worker) {}
  ~WorkerObject() override;
  Status attach(const char *token);
  Status next(int64_t timeout_ms, mpx_worker_task *task);
  Status reply(int status, const void *data, size_t size, const char *message);
  Status run_initializer(mpx_entry_fn by_pointer);
  // The whole loop for C workers: registered names, or pointers (fork workers).
  Status serve(bool forked);
  void wake_waiters() noexcept override;

 private:
  static void on_take(void *self, uint64_t ordinal);
  Status send(std::vector<uint8_t> &msg);
  bool should_retire();
  void run_chunk(mpx_task_fn fn, const uint8_t *payload, size_t size, uint32_t count, std::vector<uint8_t> *out);

  Placement place_;
  Config cfg_{};
  Slot *slot_ = nullptr;
  QueueObject tasks_, results_;
  std::vector<uint8_t> buf_;
  uint64_t current_ = 0;  // ordinal of the task held
  bool holding_ = false;
  uint32_t flags_ = 0, count_ = 0;
  uint64_t fn_ = 0;
  std::string name_;
  std::vector<uint8_t> out_;
  uint64_t served_ = 0;
  bool retired_ = false;
  uint64_t job_ = 0;
  uint32_t cancel_seen_ = 0;
  std::vector<uint64_t> cancelled_;
  bool job_cancelled(uint64_t job);
};

// Test-only: when set, a nonzero return fails the start of worker number n (1-based, counted
// per pool), as if fork or exec had failed.
extern int (*g_fail_start)(uint64_t n);

Status register_task(const char *name, mpx_task_fn fn);
mpx_task_fn find_task(const std::string &name);
// The worker loop of internal workers: attach to `token`, run, exit.
[[noreturn]] void run_worker(const char *token, mpx_entry_fn init_by_pointer, bool forked);

}  // namespace mpx::pool
