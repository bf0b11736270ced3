// A process-local mutex that survives fork(): every ForkMutex is held across fork() (so no
// other thread is inside it when the address space is copied) and re-initialised in the
// child. Mutexes are taken before fork in rank order; code that nests them must take
// lower ranks first.
#pragma once

#include <pthread.h>

#include <cstddef>
#include <new>

namespace mpx::platform {

class ForkMutex {
 public:
  enum Rank {
    kArena = 10,
    kSegmentCache = 20,
    kHandleTable = 30,
    kTracker = 40,
    kProcess = 50,
    kProcessRegistry = 51,
    kProcessEntries = 52,
    kPoolTasks = 53,
    kConnection = 60,
    kForkFds = 65,
    kCrypto = 70
  };
  ForkMutex(Rank rank, bool recursive = false) noexcept;
  ForkMutex(const ForkMutex &) = delete;
  ForkMutex &operator=(const ForkMutex &) = delete;

  void lock() noexcept { pthread_mutex_lock(mu_); }
  void unlock() noexcept { pthread_mutex_unlock(mu_); }

 private:
  friend struct ForkMutexRegistry;
  void reinit() noexcept;
  // In the registry's one array: every fork writes every mutex, in the parent and in the
  // child, and side by side they cost 3 copy-on-write faults fewer per fork child.
  pthread_mutex_t *mu_;
  pthread_mutex_t own_;  // if the registry is full
  Rank rank_;
  bool recursive_;
};

class ForkMutexGuard {
 public:
  explicit ForkMutexGuard(ForkMutex &m) noexcept : m_(m) { m_.lock(); }
  ~ForkMutexGuard() { m_.unlock(); }
  ForkMutexGuard(const ForkMutexGuard &) = delete;
  ForkMutexGuard &operator=(const ForkMutexGuard &) = delete;

 private:
  ForkMutex &m_;
};

// Run `fn` in the child after fork, after every ForkMutex is usable again. A child pays a
// copy-on-write fault for each page it writes (tens of microseconds in a VM), and every
// fork of the process runs these: write only what needs it (reads are free).
void on_fork_child(void (*fn)()) noexcept;

// In a fork child: make a mutex that another thread may have held across the fork usable,
// writing it only if it is not already in its initial state (all bytes zero in glibc, for
// pthread_mutex_t as for std::mutex).
template <typename Mutex>
void reset_in_fork_child(Mutex &m) noexcept {
  const auto *b = reinterpret_cast<const unsigned char *>(&m);
  for (size_t i = 0; i < sizeof m; ++i)
    if (b[i] != 0) {
      new (&m) Mutex();
      return;
    }
}

// Descriptors a forked child must not hold: a server's sockets (a child keeping them would
// keep the address bound, and hide the server's death from its clients) and a client's (hide
// the client's death from its server). In the child each is pointed at /dev/null, so that
// the number stays taken and the child's copy of its owner never closes a stranger's file.
// The owner calls forget_in_fork_child before it closes the descriptor.
void drop_in_fork_child(int fd) noexcept;
void forget_in_fork_child(int fd) noexcept;

}  // namespace mpx::platform
