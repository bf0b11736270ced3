/*
 * mpx/mpx.hpp - header-only C++20 RAII classes over the mpx C API.
 *
 * Every class owns one C handle: movable, not copyable, destroyed (closed) by its destructor.
 * Closing a handle never destroys the shared object for other processes, and never unlinks
 * a name. A moved-from object holds no handle; using it throws mpx::error (MPX_EINVAL).
 *
 * Failures throw mpx::error, a std::system_error whose code() is in mpx::category() and
 * compares equal to mpx::errc values and, where one fits, to std::errc values. Expected
 * outcomes are return values instead: a timed-out acquire returns false (or
 * acquire_result::timed_out), a previous owner's death is acquire_result::owner_dead.
 *
 * Owner death: a Lock or RLock whose holder died is handed to the next acquirer with the
 * state it guards possibly half-updated. acquire() reports it as acquire_result::owner_dead;
 * lock()/try_lock() throw mpx::owner_dead_error WITH THE LOCK HELD, unless a repair
 * function was installed with on_owner_dead(), in which case they run it, mark the lock
 * consistent and return normally. See docs/cpp.md and docs/sync.md.
 *
 * Processes: mpx::Process runs a callable in a forked child, or any start method from
 * mpx_process_options; its destructor never signals a running child.
 *
 * Moving bytes: mpx::Connection (mpx::Pipe), mpx::wait, mpx::Queue and mpx::JoinableQueue.
 *
 * Pools: mpx::Pool runs tasks (an mpx_task_fn, by pointer or registered name, and a byte
 * payload) in worker processes; apply_async/map_async/imap return mpx::AsyncResult and
 * mpx::MapResult, std::future-like, whose get() throws mpx::task_error for a failed task.
 *
 * Docs: docs/cpp.md. Everything here is inline; link with -lmpx.
 */
#ifndef MPX_MPX_HPP
#define MPX_MPX_HPP

#include "mpx/mpx.h"

#include <array>
#include <atomic>
#include <bit>
#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <initializer_list>
#include <iterator>
#include <memory>
#include <optional>
#include <ranges>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

namespace mpx {

// ==== errors ===============================================================================

/** The C error codes as an enum usable with std::error_code (`e.code() == mpx::errc::timedout`). */
enum class errc : int {
  inval = MPX_EINVAL,
  nomem = MPX_ENOMEM,
  badhandle = MPX_EBADHANDLE,
  timedout = MPX_ETIMEDOUT,
  exist = MPX_EEXIST,
  noent = MPX_ENOENT,
  acces = MPX_EACCES,
  perm = MPX_EPERM,
  ownerdead = MPX_EOWNERDEAD,
  notrecoverable = MPX_ENOTRECOVERABLE,
  overflow = MPX_EOVERFLOW,
  broken = MPX_EBROKEN,
  closed = MPX_ECLOSED,
  corrupt = MPX_ECORRUPT,
  nobufs = MPX_ENOBUFS,
  forked = MPX_EFORKED,
  notsup = MPX_ENOTSUP,
  sys = MPX_ESYS,
  range = MPX_ERANGE,
  mfile = MPX_EMFILE,
  nospc = MPX_ENOSPC,
  msgsize = MPX_EMSGSIZE,
  eof = MPX_EOF,
  proto = MPX_EPROTO,
  pipe = MPX_EPIPE,
  auth = MPX_EAUTH,
  workerdied = MPX_EWORKERDIED,
  addrinuse = MPX_EADDRINUSE,
  again = MPX_EAGAIN,
  deadlk = MPX_EDEADLK,
  task = MPX_ETASK,
  canceled = MPX_ECANCELED,
};

namespace detail {
class category_impl final : public std::error_category {
 public:
  const char *name() const noexcept override { return "mpx"; }
  std::string message(int ev) const override { return mpx_strerror(ev); }
  std::error_condition default_error_condition(int ev) const noexcept override {
    switch (ev) {
      case MPX_EINVAL: return std::errc::invalid_argument;
      case MPX_ENOMEM: return std::errc::not_enough_memory;
      case MPX_ETIMEDOUT: return std::errc::timed_out;
      case MPX_EEXIST: return std::errc::file_exists;
      case MPX_ENOENT: return std::errc::no_such_file_or_directory;
      case MPX_EACCES: return std::errc::permission_denied;
      case MPX_EPERM: return std::errc::operation_not_permitted;
      case MPX_EOWNERDEAD: return std::errc::owner_dead;
      case MPX_ENOTRECOVERABLE: return std::errc::state_not_recoverable;
      case MPX_EOVERFLOW: return std::errc::value_too_large;
      case MPX_ENOBUFS: return std::errc::no_buffer_space;
      case MPX_ENOTSUP: return std::errc::not_supported;
      case MPX_ERANGE: return std::errc::result_out_of_range;
      case MPX_EMFILE: return std::errc::too_many_files_open;
      case MPX_ENOSPC: return std::errc::no_space_on_device;
      case MPX_EMSGSIZE: return std::errc::message_size;
      case MPX_EPROTO: return std::errc::protocol_error;
      case MPX_EPIPE: return std::errc::broken_pipe;
      case MPX_EADDRINUSE: return std::errc::address_in_use;
      case MPX_EAGAIN: return std::errc::resource_unavailable_try_again;
      case MPX_EDEADLK: return std::errc::resource_deadlock_would_occur;
      case MPX_ECANCELED: return std::errc::operation_canceled;
      default: return std::error_condition(ev, *this);
    }
  }
};
}  // namespace detail

/** The error category of mpx codes: name "mpx", message() is mpx_strerror(). */
inline const std::error_category &category() noexcept {
  static const detail::category_impl instance;
  return instance;
}

inline std::error_code make_error_code(errc e) noexcept { return {static_cast<int>(e), category()}; }

}  // namespace mpx

template <>
struct std::is_error_code_enum<mpx::errc> : std::true_type {};

namespace mpx {

/**
 * A failed mpx call. code().value() is the negative MPX_E* code, name() its symbol
 * ("MPX_ETIMEDOUT"), detail() the library's mpx_last_error_message() captured when it failed,
 * where() the C++ operation. Copying never throws.
 */
class error : public std::system_error {
 public:
  error(int code, std::string where, std::string detail)
      : std::system_error(code, category()), info_(make_info(code, std::move(where), std::move(detail))) {}

  /** The negative MPX_E* code. */
  int value() const noexcept { return info_->code; }
  /** Symbolic name of the code, e.g. "MPX_ETIMEDOUT". */
  const char *name() const noexcept { return mpx_error_name(info_->code); }
  /** mpx_last_error_message() at the time of the failure ("" if the library gave none). */
  const std::string &detail() const noexcept { return info_->detail; }
  /** The operation that failed, e.g. "mpx::Lock::unlock". */
  const std::string &where() const noexcept { return info_->where; }
  const char *what() const noexcept override { return info_->what.c_str(); }

 private:
  struct info {
    int code;
    std::string where, detail, what;
  };
  static std::shared_ptr<const info> make_info(int code, std::string where, std::string detail) {
    auto i = std::make_shared<info>(info{code, std::move(where), std::move(detail), {}});
    i->what = i->where + ": " + mpx_error_name(code) + " (" + mpx_strerror(code) + ")";
    if (!i->detail.empty()) i->what += ": " + i->detail;
    return i;
  }
  std::shared_ptr<const info> info_;
};

/**
 * Thrown by lock()/try_lock*() and Condition waits when the previous owner of the lock died
 * holding it and no repair function is installed. THE LOCK IS HELD when this is thrown (the
 * one deviation from the standard Lockable requirements): repair what it guards, call
 * consistent() on the lock, then unlock(). Unlocking without consistent() makes the lock
 * unusable for everyone (MPX_ENOTRECOVERABLE).
 */
class owner_dead_error : public error {
 public:
  using error::error;
};

/** Thrown by Barrier::wait when the barrier is or becomes broken (MPX_EBROKEN) or the wait
 *  timed out (MPX_ETIMEDOUT; the timeout broke the barrier for everyone). */
class broken_barrier_error : public error {
 public:
  using error::error;
};

namespace detail {

[[noreturn]] inline void throw_error(int code, const char *where) {
  std::string detail = mpx_last_error_message();  // first: it is valid only until the next call
  if (code == MPX_EOWNERDEAD) throw owner_dead_error(code, where, std::move(detail));
  throw error(code, where, std::move(detail));
}

/** Returns rc when it is not an error, throws otherwise. */
inline int check(int rc, const char *where) {
  if (rc < 0) throw_error(rc, where);
  return rc;
}

template <class H, int (*Destroy)(H *)>
class handle {
 public:
  handle() noexcept = default;
  explicit handle(H *h) noexcept : h_(h) {}
  handle(const handle &) = delete;
  handle &operator=(const handle &) = delete;
  handle(handle &&o) noexcept : h_(std::exchange(o.h_, nullptr)) {}
  handle &operator=(handle &&o) noexcept {
    if (this != &o) {
      reset();
      h_ = std::exchange(o.h_, nullptr);
    }
    return *this;
  }
  ~handle() { reset(); }
  void reset() noexcept {
    if (h_) (void)Destroy(std::exchange(h_, nullptr));
  }
  H *get() const noexcept { return h_; }
  H *release() noexcept { return std::exchange(h_, nullptr); }

 private:
  H *h_ = nullptr;
};

/** Fetch a string through the (buf, in/out len) convention, growing on MPX_ENOBUFS. */
template <class H>
std::string get_string(int (*fn)(H *, char *, size_t *), H *h, const char *where) {
  std::string s(MPX_TOKEN_MAX, '\0');
  size_t len = s.size();
  int rc = fn(h, s.data(), &len);
  if (rc == MPX_ENOBUFS && len > s.size()) {
    s.assign(len, '\0');
    len = s.size();
    rc = fn(h, s.data(), &len);
  }
  check(rc, where);
  s.resize(len);
  return s;
}

template <class Rep, class Period>
constexpr int64_t to_timeout_ms(std::chrono::duration<Rep, Period> d) noexcept {
  if (d <= d.zero()) return 0;  // already expired: try once (never "forever")
  const double ms = std::chrono::duration<double, std::milli>(d).count();
  if (!(ms < 9.0e18)) return INT64_MAX;
  auto r = static_cast<int64_t>(ms);
  if (static_cast<double>(r) < ms) ++r;  // round up: never wake before the caller's deadline
  return r;
}

}  // namespace detail

/** Tag for the constructors that take ownership of a C handle: `mpx::Lock(mpx::adopt, h)`. */
struct adopt_t {
  explicit adopt_t() = default;
};
inline constexpr adopt_t adopt{};

// ==== timeouts =============================================================================

/**
 * A timeout: forever (the default), or any std::chrono duration, rounded up to whole
 * milliseconds; zero or negative durations try once. timeout::ms(n) takes the C convention.
 */
class timeout {
 public:
  constexpr timeout() noexcept = default;
  template <class Rep, class Period>
  constexpr timeout(std::chrono::duration<Rep, Period> d) noexcept  // NOLINT: implicit on purpose
      : ms_(detail::to_timeout_ms(d)) {}
  /** From C milliseconds: negative = forever, 0 = try once. */
  static constexpr timeout ms(int64_t timeout_ms) noexcept {
    timeout t;
    t.ms_ = timeout_ms < 0 ? k_forever : timeout_ms;
    return t;
  }
  constexpr int64_t count_ms() const noexcept { return ms_; }
  constexpr bool is_forever() const noexcept { return ms_ < 0; }

 private:
  // MPX_INFINITE, spelt without its C cast (which -Wold-style-cast flags in C++ code).
  static constexpr int64_t k_forever = -1;
  int64_t ms_ = k_forever;
};

/** Block until it happens. */
inline constexpr timeout forever{};
/** Do not block: try once. */
inline constexpr timeout try_once = timeout::ms(0);

template <class Clock, class Duration>
timeout until(std::chrono::time_point<Clock, Duration> deadline) {
  return timeout(deadline - Clock::now());
}

// ==== version ==============================================================================

/** The runtime library's version string, e.g. "0.1.0". */
inline std::string_view version() noexcept { return mpx_version_string(); }
/** The runtime library's MPX_VERSION_NUMBER. */
inline uint32_t version_number() noexcept { return mpx_version(); }

// ==== Segment ==============================================================================

/**
 * A shared memory segment mapped in this process. Anonymous (memfd: inherited across fork,
 * gone when the last holder exits) or named (POSIX shm, mode 0600, lives until unlinked).
 */
class Segment {
 public:
  /** An anonymous segment of `bytes` zero-filled bytes. */
  static Segment create(size_t bytes) { return create_with(bytes, 0, nullptr, "mpx::Segment::create"); }

  /**
   * A named segment, created exclusively: mpx::error MPX_EEXIST if the name exists. Tracked
   * (removed once this process is gone and nobody holds it) unless `tracked` is false.
   */
  static Segment create_named(std::string_view name, size_t bytes, bool tracked = true) {
    std::string n(name);
    return create_with(bytes, tracked ? 0 : MPX_SEGMENT_UNTRACKED, n.c_str(), "mpx::Segment::create_named");
  }

  /** A named segment with a fresh random name (read it with name()); tracked as above. */
  static Segment create_random(size_t bytes, bool tracked = true) {
    return create_with(bytes, MPX_SEGMENT_RANDOM_NAME | (tracked ? 0 : MPX_SEGMENT_UNTRACKED), nullptr,
                       "mpx::Segment::create_random");
  }

  /** Attach an existing named segment: MPX_ENOENT if missing, MPX_EACCES if not ours/0600. */
  static Segment attach(std::string_view name) {
    std::string n(name);
    mpx_segment *s = nullptr;
    detail::check(mpx_segment_attach(&s, n.c_str()), "mpx::Segment::attach");
    return Segment(adopt_t{}, s);
  }

  /** Attach the segment a token (from token()) names; works for anonymous segments too. */
  static Segment attach_token(std::string_view token) {
    std::string t(token);
    mpx_segment *s = nullptr;
    detail::check(mpx_segment_attach_token(&s, t.c_str()), "mpx::Segment::attach_token");
    return Segment(adopt_t{}, s);
  }

  /** Remove a name without attaching it: MPX_ENOENT if missing. */
  static void unlink_name(std::string_view name) {
    std::string n(name);
    detail::check(mpx_segment_unlink_name(n.c_str()), "mpx::Segment::unlink_name");
  }

  /** Take ownership of a C handle. */
  Segment(adopt_t, mpx_segment *h) : h_(h) {
    void *addr = nullptr;
    detail::check(mpx_segment_address(h, &addr), "mpx::Segment");
    detail::check(mpx_segment_size(h, &size_), "mpx::Segment");
    data_ = addr;
  }

  Segment(Segment &&o) noexcept
      : h_(std::move(o.h_)), data_(std::exchange(o.data_, nullptr)), size_(std::exchange(o.size_, 0)) {}
  Segment &operator=(Segment &&o) noexcept {
    h_ = std::move(o.h_);
    data_ = std::exchange(o.data_, nullptr);
    size_ = std::exchange(o.size_, 0);
    return *this;
  }

  /** Remove this segment's name (named segments only); the mapping stays valid. */
  void unlink() { detail::check(mpx_segment_unlink(h_.get()), "mpx::Segment::unlink"); }

  /** Unmap and close now (the destructor does it otherwise). */
  void close() noexcept {
    h_.reset();
    data_ = nullptr;
    size_ = 0;
  }

  void *data() const noexcept { return data_; }
  size_t size() const noexcept { return size_; }
  std::span<std::byte> bytes() const noexcept { return {static_cast<std::byte *>(data_), size_}; }

