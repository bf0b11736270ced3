// The parent's side of a pool: configuration, workers, the feeder, the collector and the
// supervisor (pool.hpp has the overview).
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>

#include "platform/process.hpp"
#include "platform/wait.hpp"
#include "pool/pool.hpp"

namespace mpx::pool {

namespace {

constexpr size_t kBatch = 64;       // tasks the feeder moves, results the collector takes, per lock
constexpr size_t kFeedBatch = 1024;  // tasks the feeder moves per lock
constexpr size_t kMinWindow = 4096;  // tasks in the queue or held, at most (and 4 per worker)
constexpr int64_t kTimeoutPollMs = 10;      // how often task timeouts are checked (while any is set)
constexpr int64_t kRetryStartMs = 100;      // after a worker failed to start
constexpr int64_t kTermGraceMs = 200;       // terminate: SIGTERM, then SIGKILL after this
constexpr int64_t kKillWaitMs = 1000;       // and then wait this long, at most, for an external worker

std::string signal_name(int sig) {
  const char *abbrev = sigabbrev_np(sig);
  return abbrev ? fmt::format("SIG{}", abbrev) : fmt::format("signal {}", sig);
}

// How a worker ended, for messages.
std::string how_it_ended(int exitcode) {
  if (exitcode < 0) return fmt::format("was killed by signal {} ({})", -exitcode, signal_name(-exitcode));
  return fmt::format("exited with status {}", exitcode);
}

std::chrono::steady_clock::time_point until(int64_t timeout_ms) {
  if (timeout_ms < 0) return std::chrono::steady_clock::time_point::max();
  return std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
}

void fork_main(void *arg) {
  auto *p = static_cast<PoolObject *>(arg);
  p->run_forked_worker();
}

}  // namespace

int (*g_fail_start)(uint64_t) = nullptr;

const uint8_t *JobState::keep(const uint8_t *p, size_t n) {
  constexpr size_t kBlock = 64 << 10;
  if (n == 0) return nullptr;
  if (n > kBlock / 4) {
    blocks.emplace_back(new uint8_t[n]);
    std::memcpy(blocks.back().get(), p, n);
    return blocks.back().get();
  }
  if (n > room) {
    blocks.emplace_back(new uint8_t[kBlock]);
    cursor = blocks.back().get();
    room = kBlock;
  }
  uint8_t *at = cursor;
  std::memcpy(at, p, n);
  const size_t used = (n + 7) & ~size_t(7);
  cursor += std::min(used, room);
  room -= std::min(used, room);
  return at;
}

void JobObject::wake_waiters() noexcept {
  if (state) {
    std::lock_guard<std::mutex> g(state->mu);
    state->cv.notify_all();
  }
}

PoolObject::~PoolObject() {
  terminate();
  stop_threads();
  for (auto &w : workers_)
    if (w.fd >= 0) ::close(w.fd);
  if (wake_fd_ >= 0) ::close(wake_fd_);
}

void PoolObject::wake_waiters() noexcept {
  std::lock_guard<std::mutex> g(mu_);
  done_cv_.notify_all();
  state_cv_.notify_all();
}

void PoolObject::run_forked_worker() { run_worker(token_.c_str(), cfg_.init_fn, true); }

Status PoolObject::init(const mpx_pool_options *o) {
  bound_pid = platform::current_pid();  // its threads are in this process: a forked child gets MPX_EFORKED
  if (o) {
    if (o->workers < 0) return fail(MPX_EINVAL, "workers must be at least 1 (0: one per CPU), not {}", o->workers);
    if (o->maxtasksperchild < 0)
      return fail(MPX_EINVAL, "maxtasksperchild must be positive (0: unlimited), not {}", o->maxtasksperchild);
    if (o->method > MPX_START_SPAWN) return fail(MPX_EINVAL, "unknown start method {}", o->method);
    if (o->flags & ~uint32_t(MPX_POOL_EXTERNAL)) return fail(MPX_EINVAL, "unknown pool flags {:#x}", o->flags);
    if (o->initargs_size && !o->initargs) return fail(MPX_EINVAL, "initargs is NULL but initargs_size is {}", o->initargs_size);
    if (o->initargs_size > kMaxInitargs) return fail(MPX_EINVAL, "initargs of {} bytes exceed {}", o->initargs_size, kMaxInitargs);
    if (o->initializer_name && strnlen(o->initializer_name, kNameBytes) >= kNameBytes)
      return fail(MPX_EINVAL, "initializer_name is longer than {} bytes", kNameBytes - 1);
    if (o->name && strnlen(o->name, 200) >= 200) return fail(MPX_EINVAL, "name is longer than 199 bytes");
    cfg_.workers = o->workers;
    cfg_.method = o->method;
    cfg_.flags = o->flags;
    cfg_.maxtasks = o->maxtasksperchild;
    cfg_.max_memory = o->max_worker_memory;
    cfg_.task_timeout_ms = o->task_timeout_ms > 0 ? o->task_timeout_ms : 0;
    cfg_.init_fn = o->initializer;
    if (o->initializer_name) cfg_.init_name = o->initializer_name;
    if (o->initargs_size)
      cfg_.initargs.assign(static_cast<const uint8_t *>(o->initargs),
                           static_cast<const uint8_t *>(o->initargs) + o->initargs_size);
    if (o->name) cfg_.name = o->name;
    if (o->file) cfg_.file = o->file;
    for (size_t i = 0; o->argv && o->argv[i]; ++i) {
      if (i >= 65536) return fail(MPX_EINVAL, "argv has no NULL terminator within 65536 entries");
      cfg_.argv.emplace_back(o->argv[i]);
    }
    for (size_t i = 0; o->env && o->env[i]; ++i) {
      if (i >= 65536) return fail(MPX_EINVAL, "env has no NULL terminator within 65536 entries");
      cfg_.env.emplace_back(o->env[i]);
    }
    cfg_.env_mode = o->env_mode;
    cfg_.capacity = o->queue_capacity;
  }
  if (cfg_.workers == 0) {
    int n = 1;
    mpx_cpu_count(&n);
    cfg_.workers = n > 0 ? n : 1;
  }
  if (cfg_.workers > 4096) return fail(MPX_EINVAL, "at most 4096 workers, not {}", cfg_.workers);
  if (cfg_.method == MPX_START_DEFAULT) cfg_.method = cfg_.file.empty() ? MPX_START_FORK : MPX_START_SPAWN;
  const bool external = cfg_.flags & MPX_POOL_EXTERNAL;
  if (!external) {
    if (cfg_.method == MPX_START_SPAWN && cfg_.file.empty())
      return fail(MPX_EINVAL, "spawn workers need `file`, a program that calls mpx_worker_main()");
    if (cfg_.method != MPX_START_SPAWN && !cfg_.file.empty())
      return fail(MPX_EINVAL, "`file` is for spawn workers only");
    if (cfg_.method != MPX_START_FORK && cfg_.init_fn)
      return fail(MPX_EINVAL, "an initializer by pointer needs fork workers (use initializer_name)");
  }
  if (cfg_.init_fn && !cfg_.init_name.empty())
    return fail(MPX_EINVAL, "give the initializer by pointer or by name, not both");

  queue::Options qo;
  qo.capacity = cfg_.capacity;
  if (Status s = QueueObject::create(qo, &tasks_); s != MPX_OK) return s;
  if (Status s = QueueObject::create(qo, &results_); s != MPX_OK) return s;
  if (Status s = create_shared(); s != MPX_OK) return s;
  wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_fd_ < 0) return fail_errno("eventfd");
  stats_.size = sizeof stats_;
  if (!external) {
    std::unique_lock<std::mutex> lk(mu_);
    for (int i = 0; i < cfg_.workers; ++i) {
      if (Status s = start_worker(); s != MPX_OK) {
        const std::string why = detail::message();
        lk.unlock();
        terminate();
        return fail(s, "{}", why);
      }
    }
  } else {
    external_wanted_ = size_t(cfg_.workers);
  }
  window_ = std::max<size_t>(kMinWindow, 4 * size_t(cfg_.workers));
  // An external pool starts its threads with its first task, so that the caller can fork its
  // first workers from a process with no threads of ours.
  if (!external) start_threads();
  return MPX_OK;
}

