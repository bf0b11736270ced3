// Scribbled-over shared state (SCENARIOS.md 34): random bytes over an object's header, and
// impossible or random values over its body, written through a second mapping of the segment.
// Every call must return MPX_ECORRUPT (or, for random but possibly valid body values, at least
// return), never crash and never block forever.
//
// Layout knowledge used here (src/shm/object.hpp): a token is "mpx1:...:<offset>" naming the
// object's segment and byte offset; the object starts with a 16-byte header
// {u32 magic, u16 version, u16 type, u32 size (header + body), u32 check}; the body follows.
#include <climits>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "support/mpx_helpers.hpp"

using namespace std::chrono_literals;
using mpxt::Millis;

namespace {

constexpr size_t kHeaderBytes = 16;

using mpxt::Outcome;
using mpxt::isolated;

std::string show(const Outcome &o) {
  return o.completed ? "returned " + mpxt::code_str(o.rc) : "did not return: " + o.how;
}

struct Op {
  const char *name;
  std::function<int(void *)> call;
};

template <typename T>
T *as(void *p) {
  return static_cast<T *>(p);
}

// One kind of object: how to make one, its token, calls that read or change its shared state
// (`timeout` is passed to the blocking ones), calls that need only what was validated at attach
// (MPX_OK is acceptable for those), attach and destroy.
struct Kind {
  const char *name;
  std::function<void *()> make;
  std::function<std::string(void *)> token;
  std::function<std::vector<Op>(int64_t timeout)> state_ops;
  std::vector<Op> meta_ops;
  std::function<int(const std::string &)> attach;
  std::function<int(void *)> destroy;
};

std::vector<Op> lock_state_ops(int64_t t) {
  return {
      {"mpx_lock_acquire", [t](void *h) { return mpx_lock_acquire(as<mpx_lock>(h), t); }},
      {"mpx_lock_acquire(0)", [](void *h) { return mpx_lock_acquire(as<mpx_lock>(h), 0); }},
      {"mpx_lock_release", [](void *h) { return mpx_lock_release(as<mpx_lock>(h)); }},
      {"mpx_lock_consistent", [](void *h) { return mpx_lock_consistent(as<mpx_lock>(h)); }},
      {"mpx_lock_locked", [](void *h) { int v; return mpx_lock_locked(as<mpx_lock>(h), &v); }},
      {"mpx_lock_is_owned", [](void *h) { int v; return mpx_lock_is_owned(as<mpx_lock>(h), &v); }},
      {"mpx_lock_count", [](void *h) { uint32_t v; return mpx_lock_count(as<mpx_lock>(h), &v); }},
  };
}

std::vector<Op> lock_meta_ops() {
  return {
      {"mpx_lock_is_recursive", [](void *h) { int v; return mpx_lock_is_recursive(as<mpx_lock>(h), &v); }},
      {"mpx_lock_token", [](void *h) { char b[MPX_TOKEN_MAX]; size_t n = sizeof b; return mpx_lock_token(as<mpx_lock>(h), b, &n); }},
  };
}

std::vector<Kind> kinds() {
  auto lock_kind = [](const char *name, bool recursive) {
    return Kind{
        name,
        [recursive] { return static_cast<void *>(mpxt::make_lock(recursive).release()); },
        [](void *h) { return mpxt::token_of(mpx_lock_token, as<mpx_lock>(h)); },
        lock_state_ops,
        lock_meta_ops(),
        [](const std::string &t) { mpx_lock *o = nullptr; int rc = mpx_lock_attach(&o, t.c_str()); mpx_lock_destroy(o); return rc; },
        [](void *h) { return mpx_lock_destroy(as<mpx_lock>(h)); },
    };
  };
  auto sem_kind = [](const char *name, bool bounded) {
    return Kind{
        name,
        [bounded] { return static_cast<void *>(mpxt::make_semaphore(bounded ? 2 : 1, bounded, bounded ? 4 : 0).release()); },
        [](void *h) { return mpxt::token_of(mpx_semaphore_token, as<mpx_semaphore>(h)); },
        [](int64_t t) {
          return std::vector<Op>{
              {"mpx_semaphore_acquire", [t](void *h) { return mpx_semaphore_acquire(as<mpx_semaphore>(h), t); }},
              {"mpx_semaphore_acquire(0)", [](void *h) { return mpx_semaphore_acquire(as<mpx_semaphore>(h), 0); }},
              {"mpx_semaphore_release", [](void *h) { return mpx_semaphore_release(as<mpx_semaphore>(h)); }},
              {"mpx_semaphore_value", [](void *h) { uint32_t v; return mpx_semaphore_value(as<mpx_semaphore>(h), &v); }},
          };
        },
        {
            {"mpx_semaphore_max_value", [](void *h) { uint32_t v; return mpx_semaphore_max_value(as<mpx_semaphore>(h), &v); }},
            {"mpx_semaphore_token", [](void *h) { char b[MPX_TOKEN_MAX]; size_t n = sizeof b; return mpx_semaphore_token(as<mpx_semaphore>(h), b, &n); }},
        },
        [](const std::string &t) { mpx_semaphore *o = nullptr; int rc = mpx_semaphore_attach(&o, t.c_str()); mpx_semaphore_destroy(o); return rc; },
        [](void *h) { return mpx_semaphore_destroy(as<mpx_semaphore>(h)); },
    };
  };
  return {
      lock_kind("lock", false),
      lock_kind("rlock", true),
      sem_kind("semaphore", false),
      sem_kind("bounded semaphore", true),
      Kind{
          "event",
          [] { return static_cast<void *>(mpxt::make_event().release()); },
          [](void *h) { return mpxt::token_of(mpx_event_token, as<mpx_event>(h)); },
          [](int64_t t) {
            return std::vector<Op>{
                {"mpx_event_wait", [t](void *h) { return mpx_event_wait(as<mpx_event>(h), t); }},
                {"mpx_event_wait(0)", [](void *h) { return mpx_event_wait(as<mpx_event>(h), 0); }},
                {"mpx_event_set", [](void *h) { return mpx_event_set(as<mpx_event>(h)); }},
                {"mpx_event_clear", [](void *h) { return mpx_event_clear(as<mpx_event>(h)); }},
                {"mpx_event_is_set", [](void *h) { int v; return mpx_event_is_set(as<mpx_event>(h), &v); }},
            };
          },
          {{"mpx_event_token", [](void *h) { char b[MPX_TOKEN_MAX]; size_t n = sizeof b; return mpx_event_token(as<mpx_event>(h), b, &n); }}},
          [](const std::string &t) { mpx_event *o = nullptr; int rc = mpx_event_attach(&o, t.c_str()); mpx_event_destroy(o); return rc; },
          [](void *h) { return mpx_event_destroy(as<mpx_event>(h)); },
      },
      Kind{
          "condition",
          [] { return static_cast<void *>(mpxt::make_condition().release()); },
          [](void *h) { return mpxt::token_of(mpx_condition_token, as<mpx_condition>(h)); },
          [](int64_t t) {
            // The lock is a separate object (not corrupted): wait and notify need it held, and
            // it is released again so that the next call does not find a dead owner.
            auto with_lock = [](void *h, const std::function<int(mpx_condition *)> &f) {
              auto *c = as<mpx_condition>(h);
              int a = mpx_condition_acquire(c, 1000);
              if (a != MPX_OK) return a == MPX_ECORRUPT ? a : INT_MIN + 1;
              int rc = f(c);
              mpx_condition_release(c);
              return rc;
            };
            return std::vector<Op>{
                {"mpx_condition_wait", [t, with_lock](void *h) {
                   return with_lock(h, [t](mpx_condition *c) { return mpx_condition_wait(c, t); });
                 }},
                {"mpx_condition_notify", [with_lock](void *h) {
                   return with_lock(h, [](mpx_condition *c) { return mpx_condition_notify(c, 1); });
                 }},
                {"mpx_condition_notify_all", [with_lock](void *h) {
                   return with_lock(h, [](mpx_condition *c) { return mpx_condition_notify_all(c); });
                 }},
            };
          },
          {
              {"mpx_condition_token", [](void *h) { char b[MPX_TOKEN_MAX]; size_t n = sizeof b; return mpx_condition_token(as<mpx_condition>(h), b, &n); }},
              {"mpx_condition_lock", [](void *h) { mpx_lock *l = nullptr; int rc = mpx_condition_lock(as<mpx_condition>(h), &l); mpx_lock_destroy(l); return rc; }},
          },
          [](const std::string &t) { mpx_condition *o = nullptr; int rc = mpx_condition_attach(&o, t.c_str()); mpx_condition_destroy(o); return rc; },
          [](void *h) { return mpx_condition_destroy(as<mpx_condition>(h)); },
      },
      Kind{
          "barrier",
          [] { return static_cast<void *>(mpxt::make_barrier(3).release()); },
          [](void *h) { return mpxt::token_of(mpx_barrier_token, as<mpx_barrier>(h)); },
          [](int64_t t) {
            return std::vector<Op>{
                {"mpx_barrier_wait", [t](void *h) { uint32_t i; return mpx_barrier_wait(as<mpx_barrier>(h), t, &i); }},
                {"mpx_barrier_wait(0)", [](void *h) { uint32_t i; return mpx_barrier_wait(as<mpx_barrier>(h), 0, &i); }},
                {"mpx_barrier_wait_ex(HOLD)", [t](void *h) { uint32_t i; return mpx_barrier_wait_ex(as<mpx_barrier>(h), t, MPX_BARRIER_HOLD, &i); }},
                {"mpx_barrier_release", [](void *h) { return mpx_barrier_release(as<mpx_barrier>(h)); }},
                {"mpx_barrier_abort", [](void *h) { return mpx_barrier_abort(as<mpx_barrier>(h)); }},
                {"mpx_barrier_reset", [](void *h) { return mpx_barrier_reset(as<mpx_barrier>(h)); }},
                {"mpx_barrier_n_waiting", [](void *h) { uint32_t v; return mpx_barrier_n_waiting(as<mpx_barrier>(h), &v); }},
                {"mpx_barrier_broken", [](void *h) { int v; return mpx_barrier_broken(as<mpx_barrier>(h), &v); }},
            };
          },
          {
              {"mpx_barrier_parties", [](void *h) { uint32_t v; return mpx_barrier_parties(as<mpx_barrier>(h), &v); }},
              {"mpx_barrier_token", [](void *h) { char b[MPX_TOKEN_MAX]; size_t n = sizeof b; return mpx_barrier_token(as<mpx_barrier>(h), b, &n); }},
          },
          [](const std::string &t) { mpx_barrier *o = nullptr; int rc = mpx_barrier_attach(&o, t.c_str()); mpx_barrier_destroy(o); return rc; },
          [](void *h) { return mpx_barrier_destroy(as<mpx_barrier>(h)); },
      },
      Kind{
          "array",
          [] { return static_cast<void *>(mpxt::make_array('q', 16).release()); },
          [](void *h) { return mpxt::token_of(mpx_array_token, as<mpx_array>(h)); },
          [](int64_t) {
            return std::vector<Op>{
                {"mpx_array_get", [](void *h) { long long v; return mpx_array_get(as<mpx_array>(h), 3, &v, sizeof v); }},
                {"mpx_array_set", [](void *h) { long long v = 1; return mpx_array_set(as<mpx_array>(h), 3, &v, sizeof v); }},
                {"mpx_array_read", [](void *h) { long long v[16]; return mpx_array_read(as<mpx_array>(h), 0, 16, v, sizeof v); }},
                {"mpx_array_write", [](void *h) { long long v[16] = {}; return mpx_array_write(as<mpx_array>(h), 0, 16, v, sizeof v); }},
            };
          },
          {
              {"mpx_array_length", [](void *h) { size_t v; return mpx_array_length(as<mpx_array>(h), &v); }},
              {"mpx_array_typecode", [](void *h) { char v; return mpx_array_typecode(as<mpx_array>(h), &v); }},
              {"mpx_array_item_size", [](void *h) { size_t v; return mpx_array_item_size(as<mpx_array>(h), &v); }},
              {"mpx_array_address", [](void *h) { void *v; return mpx_array_address(as<mpx_array>(h), &v); }},
              {"mpx_array_lock", [](void *h) { mpx_lock *l = nullptr; int rc = mpx_array_lock(as<mpx_array>(h), &l); mpx_lock_destroy(l); return rc; }},
              {"mpx_array_token", [](void *h) { char b[MPX_TOKEN_MAX]; size_t n = sizeof b; return mpx_array_token(as<mpx_array>(h), b, &n); }},
          },
          [](const std::string &t) { mpx_array *o = nullptr; int rc = mpx_array_attach(&o, t.c_str()); mpx_array_destroy(o); return rc; },
          [](void *h) { return mpx_array_destroy(as<mpx_array>(h)); },
      },
  };
}

// An object, plus a second mapping of its segment through which we scribble on it.
class Victim {
 public:
  explicit Victim(const Kind &k) : kind_(k) {
    handle_ = k.make();
    token_ = k.token(handle_);
    EXPECT_FALSE(token_.empty()) << k.name;
    offset_ = std::stoull(token_.substr(token_.rfind(':') + 1));
    EXPECT_EQ(mpx_segment_attach_token(&seg_, token_.c_str()), MPX_OK) << "segment of " << token_;
    void *base = nullptr;
    size_t size = 0;
    EXPECT_EQ(mpx_segment_address(seg_, &base), MPX_OK);
    EXPECT_EQ(mpx_segment_size(seg_, &size), MPX_OK);
    EXPECT_LE(offset_ + kHeaderBytes, size);
    obj_ = static_cast<unsigned char *>(base) + offset_;
    std::memcpy(&total_, obj_ + 8, 4);  // header.size: header + body
    EXPECT_GT(total_, kHeaderBytes);
    EXPECT_LE(offset_ + total_, size) << "the header's size does not fit the segment";
    saved_.assign(obj_, obj_ + total_);
  }
  ~Victim() {
    restore();
    kind_.destroy(handle_);
    mpx_segment_destroy(seg_);
  }
  Victim(const Victim &) = delete;
  Victim &operator=(const Victim &) = delete;

