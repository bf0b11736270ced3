/*
 * mpx/manager.h - managers: a server that holds shared objects, and the clients that use
 * them through proxies (Python's multiprocessing.managers, for every language).
 *
 * A manager server holds named or anonymous objects: dict and namespace (string keys, byte
 * values), list (byte values), queue and joinable queue (byte items), lock, rlock,
 * semaphore, bounded semaphore, condition, event, barrier, typed value and typed array.
 * Every operation on an object is atomic: the server applies it whole, under the object's
 * own mutex. Clients connect over a unix socket or TCP, authenticate with an authkey (the
 * handshake of mpx/listener.h), and hold proxies: handles that name one object each.
 *
 * The server runs in a child process (started by fork, forkserver or spawn, see
 * mpx_manager_options.method) or in threads of the calling process (MPX_MANAGER_IN_PROCESS).
 * It serves each client from its own thread, so one client blocked in a queue get or a lock
 * acquire never delays the others. A client makes one call at a time: threads sharing one
 * take turns (a thread blocked in a get holds up the others), so a thread that blocks
 * should have its own client. A client on the same machine (a unix socket, or TCP on
 * loopback) moves its requests through a pair of mpx queues in shared memory once the
 * socket handshake is done, and waits for the reply spinning briefly before sleeping; the
 * socket stays open to tell each side when the other is gone. A remote client uses the
 * socket for everything.
 *
 * Failure handling. A client that dies (or disconnects) while holding a manager lock or
 * rlock releases it: the next acquire succeeds with MPX_EOWNERDEAD. A client that dies
 * while blocked in a barrier wait breaks the barrier (the others get MPX_EBROKEN). The
 * server drops the references a dead client held; an anonymous object is freed with its last
 * reference, a named one lives until the server stops. A malformed or unknown request is
 * answered with MPX_EPROTO (or MPX_EINVAL) and the server carries on. If the server dies,
 * blocked and later calls return MPX_EOF. An item a client took (a queue get) and died
 * before receiving is lost, as with an mpx queue consumer killed while copying out.
 *
 * Values travel as bytes: keys are NUL-terminated strings (at most MPX_MANAGER_KEY_MAX
 * bytes), values and items any size. Returned bytes are allocated; free them with mpx_free.
 * Timeouts are milliseconds: negative blocks forever, 0 tries once.
 */
#ifndef MPX_MANAGER_H
#define MPX_MANAGER_H

#include "mpx/common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mpx_manager mpx_manager; /* a server this process started */
typedef struct mpx_mclient mpx_mclient; /* a connection to a manager */
typedef struct mpx_proxy mpx_proxy;     /* one object held by a manager */

/** Object types (mpx_proxy_create). */
#define MPX_MOBJ_DICT 1
#define MPX_MOBJ_NAMESPACE 2
#define MPX_MOBJ_LIST 3
#define MPX_MOBJ_QUEUE 4
#define MPX_MOBJ_JOINABLE_QUEUE 5
#define MPX_MOBJ_LOCK 6
#define MPX_MOBJ_RLOCK 7
#define MPX_MOBJ_SEMAPHORE 8
#define MPX_MOBJ_BOUNDED_SEMAPHORE 9
#define MPX_MOBJ_CONDITION 10
#define MPX_MOBJ_EVENT 11
#define MPX_MOBJ_BARRIER 12
#define MPX_MOBJ_VALUE 13
#define MPX_MOBJ_ARRAY 14

/** Longest key or object name, in bytes. */
#define MPX_MANAGER_KEY_MAX 4096

/** mpx_manager_options.flags: serve from threads of this process instead of a child. */
#define MPX_MANAGER_IN_PROCESS 0x1u
/** mpx_manager_options.flags: without an authkey, accept TCP clients that are not on loopback. */
#define MPX_MANAGER_ALLOW_REMOTE 0x2u

typedef struct mpx_manager_options {
  uint32_t size;          /**< sizeof(mpx_manager_options) */
  uint32_t flags;         /**< MPX_MANAGER_IN_PROCESS | MPX_MANAGER_ALLOW_REMOTE */
  const char *address;    /**< as mpx/listener.h; NULL: a fresh abstract unix socket ("@mpx-manager-...") */
  const void *authkey;    /**< NULL: this process's authkey (mpx_authkey) */
  size_t authkey_len;     /**< its length (not 0 when authkey is set) */
  uint32_t method;        /**< MPX_START_* for the server process; 0: the default */
  uint32_t reserved;      /**< 0 */
  const char *file;       /**< spawn: a program that calls mpx_manager_main(); NULL: "mpx-manager" */
  int64_t start_timeout_ms; /**< how long the server may take to start listening; 0: 10 s */
} mpx_manager_options;

