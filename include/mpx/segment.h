/*
 * mpx/segment.h - shared memory segments.
 *
 * An anonymous segment (memfd) is inherited by forked children and disappears when the
 * last process holding it is gone, crash or not. A named segment (POSIX shm_open, mode
 * 0600) can be attached by name from any process of the same user until it is unlinked.
 * Naming and unlinking are separate calls: closing a handle never unlinks.
 */
#ifndef MPX_SEGMENT_H
#define MPX_SEGMENT_H

#include "mpx/common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mpx_segment mpx_segment;

/** Longest segment name accepted, without the leading '/' and the NUL. */
#define MPX_SEGMENT_NAME_MAX 200

/** mpx_segment_options.flags: create a named segment with a fresh random name. */
#define MPX_SEGMENT_RANDOM_NAME 0x1u

/**
 * mpx_segment_options.flags: do not track this named segment. By default, once the creating
 * process has exited (or was killed) and no process holds the segment any more, the name is
 * removed; an untracked segment stays until someone unlinks it (Python's track=False).
 */
#define MPX_SEGMENT_UNTRACKED 0x2u

typedef struct mpx_segment_options {
  uint32_t size;    /**< sizeof(mpx_segment_options), set by mpx_segment_options_init */
  uint32_t flags;   /**< MPX_SEGMENT_* flags; 0 = anonymous unless name is set */
  const char *name; /**< NULL: anonymous (or random with MPX_SEGMENT_RANDOM_NAME); else the name
                         to create, with or without a leading '/', no other '/' */
} mpx_segment_options;

/** Fill opts with defaults. struct_size is sizeof(mpx_segment_options) as the caller knows it. */
MPX_API int mpx_segment_options_init(mpx_segment_options *opts, size_t struct_size);

/**
 * Create a segment of `bytes` bytes (> 0), zero-filled, mapped read-write.
 * A named segment is created exclusively with mode 0600: MPX_EEXIST if the name exists.
 * opts may be NULL (anonymous).
 */
MPX_API int mpx_segment_create(mpx_segment **out, size_t bytes, const mpx_segment_options *opts);

/** Attach an existing named segment: MPX_ENOENT if missing, MPX_EACCES if not ours or not 0600. */
MPX_API int mpx_segment_attach(mpx_segment **out, const char *name);

/** Attach the segment a token names (see mpx_segment_token). */
MPX_API int mpx_segment_attach_token(mpx_segment **out, const char *token);

/** Unmap and close this handle. The segment itself lives on while others use it or its name. */
MPX_API int mpx_segment_destroy(mpx_segment *seg);

/** Remove the segment's name (named segments only); MPX_ENOENT if already unlinked. */
MPX_API int mpx_segment_unlink(mpx_segment *seg);

/** Remove a segment name without attaching it; MPX_ENOENT if missing. */
MPX_API int mpx_segment_unlink_name(const char *name);

/** Address of the mapping in this process. */
MPX_API int mpx_segment_address(mpx_segment *seg, void **addr);

/** Size of the segment in bytes. */
MPX_API int mpx_segment_size(mpx_segment *seg, size_t *bytes);

/**
 * Name of a named segment, without the leading '/'. *len is the buffer size on input and the
 * length written (without NUL) on output; MPX_ENOBUFS with *len = needed size (with NUL) when
 * too small. An anonymous segment has the empty name.
 */
MPX_API int mpx_segment_name(mpx_segment *seg, char *buf, size_t *len);

/** The file descriptor behind the mapping (owned by the handle; do not close it). */
MPX_API int mpx_segment_fd(mpx_segment *seg, int *fd);

/**
 * A printable token from which another process of the same user attaches this segment with
 * mpx_segment_attach_token, also when the segment is anonymous (while its creator lives or
 * the process holds the inherited descriptor). *len as for mpx_segment_name.
 */
MPX_API int mpx_segment_token(mpx_segment *seg, char *buf, size_t *len);

#ifdef __cplusplus
}
#endif

#endif /* MPX_SEGMENT_H */
