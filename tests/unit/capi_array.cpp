// Typed shared values and arrays (Python's Value, Array, RawValue, RawArray).
#include <cfloat>
#include <climits>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "support/mpx_helpers.hpp"

using namespace std::chrono_literals;

namespace {

struct TypeInfo {
  char code;
  size_t size;
  size_t align;
};

// Python's typecodes with this platform's C sizes (shared as-is with ctypes).
const TypeInfo kTypes[] = {
    {'c', sizeof(char), alignof(char)},
    {'b', sizeof(signed char), alignof(signed char)},
    {'B', sizeof(unsigned char), alignof(unsigned char)},
    {'h', sizeof(short), alignof(short)},
    {'H', sizeof(unsigned short), alignof(unsigned short)},
    {'i', sizeof(int), alignof(int)},
    {'I', sizeof(unsigned int), alignof(unsigned int)},
    {'l', sizeof(long), alignof(long)},  // NOLINT(google-runtime-int): the C type is the point
    {'L', sizeof(unsigned long), alignof(unsigned long)},
    {'q', sizeof(long long), alignof(long long)},
    {'Q', sizeof(unsigned long long), alignof(unsigned long long)},
    {'f', sizeof(float), alignof(float)},
    {'d', sizeof(double), alignof(double)},
};

size_t length_of(mpx_array *a) {
  size_t n = 0;
  EXPECT_MPX_OK(mpx_array_length(a, &n));
  return n;
}

template <typename T>
T get_as(mpx_array *a, size_t i) {
  T v{};
  EXPECT_MPX_OK(mpx_array_get(a, i, &v, sizeof v));
  return v;
}

template <typename T>
void set_as(mpx_array *a, size_t i, T v) {
  EXPECT_MPX_OK(mpx_array_set(a, i, &v, sizeof v));
}

}  // namespace

TEST(ArrayTypecode, EveryTypecodeHasItsCTypeSize) {
  for (const auto &t : kTypes) {
    size_t n = 0;
    EXPECT_MPX_OK(mpx_typecode_size(t.code, &n)) << t.code;
    EXPECT_EQ(n, t.size) << "typecode '" << t.code << "'";
  }
}

TEST(ArrayTypecode, UnknownTypecodesAreEinval) {
  for (char c : {'u', 'x', 'z', 'w', 'e', 'n', 'N', 'P', '?', ' ', '\0', '\x7f', '\xff', 'C', 'D', 'F'}) {
    size_t n = 77;
    EXPECT_MPX(MPX_EINVAL, mpx_typecode_size(c, &n)) << "typecode " << static_cast<int>(c);
    mpx_array *a = nullptr;
    EXPECT_MPX(MPX_EINVAL, mpx_array_create(&a, c, 1, nullptr)) << "typecode " << static_cast<int>(c);
    EXPECT_EQ(a, nullptr);
  }
}

TEST(ArrayCreate, EveryTypecodeIsZeroFilledAlignedAndDescribesItself) {
  for (const auto &t : kTypes) {
    SCOPED_TRACE(std::string("typecode ") + t.code);
    auto a = mpxt::make_array(t.code, 37);
    ASSERT_TRUE(a);
    EXPECT_EQ(length_of(a.get()), 37u);
    char code = 0;
    EXPECT_MPX_OK(mpx_array_typecode(a.get(), &code));
    EXPECT_EQ(code, t.code);
    size_t item = 0;
    EXPECT_MPX_OK(mpx_array_item_size(a.get(), &item));
    EXPECT_EQ(item, t.size);
    void *addr = nullptr;
    ASSERT_MPX_OK(mpx_array_address(a.get(), &addr));
    ASSERT_NE(addr, nullptr);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(addr) % t.align, 0u) << "elements must be naturally aligned";
    std::vector<unsigned char> bytes(37 * t.size, 0xEE);
    ASSERT_MPX_OK(mpx_array_read(a.get(), 0, 37, bytes.data(), bytes.size()));
    for (unsigned char b : bytes) ASSERT_EQ(b, 0);
  }
}

