// Queue: scribbled-over shared state (SCENARIOS.md 34). Random bytes over the object header,
// the indices and the records, written through a second mapping of the queue's segment:
// every call returns MPX_ECORRUPT or a valid result, never crashes, never hangs.
//
// Layout knowledge used here (src/shm/object.hpp, src/queue/layout.hpp): the token ends with
// the object's offset in its segment; the object is a 16-byte header {magic, version|type,
// size, check}, 48 bytes of configuration, the indices, then the ring (the last `capacity`
// bytes). Positions start one lap in, so a fresh queue's first record is at the ring's start:
// {u32 state, u32 kind, u32 pid, u32 tid, u64 position, u64 length, u64 ordinal}.
#include <climits>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "capi_queue_helpers.hpp"

using namespace std::chrono_literals;
using mpxt::isolated;
using mpxt::Outcome;

namespace {

constexpr size_t kHeaderBytes = 16;
constexpr size_t kIndicesStart = 64;

std::string show(const Outcome &o) {
  return o.completed ? "returned " + mpxt::code_str(o.rc) : "did not return: " + o.how;
}

std::mt19937_64 &rng() {
  static std::mt19937_64 g(0x717565ull ^ static_cast<uint64_t>(getpid()));
  return g;
}

void scribble(unsigned char *p, size_t n) {
  for (size_t i = 0; i < n; ++i) p[i] = static_cast<unsigned char>(rng()());
}

struct Op {
  const char *name;
  std::function<int(mpx_queue *)> call;
  bool reads_state;  // must notice corruption of the indices
};

std::vector<Op> ops(int64_t t) {
  return {
      {"put", [t](mpx_queue *q) { return mpxt::put_str(q, "small item", t); }, true},
      {"put(large)", [t](mpx_queue *q) { return mpxt::put_str(q, std::string(3000, 'L'), t); }, true},
      {"put(streamed)", [t](mpx_queue *q) { return mpxt::put_str(q, std::string(40000, 'S'), t); }, true},
      {"get", [t](mpx_queue *q) { int rc; mpxt::get_str(q, t, &rc); return rc; }, true},
      {"get_into", [t](mpx_queue *q) { char b[16]; size_t n; return mpx_queue_get_into(q, b, sizeof b, &n, t); }, true},
      {"qsize", [](mpx_queue *q) { size_t n; return mpx_queue_qsize(q, &n); }, true},
      {"empty", [](mpx_queue *q) { int v; return mpx_queue_empty(q, &v); }, true},
      {"full", [](mpx_queue *q) { int v; return mpx_queue_full(q, &v); }, true},
      {"close", [](mpx_queue *q) { return mpx_queue_close(q); }, false},
      {"closed", [](mpx_queue *q) { int v; return mpx_queue_closed(q, &v); }, false},
      {"task_done", [](mpx_queue *q) { return mpx_queue_task_done(q); }, false},
      {"join", [t](mpx_queue *q) { return mpx_queue_join(q, t); }, false},
      {"unfinished", [](mpx_queue *q) { uint64_t n; return mpx_queue_unfinished(q, &n); }, false},
  };
}

int attach_and_use(const std::string &token, int64_t timeout = 100) {
  mpx_queue *q = nullptr;
  int rc = mpx_queue_attach(&q, token.c_str());
  if (rc != MPX_OK) return rc;
  for (const auto &op : ops(timeout)) op.call(q);  // attached: every call must still be safe
  mpx_queue_destroy(q);
  return MPX_OK;
}

// A joinable queue with items in it (small, large, streamed), the ring a few laps in, and a
// second mapping of its segment to scribble through.
class Victim {
 public:
  explicit Victim(uint64_t capacity = 16384) {
    q_ = mpxt::make_queue({0, capacity, 0, true}).release();
    for (int i = 0; i < 30; ++i) {  // laps
      EXPECT_MPX_OK(mpxt::put_str(q_, std::string(size_t(100 + i * 50), 'a')));
      mpxt::get_str(q_, 0);
    }
    EXPECT_MPX_OK(mpxt::put_str(q_, "first"));
    EXPECT_MPX_OK(mpxt::put_str(q_, std::string(2000, 'b')));
    EXPECT_MPX_OK(mpxt::put_str(q_, "third"));
    token_ = mpxt::token_of(mpx_queue_token, q_);
    map(capacity);
  }
  // A fresh queue with one item: its record is the first of the ring.
  struct Fresh {};
  explicit Victim(Fresh, const std::string &item) {
    q_ = mpxt::make_queue({0, 16384, 0, true}).release();
    EXPECT_MPX_OK(mpxt::put_str(q_, item));
    token_ = mpxt::token_of(mpx_queue_token, q_);
    map(16384);
  }
  ~Victim() {
    restore();
    mpx_queue_destroy(q_);
    mpx_segment_destroy(seg_);
  }
  Victim(const Victim &) = delete;
  Victim &operator=(const Victim &) = delete;