void PoolObject::start_threads() {
  if (threads_started_) return;
  threads_started_ = true;
  feeder_ = std::thread([this] { feeder(); });
  collector_ = std::thread([this] { collector(); });
  supervisor_ = std::thread([this] { supervisor(); });
}

Status PoolObject::create_shared() {
  const uint32_t slots = uint32_t(cfg_.workers) * 2 + 8;
  if (Status s = Placement::allocate(ObjType::pool, initargs_offset(slots) + cfg_.initargs.size(), &place_); s != MPX_OK)
    return s;
  shared_ = place_.body<Config>();
  shared_->layout = kLayout;
  shared_->slots = slots;
  shared_->maxtasks = cfg_.maxtasks;
  shared_->max_memory = cfg_.max_memory;
  shared_->initargs_size = cfg_.initargs.size();
  shared_->creator_pid = platform::current_pid();
  const std::string tt = tasks_.placement().token(), rt = results_.placement().token();
  if (tt.size() >= kTokenBytes || rt.size() >= kTokenBytes) return fail(MPX_ESYS, "queue token too long");
  std::memcpy(shared_->task_token, tt.c_str(), tt.size() + 1);
  std::memcpy(shared_->result_token, rt.c_str(), rt.size() + 1);
  std::memcpy(shared_->initializer, cfg_.init_name.c_str(), cfg_.init_name.size() + 1);
  status_ = reinterpret_cast<SharedStatus *>(place_.body<uint8_t>() + kStatusOffset);
  slots_ = reinterpret_cast<Slot *>(place_.body<uint8_t>() + kSlotsOffset);
  if (!cfg_.initargs.empty())
    std::memcpy(place_.body<uint8_t>() + initargs_offset(slots), cfg_.initargs.data(), cfg_.initargs.size());
  place_.publish();
  token_ = place_.token();
  return MPX_OK;
}

// ---- workers -----------------------------------------------------------------------------

Status PoolObject::start_worker() {
  mpx_process_options po;
  mpx_process_options_init(&po, sizeof po);
  po.method = cfg_.method;
  po.daemon = 1;
  const std::string name = fmt::format("{}-{}", cfg_.name, ++worker_number_);
  if (g_fail_start && g_fail_start(worker_number_)) [[unlikely]]
    return fail(MPX_EAGAIN, "starting pool worker {}: fork failed (injected)", name);
  po.name = name.c_str();
  std::vector<const char *> argv, env;
  std::string env_token;
  if (cfg_.method == MPX_START_FORK) {
    po.fn = &fork_main;
    po.arg = this;
  } else if (cfg_.method == MPX_START_FORKSERVER) {
    po.entry = "mpx.pool.worker";
    po.payload = token_.data();
    po.payload_size = token_.size();
  } else {
    po.file = cfg_.file.c_str();
    for (auto &a : cfg_.argv) argv.push_back(a.c_str());
    argv.push_back(nullptr);
    if (!cfg_.argv.empty()) po.argv = argv.data();
    env_token = "MPX_POOL_TOKEN=" + token_;
    for (auto &e : cfg_.env) env.push_back(e.c_str());
    env.push_back(env_token.c_str());
    env.push_back(nullptr);
    po.env = env.data();
    po.env_mode = cfg_.env_mode == MPX_ENV_INHERIT ? MPX_ENV_EXTEND : cfg_.env_mode;
  }
  mpx_process *h = nullptr;
  if (Status s = Status(mpx_process_create(&h, &po)); s != MPX_OK) return s;
  if (Status s = Status(mpx_process_start(h)); s != MPX_OK) {
    const std::string why = detail::message();
    mpx_process_destroy(h);
    return fail(s, "starting pool worker {}: {}", name, why);
  }
  int64_t pid = 0;
  mpx_process_pid(h, &pid);
  WorkerRec r;
  r.pid = pid;
  r.proc = h;
  r.name = name;
  workers_.push_back(std::move(r));
  ++stats_.workers_started;
  return MPX_OK;
}

