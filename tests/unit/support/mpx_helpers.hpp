// mpx-specific test helpers (header-only: the support library itself does not link mpx).
// Assertions that print error names and the last error message, RAII handles, tokens.
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <climits>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "mpx/mpx.h"
#include "support/child.hpp"
#include "support/kill.hpp"
#include "support/leak.hpp"
#include "support/util.hpp"

namespace mpxt {

inline std::string code_str(int code) {
  return std::string(mpx_error_name(code)) + " (" + std::to_string(code) + ")";
}

inline ::testing::AssertionResult MpxCodeEq(const char *, const char *actual_expr, int expected, int actual) {
  if (expected == actual) return ::testing::AssertionSuccess();
  std::string detail = mpx_last_error_message();
  return ::testing::AssertionFailure() << actual_expr << "\n  returned " << code_str(actual) << "\n  expected "
                                       << code_str(expected) << "\n  last error message: \"" << detail << "\"";
}

inline ::testing::AssertionResult MpxCodeIn2(const char *, const char *, const char *actual_expr, int a, int b,
                                             int actual) {
  if (actual == a || actual == b) return ::testing::AssertionSuccess();
  std::string detail = mpx_last_error_message();
  return ::testing::AssertionFailure() << actual_expr << "\n  returned " << code_str(actual) << "\n  expected "
                                       << code_str(a) << " or " << code_str(b) << "\n  last error message: \""
                                       << detail << "\"";
}

/**
 * A timed call that must fail with `expected` (usually MPX_ETIMEDOUT) after at least `timeout_ms`
 * and at most `timeout_ms + slack_ms`. Returning early, or with another code, fails at once;
 * returning late is retried (up to `attempts` times) so that a loaded machine's scheduling delay
 * is not mistaken for a late timeout, while an implementation that is always late still fails.
 */
template <typename F>
::testing::AssertionResult TimesOutWithin(int64_t timeout_ms, F &&call, int expected = MPX_ETIMEDOUT,
                                          int64_t slack_ms = kSlackMs, int attempts = 3) {
  std::string late;
  for (int i = 0; i < attempts; ++i) {
    Stopwatch sw;
    const int rc = call();
    const double ms = sw.ms_f();
    if (rc != expected)
      return ::testing::AssertionFailure() << "returned " << code_str(rc) << ", expected " << code_str(expected)
                                           << " (" << mpx_last_error_message() << ")";
    if (ms < static_cast<double>(timeout_ms))
      return ::testing::AssertionFailure() << "returned after " << ms << " ms, before its " << timeout_ms
                                           << " ms timeout";
    if (ms <= static_cast<double>(timeout_ms + slack_ms)) return ::testing::AssertionSuccess();
    late += (late.empty() ? "" : ", ") + std::to_string(ms);
  }
  return ::testing::AssertionFailure() << "a " << timeout_ms << " ms timeout took " << late << " ms (allowed "
                                       << timeout_ms + slack_ms << ")";
}

// mpx_*_destroy as a deleter.
template <typename T, int (*Destroy)(T *)>
struct Destroyer {
  void operator()(T *p) const { Destroy(p); }
};

using SegmentPtr = std::unique_ptr<mpx_segment, Destroyer<mpx_segment, mpx_segment_destroy>>;
using LockPtr = std::unique_ptr<mpx_lock, Destroyer<mpx_lock, mpx_lock_destroy>>;
using SemaphorePtr = std::unique_ptr<mpx_semaphore, Destroyer<mpx_semaphore, mpx_semaphore_destroy>>;
using EventPtr = std::unique_ptr<mpx_event, Destroyer<mpx_event, mpx_event_destroy>>;
using ConditionPtr = std::unique_ptr<mpx_condition, Destroyer<mpx_condition, mpx_condition_destroy>>;
using BarrierPtr = std::unique_ptr<mpx_barrier, Destroyer<mpx_barrier, mpx_barrier_destroy>>;
using ArrayPtr = std::unique_ptr<mpx_array, Destroyer<mpx_array, mpx_array_destroy>>;

/** The token of any object: token_of(mpx_lock_token, lock). Empty string on failure. */
template <typename T>
std::string token_of(int (*fn)(T *, char *, size_t *), T *obj) {
  char buf[MPX_TOKEN_MAX];
  size_t len = sizeof buf;
  if (fn(obj, buf, &len) != MPX_OK) return std::string();
  return std::string(buf, len);
}

inline LockPtr make_lock(bool recursive = false) {
  mpx_lock_options o;
  mpx_lock_options_init(&o, sizeof o);
  o.flags = recursive ? MPX_LOCK_RECURSIVE : 0u;
  mpx_lock *l = nullptr;
  int rc = mpx_lock_create(&l, &o);
  EXPECT_EQ(rc, MPX_OK) << code_str(rc) << ": " << mpx_last_error_message();
  return LockPtr(l);
}

inline SemaphorePtr make_semaphore(uint32_t value, bool bounded = false, uint32_t max_value = 0) {
  mpx_semaphore_options o;
  mpx_semaphore_options_init(&o, sizeof o);
  o.flags = bounded ? MPX_SEMAPHORE_BOUNDED : 0u;
  o.max_value = max_value;
  mpx_semaphore *s = nullptr;
  int rc = mpx_semaphore_create(&s, value, &o);
  EXPECT_EQ(rc, MPX_OK) << code_str(rc) << ": " << mpx_last_error_message();
  return SemaphorePtr(s);
}

inline EventPtr make_event() {
  mpx_event *e = nullptr;
  int rc = mpx_event_create(&e);
  EXPECT_EQ(rc, MPX_OK) << code_str(rc) << ": " << mpx_last_error_message();
  return EventPtr(e);
}

inline ConditionPtr make_condition(mpx_lock *lock = nullptr) {
  mpx_condition *c = nullptr;
  int rc = mpx_condition_create(&c, lock);
  EXPECT_EQ(rc, MPX_OK) << code_str(rc) << ": " << mpx_last_error_message();
  return ConditionPtr(c);
}

inline BarrierPtr make_barrier(uint32_t parties) {
  mpx_barrier *b = nullptr;
  int rc = mpx_barrier_create(&b, parties);
  EXPECT_EQ(rc, MPX_OK) << code_str(rc) << ": " << mpx_last_error_message();
  return BarrierPtr(b);
}

inline ArrayPtr make_array(char typecode, size_t length, uint32_t lock_kind = MPX_ARRAY_LOCK_RLOCK) {
  mpx_array_options o;
  mpx_array_options_init(&o, sizeof o);
  o.lock = lock_kind;
  mpx_array *a = nullptr;
  int rc = mpx_array_create(&a, typecode, length, &o);
  EXPECT_EQ(rc, MPX_OK) << code_str(rc) << ": " << mpx_last_error_message();
  return ArrayPtr(a);
}

inline SegmentPtr make_segment(size_t bytes, const char *name = nullptr, uint32_t flags = 0) {
  mpx_segment_options o;
  mpx_segment_options_init(&o, sizeof o);
  o.name = name;
  o.flags = flags;
  mpx_segment *s = nullptr;
  int rc = mpx_segment_create(&s, bytes, &o);
  EXPECT_EQ(rc, MPX_OK) << code_str(rc) << ": " << mpx_last_error_message();
  return SegmentPtr(s);
}

// Lazy one-time state inside the library (handle tables, caches) is not a per-test leak.
inline void mpx_warmup() {
  std::string t;
  {
    auto l = make_lock(false);
    auto r = make_lock(true);
    t = token_of(mpx_lock_token, l.get());
    mpx_lock *a = nullptr;
    if (mpx_lock_attach(&a, t.c_str()) == MPX_OK) mpx_lock_destroy(a);
  }
  { auto s = make_segment(4096); }
  { auto e = make_event(); }
  { auto s = make_semaphore(1); }
  { auto c = make_condition(); }
  { auto b = make_barrier(2); }
  { auto a = make_array('i', 4); }
  mpx_strerror(MPX_EINVAL);
  mpx_last_error_message();
}

inline const bool kWarmupRegistered = register_warmup(&mpx_warmup);

// The library thread that forks daemons for threads other than the main one lives as long as
// the process: tests that start daemons from other threads (a pool's supervisor does) start it
// in their warm-up (register_warmup(&warm_up_daemon_forker)).
inline void warm_up_daemon_forker() {
  std::thread([] {
    mpx_process_options po;
    mpx_process_options_init(&po, sizeof po);
    po.daemon = 1;
    po.fn = [](void *) {};
    mpx_process *h = nullptr;
    if (mpx_process_create(&h, &po) == MPX_OK && mpx_process_start(h) == MPX_OK) mpx_process_join(h, -1);
    if (h) mpx_process_destroy(h);
  }).join();
}

// ---- running one call in isolation ---------------------------------------------------------

// What one call did when run in a child with a deadline: returned (rc), or crashed or hung (how).
struct Outcome {
  bool completed = false;
  int rc = INT_MIN;
  std::string how;  // description when not completed
};

inline Outcome isolated(const std::function<int()> &fn, Millis deadline = Millis(3000)) {
  Shared<std::atomic<int>> rc(INT_MIN);
  Shared<std::atomic<int>> done(0);
  auto st = run_in_child(
      [&] {
        rc->store(fn());
        done->store(1);
        return 0;
      },
      deadline);
  Outcome o;
  o.completed = st.ok() && done->load() == 1;
  o.rc = rc->load();
  if (!o.completed) o.how = st.describe();
  return o;
}

}  // namespace mpxt

#define EXPECT_MPX(expected, expr) EXPECT_PRED_FORMAT2(::mpxt::MpxCodeEq, expected, expr)
#define ASSERT_MPX(expected, expr) ASSERT_PRED_FORMAT2(::mpxt::MpxCodeEq, expected, expr)
#define EXPECT_MPX_OK(expr) EXPECT_MPX(MPX_OK, expr)
#define ASSERT_MPX_OK(expr) ASSERT_MPX(MPX_OK, expr)
#define EXPECT_MPX_EITHER(a, b, expr) EXPECT_PRED_FORMAT3(::mpxt::MpxCodeIn2, a, b, expr)

/** In a child: check an mpx return code, exit with kChildCheckFailed and a message otherwise. */
#define CHILD_MPX(expected, expr)                                                               \
  do {                                                                                          \
    const int mpxt_rc_ = (expr);                                                                \
    if (mpxt_rc_ != (expected))                                                                 \
      CHILD_FAIL("%s returned %s (%d), expected %s; %s", #expr, mpx_error_name(mpxt_rc_), mpxt_rc_, \
                 mpx_error_name(expected), mpx_last_error_message());                           \
  } while (0)
#define CHILD_MPX_OK(expr) CHILD_MPX(MPX_OK, expr)
