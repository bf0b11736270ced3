/*
 * mpx/sync.h - process-shared synchronisation: Lock, RLock, Semaphore, BoundedSemaphore,
 * Event, Condition, Barrier.
 *
 * Every object lives in shared memory. Objects created before fork() are usable in the
 * child; any other process of the same user attaches with the object's token. Waiting is
 * futex-based: a short spin, then sleep. Uncontended operations make no system call.
 * Timeouts are milliseconds: negative blocks forever, 0 tries once; a wait that does not
 * succeed in time returns MPX_ETIMEDOUT.
 */
#ifndef MPX_SYNC_H
#define MPX_SYNC_H

#include "mpx/common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mpx_lock mpx_lock;
typedef struct mpx_semaphore mpx_semaphore;
typedef struct mpx_event mpx_event;
typedef struct mpx_condition mpx_condition;
typedef struct mpx_barrier mpx_barrier;

/* ---- Lock and RLock ---------------------------------------------------------------- */

/** mpx_lock_options.flags: recursive, owner-tracked lock (Python's RLock). */
#define MPX_LOCK_RECURSIVE 0x1u

typedef struct mpx_lock_options {
  uint32_t size;  /**< sizeof(mpx_lock_options) */
  uint32_t flags; /**< 0: Lock (any process may release); MPX_LOCK_RECURSIVE: RLock */
} mpx_lock_options;

/** Fill opts with defaults (a plain Lock). struct_size is sizeof(mpx_lock_options). */
MPX_API int mpx_lock_options_init(mpx_lock_options *opts, size_t struct_size);

/** Create an unlocked lock; opts may be NULL (a plain Lock). */
MPX_API int mpx_lock_create(mpx_lock **out, const mpx_lock_options *opts);

/** Attach the lock a token names (any lock kind). */
MPX_API int mpx_lock_attach(mpx_lock **out, const char *token);

/** Close this handle. Threads of this process blocked on it return MPX_ECLOSED. */
MPX_API int mpx_lock_destroy(mpx_lock *lock);

/**
 * Acquire. Returns 0; MPX_ETIMEDOUT; or MPX_EOWNERDEAD when the previous owner died holding
 * it: the lock is then held, and the caller should repair the state it guards and call
 * mpx_lock_consistent before releasing, or every later acquire fails with
 * MPX_ENOTRECOVERABLE. A recursive lock counts nested acquires by the owning thread.
 */
MPX_API int mpx_lock_acquire(mpx_lock *lock, int64_t timeout_ms);

/**
 * mpx_lock_acquire(lock, 0) with one argument fewer, for callers that pay per argument (a
 * binding over an FFI tries with it, then waits with mpx_lock_acquire): 0, MPX_ETIMEDOUT
 * while held, MPX_EOWNERDEAD when it took over from a dead owner. Free: one atomic
 * instruction; held: one system call to check on the owner.
 */
MPX_API int mpx_lock_try_acquire(mpx_lock *lock);

/**
 * Release. A plain lock may be released by any thread of any process; MPX_EPERM if it is
 * not locked. A recursive lock: MPX_EPERM unless the calling thread owns it.
 */
MPX_API int mpx_lock_release(mpx_lock *lock);

/** Mark a lock acquired with MPX_EOWNERDEAD as repaired. MPX_EINVAL if it is not in that state. */
MPX_API int mpx_lock_consistent(mpx_lock *lock);

/** *locked = 1 if held by anyone, else 0. */
MPX_API int mpx_lock_locked(mpx_lock *lock, int *locked);

/** *owned = 1 if the calling thread holds this recursive lock (plain lock: held by this process). */
MPX_API int mpx_lock_is_owned(mpx_lock *lock, int *owned);

/** *count = recursion depth of a recursive lock held by the calling thread, else 0. */
MPX_API int mpx_lock_count(mpx_lock *lock, uint32_t *count);

/** *recursive = 1 for an RLock. */
MPX_API int mpx_lock_is_recursive(mpx_lock *lock, int *recursive);

/** Token naming this lock; *len in/out as for mpx_segment_name. */
MPX_API int mpx_lock_token(mpx_lock *lock, char *buf, size_t *len);

/* ---- Semaphore and BoundedSemaphore ------------------------------------------------ */

