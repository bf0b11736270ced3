/*
 * mpx/pool.h - process pools: N worker processes run tasks (a function and a byte payload)
 * and send back bytes; a worker that dies is replaced and only the task it held fails.
 *
 * Tasks travel through a queue in shared memory and results through another; the parent
 * runs three library threads per pool (a feeder, a result collector and a supervisor that
 * watches the workers, enforces task timeouts and replaces workers). Every task ends exactly
 * once: with its result, with its own error (MPX_ETASK), with MPX_EWORKERDIED when its worker
 * died (the message says which worker and how: exit status or signal), with MPX_ETIMEDOUT
 * when it outran its timeout (its worker is killed and replaced), or with MPX_ECANCELED when
 * it was cancelled or the pool terminated before it ended. Waiting on results never hangs
 * because of a dead worker.
 *
 * Policy on worker death: the pool replaces the worker and carries on; it never turns
 * broken. Workers are daemons: they die with the pool's process.
 */
#ifndef MPX_POOL_H
#define MPX_POOL_H

#include "mpx/common.h"
#include "mpx/process.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mpx_pool mpx_pool;
typedef struct mpx_job mpx_job;
typedef struct mpx_task_out mpx_task_out;
typedef struct mpx_worker mpx_worker;

/* ---- Tasks, as a worker runs them ---------------------------------------------------- */

/**
 * A task function, run in a worker: arg is the task's payload (valid until it returns). It
 * writes its result with mpx_task_return or mpx_task_reserve (none: an empty result) and
 * returns 0; any other value fails the task with MPX_ETASK, that value as the task's code
 * and the message given to mpx_task_error (if any).
 */
typedef int (*mpx_task_fn)(const void *arg, size_t size, mpx_task_out *out);

/** Set the task's result to a copy of (data, size). */
MPX_API int mpx_task_return(mpx_task_out *out, const void *data, size_t size);

/** Set the task's result to size bytes the function fills in at *buf (valid until it returns). */
MPX_API int mpx_task_reserve(mpx_task_out *out, size_t size, void **buf);

/** Describe the task's failure (for a nonzero return); the message is copied. */
MPX_API int mpx_task_error(mpx_task_out *out, const char *message);

/**
 * Name a task function, so that tasks can name it (workers started by forkserver or spawn,
 * or in another language, know functions by name only). Register before the pool starts
 * its workers (and, for forkserver workers, before the forkserver starts). MPX_EEXIST if
 * the name is taken by another function.
 */
MPX_API int mpx_register_task(const char *name, mpx_task_fn fn);

/* ---- The pool ----------------------------------------------------------------------- */

/* mpx_pool_options.flags */
#define MPX_POOL_EXTERNAL 1u /**< the pool starts no workers: the caller does (see mpx_pool_add_worker) */

typedef struct mpx_pool_options {
  uint32_t size;            /**< sizeof(mpx_pool_options) */
  int32_t workers;          /**< number of workers; 0: mpx_cpu_count(); negative: MPX_EINVAL */
  uint32_t method;          /**< MPX_START_*; DEFAULT: fork, or spawn when `file` is set */
  uint32_t flags;           /**< MPX_POOL_* */
  int64_t maxtasksperchild; /**< a worker retires after this many tasks; 0: never; negative: MPX_EINVAL */
  uint64_t max_worker_memory; /**< bytes: a worker whose resident size exceeds it retires after its task; 0: no cap */
  int64_t task_timeout_ms;  /**< default per-task timeout; 0 or negative: none */
  /* run once in each worker before its first task */
  mpx_entry_fn initializer;      /**< fork only: by pointer */
  const char *initializer_name;  /**< an entry registered with mpx_register (any method) */
  const void *initargs;          /**< payload for the initializer (copied) */
  size_t initargs_size;
  const char *name;          /**< worker name prefix; NULL: "PoolWorker" (workers are "PoolWorker-1", ...) */
  /* spawn: the worker program, which calls mpx_worker_main() */
  const char *file;
  const char *const *argv;   /**< NULL-terminated; NULL: { file, NULL } */
  const char *const *env;    /**< as mpx_process_options.env / env_mode */
  uint32_t env_mode;
  uint32_t reserved;
  uint64_t queue_capacity;   /**< bytes of the task ring and of the result ring; 0: 1 MiB */
} mpx_pool_options;

