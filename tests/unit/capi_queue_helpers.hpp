// Helpers shared by the queue tests (capi_queue*.cpp): RAII queues, options, item patterns.
#pragma once

#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "support/mpx_helpers.hpp"

namespace mpxt {

using QueuePtr = std::unique_ptr<mpx_queue, Destroyer<mpx_queue, mpx_queue_destroy>>;

struct QueueSpec {
  uint64_t maxsize = 0;
  uint64_t capacity = 0;
  uint64_t max_message = 0;
  bool joinable = false;
};

inline QueuePtr make_queue(const QueueSpec &spec = {}) {
  mpx_queue_options o;
  mpx_queue_options_init(&o, sizeof o);
  o.maxsize = spec.maxsize;
  o.capacity = spec.capacity;
  o.max_message = spec.max_message;
  o.flags = spec.joinable ? MPX_QUEUE_JOINABLE : 0u;
  mpx_queue *q = nullptr;
  int rc = mpx_queue_create(&q, &o);
  EXPECT_EQ(rc, MPX_OK) << code_str(rc) << ": " << mpx_last_error_message();
  return QueuePtr(q);
}

inline void queue_warmup() {
  auto q = make_queue({0, 4096, 0, false});
  auto big = make_queue();
  std::string t = token_of(mpx_queue_token, q.get());
  mpx_queue *a = nullptr;
  if (mpx_queue_attach(&a, t.c_str()) == MPX_OK) mpx_queue_destroy(a);
}
inline const bool kQueueWarmupRegistered = register_warmup(&queue_warmup);

/** A byte pattern that depends on a seed and the offset: reordered or mixed bytes show. */
inline uint8_t pattern_byte(uint64_t seed, uint64_t i) {
  uint64_t x = (seed + 1) * 0x9e3779b97f4a7c15ull + i * 0xbf58476d1ce4e5b9ull;
  x ^= x >> 29;
  return static_cast<uint8_t>(x ^ (x >> 17) ^ (i >> 12));
}

inline std::vector<uint8_t> pattern(uint64_t seed, size_t n) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = pattern_byte(seed, i);
  return v;
}

inline bool matches_pattern(uint64_t seed, const void *p, size_t n) {
  const auto *b = static_cast<const uint8_t *>(p);
  for (size_t i = 0; i < n; ++i)
    if (b[i] != pattern_byte(seed, i)) return false;
  return true;
}

/** put a copy of a string (convenience). */
inline int put_str(mpx_queue *q, const std::string &s, int64_t timeout_ms = -1) {
  return mpx_queue_put(q, s.data(), s.size(), timeout_ms);
}

/** get an item as a string; rc through *rc. */
inline std::string get_str(mpx_queue *q, int64_t timeout_ms = -1, int *rc = nullptr) {
  void *data = nullptr;
  size_t len = 0;
  int r = mpx_queue_get(q, &data, &len, timeout_ms);
  if (rc) *rc = r;
  std::string s;
  if (r == MPX_OK) s.assign(static_cast<const char *>(data), len);
  mpx_free(data);
  return s;
}

inline size_t qsize_of(mpx_queue *q) {
  size_t n = SIZE_MAX;
  EXPECT_EQ(mpx_queue_qsize(q, &n), MPX_OK);
  return n;
}

/** Items for the many-process tests: producer id and sequence number, padded to `size`. */
struct Tagged {
  uint32_t producer;
  uint32_t check;
  uint64_t seq;
};

inline uint32_t tag_check(uint32_t producer, uint64_t seq) {
  return static_cast<uint32_t>((producer * 0x9e3779b1u) ^ (seq * 0x85ebca6bu) ^ 0x5bd1e995u);
}

}  // namespace mpxt