  /** The name without the leading '/'; "" for an anonymous segment. */
  std::string name() const { return detail::get_string(&mpx_segment_name, h_.get(), "mpx::Segment::name"); }
  /** A token from which another process attaches this segment (attach_token). */
  std::string token() const { return detail::get_string(&mpx_segment_token, h_.get(), "mpx::Segment::token"); }
  /** The descriptor behind the mapping (owned by the segment: do not close it). */
  int fd() const {
    int fd = -1;
    detail::check(mpx_segment_fd(h_.get(), &fd), "mpx::Segment::fd");
    return fd;
  }

  mpx_segment *native_handle() const noexcept { return h_.get(); }
  explicit operator bool() const noexcept { return h_.get() != nullptr; }

 private:
  static Segment create_with(size_t bytes, uint32_t flags, const char *name, const char *where) {
    mpx_segment_options o;
    detail::check(mpx_segment_options_init(&o, sizeof o), where);
    o.flags = flags;
    o.name = name;
    mpx_segment *s = nullptr;
    detail::check(mpx_segment_create(&s, bytes, &o), where);
    return Segment(adopt_t{}, s);
  }

  detail::handle<mpx_segment, &mpx_segment_destroy> h_;
  void *data_ = nullptr;
  size_t size_ = 0;
};

// ==== Lock, RLock ==========================================================================

/** Outcome of a non-throwing acquire. */
enum class acquire_result {
  acquired,   /**< held */
  timed_out,  /**< not held: the timeout expired */
  owner_dead, /**< held, but the previous owner died holding it: repair, consistent(), unlock() */
};

/**
 * A process-shared lock of either kind (what Value::get_lock() and Condition::get_lock()
 * return). Lock and RLock are the same class with a fixed kind. Satisfies BasicLockable,
 * Lockable and TimedLockable: std::lock_guard, std::unique_lock, std::scoped_lock work.
 */
class BasicLock {
 public:
  /** Attach the lock a token names, of either kind. */
  static BasicLock attach(std::string_view token) { return BasicLock(adopt_t{}, attach_handle(token, "mpx::BasicLock::attach")); }

  /** Take ownership of a C handle. */
  BasicLock(adopt_t, mpx_lock *h) noexcept : h_(h) {}
  BasicLock(BasicLock &&) noexcept = default;
  BasicLock &operator=(BasicLock &&) noexcept = default;

  /**
   * Acquire, waiting up to `t`. Never throws for timeout or owner death; throws mpx::error
   * for anything else (MPX_ENOTRECOVERABLE, a closed handle...).
   */
  acquire_result acquire(timeout t = forever) {
    int rc = mpx_lock_acquire(h_.get(), t.count_ms());
    switch (rc) {
      case MPX_OK: return acquire_result::acquired;
      case MPX_ETIMEDOUT: return acquire_result::timed_out;
      case MPX_EOWNERDEAD: return acquire_result::owner_dead;
      default: detail::throw_error(rc, "mpx::Lock::acquire");
    }
  }

  /** Block until held. Owner death: see on_owner_dead() and mpx::owner_dead_error. */
  void lock() { (void)timed_lock(forever, "mpx::Lock::lock"); }
  /** Try once, without blocking. */
  bool try_lock() { return timed_lock(try_once, "mpx::Lock::try_lock"); }
  template <class Rep, class Period>
  bool try_lock_for(std::chrono::duration<Rep, Period> d) {
    return timed_lock(timeout(d), "mpx::Lock::try_lock_for");
  }
  template <class Clock, class Duration>
  bool try_lock_until(std::chrono::time_point<Clock, Duration> deadline) {
    return timed_lock(until(deadline), "mpx::Lock::try_lock_until");
  }

  /** Release. Lock: by anyone (MPX_EPERM if unlocked); RLock: by the owning thread only. */
  void unlock() { detail::check(mpx_lock_release(h_.get()), "mpx::Lock::unlock"); }
  /** Python's name for unlock(). */
  void release() { unlock(); }

  /** Mark a lock acquired after its owner died as repaired. */
  void consistent() { detail::check(mpx_lock_consistent(h_.get()), "mpx::Lock::consistent"); }

  /**
   * Install a repair function for owner death on this handle: lock()/try_lock*() then call
   * it with the lock held, mark the lock consistent and return normally. If it throws, the
   * lock is released unrepaired (it becomes MPX_ENOTRECOVERABLE) and the exception propagates.
   * `[]{}` accepts the state as is, like the Python binding. An empty function removes it.
   */
  void on_owner_dead(std::function<void()> repair) { repair_ = std::move(repair); }

  /** Held by anyone. */
  bool locked() const { return flag(&mpx_lock_locked, "mpx::Lock::locked"); }
  /** RLock: held by the calling thread. Lock: held by this process. */
  bool is_owned() const { return flag(&mpx_lock_is_owned, "mpx::Lock::is_owned"); }
  /** RLock: recursion depth held by the calling thread (0 if not held). Lock: 0. */
  uint32_t count() const {
    uint32_t c = 0;
    detail::check(mpx_lock_count(h_.get(), &c), "mpx::Lock::count");
    return c;
  }
  bool is_recursive() const { return flag(&mpx_lock_is_recursive, "mpx::Lock::is_recursive"); }

  std::string token() const { return detail::get_string(&mpx_lock_token, h_.get(), "mpx::Lock::token"); }
  mpx_lock *native_handle() const noexcept { return h_.get(); }
  explicit operator bool() const noexcept { return h_.get() != nullptr; }

 protected:
  static mpx_lock *create_handle(uint32_t flags, const char *where) {
    mpx_lock_options o;
    detail::check(mpx_lock_options_init(&o, sizeof o), where);
    o.flags = flags;
    mpx_lock *l = nullptr;
    detail::check(mpx_lock_create(&l, &o), where);
    return l;
  }

  static mpx_lock *attach_handle(std::string_view token, const char *where) {
    std::string t(token);
    mpx_lock *l = nullptr;
    detail::check(mpx_lock_attach(&l, t.c_str()), where);
    return l;
  }

  /** Attach and insist on one kind (the C call accepts either). */
  static mpx_lock *attach_kind(std::string_view token, bool recursive, const char *where) {
    BasicLock l(adopt_t{}, attach_handle(token, where));
    if (l.is_recursive() != recursive)
      throw error(MPX_EINVAL, where, recursive ? "the token names a Lock, not an RLock" : "the token names an RLock, not a Lock");
    return l.h_.release();
  }

  bool flag(int (*fn)(mpx_lock *, int *), const char *where) const {
    int v = 0;
    detail::check(fn(h_.get(), &v), where);
    return v != 0;
  }

  bool timed_lock(timeout t, const char *where) {
    int rc = mpx_lock_acquire(h_.get(), t.count_ms());
    if (rc == MPX_OK) return true;
    if (rc == MPX_ETIMEDOUT) return false;
    if (rc == MPX_EOWNERDEAD) {
      recover(where);
      return true;
    }
    detail::throw_error(rc, where);
  }

  /** The lock is held after owner death: repair and mark consistent, or throw (still held). */
  void recover(const char *where) {
    if (!repair_) detail::throw_error(MPX_EOWNERDEAD, where);
    try {
      repair_();
    } catch (...) {
      (void)mpx_lock_release(h_.get());  // unrepaired: the lock becomes unrecoverable
      throw;
    }
    detail::check(mpx_lock_consistent(h_.get()), where);
  }

  friend class Condition;

  detail::handle<mpx_lock, &mpx_lock_destroy> h_;
  std::function<void()> repair_;
};

/** Python's Lock: non-recursive; any thread of any process may release it. */
class Lock : public BasicLock {
 public:
  Lock() : BasicLock(adopt_t{}, create_handle(0, "mpx::Lock")) {}
  Lock(adopt_t, mpx_lock *h) noexcept : BasicLock(adopt_t{}, h) {}
  /** Attach a Lock by token (mpx::error MPX_EINVAL if it names an RLock). */
  static Lock attach(std::string_view token) { return Lock(adopt_t{}, attach_kind(token, false, "mpx::Lock::attach")); }
};

/** Python's RLock: recursive and owner-tracked (a thread of a process); only the owner releases. */
class RLock : public BasicLock {
 public:
  RLock() : BasicLock(adopt_t{}, create_handle(MPX_LOCK_RECURSIVE, "mpx::RLock")) {}
  RLock(adopt_t, mpx_lock *h) noexcept : BasicLock(adopt_t{}, h) {}
  /** Attach an RLock by token (mpx::error MPX_EINVAL if it names a plain Lock). */
  static RLock attach(std::string_view token) { return RLock(adopt_t{}, attach_kind(token, true, "mpx::RLock::attach")); }
};

// ==== Semaphore, BoundedSemaphore ==========================================================

/** A process-shared counting semaphore. Also BasicLockable (lock = acquire, unlock = release). */
class Semaphore {
 public:
  explicit Semaphore(uint32_t value = 1) : h_(create_handle(value, 0, 0, "mpx::Semaphore")) {}
  Semaphore(adopt_t, mpx_semaphore *h) noexcept : h_(h) {}
  static Semaphore attach(std::string_view token) { return Semaphore(adopt_t{}, attach_handle(token, "mpx::Semaphore::attach")); }

  /** Decrement, waiting up to `t` for a positive value: false on timeout. */
  bool acquire(timeout t = forever) {
    int rc = mpx_semaphore_acquire(h_.get(), t.count_ms());
    if (rc == MPX_ETIMEDOUT) return false;
    detail::check(rc, "mpx::Semaphore::acquire");
    return true;
  }
  bool try_acquire() { return acquire(try_once); }
  template <class Rep, class Period>
  bool try_acquire_for(std::chrono::duration<Rep, Period> d) {
    return acquire(timeout(d));
  }
  template <class Clock, class Duration>
  bool try_acquire_until(std::chrono::time_point<Clock, Duration> deadline) {
    return acquire(until(deadline));
  }

  /** Increment `n` times, waking waiters. Past the bound: mpx::error MPX_EOVERFLOW, that one
   *  increment not applied (earlier ones are). */
  void release(uint32_t n = 1) {
    for (uint32_t i = 0; i < n; ++i) detail::check(mpx_semaphore_release(h_.get()), "mpx::Semaphore::release");
  }

  void lock() { (void)acquire(); }
  bool try_lock() { return acquire(try_once); }
  template <class Rep, class Period>
  bool try_lock_for(std::chrono::duration<Rep, Period> d) {
    return acquire(timeout(d));
  }
  template <class Clock, class Duration>
  bool try_lock_until(std::chrono::time_point<Clock, Duration> deadline) {
    return acquire(until(deadline));
  }
  void unlock() { release(); }

  uint32_t value() const {
    uint32_t v = 0;
    detail::check(mpx_semaphore_value(h_.get(), &v), "mpx::Semaphore::value");
    return v;
  }
  /** The bound; MPX_SEMAPHORE_VALUE_MAX when unbounded. */
  uint32_t max_value() const {
    uint32_t v = 0;
    detail::check(mpx_semaphore_max_value(h_.get(), &v), "mpx::Semaphore::max_value");
    return v;
  }

  std::string token() const { return detail::get_string(&mpx_semaphore_token, h_.get(), "mpx::Semaphore::token"); }
  mpx_semaphore *native_handle() const noexcept { return h_.get(); }
  explicit operator bool() const noexcept { return h_.get() != nullptr; }

 protected:
  static mpx_semaphore *create_handle(uint32_t value, uint32_t flags, uint32_t max, const char *where) {
    mpx_semaphore_options o;
    detail::check(mpx_semaphore_options_init(&o, sizeof o), where);
    o.flags = flags;
    o.max_value = max;
    mpx_semaphore *s = nullptr;
    detail::check(mpx_semaphore_create(&s, value, &o), where);
    return s;
  }
  static mpx_semaphore *attach_handle(std::string_view token, const char *where) {
    std::string t(token);
    mpx_semaphore *s = nullptr;
    detail::check(mpx_semaphore_attach(&s, t.c_str()), where);
    return s;
  }

  detail::handle<mpx_semaphore, &mpx_semaphore_destroy> h_;
};

/** A semaphore that refuses to be released past its bound (MPX_EOVERFLOW), like Python's. */
class BoundedSemaphore : public Semaphore {
 public:
  /** max_value 0 means the initial value (Python's rule). */
  explicit BoundedSemaphore(uint32_t value = 1, uint32_t max_value = 0)
      : Semaphore(adopt_t{}, create_handle(value, MPX_SEMAPHORE_BOUNDED, max_value, "mpx::BoundedSemaphore")) {}
  BoundedSemaphore(adopt_t, mpx_semaphore *h) noexcept : Semaphore(adopt_t{}, h) {}
  static BoundedSemaphore attach(std::string_view token) {
    return BoundedSemaphore(adopt_t{}, attach_handle(token, "mpx::BoundedSemaphore::attach"));
  }
};

// ==== Event ================================================================================

/** A process-shared flag that waiters block on until it is set. */
class Event {
 public:
  Event() {
    mpx_event *e = nullptr;
    detail::check(mpx_event_create(&e), "mpx::Event");
    h_ = handle_type(e);
  }
  Event(adopt_t, mpx_event *h) noexcept : h_(h) {}
  static Event attach(std::string_view token) {
    std::string t(token);
    mpx_event *e = nullptr;
    detail::check(mpx_event_attach(&e, t.c_str()), "mpx::Event::attach");
    return Event(adopt_t{}, e);
  }

  /** Set the flag and wake every waiter. */
  void set() { detail::check(mpx_event_set(h_.get()), "mpx::Event::set"); }
  void clear() { detail::check(mpx_event_clear(h_.get()), "mpx::Event::clear"); }
  bool is_set() const {
    int v = 0;
    detail::check(mpx_event_is_set(h_.get(), &v), "mpx::Event::is_set");
    return v != 0;
  }
  /** Wait until set: true when set, false on timeout (like Python's wait). */
  bool wait(timeout t = forever) {
    int rc = mpx_event_wait(h_.get(), t.count_ms());
    if (rc == MPX_ETIMEDOUT) return false;
    detail::check(rc, "mpx::Event::wait");
    return true;
  }
  template <class Rep, class Period>
  bool wait_for(std::chrono::duration<Rep, Period> d) {
    return wait(timeout(d));
  }
  template <class Clock, class Duration>
  bool wait_until(std::chrono::time_point<Clock, Duration> deadline) {
    return wait(until(deadline));
  }

  std::string token() const { return detail::get_string(&mpx_event_token, h_.get(), "mpx::Event::token"); }
  mpx_event *native_handle() const noexcept { return h_.get(); }
  explicit operator bool() const noexcept { return h_.get() != nullptr; }

 private:
  using handle_type = detail::handle<mpx_event, &mpx_event_destroy>;
  handle_type h_;
};

// ==== Condition ============================================================================

/**
 * A process-shared condition variable bound to its own lock (a new RLock by default, or the
 * lock given). The condition is itself Lockable (it locks its lock), so
 * `std::unique_lock lk(cond); cond.wait([&]{ return ready; });` reads as in Python.
 */
class Condition {
 public:
  /** With a new RLock, like Python's Condition(). */
  Condition() : Condition(adopt_t{}, create_handle(nullptr)) {}
  /** Over `lock` (a Lock or an RLock; the condition keeps its own reference to it). */
  explicit Condition(const BasicLock &lock) : Condition(adopt_t{}, create_handle(lock.native_handle())) {}
  Condition(adopt_t, mpx_condition *h) : h_(h), lock_(adopt_t{}, fetch_lock(h)) {}
  static Condition attach(std::string_view token) {
    std::string t(token);
    mpx_condition *c = nullptr;
    detail::check(mpx_condition_attach(&c, t.c_str()), "mpx::Condition::attach");
    return Condition(adopt_t{}, c);
  }

