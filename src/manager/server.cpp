// The manager server (server.hpp): the object table, the accept thread, the sessions and
// the operations on each object type.
#include "manager/server.hpp"

#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <deque>
#include <fmt/format.h>
#include <vector>

#include "manager/protocol.hpp"
#include "platform/fork_mutex.hpp"
#include "platform/process.hpp"
#include "mpx/connection.h"
#include "mpx/manager.h"
#include "mpx/queue.h"
#include "mpx/sync.h"

namespace mpx::manager {

namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kSlice = std::chrono::milliseconds(100);  // how often a blocked wait looks at its client
constexpr uint64_t kMaxMessage = uint64_t(1) << 32;      // a request larger than this is refused unread

struct Waiter {
  bool notified = false;
};

}  // namespace

struct MObj : std::enable_shared_from_this<MObj> {
  uint64_t id = 0;
  uint32_t type = 0;
  std::string name;
  uint64_t refs = 0;  // Server::mu_

  std::mutex mu;
  std::condition_variable cv;
  // dict, namespace
  std::unordered_map<std::string, std::string> dict;
  // list
  std::vector<std::string> list;
  // queue
  std::deque<std::string> items;
  uint64_t maxsize = 0;
  uint64_t unfinished = 0;
  // lock, rlock (depth, owner), semaphore (count, bound)
  int64_t count = 0;
  int64_t bound = 0;
  int64_t depth = 0;
  uint64_t owner = 0;  // session id
  bool owner_died = false;
  // condition
  std::shared_ptr<MObj> lock;
  std::list<Waiter *> waiters;
  // event
  bool flag = false;
  // barrier
  uint32_t parties = 0;
  uint32_t arrived = 0;
  uint64_t generation = 0;
  uint64_t epoch = 0;
  bool broken = false;
  // value, array
  int typecode = 0;
  size_t itemsize = 0;
  std::string data;
};

// One client: its connection, its optional shared-memory queues, its references and locks.
class Session {
 public:
  Session(Server &server, uint64_t id, mpx_conn *conn) : server_(server), id_(id), conn_(conn) {
    mpx_conn_fileno(conn, &fd_);
    platform::drop_in_fork_child(fd_);  // a forked child holding it would hide this client's death
  }
  ~Session() {
    if (req_) mpx_queue_destroy(req_);
    if (rep_) mpx_queue_destroy(rep_);
    platform::forget_in_fork_child(fd_);
    mpx_conn_destroy(conn_);
  }
  void run();
  // From the server's teardown: wake the session's thread wherever it waits.
  void interrupt() {
    ::shutdown(fd_, SHUT_RDWR);
    std::lock_guard lk(qmu_);
    if (req_) mpx_queue_close(req_);
  }
  uint64_t id() const { return id_; }
  bool finished() const { return done_.load(std::memory_order_acquire); }
  std::unordered_map<uint64_t, uint64_t> refs;  // object id -> references this client holds

 private:
  bool gone();
  Status receive(std::string *msg);
  // Answer over the transport the request came by (the hello that sets up the queues is
  // answered over the socket).
  Status reply(const std::string &msg, bool via_queue);
  void handle(const std::string &msg, std::string *out);
  Status dispatch(const RequestHeader &h, Reader &r, MObj *o, std::string *out);
  Status hello_shm(Reader &r);
  void cleanup();

  template <typename Ready>
  Status wait(MObj &o, std::unique_lock<std::mutex> &lk, int64_t timeout_ms, Ready ready);
  Status acquire(MObj &o, int64_t timeout_ms);
  Status release(MObj &o);
  Status cond_wait(MObj &c, int64_t timeout_ms);
  Status cond_notify(MObj &c, uint64_t n);
  Status barrier_wait(MObj &b, int64_t timeout_ms, int64_t *index);

  Server &server_;
  uint64_t id_;
  mpx_conn *conn_;
  int fd_ = -1;
  std::mutex qmu_;            // req_ between hello_shm and interrupt
  mpx_queue *req_ = nullptr;  // shared-memory path: requests in, replies out
  mpx_queue *rep_ = nullptr;
  std::unordered_map<MObj *, std::shared_ptr<MObj>> held_;  // locks this client acquired
  std::atomic<bool> done_{false};
};

// ---- waiting -----------------------------------------------------------------------------

bool Session::gone() { return peer_gone(fd_); }