/** Fill opts with defaults. struct_size is sizeof(mpx_pool_options). */
MPX_API int mpx_pool_options_init(mpx_pool_options *opts, size_t struct_size);

/**
 * Create a pool and start its workers (unless MPX_POOL_EXTERNAL). When a worker fails to
 * start, the ones already started are stopped and reaped, and the error is returned.
 */
MPX_API int mpx_pool_create(mpx_pool **out, const mpx_pool_options *opts);

/** No more tasks may be submitted (MPX_ECLOSED); workers exit once every task has ended. */
MPX_API int mpx_pool_close(mpx_pool *pool);

/**
 * Stop now: tasks not yet ended fail with MPX_ECANCELED, workers are killed (SIGTERM, then
 * SIGKILL after 200 ms). Returns once every worker is reaped; MPX_POOL_EXTERNAL workers are
 * signalled the same way, through pidfds, and waited for (up to 1 s more) but not reaped:
 * their starter reaps them and reports them with mpx_pool_worker_exited.
 */
MPX_API int mpx_pool_terminate(mpx_pool *pool);

/**
 * Wait for the workers to exit after close or terminate; MPX_EINVAL before either (as
 * Python's ValueError), MPX_ETIMEDOUT when they have not all exited in time.
 */
MPX_API int mpx_pool_join(mpx_pool *pool, int64_t timeout_ms);

/** Terminate (if still running), join and free. Outstanding jobs end with MPX_ECANCELED. */
MPX_API int mpx_pool_destroy(mpx_pool *pool);

/** The number of workers the pool keeps. */
MPX_API int mpx_pool_size(mpx_pool *pool, size_t *workers);

/** The pids of the live workers; *count in = capacity, out = number (MPX_ENOBUFS: needed). */
MPX_API int mpx_pool_worker_pids(mpx_pool *pool, int64_t *pids, size_t *count);

typedef struct mpx_pool_stats {
  uint32_t size;             /**< sizeof(mpx_pool_stats) */
  uint32_t reserved;
  uint64_t tasks_submitted;  /**< items (a map's items each count one) */
  uint64_t tasks_succeeded;
  uint64_t tasks_failed;     /**< every failure: MPX_ETASK, EWORKERDIED, ETIMEDOUT, ECANCELED */
  uint64_t workers_started;
  uint64_t workers_died;     /**< ended while running a task, or unexpectedly */
  uint64_t workers_retired;  /**< maxtasksperchild or max_worker_memory */
} mpx_pool_stats;

/**
 * Copy the pool's counters into *stats (set stats->size = sizeof(mpx_pool_stats) first).
 * Task counts are items: a map of n items counts n, whatever its chunks.
 */
MPX_API int mpx_pool_stats_get(mpx_pool *pool, mpx_pool_stats *stats);

/* ---- Jobs: apply, map, imap --------------------------------------------------------- */

typedef void (*mpx_job_callback)(void *ctx, mpx_job *job);

typedef struct mpx_task {
  uint32_t size;          /**< sizeof(mpx_task) */
  uint32_t reserved;
  mpx_task_fn fn;         /**< fork workers: the function by pointer ... */
  const char *name;       /**< ... or its mpx_register_task name (any workers) */
  const void *arg;        /**< the payload (copied) */
  size_t arg_size;
  int64_t timeout_ms;     /**< 0: the pool's task_timeout_ms; negative: none */
  mpx_job_callback callback; /**< called once the job has ended, on a pool thread (must not block) */
  void *ctx;
} mpx_task;

/** Fill task with defaults. struct_size is sizeof(mpx_task). */
MPX_API int mpx_task_init(mpx_task *task, size_t struct_size);

/* mpx_map.flags */
#define MPX_MAP_ORDERED 1u /**< mpx_job_next gives items in index order (imap); otherwise as they end */

typedef struct mpx_map {
  uint32_t size;          /**< sizeof(mpx_map) */
  uint32_t flags;         /**< MPX_MAP_* */
  mpx_task_fn fn;         /**< as mpx_task */
  const char *name;
  /* the items: count pointers and sizes, or count packed items of item_size bytes */
  const void *const *items;
  const size_t *sizes;
  const void *data;
  size_t item_size;
  size_t count;
  size_t chunksize;       /**< items per task; 0: automatic (Python's: count / (4 x workers), rounded up) */
  int64_t timeout_ms;     /**< per task (per chunk), as mpx_task */
  mpx_job_callback callback;
  void *ctx;
} mpx_map;

