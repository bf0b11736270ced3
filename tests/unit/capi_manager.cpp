// Managers (mpx/manager.h): servers started in-process and by fork, forkserver and spawn; every
// object type and operation through both transports (shared memory and socket only) and over
// TCP; named and anonymous objects and tokens; many clients in many processes; and scenario 45
// (clients killed holding a lock or inside a barrier wait, malformed requests on a raw
// connection), server death, shutdown from a client and from the owner, and bad handles.
#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstring>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "capi_manager_helpers.hpp"
#include "mpx/listener.h"
#include "support/process_helpers.hpp"
#include "support/listener_helpers.hpp"

using namespace mpxt;
using namespace std::chrono_literals;

namespace {

const std::string kKey = "manager test key";

// ---- fixtures -------------------------------------------------------------------------------

// One way for a client to reach a server: where the server runs, its address, client flags.
struct Transport {
  const char *name;
  Start start;
  const char *address;  // "" = default unix socket
  uint32_t client_flags;
};

const Transport kTransports[] = {
    {"shm", Start::InProcess, "", 0},
    {"socket", Start::InProcess, "", MPX_MCLIENT_SOCKET_ONLY},
    {"tcp_fork", Start::Fork, "127.0.0.1:0", 0},
    {"tcp_socket", Start::Fork, "127.0.0.1:0", MPX_MCLIENT_SOCKET_ONLY},
};

std::string transport_name(const ::testing::TestParamInfo<Transport> &i) { return i.param.name; }
void PrintTo(const Transport &t, std::ostream *os) { *os << t.name; }

class ManagerObjects : public ::testing::TestWithParam<Transport> {
 protected:
  void SetUp() override {
    int rc;
    m_ = start_manager(GetParam().start, &rc, GetParam().address, &kKey);
    ASSERT_MPX_OK(rc);
    addr_ = manager_address(m_.get());
    ASSERT_FALSE(addr_.empty());
    c_ = client(&rc);
    ASSERT_MPX_OK(rc);
    int shm = -1;
    ASSERT_MPX_OK(mpx_mclient_shm(c_.get(), &shm));
    EXPECT_EQ(shm, (GetParam().client_flags & MPX_MCLIENT_SOCKET_ONLY) ? 0 : 1) << "transport " << GetParam().name;
  }

  MClientPtr client(int *rc) const { return mconnect(addr_, rc, GetParam().client_flags, &kKey); }

  ProxyPtr make(int type, const mpx_mobj_options *o = nullptr) {
    int rc;
    auto p = mcreate(c_.get(), type, o, &rc);
    EXPECT_MPX_OK(rc) << "create type " << type;
    return p;
  }