TEST(ArrayCreate, NullOptionsGiveTheDefaultRLock) {
  mpx_array *a = nullptr;
  ASSERT_MPX_OK(mpx_array_create(&a, 'i', 1, nullptr));
  mpxt::ArrayPtr guard(a);
  mpx_lock *l = nullptr;
  ASSERT_MPX_OK(mpx_array_lock(a, &l));
  mpxt::LockPtr lguard(l);
  int rec = -1;
  EXPECT_MPX_OK(mpx_lock_is_recursive(l, &rec));
  EXPECT_EQ(rec, 1) << "Python's Value/Array carry an RLock by default";
}

TEST(ArrayAccess, GetSetRoundTripExtremeValues) {
  auto c = mpxt::make_array('c', 2);
  set_as<char>(c.get(), 1, 'z');
  EXPECT_EQ(get_as<char>(c.get(), 1), 'z');
  auto b = mpxt::make_array('b', 2);
  set_as<signed char>(b.get(), 0, SCHAR_MIN);
  set_as<signed char>(b.get(), 1, SCHAR_MAX);
  EXPECT_EQ(get_as<signed char>(b.get(), 0), SCHAR_MIN);
  EXPECT_EQ(get_as<signed char>(b.get(), 1), SCHAR_MAX);
  auto h = mpxt::make_array('h', 1);
  set_as<short>(h.get(), 0, SHRT_MIN);
  EXPECT_EQ(get_as<short>(h.get(), 0), SHRT_MIN);
  auto H = mpxt::make_array('H', 1);
  set_as<unsigned short>(H.get(), 0, USHRT_MAX);
  EXPECT_EQ(get_as<unsigned short>(H.get(), 0), USHRT_MAX);
  auto i = mpxt::make_array('i', 1);
  set_as<int>(i.get(), 0, INT_MIN);
  EXPECT_EQ(get_as<int>(i.get(), 0), INT_MIN);
  auto I = mpxt::make_array('I', 1);
  set_as<unsigned>(I.get(), 0, UINT_MAX);
  EXPECT_EQ(get_as<unsigned>(I.get(), 0), UINT_MAX);
  auto l = mpxt::make_array('l', 1);
  set_as<long>(l.get(), 0, LONG_MIN);  // NOLINT(google-runtime-int)
  EXPECT_EQ(get_as<long>(l.get(), 0), LONG_MIN);  // NOLINT(google-runtime-int)
  auto L = mpxt::make_array('L', 1);
  set_as<unsigned long>(L.get(), 0, ULONG_MAX);  // NOLINT(google-runtime-int)
  EXPECT_EQ(get_as<unsigned long>(L.get(), 0), ULONG_MAX);  // NOLINT(google-runtime-int)
  auto q = mpxt::make_array('q', 1);
  set_as<long long>(q.get(), 0, LLONG_MIN);
  EXPECT_EQ(get_as<long long>(q.get(), 0), LLONG_MIN);
  auto Q = mpxt::make_array('Q', 1);
  set_as<unsigned long long>(Q.get(), 0, ULLONG_MAX);
  EXPECT_EQ(get_as<unsigned long long>(Q.get(), 0), ULLONG_MAX);
  auto f = mpxt::make_array('f', 1);
  set_as<float>(f.get(), 0, -FLT_MAX);
  EXPECT_EQ(get_as<float>(f.get(), 0), -FLT_MAX);
  auto d = mpxt::make_array('d', 2);
  set_as<double>(d.get(), 0, DBL_MIN);
  set_as<double>(d.get(), 1, std::nan(""));
  EXPECT_EQ(get_as<double>(d.get(), 0), DBL_MIN);
  EXPECT_TRUE(std::isnan(get_as<double>(d.get(), 1)));
}