/** Fill opts with defaults. struct_size is sizeof(mpx_manager_options). */
MPX_API int mpx_manager_options_init(mpx_manager_options *opts, size_t struct_size);

/**
 * Start a manager server and wait until it listens. A server in a child process is a daemon
 * of this one (it dies with it). MPX_EADDRINUSE when the address is taken; the child's start
 * failures as mpx_process_start reports them.
 */
MPX_API int mpx_manager_start(mpx_manager **out, const mpx_manager_options *opts);

/** The address clients connect to (for TCP port 0, the port the system chose). */
MPX_API int mpx_manager_address(mpx_manager *m, char *buf, size_t *len);

/** The server's process id (this process's for MPX_MANAGER_IN_PROCESS). */
MPX_API int mpx_manager_pid(mpx_manager *m, int64_t *pid);

/**
 * Wait until the server has stopped (a client called mpx_mclient_shutdown, or the server
 * process died). MPX_ETIMEDOUT when it still runs at the timeout.
 */
MPX_API int mpx_manager_wait(mpx_manager *m, int64_t timeout_ms);

/**
 * Stop the server: it closes its listener and every client connection (their calls return
 * MPX_EOF) and frees every object. A child server is asked to stop and joined; one still
 * running at the timeout is killed.
 */
MPX_API int mpx_manager_shutdown(mpx_manager *m, int64_t timeout_ms);

/** Shut the server down (waiting up to 1 s) if it runs, and release the handle. */
MPX_API int mpx_manager_destroy(mpx_manager *m);

/**
 * The whole of a spawned server program (mpx_manager_options.file): serve as the parent
 * asked, return once the server stops. Returns MPX_EINVAL when the program was not started
 * as a manager server.
 */
MPX_API int mpx_manager_main(void);

/** mpx_mclient_options.flags: use the socket only, never the shared-memory path. */
#define MPX_MCLIENT_SOCKET_ONLY 0x1u

typedef struct mpx_mclient_options {
  uint32_t size;       /**< sizeof(mpx_mclient_options) */
  uint32_t flags;      /**< MPX_MCLIENT_SOCKET_ONLY */
  const void *authkey; /**< NULL: this process's authkey (mpx_authkey) */
  size_t authkey_len;  /**< its length (not 0 when authkey is set) */
  int64_t timeout_ms;  /**< connect and handshake deadline; 0: 5 s */
} mpx_mclient_options;

/** Fill opts with defaults. struct_size is sizeof(mpx_mclient_options). */
MPX_API int mpx_mclient_options_init(mpx_mclient_options *opts, size_t struct_size);

/** Connect to the manager at address. MPX_EAUTH for a wrong key. */
MPX_API int mpx_manager_connect(mpx_mclient **out, const char *address, const mpx_mclient_options *opts);

/** *shm = 1 when requests go through shared memory, 0 when over the socket. */
MPX_API int mpx_mclient_shm(mpx_mclient *c, int *shm);

/** Ask the server to stop (Python's manager.shutdown() from a connected client). */
MPX_API int mpx_mclient_shutdown(mpx_mclient *c);

/**
 * Disconnect and release the handle. The server drops this client's references and
 * releases the locks it holds; the client's proxies then return MPX_ECLOSED.
 */
MPX_API int mpx_mclient_destroy(mpx_mclient *c);

/** mpx_mobj_options.flags: with a name that exists (of the same type), open it instead. */
#define MPX_MOBJ_OPEN_EXISTING 0x1u

typedef struct mpx_mobj_options {
  uint32_t size;          /**< sizeof(mpx_mobj_options) */
  uint32_t flags;         /**< MPX_MOBJ_OPEN_EXISTING */
  const char *name;       /**< NULL: anonymous (freed with its last reference) */
  int32_t typecode;       /**< value, array: one of "cbBhHiIlLqQfd"; 0: 'i' (value), 'b' (array) */
  uint32_t parties;       /**< barrier: the number of parties (required) */
  uint64_t length;        /**< array: the number of elements (required) */
  uint64_t maxsize;       /**< queue: most items at once; 0: unbounded */
  int64_t initial;        /**< semaphore: the initial value (0: 0, as written; default opts give 1) */
  mpx_proxy *lock;        /**< condition: a lock or rlock proxy of the same client; NULL: a new rlock */
  const void *data;       /**< value, array: initial contents (data_len bytes); NULL: zeros */
  size_t data_len;
} mpx_mobj_options;

