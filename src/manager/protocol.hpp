// The manager's wire protocol: one request message, one reply message, in either transport
// (a framed connection, or a pair of mpx queues).
//
// Request: RequestHeader, then the operation's fields. Reply: ReplyHeader, then the
// operation's results when code is MPX_OK, or the error message when it is not. Fields are
// little-endian integers and length-prefixed byte strings (Writer, Reader). The seq of a
// reply is its request's: a client discards a reply that does not match (one to a call it
// abandoned).
#pragma once

#include <poll.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>

namespace mpx::manager {

enum class Op : uint32_t {
  hello_shm = 1,  // str request-queue token, str reply-queue token, str boot id
  create,         // arg = type; u32 flags, str name, i64 typecode, u64 parties, u64 length, u64 maxsize,
                  // i64 initial, u64 lock id, bytes data  ->  u64 id, u32 type
  open,           // str name or token  ->  u64 id, u32 type
  release,        // (obj)
  shutdown,
  dict_set = 16,  // str key, bytes value
  dict_add,       // str key, bytes value
  dict_get,       // str key  ->  bytes
  dict_pop,       // str key, u32 want  ->  bytes
  dict_len,       // -> u64
  dict_keys,      // -> u64 count, bytes packed
  dict_clear,
  list_append = 32,  // bytes
  list_insert,       // i64 index, bytes
  list_get,          // i64 index  ->  bytes
  list_set,          // i64 index, bytes
  list_pop,          // i64 index, u32 want  ->  bytes
  list_len,          // -> u64
  list_reverse,
  list_sort,
  list_clear,
  queue_put = 48,  // bytes
  queue_get,       // -> bytes
  queue_size,      // -> u64
  queue_task_done,
  queue_join,
  lock_acquire = 64,
  lock_release,
  sem_value,    // -> i64
  cond_wait,
  cond_notify,  // u64 n
  event_set = 80,
  event_clear,
  event_is_set,  // -> u32
  event_wait,
  barrier_wait = 96,  // -> i64 index
  barrier_abort,
  barrier_reset,
  value_get = 112,  // -> bytes
  value_set,        // bytes
  value_add,        // bytes  ->  bytes
  array_len,        // -> u64 length, u64 itemsize
  array_get,        // u64 start, u64 count  ->  bytes
  array_set,        // u64 start, bytes
};

struct RequestHeader {
  uint32_t op;
  uint32_t arg;
  uint64_t obj;
  int64_t timeout_ms;
  uint64_t seq;
};
static_assert(sizeof(RequestHeader) == 32);

struct ReplyHeader {
  int32_t code;
  uint32_t reserved;
  uint64_t seq;
};
static_assert(sizeof(ReplyHeader) == 16);

// The shared-memory transport: two mpx queues of kRing bytes each. A message up to
// kQueueInlineMax fits one record of the ring, so a put that times out (its reader slow or
// gone) leaves nothing half-sent and is simply retried. A larger message would stream through
// the ring in chunks, and a put abandoned midway would throw the whole message away: it
// travels on the socket instead, announced in the queue by the 8 bytes of kOnSocket (shorter
// than any header, so never a message).
inline constexpr uint64_t kRing = uint64_t(1) << 16;
inline constexpr size_t kQueueInlineMax = kRing / 8;
inline constexpr char kOnSocket[8] = {'m', 'p', 'x', '>', 's', 'o', 'c', 'k'};
inline bool is_on_socket(const void *p, size_t n) { return n == sizeof kOnSocket && std::memcmp(p, kOnSocket, n) == 0; }

// A token names an object by id: "mpxobj:<id>". Names may not take this form.
inline constexpr std::string_view kTokenPrefix = "mpxobj:";

class Writer {
 public:
  explicit Writer(std::string *out) : out_(out) {}
  template <typename T>
  Writer &raw(const T &v) {
    out_->append(reinterpret_cast<const char *>(&v), sizeof v);
    return *this;
  }
  Writer &u32(uint32_t v) { return raw(v); }
  Writer &u64(uint64_t v) { return raw(v); }
  Writer &i64(int64_t v) { return raw(v); }
  Writer &bytes(const void *p, size_t n) {
    u64(n);
    if (n) out_->append(static_cast<const char *>(p), n);
    return *this;
  }
  Writer &str(std::string_view s) { return bytes(s.data(), s.size()); }

 private:
  std::string *out_;
};

// Reads fields out of a received message; any read past the end sets bad() and yields zeros.
class Reader {
 public:
  Reader(const char *p, size_t n) : p_(p), end_(p + n) {}
  template <typename T>
  T raw() {
    T v{};
    if (size_t(end_ - p_) < sizeof v) {
      bad_ = true;
      return v;
    }
    std::memcpy(&v, p_, sizeof v);
    p_ += sizeof v;
    return v;
  }
  uint32_t u32() { return raw<uint32_t>(); }
  uint64_t u64() { return raw<uint64_t>(); }
  int64_t i64() { return raw<int64_t>(); }
  std::string_view bytes() {
    const uint64_t n = u64();
    if (bad_ || n > uint64_t(end_ - p_)) {
      bad_ = true;
      return {};
    }
    std::string_view v(p_, size_t(n));
    p_ += n;
    return v;
  }
  bool bad() const { return bad_; }
  bool done() const { return p_ == end_; }

 private:
  const char *p_;
  const char *end_;
  bool bad_ = false;
};

// Element size of a Python typecode, 0 when unknown.
inline size_t typecode_size(int tc) {
  switch (tc) {
    case 'c': case 'b': case 'B': return 1;
    case 'h': case 'H': return 2;
    case 'i': case 'I': case 'f': return 4;
    case 'l': case 'L': case 'q': case 'Q': case 'd': return 8;
    default: return 0;
  }
}

// The peer of a connected socket has hung up (or the socket is unusable).
inline bool peer_gone(int fd) {
  struct pollfd p = {fd, POLLRDHUP, 0};
  return ::poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL));
}

// This kernel boot's id: two processes share memory by token only when theirs match.
inline std::string boot_id() {
  char buf[64] = {};
  if (FILE *f = std::fopen("/proc/sys/kernel/random/boot_id", "r")) {
    if (!std::fgets(buf, sizeof buf, f)) buf[0] = 0;
    std::fclose(f);
  }
  return buf;
}

}  // namespace mpx::manager