// Work out whether the dead worker held a task and, if so, compose its failure. mu_ held.
void PoolObject::worker_ended(const WorkerRec &rec, int exitcode, std::vector<std::vector<uint8_t>> *notices) {
  Slot *s = nullptr;
  for (uint32_t i = 0; i < shared_->slots; ++i)
    if (slots_[i].pid.load(std::memory_order_acquire) == uint32_t(rec.pid)) s = &slots_[i];
  uint64_t held = 0;
  bool retiring = false;
  if (s) {
    retiring = s->state.load(std::memory_order_acquire) == kSlotRetiring;
    held = s->ordinal.load(std::memory_order_seq_cst);
    if (held != 0) {
      // Taken, or still in the queue for another worker? Ask the queue, under its consumer
      // lock (which also repairs it if the worker died holding it).
      bool taken = false;
      if (tasks_.lock_consumer() == MPX_OK) {
        taken = tasks_.items_got() >= held;
        for (uint32_t i = 0; i < shared_->slots && taken; ++i) {
          if (&slots_[i] == s) continue;
          const uint32_t pid = slots_[i].pid.load(std::memory_order_acquire);
          if (pid != 0 && slots_[i].ordinal.load(std::memory_order_seq_cst) == held) taken = false;
        }
        tasks_.unlock_consumer();
      }
      if (!taken) held = 0;
    }
    s->ordinal.store(0, std::memory_order_relaxed);
    s->state.store(kSlotFree, std::memory_order_relaxed);
    s->pid.store(0, std::memory_order_release);
  }
  if (held != 0) {
    const std::string msg =
        rec.timed_out ? fmt::format("{}; its worker {} (pid {}) was killed", rec.task_info, rec.name, rec.pid)
                      : fmt::format("worker {} (pid {}) {} while running the task", rec.name, rec.pid,
                                    how_it_ended(exitcode));
    ResultHeader h{kResultMagic, rec.timed_out ? MPX_ETIMEDOUT : MPX_EWORKERDIED, held, exitcode,
                   uint32_t(msg.size()), 0, 0};
    std::vector<uint8_t> m(sizeof h + msg.size());
    std::memcpy(m.data(), &h, sizeof h);
    std::memcpy(m.data() + sizeof h, msg.data(), msg.size());
    notices->push_back(std::move(m));
  }
  if (retiring && held == 0 && exitcode == 0) ++stats_.workers_retired;
  else if (state_ != State::terminated && !(tasks_closed_ && exitcode == 0)) ++stats_.workers_died;
}

void PoolObject::post(std::vector<std::vector<uint8_t>> &notices) {
  for (auto &m : notices) results_.put(m.data(), m.size(), -1);
  notices.clear();
}

// Closed, a pool still replaces workers while tasks wait for one: in the backlog, or in the
// task queue (put, not yet taken). Tasks that workers hold need no new worker.
bool PoolObject::replacing() const {
  if (state_ == State::terminated) return false;
  return state_ == State::running || !backlog_.empty() ||
         (inflight_live_ > 0 && tasks_.items_put() > tasks_.items_got());
}

bool PoolObject::finished() const {
  return state_ == State::terminated || (state_ == State::closed && backlog_.empty() && inflight_live_ == 0);
}

void PoolObject::check_timeouts() {
  if (!timeouts_used_) return;
  const int64_t now = platform::monotonic_ns();
  for (uint32_t i = 0; i < shared_->slots; ++i) {
    Slot &s = slots_[i];
    const uint32_t pid = s.pid.load(std::memory_order_acquire);
    const uint64_t o = s.ordinal.load(std::memory_order_acquire);
    if (pid == 0 || o == 0) continue;
    const int64_t started = s.started_ns.load(std::memory_order_acquire);
    Pending *p = find_inflight(o);
    if (!p || p->timeout_ms <= 0 || now - started < p->timeout_ms * 1'000'000) continue;
    if (s.ordinal.load(std::memory_order_acquire) != o) continue;  // it has moved on
    for (auto &w : workers_) {
      if (w.pid != int64_t(pid) || w.timed_out) continue;
      w.timed_out = true;
      w.task_info = fmt::format("the task ran past its timeout of {} ms", p->timeout_ms);
      if (w.proc) mpx_process_kill(w.proc);
      else if (w.fd >= 0) syscall(SYS_pidfd_send_signal, w.fd, SIGKILL, nullptr, 0);
    }
  }
}

void PoolObject::wake_supervisor() {
  const uint64_t one = 1;
  if (wake_fd_ >= 0) (void)!::write(wake_fd_, &one, sizeof one);
}