  /** This handle's view of the condition's lock. */
  BasicLock &get_lock() noexcept { return lock_; }

  acquire_result acquire(timeout t = forever) { return lock_.acquire(t); }
  void lock() { lock_.lock(); }
  bool try_lock() { return lock_.try_lock(); }
  template <class Rep, class Period>
  bool try_lock_for(std::chrono::duration<Rep, Period> d) {
    return lock_.try_lock_for(d);
  }
  template <class Clock, class Duration>
  bool try_lock_until(std::chrono::time_point<Clock, Duration> deadline) {
    return lock_.try_lock_until(deadline);
  }
  void unlock() { lock_.unlock(); }
  void release() { lock_.unlock(); }

  /** Repair function for owner death of the lock (see BasicLock::on_owner_dead), used by
   *  lock() and by the re-acquire at the end of every wait. */
  void on_owner_dead(std::function<void()> repair) { lock_.on_owner_dead(std::move(repair)); }

  /**
   * With the lock held: release it, wait for a notification, re-acquire it. True when
   * notified, false on timeout; the lock is held again either way. Spurious wake-ups are
   * possible: prefer the predicate form.
   */
  bool wait(timeout t = forever) {
    int rc = mpx_condition_wait(h_.get(), t.count_ms());
    if (rc == MPX_ETIMEDOUT) return false;
    if (rc == MPX_EOWNERDEAD) {
      lock_.recover("mpx::Condition::wait");
      return true;
    }
    detail::check(rc, "mpx::Condition::wait");
    return true;
  }

  /** Wait until pred() is true (Python's wait_for): returns pred()'s last value. */
  template <std::predicate Pred>
  bool wait(Pred pred, timeout t = forever) {
    if (t.is_forever() || t.count_ms() > int64_t{1} << 40) {
      while (!pred()) (void)wait();
      return true;
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(t.count_ms());
    while (!pred()) {
      const auto left = deadline - std::chrono::steady_clock::now();
      if (left <= left.zero()) return pred();
      (void)wait(timeout(left));
    }
    return true;
  }

  template <class Rep, class Period>
  bool wait_for(std::chrono::duration<Rep, Period> d) {
    return wait(timeout(d));
  }
  template <class Rep, class Period, std::predicate Pred>
  bool wait_for(std::chrono::duration<Rep, Period> d, Pred pred) {
    return wait(std::move(pred), timeout(d));
  }
  template <class Clock, class Duration>
  bool wait_until(std::chrono::time_point<Clock, Duration> deadline) {
    return wait(until(deadline));
  }
  template <class Clock, class Duration, std::predicate Pred>
  bool wait_until(std::chrono::time_point<Clock, Duration> deadline, Pred pred) {
    while (!pred()) {
      if (Clock::now() >= deadline) return pred();
      (void)wait(until(deadline));
    }
    return true;
  }

  /** Wake up to n waiters; the lock must be held (mpx::error MPX_EPERM otherwise). */
  void notify(uint32_t n = 1) { detail::check(mpx_condition_notify(h_.get(), n), "mpx::Condition::notify"); }
  void notify_one() { notify(1); }
  void notify_all() { detail::check(mpx_condition_notify_all(h_.get()), "mpx::Condition::notify_all"); }

  std::string token() const { return detail::get_string(&mpx_condition_token, h_.get(), "mpx::Condition::token"); }
  mpx_condition *native_handle() const noexcept { return h_.get(); }
  explicit operator bool() const noexcept { return h_.get() != nullptr; }

 private:
  static mpx_condition *create_handle(mpx_lock *lock) {
    mpx_condition *c = nullptr;
    detail::check(mpx_condition_create(&c, lock), "mpx::Condition");
    return c;
  }
  static mpx_lock *fetch_lock(mpx_condition *c) {
    mpx_lock *l = nullptr;
    int rc = mpx_condition_lock(c, &l);
    detail::check(rc, "mpx::Condition");  // h_ is already built: it closes c on the way out
    return l;
  }

  detail::handle<mpx_condition, &mpx_condition_destroy> h_;
  BasicLock lock_;
};

// ==== Barrier ==============================================================================

/** A process-shared barrier for a fixed number of parties, with Python's semantics. */
class Barrier {
 public:
  explicit Barrier(uint32_t parties) {
    mpx_barrier *b = nullptr;
    detail::check(mpx_barrier_create(&b, parties), "mpx::Barrier");
    h_ = handle_type(b);
  }
  Barrier(adopt_t, mpx_barrier *h) noexcept : h_(h) {}
  static Barrier attach(std::string_view token) {
    std::string t(token);
    mpx_barrier *b = nullptr;
    detail::check(mpx_barrier_attach(&b, t.c_str()), "mpx::Barrier::attach");
    return Barrier(adopt_t{}, b);
  }

  /**
   * Wait for all parties; returns this caller's arrival index (0 .. parties-1, unique per
   * pass). Throws broken_barrier_error if the barrier is broken (MPX_EBROKEN) or this
   * caller's timeout expired (MPX_ETIMEDOUT; that breaks it for everyone).
   */
  uint32_t wait(timeout t = forever) {
    uint32_t index = 0;
    check_wait(mpx_barrier_wait(h_.get(), t.count_ms(), &index));
    return index;
  }

  /**
   * Wait; the last party to arrive runs action() before anyone passes (Python's `action`).
   * If action throws, the barrier is aborted (others get broken_barrier_error) and the
   * exception propagates. Every party should pass the same action.
   */
  template <std::invocable Action>
  uint32_t wait(Action &&action, timeout t = forever) {
    uint32_t index = 0;
    check_wait(mpx_barrier_wait_ex(h_.get(), t.count_ms(), MPX_BARRIER_HOLD, &index));
    uint32_t n = parties();
    if (index == n - 1) {
      try {
        std::forward<Action>(action)();
      } catch (...) {
        (void)mpx_barrier_abort(h_.get());
        throw;
      }
      check_wait(mpx_barrier_release(h_.get()));  // broken meanwhile: broken_barrier_error
    }
    return index;
  }

  /** std::barrier's name for wait(). */
  void arrive_and_wait() { (void)wait(); }

  /** Break the barrier: current and future waiters fail until reset(). */
  void abort() { detail::check(mpx_barrier_abort(h_.get()), "mpx::Barrier::abort"); }
  /** Back to the initial state; current waiters fail with broken_barrier_error. */
  void reset() { detail::check(mpx_barrier_reset(h_.get()), "mpx::Barrier::reset"); }

  uint32_t parties() const { return get_u32(&mpx_barrier_parties, "mpx::Barrier::parties"); }
  uint32_t n_waiting() const { return get_u32(&mpx_barrier_n_waiting, "mpx::Barrier::n_waiting"); }
  bool broken() const {
    int v = 0;
    detail::check(mpx_barrier_broken(h_.get(), &v), "mpx::Barrier::broken");
    return v != 0;
  }

  std::string token() const { return detail::get_string(&mpx_barrier_token, h_.get(), "mpx::Barrier::token"); }
  mpx_barrier *native_handle() const noexcept { return h_.get(); }
  explicit operator bool() const noexcept { return h_.get() != nullptr; }

 private:
  using handle_type = detail::handle<mpx_barrier, &mpx_barrier_destroy>;

  static void check_wait(int rc) {
    if (rc == MPX_EBROKEN || rc == MPX_ETIMEDOUT)
      throw broken_barrier_error(rc, "mpx::Barrier::wait", mpx_last_error_message());
    detail::check(rc, "mpx::Barrier::wait");
  }
  uint32_t get_u32(int (*fn)(mpx_barrier *, uint32_t *), const char *where) const {
    uint32_t v = 0;
    detail::check(fn(h_.get(), &v), where);
    return v;
  }

  handle_type h_;
};

// ==== Value, Array =========================================================================

namespace detail {
template <class T>
struct typecode_of;
template <> struct typecode_of<char> : std::integral_constant<char, 'c'> {};
template <> struct typecode_of<signed char> : std::integral_constant<char, 'b'> {};
template <> struct typecode_of<unsigned char> : std::integral_constant<char, 'B'> {};
template <> struct typecode_of<short> : std::integral_constant<char, 'h'> {};
template <> struct typecode_of<unsigned short> : std::integral_constant<char, 'H'> {};
template <> struct typecode_of<int> : std::integral_constant<char, 'i'> {};
template <> struct typecode_of<unsigned int> : std::integral_constant<char, 'I'> {};
template <> struct typecode_of<long> : std::integral_constant<char, 'l'> {};
template <> struct typecode_of<unsigned long> : std::integral_constant<char, 'L'> {};
template <> struct typecode_of<long long> : std::integral_constant<char, 'q'> {};
template <> struct typecode_of<unsigned long long> : std::integral_constant<char, 'Q'> {};
template <> struct typecode_of<float> : std::integral_constant<char, 'f'> {};
template <> struct typecode_of<double> : std::integral_constant<char, 'd'> {};
}  // namespace detail

/** A type Value/Array can hold: one of the C types behind Python's typecodes. */
template <class T>
concept element = requires { detail::typecode_of<T>::value; };

/** The Python typecode of T: int -> 'i', double -> 'd', int8_t -> 'b', ... */
template <element T>
inline constexpr char typecode_v = detail::typecode_of<T>::value;

/** Which lock a Value/Array carries (MPX_ARRAY_LOCK_*). */
enum class lock_kind : uint32_t {
  rlock = MPX_ARRAY_LOCK_RLOCK, /**< default, as Python */
  lock = MPX_ARRAY_LOCK_LOCK,
  none = MPX_ARRAY_LOCK_NONE, /**< RawValue / RawArray */
};

namespace detail {

/** The handle, mapping and lock shared by Value<T> and Array<T>. */
template <element T>
class typed_array {
 public:
  typed_array(typed_array &&o) noexcept
      : h_(std::move(o.h_)),
        data_(std::exchange(o.data_, nullptr)),
        size_(std::exchange(o.size_, 0)),
        lock_(std::exchange(o.lock_, std::nullopt)) {}
  typed_array &operator=(typed_array &&o) noexcept {
    if (this != &o) {
      lock_ = std::exchange(o.lock_, std::nullopt);  // the lock handle first: it may live in h_'s segment
      h_ = std::move(o.h_);
      data_ = std::exchange(o.data_, nullptr);
      size_ = std::exchange(o.size_, 0);
    }
    return *this;
  }

  /** True unless raw (lock_kind::none). */
  bool has_lock() const noexcept { return lock_.has_value(); }
  /** The lock it carries; mpx::error MPX_ENOENT for a raw one. Take it around compound updates. */
  BasicLock &get_lock() {
    if (!lock_) throw error(MPX_ENOENT, "mpx::Array::get_lock", "a raw value or array has no lock");
    return *lock_;
  }
  /** Lockable through its lock, so `std::lock_guard g(value);` works. */
  void lock() { get_lock().lock(); }
  bool try_lock() { return get_lock().try_lock(); }
  void unlock() { get_lock().unlock(); }

  std::string token() const { return get_string(&mpx_array_token, h_.get(), "mpx::Array::token"); }
  mpx_array *native_handle() const noexcept { return h_.get(); }
  explicit operator bool() const noexcept { return h_.get() != nullptr; }

 protected:
  typed_array(mpx_array *h, const char *where) : h_(h) {
    char tc = 0;
    size_t item = 0, n = 0;
    void *addr = nullptr;
    check(mpx_array_typecode(h, &tc), where);
    check(mpx_array_item_size(h, &item), where);
    check(mpx_array_length(h, &n), where);
    check(mpx_array_address(h, &addr), where);
    if (tc != typecode_v<T> || item != sizeof(T))
      throw error(MPX_EINVAL, where,
                  std::string("typecode '") + tc + "' (" + std::to_string(item) + " bytes) does not match '" +
                      typecode_v<T> + "' (" + std::to_string(sizeof(T)) + " bytes)");
    data_ = static_cast<T *>(addr);
    size_ = n;
    mpx_lock *l = nullptr;
    int rc = mpx_array_lock(h, &l);
    if (rc == MPX_OK)
      lock_.emplace(adopt_t{}, l);
    else if (rc != MPX_ENOENT)
      throw_error(rc, where);
  }

  static mpx_array *create_handle(size_t n, lock_kind kind, const char *where) {
    mpx_array_options o;
    check(mpx_array_options_init(&o, sizeof o), where);
    o.lock = static_cast<uint32_t>(kind);
    mpx_array *a = nullptr;
    check(mpx_array_create(&a, typecode_v<T>, n, &o), where);
    return a;
  }
  static mpx_array *attach_handle(std::string_view token, const char *where) {
    std::string t(token);
    mpx_array *a = nullptr;
    check(mpx_array_attach(&a, t.c_str()), where);
    return a;
  }

  handle<mpx_array, &mpx_array_destroy> h_;
  T *data_ = nullptr;
  size_t size_ = 0;
  std::optional<BasicLock> lock_;
};

}  // namespace detail

/**
 * Python's Value: one T in shared memory with a lock (an RLock unless told otherwise).
 * get()/set() are single atomic loads/stores (relaxed); take get_lock() around read-modify-write:
 * `{ std::lock_guard g(v); v = v + 1; }`.
 */
template <element T>
class Value : public detail::typed_array<T> {
  using base = detail::typed_array<T>;

 public:
  using value_type = T;

  explicit Value(T initial = T{}, lock_kind kind = lock_kind::rlock)
      : base(base::create_handle(1, kind, "mpx::Value"), "mpx::Value") {
    set(initial);
  }
  /** Take ownership of a C handle (of the matching typecode and length 1). */
  Value(adopt_t, mpx_array *h) : base(h, "mpx::Value") {
    if (this->size_ != 1) throw error(MPX_EINVAL, "mpx::Value", "the array's length is not 1");
  }
  static Value attach(std::string_view token) { return Value(adopt_t{}, base::attach_handle(token, "mpx::Value::attach")); }

  T get() const noexcept {
    if constexpr (std::atomic_ref<T>::is_always_lock_free) {
      return std::atomic_ref<T>(*this->data_).load(std::memory_order_relaxed);
    } else {
      return *this->data_;
    }
  }
  void set(T v) noexcept {
    if constexpr (std::atomic_ref<T>::is_always_lock_free) {
      std::atomic_ref<T>(*this->data_).store(v, std::memory_order_relaxed);
    } else {
      *this->data_ = v;
    }
  }
  operator T() const noexcept { return get(); }  // NOLINT: reads like Python's v.value
  Value &operator=(T v) noexcept {
    set(v);
    return *this;
  }
  /** The address in this process (valid while this handle lives). */
  T *data() const noexcept { return this->data_; }
};

/** Python's RawValue: a Value without a lock. */
template <element T>
class RawValue : public Value<T> {
 public:
  explicit RawValue(T initial = T{}) : Value<T>(initial, lock_kind::none) {}
  using Value<T>::operator=;
};

/**
 * Python's Array: `size()` Ts in shared memory with a lock (an RLock unless told otherwise).
 * operator[] and iterators address the shared memory directly; read()/write() copy in bulk.
 * Nothing here takes the lock: hold get_lock() (or the array itself) around compound updates.
 */
template <element T>
class Array : public detail::typed_array<T> {
  using base = detail::typed_array<T>;

 public:
  using value_type = T;
  using size_type = size_t;
  using reference = T &;
  using const_reference = const T &;
  using iterator = T *;
  using const_iterator = const T *;