/** mpx_semaphore_options.flags: bounded (release past the maximum fails with MPX_EOVERFLOW). */
#define MPX_SEMAPHORE_BOUNDED 0x1u

/** Largest semaphore value. */
#define MPX_SEMAPHORE_VALUE_MAX 0x7fffffffu

typedef struct mpx_semaphore_options {
  uint32_t size;      /**< sizeof(mpx_semaphore_options) */
  uint32_t flags;     /**< MPX_SEMAPHORE_BOUNDED */
  uint32_t max_value; /**< bounded: the maximum; 0 = the initial value (Python's rule) */
} mpx_semaphore_options;

/** Fill opts with defaults (unbounded). struct_size is sizeof(mpx_semaphore_options). */
MPX_API int mpx_semaphore_options_init(mpx_semaphore_options *opts, size_t struct_size);

/** Create a semaphore holding `value` (<= MPX_SEMAPHORE_VALUE_MAX); opts may be NULL. */
MPX_API int mpx_semaphore_create(mpx_semaphore **out, uint32_t value, const mpx_semaphore_options *opts);
/** Attach the semaphore a token names. */
MPX_API int mpx_semaphore_attach(mpx_semaphore **out, const char *token);
/** Close this handle. Threads of this process blocked on it return MPX_ECLOSED. */
MPX_API int mpx_semaphore_destroy(mpx_semaphore *sem);
/** Decrement, waiting up to timeout_ms for the value to be positive. */
MPX_API int mpx_semaphore_acquire(mpx_semaphore *sem, int64_t timeout_ms);
/** mpx_semaphore_acquire(sem, 0) with one argument fewer: 0, or MPX_ETIMEDOUT when zero. */
MPX_API int mpx_semaphore_try_acquire(mpx_semaphore *sem);
/** Increment and wake one waiter. MPX_EOVERFLOW (value unchanged) past the bound or the maximum. */
MPX_API int mpx_semaphore_release(mpx_semaphore *sem);
/** *value = the current value (a snapshot). */
MPX_API int mpx_semaphore_value(mpx_semaphore *sem, uint32_t *value);
/** *max_value = the bound (MPX_SEMAPHORE_VALUE_MAX when unbounded). */
MPX_API int mpx_semaphore_max_value(mpx_semaphore *sem, uint32_t *max_value);
/** Token naming this semaphore; *len in/out as for mpx_segment_name. */
MPX_API int mpx_semaphore_token(mpx_semaphore *sem, char *buf, size_t *len);

/* ---- Event -------------------------------------------------------------------------- */

/** Create an event, initially clear. */
MPX_API int mpx_event_create(mpx_event **out);
/** Attach the event a token names. */
MPX_API int mpx_event_attach(mpx_event **out, const char *token);
/** Close this handle. Threads of this process blocked on it return MPX_ECLOSED. */
MPX_API int mpx_event_destroy(mpx_event *ev);
/** Set the flag and wake every waiter. */
MPX_API int mpx_event_set(mpx_event *ev);
/** Clear the flag. */
MPX_API int mpx_event_clear(mpx_event *ev);
/** *is_set = 1 if the flag is set, else 0. */
MPX_API int mpx_event_is_set(mpx_event *ev, int *is_set);
/** Wait until set: 0 when set, MPX_ETIMEDOUT otherwise. */
MPX_API int mpx_event_wait(mpx_event *ev, int64_t timeout_ms);
/** Token naming this event; *len in/out as for mpx_segment_name. */
MPX_API int mpx_event_token(mpx_event *ev, char *buf, size_t *len);

/* ---- Condition ---------------------------------------------------------------------- */

/**
 * Create a condition variable over `lock` (a Lock or an RLock; borrowed, the condition
 * keeps its own reference). lock NULL creates a new RLock, like Python.
 */