  void *handle() const { return handle_; }
  const std::string &token() const { return token_; }
  unsigned char *header() const { return obj_; }
  unsigned char *body() const { return obj_ + kHeaderBytes; }
  size_t body_size() const { return total_ - kHeaderBytes; }
  void restore() { std::memcpy(obj_, saved_.data(), saved_.size()); }

 private:
  const Kind &kind_;
  void *handle_ = nullptr;
  std::string token_;
  unsigned long long offset_ = 0;
  mpx_segment *seg_ = nullptr;
  unsigned char *obj_ = nullptr;
  uint32_t total_ = 0;
  std::vector<unsigned char> saved_;
};

std::mt19937_64 &rng() {
  static std::mt19937_64 g(0x6d7078ull ^ static_cast<uint64_t>(getpid()));
  return g;
}

void scribble(unsigned char *p, size_t n) {
  for (size_t i = 0; i < n; ++i) p[i] = static_cast<unsigned char>(rng()());
}

// Every state call returns MPX_ECORRUPT; meta calls return MPX_OK or MPX_ECORRUPT; a fresh
// attach returns `attach_expect`... all without crashing or blocking.
void expect_all_corrupt(const Kind &k, Victim &v, const std::string &what) {
  for (const auto &op : k.state_ops(-1)) {
    auto o = isolated([&] { return op.call(v.handle()); });
    EXPECT_TRUE(o.completed && o.rc == MPX_ECORRUPT) << k.name << " " << what << ": " << op.name << " " << show(o);
  }
  for (const auto &op : k.meta_ops) {
    auto o = isolated([&] { return op.call(v.handle()); });
    EXPECT_TRUE(o.completed && (o.rc == MPX_OK || o.rc == MPX_ECORRUPT))
        << k.name << " " << what << ": " << op.name << " " << show(o);
  }
}

}  // namespace

