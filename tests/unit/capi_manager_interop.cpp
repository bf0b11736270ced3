// One manager, three languages: this C++ test, a C program (tests/unit/helpers/mpx_test_mclient.c)
// and a Python script (bindings/python/mpx/native_manager.py, under each Python found) share one
// manager's dict, list, queue and value, each reading what the others wrote. Over the default
// unix socket (shared memory for requests) and over TCP with the socket only.
#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "capi_manager_helpers.hpp"

#ifndef MPX_TEST_MCLIENT
#define MPX_TEST_MCLIENT "mpx_test_mclient"
#endif
#ifndef MPX_TEST_SOURCE_DIR
#define MPX_TEST_SOURCE_DIR "."
#endif
#ifndef MPX_TEST_LIBRARY
#define MPX_TEST_LIBRARY "libmpx.so.0"
#endif

using namespace mpxt;
using namespace std::chrono_literals;

namespace {

const std::string kKey = "interop manager key";

// Python's side: argv = address, key, socket ("1"/"0"), round.
constexpr const char *kPythonScript = R"(
import sys
from mpx import native_manager as nm
addr, key, socket_only, rnd = sys.argv[1], sys.argv[2].encode(), sys.argv[3] == "1", sys.argv[4]
c = nm.connect(addr, key, socket_only=socket_only)
d = c.open("shared")
assert d["from_cpp"] == b"hello from C++", d["from_cpp"]
assert d["from_c"] == b"hello from C", d["from_c"]
d["from_python"] = ("hello from Python " + rnd).encode()
lst = c.open("items")
assert lst[0] == b"cpp" and lst[-1] == b"c", lst.tolist()
lst.append(b"py")
q = c.open("jobs")
assert q.get(timeout=5) == b"c-job"
q.put(b"py-job")
v = c.open("count", typecode="q")
v.add(100)
# a second client, over the socket only
with nm.connect(addr, key, socket_only=True) as c2:
    assert not c2.shm
    assert c2.open("shared")["from_c"] == b"hello from C"
c.close()
print("python ok", rnd)
)";

std::vector<std::string> pythons() {
  std::vector<std::string> out;
  if (access("/usr/bin/python3", X_OK) == 0) out.push_back("/usr/bin/python3");
  for (const char *v : {"3.12", "3.13"}) {
    const std::string glob = std::string("ls -d /root/.pyenv/versions/") + v + "*/bin/python3 2>/dev/null | head -1";
    FILE *p = popen(glob.c_str(), "r");
    if (!p) continue;
    char buf[512] = "";
    if (fgets(buf, sizeof buf, p)) {
      std::string s(buf);
      while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
      if (!s.empty()) out.push_back(s);
    }
    pclose(p);
  }
  return out;
}

// A sanitized library needs its sanitizer's runtime loaded first: Python gets it preloaded.
std::string sanitizer_runtime() {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#if defined(__SANITIZE_ADDRESS__)
  FILE *p = popen("gcc -print-file-name=libasan.so 2>/dev/null", "r");
#else
  FILE *p = popen("gcc -print-file-name=libtsan.so 2>/dev/null", "r");
#endif
  char buf[512] = "";
  if (p) {
    if (!fgets(buf, sizeof buf, p)) buf[0] = 0;
    pclose(p);
  }
  std::string s(buf);
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
  return s;
#else
  return std::string();
#endif
}

ExitStatus run_program(const std::string &file, const std::vector<std::string> &args, bool python = false) {
  static const std::string runtime = sanitizer_runtime();
  Child c = Child::fork([&]() -> int {
    if (python) {
      const std::string pp = std::string(MPX_TEST_SOURCE_DIR) + "/bindings/python";
      setenv("PYTHONPATH", pp.c_str(), 1);
      setenv("MPX_LIBRARY", MPX_TEST_LIBRARY, 1);
      if (!runtime.empty()) {
        setenv("LD_PRELOAD", runtime.c_str(), 1);
        setenv("ASAN_OPTIONS", "detect_leaks=0", 1);  // the interpreter's own allocations
      }
    }
    std::vector<char *> argv{const_cast<char *>(file.c_str())};
    for (const auto &a : args) argv.push_back(const_cast<char *>(a.c_str()));
    argv.push_back(nullptr);
    execv(file.c_str(), argv.data());
    return 127;
  });
  return c.wait(30s);
}