/** Fill opts with defaults (semaphore initial value 1). struct_size is sizeof(mpx_mobj_options). */
MPX_API int mpx_mobj_options_init(mpx_mobj_options *opts, size_t struct_size);

/**
 * Create an object of `type` (MPX_MOBJ_*) in the manager and a proxy for it. opts may be
 * NULL for types that need no parameters. A name already used: MPX_EEXIST (or, with
 * MPX_MOBJ_OPEN_EXISTING, a proxy for it; MPX_EINVAL when its type differs).
 */
MPX_API int mpx_proxy_create(mpx_mclient *c, int type, const mpx_mobj_options *opts, mpx_proxy **out);

/** A proxy for the object a name or a token (mpx_proxy_token) names. MPX_ENOENT if none. */
MPX_API int mpx_proxy_open(mpx_mclient *c, const char *name_or_token, mpx_proxy **out);

/** A token that names the object for any client of the same manager (while it lives). */
MPX_API int mpx_proxy_token(mpx_proxy *p, char *buf, size_t *len);

/** The object's type (MPX_MOBJ_*). */
MPX_API int mpx_proxy_type(mpx_proxy *p, int *type);

/** Release the proxy (the server drops its reference). */
MPX_API int mpx_proxy_destroy(mpx_proxy *p);

/* ---- dict and namespace ------------------------------------------------------------- */

/** d[key] = value. */
MPX_API int mpx_mdict_set(mpx_proxy *d, const char *key, const void *value, size_t len);
/** Insert only if key is absent: MPX_EEXIST (nothing changes) when it is present. */
MPX_API int mpx_mdict_add(mpx_proxy *d, const char *key, const void *value, size_t len);
/** *value = a copy of d[key]; MPX_ENOENT when absent. */
MPX_API int mpx_mdict_get(mpx_proxy *d, const char *key, void **value, size_t *len);
/** Remove key, giving its value when value is not NULL; MPX_ENOENT when absent. */
MPX_API int mpx_mdict_pop(mpx_proxy *d, const char *key, void **value, size_t *len);
/** *count = the number of keys. */
MPX_API int mpx_mdict_len(mpx_proxy *d, size_t *count);
/** The keys, each NUL-terminated, one after another in *keys (*len bytes, *count keys). */
MPX_API int mpx_mdict_keys(mpx_proxy *d, char **keys, size_t *len, size_t *count);
/** Remove every key. */
MPX_API int mpx_mdict_clear(mpx_proxy *d);

/* ---- list (negative indexes count from the end, as in Python) --------------------- */

/** l.append(value). */
MPX_API int mpx_mlist_append(mpx_proxy *l, const void *value, size_t len);
/** Insert before index (clamped to the list, as Python's list.insert). */
MPX_API int mpx_mlist_insert(mpx_proxy *l, int64_t index, const void *value, size_t len);
/** MPX_ERANGE when index is out of range. */
MPX_API int mpx_mlist_get(mpx_proxy *l, int64_t index, void **value, size_t *len);
/** l[index] = value; MPX_ERANGE when index is out of range. */
MPX_API int mpx_mlist_set(mpx_proxy *l, int64_t index, const void *value, size_t len);
/** Remove l[index], giving it when value is not NULL. MPX_ERANGE when out of range. */
MPX_API int mpx_mlist_pop(mpx_proxy *l, int64_t index, void **value, size_t *len);
/** *count = len(l). */
MPX_API int mpx_mlist_len(mpx_proxy *l, size_t *count);
/** Reverse the list in place. */
MPX_API int mpx_mlist_reverse(mpx_proxy *l);
/** Sort the items by their bytes (memcmp order, shorter first on a tie). */
MPX_API int mpx_mlist_sort(mpx_proxy *l);
/** Remove every item. */
MPX_API int mpx_mlist_clear(mpx_proxy *l);

/* ---- queue and joinable queue ------------------------------------------------------- */

