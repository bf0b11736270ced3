// Python's multiprocessing.connection framing, byte for byte: a message of n bytes is
// struct.pack("!i", n) + payload, or, when n > 0x7fffffff, struct.pack("!i", -1) +
// struct.pack("!Q", n) + payload. Any other negative length is a protocol error.
#pragma once

#include <cstddef>
#include <cstdint>

namespace mpx::conn {

constexpr size_t kShortHeader = 4;
constexpr size_t kLongHeader = 12;  // -1, then the 8-byte length
constexpr uint64_t kMaxShortLength = 0x7fffffff;

inline void put_be32(uint8_t *p, uint32_t v) {
  p[0] = uint8_t(v >> 24);
  p[1] = uint8_t(v >> 16);
  p[2] = uint8_t(v >> 8);
  p[3] = uint8_t(v);
}

inline uint32_t get_be32(const uint8_t *p) {
  return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | uint32_t(p[3]);
}

inline void put_be64(uint8_t *p, uint64_t v) {
  put_be32(p, uint32_t(v >> 32));
  put_be32(p + 4, uint32_t(v));
}

inline uint64_t get_be64(const uint8_t *p) { return uint64_t(get_be32(p)) << 32 | get_be32(p + 4); }

// Write the header of an n-byte message to out (room for kLongHeader); returns its length.
inline size_t encode_header(uint64_t n, uint8_t *out) {
  if (n <= kMaxShortLength) {
    put_be32(out, uint32_t(n));
    return kShortHeader;
  }
  put_be32(out, 0xffffffffu);
  put_be64(out + 4, n);
  return kLongHeader;
}

// The first 4 bytes of a header: the length, or kLongForm (8 more bytes follow), or
// kBadLength (negative, not -1).
constexpr int64_t kLongForm = -1;
constexpr int64_t kBadLength = -2;
inline int64_t decode_short(const uint8_t *p) {
  const int32_t v = int32_t(get_be32(p));
  if (v >= 0) return v;
  return v == -1 ? kLongForm : kBadLength;
}

}  // namespace mpx::conn
