#include "support/kill.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/mman.h>

#include <new>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <random>
#include <stdexcept>
#include <thread>

namespace mpxt {

Rendezvous::Rendezvous() {
  if (pipe2(fds_, O_CLOEXEC) != 0) throw std::runtime_error(std::string("pipe2: ") + std::strerror(errno));
}

Rendezvous::~Rendezvous() {
  for (int fd : fds_)
    if (fd >= 0) close(fd);
}

void Rendezvous::notify() {
  char c = 'x';
  ssize_t r;
  do {
    r = write(fds_[1], &c, 1);
  } while (r < 0 && errno == EINTR);
}

bool Rendezvous::wait(Millis deadline) {
  // The parent keeps the write end open too, so a child that dies before notify() is caught
  // by the deadline rather than by EOF.
  pollfd p{fds_[0], POLLIN, 0};
  auto end = std::chrono::steady_clock::now() + deadline;
  for (;;) {
    auto left = std::chrono::duration_cast<Millis>(end - std::chrono::steady_clock::now()).count();
    if (left < 0) return false;
    int r = poll(&p, 1, static_cast<int>(left));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    char c;
    return read(fds_[0], &c, 1) == 1;
  }
}

int Rendezvous::hang(Millis safety) {
  std::this_thread::sleep_for(safety);
  std::fprintf(stderr, "[child %d] Rendezvous::hang: never killed\n", static_cast<int>(getpid()));
  ::_exit(kChildCheckFailed);
}

ExitStatus kill_at_rendezvous(Child &child, Rendezvous &point, int sig, Millis deadline) {
  bool reached = point.wait(deadline);
  ExitStatus st = child.kill_and_wait(sig);
  if (!reached && st.signal == sig) st.signal = 0;  // report that the point was never reached
  return st;
}

ExitStatus kill_after_random_delay(Child &child, Millis min, Millis max, int sig) {
  auto us = random_between(static_cast<uint64_t>(min.count()) * 1000, static_cast<uint64_t>(max.count()) * 1000);
  std::this_thread::sleep_for(std::chrono::microseconds(us));
  return child.kill_and_wait(sig);
}

ProgressCounter::ProgressCounter() {
  void *p = mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw std::runtime_error("mmap");
  value_ = new (p) std::atomic<uint64_t>(0);
}

ProgressCounter::~ProgressCounter() { munmap(value_, 4096); }

bool ProgressCounter::wait_for(uint64_t at, Child &child, Millis deadline) {
  auto end = std::chrono::steady_clock::now() + deadline;
  while (get() < at) {
    if (!child.running() || std::chrono::steady_clock::now() > end) return false;
    std::this_thread::yield();
  }
  return true;
}

ExitStatus kill_at_progress(Child &child, ProgressCounter &c, uint64_t at, int sig) {
  c.wait_for(at, child);
  return child.kill_and_wait(sig);
}

uint64_t random_between(uint64_t lo, uint64_t hi) {
  static thread_local std::mt19937_64 gen(static_cast<uint64_t>(getpid()) * 0x9E3779B97F4A7C15ull ^
                                          static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count()));
  if (hi <= lo) return lo;
  return std::uniform_int_distribution<uint64_t>(lo, hi)(gen);
}

}  // namespace mpxt
