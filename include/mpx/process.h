/*
 * mpx/process.h - processes: run a function in a forked child (fork), in a child of a
 * single-threaded zygote (forkserver), or exec a program (spawn); then join, signal and
 * inspect it with Python's multiprocessing semantics.
 *
 * Exit codes follow Python: 0 when the function returns, the exit() status, minus the
 * signal number when killed. Every child is reaped by its joiner or by the library; the
 * library waits only on the pids it started (never waitpid(-1)) and installs no SIGCHLD
 * handler. A process object is usable from any thread of the process that created it.
 */
#ifndef MPX_PROCESS_H
#define MPX_PROCESS_H

#include "mpx/common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mpx_process mpx_process;

/** A target for the fork method: runs in the child with the parent's memory copied. */
typedef void (*mpx_process_fn)(void *arg);

/** A named entry point: receives the byte payload the parent gave (valid until it returns). */
typedef void (*mpx_entry_fn)(const void *payload, size_t size);

/* mpx_process_options.method */
#define MPX_START_DEFAULT 0    /**< chosen by the target: fn -> fork, entry -> forkserver, file -> spawn */
#define MPX_START_FORK 1       /**< fork() the caller and run fn or entry in the child */
#define MPX_START_FORKSERVER 2 /**< ask the zygote to fork a child that runs entry */
#define MPX_START_SPAWN 3      /**< exec the program `file` (posix_spawn) */

/* mpx_stdio.mode: what a spawned child's stdin, stdout or stderr is */
#define MPX_STDIO_INHERIT 0 /**< the parent's own stream */
#define MPX_STDIO_PIPE 1    /**< a pipe to the parent: mpx_process_stdio gives the parent's end */
#define MPX_STDIO_NULL 2    /**< /dev/null */
#define MPX_STDIO_FILE 3    /**< the file `path` (stdin: read; stdout/stderr: created or truncated, 0644) */
#define MPX_STDIO_FD 4      /**< a duplicate of the parent's descriptor `fd` */

typedef struct mpx_stdio {
  uint32_t mode;    /**< MPX_STDIO_* */
  int fd;           /**< MPX_STDIO_FD: the parent's descriptor */
  const char *path; /**< MPX_STDIO_FILE: the file */
} mpx_stdio;

/* mpx_process_options.env_mode */
#define MPX_ENV_INHERIT 0 /**< the parent's environment (env is ignored) */
#define MPX_ENV_REPLACE 1 /**< exactly env */
#define MPX_ENV_EXTEND 2  /**< the parent's environment, with env's NAME=VALUE entries added or replaced */

typedef struct mpx_process_options {
  uint32_t size;   /**< sizeof(mpx_process_options) */
  uint32_t method; /**< MPX_START_* */
  const char *name; /**< NULL: "Process-N" (N counts this process's children; nested as "Process-1:2") */
  int daemon;       /**< 1: killed when this process dies (even by SIGKILL); may not start children */
  /* fork target: either fn(arg), or entry/entry_fn with the payload */
  mpx_process_fn fn; /**< fork only */
  void *arg;         /**< passed to fn */
  const char *entry; /**< a name given to mpx_register, or an exported symbol (dlsym) */
  mpx_entry_fn entry_fn; /**< fork only: an entry by pointer instead of by name */
  const void *payload;   /**< bytes for the entry, copied at start */
  size_t payload_size;
  /* descriptors handed to the child: fork - inherited under the same numbers; spawn - they
     become 3, 4, ... in this order, and every other descriptor above 2 is closed; forkserver -
     sent over a socket, under new numbers. In every case mpx_handed_fds lists them in the
     child. */
  const int *fds;
  size_t fd_count;
  /* spawn. The child's environment also carries its mpx identity (MPX_PARENT_PID,
     MPX_PROCESS_NAME, MPX_PROCESS_IDENT, MPX_DAEMON, MPX_HANDED_FDS, and MPX_AUTHKEY in
     hex), which mpx_current_name, mpx_parent_pid, mpx_current_daemon, mpx_handed_fds and
     mpx_authkey read in an mpx-aware child. A process whose parent is another living
     process than MPX_PARENT_PID (a program the child runs in turn) ignores all but the
     authkey. */
  const char *file;          /**< the program; searched in PATH when it has no '/' */
  const char *const *argv;   /**< NULL-terminated; NULL: { file, NULL } */
  const char *const *env;    /**< NULL-terminated "NAME=VALUE" list, as env_mode says */
  uint32_t env_mode;         /**< MPX_ENV_* */
  const char *cwd;           /**< NULL: the parent's */
  mpx_stdio stdio[3];        /**< stdin, stdout, stderr (spawn; fork and forkserver inherit) */
} mpx_process_options;