  /** `length` (>= 1) zero-filled elements. */
  explicit Array(size_t length, lock_kind kind = lock_kind::rlock)
      : base(base::create_handle(length, kind, "mpx::Array"), "mpx::Array") {}
  /** A copy of `init` (not empty). */
  Array(std::initializer_list<T> init, lock_kind kind = lock_kind::rlock)
      : Array(std::span<const T>(init.begin(), init.size()), kind) {}
  explicit Array(std::span<const T> init, lock_kind kind = lock_kind::rlock)
      : base(base::create_handle(init.size(), kind, "mpx::Array"), "mpx::Array") {
    write(0, init);
  }
  /** Take ownership of a C handle (of the matching typecode). */
  Array(adopt_t, mpx_array *h) : base(h, "mpx::Array") {}
  static Array attach(std::string_view token) { return Array(adopt_t{}, base::attach_handle(token, "mpx::Array::attach")); }

  size_t size() const noexcept { return this->size_; }
  bool empty() const noexcept { return this->size_ == 0; }
  T *data() noexcept { return this->data_; }
  const T *data() const noexcept { return this->data_; }
  T &operator[](size_t i) noexcept { return this->data_[i]; }
  const T &operator[](size_t i) const noexcept { return this->data_[i]; }
  /** Checked access: mpx::error MPX_ERANGE past the end. */
  T &at(size_t i) {
    if (i >= this->size_) throw error(MPX_ERANGE, "mpx::Array::at", "index " + std::to_string(i) + " >= " + std::to_string(this->size_));
    return this->data_[i];
  }
  const T &at(size_t i) const { return const_cast<Array *>(this)->at(i); }
  T *begin() noexcept { return this->data_; }
  T *end() noexcept { return this->data_ + this->size_; }
  const T *begin() const noexcept { return this->data_; }
  const T *end() const noexcept { return this->data_ + this->size_; }
  std::span<T> span() noexcept { return {this->data_, this->size_}; }
  std::span<const T> span() const noexcept { return {this->data_, this->size_}; }

  /** Copy out.size() elements starting at `start` (mpx::error MPX_ERANGE past the end). */
  void read(size_t start, std::span<T> out) const {
    detail::check(mpx_array_read(this->h_.get(), start, out.size(), out.data(), out.size_bytes()), "mpx::Array::read");
  }
  /** Copy in.size() elements into the array starting at `start`. */
  void write(size_t start, std::span<const T> in) {
    detail::check(mpx_array_write(this->h_.get(), start, in.size(), in.data(), in.size_bytes()), "mpx::Array::write");
  }
  std::vector<T> to_vector() const { return std::vector<T>(begin(), end()); }
};

/** Python's RawArray: an Array without a lock. */
template <element T>
class RawArray : public Array<T> {
 public:
  explicit RawArray(size_t length) : Array<T>(length, lock_kind::none) {}
  RawArray(std::initializer_list<T> init) : Array<T>(init, lock_kind::none) {}
  explicit RawArray(std::span<const T> init) : Array<T>(init, lock_kind::none) {}
};

// ==== Process ==============================================================================

/**
 * A child process with Python's multiprocessing.Process semantics: create, start(), join(),
 * exitcode() (0 when the target returned, the exit() status, -N when killed by signal N).
 * Movable, not copyable. The destructor frees the object but never signals the child: a
 * child that is still running goes on, and the library reaps it when it ends (terminate()
 * or kill() and join() first to end it).
 */
class Process {
 public:
  /** From C options (not started). Strings, argv, env, the payload and the fd list are copied. */
  explicit Process(const mpx_process_options &opts) : h_(create_handle(opts, "mpx::Process")) {}

  /**
   * Fork method: run fn() in a forked child (not started). The child's exit code is 0 when fn
   * returns, 1 when it throws (what() goes to stderr). The child has a copy of this process's
   * memory, so fn may capture anything by value or by reference.
   */
  template <class F>
    requires std::invocable<F &> && (!std::same_as<std::remove_cvref_t<F>, Process>) &&
             (!std::same_as<std::remove_cvref_t<F>, mpx_process_options>)
  explicit Process(F &&fn) : fn_(std::make_unique<std::function<void()>>(std::forward<F>(fn))) {
    mpx_process_options o;
    detail::check(mpx_process_options_init(&o, sizeof o), "mpx::Process");
    o.method = MPX_START_FORK;
    o.fn = &Process::run_target;
    o.arg = fn_.get();  // on the heap: stays put when the Process moves
    h_ = handle_type(create_handle(o, "mpx::Process"));
  }

  /** Spawn method: exec `file` (searched in PATH without a '/') with argv (argv[0] first; empty: { file }). */
  static Process spawn(std::string_view file, const std::vector<std::string> &argv = {}) {
    std::string f(file);
    std::vector<const char *> args;
    for (const auto &a : argv) args.push_back(a.c_str());
    args.push_back(nullptr);
    mpx_process_options o;
    detail::check(mpx_process_options_init(&o, sizeof o), "mpx::Process::spawn");
    o.method = MPX_START_SPAWN;
    o.file = f.c_str();
    o.argv = argv.empty() ? nullptr : args.data();
    return Process(o);
  }

  /** Adopt a child this process forked itself (as Python's os.fork): started, joined and reaped like any other. */
  static Process adopt_child(int64_t pid) {
    mpx_process *p = nullptr;
    detail::check(mpx_process_adopt(&p, pid, nullptr), "mpx::Process::adopt_child");
    return Process(adopt_t{}, p);
  }

  /** Take ownership of a C handle. */
  Process(adopt_t, mpx_process *h) noexcept : h_(h) {}
  Process(Process &&) noexcept = default;
  Process &operator=(Process &&o) noexcept {
    if (this != &o) {
      h_ = std::move(o.h_);  // the old object first: it may point at the old target
      fn_ = std::move(o.fn_);
    }
    return *this;
  }

  /** Start the child; returns once it exists. mpx::error MPX_EINVAL if already started, MPX_ENOENT / MPX_EACCES for a program that cannot be executed. */
  void start() { detail::check(mpx_process_start(h_.get()), "mpx::Process::start"); }

  /** Wait for the child to end: true when it has (exitcode() is then known), false on timeout. */
  bool join(timeout t = forever) {
    int rc = mpx_process_join(h_.get(), t.count_ms());
    if (rc == MPX_ETIMEDOUT) return false;
    detail::check(rc, "mpx::Process::join");
    return true;
  }

  /** Started and not ended (reaps the child if it has ended). */
  bool is_alive() const {
    int v = 0;
    detail::check(mpx_process_is_alive(h_.get(), &v), "mpx::Process::is_alive");
    return v != 0;
  }

  /** The exit code once the child has ended; nullopt before start and while it runs. */
  std::optional<int> exitcode() const {
    int code = 0;
    int rc = mpx_process_exitcode(h_.get(), &code);
    if (rc == MPX_EAGAIN) return std::nullopt;
    detail::check(rc, "mpx::Process::exitcode");
    return code;
  }

  /** SIGTERM (a child that has ended is left alone). */
  void terminate() { detail::check(mpx_process_terminate(h_.get()), "mpx::Process::terminate"); }
  /** SIGKILL. */
  void kill() { detail::check(mpx_process_kill(h_.get()), "mpx::Process::kill"); }
  /** SIGINT. */
  void interrupt() { detail::check(mpx_process_interrupt(h_.get()), "mpx::Process::interrupt"); }
  /** Any signal. */
  void signal(int sig) { detail::check(mpx_process_signal(h_.get(), sig), "mpx::Process::signal"); }

  /** The child's pid; 0 before start. */
  int64_t pid() const {
    int64_t pid = 0;
    detail::check(mpx_process_pid(h_.get(), &pid), "mpx::Process::pid");
    return pid;
  }

  /** "Process-N" unless named; the child keeps the name it started with. */
  std::string name() const { return detail::get_string(&mpx_process_name, h_.get(), "mpx::Process::name"); }
  void set_name(std::string_view name) {
    std::string n(name);
    detail::check(mpx_process_set_name(h_.get(), n.c_str()), "mpx::Process::set_name");
  }

  /** A daemon is killed when this process dies and may not start children. */
  bool daemon() const {
    int v = 0;
    detail::check(mpx_process_daemon(h_.get(), &v), "mpx::Process::daemon");
    return v != 0;
  }
  /** Before start only (mpx::error MPX_EINVAL after). */
  void set_daemon(bool daemon) { detail::check(mpx_process_set_daemon(h_.get(), daemon ? 1 : 0), "mpx::Process::set_daemon"); }

  /** A descriptor that becomes readable when the child has ended (owned by the object: poll it only). */
  int sentinel() const {
    int fd = -1;
    detail::check(mpx_process_sentinel(h_.get(), &fd), "mpx::Process::sentinel");
    return fd;
  }

  /** The parent's end of a MPX_STDIO_PIPE stream (0: write to the child's stdin; 1, 2: read). Owned by the object. */
  int stdio(int stream) const {
    int fd = -1;
    detail::check(mpx_process_stdio(h_.get(), stream, &fd), "mpx::Process::stdio");
    return fd;
  }
  /** Close the parent's end of a stdio pipe early (stdin: the child sees EOF). */
  void close_stdio(int stream) { detail::check(mpx_process_close_stdio(h_.get(), stream), "mpx::Process::close_stdio"); }

  /** Python's close(): free the object now; mpx::error MPX_EAGAIN (and nothing freed) while the child runs. */
  void close() {
    detail::check(mpx_process_close(h_.get()), "mpx::Process::close");
    (void)h_.release();
    fn_.reset();
  }

  mpx_process *native_handle() const noexcept { return h_.get(); }
  explicit operator bool() const noexcept { return h_.get() != nullptr; }

 private:
  using handle_type = detail::handle<mpx_process, &mpx_process_destroy>;

  static mpx_process *create_handle(const mpx_process_options &opts, const char *where) {
    mpx_process *p = nullptr;
    detail::check(mpx_process_create(&p, &opts), where);
    return p;
  }

  // Runs in the child: the library exits it with 0 when this returns.
  static void run_target(void *arg) noexcept {
    try {
      (*static_cast<std::function<void()> *>(arg))();
    } catch (const std::exception &e) {
      std::fprintf(stderr, "mpx::Process: the target threw: %s\n", e.what());
      std::fflush(nullptr);
      std::_Exit(1);
    } catch (...) {
      std::fprintf(stderr, "mpx::Process: the target threw an exception\n");
      std::fflush(nullptr);
      std::_Exit(1);
    }
    std::fflush(nullptr);  // what the target printed is not lost at the child's _exit
  }

  std::unique_ptr<std::function<void()>> fn_;  // declared first: destroyed after the handle
  handle_type h_;
};

// ==== Connection, Pipe, wait ===============================================================

/**
 * Thrown by Connection::recv_into and Queue::get_into when the message does not fit the
 * buffer (MPX_ENOBUFS). The message stays unread: receive it again with a buffer of needed().
 */
class buffer_too_short : public error {
 public:
  buffer_too_short(size_t needed, std::string where, std::string detail)
      : error(MPX_ENOBUFS, std::move(where), std::move(detail)), needed_(needed) {}
  size_t needed() const noexcept { return needed_; }

 private:
  size_t needed_;
};

namespace detail {

// Receive one whole message of unknown size through an into-function (recv_into, get_into):
// the buffer grows to the announced size on MPX_ENOBUFS. nullopt on timeout.
template <class Into>
std::optional<std::vector<std::byte>> receive_grow(Into &&into, const char *where) {
  std::vector<std::byte> buf(4096);
  for (;;) {
    size_t len = 0;
    int rc = into(buf.data(), buf.size(), &len);
    if (rc == MPX_ETIMEDOUT) return std::nullopt;
    if (rc == MPX_ENOBUFS && len > buf.size()) {
      buf.resize(len);
      continue;
    }
    check(rc, where);
    buf.resize(len);
    return buf;
  }
}

// The into-call itself: nullopt on timeout, buffer_too_short when the buffer is too small.
template <class Into>
std::optional<size_t> receive_into(Into &&into, std::span<std::byte> buf, const char *where) {
  size_t len = 0;
  int rc = into(buf.data(), buf.size(), &len);
  if (rc == MPX_ETIMEDOUT) return std::nullopt;
  if (rc == MPX_ENOBUFS) throw buffer_too_short(len, where, mpx_last_error_message());
  check(rc, where);
  return len;
}

inline std::span<const std::byte> as_bytes(std::string_view s) noexcept {
  return {reinterpret_cast<const std::byte *>(s.data()), s.size()};
}

}  // namespace detail

/**
 * One end of a pipe or connection: whole messages, framed byte for byte as Python's
 * multiprocessing.connection (so a Python Connection can be the other end). recv returns
 * nullopt on timeout; the peer closing is mpx::error MPX_EOF, a peer that died mid-message
 * MPX_EPROTO. Sends to a closed peer throw MPX_EPIPE (never SIGPIPE).
 */
class Connection {
 public:
  /** A connected pair: duplex (socketpair), or first receives and second sends (a pipe). */
  static std::pair<Connection, Connection> pipe(bool duplex = true, uint64_t max_message = 0) {
    mpx_conn_options o;
    detail::check(mpx_conn_options_init(&o, sizeof o), "mpx::Connection::pipe");
    o.max_message = max_message;
    mpx_conn *a = nullptr, *b = nullptr;
    detail::check(mpx_pipe(duplex ? 1 : 0, &o, &a, &b), "mpx::Connection::pipe");
    return {Connection(adopt, a), Connection(adopt, b)};
  }

  /** Wrap a connected socket or pipe end, which the connection then owns (also on failure). */
  static Connection from_fd(int fd, uint32_t flags = MPX_CONN_READABLE | MPX_CONN_WRITABLE) {
    mpx_conn *c = nullptr;
    detail::check(mpx_conn_from_fd(fd, flags, nullptr, &c), "mpx::Connection::from_fd");
    return Connection(adopt, c);
  }

  /** Take ownership of a C handle. */
  Connection(adopt_t, mpx_conn *h) noexcept : h_(h) {}

  void send(std::span<const std::byte> data) {
    detail::check(mpx_conn_send(h_.get(), data.data(), data.size()), "mpx::Connection::send");
  }
  void send(std::string_view s) { send(detail::as_bytes(s)); }

  /** The next message; nullopt when none arrived in time. */
  std::optional<std::vector<std::byte>> recv(timeout t = forever) {
    return detail::receive_grow(
        [&](void *b, size_t cap, size_t *len) { return mpx_conn_recv_into(h_.get(), b, cap, len, t.count_ms()); },
        "mpx::Connection::recv");
  }
  /** The next message as a string (bytes as they are); nullopt on timeout. */
  std::optional<std::string> recv_string(timeout t = forever) {
    auto m = recv(t);
    if (!m) return std::nullopt;
    return std::string(reinterpret_cast<const char *>(m->data()), m->size());
  }
  /** The next message into buf: its size; nullopt on timeout; buffer_too_short if it does not fit. */
  std::optional<size_t> recv_into(std::span<std::byte> buf, timeout t = forever) {
    return detail::receive_into(
        [&](void *b, size_t cap, size_t *len) { return mpx_conn_recv_into(h_.get(), b, cap, len, t.count_ms()); },
        buf, "mpx::Connection::recv_into");
  }
  /** Whether a message (or the end of the stream) can be read within t; consumes nothing. */
  bool poll(timeout t = try_once) {
    int rc = mpx_conn_poll(h_.get(), t.count_ms());
    if (rc == MPX_ETIMEDOUT) return false;
    detail::check(rc, "mpx::Connection::poll");
    return true;
  }

