#include "support/util.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <stdexcept>
#include <thread>

namespace mpxt {

SharedScratch::SharedScratch(size_t bytes) : size_(bytes) {
  data_ = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (data_ == MAP_FAILED) throw std::runtime_error("mmap shared scratch");
}

SharedScratch::~SharedScratch() { munmap(data_, size_); }

std::string unique_name(const char *tag) {
  static std::atomic<unsigned> n{0};
  return "mpxt." + std::to_string(getpid()) + "." + std::to_string(n.fetch_add(1)) + "." + tag;
}

bool StartGate::open(int n, Millis deadline) {
  auto end = std::chrono::steady_clock::now() + deadline;
  while (state_->arrived.load() < n) {
    if (std::chrono::steady_clock::now() > end) {
      state_->open.store(1);
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  state_->open.store(1);
  return true;
}

std::vector<ExitStatus> run_together(int n, const std::function<int(int)> &fn, Millis deadline) {
  StartGate gate;
  std::vector<Child> kids;
  kids.reserve(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i)
    kids.push_back(Child::fork([&gate, &fn, i] {
      gate.arrive_and_wait();
      return fn(i);
    }));
  gate.open(n);
  auto end = std::chrono::steady_clock::now() + deadline;
  std::vector<ExitStatus> out;
  for (auto &k : kids) {
    auto left = std::chrono::duration_cast<Millis>(end - std::chrono::steady_clock::now());
    out.push_back(k.wait(left.count() > 0 ? left : Millis(0)));
  }
  return out;
}

void sleep_ms(int64_t ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

}  // namespace mpxt
