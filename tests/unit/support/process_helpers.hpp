// Helpers for the process tests (header-only, like mpx_helpers.hpp): options, an RAII process
// that never leaves a child behind, reading a pipe with a deadline, the test child programs,
// and the entry points every process test binary registers for the forkserver.
#pragma once

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "support/mpx_helpers.hpp"

#ifndef MPX_TEST_CHILD
#define MPX_TEST_CHILD "mpx_test_child"
#endif
#ifndef MPX_TEST_CHILD_PLAIN
#define MPX_TEST_CHILD_PLAIN "mpx_test_child_plain"
#endif

namespace mpxt {

/** The helper programs (tests/unit/helpers/mpx_test_child.c): with and without libmpx. */
inline const char *const kChild = MPX_TEST_CHILD;
inline const char *const kChildPlain = MPX_TEST_CHILD_PLAIN;

/** Exit code: got this for "not started or still running". */
inline constexpr int kNoExitcode = INT_MIN;

inline mpx_process_options process_options(uint32_t method = MPX_START_DEFAULT) {
  mpx_process_options o;
  std::memset(&o, 0xCD, sizeof o);
  EXPECT_EQ(mpx_process_options_init(&o, sizeof o), MPX_OK);
  o.method = method;
  return o;
}

/**
 * An owned mpx_process for tests. On destruction a child that is still running is SIGKILLed
 * and joined first, so a failing test never leaves a child behind.
 */
class Proc {
 public:
  Proc() = default;
  explicit Proc(mpx_process *p) : p_(p) {}
  Proc(Proc &&o) noexcept : p_(o.p_) { o.p_ = nullptr; }
  Proc &operator=(Proc &&o) noexcept {
    if (this != &o) {
      reset();
      p_ = o.p_;
      o.p_ = nullptr;
    }
    return *this;
  }
  Proc(const Proc &) = delete;
  Proc &operator=(const Proc &) = delete;
  ~Proc() { reset(); }

  void reset() {
    if (p_ == nullptr) return;
    int alive = 0;
    if (mpx_process_is_alive(p_, &alive) == MPX_OK && alive) {
      mpx_process_kill(p_);
      mpx_process_join(p_, 5000);
    }
    mpx_process_destroy(p_);
    p_ = nullptr;
  }
  mpx_process *get() const { return p_; }
  mpx_process *release() {
    mpx_process *p = p_;
    p_ = nullptr;
    return p;
  }
  explicit operator bool() const { return p_ != nullptr; }

 private:
  mpx_process *p_ = nullptr;
};

inline Proc create_process(const mpx_process_options &o) {
  mpx_process *p = nullptr;
  int rc = mpx_process_create(&p, &o);
  EXPECT_EQ(rc, MPX_OK) << code_str(rc) << ": " << mpx_last_error_message();
  return Proc(p);
}

/** Create and start; an empty Proc (and a test failure) if either fails. */
inline Proc start_process(const mpx_process_options &o) {
  Proc p = create_process(o);
  if (!p) return p;
  int rc = mpx_process_start(p.get());
  EXPECT_EQ(rc, MPX_OK) << "mpx_process_start: " << code_str(rc) << ": " << mpx_last_error_message();
  if (rc != MPX_OK) return Proc();
  return p;
}

inline Proc start_fork(mpx_process_fn fn, void *arg = nullptr, bool daemon = false, const char *name = nullptr) {
  auto o = process_options(MPX_START_FORK);
  o.fn = fn;
  o.arg = arg;
  o.daemon = daemon ? 1 : 0;
  o.name = name;
  return start_process(o);
}

inline Proc start_entry(uint32_t method, const char *entry, const void *payload = nullptr, size_t size = 0,
                        const std::vector<int> &fds = {}, bool daemon = false) {
  auto o = process_options(method);
  o.entry = entry;
  o.payload = payload;
  o.payload_size = size;
  o.fds = fds.empty() ? nullptr : fds.data();
  o.fd_count = fds.size();
  o.daemon = daemon ? 1 : 0;
  return start_process(o);
}

/** argv as the C API wants it; keeps the strings alive. */
class Argv {
 public:
  Argv(std::initializer_list<std::string> v) : s_(v) { build(); }
  explicit Argv(std::vector<std::string> v) : s_(std::move(v)) { build(); }
  Argv(const Argv &) = delete;
  Argv &operator=(const Argv &) = delete;
  const char *const *get() const { return p_.data(); }

