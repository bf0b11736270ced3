/*
 * mpx/connection.h - pipes and connections (Python's multiprocessing.Pipe and Connection).
 *
 * A connection moves whole messages over a socket or pipe. The framing is Python's
 * multiprocessing.connection framing byte for byte: a 4-byte big-endian signed length, or
 * -1 followed by an 8-byte big-endian length for messages of 2 GiB and more, then the
 * payload. An mpx connection and a Python Connection on the two ends of one socket
 * understand each other.
 *
 * Messages may have any size, from 0 bytes to over 4 GiB. A receive returns a whole message
 * or an error, never part of one: the peer closing between messages is MPX_EOF; a peer that
 * dies in the middle of a message is MPX_EPROTO ("truncated message"), and the connection
 * stays broken (every later receive fails the same way). A header announcing more than the
 * connection's max_message is MPX_EMSGSIZE, reported before anything is allocated, and also
 * breaks the connection. Signals never surface as errors (EINTR is retried, deadlines are
 * kept) and a send to a closed peer is MPX_EPIPE, never SIGPIPE.
 *
 * Timeouts are milliseconds: negative blocks forever, 0 tries once; MPX_ETIMEDOUT when no
 * message started to arrive in time (nothing is consumed then). A timeout bounds the wait
 * for a message to start: once its first byte has arrived, the receive reads on until the
 * message is complete (the peer is sending it right now; a byte stream cannot be un-read),
 * the peer goes (MPX_EPROTO) or the handle is destroyed. Destroying a connection from
 * another thread wakes its blocked callers with MPX_ECLOSED.
 *
 * Like Python's Connection, one end is meant for one sender and one receiver at a time;
 * concurrent calls are safe (sends are serialised, and so are receives). A forked child
 * may use the connections it inherited.
 */
#ifndef MPX_CONNECTION_H
#define MPX_CONNECTION_H

#include "mpx/common.h"
#include "mpx/process.h"
#include "mpx/segment.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mpx_conn mpx_conn;

/** Default mpx_conn_options.max_message: the largest message a receive accepts (16 GiB). */
#define MPX_CONN_DEFAULT_MAX_MESSAGE (UINT64_C(16) << 30)

/** mpx_conn_from_fd / mpx_conn_flags: what a connection may do. */
#define MPX_CONN_READABLE 0x1u
#define MPX_CONN_WRITABLE 0x2u

/** The most descriptors one mpx_conn_send_fds message carries. */
#define MPX_CONN_MAX_FDS 64

typedef struct mpx_conn_options {
  uint32_t size;        /**< sizeof(mpx_conn_options) */
  uint32_t reserved;    /**< 0 */
  uint64_t max_message; /**< receive limit in bytes; 0: MPX_CONN_DEFAULT_MAX_MESSAGE */
} mpx_conn_options;

/** Fill opts with defaults. struct_size is sizeof(mpx_conn_options). */
MPX_API int mpx_conn_options_init(mpx_conn_options *opts, size_t struct_size);

/**
 * A connected pair (Python's Pipe(duplex)). duplex != 0: a socketpair, both ends read and
 * write. duplex == 0: *a only receives and *b only sends (a pipe); using an end the wrong
 * way is MPX_EPERM. The descriptors are close-on-exec. opts may be NULL.
 */
MPX_API int mpx_pipe(int duplex, const mpx_conn_options *opts, mpx_conn **a, mpx_conn **b);

/**
 * Wrap a connected descriptor (a stream socket or a pipe end); the connection owns it from
 * then on, also when this call fails (except when out is NULL: then nothing is taken).
 * flags: MPX_CONN_READABLE and/or MPX_CONN_WRITABLE. The descriptor's flags are left as
 * they are (it stays blocking, for the other processes that may share it).
 */
MPX_API int mpx_conn_from_fd(int fd, uint32_t flags, const mpx_conn_options *opts, mpx_conn **out);

/**
 * Close the connection and its descriptor. Threads blocked on it return MPX_ECLOSED. A
 * thread asleep in a socket read or write can only be woken by shutting the socket down:
 * then other processes sharing that descriptor see it shut down too, as if this end had
 * been closed everywhere.
 */
MPX_API int mpx_conn_destroy(mpx_conn *conn);

/**
 * Give up the descriptor without closing it: *fd receives it and the handle is destroyed
 * (Python's Connection.detach()). Threads blocked on the connection return MPX_ECLOSED, as
 * with mpx_conn_destroy.
 */
MPX_API int mpx_conn_detach(mpx_conn *conn, int *fd);

/** The descriptor (still owned by the connection). */
MPX_API int mpx_conn_fileno(mpx_conn *conn, int *fd);

/** MPX_CONN_READABLE | MPX_CONN_WRITABLE as the connection was made. */
MPX_API int mpx_conn_flags(mpx_conn *conn, uint32_t *flags);