template <typename Ready>
Status Session::wait(MObj &o, std::unique_lock<std::mutex> &lk, int64_t timeout_ms, Ready ready) {
  const auto deadline = timeout_ms < 0 ? Clock::time_point::max()
                                       : Clock::now() + std::chrono::milliseconds(std::min<int64_t>(timeout_ms, INT64_MAX / 2000000));
  bool slept = false;
  for (;;) {
    if (ready()) {
      if (!slept) return MPX_OK;
      // What woke us must go to a live client: a client that died while waiting must not
      // take the item, the count or the lock (it would be lost with the reply).
      lk.unlock();
      const bool g = gone();
      lk.lock();
      if (g) return fail(MPX_EOF, "the client disconnected");
      if (ready()) return MPX_OK;
      slept = false;
      continue;
    }
    if (server_.stopping()) return fail(MPX_ECLOSED, "the manager is shutting down");
    const auto now = Clock::now();
    if (timeout_ms == 0 || now >= deadline) return fail(MPX_ETIMEDOUT, "timed out");
    const auto left = deadline - now;
    o.cv.wait_for(lk, left < kSlice ? std::chrono::duration_cast<Clock::duration>(left) : Clock::duration(kSlice));
    slept = true;
    if (ready()) continue;
    lk.unlock();
    const bool g = gone();
    lk.lock();
    if (g) return fail(MPX_EOF, "the client disconnected");
  }
}

// ---- locks, conditions, barriers ---------------------------------------------------------

Status Session::acquire(MObj &o, int64_t timeout_ms) {
  std::unique_lock lk(o.mu);
  Status s = MPX_OK;
  switch (o.type) {
    case MPX_MOBJ_LOCK:
      s = wait(o, lk, timeout_ms, [&] { return o.depth == 0; });
      if (s != MPX_OK) return s;
      o.depth = 1;
      o.owner = id_;
      break;
    case MPX_MOBJ_RLOCK:
      if (o.owner == id_ && o.depth > 0) {
        ++o.depth;
        return MPX_OK;
      }
      s = wait(o, lk, timeout_ms, [&] { return o.depth == 0; });
      if (s != MPX_OK) return s;
      o.depth = 1;
      o.owner = id_;
      break;
    default:  // semaphores
      s = wait(o, lk, timeout_ms, [&] { return o.count > 0; });
      if (s != MPX_OK) return s;
      --o.count;
      return MPX_OK;
  }
  held_.try_emplace(&o, o.shared_from_this());
  if (o.owner_died) {
    o.owner_died = false;
    return fail(MPX_EOWNERDEAD, "acquired; its previous owner disconnected holding it");
  }
  return MPX_OK;
}

Status Session::release(MObj &o) {
  std::lock_guard lk(o.mu);
  switch (o.type) {
    case MPX_MOBJ_LOCK:
      if (o.depth == 0) return fail(MPX_EPERM, "release of an unlocked lock");
      if (o.owner == id_) held_.erase(&o);
      o.depth = 0;
      o.owner = 0;
      break;
    case MPX_MOBJ_RLOCK:
      if (o.depth == 0 || o.owner != id_) return fail(MPX_EPERM, "cannot release an rlock this client does not own");
      if (--o.depth > 0) return MPX_OK;
      held_.erase(&o);
      o.owner = 0;
      break;
    case MPX_MOBJ_BOUNDED_SEMAPHORE:
      if (o.count >= o.bound) return fail(MPX_EOVERFLOW, "bounded semaphore released too many times");
      ++o.count;
      break;
    default:
      if (o.count >= int64_t(MPX_SEMAPHORE_VALUE_MAX)) return fail(MPX_EOVERFLOW, "semaphore value at its maximum");
      ++o.count;
  }
  o.cv.notify_all();
  return MPX_OK;
}

Status Session::cond_wait(MObj &c, int64_t timeout_ms) {
  MObj &l = *c.lock;
  int64_t saved = 0;
  {
    std::lock_guard lk(l.mu);
    if (l.depth == 0 || l.owner != id_) return fail(MPX_EPERM, "cannot wait on a condition whose lock this client does not hold");
    saved = l.depth;
  }
  Waiter w;
  {
    std::lock_guard lk(c.mu);
    c.waiters.push_back(&w);
  }
  {
    std::lock_guard lk(l.mu);
    l.depth = 0;
    l.owner = 0;
    l.cv.notify_all();
  }
  Status st;
  {
    std::unique_lock lk(c.mu);
    st = wait(c, lk, timeout_ms, [&] { return w.notified; });
    if (!w.notified) {
      c.waiters.remove(&w);
    } else if (st != MPX_OK) {  // notified, but this client is gone: pass the notification on
      if (!c.waiters.empty()) {  // the list holds only waiters not yet notified
        c.waiters.front()->notified = true;
        c.waiters.pop_front();
        c.cv.notify_all();
      }
    }
  }
  if (st != MPX_OK && st != MPX_ETIMEDOUT) return st;  // the client is gone or the server stops
  std::unique_lock lk(l.mu);
  if (Status s = wait(l, lk, -1, [&] { return l.depth == 0; }); s != MPX_OK) return s;
  l.depth = saved;
  l.owner = id_;
  if (l.owner_died) l.owner_died = false;
  return st == MPX_OK ? MPX_OK : fail(MPX_ETIMEDOUT, "timed out");
}

