/*
 * mpx/array.h - typed shared values and arrays (Python's Value, Array, RawValue, RawArray).
 *
 * Elements use Python's array typecodes: 'c' char, 'b' int8, 'B' uint8, 'h' short,
 * 'H' unsigned short, 'i' int, 'I' unsigned int, 'l' long, 'L' unsigned long,
 * 'q' long long, 'Q' unsigned long long, 'f' float, 'd' double, with this platform's C sizes
 * (so memory is shared as-is with ctypes). An array carries a lock (an RLock by default, like
 * Python) unless created raw; element access through this API never takes it: take the lock
 * around compound updates, as in Python (`with v.get_lock(): v.value += 1`).
 * A value is an array of length 1.
 */
#ifndef MPX_ARRAY_H
#define MPX_ARRAY_H

#include "mpx/common.h"
#include "mpx/sync.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mpx_array mpx_array;

/** mpx_array_options.lock: which lock the array carries. */
#define MPX_ARRAY_LOCK_RLOCK 0 /**< default: a recursive lock, as Python's Value/Array */
#define MPX_ARRAY_LOCK_LOCK 1  /**< a plain Lock */
#define MPX_ARRAY_LOCK_NONE 2  /**< raw: no lock (RawValue/RawArray) */

typedef struct mpx_array_options {
  uint32_t size; /**< sizeof(mpx_array_options) */
  uint32_t lock; /**< MPX_ARRAY_LOCK_* */
} mpx_array_options;

/** Fill opts with defaults (with an RLock). struct_size is sizeof(mpx_array_options). */
MPX_API int mpx_array_options_init(mpx_array_options *opts, size_t struct_size);

/** Size in bytes of one element of `typecode`; MPX_EINVAL for an unknown typecode. */
MPX_API int mpx_typecode_size(char typecode, size_t *item_size);

/**
 * Create a zero-filled array of `length` elements (>= 1) of `typecode`. opts may be NULL.
 * A value: length 1.
 */
MPX_API int mpx_array_create(mpx_array **out, char typecode, size_t length, const mpx_array_options *opts);
/** Attach the array a token names. */
MPX_API int mpx_array_attach(mpx_array **out, const char *token);
/** Close this handle. The memory stays valid for other handles and processes. */
MPX_API int mpx_array_destroy(mpx_array *arr);
/** *length = the number of elements. */
MPX_API int mpx_array_length(mpx_array *arr, size_t *length);
/** *typecode = the Python typecode of the elements. */
MPX_API int mpx_array_typecode(mpx_array *arr, char *typecode);
/** *item_size = the size of one element in bytes. */
MPX_API int mpx_array_item_size(mpx_array *arr, size_t *item_size);
/** Address of element 0 in this process (valid while the handle lives). */
MPX_API int mpx_array_address(mpx_array *arr, void **addr);
/** Copy element `index` into out; out_size must equal the item size. MPX_ERANGE past the end. */
MPX_API int mpx_array_get(mpx_array *arr, size_t index, void *out, size_t out_size);
/** Store element `index` from in; in_size must equal the item size. */
MPX_API int mpx_array_set(mpx_array *arr, size_t index, const void *in, size_t in_size);
/** Copy `count` elements starting at `start` out to buf (bytes = count * item size). */
MPX_API int mpx_array_read(mpx_array *arr, size_t start, size_t count, void *buf, size_t buf_size);
/** Copy `count` elements from buf into the array starting at `start`. */
MPX_API int mpx_array_write(mpx_array *arr, size_t start, size_t count, const void *buf, size_t buf_size);
/** A new handle to the array's lock (destroy it when done); MPX_ENOENT for a raw array. */
MPX_API int mpx_array_lock(mpx_array *arr, mpx_lock **lock);
/** Token naming this array; *len in/out as for mpx_segment_name. */
MPX_API int mpx_array_token(mpx_array *arr, char *buf, size_t *len);

#ifdef __cplusplus
}
#endif

#endif /* MPX_ARRAY_H */