TEST(ArrayAccess, GetAndSetPastTheEndAreErange) {
  auto a = mpxt::make_array('i', 4);
  int v = 5;
  EXPECT_MPX(MPX_ERANGE, mpx_array_get(a.get(), 4, &v, sizeof v));
  EXPECT_MPX(MPX_ERANGE, mpx_array_set(a.get(), 4, &v, sizeof v));
  EXPECT_MPX(MPX_ERANGE, mpx_array_get(a.get(), 1000000, &v, sizeof v));
  EXPECT_MPX(MPX_ERANGE, mpx_array_set(a.get(), SIZE_MAX, &v, sizeof v));
  EXPECT_EQ(v, 5) << "a failed get leaves the output alone";
}

TEST(ArrayAccess, WrongElementSizeIsEinval) {
  auto a = mpxt::make_array('i', 4);
  long long big = 0;
  short small = 0;
  EXPECT_MPX(MPX_EINVAL, mpx_array_get(a.get(), 0, &big, sizeof big));
  EXPECT_MPX(MPX_EINVAL, mpx_array_set(a.get(), 0, &small, sizeof small));
}

TEST(ArrayAccess, BulkReadWriteAndSlices) {
  auto a = mpxt::make_array('d', 100);
  std::vector<double> in(100);
  for (int i = 0; i < 100; ++i) in[static_cast<size_t>(i)] = i * 1.5;
  ASSERT_MPX_OK(mpx_array_write(a.get(), 0, 100, in.data(), in.size() * sizeof(double)));
  std::vector<double> out(10, -1);
  ASSERT_MPX_OK(mpx_array_read(a.get(), 90, 10, out.data(), out.size() * sizeof(double)));
  for (int i = 0; i < 10; ++i) EXPECT_EQ(out[static_cast<size_t>(i)], (90 + i) * 1.5);
  double patch[3] = {-1, -2, -3};
  ASSERT_MPX_OK(mpx_array_write(a.get(), 50, 3, patch, sizeof patch));
  EXPECT_EQ(get_as<double>(a.get(), 49), 49 * 1.5);
  EXPECT_EQ(get_as<double>(a.get(), 50), -1);
  EXPECT_EQ(get_as<double>(a.get(), 52), -3);
  EXPECT_EQ(get_as<double>(a.get(), 53), 53 * 1.5);
  // A larger buffer than needed: either refused, or only count elements are copied.
  std::vector<double> roomy(20, 7.0);
  int rc = mpx_array_read(a.get(), 0, 2, roomy.data(), roomy.size() * sizeof(double));
  EXPECT_TRUE(rc == MPX_OK || rc == MPX_EINVAL) << mpxt::code_str(rc);
  if (rc == MPX_OK) {
    EXPECT_EQ(roomy[1], 1.5);
    EXPECT_EQ(roomy[2], 7.0) << "read wrote past count elements";
  }
}

TEST(ArrayAccess, ReadOrWritePastTheEndIsErangeAndChangesNothing) {
  auto a = mpxt::make_array('i', 8);
  int buf[4] = {1, 2, 3, 4};
  EXPECT_MPX(MPX_ERANGE, mpx_array_write(a.get(), 6, 4, buf, sizeof buf));
  EXPECT_EQ(get_as<int>(a.get(), 6), 0) << "a rejected write is all or nothing";
  EXPECT_EQ(get_as<int>(a.get(), 7), 0);
  EXPECT_MPX(MPX_ERANGE, mpx_array_read(a.get(), 6, 4, buf, sizeof buf));
  EXPECT_EQ(buf[0], 1) << "a rejected read leaves the buffer alone";
}

TEST(ArrayAccess, AddressAndGetSeeTheSameMemory) {
  auto a = mpxt::make_array('q', 4);
  void *addr = nullptr;
  ASSERT_MPX_OK(mpx_array_address(a.get(), &addr));
  static_cast<long long *>(addr)[2] = 123456789012345LL;
  EXPECT_EQ(get_as<long long>(a.get(), 2), 123456789012345LL);
  set_as<long long>(a.get(), 3, -9);
  EXPECT_EQ(static_cast<long long *>(addr)[3], -9);
}