Status Session::cond_notify(MObj &c, uint64_t n) {
  {
    MObj &l = *c.lock;
    std::lock_guard lk(l.mu);
    if (l.depth == 0 || l.owner != id_) return fail(MPX_EPERM, "cannot notify on a condition whose lock this client does not hold");
  }
  std::lock_guard lk(c.mu);
  for (Waiter *w : c.waiters) {
    if (n == 0) break;
    if (!w->notified) {
      w->notified = true;
      --n;
    }
  }
  c.waiters.remove_if([](Waiter *w) { return w->notified; });
  c.cv.notify_all();
  return MPX_OK;
}

Status Session::barrier_wait(MObj &b, int64_t timeout_ms, int64_t *index) {
  std::unique_lock lk(b.mu);
  if (b.broken) return fail(MPX_EBROKEN, "the barrier is broken");
  const uint64_t gen = b.generation, ep = b.epoch;
  *index = b.arrived++;
  if (b.arrived == b.parties) {
    b.arrived = 0;
    ++b.generation;
    b.cv.notify_all();
    return MPX_OK;
  }
  const Status st = wait(b, lk, timeout_ms, [&] { return b.generation != gen || b.broken || b.epoch != ep; });
  if (b.generation != gen) return MPX_OK;
  if (st == MPX_OK) return fail(MPX_EBROKEN, "the barrier was broken or reset while waiting");
  if (b.epoch == ep) {  // timed out, or this client is gone: the others must not wait forever
    b.broken = true;
    b.arrived = 0;
    b.cv.notify_all();
  }
  return st;
}

// ---- values ------------------------------------------------------------------------------

template <typename T>
void add_as(char *value, const char *delta) {
  T a, d;
  std::memcpy(&a, value, sizeof a);
  std::memcpy(&d, delta, sizeof d);
  if constexpr (std::is_integral_v<T>) {
    using U = std::make_unsigned_t<T>;
    a = T(U(a) + U(d));  // wraps, as C's unsigned arithmetic (and ctypes) do
  } else {
    a = a + d;
  }
  std::memcpy(value, &a, sizeof a);
}

void add_value(int tc, char *value, const char *delta) {
  switch (tc) {
    case 'c': case 'B': add_as<uint8_t>(value, delta); break;
    case 'b': add_as<int8_t>(value, delta); break;
    case 'h': add_as<int16_t>(value, delta); break;
    case 'H': add_as<uint16_t>(value, delta); break;
    case 'i': add_as<int32_t>(value, delta); break;
    case 'I': add_as<uint32_t>(value, delta); break;
    case 'l': case 'q': add_as<int64_t>(value, delta); break;
    case 'L': case 'Q': add_as<uint64_t>(value, delta); break;
    case 'f': add_as<float>(value, delta); break;
    case 'd': add_as<double>(value, delta); break;
  }
}

// Python's index rules: negative counts from the end; out of range is an error.
bool resolve_index(int64_t i, size_t n, size_t *out) {
  if (i < 0) i += int64_t(n);
  if (i < 0 || uint64_t(i) >= n) return false;
  *out = size_t(i);
  return true;
}

// ---- one request -------------------------------------------------------------------------

Status Session::hello_shm(Reader &r) {
  const std::string req(r.bytes()), rep(r.bytes()), boot(r.bytes());
  if (r.bad()) return fail(MPX_EPROTO, "malformed hello");
  if (req_) return fail(MPX_EINVAL, "the shared-memory path is already set up");
  if (boot.empty() || boot != boot_id()) return fail(MPX_ENOTSUP, "the client runs on another machine (or kernel)");
  mpx_queue *a = nullptr, *b = nullptr;
  if (Status s = Status(mpx_queue_attach(&a, req.c_str())); s != MPX_OK) return s;
  if (Status s = Status(mpx_queue_attach(&b, rep.c_str())); s != MPX_OK) {
    mpx_queue_destroy(a);
    return s;
  }
  std::lock_guard lk(qmu_);
  req_ = a;
  rep_ = b;
  return MPX_OK;
}