  ManagerPtr m_;
  std::string addr_;
  MClientPtr c_;
};

INSTANTIATE_TEST_SUITE_P(Transports, ManagerObjects, ::testing::ValuesIn(kTransports), transport_name);

// ---- starting servers -----------------------------------------------------------------------

TEST(ManagerStart, EachStartMethodServesAClientAndShutsDown) {
  for (Start s : {Start::InProcess, Start::Fork, Start::Forkserver, Start::Spawn}) {
    SCOPED_TRACE(start_name(s));
    int rc;
    auto m = start_manager(s, &rc, "", &kKey);
    ASSERT_MPX_OK(rc);
    int64_t pid = -1;
    ASSERT_MPX_OK(mpx_manager_pid(m.get(), &pid));
    if (s == Start::InProcess)
      EXPECT_EQ(pid, getpid());
    else
      EXPECT_TRUE(pid > 0 && pid != getpid()) << pid;
    const std::string addr = manager_address(m.get());
    ASSERT_FALSE(addr.empty());
    EXPECT_MPX(MPX_ETIMEDOUT, mpx_manager_wait(m.get(), 0)) << "the server runs";
    auto c = mconnect(addr, &rc, 0, &kKey);
    ASSERT_MPX_OK(rc);
    auto d = mcreate(c.get(), MPX_MOBJ_DICT, nullptr, &rc);
    ASSERT_MPX_OK(rc);
    ASSERT_MPX_OK(dict_set(d.get(), "start", start_name(s)));
    EXPECT_EQ(dict_get(d.get(), "start", &rc), start_name(s));
    ASSERT_MPX_OK(mpx_manager_shutdown(m.get(), 5000));
    EXPECT_MPX_OK(mpx_manager_wait(m.get(), 0)) << "stopped after shutdown";
    Stopwatch sw;
    EXPECT_MPX(MPX_EOF, dict_set(d.get(), "after", "shutdown")) << "the server closed every connection";
    EXPECT_LT(sw.ms(), 1000);
  }
}

TEST(ManagerStart, DefaultAuthkeyIsInheritedByForkedClients) {
  for (Start s : {Start::InProcess, Start::Fork}) {
    SCOPED_TRACE(start_name(s));
    int rc;
    auto m = start_manager(s, &rc);  // this process's authkey
    ASSERT_MPX_OK(rc);
    const std::string addr = manager_address(m.get());
    auto c = mconnect(addr, &rc);
    ASSERT_MPX_OK(rc);
    auto st = run_in_child([&] {
      int r;
      auto cc = mconnect(addr, &r);
      CHILD_MPX_OK(r);
      auto d = mcreate(cc.get(), MPX_MOBJ_DICT, nullptr, &r);
      CHILD_MPX_OK(r);
      CHILD_MPX_OK(dict_set(d.get(), "x", "y"));
      return 0;
    });
    EXPECT_TRUE(st.ok()) << st.describe();
    auto bad = mconnect(addr, &rc, 0, &kKey);
    EXPECT_MPX(MPX_EAUTH, rc) << "an explicit other key";
    EXPECT_EQ(bad, nullptr);
  }
}

TEST(ManagerStart, WrongAuthkeyIsEauthAndTheServerKeepsServing) {
  for (Start s : {Start::InProcess, Start::Fork}) {
    SCOPED_TRACE(start_name(s));
    int rc;
    auto m = start_manager(s, &rc, "", &kKey);
    ASSERT_MPX_OK(rc);
    const std::string addr = manager_address(m.get());
    const std::string wrong = "not the manager key";
    for (uint32_t flags : {0u, uint32_t(MPX_MCLIENT_SOCKET_ONLY)}) {
      auto c = mconnect(addr, &rc, flags, &wrong);
      EXPECT_MPX(MPX_EAUTH, rc);
      EXPECT_EQ(c, nullptr) << "*out is NULL on failure";
    }
    auto none = mconnect(addr, &rc);  // this process's own authkey, not the manager's
    EXPECT_MPX(MPX_EAUTH, rc);
    auto good = mconnect(addr, &rc, 0, &kKey);
    ASSERT_MPX_OK(rc);
    auto d = mcreate(good.get(), MPX_MOBJ_DICT, nullptr, &rc);
    ASSERT_MPX_OK(rc);
    EXPECT_MPX_OK(dict_set(d.get(), "k", "v"));
  }
}

TEST(ManagerStart, TcpPortZeroGivesTheChosenPort) {
  int rc;
  auto m = start_manager(Start::InProcess, &rc, "127.0.0.1:0", &kKey);
  ASSERT_MPX_OK(rc);
  const std::string addr = manager_address(m.get());
  ASSERT_EQ(addr.rfind("127.0.0.1:", 0), 0u) << addr;
  EXPECT_NE(addr, "127.0.0.1:0");
  for (uint32_t flags : {0u, uint32_t(MPX_MCLIENT_SOCKET_ONLY)}) {
    auto c = mconnect(addr, &rc, flags, &kKey);
    ASSERT_MPX_OK(rc);
    int shm = -1;
    ASSERT_MPX_OK(mpx_mclient_shm(c.get(), &shm));
    EXPECT_EQ(shm, flags ? 0 : 1) << "a loopback TCP client uses shared memory unless told not to";
  }
}

TEST(ManagerStart, AddressInUseIsEaddrinuse) {
  int rc;
  auto a = start_manager(Start::InProcess, &rc, "127.0.0.1:0", &kKey);
  ASSERT_MPX_OK(rc);
  const std::string tcp = manager_address(a.get());
  auto b = start_manager(Start::InProcess, &rc, tcp, &kKey);
  EXPECT_MPX(MPX_EADDRINUSE, rc);
  EXPECT_EQ(b, nullptr);
  auto f = start_manager(Start::Fork, &rc, tcp, &kKey);
  EXPECT_MPX(MPX_EADDRINUSE, rc) << "a child server's bind failure is reported by start";
  EXPECT_EQ(f, nullptr);

  TempDir dir;
  const std::string path = dir.file("mgr.sock");
  auto u = start_manager(Start::Fork, &rc, path, &kKey);
  ASSERT_MPX_OK(rc);
  EXPECT_EQ(manager_address(u.get()), path);
  auto u2 = start_manager(Start::InProcess, &rc, path, &kKey);
  EXPECT_MPX(MPX_EADDRINUSE, rc);
  auto c = mconnect(path, &rc, 0, &kKey);
  EXPECT_MPX_OK(rc) << "the first server still serves its path";
}

TEST(ManagerStart, SpawnOfAProgramThatIsNoManagerFails) {
  mpx_manager_options o;
  mpx_manager_options_init(&o, sizeof o);
  o.method = MPX_START_SPAWN;
  o.file = "/bin/true";
  o.start_timeout_ms = 3000;
  mpx_manager *m = reinterpret_cast<mpx_manager *>(0x1);
  Stopwatch sw;
  const int rc = mpx_manager_start(&m, &o);
  EXPECT_NE(rc, MPX_OK);
  EXPECT_EQ(m, nullptr);
  EXPECT_LT(sw.ms(), 3000 + 500) << "the child's exit is noticed (at the latest at the start timeout)";
  o.file = "/nonexistent/mpx-manager";
  m = nullptr;
  EXPECT_MPX_EITHER(MPX_ENOENT, MPX_EACCES, mpx_manager_start(&m, &o));
  EXPECT_EQ(m, nullptr);
}

TEST(ManagerStart, ManagerMainOutsideASpawnedServerIsEinval) {
  auto o = isolated([] { return mpx_manager_main(); });
  EXPECT_TRUE(o.completed) << o.how;
  EXPECT_MPX(MPX_EINVAL, o.rc);
}

TEST(ManagerStart, BadOptionsAreEinval) {
  mpx_manager_options o;
  EXPECT_MPX(MPX_EINVAL, mpx_manager_options_init(&o, sizeof o - 1));
  EXPECT_MPX(MPX_EINVAL, mpx_manager_options_init(&o, 0));
  ASSERT_MPX_OK(mpx_manager_options_init(&o, sizeof o));
  EXPECT_EQ(o.size, sizeof o);
  mpx_manager *m = nullptr;
  auto bad = o;
  bad.size = 4;
  EXPECT_MPX(MPX_EINVAL, mpx_manager_start(&m, &bad));
  bad = o;
  bad.authkey = "k";
  bad.authkey_len = 0;
  EXPECT_MPX(MPX_EINVAL, mpx_manager_start(&m, &bad)) << "a key of length 0";
  bad = o;
  bad.flags = 0x80000000u;
  EXPECT_MPX(MPX_EINVAL, mpx_manager_start(&m, &bad)) << "unknown flags";
  bad = o;
  bad.method = 77;
  EXPECT_MPX(MPX_EINVAL, mpx_manager_start(&m, &bad)) << "unknown start method";
  bad = o;
  bad.flags = MPX_MANAGER_IN_PROCESS;
  bad.address = "127.0.0.1:99999";
  EXPECT_NE(mpx_manager_start(&m, &bad), MPX_OK) << "a port out of range";
  EXPECT_EQ(m, nullptr);

  mpx_mclient_options co;
  EXPECT_MPX(MPX_EINVAL, mpx_mclient_options_init(&co, sizeof co + 1));
  ASSERT_MPX_OK(mpx_mclient_options_init(&co, sizeof co));
  mpx_mobj_options mo;
  EXPECT_MPX(MPX_EINVAL, mpx_mobj_options_init(&mo, 3));
  ASSERT_MPX_OK(mpx_mobj_options_init(&mo, sizeof mo));
  EXPECT_EQ(mo.initial, 1) << "default options give a semaphore the value 1";
  EXPECT_EQ(mo.name, nullptr);
}

TEST(ManagerStart, ConnectToNothingFailsWithinItsDeadline) {
  TempDir dir;
  int rc;
  Stopwatch sw;
  auto c = mconnect(dir.file("nobody"), &rc, 0, &kKey, 1000);
  EXPECT_NE(rc, MPX_OK);
  EXPECT_EQ(c, nullptr);
  EXPECT_LT(sw.ms(), 1500);
}

// ---- dict and namespace -----------------------------------------------------------------------

void check_dict_ops(mpx_proxy *d) {
  int rc;
  size_t n = 99;
  ASSERT_MPX_OK(mpx_mdict_len(d, &n));
  EXPECT_EQ(n, 0u);
  EXPECT_EQ(dict_get(d, "missing", &rc), "");
  EXPECT_MPX(MPX_ENOENT, rc);
  ASSERT_MPX_OK(dict_set(d, "a", "1"));
  ASSERT_MPX_OK(dict_set(d, "b", std::string("\0\1\2\xff", 4)));
  ASSERT_MPX_OK(dict_set(d, "empty", ""));
  EXPECT_EQ(dict_get(d, "a", &rc), "1");
  EXPECT_EQ(dict_get(d, "b", &rc), std::string("\0\1\2\xff", 4));
  EXPECT_EQ(dict_get(d, "empty", &rc), "");
  EXPECT_MPX_OK(rc) << "an empty value is a value";
  ASSERT_MPX_OK(dict_set(d, "a", "one"));  // overwrite
  EXPECT_EQ(dict_get(d, "a", &rc), "one");
  EXPECT_MPX(MPX_EEXIST, mpx_mdict_add(d, "a", "x", 1));
  EXPECT_EQ(dict_get(d, "a", &rc), "one") << "add changes nothing when the key is present";
  EXPECT_MPX_OK(mpx_mdict_add(d, "c", "3", 1));
  EXPECT_EQ(dict_len(d), 4u);

  char *keys = nullptr;
  size_t klen = 0, count = 0;
  ASSERT_MPX_OK(mpx_mdict_keys(d, &keys, &klen, &count));
  std::set<std::string> got;
  for (size_t off = 0; off < klen;) {
    const std::string k(keys + off);
    got.insert(k);
    off += k.size() + 1;
  }
  mpx_free(keys);
  EXPECT_EQ(count, 4u);
  EXPECT_EQ(got, (std::set<std::string>{"a", "b", "c", "empty"}));

  void *v = nullptr;
  size_t vn = 0;
  ASSERT_MPX_OK(mpx_mdict_pop(d, "a", &v, &vn));
  EXPECT_EQ(take_bytes(v, vn), "one");
  EXPECT_MPX(MPX_ENOENT, mpx_mdict_pop(d, "a", &v, &vn));
  EXPECT_MPX_OK(mpx_mdict_pop(d, "c", nullptr, nullptr)) << "pop without taking the value";
  EXPECT_EQ(dict_len(d), 2u);

  // Keys up to MPX_MANAGER_KEY_MAX bytes; one more is refused.
  const std::string longest(MPX_MANAGER_KEY_MAX, 'k');
  EXPECT_MPX_OK(dict_set(d, longest, "long"));
  EXPECT_EQ(dict_get(d, longest, &rc), "long");
  EXPECT_MPX(MPX_EINVAL, dict_set(d, longest + "k", "too long"));
  EXPECT_MPX_OK(dict_set(d, "", "empty key"));
  EXPECT_EQ(dict_get(d, "", &rc), "empty key");

  // Values of any size (several MiB through the shared-memory path as well).
  std::string big(3 << 20, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = char(i * 131 + 7);
  ASSERT_MPX_OK(dict_set(d, "big", big));
  EXPECT_TRUE(dict_get(d, "big", &rc) == big) << "3 MiB value round trip";

  ASSERT_MPX_OK(mpx_mdict_clear(d));
  EXPECT_EQ(dict_len(d), 0u);
  ASSERT_MPX_OK(mpx_mdict_keys(d, &keys, &klen, &count));
  EXPECT_EQ(count, 0u);
  mpx_free(keys);
  EXPECT_MPX_OK(mpx_mdict_clear(d)) << "clear of an empty dict";
}

TEST_P(ManagerObjects, DictSetAddGetPopLenKeysClear) {
  auto d = make(MPX_MOBJ_DICT);
  ASSERT_TRUE(d);
  int type = 0;
  ASSERT_MPX_OK(mpx_proxy_type(d.get(), &type));
  EXPECT_EQ(type, MPX_MOBJ_DICT);
  check_dict_ops(d.get());
}

TEST_P(ManagerObjects, NamespaceHasTheDictOperations) {
  auto ns = make(MPX_MOBJ_NAMESPACE);
  ASSERT_TRUE(ns);
  int type = 0;
  ASSERT_MPX_OK(mpx_proxy_type(ns.get(), &type));
  EXPECT_EQ(type, MPX_MOBJ_NAMESPACE);
  check_dict_ops(ns.get());
}

TEST_P(ManagerObjects, AnOperationOfAnotherTypeIsRefusedAndTheProxyStillWorks) {
  auto l = make(MPX_MOBJ_LIST);
  auto q = make(MPX_MOBJ_QUEUE);
  auto lk = make(MPX_MOBJ_LOCK);
  ASSERT_TRUE(l && q && lk);
  EXPECT_NE(dict_set(l.get(), "k", "v"), MPX_OK);
  size_t n = 0;
  EXPECT_NE(mpx_mdict_len(q.get(), &n), MPX_OK);
  EXPECT_NE(mpx_mlist_append(lk.get(), "x", 1), MPX_OK);
  EXPECT_NE(mpx_mqueue_put(l.get(), "x", 1, 0), MPX_OK);
  EXPECT_NE(mpx_mlock_acquire(q.get(), 0), MPX_OK);
  EXPECT_NE(mpx_mqueue_task_done(q.get()), MPX_OK) << "task_done on a plain queue";
  int64_t v;
  EXPECT_NE(mpx_msem_value(lk.get(), &v), MPX_OK);
  EXPECT_NE(mpx_mbarrier_abort(l.get()), MPX_OK);
  int32_t i32 = 0;
  EXPECT_NE(mpx_mvalue_get(l.get(), &i32, sizeof i32), MPX_OK);
  EXPECT_MPX_OK(list_append(l.get(), "still fine"));
  EXPECT_EQ(list_len(l.get()), 1u);
  EXPECT_MPX_OK(mpx_mlock_acquire(lk.get(), 0));
  EXPECT_MPX_OK(mpx_mlock_release(lk.get()));
}

// ---- list -------------------------------------------------------------------------------------

std::vector<std::string> list_all(mpx_proxy *l) {
  std::vector<std::string> out;
  const size_t n = list_len(l);
  for (size_t i = 0; i < n && n != SIZE_MAX; ++i) {
    int rc;
    out.push_back(list_get(l, int64_t(i), &rc));
  }
  return out;
}

using Strings = std::vector<std::string>;

TEST_P(ManagerObjects, ListOperationsWithNegativeIndexesAndRanges) {
  auto l = make(MPX_MOBJ_LIST);
  ASSERT_TRUE(l);
  mpx_proxy *p = l.get();
  int rc;
  EXPECT_EQ(list_len(p), 0u);
  EXPECT_EQ(list_get(p, 0, &rc), "");
  EXPECT_MPX(MPX_ERANGE, rc);
  EXPECT_MPX(MPX_ERANGE, mpx_mlist_pop(p, -1, nullptr, nullptr)) << "pop from an empty list";
  for (const char *s : {"a", "b", "c"}) ASSERT_MPX_OK(list_append(p, s));
  EXPECT_EQ(list_get(p, 0, &rc), "a");
  EXPECT_EQ(list_get(p, -1, &rc), "c");
  EXPECT_EQ(list_get(p, -3, &rc), "a");
  list_get(p, 3, &rc);
  EXPECT_MPX(MPX_ERANGE, rc);
  list_get(p, -4, &rc);
  EXPECT_MPX(MPX_ERANGE, rc);
  list_get(p, INT64_MIN, &rc);
  EXPECT_MPX(MPX_ERANGE, rc);
  list_get(p, INT64_MAX, &rc);
  EXPECT_MPX(MPX_ERANGE, rc);
  ASSERT_MPX_OK(mpx_mlist_set(p, -1, "C", 1));
  EXPECT_MPX(MPX_ERANGE, mpx_mlist_set(p, 3, "x", 1));
  EXPECT_MPX(MPX_ERANGE, mpx_mlist_set(p, -4, "x", 1));
  EXPECT_EQ(list_all(p), (Strings{"a", "b", "C"}));
  // insert clamps as Python's list.insert does.
  ASSERT_MPX_OK(mpx_mlist_insert(p, 0, "z", 1));
  ASSERT_MPX_OK(mpx_mlist_insert(p, -1, "y", 1));
  ASSERT_MPX_OK(mpx_mlist_insert(p, 100, "end", 3));
  ASSERT_MPX_OK(mpx_mlist_insert(p, -100, "start", 5));
  ASSERT_MPX_OK(mpx_mlist_insert(p, INT64_MIN, "min", 3));
  ASSERT_MPX_OK(mpx_mlist_insert(p, INT64_MAX, "max", 3));
  EXPECT_EQ(list_all(p), (Strings{"min", "start", "z", "a", "b", "y", "C", "end", "max"}));
  void *v = nullptr;
  size_t n = 0;
  ASSERT_MPX_OK(mpx_mlist_pop(p, -1, &v, &n));
  EXPECT_EQ(take_bytes(v, n), "max");
  ASSERT_MPX_OK(mpx_mlist_pop(p, 0, &v, &n));
  EXPECT_EQ(take_bytes(v, n), "min");
  ASSERT_MPX_OK(mpx_mlist_pop(p, -2, nullptr, nullptr));  // "C"
  EXPECT_MPX(MPX_ERANGE, mpx_mlist_pop(p, 6, &v, &n));
  EXPECT_MPX(MPX_ERANGE, mpx_mlist_pop(p, -7, &v, &n));
  EXPECT_EQ(list_all(p), (Strings{"start", "z", "a", "b", "y", "end"}));
  ASSERT_MPX_OK(mpx_mlist_reverse(p));
  EXPECT_EQ(list_all(p), (Strings{"end", "y", "b", "a", "z", "start"}));
  // sort: memcmp order (bytes unsigned), shorter first on a tie.
  ASSERT_MPX_OK(mpx_mlist_clear(p));
  EXPECT_EQ(list_len(p), 0u);
  for (const std::string &s : {std::string("b"), std::string("ab"), std::string(""), std::string("a"),
                               std::string("\xff"), std::string("\x01"), std::string("a\0", 2), std::string("aa")})
    ASSERT_MPX_OK(list_append(p, s));
  ASSERT_MPX_OK(mpx_mlist_sort(p));
  EXPECT_EQ(list_all(p), (Strings{"", "\x01", "a", std::string("a\0", 2), "aa", "ab", "b", "\xff"}));
  ASSERT_MPX_OK(mpx_mlist_reverse(p));
  EXPECT_EQ(list_all(p).front(), "\xff");
  ASSERT_MPX_OK(mpx_mlist_clear(p));
  EXPECT_MPX_OK(mpx_mlist_reverse(p)) << "reverse of an empty list";
  EXPECT_MPX_OK(mpx_mlist_sort(p)) << "sort of an empty list";
  ASSERT_MPX_OK(mpx_mlist_insert(p, -5, "only", 4));
  EXPECT_EQ(list_all(p), (Strings{"only"}));
}

// ---- queues -----------------------------------------------------------------------------------

TEST_P(ManagerObjects, QueuePutGetFifoAndTimeouts) {
  auto q = make(MPX_MOBJ_QUEUE);
  ASSERT_TRUE(q);
  int rc;
  size_t n = 99;
  ASSERT_MPX_OK(mpx_mqueue_qsize(q.get(), &n));
  EXPECT_EQ(n, 0u);
  for (int i = 0; i < 10; ++i) ASSERT_MPX_OK(queue_put(q.get(), "item" + std::to_string(i), 0));
  ASSERT_MPX_OK(queue_put(q.get(), "", 0));
  ASSERT_MPX_OK(mpx_mqueue_qsize(q.get(), &n));
  EXPECT_EQ(n, 11u);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(queue_get(q.get(), &rc, 0), "item" + std::to_string(i));
  EXPECT_EQ(queue_get(q.get(), &rc, 0), "");
  EXPECT_MPX_OK(rc) << "an empty item";
  Stopwatch sw;
  queue_get(q.get(), &rc, 0);
  EXPECT_MPX(MPX_ETIMEDOUT, rc);
  EXPECT_LT(sw.ms(), 50) << "timeout 0 tries once";
  EXPECT_TRUE(TimesOutWithin(100, [&] {
    int r;
    queue_get(q.get(), &r, 100);
    return r;
  }));
  std::string big(5 << 20, 'q');
  big[12345] = '\0';
  ASSERT_MPX_OK(queue_put(q.get(), big, 1000));
  EXPECT_TRUE(queue_get(q.get(), &rc, 1000) == big) << "5 MiB item";
}

TEST_P(ManagerObjects, BoundedQueuePutBlocksUntilAnotherClientGets) {
  auto o = mobj_options();
  o.maxsize = 2;
  auto q = make(MPX_MOBJ_QUEUE, &o);
  ASSERT_TRUE(q);
  ASSERT_MPX_OK(queue_put(q.get(), "1", 0));
  ASSERT_MPX_OK(queue_put(q.get(), "2", 0));
  EXPECT_MPX(MPX_ETIMEDOUT, queue_put(q.get(), "3", 0));
  EXPECT_TRUE(TimesOutWithin(100, [&] { return queue_put(q.get(), "3", 100); }));
  // A put blocked forever is released by a get from another client in another process.
  const std::string tok = proxy_token(q.get());
  Child getter = Child::fork([&] {
    int r;
    auto c = client(&r);
    CHILD_MPX_OK(r);
    auto qq = mopen(c.get(), tok, &r);
    CHILD_MPX_OK(r);
    sleep_ms(100);  // let the parent block (its put must not return before this get)
    const std::string got = queue_get(qq.get(), &r, 5000);
    CHILD_MPX_OK(r);
    CHILD_CHECK(got == "1");
    return 0;
  });
  Stopwatch sw;
  EXPECT_MPX_OK(queue_put(q.get(), "3", -1));
  EXPECT_GE(sw.ms(), 50) << "the put did not block while the queue was full";
  EXPECT_TRUE(getter.wait(10s).ok()) << getter.status().describe();
  int rc;
  EXPECT_EQ(queue_get(q.get(), &rc, 0), "2");
  EXPECT_EQ(queue_get(q.get(), &rc, 0), "3");
}

TEST_P(ManagerObjects, QueueGetBlockedInAThreadIsWokenByAPutFromAnotherProcess) {
  auto q = make(MPX_MOBJ_QUEUE);
  ASSERT_TRUE(q);
  const std::string tok = proxy_token(q.get());
  Rendezvous connected;
  Child putter = Child::fork([&] {
    int r;
    auto c = client(&r);
    CHILD_MPX_OK(r);
    auto qq = mopen(c.get(), tok, &r);
    CHILD_MPX_OK(r);
    connected.notify();
    sleep_ms(50);
    CHILD_MPX_OK(queue_put(qq.get(), "from the child"));
    return 0;
  });
  ASSERT_TRUE(connected.wait());
  int rc;
  EXPECT_EQ(queue_get(q.get(), &rc, 10000), "from the child");
  EXPECT_MPX_OK(rc);
  EXPECT_TRUE(putter.wait(10s).ok()) << putter.status().describe();
}

// Scenario 50 through a manager: INT64_MAX (and deadlines whose ns overflow) and any negative
// timeout block until woken; none wraps into an immediate timeout.
TEST_P(ManagerObjects, HugeAndNegativeTimeoutsBlockUntilWoken) {
  auto q = make(MPX_MOBJ_QUEUE);
  auto e = make(MPX_MOBJ_EVENT);
  ASSERT_TRUE(q && e);
  int rc;
  auto c2 = client(&rc);
  ASSERT_MPX_OK(rc);
  auto q2 = mopen(c2.get(), proxy_token(q.get()), &rc);
  auto e2 = mopen(c2.get(), proxy_token(e.get()), &rc);
  ASSERT_TRUE(q2 && e2);
  for (int64_t t : {INT64_MAX, int64_t(9223372036855LL), int64_t(-1), INT64_MIN}) {
    SCOPED_TRACE("timeout " + std::to_string(t));
    std::atomic<int> got{INT32_MIN}, waited{INT32_MIN};
    std::thread getter([&] {
      int r;
      queue_get(q2.get(), &r, t);
      got = r;
      waited = mpx_mevent_wait(e2.get(), t);
    });
    sleep_ms(50);
    EXPECT_EQ(got.load(), INT32_MIN) << "returned at once";
    ASSERT_MPX_OK(queue_put(q.get(), "wake"));
    sleep_ms(50);
    EXPECT_EQ(waited.load(), INT32_MIN) << "the event wait returned at once";
    ASSERT_MPX_OK(mpx_mevent_set(e.get()));
    getter.join();
    EXPECT_MPX_OK(got.load());
    EXPECT_MPX_OK(waited.load());
    ASSERT_MPX_OK(mpx_mevent_clear(e.get()));
  }
}

TEST_P(ManagerObjects, JoinableQueueTaskDoneAndJoin) {
  auto q = make(MPX_MOBJ_JOINABLE_QUEUE);
  ASSERT_TRUE(q);
  int type = 0;
  ASSERT_MPX_OK(mpx_proxy_type(q.get(), &type));
  EXPECT_EQ(type, MPX_MOBJ_JOINABLE_QUEUE);
  EXPECT_MPX_OK(mpx_mqueue_join(q.get(), 0)) << "nothing put: nothing to wait for";
  EXPECT_MPX(MPX_EOVERFLOW, mpx_mqueue_task_done(q.get())) << "no unfinished item";
  for (int i = 0; i < 3; ++i) ASSERT_MPX_OK(queue_put(q.get(), std::to_string(i)));
  EXPECT_MPX(MPX_ETIMEDOUT, mpx_mqueue_join(q.get(), 0));
  EXPECT_TRUE(TimesOutWithin(100, [&] { return mpx_mqueue_join(q.get(), 100); }));
  // A joiner in this process, a worker in another: join returns once all three are done.
  const std::string tok = proxy_token(q.get());
  Child worker = Child::fork([&] {
    int r;
    auto c = client(&r);
    CHILD_MPX_OK(r);
    auto qq = mopen(c.get(), tok, &r);
    CHILD_MPX_OK(r);
    for (int i = 0; i < 3; ++i) {
      const std::string got = queue_get(qq.get(), &r, 5000);
      CHILD_MPX_OK(r);
      CHILD_CHECK(got == std::to_string(i));
      CHILD_MPX_OK(mpx_mqueue_task_done(qq.get()));
    }
    return 0;
  });
  EXPECT_MPX_OK(mpx_mqueue_join(q.get(), 10000));
  EXPECT_TRUE(worker.wait(10s).ok()) << worker.status().describe();
  EXPECT_MPX(MPX_EOVERFLOW, mpx_mqueue_task_done(q.get())) << "over-calling task_done";
  EXPECT_MPX(MPX_EOVERFLOW, mpx_mqueue_task_done(q.get()));
  ASSERT_MPX_OK(queue_put(q.get(), "again"));
  EXPECT_MPX(MPX_ETIMEDOUT, mpx_mqueue_join(q.get(), 0)) << "the failed task_done calls counted nothing";
  int rc;
  queue_get(q.get(), &rc, 0);
  ASSERT_MPX_OK(mpx_mqueue_task_done(q.get()));
  EXPECT_MPX_OK(mpx_mqueue_join(q.get(), 0));
}

// ---- locks and semaphores ---------------------------------------------------------------------

TEST_P(ManagerObjects, LockIsExclusiveAndAnyClientMayReleaseIt) {
  auto lk = make(MPX_MOBJ_LOCK);
  ASSERT_TRUE(lk);
  int rc;
  auto c2 = client(&rc);
  ASSERT_MPX_OK(rc);
  auto lk2 = mopen(c2.get(), proxy_token(lk.get()), &rc);
  ASSERT_MPX_OK(rc);
  ASSERT_MPX_OK(mpx_mlock_acquire(lk.get(), 0));
  EXPECT_MPX(MPX_ETIMEDOUT, mpx_mlock_acquire(lk.get(), 0)) << "a Lock is not recursive";
  EXPECT_MPX(MPX_ETIMEDOUT, mpx_mlock_acquire(lk2.get(), 0));
  EXPECT_TRUE(TimesOutWithin(100, [&] { return mpx_mlock_acquire(lk2.get(), 100); }));
  EXPECT_MPX_OK(mpx_mlock_release(lk2.get())) << "Python's Lock: any client may release";
  EXPECT_MPX_OK(mpx_mlock_acquire(lk.get(), 0));
  // A waiter in another thread (own client) is woken by the release.
  std::atomic<int> got{INT32_MIN};
  std::thread t([&] { got = mpx_mlock_acquire(lk2.get(), 10000); });
  sleep_ms(50);
  EXPECT_EQ(got.load(), INT32_MIN) << "the waiter did not block";
  ASSERT_MPX_OK(mpx_mlock_release(lk.get()));
  t.join();
  EXPECT_MPX_OK(got.load());
  EXPECT_MPX_OK(mpx_mlock_release(lk2.get()));
}

TEST_P(ManagerObjects, RLockRecursionAndNonOwnerReleaseIsEperm) {
  auto r = make(MPX_MOBJ_RLOCK);
  ASSERT_TRUE(r);
  int rc;
  auto c2 = client(&rc);
  ASSERT_MPX_OK(rc);
  auto r2 = mopen(c2.get(), proxy_token(r.get()), &rc);
  ASSERT_MPX_OK(rc);
  EXPECT_MPX(MPX_EPERM, mpx_mlock_release(r.get())) << "release of an unowned rlock";
  for (int i = 0; i < 100; ++i) ASSERT_MPX_OK(mpx_mlock_acquire(r.get(), 0));
  EXPECT_MPX(MPX_ETIMEDOUT, mpx_mlock_acquire(r2.get(), 0));
  EXPECT_MPX(MPX_EPERM, mpx_mlock_release(r2.get())) << "a non-owner's release";
  for (int i = 0; i < 99; ++i) ASSERT_MPX_OK(mpx_mlock_release(r.get()));
  EXPECT_MPX(MPX_ETIMEDOUT, mpx_mlock_acquire(r2.get(), 0)) << "still held at depth 1";
  ASSERT_MPX_OK(mpx_mlock_release(r.get()));
  EXPECT_MPX(MPX_EPERM, mpx_mlock_release(r.get())) << "released once too often";
  EXPECT_MPX_OK(mpx_mlock_acquire(r2.get(), 0));
  EXPECT_MPX_OK(mpx_mlock_acquire(r2.get(), 0));
  EXPECT_MPX(MPX_EPERM, mpx_mlock_release(r.get()));
  EXPECT_MPX_OK(mpx_mlock_release(r2.get()));
  EXPECT_MPX_OK(mpx_mlock_release(r2.get()));
}

TEST_P(ManagerObjects, LockHeldByAnotherProcessBlocksUntilReleased) {
  auto lk = make(MPX_MOBJ_LOCK);
  auto held = make(MPX_MOBJ_EVENT);
  auto go = make(MPX_MOBJ_EVENT);
  ASSERT_TRUE(lk && held && go);
  const std::string tl = proxy_token(lk.get()), th = proxy_token(held.get()), tg = proxy_token(go.get());
  Child owner = Child::fork([&] {
    int r;
    auto c = client(&r);
    CHILD_MPX_OK(r);
    auto l = mopen(c.get(), tl, &r);
    auto h = mopen(c.get(), th, &r);
    auto g = mopen(c.get(), tg, &r);
    CHILD_CHECK(l && h && g);
    CHILD_MPX_OK(mpx_mlock_acquire(l.get(), 5000));
    CHILD_MPX_OK(mpx_mevent_set(h.get()));
    CHILD_MPX_OK(mpx_mevent_wait(g.get(), 10000));
    CHILD_MPX_OK(mpx_mlock_release(l.get()));
    return 0;
  });
  ASSERT_MPX_OK(mpx_mevent_wait(held.get(), 10000));
  EXPECT_TRUE(TimesOutWithin(100, [&] { return mpx_mlock_acquire(lk.get(), 100); }));
  ASSERT_MPX_OK(mpx_mevent_set(go.get()));
  EXPECT_MPX_OK(mpx_mlock_acquire(lk.get(), 10000));
  EXPECT_MPX_OK(mpx_mlock_release(lk.get()));
  EXPECT_TRUE(owner.wait(10s).ok()) << owner.status().describe();
}

TEST_P(ManagerObjects, SemaphoreCountsAndTimesOut) {
  auto dflt = make(MPX_MOBJ_SEMAPHORE);  // NULL options: the default value 1
  ASSERT_TRUE(dflt);
  int64_t v = -1;
  ASSERT_MPX_OK(mpx_msem_value(dflt.get(), &v));
  EXPECT_EQ(v, 1);
  auto o = mobj_options();
  o.initial = 2;
  auto s = make(MPX_MOBJ_SEMAPHORE, &o);
  ASSERT_TRUE(s);
  ASSERT_MPX_OK(mpx_mlock_acquire(s.get(), 0));
  ASSERT_MPX_OK(mpx_mlock_acquire(s.get(), 0));
  ASSERT_MPX_OK(mpx_msem_value(s.get(), &v));
  EXPECT_EQ(v, 0);
  EXPECT_MPX(MPX_ETIMEDOUT, mpx_mlock_acquire(s.get(), 0));
  EXPECT_TRUE(TimesOutWithin(100, [&] { return mpx_mlock_acquire(s.get(), 100); }));
  for (int i = 0; i < 5; ++i) ASSERT_MPX_OK(mpx_mlock_release(s.get()));
  ASSERT_MPX_OK(mpx_msem_value(s.get(), &v));
  EXPECT_EQ(v, 5) << "an unbounded semaphore goes past its initial value";
  o.initial = 0;
  auto zero = make(MPX_MOBJ_SEMAPHORE, &o);
  ASSERT_TRUE(zero);
  ASSERT_MPX_OK(mpx_msem_value(zero.get(), &v));
  EXPECT_EQ(v, 0) << "initial 0 as written";
  o.initial = -1;
  int rc;
  auto neg = mcreate(c_.get(), MPX_MOBJ_SEMAPHORE, &o, &rc);
  EXPECT_MPX(MPX_EINVAL, rc) << "a negative initial value";
}

TEST_P(ManagerObjects, BoundedSemaphoreOverReleaseIsEoverflow) {
  auto o = mobj_options();
  o.initial = 2;
  auto b = make(MPX_MOBJ_BOUNDED_SEMAPHORE, &o);
  ASSERT_TRUE(b);
  EXPECT_MPX(MPX_EOVERFLOW, mpx_mlock_release(b.get()));
  int64_t v = -1;
  ASSERT_MPX_OK(mpx_msem_value(b.get(), &v));
  EXPECT_EQ(v, 2) << "value unchanged";
  ASSERT_MPX_OK(mpx_mlock_acquire(b.get(), 0));
  ASSERT_MPX_OK(mpx_mlock_release(b.get()));
  EXPECT_MPX(MPX_EOVERFLOW, mpx_mlock_release(b.get()));
  ASSERT_MPX_OK(mpx_msem_value(b.get(), &v));
  EXPECT_EQ(v, 2);
}

// ---- condition, event, barrier ----------------------------------------------------------------

TEST_P(ManagerObjects, ConditionWaitAndNotifyBetweenProcesses) {
  auto cv = make(MPX_MOBJ_CONDITION);
  auto waiting = make(MPX_MOBJ_EVENT);
  ASSERT_TRUE(cv && waiting);
  const std::string tc = proxy_token(cv.get()), tw = proxy_token(waiting.get());
  Child waiter = Child::fork([&] {
    int r;
    auto c = client(&r);
    CHILD_MPX_OK(r);
    auto cc = mopen(c.get(), tc, &r);
    auto w = mopen(c.get(), tw, &r);
    CHILD_CHECK(cc && w);
    CHILD_MPX_OK(mpx_mlock_acquire(cc.get(), 5000));
    // Set while holding the lock: the parent can only take it once this wait released it.
    CHILD_MPX_OK(mpx_mevent_set(w.get()));
    CHILD_MPX_OK(mpx_mcond_wait(cc.get(), 10000));
    CHILD_MPX_OK(mpx_mlock_release(cc.get()));
    return 0;
  });
  ASSERT_MPX_OK(mpx_mevent_wait(waiting.get(), 10000));
  ASSERT_MPX_OK(mpx_mlock_acquire(cv.get(), 10000));
  EXPECT_MPX_OK(mpx_mcond_notify(cv.get(), 1));
  ASSERT_MPX_OK(mpx_mlock_release(cv.get()));
  EXPECT_TRUE(waiter.wait(10s).ok()) << waiter.status().describe();
}

TEST_P(ManagerObjects, ConditionTimeoutNotifyAllAndMisuse) {
  auto cv = make(MPX_MOBJ_CONDITION);
  ASSERT_TRUE(cv);
  EXPECT_NE(mpx_mcond_wait(cv.get(), 0), MPX_OK) << "wait without the lock";
  EXPECT_NE(mpx_mcond_notify(cv.get(), 1), MPX_OK) << "notify without the lock";
  ASSERT_MPX_OK(mpx_mlock_acquire(cv.get(), 0));
  EXPECT_TRUE(TimesOutWithin(100, [&] { return mpx_mcond_wait(cv.get(), 100); }));
  EXPECT_MPX_OK(mpx_mcond_notify(cv.get(), 5)) << "notify with no waiter";
  ASSERT_MPX_OK(mpx_mlock_release(cv.get()));

  // Two waiters with their own clients; notify_all wakes both.
  const std::string tok = proxy_token(cv.get());
  std::atomic<int> in_wait{0}, woke{0};
  std::vector<std::thread> ts;
  for (int i = 0; i < 2; ++i) {
    ts.emplace_back([&] {
      int r;
      auto c = client(&r);
      auto p = mopen(c.get(), tok, &r);
      if (!p || mpx_mlock_acquire(p.get(), 5000) != MPX_OK) return;
      in_wait++;
      if (mpx_mcond_wait(p.get(), 10000) == MPX_OK) woke++;
      mpx_mlock_release(p.get());
    });
  }
  // Both are inside wait once the lock is free and the count is 2 (each increments under it).
  for (;;) {
    ASSERT_MPX_OK(mpx_mlock_acquire(cv.get(), 10000));
    if (in_wait.load() == 2) break;
    ASSERT_MPX_OK(mpx_mlock_release(cv.get()));
    sleep_ms(5);
  }
  EXPECT_MPX_OK(mpx_mcond_notify_all(cv.get()));
  ASSERT_MPX_OK(mpx_mlock_release(cv.get()));
  for (auto &t : ts) t.join();
  EXPECT_EQ(woke.load(), 2);
}

TEST_P(ManagerObjects, ConditionOnAGivenLock) {
  auto lk = make(MPX_MOBJ_LOCK);
  ASSERT_TRUE(lk);
  auto o = mobj_options();
  o.lock = lk.get();
  auto cv = make(MPX_MOBJ_CONDITION, &o);
  ASSERT_TRUE(cv);
  ASSERT_MPX_OK(mpx_mlock_acquire(cv.get(), 0));
  EXPECT_MPX(MPX_ETIMEDOUT, mpx_mlock_acquire(lk.get(), 0)) << "the condition's lock is the given lock";
  ASSERT_MPX_OK(mpx_mlock_release(cv.get()));
  EXPECT_MPX_OK(mpx_mlock_acquire(lk.get(), 0));
  EXPECT_MPX_OK(mpx_mlock_release(lk.get()));
  // A lock proxy of another client is refused.
  int rc;
  auto c2 = client(&rc);
  ASSERT_MPX_OK(rc);
  auto other = mcreate(c2.get(), MPX_MOBJ_LOCK, nullptr, &rc);
  ASSERT_MPX_OK(rc);
  o.lock = other.get();
  auto bad = mcreate(c_.get(), MPX_MOBJ_CONDITION, &o, &rc);
  EXPECT_MPX(MPX_EINVAL, rc);
  auto q = make(MPX_MOBJ_QUEUE);
  o.lock = q.get();
  bad = mcreate(c_.get(), MPX_MOBJ_CONDITION, &o, &rc);
  EXPECT_MPX(MPX_EINVAL, rc) << "a queue is no lock";
}

TEST_P(ManagerObjects, EventSetClearWaitAcrossProcesses) {
  auto e = make(MPX_MOBJ_EVENT);
  ASSERT_TRUE(e);
  int is = -1;
  ASSERT_MPX_OK(mpx_mevent_is_set(e.get(), &is));
  EXPECT_EQ(is, 0);
  EXPECT_MPX(MPX_ETIMEDOUT, mpx_mevent_wait(e.get(), 0));
  EXPECT_TRUE(TimesOutWithin(100, [&] { return mpx_mevent_wait(e.get(), 100); }));
  const std::string tok = proxy_token(e.get());
  Child setter = Child::fork([&] {
    int r;
    auto c = client(&r);
    CHILD_MPX_OK(r);
    auto ee = mopen(c.get(), tok, &r);
    CHILD_MPX_OK(r);
    sleep_ms(50);
    CHILD_MPX_OK(mpx_mevent_set(ee.get()));
    return 0;
  });
  EXPECT_MPX_OK(mpx_mevent_wait(e.get(), 10000));
  EXPECT_TRUE(setter.wait(10s).ok()) << setter.status().describe();
  ASSERT_MPX_OK(mpx_mevent_is_set(e.get(), &is));
  EXPECT_EQ(is, 1);
  EXPECT_MPX_OK(mpx_mevent_wait(e.get(), 0));
  ASSERT_MPX_OK(mpx_mevent_clear(e.get()));
  ASSERT_MPX_OK(mpx_mevent_is_set(e.get(), &is));
  EXPECT_EQ(is, 0);
  EXPECT_MPX(MPX_ETIMEDOUT, mpx_mevent_wait(e.get(), 0));
}

TEST_P(ManagerObjects, BarrierArrivalIndexesAcrossProcesses) {
  auto o = mobj_options();
  o.parties = 3;
  auto b = make(MPX_MOBJ_BARRIER, &o);
  ASSERT_TRUE(b);
  const std::string tok = proxy_token(b.get());
  constexpr int kPasses = 5;
  // seen[pass][index]: how many parties got that arrival index in that pass.
  Shared<std::array<std::atomic<int>, 3 * kPasses>> seen;
  std::vector<Child> kids;
  for (int k = 0; k < 2; ++k) {
    kids.push_back(Child::fork([&] {
      int r;
      auto c = client(&r);
      CHILD_MPX_OK(r);
      auto bb = mopen(c.get(), tok, &r);
      CHILD_MPX_OK(r);
      for (int pass = 0; pass < kPasses; ++pass) {
        int64_t idx = -1;
        CHILD_MPX_OK(mpx_mbarrier_wait(bb.get(), 10000, &idx));
        CHILD_CHECK(idx >= 0 && idx < 3);
        (*seen)[size_t(pass * 3 + idx)]++;
      }
      return 0;
    }));
  }
  for (int pass = 0; pass < kPasses; ++pass) {
    int64_t idx = -1;
    ASSERT_MPX_OK(mpx_mbarrier_wait(b.get(), 10000, &idx));
    ASSERT_TRUE(idx >= 0 && idx < 3) << idx;
    (*seen)[size_t(pass * 3 + idx)]++;
  }
  for (auto &k : kids) EXPECT_TRUE(k.wait(10s).ok()) << k.status().describe();
  for (int i = 0; i < 3 * kPasses; ++i) EXPECT_EQ((*seen)[size_t(i)].load(), 1) << "pass " << i / 3 << " index " << i % 3;
}

TEST_P(ManagerObjects, BarrierTimeoutAbortAndReset) {
  int rc;
  auto none = mcreate(c_.get(), MPX_MOBJ_BARRIER, nullptr, &rc);
  EXPECT_MPX(MPX_EINVAL, rc) << "a barrier needs its parties";
  auto o = mobj_options();
  o.parties = 2;
  auto b = make(MPX_MOBJ_BARRIER, &o);
  ASSERT_TRUE(b);
  // A timeout breaks the barrier (as Python's Barrier): the next wait fails at once.
  EXPECT_TRUE(TimesOutWithin(100, [&] {
    mpx_mbarrier_reset(b.get());
    return mpx_mbarrier_wait(b.get(), 100, nullptr);
  }));
  EXPECT_MPX(MPX_EBROKEN, mpx_mbarrier_wait(b.get(), 1000, nullptr));
  ASSERT_MPX_OK(mpx_mbarrier_reset(b.get()));
  // abort wakes a waiter (another client, another thread) with MPX_EBROKEN.
  auto c2 = client(&rc);
  ASSERT_MPX_OK(rc);
  auto b2 = mopen(c2.get(), proxy_token(b.get()), &rc);
  ASSERT_MPX_OK(rc);
  std::atomic<int> got{INT32_MIN};
  std::thread t([&] { got = mpx_mbarrier_wait(b2.get(), 10000, nullptr); });
  sleep_ms(100);  // no signal tells that the waiter reached the server
  Stopwatch sw;
  ASSERT_MPX_OK(mpx_mbarrier_abort(b.get()));
  t.join();
  EXPECT_MPX(MPX_EBROKEN, got.load());
  EXPECT_LT(sw.ms(), 1000);
  EXPECT_MPX(MPX_EBROKEN, mpx_mbarrier_wait(b.get(), 0, nullptr));
  // reset makes it usable again.
  ASSERT_MPX_OK(mpx_mbarrier_reset(b.get()));
  std::thread t2([&] { got = mpx_mbarrier_wait(b2.get(), 10000, nullptr); });
  int64_t idx = -1;
  EXPECT_MPX_OK(mpx_mbarrier_wait(b.get(), 10000, &idx));
  t2.join();
  EXPECT_MPX_OK(got.load());
}

// ---- value and array --------------------------------------------------------------------------

template <typename T>
void check_value(mpx_mclient *c, char typecode, T initial, T delta) {
  SCOPED_TRACE(std::string("typecode ") + typecode);
  auto o = mobj_options();
  o.typecode = typecode;
  o.data = &initial;
  o.data_len = sizeof initial;
  int rc;
  auto v = mcreate(c, MPX_MOBJ_VALUE, &o, &rc);
  ASSERT_MPX_OK(rc);
  T got{};
  ASSERT_MPX_OK(mpx_mvalue_get(v.get(), &got, sizeof got));
  EXPECT_EQ(got, initial);
  T result{};
  ASSERT_MPX_OK(mpx_mvalue_add(v.get(), &delta, &result, sizeof delta));
  EXPECT_EQ(result, T(initial + delta));
  ASSERT_MPX_OK(mpx_mvalue_add(v.get(), &delta, nullptr, sizeof delta));
  ASSERT_MPX_OK(mpx_mvalue_get(v.get(), &got, sizeof got));
  EXPECT_EQ(got, T(initial + delta + delta));
  const T seven = T(7);
  ASSERT_MPX_OK(mpx_mvalue_set(v.get(), &seven, sizeof seven));
  ASSERT_MPX_OK(mpx_mvalue_get(v.get(), &got, sizeof got));
  EXPECT_EQ(got, seven);
  char wide[16] = {};
  EXPECT_MPX(MPX_EINVAL, mpx_mvalue_get(v.get(), wide, sizeof(T) + 1)) << "size must be the element size";
  EXPECT_MPX(MPX_EINVAL, mpx_mvalue_set(v.get(), wide, sizeof(T) + 1));
  if (sizeof(T) > 1) {
    EXPECT_MPX(MPX_EINVAL, mpx_mvalue_get(v.get(), wide, sizeof(T) - 1));
  }
  ASSERT_MPX_OK(mpx_mvalue_get(v.get(), &got, sizeof got));
  EXPECT_EQ(got, seven) << "the refused set changed nothing";
}

TEST_P(ManagerObjects, ValueGetSetAddForSeveralTypecodes) {
  check_value<int32_t>(c_.get(), 'i', -5, 3);
  check_value<int64_t>(c_.get(), 'q', int64_t(1) << 40, -1);
  check_value<uint8_t>(c_.get(), 'B', 250, 10);  // wraps as the C type does
  check_value<int16_t>(c_.get(), 'h', -300, 1);
  check_value<uint64_t>(c_.get(), 'Q', ~uint64_t(0) - 1, 1);
  check_value<double>(c_.get(), 'd', 1.5, 0.25);
  check_value<float>(c_.get(), 'f', -2.0f, 0.5f);
  // The default typecode is 'i', starting at zero.
  auto v = make(MPX_MOBJ_VALUE);
  ASSERT_TRUE(v);
  int32_t x = -1;
  ASSERT_MPX_OK(mpx_mvalue_get(v.get(), &x, sizeof x));
  EXPECT_EQ(x, 0);
  auto o = mobj_options();
  o.typecode = 'z';
  int rc;
  auto bad = mcreate(c_.get(), MPX_MOBJ_VALUE, &o, &rc);
  EXPECT_MPX(MPX_EINVAL, rc) << "unknown typecode";
  o.typecode = 'i';
  int64_t wrong = 0;
  o.data = &wrong;
  o.data_len = sizeof wrong;
  bad = mcreate(c_.get(), MPX_MOBJ_VALUE, &o, &rc);
  EXPECT_MPX(MPX_EINVAL, rc) << "initial data of the wrong size";
}

TEST_P(ManagerObjects, ArrayLenGetSetAndRanges) {
  auto o = mobj_options();
  o.typecode = 'i';
  o.length = 10;
  auto a = make(MPX_MOBJ_ARRAY, &o);
  ASSERT_TRUE(a);
  size_t len = 0, itemsize = 0;
  ASSERT_MPX_OK(mpx_marray_len(a.get(), &len, &itemsize));
  EXPECT_EQ(len, 10u);
  EXPECT_EQ(itemsize, sizeof(int32_t));
  ASSERT_MPX_OK(mpx_marray_len(a.get(), &len, nullptr));
  std::vector<int32_t> all(10, -1);
  ASSERT_MPX_OK(mpx_marray_get(a.get(), 0, 10, all.data()));
  for (int32_t x : all) EXPECT_EQ(x, 0);
  const int32_t mid[3] = {7, 8, 9};
  ASSERT_MPX_OK(mpx_marray_set(a.get(), 4, 3, mid));
  ASSERT_MPX_OK(mpx_marray_get(a.get(), 0, 10, all.data()));
  EXPECT_EQ(all, (std::vector<int32_t>{0, 0, 0, 0, 7, 8, 9, 0, 0, 0}));
  int32_t one = 0;
  ASSERT_MPX_OK(mpx_marray_get(a.get(), 9, 1, &one));
  EXPECT_EQ(one, 0);
  EXPECT_MPX_OK(mpx_marray_get(a.get(), 10, 0, &one)) << "an empty range at the end";
  EXPECT_MPX_EITHER(MPX_ERANGE, MPX_EINVAL, mpx_marray_get(a.get(), 10, 1, &one));
  EXPECT_MPX_EITHER(MPX_ERANGE, MPX_EINVAL, mpx_marray_get(a.get(), 8, 3, all.data()));
  EXPECT_MPX_EITHER(MPX_ERANGE, MPX_EINVAL, mpx_marray_set(a.get(), 9, 2, mid));
  EXPECT_MPX_EITHER(MPX_ERANGE, MPX_EINVAL, mpx_marray_get(a.get(), SIZE_MAX, 2, all.data()));
  EXPECT_MPX_EITHER(MPX_ERANGE, MPX_EINVAL, mpx_marray_set(a.get(), 1, SIZE_MAX, mid));
  EXPECT_MPX_EITHER(MPX_ERANGE, MPX_EINVAL, mpx_marray_set(a.get(), 0, (SIZE_MAX / 4) + 2, mid))
      << "count * itemsize wraps";
  ASSERT_MPX_OK(mpx_marray_get(a.get(), 0, 10, all.data()));
  EXPECT_EQ(all, (std::vector<int32_t>{0, 0, 0, 0, 7, 8, 9, 0, 0, 0})) << "refused sets changed nothing";

  // Doubles with initial contents; the default typecode is 'b'.
  const double init[4] = {0.5, -1.0, 2.25, 1e300};
  o = mobj_options();
  o.typecode = 'd';
  o.length = 4;
  o.data = init;
  o.data_len = sizeof init;
  auto d = make(MPX_MOBJ_ARRAY, &o);
  ASSERT_TRUE(d);
  double back[4] = {};
  ASSERT_MPX_OK(mpx_marray_get(d.get(), 0, 4, back));
  EXPECT_EQ(std::memcmp(back, init, sizeof init), 0);
  o = mobj_options();
  o.length = 3;
  auto b = make(MPX_MOBJ_ARRAY, &o);
  ASSERT_TRUE(b);
  ASSERT_MPX_OK(mpx_marray_len(b.get(), &len, &itemsize));
  EXPECT_EQ(itemsize, 1u);
  int rc;
  o.length = 0;
  auto bad = mcreate(c_.get(), MPX_MOBJ_ARRAY, &o, &rc);
  EXPECT_MPX(MPX_EINVAL, rc) << "an array needs its length";
}

// ---- named objects and tokens -----------------------------------------------------------------

TEST_P(ManagerObjects, NamedObjectsExistOpenAndTypeMismatch) {
  auto o = mobj_options("shared-dict");
  auto d = make(MPX_MOBJ_DICT, &o);
  ASSERT_TRUE(d);
  int rc;
  auto again = mcreate(c_.get(), MPX_MOBJ_DICT, &o, &rc);
  EXPECT_MPX(MPX_EEXIST, rc);
  EXPECT_EQ(again, nullptr);
  o.flags = MPX_MOBJ_OPEN_EXISTING;
  auto same = mcreate(c_.get(), MPX_MOBJ_DICT, &o, &rc);
  ASSERT_MPX_OK(rc);
  ASSERT_MPX_OK(dict_set(d.get(), "k", "through the first proxy"));
  EXPECT_EQ(dict_get(same.get(), "k", &rc), "through the first proxy");
  auto wrong = mcreate(c_.get(), MPX_MOBJ_LIST, &o, &rc);
  EXPECT_MPX(MPX_EINVAL, rc) << "open-existing of another type";
  o.flags = 0;
  wrong = mcreate(c_.get(), MPX_MOBJ_LIST, &o, &rc);
  EXPECT_MPX(MPX_EEXIST, rc) << "names are one namespace across types";
  // OPEN_EXISTING of a name that does not exist creates it.
  auto fresh_o = mobj_options("fresh-list");
  fresh_o.flags = MPX_MOBJ_OPEN_EXISTING;
  auto fresh = mcreate(c_.get(), MPX_MOBJ_LIST, &fresh_o, &rc);
  EXPECT_MPX_OK(rc);
  // Open by name from another client, in another process.
  Child other = Child::fork([&] {
    int r;
    auto c = client(&r);
    CHILD_MPX_OK(r);
    auto dd = mopen(c.get(), "shared-dict", &r);
    CHILD_MPX_OK(r);
    int type = 0;
    CHILD_MPX_OK(mpx_proxy_type(dd.get(), &type));
    CHILD_CHECK_EQ(type, MPX_MOBJ_DICT);
    CHILD_CHECK(dict_get(dd.get(), "k", &r) == "through the first proxy");
    CHILD_MPX_OK(dict_set(dd.get(), "child", "was here"));
    auto missing = mopen(c.get(), "no-such-object", &r);
    CHILD_MPX(MPX_ENOENT, r);
    CHILD_CHECK(missing == nullptr);
    return 0;
  });
  EXPECT_TRUE(other.wait(10s).ok()) << other.status().describe();
  EXPECT_EQ(dict_get(d.get(), "child", &rc), "was here");
  // Names: up to MPX_MANAGER_KEY_MAX bytes.
  const std::string longest(MPX_MANAGER_KEY_MAX, 'n');
  auto lo = mobj_options(longest.c_str());
  auto l1 = mcreate(c_.get(), MPX_MOBJ_EVENT, &lo, &rc);
  EXPECT_MPX_OK(rc);
  const std::string too_long = longest + "n";
  lo.name = too_long.c_str();
  auto l2 = mcreate(c_.get(), MPX_MOBJ_EVENT, &lo, &rc);
  EXPECT_MPX(MPX_EINVAL, rc);
  auto l3 = mopen(c_.get(), too_long, &rc);
  EXPECT_NE(rc, MPX_OK);
}

TEST_P(ManagerObjects, NamedObjectOutlivesItsProxies) {
  auto o = mobj_options("lives-on");
  {
    auto l = make(MPX_MOBJ_LIST, &o);
    ASSERT_TRUE(l);
    ASSERT_MPX_OK(list_append(l.get(), "kept"));
  }
  int rc;
  auto l = mopen(c_.get(), "lives-on", &rc);
  ASSERT_MPX_OK(rc);
  EXPECT_EQ(list_get(l.get(), 0, &rc), "kept");
}

TEST_P(ManagerObjects, AnonymousObjectIsFreedWithItsLastProxy) {
  auto d = make(MPX_MOBJ_DICT);
  ASSERT_TRUE(d);
  ASSERT_MPX_OK(dict_set(d.get(), "k", "v"));
  const std::string tok = proxy_token(d.get());
  ASSERT_FALSE(tok.empty());
  int rc;
  auto c2 = client(&rc);
  ASSERT_MPX_OK(rc);
  auto d2 = mopen(c2.get(), tok, &rc);
  ASSERT_MPX_OK(rc);
  d.reset();  // the other client's proxy keeps it alive
  EXPECT_EQ(dict_get(d2.get(), "k", &rc), "v");
  auto d3 = mopen(c_.get(), tok, &rc);
  ASSERT_MPX_OK(rc);
  d2.reset();
  d3.reset();
  auto gone = mopen(c2.get(), tok, &rc);
  EXPECT_MPX(MPX_ENOENT, rc) << "freed with its last reference";
  EXPECT_EQ(gone, nullptr);
  auto bogus = mopen(c2.get(), "not-a-token-nor-a-name", &rc);
  EXPECT_MPX(MPX_ENOENT, rc);
}

TEST_P(ManagerObjects, ReferencesOfADeadClientAreDropped) {
  Shared<std::array<char, MPX_TOKEN_MAX>> tok_buf;
  Rendezvous made;
  Child owner = Child::fork([&] {
    int r;
    auto c = client(&r);
    CHILD_MPX_OK(r);
    auto q = mcreate(c.get(), MPX_MOBJ_QUEUE, nullptr, &r);
    CHILD_MPX_OK(r);
    CHILD_MPX_OK(queue_put(q.get(), "orphan"));
    const std::string t = proxy_token(q.get());
    std::memcpy(tok_buf->data(), t.c_str(), t.size() + 1);
    made.notify();
    return Rendezvous::hang();
  });
  ASSERT_TRUE(made.wait());
  const std::string tok(tok_buf->data());
  int rc;
  {
    auto q = mopen(c_.get(), tok, &rc);
    ASSERT_MPX_OK(rc) << "alive while its creator is";
    EXPECT_EQ(queue_get(q.get(), &rc, 1000), "orphan");
  }
  owner.kill_and_wait(SIGKILL);
  // The server notices the disconnect; the anonymous queue then has no reference left.
  Stopwatch sw;
  do {
    auto q = mopen(c_.get(), tok, &rc);
    if (rc == MPX_ENOENT) break;
    sleep_ms(10);
  } while (sw.ms() < 3000);
  EXPECT_MPX(MPX_ENOENT, rc) << "after " << sw.ms() << " ms";
}

// ---- many clients -----------------------------------------------------------------------------

TEST_P(ManagerObjects, EightProcessesIncrementACounterUnderAManagerLock) {
  constexpr int kProcs = 8, kIters = 100;
  auto d = make(MPX_MOBJ_DICT);
  auto lk = make(MPX_MOBJ_LOCK);
  auto o = mobj_options();
  o.typecode = 'q';
  auto v = make(MPX_MOBJ_VALUE, &o);
  ASSERT_TRUE(d && lk && v);
  ASSERT_MPX_OK(dict_set(d.get(), "n", "0"));
  const std::string td = proxy_token(d.get()), tl = proxy_token(lk.get()), tv = proxy_token(v.get());
  auto st = run_together(kProcs, [&](int i) {
    int r;
    // Half the clients over the socket only, whatever the transport under test.
    auto c = mconnect(addr_, &r, GetParam().client_flags | (i % 2 ? MPX_MCLIENT_SOCKET_ONLY : 0u), &kKey);
    CHILD_MPX_OK(r);
    auto dd = mopen(c.get(), td, &r);
    auto ll = mopen(c.get(), tl, &r);
    auto vv = mopen(c.get(), tv, &r);
    CHILD_CHECK(dd && ll && vv);
    for (int k = 0; k < kIters; ++k) {
      CHILD_MPX_OK(mpx_mlock_acquire(ll.get(), 20000));
      const std::string s = dict_get(dd.get(), "n", &r);
      CHILD_MPX_OK(r);
      CHILD_MPX_OK(dict_set(dd.get(), "n", std::to_string(std::stoll(s) + 1)));
      CHILD_MPX_OK(mpx_mlock_release(ll.get()));
      const int64_t one = 1;
      CHILD_MPX_OK(mpx_mvalue_add(vv.get(), &one, nullptr, sizeof one));
    }
    return 0;
  });
  std::string why;
  EXPECT_TRUE(all_ok(st, &why)) << why;
  int rc;
  EXPECT_EQ(dict_get(d.get(), "n", &rc), std::to_string(kProcs * kIters));
  int64_t total = 0;
  ASSERT_MPX_OK(mpx_mvalue_get(v.get(), &total, sizeof total));
  EXPECT_EQ(total, kProcs * kIters);
}

TEST_P(ManagerObjects, ProducersAndConsumersDeliverEveryItemExactlyOnce) {
  constexpr int kProducers = 4, kConsumers = 4, kItems = 300;
  auto o = mobj_options();
  o.maxsize = 16;  // producers block too
  auto q = make(MPX_MOBJ_QUEUE, &o);
  ASSERT_TRUE(q);
  const std::string tq = proxy_token(q.get());
  Shared<std::array<std::atomic<int>, kProducers * kItems>> got;
  Shared<std::atomic<int>> out_of_order(0);
  std::vector<Child> consumers;
  for (int i = 0; i < kConsumers; ++i) {
    consumers.push_back(Child::fork([&, i] {
      int r;
      auto c = mconnect(addr_, &r, GetParam().client_flags | (i % 2 ? MPX_MCLIENT_SOCKET_ONLY : 0u), &kKey);
      CHILD_MPX_OK(r);
      auto qq = mopen(c.get(), tq, &r);
      CHILD_MPX_OK(r);
      std::array<int, kProducers> last;
      last.fill(-1);
      for (;;) {
        const std::string item = queue_get(qq.get(), &r, 20000);
        CHILD_MPX_OK(r);
        if (item == "stop") return 0;
        int p = -1, k = -1;
        CHILD_CHECK(std::sscanf(item.c_str(), "%d:%d", &p, &k) == 2 && p >= 0 && p < kProducers && k >= 0 &&
                    k < kItems);
        if (k <= last[size_t(p)]) (*out_of_order)++;  // FIFO per producer, seen by one consumer
        last[size_t(p)] = k;
        (*got)[size_t(p * kItems + k)]++;
      }
    }));
  }
  auto st = run_together(kProducers, [&](int p) {
    int r;
    auto c = mconnect(addr_, &r, GetParam().client_flags | (p % 2 ? 0u : MPX_MCLIENT_SOCKET_ONLY), &kKey);
    CHILD_MPX_OK(r);
    auto qq = mopen(c.get(), tq, &r);
    CHILD_MPX_OK(r);
    for (int k = 0; k < kItems; ++k) CHILD_MPX_OK(queue_put(qq.get(), std::to_string(p) + ":" + std::to_string(k), 20000));
    return 0;
  });
  std::string why;
  EXPECT_TRUE(all_ok(st, &why)) << why;
  for (int i = 0; i < kConsumers; ++i) ASSERT_MPX_OK(queue_put(q.get(), "stop", 20000));
  for (auto &c : consumers) EXPECT_TRUE(c.wait(30s).ok()) << c.status().describe();
  int missing = 0, duplicated = 0;
  for (auto &n : *got) {
    if (n.load() == 0) ++missing;
    if (n.load() > 1) ++duplicated;
  }
  EXPECT_EQ(missing, 0);
  EXPECT_EQ(duplicated, 0);
  EXPECT_EQ(out_of_order->load(), 0);
  size_t left = 99;
  ASSERT_MPX_OK(mpx_mqueue_qsize(q.get(), &left));
  EXPECT_EQ(left, 0u);
}

// One client shared by several threads: calls are serialised, every reply reaches its caller.
TEST_P(ManagerObjects, ThreadsSharingOneClientEachGetTheirOwnReplies) {
  auto d = make(MPX_MOBJ_DICT);
  auto l = make(MPX_MOBJ_LIST);
  ASSERT_TRUE(d && l);
  constexpr int kThreads = 4, kIters = 200;
  std::atomic<int> wrong{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < kThreads; ++t) {
    ts.emplace_back([&, t] {
      for (int i = 0; i < kIters; ++i) {
        const std::string key = "t" + std::to_string(t), val = std::to_string(i);
        if (dict_set(d.get(), key, val) != MPX_OK) wrong++;
        int r;
        if (dict_get(d.get(), key, &r) != val) wrong++;
        if (list_append(l.get(), key) != MPX_OK) wrong++;
      }
    });
  }
  for (auto &t : ts) t.join();
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_EQ(list_len(l.get()), size_t(kThreads * kIters));
}

// Scenario 50: a forked child must not use its parent's client (it would share the parent's
// socket and queues, and steal its replies): MPX_EFORKED; a client of its own works, and the
// parent's connection is unharmed.
TEST_P(ManagerObjects, AForkedChildCannotUseItsParentsClient) {
  auto d = make(MPX_MOBJ_DICT);
  auto q = make(MPX_MOBJ_QUEUE);
  ASSERT_TRUE(d && q);
  ASSERT_MPX_OK(dict_set(d.get(), "k", "parent"));
  mpx_proxy *pd = d.get(), *pq = q.get();
  mpx_mclient *pc = c_.get();
  const std::string tok = proxy_token(d.get());
  auto st = run_in_child([&] {
    CHILD_MPX(MPX_EFORKED, dict_set(pd, "k", "child"));
    int r;
    queue_get(pq, &r, 0);
    CHILD_MPX(MPX_EFORKED, r);
    int shm;
    CHILD_MPX(MPX_EFORKED, mpx_mclient_shm(pc, &shm));
    mpx_proxy *p = nullptr;
    CHILD_MPX(MPX_EFORKED, mpx_proxy_create(pc, MPX_MOBJ_LIST, nullptr, &p));
    auto own = client(&r);
    CHILD_MPX_OK(r);
    auto dd = mopen(own.get(), tok, &r);
    CHILD_MPX_OK(r);
    CHILD_MPX_OK(dict_set(dd.get(), "own", "client"));
    return 0;
  });
  EXPECT_TRUE(st.ok()) << st.describe();
  int rc;
  EXPECT_EQ(dict_get(d.get(), "k", &rc), "parent");
  EXPECT_EQ(dict_get(d.get(), "own", &rc), "client");
  ASSERT_MPX_OK(queue_put(q.get(), "x"));
  EXPECT_EQ(queue_get(q.get(), &rc, 1000), "x") << "the parent's connection still works";
}

// A forked child's copies of the parent's handles are inert: destroying them (as a child's
// destructors would) sends nothing to the server, stops nothing and shuts down no socket of
// the parent's. (Before, a proxy's release went into the parent's shared-memory queue, and
// an in-process manager's destroy tried to stop the parent's server.)
TEST_P(ManagerObjects, AForkedChildDestroyingItsCopiesLeavesTheParentsAlone) {
  auto d = make(MPX_MOBJ_DICT);
  ASSERT_TRUE(d);
  ASSERT_MPX_OK(dict_set(d.get(), "k", "parent"));
  mpx_proxy *pd = d.get();
  mpx_mclient *pc = c_.get();
  mpx_manager *pm = m_.get();
  auto st = run_in_child([&] {
    CHILD_MPX_OK(mpx_proxy_destroy(pd));
    CHILD_MPX_OK(mpx_mclient_destroy(pc));
    CHILD_MPX_OK(mpx_manager_destroy(pm));
    return 0;
  });
  EXPECT_TRUE(st.ok()) << st.describe();
  int rc;
  EXPECT_EQ(dict_get(d.get(), "k", &rc), "parent");
  EXPECT_MPX_OK(rc) << "the parent's proxy still refers to its object";
  ASSERT_MPX_OK(dict_set(d.get(), "k2", std::string(100000, 'x'))) << "a large request, on the socket";
  EXPECT_EQ(dict_get(d.get(), "k2", &rc).size(), 100000u);
  EXPECT_MPX(MPX_ETIMEDOUT, mpx_manager_wait(m_.get(), 0)) << "the server still runs";
  auto c2 = client(&rc);
  EXPECT_MPX_OK(rc) << "and accepts new clients";
}

// A client that dies holding a manager lock releases it, even when a child it forked lives
// on with a copy of its socket.
TEST_P(ManagerObjects, ADeadClientsLockIsReleasedThoughItsForkedChildLives) {
  auto lk = make(MPX_MOBJ_LOCK);
  ASSERT_TRUE(lk);
  const std::string tok = proxy_token(lk.get());
  Shared<std::atomic<int>> grandchild(0);
  auto st = run_in_child([&]() -> int {
    int r;
    auto c = client(&r);
    CHILD_MPX_OK(r);
    auto l = mopen(c.get(), tok, &r);
    CHILD_MPX_OK(r);
    CHILD_MPX_OK(mpx_mlock_acquire(l.get(), 0));
    const pid_t g = ::fork();
    if (g == 0) {
      ::sleep(10);
      ::_exit(0);
    }
    *grandchild = int(g);
    ::_exit(0);  // dies holding the lock
  });
  EXPECT_TRUE(st.ok()) << st.describe();
  Stopwatch sw;
  EXPECT_MPX(MPX_EOWNERDEAD, mpx_mlock_acquire(lk.get(), 5000));
  EXPECT_LT(sw.ms(), 2000) << "the lock was held while the dead client's child lived";
  if (int g = grandchild->load(); g > 0) {
    ::kill(g, SIGKILL);
    ::waitpid(g, nullptr, 0);
  }
}

// ---- waiters killed before their wait ends ----------------------------------------------------

// A child client blocks in `block` (a get, an acquire) and is SIGKILLed; right after, this
// process makes the object ready (a put, a release). What it made ready must go to a live
// client: another client's call gets it within about a second; nothing goes to the dead one.
// (The queue and semaphore cases failed before 1d05501: the server's wait handed the item or
// permit to the session of a client already gone, noticed only up to one 100 ms slice later.)
void waiter_killed_then_woken(const std::string &addr, uint32_t flags, mpx_proxy *p,
                              const std::function<int(mpx_proxy *)> &block, const std::function<int()> &wake,
                              const std::function<int(mpx_proxy *)> &take, int expected_take = MPX_OK) {
  const std::string tok = proxy_token(p);
  Rendezvous connected;
  Child victim = Child::fork([&] {
    int r;
    auto c = mconnect(addr, &r, flags, &kKey);
    CHILD_MPX_OK(r);
    auto pp = mopen(c.get(), tok, &r);
    CHILD_MPX_OK(r);
    connected.notify();
    block(pp.get());
    return 1;
  });
  ASSERT_TRUE(connected.wait());
  sleep_ms(200);  // no signal tells that the child's call reached the server
  victim.kill_and_wait(SIGKILL);
  ASSERT_MPX_OK(wake());
  int rc;
  auto c2 = mconnect(addr, &rc, flags, &kKey);
  ASSERT_MPX_OK(rc);
  auto p2 = mopen(c2.get(), tok, &rc);
  ASSERT_MPX_OK(rc);
  Stopwatch sw;
  const int got = take(p2.get());
  if (expected_take == MPX_EOWNERDEAD) {
    EXPECT_MPX_EITHER(MPX_OK, MPX_EOWNERDEAD, got) << "went to the dead client instead";
  } else {
    EXPECT_MPX(expected_take, got) << "went to the dead client instead";
  }
  EXPECT_LT(sw.ms(), 1100);
}

TEST_P(ManagerObjects, AnItemPutRightAfterAWaitingGetterDiedGoesToALiveOne) {
  auto q = make(MPX_MOBJ_QUEUE);
  ASSERT_TRUE(q);
  waiter_killed_then_woken(
      addr_, GetParam().client_flags, q.get(),
      [](mpx_proxy *p) {
        int r;
        queue_get(p, &r, -1);
        return r;
      },
      [&] { return queue_put(q.get(), "for the living"); },
      [](mpx_proxy *p) {
        int r;
        const std::string got = queue_get(p, &r, 1000);
        return r == MPX_OK && got != "for the living" ? -1000 : r;
      });
}

TEST_P(ManagerObjects, APermitReleasedRightAfterAWaitingAcquirerDiedIsNotLost) {
  auto o = mobj_options();
  o.initial = 0;
  auto s = make(MPX_MOBJ_SEMAPHORE, &o);
  ASSERT_TRUE(s);
  waiter_killed_then_woken(
      addr_, GetParam().client_flags, s.get(), [](mpx_proxy *p) { return mpx_mlock_acquire(p, -1); },
      [&] { return mpx_mlock_release(s.get()); }, [](mpx_proxy *p) { return mpx_mlock_acquire(p, 1000); });
}

TEST_P(ManagerObjects, ALockReleasedRightAfterAWaitingAcquirerDiedIsAcquirable) {
  auto lk = make(MPX_MOBJ_LOCK);
  ASSERT_TRUE(lk);
  ASSERT_MPX_OK(mpx_mlock_acquire(lk.get(), 0));
  // MPX_EOWNERDEAD is allowed: the dead client may have been given the lock before it was seen gone.
  waiter_killed_then_woken(
      addr_, GetParam().client_flags, lk.get(), [](mpx_proxy *p) { return mpx_mlock_acquire(p, -1); },
      [&] { return mpx_mlock_release(lk.get()); }, [](mpx_proxy *p) { return mpx_mlock_acquire(p, 1000); },
      MPX_EOWNERDEAD);
}

TEST_P(ManagerObjects, AConditionWaiterKilledInsideWaitLeavesTheLockFree) {
  auto cv = make(MPX_MOBJ_CONDITION);
  ASSERT_TRUE(cv);
  // The victim waits (its lock released); killed, then notified: the lock must stay free.
  waiter_killed_then_woken(
      addr_, GetParam().client_flags, cv.get(),
      [](mpx_proxy *p) {
        if (mpx_mlock_acquire(p, 5000) != MPX_OK) return -1;
        return mpx_mcond_wait(p, -1);
      },
      [&] {
        Stopwatch sw;
        int rc = mpx_mlock_acquire(cv.get(), 1000);
        if (rc != MPX_OK) return rc;
        rc = mpx_mcond_notify_all(cv.get());
        const int rel = mpx_mlock_release(cv.get());
        EXPECT_LT(sw.ms(), 200) << "notify with a dead waiter was slow";
        return rc != MPX_OK ? rc : rel;
      },
      [](mpx_proxy *p) {
        const int rc = mpx_mlock_acquire(p, 1000);
        if (rc == MPX_OK || rc == MPX_EOWNERDEAD) mpx_mlock_release(p);
        return rc;
      },
      MPX_EOWNERDEAD);
}

// ---- scenario 45: clients that die, and malformed requests ------------------------------------

// A child client takes the lock `name` (of `type`) at `depth` and is killed (or disconnects)
// holding it: the next acquire by another client returns MPX_EOWNERDEAD, within about 1 s.
void owner_dies_holding(const std::string &addr, uint32_t flags, mpx_mclient *c, int type, int depth, bool kill_it) {
  SCOPED_TRACE(std::string(type == MPX_MOBJ_RLOCK ? "rlock" : "lock") + " depth " + std::to_string(depth) +
               (kill_it ? ", killed" : ", disconnected"));
  auto o = mobj_options();
  int rc;
  auto lk = mcreate(c, type, &o, &rc);
  ASSERT_MPX_OK(rc);
  const std::string tok = proxy_token(lk.get());
  Rendezvous held;
  Child owner = Child::fork([&] {
    int r;
    auto cc = mconnect(addr, &r, flags, &kKey);
    CHILD_MPX_OK(r);
    auto l = mopen(cc.get(), tok, &r);
    CHILD_MPX_OK(r);
    for (int i = 0; i < depth; ++i) CHILD_MPX_OK(mpx_mlock_acquire(l.get(), 5000));
    if (!kill_it) {
      l.reset();
      CHILD_MPX_OK(mpx_mclient_destroy(cc.release()));
      held.notify();
      return 0;
    }
    held.notify();
    return Rendezvous::hang();
  });
  ASSERT_TRUE(held.wait());
  if (kill_it) {
    EXPECT_MPX(MPX_ETIMEDOUT, mpx_mlock_acquire(lk.get(), 0)) << "held by the child";
    owner.kill_and_wait(SIGKILL);
  } else {
    EXPECT_TRUE(owner.wait(10s).ok()) << owner.status().describe();
  }
  Stopwatch sw;
  EXPECT_MPX(MPX_EOWNERDEAD, mpx_mlock_acquire(lk.get(), 5000));
  EXPECT_LT(sw.ms(), 1100) << "the dead owner's lock came back late";
  EXPECT_MPX_OK(mpx_mlock_release(lk.get())) << "the new owner holds it";
  EXPECT_MPX_OK(mpx_mlock_acquire(lk.get(), 0)) << "normal again";
  EXPECT_MPX_OK(mpx_mlock_release(lk.get()));
}

TEST_P(ManagerObjects, ClientKilledHoldingALockGivesOwnerDead) {
  owner_dies_holding(addr_, GetParam().client_flags, c_.get(), MPX_MOBJ_LOCK, 1, true);
  owner_dies_holding(addr_, GetParam().client_flags, c_.get(), MPX_MOBJ_RLOCK, 3, true);
  owner_dies_holding(addr_, GetParam().client_flags, c_.get(), MPX_MOBJ_LOCK, 1, false);
  owner_dies_holding(addr_, GetParam().client_flags, c_.get(), MPX_MOBJ_RLOCK, 2, false);
}

TEST_P(ManagerObjects, ClientKilledInABarrierWaitBreaksIt) {
  auto o = mobj_options();
  o.parties = 3;
  auto b = make(MPX_MOBJ_BARRIER, &o);
  ASSERT_TRUE(b);
  const std::string tok = proxy_token(b.get());
  Rendezvous waiting;
  Child victim = Child::fork([&] {
    int r;
    auto c = client(&r);
    CHILD_MPX_OK(r);
    auto bb = mopen(c.get(), tok, &r);
    CHILD_MPX_OK(r);
    waiting.notify();
    mpx_mbarrier_wait(bb.get(), 60000, nullptr);
    return 1;
  });
  std::atomic<int> got{INT32_MIN};
  std::thread t([&] { got = mpx_mbarrier_wait(b.get(), 10000, nullptr); });
  ASSERT_TRUE(waiting.wait());
  sleep_ms(200);  // no signal tells that the child's wait reached the server
  EXPECT_EQ(got.load(), INT32_MIN);
  victim.kill_and_wait(SIGKILL);
  Stopwatch sw;
  t.join();
  EXPECT_MPX(MPX_EBROKEN, got.load());
  EXPECT_LT(sw.ms(), 1100);
  EXPECT_MPX(MPX_EBROKEN, mpx_mbarrier_wait(b.get(), 0, nullptr));
}

// A raw connection (listener.h, with the manager's key) sending what no client would: every
// frame gets an error reply or the connection is closed, and the server serves other clients.
TEST(ManagerMalformed, GarbageFramesOnARawConnectionLeaveTheServerServing) {
  for (Start s : {Start::InProcess, Start::Fork}) {
    SCOPED_TRACE(start_name(s));
    int rc;
    auto m = start_manager(s, &rc, "", &kKey);
    ASSERT_MPX_OK(rc);
    const std::string addr = manager_address(m.get());
    auto good = mconnect(addr, &rc, 0, &kKey);
    ASSERT_MPX_OK(rc);
    auto d = mcreate(good.get(), MPX_MOBJ_DICT, nullptr, &rc);
    ASSERT_MPX_OK(rc);
    ASSERT_MPX_OK(dict_set(d.get(), "before", "1"));

    std::vector<std::vector<uint8_t>> frames = {
        {},                                       // empty
        {0x01},                                   // one byte
        {0xff, 0xff, 0xff},                       // truncated header
        std::vector<uint8_t>(16, 0xff),           // unknown op, all ones
        std::vector<uint8_t>(64, 0x00),           // op 0
        pattern(37, 7),                           // random
        pattern(4096, 9),                         // random, larger
    };
    // Plausible little-endian headers: an op number far out of range, and huge lengths.
    for (uint32_t op : {0u, 9999u, 0x7fffffffu, 0xffffffffu}) {
      std::vector<uint8_t> f(32, 0);
      std::memcpy(f.data(), &op, 4);
      const uint64_t huge = ~uint64_t(0) - 3;
      std::memcpy(f.data() + 8, &huge, 8);
      std::memcpy(f.data() + 16, &huge, 8);
      frames.push_back(f);
      std::vector<uint8_t> g(8, 0);
      std::memcpy(g.data(), &op, 4);
      const uint32_t big = 0xfffffff0u;
      std::memcpy(g.data() + 4, &big, 4);
      frames.push_back(g);
    }
    for (size_t i = 0; i < frames.size(); ++i) {
      SCOPED_TRACE("frame " + std::to_string(i) + " of " + std::to_string(frames[i].size()) + " bytes");
      auto raw = connect_to(addr, &kKey, &rc);
      ASSERT_MPX_OK(rc) << "the manager's listener accepts a listener.h client with its key";
      const int src = send_vec(raw.get(), frames[i]);
      if (src == MPX_OK) {
        // An error reply, or the connection closed; never silence.
        const auto reply = recv_vec(raw.get(), &rc, 3000);
        EXPECT_NE(rc, MPX_ETIMEDOUT) << "neither an error reply nor a closed connection";
        if (rc == MPX_OK) {
          EXPECT_FALSE(reply.empty()) << "a reply";
        }
      }
      // The server still serves the good client and new ones.
      EXPECT_MPX_OK(dict_set(d.get(), "after", std::to_string(i)));
      auto fresh = mconnect(addr, &rc, MPX_MCLIENT_SOCKET_ONLY, &kKey);
      EXPECT_MPX_OK(rc);
    }
    // Several garbage frames on one connection, then a close in the middle of a frame.
    {
      auto raw = connect_to(addr, &kKey, &rc);
      ASSERT_MPX_OK(rc);
      for (int i = 0; i < 5; ++i) {
        if (send_vec(raw.get(), pattern(100 + size_t(i), uint32_t(i))) != MPX_OK) break;
      }
      int fd = fileno_of(raw.get());
      const auto hdr = frame_header(1 << 20);
      write_raw(fd, hdr.data(), hdr.size());
      write_raw(fd, "partial", 7);
    }
    EXPECT_EQ(dict_get(d.get(), "before", &rc), "1");
    EXPECT_MPX_OK(rc);
    int64_t pid = 0;
    ASSERT_MPX_OK(mpx_manager_pid(m.get(), &pid));
    EXPECT_MPX(MPX_ETIMEDOUT, mpx_manager_wait(m.get(), 0)) << "the server is alive";
  }
}

// Well-formed frames carrying bad requests, in the layout of the wire protocol (a 32-byte header
// of u32 op, u32 arg, u64 object id, i64 timeout, u64 seq; fields little-endian, byte strings
// u64-length-prefixed): unknown operations, missing objects, bad types, truncated bodies, huge
// lengths. Each must get an error reply (or a closed connection), never success, and the
// objects must be intact afterwards.
struct RawRequest {
  const char *what;
  uint32_t op, arg;
  uint64_t obj;
  std::string body;
};

std::string le64(uint64_t v) { return std::string(reinterpret_cast<const char *>(&v), 8); }
std::string le32(uint32_t v) { return std::string(reinterpret_cast<const char *>(&v), 4); }
std::string lstr(const std::string &s) { return le64(s.size()) + s; }

TEST(ManagerMalformed, BadRequestsGetErrorRepliesAndChangeNothing) {
  int rc;
  auto m = start_manager(Start::InProcess, &rc, "", &kKey);
  ASSERT_MPX_OK(rc);
  const std::string addr = manager_address(m.get());
  auto good = mconnect(addr, &rc, MPX_MCLIENT_SOCKET_ONLY, &kKey);
  ASSERT_MPX_OK(rc);
  auto d = mcreate(good.get(), MPX_MOBJ_DICT, nullptr, &rc);
  ASSERT_MPX_OK(rc);
  ASSERT_MPX_OK(dict_set(d.get(), "keep", "me"));
  const std::string tok = proxy_token(d.get());
  uint64_t id = 0;
  if (tok.rfind("mpxobj:", 0) == 0) id = std::strtoull(tok.c_str() + 7, nullptr, 10);
  const uint64_t huge = ~uint64_t(0);
  std::vector<RawRequest> reqs = {
      {"unknown op 9999", 9999, 0, id, ""},
      {"op 0", 0, 0, id, ""},
      {"op 15 (a gap)", 15, 0, id, ""},
      {"op 0xffffffff", 0xffffffffu, 0, id, std::string(64, '\xff')},
      {"dict_set on object 0", 16, 0, 0, lstr("k") + lstr("v")},
      {"dict_set on a missing object", 16, 0, id + 1000, lstr("k") + lstr("v")},
      {"dict_set, key length 2^64-1", 16, 0, id, le64(huge) + "kk"},
      {"dict_set, key longer than the body", 16, 0, id, le64(5) + "ab"},
      {"dict_set, value length 2^63", 16, 0, id, lstr("x") + le64(uint64_t(1) << 63)},
      {"dict_set, no body", 16, 0, id, ""},
      {"dict_get, truncated length", 18, 0, id, "\x01\x00"},
      {"array_get on a dict", 117, 0, id, le64(0) + le64(1)},
      {"list_pop on a dict", 36, 0, id, le64(0) + le32(1)},
      {"queue_get on a dict", 49, 0, id, ""},
      {"lock_acquire on a dict", 64, 0, id, ""},
      {"create of type 99", 2, 99, 0, le32(0) + lstr("") + le64(0) + le64(0) + le64(0) + le64(0) + le64(0) + le64(0) + lstr("")},
      {"create of a dict, truncated", 2, 1, 0, le32(0)},
      {"create of an array of 2^63 elements", 2, 14, 0,
       le32(0) + lstr("") + le64('d') + le64(0) + le64(uint64_t(1) << 63) + le64(0) + le64(0) + le64(0) + lstr("")},
      {"open, name length 2^64-1", 3, 0, 0, le64(huge)},
      {"open, a token of no object", 3, 0, 0, lstr("mpxobj:999999999")},
      {"hello_shm with garbage tokens", 1, 0, 0, lstr("not a token") + lstr("nor this") + lstr("boot")},
      {"release of a missing object", 4, 0, id + 1000, ""},
  };
  if (id == 0) GTEST_LOG_(INFO) << "token " << tok << " is not mpxobj:<id>; the object cases use id 0";
  uint64_t seq = 1;
  for (const auto &r : reqs) {
    SCOPED_TRACE(r.what);
    auto raw = connect_to(addr, &kKey, &rc);
    ASSERT_MPX_OK(rc);
    std::string msg = le32(r.op) + le32(r.arg) + le64(r.obj) + le64(1000) + le64(seq++) + r.body;
    ASSERT_MPX_OK(mpx_conn_send(raw.get(), msg.data(), msg.size()));
    const auto reply = recv_vec(raw.get(), &rc, 3000);
    EXPECT_NE(rc, MPX_ETIMEDOUT) << "neither an error reply nor a closed connection";
    if (rc == MPX_OK && reply.size() >= 4) {
      int32_t code;
      std::memcpy(&code, reply.data(), 4);
      EXPECT_LT(code, 0) << "a bad request succeeded";
    }
    EXPECT_EQ(dict_get(d.get(), "keep", &rc), "me");
    EXPECT_EQ(dict_len(d.get()), 1u) << "the bad request changed the dict";
  }
  // Many bad requests on one connection; the server answers each or closes.
  auto raw = connect_to(addr, &kKey, &rc);
  ASSERT_MPX_OK(rc);
  for (int i = 0; i < 50; ++i) {
    std::string msg = le32(9000 + uint32_t(i)) + le32(0) + le64(id) + le64(0) + le64(seq++);
    if (mpx_conn_send(raw.get(), msg.data(), msg.size()) != MPX_OK) break;
    recv_vec(raw.get(), &rc, 3000);
    if (rc != MPX_OK) break;
  }
  EXPECT_NE(rc, MPX_ETIMEDOUT);
  EXPECT_EQ(dict_get(d.get(), "keep", &rc), "me");
  EXPECT_MPX(MPX_ETIMEDOUT, mpx_manager_wait(m.get(), 0)) << "the server is alive";
}

TEST(ManagerMalformed, ASilentRawConnectionDoesNotDelayOthers) {
  int rc;
  auto m = start_manager(Start::InProcess, &rc, "", &kKey);
  ASSERT_MPX_OK(rc);
  const std::string addr = manager_address(m.get());
  auto raw = connect_to(addr, &kKey, &rc);  // connects, authenticates, says nothing
  ASSERT_MPX_OK(rc);
  Stopwatch sw;
  auto c = mconnect(addr, &rc, 0, &kKey);
  ASSERT_MPX_OK(rc);
  auto q = mcreate(c.get(), MPX_MOBJ_QUEUE, nullptr, &rc);
  ASSERT_MPX_OK(rc);
  ASSERT_MPX_OK(queue_put(q.get(), "x"));
  EXPECT_LT(sw.ms(), 1000);
}

// ---- server death and shutdown ----------------------------------------------------------------

TEST(ManagerServer, KilledServerMakesCallsReturnEofPromptly) {
  for (uint32_t flags : {0u, uint32_t(MPX_MCLIENT_SOCKET_ONLY)}) {
    SCOPED_TRACE(flags ? "socket" : "shm");
    int rc;
    auto m = start_manager(Start::Fork, &rc, "", &kKey);
    ASSERT_MPX_OK(rc);
    const std::string addr = manager_address(m.get());
    auto c = mconnect(addr, &rc, flags, &kKey);
    ASSERT_MPX_OK(rc);
    auto c2 = mconnect(addr, &rc, flags, &kKey);
    ASSERT_MPX_OK(rc);
    auto q = mcreate(c.get(), MPX_MOBJ_QUEUE, nullptr, &rc);
    auto lk = mcreate(c.get(), MPX_MOBJ_LOCK, nullptr, &rc);
    auto d = mcreate(c.get(), MPX_MOBJ_DICT, nullptr, &rc);
    ASSERT_TRUE(q && lk && d);
    auto lk2 = mopen(c2.get(), proxy_token(lk.get()), &rc);
    ASSERT_MPX_OK(rc);
    ASSERT_MPX_OK(mpx_mlock_acquire(lk.get(), 0));
    std::atomic<int> get_rc{INT32_MIN}, acq_rc{INT32_MIN};
    std::atomic<int64_t> returned_ms{-1};
    Stopwatch sw;
    std::thread getter([&] {
      int r;
      queue_get(q.get(), &r, -1);
      get_rc = r;
    });
    std::thread acquirer([&] { acq_rc = mpx_mlock_acquire(lk2.get(), -1); });
    sleep_ms(100);  // let both block
    EXPECT_EQ(get_rc.load(), INT32_MIN);
    EXPECT_EQ(acq_rc.load(), INT32_MIN);
    int64_t pid = 0;
    ASSERT_MPX_OK(mpx_manager_pid(m.get(), &pid));
    ASSERT_EQ(::kill(pid_t(pid), SIGKILL), 0);
    sw.restart();
    getter.join();
    acquirer.join();
    EXPECT_LT(sw.ms(), 1000) << "blocked calls returned late after the server died";
    EXPECT_MPX(MPX_EOF, get_rc.load());
    EXPECT_MPX(MPX_EOF, acq_rc.load());
    sw.restart();
    EXPECT_MPX(MPX_EOF, dict_set(d.get(), "k", "v"));
    EXPECT_MPX(MPX_EOF, mpx_mlock_release(lk.get()));
    auto p = mcreate(c.get(), MPX_MOBJ_LIST, nullptr, &rc);
    EXPECT_MPX(MPX_EOF, rc);
    EXPECT_LT(sw.ms(), 500);
    EXPECT_MPX_OK(mpx_manager_wait(m.get(), 2000)) << "the server process died";
  }
}

// A process serving a manager in its own threads is killed while a child it forked lives on:
// the child let go of the server's sockets at the fork, so clients see the death at once.
// The server's process comes from the forkserver (it starts threads, which ThreadSanitizer
// forbids in a child forked from this threaded test). It talks to the test through two mpx
// queues named in its payload: it sends its address, waits for "go" (the client has its
// session), forks the child that inherits the session, sends the child's pid, and waits to be
// killed.
void forking_server_entry(const void *payload, size_t size) {
  const std::string tokens(static_cast<const char *>(payload), size);
  const size_t nl = tokens.find('\n');
  mpx_queue *to_test = nullptr, *from_test = nullptr;
  if (nl == std::string::npos || mpx_queue_attach(&to_test, tokens.substr(0, nl).c_str()) != MPX_OK ||
      mpx_queue_attach(&from_test, tokens.substr(nl + 1).c_str()) != MPX_OK)
    ::_exit(3);
  auto m = start_manager(Start::InProcess, nullptr, "", &kKey);
  if (!m) ::_exit(4);
  const std::string a = manager_address(m.get());
  if (mpx_queue_put(to_test, a.data(), a.size(), 10000) != MPX_OK) ::_exit(5);
  void *go = nullptr;
  size_t n = 0;
  if (mpx_queue_get(from_test, &go, &n, 10000) != MPX_OK) ::_exit(6);
  mpx_free(go);
  const pid_t g = ::fork();  // inherits the session's socket (and shared-memory queues)
  if (g == 0) {
    ::sleep(10);
    ::_exit(0);
  }
  const std::string pid = std::to_string(g);
  mpx_queue_put(to_test, pid.data(), pid.size(), 10000);
  for (;;) ::pause();
}
const bool kForkingServerRegistered = mpx_register("mpxt.forking_server", forking_server_entry) == MPX_OK;

using QueuePtr = std::unique_ptr<mpx_queue, Destroyer<mpx_queue, mpx_queue_destroy>>;

QueuePtr make_queue() {
  mpx_queue *q = nullptr;
  mpx_queue_create(&q, nullptr);
  return QueuePtr(q);
}

std::string get_str(mpx_queue *q, int64_t timeout_ms, int *rc) {
  void *data = nullptr;
  size_t len = 0;
  *rc = mpx_queue_get(q, &data, &len, timeout_ms);
  return *rc == MPX_OK ? take_bytes(data, len) : std::string();
}

TEST(ManagerServer, InProcessServerKilledWhileItsForkedChildLivesGivesEof) {
  ASSERT_TRUE(kForkingServerRegistered);
  for (uint32_t flags : {0u, uint32_t(MPX_MCLIENT_SOCKET_ONLY)}) {
    SCOPED_TRACE(flags ? "socket" : "shm");
    QueuePtr to_test = make_queue(), from_test = make_queue();
    ASSERT_TRUE(to_test && from_test);
    const std::string tokens = token_of(mpx_queue_token, to_test.get()) + "\n" + token_of(mpx_queue_token, from_test.get());
    auto server = start_entry(MPX_START_FORKSERVER, "mpxt.forking_server", tokens.data(), tokens.size());
    ASSERT_TRUE(server);
    int rc;
    const std::string address = get_str(to_test.get(), 10000, &rc);
    ASSERT_MPX_OK(rc);
    auto c = mconnect(address, &rc, flags, &kKey);
    ASSERT_MPX_OK(rc);
    auto q = mcreate(c.get(), MPX_MOBJ_QUEUE, nullptr, &rc);
    ASSERT_TRUE(q);
    ASSERT_MPX_OK(mpx_queue_put(from_test.get(), "go", 2, 0));
    const int grandchild = std::atoi(get_str(to_test.get(), 10000, &rc).c_str());
    ASSERT_MPX_OK(rc);
    ASSERT_GT(grandchild, 0);
    std::atomic<int> get_rc{INT32_MIN};
    std::thread getter([&] {
      int r;
      queue_get(q.get(), &r, 5000);
      get_rc = r;
    });
    sleep_ms(100);
    ASSERT_MPX_OK(mpx_process_kill(server.get()));
    EXPECT_MPX_OK(mpx_process_join(server.get(), 5000));
    Stopwatch sw;
    getter.join();
    EXPECT_LT(sw.ms(), 1000) << "the call waited for its timeout: the forked child kept the session open";
    EXPECT_MPX(MPX_EOF, get_rc.load());
    ::kill(grandchild, SIGKILL);  // reparented to a subreaper or init, which reaps it
  }
}

TEST(ManagerServer, ClientShutdownStopsTheServer) {
  for (Start s : {Start::InProcess, Start::Fork, Start::Spawn}) {
    SCOPED_TRACE(start_name(s));
    int rc;
    auto m = start_manager(s, &rc, "", &kKey);
    ASSERT_MPX_OK(rc);
    const std::string addr = manager_address(m.get());
    auto watcher = mconnect(addr, &rc, 0, &kKey);
    ASSERT_MPX_OK(rc);
    auto q = mcreate(watcher.get(), MPX_MOBJ_QUEUE, nullptr, &rc);
    ASSERT_MPX_OK(rc);
    // Python's manager.shutdown() from a client in another process.
    auto st = run_in_child([&] {
      int r;
      auto c = mconnect(addr, &r, 0, &kKey);
      CHILD_MPX_OK(r);
      CHILD_MPX_OK(mpx_mclient_shutdown(c.get()));
      return 0;
    });
    EXPECT_TRUE(st.ok()) << st.describe();
    EXPECT_MPX_OK(mpx_manager_wait(m.get(), 5000));
    int r;
    queue_get(q.get(), &r, 2000);
    EXPECT_MPX_EITHER(MPX_EOF, MPX_ECLOSED, r) << "the other clients' connections are closed";
    auto late = mconnect(addr, &r, 0, &kKey, 1000);
    EXPECT_NE(r, MPX_OK) << "nobody listens any more";
  }
}

TEST(ManagerServer, ShutdownWakesACallBlockedInAnotherThread) {
  for (Start s : {Start::InProcess, Start::Fork}) {
    for (uint32_t flags : {0u, uint32_t(MPX_MCLIENT_SOCKET_ONLY)}) {
      SCOPED_TRACE(std::string(start_name(s)) + (flags ? " socket" : " shm"));
      int rc;
      auto m = start_manager(s, &rc, "", &kKey);
      ASSERT_MPX_OK(rc);
      auto c = mconnect(manager_address(m.get()), &rc, flags, &kKey);
      ASSERT_MPX_OK(rc);
      auto q = mcreate(c.get(), MPX_MOBJ_QUEUE, nullptr, &rc);
      ASSERT_MPX_OK(rc);
      std::atomic<int> got{INT32_MIN};
      std::thread t([&] {
        int r;
        queue_get(q.get(), &r, -1);
        got = r;
      });
      sleep_ms(100);  // let it block
      EXPECT_EQ(got.load(), INT32_MIN);
      Stopwatch sw;
      EXPECT_MPX_OK(mpx_manager_shutdown(m.get(), 5000));
      t.join();
      EXPECT_LT(sw.ms(), 2000);
      EXPECT_MPX_EITHER(MPX_EOF, MPX_ECLOSED, got.load());
      EXPECT_MPX_OK(mpx_manager_wait(m.get(), 0));
      EXPECT_MPX_OK(mpx_manager_shutdown(m.get(), 1000)) << "a second shutdown is a no-op";
    }
  }
}

TEST(ManagerServer, DestroyWithClientsStillConnected) {
  int rc;
  auto m = start_manager(Start::InProcess, &rc, "", &kKey);
  ASSERT_MPX_OK(rc);
  auto c = mconnect(manager_address(m.get()), &rc, 0, &kKey);
  ASSERT_MPX_OK(rc);
  auto d = mcreate(c.get(), MPX_MOBJ_DICT, nullptr, &rc);
  ASSERT_MPX_OK(rc);
  ASSERT_MPX_OK(mpx_manager_destroy(m.release()));
  EXPECT_MPX_EITHER(MPX_EOF, MPX_ECLOSED, dict_set(d.get(), "k", "v"));
}

// ---- handles (scenario 47) --------------------------------------------------------------------

TEST(ManagerHandles, DoubleDestroyIsEbadhandle) {
  int rc;
  auto m = start_manager(Start::InProcess, &rc, "", &kKey);
  ASSERT_MPX_OK(rc);
  auto c = mconnect(manager_address(m.get()), &rc, 0, &kKey);
  ASSERT_MPX_OK(rc);
  mpx_proxy *p = mcreate(c.get(), MPX_MOBJ_DICT, nullptr, &rc).release();
  ASSERT_MPX_OK(rc);
  EXPECT_MPX_OK(mpx_proxy_destroy(p));
  EXPECT_MPX(MPX_EBADHANDLE, mpx_proxy_destroy(p));
  EXPECT_MPX(MPX_EBADHANDLE, dict_set(p, "k", "v"));
  mpx_mclient *raw = c.release();
  EXPECT_MPX_OK(mpx_mclient_destroy(raw));
  EXPECT_MPX(MPX_EBADHANDLE, mpx_mclient_destroy(raw));
  int shm;
  EXPECT_MPX(MPX_EBADHANDLE, mpx_mclient_shm(raw, &shm));
  mpx_manager *mm = m.release();
  EXPECT_MPX_OK(mpx_manager_destroy(mm));
  EXPECT_MPX(MPX_EBADHANDLE, mpx_manager_destroy(mm));
  int64_t pid;
  EXPECT_MPX(MPX_EBADHANDLE, mpx_manager_pid(mm, &pid));
}

TEST(ManagerHandles, WrongHandleTypesAreEbadhandle) {
  int rc;
  auto m = start_manager(Start::InProcess, &rc, "", &kKey);
  ASSERT_MPX_OK(rc);
  auto c = mconnect(manager_address(m.get()), &rc, 0, &kKey);
  ASSERT_MPX_OK(rc);
  auto p = mcreate(c.get(), MPX_MOBJ_LOCK, nullptr, &rc);
  ASSERT_MPX_OK(rc);
  auto lock = make_lock();
  auto as_proxy = [](void *h) { return static_cast<mpx_proxy *>(h); };
  auto as_client = [](void *h) { return static_cast<mpx_mclient *>(h); };
  auto as_manager = [](void *h) { return static_cast<mpx_manager *>(h); };
  int shm;
  int64_t pid;
  EXPECT_MPX(MPX_EBADHANDLE, mpx_mlock_acquire(as_proxy(c.get()), 0)) << "a client as a proxy";
  EXPECT_MPX(MPX_EBADHANDLE, mpx_mlock_acquire(as_proxy(m.get()), 0)) << "a manager as a proxy";
  EXPECT_MPX(MPX_EBADHANDLE, mpx_mlock_acquire(as_proxy(lock.get()), 0)) << "an mpx_lock as a proxy";
  EXPECT_MPX(MPX_EBADHANDLE, mpx_mclient_shm(as_client(p.get()), &shm)) << "a proxy as a client";
  EXPECT_MPX(MPX_EBADHANDLE, mpx_mclient_shm(as_client(m.get()), &shm)) << "a manager as a client";
  EXPECT_MPX(MPX_EBADHANDLE, mpx_manager_pid(as_manager(c.get()), &pid)) << "a client as a manager";
  EXPECT_MPX(MPX_EBADHANDLE, mpx_proxy_destroy(as_proxy(c.get())));
  EXPECT_MPX(MPX_EBADHANDLE, mpx_mclient_destroy(as_client(p.get())));
  EXPECT_MPX(MPX_EBADHANDLE, mpx_manager_destroy(as_manager(p.get())));
  EXPECT_MPX(MPX_EBADHANDLE, mpx_lock_acquire(reinterpret_cast<mpx_lock *>(p.get()), 0)) << "a proxy as an mpx_lock";
  mpx_proxy *out = nullptr;
  EXPECT_MPX(MPX_EBADHANDLE, mpx_proxy_create(as_client(p.get()), MPX_MOBJ_DICT, nullptr, &out));
  EXPECT_EQ(out, nullptr);
  // Everything still works after the misuse.
  EXPECT_MPX_OK(mpx_mlock_acquire(p.get(), 0));
  EXPECT_MPX_OK(mpx_mlock_release(p.get()));
  EXPECT_MPX_OK(mpx_mclient_shm(c.get(), &shm));
  EXPECT_MPX_OK(mpx_manager_pid(m.get(), &pid));
}

TEST(ManagerHandles, ProxiesOfADestroyedClientAreEclosed) {
  int rc;
  auto m = start_manager(Start::InProcess, &rc, "", &kKey);
  ASSERT_MPX_OK(rc);
  const std::string addr = manager_address(m.get());
  auto c = mconnect(addr, &rc, 0, &kKey);
  ASSERT_MPX_OK(rc);
  mpx_proxy *d = mcreate(c.get(), MPX_MOBJ_DICT, nullptr, &rc).release();
  mpx_proxy *q = mcreate(c.get(), MPX_MOBJ_QUEUE, nullptr, &rc).release();
  ASSERT_TRUE(d && q);
  auto n = mobj_options("kept-by-name");
  auto named = mcreate(c.get(), MPX_MOBJ_LIST, &n, &rc).release();
  ASSERT_MPX_OK(rc);
  ASSERT_MPX_OK(mpx_mclient_destroy(c.release()));
  EXPECT_MPX(MPX_ECLOSED, dict_set(d, "k", "v"));
  int r;
  queue_get(q, &r, 0);
  EXPECT_MPX(MPX_ECLOSED, r);
  char buf[MPX_TOKEN_MAX];
  size_t len = sizeof buf;
  const int trc = mpx_proxy_token(d, buf, &len);
  EXPECT_TRUE(trc == MPX_OK || trc == MPX_ECLOSED) << code_str(trc);
  // The handles themselves are still released by destroy, once.
  for (mpx_proxy *p : {d, q, named}) {
    EXPECT_MPX_EITHER(MPX_OK, MPX_ECLOSED, mpx_proxy_destroy(p));
    EXPECT_MPX(MPX_EBADHANDLE, mpx_proxy_destroy(p));
  }
  // The named object outlived its creator's connection.
  auto c2 = mconnect(addr, &rc, 0, &kKey);
  ASSERT_MPX_OK(rc);
  auto l = mopen(c2.get(), "kept-by-name", &rc);
  EXPECT_MPX_OK(rc);
}

TEST(ManagerHandles, BadProxyArguments) {
  int rc;
  auto m = start_manager(Start::InProcess, &rc, "", &kKey);
  ASSERT_MPX_OK(rc);
  auto c = mconnect(manager_address(m.get()), &rc, 0, &kKey);
  ASSERT_MPX_OK(rc);
  mpx_proxy *p = reinterpret_cast<mpx_proxy *>(0x1);
  EXPECT_MPX(MPX_EINVAL, mpx_proxy_create(c.get(), 0, nullptr, &p));
  EXPECT_EQ(p, nullptr) << "*out is NULL on failure";
  EXPECT_MPX(MPX_EINVAL, mpx_proxy_create(c.get(), 15, nullptr, &p));
  EXPECT_MPX(MPX_EINVAL, mpx_proxy_create(c.get(), -1, nullptr, &p));
  auto o = mobj_options();
  o.size = 3;
  EXPECT_MPX(MPX_EINVAL, mpx_proxy_create(c.get(), MPX_MOBJ_DICT, &o, &p));
  o = mobj_options();
  o.flags = 0x100u;
  EXPECT_MPX(MPX_EINVAL, mpx_proxy_create(c.get(), MPX_MOBJ_DICT, &o, &p)) << "unknown flags";
  EXPECT_MPX(MPX_EINVAL, mpx_proxy_create(c.get(), MPX_MOBJ_ARRAY, nullptr, &p)) << "an array needs a length";
  auto d = mcreate(c.get(), MPX_MOBJ_DICT, nullptr, &rc);
  ASSERT_MPX_OK(rc);
  char small[2];
  size_t len = sizeof small;
  EXPECT_MPX(MPX_ENOBUFS, mpx_proxy_token(d.get(), small, &len));
  EXPECT_GT(len, sizeof small) << "the needed size";
  std::vector<char> tok(len);
  EXPECT_MPX_OK(mpx_proxy_token(d.get(), tok.data(), &len));
  EXPECT_MPX(MPX_EINVAL, mpx_mdict_set(d.get(), "k", nullptr, 4)) << "NULL value with len > 0";
  EXPECT_MPX_OK(mpx_mdict_set(d.get(), "k", nullptr, 0)) << "NULL value with len 0 is the empty value";
  char addr[4];
  size_t alen = sizeof addr;
  EXPECT_MPX(MPX_ENOBUFS, mpx_manager_address(m.get(), addr, &alen));
  EXPECT_GT(alen, sizeof addr);
}

}  // namespace
