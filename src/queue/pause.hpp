// QueueObject::pause, shared by put.cpp, get.cpp and queue.cpp (a template: each caller
// passes its own readiness test).
#pragma once

#include "queue/queue.hpp"

namespace mpx {

namespace queue {
// A wake-up costs ~20 us here and a pause ~20 ns: spin ~20 us before sleeping. But look only
// every kPollEvery pauses (~1 us), the first time too (the caller has just looked): each look
// pulls a line the other side writes on every item, and a side left alone for a moment works
// through a batch at full speed meanwhile (64 B items between two CPUs: ~3 M/s looking after
// every pause, 4.3 M/s this way).
constexpr int kSpinRounds = 1024;
constexpr int kPollEvery = 64;
// Fewer bytes than this published and not taken: the items come one by one (see take()).
constexpr uint64_t kFewBytes = 1024;
// A sleeper looks again at least this often, even unwoken: shared state scribbled over while
// it sleeps is reported (MPX_ECORRUPT) instead of slept through.
constexpr int64_t kRecheckNs = 200'000'000;
}  // namespace queue

// One round of waiting until ready() or `until`: the first round spins, later ones sleep.
// The sleeper announces itself before its last look at ready(), and the waking side looks at
// sleepers after making its change (both seq_cst), so a wake-up cannot fall in between.
template <typename Ready>
void QueueObject::pause(queue::Wait &line, int *round, platform::Deadline until, Ready &&ready) noexcept {
  if ((*round)++ == 0) {
    for (int i = 0; i < queue::kSpinRounds; ++i) {
      if (i % queue::kPollEvery == queue::kPollEvery - 1 && ready()) return;
      platform::cpu_relax();
    }
    return;
  }
  // Counted as a sleeper, we cost every waker a system call: look once more before.
  if (ready()) return;
  sleep(line, until, ready, [] {});
}

// Announce a sleep, look at ready() a last time, unlock(), and sleep unless ready. With a
// lock to release, ready() may look at what the lock protects (a record at head, which
// must not be read once another get may take it, free it, and a put overwrite it).
template <typename Ready, typename Unlock>
void QueueObject::sleep(queue::Wait &line, platform::Deadline until, Ready &&ready, Unlock &&unlock) noexcept {
  line.announce();
  const uint32_t seq = line.seq.load(std::memory_order_seq_cst);
  const bool go = ready() || closing();
  unlock();
  if (!go) {
    const platform::Deadline recheck = platform::monotonic_ns() + queue::kRecheckNs;
    // Woken: the waker took us off the count (see wake()), so that while we wait for a CPU,
    // later wakers do not make system calls for a sleeper that is no longer there.
    if (platform::wait_on(&line.seq, seq, until < recheck ? until : recheck) == platform::WaitResult::woken) return;
  }
  line.leave();
}

}  // namespace mpx