Status Session::dispatch(const RequestHeader &h, Reader &r, MObj *o, std::string *out) {
  Writer w(out);
  const auto op = Op(h.op);
  auto need = [&](std::initializer_list<uint32_t> types) -> Status {
    if (!o) return fail(MPX_EINVAL, "operation {} needs an object", h.op);
    for (uint32_t t : types)
      if (o->type == t) return MPX_OK;
    return fail(MPX_EINVAL, "operation {} does not apply to an object of type {}", h.op, o->type);
  };
#define NEED(...)                                                   \
  if (Status need_s_ = need({__VA_ARGS__}); need_s_ != MPX_OK) return need_s_
#define CHECK_READ() \
  if (r.bad() || !r.done()) return fail(MPX_EPROTO, "malformed request (operation {})", h.op)

  switch (op) {
    case Op::dict_set:
    case Op::dict_add: {
      NEED(MPX_MOBJ_DICT, MPX_MOBJ_NAMESPACE);
      const auto key = r.bytes();
      const auto val = r.bytes();
      CHECK_READ();
      std::lock_guard lk(o->mu);
      if (op == Op::dict_add) {
        auto [it, inserted] = o->dict.try_emplace(std::string(key), val);
        if (!inserted) return fail(MPX_EEXIST, "the key exists");
      } else {
        o->dict.insert_or_assign(std::string(key), std::string(val));
      }
      return MPX_OK;
    }
    case Op::dict_get: {
      NEED(MPX_MOBJ_DICT, MPX_MOBJ_NAMESPACE);
      const auto key = r.bytes();
      CHECK_READ();
      std::lock_guard lk(o->mu);
      auto it = o->dict.find(std::string(key));
      if (it == o->dict.end()) return fail(MPX_ENOENT, "no such key");
      w.str(it->second);
      return MPX_OK;
    }
    case Op::dict_pop: {
      NEED(MPX_MOBJ_DICT, MPX_MOBJ_NAMESPACE);
      const auto key = r.bytes();
      const uint32_t want = r.u32();
      CHECK_READ();
      std::lock_guard lk(o->mu);
      auto it = o->dict.find(std::string(key));
      if (it == o->dict.end()) return fail(MPX_ENOENT, "no such key");
      if (want) w.str(it->second);
      o->dict.erase(it);
      return MPX_OK;
    }
    case Op::dict_len: {
      NEED(MPX_MOBJ_DICT, MPX_MOBJ_NAMESPACE);
      std::lock_guard lk(o->mu);
      w.u64(o->dict.size());
      return MPX_OK;
    }
    case Op::dict_keys: {
      NEED(MPX_MOBJ_DICT, MPX_MOBJ_NAMESPACE);
      std::string packed;
      std::lock_guard lk(o->mu);
      for (auto &kv : o->dict) {
        packed += kv.first;
        packed.push_back('\0');
      }
      w.u64(o->dict.size()).str(packed);
      return MPX_OK;
    }
    case Op::dict_clear: {
      NEED(MPX_MOBJ_DICT, MPX_MOBJ_NAMESPACE);
      std::lock_guard lk(o->mu);
      o->dict.clear();
      return MPX_OK;
    }
    case Op::list_append: {
      NEED(MPX_MOBJ_LIST);
      const auto val = r.bytes();
      CHECK_READ();
      std::lock_guard lk(o->mu);
      o->list.emplace_back(val);
      return MPX_OK;
    }
    case Op::list_insert: {
      NEED(MPX_MOBJ_LIST);
      int64_t i = r.i64();
      const auto val = r.bytes();
      CHECK_READ();
      std::lock_guard lk(o->mu);
      const int64_t n = int64_t(o->list.size());
      if (i < 0) i = std::max<int64_t>(0, i + n);
      i = std::min(i, n);
      o->list.emplace(o->list.begin() + i, val);
      return MPX_OK;
    }
    case Op::list_get:
    case Op::list_set:
    case Op::list_pop: {
      NEED(MPX_MOBJ_LIST);
      const int64_t i = r.i64();
      std::string_view val;
      uint32_t want = 0;
      if (op == Op::list_set) val = r.bytes();
      if (op == Op::list_pop) want = r.u32();
      CHECK_READ();
      std::lock_guard lk(o->mu);
      size_t at = 0;
      if (!resolve_index(i, o->list.size(), &at)) return fail(MPX_ERANGE, "list index {} out of range (length {})", i, o->list.size());
      if (op == Op::list_get) {
        w.str(o->list[at]);
      } else if (op == Op::list_set) {
        o->list[at].assign(val);
      } else {
        if (want) w.str(o->list[at]);
        o->list.erase(o->list.begin() + at);
      }
      return MPX_OK;
    }
    case Op::list_len: {
      NEED(MPX_MOBJ_LIST);
      std::lock_guard lk(o->mu);
      w.u64(o->list.size());
      return MPX_OK;
    }
    case Op::list_reverse:
    case Op::list_sort:
    case Op::list_clear: {
      NEED(MPX_MOBJ_LIST);
      std::lock_guard lk(o->mu);
      if (op == Op::list_reverse) std::reverse(o->list.begin(), o->list.end());
      else if (op == Op::list_sort) std::stable_sort(o->list.begin(), o->list.end());
      else o->list.clear();
      return MPX_OK;
    }
    case Op::queue_put: {
      NEED(MPX_MOBJ_QUEUE, MPX_MOBJ_JOINABLE_QUEUE);
      const auto val = r.bytes();
      CHECK_READ();
      std::unique_lock lk(o->mu);
      if (o->maxsize)
        if (Status s = wait(*o, lk, h.timeout_ms, [&] { return o->items.size() < o->maxsize; }); s != MPX_OK) return s;
      o->items.emplace_back(val);
      ++o->unfinished;
      o->cv.notify_all();
      return MPX_OK;
    }
    case Op::queue_get: {
      NEED(MPX_MOBJ_QUEUE, MPX_MOBJ_JOINABLE_QUEUE);
      std::unique_lock lk(o->mu);
      if (Status s = wait(*o, lk, h.timeout_ms, [&] { return !o->items.empty(); }); s != MPX_OK) return s;
      w.str(o->items.front());
      o->items.pop_front();
      o->cv.notify_all();
      return MPX_OK;
    }
    case Op::queue_size: {
      NEED(MPX_MOBJ_QUEUE, MPX_MOBJ_JOINABLE_QUEUE);
      std::lock_guard lk(o->mu);
      w.u64(o->items.size());
      return MPX_OK;
    }
    case Op::queue_task_done: {
      NEED(MPX_MOBJ_JOINABLE_QUEUE);
      std::lock_guard lk(o->mu);
      if (o->unfinished <= o->items.size()) return fail(MPX_EOVERFLOW, "task_done() called too many times");
      if (--o->unfinished == 0) o->cv.notify_all();
      return MPX_OK;
    }
    case Op::queue_join: {
      NEED(MPX_MOBJ_JOINABLE_QUEUE);
      std::unique_lock lk(o->mu);
      return wait(*o, lk, h.timeout_ms, [&] { return o->unfinished == 0; });
    }
    case Op::lock_acquire:
    case Op::lock_release: {
      NEED(MPX_MOBJ_LOCK, MPX_MOBJ_RLOCK, MPX_MOBJ_SEMAPHORE, MPX_MOBJ_BOUNDED_SEMAPHORE, MPX_MOBJ_CONDITION);
      MObj &target = o->type == MPX_MOBJ_CONDITION ? *o->lock : *o;
      return op == Op::lock_acquire ? acquire(target, h.timeout_ms) : release(target);
    }
    case Op::sem_value: {
      NEED(MPX_MOBJ_SEMAPHORE, MPX_MOBJ_BOUNDED_SEMAPHORE);
      std::lock_guard lk(o->mu);
      w.i64(o->count);
      return MPX_OK;
    }
    case Op::cond_wait:
      NEED(MPX_MOBJ_CONDITION);
      return cond_wait(*o, h.timeout_ms);
    case Op::cond_notify: {
      NEED(MPX_MOBJ_CONDITION);
      const uint64_t n = r.u64();
      CHECK_READ();
      return cond_notify(*o, n);
    }
    case Op::event_set:
    case Op::event_clear: {
      NEED(MPX_MOBJ_EVENT);
      std::lock_guard lk(o->mu);
      o->flag = op == Op::event_set;
      if (o->flag) o->cv.notify_all();
      return MPX_OK;
    }
    case Op::event_is_set: {
      NEED(MPX_MOBJ_EVENT);
      std::lock_guard lk(o->mu);
      w.u32(o->flag);
      return MPX_OK;
    }
    case Op::event_wait: {
      NEED(MPX_MOBJ_EVENT);
      std::unique_lock lk(o->mu);
      return wait(*o, lk, h.timeout_ms, [&] { return o->flag; });
    }
    case Op::barrier_wait: {
      NEED(MPX_MOBJ_BARRIER);
      int64_t index = -1;
      const Status s = barrier_wait(*o, h.timeout_ms, &index);
      if (s == MPX_OK) w.i64(index);
      return s;
    }
    case Op::barrier_abort:
    case Op::barrier_reset: {
      NEED(MPX_MOBJ_BARRIER);
      std::lock_guard lk(o->mu);
      if (op == Op::barrier_abort) {
        o->broken = true;
      } else {
        if (o->arrived > 0) ++o->epoch;
        o->broken = false;
      }
      o->arrived = 0;
      o->cv.notify_all();
      return MPX_OK;
    }
    case Op::value_get: {
      NEED(MPX_MOBJ_VALUE);
      std::lock_guard lk(o->mu);
      w.str(o->data);
      return MPX_OK;
    }
    case Op::value_set:
    case Op::value_add: {
      NEED(MPX_MOBJ_VALUE);
      const auto val = r.bytes();
      CHECK_READ();
      if (val.size() != o->itemsize) return fail(MPX_EINVAL, "a '{}' value has {} bytes, not {}", char(o->typecode), o->itemsize, val.size());
      std::lock_guard lk(o->mu);
      if (op == Op::value_set) {
        o->data.assign(val);
      } else {
        add_value(o->typecode, o->data.data(), val.data());
        w.str(o->data);
      }
      return MPX_OK;
    }
    case Op::array_len:
      NEED(MPX_MOBJ_ARRAY, MPX_MOBJ_VALUE);
      w.u64(o->data.size() / o->itemsize).u64(o->itemsize);
      return MPX_OK;
    case Op::array_get:
    case Op::array_set: {
      NEED(MPX_MOBJ_ARRAY);
      const uint64_t start = r.u64();
      uint64_t count = 0;
      std::string_view val;
      if (op == Op::array_get) {
        count = r.u64();
      } else {
        val = r.bytes();
        count = val.size() / o->itemsize;
        if (val.size() % o->itemsize) return fail(MPX_EINVAL, "{} bytes is not a whole number of elements", val.size());
      }
      CHECK_READ();
      const uint64_t n = o->data.size() / o->itemsize;
      if (start > n || count > n - start) return fail(MPX_ERANGE, "elements {}..{} out of range (length {})", start, start + count, n);
      std::lock_guard lk(o->mu);
      if (op == Op::array_get) w.bytes(o->data.data() + start * o->itemsize, count * o->itemsize);
      else std::memcpy(o->data.data() + start * o->itemsize, val.data(), val.size());
      return MPX_OK;
    }
    default:
      return fail(MPX_EPROTO, "unknown operation {}", h.op);
  }
#undef NEED
#undef CHECK_READ
}