 private:
  void build() {
    for (auto &x : s_) p_.push_back(x.c_str());
    p_.push_back(nullptr);
  }
  std::vector<std::string> s_;
  std::vector<const char *> p_;
};

/** Options to spawn `file` with argv (argv[0] first); stdout a pipe unless told otherwise. */
inline mpx_process_options spawn_options(const char *file, const Argv &argv, bool pipe_stdout = true) {
  auto o = process_options(MPX_START_SPAWN);
  o.file = file;
  o.argv = argv.get();
  if (pipe_stdout) o.stdio[1].mode = MPX_STDIO_PIPE;
  return o;
}

inline int64_t pid_of(mpx_process *p) {
  int64_t pid = -1;
  EXPECT_MPX_OK(mpx_process_pid(p, &pid));
  return pid;
}

/** The exit code, or kNoExitcode while MPX_EAGAIN (not started, running). */
inline int exitcode_of(mpx_process *p) {
  int code = kNoExitcode;
  int rc = mpx_process_exitcode(p, &code);
  if (rc == MPX_EAGAIN) return kNoExitcode;
  EXPECT_MPX_OK(rc);
  return code;
}

inline bool is_alive(mpx_process *p) {
  int alive = -1;
  EXPECT_MPX_OK(mpx_process_is_alive(p, &alive));
  return alive == 1;
}

inline std::string process_name(mpx_process *p) {
  char buf[512];
  size_t len = sizeof buf;
  int rc = mpx_process_name(p, buf, &len);
  EXPECT_MPX_OK(rc);
  return rc == MPX_OK ? std::string(buf, len) : std::string("<error>");
}

inline std::string current_name() {
  char buf[512];
  size_t len = sizeof buf;
  int rc = mpx_current_name(buf, &len);
  return rc == MPX_OK ? std::string(buf, len) : "<" + code_str(rc) + ">";
}

inline std::vector<uint8_t> authkey() {
  std::vector<uint8_t> key(512);
  size_t len = key.size();
  int rc = mpx_authkey(key.data(), &len);
  EXPECT_MPX_OK(rc);
  key.resize(rc == MPX_OK ? len : 0);
  return key;
}

inline std::string hex(const std::vector<uint8_t> &v) {
  static const char *digits = "0123456789abcdef";
  std::string s;
  for (uint8_t b : v) {
    s += digits[b >> 4];
    s += digits[b & 15];
  }
  return s;
}

/** Join with a deadline; the exit code, or kNoExitcode (and a failure) if it did not end. */
inline int join_exitcode(mpx_process *p, int64_t timeout_ms = 10000) {
  int rc = mpx_process_join(p, timeout_ms);
  EXPECT_MPX_OK(rc) << "join(" << timeout_ms << ")";
  if (rc != MPX_OK) return kNoExitcode;
  return exitcode_of(p);
}

// ---- pipes -----------------------------------------------------------------------------------

/** A pipe whose ends close on destruction (O_CLOEXEC unless told otherwise). */
class Pipe {
 public:
  explicit Pipe(bool cloexec = true) {
    if (pipe2(fds_, cloexec ? O_CLOEXEC : 0) != 0) ADD_FAILURE() << "pipe2: " << std::strerror(errno);
  }
  ~Pipe() {
    close_read();
    close_write();
  }
  Pipe(const Pipe &) = delete;
  Pipe &operator=(const Pipe &) = delete;
  int read_end() const { return fds_[0]; }
  int write_end() const { return fds_[1]; }
  void close_read() {
    if (fds_[0] >= 0) ::close(fds_[0]);
    fds_[0] = -1;
  }
  void close_write() {
    if (fds_[1] >= 0) ::close(fds_[1]);
    fds_[1] = -1;
  }

