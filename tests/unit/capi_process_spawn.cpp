// The spawn start method: argv, environment, working directory, stdio redirections, the mpx
// identity of an exec'ed child, exec failures reported by start (SCENARIOS.md 1), and the
// descriptor table of an exec'ed child (SCENARIOS.md 6). The programs run are the helper
// programs in tests/unit/helpers (mpx_test_child_plain links nothing but libc).
#include <sys/prctl.h>
#include <sys/stat.h>

#include <atomic>
#include <cctype>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "support/process_helpers.hpp"

using namespace std::chrono_literals;
using mpxt::Argv;
using mpxt::Millis;
using mpxt::Proc;

namespace {

// Spawn with `o`, read the child's stdout pipe to EOF, join; returns the output (and its exit code).
std::string run_for_output(const mpx_process_options &o, int *exitcode = nullptr, int expected_exit = 0) {
  Proc p = mpxt::start_process(o);
  if (!p) return "<not started>";
  int fd = -1;
  EXPECT_MPX_OK(mpx_process_stdio(p.get(), 1, &fd));
  std::string out = fd >= 0 ? mpxt::read_all(fd) : std::string();
  int code = mpxt::join_exitcode(p.get());
  if (exitcode != nullptr) {
    *exitcode = code;
  } else {
    EXPECT_EQ(code, expected_exit) << "output: " << out;
  }
  return out;
}

std::string output_of(std::initializer_list<std::string> args, const char *program = mpxt::kChildPlain) {
  Argv argv(args);
  auto o = mpxt::spawn_options(program, argv);
  return run_for_output(o);
}

// A fresh directory under TMPDIR (removed with its files on destruction).
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::getenv("TMPDIR") ? std::getenv("TMPDIR") : "/tmp") + std::string("/mpxt-spawn-XXXXXX");
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    if (mkdtemp(buf.data()) == nullptr) ADD_FAILURE() << "mkdtemp: " << std::strerror(errno);
    path_ = buf.data();
  }
  ~TempDir() {
    for (const auto &f : files_) unlink(f.c_str());
    rmdir(path_.c_str());
  }
  const std::string &path() const { return path_; }
  std::string file(const std::string &name, const std::string *content = nullptr, mode_t mode = 0644) {
    std::string p = path_ + "/" + name;
    files_.push_back(p);
    if (content != nullptr) {
      int fd = open(p.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
      mpxt::write_all(fd, *content);
      close(fd);
      chmod(p.c_str(), mode);
    }
    return p;
  }

 private:
  std::string path_;
  std::vector<std::string> files_;
};

