// A pool whose third worker fails to start (SCENARIOS.md 39, CPython #19675): creation fails
// with that error, and the two workers already started are stopped and reaped (the per-test
// leak check counts children, zombies, fds and threads).
#include <gtest/gtest.h>

#include "mpx/mpx.h"
#include "pool/pool.hpp"
#include "support/mpx_helpers.hpp"

namespace {
int fail_third(uint64_t n) { return n == 3; }
const bool kWarmedUp = mpxt::register_warmup(&mpxt::warm_up_daemon_forker);
}  // namespace

TEST(PoolStart, ThirdWorkerFailingFailsCreationAndReapsTheOthers) {
  mpx::pool::g_fail_start = fail_third;
  mpx_pool_options o;
  mpx_pool_options_init(&o, sizeof o);
  o.workers = 5;
  mpx_pool *p = reinterpret_cast<mpx_pool *>(1);
  EXPECT_MPX(MPX_EAGAIN, mpx_pool_create(&p, &o));
  EXPECT_EQ(p, nullptr);
  EXPECT_NE(std::string(mpx_last_error_message()).find("PoolWorker-3"), std::string::npos) << mpx_last_error_message();
  mpx::pool::g_fail_start = nullptr;
  // And a pool made afterwards works.
  ASSERT_MPX_OK(mpx_pool_create(&p, &o));
  mpx_task t;
  mpx_task_init(&t, sizeof t);
  t.fn = [](const void *a, size_t n, mpx_task_out *out) { return mpx_task_return(out, a, n); };
  t.arg = "hi";
  t.arg_size = 2;
  void *r = nullptr;
  size_t n = 0;
  ASSERT_MPX_OK(mpx_pool_apply(p, &t, &r, &n));
  EXPECT_EQ(std::string(static_cast<char *>(r), n), "hi");
  mpx_free(r);
  EXPECT_MPX_OK(mpx_pool_destroy(p));
}

TEST(PoolStart, ReplacementThatFailsToStartIsRetried) {
  mpx_pool_options o;
  mpx_pool_options_init(&o, sizeof o);
  o.workers = 1;
  o.maxtasksperchild = 1;
  // Worker 2 (the first replacement) fails to start; the supervisor tries again. The hook is
  // set before the pool's threads exist and cleared after they are gone (they read it).
  mpx::pool::g_fail_start = [](uint64_t n) { return int(n == 2); };
  mpx_pool *p = nullptr;
  ASSERT_MPX_OK(mpx_pool_create(&p, &o));
  mpx_task t;
  mpx_task_init(&t, sizeof t);
  t.fn = [](const void *a, size_t n, mpx_task_out *out) { return mpx_task_return(out, a, n); };
  for (int i = 0; i < 3; ++i) {
    void *r = nullptr;
    size_t n = 0;
    ASSERT_MPX_OK(mpx_pool_apply(p, &t, &r, &n));
    mpx_free(r);
  }
  EXPECT_MPX_OK(mpx_pool_destroy(p));
  mpx::pool::g_fail_start = nullptr;
}