  /** Send descriptors (unix sockets only); this process keeps its copies. */
  void send_fds(std::span<const int> fds) {
    detail::check(mpx_conn_send_fds(h_.get(), fds.data(), fds.size()), "mpx::Connection::send_fds");
  }
  /** Receive descriptors sent by send_fds (close-on-exec, owned by the caller); empty on timeout. */
  std::vector<int> recv_fds(timeout t = forever) {
    std::vector<int> fds(MPX_CONN_MAX_FDS);
    size_t n = fds.size();
    int rc = mpx_conn_recv_fds(h_.get(), fds.data(), &n, t.count_ms());
    if (rc == MPX_ETIMEDOUT) return {};
    detail::check(rc, "mpx::Connection::recv_fds");
    fds.resize(n);
    return fds;
  }
  /** Send another connection (the receiver gets its own). */
  void send_connection(const Connection &c) {
    detail::check(mpx_conn_send_conn(h_.get(), c.h_.get()), "mpx::Connection::send_connection");
  }
  /** Receive a connection sent by send_connection; nullopt on timeout. */
  std::optional<Connection> recv_connection(timeout t = forever) {
    mpx_conn *c = nullptr;
    int rc = mpx_conn_recv_conn(h_.get(), &c, t.count_ms());
    if (rc == MPX_ETIMEDOUT) return std::nullopt;
    detail::check(rc, "mpx::Connection::recv_connection");
    return Connection(adopt, c);
  }
  /** Send a shared memory segment (the receiver maps the same memory). */
  void send_segment(const Segment &s) {
    detail::check(mpx_conn_send_segment(h_.get(), s.native_handle()), "mpx::Connection::send_segment");
  }
  /** Receive a segment sent by send_segment; nullopt on timeout. */
  std::optional<Segment> recv_segment(timeout t = forever) {
    mpx_segment *s = nullptr;
    int rc = mpx_conn_recv_segment(h_.get(), &s, t.count_ms());
    if (rc == MPX_ETIMEDOUT) return std::nullopt;
    detail::check(rc, "mpx::Connection::recv_segment");
    return Segment(adopt, s);
  }

  /** The descriptor (owned by the connection). */
  int fileno() const {
    int fd = -1;
    detail::check(mpx_conn_fileno(h_.get(), &fd), "mpx::Connection::fileno");
    return fd;
  }
  bool readable() const { return (flags() & MPX_CONN_READABLE) != 0; }
  bool writable() const { return (flags() & MPX_CONN_WRITABLE) != 0; }
  /** Close now (the destructor does it otherwise). */
  void close() noexcept { h_.reset(); }
  bool closed() const noexcept { return h_.get() == nullptr; }

  mpx_conn *native_handle() const noexcept { return h_.get(); }
  explicit operator bool() const noexcept { return h_.get() != nullptr; }

 private:
  uint32_t flags() const {
    uint32_t f = 0;
    detail::check(mpx_conn_flags(h_.get(), &f), "mpx::Connection::flags");
    return f;
  }
  detail::handle<mpx_conn, &mpx_conn_destroy> h_;
};

/** Python's Pipe(duplex): Connection::pipe. */
inline std::pair<Connection, Connection> Pipe(bool duplex = true) { return Connection::pipe(duplex); }

// ==== listeners and clients (mpx/listener.h) ===============================================

/** What Listener and client() take besides the address: an authkey (empty: none) and flags. */
struct auth_options {
  std::string_view authkey;          ///< empty: no authentication (a listener then serves local clients only)
  uint32_t flags = 0;                ///< MPX_AUTH_REQUIRE_SHA256, MPX_LISTENER_ALLOW_REMOTE
  timeout handshake = timeout::ms(0);  ///< the handshake deadline; try_once / 0 ms: the default (5 s)
};

/**
 * Python's multiprocessing.connection.Listener: accept() gives authenticated Connections.
 * A client that failed authentication surfaces once as mpx::error with errc::auth (Python's
 * accept raises AuthenticationError); the listener goes on.
 */
class Listener {
 public:
  explicit Listener(const std::string &address, const auth_options &a = {}) {
    mpx_listener_options o;
    detail::check(mpx_listener_options_init(&o, sizeof o), "mpx::Listener");
    if (!a.authkey.empty()) {
      o.authkey = a.authkey.data();
      o.authkey_len = a.authkey.size();
    }
    o.flags = a.flags;
    o.handshake_timeout_ms = a.handshake.is_forever() ? 0 : a.handshake.count_ms();
    mpx_listener *l = nullptr;
    detail::check(mpx_listener_create(&l, address.c_str(), &o), "mpx::Listener");
    h_ = detail::handle<mpx_listener, &mpx_listener_destroy>(l);
  }
  /** Take ownership of a C handle. */
  Listener(adopt_t, mpx_listener *h) noexcept : h_(h) {}

  /** The next authenticated connection; nullopt when none came within t. */
  std::optional<Connection> accept(timeout t = forever) {
    mpx_conn *c = nullptr;
    int rc = mpx_listener_accept(h_.get(), t.count_ms(), &c);
    if (rc == MPX_ETIMEDOUT) return std::nullopt;
    detail::check(rc, "mpx::Listener::accept");
    return Connection(adopt, c);
  }
  /** The address listened on (a TCP port 0 replaced by the real one). */
  std::string address() const {
    return detail::get_string(&mpx_listener_address, h_.get(), "mpx::Listener::address");
  }
  /** The peer of the last accepted connection ("" for a unix socket client). */
  std::string last_accepted() const {
    return detail::get_string(&mpx_listener_last_accepted, h_.get(), "mpx::Listener::last_accepted");
  }
  /** Stop listening; a blocked accept() throws errc::closed. The object stays valid. */
  void close() { detail::check(mpx_listener_close(h_.get()), "mpx::Listener::close"); }

  mpx_listener *native_handle() const noexcept { return h_.get(); }

 private:
  detail::handle<mpx_listener, &mpx_listener_destroy> h_;
};

/** Python's multiprocessing.connection.Client: connect to address and authenticate both ways. */
inline Connection client(const std::string &address, const auth_options &a = {}) {
  mpx_client_options o;
  detail::check(mpx_client_options_init(&o, sizeof o), "mpx::client");
  if (!a.authkey.empty()) {
    o.authkey = a.authkey.data();
    o.authkey_len = a.authkey.size();
  }
  o.flags = a.flags;
  o.timeout_ms = a.handshake.is_forever() ? 0 : a.handshake.count_ms();
  mpx_conn *c = nullptr;
  detail::check(mpx_client_connect(&c, address.c_str(), &o), "mpx::client");
  return Connection(adopt, c);
}

/** Something wait() watches: a connection (readable), a process (ended) or a descriptor. */
class waitable {
 public:
  waitable(const Connection &c) noexcept : o_{MPX_WAIT_CONN, -1, c.native_handle(), 0} {}  // NOLINT
  waitable(const Process &p) noexcept : o_{MPX_WAIT_PROCESS, -1, p.native_handle(), 0} {}   // NOLINT
  static waitable fd(int fd) noexcept { return waitable(mpx_wait_object{MPX_WAIT_FD, fd, nullptr, 0}); }
  const mpx_wait_object &native() const noexcept { return o_; }

 private:
  explicit waitable(mpx_wait_object o) noexcept : o_(o) {}
  mpx_wait_object o_;
};

/**
 * Python's multiprocessing.connection.wait: block until at least one object is ready or the
 * timeout; returns the indices of the ready ones (empty on timeout).
 */
inline std::vector<size_t> wait(std::span<const waitable> objects, timeout t = forever) {
  std::vector<mpx_wait_object> os;
  os.reserve(objects.size());
  for (const auto &w : objects) os.push_back(w.native());
  int rc = mpx_wait(os.data(), os.size(), t.count_ms(), nullptr);
  if (rc == MPX_ETIMEDOUT) return {};
  detail::check(rc, "mpx::wait");
  std::vector<size_t> ready;
  for (size_t i = 0; i < os.size(); ++i)
    if (os[i].ready) ready.push_back(i);
  return ready;
}
inline std::vector<size_t> wait(std::initializer_list<waitable> objects, timeout t = forever) {
  return wait(std::span<const waitable>(objects.begin(), objects.size()), t);
}

// ==== Queue, JoinableQueue =================================================================

/** How a queue is made (zero: the library's default). */
struct queue_options {
  uint64_t maxsize = 0;      /**< most items at once; 0: bounded only by the ring */
  uint64_t capacity = 0;     /**< ring bytes; 0: MPX_QUEUE_DEFAULT_CAPACITY */
  uint64_t max_message = 0;  /**< largest item; 0: no limit */
};

/**
 * A multi-producer multi-consumer queue of byte items in shared memory (Python's Queue and
 * SimpleQueue): usable in forked children, attachable by token from any process. put
 * returns false and get nullopt on timeout; a closed queue throws MPX_ECLOSED.
 */
class Queue {
 public:
  explicit Queue(uint64_t maxsize = 0) : Queue(queue_options{maxsize, 0, 0}) {}
  explicit Queue(const queue_options &o) : Queue(o, 0) {}

  /** Attach the queue a token (from token()) names. */
  static Queue attach(std::string_view token) {
    std::string t(token);
    mpx_queue *q = nullptr;
    detail::check(mpx_queue_attach(&q, t.c_str()), "mpx::Queue::attach");
    return Queue(adopt, q);
  }

  /** Take ownership of a C handle. */
  Queue(adopt_t, mpx_queue *h) noexcept : h_(h) {}

  /** Put a copy of data: false when there was no room in time. */
  bool put(std::span<const std::byte> data, timeout t = forever) {
    int rc = mpx_queue_put(h_.get(), data.data(), data.size(), t.count_ms());
    if (rc == MPX_ETIMEDOUT) return false;
    detail::check(rc, "mpx::Queue::put");
    return true;
  }
  bool put(std::string_view s, timeout t = forever) { return put(detail::as_bytes(s), t); }

  /** Take the oldest item; nullopt when none came in time. */
  std::optional<std::vector<std::byte>> get(timeout t = forever) {
    return detail::receive_grow(
        [&](void *b, size_t cap, size_t *len) { return mpx_queue_get_into(h_.get(), b, cap, len, t.count_ms()); },
        "mpx::Queue::get");
  }
  /** The oldest item as a string; nullopt on timeout. */
  std::optional<std::string> get_string(timeout t = forever) {
    auto m = get(t);
    if (!m) return std::nullopt;
    return std::string(reinterpret_cast<const char *>(m->data()), m->size());
  }
  /** The oldest item into buf: its size; nullopt on timeout; buffer_too_short if it does not fit (it stays queued). */
  std::optional<size_t> get_into(std::span<std::byte> buf, timeout t = forever) {
    return detail::receive_into(
        [&](void *b, size_t cap, size_t *len) { return mpx_queue_get_into(h_.get(), b, cap, len, t.count_ms()); },
        buf, "mpx::Queue::get_into");
  }

  size_t qsize() const {
    size_t n = 0;
    detail::check(mpx_queue_qsize(h_.get(), &n), "mpx::Queue::qsize");
    return n;
  }
  bool empty() const { return flag(&mpx_queue_empty, "mpx::Queue::empty"); }
  bool full() const { return flag(&mpx_queue_full, "mpx::Queue::full"); }
  /** Close for every process: puts fail, gets drain what is left (see mpx_queue_close). */
  void close() { detail::check(mpx_queue_close(h_.get()), "mpx::Queue::close"); }
  bool closed() const { return flag(&mpx_queue_closed, "mpx::Queue::closed"); }
  std::string token() const { return detail::get_string(&mpx_queue_token, h_.get(), "mpx::Queue::token"); }

  mpx_queue *native_handle() const noexcept { return h_.get(); }
  explicit operator bool() const noexcept { return h_.get() != nullptr; }

 protected:
  Queue(const queue_options &o, uint32_t flags) {
    mpx_queue_options c;
    detail::check(mpx_queue_options_init(&c, sizeof c), "mpx::Queue");
    c.flags = flags;
    c.maxsize = o.maxsize;
    c.capacity = o.capacity;
    c.max_message = o.max_message;
    mpx_queue *q = nullptr;
    detail::check(mpx_queue_create(&q, &c), "mpx::Queue");
    h_ = detail::handle<mpx_queue, &mpx_queue_destroy>(q);
  }

 private:
  bool flag(int (*fn)(mpx_queue *, int *), const char *where) const {
    int v = 0;
    detail::check(fn(h_.get(), &v), where);
    return v != 0;
  }
  detail::handle<mpx_queue, &mpx_queue_destroy> h_;
};

/** A Queue whose consumers confirm each item (Python's JoinableQueue). */
class JoinableQueue : public Queue {
 public:
  explicit JoinableQueue(uint64_t maxsize = 0) : JoinableQueue(queue_options{maxsize, 0, 0}) {}
  explicit JoinableQueue(const queue_options &o) : Queue(o, MPX_QUEUE_JOINABLE) {}
  static JoinableQueue attach(std::string_view token) { return JoinableQueue(Queue::attach(token)); }

  /** One item taken by get is processed; mpx::error MPX_EOVERFLOW when called too often. */
  void task_done() { detail::check(mpx_queue_task_done(native_handle()), "mpx::JoinableQueue::task_done"); }
  /** Wait until every item put is done: false on timeout. */
  bool join(timeout t = forever) {
    int rc = mpx_queue_join(native_handle(), t.count_ms());
    if (rc == MPX_ETIMEDOUT) return false;
    detail::check(rc, "mpx::JoinableQueue::join");
    return true;
  }
  uint64_t unfinished() const {
    uint64_t n = 0;
    detail::check(mpx_queue_unfinished(native_handle(), &n), "mpx::JoinableQueue::unfinished");
    return n;
  }

 private:
  explicit JoinableQueue(Queue &&q) : Queue(std::move(q)) {}
};


// ==== Pool =================================================================================

namespace detail {

/** One object whose bytes are its value: trivially copyable, and neither a pointer nor a range. */
template <class T>
concept plain_object = std::is_trivially_copyable_v<T> && !std::is_pointer_v<T> && !std::is_member_pointer_v<T> &&
                       !std::is_null_pointer_v<T> && !std::ranges::range<T>;

/** Elements side by side in memory, each its bytes: std::string, std::vector<int>, std::span<const std::byte>... */
template <class R>
concept byte_range = std::ranges::contiguous_range<R> && std::ranges::sized_range<R> &&
                     std::is_trivially_copyable_v<std::ranges::range_value_t<R>>;

template <class R>
concept char_array = std::is_array_v<std::remove_cvref_t<R>> &&
                     std::is_same_v<std::remove_cv_t<std::remove_extent_t<std::remove_cvref_t<R>>>, char>;

template <class T>
concept byte_vector = std::same_as<T, std::vector<typename T::value_type>> && plain_object<typename T::value_type>;

}  // namespace detail

/**
 * The bytes of a task's argument, borrowed for the call (the pool copies them). Built
 * implicitly from a C string (without its NUL), from a contiguous range of trivially copyable
 * elements (std::string, std::string_view, std::span<const std::byte>, std::vector<T>,
 * std::array: the elements' bytes), or from one trivially copyable object (its bytes).
 */
class payload {
 public:
  constexpr payload() noexcept = default;
  constexpr payload(const void *p, size_t n) noexcept : data_(p), size_(n) {}
  payload(const char *s) noexcept : data_(s), size_(s ? std::char_traits<char>::length(s) : 0) {}  // NOLINT
  template <class R>
    requires detail::byte_range<const R &> && (!detail::char_array<R>)
  payload(const R &r) noexcept  // NOLINT: implicit on purpose
      : data_(std::ranges::data(r)), size_(std::ranges::size(r) * sizeof(std::ranges::range_value_t<const R &>)) {}
  template <class T>
    requires detail::plain_object<T> && (!std::same_as<T, payload>)
  payload(const T &v) noexcept : data_(&v), size_(sizeof(T)) {}  // NOLINT