MPX_API int mpx_condition_create(mpx_condition **out, mpx_lock *lock);
/** Attach the condition a token names (and, through it, its lock). */
MPX_API int mpx_condition_attach(mpx_condition **out, const char *token);
/** Close this handle. Threads of this process blocked in wait return MPX_ECLOSED. */
MPX_API int mpx_condition_destroy(mpx_condition *cond);
/** A new handle to the condition's lock (destroy it when done). */
MPX_API int mpx_condition_lock(mpx_condition *cond, mpx_lock **lock);
/** Acquire / release the underlying lock (same results as mpx_lock_acquire/release). */
MPX_API int mpx_condition_acquire(mpx_condition *cond, int64_t timeout_ms);
/** Release the underlying lock (same results as mpx_lock_release). */
MPX_API int mpx_condition_release(mpx_condition *cond);
/**
 * Release the lock (fully, for an RLock), wait for a notification, re-acquire. The caller
 * must hold the lock (MPX_EPERM otherwise). Returns 0 when notified, MPX_ETIMEDOUT when the
 * timeout expired; the lock is held again in both cases (re-acquiring it may report
 * MPX_EOWNERDEAD). Each notification goes to the longest-waiting thread. At most 256 threads
 * wait on one condition at once (MPX_EAGAIN beyond).
 */
MPX_API int mpx_condition_wait(mpx_condition *cond, int64_t timeout_ms);
/** Wake min(n, waiting) waiters. The caller must hold the lock (MPX_EPERM otherwise). */
MPX_API int mpx_condition_notify(mpx_condition *cond, uint32_t n);
/** Wake every waiting thread. The caller must hold the lock (MPX_EPERM otherwise). */
MPX_API int mpx_condition_notify_all(mpx_condition *cond);
/** Token naming this condition; *len in/out as for mpx_segment_name. */
MPX_API int mpx_condition_token(mpx_condition *cond, char *buf, size_t *len);

/* ---- Barrier ------------------------------------------------------------------------ */

/** mpx_barrier_wait_ex flags: the last party to arrive does not release the others; it
 *  gets *index = parties - 1 and must call mpx_barrier_release (or abort) itself. This lets
 *  a binding run Python's `action` before anyone passes. */
#define MPX_BARRIER_HOLD 0x1u

/** Create a barrier for `parties` (1 .. 32767) threads or processes. */
MPX_API int mpx_barrier_create(mpx_barrier **out, uint32_t parties);
/** Attach the barrier a token names. */
MPX_API int mpx_barrier_attach(mpx_barrier **out, const char *token);
/** Close this handle. Threads of this process blocked in wait return MPX_ECLOSED. */
MPX_API int mpx_barrier_destroy(mpx_barrier *bar);
/**
 * Wait for all parties. *index (may be NULL) gets the arrival index, 0 .. parties-1, unique
 * per pass. A timeout breaks the barrier: the caller whose timeout expired gets
 * MPX_ETIMEDOUT, the other waiters MPX_EBROKEN. Waiting on a broken barrier fails with
 * MPX_EBROKEN until mpx_barrier_reset.
 */
MPX_API int mpx_barrier_wait(mpx_barrier *bar, int64_t timeout_ms, uint32_t *index);
/** mpx_barrier_wait with flags (MPX_BARRIER_HOLD). */
MPX_API int mpx_barrier_wait_ex(mpx_barrier *bar, int64_t timeout_ms, uint32_t flags, uint32_t *index);
/** Release the others after a MPX_BARRIER_HOLD wait returned the last index; MPX_EBROKEN if the
 *  barrier broke meanwhile (a waiter timed out, or abort). */
MPX_API int mpx_barrier_release(mpx_barrier *bar);
/** Break the barrier: current and future waiters get MPX_EBROKEN until reset. */
MPX_API int mpx_barrier_abort(mpx_barrier *bar);
/** Return to the initial state; current waiters get MPX_EBROKEN. */
MPX_API int mpx_barrier_reset(mpx_barrier *bar);
/** *parties = the number of parties. */
MPX_API int mpx_barrier_parties(mpx_barrier *bar, uint32_t *parties);
/** *n_waiting = the number of parties waiting now. */
MPX_API int mpx_barrier_n_waiting(mpx_barrier *bar, uint32_t *n_waiting);
/** *broken = 1 if the barrier is broken, else 0. */
MPX_API int mpx_barrier_broken(mpx_barrier *bar, int *broken);
/** Token naming this barrier; *len in/out as for mpx_segment_name. */
MPX_API int mpx_barrier_token(mpx_barrier *bar, char *buf, size_t *len);

#ifdef __cplusplus
}
#endif

#endif /* MPX_SYNC_H */