 private:
  int fds_[2] = {-1, -1};
};

/** Read fd until EOF or the deadline (then *timed_out, if given, is set). */
inline std::string read_all(int fd, Millis deadline = Millis(10000), bool *timed_out = nullptr) {
  std::string out;
  auto end = std::chrono::steady_clock::now() + deadline;
  if (timed_out != nullptr) *timed_out = false;
  for (;;) {
    auto left = std::chrono::duration_cast<Millis>(end - std::chrono::steady_clock::now()).count();
    if (left <= 0) {
      if (timed_out != nullptr) *timed_out = true;
      ADD_FAILURE() << "read_all: no EOF within the deadline; got so far: " << out.substr(0, 200);
      return out;
    }
    pollfd p{fd, POLLIN, 0};
    int r = poll(&p, 1, static_cast<int>(left));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) continue;
    char buf[65536];
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return out;
    out.append(buf, static_cast<size_t>(n));
  }
}

inline void write_all(int fd, const std::string &s) {
  size_t off = 0;
  while (off < s.size()) {
    ssize_t w = ::write(fd, s.data() + off, s.size() - off);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) {
      ADD_FAILURE() << "write: " << std::strerror(errno);
      return;
    }
    off += static_cast<size_t>(w);
  }
}

/** In a child: write everything (async-signal-safe; no failure reporting). */
inline void child_write(int fd, const void *data, size_t n) {
  const char *p = static_cast<const char *>(data);
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return;
    p += w;
    n -= static_cast<size_t>(w);
  }
}
inline void child_write(int fd, const std::string &s) { child_write(fd, s.data(), s.size()); }

/** `key=value` lines of the helper program's output (the last value of a repeated key wins). */
inline std::map<std::string, std::string> parse_kv(const std::string &out) {
  std::map<std::string, std::string> kv;
  std::istringstream in(out);
  std::string line;
  while (std::getline(in, line)) {
    auto eq = line.find('=');
    if (eq != std::string::npos) kv[line.substr(0, eq)] = line.substr(eq + 1);
  }
  return kv;
}

/** Every value of a repeated key, in order ("env=" lines). */
inline std::vector<std::string> values_of(const std::string &out, const std::string &key) {
  std::vector<std::string> v;
  std::istringstream in(out);
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(key + "=", 0) == 0) v.push_back(line.substr(key.size() + 1));
  return v;
}

/** This process's open descriptors (as listed by /proc/self/fd, without the listing's own). */
inline std::vector<int> fd_list(pid_t pid = 0) {
  std::vector<int> fds;
  std::string dir = pid == 0 ? "/proc/self/fd" : "/proc/" + std::to_string(pid) + "/fd";
  DIR *d = opendir(dir.c_str());
  if (d == nullptr) return fds;
  int self = pid == 0 ? dirfd(d) : -1;
  while (dirent *e = readdir(d)) {
    if (e->d_name[0] == '.') continue;
    int fd = std::atoi(e->d_name);
    if (fd != self) fds.push_back(fd);
  }
  closedir(d);
  std::sort(fds.begin(), fds.end());
  return fds;
}

inline std::string join_ints(const std::vector<int> &v) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + std::to_string(v[i]);
  return s;
}

/** What /proc/self/fd/N points to. */
inline std::string fd_target(int fd, pid_t pid = 0) {
  char buf[4096];
  std::string path = (pid == 0 ? std::string("/proc/self") : "/proc/" + std::to_string(pid)) + "/fd/" + std::to_string(fd);
  ssize_t n = readlink(path.c_str(), buf, sizeof buf - 1);
  if (n < 0) return "?";
  return std::string(buf, static_cast<size_t>(n));
}

// ---- processes in /proc ----------------------------------------------------------------------