void Session::handle(const std::string &msg, std::string *out) {
  out->assign(sizeof(ReplyHeader), '\0');
  ReplyHeader rh{};
  Status s = MPX_OK;
  RequestHeader h{};
  if (msg.size() < sizeof h) {
    s = fail(MPX_EPROTO, "a request of {} bytes is shorter than its header", msg.size());
  } else {
    std::memcpy(&h, msg.data(), sizeof h);
    rh.seq = h.seq;
    Reader r(msg.data() + sizeof h, msg.size() - sizeof h);
    switch (Op(h.op)) {
      case Op::hello_shm:
        s = hello_shm(r);
        break;
      case Op::create: {
        uint64_t id = 0;
        s = server_.create(*this, h.arg, msg.data() + sizeof h, msg.size() - sizeof h, &id);
        if (s == MPX_OK) Writer(out).u64(id).u32(h.arg);
        break;
      }
      case Op::open: {
        const auto name = r.bytes();
        uint64_t id = 0;
        uint32_t type = 0;
        s = r.bad() ? fail(MPX_EPROTO, "malformed open request") : server_.open(*this, name, &id, &type);
        if (s == MPX_OK) Writer(out).u64(id).u32(type);
        break;
      }
      case Op::release: {
        auto it = refs.find(h.obj);
        if (it == refs.end()) {
          s = fail(MPX_ENOENT, "this client holds no reference to object {}", h.obj);
        } else {
          if (--it->second == 0) refs.erase(it);
          server_.drop_ref(h.obj);
        }
        break;
      }
      case Op::shutdown:
        server_.request_stop();
        break;
      default: {
        std::shared_ptr<MObj> o;
        if (refs.count(h.obj)) o = server_.find(h.obj);
        if (!o) s = fail(MPX_ENOENT, "this client holds no object {}", h.obj);
        else s = dispatch(h, r, o.get(), out);
      }
    }
  }
  if (s != MPX_OK) {
    out->resize(sizeof(ReplyHeader));
    out->append(detail::message());
  }
  rh.code = s;
  std::memcpy(out->data(), &rh, sizeof rh);
}

