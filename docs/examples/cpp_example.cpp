// cpp_example.cpp - mpx.hpp: RAII objects, std::lock_guard, a Condition with a predicate, a
// Barrier with an action, owner death as an exception and as a repair function, tokens.
//
// Build and run from the repository root, once the library is built:
//   c++ -std=c++20 -Wall -Wextra docs/examples/cpp_example.cpp -I include -L build/default/src -lmpx
//       -Wl,-rpath,$PWD/build/default/src -o /tmp/cpp_example && /tmp/cpp_example
// (one command: the line break is only for reading)

#include <mpx/mpx.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>

using namespace std::chrono_literals;

namespace {

// fork, run f in the child, exit with its result.
template <class F>
pid_t start(F f) {
  std::fflush(stdout);
  pid_t pid = fork();
  if (pid == 0) {
    int code = 1;
    try {
      code = f();
    } catch (const std::exception &e) {
      std::fprintf(stderr, "child: %s\n", e.what());
    }
    std::fflush(stdout);
    _exit(code);
  }
  return pid;
}

int join(pid_t pid) {
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
}

}  // namespace

int main() try {
  // Value and Array: shared across fork; the lock is taken explicitly for compound updates.
  mpx::Value<long> total(0);  // carries an RLock, like Python's Value
  mpx::Array<double> samples(4, mpx::lock_kind::none);
  pid_t kids[4];
  for (int k = 0; k < 4; ++k)
    kids[k] = start([&, k] {
      samples[static_cast<size_t>(k)] = k * 1.5;
      for (int i = 0; i < 1000; ++i) {
        std::lock_guard guard(total);  // Value is Lockable through its lock
        total = total + 1;
      }
      return 0;
    });
  for (pid_t p : kids) join(p);
  std::printf("total %ld, samples %g %g %g %g\n", total.get(), samples[0], samples[1], samples[2], samples[3]);
  if (total != 4000) return 1;

  // Condition: wait for a predicate, with a timeout, over its own RLock.
  mpx::Condition cond;
  mpx::Value<int> stage(0, mpx::lock_kind::none);  // guarded by cond's lock
  pid_t worker = start([&] {
    for (int s = 1; s <= 3; ++s) {
      std::lock_guard guard(cond);
      stage = s;
      cond.notify_all();
    }
    return 0;
  });
  {
    std::unique_lock lk(cond);
    const bool reached = cond.wait([&] { return stage == 3; }, 5s);
    std::printf("stage 3 reached: %s\n", reached ? "yes" : "no (timed out)");
    if (!reached) return 1;
  }
  join(worker);

  // Barrier: the last to arrive runs the action before anyone passes.
  mpx::Barrier barrier(2);
  mpx::Value<int> rounds(0, mpx::lock_kind::none);
  pid_t partner = start([&] {
    for (int i = 0; i < 3; ++i) barrier.wait([&] { rounds = rounds + 1; }, 5s);
    return 0;
  });
  for (int i = 0; i < 3; ++i) barrier.wait([&] { rounds = rounds + 1; }, 5s);
  join(partner);
  std::printf("barrier: 3 rounds, action ran %d times\n", rounds.get());
  if (rounds != 3) return 1;

  // Owner death, way 1: lock() throws owner_dead_error with the lock held.
  mpx::Lock lock;
  mpx::Array<int> pair{50, 50, 0};  // guarded by lock: [0] + [1] == 100
  join(start([&] {
    lock.lock();
    pair[0] = 0;  // ...and exits before fixing pair[1]
    _exit(0);
    return 0;
  }));
  try {
    std::lock_guard guard(lock);
  } catch (const mpx::owner_dead_error &e) {
    std::printf("caught: %s\n", e.what());
    pair[1] = 100 - pair[0];  // repair while holding it
    lock.consistent();
    lock.unlock();
  }

  // Owner death, way 2: a repair function; lock() then returns normally.
  lock.on_owner_dead([&] {
    pair[1] = 100 - pair[0];
    pair[2] += 1;  // count repairs
  });
  join(start([&] {
    lock.lock();
    pair[0] = 30;
    _exit(0);
    return 0;
  }));
  {
    std::lock_guard guard(lock);
    std::printf("after repair: %d + %d = 100, repairs by function: %d\n", pair[0], pair[1], pair[2]);
  }
  if (pair[0] + pair[1] != 100 || pair[2] != 1) return 1;

  // Tokens: another handle to the same object, as an exec'd process or a Python program
  // (mpx's binding) would get it.
  const std::string token = total.token();
  auto same = mpx::Value<long>::attach(token);
  same = 7;
  std::printf("token %s: attached handle wrote %ld\n", token.c_str(), total.get());

  // Errors are mpx::error, a std::system_error.
  try {
    mpx::Segment::attach("no-such-segment");
  } catch (const mpx::error &e) {
    std::printf("error: %s (code %d, std::errc::no_such_file_or_directory: %s)\n", e.name(), e.value(),
                e.code() == std::errc::no_such_file_or_directory ? "yes" : "no");
  }
  std::printf("cpp_example: ok\n");
  return 0;
} catch (const std::exception &e) {
  std::fprintf(stderr, "cpp_example: %s\n", e.what());
  return 1;
}