TEST(ArrayAccess, ElementAccessDoesNotTakeTheLock) {
  auto a = mpxt::make_array('i', 1);
  mpx_lock *l = nullptr;
  ASSERT_MPX_OK(mpx_array_lock(a.get(), &l));
  mpxt::LockPtr guard(l);
  ASSERT_MPX_OK(mpx_lock_acquire(l, 0));
  auto st = mpxt::run_in_child([&] {
    mpxt::Stopwatch sw;
    int v = 9;
    CHILD_MPX_OK(mpx_array_set(a.get(), 0, &v, sizeof v));
    CHILD_MPX_OK(mpx_array_get(a.get(), 0, &v, sizeof v));
    CHILD_CHECK(sw.ms() < 100);
    return 0;
  });
  EXPECT_TRUE(st.ok()) << st.describe();
  EXPECT_MPX_OK(mpx_lock_release(l));
  EXPECT_EQ(get_as<int>(a.get(), 0), 9);
}

// ---- lock kinds ---------------------------------------------------------------------------------

TEST(ArrayLock, KindsRLockLockAndNone) {
  {
    auto a = mpxt::make_array('i', 1, MPX_ARRAY_LOCK_RLOCK);
    mpx_lock *l = nullptr;
    ASSERT_MPX_OK(mpx_array_lock(a.get(), &l));
    int rec = -1;
    EXPECT_MPX_OK(mpx_lock_is_recursive(l, &rec));
    EXPECT_EQ(rec, 1);
    mpx_lock_destroy(l);
  }
  {
    auto a = mpxt::make_array('i', 1, MPX_ARRAY_LOCK_LOCK);
    mpx_lock *l = nullptr;
    ASSERT_MPX_OK(mpx_array_lock(a.get(), &l));
    int rec = -1;
    EXPECT_MPX_OK(mpx_lock_is_recursive(l, &rec));
    EXPECT_EQ(rec, 0);
    mpx_lock_destroy(l);
  }
  {
    auto a = mpxt::make_array('i', 1, MPX_ARRAY_LOCK_NONE);
    mpx_lock *l = reinterpret_cast<mpx_lock *>(0x1);
    EXPECT_MPX(MPX_ENOENT, mpx_array_lock(a.get(), &l)) << "a RawArray has no lock";
    EXPECT_EQ(l, nullptr);
  }
}

TEST(ArrayLock, EveryLockHandleIsTheSameLockAcrossProcesses) {
  auto a = mpxt::make_array('i', 1, MPX_ARRAY_LOCK_LOCK);
  mpx_lock *l1 = nullptr, *l2 = nullptr;
  ASSERT_MPX_OK(mpx_array_lock(a.get(), &l1));
  ASSERT_MPX_OK(mpx_array_lock(a.get(), &l2));
  mpxt::LockPtr g1(l1), g2(l2);
  ASSERT_MPX_OK(mpx_lock_acquire(l1, 0));
  EXPECT_MPX(MPX_ETIMEDOUT, mpx_lock_acquire(l2, 0));
  auto st = mpxt::run_in_child([&] {
    mpx_lock *mine = nullptr;
    CHILD_MPX_OK(mpx_array_lock(a.get(), &mine));
    CHILD_MPX(MPX_ETIMEDOUT, mpx_lock_acquire(mine, 0));
    CHILD_MPX_OK(mpx_lock_destroy(mine));
    return 0;
  });
  EXPECT_TRUE(st.ok()) << st.describe();
  EXPECT_MPX_OK(mpx_lock_release(l2));
}