void share_between_languages(const std::string &address, uint32_t flags) {
  int rc;
  auto m = start_manager(Start::Fork, &rc, address, &kKey);
  ASSERT_MPX_OK(rc);
  const std::string addr = manager_address(m.get());
  auto c = mconnect(addr, &rc, flags, &kKey);
  ASSERT_MPX_OK(rc);
  auto named = [&](int type, const char *name, char typecode = 0) {
    auto o = mobj_options(name);
    o.typecode = typecode;
    int r;
    auto p = mcreate(c.get(), type, &o, &r);
    EXPECT_MPX_OK(r) << name;
    return p;
  };
  auto d = named(MPX_MOBJ_DICT, "shared");
  auto l = named(MPX_MOBJ_LIST, "items");
  auto q = named(MPX_MOBJ_QUEUE, "jobs");
  auto v = named(MPX_MOBJ_VALUE, "count", 'q');
  ASSERT_TRUE(d && l && q && v);
  const std::string sock = (flags & MPX_MCLIENT_SOCKET_ONLY) ? "socket" : "";
  auto c_args = [&](std::vector<std::string> cmds) {
    std::vector<std::string> a{addr, kKey};
    if (!sock.empty()) a.push_back(sock);
    a.insert(a.end(), cmds.begin(), cmds.end());
    return a;
  };

  int64_t expected_count = 0;
  const auto py = pythons();
  ASSERT_FALSE(py.empty()) << "no python3 found";
  for (size_t round = 0; round < py.size(); ++round) {
    SCOPED_TRACE(py[round]);
    const std::string rnd = std::to_string(round);
    // C++ writes.
    ASSERT_MPX_OK(mpx_mdict_clear(d.get()));
    ASSERT_MPX_OK(mpx_mlist_clear(l.get()));
    ASSERT_MPX_OK(dict_set(d.get(), "from_cpp", "hello from C++"));
    ASSERT_MPX_OK(list_append(l.get(), "cpp"));
    ASSERT_MPX_OK(queue_put(q.get(), "cpp-job"));
    // C reads them and writes its own.
    auto st = run_program(MPX_TEST_MCLIENT, c_args({"dexpect:shared:from_cpp:hello from C++", "dset:shared:from_c:hello from C",
                                                    "lappend:items:c", "qget:jobs:cpp-job", "qput:jobs:c-job",
                                                    "vadd:count:10", "llen:items:2"}));
    ASSERT_TRUE(st.ok()) << "C client: " << st.describe();
    expected_count += 10;
    // Python reads both and writes its own.
    st = run_program(py[round], {"-c", kPythonScript, addr, kKey, flags ? "1" : "0", rnd}, true);
    ASSERT_TRUE(st.ok()) << "Python client: " << st.describe();
    expected_count += 100;
    // C++ reads everything.
    EXPECT_EQ(dict_get(d.get(), "from_python", &rc), "hello from Python " + rnd);
    EXPECT_EQ(dict_get(d.get(), "from_c", &rc), "hello from C");
    EXPECT_EQ(list_len(l.get()), 3u);
    EXPECT_EQ(list_get(l.get(), 1, &rc), "c");
    EXPECT_EQ(list_get(l.get(), -1, &rc), "py");
    EXPECT_EQ(queue_get(q.get(), &rc, 5000), "py-job");
    int64_t count = 0;
    ASSERT_MPX_OK(mpx_mvalue_get(v.get(), &count, sizeof count));
    EXPECT_EQ(count, expected_count);
    // And C reads what Python wrote.
    st = run_program(MPX_TEST_MCLIENT, c_args({"dexpect:shared:from_python:hello from Python " + rnd, "lexpect:items:-1:py",
                                               "vexpect:count:" + std::to_string(expected_count), "dlen:shared:3"}));
    EXPECT_TRUE(st.ok()) << "C client, second pass: " << st.describe();
  }
  size_t left = 99;
  ASSERT_MPX_OK(mpx_mqueue_qsize(q.get(), &left));
  EXPECT_EQ(left, 0u);
  // Finally the C program asks the server to stop.
  auto st = run_program(MPX_TEST_MCLIENT, c_args({"shutdown"}));
  EXPECT_TRUE(st.ok()) << st.describe();
  EXPECT_MPX_OK(mpx_manager_wait(m.get(), 5000));
}

TEST(ManagerInterop, CppCAndPythonShareOneManagerOverShm) { share_between_languages("", 0); }

TEST(ManagerInterop, CppCAndPythonShareOneManagerOverTcpSocketOnly) {
  share_between_languages("127.0.0.1:0", MPX_MCLIENT_SOCKET_ONLY);
}

}  // namespace