/** Fill map with defaults. struct_size is sizeof(mpx_map). */
MPX_API int mpx_map_init(mpx_map *map, size_t struct_size);

/** Run one task (Python's apply_async). Returns at once; *out is the job (one item). */
MPX_API int mpx_pool_apply_async(mpx_pool *pool, const mpx_task *task, mpx_job **out);

/**
 * Run one task and wait for it (Python's apply). On success *result is its result
 * (mpx_free it); otherwise the task's error code, with its message in mpx_last_error_message.
 */
MPX_API int mpx_pool_apply(mpx_pool *pool, const mpx_task *task, void **result, size_t *size);

/**
 * Run fn over every item (Python's map_async / imap / imap_unordered). Returns at once.
 * Items travel in chunks that the library's own worker loop unpacks: a pool of
 * MPX_POOL_EXTERNAL workers takes single tasks only (MPX_EINVAL here; see mpx_pool_submit).
 */
MPX_API int mpx_pool_map(mpx_pool *pool, const mpx_map *map, mpx_job **out);

/** Wait until every item of the job has ended: 0, or MPX_ETIMEDOUT. */
MPX_API int mpx_job_wait(mpx_job *job, int64_t timeout_ms);

/** *ready = 1 once every item has ended. */
MPX_API int mpx_job_ready(mpx_job *job, int *ready);

/** *ok = 1 when every item succeeded; MPX_EAGAIN while not ready. */
MPX_API int mpx_job_successful(mpx_job *job, int *ok);

/** The number of items. */
MPX_API int mpx_job_count(mpx_job *job, size_t *count);

/**
 * Item index's result: 0 with (*data, *size) pointing into the job (valid until it is
 * destroyed); MPX_EAGAIN while it has not ended; or the item's error (MPX_ETASK,
 * MPX_EWORKERDIED, MPX_ETIMEDOUT, MPX_ECANCELED) with its message as the last error message.
 * MPX_ERANGE for an index past the end.
 */
MPX_API int mpx_job_result(mpx_job *job, size_t index, const void **data, size_t *size);

/**
 * Item index's failure: *code is its error (0 if it succeeded), *task_code the value its
 * task function returned (MPX_ETASK), or the worker's exit code, Python style (-9 when
 * killed by SIGKILL; MPX_EWORKERDIED and MPX_ETIMEDOUT). The message through (buf, *len)
 * as for mpx_segment_name; buf may be NULL with *len 0 to skip it.
 */
MPX_API int mpx_job_error(mpx_job *job, size_t index, int *code, int *task_code, char *buf, size_t *len);

/**
 * The next ended item (imap): in index order with MPX_MAP_ORDERED, else in the order they
 * end. MPX_EOF once every item has been given; MPX_ETIMEDOUT.
 */
MPX_API int mpx_job_next(mpx_job *job, int64_t timeout_ms, size_t *index);

typedef struct mpx_progress {
  uint32_t size;       /**< sizeof(mpx_progress) */
  uint32_t reserved;
  uint64_t total;      /**< items */
  uint64_t done;       /**< items ended (succeeded or failed) */
  uint64_t failed;
  double elapsed_s;    /**< since the job was submitted */
  double rate;         /**< items per second so far */
  double eta_s;        /**< estimated seconds left; negative when unknown */
} mpx_progress;

/** How far the job has got (for a progress bar). */
MPX_API int mpx_job_progress(mpx_job *job, mpx_progress *progress);

/**
 * Cancel the items no worker has started: they end with MPX_ECANCELED, unrun. Those still in
 * the parent's backlog end at once, and *cancelled (may be NULL) counts them; those already in
 * the task queue end as a worker takes them.
 */
MPX_API int mpx_job_cancel(mpx_job *job, size_t *cancelled);

/** Free the job. Items still running go on; their results are dropped. */
MPX_API int mpx_job_destroy(mpx_job *job);

/* ---- For bindings: tasks in batches, results in batches ------------------------------ */

/**
 * Submit tasks whose results come back through mpx_pool_collect (not a job). records holds
 * `count` records back to back, each an mpx_record_header then `size` payload bytes, padded
 * to a multiple of 8. Every task names `name` (any string a worker understands) and has
 * timeout_ms (as mpx_task). Returns once they are queued.
 */