TEST(ArrayLock, LockHandleOutlivesTheArrayHandle) {
  mpx_array *a = mpxt::make_array('i', 1).release();
  mpx_lock *l = nullptr;
  ASSERT_MPX_OK(mpx_array_lock(a, &l));
  mpxt::LockPtr guard(l);
  ASSERT_MPX_OK(mpx_array_destroy(a));
  EXPECT_MPX_OK(mpx_lock_acquire(l, 0));
  EXPECT_MPX_OK(mpx_lock_release(l));
}

// ---- sharing across processes ------------------------------------------------------------------

TEST(ArrayFork, ChildWritesParentReadsAndBack) {
  auto a = mpxt::make_array('i', 1000);
  auto st = mpxt::run_in_child([&] {
    for (int i = 0; i < 1000; ++i) {
      int v = i * 3;
      CHILD_MPX_OK(mpx_array_set(a.get(), static_cast<size_t>(i), &v, sizeof v));
    }
    return 0;
  });
  ASSERT_TRUE(st.ok()) << st.describe();
  for (int i = 0; i < 1000; ++i) ASSERT_EQ(get_as<int>(a.get(), static_cast<size_t>(i)), i * 3);
  set_as<int>(a.get(), 999, -1);
  st = mpxt::run_in_child([&] {
    int v = 0;
    CHILD_MPX_OK(mpx_array_get(a.get(), 999, &v, sizeof v));
    CHILD_CHECK_EQ(v, -1);
    return 0;
  });
  EXPECT_TRUE(st.ok()) << st.describe();
}

TEST(ArrayFork, LargeArrayIsShared) {
  constexpr size_t kN = size_t{1} << 20;  // 8 MiB of doubles: its own segment
  auto a = mpxt::make_array('d', kN, MPX_ARRAY_LOCK_NONE);
  ASSERT_TRUE(a);
  EXPECT_EQ(length_of(a.get()), kN);
  auto st = mpxt::run_in_child([&] {
    std::vector<double> v(kN);
    for (size_t i = 0; i < kN; ++i) v[i] = static_cast<double>(i) * 0.5;
    CHILD_MPX_OK(mpx_array_write(a.get(), 0, kN, v.data(), v.size() * sizeof(double)));
    return 0;
  });
  ASSERT_TRUE(st.ok()) << st.describe();
  std::vector<double> out(kN);
  ASSERT_MPX_OK(mpx_array_read(a.get(), 0, kN, out.data(), out.size() * sizeof(double)));
  for (size_t i = 0; i < kN; i += 4099) ASSERT_EQ(out[i], static_cast<double>(i) * 0.5);
  EXPECT_EQ(out[kN - 1], static_cast<double>(kN - 1) * 0.5);
}

TEST(ArrayFork, TwoProcessesNegateUnderTheLock) {
  // The tour's program: two processes negate a shared Array under its lock, twice -> unchanged.
  auto a = mpxt::make_array('i', 64);
  std::vector<int> init(64);
  for (int i = 0; i < 64; ++i) init[static_cast<size_t>(i)] = i + 1;
  ASSERT_MPX_OK(mpx_array_write(a.get(), 0, 64, init.data(), init.size() * sizeof(int)));
  mpx_lock *l = nullptr;
  ASSERT_MPX_OK(mpx_array_lock(a.get(), &l));
  mpxt::LockPtr guard(l);
  auto results = mpxt::run_together(
      2,
      [&](int) {
        for (int round = 0; round < 1001; ++round) {
          CHILD_MPX_OK(mpx_lock_acquire(l, -1));
          std::vector<int> v(64);
          CHILD_MPX_OK(mpx_array_read(a.get(), 0, 64, v.data(), v.size() * sizeof(int)));
          for (int &x : v) x = -x;
          CHILD_MPX_OK(mpx_array_write(a.get(), 0, 64, v.data(), v.size() * sizeof(int)));
          CHILD_MPX_OK(mpx_lock_release(l));
        }
        return 0;
      },
      30000ms);
  std::string why;
  EXPECT_TRUE(mpxt::all_ok(results, &why)) << why;
  std::vector<int> out(64);
  ASSERT_MPX_OK(mpx_array_read(a.get(), 0, 64, out.data(), out.size() * sizeof(int)));
  EXPECT_EQ(out, init) << "2002 negations (an even number) leave the array unchanged";
}

