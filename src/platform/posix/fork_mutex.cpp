#include "platform/fork_mutex.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <vector>

namespace mpx::platform {

struct ForkMutexRegistry {
  static constexpr int kMax = 16;
  alignas(64) pthread_mutex_t storage[kMax] = {};  // the registered mutexes' own, in registration order
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
  auto &r = ForkMutexRegistry::get();
  mu_ = r.n < ForkMutexRegistry::kMax ? &r.storage[r.n] : &own_;
  reinit();
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
  pthread_mutex_init(mu_, &attr);
  pthread_mutexattr_destroy(&attr);
}

namespace {

ForkMutex g_fds_mu(ForkMutex::kForkFds);
std::vector<int> *g_fds = nullptr;  // under g_fds_mu, which fork() holds: consistent in the child

void drop_fds_in_child() {
  if (!g_fds || g_fds->empty()) return;
  const int null = ::open("/dev/null", O_RDWR | O_CLOEXEC);
  for (int fd : *g_fds) {
    if (null >= 0) ::dup3(null, fd, O_CLOEXEC);
    else ::close(fd);
  }
  if (null >= 0) ::close(null);
  g_fds->clear();
}

}  // namespace

void drop_in_fork_child(int fd) noexcept {
  if (fd < 0) return;
  ForkMutexGuard g(g_fds_mu);
  try {
    if (!g_fds) {
      g_fds = new std::vector<int>();
      on_fork_child(drop_fds_in_child);
    }
    g_fds->push_back(fd);
  } catch (...) {  // out of memory: the child keeps the descriptor, nothing worse
  }
}

void forget_in_fork_child(int fd) noexcept {
  if (fd < 0) return;
  ForkMutexGuard g(g_fds_mu);
  if (!g_fds) return;
  if (auto it = std::find(g_fds->begin(), g_fds->end(), fd); it != g_fds->end()) g_fds->erase(it);
}

void on_fork_child(void (*fn)()) noexcept {
  auto &r = ForkMutexRegistry::get();
  if (r.n_fns < ForkMutexRegistry::kMax) r.child_fns[r.n_fns++] = fn;
  r.hook();
}

}  // namespace mpx::platform