  mpx_queue *q() const { return q_; }
  const std::string &token() const { return token_; }
  unsigned char *header() const { return obj_; }
  unsigned char *indices() const { return obj_ + kIndicesStart; }
  size_t indices_size() const { return total_ - capacity_ - kIndicesStart; }
  unsigned char *ring() const { return obj_ + total_ - capacity_; }
  size_t capacity() const { return capacity_; }
  void restore() { std::memcpy(obj_, saved_.data(), saved_.size()); }

 private:
  void map(uint64_t capacity) {
    capacity_ = capacity;
    const unsigned long long offset = std::stoull(token_.substr(token_.rfind(':') + 1));
    EXPECT_MPX_OK(mpx_segment_attach_token(&seg_, token_.c_str()));
    void *base = nullptr;
    size_t size = 0;
    EXPECT_MPX_OK(mpx_segment_address(seg_, &base));
    EXPECT_MPX_OK(mpx_segment_size(seg_, &size));
    obj_ = static_cast<unsigned char *>(base) + offset;
    uint32_t total = 0;
    std::memcpy(&total, obj_ + 8, 4);
    total_ = total;
    EXPECT_LE(offset + total_, size);
    EXPECT_GT(total_, capacity_ + kIndicesStart);
    saved_.assign(obj_, obj_ + total_);
  }

  mpx_queue *q_ = nullptr;
  mpx_segment *seg_ = nullptr;
  std::string token_;
  unsigned char *obj_ = nullptr;
  size_t total_ = 0, capacity_ = 0;
  std::vector<unsigned char> saved_;
};

// Every call completes (in a child with a deadline); state-reading ones with MPX_ECORRUPT
// when `all_corrupt`.
void expect_safe(Victim &v, const std::string &what, bool all_corrupt, int64_t timeout = 200) {
  for (const auto &op : ops(timeout)) {
    auto o = isolated([&] { return op.call(v.q()); }, 3000ms);
    EXPECT_TRUE(o.completed) << what << ": " << op.name << " " << show(o);
    if (all_corrupt && op.reads_state) {
      EXPECT_MPX(MPX_ECORRUPT, o.rc) << what << ": " << op.name;
    }
  }
  auto o = isolated([&] { return attach_and_use(v.token()); }, 5000ms);
  EXPECT_TRUE(o.completed) << what << ": attach " << show(o);
}

}  // namespace

TEST(QueueCorrupt, RandomBytesOverTheHeaderMakeEveryCallEcorrupt) {
  Victim v;
  for (int round = 0; round < 3; ++round) {
    scribble(v.header(), kHeaderBytes);
    for (const auto &op : ops(-1)) {  // blocking calls too: the header is checked first
      auto o = isolated([&] { return op.call(v.q()); });
      EXPECT_TRUE(o.completed && o.rc == MPX_ECORRUPT) << op.name << " " << show(o);
    }
    auto o = isolated([&] { mpx_queue *a = nullptr; int rc = mpx_queue_attach(&a, v.token().c_str()); mpx_queue_destroy(a); return rc; });
    EXPECT_TRUE(o.completed && o.rc == MPX_ECORRUPT) << "attach " << show(o);
    v.restore();
  }
  EXPECT_EQ(mpxt::get_str(v.q(), 0), "first") << "restored, it works again";
}