  const void *data() const noexcept { return data_; }
  size_t size() const noexcept { return size_; }
  std::span<const std::byte> bytes() const noexcept { return {static_cast<const std::byte *>(data_), size_}; }

 private:
  const void *data_ = nullptr;
  size_t size_ = 0;
};

/**
 * The function a task runs: an mpx_task_fn by pointer (fork workers only) or the name it was
 * registered under with mpx::register_task (any workers). A captureless lambda of the task
 * signature converts too.
 */
class task_ref {
 public:
  task_ref(mpx_task_fn f) noexcept : fn_(f) {}  // NOLINT: implicit on purpose
  template <class F>
    requires std::convertible_to<F, mpx_task_fn> && (!std::same_as<std::decay_t<F>, mpx_task_fn>)
  task_ref(F &&f) noexcept : fn_(f) {}  // NOLINT
  task_ref(const char *name) : name_(name ? name : "") {}  // NOLINT
  task_ref(std::string_view name) : name_(name) {}         // NOLINT
  task_ref(const std::string &name) : name_(name) {}       // NOLINT

  mpx_task_fn fn() const noexcept { return fn_; }
  /** The name; nullptr for a function by pointer. */
  const char *name() const noexcept { return fn_ ? nullptr : name_.c_str(); }

 private:
  mpx_task_fn fn_ = nullptr;
  std::string name_;
};

/** Name a task function for workers that know functions by name (mpx_register_task); register before the pool starts. */
inline void register_task(const std::string &name, mpx_task_fn fn) {
  detail::check(mpx_register_task(name.c_str(), fn), "mpx::register_task");
}

namespace detail {

template <class F>
struct task_signature;
template <class R>
struct task_signature<R (*)()> {
  using result = R;
  using arg = void;
};
template <class R, class A>
struct task_signature<R (*)(A)> {
  using result = R;
  using arg = std::remove_cvref_t<A>;
};
template <class R>
struct task_signature<R (*)() noexcept> : task_signature<R (*)()> {};
template <class R, class A>
struct task_signature<R (*)(A) noexcept> : task_signature<R (*)(A)> {};

/** Bytes as a T: a trivially copyable object (sizes must match), std::string, or std::vector of such objects. */
template <class T>
T bytes_as(std::span<const std::byte> b, const char *where) {
  if constexpr (std::same_as<T, std::string>) {
    return std::string(reinterpret_cast<const char *>(b.data()), b.size());
  } else if constexpr (byte_vector<T>) {
    using E = typename T::value_type;
    if (b.size() % sizeof(E) != 0)
      throw error(MPX_EINVAL, where, std::to_string(b.size()) + " bytes are not a whole number of " +
                                         std::to_string(sizeof(E)) + "-byte elements");
    T v(b.size() / sizeof(E));
    if (!b.empty()) std::memcpy(v.data(), b.data(), b.size());
    return v;
  } else {
    static_assert(plain_object<T>, "a task's bytes convert to a trivially copyable type, std::string or std::vector<T>");
    if (b.size() != sizeof(T))
      throw error(MPX_EINVAL, where, std::to_string(b.size()) + " bytes cannot be a " + std::to_string(sizeof(T)) +
                                         "-byte object");
    std::array<std::byte, sizeof(T)> raw;
    std::memcpy(raw.data(), b.data(), sizeof(T));
    return std::bit_cast<T>(raw);
  }
}

template <auto F>
int run_typed_task(const void *arg, size_t size, mpx_task_out *out) noexcept {
  using A = typename task_signature<decltype(F)>::arg;
  using R = typename task_signature<decltype(F)>::result;
  const std::span<const std::byte> in(static_cast<const std::byte *>(arg), size);
  try {
    auto call = [&]() -> R {
      if constexpr (std::is_void_v<A>) return F();
      else if constexpr (std::same_as<A, std::string_view>) return F(std::string_view(static_cast<const char *>(arg), size));
      else if constexpr (std::same_as<A, std::span<const std::byte>>) return F(in);
      else return F(bytes_as<A>(in, "mpx::as_task"));
    };
    if constexpr (std::is_void_v<R>) {
      call();
      return 0;
    } else {
      const R r = call();
      const payload p(r);
      const int rc = mpx_task_return(out, p.data(), p.size());
      if (rc != MPX_OK) (void)mpx_task_error(out, mpx_last_error_message());
      return rc == MPX_OK ? 0 : 1;
    }
  } catch (const std::exception &e) {
    (void)mpx_task_error(out, e.what());
  } catch (...) {
    (void)mpx_task_error(out, "the task threw an exception");
  }
  return 1;
}

}  // namespace detail

/**
 * An mpx_task_fn made from a C++ function `R f(A)` or `R f()`: A is a trivially copyable
 * type (the payload must be exactly its size), std::string_view or std::span<const std::byte>;
 * R is void, a trivially copyable type, or a contiguous range of them (std::string,
 * std::vector<T>). An exception fails the task with MPX_ETASK, code 1 and what() as its
 * message. `pool.map_as<int64_t>(mpx::as_task<square>, numbers)`.
 */
template <auto F>
inline constexpr mpx_task_fn as_task = &detail::run_typed_task<F>;

/**
 * One item of a job failed. value() says how: MPX_ETASK (its function returned nonzero or
 * threw), MPX_EWORKERDIED (its worker died: detail() says which and how), MPX_ETIMEDOUT (it ran
 * past its timeout; its worker was killed), MPX_ECANCELED (cancelled, or the pool terminated),
 * MPX_ENOENT (no task function by that name in the worker). Not to be confused with a plain
 * mpx::error MPX_ETIMEDOUT from get(timeout), which means the wait timed out.
 */
class task_error : public error {
 public:
  task_error(int code, std::string where, std::string detail, size_t index, int task_code)
      : error(code, std::move(where), std::move(detail)), index_(index), task_code_(task_code) {}
  /** The item's index in its job (0 for apply). */
  size_t index() const noexcept { return index_; }
  /** MPX_ETASK: what the function returned; MPX_EWORKERDIED, MPX_ETIMEDOUT: the worker's exit code (-9: SIGKILL). */
  int task_code() const noexcept { return task_code_; }

 private:
  size_t index_;
  int task_code_;
};

/**
 * A non-owning view of a job (an apply's one item, or a map's items): what a callback
 * receives. AsyncResult and MapResult are owning JobViews. Item results point into the job:
 * valid while the job lives.
 */
class JobView {
 public:
  explicit JobView(mpx_job *h) noexcept : h_(h) {}

  /** The number of items. */
  size_t size() const {
    size_t n = 0;
    detail::check(mpx_job_count(h_, &n), "mpx::JobView::size");
    return n;
  }
  /** Every item has ended. */
  bool ready() const {
    int v = 0;
    detail::check(mpx_job_ready(h_, &v), "mpx::JobView::ready");
    return v != 0;
  }
  /** Wait until every item has ended: true when they have, false on timeout. */
  bool wait(timeout t = forever) const {
    const int rc = mpx_job_wait(h_, t.count_ms());
    if (rc == MPX_ETIMEDOUT) return false;
    detail::check(rc, "mpx::JobView::wait");
    return true;
  }
  /** Every item succeeded; mpx::error MPX_EAGAIN while not ready (Python's ValueError). */
  bool successful() const {
    int v = 0;
    detail::check(mpx_job_successful(h_, &v), "mpx::JobView::successful");
    return v != 0;
  }
  /** How far the job has got: total, done, failed, elapsed_s, rate (items/s), eta_s (negative: unknown). */
  mpx_progress progress() const {
    mpx_progress p{};
    p.size = sizeof p;
    detail::check(mpx_job_progress(h_, &p), "mpx::JobView::progress");
    return p;
  }
  /**
   * Cancel the items no worker has started: they end with MPX_ECANCELED. Returns how many
   * ended at once (those not yet handed to the workers); those already queued end as a
   * worker reaches them, unrun.
   */
  size_t cancel() {
    size_t n = 0;
    detail::check(mpx_job_cancel(h_, &n), "mpx::JobView::cancel");
    return n;
  }

  /** Item i's result, pointing into the job. task_error if it failed; mpx::error MPX_EAGAIN if it has not ended, MPX_ERANGE past the end. */
  std::span<const std::byte> result(size_t i) const { return item_result(i, "mpx::JobView::result"); }
  /** Item i's result as T (see mpx::as_task for the types); mpx::error MPX_EINVAL if the size does not fit T. */
  template <class T>
  T result_as(size_t i) const {
    return detail::bytes_as<T>(item_result(i, "mpx::JobView::result_as"), "mpx::JobView::result_as");
  }
  /** Item i's failure; nullopt when it succeeded. mpx::error MPX_EAGAIN if it has not ended. */
  std::optional<task_error> error(size_t i) const {
    const void *d = nullptr;
    size_t n = 0;
    const int rc = mpx_job_result(h_, i, &d, &n);
    if (rc == MPX_OK) return std::nullopt;
    return item_failure(rc, i, "mpx::JobView::error");
  }

  mpx_job *native_handle() const noexcept { return h_; }
  explicit operator bool() const noexcept { return h_ != nullptr; }

 protected:
  std::span<const std::byte> item_result(size_t i, const char *where) const {
    const void *d = nullptr;
    size_t n = 0;
    const int rc = mpx_job_result(h_, i, &d, &n);
    if (rc != MPX_OK) throw item_failure(rc, i, where);
    return {static_cast<const std::byte *>(d), n};
  }
  // The item's failure as a task_error; a failed call (not ended, bad index or handle) is thrown.
  task_error item_failure(int rc, size_t i, const char *where) const {
    std::string message = mpx_last_error_message();
    int code = 0, task_code = 0;
    size_t len = 0;
    if (rc != MPX_EAGAIN && rc != MPX_ERANGE && mpx_job_error(h_, i, &code, &task_code, nullptr, &len) == MPX_OK &&
        code == rc)
      return task_error(rc, where, std::move(message), i, task_code);
    throw ::mpx::error(rc, where, std::move(message));
  }

  mpx_job *h_ = nullptr;
};

namespace detail {

// A job's C++ callback, shared by the job's owner (AsyncResult, MapResult) and the pool thread
// that runs it: the last of the two to let go destroys the job, so a dropped result still gets
// its callback. `ran` lets the owner's wait and get return after the callback, as Python's do.
struct job_callback {
  std::function<void(JobView)> fn;
  std::atomic<int> refs{2};
  std::atomic<bool> ran{false};

  void release(mpx_job *job) noexcept {
    if (refs.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      (void)mpx_job_destroy(job);
      delete this;
    }
  }
  // A callback that throws calls std::terminate (noexcept), as a std::thread's function does.
  static void run(void *ctx, mpx_job *job) noexcept {
    auto *c = static_cast<job_callback *>(ctx);
    c->fn(JobView(job));
    c->ran.store(true, std::memory_order_release);
    c->ran.notify_all();
    c->release(job);
  }
};

/**
 * A JobView that owns its job: movable, not copyable; destroying it frees the job (items still
 * running go on, a callback still runs). With a callback, ready() and wait() are true only once
 * it has run.
 */
class owned_job : public JobView {
 public:
  owned_job(adopt_t, mpx_job *h, job_callback *cb = nullptr) noexcept : JobView(h), cb_(cb) {}
  owned_job(const owned_job &) = delete;
  owned_job &operator=(const owned_job &) = delete;
  owned_job(owned_job &&o) noexcept : JobView(std::exchange(o.h_, nullptr)), cb_(std::exchange(o.cb_, nullptr)) {}
  owned_job &operator=(owned_job &&o) noexcept {
    if (this != &o) {
      reset();
      h_ = std::exchange(o.h_, nullptr);
      cb_ = std::exchange(o.cb_, nullptr);
    }
    return *this;
  }
  ~owned_job() { reset(); }

  /** Every item has ended (and the callback, if any, has run). */
  bool ready() const { return JobView::ready() && (!cb_ || cb_->ran.load(std::memory_order_acquire)); }
  /** Wait until every item has ended and the callback, if any, has run: false on timeout. */
  bool wait(timeout t = forever) const {
    if (!JobView::wait(t)) return false;
    callback_ran();
    return true;
  }

 protected:
  // The job is ready: its callback is running or about to, on a pool thread (it must not block).
  void callback_ran() const noexcept {
    if (cb_) cb_->ran.wait(false, std::memory_order_acquire);
  }

 private:
  void reset() noexcept {
    mpx_job *h = std::exchange(h_, nullptr);
    if (!h) return;
    if (job_callback *cb = std::exchange(cb_, nullptr)) cb->release(h);
    else (void)mpx_job_destroy(h);
  }
  job_callback *cb_ = nullptr;
};

}  // namespace detail

/** A std::future-like handle on one task (apply_async). */
class AsyncResult : public detail::owned_job {
 public:
  using owned_job::owned_job;

  /** Wait for the result (a copy). task_error if the task failed; mpx::error MPX_ETIMEDOUT if it has not ended in time. */
  std::vector<std::byte> get(timeout t = forever) const {
    const auto r = wait_result(t, "mpx::AsyncResult::get");
    return std::vector<std::byte>(r.begin(), r.end());
  }
  /** get() as T: a trivially copyable type, std::string or std::vector<T> (mpx::error MPX_EINVAL if the size does not fit). */
  template <class T>
  T get_as(timeout t = forever) const {
    return detail::bytes_as<T>(wait_result(t, "mpx::AsyncResult::get_as"), "mpx::AsyncResult::get_as");
  }

 private:
  std::span<const std::byte> wait_result(timeout t, const char *where) const {
    detail::check(mpx_job_wait(h_, t.count_ms()), where);
    callback_ran();
    return item_result(0, where);
  }
};

/**
 * A std::future-like handle on a map's items: get() waits for all of them, next() and
 * iteration give them one by one as imap does (in index order, or as they end for
 * imap_unordered), each an item that may have failed without ending the loop.
 */
class MapResult : public detail::owned_job {
 public:
  using owned_job::owned_job;

  /** One ended item: index() and its result or failure. Valid while its MapResult lives. */
  class item {
   public:
    item(mpx_job *job, size_t index) noexcept : job_(job), index_(index) {}
    size_t index() const noexcept { return index_; }
    bool ok() const { return !job_.error(index_).has_value(); }
    /** Its result (pointing into the job); task_error if it failed. */
    std::span<const std::byte> get() const { return job_.result(index_); }
    template <class T>
    T get_as() const {
      return job_.result_as<T>(index_);
    }
    /** Its failure; nullopt when it succeeded. */
    std::optional<task_error> error() const { return job_.error(index_); }

   private:
    JobView job_;
    size_t index_;
  };

  /** The next ended item (imap); nullopt on timeout; mpx::error MPX_EOF once every item has been given. */
  std::optional<item> next(timeout t = forever) {
    size_t i = 0;
    const int rc = mpx_job_next(h_, t.count_ms(), &i);
    if (rc == MPX_ETIMEDOUT) return std::nullopt;
    detail::check(rc, "mpx::MapResult::next");
    return item(h_, i);
  }

  /** An input iterator over next() (blocking), ending once every item has been given. */
  class iterator {
   public:
    using value_type = item;
    using difference_type = std::ptrdiff_t;
    iterator() = default;
    explicit iterator(MapResult *r) : r_(r) { advance(); }
    const item &operator*() const { return *cur_; }
    const item *operator->() const { return &*cur_; }
    iterator &operator++() {
      advance();
      return *this;
    }
    void operator++(int) { advance(); }
    friend bool operator==(const iterator &it, std::default_sentinel_t) noexcept { return !it.cur_; }