// ---- the session loop --------------------------------------------------------------------

Status Session::receive(std::string *msg) {
  bool on_socket = false;  // the queue said the message follows on the socket
  for (;;) {
    void *data = nullptr;
    size_t len = 0;
    Status s = req_ && !on_socket ? Status(mpx_queue_get(req_, &data, &len, 100))
                                  : Status(mpx_conn_recv(conn_, kMaxMessage, &data, &len, 100));
    if (s == MPX_OK && req_ && !on_socket && is_on_socket(data, len)) {
      mpx_free(data);
      on_socket = true;
      continue;
    }
    if (s == MPX_OK) {
      msg->assign(static_cast<const char *>(data), len);
      mpx_free(data);
      return MPX_OK;
    }
    if (s != MPX_ETIMEDOUT) return s;
    if (server_.stopping()) return MPX_ECLOSED;
    if (req_ && gone()) return MPX_EOF;
  }
}

Status Session::reply(const std::string &msg, bool via_queue) {
  if (!via_queue) return Status(mpx_conn_send(conn_, msg.data(), msg.size()));
  const bool big = msg.size() > kQueueInlineMax;
  const char *put = big ? kOnSocket : msg.data();
  const size_t put_len = big ? sizeof kOnSocket : msg.size();
  for (;;) {
    const Status s = Status(mpx_queue_put(rep_, put, put_len, 100));
    if (s == MPX_OK) break;
    if (s != MPX_ETIMEDOUT) return s;
    if (server_.stopping() || gone()) return MPX_EOF;
  }
  return big ? Status(mpx_conn_send(conn_, msg.data(), msg.size())) : MPX_OK;
}

void Session::run() {
  std::string msg, out;
  for (;;) {
    if (receive(&msg) != MPX_OK) break;
    const bool via_queue = req_ != nullptr;
    handle(msg, &out);
    if (reply(out, via_queue) != MPX_OK) break;
  }
  cleanup();
  done_.store(true, std::memory_order_release);
}

void Session::cleanup() {
  for (auto &[p, o] : held_) {
    std::lock_guard lk(o->mu);
    if (o->depth > 0 && o->owner == id_) {
      o->depth = 0;
      o->owner = 0;
      o->owner_died = true;
      o->cv.notify_all();
    }
  }
  held_.clear();
  for (auto &[id, n] : refs)
    for (uint64_t i = 0; i < n; ++i) server_.drop_ref(id);
  refs.clear();
}