/** State letter of a process ('R', 'S', 'Z', ...), or 0 when it does not exist. Its ppid too. */
inline char proc_state(int64_t pid, int64_t *ppid = nullptr) {
  std::ifstream st("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(st, line)) return 0;
  auto close = line.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream rest(line.substr(close + 1));
  char state = 0;
  long long pp = 0;
  rest >> state >> pp;
  if (ppid != nullptr) *ppid = pp;
  return state;
}

/** Gone (or a zombie: it can do nothing any more). */
inline bool proc_dead(int64_t pid) {
  char s = proc_state(pid);
  return s == 0 || s == 'Z' || s == 'X';
}

/** Live and zombie children of this process, from /proc/self/task/ * /children and a zombie scan. */
inline int count_children() {
  int n = 0;
  DIR *d = opendir("/proc/self/task");
  if (d == nullptr) return -1;
  while (dirent *e = readdir(d)) {
    if (e->d_name[0] == '.') continue;
    std::ifstream in(std::string("/proc/self/task/") + e->d_name + "/children");
    long long pid;
    while (in >> pid) ++n;
  }
  closedir(d);
  return n;
}

/** Is there any waitable child of this process (a zombie included)? waitid with WNOWAIT. */
inline bool has_waitable_child() {
  siginfo_t info;
  std::memset(&info, 0, sizeof info);
  int r = waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT);
  return r == 0 && info.si_pid != 0;
}

/** Milliseconds until cond() holds, or -1 after the deadline. */
template <typename F>
int64_t ms_until(F &&cond, Millis deadline, Millis poll = Millis(5)) {
  Stopwatch sw;
  for (;;) {
    if (cond()) return sw.ms();
    if (sw.ms() > deadline.count()) return -1;
    std::this_thread::sleep_for(poll);
  }
}

// ---- entry points --------------------------------------------------------------------------

/** What a test child does (fork fn arg, forkserver payload byte, helper program command). */
enum Behave : uint8_t { kReturn = 0, kExit7 = 1, kBlock = 2, kSegv = 3, kSleep300 = 4 };

[[noreturn]] inline void block_forever() {
  for (int i = 0; i < 600; ++i) std::this_thread::sleep_for(Millis(100));
  std::fprintf(stderr, "[child %d] blocked 60 s and never killed\n", static_cast<int>(getpid()));
  ::_exit(99);
}

inline void behave(int b) {
  switch (b) {
    case kReturn: return;
    case kExit7: ::_exit(7);
    case kBlock: block_forever();
    case kSegv:
      signal(SIGSEGV, SIG_DFL);  // a sanitizer's handler would turn the crash into an exit
      raise(SIGSEGV);
      ::_exit(98);
    case kSleep300: std::this_thread::sleep_for(Millis(300)); return;
    default: ::_exit(97);
  }
}

/** Fork target: arg is a Behave. */
inline void behave_fn(void *arg) { behave(static_cast<int>(reinterpret_cast<intptr_t>(arg))); }
inline void *behave_arg(Behave b) { return reinterpret_cast<void *>(static_cast<intptr_t>(b)); }

/** Entry "mpxt.behave": payload[0] is a Behave. */
inline void behave_entry(const void *payload, size_t size) {
  behave(size > 0 ? static_cast<const uint8_t *>(payload)[0] : 97);
}

/** Entry "mpxt.exit_with": _exit(payload[0]). */
inline void exit_with_entry(const void *payload, size_t size) {
  ::_exit(size > 0 ? static_cast<const uint8_t *>(payload)[0] : 97);
}

/** The descriptors the parent handed this process (mpx_handed_fds); empty on error. */
inline std::vector<int> handed_fds() {
  std::vector<int> fds(64, -1);
  size_t n = fds.size();
  if (mpx_handed_fds(fds.data(), &n) != MPX_OK) return {};
  fds.resize(n);
  return fds;
}

/** The first handed descriptor, where entries write their report (-1 if none). */
inline int report_fd() {
  auto fds = handed_fds();
  return fds.empty() ? -1 : fds[0];
}

/**
 * Entry "mpxt.echo": the payload written back to the first handed fd; to the second, if
 * handed, "handed=<count>" and "fds=<this process's open fds>" lines.
 */
