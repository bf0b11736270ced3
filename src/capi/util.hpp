// Helpers for the C entry points: the only code that knows the C ABI's shapes.
#pragma once

#include <cstring>
#include <new>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "core/handle.hpp"

namespace mpx::capi {

// Run f (which may throw) and turn any exception into an error code.
template <typename F>
int guarded(F &&f) noexcept {
  try {
    return f();
  } catch (const std::bad_alloc &) {
    return fail(MPX_ENOMEM, "out of memory");
  } catch (const std::exception &e) {
    return fail(MPX_ESYS, "internal error: {}", e.what());
  } catch (...) {
    return fail(MPX_ESYS, "internal error");
  }
}

// An options struct passed in: NULL means defaults; otherwise its size field must be one
// this library knows.
template <typename Opts>
Status check_options(const Opts *opts, const char *what) noexcept {
  if (opts && opts->size != sizeof(Opts))
    return fail(MPX_EINVAL, "{}.size is {}, expected {} (initialise it with {}_init)", what, opts->size,
                sizeof(Opts), what);
  return MPX_OK;
}

template <typename Opts>
Status init_options(Opts *opts, size_t struct_size, const char *what) noexcept {
  if (!opts) return fail(MPX_EINVAL, "{} is NULL", what);
  if (struct_size != sizeof(Opts))
    return fail(MPX_EINVAL, "{} size {} does not match this library's {}", what, struct_size, sizeof(Opts));
  std::memset(static_cast<void *>(opts), 0, sizeof(Opts));
  opts->size = uint32_t(sizeof(Opts));
  return MPX_OK;
}

// Copy a string out through (buf, *len): *len in = capacity, out = length written without
// the NUL; too small: MPX_ENOBUFS with *len = the capacity needed (with the NUL).
inline Status copy_out(const std::string &s, char *buf, size_t *len) noexcept {
  if (!len) return fail(MPX_EINVAL, "len is NULL");
  if (!buf && *len > 0) return fail(MPX_EINVAL, "buffer is NULL but *len is {}", *len);
  if (*len < s.size() + 1) {
    const size_t have = *len;
    *len = s.size() + 1;
    return fail(MPX_ENOBUFS, "buffer of {} bytes is too small; {} needed", have, s.size() + 1);
  }
  std::memcpy(buf, s.c_str(), s.size() + 1);
  *len = s.size();
  return MPX_OK;
}

// Copy items out through (out, *count): *count in = capacity, out = number written; too
// small: MPX_ENOBUFS with *count = the number needed. `unit` names the items in messages.
template <typename T, typename U>
Status copy_out_items(const std::vector<T> &items, U *out, size_t *count, const char *unit) noexcept {
  if (!count) return fail(MPX_EINVAL, "count is NULL");
  if (!out && *count > 0) return fail(MPX_EINVAL, "the buffer is NULL but its capacity is {}", *count);
  if (*count < items.size()) {
    const size_t have = *count;
    *count = items.size();
    return fail(MPX_ENOBUFS, "room for {} {}; {} needed", have, unit, items.size());
  }
  for (size_t i = 0; i < items.size(); ++i) out[i] = static_cast<U>(items[i]);
  *count = items.size();
  return MPX_OK;
}

// Create an object of type T with `make(T*)`, register it and return its handle in *out.
template <typename Handle, typename T, typename Make>
int create_handle(Handle **out, Make &&make) noexcept {
  if (!out) return fail(MPX_EINVAL, "out is NULL");
  *out = nullptr;
  return guarded([&]() -> int {
    T *obj = new T();
    if (Status s = make(obj); s != MPX_OK) {
      delete obj;
      return s;
    }
    void *h;
    if (Status s = insert_handle(obj, &h); s != MPX_OK) return s;
    *out = static_cast<Handle *>(h);
    return MPX_OK;
  });
}

// Early-return helper for pinning a handle.
#define MPX_PIN(var, T, handle, type)                         \
  ::mpx::Pinned<T> var;                                      \
  if (::mpx::Status pin_status_ = var.pin((handle), (type)); \
      pin_status_ != MPX_OK)                                 \
  return pin_status_

#define MPX_REQUIRE(cond, ...) \
  if (!(cond)) return ::mpx::fail(MPX_EINVAL, __VA_ARGS__)

}  // namespace mpx::capi
