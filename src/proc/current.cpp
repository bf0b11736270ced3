// The current process: its identity (name, daemon flag, parent, authkey, handed fds), the
// registry of its children, its registered entry points, and fork_child.
#include <dlfcn.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <map>
#include <new>
#include <thread>

#include "platform/fork_mutex.hpp"
#include "platform/process.hpp"
#include "proc/process.hpp"

namespace mpx::proc {

namespace {

using platform::ForkMutex;
using platform::ForkMutexGuard;

// ---- identity ------------------------------------------------------------------------

struct IdentityState {
  ForkMutex mu{ForkMutex::kProcess};
  bool loaded = false;
  Identity id;
  uint32_t counter = 0;
};
IdentityState *g_state = nullptr;  // once state() has made it
IdentityState &state() {
  static IdentityState *s = g_state = new IdentityState();  // never destroyed: children use it at exit
  return *s;
}

std::string hex(const std::vector<uint8_t> &bytes) {
  static const char digits[] = "0123456789abcdef";
  std::string s;
  for (uint8_t b : bytes) {
    s += digits[b >> 4];
    s += digits[b & 15];
  }
  return s;
}

bool unhex(const char *s, std::vector<uint8_t> *out) {
  auto val = [](char c) { return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1; };
  const size_t n = strlen(s);
  if (n == 0 || n % 2 || n > 512) return false;
  out->clear();
  for (size_t i = 0; i < n; i += 2) {
    const int hi = val(s[i]), lo = val(s[i + 1]);
    if (hi < 0 || lo < 0) return false;
    out->push_back(uint8_t(hi << 4 | lo));
  }
  return true;
}

// First use: a process started by mpx's spawn finds its identity in the environment.
void load(IdentityState &st) {
  if (st.loaded) return;
  st.loaded = true;
  st.id.name = "MainProcess";
  // The variables are ours if our parent set them for us (or if that parent is gone, and
  // we with it were orphaned): a program that a spawned child runs in turn inherits them,
  // but has another, living parent.
  const char *ppid = getenv("MPX_PARENT_PID");
  const int64_t parent = ppid ? strtoll(ppid, nullptr, 10) : 0;
  if (parent > 0 && (parent == int64_t(getppid()) || (::kill(pid_t(parent), 0) != 0 && errno == ESRCH))) {
    st.id.parent_pid = strtoll(ppid, nullptr, 10);
    if (const char *v = getenv("MPX_PROCESS_NAME"); v && *v) st.id.name = v;
    if (const char *v = getenv("MPX_PROCESS_IDENT"); v) st.id.ident = v;
    if (const char *v = getenv("MPX_DAEMON"); v) st.id.daemon = strcmp(v, "1") == 0;
    if (const char *v = getenv("MPX_HANDED_FDS"); v)
      for (int i = 0, n = atoi(v); i < n && i < 240; ++i) st.id.handed_fds.push_back(3 + i);
  }
  const char *key = getenv("MPX_AUTHKEY");
  if (!key || !unhex(key, &st.id.authkey)) {
    st.id.authkey.resize(MPX_AUTHKEY_SIZE);
    if (!platform::random_bytes(st.id.authkey.data(), st.id.authkey.size()))
      for (auto &b : st.id.authkey) b = uint8_t(rand());  // never reached on Linux
  }
}

}  // namespace

Identity identity() {
  auto &st = state();
  ForkMutexGuard g(st.mu);
  load(st);
  return st.id;
}

void set_identity(Identity id) {
  auto &st = state();
  ForkMutexGuard g(st.mu);
  st.loaded = true;
  st.id = std::move(id);
  st.counter = 0;
}

void set_name(std::string name) {
  auto &st = state();
  ForkMutexGuard g(st.mu);
  load(st);
  st.id.name = std::move(name);
}

Status set_authkey(const uint8_t *key, size_t len) {
  if (!key || len == 0 || len > 256) return fail(MPX_EINVAL, "an authkey is 1 to 256 bytes");
  auto &st = state();
  ForkMutexGuard g(st.mu);
  load(st);
  st.id.authkey.assign(key, key + len);
  return MPX_OK;
}

std::string next_child_ident() {
  auto &st = state();
  ForkMutexGuard g(st.mu);
  load(st);
  const std::string n = std::to_string(++st.counter);
  return st.id.ident.empty() ? n : st.id.ident + ":" + n;
}

std::vector<std::string> identity_env(const Identity &id) {
  std::vector<std::string> env = {
      "MPX_PROCESS_NAME=" + id.name,
      "MPX_PROCESS_IDENT=" + id.ident,
      "MPX_PARENT_PID=" + std::to_string(id.parent_pid),
      std::string("MPX_DAEMON=") + (id.daemon ? "1" : "0"),
      "MPX_AUTHKEY=" + hex(id.authkey),
      "MPX_HANDED_FDS=" + std::to_string(id.handed_fds.size()),
  };
  return env;
}

void become_child(Identity id) {
  const bool daemon = id.daemon;
  const auto parent = pid_t(id.parent_pid);
  set_identity(std::move(id));
  if (daemon) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(1);  // the parent died before the tie was made
  }
}