/** Blocks while the queue holds maxsize items. */
MPX_API int mpx_mqueue_put(mpx_proxy *q, const void *item, size_t len, int64_t timeout_ms);
/** Take the oldest item (*item allocated; mpx_free). MPX_ETIMEDOUT when none came in time. */
MPX_API int mpx_mqueue_get(mpx_proxy *q, void **item, size_t *len, int64_t timeout_ms);
/** *count = the number of items queued now. */
MPX_API int mpx_mqueue_qsize(mpx_proxy *q, size_t *count);
/** Joinable queue: one item got earlier is done. MPX_EOVERFLOW when none is unfinished. */
MPX_API int mpx_mqueue_task_done(mpx_proxy *q);
/** Joinable queue: block until every item put has been marked done. */
MPX_API int mpx_mqueue_join(mpx_proxy *q, int64_t timeout_ms);

/* ---- lock, rlock, semaphore, bounded semaphore, condition (its lock) ---------------- */

/**
 * Acquire. A lock is owned by the client that acquired it (an rlock counts recursion);
 * MPX_EOWNERDEAD means acquired, and that the previous owner disconnected holding it.
 */
MPX_API int mpx_mlock_acquire(mpx_proxy *lk, int64_t timeout_ms);
/**
 * Release. A lock may be released by any client (Python's Lock); an rlock only by its owner
 * (MPX_EPERM); a bounded semaphore past its bound fails with MPX_EOVERFLOW.
 */
MPX_API int mpx_mlock_release(mpx_proxy *lk);
/** Semaphore: *value = its counter. */
MPX_API int mpx_msem_value(mpx_proxy *s, int64_t *value);

/* ---- condition (acquire and release it with mpx_mlock_*) ---------------------------- */

/** Release the lock (which this client must hold), wait for a notify, re-acquire. */
MPX_API int mpx_mcond_wait(mpx_proxy *cv, int64_t timeout_ms);
/** Wake up to n waiters (the lock must be held). */
MPX_API int mpx_mcond_notify(mpx_proxy *cv, size_t n);
/** Wake every waiter (the lock must be held). */
MPX_API int mpx_mcond_notify_all(mpx_proxy *cv);

/* ---- event -------------------------------------------------------------------------- */

/** Set the flag and wake every waiter. */
MPX_API int mpx_mevent_set(mpx_proxy *e);
/** Clear the flag. */
MPX_API int mpx_mevent_clear(mpx_proxy *e);
/** *is_set = 1 when the flag is set. */
MPX_API int mpx_mevent_is_set(mpx_proxy *e, int *is_set);
/** MPX_ETIMEDOUT when the event is still clear at the timeout. */
MPX_API int mpx_mevent_wait(mpx_proxy *e, int64_t timeout_ms);

/* ---- barrier ------------------------------------------------------------------------ */

/** Wait for all parties; *index (may be NULL) = the arrival index, 0 .. parties-1. */
MPX_API int mpx_mbarrier_wait(mpx_proxy *b, int64_t timeout_ms, int64_t *index);
/** Break the barrier: current and future waiters get MPX_EBROKEN until reset. */
MPX_API int mpx_mbarrier_abort(mpx_proxy *b);
/** Return to the initial state; current waiters get MPX_EBROKEN. */
MPX_API int mpx_mbarrier_reset(mpx_proxy *b);

/* ---- typed value and array (elements in this machine's byte order) ----------------- */

/** Copy the value out; size must be its element size. */
MPX_API int mpx_mvalue_get(mpx_proxy *v, void *out, size_t size);
/** Replace the value; size must be its element size. */
MPX_API int mpx_mvalue_set(mpx_proxy *v, const void *in, size_t size);
/** Atomically add *delta (of the value's type) and give the new value in *result (may be NULL). */
MPX_API int mpx_mvalue_add(mpx_proxy *v, const void *delta, void *result, size_t size);
/** *length = the number of elements, *itemsize (may be NULL) = the element size. */
MPX_API int mpx_marray_len(mpx_proxy *a, size_t *length, size_t *itemsize);
/** Copy count elements from index start into out (count x itemsize bytes). */
MPX_API int mpx_marray_get(mpx_proxy *a, size_t start, size_t count, void *out);
/** Copy count elements from in into the array from index start. MPX_ERANGE past the end. */
MPX_API int mpx_marray_set(mpx_proxy *a, size_t start, size_t count, const void *in);

#ifdef __cplusplus
}
#endif

#endif /* MPX_MANAGER_H */
