/*
 * mpx/queue.h - queues in shared memory (Python's Queue, SimpleQueue and JoinableQueue).
 *
 * A queue is multi-producer multi-consumer and lives entirely in shared memory: a ring of
 * bytes that items are copied into by put and out of by get. There is no feeder thread:
 * when put returns, the item is in shared memory, and a producer that exits right after
 * loses nothing. Items from one producer come out in the order it put them.
 *
 * Items may have any size up to the queue's max_message. One that fits the ring is copied
 * in whole; a larger one travels through the ring in chunks (the producer streams, one
 * consumer reassembles) and is still copied once on each side.
 *
 * A process killed at any point never leaves the queue hung or corrupt for the others: an
 * item whose producer died before it was complete is never delivered, a delivered item is
 * never delivered twice (one its consumer died while copying out is lost), and the space
 * held by a dead producer or consumer is recovered within a second.
 *
 * Objects created before fork() are usable in the child; any other process of the same
 * user attaches with the queue's token. Timeouts are milliseconds: negative blocks forever,
 * 0 tries once; MPX_ETIMEDOUT when the call could not complete in time (nothing changed).
 * Waiting spins briefly, then sleeps on a futex; an operation makes no system call when
 * there is no one to wake.
 */
#ifndef MPX_QUEUE_H
#define MPX_QUEUE_H

#include "mpx/common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mpx_queue mpx_queue;

/** mpx_queue_options.flags: a JoinableQueue (task_done/join). */
#define MPX_QUEUE_JOINABLE 0x1u

/** Default ring size in bytes (mpx_queue_options.capacity = 0). */
#define MPX_QUEUE_DEFAULT_CAPACITY (UINT64_C(1) << 20)

typedef struct mpx_queue_options {
  uint32_t size;        /**< sizeof(mpx_queue_options) */
  uint32_t flags;       /**< MPX_QUEUE_JOINABLE */
  uint64_t maxsize;     /**< most items queued at once; 0: bounded only by the ring */
  uint64_t capacity;    /**< ring bytes, rounded up to a power of two (>= 4 KiB); 0: default */
  uint64_t max_message; /**< largest item in bytes; 0: no limit */
} mpx_queue_options;

/** Fill opts with defaults. struct_size is sizeof(mpx_queue_options). */
MPX_API int mpx_queue_options_init(mpx_queue_options *opts, size_t struct_size);

/** Create an empty queue; opts may be NULL (unbounded count, 1 MiB ring). */
MPX_API int mpx_queue_create(mpx_queue **out, const mpx_queue_options *opts);

/** Attach the queue a token names. */
MPX_API int mpx_queue_attach(mpx_queue **out, const char *token);

/** Close this handle. Threads of this process blocked on it return MPX_ECLOSED. */
MPX_API int mpx_queue_destroy(mpx_queue *q);

/** The queue's token (see mpx_segment_token for the buffer convention). */
MPX_API int mpx_queue_token(mpx_queue *q, char *buf, size_t *len);

/**
 * Put a copy of len bytes (data may be NULL only when len is 0). Blocks while the queue is
 * full (maxsize items, or no room in the ring). MPX_EMSGSIZE when len exceeds max_message
 * (nothing changes); MPX_ECLOSED once the queue is closed. An item larger than a quarter of
 * the ring is streamed, and the timeout covers the whole put: if it expires (or the queue
 * closes) midway, the part already sent is dropped by the consumer and nothing is delivered.
 */
MPX_API int mpx_queue_put(mpx_queue *q, const void *data, size_t len, int64_t timeout_ms);

/**
 * Take the oldest item into memory the library allocates: *data (free with mpx_free; valid
 * for a 0-byte item too) and *len. MPX_ECLOSED when the queue is closed and empty. A get
 * that has begun to receive a streamed item waits for the rest of it beyond its timeout, as
 * long as the producer lives and has not given up.
 */
MPX_API int mpx_queue_get(mpx_queue *q, void **data, size_t *len, int64_t timeout_ms);

/**
 * Take the oldest item into buf (capacity cap); *len receives its size. If it does not fit:
 * MPX_ENOBUFS with *len = the size needed, and the item stays first in the queue.
 */
MPX_API int mpx_queue_get_into(mpx_queue *q, void *buf, size_t cap, size_t *len, int64_t timeout_ms);

/** Items in the queue (put and not yet taken; approximate while others work on it). */
MPX_API int mpx_queue_qsize(mpx_queue *q, size_t *count);

/** 1 when the queue holds no item, else 0 (approximate, as qsize). */
MPX_API int mpx_queue_empty(mpx_queue *q, int *empty);

/** 1 when maxsize items are queued, else 0 (approximate, as qsize). */
MPX_API int mpx_queue_full(mpx_queue *q, int *full);

/** maxsize as created (0: unbounded count). */
MPX_API int mpx_queue_maxsize(mpx_queue *q, uint64_t *maxsize);

/** The ring's size in bytes. */
MPX_API int mpx_queue_capacity(mpx_queue *q, uint64_t *bytes);

/**
 * Close the queue for every process: blocked and later puts return MPX_ECLOSED; gets
 * return the items still queued, then MPX_ECLOSED. Closing again does nothing.
 */
MPX_API int mpx_queue_close(mpx_queue *q);

/** 1 once the queue has been closed (by any process), else 0. */
MPX_API int mpx_queue_closed(mpx_queue *q, int *closed);

/**
 * JoinableQueue: mark one item taken by get as processed. MPX_EOVERFLOW when called more
 * times than items were put; MPX_EINVAL on a queue created without MPX_QUEUE_JOINABLE.
 */
MPX_API int mpx_queue_task_done(mpx_queue *q);

/**
 * JoinableQueue: block until every item put has been marked done by task_done (items that
 * were never delivered because their producer died or gave up do not count).
 * MPX_ECLOSED when the queue is closed, or this handle destroyed, while items are unfinished.
 */
MPX_API int mpx_queue_join(mpx_queue *q, int64_t timeout_ms);

/** JoinableQueue: items put and not yet marked done. */
MPX_API int mpx_queue_unfinished(mpx_queue *q, uint64_t *count);

#ifdef __cplusplus
}
#endif

#endif /* MPX_QUEUE_H */