// ---- the server --------------------------------------------------------------------------

Server::Server() = default;
Server::~Server() { stop(); }

Status Server::start(const ServerConfig &cfg) {
  std::string address = cfg.address;
  if (address.empty()) {
    // An abstract socket: nothing on the file system to leave behind, even if the server is
    // killed. Any local user may connect to it, and must then pass the authkey handshake.
    uint64_t r = 0;
    platform::random_bytes(&r, sizeof r);
    address = fmt::format("@mpx-manager-{}-{:016x}", ::getpid(), r);
  }
  mpx_listener_options lo;
  mpx_listener_options_init(&lo, sizeof lo);
  if (!cfg.authkey.empty()) {
    lo.authkey = cfg.authkey.data();
    lo.authkey_len = cfg.authkey.size();
  }
  if (cfg.allow_remote) lo.flags |= MPX_LISTENER_ALLOW_REMOTE;
  lo.max_message = kMaxMessage;
  mpx_listener *l = nullptr;
  if (Status s = Status(mpx_listener_create(&l, address.c_str(), &lo)); s != MPX_OK) return s;
  char buf[512];
  size_t len = sizeof buf;
  mpx_listener_address(l, buf, &len);
  address_.assign(buf, len);
  listener_ = l;
  accept_thread_ = std::thread([this] { accept_loop(); });
  return MPX_OK;
}

void Server::accept_loop() {
  auto *l = static_cast<mpx_listener *>(listener_);
  while (!stopping()) {
    mpx_conn *c = nullptr;
    const Status s = Status(mpx_listener_accept(l, 100, &c));
    {
      std::lock_guard lk(mu_);
      for (auto it = sessions_.begin(); it != sessions_.end();) {  // reap finished sessions
        if (it->session->finished()) {
          it->thread.join();
          it = sessions_.erase(it);
        } else {
          ++it;
        }
      }
    }
    if (s != MPX_OK) {
      if (s == MPX_ECLOSED) break;
      if (s != MPX_ETIMEDOUT && s != MPX_EAUTH) std::this_thread::sleep_for(std::chrono::milliseconds(10));
      continue;
    }
    std::lock_guard lk(mu_);
    auto &rec = sessions_.emplace_back();
    rec.session = std::make_unique<Session>(*this, next_session_++, c);
    Session *sp = rec.session.get();
    rec.thread = std::thread([sp] { sp->run(); });
  }
  teardown();
}

void Server::teardown() {
  stop_.store(true, std::memory_order_release);
  mpx_listener_destroy(static_cast<mpx_listener *>(listener_));
  listener_ = nullptr;
  std::list<SessionRec> sessions;
  {
    std::lock_guard lk(mu_);
    for (auto &rec : sessions_) rec.session->interrupt();
    for (auto &[id, o] : objs_) {
      std::lock_guard ol(o->mu);
      o->cv.notify_all();
    }
    sessions.swap(sessions_);
  }
  for (auto &rec : sessions) rec.thread.join();
  sessions.clear();
  std::lock_guard lk(mu_);
  objs_.clear();
  names_.clear();
  stopped_ = true;
  stopped_cv_.notify_all();
}

void Server::request_stop() { stop_.store(true, std::memory_order_release); }

bool Server::wait_stopped(int64_t timeout_ms) {
  std::unique_lock lk(mu_);
  if (timeout_ms < 0) {
    stopped_cv_.wait(lk, [&] { return stopped_; });
    return true;
  }
  return stopped_cv_.wait_for(lk, std::chrono::milliseconds(timeout_ms), [&] { return stopped_; });
}

void Server::stop() {
  request_stop();
  if (accept_thread_.joinable()) accept_thread_.join();
}

std::shared_ptr<MObj> Server::find(uint64_t id) {
  std::lock_guard lk(mu_);
  auto it = objs_.find(id);
  return it == objs_.end() ? nullptr : it->second;
}

void Server::add_ref(uint64_t id) {
  std::lock_guard lk(mu_);
  if (auto it = objs_.find(id); it != objs_.end()) ++it->second->refs;
}

void Server::drop_ref(uint64_t id) {
  std::shared_ptr<MObj> dead;  // freed outside the lock
  std::lock_guard lk(mu_);
  auto it = objs_.find(id);
  if (it == objs_.end()) return;
  if (--it->second->refs == 0) {
    dead = std::move(it->second);
    objs_.erase(it);
  }
}

