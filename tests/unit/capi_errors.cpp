// Error codes, their names and descriptions, the thread-local last error message, versions.
#include <climits>
#include <cstring>
#include <set>
#include <string>
#include <thread>

#include "support/mpx_helpers.hpp"

namespace {

struct CodeName {
  int code;
  const char *name;
};

// The pinned numbers, written out: changing one in the header must fail here.
constexpr CodeName kCodes[] = {
    {0, "MPX_OK"},
    {-1, "MPX_EINVAL"},          {-2, "MPX_ENOMEM"},      {-3, "MPX_EBADHANDLE"},   {-4, "MPX_ETIMEDOUT"},
    {-5, "MPX_EEXIST"},          {-6, "MPX_ENOENT"},      {-7, "MPX_EACCES"},       {-8, "MPX_EPERM"},
    {-9, "MPX_EOWNERDEAD"},      {-10, "MPX_ENOTRECOVERABLE"}, {-11, "MPX_EOVERFLOW"}, {-12, "MPX_EBROKEN"},
    {-13, "MPX_ECLOSED"},        {-14, "MPX_ECORRUPT"},   {-15, "MPX_ENOBUFS"},     {-16, "MPX_EFORKED"},
    {-17, "MPX_ENOTSUP"},        {-18, "MPX_ESYS"},       {-19, "MPX_ERANGE"},      {-20, "MPX_EMFILE"},
    {-21, "MPX_ENOSPC"},         {-22, "MPX_EMSGSIZE"},   {-23, "MPX_EOF"},         {-24, "MPX_EPROTO"},
    {-25, "MPX_EPIPE"},          {-26, "MPX_EAUTH"},      {-27, "MPX_EWORKERDIED"}, {-28, "MPX_EADDRINUSE"},
    {-29, "MPX_EAGAIN"},         {-30, "MPX_EDEADLK"}, {-31, "MPX_ETASK"}, {-32, "MPX_ECANCELED"},
};

static_assert(MPX_OK == 0 && MPX_EINVAL == -1 && MPX_ENOMEM == -2 && MPX_EBADHANDLE == -3 && MPX_ETIMEDOUT == -4);
static_assert(MPX_EEXIST == -5 && MPX_ENOENT == -6 && MPX_EACCES == -7 && MPX_EPERM == -8 && MPX_EOWNERDEAD == -9);
static_assert(MPX_ENOTRECOVERABLE == -10 && MPX_EOVERFLOW == -11 && MPX_EBROKEN == -12 && MPX_ECLOSED == -13);
static_assert(MPX_ECORRUPT == -14 && MPX_ENOBUFS == -15 && MPX_EFORKED == -16 && MPX_ENOTSUP == -17);
static_assert(MPX_ESYS == -18 && MPX_ERANGE == -19 && MPX_EMFILE == -20 && MPX_ENOSPC == -21 && MPX_EMSGSIZE == -22);
static_assert(MPX_EOF == -23 && MPX_EPROTO == -24 && MPX_EPIPE == -25 && MPX_EAUTH == -26 && MPX_EWORKERDIED == -27);
static_assert(MPX_EADDRINUSE == -28 && MPX_EAGAIN == -29 && MPX_EDEADLK == -30 && MPX_ETASK == -31 &&
              MPX_ECANCELED == -32 && MPX_ERRNO_LAST == -32);
static_assert(sizeof(kCodes) / sizeof(kCodes[0]) == static_cast<size_t>(1 - MPX_ERRNO_LAST),
              "every code from MPX_OK to MPX_ERRNO_LAST is in the table");

constexpr int kUnknownCodes[] = {1, 2, 100, MPX_ERRNO_LAST - 1, -33, -100, -1000, INT_MIN, INT_MAX, INT_MIN + 1};

}  // namespace

TEST(ErrorName, NamesEveryCode) {
  for (const auto &c : kCodes) {
    const char *name = mpx_error_name(c.code);
    ASSERT_NE(name, nullptr) << c.code;
    EXPECT_STREQ(name, c.name) << "code " << c.code;
  }
}

TEST(ErrorName, UnknownCodesAreMpxEunknown) {
  for (int code : kUnknownCodes) {
    const char *name = mpx_error_name(code);
    ASSERT_NE(name, nullptr) << code;
    EXPECT_STREQ(name, "MPX_EUNKNOWN") << "code " << code;
  }
}