void PoolObject::supervisor() {
  std::vector<pollfd> fds;
  std::vector<std::vector<uint8_t>> notices;
  int64_t retry_at = 0;
  for (;;) {
    int timeout = -1;
    {
      std::lock_guard<std::mutex> g(mu_);
      if (state_ == State::terminated) return;
      fds.assign(1, pollfd{wake_fd_, POLLIN, 0});
      for (auto &w : workers_) {
        int fd = -1;
        if (w.proc && mpx_process_sentinel(w.proc, &fd) == MPX_OK) fds.push_back(pollfd{fd, POLLIN, 0});
      }
      if (timeouts_used_) timeout = int(kTimeoutPollMs);
      if (retry_at) timeout = int(kRetryStartMs);
      if (finished() && workers_.empty() && !(cfg_.flags & MPX_POOL_EXTERNAL)) {
        state_cv_.notify_all();
        return;
      }
    }
    ::poll(fds.data(), fds.size(), timeout);
    uint64_t drained;
    while (::read(wake_fd_, &drained, sizeof drained) > 0) {
    }
    std::unique_lock<std::mutex> lk(mu_);
    if (state_ == State::terminated) return;
    for (size_t i = 0; i < workers_.size();) {
      WorkerRec &w = workers_[i];
      if (!w.proc || mpx_process_join(w.proc, 0) != MPX_OK) {
        ++i;
        continue;
      }
      int code = 0;
      mpx_process_exitcode(w.proc, &code);
      worker_ended(w, code, &notices);
      mpx_process_destroy(w.proc);
      workers_.erase(workers_.begin() + long(i));
    }
    check_timeouts();
    if (!(cfg_.flags & MPX_POOL_EXTERNAL)) {
      retry_at = 0;
      while (replacing() && workers_.size() < size_t(cfg_.workers)) {
        if (start_worker() != MPX_OK) {
          retry_at = platform::monotonic_ns();
          break;
        }
      }
    } else {
      external_wanted_ = replacing() && workers_.size() < size_t(cfg_.workers) ? size_t(cfg_.workers) - workers_.size() : 0;
    }
    state_cv_.notify_all();
    lk.unlock();
    post(notices);
  }
}

Status PoolObject::add_worker(int64_t pid) {
  if (!(cfg_.flags & MPX_POOL_EXTERNAL)) return fail(MPX_EINVAL, "mpx_pool_add_worker: the pool starts its own workers");
  if (pid <= 0 || pid > INT32_MAX) return fail(MPX_EINVAL, "pid {} is not a process id", pid);
  std::lock_guard<std::mutex> g(mu_);
  if (state_ == State::terminated) return fail(MPX_ECLOSED, "the pool was terminated");
  for (auto &w : workers_)
    if (w.pid == pid) return fail(MPX_EEXIST, "worker {} was already added", pid);
  WorkerRec r;
  r.pid = pid;
  r.fd = int(syscall(SYS_pidfd_open, pid_t(pid), 0));
  r.name = fmt::format("{}-{}", cfg_.name, ++worker_number_);
  workers_.push_back(std::move(r));
  ++stats_.workers_started;
  if (external_wanted_) --external_wanted_;
  return MPX_OK;
}

Status PoolObject::worker_exited(int64_t pid, int exitcode) {
  if (!(cfg_.flags & MPX_POOL_EXTERNAL)) return fail(MPX_EINVAL, "mpx_pool_worker_exited: the pool watches its own workers");
  std::vector<std::vector<uint8_t>> notices;
  {
    std::lock_guard<std::mutex> g(mu_);
    size_t i = 0;
    while (i < workers_.size() && workers_[i].pid != pid) ++i;
    if (i == workers_.size()) return fail(MPX_ENOENT, "no worker with pid {} in this pool", pid);
    worker_ended(workers_[i], exitcode, &notices);
    if (workers_[i].fd >= 0) ::close(workers_[i].fd);
    workers_.erase(workers_.begin() + long(i));
    external_wanted_ = replacing() && workers_.size() < size_t(cfg_.workers) ? size_t(cfg_.workers) - workers_.size() : 0;
    state_cv_.notify_all();
  }
  post(notices);
  return MPX_OK;
}

Status PoolObject::wanted(size_t *n) {
  std::lock_guard<std::mutex> g(mu_);
  *n = 0;
  if (finished()) return fail(MPX_ECLOSED, "the pool has finished: start no more workers");
  *n = external_wanted_;
  return MPX_OK;
}

Status PoolObject::worker_pids(std::vector<int64_t> *out) {
  std::lock_guard<std::mutex> g(mu_);
  for (auto &w : workers_) out->push_back(w.pid);
  return MPX_OK;
}

Status PoolObject::stats(mpx_pool_stats *out) {
  std::lock_guard<std::mutex> g(mu_);
  *out = stats_;
  return MPX_OK;
}

// ---- submitting ------------------------------------------------------------------------

Status PoolObject::check_target(mpx_task_fn fn, const char *name) {
  if (!fn && (!name || !*name)) return fail(MPX_EINVAL, "a task needs fn or name");
  if (fn && name && *name) return fail(MPX_EINVAL, "give a task's function by pointer or by name, not both");
  if (fn && (cfg_.method != MPX_START_FORK || (cfg_.flags & MPX_POOL_EXTERNAL)))
    return fail(MPX_EINVAL, "a task by function pointer needs fork workers (register it and give its name)");
  if (name && strnlen(name, kNameBytes) >= kNameBytes)
    return fail(MPX_EINVAL, "a task name is at most {} bytes", kNameBytes - 1);
  return MPX_OK;
}

Bytes PoolObject::task_message(mpx_task_fn fn, const char *name, uint64_t job, uint32_t count, size_t payload) {
  const size_t nlen = fn || !name ? 0 : std::strlen(name);
  TaskHeader h{kTaskMagic, (fn ? uint32_t(kByPointer) : 0u) | (count ? uint32_t(kChunk) : 0u),
               uint64_t(reinterpret_cast<uintptr_t>(fn)), uint32_t(nlen), count, job};
  Bytes m(sizeof h + nlen + payload);
  std::memcpy(m.data(), &h, sizeof h);
  if (nlen) std::memcpy(m.data() + sizeof h, name, nlen);
  return m;
}

Status PoolObject::enqueue(std::vector<Pending> &tasks, size_t items) {
  std::lock_guard<std::mutex> g(mu_);
  if (state_ != State::running)
    return fail(MPX_ECLOSED, "the pool is {}: no more tasks", state_ == State::closed ? "closed" : "terminated");
  start_threads();
  for (auto &t : tasks) {
    if (t.timeout_ms > 0) timeouts_used_ = true;
    backlog_.push_back(std::move(t));
  }
  stats_.tasks_submitted += items;
  feed_cv_.notify_one();
  if (timeouts_used_) wake_supervisor();
  return MPX_OK;
}