TEST(QueueCorrupt, RandomIndicesMakeEveryStateCallEcorrupt) {
  Victim v;
  for (int round = 0; round < 5; ++round) {
    scribble(v.indices(), v.indices_size());
    expect_safe(v, "indices scribbled (round " + std::to_string(round) + ")", true);
    v.restore();
  }
}

TEST(QueueCorrupt, EachIndexWordSetToExtremesNeverCrashesOrHangs) {
  // Every call once per value, in one child (timeout 0: the random tests above cover waiting).
  Victim v;
  const size_t words = v.indices_size() / 8;
  for (size_t w = 0; w < words; ++w) {
    for (uint64_t value : {~uint64_t(0), uint64_t(0), uint64_t(1) << 63, rng()()}) {
      std::memcpy(v.indices() + 8 * w, &value, 8);
      auto o = isolated(
          [&] {
            for (const auto &op : ops(0)) op.call(v.q());
            return attach_and_use(v.token(), 0);
          },
          5000ms);
      EXPECT_TRUE(o.completed) << "index word " << w << " = " << value << ": " << show(o);
      v.restore();
    }
  }
}

TEST(QueueCorrupt, RandomRecordsNeverCrashOrHang) {
  for (int round = 0; round < 8; ++round) {
    Victim v;
    if (round % 2) scribble(v.ring(), v.capacity());
    else scribble(v.ring() + rng()() % (v.capacity() - 512), 512);
    expect_safe(v, "records scribbled (round " + std::to_string(round) + ")", false);
  }
}

TEST(QueueCorrupt, ImpossibleRecordFieldsAreEcorrupt) {
  // The first record's fields, one at a time: get must say MPX_ECORRUPT, not read out of
  // bounds, allocate absurdly or wait.
  struct Field {
    const char *name;
    size_t offset, size;
    uint64_t value;
  };
  const Field fields[] = {
      {"state", 0, 4, 0x12345678},       {"kind", 4, 4, 9},
      {"kind = PAD", 4, 4, 5},           {"position", 16, 8, 12345},
      {"length", 24, 8, ~uint64_t(0)},   {"length = ring", 24, 8, 16384},
      {"length > chunk", 24, 8, 5000},   {"ordinal", 32, 8, 77},
      {"ordinal 0", 32, 8, 0},           {"kind = FIRST (too short)", 4, 4, 2},
  };
  for (const auto &item : {std::string("small"), std::string(3000, 'L')}) {  // copied under the lock, and not
    for (const auto &f : fields) {
      Victim v(Victim::Fresh{}, item);
      std::memcpy(v.ring() + f.offset, &f.value, f.size);
      auto o = isolated([&] { int rc; mpxt::get_str(v.q(), 200, &rc); return rc; });
      EXPECT_TRUE(o.completed && o.rc == MPX_ECORRUPT) << item.size() << "-byte item, " << f.name << ": " << show(o);
    }
  }
}

TEST(QueueCorrupt, CorruptionWhileAnotherProcessIsBlockedWakesItWithEcorrupt) {
  auto q = mpxt::make_queue();
  std::string token = mpxt::token_of(mpx_queue_token, q.get());
  mpx_segment *seg = nullptr;
  ASSERT_MPX_OK(mpx_segment_attach_token(&seg, token.c_str()));
  void *base = nullptr;
  ASSERT_MPX_OK(mpx_segment_address(seg, &base));
  auto *obj = static_cast<unsigned char *>(base) + std::stoull(token.substr(token.rfind(':') + 1));
  unsigned char saved[kHeaderBytes];
  std::memcpy(saved, obj, sizeof saved);
  mpxt::Shared<std::atomic<int>> rc(INT_MIN);
  mpxt::Child waiter = mpxt::Child::fork([&] {
    int r;
    mpxt::get_str(q.get(), -1, &r);
    rc->store(r);
    return 0;
  });
  mpxt::sleep_ms(200);
  mpxt::Stopwatch sw;
  scribble(obj, kHeaderBytes);
  auto st = waiter.wait(5000ms);
  EXPECT_TRUE(st.ok()) << st.describe();
  EXPECT_MPX(MPX_ECORRUPT, rc->load());
  EXPECT_LT(sw.ms(), 1000);
  std::memcpy(obj, saved, sizeof saved);
  mpx_segment_destroy(seg);
}
