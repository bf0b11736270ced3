// The worker's side of a pool: attach by token, claim a slot, take tasks (the take hook
// records each task's ordinal in the slot before the queue counts it as taken), run them,
// reply, and retire after maxtasksperchild tasks or past the memory cap.
#include <dlfcn.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>

#include "platform/fork_mutex.hpp"
#include "platform/process.hpp"
#include "platform/wait.hpp"
#include "pool/pool.hpp"
#include "proc/process.hpp"

namespace mpx::pool {

namespace {

struct Tasks {
  platform::ForkMutex mu{platform::ForkMutex::kPoolTasks};
  std::map<std::string, mpx_task_fn> map;
};
Tasks &tasks() {
  static Tasks *t = new Tasks();
  return *t;
}

Status attach_queue(const char *token, size_t cap, QueueObject *q) {
  if (strnlen(token, cap) == cap) return fail(MPX_ECORRUPT, "pool: a queue token is not terminated");
  Placement p;
  if (Status s = Placement::attach(token, ObjType::queue, queue::kRingOffset, &p); s != MPX_OK) return s;
  return QueueObject::open(std::move(p), q);
}

// Resident bytes of this process (0 when unknown).
uint64_t resident_bytes() {
  FILE *f = std::fopen("/proc/self/statm", "r");
  if (!f) return 0;
  unsigned long long size = 0, resident = 0;
  const int n = std::fscanf(f, "%llu %llu", &size, &resident);
  std::fclose(f);
  return n == 2 ? resident * uint64_t(sysconf(_SC_PAGESIZE)) : 0;
}

void forkserver_entry(const void *payload, size_t size) {
  std::string token(static_cast<const char *>(payload), size);
  run_worker(token.c_str(), nullptr, false);
}

// Known to the forkserver (registered when the library loads, before any zygote starts).
const bool g_registered = [] {
  proc::register_entry("mpx.pool.worker", &forkserver_entry);
  return true;
}();

}  // namespace

Status register_task(const char *name, mpx_task_fn fn) {
  if (!name || !*name) return fail(MPX_EINVAL, "name is NULL or empty");
  if (!fn) return fail(MPX_EINVAL, "fn is NULL");
  if (strnlen(name, kNameBytes) >= kNameBytes) return fail(MPX_EINVAL, "a task name is at most {} bytes", kNameBytes - 1);
  auto &t = tasks();
  platform::ForkMutexGuard g(t.mu);
  auto [it, inserted] = t.map.emplace(name, fn);
  if (!inserted && it->second != fn) return fail(MPX_EEXIST, "task \"{}\" is registered to another function", name);
  return MPX_OK;
}

mpx_task_fn find_task(const std::string &name) {
  {
    auto &t = tasks();
    platform::ForkMutexGuard g(t.mu);
    if (auto it = t.map.find(name); it != t.map.end()) return it->second;
  }
  // An exported symbol of that name, taken to be a task function (never an mpx_register entry).
  return reinterpret_cast<mpx_task_fn>(dlsym(RTLD_DEFAULT, name.c_str()));
}

WorkerObject::~WorkerObject() {
  if (slot_) slot_->ordinal.store(0, std::memory_order_release);
}

void WorkerObject::wake_waiters() noexcept { tasks_.wake_waiters(); }

Status WorkerObject::attach(const char *token) {
  if (!token) {
    token = std::getenv("MPX_POOL_TOKEN");
    if (!token) return fail(MPX_EINVAL, "no token given and MPX_POOL_TOKEN is not set");
  }
  if (Status s = Placement::attach(token, ObjType::pool, sizeof(Config), &place_); s != MPX_OK) return s;
  std::memcpy(&cfg_, place_.body<Config>(), sizeof cfg_);
  if (cfg_.layout != kLayout || cfg_.slots == 0 || cfg_.slots > 65536 || cfg_.initargs_size > kMaxInitargs ||
      place_.body_size() < initargs_offset(cfg_.slots) + cfg_.initargs_size ||
      strnlen(cfg_.initializer, kNameBytes) == kNameBytes)
    return fail(MPX_ECORRUPT, "pool configuration is invalid (layout {}, {} slots)", cfg_.layout, cfg_.slots);
  if (Status s = attach_queue(cfg_.task_token, kTokenBytes, &tasks_); s != MPX_OK) return s;
  if (Status s = attach_queue(cfg_.result_token, kTokenBytes, &results_); s != MPX_OK) return s;
  auto *slots = reinterpret_cast<Slot *>(place_.body<uint8_t>() + kSlotsOffset);
  const uint32_t me = platform::current_pid();
  for (uint32_t i = 0; i < cfg_.slots && !slot_; ++i) {
    uint32_t expected = 0;
    if (slots[i].pid.load(std::memory_order_relaxed) == 0 &&
        slots[i].pid.compare_exchange_strong(expected, me, std::memory_order_acq_rel)) {
      slot_ = &slots[i];
      slot_->ordinal.store(0, std::memory_order_relaxed);
      slot_->served.store(0, std::memory_order_relaxed);
      slot_->state.store(kSlotServing, std::memory_order_release);
    }
  }
  if (!slot_) return fail(MPX_EAGAIN, "pool: no free worker slot (more workers attached than the pool has room for)");
  tasks_.set_take_hook(&WorkerObject::on_take, this);
  return MPX_OK;
}

void WorkerObject::on_take(void *self, uint64_t ordinal) {
  auto *w = static_cast<WorkerObject *>(self);
  w->slot_->started_ns.store(platform::monotonic_ns(), std::memory_order_relaxed);
  w->slot_->ordinal.store(ordinal, std::memory_order_seq_cst);
}

bool WorkerObject::should_retire() {
  if (cfg_.maxtasks > 0 && served_ >= uint64_t(cfg_.maxtasks)) retired_ = true;
  return retired_;
}

Status WorkerObject::next(int64_t timeout_ms, mpx_worker_task *task) {
  if (holding_) return fail(MPX_EINVAL, "mpx_worker_next: reply to the task held first");
  if (should_retire()) {
    slot_->state.store(kSlotRetiring, std::memory_order_release);
    return fail(MPX_ECLOSED, "this worker has retired (maxtasksperchild or its memory cap)");
  }
  if (place_.body<uint8_t>() && reinterpret_cast<SharedStatus *>(place_.body<uint8_t>() + kStatusOffset)
                                        ->terminating.load(std::memory_order_acquire))
    return fail(MPX_ECLOSED, "the pool is terminating");
  if (buf_.size() < 4096) buf_.resize(4096);
  uint64_t n = 0;
  TaskHeader h;
  for (;;) {  // until a task that is not cancelled
    for (;;) {
      queue::Sink sink = queue::Sink::into(buf_.data(), buf_.size());
      const Status s = tasks_.get(sink, &n, timeout_ms);
      if (s == MPX_OK) break;
      if (s == MPX_ENOBUFS) {
        buf_.resize(size_t(sink.needed()));
        continue;
      }
      return s;
    }
    current_ = slot_->ordinal.load(std::memory_order_relaxed);
    holding_ = true;
    if (n < sizeof h) return fail(MPX_ECORRUPT, "pool: a task message of {} bytes is too short", n);
    std::memcpy(&h, buf_.data(), sizeof h);
    if (h.magic != kTaskMagic || h.name_len >= kNameBytes || n - sizeof h < h.name_len)
      return fail(MPX_ECORRUPT, "pool: a task message is malformed");
    flags_ = h.flags;
    count_ = h.count;
    job_ = h.job;
    name_.assign(reinterpret_cast<const char *>(buf_.data() + sizeof h), h.name_len);
    fn_ = h.fn;
    if (!job_cancelled(job_)) break;
    static const char kWhy[] = "cancelled before it started";
    ResultHeader r{kResultMagic, MPX_ECANCELED, current_, 0, uint32_t(sizeof kWhy - 1), 0, 0};
    out_.resize(sizeof r + sizeof kWhy - 1);
    std::memcpy(out_.data(), &r, sizeof r);
    std::memcpy(out_.data() + sizeof r, kWhy, sizeof kWhy - 1);
    --served_;  // not a task it ran
    if (Status s = send(out_); s != MPX_OK) return s;
  }
  task->flags = h.flags;
  task->name = name_.c_str();
  task->arg = buf_.data() + sizeof h + h.name_len;
  task->arg_size = size_t(n - sizeof h - h.name_len);
  return MPX_OK;
}

bool WorkerObject::job_cancelled(uint64_t job) {
  if (job == 0) return false;
  auto *st = reinterpret_cast<SharedStatus *>(place_.body<uint8_t>() + kStatusOffset);
  const uint32_t gen = st->cancel_gen.load(std::memory_order_acquire);
  if (gen != cancel_seen_) {
    cancel_seen_ = gen;
    cancelled_.clear();
    for (uint32_t i = 0; i < kCancelRing; ++i)
      if (uint64_t id = st->cancelled[i].load(std::memory_order_relaxed)) cancelled_.push_back(id);
  }
  for (uint64_t id : cancelled_)
    if (id == job) return true;
  return false;
}

Status WorkerObject::send(std::vector<uint8_t> &msg) {
  Status s = results_.put(msg.data(), msg.size(), -1);
  if (s == MPX_EMSGSIZE) {  // the result cannot travel: the task fails, the worker goes on
    const std::string why = fmt::format("the task's result of {} bytes is larger than the pool can carry: {}",
                                        msg.size(), detail::message());
    ResultHeader h{kResultMagic, MPX_EMSGSIZE, current_, 0, uint32_t(why.size()), 0, 0};
    msg.resize(sizeof h + why.size());
    std::memcpy(msg.data(), &h, sizeof h);
    std::memcpy(msg.data() + sizeof h, why.data(), why.size());
    s = results_.put(msg.data(), msg.size(), -1);
  }
  holding_ = false;
  slot_->ordinal.store(0, std::memory_order_release);
  ++served_;
  slot_->served.store(served_, std::memory_order_relaxed);
  if (cfg_.max_memory && resident_bytes() > cfg_.max_memory) retired_ = true;
  return s;
}

Status WorkerObject::reply(int status, const void *data, size_t size, const char *message) {
  if (!holding_) return fail(MPX_EINVAL, "mpx_worker_reply: no task is held (call mpx_worker_next first)");
  const size_t mlen = message ? strnlen(message, 65536) : 0;
  ResultHeader h{kResultMagic, status == 0 ? 0 : MPX_ETASK, current_, status, uint32_t(mlen), 0, 0};
  out_.resize(sizeof h + mlen + size);
  std::memcpy(out_.data(), &h, sizeof h);
  if (mlen) std::memcpy(out_.data() + sizeof h, message, mlen);
  if (size) std::memcpy(out_.data() + sizeof h + mlen, data, size);
  return send(out_);
}

Status WorkerObject::run_initializer(mpx_entry_fn by_pointer) {
  mpx_entry_fn fn = by_pointer;
  if (!fn && cfg_.initializer[0]) {
    fn = proc::find_entry(cfg_.initializer);
    if (!fn) return fail(MPX_ENOENT, "pool initializer \"{}\" is not registered", cfg_.initializer);
  }
  if (fn) fn(place_.body<uint8_t>() + initargs_offset(cfg_.slots), size_t(cfg_.initargs_size));
  return MPX_OK;
}

namespace {
// Run fn into out (appending its result after out->start).
int call_task(mpx_task_fn fn, const void *arg, size_t size, mpx_task_out *out) { return fn(arg, size, out); }
}  // namespace

void WorkerObject::run_chunk(mpx_task_fn fn, const uint8_t *payload, size_t size, uint32_t count,
                             std::vector<uint8_t> *out) {
  const size_t table = size_t(count) * sizeof(uint64_t);
  const size_t entries = sizeof(ResultHeader) + size_t(count) * sizeof(ItemEntry);
  out->resize(entries);
  if (size < table) {
    ResultHeader h{kResultMagic, MPX_ECORRUPT, current_, 0, 0, 0, 0};
    out->resize(sizeof h);
    std::memcpy(out->data(), &h, sizeof h);
    return;
  }
  const uint8_t *item = payload + table;
  const uint8_t *end = payload + size;
  for (uint32_t i = 0; i < count; ++i) {
    uint64_t n;
    std::memcpy(&n, payload + size_t(i) * sizeof n, sizeof n);
    ItemEntry e{0, 0, 0, 0, 0};
    if (n > uint64_t(end - item)) {
      e.status = MPX_ECORRUPT;
      n = 0;
    } else {
      mpx_task_out o{out, out->size(), {}};
      const int rc = call_task(fn, item, size_t(n), &o);
      e.size = out->size() - o.start;
      if (rc != 0) {
        e.status = MPX_ETASK;
        e.code = rc;
        e.msg_len = uint32_t(o.message.size());
        out->insert(out->end(), o.message.begin(), o.message.end());
      }
    }
    std::memcpy(out->data() + sizeof(ResultHeader) + size_t(i) * sizeof e, &e, sizeof e);
    item += n;
  }
  ResultHeader h{kResultMagic, 0, current_, 0, 0, count, 0};
  std::memcpy(out->data(), &h, sizeof h);
}

Status WorkerObject::serve(bool forked) {
  std::string last_name;
  mpx_task_fn last_fn = nullptr;
  mpx_worker_task t{};
  t.size = sizeof t;
  for (;;) {
    const Status s = next(-1, &t);
    if (s == MPX_ECLOSED) return MPX_OK;
    if (s != MPX_OK) return s;
    mpx_task_fn fn = nullptr;
    std::string error;
    if (flags_ & kByPointer) {
      if (forked) fn = reinterpret_cast<mpx_task_fn>(fn_);
      else error = "a task given by function pointer reached a worker that was not forked from the pool's process";
    } else if (name_ == last_name && last_fn) {
      fn = last_fn;
    } else if ((fn = find_task(name_))) {
      last_name = name_;
      last_fn = fn;
    } else {
      error = fmt::format("no task function named \"{}\" in worker {} (mpx_register_task it)", name_,
                          platform::current_pid());
    }
    out_.clear();
    if (!fn) {
      ResultHeader h{kResultMagic, MPX_ENOENT, current_, 0, uint32_t(error.size()), 0, 0};
      out_.resize(sizeof h);
      std::memcpy(out_.data(), &h, sizeof h);
      out_.insert(out_.end(), error.begin(), error.end());
    } else if (flags_ & kChunk) {
      run_chunk(fn, static_cast<const uint8_t *>(t.arg), t.arg_size, count_, &out_);
    } else {
      out_.resize(sizeof(ResultHeader));
      mpx_task_out o{&out_, out_.size(), {}};
      const int rc = call_task(fn, t.arg, t.arg_size, &o);
      ResultHeader h{kResultMagic, rc == 0 ? 0 : MPX_ETASK, current_, rc, 0, 0, 0};
      if (rc != 0 && !o.message.empty()) {
        // The message goes before the payload.
        h.msg_len = uint32_t(o.message.size());
        out_.insert(out_.begin() + sizeof h, o.message.begin(), o.message.end());
      }
      std::memcpy(out_.data(), &h, sizeof h);
    }
    if (Status r = send(out_); r != MPX_OK) return r == MPX_ECLOSED ? MPX_OK : r;
  }
}

void run_worker(const char *token, mpx_entry_fn init_by_pointer, bool forked) {
  int code = 0;
  {
    WorkerObject w;
    Status s = w.attach(token);
    if (s == MPX_OK) s = w.run_initializer(init_by_pointer);
    if (s == MPX_OK) s = w.serve(forked);
    if (s != MPX_OK) {
      std::fprintf(stderr, "mpx pool worker %u: %s\n", platform::current_pid(), detail::message());
      code = 1;
    }
  }
  std::fflush(nullptr);
  _exit(code);
}

}  // namespace mpx::pool