MPX_API int mpx_pool_submit(mpx_pool *pool, const char *name, const void *records, size_t bytes, size_t count,
                            int64_t timeout_ms);

typedef struct mpx_record_header {
  uint64_t tag;      /**< the submitter's, given back with the result */
  uint64_t size;     /**< payload bytes that follow */
  int32_t status;    /**< results: 0, or the MPX_E* the task ended with */
  int32_t code;      /**< results: the task's code or the worker's exit code (see mpx_job_error) */
  uint32_t message;  /**< results: bytes of message after the payload (no NUL); submit: 0 */
  uint32_t reserved;
} mpx_record_header;

/**
 * Wait up to timeout_ms for results of mpx_pool_submit tasks and copy as many as fit into
 * buf as records (header, payload, message, padded to 8). *count = records, *used = bytes.
 * MPX_ENOBUFS (*used = bytes needed) when not even the first fits; MPX_ETIMEDOUT when none
 * came; MPX_ECLOSED after terminate or destroy.
 */
MPX_API int mpx_pool_collect(mpx_pool *pool, void *buf, size_t cap, size_t *used, size_t *count,
                             int64_t timeout_ms);

/**
 * MPX_POOL_EXTERNAL: the caller starts the workers (e.g. a binding, with its own start
 * methods) and tells the pool about them. A worker process calls mpx_worker_attach with
 * mpx_pool_token and serves tasks; the caller watches it and, once it has ended and is
 * reaped, reports its exit code (Python style: -N for signal N) with mpx_pool_worker_exited.
 * The pool then fails the task it held, if any, with MPX_EWORKERDIED (or MPX_ETIMEDOUT when
 * the pool killed it for a task timeout).
 */
MPX_API int mpx_pool_add_worker(mpx_pool *pool, int64_t pid);

/** MPX_POOL_EXTERNAL: worker pid has ended with exitcode (see mpx_pool_add_worker). */
MPX_API int mpx_pool_worker_exited(mpx_pool *pool, int64_t pid, int exitcode);

/**
 * MPX_POOL_EXTERNAL: *wanted = the number of workers to start now (to replace those that
 * ended or retired). MPX_ECLOSED once the pool has finished (closed with every task ended, or
 * terminated): start none, and stop watching once the last worker has exited.
 */
MPX_API int mpx_pool_wanted(mpx_pool *pool, size_t *wanted);

/** The token a worker attaches with; *len as for mpx_segment_name. */
MPX_API int mpx_pool_token(mpx_pool *pool, char *buf, size_t *len);

/* ---- The worker side (for workers written in other languages) ------------------------ */

/** Attach to the pool a token names (NULL: the environment's MPX_POOL_TOKEN). */
MPX_API int mpx_worker_attach(const char *token, mpx_worker **out);

typedef struct mpx_worker_task {
  uint32_t size;        /**< sizeof(mpx_worker_task) */
  uint32_t flags;       /**< internal */
  const char *name;     /**< the task's function name ("" for a task by pointer) */
  const void *arg;      /**< the payload: valid until the next mpx_worker_next */
  size_t arg_size;
} mpx_worker_task;

/**
 * Take the next task. MPX_ECLOSED when the worker should exit (the pool closed and drained,
 * terminated, or this worker retired); MPX_ETIMEDOUT.
 */
MPX_API int mpx_worker_next(mpx_worker *w, int64_t timeout_ms, mpx_worker_task *task);

/**
 * Finish the task mpx_worker_next gave: status 0 with the result bytes, or a nonzero
 * status (the task's code: it fails with MPX_ETASK) with data as its error payload and
 * message as its text.
 */
MPX_API int mpx_worker_reply(mpx_worker *w, int status, const void *data, size_t size, const char *message);

/** Detach (the worker then exits). */
MPX_API int mpx_worker_detach(mpx_worker *w);

/**
 * The whole worker loop for a program started as a spawn worker: attach (MPX_POOL_TOKEN),
 * run the initializer, run tasks by registered name until the pool lets it go. Returns the
 * exit status to use (0).
 */
MPX_API int mpx_worker_main(void);

#ifdef __cplusplus
}
#endif

#endif /* MPX_POOL_H */