std::string slurp(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

std::string lower(std::string s) {
  for (auto &c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

}  // namespace

// ---- argv ---------------------------------------------------------------------------------------

TEST(ProcessSpawnArgv, EveryArgumentArrivesVerbatimWithTheGivenArgvZero) {
  Argv argv{"custom-zero", "argv", "a b", "", "\xc3\xbc-utf8", "--x=y z", "'quoted\""};
  auto out = run_for_output(mpxt::spawn_options(mpxt::kChildPlain, argv));
  EXPECT_EQ(out, "argc=7\nargv[0]=custom-zero\nargv[1]=argv\nargv[2]=a b\nargv[3]=\nargv[4]=\xc3\xbc-utf8\n"
                 "argv[5]=--x=y z\nargv[6]='quoted\"\n");
}

TEST(ProcessSpawnArgv, NullArgvIsTheFileAlone) {
  auto o = mpxt::process_options(MPX_START_SPAWN);
  o.file = mpxt::kChildPlain;
  o.stdio[1].mode = MPX_STDIO_PIPE;
  auto out = run_for_output(o);
  EXPECT_EQ(out, std::string("argc=1\nargv[0]=") + mpxt::kChildPlain + "\n");
}

TEST(ProcessSpawnArgv, AFileWithoutSlashIsSearchedInPath) {
  Argv sh{"sh", "-c", "exit 5"};
  auto o = mpxt::spawn_options("sh", sh, false);
  auto p = mpxt::start_process(o);
  ASSERT_TRUE(p);
  EXPECT_EQ(mpxt::join_exitcode(p.get()), 5);
  auto t = mpxt::process_options(MPX_START_SPAWN);
  t.file = "true";
  auto q = mpxt::start_process(t);
  ASSERT_TRUE(q);
  EXPECT_EQ(mpxt::join_exitcode(q.get()), 0);
}

// ---- environment --------------------------------------------------------------------------------

namespace {
// Sets an environment variable for one test.
class ScopedEnv {
 public:
  ScopedEnv(const char *name, const char *value) : name_(name) { setenv(name, value, 1); }
  ~ScopedEnv() { unsetenv(name_); }
  ScopedEnv(const ScopedEnv &) = delete;
  ScopedEnv &operator=(const ScopedEnv &) = delete;

 private:
  const char *name_;
};

std::vector<std::string> child_env(uint32_t mode, const std::vector<std::string> &env, bool with_env = true) {
  Argv argv{"x", "env"};
  std::vector<const char *> e;
  for (auto &s : env) e.push_back(s.c_str());
  e.push_back(nullptr);
  auto o = mpxt::spawn_options(mpxt::kChildPlain, argv);
  o.env_mode = mode;
  o.env = with_env ? e.data() : nullptr;
  return mpxt::values_of(run_for_output(o), "env");
}

// process.h names MPX_PARENT_PID, MPX_PROCESS_NAME, MPX_DAEMON and MPX_AUTHKEY; the library
// may carry more of the identity the same way (MPX_HANDED_FDS, ...).
bool is_identity_var(const std::string &entry) { return entry.rfind("MPX_", 0) == 0; }

std::string value_in(const std::vector<std::string> &env, const std::string &name, int *count = nullptr) {
  std::string v;
  int n = 0;
  for (const auto &e : env)
    if (e.rfind(name + "=", 0) == 0) {
      v = e.substr(name.size() + 1);
      ++n;
    }
  if (count != nullptr) *count = n;
  return n ? v : "<unset>";
}
}  // namespace

TEST(ProcessSpawnEnv, InheritGivesTheParentsEnvironment) {
  ScopedEnv e("MPXT_INHERITED", "yes 1");
  auto env = child_env(MPX_ENV_INHERIT, {"IGNORED=1"});
  EXPECT_EQ(value_in(env, "MPXT_INHERITED"), "yes 1");
  EXPECT_EQ(value_in(env, "IGNORED"), "<unset>") << "env is ignored with MPX_ENV_INHERIT";
  if (std::getenv("PATH") != nullptr) {
    EXPECT_EQ(value_in(env, "PATH"), std::getenv("PATH"));
  }
  for (char **p = environ; *p != nullptr; ++p) {
    std::string entry = *p;
    if (is_identity_var(entry)) continue;
    EXPECT_NE(std::find(env.begin(), env.end(), entry), env.end()) << "missing in the child: " << entry;
  }
}

TEST(ProcessSpawnEnv, ReplaceGivesExactlyTheListPlusTheIdentity) {
  ScopedEnv e("MPXT_INHERITED", "yes");
  auto env = child_env(MPX_ENV_REPLACE, {"A=1", "B=two words", "EMPTY="});
  std::set<std::string> got;
  for (const auto &entry : env)
    if (!is_identity_var(entry)) got.insert(entry);
  EXPECT_EQ(got, (std::set<std::string>{"A=1", "B=two words", "EMPTY="}));
  EXPECT_EQ(value_in(env, "MPXT_INHERITED"), "<unset>");
  EXPECT_EQ(value_in(env, "PATH"), "<unset>");
  EXPECT_EQ(value_in(env, "MPX_PARENT_PID"), std::to_string(getpid())) << "the identity is always there";
}

TEST(ProcessSpawnEnv, ReplaceWithAnEmptyListGivesOnlyTheIdentity) {
  auto env = child_env(MPX_ENV_REPLACE, {});
  for (const auto &entry : env) EXPECT_TRUE(is_identity_var(entry)) << entry;
  auto env2 = child_env(MPX_ENV_REPLACE, {}, false);
  for (const auto &entry : env2) EXPECT_TRUE(is_identity_var(entry)) << "env NULL: " << entry;
}

TEST(ProcessSpawnEnv, ExtendAddsAndReplacesEntries) {
  ScopedEnv e("MPXT_INHERITED", "old");
  ScopedEnv keep("MPXT_KEPT", "kept");
  auto env = child_env(MPX_ENV_EXTEND, {"MPXT_INHERITED=replaced", "MPXT_NEW=1"});
  int n = 0;
  EXPECT_EQ(value_in(env, "MPXT_INHERITED", &n), "replaced");
  EXPECT_EQ(n, 1) << "replaced, not added a second time";
  EXPECT_EQ(value_in(env, "MPXT_NEW"), "1");
  EXPECT_EQ(value_in(env, "MPXT_KEPT"), "kept");
  if (std::getenv("PATH") != nullptr) {
    EXPECT_EQ(value_in(env, "PATH"), std::getenv("PATH"));
  }
}

TEST(ProcessSpawnEnv, IdentityVariablesDescribeTheChild) {
  Argv argv{"x", "env"};
  auto o = mpxt::spawn_options(mpxt::kChildPlain, argv);
  o.name = "env-child";
  o.daemon = 1;
  auto env = mpxt::values_of(run_for_output(o), "env");
  int n = 0;
  EXPECT_EQ(value_in(env, "MPX_PARENT_PID", &n), std::to_string(getpid()));
  EXPECT_EQ(n, 1);
  EXPECT_EQ(value_in(env, "MPX_PROCESS_NAME"), "env-child");
  EXPECT_EQ(value_in(env, "MPX_DAEMON"), "1");
  EXPECT_EQ(lower(value_in(env, "MPX_AUTHKEY")), mpxt::hex(mpxt::authkey()));
}

TEST(ProcessSpawnEnv, AnMpxAwareChildReadsItsIdentityEvenWithAReplacedEnvironment) {
  Argv argv{"x", "identity"};
  const char *env[] = {"ONLY=this", nullptr};
  auto o = mpxt::spawn_options(mpxt::kChild, argv);
  o.env_mode = MPX_ENV_REPLACE;
  o.env = env;
  o.name = "aware";
  auto kv = mpxt::parse_kv(run_for_output(o));
  EXPECT_EQ(kv["name"], "aware");
  EXPECT_EQ(kv["parent"], std::to_string(getpid()));
  EXPECT_EQ(kv["daemon"], "0");
  EXPECT_EQ(kv["authkey"], mpxt::hex(mpxt::authkey()));
}

TEST(ProcessSpawnEnv, AProgramTheChildRunsInTurnDoesNotTakeItsIdentity) {
  // process.h: "A process whose parent is not MPX_PARENT_PID (a program the child runs in
  // turn) ignores all but the authkey." The shell forks the helper (it is not its last command).
  Argv argv{"sh", "-c", "\"$0\" identity; exit 0", mpxt::kChild};
  auto o = mpxt::spawn_options("/bin/sh", argv);
  o.name = "the-shell";
  auto kv = mpxt::parse_kv(run_for_output(o));
  EXPECT_EQ(kv["name"], "MainProcess");
  EXPECT_EQ(kv["parent"], "0");
  EXPECT_EQ(kv["daemon"], "0");
  EXPECT_EQ(kv["authkey"], mpxt::hex(mpxt::authkey())) << "the authkey is inherited all the way down";
}

TEST(ProcessSpawnEnv, AChildWhoseParentHasExitedStillKnowsItsIdentity) {
  // A non-daemon child outlives its parent; asking its name afterwards must not depend on
  // the parent still being alive (Python passes the identity to the child, whatever happens).
  mpxt::Shared<std::atomic<int64_t>> middle_pid(0);
  mpxt::Pipe pipe;
  auto st = mpxt::run_in_child([&] {
    CHILD_CHECK(prctl(PR_SET_CHILD_SUBREAPER, 1) == 0);
    pid_t m = fork();
    if (m == 0) {
      Argv args{"x", "sleep=300", "identity"};
      auto o = mpxt::spawn_options(mpxt::kChild, args, false);
      o.stdio[1].mode = MPX_STDIO_FD;
      o.stdio[1].fd = pipe.write_end();
      o.name = "orphaned";
      mpx_process *p = nullptr;
      if (mpx_process_create(&p, &o) != MPX_OK || mpx_process_start(p) != MPX_OK) _exit(1);
      _exit(0);  // the parent is gone before the child asks who it is
    }
    middle_pid->store(m);
    int ws = 0;
    CHILD_CHECK(waitpid(m, &ws, 0) == m);
    CHILD_CHECK(WIFEXITED(ws) && WEXITSTATUS(ws) == 0);
    while (waitpid(-1, &ws, 0) > 0) {  // the orphaned helper, now ours
    }
    return 0;
  });
  pipe.close_write();
  auto kv = mpxt::parse_kv(mpxt::read_all(pipe.read_end()));
  EXPECT_TRUE(st.ok()) << st.describe();
  EXPECT_EQ(kv["name"], "orphaned");
  EXPECT_EQ(kv["parent"], std::to_string(middle_pid->load())) << "the process that started it, dead or alive";
}

TEST(ProcessSpawnEnv, ASpawnedChildAttachesAnObjectByToken) {
  auto ev = mpxt::make_event();
  std::string tok = mpxt::token_of(mpx_event_token, ev.get());
  ASSERT_FALSE(tok.empty());
  auto out = output_of({"x", "event=" + tok}, mpxt::kChild);
  EXPECT_EQ(out, "event=set\n");
  EXPECT_MPX_OK(mpx_event_wait(ev.get(), 0)) << "the exec'ed child set our event";
}

// ---- working directory --------------------------------------------------------------------------

TEST(ProcessSpawnCwd, ChildStartsInTheGivenDirectory) {
  TempDir dir;
  char real[PATH_MAX];
  ASSERT_NE(realpath(dir.path().c_str(), real), nullptr);
  Argv argv{"x", "cwd"};
  auto o = mpxt::spawn_options(mpxt::kChildPlain, argv);
  o.cwd = dir.path().c_str();
  EXPECT_EQ(run_for_output(o), std::string("cwd=") + real + "\n");
  char here[PATH_MAX];
  ASSERT_NE(getcwd(here, sizeof here), nullptr);
  o.cwd = nullptr;
  EXPECT_EQ(run_for_output(o), std::string("cwd=") + here + "\n") << "NULL: the parent's";
}

// ---- stdio --------------------------------------------------------------------------------------

TEST(ProcessSpawnStdio, StdoutAndStderrPipes) {
  Argv argv{"x", "echo=to stdout", "err=to stderr", "echo=again"};
  auto o = mpxt::spawn_options(mpxt::kChildPlain, argv);
  o.stdio[2].mode = MPX_STDIO_PIPE;
  auto p = mpxt::start_process(o);
  ASSERT_TRUE(p);
  int out = -1, err = -1;
  ASSERT_MPX_OK(mpx_process_stdio(p.get(), 1, &out));
  ASSERT_MPX_OK(mpx_process_stdio(p.get(), 2, &err));
  EXPECT_NE(out, err);
  EXPECT_TRUE(fcntl(out, F_GETFD) & FD_CLOEXEC) << "the parent's end must not leak into other children";
  EXPECT_TRUE(fcntl(err, F_GETFD) & FD_CLOEXEC);
  EXPECT_EQ(mpxt::read_all(out), "to stdout\nagain\n");
  EXPECT_EQ(mpxt::read_all(err), "to stderr\n");
  EXPECT_EQ(mpxt::join_exitcode(p.get()), 0);
}

TEST(ProcessSpawnStdio, StdinPipeAndEofOnCloseStdio) {
  Argv argv{"x", "cat", "echo=after eof"};
  auto o = mpxt::spawn_options(mpxt::kChildPlain, argv);
  o.stdio[0].mode = MPX_STDIO_PIPE;
  auto p = mpxt::start_process(o);
  ASSERT_TRUE(p);
  int in = -1, out = -1;
  ASSERT_MPX_OK(mpx_process_stdio(p.get(), 0, &in));
  ASSERT_MPX_OK(mpx_process_stdio(p.get(), 1, &out));
  EXPECT_TRUE(fcntl(in, F_GETFD) & FD_CLOEXEC);
  mpxt::write_all(in, "hello\nworld\n");
  EXPECT_MPX(MPX_ETIMEDOUT, mpx_process_join(p.get(), 100)) << "cat waits for EOF";
  ASSERT_MPX_OK(mpx_process_close_stdio(p.get(), 0));
  EXPECT_EQ(mpxt::read_all(out), "hello\nworld\nafter eof\n");
  EXPECT_EQ(mpxt::join_exitcode(p.get()), 0);
  int fd = -1;
  EXPECT_NE(mpx_process_stdio(p.get(), 0, &fd), MPX_OK) << "closed: no descriptor any more";
}

TEST(ProcessSpawnStdio, OneMebibyteThroughAPipe) {
  const long n = 1 << 20;
  auto out = output_of({"x", "spew=" + std::to_string(n)});
  ASSERT_EQ(out.size(), static_cast<size_t>(n));
  for (long i = 0; i < n; ++i)
    if (out[static_cast<size_t>(i)] != static_cast<char>('a' + i % 23)) {
      ADD_FAILURE() << "byte " << i << " differs";
      break;
    }
}

TEST(ProcessSpawnStdio, StdoutAndStderrToFilesAreCreatedOrTruncated) {
  TempDir dir;
  const std::string longer(1000, 'z');
  const std::string existing = dir.file("existing", &longer);
  const std::string fresh = dir.file("fresh");
  const std::string errors = dir.file("errors", &longer);
  for (const std::string &path : {existing, fresh}) {
    Argv argv{"x", "echo=short", "err=to stderr"};
    auto o = mpxt::spawn_options(mpxt::kChildPlain, argv, false);
    o.stdio[1].mode = MPX_STDIO_FILE;
    o.stdio[1].path = path.c_str();
    o.stdio[2].mode = MPX_STDIO_FILE;
    o.stdio[2].path = errors.c_str();
    auto p = mpxt::start_process(o);
    ASSERT_TRUE(p);
    EXPECT_EQ(mpxt::join_exitcode(p.get()), 0);
    EXPECT_EQ(slurp(path), "short\n") << path;
    EXPECT_EQ(slurp(errors), "to stderr\n");
  }
  struct stat st;
  ASSERT_EQ(stat(fresh.c_str(), &st), 0);
  const mode_t mask = umask(0);
  umask(mask);
  EXPECT_EQ(st.st_mode & 0777, 0644 & ~mask) << "created 0644 (less the umask)";
}

TEST(ProcessSpawnStdio, StdinFromAFile) {
  TempDir dir;
  const std::string content = "line one\nline two\n";
  const std::string path = dir.file("input", &content);
  Argv argv{"x", "cat"};
  auto o = mpxt::spawn_options(mpxt::kChildPlain, argv);
  o.stdio[0].mode = MPX_STDIO_FILE;
  o.stdio[0].path = path.c_str();
  EXPECT_EQ(run_for_output(o), content);
}

TEST(ProcessSpawnStdio, NullIsDevNull) {
  Argv argv{"x", "cat", "fdtargets", "err=nobody sees this"};
  auto o = mpxt::spawn_options(mpxt::kChildPlain, argv);
  o.stdio[0].mode = MPX_STDIO_NULL;
  o.stdio[2].mode = MPX_STDIO_NULL;
  auto kv = mpxt::parse_kv(run_for_output(o));
  EXPECT_EQ(kv["fd0"], "/dev/null");
  EXPECT_EQ(kv["fd2"], "/dev/null");
  EXPECT_EQ(kv["fd1"].rfind("pipe:", 0), 0u) << kv["fd1"];
}

TEST(ProcessSpawnStdio, FdIsADuplicateOfTheParentsDescriptor) {
  mpxt::Pipe pipe;  // CLOEXEC in the parent: the library duplicates it into place anyway
  Argv argv{"x", "echo=via fd", "err=err via fd"};
  auto o = mpxt::spawn_options(mpxt::kChildPlain, argv, false);
  o.stdio[1].mode = MPX_STDIO_FD;
  o.stdio[1].fd = pipe.write_end();
  o.stdio[2].mode = MPX_STDIO_FD;
  o.stdio[2].fd = pipe.write_end();
  auto p = mpxt::start_process(o);
  ASSERT_TRUE(p);
  EXPECT_GE(fcntl(pipe.write_end(), F_GETFD), 0) << "the parent's descriptor stays open and ours";
  pipe.close_write();
  EXPECT_EQ(mpxt::read_all(pipe.read_end()), "via fd\nerr via fd\n");
  EXPECT_EQ(mpxt::join_exitcode(p.get()), 0);
  int fd = -1;
  EXPECT_NE(mpx_process_stdio(p.get(), 1, &fd), MPX_OK) << "not a pipe the library made";
}

TEST(ProcessSpawnStdio, InheritIsTheParentsOwnStream) {
  mpxt::Pipe pipe;
  std::fflush(nullptr);
  const int saved = dup(1);
  ASSERT_GE(saved, 0);
  ASSERT_EQ(dup2(pipe.write_end(), 1), 1);
  Proc p;
  {
    Argv argv{"x", "echo=inherited"};
    auto o = mpxt::spawn_options(mpxt::kChildPlain, argv, false);
    p = mpxt::start_process(o);
  }
  dup2(saved, 1);
  close(saved);
  pipe.close_write();
  ASSERT_TRUE(p);
  EXPECT_EQ(mpxt::read_all(pipe.read_end()), "inherited\n");
  EXPECT_EQ(mpxt::join_exitcode(p.get()), 0);
}

TEST(ProcessSpawnStdio, StdioOfAStreamThatIsNoPipeIsAnError) {
  Argv argv{"x", "block"};
  auto o = mpxt::spawn_options(mpxt::kChildPlain, argv);
  auto p = mpxt::start_process(o);
  ASSERT_TRUE(p);
  int fd = 12345;
  EXPECT_MPX_EITHER(MPX_EINVAL, MPX_ENOENT, mpx_process_stdio(p.get(), 0, &fd)) << "stdin inherited";
  for (int bad : {-1, 3, 100}) {
    EXPECT_MPX(MPX_EINVAL, mpx_process_stdio(p.get(), bad, &fd)) << "stream " << bad;
    EXPECT_MPX(MPX_EINVAL, mpx_process_close_stdio(p.get(), bad)) << "stream " << bad;
  }
  EXPECT_MPX_OK(mpx_process_kill(p.get()));
  EXPECT_EQ(mpxt::join_exitcode(p.get()), -SIGKILL);
}

// ---- exec failures (scenario 1) ------------------------------------------------------------------

namespace {
// In a fresh child (which has no other children, so ECHILD is meaningful): start must fail with
// `expected` at once; afterwards no child exists and the fd count is unchanged.
void expect_start_fails(const char *what, int expected, const std::function<void(mpx_process_options &)> &set) {
  SCOPED_TRACE(what);
  mpxt::Shared<std::atomic<int>> rc(INT_MIN);
  mpxt::Shared<std::atomic<int>> fds_before(-1), fds_after(-1), waited(0), wait_errno(0);
  mpxt::Shared<std::atomic<int64_t>> ms(-1);
  mpxt::Shared<std::atomic<int>> message_empty(-1);
  auto st = mpxt::run_in_child([&] {
    Argv argv{"x"};
    auto o = mpxt::spawn_options(mpxt::kChildPlain, argv, false);
    set(o);
    fds_before->store(mpxt::count_fds());
    mpx_process *p = nullptr;
    CHILD_MPX_OK(mpx_process_create(&p, &o));
    mpxt::Stopwatch sw;
    rc->store(mpx_process_start(p));
    ms->store(sw.ms());
    message_empty->store(mpx_last_error_message()[0] == '\0');
    int64_t pid = -1;
    CHILD_MPX_OK(mpx_process_pid(p, &pid));
    int code = 0;
    const int ec = mpx_process_exitcode(p, &code);
    mpx_process_destroy(p);
    errno = 0;
    waited->store(static_cast<int>(waitpid(-1, nullptr, WNOHANG)));
    wait_errno->store(errno);
    fds_after->store(mpxt::count_fds());
    if (rc->load() != MPX_OK) {
      CHILD_CHECK_EQ(pid, 0);  // no child: no pid
      CHILD_CHECK_EQ(ec, MPX_EAGAIN);
    }
    return 0;
  });
  EXPECT_TRUE(st.ok()) << st.describe();
  EXPECT_MPX(expected, rc->load());
  EXPECT_LT(ms->load(), 1000) << "reported synchronously";
  EXPECT_EQ(message_empty->load(), 0) << "the last error message explains the failure";
  EXPECT_EQ(waited->load(), -1) << "waitpid(-1, WNOHANG) found a child: a zombie or a stray process";
  EXPECT_EQ(wait_errno->load(), ECHILD);
  EXPECT_EQ(fds_after->load(), fds_before->load()) << "fd count changed";
}
}  // namespace

TEST(ProcessSpawnFailure, NonexistentProgramIsEnoent) {
  expect_start_fails("absolute path", MPX_ENOENT, [](auto &o) { o.file = "/nonexistent/mpxt/no-such-program"; });
  expect_start_fails("PATH search", MPX_ENOENT, [](auto &o) { o.file = "mpxt-no-such-program-in-path"; });
  static std::string script;
  TempDir dir;
  const std::string bad_interp = "#!/nonexistent/interpreter\n";
  script = dir.file("bad-interpreter", &bad_interp, 0755);
  expect_start_fails("missing #! interpreter", MPX_ENOENT, [](auto &o) { o.file = script.c_str(); });
}

TEST(ProcessSpawnFailure, NotExecutableIsEacces) {
  TempDir dir;
  static std::string plain;
  const std::string content = "#!/bin/sh\nexit 0\n";
  plain = dir.file("not-executable", &content, 0644);
  expect_start_fails("mode 0644", MPX_EACCES, [](auto &o) { o.file = plain.c_str(); });
  static std::string d;
  d = dir.path();
  expect_start_fails("a directory", MPX_EACCES, [](auto &o) { o.file = d.c_str(); });
}

TEST(ProcessSpawnFailure, MissingCwdOrStdinFileIsEnoent) {
  expect_start_fails("cwd", MPX_ENOENT, [](auto &o) { o.cwd = "/nonexistent/mpxt/dir"; });
  expect_start_fails("stdin file", MPX_ENOENT, [](auto &o) {
    o.stdio[0].mode = MPX_STDIO_FILE;
    o.stdio[0].path = "/nonexistent/mpxt/input";
  });
}

TEST(ProcessSpawnFailure, FailedStartInThisProcessLeavesNoZombieOrFd) {
  const int fds = mpxt::count_fds();
  const int kids = mpxt::count_children();
  for (int i = 0; i < 50; ++i) {
    auto o = mpxt::process_options(MPX_START_SPAWN);
    o.file = "/nonexistent/mpxt/no-such-program";
    o.stdio[0].mode = MPX_STDIO_PIPE;
    o.stdio[1].mode = MPX_STDIO_PIPE;
    auto p = mpxt::create_process(o);
    ASSERT_TRUE(p);
    ASSERT_MPX(MPX_ENOENT, mpx_process_start(p.get()));
  }
  EXPECT_EQ(mpxt::count_fds(), fds);
  EXPECT_EQ(mpxt::count_children(), kids);
  EXPECT_FALSE(mpxt::has_waitable_child()) << "a zombie is left";
}

// ---- the descriptor table of an exec'ed child (scenario 6) ----------------------------------------

namespace {
// A descriptor >= 256 and a low one, both without CLOEXEC, for one test.
class LeakyFds {
 public:
  LeakyFds() {
    int devnull = open("/dev/null", O_RDONLY);  // no O_CLOEXEC on purpose
    high_ = fcntl(devnull, F_DUPFD, 300);        // F_DUPFD does not set CLOEXEC
    low_ = devnull;
    EXPECT_GE(high_, 300);
    EXPECT_EQ(fcntl(high_, F_GETFD) & FD_CLOEXEC, 0);
    EXPECT_EQ(fcntl(low_, F_GETFD) & FD_CLOEXEC, 0);
  }
  ~LeakyFds() {
    close(high_);
    close(low_);
  }
  int high() const { return high_; }
  int low() const { return low_; }
  LeakyFds(const LeakyFds &) = delete;
  LeakyFds &operator=(const LeakyFds &) = delete;

 private:
  int high_ = -1, low_ = -1;
};
}  // namespace

TEST(ProcessSpawnFds, OnlyStdioAndHandedFdsEvenWithHighFdsAndManySiblings) {
  LeakyFds leaky;
  std::vector<Proc> siblings;
  for (int i = 0; i < 12; ++i) siblings.push_back(mpxt::start_fork(mpxt::behave_fn, mpxt::behave_arg(mpxt::kBlock)));
  for (int i = 0; i < 4; ++i) {
    uint8_t b = mpxt::kBlock;
    siblings.push_back(mpxt::start_entry(MPX_START_FORKSERVER, "mpxt.behave", &b, 1));
  }
  for (int i = 0; i < 4; ++i) {
    Argv argv{"x", "block"};
    auto o = mpxt::spawn_options(mpxt::kChildPlain, argv);  // each has a stdout pipe in the parent
    siblings.push_back(mpxt::start_process(o));
  }
  for (auto &s : siblings) ASSERT_TRUE(s);

  EXPECT_EQ(output_of({"x", "fds"}), "fds=0,1,2\n") << "nothing handed";

  mpxt::Pipe a(false), b(true);  // one without CLOEXEC, one with
  int handed[] = {a.write_end(), b.read_end()};
  Argv argv{"x", "fds", "fdtargets"};
  auto o = mpxt::spawn_options(mpxt::kChildPlain, argv);
  o.fds = handed;
  o.fd_count = 2;
  auto out = run_for_output(o);
  auto kv = mpxt::parse_kv(out);
  EXPECT_EQ(kv["fds"], "0,1,2,3,4") << out;
  EXPECT_EQ(kv["fd3"], mpxt::fd_target(a.write_end())) << "fd 3 is the first handed fd";
  EXPECT_EQ(kv["fd4"], mpxt::fd_target(b.read_end())) << "fd 4 is the second";

  for (auto &s : siblings) mpx_process_kill(s.get());
  for (auto &s : siblings) EXPECT_EQ(mpxt::join_exitcode(s.get()), -SIGKILL);
}

TEST(ProcessSpawnFds, NoFdLeaksWhileAnotherThreadOpensFdsWithoutCloexec) {
  std::atomic<bool> stop{false};
  std::thread opener([&] {
    while (!stop.load()) {
      int p[2];
      if (pipe(p) == 0) {  // no O_CLOEXEC: the race every spawn must survive
        close(p[0]);
        close(p[1]);
      }
    }
  });
  int bad = 0;
  std::string first_bad;
  for (int i = 0; i < 20; ++i) {
    auto out = output_of({"x", "fds"});
    if (out != "fds=0,1,2\n") {
      ++bad;
      if (first_bad.empty()) first_bad = out;
    }
  }
  stop = true;
  opener.join();
  EXPECT_EQ(bad, 0) << "spawned children inherited fds, e.g. " << first_bad;
}

TEST(ProcessSpawnFds, AnMpxAwareChildListsItsHandedFds) {
  mpxt::Pipe a, b;
  int handed[] = {a.write_end(), b.write_end()};
  Argv argv{"x", "handed"};
  auto o = mpxt::spawn_options(mpxt::kChild, argv);
  o.fds = handed;
  o.fd_count = 2;
  EXPECT_EQ(run_for_output(o), "handed=3,4\n");
}

TEST(ProcessForkserverFds, HandedFdsArriveAndTheParentsOtherFdsDoNot) {
  LeakyFds leaky;
  mpxt::Pipe a, b;
  std::vector<int> fds = {a.write_end(), b.write_end()};
  auto p = mpxt::start_entry(MPX_START_FORKSERVER, "mpxt.echo", "x", 1, fds);
  ASSERT_TRUE(p);
  a.close_write();
  b.close_write();
  EXPECT_EQ(mpxt::read_all(a.read_end()), "x");
  auto kv = mpxt::parse_kv(mpxt::read_all(b.read_end()));
  EXPECT_EQ(kv["handed"], "2");
  EXPECT_EQ(mpxt::join_exitcode(p.get()), 0);
  const std::string list = "," + kv["fds"] + ",", high = std::to_string(leaky.high());
  EXPECT_EQ(list.find("," + high + ","), std::string::npos)
      << "the parent's fd " << high << " (no CLOEXEC) reached a forkserver child: " << kv["fds"];
}
