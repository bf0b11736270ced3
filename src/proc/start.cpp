// The fork and spawn start methods.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

#include "platform/process.hpp"
#include "proc/process.hpp"

extern char **environ;

namespace mpx::proc {

namespace {

// Descriptors the parent opened for one start and closes once it is done.
struct FdGuard {
  std::vector<int> fds;
  ~FdGuard() {
    for (int fd : fds)
      if (fd >= 0) ::close(fd);
  }
  int keep(int fd) {
    fds.push_back(fd);
    return fd;
  }
};

void flush_std_streams() {
  fflush(stdout);
  fflush(stderr);
}

// NAME of "NAME=VALUE".
std::string_view env_name(const std::string &e) { return std::string_view(e).substr(0, e.find('=')); }

void env_set(std::vector<std::string> &env, const std::string &entry) {
  for (auto &e : env)
    if (env_name(e) == env_name(entry)) {
      e = entry;
      return;
    }
  env.push_back(entry);
}

// The child's side of a spawn: the redirections, then exec. Only async-signal-safe calls:
// the parent may have had other threads.
// Where PATH says `file` may be, in order (just `file` when it names a path). The child
// tries each with execve, as posix_spawnp does (no /bin/sh fallback for scripts without #!).
std::vector<std::string> exec_candidates(const std::string &file) {
  if (file.find('/') != std::string::npos) return {file};
  const char *path = getenv("PATH");
  std::string_view dirs = path ? path : "/bin:/usr/bin";
  std::vector<std::string> out;
  for (;;) {
    const size_t colon = dirs.find(':');
    const std::string_view dir = dirs.substr(0, colon);
    out.push_back((dir.empty() ? std::string(".") : std::string(dir)) + "/" + file);
    if (colon == std::string_view::npos) break;
    dirs.remove_prefix(colon + 1);
  }
  return out;
}

[[noreturn]] void exec_child(const std::vector<std::pair<int, int>> &dups, int low, const char *cwd,
                             const std::vector<std::string> &candidates, char *const *argv, char *const *envp,
                             int report_fd, pid_t parent, bool daemon) {
  int err = 0;
  if (daemon) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(1);
  }
  for (auto [src, target] : dups)
    if (dup2(src, target) < 0) {
      err = errno;
      goto fail;
    }
  syscall(SYS_close_range, unsigned(low), ~0u, unsigned(CLOSE_RANGE_CLOEXEC));
  if (cwd && chdir(cwd) != 0) {
    err = errno;
    goto fail;
  }
  {
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    for (int sig = 1; sig < 32; ++sig)
      if (sig != SIGKILL && sig != SIGSTOP) sigaction(sig, &dfl, nullptr);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
  }
  err = ENOENT;
  for (const auto &c : candidates) {
    execve(c.c_str(), argv, envp);
    if (errno == EACCES) err = EACCES;
    else if (errno != ENOENT && errno != ENOTDIR) {
      err = errno;
      break;
    }
  }
fail:
  (void)!write(report_fd, &err, sizeof err);
  _exit(127);
}

}  // namespace

Status watch_child(pid_t pid, int *pidfd) {
  *pidfd = open_pidfd(pid);
  if (*pidfd >= 0) return MPX_OK;
  const int e = errno;
  if (e == ESRCH) {
    // Already reaped by the kernel (SIGCHLD ignored) or by a waitpid(-1): it ran and has
    // ended, its status is lost. A readable eventfd stands in for the pidfd.
    *pidfd = eventfd(1, EFD_CLOEXEC);
    if (*pidfd >= 0) return MPX_OK;
    return fail_errno("eventfd");
  }
  ::kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
  return fail(errno_to_status(e), "pidfd_open of the new child failed: {}", strerror(e));
}

Identity Process::child_identity() {
  Identity child = identity();  // the authkey
  {
    std::lock_guard g(mu_);
    child.name = name_;
  }
  child.ident = ident_;
  child.daemon = spec_.daemon;
  child.parent_pid = platform::current_pid();
  child.handed_fds = spec_.fds;
  return child;
}

Status Process::start_fork() {
  Identity child = child_identity();
  mpx_entry_fn entry = spec_.entry_fn;
  if (!spec_.fn && !entry) {
    entry = find_entry(spec_.entry);
    if (!entry)
      return fail(MPX_ENOENT, "no entry point named \"{}\" (mpx_register it, or export the symbol)", spec_.entry);
  }
  flush_std_streams();  // or the child would write the parent's buffered output again
  const std::function<void()> body = [&] {
    become_child(std::move(child));
    if (spec_.fn)
      spec_.fn(spec_.arg);
    else
      entry(spec_.payload.data(), spec_.payload.size());
    flush_std_streams();
    _exit(0);
  };
  int err = 0;
  const pid_t pid = fork_child(spec_.daemon, body, &err);
  if (pid < 0) return fail(errno_to_status(err), "fork failed: {}", strerror(err));
  int pidfd;
  if (Status s = watch_child(pid, &pidfd); s != MPX_OK) return s;
  std::lock_guard g(mu_);
  child_ = Child{pid, pidfd, -1};
  return MPX_OK;
}