/** Fill opts with defaults. struct_size is sizeof(mpx_process_options). */
MPX_API int mpx_process_options_init(mpx_process_options *opts, size_t struct_size);

/**
 * Create a process object (not started). Strings, argv, env, the payload and the fd list
 * are copied. MPX_EINVAL when the target does not fit the method (no target, fn with
 * forkserver or spawn, file with fork).
 */
MPX_API int mpx_process_create(mpx_process **out, const mpx_process_options *opts);

/**
 * Start the child. Returns once it exists: its pid is known and its sentinel is valid.
 * MPX_EINVAL if already started; MPX_EPERM in a daemon process; MPX_ENOENT for an unknown
 * entry or a missing program, MPX_EACCES for one that is not executable (exec failures are
 * reported here, with errno in the message, never as a child exiting 127).
 */
MPX_API int mpx_process_start(mpx_process *proc);

/**
 * Wait until the child has ended and is reaped. 0 when it has (its exit code is then
 * known); MPX_ETIMEDOUT otherwise (timeout 0 only checks); MPX_EINVAL if not started;
 * MPX_ECLOSED if the handle is destroyed meanwhile.
 */
MPX_API int mpx_process_join(mpx_process *proc, int64_t timeout_ms);

/** *alive = 1 while started and not ended (reaps the child when it has ended). */
MPX_API int mpx_process_is_alive(mpx_process *proc, int *alive);

/**
 * The exit code: 0 when the function returned, the exit() status, -N when killed by signal
 * N, 1 for a binding's uncaught exception. MPX_EAGAIN while not started or still running.
 */
MPX_API int mpx_process_exitcode(mpx_process *proc, int *exitcode);

/** Send signal sig. A child that has already ended is left alone (returns 0). */
MPX_API int mpx_process_signal(mpx_process *proc, int sig);

/** SIGTERM (Python's terminate). */
MPX_API int mpx_process_terminate(mpx_process *proc);

/** SIGKILL (Python's kill). */
MPX_API int mpx_process_kill(mpx_process *proc);

/** SIGINT (Python's interrupt). */
MPX_API int mpx_process_interrupt(mpx_process *proc);

/** The child's pid; 0 before start. */
MPX_API int mpx_process_pid(mpx_process *proc, int64_t *pid);

/** The process name; *len in/out as for mpx_segment_name. */
MPX_API int mpx_process_name(mpx_process *proc, char *buf, size_t *len);

/** Rename (any time; the child keeps the name it started with). */
MPX_API int mpx_process_set_name(mpx_process *proc, const char *name);

/** *daemon = the daemon flag. */
MPX_API int mpx_process_daemon(mpx_process *proc, int *daemon);

/** Set the daemon flag; MPX_EINVAL after start. */
MPX_API int mpx_process_set_daemon(mpx_process *proc, int daemon);

/**
 * A descriptor that becomes readable when the child has ended (a pidfd, or for a forkserver
 * child the channel its exit status arrives on). Owned by the process object: poll it, do
 * not read or close it. MPX_EINVAL before start.
 */
MPX_API int mpx_process_sentinel(mpx_process *proc, int *fd);

/**
 * The parent's end of a MPX_STDIO_PIPE stream (0 stdin: write to it; 1, 2: read from it).
 * Owned by the process object; mpx_process_close_stdio closes it early (to send EOF).
 */
MPX_API int mpx_process_stdio(mpx_process *proc, int stream, int *fd);