int64_t PoolObject::task_timeout(int64_t ms) const { return ms == 0 ? cfg_.task_timeout_ms : ms < 0 ? -1 : ms; }

Status PoolObject::apply_async(const mpx_task *t, const std::shared_ptr<JobState> &job) {
  if (Status s = check_target(t->fn, t->name); s != MPX_OK) return s;
  if (t->arg_size && !t->arg) return fail(MPX_EINVAL, "arg is NULL but arg_size is {}", t->arg_size);
  job->items.resize(1);
  job->chunk_first = {0, 1};
  job->chunks = {kQueued};
  job->callback = t->callback;
  job->ctx = t->ctx;
  job->started_ns = platform::monotonic_ns();
  std::vector<Pending> v(1);
  v[0].job = job;
  v[0].timeout_ms = task_timeout(t->timeout_ms);
  {
    std::lock_guard<std::mutex> g(mu_);
    job->id = ++job_number_;
  }
  v[0].msg = task_message(t->fn, t->name, job->id, 0, t->arg_size);
  if (t->arg_size) std::memcpy(v[0].msg.data() + v[0].msg.size() - t->arg_size, t->arg, t->arg_size);
  return enqueue(v, 1);
}

Status PoolObject::map(const mpx_map *m, const std::shared_ptr<JobState> &job) {
  if (Status s = check_target(m->fn, m->name); s != MPX_OK) return s;
  if (cfg_.flags & MPX_POOL_EXTERNAL)
    return fail(MPX_EINVAL, "a map's chunks need the library's worker loop; external workers take single tasks "
                            "(apply_async or mpx_pool_submit)");
  if (m->flags & ~uint32_t(MPX_MAP_ORDERED)) return fail(MPX_EINVAL, "unknown map flags {:#x}", m->flags);
  const bool packed = m->data != nullptr || m->item_size != 0;
  if (m->count && packed && (!m->data || m->items || m->sizes))
    return fail(MPX_EINVAL, "give the items as data + item_size, or as items + sizes");
  if (m->count && !packed && (!m->items || !m->sizes)) return fail(MPX_EINVAL, "items or sizes is NULL");
  if (m->count > UINT32_MAX) return fail(MPX_EINVAL, "a map has at most {} items", UINT32_MAX);
  size_t chunk = m->chunksize;
  if (chunk == 0) {  // Python's: divmod(len, 4 * workers), rounded up
    const size_t per = 4 * size_t(cfg_.workers);
    chunk = m->count / per + (m->count % per ? 1 : 0);
    if (chunk == 0) chunk = 1;
  }
  job->items.resize(m->count);
  job->ordered = m->flags & MPX_MAP_ORDERED;
  job->callback = m->callback;
  job->ctx = m->ctx;
  job->started_ns = platform::monotonic_ns();
  const size_t nchunks = (m->count + chunk - 1) / chunk;
  {
    std::lock_guard<std::mutex> g(mu_);
    job->id = ++job_number_;
  }
  job->chunk_first.reserve(nchunks + 1);
  job->chunks.assign(nchunks, kQueued);
  std::vector<Pending> v(nchunks);
  const int64_t timeout = task_timeout(m->timeout_ms);
  for (size_t c = 0; c < nchunks; ++c) {
    const size_t first = c * chunk, n = std::min(chunk, m->count - first);
    job->chunk_first.push_back(uint32_t(first));
    size_t bytes = packed ? n * m->item_size : 0;
    for (size_t i = first; !packed && i < first + n; ++i) {
      if (m->sizes[i] && !m->items[i]) return fail(MPX_EINVAL, "items[{}] is NULL but its size is {}", i, m->sizes[i]);
      bytes += m->sizes[i];
    }
    Pending &p = v[c];
    p.job = job;
    p.chunk = uint32_t(c);
    p.timeout_ms = timeout;
    p.msg = task_message(m->fn, m->name, job->id, uint32_t(n), n * sizeof(uint64_t) + bytes);
    uint8_t *table = p.msg.data() + p.msg.size() - bytes - n * sizeof(uint64_t);
    uint8_t *dst = table + n * sizeof(uint64_t);
    if (packed) {
      const uint64_t sz = m->item_size;
      for (size_t i = 0; i < n; ++i) std::memcpy(table + i * sizeof sz, &sz, sizeof sz);
      if (bytes) std::memcpy(dst, static_cast<const uint8_t *>(m->data) + first * m->item_size, bytes);
    } else {
      for (size_t i = 0; i < n; ++i) {
        const uint64_t sz = m->sizes[first + i];
        std::memcpy(table + i * sizeof sz, &sz, sizeof sz);
        if (sz) std::memcpy(dst, m->items[first + i], sz);
        dst += sz;
      }
    }
  }
  job->chunk_first.push_back(uint32_t(m->count));
  if (m->count == 0) {
    std::lock_guard<std::mutex> g(mu_);
    if (state_ != State::running) return fail(MPX_ECLOSED, "the pool is not running: no more tasks");
  } else if (Status s = enqueue(v, m->count); s != MPX_OK) {
    return s;
  }
  if (m->count == 0 && job->callback) job->callback(job->ctx, static_cast<mpx_job *>(job->handle));
  return MPX_OK;
}

