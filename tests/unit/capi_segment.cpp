// Shared memory segments (SCENARIOS.md 30-33, 35): anonymous and named segments, names, modes,
// tokens across fork and exec, corrupt and foreign objects, reclamation after a crash.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "support/mpx_helpers.hpp"

using namespace std::chrono_literals;
using mpxt::Millis;

namespace {

bool shm_exists(const std::string &name) {
  struct stat st;
  return stat(("/dev/shm/" + name).c_str(), &st) == 0;
}

mode_t shm_mode(const std::string &name) {
  struct stat st;
  if (stat(("/dev/shm/" + name).c_str(), &st) != 0) return 0;
  return st.st_mode & 07777;
}

std::string seg_name(mpx_segment *s) {
  char buf[MPX_TOKEN_MAX];
  size_t len = sizeof buf;
  if (mpx_segment_name(s, buf, &len) != MPX_OK) return "<error>";
  return std::string(buf, len);
}

void *seg_addr(mpx_segment *s) {
  void *p = nullptr;
  EXPECT_MPX_OK(mpx_segment_address(s, &p));
  return p;
}

size_t seg_size(mpx_segment *s) {
  size_t n = 0;
  EXPECT_MPX_OK(mpx_segment_size(s, &n));
  return n;
}

// Removes a /dev/shm name at scope exit whatever happened.
struct ShmNameGuard {
  std::string name;
  ~ShmNameGuard() { shm_unlink(("/" + name).c_str()); }
};

// A raw POSIX shm object of `bytes` with `mode` (exactly, whatever the umask).
int raw_shm(const std::string &name, size_t bytes, mode_t mode) {
  int fd = shm_open(("/" + name).c_str(), O_RDWR | O_CREAT | O_EXCL, mode);
  if (fd < 0) return -1;
  fchmod(fd, mode);
  if (bytes > 0 && ftruncate(fd, static_cast<off_t>(bytes)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

}  // namespace

// ---- anonymous segments ------------------------------------------------------------------------

TEST(SegmentAnonymous, IsZeroFilledSizedAndUnnamed) {
  auto seg = mpxt::make_segment(10000);
  ASSERT_TRUE(seg);
  EXPECT_GE(seg_size(seg.get()), 10000u);
  auto *p = static_cast<unsigned char *>(seg_addr(seg.get()));
  ASSERT_NE(p, nullptr);
  for (size_t i = 0; i < 10000; ++i) ASSERT_EQ(p[i], 0) << "byte " << i;
  std::memset(p, 0x77, 10000);  // writable everywhere
  EXPECT_EQ(seg_name(seg.get()), "") << "an anonymous segment has the empty name";
  int fd = -1;
  EXPECT_MPX_OK(mpx_segment_fd(seg.get(), &fd));
  struct stat st;
  ASSERT_EQ(fstat(fd, &st), 0);
  EXPECT_GE(static_cast<size_t>(st.st_size), 10000u);
}

TEST(SegmentAnonymous, SizeIsTheRequestedSize) {
  for (size_t n : {size_t{1}, size_t{100}, size_t{4096}, size_t{4097}, size_t{1} << 20}) {
    auto seg = mpxt::make_segment(n);
    ASSERT_TRUE(seg);
    EXPECT_EQ(seg_size(seg.get()), n);
  }
}

namespace {

// /dev/shm entries that appeared since `before` and are still there after a moment (tests running
// in parallel create and remove their own named segments; those come and go).
std::set<std::string> lasting_new_shm(const std::set<std::string> &before) {
  std::set<std::string> fresh;
  for (int i = 0; i < 40; ++i) {
    fresh.clear();
    for (const auto &n : mpxt::shm_entries())
      if (!before.count(n)) fresh.insert(n);
    if (fresh.empty()) break;
    mpxt::sleep_ms(50);
  }
  return fresh;
}

std::string fd_target(int fd) {
  char buf[256];
  ssize_t n = readlink(("/proc/self/fd/" + std::to_string(fd)).c_str(), buf, sizeof buf - 1);
  return n < 0 ? std::string() : std::string(buf, static_cast<size_t>(n));
}

}  // namespace

TEST(SegmentAnonymous, IsAMemfdAndLeavesNothingInDevShm) {
  auto before = mpxt::shm_entries();
  {
    auto seg = mpxt::make_segment(1 << 16);
    int fd = -1;
    ASSERT_MPX_OK(mpx_segment_fd(seg.get(), &fd));
    EXPECT_EQ(fd_target(fd).rfind("/memfd:", 0), 0u) << "anonymous segment backed by " << fd_target(fd);
    EXPECT_TRUE(lasting_new_shm(before).empty()) << "anonymous segments have no name in /dev/shm";
  }
  EXPECT_TRUE(lasting_new_shm(before).empty());
}

TEST(SegmentAnonymous, UnlinkIsNotApplicable) {
  auto seg = mpxt::make_segment(4096);
  int rc = mpx_segment_unlink(seg.get());
  EXPECT_TRUE(rc == MPX_EINVAL || rc == MPX_ENOENT) << mpxt::code_str(rc);
}

TEST(SegmentAnonymous, IsInheritedAcrossForkChildWritesParentReads) {
  auto seg = mpxt::make_segment(1 << 16);
  auto *p = static_cast<uint32_t *>(seg_addr(seg.get()));
  auto st = mpxt::run_in_child([&] {
    for (uint32_t i = 0; i < (1u << 14); ++i) p[i] = i * 2654435761u;
    return 0;
  });
  ASSERT_TRUE(st.ok()) << st.describe();
  for (uint32_t i = 0; i < (1u << 14); ++i) ASSERT_EQ(p[i], i * 2654435761u) << i;
}

TEST(SegmentAnonymous, ParentWritesAreSeenByAForkedChild) {
  auto seg = mpxt::make_segment(4096);
  auto *p = static_cast<volatile int *>(seg_addr(seg.get()));
  mpxt::Rendezvous ready;
  mpxt::Child c = mpxt::Child::fork([&] {
    ready.notify();
    for (int i = 0; i < 5000 && p[0] != 42; ++i) mpxt::sleep_ms(1);
    return p[0] == 42 ? 0 : 1;
  });
  ASSERT_TRUE(ready.wait());
  p[0] = 42;
  EXPECT_TRUE(c.wait().ok());
}

TEST(SegmentAnonymous, HandleIsUsableInAForkedChild) {
  auto seg = mpxt::make_segment(4096);
  auto st = mpxt::run_in_child([&] {
    size_t n = 0;
    CHILD_MPX_OK(mpx_segment_size(seg.get(), &n));
    CHILD_CHECK_EQ(n, 4096);
    void *a = nullptr;
    CHILD_MPX_OK(mpx_segment_address(seg.get(), &a));
    static_cast<char *>(a)[0] = 'x';
    return 0;
  });
  EXPECT_TRUE(st.ok()) << st.describe();
  EXPECT_EQ(static_cast<char *>(seg_addr(seg.get()))[0], 'x');
}

// ---- named segments (scenario 30) -------------------------------------------------------------

TEST(SegmentNamed, CreateAttachSizeNameUnlink) {
  std::string name = mpxt::unique_name("seg");
  ShmNameGuard guard{name};
  auto seg = mpxt::make_segment(12345, name.c_str());
  ASSERT_TRUE(seg);
  EXPECT_TRUE(shm_exists(name));
  EXPECT_EQ(seg_name(seg.get()), name);
  EXPECT_EQ(seg_size(seg.get()), 12345u);
  std::strcpy(static_cast<char *>(seg_addr(seg.get())), "hello");

  mpx_segment *other = nullptr;
  ASSERT_MPX_OK(mpx_segment_attach(&other, name.c_str()));
  EXPECT_EQ(seg_size(other), 12345u);
  EXPECT_EQ(seg_name(other), name);
  EXPECT_STREQ(static_cast<char *>(seg_addr(other)), "hello");
  EXPECT_MPX_OK(mpx_segment_destroy(other));

  EXPECT_MPX_OK(mpx_segment_unlink(seg.get()));
  EXPECT_FALSE(shm_exists(name));
  EXPECT_STREQ(static_cast<char *>(seg_addr(seg.get())), "hello") << "the mapping outlives the name";
  mpx_segment *gone = nullptr;
  EXPECT_MPX(MPX_ENOENT, mpx_segment_attach(&gone, name.c_str()));
}

TEST(SegmentNamed, LeadingSlashIsAccepted) {
  std::string name = mpxt::unique_name("slash");
  ShmNameGuard guard{name};
  auto seg = mpxt::make_segment(4096, ("/" + name).c_str());
  ASSERT_TRUE(seg);
  EXPECT_EQ(seg_name(seg.get()), name) << "the name is reported without the leading '/'";
  mpx_segment *a = nullptr;
  EXPECT_MPX_OK(mpx_segment_attach(&a, name.c_str()));
  mpx_segment_destroy(a);
  EXPECT_MPX_OK(mpx_segment_attach(&a, ("/" + name).c_str()));
  mpx_segment_destroy(a);
  EXPECT_MPX_OK(mpx_segment_unlink_name(("/" + name).c_str()));
}

TEST(SegmentNamed, CreateExistingNameIsEexist) {
  std::string name = mpxt::unique_name("dup");
  ShmNameGuard guard{name};
  auto seg = mpxt::make_segment(4096, name.c_str());
  ASSERT_TRUE(seg);
  mpx_segment_options o;
  mpx_segment_options_init(&o, sizeof o);
  o.name = name.c_str();
  mpx_segment *again = nullptr;
  EXPECT_MPX(MPX_EEXIST, mpx_segment_create(&again, 4096, &o));
  EXPECT_EQ(again, nullptr);
}

TEST(SegmentNamed, AttachMissingNameIsEnoent) {
  mpx_segment *s = nullptr;
  EXPECT_MPX(MPX_ENOENT, mpx_segment_attach(&s, mpxt::unique_name("nope").c_str()));
  EXPECT_EQ(s, nullptr);
}

TEST(SegmentNamed, DoubleUnlinkIsEnoent) {
  std::string name = mpxt::unique_name("unl");
  ShmNameGuard guard{name};
  auto seg = mpxt::make_segment(4096, name.c_str());
  ASSERT_TRUE(seg);
  EXPECT_MPX_OK(mpx_segment_unlink(seg.get()));
  EXPECT_MPX(MPX_ENOENT, mpx_segment_unlink(seg.get()));
  EXPECT_MPX(MPX_ENOENT, mpx_segment_unlink_name(name.c_str()));
}

TEST(SegmentNamed, UnlinkNameOfAMissingSegmentIsEnoent) {
  EXPECT_MPX(MPX_ENOENT, mpx_segment_unlink_name(mpxt::unique_name("missing").c_str()));
}

TEST(SegmentNamed, DestroyDoesNotUnlink) {
  std::string name = mpxt::unique_name("keep");
  ShmNameGuard guard{name};
  {
    auto seg = mpxt::make_segment(4096, name.c_str());
    ASSERT_TRUE(seg);
    static_cast<int *>(seg_addr(seg.get()))[0] = 1234;
  }
  EXPECT_TRUE(shm_exists(name)) << "closing a handle never unlinks";
  mpx_segment *a = nullptr;
  ASSERT_MPX_OK(mpx_segment_attach(&a, name.c_str()));
  EXPECT_EQ(static_cast<int *>(seg_addr(a))[0], 1234);
  EXPECT_MPX_OK(mpx_segment_unlink(a));
  EXPECT_MPX_OK(mpx_segment_destroy(a));
}

TEST(SegmentNamed, ZeroOrNegativeSizeIsEinval) {
  std::string name = mpxt::unique_name("size");
  ShmNameGuard guard{name};
  mpx_segment_options o;
  mpx_segment_options_init(&o, sizeof o);
  o.name = name.c_str();
  mpx_segment *s = nullptr;
  EXPECT_MPX(MPX_EINVAL, mpx_segment_create(&s, 0, &o));
  EXPECT_MPX(MPX_EINVAL, mpx_segment_create(&s, static_cast<size_t>(-1), &o));
  EXPECT_MPX(MPX_EINVAL, mpx_segment_create(&s, static_cast<size_t>(-4096), &o));
  EXPECT_FALSE(shm_exists(name)) << "a rejected create leaves no name behind";
}

TEST(SegmentNamed, BadNamesAreEinval) {
  std::string too_long(MPX_SEGMENT_NAME_MAX + 1, 'a');
  const std::vector<std::string> bad = {"", "/", "a/b", "/a/b", "a/", "//a", too_long, "/" + too_long};
  for (const auto &n : bad) {
    mpx_segment_options o;
    mpx_segment_options_init(&o, sizeof o);
    o.name = n.c_str();
    mpx_segment *s = nullptr;
    EXPECT_MPX(MPX_EINVAL, mpx_segment_create(&s, 4096, &o)) << "name '" << n << "'";
    mpx_segment_destroy(s);
    EXPECT_MPX(MPX_EINVAL, mpx_segment_attach(&s, n.c_str())) << "name '" << n << "'";
    EXPECT_MPX(MPX_EINVAL, mpx_segment_unlink_name(n.c_str())) << "name '" << n << "'";
  }
}

TEST(SegmentNamed, NameOfTheMaximumLengthWorks) {
  std::string name = "mpxt" + std::to_string(getpid());
  name += std::string(MPX_SEGMENT_NAME_MAX - name.size(), 'x');
  ASSERT_EQ(name.size(), static_cast<size_t>(MPX_SEGMENT_NAME_MAX));
  ShmNameGuard guard{name};
  auto seg = mpxt::make_segment(4096, name.c_str());
  ASSERT_TRUE(seg);
  EXPECT_EQ(seg_name(seg.get()), name);
  EXPECT_MPX_OK(mpx_segment_unlink(seg.get()));
}

TEST(SegmentNamed, NameBufferTooSmallIsEnobufsWithNeededSize) {
  std::string name = mpxt::unique_name("buf");
  ShmNameGuard guard{name};
  auto seg = mpxt::make_segment(4096, name.c_str());
  ASSERT_TRUE(seg);
  char small[4];
  size_t len = sizeof small;
  EXPECT_MPX(MPX_ENOBUFS, mpx_segment_name(seg.get(), small, &len));
  EXPECT_EQ(len, name.size() + 1);
  std::vector<char> exact(len);
  EXPECT_MPX_OK(mpx_segment_name(seg.get(), exact.data(), &len));
  EXPECT_EQ(len, name.size());
  EXPECT_EQ(std::string(exact.data()), name);
  EXPECT_MPX_OK(mpx_segment_unlink(seg.get()));
}

TEST(SegmentNamed, AttachedInAForkedChildSharesMemory) {
  std::string name = mpxt::unique_name("child");
  ShmNameGuard guard{name};
  auto seg = mpxt::make_segment(4096, name.c_str());
  ASSERT_TRUE(seg);
  auto st = mpxt::run_in_child([&] {
    mpx_segment *s = nullptr;
    CHILD_MPX_OK(mpx_segment_attach(&s, name.c_str()));
    void *a = nullptr;
    CHILD_MPX_OK(mpx_segment_address(s, &a));
    std::strcpy(static_cast<char *>(a), "from child");
    CHILD_MPX_OK(mpx_segment_destroy(s));
    return 0;
  });
  ASSERT_TRUE(st.ok()) << st.describe();
  EXPECT_STREQ(static_cast<char *>(seg_addr(seg.get())), "from child");
  EXPECT_MPX_OK(mpx_segment_unlink(seg.get()));
}

// ---- random names, modes, hostile pre-created names (scenarios 31, 32) -------------------------

TEST(SegmentRandomName, NamesAreUniqueLongAndRemovable) {
  std::set<std::string> names;
  for (int i = 0; i < 50; ++i) {
    auto seg = mpxt::make_segment(4096, nullptr, MPX_SEGMENT_RANDOM_NAME);
    ASSERT_TRUE(seg);
    std::string n = seg_name(seg.get());
    ShmNameGuard guard{n};
    EXPECT_FALSE(n.empty());
    // >= 64 random bits need at least 11 characters in any printable alphabet (base64).
    EXPECT_GE(n.size(), 11u) << n;
    EXPECT_TRUE(names.insert(n).second) << "duplicate random name " << n;
    EXPECT_TRUE(shm_exists(n));
    EXPECT_EQ(shm_mode(n), 0600u) << n;
    EXPECT_MPX_OK(mpx_segment_unlink(seg.get()));
  }
}

TEST(SegmentRandomName, NameAndRandomFlagTogetherAreRejected) {
  std::string name = mpxt::unique_name("both");
  ShmNameGuard guard{name};
  mpx_segment_options o;
  mpx_segment_options_init(&o, sizeof o);
  o.name = name.c_str();
  o.flags = MPX_SEGMENT_RANDOM_NAME;
  mpx_segment *s = nullptr;
  int rc = mpx_segment_create(&s, 4096, &o);
  // Either rejected, or the explicit name wins; never a silent third outcome.
  if (rc == MPX_OK) {
    EXPECT_EQ(seg_name(s), name);
    mpx_segment_unlink(s);
    mpx_segment_destroy(s);
  } else {
    EXPECT_MPX(MPX_EINVAL, rc);
  }
}

TEST(SegmentMode, CreatedWith0600EvenWithUmask000) {
  std::string name = mpxt::unique_name("mode");
  ShmNameGuard guard{name};
  mode_t old = umask(0);
  auto seg = mpxt::make_segment(4096, name.c_str());
  umask(old);
  ASSERT_TRUE(seg);
  EXPECT_EQ(shm_mode(name), 0600u);
  struct stat st;
  ASSERT_EQ(stat(("/dev/shm/" + name).c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, geteuid());
  EXPECT_MPX_OK(mpx_segment_unlink(seg.get()));
}

TEST(SegmentMode, RandomNamedCreatedWith0600EvenWithUmask000) {
  mode_t old = umask(0);
  auto seg = mpxt::make_segment(4096, nullptr, MPX_SEGMENT_RANDOM_NAME);
  umask(old);
  ASSERT_TRUE(seg);
  std::string n = seg_name(seg.get());
  ShmNameGuard guard{n};
  EXPECT_EQ(shm_mode(n), 0600u);
  EXPECT_MPX_OK(mpx_segment_unlink(seg.get()));
}

TEST(SegmentMode, AttachingA0666ObjectIsEacces) {
  for (mode_t mode : {0666u, 0644u, 0640u, 0604u, 0660u, 0606u}) {
    std::string name = mpxt::unique_name("open");
    ShmNameGuard guard{name};
    int fd = raw_shm(name, 4096, mode);
    ASSERT_GE(fd, 0) << std::strerror(errno);
    close(fd);
    mpx_segment *s = nullptr;
    EXPECT_MPX(MPX_EACCES, mpx_segment_attach(&s, name.c_str())) << "mode " << std::oct << mode;
    EXPECT_EQ(s, nullptr);
    mpx_segment_destroy(s);
  }
}

TEST(SegmentMode, AttachingAnotherUsersObjectIsEacces) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to give an object another owner";
  std::string name = mpxt::unique_name("owner");
  ShmNameGuard guard{name};
  int fd = raw_shm(name, 4096, 0600);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(fchown(fd, 65534, 65534), 0) << std::strerror(errno);
  close(fd);
  mpx_segment *s = nullptr;
  EXPECT_MPX(MPX_EACCES, mpx_segment_attach(&s, name.c_str()));
  mpx_segment_destroy(s);
}

TEST(SegmentMode, CreateOverAPreCreated0666NameIsEexistAndNeverAdoptsIt) {
  std::string name = mpxt::unique_name("trap");
  ShmNameGuard guard{name};
  int fd = raw_shm(name, 100, 0666);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(write(fd, "attacker", 8), 8);
  mpx_segment_options o;
  mpx_segment_options_init(&o, sizeof o);
  o.name = name.c_str();
  mpx_segment *s = nullptr;
  EXPECT_MPX(MPX_EEXIST, mpx_segment_create(&s, 4096, &o));
  EXPECT_EQ(s, nullptr);
  // Untouched: same mode, same size, same bytes.
  struct stat st;
  ASSERT_EQ(fstat(fd, &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0666u);
  EXPECT_EQ(st.st_size, 100);
  char buf[8];
  ASSERT_EQ(pread(fd, buf, 8, 0), 8);
  EXPECT_EQ(std::memcmp(buf, "attacker", 8), 0);
  close(fd);
}

// ---- tokens --------------------------------------------------------------------------------------

TEST(SegmentToken, NamedTokenAttachesInAForkedChild) {
  std::string name = mpxt::unique_name("tok");
  ShmNameGuard guard{name};
  auto seg = mpxt::make_segment(4096, name.c_str());
  ASSERT_TRUE(seg);
  std::string tok = mpxt::token_of(mpx_segment_token, seg.get());
  ASSERT_FALSE(tok.empty());
  EXPECT_LT(tok.size(), static_cast<size_t>(MPX_TOKEN_MAX));
  for (char c : tok) EXPECT_TRUE(c > 0x20 && c < 0x7f) << "token '" << tok << "' is not printable";
  auto st = mpxt::run_in_child([&] {
    mpx_segment *s = nullptr;
    CHILD_MPX_OK(mpx_segment_attach_token(&s, tok.c_str()));
    void *a = nullptr;
    CHILD_MPX_OK(mpx_segment_address(s, &a));
    std::strcpy(static_cast<char *>(a), "via token");
    CHILD_MPX_OK(mpx_segment_destroy(s));
    return 0;
  });
  ASSERT_TRUE(st.ok()) << st.describe();
  EXPECT_STREQ(static_cast<char *>(seg_addr(seg.get())), "via token");
  EXPECT_MPX_OK(mpx_segment_unlink(seg.get()));
}

TEST(SegmentToken, AnonymousTokenAttachesInAForkedChildThatClosedItsHandle) {
  auto seg = mpxt::make_segment(8192);
  std::string tok = mpxt::token_of(mpx_segment_token, seg.get());
  ASSERT_FALSE(tok.empty());
  mpx_segment *raw = seg.get();
  auto st = mpxt::run_in_child([&] {
    CHILD_MPX_OK(mpx_segment_destroy(raw));  // the inherited handle is gone; only the token is left
    mpx_segment *s = nullptr;
    CHILD_MPX_OK(mpx_segment_attach_token(&s, tok.c_str()));
    size_t n = 0;
    CHILD_MPX_OK(mpx_segment_size(s, &n));
    CHILD_CHECK_EQ(n, 8192);
    void *a = nullptr;
    CHILD_MPX_OK(mpx_segment_address(s, &a));
    static_cast<int *>(a)[100] = 4242;
    CHILD_MPX_OK(mpx_segment_destroy(s));
    return 0;
  });
  ASSERT_TRUE(st.ok()) << st.describe();
  EXPECT_EQ(static_cast<int *>(seg_addr(seg.get()))[100], 4242);
}

MPXT_HELPER(segment_token_writer) {
  // args: token, offset (in ints), value
  if (args.size() != 3) return 2;
  mpx_segment *s = nullptr;
  CHILD_MPX_OK(mpx_segment_attach_token(&s, args[0].c_str()));
  void *a = nullptr;
  CHILD_MPX_OK(mpx_segment_address(s, &a));
  static_cast<int *>(a)[std::stoi(args[1])] = std::stoi(args[2]);
  CHILD_MPX_OK(mpx_segment_destroy(s));
  return 0;
}

TEST(SegmentToken, AnonymousTokenAttachesInAnExecedProcess) {
  auto seg = mpxt::make_segment(4096);
  std::string tok = mpxt::token_of(mpx_segment_token, seg.get());
  auto c = mpxt::Child::exec_helper("segment_token_writer", {tok, "7", "777"});
  auto st = c.wait(10000ms);
  ASSERT_TRUE(st.ok()) << st.describe();
  EXPECT_EQ(static_cast<int *>(seg_addr(seg.get()))[7], 777);
}

TEST(SegmentToken, NamedTokenAttachesInAnExecedProcess) {
  std::string name = mpxt::unique_name("exec");
  ShmNameGuard guard{name};
  auto seg = mpxt::make_segment(4096, name.c_str());
  std::string tok = mpxt::token_of(mpx_segment_token, seg.get());
  auto c = mpxt::Child::exec_helper("segment_token_writer", {tok, "3", "-5"});
  auto st = c.wait(10000ms);
  ASSERT_TRUE(st.ok()) << st.describe();
  EXPECT_EQ(static_cast<int *>(seg_addr(seg.get()))[3], -5);
  EXPECT_MPX_OK(mpx_segment_unlink(seg.get()));
}

TEST(SegmentToken, AnonymousTokenOfAnExitedCreatorIsAnError) {
  // The creator (a child) exits: nothing keeps its anonymous segment, so its token is dead.
  mpxt::SharedScratch tokbuf(MPX_TOKEN_MAX);
  auto st = mpxt::run_in_child([&] {
    mpx_segment *s = nullptr;
    CHILD_MPX_OK(mpx_segment_create(&s, 4096, nullptr));
    size_t len = MPX_TOKEN_MAX;
    CHILD_MPX_OK(mpx_segment_token(s, static_cast<char *>(tokbuf.data()), &len));
    return 0;
  });
  ASSERT_TRUE(st.ok()) << st.describe();
  std::string tok(static_cast<char *>(tokbuf.data()));
  mpx_segment *s = nullptr;
  int rc = mpx_segment_attach_token(&s, tok.c_str());
  EXPECT_NE(rc, MPX_OK) << "attached a segment whose only holder exited";
  EXPECT_EQ(s, nullptr);
  mpx_segment_destroy(s);
}

TEST(SegmentToken, MalformedTokensAreRejectedWithoutCrashing) {
  std::string long_token = "mpx1:n:" + std::string(10000, 'a') + ":0";
  const std::vector<std::string> bad = {
      "", "x", "mpx1", "mpx1:", "mpx1:n:", "mpx1:n::0", "mpx1:a:", "mpx1:a:1:2:3", "mpx1:a:0:3:4:0",
      "mpx1:a:-1:3:4:0", "mpx1:a:1:99999999999999999999:4:0", "mpx1:z:1:2", "mpx2:n:foo:0",
      "mpx1:n:foo:18446744073709551616", "mpx1:n:foo:-1", "mpx1:n:a/b:0", "mpx1:n:foo:0:extra",
      "mpx1:a:1:2:3:4:5", long_token, std::string("mpx1:n:fo\x01o:0"), "MPX1:n:foo:0",
  };
  for (const auto &t : bad) {
    mpx_segment *s = reinterpret_cast<mpx_segment *>(0x1);
    int rc = mpx_segment_attach_token(&s, t.c_str());
    EXPECT_TRUE(rc == MPX_EINVAL || rc == MPX_ENOENT || rc == MPX_ECORRUPT)
        << "token '" << t.substr(0, 60) << "': " << mpxt::code_str(rc);
    EXPECT_EQ(s, nullptr);
    if (rc == MPX_OK) mpx_segment_destroy(s);
  }
}

// ---- scenario 35: a segment smaller than its header claims -------------------------------------

namespace {

// Attach each object kind by a token naming `name` at offset 0.
std::vector<std::pair<const char *, int>> attach_all_kinds(const std::string &token) {
  std::vector<std::pair<const char *, int>> out;
  {
    mpx_lock *o = nullptr;
    out.emplace_back("mpx_lock_attach", mpx_lock_attach(&o, token.c_str()));
    mpx_lock_destroy(o);
  }
  {
    mpx_semaphore *o = nullptr;
    out.emplace_back("mpx_semaphore_attach", mpx_semaphore_attach(&o, token.c_str()));
    mpx_semaphore_destroy(o);
  }
  {
    mpx_event *o = nullptr;
    out.emplace_back("mpx_event_attach", mpx_event_attach(&o, token.c_str()));
    mpx_event_destroy(o);
  }
  {
    mpx_condition *o = nullptr;
    out.emplace_back("mpx_condition_attach", mpx_condition_attach(&o, token.c_str()));
    mpx_condition_destroy(o);
  }
  {
    mpx_barrier *o = nullptr;
    out.emplace_back("mpx_barrier_attach", mpx_barrier_attach(&o, token.c_str()));
    mpx_barrier_destroy(o);
  }
  {
    mpx_array *o = nullptr;
    out.emplace_back("mpx_array_attach", mpx_array_attach(&o, token.c_str()));
    mpx_array_destroy(o);
  }
  return out;
}

}  // namespace

TEST(SegmentCorrupt, ObjectInASegmentSmallerThanAHeaderIsEcorrupt) {
  for (size_t bytes : {size_t{1}, size_t{8}, size_t{15}}) {
    std::string name = mpxt::unique_name("tiny");
    ShmNameGuard guard{name};
    int fd = raw_shm(name, bytes, 0600);
    ASSERT_GE(fd, 0);
    close(fd);
    for (const auto &[fn, rc] : attach_all_kinds("mpx1:n:" + name + ":0"))
      EXPECT_MPX(MPX_ECORRUPT, rc) << fn << " on a " << bytes << "-byte segment";
  }
}

TEST(SegmentCorrupt, EmptySegmentIsEcorrupt) {
  std::string name = mpxt::unique_name("empty");
  ShmNameGuard guard{name};
  int fd = raw_shm(name, 0, 0600);
  ASSERT_GE(fd, 0);
  close(fd);
  for (const auto &[fn, rc] : attach_all_kinds("mpx1:n:" + name + ":0"))
    EXPECT_MPX(MPX_ECORRUPT, rc) << fn << " on an empty segment";
}

TEST(SegmentCorrupt, ObjectWhoseHeaderClaimsMoreThanTheSegmentHoldsIsEcorrupt) {
  // Copy a real lock (header and body) into a named segment cut short after the header.
  auto lock = mpxt::make_lock();
  std::string tok = mpxt::token_of(mpx_lock_token, lock.get());
  mpx_segment *home = nullptr;
  ASSERT_MPX_OK(mpx_segment_attach_token(&home, tok.c_str()));
  unsigned long long offset = std::stoull(tok.substr(tok.rfind(':') + 1));
  auto *obj = static_cast<unsigned char *>(seg_addr(home)) + offset;

  std::string name = mpxt::unique_name("short");
  ShmNameGuard guard{name};
  int fd = raw_shm(name, 24, 0600);  // a 16-byte header + 8 bytes
  ASSERT_GE(fd, 0);
  ASSERT_EQ(pwrite(fd, obj, 24, 0), 24);
  close(fd);
  mpx_lock *l = nullptr;
  EXPECT_MPX(MPX_ECORRUPT, mpx_lock_attach(&l, ("mpx1:n:" + name + ":0").c_str()));
  mpx_lock_destroy(l);

  // The same bytes in a segment that is large enough attach fine (the test itself is sound).
  std::string name2 = mpxt::unique_name("full");
  ShmNameGuard guard2{name2};
  int fd2 = raw_shm(name2, 4096, 0600);
  ASSERT_GE(fd2, 0);
  ASSERT_EQ(pwrite(fd2, obj, 1024, 0), 1024);
  close(fd2);
  EXPECT_MPX_OK(mpx_lock_attach(&l, ("mpx1:n:" + name2 + ":0").c_str()));
  mpx_lock_destroy(l);
  mpx_segment_destroy(home);
}

TEST(SegmentCorrupt, TokenOfTheWrongObjectTypeIsRejected) {
  auto ev = mpxt::make_event();
  std::string tok = mpxt::token_of(mpx_event_token, ev.get());
  mpx_lock *l = nullptr;
  int rc = mpx_lock_attach(&l, tok.c_str());
  EXPECT_TRUE(rc == MPX_EINVAL || rc == MPX_ECORRUPT) << mpxt::code_str(rc);
  EXPECT_EQ(l, nullptr);
  mpx_lock_destroy(l);
}

TEST(SegmentCorrupt, TokenWithAnOffsetPastTheEndOrMisalignedIsRejected) {
  auto ev = mpxt::make_event();
  std::string tok = mpxt::token_of(mpx_event_token, ev.get());
  std::string base = tok.substr(0, tok.rfind(':') + 1);
  for (const char *off : {"1", "3", "17", "1099511627776", "18446744073709551615", "18446744073709551600"}) {
    mpx_event *e = nullptr;
    int rc = mpx_event_attach(&e, (base + off).c_str());
    EXPECT_TRUE(rc == MPX_EINVAL || rc == MPX_ECORRUPT) << "offset " << off << ": " << mpxt::code_str(rc);
    mpx_event_destroy(e);
  }
}

TEST(SegmentCorrupt, AttachingAPlainDataSegmentAsAnObjectIsEcorrupt) {
  std::string name = mpxt::unique_name("data");
  ShmNameGuard guard{name};
  auto seg = mpxt::make_segment(4096, name.c_str());
  std::memset(seg_addr(seg.get()), 0x41, 4096);
  for (const auto &[fn, rc] : attach_all_kinds("mpx1:n:" + name + ":0"))
    EXPECT_MPX(MPX_ECORRUPT, rc) << fn << " on a segment full of 'A'";
  std::memset(seg_addr(seg.get()), 0, 4096);
  for (const auto &[fn, rc] : attach_all_kinds("mpx1:n:" + name + ":0"))
    EXPECT_MPX(MPX_ECORRUPT, rc) << fn << " on a zeroed segment";
  EXPECT_MPX_OK(mpx_segment_unlink(seg.get()));
}

// ---- scenario 33: reclamation after the creator is killed ---------------------------------------

TEST(SegmentReclaim, AnonymousSegmentOfAKilledCreatorLeavesNothing) {
  auto before = mpxt::shm_entries();
  mpxt::Rendezvous ready;
  mpxt::Child c = mpxt::Child::fork([&] {
    mpx_segment *s = nullptr;
    CHILD_MPX_OK(mpx_segment_create(&s, 1 << 20, nullptr));
    ready.notify();
    return mpxt::Rendezvous::hang();
  });
  auto st = mpxt::kill_at_rendezvous(c, ready);
  EXPECT_TRUE(st.killed_by(SIGKILL)) << st.describe();
  auto left = lasting_new_shm(before);
  EXPECT_TRUE(left.empty()) << "left in /dev/shm: " << *left.begin();
}

TEST(SegmentReclaim, NamedSegmentIsKeptWhileAttachedAndRemovedWithin5sOnceNoHandleRemains) {
  // gh-82300: the segment must not vanish under a process still attached; but once the
  // creator was killed and nobody holds it, its name is reclaimed.
  mpxt::SharedScratch namebuf(MPX_TOKEN_MAX);
  mpxt::Rendezvous ready;
  mpxt::Child creator = mpxt::Child::fork([&] {
    mpx_segment_options o;
    mpx_segment_options_init(&o, sizeof o);
    o.flags = MPX_SEGMENT_RANDOM_NAME;
    mpx_segment *s = nullptr;
    CHILD_MPX_OK(mpx_segment_create(&s, 4096, &o));
    size_t len = MPX_TOKEN_MAX;
    CHILD_MPX_OK(mpx_segment_name(s, static_cast<char *>(namebuf.data()), &len));
    void *a = nullptr;
    CHILD_MPX_OK(mpx_segment_address(s, &a));
    std::strcpy(static_cast<char *>(a), "alive");
    ready.notify();
    return mpxt::Rendezvous::hang();
  });
  ASSERT_TRUE(ready.wait());
  std::string name(static_cast<char *>(namebuf.data()));
  ShmNameGuard guard{name};
  mpx_segment *mine = nullptr;
  ASSERT_MPX_OK(mpx_segment_attach(&mine, name.c_str()));
  auto st = creator.kill_and_wait(SIGKILL);
  EXPECT_TRUE(st.killed_by(SIGKILL));

  mpxt::sleep_ms(1500);
  EXPECT_TRUE(shm_exists(name)) << "removed while another process is still attached (gh-82300)";
  EXPECT_STREQ(static_cast<char *>(seg_addr(mine)), "alive");
  ASSERT_MPX_OK(mpx_segment_destroy(mine));

  mpxt::Stopwatch sw;
  while (shm_exists(name) && sw.ms() < 5000) mpxt::sleep_ms(50);
  EXPECT_FALSE(shm_exists(name)) << "/dev/shm/" << name
                                 << " still exists 5 s after its creator was SIGKILLed and the last handle closed";
}

TEST(SegmentReclaim, NamedSegmentOfACreatorThatExitedNormallyIsRemoved) {
  std::string name = mpxt::unique_name("exited");
  ShmNameGuard guard{name};
  auto st = mpxt::run_in_child([&] {
    mpx_segment_options o;
    mpx_segment_options_init(&o, sizeof o);
    o.name = name.c_str();
    mpx_segment *s = nullptr;
    CHILD_MPX_OK(mpx_segment_create(&s, 4096, &o));
    return 0;  // exits without destroy or unlink
  });
  ASSERT_TRUE(st.ok()) << st.describe();
  mpxt::Stopwatch sw;
  while (shm_exists(name) && sw.ms() < 5000) mpxt::sleep_ms(50);
  EXPECT_FALSE(shm_exists(name)) << "tracked segment still named 5 s after its creator exited";
}

TEST(SegmentReclaim, NamedSegmentStaysWhileItsCreatorLives) {
  std::string name = mpxt::unique_name("alive");
  ShmNameGuard guard{name};
  {
    auto seg = mpxt::make_segment(4096, name.c_str());
    ASSERT_TRUE(seg);
  }
  mpxt::sleep_ms(1500);
  EXPECT_TRUE(shm_exists(name)) << "closing the creator's handle must not remove the name";
  EXPECT_MPX_OK(mpx_segment_unlink_name(name.c_str()));
}

TEST(SegmentReclaim, UntrackedSegmentOutlivesItsKilledCreator) {
  std::string name = mpxt::unique_name("untracked");
  ShmNameGuard guard{name};
  mpxt::Rendezvous ready;
  mpxt::Child creator = mpxt::Child::fork([&] {
    mpx_segment_options o;
    mpx_segment_options_init(&o, sizeof o);
    o.name = name.c_str();
    o.flags = MPX_SEGMENT_UNTRACKED;
    mpx_segment *s = nullptr;
    CHILD_MPX_OK(mpx_segment_create(&s, 4096, &o));
    void *a = nullptr;
    CHILD_MPX_OK(mpx_segment_address(s, &a));
    std::strcpy(static_cast<char *>(a), "kept");
    ready.notify();
    return mpxt::Rendezvous::hang();
  });
  auto st = mpxt::kill_at_rendezvous(creator, ready);
  ASSERT_TRUE(st.killed_by(SIGKILL)) << st.describe();
  mpxt::sleep_ms(2000);
  ASSERT_TRUE(shm_exists(name)) << "an untracked segment is removed only by unlink";
  mpx_segment *s = nullptr;
  ASSERT_MPX_OK(mpx_segment_attach(&s, name.c_str()));
  EXPECT_STREQ(static_cast<char *>(seg_addr(s)), "kept");
  EXPECT_MPX_OK(mpx_segment_unlink(s));
  EXPECT_MPX_OK(mpx_segment_destroy(s));
}

TEST(SegmentReclaim, UntrackedWithoutANameIsHarmless) {
  // The flag concerns names: on an anonymous segment it is accepted (or refused) cleanly.
  mpx_segment_options o;
  mpx_segment_options_init(&o, sizeof o);
  o.flags = MPX_SEGMENT_UNTRACKED;
  mpx_segment *s = nullptr;
  int rc = mpx_segment_create(&s, 4096, &o);
  EXPECT_TRUE(rc == MPX_OK || rc == MPX_EINVAL) << mpxt::code_str(rc);
  mpx_segment_destroy(s);
}

TEST(SegmentReclaim, ReclaimNeverRemovesANewerSegmentOfTheSameName) {
  // A creator unlinks its name, someone else creates the same name, then the first creator
  // dies: the newer segment is not the one it created and must stay.
  std::string name = mpxt::unique_name("reused");
  ShmNameGuard guard{name};
  mpxt::Rendezvous unlinked;
  mpxt::SharedScratch go(sizeof(std::atomic<int>));
  auto *go_flag = new (go.data()) std::atomic<int>(0);
  mpxt::Child first = mpxt::Child::fork([&] {
    mpx_segment_options o;
    mpx_segment_options_init(&o, sizeof o);
    o.name = name.c_str();
    mpx_segment *s = nullptr;
    CHILD_MPX_OK(mpx_segment_create(&s, 4096, &o));
    CHILD_MPX_OK(mpx_segment_unlink(s));
    unlinked.notify();
    while (go_flag->load() == 0) mpxt::sleep_ms(1);
    return 0;  // exits holding its (now nameless) segment
  });
  ASSERT_TRUE(unlinked.wait());
  mpx_segment_options o;
  mpx_segment_options_init(&o, sizeof o);
  o.name = name.c_str();
  o.flags = MPX_SEGMENT_UNTRACKED;
  mpx_segment *mine = nullptr;
  ASSERT_MPX_OK(mpx_segment_create(&mine, 4096, &o));
  go_flag->store(1);
  EXPECT_TRUE(first.wait().ok());
  mpxt::sleep_ms(2000);
  EXPECT_TRUE(shm_exists(name)) << "the tracker removed a segment its dead creator did not create";
  EXPECT_MPX_OK(mpx_segment_unlink(mine));
  EXPECT_MPX_OK(mpx_segment_destroy(mine));
}
