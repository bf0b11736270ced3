#include "support/child.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>

#include "support/leak.hpp"

namespace mpxt {

void install_support();  // leak.cpp

namespace {
constexpr const char *kHelperFlag = "--mpx-test-helper=";
}

std::string ExitStatus::describe() const {
  std::ostringstream s;
  if (timed_out) s << "timed out (killed at its deadline), ";
  if (exited) {
    s << "exited with " << code;
    if (code == kChildCheckFailed) s << " (a CHILD_CHECK failed, see stderr)";
    if (code == kChildThrew) s << " (threw an exception)";
  } else if (signal != 0) {
    s << "killed by signal " << signal << " (" << strsignal(signal) << ")";
  } else {
    s << "not reaped";
  }
  return s.str();
}

static ExitStatus decode(int wstatus) {
  ExitStatus st;
  if (WIFEXITED(wstatus)) {
    st.exited = true;
    st.code = WEXITSTATUS(wstatus);
  } else if (WIFSIGNALED(wstatus)) {
    st.signal = WTERMSIG(wstatus);
  }
  return st;
}

Child::Child(Child &&other) noexcept : pid_(other.pid_), reaped_(other.reaped_), status_(other.status_) {
  other.pid_ = -1;
  other.reaped_ = true;
}

Child &Child::operator=(Child &&other) noexcept {
  if (this != &other) {
    if (pid_ > 0 && !reaped_) kill_and_wait(SIGKILL);
    pid_ = other.pid_;
    reaped_ = other.reaped_;
    status_ = other.status_;
    other.pid_ = -1;
    other.reaped_ = true;
  }
  return *this;
}

Child::~Child() {
  if (pid_ > 0 && !reaped_) kill_and_wait(SIGKILL);
}

Child Child::fork(std::function<int()> fn) {
  install_support();
  std::fflush(nullptr);  // no buffered output duplicated into the child
  pid_t pid = ::fork();
  if (pid < 0) {
    ADD_FAILURE() << "fork: " << std::strerror(errno);
    return Child();
  }
  if (pid == 0) {
    int rc = kChildThrew;
    try {
      rc = fn();
    } catch (const std::exception &e) {
      std::fprintf(stderr, "[child %d] exception: %s\n", static_cast<int>(getpid()), e.what());
    } catch (...) {
      std::fprintf(stderr, "[child %d] unknown exception\n", static_cast<int>(getpid()));
    }
    std::fflush(nullptr);
    ::_exit(rc);
  }
  return Child(pid);
}

static std::vector<int> open_fds() {
  std::vector<int> fds;
  DIR *d = opendir("/proc/self/fd");
  if (d == nullptr) return fds;
  int self = dirfd(d);
  while (dirent *e = readdir(d)) {
    if (e->d_name[0] == '.') continue;
    int fd = std::atoi(e->d_name);
    if (fd != self) fds.push_back(fd);
  }
  closedir(d);
  return fds;
}

Child Child::exec_helper(const std::string &name, const std::vector<std::string> &args,
                         const std::vector<int> &keep_fds) {
  install_support();
  // Everything allocated before fork: the child only calls async-signal-safe functions.
  // Driven by argv: argv[1] names the helper, the rest are its arguments.
  std::vector<std::string> argv_s;
  argv_s.push_back("mpx-test-helper-" + name);
  argv_s.push_back(std::string(kHelperFlag) + name);
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char *> argv;
  for (auto &a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<std::string> env_s;
  for (char **e = environ; *e != nullptr; ++e) {
    if (std::strncmp(*e, "GTEST_", 6) != 0) env_s.emplace_back(*e);  // no sharding or filters
  }
  std::vector<char *> envp;
  for (auto &e : env_s) envp.push_back(e.data());
  envp.push_back(nullptr);
  char exe[4096];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n <= 0) {
    ADD_FAILURE() << "readlink /proc/self/exe: " << std::strerror(errno);
    return Child();
  }
  exe[n] = '\0';
  std::vector<int> fds = open_fds();

  std::fflush(nullptr);
  pid_t pid = ::fork();
  if (pid < 0) {
    ADD_FAILURE() << "fork: " << std::strerror(errno);
    return Child();
  }
  if (pid == 0) {
    for (int fd : fds) {
      if (fd <= 2) continue;
      bool keep = false;
      for (int k : keep_fds) keep = keep || k == fd;
      int flags = fcntl(fd, F_GETFD);
      if (flags < 0) continue;
      fcntl(fd, F_SETFD, keep ? (flags & ~FD_CLOEXEC) : (flags | FD_CLOEXEC));
    }
    execve(exe, argv.data(), envp.data());
    ::_exit(127);
  }
  return Child(pid);
}

void Child::reap_now() {
  int wstatus = 0;
  pid_t r;
  do {
    r = waitpid(pid_, &wstatus, 0);
  } while (r < 0 && errno == EINTR);
  bool timed_out = status_.timed_out;
  status_ = r == pid_ ? decode(wstatus) : ExitStatus{};
  status_.timed_out = timed_out;
  reaped_ = true;
}

bool Child::running() {
  if (pid_ <= 0 || reaped_) return false;
  int wstatus = 0;
  pid_t r = waitpid(pid_, &wstatus, WNOHANG);
  if (r == pid_) {
    status_ = decode(wstatus);
    reaped_ = true;
    return false;
  }
  return r == 0;
}

ExitStatus Child::wait(Millis deadline) {
  if (pid_ <= 0) return status_;
  if (reaped_) return status_;
  auto end = std::chrono::steady_clock::now() + deadline;
  int pidfd = static_cast<int>(syscall(SYS_pidfd_open, pid_, 0));
  while (running()) {
    auto left = std::chrono::duration_cast<Millis>(end - std::chrono::steady_clock::now()).count();
    if (left <= 0) {
      status_.timed_out = true;
      ::kill(pid_, SIGKILL);
      reap_now();
      break;
    }
    if (pidfd >= 0) {
      pollfd p{pidfd, POLLIN, 0};
      poll(&p, 1, static_cast<int>(std::min<int64_t>(left, 100)));
    } else {
      std::this_thread::sleep_for(Millis(1));
    }
  }
  if (pidfd >= 0) close(pidfd);
  return status_;
}

void Child::kill(int sig) {
  if (pid_ > 0 && !reaped_) ::kill(pid_, sig);
}

ExitStatus Child::kill_and_wait(int sig, Millis deadline) {
  kill(sig);
  return wait(deadline);
}

ExitStatus run_in_child(std::function<int()> fn, Millis deadline) {
  Child c = Child::fork(std::move(fn));
  return c.wait(deadline);
}

std::vector<ExitStatus> run_in_children(int n, const std::function<int(int)> &fn, Millis deadline) {
  std::vector<Child> kids;
  kids.reserve(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) kids.push_back(Child::fork([&fn, i] { return fn(i); }));
  auto end = std::chrono::steady_clock::now() + deadline;
  std::vector<ExitStatus> out;
  for (auto &k : kids) {
    auto left = std::chrono::duration_cast<Millis>(end - std::chrono::steady_clock::now());
    out.push_back(k.wait(left.count() > 0 ? left : Millis(0)));
  }
  return out;
}

bool all_ok(const std::vector<ExitStatus> &v, std::string *why) {
  for (size_t i = 0; i < v.size(); ++i) {
    if (!v[i].ok()) {
      if (why != nullptr) *why = "child " + std::to_string(i) + " " + v[i].describe();
      return false;
    }
  }
  return true;
}

// ---- helpers run by re-exec -------------------------------------------------------------

static std::map<std::string, HelperFn> &helpers() {
  static std::map<std::string, HelperFn> m;
  return m;
}

bool register_helper(const char *name, HelperFn fn) {
  helpers()[name] = fn;
  install_support();
  return true;
}

// Called before the first test (OnTestProgramStart): in a re-exec'ed helper, run it and exit.
void run_helper_if_requested() {
  std::vector<std::string> argv;
  std::ifstream cmd("/proc/self/cmdline", std::ios::binary);
  std::string arg;
  while (std::getline(cmd, arg, '\0')) argv.push_back(arg);
  const std::string flag = kHelperFlag;
  if (argv.size() < 2 || argv[1].rfind(flag, 0) != 0) return;
  const std::string helper = argv[1].substr(flag.size());
  std::vector<std::string> args(argv.begin() + 2, argv.end());
  auto it = helpers().find(helper);
  if (it == helpers().end()) {
    std::fprintf(stderr, "no test helper named '%s'\n", helper.c_str());
    std::fflush(nullptr);
    ::_exit(126);
  }
  int rc = kChildThrew;
  try {
    rc = it->second(args);
  } catch (const std::exception &e) {
    std::fprintf(stderr, "[helper %s] exception: %s\n", helper.c_str(), e.what());
  }
  std::fflush(nullptr);
  ::_exit(rc);
}

}  // namespace mpxt