inline void echo_entry(const void *payload, size_t size) {
  std::vector<int> open = fd_list();
  std::vector<int> handed = handed_fds();
  if (handed.empty()) ::_exit(96);
  child_write(handed[0], payload, size);
  if (handed.size() > 1)
    child_write(handed[1], "handed=" + std::to_string(handed.size()) + "\nfds=" + join_ints(open) + "\n");
}

/** Identity as text: name=, parent=, daemon=, authkey= lines (what the helper's "identity" prints). */
inline std::string identity_text() {
  int64_t parent = -1;
  int daemon = -1;
  mpx_parent_pid(&parent);
  mpx_current_daemon(&daemon);
  std::vector<uint8_t> key(512);
  size_t len = key.size();
  if (mpx_authkey(key.data(), &len) == MPX_OK) key.resize(len);
  else key.clear();
  return "name=" + current_name() + "\nparent=" + std::to_string(parent) + "\ndaemon=" + std::to_string(daemon) +
         "\nauthkey=" + hex(key) + "\n";
}

/** Entry "mpxt.identity": identity_text() to the first handed fd. */
inline void identity_entry(const void *, size_t) { child_write(report_fd(), identity_text()); }

/** Entry "mpxt.try_start": tries to start a fork child; writes "start=<rc>" to the first handed fd. */
inline void try_start_entry(const void *, size_t) {
  auto o = process_options(MPX_START_FORK);
  o.fn = behave_fn;
  o.arg = behave_arg(kReturn);
  mpx_process *p = nullptr;
  int rc = mpx_process_create(&p, &o);
  if (rc == MPX_OK) {
    rc = mpx_process_start(p);
    if (rc == MPX_OK) mpx_process_join(p, 5000);
    mpx_process_destroy(p);
  }
  child_write(report_fd(), "start=" + std::to_string(rc) + "\n");
}

inline int register_entry(const char *name, mpx_entry_fn fn) {
  int rc = mpx_register(name, fn);
  if (rc != MPX_OK) std::fprintf(stderr, "mpx_register(%s): %s\n", name, mpx_error_name(rc));
  return rc;
}

// Registered before main, so the forkserver (started by the warmup below) knows them.
inline const int kEntriesRegistered = register_entry("mpxt.behave", behave_entry) |
                                      register_entry("mpxt.exit_with", exit_with_entry) |
                                      register_entry("mpxt.echo", echo_entry) |
                                      register_entry("mpxt.identity", identity_entry) |
                                      register_entry("mpxt.try_start", try_start_entry);

// The forkserver is a long-lived child, and the library may start a helper thread the first
// time it is needed: lazy one-time state, not a per-test leak. Start all of it before the
// first test's snapshot.
inline void process_warmup() {
  mpx_forkserver_start();
  int n = 0;
  mpx_cpu_count(&n);
  current_name();
  authkey();
  auto run = [](const mpx_process_options &o) {
    mpx_process *p = nullptr;
    if (mpx_process_create(&p, &o) != MPX_OK) return;
    if (mpx_process_start(p) == MPX_OK) mpx_process_join(p, 10000);
    mpx_process_destroy(p);
  };
  auto f = process_options(MPX_START_FORK);
  f.fn = behave_fn;
  f.arg = behave_arg(kReturn);
  run(f);
  uint8_t b = kReturn;
  auto s = process_options(MPX_START_FORKSERVER);
  s.entry = "mpxt.behave";
  s.payload = &b;
  s.payload_size = 1;
  run(s);
  auto sp = process_options(MPX_START_SPAWN);
  sp.file = "/bin/true";
  run(sp);
  // A daemon started from a thread other than the main one.
  std::thread([&] {
    auto d = f;
    d.daemon = 1;
    run(d);
  }).join();
  size_t count = 0;
  mpx_active_children(nullptr, &count);
}

inline const bool kProcessWarmupRegistered = register_warmup(&process_warmup);

}  // namespace mpxt
