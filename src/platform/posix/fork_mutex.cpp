#include "platform/fork_mutex.hpp"

#include <algorithm>

namespace mpx::platform {

struct ForkMutexRegistry {
  static constexpr int kMax = 16;
  ForkMutex *mutexes[kMax] = {};
  int n = 0;
  void (*child_fns[kMax])() = {};
  int n_fns = 0;
  bool hooked = false;

  static ForkMutexRegistry &get() {
    static ForkMutexRegistry r;  // constant-initialised storage; safe during static init
    return r;
  }

  static void prepare() {
    auto &r = get();
    for (int i = 0; i < r.n; ++i) r.mutexes[i]->lock();
  }
  static void parent() {
    auto &r = get();
    for (int i = r.n - 1; i >= 0; --i) r.mutexes[i]->unlock();
  }
  static void child() {
    // A recursive mutex cannot be unlocked by the child (its owner was the parent's
    // thread, whose tid the child does not have): start every mutex afresh. The unlock
    // before it succeeds for the plain mutexes and fails harmlessly (EPERM) for the
    // recursive ones; it is there so that a race detector, which does not track a
    // re-initialisation, sees every mutex released in the child.
    auto &r = get();
    for (int i = r.n - 1; i >= 0; --i) r.mutexes[i]->unlock();
    for (int i = 0; i < r.n; ++i) r.mutexes[i]->reinit();
    for (int i = 0; i < r.n_fns; ++i) r.child_fns[i]();
  }

  void hook() {
    if (!hooked) {
      hooked = true;
      pthread_atfork(prepare, parent, child);
    }
  }
};

ForkMutex::ForkMutex(Rank rank, bool recursive) noexcept : rank_(rank), recursive_(recursive) {
  reinit();
  auto &r = ForkMutexRegistry::get();
  if (r.n < ForkMutexRegistry::kMax) {
    r.mutexes[r.n++] = this;
    std::sort(r.mutexes, r.mutexes + r.n, [](ForkMutex *a, ForkMutex *b) { return a->rank_ < b->rank_; });
  }
  r.hook();
}

void ForkMutex::reinit() noexcept {
  pthread_mutexattr_t attr;
  pthread_mutexattr_init(&attr);
  if (recursive_) pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
  pthread_mutex_init(&mu_, &attr);
  pthread_mutexattr_destroy(&attr);
}

void on_fork_child(void (*fn)()) noexcept {
  auto &r = ForkMutexRegistry::get();
  if (r.n_fns < ForkMutexRegistry::kMax) r.child_fns[r.n_fns++] = fn;
  r.hook();
}

}  // namespace mpx::platform