TEST(CorruptHeader, RandomBytesOverTheHeaderMakeEveryCallEcorrupt) {
  for (const auto &k : kinds()) {
    Victim v(k);
    for (int round = 0; round < 3; ++round) {
      scribble(v.header(), kHeaderBytes);  // 128 random bits: never the original
      expect_all_corrupt(k, v, "header scribbled (round " + std::to_string(round) + ")");
      auto o = isolated([&] { return k.attach(v.token()); });
      EXPECT_TRUE(o.completed && o.rc == MPX_ECORRUPT) << k.name << ": attach of a scribbled header " << show(o);
      v.restore();
    }
  }
}

TEST(CorruptHeader, EverySingleBitFlipIsDetected) {
  for (const auto &k : kinds()) {
    Victim v(k);
    auto probe = k.state_ops(0)[1];  // a non-blocking state call
    for (size_t bit = 0; bit < kHeaderBytes * 8; ++bit) {
      v.header()[bit / 8] ^= static_cast<unsigned char>(1u << (bit % 8));
      int rc = probe.call(v.handle());
      EXPECT_MPX(MPX_ECORRUPT, rc) << k.name << ": " << probe.name << " with header bit " << bit << " flipped";
      int arc = k.attach(v.token());
      EXPECT_MPX(MPX_ECORRUPT, arc) << k.name << ": attach with header bit " << bit << " flipped";
      v.restore();
    }
  }
}

