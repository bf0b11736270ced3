// Processes: the Process object behind mpx_process, the start methods, the registry of
// this process's children, and the current process's identity.
//
// Children are watched through pidfds (a forkserver child through the channel its exit
// status arrives on): the library waits on the pids it started and nothing else, and
// installs no SIGCHLD handler.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "core/handle.hpp"
#include "mpx/process.h"

namespace mpx::proc {

// One redirection of a spawned child's descriptor `target`.
struct FdAction {
  enum Kind { dup, open } kind;
  int target;
  int src = -1;      // dup: a parent descriptor (a CLOEXEC duplicate the parent owns)
  std::string path;  // open
  int flags = 0;
};

// Everything the options said, copied.
struct Spec {
  uint32_t method = MPX_START_DEFAULT;
  bool daemon = false;
  mpx_process_fn fn = nullptr;
  void *arg = nullptr;
  std::string entry;
  mpx_entry_fn entry_fn = nullptr;
  std::vector<char> payload;
  std::vector<int> fds;
  std::string file;
  std::vector<std::string> argv;
  std::vector<std::string> env;
  uint32_t env_mode = MPX_ENV_INHERIT;
  std::string cwd;
  mpx_stdio stdio[3] = {};
  std::string stdio_path[3];

  static Status from_options(const mpx_process_options *opts, Spec *out);
};

// How a child is watched once started.
struct Child {
  pid_t pid = 0;
  int pidfd = -1;  // signals (and, without a channel, the sentinel)
  int chan = -1;   // forkserver: the exit status arrives here
};

struct Identity;

class Process : public Object {
 public:
  Process() : Object(HandleType::process) {}
  ~Process() override;

  Status init(const mpx_process_options *opts);
  // For a child forked outside mpx: then adopt(pid).
  Status init_adopted(const mpx_process_options *opts);
  Status start();
  Status join(int64_t timeout_ms);
  // Reap without blocking; *ended tells whether the child has ended.
  Status poll(bool *ended);
  Status signal(int sig);
  Status exitcode(int *code);
  Status sentinel(int *fd);
  Status stdio_fd(int stream, int *fd);
  Status close_stdio(int stream);
  Status set_daemon(bool daemon);
  Status adopt(pid_t pid);
  bool started();
  std::string name();
  void set_name(std::string name);
  bool daemon();
  pid_t pid();
  void wake_waiters() noexcept override;

  void *handle = nullptr;  // as given to the caller (for active_children)

 private:
  Status poll_locked(bool *ended);
  Status start_fork();
  Status start_spawn();
  Status start_forkserver();
  void name_child(const char *name);  // its place among our children, its name, its owner
  // Who the child will be: our authkey, its name, place, daemon flag, us as its parent.
  Identity child_identity();
  void finish(int code);

  std::mutex mu_;
  Spec spec_;
  std::string name_;
  std::string ident_;  // e.g. "1:2", this child's position in the tree
  enum { created, running, ended } state_ = created;
  Child child_;
  int exitcode_ = 0;
  bool server_lost_ = false;  // the forkserver died before reporting the exit status
  int wake_fd_ = -1;
  int stdio_[3] = {-1, -1, -1};
};

// ---- the registry of this process's children ----------------------------------------

void registry_add(Process *p);
void registry_remove(Process *p);
// A child whose object was destroyed before it ended: reaped later.
void orphan(Child c);
// Reap what has ended (orphans; and live objects when `all`).
void reap_ended(bool all);
// The handles of the children still running (reaps those that have ended).
std::vector<mpx_process *> active_children();

// ---- identity of the current process ------------------------------------------------

struct Identity {
  std::string name;
  std::string ident;
  bool daemon = false;
  int64_t parent_pid = 0;
  std::vector<uint8_t> authkey;
  std::vector<int> handed_fds;
};

// A copy of the current identity (loaded from the environment on first use).
Identity identity();
void set_identity(Identity id);
void set_name(std::string name);
Status set_authkey(const uint8_t *key, size_t len);
// Next child number and the child's ident: "N" or "<ours>:N".
std::string next_child_ident();
// Environment entries that carry `id` to an exec'd child.
std::vector<std::string> identity_env(const Identity &id);

// Become a freshly started child: identity, and a daemon's tie to its parent (exits at
// once if the parent is already gone).
void become_child(Identity id);

// ---- start methods ------------------------------------------------------------------

// fork(); in the child run body (never returns). A daemon started from a thread other
// than the main one is forked from a long-lived library thread, because Linux's
// parent-death signal fires when the forking *thread* exits.
pid_t fork_child(bool daemon, const std::function<void()> &body, int *err);
int open_pidfd(pid_t pid);
// The pidfd of a child just started (an always-readable stand-in if it is already reaped).
Status watch_child(pid_t pid, int *pidfd);
// waitid on a pidfd without blocking: 1 and *code when ended, 0 when running, <0 error.
int reap_pidfd(int pidfd, int *code);
int decode_status(int kind, int status);

// Entry points registered with mpx_register.
Status register_entry(const char *name, mpx_entry_fn fn);
mpx_entry_fn find_entry(const std::string &name);

// The forkserver.
Status forkserver_start();
Status forkserver_stop();
pid_t forkserver_pid();
struct ForkserverRequest {
  const Spec *spec;
  Identity child_id;
};
Status forkserver_fork(const ForkserverRequest &req, Child *out);

}  // namespace mpx::proc