   private:
    void advance() {
      size_t i = 0;
      const int rc = mpx_job_next(r_->h_, -1, &i);
      if (rc == MPX_EOF) {
        cur_.reset();
        return;
      }
      detail::check(rc, "mpx::MapResult::iterator");
      cur_.emplace(r_->h_, i);
    }
    MapResult *r_ = nullptr;
    std::optional<item> cur_;
  };
  iterator begin() { return iterator(this); }
  std::default_sentinel_t end() const noexcept { return {}; }

  /** Wait for every item and copy the results out, in index order: Python's map_async().get(). The first failed item (by index) throws its task_error. */
  std::vector<std::vector<std::byte>> get(timeout t = forever) const {
    return get_as<std::vector<std::byte>>(t);
  }
  /** get() with each result as T (see AsyncResult::get_as). */
  template <class T>
  std::vector<T> get_as(timeout t = forever) const {
    detail::check(mpx_job_wait(h_, t.count_ms()), "mpx::MapResult::get");
    callback_ran();
    const size_t n = size();
    std::vector<T> out;
    out.reserve(n);
    for (size_t i = 0; i < n; ++i)
      out.push_back(detail::bytes_as<T>(item_result(i, "mpx::MapResult::get"), "mpx::MapResult::get"));
    return out;
  }
};

/** Per job, for apply_async, map_async, imap...: `mpx::job_options().chunksize(100).task_timeout(5s)`. */
class job_options {
 public:
  /** map: items per task; 0 (the default): automatic, Python's count / (4 x workers) rounded up. */
  job_options &chunksize(size_t n) {
    chunksize_ = n;
    return *this;
  }
  /** Per task (per chunk for a map): 0 (the default): the pool's; negative: none. */
  job_options &task_timeout(std::chrono::milliseconds t) {
    task_timeout_ = t;
    return *this;
  }
  /**
   * Called once the job has ended, on a pool thread, before wait() and get() return: it must
   * not block, and an exception escaping it calls std::terminate.
   */
  job_options &callback(std::function<void(JobView)> fn) {
    callback_ = std::move(fn);
    return *this;
  }

 private:
  friend class Pool;
  size_t chunksize_ = 0;
  std::chrono::milliseconds task_timeout_{0};
  std::function<void(JobView)> callback_;
};

/** How a pool is made: `mpx::pool_options().workers(4).maxtasksperchild(100)`. Zero means the default. */
class pool_options {
 public:
  /** Number of workers; 0: mpx::cpu_count(). */
  pool_options &workers(int n) {
    workers_ = n;
    return *this;
  }
  /** MPX_START_FORK (the default), MPX_START_FORKSERVER, MPX_START_SPAWN (see program()). */
  pool_options &method(uint32_t m) {
    method_ = m;
    return *this;
  }
  /** The pool starts no workers: the caller does (mpx_pool_add_worker, for bindings). */
  pool_options &external(bool on = true) {
    flags_ = on ? (flags_ | MPX_POOL_EXTERNAL) : (flags_ & ~uint32_t(MPX_POOL_EXTERNAL));
    return *this;
  }
  /** A worker retires after this many tasks (0: never). */
  pool_options &maxtasksperchild(int64_t n) {
    maxtasks_ = n;
    return *this;
  }
  /** A worker whose resident size passes this retires after its task (0: no cap). */
  pool_options &max_worker_memory(uint64_t bytes) {
    max_memory_ = bytes;
    return *this;
  }
  /** The default per-task timeout (0: none): the worker of a task that runs longer is killed and replaced. */
  pool_options &task_timeout(std::chrono::milliseconds t) {
    task_timeout_ = t;
    return *this;
  }
  /** Run fn(initargs) once in each fork worker before its first task. */
  pool_options &initializer(mpx_entry_fn fn, payload initargs = {}) {
    init_fn_ = fn;
    init_name_.clear();
    set_initargs(initargs);
    return *this;
  }
  /** Run the entry registered (mpx_register) as `name` once in each worker, any start method. */
  pool_options &initializer(std::string entry, payload initargs = {}) {
    init_fn_ = nullptr;
    init_name_ = std::move(entry);
    set_initargs(initargs);
    return *this;
  }
  /** Worker names are "<prefix>-1", "<prefix>-2"... (default "PoolWorker"). */
  pool_options &name(std::string prefix) {
    name_ = std::move(prefix);
    return *this;
  }
  /** Spawn workers: exec `file` (a program that registers its tasks and calls mpx_worker_main()) with argv (empty: { file }). */
  pool_options &program(std::string file, std::vector<std::string> argv = {}) {
    file_ = std::move(file);
    argv_ = std::move(argv);
    return *this;
  }
  /** Spawn workers' environment: NAME=VALUE entries, MPX_ENV_EXTEND (default), MPX_ENV_REPLACE or MPX_ENV_INHERIT. */
  pool_options &env(std::vector<std::string> entries, uint32_t mode = MPX_ENV_EXTEND) {
    env_ = std::move(entries);
    env_mode_ = mode;
    return *this;
  }
  /** Bytes of the task ring and of the result ring (0: 1 MiB). */
  pool_options &queue_capacity(uint64_t bytes) {
    capacity_ = bytes;
    return *this;
  }

 private:
  friend class Pool;
  void set_initargs(payload p) {
    const auto b = p.bytes();
    initargs_.assign(b.begin(), b.end());
  }
  // The C options, pointing into this object and into argv/env (kept by the caller for the call).
  mpx_pool_options to_c(std::vector<const char *> &argv_ptrs, std::vector<const char *> &env_ptrs) const {
    mpx_pool_options o;
    detail::check(mpx_pool_options_init(&o, sizeof o), "mpx::Pool");
    o.workers = workers_;
    o.method = method_;
    o.flags = flags_;
    o.maxtasksperchild = maxtasks_;
    o.max_worker_memory = max_memory_;
    o.task_timeout_ms = task_timeout_.count();
    o.initializer = init_fn_;
    o.initializer_name = init_name_.empty() ? nullptr : init_name_.c_str();
    o.initargs = initargs_.empty() ? nullptr : initargs_.data();
    o.initargs_size = initargs_.size();
    o.name = name_.empty() ? nullptr : name_.c_str();
    o.file = file_.empty() ? nullptr : file_.c_str();
    for (const auto &a : argv_) argv_ptrs.push_back(a.c_str());
    argv_ptrs.push_back(nullptr);
    o.argv = argv_.empty() ? nullptr : argv_ptrs.data();
    for (const auto &e : env_) env_ptrs.push_back(e.c_str());
    env_ptrs.push_back(nullptr);
    o.env = env_.empty() ? nullptr : env_ptrs.data();
    o.env_mode = env_.empty() ? 0 : env_mode_;
    o.queue_capacity = capacity_;
    return o;
  }

  int workers_ = 0;
  uint32_t method_ = MPX_START_DEFAULT;
  uint32_t flags_ = 0;
  int64_t maxtasks_ = 0;
  uint64_t max_memory_ = 0;
  std::chrono::milliseconds task_timeout_{0};
  mpx_entry_fn init_fn_ = nullptr;
  std::string init_name_;
  std::vector<std::byte> initargs_;
  std::string name_;
  std::string file_;
  std::vector<std::string> argv_, env_;
  uint32_t env_mode_ = MPX_ENV_EXTEND;
  uint64_t capacity_ = 0;
};

/**
 * Python's multiprocessing.Pool: worker processes run tasks (a function and a byte payload)
 * and send back bytes. A worker that dies is replaced and only the task it held fails
 * (task_error MPX_EWORKERDIED). Destroying the pool terminates it: tasks not yet ended fail
 * with MPX_ECANCELED and every worker is reaped. Thread-safe.
 *
 * Items of map_async/map/imap are a range: of trivially copyable T (each item is one T's
 * bytes: the starmap way is a struct of the arguments), or of anything that converts to
 * mpx::payload (std::string, std::vector<std::byte>...: items of any size).
 */
class Pool {
 public:
  /** One fork worker per CPU. */
  Pool() : Pool(pool_options()) {}
  /** `workers` fork workers (0: one per CPU; negative: mpx::error MPX_EINVAL). */
  explicit Pool(int workers) : Pool(pool_options().workers(workers)) {}
  explicit Pool(const pool_options &o) {
    std::vector<const char *> argv, env;
    const mpx_pool_options c = o.to_c(argv, env);
    h_ = handle_type(create_handle(c));
  }
  /** From C options. */
  explicit Pool(const mpx_pool_options &o) : h_(create_handle(o)) {}
  /** Take ownership of a C handle. */
  Pool(adopt_t, mpx_pool *h) noexcept : h_(h) {}
  Pool(Pool &&) noexcept = default;
  Pool &operator=(Pool &&) noexcept = default;

  /** Run one task and wait for its result (Python's apply); task_error if it failed. */
  std::vector<std::byte> apply(task_ref fn, payload arg = {}, job_options o = {}) {
    return apply_async(std::move(fn), arg, std::move(o)).get();
  }
  /** apply() with the result as T (see AsyncResult::get_as). */
  template <class T>
  T apply_as(task_ref fn, payload arg = {}, job_options o = {}) {
    return apply_async(std::move(fn), arg, std::move(o)).template get_as<T>();
  }
  /** Run one task (Python's apply_async); returns at once. */
  AsyncResult apply_async(task_ref fn, payload arg = {}, job_options o = {}) {
    mpx_task t;
    detail::check(mpx_task_init(&t, sizeof t), "mpx::Pool::apply_async");
    t.fn = fn.fn();
    t.name = fn.name();
    t.arg = arg.data();
    t.arg_size = arg.size();
    t.timeout_ms = o.task_timeout_.count();
    auto cb = make_callback(o);
    if (cb) {
      t.callback = &detail::job_callback::run;
      t.ctx = cb.get();
    }
    mpx_job *j = nullptr;
    submitted(mpx_pool_apply_async(h_.get(), &t, &j), "mpx::Pool::apply_async");
    return AsyncResult(adopt, j, cb.release());
  }

  /** Run fn over every item (Python's map_async); returns at once. Iterating the result gives items in index order. */
  template <std::ranges::input_range R>
  MapResult map_async(task_ref fn, R &&items, job_options o = {}) {
    return submit_map(fn, items, o, MPX_MAP_ORDERED, "mpx::Pool::map_async");
  }
  /** Python's map: every result (copied), in order; the first failed item throws its task_error. */
  template <std::ranges::input_range R>
  std::vector<std::vector<std::byte>> map(task_ref fn, R &&items, job_options o = {}) {
    return submit_map(fn, items, o, MPX_MAP_ORDERED, "mpx::Pool::map").get();
  }
  /** map() with each result as T: `std::vector<int64_t> sq = pool.map_as<int64_t>(square, numbers);` */
  template <class T, std::ranges::input_range R>
  std::vector<T> map_as(task_ref fn, R &&items, job_options o = {}) {
    return submit_map(fn, items, o, MPX_MAP_ORDERED, "mpx::Pool::map_as").template get_as<T>();
  }
  /** Python's imap: iterate the result for the items in index order, each as soon as it and those before it have ended. */
  template <std::ranges::input_range R>
  MapResult imap(task_ref fn, R &&items, job_options o = {}) {
    return submit_map(fn, items, o, MPX_MAP_ORDERED, "mpx::Pool::imap");
  }
  /** Python's imap_unordered: iterate the result for the items in the order they end. */
  template <std::ranges::input_range R>
  MapResult imap_unordered(task_ref fn, R &&items, job_options o = {}) {
    return submit_map(fn, items, o, 0, "mpx::Pool::imap_unordered");
  }

  /** No more tasks (MPX_ECLOSED); the workers exit once every task has ended. */
  void close() { detail::check(mpx_pool_close(h_.get()), "mpx::Pool::close"); }
  /** Stop now: tasks not yet ended fail with MPX_ECANCELED; returns once every worker is reaped. */
  void terminate() { detail::check(mpx_pool_terminate(h_.get()), "mpx::Pool::terminate"); }
  /** Wait for the workers to exit after close() or terminate(): false on timeout; mpx::error MPX_EINVAL before either. */
  bool join(timeout t = forever) {
    const int rc = mpx_pool_join(h_.get(), t.count_ms());
    if (rc == MPX_ETIMEDOUT) return false;
    detail::check(rc, "mpx::Pool::join");
    return true;
  }

  /** The number of workers the pool keeps. */
  size_t size() const {
    size_t n = 0;
    detail::check(mpx_pool_size(h_.get(), &n), "mpx::Pool::size");
    return n;
  }
  /** The pids of the live workers. */
  std::vector<int64_t> worker_pids() const {
    std::vector<int64_t> pids(size() + 8);
    for (;;) {
      size_t n = pids.size();
      const int rc = mpx_pool_worker_pids(h_.get(), pids.data(), &n);
      if (rc == MPX_ENOBUFS) {
        pids.resize(n + 8);
        continue;
      }
      detail::check(rc, "mpx::Pool::worker_pids");
      pids.resize(n);
      return pids;
    }
  }
  /** Counters: tasks submitted, succeeded, failed; workers started, died, retired. */
  mpx_pool_stats stats() const {
    mpx_pool_stats s{};
    s.size = sizeof s;
    detail::check(mpx_pool_stats_get(h_.get(), &s), "mpx::Pool::stats");
    return s;
  }
  /** The token external workers attach with (mpx_worker_attach). */
  std::string token() const { return detail::get_string(&mpx_pool_token, h_.get(), "mpx::Pool::token"); }

  mpx_pool *native_handle() const noexcept { return h_.get(); }
  explicit operator bool() const noexcept { return h_.get() != nullptr; }

 private:
  using handle_type = detail::handle<mpx_pool, &mpx_pool_destroy>;

  static mpx_pool *create_handle(const mpx_pool_options &o) {
    mpx_pool *p = nullptr;
    detail::check(mpx_pool_create(&p, &o), "mpx::Pool");
    return p;
  }

  static std::unique_ptr<detail::job_callback> make_callback(job_options &o) {
    if (!o.callback_) return nullptr;
    auto cb = std::make_unique<detail::job_callback>();
    cb->fn = std::move(o.callback_);
    return cb;
  }

  // Throw for a failed submission (the callback, never called then, goes with its unique_ptr).
  static void submitted(int rc, const char *where) {
    if (rc < 0) detail::throw_error(rc, where);
  }

  template <class R>
  MapResult submit_map(const task_ref &fn, R &items, job_options &o, uint32_t flags, const char *where) {
    using E = std::ranges::range_value_t<R>;
    mpx_map m;
    detail::check(mpx_map_init(&m, sizeof m), where);
    m.flags = flags;
    m.fn = fn.fn();
    m.name = fn.name();
    m.chunksize = o.chunksize_;
    m.timeout_ms = o.task_timeout_.count();
    if constexpr (detail::plain_object<E>) {
      if constexpr (std::ranges::contiguous_range<R> && std::ranges::sized_range<R>) {
        m.data = std::ranges::data(items);
        m.item_size = sizeof(E);
        m.count = std::ranges::size(items);
        return run_map(m, o, where);
      } else {
        std::vector<E> copy;
        for (auto &&e : items) copy.push_back(e);
        return submit_map(fn, copy, o, flags, where);
      }
    } else if constexpr (!std::is_lvalue_reference_v<std::ranges::range_reference_t<R>>) {
      // Elements made on the fly (a view): keep them while the map copies their bytes.
      std::vector<E> copy;
      for (auto &&e : items) copy.push_back(std::forward<decltype(e)>(e));
      return submit_map(fn, copy, o, flags, where);
    } else {
      static_assert(std::is_constructible_v<payload, const E &>,
                    "map items are trivially copyable objects, or convert to mpx::payload (strings, byte ranges)");
      std::vector<const void *> ptrs;
      std::vector<size_t> sizes;
      if constexpr (std::ranges::sized_range<R>) {
        ptrs.reserve(std::ranges::size(items));
        sizes.reserve(std::ranges::size(items));
      }
      for (const E &e : items) {
        const payload p(e);
        ptrs.push_back(p.data());
        sizes.push_back(p.size());
      }
      m.items = ptrs.data();
      m.sizes = sizes.data();
      m.count = ptrs.size();
      return run_map(m, o, where);
    }
  }