TEST(CorruptHeader, RestoringTheHeaderMakesTheObjectUsableAgain) {
  for (const auto &k : kinds()) {
    Victim v(k);
    scribble(v.header(), kHeaderBytes);
    v.restore();
    for (const auto &op : k.meta_ops) EXPECT_MPX(MPX_OK, op.call(v.handle())) << k.name << " " << op.name;
    EXPECT_MPX(MPX_OK, k.attach(v.token())) << k.name;
  }
}

TEST(CorruptBody, ImpossibleStateWordsMakeEveryCallEcorrupt) {
  // All-ones over the first 8 body bytes: an owner id beyond any pid, a semaphore value above
  // its maximum, an event flag that is neither 0 nor 1, more arrivals than parties, an array
  // length that is not the array's.
  for (const auto &k : kinds()) {
    // A condition's first body word is a ticket counter, where any value is a possible state
    // (and a wait with no notifier rightly blocks): nothing impossible to write there.
    if (std::string(k.name) == "condition") continue;
    Victim v(k);
    std::memset(v.body(), 0xFF, 8);
    expect_all_corrupt(k, v, "body state words = 0xFF");
    auto o = isolated([&] { return k.attach(v.token()); });
    EXPECT_TRUE(o.completed && o.rc == MPX_ECORRUPT) << k.name << ": attach " << show(o);
  }
}