TEST(ArrayToken, AttachInAForkedChildSeesTypeLengthDataAndLock) {
  auto a = mpxt::make_array('h', 10, MPX_ARRAY_LOCK_LOCK);
  set_as<short>(a.get(), 9, 321);
  std::string tok = mpxt::token_of(mpx_array_token, a.get());
  ASSERT_FALSE(tok.empty());
  mpx_lock *l = nullptr;
  ASSERT_MPX_OK(mpx_array_lock(a.get(), &l));
  mpxt::LockPtr guard(l);
  ASSERT_MPX_OK(mpx_lock_acquire(l, 0));
  mpx_array *inherited = a.get();
  auto st = mpxt::run_in_child([&] {
    CHILD_MPX_OK(mpx_array_destroy(inherited));
    mpx_array *b = nullptr;
    CHILD_MPX_OK(mpx_array_attach(&b, tok.c_str()));
    char code = 0;
    size_t n = 0;
    CHILD_MPX_OK(mpx_array_typecode(b, &code));
    CHILD_MPX_OK(mpx_array_length(b, &n));
    CHILD_CHECK_EQ(code, 'h');
    CHILD_CHECK_EQ(n, 10);
    short v = 0;
    CHILD_MPX_OK(mpx_array_get(b, 9, &v, sizeof v));
    CHILD_CHECK_EQ(v, 321);
    v = -7;
    CHILD_MPX_OK(mpx_array_set(b, 0, &v, sizeof v));
    mpx_lock *bl = nullptr;
    CHILD_MPX_OK(mpx_array_lock(b, &bl));
    CHILD_MPX(MPX_ETIMEDOUT, mpx_lock_acquire(bl, 0));  // the parent holds it
    CHILD_MPX_OK(mpx_lock_destroy(bl));
    CHILD_MPX_OK(mpx_array_destroy(b));
    return 0;
  });
  EXPECT_TRUE(st.ok()) << st.describe();
  EXPECT_EQ(get_as<short>(a.get(), 0), -7);
  EXPECT_MPX_OK(mpx_lock_release(l));
}

MPXT_HELPER(array_adder) {
  // args: token, n: add 1 to element 0 n times under the array's lock.
  if (args.size() != 2) return 2;
  mpx_array *a = nullptr;
  CHILD_MPX_OK(mpx_array_attach(&a, args[0].c_str()));
  mpx_lock *l = nullptr;
  CHILD_MPX_OK(mpx_array_lock(a, &l));
  for (int i = 0, n = std::stoi(args[1]); i < n; ++i) {
    CHILD_MPX_OK(mpx_lock_acquire(l, -1));
    int v = 0;
    CHILD_MPX_OK(mpx_array_get(a, 0, &v, sizeof v));
    ++v;
    CHILD_MPX_OK(mpx_array_set(a, 0, &v, sizeof v));
    CHILD_MPX_OK(mpx_lock_release(l));
  }
  CHILD_MPX_OK(mpx_lock_destroy(l));
  CHILD_MPX_OK(mpx_array_destroy(a));
  return 0;
}

TEST(ArrayToken, ExecedProcessesIncrementUnderTheSharedLock) {
  auto a = mpxt::make_array('i', 1);
  std::string tok = mpxt::token_of(mpx_array_token, a.get());
  std::vector<mpxt::Child> kids;
  for (int i = 0; i < 3; ++i) kids.push_back(mpxt::Child::exec_helper("array_adder", {tok, "20000"}));
  for (auto &k : kids) {
    auto st = k.wait(60000ms);
    EXPECT_TRUE(st.ok()) << st.describe();
  }
  EXPECT_EQ(get_as<int>(a.get(), 0), 60000);
}