TEST(ErrorStrerror, DescribesEveryCodeDistinctly) {
  std::set<std::string> seen;
  for (const auto &c : kCodes) {
    const char *s = mpx_strerror(c.code);
    ASSERT_NE(s, nullptr) << c.code;
    EXPECT_GT(std::strlen(s), 0u) << c.name;
    EXPECT_STRNE(s, "unknown error") << c.name << " has no description of its own";
    EXPECT_TRUE(seen.insert(s).second) << c.name << " shares its description \"" << s << "\"";
  }
}

TEST(ErrorStrerror, UnknownCodesAreUnknownError) {
  for (int code : kUnknownCodes) {
    const char *s = mpx_strerror(code);
    ASSERT_NE(s, nullptr) << code;
    EXPECT_STREQ(s, "unknown error") << "code " << code;
  }
}

TEST(ErrorStrerror, ReturnsStaticStringsUsableFromManyThreads) {
  const char *first = mpx_strerror(MPX_ETIMEDOUT);
  const char *name = mpx_error_name(MPX_ETIMEDOUT);
  std::thread t([&] {
    EXPECT_EQ(mpx_strerror(MPX_ETIMEDOUT), first) << "strerror is a static string, not per thread";
    EXPECT_EQ(mpx_error_name(MPX_ETIMEDOUT), name);
  });
  t.join();
  EXPECT_EQ(mpx_strerror(MPX_ETIMEDOUT), first);
}

TEST(LastErrorMessage, IsEmptyInAFreshThread) {
  std::string msg = "unset";
  std::thread t([&] {
    const char *m = mpx_last_error_message();
    msg = m == nullptr ? "(null)" : m;
  });
  t.join();
  EXPECT_EQ(msg, "");
}

TEST(LastErrorMessage, IsSetByAFailedCall) {
  std::thread t([] {
    EXPECT_MPX(MPX_EINVAL, mpx_lock_create(nullptr, nullptr));
    const char *m = mpx_last_error_message();
    ASSERT_NE(m, nullptr);
    EXPECT_GT(std::strlen(m), 0u) << "a failed call leaves detail for its thread";
  });
  t.join();
}

TEST(LastErrorMessage, DescribesTheFailure) {
  mpx_segment *seg = nullptr;
  std::string name = mpxt::unique_name("missing");
  ASSERT_MPX(MPX_ENOENT, mpx_segment_attach(&seg, name.c_str()));
  std::string m = mpx_last_error_message();
  EXPECT_FALSE(m.empty());
  EXPECT_EQ(seg, nullptr) << "*out is NULL on failure";
}

TEST(LastErrorMessage, IsThreadLocal) {
  EXPECT_MPX(MPX_EINVAL, mpx_event_create(nullptr));
  std::string mine = mpx_last_error_message();
  ASSERT_FALSE(mine.empty());
  std::string other = "unset";
  std::thread t([&] {
    EXPECT_MPX(MPX_EINVAL, mpx_semaphore_create(nullptr, 1, nullptr));
    other = mpx_last_error_message();
  });
  t.join();
  EXPECT_FALSE(other.empty());
  EXPECT_EQ(std::string(mpx_last_error_message()), mine) << "another thread's failure must not change mine";
}

TEST(LastErrorMessage, SurvivesStrerrorAndErrorName) {
  EXPECT_MPX(MPX_EINVAL, mpx_barrier_create(nullptr, 2));
  std::string before = mpx_last_error_message();
  mpx_strerror(MPX_EINVAL);
  mpx_error_name(MPX_EINVAL);
  EXPECT_EQ(std::string(mpx_last_error_message()), before);
}

TEST(Version, NumberMatchesHeader) {
  EXPECT_EQ(mpx_version(), static_cast<uint32_t>(MPX_VERSION_NUMBER));
  EXPECT_EQ(MPX_VERSION_NUMBER, MPX_VERSION_MAJOR * 10000 + MPX_VERSION_MINOR * 100 + MPX_VERSION_PATCH);
}

TEST(Version, StringMatchesHeader) {
  const char *s = mpx_version_string();
  ASSERT_NE(s, nullptr);
  std::string expected = std::to_string(MPX_VERSION_MAJOR) + "." + std::to_string(MPX_VERSION_MINOR) + "." +
                         std::to_string(MPX_VERSION_PATCH);
  EXPECT_EQ(std::string(s), expected);
}

TEST(Version, AbiVersionIsZeroWhilePreOne) {
  EXPECT_EQ(MPX_ABI_VERSION, 0);
  EXPECT_EQ(MPX_VERSION_MAJOR, 0);
}

TEST(Free, IgnoresNull) {
  mpx_free(nullptr);
  SUCCEED();
}