TEST(CorruptBody, RandomBodyBytesNeverCrashOrHang) {
  // Random values may happen to be valid states, so any return code is acceptable here; what
  // is not: a crash, an out-of-bounds access (under ASan) or a call that does not return.
  for (const auto &k : kinds()) {
    for (int round = 0; round < 10; ++round) {
      Victim v(k);
      scribble(v.body(), std::min<size_t>(v.body_size(), 320));
      for (const auto &op : k.state_ops(200)) {
        auto o = isolated([&] { return op.call(v.handle()); }, 3000ms);
        EXPECT_TRUE(o.completed) << k.name << " round " << round << ": " << op.name << " " << show(o);
      }
      for (const auto &op : k.meta_ops) {
        auto o = isolated([&] { return op.call(v.handle()); }, 3000ms);
        EXPECT_TRUE(o.completed) << k.name << " round " << round << ": " << op.name << " " << show(o);
      }
      auto o = isolated(
          [&] {
            // Attach what is there and use it: a fresh attach must validate before it trusts.
            return k.attach(v.token());
          },
          3000ms);
      EXPECT_TRUE(o.completed) << k.name << " round " << round << ": attach " << show(o);
    }
  }
}

TEST(CorruptBody, EachWordSetToAllOnesNeverCrashesOrHangsAnAttacher) {
  for (const auto &k : kinds()) {
    Victim v(k);
    const size_t words = std::min<size_t>(v.body_size(), 64) / 4;
    for (size_t w = 0; w < words; ++w) {
      std::memset(v.body() + 4 * w, 0xFF, 4);
      auto o = isolated(
          [&] {
            int rc = k.attach(v.token());
            if (rc != MPX_OK) return rc;
            // It attached: the word was not validated at attach, so every call must still be safe.
            for (const auto &op : k.state_ops(200)) op.call(v.handle());
            return MPX_OK;
          },
          5000ms);
      EXPECT_TRUE(o.completed && (o.rc == MPX_OK || o.rc == MPX_ECORRUPT || o.rc == MPX_EINVAL))
          << k.name << ": body word " << w << " = 0xFFFFFFFF: " << show(o);
      v.restore();
    }
  }
}