Status PoolObject::submit(const char *name, const uint8_t *records, size_t bytes, size_t count, int64_t timeout_ms) {
  if (!name || !*name) return fail(MPX_EINVAL, "name is NULL or empty");
  if (strnlen(name, kNameBytes) >= kNameBytes) return fail(MPX_EINVAL, "a task name is at most {} bytes", kNameBytes - 1);
  std::vector<Pending> v(count);
  size_t off = 0;
  const int64_t timeout = task_timeout(timeout_ms);
  for (size_t i = 0; i < count; ++i) {
    mpx_record_header h;
    if (bytes - off < sizeof h) return fail(MPX_EINVAL, "records: record {} of {} runs past the {} bytes", i, count, bytes);
    std::memcpy(&h, records + off, sizeof h);
    off += sizeof h;
    if (h.size > bytes - off) return fail(MPX_EINVAL, "records: record {}'s {} bytes run past the end", i, h.size);
    v[i].tag = h.tag;
    v[i].timeout_ms = timeout;
    v[i].msg = task_message(nullptr, name, 0, 0, size_t(h.size));
    if (h.size) std::memcpy(v[i].msg.data() + v[i].msg.size() - h.size, records + off, size_t(h.size));
    off += size_t((h.size + 7) / 8 * 8);
    if (off > bytes) off = bytes;
  }
  return enqueue(v, count);
}

// ---- the feeder ------------------------------------------------------------------------

Pending *PoolObject::find_inflight(uint64_t ordinal) {
  if (ordinal < inflight_base_ || ordinal - inflight_base_ >= inflight_.size()) return nullptr;
  Pending &p = inflight_[size_t(ordinal - inflight_base_)];
  return p.live ? &p : nullptr;
}

void PoolObject::maybe_close_tasks() {
  if (state_ == State::closed && backlog_.empty() && !feeding_ && !tasks_closed_) {
    tasks_closed_ = true;
    tasks_.close();
  }
}

void PoolObject::feeder() {
  std::vector<Bytes> msgs;
  std::vector<uint64_t> ordinals;
  std::unique_lock<std::mutex> lk(mu_);
  for (;;) {
    // Tasks go to the queue only a window ahead of the workers, so that the rest can still be
    // cancelled (the collector wakes us as tasks end).
    feed_cv_.wait(lk, [&] {
      return (!backlog_.empty() && inflight_live_ <= window_ / 2) || state_ == State::terminated ||
             (state_ == State::closed && backlog_.empty());
    });
    if (state_ == State::terminated) return;
    if (backlog_.empty()) {
      maybe_close_tasks();
      if (tasks_closed_) return;
      continue;
    }
    // Note a batch under the ordinals the queue will give it (we are its only producer).
    uint64_t next = tasks_.items_put() + 1;
    if (inflight_.empty()) inflight_base_ = next;
    while (inflight_base_ + inflight_.size() < next) inflight_.emplace_back();  // ordinals lost to a failed put
    msgs.clear();
    ordinals.clear();
    while (!backlog_.empty() && msgs.size() < kFeedBatch && inflight_live_ < window_) {
      Pending p = std::move(backlog_.front());
      backlog_.pop_front();
      if (p.job && p.job->chunks[p.chunk] != kQueued) continue;  // cancelled
      if (p.job) p.job->chunks[p.chunk] = kSent;
      msgs.push_back(std::move(p.msg));
      p.live = true;
      inflight_.push_back(std::move(p));
      ++inflight_live_;
      ordinals.push_back(next++);
    }
    feeding_ = true;
    lk.unlock();
    size_t sent = 0;
    Status s = MPX_OK;
    for (; sent < msgs.size(); ++sent)
      if ((s = tasks_.put(msgs[sent].data(), msgs[sent].size(), -1)) != MPX_OK) break;
    lk.lock();
    feeding_ = false;
    if (sent < msgs.size()) {  // the queue was closed (terminate) or failed
      const std::string why = s == MPX_ECLOSED ? std::string("the pool was terminated") : std::string(detail::message());
      std::vector<std::shared_ptr<JobState>> calls;
      for (size_t i = sent; i < msgs.size(); ++i)
        end_task(ordinals[i], s == MPX_ECLOSED ? MPX_ECANCELED : s, 0, nullptr, 0, why, 0, &calls);
      lk.unlock();
      run_callbacks(calls);
      lk.lock();
      if (state_ == State::terminated) return;
    }
    maybe_close_tasks();
  }
}

// ---- the collector and ending tasks ------------------------------------------------------

void PoolObject::run_callbacks(std::vector<std::shared_ptr<JobState>> &calls) {
  for (auto &j : calls) j->callback(j->ctx, static_cast<mpx_job *>(j->handle));
  calls.clear();
}

void PoolObject::end_task(uint64_t ordinal, int32_t status, int32_t code, const uint8_t *payload, uint64_t size,
                          const std::string &msg, uint32_t count, std::vector<std::shared_ptr<JobState>> *calls) {
  Pending *p = find_inflight(ordinal);
  if (!p) return;  // ended already (a worker's own result before the news of its death)
  Pending task = std::move(*p);
  p->live = false;
  --inflight_live_;
  while (!inflight_.empty() && !inflight_.front().live) {
    inflight_.pop_front();
    ++inflight_base_;
  }
  settle(task, status, code, payload, size, msg, count, calls);
  if (!backlog_.empty() && inflight_live_ == window_ / 2) feed_cv_.notify_one();
}

