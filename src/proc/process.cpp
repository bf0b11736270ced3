#include "proc/process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "platform/process.hpp"
#include "platform/wait.hpp"

namespace mpx::proc {

namespace {

constexpr size_t kMaxString = 4096;

Status copy_string(const char *s, const char *what, std::string *out) {
  if (!s) return MPX_OK;
  const size_t n = strnlen(s, kMaxString + 1);
  if (n > kMaxString) return fail(MPX_EINVAL, "{} is longer than {} bytes", what, kMaxString);
  out->assign(s, n);
  return MPX_OK;
}

Status copy_list(const char *const *list, const char *what, std::vector<std::string> *out) {
  if (!list) return MPX_OK;
  for (size_t i = 0; list[i]; ++i) {
    if (i >= 65536) return fail(MPX_EINVAL, "{} has no NULL terminator within 65536 entries", what);
    out->emplace_back();
    if (Status s = copy_string(list[i], what, &out->back()); s != MPX_OK) return s;
  }
  return MPX_OK;
}

void close_fd(int &fd) {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

}  // namespace

Status Spec::from_options(const mpx_process_options *o, Spec *s) {
  if (!o) return fail(MPX_EINVAL, "options are NULL: a process needs a target");
  if (o->method > MPX_START_SPAWN) return fail(MPX_EINVAL, "unknown start method {}", o->method);
  if (o->env_mode > MPX_ENV_EXTEND) return fail(MPX_EINVAL, "unknown env_mode {}", o->env_mode);
  if (o->payload_size && !o->payload) return fail(MPX_EINVAL, "payload is NULL but payload_size is {}", o->payload_size);
  if (o->fd_count && !o->fds) return fail(MPX_EINVAL, "fds is NULL but fd_count is {}", o->fd_count);
  if (o->fd_count > 240) return fail(MPX_EINVAL, "fd_count {} is over the limit of 240", o->fd_count);
  for (size_t i = 0; i < o->fd_count; ++i)
    if (o->fds[i] < 0 || fcntl(o->fds[i], F_GETFD) < 0)
      return fail(MPX_EINVAL, "fds[{}] = {} is not an open descriptor", i, o->fds[i]);
  s->daemon = o->daemon != 0;
  s->fn = o->fn;
  s->arg = o->arg;
  s->entry_fn = o->entry_fn;
  s->env_mode = o->env_mode;
  if (Status st = copy_string(o->entry, "entry", &s->entry); st != MPX_OK) return st;
  if (Status st = copy_string(o->file, "file", &s->file); st != MPX_OK) return st;
  if (Status st = copy_string(o->cwd, "cwd", &s->cwd); st != MPX_OK) return st;
  if (Status st = copy_list(o->argv, "argv", &s->argv); st != MPX_OK) return st;
  if (Status st = copy_list(o->env, "env", &s->env); st != MPX_OK) return st;
  for (const auto &e : s->env)
    if (e.find('=') == std::string::npos || e[0] == '=')
      return fail(MPX_EINVAL, "env entry \"{}\" is not NAME=VALUE", e);
  s->payload.assign(static_cast<const char *>(o->payload), static_cast<const char *>(o->payload) + o->payload_size);
  s->fds.assign(o->fds, o->fds + o->fd_count);
  for (int i = 0; i < 3; ++i) {
    s->stdio[i] = o->stdio[i];
    s->stdio[i].path = nullptr;
    const mpx_stdio &io = o->stdio[i];
    if (io.mode > MPX_STDIO_FD) return fail(MPX_EINVAL, "stdio[{}].mode {} is unknown", i, io.mode);
    if (io.mode == MPX_STDIO_FILE) {
      if (!io.path || !*io.path) return fail(MPX_EINVAL, "stdio[{}] is MPX_STDIO_FILE without a path", i);
      if (Status st = copy_string(io.path, "stdio path", &s->stdio_path[i]); st != MPX_OK) return st;
    }
    if (io.mode == MPX_STDIO_FD && (io.fd < 0 || fcntl(io.fd, F_GETFD) < 0))
      return fail(MPX_EINVAL, "stdio[{}].fd = {} is not an open descriptor", i, io.fd);
  }

  // The method, from the target when not given.
  const bool has_fn = s->fn != nullptr, has_entry = !s->entry.empty() || s->entry_fn, has_file = !s->file.empty();
  if (int(has_fn) + int(has_entry) + int(has_file) != 1)
    return fail(MPX_EINVAL, "a process needs exactly one target: fn, entry (or entry_fn) or file");
  if (!s->entry.empty() && s->entry_fn) return fail(MPX_EINVAL, "give entry or entry_fn, not both");
  s->method = o->method;
  if (s->method == MPX_START_DEFAULT)
    s->method = has_fn || s->entry_fn ? MPX_START_FORK : has_entry ? MPX_START_FORKSERVER : MPX_START_SPAWN;
  switch (s->method) {
    case MPX_START_FORK:
      if (has_file) return fail(MPX_EINVAL, "the fork method runs fn or entry, not a program (use spawn)");
      break;
    case MPX_START_FORKSERVER:
      if (has_fn || s->entry_fn)
        return fail(MPX_EINVAL, "the forkserver method needs an entry by name (a pointer means nothing to the server)");
      if (has_file) return fail(MPX_EINVAL, "the forkserver method runs an entry, not a program (use spawn)");
      break;
    default:
      if (!has_file) return fail(MPX_EINVAL, "the spawn method execs a program: set file");
  }
  if (s->method != MPX_START_SPAWN) {
    for (int i = 0; i < 3; ++i)
      if (s->stdio[i].mode != MPX_STDIO_INHERIT)
        return fail(MPX_EINVAL, "stdio redirection is for the spawn method (fork and forkserver children inherit)");
    if (!s->argv.empty() || !s->env.empty() || !s->cwd.empty())
      return fail(MPX_EINVAL, "argv, env and cwd are for the spawn method");
  }
  if (s->argv.empty() && has_file) s->argv.push_back(s->file);
  return MPX_OK;
}

// ---- Process ----------------------------------------------------------------------------

Status Process::init(const mpx_process_options *opts) {
  if (Status s = Spec::from_options(opts, &spec_); s != MPX_OK) return s;
  name_child(opts->name);
  return MPX_OK;
}

Status Process::init_adopted(const mpx_process_options *opts) {
  // The child runs already: of the options only its name and daemon flag mean anything.
  spec_.method = MPX_START_FORK;
  spec_.daemon = opts && opts->daemon;
  name_child(opts ? opts->name : nullptr);
  return MPX_OK;
}

void Process::name_child(const char *name) {
  ident_ = next_child_ident();
  name_ = name ? std::string(name) : "Process-" + ident_;
  bound_pid = platform::current_pid();  // a forked child may not join or signal its siblings
}

Process::~Process() {
  registry_remove(this);
  if (state_ == running) orphan(child_);
  else {
    close_fd(child_.pidfd);
    close_fd(child_.chan);
  }
  close_fd(wake_fd_);
  for (int &fd : stdio_) close_fd(fd);
}

bool Process::started() {
  std::lock_guard g(mu_);
  return state_ != created;
}
std::string Process::name() {
  std::lock_guard g(mu_);
  return name_;
}
void Process::set_name(std::string name) {
  std::lock_guard g(mu_);
  name_ = std::move(name);
}
bool Process::daemon() {
  std::lock_guard g(mu_);
  return spec_.daemon;
}
pid_t Process::pid() {
  std::lock_guard g(mu_);
  return child_.pid;
}

Status Process::set_daemon(bool daemon) {
  std::lock_guard g(mu_);
  if (state_ != created) return fail(MPX_EINVAL, "the daemon flag cannot change after start");
  spec_.daemon = daemon;
  return MPX_OK;
}

Status Process::start() {
  {
    std::lock_guard g(mu_);
    if (state_ != created) return fail(MPX_EINVAL, "a process can be started only once");
    state_ = running;  // claims the start; undone on failure
  }
  if (identity().daemon) {
    std::lock_guard g(mu_);
    state_ = created;
    return fail(MPX_EPERM, "daemonic processes are not allowed to have children");
  }
  reap_ended(true);
  Status s;
  switch (spec_.method) {
    case MPX_START_FORK: s = start_fork(); break;
    case MPX_START_FORKSERVER: s = start_forkserver(); break;
    default: s = start_spawn(); break;
  }
  if (s != MPX_OK) {
    std::lock_guard g(mu_);
    state_ = created;
    return s;
  }
  registry_add(this);  // not under mu_: the registry's lock comes first (see reap_ended)
  return MPX_OK;
}

Status Process::adopt(pid_t pid) {
  if (pid <= 0) return fail(MPX_EINVAL, "pid {} is not a child", pid);
  siginfo_t si{};
  if (waitid(P_PID, id_t(pid), &si, WEXITED | WNOHANG | WNOWAIT) != 0)
    return fail(errno == ECHILD ? MPX_EINVAL : fail_errno("waitid"), "pid {} is not a child of this process", pid);
  const int pidfd = open_pidfd(pid);
  if (pidfd < 0) return fail_errno("pidfd_open");
  {
    std::lock_guard g(mu_);
    if (state_ != created) {
      ::close(pidfd);
      return fail(MPX_EINVAL, "already started");
    }
    child_ = Child{pid, pidfd, -1};
    state_ = running;
  }
  registry_add(this);
  return MPX_OK;
}

void Process::finish(int code) {
  state_ = ended;
  exitcode_ = code;
  // The pidfd and the channel stay open until the object goes: another thread may be
  // polling them (the sentinel), and a closed number could be reused under it.
}

Status Process::poll_locked(bool *ended_out) {
  *ended_out = false;
  if (state_ == created) return fail(MPX_EINVAL, "the process has not been started");
  if (state_ == ended) {
    *ended_out = true;
    return MPX_OK;
  }
  if (child_.chan >= 0 && !server_lost_) {
    int32_t msg[2];
    const ssize_t n = recv(child_.chan, msg, sizeof msg, MSG_DONTWAIT | MSG_PEEK);
    if (n == sizeof msg) {
      (void)!recv(child_.chan, msg, sizeof msg, MSG_DONTWAIT);
      finish(msg[1]);
      *ended_out = true;
      return MPX_OK;
    }
    if (n > 0 || (n < 0 && (errno == EAGAIN || errno == EINTR))) return MPX_OK;  // still running
    // The forkserver went away without telling: watch the pid itself from now on.
    server_lost_ = true;
    if (child_.pidfd < 0) {
      finish(255);
      *ended_out = true;
      return MPX_OK;
    }
  }
  if (child_.pidfd < 0) return MPX_OK;
  int code = 0;
  const int r = reap_pidfd(child_.pidfd, &code);
  if (r == 0) return MPX_OK;
  if (r < 0) {
    // Not our child (a forkserver child whose server died) or stolen by waitpid(-1):
    // the status is lost. It has ended when the pidfd says so.
    pollfd p{child_.pidfd, POLLIN, 0};
    if (::poll(&p, 1, 0) <= 0) return MPX_OK;
    code = 255;
  }
  finish(code);
  *ended_out = true;
  return MPX_OK;
}

Status Process::poll(bool *ended_out) {
  std::lock_guard g(mu_);
  return poll_locked(ended_out);
}

Status Process::join(int64_t timeout_ms) {
  // In nanoseconds, and each wait rounded up: a join never returns before its timeout.
  const int64_t deadline = timeout_ms < 0 ? -1 : platform::deadline_after_ms(timeout_ms);
  for (;;) {
    int fds[2];
    {
      std::lock_guard g(mu_);
      bool done;
      if (Status s = poll_locked(&done); s != MPX_OK) return s;
      if (done) return MPX_OK;
      if (closing()) return fail(MPX_ECLOSED, "the process object was destroyed while joining");
      if (timeout_ms == 0) return fail(MPX_ETIMEDOUT, "the process is still running");
      if (wake_fd_ < 0) {
        wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (wake_fd_ < 0) return fail_errno("eventfd");
      }
      fds[0] = child_.chan >= 0 && !server_lost_ ? child_.chan : child_.pidfd;
      fds[1] = wake_fd_;
    }
    int wait_ms = -1;
    if (deadline >= 0) {
      const int64_t left_ns = deadline - platform::monotonic_ns();
      const int64_t left = (left_ns + 999999) / 1000000;
      if (left_ns <= 0) {
        bool done;
        std::lock_guard g(mu_);
        if (poll_locked(&done) == MPX_OK && done) return MPX_OK;
        return fail(MPX_ETIMEDOUT, "the process is still running after {} ms", timeout_ms);
      }
      wait_ms = int(std::min<int64_t>(left, 1 << 30));
    }
    pollfd p[2] = {{fds[0], POLLIN, 0}, {fds[1], POLLIN, 0}};
    if (::poll(p, 2, wait_ms) < 0 && errno != EINTR) return fail_errno("poll");
  }
}

Status Process::exitcode(int *code) {
  bool done;
  std::lock_guard g(mu_);
  if (state_ == created) return fail(MPX_EAGAIN, "the process has not been started");
  if (Status s = poll_locked(&done); s != MPX_OK) return s;
  if (!done) return fail(MPX_EAGAIN, "the process is still running");
  *code = exitcode_;
  return MPX_OK;
}

Status Process::signal(int sig) {
  if (sig <= 0 || sig >= NSIG) return fail(MPX_EINVAL, "signal {} is out of range", sig);
  std::lock_guard g(mu_);
  if (state_ == created) return fail(MPX_EINVAL, "the process has not been started");
  bool done;
  if (Status s = poll_locked(&done); s != MPX_OK) return s;
  if (done) return MPX_OK;
  int r;
  if (child_.pidfd >= 0)
    r = int(syscall(SYS_pidfd_send_signal, child_.pidfd, sig, nullptr, 0));
  else
    r = ::kill(child_.pid, sig);
  if (r != 0 && errno != ESRCH) return fail_errno("pidfd_send_signal");
  return MPX_OK;
}

Status Process::sentinel(int *fd) {
  std::lock_guard g(mu_);
  if (state_ == created) return fail(MPX_EINVAL, "the process has not been started");
  *fd = child_.chan >= 0 ? child_.chan : child_.pidfd;
  return MPX_OK;
}

Status Process::stdio_fd(int stream, int *fd) {
  if (stream < 0 || stream > 2) return fail(MPX_EINVAL, "stream {} is not 0, 1 or 2", stream);
  std::lock_guard g(mu_);
  if (stdio_[stream] < 0)
    return fail(MPX_EINVAL, "stream {} is not a pipe to this process (or is closed, or not started)", stream);
  *fd = stdio_[stream];
  return MPX_OK;
}

Status Process::close_stdio(int stream) {
  if (stream < 0 || stream > 2) return fail(MPX_EINVAL, "stream {} is not 0, 1 or 2", stream);
  std::lock_guard g(mu_);
  if (stdio_[stream] < 0) return fail(MPX_EINVAL, "stream {} is not an open pipe", stream);
  close_fd(stdio_[stream]);
  return MPX_OK;
}

void Process::wake_waiters() noexcept {
  std::lock_guard g(mu_);
  if (wake_fd_ >= 0) {
    const uint64_t one = 1;
    (void)!write(wake_fd_, &one, sizeof one);
  }
}

// ---- helpers shared by the start methods --------------------------------------------

int open_pidfd(pid_t pid) { return int(syscall(SYS_pidfd_open, pid, 0)); }

int decode_status(int kind, int status) {
  return kind == CLD_EXITED ? status : -status;
}

int reap_pidfd(int pidfd, int *code) {
  siginfo_t si{};
  for (;;) {
    if (waitid(idtype_t(P_PIDFD), id_t(pidfd), &si, WEXITED | WNOHANG) == 0) break;
    if (errno != EINTR) return -errno;
  }
  if (si.si_pid == 0) return 0;
  *code = decode_status(si.si_code, si.si_status);
  return 1;
}

}  // namespace mpx::proc