// ---- registry of children -----------------------------------------------------------

namespace {

struct Registry {
  ForkMutex mu{ForkMutex::kProcessRegistry};
  bool reaper = false;  // the reaper thread runs while there are orphans
  int reaper_wake = -1;  // eventfd: a new orphan
  std::vector<Process *> live;
  std::vector<Child> orphans;
};
Registry *g_registry = nullptr;  // once registry() has made it
Registry &registry() {
  static Registry *r = g_registry = new Registry();
  return *r;
}

// A forked child starts with no children, and with no way to use its parent's objects.
struct ForkHook {
  ForkHook() {
    platform::on_fork_child([] {
      // (Written only where the parent left something: see on_fork_child.)
      if (g_state && g_state->counter) g_state->counter = 0;
      if (!g_registry) return;
      auto &r = *g_registry;
      if (!r.live.empty()) new (&r.live) std::vector<Process *>();  // the parent's vectors leak in the child
      if (!r.orphans.empty()) new (&r.orphans) std::vector<Child>();
      if (r.reaper) r.reaper = false;  // the thread did not come along
      if (r.reaper_wake >= 0) {
        ::close(r.reaper_wake);
        r.reaper_wake = -1;
      }
    });
  }
} g_fork_hook;

}  // namespace

void registry_add(Process *p) {
  auto &r = registry();
  ForkMutexGuard g(r.mu);
  r.live.push_back(p);
}

void registry_remove(Process *p) {
  auto &r = registry();
  ForkMutexGuard g(r.mu);
  r.live.erase(std::remove(r.live.begin(), r.live.end(), p), r.live.end());
}

namespace {

// Reaps orphans as they end, so that a destroyed process never lingers as a zombie. It
// runs only while there are orphans, and never calls into the application.
void reaper_loop() {
  auto &r = registry();
  std::vector<pollfd> fds;
  for (;;) {
    {
      ForkMutexGuard g(r.mu);
      if (r.orphans.empty()) {
        r.reaper = false;
        ::close(r.reaper_wake);  // nothing of the reaper stays behind
        r.reaper_wake = -1;
        return;
      }
      fds.assign(1, pollfd{r.reaper_wake, POLLIN, 0});
      for (const Child &c : r.orphans) fds.push_back(pollfd{c.pidfd, POLLIN, 0});
    }
    if (::poll(fds.data(), fds.size(), -1) > 0 && (fds[0].revents & POLLIN)) {
      uint64_t n;
      (void)!read(r.reaper_wake, &n, sizeof n);
    }
    reap_ended(false);
  }
}

}  // namespace

void orphan(Child c) {
  auto &r = registry();
  ForkMutexGuard g(r.mu);
  if (c.chan >= 0) {
    // A forkserver child: the server reaps it.
    ::close(c.chan);
    if (c.pidfd >= 0) ::close(c.pidfd);
    return;
  }
  try {
    r.orphans.push_back(c);
    if (r.reaper_wake < 0) r.reaper_wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (r.reaper_wake < 0) return;  // reaped lazily instead, at the next start
    if (!r.reaper) {
      std::thread(reaper_loop).detach();
      r.reaper = true;
    } else {
      const uint64_t one = 1;
      (void)!write(r.reaper_wake, &one, sizeof one);
    }
  } catch (...) {  // no thread: reaped lazily, at the next start or active_children
  }
}