Status Process::start_spawn() {
  const Identity child = child_identity();  // identity_env counts its handed_fds

  // The environment.
  std::vector<std::string> env;
  if (spec_.env_mode != MPX_ENV_REPLACE)
    for (char **e = environ; e && *e; ++e) env.emplace_back(*e);
  if (spec_.env_mode != MPX_ENV_INHERIT)
    for (const auto &e : spec_.env) env_set(env, e);
  for (const auto &e : identity_env(child)) env_set(env, e);
  std::vector<char *> envp, argv;
  for (auto &e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  for (auto &a : spec_.argv) argv.push_back(const_cast<char *>(a.c_str()));
  argv.push_back(nullptr);

  // Every source is first duplicated above the child's last target, so that no redirection
  // overwrites the source of a later one; the child keeps 0..low-1.
  const int low = 3 + int(spec_.fds.size());
  FdGuard temps;
  std::vector<std::pair<int, int>> dups;  // (source, target)
  int parent_end[3] = {-1, -1, -1};
  FdGuard parent_ends;
  auto high = [&](int fd, const char *what) -> Status {
    const int d = fcntl(fd, F_DUPFD_CLOEXEC, low);
    if (d < 0) return fail_errno(what);
    temps.keep(d);
    return MPX_OK;
  };
  for (int i = 0; i < 3; ++i) {
    const mpx_stdio &io = spec_.stdio[i];
    int src = -1;
    switch (io.mode) {
      case MPX_STDIO_INHERIT: continue;
      case MPX_STDIO_PIPE: {
        int p[2];
        if (pipe2(p, O_CLOEXEC) != 0) return fail_errno("pipe2");
        const int theirs = i == 0 ? p[0] : p[1], ours = i == 0 ? p[1] : p[0];
        parent_ends.keep(ours);
        parent_end[i] = ours;
        temps.keep(theirs);
        src = theirs;
        break;
      }
      case MPX_STDIO_NULL:
        src = temps.keep(open("/dev/null", O_RDWR | O_CLOEXEC));
        if (src < 0) return fail_errno("open /dev/null");
        break;
      case MPX_STDIO_FILE:
        src = temps.keep(open(spec_.stdio_path[i].c_str(),
                              (i == 0 ? O_RDONLY : O_WRONLY | O_CREAT | O_TRUNC) | O_CLOEXEC, 0644));
        if (src < 0)
          return fail(errno_to_status(errno), "cannot open {} for the child's {}: {}", spec_.stdio_path[i],
                      i == 0 ? "stdin" : i == 1 ? "stdout" : "stderr", strerror(errno));
        break;
      default: src = io.fd;
    }
    if (Status s = high(src, "dup of a stdio source"); s != MPX_OK) return s;
    dups.emplace_back(temps.fds.back(), i);
  }
  for (size_t j = 0; j < spec_.fds.size(); ++j) {
    if (Status s = high(spec_.fds[j], "dup of a handed descriptor"); s != MPX_OK) return s;
    dups.emplace_back(temps.fds.back(), 3 + int(j));
  }

  const char *file = spec_.file.c_str();
  const char *cwd = spec_.cwd.empty() ? nullptr : spec_.cwd.c_str();
  pid_t pid = -1;
  int err = 0;
  if (!spec_.daemon) {
    // posix_spawn: a vfork-style clone that reports exec failure and reaps the failed child.
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&attr);
    for (auto [src, target] : dups) posix_spawn_file_actions_adddup2(&fa, src, target);
    posix_spawn_file_actions_addclosefrom_np(&fa, low);
    if (cwd) posix_spawn_file_actions_addchdir_np(&fa, cwd);
    sigset_t none, dfl;
    sigemptyset(&none);
    sigemptyset(&dfl);
    for (int sig = 1; sig < 32; ++sig)
      if (sig != SIGKILL && sig != SIGSTOP) sigaddset(&dfl, sig);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &dfl);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    err = posix_spawnp(&pid, file, &fa, &attr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    if (err != 0) pid = -1;
  } else {
    // A daemon needs the parent-death signal set between fork and exec.
    // The report pipe's child end must sit above the redirections' targets.
    int pipe_fds[2];
    if (pipe2(pipe_fds, O_CLOEXEC) != 0) return fail_errno("pipe2");
    int report[2] = {pipe_fds[0], fcntl(pipe_fds[1], F_DUPFD_CLOEXEC, low)};
    ::close(pipe_fds[1]);
    if (report[1] < 0) {
      ::close(report[0]);
      return fail_errno("dup of the report pipe");
    }
    const pid_t parent = pid_t(platform::current_pid());
    const std::vector<std::string> candidates = exec_candidates(spec_.file);
    flush_std_streams();
    const std::function<void()> body = [&] {
      exec_child(dups, low, cwd, candidates, argv.data(), envp.data(), report[1], parent, true);
    };
    pid = fork_child(true, body, &err);
    ::close(report[1]);
    if (pid > 0) {
      int child_err = 0;
      ssize_t n;
      do n = read(report[0], &child_err, sizeof child_err);
      while (n < 0 && errno == EINTR);
      if (n == sizeof child_err) {
        waitpid(pid, nullptr, 0);
        pid = -1;
        err = child_err;
      }
    }
    ::close(report[0]);
  }
  if (pid < 0)
    return fail(errno_to_status(err), "cannot start {}: {}", spec_.file, strerror(err));

  int pidfd;
  if (Status s = watch_child(pid, &pidfd); s != MPX_OK) return s;
  std::lock_guard g(mu_);
  child_ = Child{pid, pidfd, -1};
  for (int i = 0; i < 3; ++i) stdio_[i] = parent_end[i];
  parent_ends.fds.clear();  // now owned by the object
  return MPX_OK;
}

}  // namespace mpx::proc