/** The receive limit in bytes (mpx_conn_options.max_message). */
MPX_API int mpx_conn_max_message(mpx_conn *conn, uint64_t *bytes);

/**
 * Send one message of len bytes (0 allowed; data may be NULL only when len is 0). Blocks
 * until it is all written. MPX_EPIPE when the peer has gone.
 */
MPX_API int mpx_conn_send(mpx_conn *conn, const void *data, size_t len);

/**
 * Receive one message into memory the library allocates: *data (free with mpx_free; a
 * 0-byte message gives a valid pointer) and *len. maxlength > 0: a longer message is
 * MPX_EMSGSIZE and breaks the connection (Python's recv_bytes(maxlength)). MPX_EOF when
 * the peer closed between messages. MPX_ENOMEM leaves the message unread.
 */
MPX_API int mpx_conn_recv(mpx_conn *conn, size_t maxlength, void **data, size_t *len, int64_t timeout_ms);

/**
 * Receive one message into buf (capacity cap). *len receives its size. If the message does
 * not fit: MPX_ENOBUFS with *len = the size needed, and the message stays unread, so the
 * next receive (of any kind) returns it.
 */
MPX_API int mpx_conn_recv_into(mpx_conn *conn, void *buf, size_t cap, size_t *len, int64_t timeout_ms);

/**
 * Wait until a message (or end of stream) can be read: 0 when it can, MPX_ETIMEDOUT when it
 * cannot in time. Consumes nothing.
 */
MPX_API int mpx_conn_poll(mpx_conn *conn, int64_t timeout_ms);

/**
 * Send descriptors (1 to MPX_CONN_MAX_FDS) in one message over a unix socket connection
 * (SCM_RIGHTS); the caller keeps its own copies. MPX_ENOTSUP on a pipe.
 */
MPX_API int mpx_conn_send_fds(mpx_conn *conn, const int *fds, size_t count);

/**
 * Receive a message sent by mpx_conn_send_fds: *count in = capacity of fds, out = the
 * number received. The descriptors arrive close-on-exec and belong to the caller. A message
 * without its descriptors, or with more than the capacity, or truncated control data, is
 * MPX_EPROTO, and every descriptor that did arrive is closed; so is any other message, which
 * is consumed. A plain receive of a descriptor message gets its payload; the descriptors
 * are dropped (never leaked).
 */
MPX_API int mpx_conn_recv_fds(mpx_conn *conn, int *fds, size_t *count, int64_t timeout_ms);

/** Send a connection (its descriptor and flags); the sender keeps its own handle. */
MPX_API int mpx_conn_send_conn(mpx_conn *conn, mpx_conn *other);

/** Receive a connection sent by mpx_conn_send_conn, as a new handle. */
MPX_API int mpx_conn_recv_conn(mpx_conn *conn, mpx_conn **out, int64_t timeout_ms);

/** Send a shared memory segment (its descriptor); the sender keeps its own handle. */
MPX_API int mpx_conn_send_segment(mpx_conn *conn, mpx_segment *seg);

/** Receive a segment sent by mpx_conn_send_segment: mapped, as a new handle. */
MPX_API int mpx_conn_recv_segment(mpx_conn *conn, mpx_segment **out, int64_t timeout_ms);

/* ---- wait on many objects (Python's multiprocessing.connection.wait) -------------------- */

#define MPX_WAIT_CONN 1u    /**< mpx_wait_object.handle is an mpx_conn: ready to receive */
#define MPX_WAIT_PROCESS 2u /**< handle is an mpx_process: it has ended */
#define MPX_WAIT_FD 3u      /**< fd is a descriptor: readable */

typedef struct mpx_wait_object {
  uint32_t kind;  /**< MPX_WAIT_* */
  int fd;         /**< MPX_WAIT_FD: the descriptor */
  void *handle;   /**< MPX_WAIT_CONN / MPX_WAIT_PROCESS: the handle */
  int ready;      /**< out: 1 when this object is ready, else 0 */
} mpx_wait_object;

/**
 * Block until at least one object is ready, or the timeout: each object's ready flag is set
 * and *nready (may be NULL) receives how many. MPX_ETIMEDOUT when none became ready. A
 * connection is ready when a receive would not block (a message, the end of stream, a
 * message left by mpx_conn_recv_into, or a broken connection); a sending-only end is
 * MPX_EPERM, a process not yet started MPX_EINVAL. With count 0 the call sleeps for the
 * timeout (a negative one is MPX_EINVAL). Like Python's wait(), the objects' descriptors are
 * polled without holding the objects: destroying one meanwhile does not wake the wait.
 */
MPX_API int mpx_wait(mpx_wait_object *objects, size_t count, int64_t timeout_ms, size_t *nready);

#ifdef __cplusplus
}
#endif

#endif /* MPX_CONNECTION_H */
