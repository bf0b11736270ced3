/*
 * mpx/listener.h - listeners and clients (Python's multiprocessing.connection.Listener and
 * Client), with the authkey handshake of Python's multiprocessing.connection.
 *
 * Addresses are strings: a unix socket path (any string containing '/'), a Linux abstract
 * socket name ("@name", Python's "\0name"), or TCP "host:port" and "[v6addr]:port" (port 0
 * lets the system pick one; mpx_listener_address then gives the real one). Connections
 * accepted or made here are ordinary mpx_conn handles, framed as Python frames them, so an
 * mpx Listener serves Python's Client and an mpx Client reaches Python's Listener.
 *
 * Authentication: with an authkey, both sides prove they know it (the listener challenges
 * the client, then the client challenges the listener) before any payload is exchanged, as
 * Python's accept() and Client() do. The challenge is "#CHALLENGE#{sha256}" and 40 random
 * bytes; answers are "{sha256}" and an HMAC-SHA256 (Python 3.12 and later). Python 3.11
 * and older send a bare 20-byte challenge and answer with a bare 16-byte HMAC-MD5: these
 * legacy answers and challenges are accepted by default, so mpx talks to every Python out
 * of the box (as Python 3.12 itself does); MPX_AUTH_REQUIRE_SHA256 refuses them. A wrong
 * key is MPX_EAUTH on both sides. The handshake authenticates; it does not encrypt.
 */
#ifndef MPX_LISTENER_H
#define MPX_LISTENER_H

#include "mpx/common.h"
#include "mpx/connection.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mpx_listener mpx_listener;

/** Default handshake deadline (mpx_listener_options / mpx_client_options), in milliseconds. */
#define MPX_HANDSHAKE_DEFAULT_TIMEOUT_MS 5000

/** Flag: refuse legacy (HMAC-MD5, Python 3.11 and older) challenges and answers. */
#define MPX_AUTH_REQUIRE_SHA256 0x1u
/** Listener flag: without an authkey, accept TCP clients that are not on loopback too. */
#define MPX_LISTENER_ALLOW_REMOTE 0x2u

typedef struct mpx_listener_options {
  uint32_t size;                /**< sizeof(mpx_listener_options) */
  uint32_t flags;               /**< MPX_AUTH_REQUIRE_SHA256 | MPX_LISTENER_ALLOW_REMOTE */
  const void *authkey;          /**< the key; NULL: no authentication (local clients only) */
  size_t authkey_len;           /**< its length in bytes (not 0 when authkey is set) */
  int64_t handshake_timeout_ms; /**< per connection; 0: MPX_HANDSHAKE_DEFAULT_TIMEOUT_MS */
  int32_t backlog;              /**< listen() backlog; 0: 128 */
  uint32_t reserved;            /**< 0 */
  uint64_t max_message;         /**< accepted connections' receive limit; 0: the default */
} mpx_listener_options;

typedef struct mpx_client_options {
  uint32_t size;       /**< sizeof(mpx_client_options) */
  uint32_t flags;      /**< MPX_AUTH_REQUIRE_SHA256 */
  const void *authkey; /**< the key; NULL: no authentication */
  size_t authkey_len;  /**< its length in bytes (not 0 when authkey is set) */
  int64_t timeout_ms;  /**< connect and handshake deadline; 0: MPX_HANDSHAKE_DEFAULT_TIMEOUT_MS */
  uint64_t max_message; /**< the connection's receive limit; 0: the default */
} mpx_client_options;

/** Fill opts with defaults. struct_size is sizeof(mpx_listener_options). */
MPX_API int mpx_listener_options_init(mpx_listener_options *opts, size_t struct_size);

/** Fill opts with defaults. struct_size is sizeof(mpx_client_options). */
MPX_API int mpx_client_options_init(mpx_client_options *opts, size_t struct_size);

/**
 * Bind and listen on address (see the top of this header); opts may be NULL. A library
 * thread accepts connections and runs their handshakes concurrently, each bounded by the
 * handshake timeout (a silent or slow client is dropped then, without delaying others);
 * authenticated connections wait for mpx_listener_accept. Without an authkey only local
 * clients are accepted (unix sockets, TCP from loopback) unless MPX_LISTENER_ALLOW_REMOTE
 * is set. A unix socket file is made 0600 and removed by close. MPX_EADDRINUSE when the
 * address is taken.
 */
MPX_API int mpx_listener_create(mpx_listener **out, const char *address, const mpx_listener_options *opts);

/**
 * Take the next authenticated connection: *conn receives a new handle. MPX_ETIMEDOUT when
 * none came in time; MPX_ECLOSED once the listener is closed (also waking a blocked call).
 * A client that failed authentication is reported once, in turn, as MPX_EAUTH (the message
 * names its address), as Python's accept() raises AuthenticationError: the listener goes on,
 * call accept again. Clients dropped for other reasons (their deadline, a protocol error, a
 * hang-up, a remote peer of a keyless listener) are not reported.
 */
MPX_API int mpx_listener_accept(mpx_listener *l, int64_t timeout_ms, mpx_conn **conn);

/**
 * The address listened on, in the form given (a TCP port 0 replaced by the real port;
 * "[v6]:port" for IPv6). buf/len as with the other string getters: *len in = capacity,
 * out = length; MPX_ENOBUFS with *len = the capacity needed.
 */
MPX_API int mpx_listener_address(mpx_listener *l, char *buf, size_t *len);

/**
 * The peer address of the last connection mpx_listener_accept returned ("host:port" for
 * TCP; "" for an unnamed unix socket peer, as Python reports it). MPX_ENOENT before the
 * first accept.
 */
MPX_API int mpx_listener_last_accepted(mpx_listener *l, char *buf, size_t *len);

/**
 * Stop listening: the socket is closed (a unix socket file removed), handshakes in
 * progress and connections not yet accepted are dropped, and mpx_listener_accept returns
 * MPX_ECLOSED from then on. The handle stays valid until mpx_listener_destroy.
 */
MPX_API int mpx_listener_close(mpx_listener *l);

/** Close (if not already) and free the listener. NULL is accepted. */
MPX_API int mpx_listener_destroy(mpx_listener *l);

/**
 * Connect to address (Python's Client) and, with an authkey, answer the listener's
 * challenge and then challenge it (mutual authentication). *out receives the connection.
 * MPX_EAUTH when a key is wrong (on either side); MPX_ETIMEDOUT past opts->timeout_ms.
 */
MPX_API int mpx_client_connect(mpx_conn **out, const char *address, const mpx_client_options *opts);

/**
 * Challenge the peer on an existing connection (Python's deliver_challenge): send a
 * "{sha256}" challenge, check its answer, reply #WELCOME# or #FAILURE#. MPX_EAUTH when the
 * answer is wrong (or legacy while flags has MPX_AUTH_REQUIRE_SHA256). timeout_ms bounds
 * the wait for each handshake message.
 */
MPX_API int mpx_conn_deliver_challenge(mpx_conn *conn, const void *authkey, size_t authkey_len, uint32_t flags,
                                       int64_t timeout_ms);

/**
 * Answer the peer's challenge on an existing connection (Python's answer_challenge).
 * MPX_EAUTH when the peer rejects the answer or sends no valid challenge.
 */
MPX_API int mpx_conn_answer_challenge(mpx_conn *conn, const void *authkey, size_t authkey_len, uint32_t flags,
                                      int64_t timeout_ms);

#ifdef __cplusplus
}
#endif

#endif /* MPX_LISTENER_H */