/** Close the parent's end of a stdio pipe (e.g. stdin, so that the child sees EOF). */
MPX_API int mpx_process_close_stdio(mpx_process *proc, int stream);

/** Python's close(): free the object; MPX_EAGAIN while the child is still running. */
MPX_API int mpx_process_close(mpx_process *proc);

/**
 * Free the object whatever the child's state. A running child is not signalled: a library
 * thread (running only while there are such children) reaps it when it ends. Threads
 * blocked in join return MPX_ECLOSED.
 */
MPX_API int mpx_process_destroy(mpx_process *proc);

/**
 * Adopt a child this process created itself with fork() (as Python's os.fork): the object
 * is started, and joins, signals and reaps it like any other. opts may be NULL.
 */
MPX_API int mpx_process_adopt(mpx_process **out, int64_t pid, const mpx_process_options *opts);

/**
 * In a child created by fork() outside mpx (as Python's os.fork), take the identity opts
 * gives (name, daemon) with parent_pid as parent. A daemon is tied to its parent's life:
 * if the parent has already died, the child exits at once with status 1. Linux ties it to
 * the *thread* that called fork(): fork daemons from the main thread or from a thread that
 * lives as long as the process (mpx's own start methods do so).
 */
MPX_API int mpx_process_after_fork(const mpx_process_options *opts, int64_t parent_pid);

/* ---- Entry points and the forkserver ------------------------------------------------ */

/**
 * Register fn under name, for the forkserver (and fork) methods. Names registered before
 * the forkserver starts are known to it; later ones reach it only as exported symbols.
 * MPX_EEXIST if the name is taken by another function.
 */
MPX_API int mpx_register(const char *name, mpx_entry_fn fn);

/**
 * Start the forkserver now (otherwise it starts on first use). It is a fork of the calling
 * process, so start it before the program starts threads or loads what children should
 * not inherit. 0 if it is already running.
 */
MPX_API int mpx_forkserver_start(void);

/**
 * Stop the forkserver (it is started again on next use). Its daemon children are killed;
 * the others go on, but their exit codes are lost (they read as 255).
 */
MPX_API int mpx_forkserver_stop(void);

/** *pid = the forkserver's pid, 0 when it is not running. */
MPX_API int mpx_forkserver_pid(int64_t *pid);

/* ---- The current process ------------------------------------------------------------ */

/**
 * Live children started by this process, as handles (borrowed: the caller's own
 * handles). Reaps those that have ended. *count in = capacity of out, out = number
 * written; MPX_ENOBUFS with *count = the number needed when out is too small.
 */
MPX_API int mpx_active_children(mpx_process **out, size_t *count);

/** The number of CPUs this process may use (libuv's available parallelism). */
MPX_API int mpx_cpu_count(int *count);

/** The current process's name ("MainProcess" unless it was started by mpx). */
MPX_API int mpx_current_name(char *buf, size_t *len);

/** Rename the current process. */
MPX_API int mpx_set_current_name(const char *name);

/** *daemon = 1 if the current process was started as a daemon. */
MPX_API int mpx_current_daemon(int *daemon);

/** The pid of the process that started this one through mpx; 0 if none. */
MPX_API int mpx_parent_pid(int64_t *pid);

/**
 * The descriptors the parent handed this process (mpx_process_options.fds), in order.
 * *count in = capacity of fds, out = number written; MPX_ENOBUFS with the number needed.
 */
MPX_API int mpx_handed_fds(int *fds, size_t *count);

/** Length of the process-wide authkey. */
#define MPX_AUTHKEY_SIZE 32

/**
 * Copy the process-wide authkey (32 random bytes, or what mpx_set_authkey set; children
 * of every start method inherit it). *len in = capacity, out = length.
 */
MPX_API int mpx_authkey(uint8_t *buf, size_t *len);

/** Replace the process-wide authkey (1 to 256 bytes). */
MPX_API int mpx_set_authkey(const uint8_t *key, size_t len);

#ifdef __cplusplus
}
#endif

#endif /* MPX_PROCESS_H */
