// managers.cpp - a manager from C++: a server process, and clients in a forked child and in
// threads, sharing a dict, a queue and a lock. Build: c++ -std=c++20 managers.cpp -lmpx
#include <mpx/mpx.hpp>

#include <cstdio>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <sys/wait.h>
#include <unistd.h>

int main() {
  mpx::manager_options options;
  options.authkey = "secret";
  mpx::Manager server(options);  // a server process on a fresh abstract unix socket
  const std::string address = server.address();

  // A forked child: it connects by address and key, like any other process would.
  const pid_t child = fork();
  if (child == 0) {
    mpx::ManagerClient c(address, "secret");
    c.dict("settings").set("from-child", "hello from pid " + std::to_string(getpid()));
    c.queue("jobs").put("job from the child");
    _exit(0);
  }
  int status = 0;
  waitpid(child, &status, 0);

  // Four threads, each its own client, increment a counter under a manager lock.
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      mpx::ManagerClient c(address, "secret");
      auto d = c.dict("settings");
      auto lock = c.lock("counter-lock");
      for (int i = 0; i < 100; ++i) {
        std::lock_guard<mpx::ManagedLock> g(lock);
        const int n = std::stoi(d.get("counter").value_or("0"));
        d.set("counter", std::to_string(n + 1));
      }
    });
  for (auto &t : threads) t.join();

  mpx::ManagerClient c(address, "secret");
  auto d = c.dict("settings");
  std::printf("counter = %s (4 threads x 100)\n", d.get("counter").value().c_str());
  std::printf("from-child = %s\n", d.get("from-child").value().c_str());
  std::printf("queued: %s\n", c.queue("jobs").get(std::chrono::seconds(1)).value().c_str());
  std::printf("shared memory path: %s\n", c.shm() ? "yes" : "no");
  return d.get("counter") == "400" ? 0 : 1;
}