// Give a task its outcome (mu_ held); payload is copied.
void PoolObject::settle(Pending &task, int32_t status, int32_t code, const uint8_t *payload, uint64_t size,
                        const std::string &msg, uint32_t count, std::vector<std::shared_ptr<JobState>> *calls) {
  if (!task.job) {
    if (status == 0) ++stats_.tasks_succeeded;
    else ++stats_.tasks_failed;
    std::unique_ptr<uint8_t[]> copy(size ? new uint8_t[size_t(size)] : nullptr);
    if (size) std::memcpy(copy.get(), payload, size_t(size));
    done_.push_back(Done{task.tag, status, code, std::move(copy), size, msg});
    if (collecting_) done_cv_.notify_all();
    return;
  }
  JobState &job = *task.job;
  job.chunks[task.chunk] = kEnded;
  const uint32_t first = job.chunk_first[task.chunk], last = job.chunk_first[task.chunk + 1];
  std::lock_guard<std::mutex> g(job.mu);
  if (size) payload = job.keep(payload, size_t(size));  // the items point into the copy
  auto end_item = [&](uint32_t i, int32_t st, int32_t cd, const uint8_t *d, uint64_t n, std::string m) {
    Item &it = job.items[i];
    it.status = st;
    it.code = cd;
    it.data = d;
    it.size = n;
    if (!m.empty()) {
      job.messages.push_back(std::move(m));
      it.message = uint32_t(job.messages.size());
    }
    ++job.done;
    if (st != 0) {
      ++job.failed;
      ++stats_.tasks_failed;
    } else {
      ++stats_.tasks_succeeded;
    }
    if (!job.ordered) job.ended_order.push_back(i);
  };
  if (count == 0) {
    // A single task's result, or one outcome for every item of the chunk.
    for (uint32_t i = first; i < last; ++i) end_item(i, status, code, payload, size, msg);
  } else if (count != last - first || size < uint64_t(count) * sizeof(ItemEntry)) {
    for (uint32_t i = first; i < last; ++i) end_item(i, MPX_ECORRUPT, 0, nullptr, 0, "malformed chunk result");
  } else {
    const uint8_t *data = payload + size_t(count) * sizeof(ItemEntry);
    const uint8_t *end = payload + size;
    for (uint32_t k = 0; k < count; ++k) {
      ItemEntry e;
      std::memcpy(&e, payload + size_t(k) * sizeof e, sizeof e);
      if (e.size > uint64_t(end - data) || e.msg_len > uint64_t(end - data) - e.size) {
        for (uint32_t i = first + k; i < last; ++i) end_item(i, MPX_ECORRUPT, 0, nullptr, 0, "malformed chunk result");
        break;
      }
      std::string m;
      if (e.msg_len) m.assign(reinterpret_cast<const char *>(data + e.size), e.msg_len);
      end_item(first + k, e.status, e.code, data, e.size, std::move(m));
      data += e.size + e.msg_len;
    }
  }
  if (job.waiting_next || (job.waiting_all && job.ready())) job.cv.notify_all();
  if (job.ready() && job.callback) calls->push_back(task.job);
}

void PoolObject::collector() {
  // Results are taken into reusable buffers, a batch at a time, then ended under one lock.
  std::vector<std::vector<uint8_t>> bufs(kBatch, std::vector<uint8_t>(4096));
  std::vector<uint64_t> sizes(kBatch);
  std::vector<std::shared_ptr<JobState>> calls;
  for (;;) {
    size_t got = 0;
    for (int64_t timeout = -1; got < kBatch; timeout = 0) {
      queue::Sink sink = queue::Sink::into(bufs[got].data(), bufs[got].size());
      const Status s = results_.get(sink, &sizes[got], timeout);
      if (s == MPX_ENOBUFS) {
        bufs[got].resize(size_t(sink.needed()));
        timeout = -1;  // the item is still first
        continue;
      }
      if (s != MPX_OK) {
        if (s == MPX_ETIMEDOUT) break;
        if (got == 0) {  // closed (terminate), or broken: nothing more will come
          std::lock_guard<std::mutex> g(mu_);
          collector_done_ = true;
          done_cv_.notify_all();
          return;
        }
        break;
      }
      ++got;
    }
    std::unique_lock<std::mutex> lk(mu_);
    for (size_t i = 0; i < got; ++i) {
      const uint8_t *b = bufs[i].data();
      const uint64_t n = sizes[i];
      ResultHeader h;
      if (n < sizeof h) continue;
      std::memcpy(&h, b, sizeof h);
      if (h.magic != kResultMagic || h.msg_len > n - sizeof h) continue;
      std::string msg(reinterpret_cast<const char *>(b + sizeof h), h.msg_len);
      end_task(h.ordinal, h.status, h.code, b + sizeof h + h.msg_len, n - sizeof h - h.msg_len, msg, h.count, &calls);
    }
    if (state_ == State::closed) {
      maybe_close_tasks();
      if (finished()) wake_supervisor();
    }
    lk.unlock();
    if (!calls.empty()) run_callbacks(calls);
    // A huge result's buffer is not kept for the next.
    for (size_t i = 0; i < got; ++i)
      if (bufs[i].size() > (1 << 20)) std::vector<uint8_t>(4096).swap(bufs[i]);
  }
}

Status PoolObject::collect(uint8_t *buf, size_t cap, size_t *used, size_t *count, int64_t timeout_ms) {
  *used = 0;
  *count = 0;
  std::unique_lock<std::mutex> lk(mu_);
  ++collecting_;
  const bool ok = done_cv_.wait_until(lk, until(timeout_ms), [&] {
    return !done_.empty() || collector_done_ || closing() || state_ == State::terminated;
  });
  --collecting_;
  if (closing()) return fail(MPX_ECLOSED, "the pool was destroyed");
  if (done_.empty()) {
    if (!ok) return fail(MPX_ETIMEDOUT, "no result within {} ms", timeout_ms);
    return fail(MPX_ECLOSED, "the pool was terminated: no more results");
  }
  size_t off = 0;
  while (!done_.empty()) {
    Done &d = done_.front();
    const size_t need = sizeof(mpx_record_header) + (d.size + d.message.size() + 7) / 8 * 8;
    if (cap - off < need) {
      if (*count == 0) {
        *used = need;
        return fail(MPX_ENOBUFS, "buffer of {} bytes is too small for a result of {}", cap, need);
      }
      break;
    }
    mpx_record_header h{d.tag, d.size, d.status, d.code, uint32_t(d.message.size()), 0};
    std::memcpy(buf + off, &h, sizeof h);
    uint8_t *p = buf + off + sizeof h;
    if (d.size) std::memcpy(p, d.data.get(), size_t(d.size));
    if (!d.message.empty()) std::memcpy(p + d.size, d.message.data(), d.message.size());
    const size_t written = sizeof h + d.size + d.message.size();
    std::memset(buf + off + written, 0, need - written);
    off += need;
    ++*count;
    done_.pop_front();
  }
  *used = off;
  return MPX_OK;
}

