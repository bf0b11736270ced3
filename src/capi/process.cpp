// C entry points of mpx/process.h.
#include "mpx/process.h"

#include <uv.h>

#include <cstring>

#include "capi/util.hpp"
#include "platform/process.hpp"
#include "proc/process.hpp"

using namespace mpx;
using namespace mpx::capi;
using proc::Process;

namespace {

int make_process(mpx_process **out, const mpx_process_options *opts, pid_t adopt_pid) {
  if (Status s = check_options(opts, "mpx_process_options"); s != MPX_OK) {
    if (out) *out = nullptr;
    return s;
  }
  if (!out) return fail(MPX_EINVAL, "out is NULL");
  *out = nullptr;
  return guarded([&]() -> int {
    auto *p = new Process();
    if (Status s = adopt_pid ? p->init_adopted(opts) : p->init(opts); s != MPX_OK) {
      delete p;
      return s;
    }
    void *h;
    if (Status st = insert_handle(p, &h); st != MPX_OK) return st;
    p->handle = h;  // before adopt registers it: active_children lists it by this handle
    if (adopt_pid)
      if (Status s = p->adopt(adopt_pid); s != MPX_OK) {
        destroy_handle(h, HandleType::process);
        return s;
      }
    *out = static_cast<mpx_process *>(h);
    return MPX_OK;
  });
}

}  // namespace