Status Server::create(Session &s, uint32_t type, const char *p, size_t n, uint64_t *id) {
  Reader r(p, n);
  const uint32_t flags = r.u32();
  const std::string name(r.bytes());
  const int64_t typecode = r.i64();
  const uint64_t parties = r.u64();
  const uint64_t length = r.u64();
  const uint64_t maxsize = r.u64();
  const int64_t initial = r.i64();
  const uint64_t lock_id = r.u64();
  const auto data = r.bytes();
  if (r.bad() || !r.done()) return fail(MPX_EPROTO, "malformed create request");
  if (type < MPX_MOBJ_DICT || type > MPX_MOBJ_ARRAY) return fail(MPX_EINVAL, "unknown object type {}", type);
  if (name.size() > MPX_MANAGER_KEY_MAX) return fail(MPX_EINVAL, "a name has at most {} bytes", MPX_MANAGER_KEY_MAX);
  if (name.compare(0, kTokenPrefix.size(), kTokenPrefix) == 0) return fail(MPX_EINVAL, "a name may not start with \"{}\"", kTokenPrefix);

  auto o = std::make_shared<MObj>();
  o->type = type;
  o->name = name;
  switch (type) {
    case MPX_MOBJ_QUEUE:
    case MPX_MOBJ_JOINABLE_QUEUE:
      o->maxsize = maxsize;
      break;
    case MPX_MOBJ_SEMAPHORE:
    case MPX_MOBJ_BOUNDED_SEMAPHORE:
      if (initial < 0 || initial > int64_t(MPX_SEMAPHORE_VALUE_MAX)) return fail(MPX_EINVAL, "semaphore initial value {} out of range", initial);
      o->count = o->bound = initial;
      break;
    case MPX_MOBJ_BARRIER:
      if (parties == 0 || parties > UINT32_MAX) return fail(MPX_EINVAL, "a barrier needs 1 to 2^32-1 parties");
      o->parties = uint32_t(parties);
      break;
    case MPX_MOBJ_CONDITION:
      if (lock_id) {
        if (!s.refs.count(lock_id)) return fail(MPX_ENOENT, "this client holds no object {}", lock_id);
        o->lock = find(lock_id);
        if (!o->lock || (o->lock->type != MPX_MOBJ_LOCK && o->lock->type != MPX_MOBJ_RLOCK))
          return fail(MPX_EINVAL, "a condition's lock must be a lock or an rlock");
      } else {
        o->lock = std::make_shared<MObj>();
        o->lock->type = MPX_MOBJ_RLOCK;
      }
      break;
    case MPX_MOBJ_VALUE:
    case MPX_MOBJ_ARRAY: {
      const int tc = typecode ? int(typecode) : (type == MPX_MOBJ_VALUE ? 'i' : 'b');
      o->itemsize = typecode_size(tc);
      if (!o->itemsize) return fail(MPX_EINVAL, "unknown typecode {} (one of cbBhHiIlLqQfd)", typecode);
      o->typecode = tc;
      const uint64_t count = type == MPX_MOBJ_VALUE ? 1 : length;
      if (type == MPX_MOBJ_ARRAY && (length == 0 || length > (uint64_t(1) << 32) / o->itemsize))
        return fail(MPX_EINVAL, "array length {} out of range", length);
      o->data.assign(size_t(count * o->itemsize), '\0');
      if (!data.empty()) {
        if (data.size() != o->data.size()) return fail(MPX_EINVAL, "initial data of {} bytes for {} bytes", data.size(), o->data.size());
        o->data.assign(data);
      }
      break;
    }
  }
  std::lock_guard lk(mu_);
  if (!name.empty()) {
    if (auto it = names_.find(name); it != names_.end()) {
      if (!(flags & MPX_MOBJ_OPEN_EXISTING)) return fail(MPX_EEXIST, "an object named \"{}\" exists", name);
      auto &existing = objs_.at(it->second);
      if (existing->type != type) return fail(MPX_EINVAL, "\"{}\" is of type {}, not {}", name, existing->type, type);
      ++existing->refs;
      ++s.refs[it->second];
      *id = it->second;
      return MPX_OK;
    }
  }
  o->id = next_id_++;
  o->refs = name.empty() ? 1 : 2;  // a name holds a reference until the server stops
  objs_[o->id] = o;
  if (!name.empty()) names_[name] = o->id;
  ++s.refs[o->id];
  *id = o->id;
  return MPX_OK;
}

Status Server::open(Session &s, std::string_view name, uint64_t *id, uint32_t *type) {
  std::lock_guard lk(mu_);
  uint64_t want = 0;
  if (name.substr(0, kTokenPrefix.size()) == kTokenPrefix) {
    const std::string digits(name.substr(kTokenPrefix.size()));
    char *end = nullptr;
    want = std::strtoull(digits.c_str(), &end, 10);
    if (digits.empty() || *end) return fail(MPX_EINVAL, "malformed token");
  } else {
    auto it = names_.find(std::string(name));
    if (it == names_.end()) return fail(MPX_ENOENT, "no object named \"{}\"", name);
    want = it->second;
  }
  auto it = objs_.find(want);
  if (it == objs_.end()) return fail(MPX_ENOENT, "no object {} (released, or from another manager)", want);
  ++it->second->refs;
  ++s.refs[want];
  *id = want;
  *type = it->second->type;
  return MPX_OK;
}

}  // namespace mpx::manager