  MapResult run_map(mpx_map &m, job_options &o, const char *where) {
    auto cb = make_callback(o);
    if (cb) {
      m.callback = &detail::job_callback::run;
      m.ctx = cb.get();
    }
    mpx_job *j = nullptr;
    submitted(mpx_pool_map(h_.get(), &m, &j), where);
    return MapResult(adopt, j, cb.release());
  }

  handle_type h_;
};

// ==== managers =============================================================================

namespace detail {
/** Take bytes the library allocated into a std::string, and free them. */
inline std::string take_bytes(void *p, size_t n) {
  std::string s(static_cast<const char *>(p), n);
  mpx_free(p);
  return s;
}
}  // namespace detail

/** Options of mpx::Manager (mpx_manager_options). */
struct manager_options {
  std::string address;        ///< empty: a fresh abstract unix socket
  std::string_view authkey;   ///< empty: this process's authkey
  uint32_t method = 0;        ///< MPX_START_* of the server process
  bool in_process = false;    ///< serve from threads of this process instead
  bool allow_remote = false;  ///< without an authkey, serve TCP clients off loopback too
  std::string file;           ///< spawn: the server program (empty: "mpx-manager" on PATH)
};

/** A manager server this process started (Python's BaseManager.start / get_server). */
class Manager {
 public:
  explicit Manager(const manager_options &o = {}) {
    mpx_manager_options mo;
    detail::check(mpx_manager_options_init(&mo, sizeof mo), "mpx::Manager");
    mo.address = o.address.empty() ? nullptr : o.address.c_str();
    if (!o.authkey.empty()) {
      mo.authkey = o.authkey.data();
      mo.authkey_len = o.authkey.size();
    }
    mo.method = o.method;
    mo.flags = (o.in_process ? MPX_MANAGER_IN_PROCESS : 0u) | (o.allow_remote ? MPX_MANAGER_ALLOW_REMOTE : 0u);
    mo.file = o.file.empty() ? nullptr : o.file.c_str();
    mpx_manager *m = nullptr;
    detail::check(mpx_manager_start(&m, &mo), "mpx::Manager");
    h_ = detail::handle<mpx_manager, &mpx_manager_destroy>(m);
  }
  /** The address clients connect to. */
  std::string address() const { return detail::get_string(&mpx_manager_address, h_.get(), "mpx::Manager::address"); }
  /** The server's process id. */
  int64_t pid() const {
    int64_t p = 0;
    detail::check(mpx_manager_pid(h_.get(), &p), "mpx::Manager::pid");
    return p;
  }
  /** Wait until the server stopped (a client asked it to); false at the timeout. */
  bool wait(timeout t = forever) {
    const int rc = mpx_manager_wait(h_.get(), t.count_ms());
    if (rc == MPX_ETIMEDOUT) return false;
    detail::check(rc, "mpx::Manager::wait");
    return true;
  }
  /** Stop the server (a child still running at the timeout is killed). */
  void shutdown(timeout t = std::chrono::seconds(1)) {
    detail::check(mpx_manager_shutdown(h_.get(), t.count_ms()), "mpx::Manager::shutdown");
  }
  mpx_manager *native_handle() const noexcept { return h_.get(); }

 private:
  detail::handle<mpx_manager, &mpx_manager_destroy> h_;
};

/** A proxy: one object held by a manager. The typed proxies below derive from it. */
class Proxy {
 public:
  Proxy(adopt_t, mpx_proxy *p) noexcept : h_(p) {}
  /** The token another client of the same manager opens it by. */
  std::string token() const { return detail::get_string(&mpx_proxy_token, h_.get(), "mpx::Proxy::token"); }
  /** MPX_MOBJ_* */
  int type() const {
    int t = 0;
    detail::check(mpx_proxy_type(h_.get(), &t), "mpx::Proxy::type");
    return t;
  }
  mpx_proxy *native_handle() const noexcept { return h_.get(); }

 protected:
  detail::handle<mpx_proxy, &mpx_proxy_destroy> h_;
};

/** A managed dict (or namespace): string keys, byte values. */
class ManagedDict : public Proxy {
 public:
  using Proxy::Proxy;
  void set(std::string_view key, std::string_view value) {
    detail::check(mpx_mdict_set(h_.get(), std::string(key).c_str(), value.data(), value.size()), "mpx::ManagedDict::set");
  }
  /** Insert unless present; false (and nothing changes) when the key exists. */
  bool add(std::string_view key, std::string_view value) {
    const int rc = mpx_mdict_add(h_.get(), std::string(key).c_str(), value.data(), value.size());
    if (rc == MPX_EEXIST) return false;
    detail::check(rc, "mpx::ManagedDict::add");
    return true;
  }
  std::optional<std::string> get(std::string_view key) const {
    void *p = nullptr;
    size_t n = 0;
    const int rc = mpx_mdict_get(h_.get(), std::string(key).c_str(), &p, &n);
    if (rc == MPX_ENOENT) return std::nullopt;
    detail::check(rc, "mpx::ManagedDict::get");
    return detail::take_bytes(p, n);
  }
  std::optional<std::string> pop(std::string_view key) {
    void *p = nullptr;
    size_t n = 0;
    const int rc = mpx_mdict_pop(h_.get(), std::string(key).c_str(), &p, &n);
    if (rc == MPX_ENOENT) return std::nullopt;
    detail::check(rc, "mpx::ManagedDict::pop");
    return detail::take_bytes(p, n);
  }
  size_t size() const {
    size_t n = 0;
    detail::check(mpx_mdict_len(h_.get(), &n), "mpx::ManagedDict::size");
    return n;
  }
  std::vector<std::string> keys() const {
    char *p = nullptr;
    size_t len = 0, count = 0;
    detail::check(mpx_mdict_keys(h_.get(), &p, &len, &count), "mpx::ManagedDict::keys");
    std::vector<std::string> out;
    out.reserve(count);
    for (size_t off = 0; off < len;) {
      out.emplace_back(p + off);
      off += out.back().size() + 1;
    }
    mpx_free(p);
    return out;
  }
  void clear() { detail::check(mpx_mdict_clear(h_.get()), "mpx::ManagedDict::clear"); }
};

/** A managed list of byte strings (negative indexes count from the end). */
class ManagedList : public Proxy {
 public:
  using Proxy::Proxy;
  void append(std::string_view v) { detail::check(mpx_mlist_append(h_.get(), v.data(), v.size()), "mpx::ManagedList::append"); }
  void insert(int64_t i, std::string_view v) {
    detail::check(mpx_mlist_insert(h_.get(), i, v.data(), v.size()), "mpx::ManagedList::insert");
  }
  std::string at(int64_t i) const {
    void *p = nullptr;
    size_t n = 0;
    detail::check(mpx_mlist_get(h_.get(), i, &p, &n), "mpx::ManagedList::at");
    return detail::take_bytes(p, n);
  }
  void set(int64_t i, std::string_view v) { detail::check(mpx_mlist_set(h_.get(), i, v.data(), v.size()), "mpx::ManagedList::set"); }
  std::string pop(int64_t i = -1) {
    void *p = nullptr;
    size_t n = 0;
    detail::check(mpx_mlist_pop(h_.get(), i, &p, &n), "mpx::ManagedList::pop");
    return detail::take_bytes(p, n);
  }
  size_t size() const {
    size_t n = 0;
    detail::check(mpx_mlist_len(h_.get(), &n), "mpx::ManagedList::size");
    return n;
  }
  void reverse() { detail::check(mpx_mlist_reverse(h_.get()), "mpx::ManagedList::reverse"); }
  void sort() { detail::check(mpx_mlist_sort(h_.get()), "mpx::ManagedList::sort"); }
  void clear() { detail::check(mpx_mlist_clear(h_.get()), "mpx::ManagedList::clear"); }
};

/** A managed queue (or joinable queue) of byte strings. */
class ManagedQueue : public Proxy {
 public:
  using Proxy::Proxy;
  /** false when it stayed full until the timeout. */
  bool put(std::string_view item, timeout t = forever) {
    const int rc = mpx_mqueue_put(h_.get(), item.data(), item.size(), t.count_ms());
    if (rc == MPX_ETIMEDOUT) return false;
    detail::check(rc, "mpx::ManagedQueue::put");
    return true;
  }
  /** nullopt when none came before the timeout. */
  std::optional<std::string> get(timeout t = forever) {
    void *p = nullptr;
    size_t n = 0;
    const int rc = mpx_mqueue_get(h_.get(), &p, &n, t.count_ms());
    if (rc == MPX_ETIMEDOUT) return std::nullopt;
    detail::check(rc, "mpx::ManagedQueue::get");
    return detail::take_bytes(p, n);
  }
  size_t size() const {
    size_t n = 0;
    detail::check(mpx_mqueue_qsize(h_.get(), &n), "mpx::ManagedQueue::size");
    return n;
  }
  void task_done() { detail::check(mpx_mqueue_task_done(h_.get()), "mpx::ManagedQueue::task_done"); }
  bool join(timeout t = forever) {
    const int rc = mpx_mqueue_join(h_.get(), t.count_ms());
    if (rc == MPX_ETIMEDOUT) return false;
    detail::check(rc, "mpx::ManagedQueue::join");
    return true;
  }
};

/**
 * A managed lock, rlock or semaphore (Lockable: works with std::lock_guard). lock() throws
 * mpx::owner_dead_error when the previous owner disconnected holding it (the lock is then held).
 */
class ManagedLock : public Proxy {
 public:
  using Proxy::Proxy;
  void lock() { detail::check(mpx_mlock_acquire(h_.get(), -1), "mpx::ManagedLock::lock"); }
  bool try_lock(timeout t = try_once) {
    const int rc = mpx_mlock_acquire(h_.get(), t.count_ms());
    if (rc == MPX_ETIMEDOUT) return false;
    detail::check(rc, "mpx::ManagedLock::try_lock");
    return true;
  }
  void unlock() { detail::check(mpx_mlock_release(h_.get()), "mpx::ManagedLock::unlock"); }
};

/** A managed event. */
class ManagedEvent : public Proxy {
 public:
  using Proxy::Proxy;
  void set() { detail::check(mpx_mevent_set(h_.get()), "mpx::ManagedEvent::set"); }
  void clear() { detail::check(mpx_mevent_clear(h_.get()), "mpx::ManagedEvent::clear"); }
  bool is_set() const {
    int v = 0;
    detail::check(mpx_mevent_is_set(h_.get(), &v), "mpx::ManagedEvent::is_set");
    return v != 0;
  }
  bool wait(timeout t = forever) {
    const int rc = mpx_mevent_wait(h_.get(), t.count_ms());
    if (rc == MPX_ETIMEDOUT) return false;
    detail::check(rc, "mpx::ManagedEvent::wait");
    return true;
  }
};

/** A managed typed value. */
template <element T>
class ManagedValue : public Proxy {
 public:
  using Proxy::Proxy;
  T get() const {
    T v{};
    detail::check(mpx_mvalue_get(h_.get(), &v, sizeof v), "mpx::ManagedValue::get");
    return v;
  }
  void set(T v) { detail::check(mpx_mvalue_set(h_.get(), &v, sizeof v), "mpx::ManagedValue::set"); }
  /** Atomically add delta; the new value. */
  T add(T delta) {
    T r{};
    detail::check(mpx_mvalue_add(h_.get(), &delta, &r, sizeof r), "mpx::ManagedValue::add");
    return r;
  }
};

/** A connection to a manager: it makes and opens the objects the proxies above stand for. */
class ManagerClient {
 public:
  explicit ManagerClient(const std::string &address, std::string_view authkey = {}, bool socket_only = false) {
    mpx_mclient_options o;
    detail::check(mpx_mclient_options_init(&o, sizeof o), "mpx::ManagerClient");
    if (!authkey.empty()) {
      o.authkey = authkey.data();
      o.authkey_len = authkey.size();
    }
    o.flags = socket_only ? MPX_MCLIENT_SOCKET_ONLY : 0u;
    mpx_mclient *c = nullptr;
    detail::check(mpx_manager_connect(&c, address.c_str(), &o), "mpx::ManagerClient");
    h_ = detail::handle<mpx_mclient, &mpx_mclient_destroy>(c);
  }
  /** Named objects are shared by name: the first client creates, the others open. */
  ManagedDict dict(std::string_view name = {}) { return make<ManagedDict>(MPX_MOBJ_DICT, name); }
  ManagedList list(std::string_view name = {}) { return make<ManagedList>(MPX_MOBJ_LIST, name); }
  ManagedQueue queue(std::string_view name = {}, uint64_t maxsize = 0, bool joinable = false) {
    mpx_mobj_options o = options(name);
    o.maxsize = maxsize;
    return create<ManagedQueue>(joinable ? MPX_MOBJ_JOINABLE_QUEUE : MPX_MOBJ_QUEUE, o);
  }
  ManagedLock lock(std::string_view name = {}) { return make<ManagedLock>(MPX_MOBJ_LOCK, name); }
  ManagedLock rlock(std::string_view name = {}) { return make<ManagedLock>(MPX_MOBJ_RLOCK, name); }
  ManagedEvent event(std::string_view name = {}) { return make<ManagedEvent>(MPX_MOBJ_EVENT, name); }
  template <element T>
  ManagedValue<T> value(std::string_view name = {}, T initial = T{}) {
    mpx_mobj_options o = options(name);
    o.typecode = typecode_v<T>;
    o.data = &initial;
    o.data_len = sizeof initial;
    return create<ManagedValue<T>>(MPX_MOBJ_VALUE, o);
  }
  /** A proxy for the object a name or token names. */
  template <class P = Proxy>
  P open(const std::string &name_or_token) {
    mpx_proxy *p = nullptr;
    detail::check(mpx_proxy_open(h_.get(), name_or_token.c_str(), &p), "mpx::ManagerClient::open");
    return P(adopt, p);
  }
  /** true when requests travel through shared memory. */
  bool shm() const {
    int v = 0;
    detail::check(mpx_mclient_shm(h_.get(), &v), "mpx::ManagerClient::shm");
    return v != 0;
  }
  /** Ask the server to stop. */
  void shutdown_server() { detail::check(mpx_mclient_shutdown(h_.get()), "mpx::ManagerClient::shutdown_server"); }
  mpx_mclient *native_handle() const noexcept { return h_.get(); }

 private:
  mpx_mobj_options options(std::string_view name) {
    mpx_mobj_options o;
    detail::check(mpx_mobj_options_init(&o, sizeof o), "mpx::ManagerClient");
    name_ = std::string(name);
    if (!name_.empty()) {
      o.name = name_.c_str();
      o.flags = MPX_MOBJ_OPEN_EXISTING;
    }
    return o;
  }
  template <class P>
  P make(int type, std::string_view name) {
    mpx_mobj_options o = options(name);
    return create<P>(type, o);
  }
  template <class P>
  P create(int type, const mpx_mobj_options &o) {
    mpx_proxy *p = nullptr;
    detail::check(mpx_proxy_create(h_.get(), type, &o, &p), "mpx::ManagerClient::create");
    return P(adopt, p);
  }
  detail::handle<mpx_mclient, &mpx_mclient_destroy> h_;
  std::string name_;
};

}  // namespace mpx

#endif /* MPX_MPX_HPP */