extern "C" {

MPX_API int mpx_process_options_init(mpx_process_options *opts, size_t struct_size) {
  return init_options(opts, struct_size, "mpx_process_options");
}

MPX_API int mpx_process_create(mpx_process **out, const mpx_process_options *opts) {
  if (!opts) {
    if (out) *out = nullptr;
    return fail(MPX_EINVAL, "opts is NULL: a process needs a target");
  }
  return make_process(out, opts, 0);
}

MPX_API int mpx_process_adopt(mpx_process **out, int64_t pid, const mpx_process_options *opts) {
  if (pid <= 0 || pid > INT32_MAX) {
    if (out) *out = nullptr;
    return fail(MPX_EINVAL, "pid {} is not a process id", pid);
  }
  return make_process(out, opts, pid_t(pid));
}

MPX_API int mpx_process_start(mpx_process *proc) {
  MPX_PIN(p, Process, proc, HandleType::process);
  return guarded([&] { return p->start(); });
}

MPX_API int mpx_process_join(mpx_process *proc, int64_t timeout_ms) {
  MPX_PIN(p, Process, proc, HandleType::process);
  return p->join(timeout_ms);
}

MPX_API int mpx_process_is_alive(mpx_process *proc, int *alive) {
  MPX_PIN(p, Process, proc, HandleType::process);
  MPX_REQUIRE(alive, "alive is NULL");
  *alive = 0;
  if (!p->started()) return MPX_OK;
  bool ended;
  if (Status s = p->poll(&ended); s != MPX_OK) return s;
  *alive = !ended;
  return MPX_OK;
}

MPX_API int mpx_process_exitcode(mpx_process *proc, int *exitcode) {
  MPX_PIN(p, Process, proc, HandleType::process);
  MPX_REQUIRE(exitcode, "exitcode is NULL");
  return p->exitcode(exitcode);
}

MPX_API int mpx_process_signal(mpx_process *proc, int sig) {
  MPX_PIN(p, Process, proc, HandleType::process);
  return p->signal(sig);
}

MPX_API int mpx_process_terminate(mpx_process *proc) { return mpx_process_signal(proc, SIGTERM); }
MPX_API int mpx_process_kill(mpx_process *proc) { return mpx_process_signal(proc, SIGKILL); }
MPX_API int mpx_process_interrupt(mpx_process *proc) { return mpx_process_signal(proc, SIGINT); }

MPX_API int mpx_process_pid(mpx_process *proc, int64_t *pid) {
  MPX_PIN(p, Process, proc, HandleType::process);
  MPX_REQUIRE(pid, "pid is NULL");
  *pid = p->pid();
  return MPX_OK;
}

MPX_API int mpx_process_name(mpx_process *proc, char *buf, size_t *len) {
  MPX_PIN(p, Process, proc, HandleType::process);
  return guarded([&] { return copy_out(p->name(), buf, len); });
}

MPX_API int mpx_process_set_name(mpx_process *proc, const char *name) {
  MPX_PIN(p, Process, proc, HandleType::process);
  MPX_REQUIRE(name, "name is NULL");
  return guarded([&] {
    p->set_name(name);
    return MPX_OK;
  });
}

MPX_API int mpx_process_daemon(mpx_process *proc, int *daemon) {
  MPX_PIN(p, Process, proc, HandleType::process);
  MPX_REQUIRE(daemon, "daemon is NULL");
  *daemon = p->daemon();
  return MPX_OK;
}

MPX_API int mpx_process_set_daemon(mpx_process *proc, int daemon) {
  MPX_PIN(p, Process, proc, HandleType::process);
  return p->set_daemon(daemon != 0);
}

MPX_API int mpx_process_sentinel(mpx_process *proc, int *fd) {
  MPX_PIN(p, Process, proc, HandleType::process);
  MPX_REQUIRE(fd, "fd is NULL");
  return p->sentinel(fd);
}

MPX_API int mpx_process_stdio(mpx_process *proc, int stream, int *fd) {
  MPX_PIN(p, Process, proc, HandleType::process);
  MPX_REQUIRE(fd, "fd is NULL");
  return p->stdio_fd(stream, fd);
}

MPX_API int mpx_process_close_stdio(mpx_process *proc, int stream) {
  MPX_PIN(p, Process, proc, HandleType::process);
  return p->close_stdio(stream);
}

MPX_API int mpx_process_close(mpx_process *proc) {
  {
    MPX_PIN(p, Process, proc, HandleType::process);
    if (p->started()) {
      bool ended;
      if (Status s = p->poll(&ended); s != MPX_OK) return s;
      if (!ended) return fail(MPX_EAGAIN, "cannot close a process while it is still running; join it first");
    }
  }
  return destroy_handle(proc, HandleType::process);
}

MPX_API int mpx_process_destroy(mpx_process *proc) { return destroy_handle(proc, HandleType::process); }

MPX_API int mpx_process_after_fork(const mpx_process_options *opts, int64_t parent_pid) {
  if (Status s = check_options(opts, "mpx_process_options"); s != MPX_OK) return s;
  if (parent_pid <= 0 || parent_pid > INT32_MAX) return fail(MPX_EINVAL, "parent_pid {} is not a process id", parent_pid);
  return guarded([&] {
    proc::Identity id = proc::identity();
    id.parent_pid = parent_pid;
    id.daemon = opts && opts->daemon;
    if (opts && opts->name) id.name = opts->name;
    id.handed_fds.clear();
    if (opts && opts->fds) id.handed_fds.assign(opts->fds, opts->fds + opts->fd_count);
    id.ident = id.name.rfind("Process-", 0) == 0 ? id.name.substr(8) : std::string();
    proc::become_child(std::move(id));
    return MPX_OK;
  });
}

MPX_API int mpx_register(const char *name, mpx_entry_fn fn) {
  return guarded([&] { return proc::register_entry(name, fn); });
}

MPX_API int mpx_forkserver_start(void) {
  if (proc::identity().daemon) return fail(MPX_EPERM, "daemonic processes are not allowed to have children");
  return guarded([] { return proc::forkserver_start(); });
}

MPX_API int mpx_forkserver_stop(void) { return proc::forkserver_stop(); }

MPX_API int mpx_forkserver_pid(int64_t *pid) {
  MPX_REQUIRE(pid, "pid is NULL");
  *pid = proc::forkserver_pid();
  return MPX_OK;
}

MPX_API int mpx_active_children(mpx_process **out, size_t *count) {
  return guarded([&] { return copy_out_items(proc::active_children(), out, count, "handles"); });
}

MPX_API int mpx_cpu_count(int *count) {
  MPX_REQUIRE(count, "count is NULL");
  *count = int(uv_available_parallelism());
  return MPX_OK;
}

MPX_API int mpx_current_name(char *buf, size_t *len) {
  return guarded([&] { return copy_out(proc::identity().name, buf, len); });
}

MPX_API int mpx_set_current_name(const char *name) {
  MPX_REQUIRE(name, "name is NULL");
  return guarded([&] {
    proc::set_name(name);
    return MPX_OK;
  });
}

MPX_API int mpx_current_daemon(int *daemon) {
  MPX_REQUIRE(daemon, "daemon is NULL");
  return guarded([&] {
    *daemon = proc::identity().daemon;
    return MPX_OK;
  });
}

MPX_API int mpx_parent_pid(int64_t *pid) {
  MPX_REQUIRE(pid, "pid is NULL");
  return guarded([&] {
    *pid = proc::identity().parent_pid;
    return MPX_OK;
  });
}

MPX_API int mpx_handed_fds(int *fds, size_t *count) {
  return guarded([&] { return copy_out_items(proc::identity().handed_fds, fds, count, "descriptors"); });
}

MPX_API int mpx_authkey(uint8_t *buf, size_t *len) {
  return guarded([&] { return copy_out_items(proc::identity().authkey, buf, len, "bytes"); });
}

MPX_API int mpx_set_authkey(const uint8_t *key, size_t len) {
  return guarded([&] { return proc::set_authkey(key, len); });
}

}  // extern "C"
