// Shared objects: every lock, semaphore, value... is a header (magic, layout version, type,
// size, check) plus a body, at a 64-byte aligned offset of a segment. The creator writes the
// header last; an attacher validates it against the segment's real size before trusting it,
// and every operation re-checks it, so scribbled-over state reads as MPX_ECORRUPT.
#pragma once

#include <cstdint>
#include <cstring>
#include <memory>
#include <string>

#include "core/error.hpp"
#include "shm/segment.hpp"

namespace mpx {

enum class ObjType : uint16_t { lock = 1, semaphore = 2, event = 3, condition = 4, barrier = 5, array = 6, queue = 7, pool = 8 };

const char *obj_type_name(ObjType t) noexcept;

struct ObjectHeader {
  uint32_t magic;
  uint16_t version;
  uint16_t type;
  uint32_t size;  // header + body, bytes
  uint32_t check;
};
static_assert(sizeof(ObjectHeader) == 16);

constexpr uint32_t kObjectMagic = 0x4f58504du;  // "MPXO"
constexpr uint16_t kLayoutVersion = 1;
constexpr size_t kObjectAlign = 64;

// Where an object lives; keeps its segment mapped for as long as the placement exists.
class Placement {
 public:
  Placement() = default;

  // Allocate header + body_bytes (zeroed) in this process's arena, or in a segment of its
  // own when large. The header is not written until publish().
  static Status allocate(ObjType type, size_t body_bytes, Placement *out);
  // Write the header: the object becomes attachable.
  void publish();
  // Attach the object a token names, checking type and that at least min_body bytes exist.
  static Status attach(const char *token, ObjType type, size_t min_body, Placement *out);

  template <typename T>
  T *body() const {
    return reinterpret_cast<T *>(reinterpret_cast<uint8_t *>(hdr_) + sizeof(ObjectHeader));
  }
  size_t body_size() const { return expected_.size - sizeof(ObjectHeader); }
  uint64_t offset() const { return offset_; }
  const std::shared_ptr<Segment> &segment() const { return seg_; }
  std::string token() const { return seg_->token(offset_); }

  // The shared header still matches what was validated at attach.
  __attribute__((always_inline)) bool header_ok() const noexcept {
    uint64_t a = __atomic_load_n(reinterpret_cast<const uint64_t *>(hdr_), __ATOMIC_RELAXED);
    uint64_t b = __atomic_load_n(reinterpret_cast<const uint64_t *>(hdr_) + 1, __ATOMIC_RELAXED);
    uint64_t ea, eb;
    std::memcpy(&ea, &expected_, 8);
    std::memcpy(&eb, reinterpret_cast<const uint8_t *>(&expected_) + 8, 8);
    return a == ea && b == eb;
  }
  [[gnu::cold]] Status corrupt() const noexcept;  // the MPX_ECORRUPT failure, with detail

 private:
  static Status validate(std::shared_ptr<Segment> seg, uint64_t offset, ObjType type, size_t min_body,
                         Placement *out);
  std::shared_ptr<Segment> seg_;
  uint64_t offset_ = 0;
  ObjectHeader *hdr_ = nullptr;
  ObjectHeader expected_{};
};

}  // namespace mpx
