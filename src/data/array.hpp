// Typed shared arrays (Python's Value/Array/RawValue/RawArray): a header, the element
// type and count, the token of the array's lock (if any), then the elements, 64-byte aligned.
#pragma once

#include <cstdint>
#include <optional>

#include "core/handle.hpp"
#include "shm/object.hpp"
#include "sync/lock.hpp"

namespace mpx {

struct ArrayBody {
  uint64_t length;
  uint64_t data_offset;  // from the object header
  uint32_t item_size;
  uint8_t typecode;
  uint8_t lock_kind;  // MPX_ARRAY_LOCK_*
  uint16_t reserved;
  char lock_token[256];
};

// Size of one element of a Python typecode, 0 if unknown.
size_t typecode_size(char typecode) noexcept;

class ArrayObject final : public Object {
 public:
  ArrayObject() : Object(HandleType::array) {}
  static Status create(char typecode, size_t length, uint32_t lock_kind, ArrayObject *out);
  static Status open(Placement place, ArrayObject *out);

  Status check() const noexcept;
  uint8_t *data() const { return data_; }
  size_t length() const { return length_; }
  size_t item_size() const { return item_size_; }
  char typecode() const { return typecode_; }
  bool has_lock() const { return lock_kind_ != 2; }
  const std::string &lock_token() const { return lock_token_; }
  const Placement &placement() const { return place_; }

  Status get(size_t index, void *out, size_t out_size) noexcept;
  Status set(size_t index, const void *in, size_t in_size) noexcept;
  Status read(size_t start, size_t count, void *buf, size_t buf_size) noexcept;
  Status write(size_t start, size_t count, const void *buf, size_t buf_size) noexcept;

 private:
  Status span(size_t start, size_t count, size_t bytes, const void *buf) const noexcept;
  Placement place_;
  ArrayBody *b_ = nullptr;
  uint8_t *data_ = nullptr;
  size_t length_ = 0;
  size_t item_size_ = 0;
  char typecode_ = 0;
  uint32_t lock_kind_ = 0;
  std::string lock_token_;
};

}  // namespace mpx
