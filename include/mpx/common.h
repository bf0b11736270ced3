/*
 * mpx/common.h - conventions shared by every mpx module: export macro, error codes,
 * version, timeouts, tokens and library-owned memory.
 *
 * Every function returns int: MPX_OK (0) or a negative MPX_E* code. Error numbers are
 * pinned forever and never reused. Detail for the calling thread's last failure is in
 * mpx_last_error_message().
 */
#ifndef MPX_COMMON_H
#define MPX_COMMON_H

#include <stddef.h>
#include <stdint.h>

#if defined(_WIN32)
#  if defined(MPX_BUILDING)
#    define MPX_API __declspec(dllexport)
#  elif defined(MPX_STATIC)
#    define MPX_API
#  else
#    define MPX_API __declspec(dllimport)
#  endif
#else
#  if defined(MPX_BUILDING)
#    define MPX_API __attribute__((visibility("default")))
#  else
#    define MPX_API
#  endif
#endif

#ifdef __cplusplus
extern "C" {
#endif

/** Library version (semantic). The ABI version is the SONAME's number, MPX_ABI_VERSION. */
#define MPX_VERSION_MAJOR 0
#define MPX_VERSION_MINOR 1
#define MPX_VERSION_PATCH 0
#define MPX_VERSION_NUMBER (MPX_VERSION_MAJOR * 10000 + MPX_VERSION_MINOR * 100 + MPX_VERSION_PATCH)
#define MPX_ABI_VERSION 0

/** Block forever (any negative timeout does). A timeout of 0 tries once. */
#define MPX_INFINITE (-INT64_C(1))

/** Largest token string mpx produces, including the terminating NUL. */
#define MPX_TOKEN_MAX 256

/* Error codes. Pinned: a number, once shipped, keeps its meaning forever. */
#define MPX_OK 0
#define MPX_EINVAL -1           /**< invalid argument: NULL, bad size, bad option */
#define MPX_ENOMEM -2           /**< out of memory */
#define MPX_EBADHANDLE -3       /**< handle destroyed, of the wrong type, or never issued */
#define MPX_ETIMEDOUT -4        /**< the timeout expired (also: a try with timeout 0 failed) */
#define MPX_EEXIST -5           /**< the name already exists */
#define MPX_ENOENT -6           /**< no such name or file */
#define MPX_EACCES -7           /**< permission denied (also: unsafe owner or mode) */
#define MPX_EPERM -8            /**< operation not permitted (e.g. release by a non-owner) */
#define MPX_EOWNERDEAD -9       /**< acquired, but the previous owner died holding it */
#define MPX_ENOTRECOVERABLE -10 /**< the lock was released inconsistent and is unusable */
#define MPX_EOVERFLOW -11       /**< a counter would exceed its maximum */
#define MPX_EBROKEN -12         /**< the object is broken (barrier aborted, timed out, reset) */
#define MPX_ECLOSED -13         /**< the object was closed */
#define MPX_ECORRUPT -14        /**< shared state failed validation */
#define MPX_ENOBUFS -15         /**< caller's buffer too small; the needed size is returned */
#define MPX_EFORKED -16         /**< handle may not be used in a forked child */
#define MPX_ENOTSUP -17         /**< not supported on this system */
#define MPX_ESYS -18            /**< other operating-system error (detail in the message) */
#define MPX_ERANGE -19          /**< index out of range */
#define MPX_EMFILE -20          /**< too many open files */
#define MPX_ENOSPC -21          /**< no space left (shared memory full) */
#define MPX_EMSGSIZE -22        /**< message too large */
#define MPX_EOF -23             /**< end of stream: the peer closed */
#define MPX_EPROTO -24          /**< protocol error */
#define MPX_EPIPE -25           /**< the reader has gone */
#define MPX_EAUTH -26           /**< authentication failed */
#define MPX_EWORKERDIED -27     /**< the worker running the task died */
#define MPX_EADDRINUSE -28      /**< address already in use */
#define MPX_EAGAIN -29          /**< resource temporarily unavailable */
#define MPX_EDEADLK -30         /**< the operation would deadlock */
#define MPX_ETASK -31           /**< the task itself failed (its function returned an error, or raised) */
#define MPX_ECANCELED -32       /**< the task was cancelled, or its pool terminated, before it ended */
#define MPX_ERRNO_LAST -32      /**< the lowest code defined by this version */

/** Static English description of an error code ("unknown error" for unknown codes). */
MPX_API const char *mpx_strerror(int code);

/** Symbolic name of an error code, e.g. "MPX_ETIMEDOUT" ("MPX_EUNKNOWN" when unknown). */
MPX_API const char *mpx_error_name(int code);

/**
 * Detail of the calling thread's most recent failed mpx call (never NULL, "" if none).
 * Valid until the thread's next mpx call.
 */
MPX_API const char *mpx_last_error_message(void);

/** The library's version as MPX_VERSION_NUMBER (compare with the header you built with). */
MPX_API uint32_t mpx_version(void);

/** The library's version as a string, e.g. "0.1.0". */
MPX_API const char *mpx_version_string(void);

/** Release memory the library allocated for the caller. NULL is ignored. */
MPX_API void mpx_free(void *ptr);

#ifdef __cplusplus
}
#endif

#endif /* MPX_COMMON_H */
