// queues.cpp - the producer/consumer lesson in C++: mpx::Queue between processes, a Pipe
// with a worker that answers, mpx::wait, and a JoinableQueue.
//
// Build and run from the repository root, once the library is built:
//   c++ -std=c++20 -Wall -Wextra docs/examples/queues.cpp -I include -L build/default/src -lmpx
//       -Wl,-rpath,$PWD/build/default/src -o /tmp/queues_cpp && /tmp/queues_cpp
// (one command: the line break is only for reading)
#include <mpx/mpx.hpp>

#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

using namespace std::chrono_literals;

int main() try {
  // Producers put strings; consumers take them until an empty item (the sentinel).
  mpx::Queue work;
  mpx::Queue done;
  std::vector<mpx::Process> procs;
  for (int c = 0; c < 2; ++c)
    procs.emplace_back([&, c] {
      int n = 0;
      while (auto item = work.get_string())
        if (item->empty()) break; else ++n;
      done.put("consumer " + std::to_string(c) + " took " + std::to_string(n));
    });
  for (int p = 0; p < 3; ++p)
    procs.emplace_back([&, p] {
      for (int i = 0; i < 500; ++i) work.put("item " + std::to_string(p) + "." + std::to_string(i));
    });
  for (auto &p : procs) p.start();
  for (size_t i = 2; i < procs.size(); ++i) procs[i].join();  // the producers
  work.put("");
  work.put("");
  for (int c = 0; c < 2; ++c) std::printf("%s\n", done.get_string(5s).value_or("(nothing)").c_str());
  for (auto &p : procs) p.join();

  // A timed get on an empty queue returns nullopt.
  auto none = work.get(100ms);
  std::printf("get(100ms) on an empty queue: %s\n", none ? "an item" : "nothing");

  // Pipe: a worker that answers each question; mpx::wait watches the answer and the worker.
  auto [mine, theirs] = mpx::Pipe();
  mpx::Process worker([&] {
    mine.close();  // the child's copy of the parent's end: else it would never see EOF
    try {
      while (auto q = theirs.recv_string()) theirs.send("answer to " + *q);
    } catch (const mpx::error &e) {
      if (e.value() != MPX_EOF) throw;  // the parent closed its end: done
    }
  });
  worker.start();
  mine.send("life");
  auto ready = mpx::wait({mine, worker}, 5s);
  std::printf("ready: %zu object(s), first index %zu: %s\n", ready.size(), ready.empty() ? 99 : ready[0],
              mine.recv_string().value_or("?").c_str());
  mine.close();  // the worker's recv sees MPX_EOF and returns
  worker.join();
  std::printf("worker exit code after EOF: %d\n", worker.exitcode().value_or(-1));

  // JoinableQueue: join returns once every item is marked done.
  mpx::JoinableQueue tasks;
  for (int i = 0; i < 3; ++i) tasks.put(std::to_string(i));
  mpx::Process consumer([&] {
    for (int i = 0; i < 3; ++i) {
      tasks.get();
      tasks.task_done();
    }
  });
  consumer.start();
  std::printf("join: %s\n", tasks.join(5s) ? "all tasks done" : "timed out");
  consumer.join();
  return 0;
} catch (const mpx::error &e) {
  std::fprintf(stderr, "%s\n", e.what());
  return 1;
}
