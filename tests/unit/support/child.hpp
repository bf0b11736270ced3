// Real child processes for tests: fork a lambda (or re-exec this test binary as a helper) with a
// deadline, and collect how it ended. A child that outlives its deadline is SIGKILLed and reaped,
// so no test can hang on a child and none leaves a zombie behind.
#pragma once

#include <sys/types.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

namespace mpxt {

using Millis = std::chrono::milliseconds;
using namespace std::chrono_literals;

/** How a child ended. */
struct ExitStatus {
  bool exited = false;     ///< ended by exit/_exit
  int code = -1;           ///< exit code when exited
  int signal = 0;          ///< terminating signal when killed
  bool timed_out = false;  ///< we killed it at its deadline
  bool ok() const { return exited && code == 0 && !timed_out; }
  bool killed_by(int sig) const { return !exited && signal == sig; }
  std::string describe() const;
};

/** Exit code of a child whose CHILD_CHECK failed, and of one that threw. */
inline constexpr int kChildCheckFailed = 100;
inline constexpr int kChildThrew = 125;

/** A forked (or exec'ed) child process. Movable; the destructor kills and reaps it if needed. */
class Child {
 public:
  Child() = default;
  Child(Child &&other) noexcept;
  Child &operator=(Child &&other) noexcept;
  Child(const Child &) = delete;
  Child &operator=(const Child &) = delete;
  ~Child();

  /** Fork; the child runs fn and _exit()s with its result (kChildThrew on an exception). */
  static Child fork(std::function<int()> fn);

  /**
   * Re-exec this test binary as the helper registered under `name` (see MPXT_HELPER), with
   * args. keep_fds are left open across exec (everything else is closed).
   */
  static Child exec_helper(const std::string &name, const std::vector<std::string> &args,
                           const std::vector<int> &keep_fds = {});

  pid_t pid() const { return pid_; }
  bool valid() const { return pid_ > 0; }

  /** Wait up to `deadline` for the child to end; past it, SIGKILL it and report timed_out. */
  ExitStatus wait(Millis deadline = Millis(10000));
  /** Non-blocking: true while the child has not ended (reaps it if it has). */
  bool running();
  /** Send a signal (no-op once reaped). */
  void kill(int sig);
  /** Send sig and reap; a SIGKILLed child ends at once. */
  ExitStatus kill_and_wait(int sig = 9, Millis deadline = Millis(5000));
  /** The status once reaped. */
  const ExitStatus &status() const { return status_; }

 private:
  explicit Child(pid_t pid) : pid_(pid) {}
  void reap_now();
  pid_t pid_ = -1;
  bool reaped_ = false;
  ExitStatus status_;
};

/** Fork fn, wait for it with a deadline, return how it ended. */
ExitStatus run_in_child(std::function<int()> fn, Millis deadline = Millis(10000));

/** Start n children running fn(i), wait for all of them with one deadline. */
std::vector<ExitStatus> run_in_children(int n, const std::function<int(int)> &fn, Millis deadline = Millis(30000));

/** All ok()? Otherwise a description of the first failure (for EXPECT_TRUE(all_ok(v)) << ...). */
bool all_ok(const std::vector<ExitStatus> &v, std::string *why = nullptr);

// ---- exec'ed helpers ----------------------------------------------------------------------

using HelperFn = int (*)(const std::vector<std::string> &args);
/** Register a helper that Child::exec_helper can run in a fresh process image. */
bool register_helper(const char *name, HelperFn fn);

}  // namespace mpxt

/** Define a helper run by Child::exec_helper("name", args) in a re-exec'ed copy of the test. */
#define MPXT_HELPER(name)                                                            \
  static int mpxt_helper_##name(const std::vector<std::string> &args);               \
  [[maybe_unused]] static const bool mpxt_helper_registered_##name =                 \
      ::mpxt::register_helper(#name, &mpxt_helper_##name);                           \
  static int mpxt_helper_##name([[maybe_unused]] const std::vector<std::string> &args)

// ---- checks inside a child (gtest assertions do not cross fork) ----------------------------

#define CHILD_FAIL(...)                                                              \
  do {                                                                               \
    std::fprintf(stderr, "[child %d] %s:%d: ", static_cast<int>(::getpid()), __FILE__, __LINE__); \
    std::fprintf(stderr, __VA_ARGS__);                                               \
    std::fputc('\n', stderr);                                                        \
    std::fflush(stderr);                                                             \
    ::_exit(::mpxt::kChildCheckFailed);                                              \
  } while (0)

#define CHILD_CHECK(cond)                                                            \
  do {                                                                               \
    if (!(cond)) CHILD_FAIL("check failed: %s", #cond);                              \
  } while (0)

#define CHILD_CHECK_EQ(a, b)                                                         \
  do {                                                                               \
    const long long mpxt_a_ = static_cast<long long>(a);                             \
    const long long mpxt_b_ = static_cast<long long>(b);                             \
    if (mpxt_a_ != mpxt_b_) CHILD_FAIL("%s == %s: %lld vs %lld", #a, #b, mpxt_a_, mpxt_b_); \
  } while (0)