TEST(CorruptBody, ANeighbourInTheSameSegmentIsUnaffected) {
  auto victim_lock = mpxt::make_lock();
  auto neighbour = mpxt::make_lock();
  std::string t1 = mpxt::token_of(mpx_lock_token, victim_lock.get());
  std::string t2 = mpxt::token_of(mpx_lock_token, neighbour.get());
  auto seg_of = [](const std::string &t) { return t.substr(0, t.rfind(':')); };
  if (seg_of(t1) != seg_of(t2)) GTEST_SKIP() << "the two locks are not in one segment";
  auto all = kinds();
  Victim v(all[0]);
  scribble(v.header(), kHeaderBytes);
  std::memset(v.body(), 0xFF, 8);
  EXPECT_MPX(MPX_ECORRUPT, mpx_lock_acquire(static_cast<mpx_lock *>(v.handle()), 0));
  EXPECT_MPX_OK(mpx_lock_acquire(neighbour.get(), 0));
  EXPECT_MPX_OK(mpx_lock_release(neighbour.get()));
}

TEST(CorruptBody, CorruptionWhileAnotherProcessIsBlockedWakesItWithEcorrupt) {
  // A waiter asleep in acquire(-1) must not sleep forever once the lock is scribbled over.
  auto all = kinds();
  Victim v(all[0]);
  auto *lock = static_cast<mpx_lock *>(v.handle());
  ASSERT_MPX_OK(mpx_lock_acquire(lock, 0));
  mpxt::Shared<std::atomic<int>> rc(INT_MIN);
  mpxt::Child waiter = mpxt::Child::fork([&] {
    rc->store(mpx_lock_acquire(lock, -1));
    return 0;
  });
  mpxt::sleep_ms(200);
  scribble(v.header(), kHeaderBytes);
  std::memset(v.body(), 0xFF, 8);
  auto st = waiter.wait(5000ms);
  EXPECT_TRUE(st.ok()) << "waiter: " << st.describe();
  EXPECT_MPX(MPX_ECORRUPT, rc->load());
}
