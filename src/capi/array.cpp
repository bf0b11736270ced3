// C entry points of mpx/array.h.
#include "mpx/array.h"

#include "capi/util.hpp"
#include "data/array.hpp"

using namespace mpx;
using namespace mpx::capi;

extern "C" {

MPX_API int mpx_array_options_init(mpx_array_options *opts, size_t struct_size) {
  return init_options(opts, struct_size, "mpx_array_options");
}

MPX_API int mpx_typecode_size(char typecode, size_t *item_size) {
  MPX_REQUIRE(item_size, "item_size is NULL");
  const size_t n = typecode_size(typecode);
  if (n == 0) return fail(MPX_EINVAL, "unknown typecode '{}'", typecode);
  *item_size = n;
  return MPX_OK;
}

MPX_API int mpx_array_create(mpx_array **out, char typecode, size_t length, const mpx_array_options *opts) {
  if (out) *out = nullptr;
  if (Status s = check_options(opts, "mpx_array_options"); s != MPX_OK) return s;
  return create_handle<mpx_array, ArrayObject>(out, [&](ArrayObject *o) {
    return ArrayObject::create(typecode, length, opts ? opts->lock : MPX_ARRAY_LOCK_RLOCK, o);
  });
}

MPX_API int mpx_array_attach(mpx_array **out, const char *token) {
  return create_handle<mpx_array, ArrayObject>(out, [&](ArrayObject *o) -> Status {
    Placement p;
    if (Status s = Placement::attach(token, ObjType::array, sizeof(ArrayBody), &p); s != MPX_OK) return s;
    return ArrayObject::open(std::move(p), o);
  });
}

MPX_API int mpx_array_destroy(mpx_array *arr) { return destroy_handle(arr, HandleType::array); }

MPX_API int mpx_array_length(mpx_array *arr, size_t *length) {
  MPX_REQUIRE(length, "length is NULL");
  MPX_PIN(a, ArrayObject, arr, HandleType::array);
  if (Status s = a->check(); s != MPX_OK) return s;
  *length = a->length();
  return MPX_OK;
}

MPX_API int mpx_array_typecode(mpx_array *arr, char *typecode) {
  MPX_REQUIRE(typecode, "typecode is NULL");
  MPX_PIN(a, ArrayObject, arr, HandleType::array);
  if (Status s = a->check(); s != MPX_OK) return s;
  *typecode = a->typecode();
  return MPX_OK;
}

MPX_API int mpx_array_item_size(mpx_array *arr, size_t *item_size) {
  MPX_REQUIRE(item_size, "item_size is NULL");
  MPX_PIN(a, ArrayObject, arr, HandleType::array);
  if (Status s = a->check(); s != MPX_OK) return s;
  *item_size = a->item_size();
  return MPX_OK;
}

MPX_API int mpx_array_address(mpx_array *arr, void **addr) {
  MPX_REQUIRE(addr, "addr is NULL");
  MPX_PIN(a, ArrayObject, arr, HandleType::array);
  if (Status s = a->check(); s != MPX_OK) return s;
  *addr = a->data();
  return MPX_OK;
}

MPX_API int mpx_array_get(mpx_array *arr, size_t index, void *out, size_t out_size) {
  MPX_REQUIRE(out, "out is NULL");
  MPX_PIN(a, ArrayObject, arr, HandleType::array);
  return a->get(index, out, out_size);
}

MPX_API int mpx_array_set(mpx_array *arr, size_t index, const void *in, size_t in_size) {
  MPX_REQUIRE(in, "in is NULL");
  MPX_PIN(a, ArrayObject, arr, HandleType::array);
  return a->set(index, in, in_size);
}

MPX_API int mpx_array_read(mpx_array *arr, size_t start, size_t count, void *buf, size_t buf_size) {
  MPX_PIN(a, ArrayObject, arr, HandleType::array);
  return a->read(start, count, buf, buf_size);
}

MPX_API int mpx_array_write(mpx_array *arr, size_t start, size_t count, const void *buf, size_t buf_size) {
  MPX_PIN(a, ArrayObject, arr, HandleType::array);
  return a->write(start, count, buf, buf_size);
}

MPX_API int mpx_array_lock(mpx_array *arr, mpx_lock **lock) {
  MPX_REQUIRE(lock, "lock is NULL");
  *lock = nullptr;
  MPX_PIN(a, ArrayObject, arr, HandleType::array);
  if (Status s = a->check(); s != MPX_OK) return s;
  if (!a->has_lock()) return fail(MPX_ENOENT, "a raw array has no lock");
  return mpx_lock_attach(lock, a->lock_token().c_str());
}

MPX_API int mpx_array_token(mpx_array *arr, char *buf, size_t *len) {
  MPX_REQUIRE(len, "len is NULL");
  MPX_PIN(a, ArrayObject, arr, HandleType::array);
  return guarded([&] { return copy_out(a->placement().token(), buf, len); });
}

}  // extern "C"
