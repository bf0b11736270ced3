#include "data/array.hpp"

#include <cstring>

#include "mpx/array.h"

namespace mpx {

size_t typecode_size(char typecode) noexcept {
  switch (typecode) {
    case 'c': return sizeof(char);
    case 'b': return sizeof(signed char);
    case 'B': return sizeof(unsigned char);
    case 'h': return sizeof(short);
    case 'H': return sizeof(unsigned short);
    case 'i': return sizeof(int);
    case 'I': return sizeof(unsigned int);
    case 'l': return sizeof(long);
    case 'L': return sizeof(unsigned long);
    case 'q': return sizeof(long long);
    case 'Q': return sizeof(unsigned long long);
    case 'f': return sizeof(float);
    case 'd': return sizeof(double);
    default: return 0;
  }
}

namespace {
constexpr size_t kDataOffset = (sizeof(ObjectHeader) + sizeof(ArrayBody) + 63) & ~size_t(63);
}

Status ArrayObject::create(char typecode, size_t length, uint32_t lock_kind, ArrayObject *out) {
  const size_t item = typecode_size(typecode);
  if (item == 0) return fail(MPX_EINVAL, "unknown typecode '{}'", typecode);
  if (length == 0) return fail(MPX_EINVAL, "array length must be at least 1");
  if (lock_kind > MPX_ARRAY_LOCK_NONE) return fail(MPX_EINVAL, "unknown array lock kind {}", lock_kind);
  if (length > (UINT32_MAX - kDataOffset) / item)
    return fail(MPX_EINVAL, "array of {} x {} bytes is too large", length, item);
  std::string token;
  if (lock_kind != MPX_ARRAY_LOCK_NONE) {
    SharedLock lock;
    if (Status s = SharedLock::create(lock_kind == MPX_ARRAY_LOCK_RLOCK, &lock); s != MPX_OK) return s;
    token = lock.placement().token();
  }
  Placement p;
  const size_t body = kDataOffset - sizeof(ObjectHeader) + length * item;
  if (Status s = Placement::allocate(ObjType::array, body, &p); s != MPX_OK) return s;
  auto *b = p.body<ArrayBody>();
  b->length = length;
  b->data_offset = kDataOffset;
  b->item_size = uint32_t(item);
  b->typecode = uint8_t(typecode);
  b->lock_kind = uint8_t(lock_kind);
  std::memcpy(b->lock_token, token.c_str(), token.size() + 1);
  p.publish();
  return open(std::move(p), out);
}

Status ArrayObject::open(Placement place, ArrayObject *out) {
  auto *b = place.body<ArrayBody>();
  ArrayBody copy;
  std::memcpy(&copy, b, sizeof copy);
  const size_t item = typecode_size(char(copy.typecode));
  const size_t total = place.body_size() + sizeof(ObjectHeader);
  if (item == 0 || copy.item_size != item || copy.length == 0 || copy.lock_kind > MPX_ARRAY_LOCK_NONE ||
      copy.data_offset != kDataOffset || copy.length > (total - kDataOffset) / item ||
      !std::memchr(copy.lock_token, '\0', sizeof copy.lock_token) ||
      (copy.lock_kind != MPX_ARRAY_LOCK_NONE) != (copy.lock_token[0] != '\0'))
    return place.corrupt();
  out->b_ = b;
  out->length_ = size_t(copy.length);
  out->item_size_ = item;
  out->typecode_ = char(copy.typecode);
  out->lock_kind_ = copy.lock_kind;
  out->lock_token_ = copy.lock_token;
  out->data_ = reinterpret_cast<uint8_t *>(b) - sizeof(ObjectHeader) + kDataOffset;
  out->place_ = std::move(place);
  return MPX_OK;
}

Status ArrayObject::check() const noexcept {
  if (!place_.header_ok() || __atomic_load_n(&b_->length, __ATOMIC_RELAXED) != length_ ||
      __atomic_load_n(&b_->typecode, __ATOMIC_RELAXED) != uint8_t(typecode_) ||
      __atomic_load_n(&b_->item_size, __ATOMIC_RELAXED) != item_size_)
    return place_.corrupt();
  return MPX_OK;
}

Status ArrayObject::span(size_t start, size_t count, size_t bytes, const void *buf) const noexcept {
  if (Status s = check(); s != MPX_OK) return s;
  if (!buf && bytes > 0) return fail(MPX_EINVAL, "buffer is NULL");
  if (count > length_ || start > length_ - count)
    return fail(MPX_ERANGE, "elements [{}, {}+{}) are outside an array of {}", start, start, count, length_);
  if (bytes != count * item_size_)
    return fail(MPX_EINVAL, "buffer of {} bytes for {} elements of {} bytes", bytes, count, item_size_);
  return MPX_OK;
}

Status ArrayObject::get(size_t index, void *out, size_t out_size) noexcept {
  if (Status s = span(index, 1, out_size, out); s != MPX_OK) return s;
  std::memcpy(out, data_ + index * item_size_, item_size_);
  return MPX_OK;
}

Status ArrayObject::set(size_t index, const void *in, size_t in_size) noexcept {
  if (Status s = span(index, 1, in_size, in); s != MPX_OK) return s;
  std::memcpy(data_ + index * item_size_, in, item_size_);
  return MPX_OK;
}

Status ArrayObject::read(size_t start, size_t count, void *buf, size_t buf_size) noexcept {
  if (Status s = span(start, count, buf_size, buf); s != MPX_OK) return s;
  if (count) std::memcpy(buf, data_ + start * item_size_, count * item_size_);
  return MPX_OK;
}

Status ArrayObject::write(size_t start, size_t count, const void *buf, size_t buf_size) noexcept {
  if (Status s = span(start, count, buf_size, buf); s != MPX_OK) return s;
  if (count) std::memcpy(data_ + start * item_size_, buf, count * item_size_);
  return MPX_OK;
}

}  // namespace mpx