// ---- cancel, close, terminate, join --------------------------------------------------------

Status PoolObject::cancel(JobState *job, size_t *cancelled) {
  std::vector<std::shared_ptr<JobState>> calls;
  size_t n = 0;
  {
    std::lock_guard<std::mutex> g(mu_);
    // Tasks already in the queue: workers end them unrun (see SharedStatus::cancelled).
    if (status_) {
      const uint32_t gen = status_->cancel_gen.load(std::memory_order_relaxed);
      status_->cancelled[gen % kCancelRing].store(job->id, std::memory_order_relaxed);
      status_->cancel_gen.store(gen + 1, std::memory_order_release);
    }
    for (auto &p : backlog_) {
      if (p.job.get() != job || job->chunks[p.chunk] != kQueued) continue;
      n += job->chunk_first[p.chunk + 1] - job->chunk_first[p.chunk];
      settle(p, MPX_ECANCELED, 0, nullptr, 0, "cancelled before it started", 0, &calls);
    }
  }
  run_callbacks(calls);
  if (cancelled) *cancelled = n;
  return MPX_OK;
}

Status PoolObject::close() {
  std::lock_guard<std::mutex> g(mu_);
  if (state_ == State::running) state_ = State::closed;
  maybe_close_tasks();
  feed_cv_.notify_all();
  wake_supervisor();
  return MPX_OK;
}

Status PoolObject::terminate() {
  std::vector<std::shared_ptr<JobState>> calls;
  std::vector<WorkerRec> workers;
  std::vector<int> external;
  {
    std::lock_guard<std::mutex> g(mu_);
    if (state_ == State::terminated) return MPX_OK;
    state_ = State::terminated;
    if (status_) status_->terminating.store(1, std::memory_order_release);
    const std::string why = "the pool was terminated before the task ended";
    for (auto &p : backlog_)
      if (!p.job || p.job->chunks[p.chunk] == kQueued) settle(p, MPX_ECANCELED, 0, nullptr, 0, why, 0, &calls);
    backlog_.clear();
    for (auto &p : inflight_)
      if (p.live) {
        p.live = false;
        settle(p, MPX_ECANCELED, 0, nullptr, 0, why, 0, &calls);
      }
    inflight_.clear();
    inflight_live_ = 0;
    if (shared_) {
      tasks_.close();
      results_.close();
      tasks_closed_ = true;
    }
    for (auto &w : workers_) {
      if (w.proc) mpx_process_terminate(w.proc);
      else if (w.fd >= 0) syscall(SYS_pidfd_send_signal, w.fd, SIGTERM, nullptr, 0);
    }
    // Internal workers are ours to reap; external ones stay listed until reported (the
    // caller reaps them), and we watch them through duplicates of their pidfds.
    for (size_t i = 0; i < workers_.size();) {
      if (workers_[i].proc) {
        workers.push_back(std::move(workers_[i]));
        workers_.erase(workers_.begin() + long(i));
      } else {
        if (workers_[i].fd >= 0) external.push_back(fcntl(workers_[i].fd, F_DUPFD_CLOEXEC, 0));
        ++i;
      }
    }
    feed_cv_.notify_all();
    done_cv_.notify_all();
    state_cv_.notify_all();
  }
  wake_supervisor();
  run_callbacks(calls);
  // SIGTERM had its grace period; then SIGKILL, and reap every one.
  const int64_t deadline = platform::monotonic_ns() + kTermGraceMs * 1'000'000;
  for (auto &w : workers) {
    const int64_t left = (deadline - platform::monotonic_ns()) / 1'000'000;
    if (mpx_process_join(w.proc, left > 0 ? left : 0) != MPX_OK) {
      mpx_process_kill(w.proc);
      mpx_process_join(w.proc, -1);
    }
    mpx_process_destroy(w.proc);
  }
  // External workers: the same grace, then SIGKILL; wait (a moment) for them to end.
  auto ended = [](int fd, int64_t ms) {
    pollfd p{fd, POLLIN, 0};
    return ::poll(&p, 1, int(ms)) > 0;
  };
  for (int fd : external) {
    if (fd < 0) continue;
    const int64_t left = (deadline - platform::monotonic_ns()) / 1'000'000;
    if (!ended(fd, left > 0 ? left : 0)) {
      syscall(SYS_pidfd_send_signal, fd, SIGKILL, nullptr, 0);
      ended(fd, kKillWaitMs);
    }
    ::close(fd);
  }
  {
    std::lock_guard<std::mutex> g(mu_);
    state_cv_.notify_all();
  }
  return MPX_OK;
}

Status PoolObject::join(int64_t timeout_ms) {
  std::unique_lock<std::mutex> lk(mu_);
  if (state_ == State::running) return fail(MPX_EINVAL, "join: close or terminate the pool first");
  const bool ok = state_cv_.wait_until(lk, until(timeout_ms), [&] {
    return closing() || (finished() && workers_.empty());
  });
  if (closing()) return fail(MPX_ECLOSED, "the pool was destroyed");
  if (!ok) return fail(MPX_ETIMEDOUT, "pool workers still running after {} ms", timeout_ms);
  return MPX_OK;
}

void PoolObject::stop_threads() {
  if (threads_stopped_) return;
  threads_stopped_ = true;
  {
    std::lock_guard<std::mutex> g(mu_);
    feed_cv_.notify_all();
  }
  wake_supervisor();
  if (feeder_.joinable()) feeder_.join();
  if (collector_.joinable()) collector_.join();
  if (supervisor_.joinable()) supervisor_.join();
}

}  // namespace mpx::pool