void reap_ended(bool all) {
  auto &r = registry();
  ForkMutexGuard g(r.mu);
  auto ended = [](Child &c) {
    int code;
    if (c.pidfd < 0 || reap_pidfd(c.pidfd, &code) == 0) return false;
    ::close(c.pidfd);
    return true;
  };
  r.orphans.erase(std::remove_if(r.orphans.begin(), r.orphans.end(), ended), r.orphans.end());
  if (all)
    for (Process *p : r.live) {
      bool done;
      (void)p->poll(&done);
    }
}

std::vector<mpx_process *> active_children() {
  reap_ended(false);
  auto &r = registry();
  ForkMutexGuard g(r.mu);
  std::vector<mpx_process *> alive;
  for (Process *p : r.live) {
    bool done;
    if (p->poll(&done) == MPX_OK && !done) alive.push_back(static_cast<mpx_process *>(p->handle));
  }
  return alive;
}

// ---- entry points -------------------------------------------------------------------

namespace {
struct Entries {
  ForkMutex mu{ForkMutex::kProcessEntries};
  std::map<std::string, mpx_entry_fn> map;
};
Entries &entries() {
  static Entries *e = new Entries();
  return *e;
}
}  // namespace

Status register_entry(const char *name, mpx_entry_fn fn) {
  if (!name || !*name) return fail(MPX_EINVAL, "name is NULL or empty");
  if (!fn) return fail(MPX_EINVAL, "fn is NULL");
  if (strnlen(name, 257) > 256) return fail(MPX_EINVAL, "an entry name is at most 256 bytes");
  auto &e = entries();
  ForkMutexGuard g(e.mu);
  auto [it, inserted] = e.map.emplace(name, fn);
  if (!inserted && it->second != fn) return fail(MPX_EEXIST, "entry \"{}\" is registered to another function", name);
  return MPX_OK;
}

mpx_entry_fn find_entry(const std::string &name) {
  {
    auto &e = entries();
    ForkMutexGuard g(e.mu);
    if (auto it = e.map.find(name); it != e.map.end()) return it->second;
  }
  return reinterpret_cast<mpx_entry_fn>(dlsym(RTLD_DEFAULT, name.c_str()));
}

// ---- fork_child ---------------------------------------------------------------------

namespace {

// The long-lived thread that forks daemons for callers on other threads.
struct Forker {
  std::mutex mu;
  std::condition_variable cv;
  bool running = false;
  const std::function<void()> *body = nullptr;
  bool busy = false;
  bool done = false;
  pid_t pid = -1;
  int err = 0;

  void loop() {
    std::unique_lock lk(mu);
    for (;;) {
      cv.wait(lk, [&] { return body != nullptr && !done; });
      const std::function<void()> *b = body;
      lk.unlock();
      const pid_t p = fork();
      if (p == 0) {
        (*b)();
        _exit(1);
      }
      const int e = errno;
      lk.lock();
      pid = p;
      err = e;
      done = true;
      cv.notify_all();
    }
  }
};
Forker *g_forker = new Forker();

struct ForkerHook {
  ForkerHook() {
    platform::on_fork_child([] {
      // Its thread is gone here: a fresh Forker if it ran, else only its mutex (another
      // thread may have just taken it to start the thread).
      if (!g_forker || g_forker->running) g_forker = new (std::nothrow) Forker();
      else platform::reset_in_fork_child(g_forker->mu);
    });
  }
} g_forker_hook;

pid_t fork_on_forker(const std::function<void()> &body, int *err) {
  Forker &f = *g_forker;
  std::unique_lock lk(f.mu);
  if (!f.running) {
    try {
      std::thread([&f] { f.loop(); }).detach();
    } catch (...) {
      *err = EAGAIN;
      return -1;
    }
    f.running = true;
  }
  f.cv.wait(lk, [&] { return !f.busy; });
  f.busy = true;
  f.body = &body;
  f.done = false;
  f.cv.notify_all();
  f.cv.wait(lk, [&] { return f.done; });
  const pid_t pid = f.pid;
  *err = f.err;
  f.body = nullptr;
  f.busy = false;
  f.cv.notify_all();
  return pid;
}

}  // namespace

pid_t fork_child(bool daemon, const std::function<void()> &body, int *err) {
  if (daemon && platform::current_tid() != platform::current_pid()) return fork_on_forker(body, err);
  const pid_t pid = fork();
  if (pid == 0) {
    body();
    _exit(1);
  }
  *err = errno;
  return pid;
}

}  // namespace mpx::proc
