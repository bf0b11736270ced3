// Processes over the C API: the three start methods (fork, forkserver, spawn), the life cycle
// (start, join, is_alive, exitcode, signals, close, destroy), exit codes (SCENARIOS.md 2),
// names, the authkey, adoption of children forked by hand, and the forkserver itself.
// Spawn details are in capi_process_spawn.cpp, the scenarios with many processes in
// capi_process_stress.cpp, mpx::Process in capi_process_cpp.cpp.
#include <sys/prctl.h>

#include <array>
#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "support/process_helpers.hpp"

using namespace std::chrono_literals;
using mpxt::Millis;
using mpxt::Proc;

namespace {

// Methods a test runs with.
struct Method {
  uint32_t method;
  const char *name;
};
constexpr Method kFork{MPX_START_FORK, "fork"};
constexpr Method kForkserver{MPX_START_FORKSERVER, "forkserver"};
constexpr Method kSpawn{MPX_START_SPAWN, "spawn"};
constexpr Method kAllMethods[] = {kFork, kForkserver, kSpawn};

// A started child of the given method that does `b`.
Proc start_behaving(Method m, mpxt::Behave b, bool daemon = false) {
  if (m.method == MPX_START_FORK) return mpxt::start_fork(mpxt::behave_fn, mpxt::behave_arg(b), daemon);
  if (m.method == MPX_START_FORKSERVER) {
    uint8_t byte = b;
    return mpxt::start_entry(MPX_START_FORKSERVER, "mpxt.behave", &byte, 1, {}, daemon);
  }
  const char *cmd = b == mpxt::kReturn ? "echo=returned"
                    : b == mpxt::kExit7 ? "exit=7"
                    : b == mpxt::kBlock ? "block"
                    : b == mpxt::kSegv ? "segv"
                                       : "sleep=300";
  mpxt::Argv argv{mpxt::kChildPlain, cmd};
  auto o = mpxt::spawn_options(mpxt::kChildPlain, argv, false);
  o.stdio[1].mode = MPX_STDIO_NULL;
  o.daemon = daemon ? 1 : 0;
  return mpxt::start_process(o);
}

// Shared scratch the fork targets report into (fork children see the parent's memory).
struct Report {
  std::atomic<int> value;
  std::atomic<int> rc;
  std::atomic<int64_t> number;
  char text[512];
};

Report *g_report = nullptr;  // set by each test that uses it, before start

void record_arg_fn(void *arg) { g_report->value.store(*static_cast<int *>(arg)); }

void record_entry(const void *payload, size_t size) {
  g_report->number.store(static_cast<int64_t>(size));
  std::memcpy(g_report->text, payload, std::min(size, sizeof g_report->text));
}

void identity_fn(void *arg) { mpxt::child_write(static_cast<int>(reinterpret_cast<intptr_t>(arg)), mpxt::identity_text()); }

// Identity lines written to a pipe by a child of method m (fork: the pipe as inherited; the
// others: the pipe handed as fd 3).
std::map<std::string, std::string> identity_of_child(Method m, const char *name = nullptr, bool daemon = false) {
  mpxt::Pipe pipe;
  Proc p;
  if (m.method == MPX_START_FORK) {
    auto o = mpxt::process_options(MPX_START_FORK);
    o.fn = identity_fn;
    o.arg = reinterpret_cast<void *>(static_cast<intptr_t>(pipe.write_end()));
    o.name = name;
    o.daemon = daemon;
    p = mpxt::start_process(o);
  } else if (m.method == MPX_START_FORKSERVER) {
    int fd = pipe.write_end();
    auto o = mpxt::process_options(MPX_START_FORKSERVER);
    o.entry = "mpxt.identity";
    o.fds = &fd;
    o.fd_count = 1;
    o.name = name;
    o.daemon = daemon;
    p = mpxt::start_process(o);
  } else {
    int fd = pipe.write_end();
    mpxt::Argv argv{mpxt::kChild, "identity"};
    auto o = mpxt::spawn_options(mpxt::kChild, argv, false);
    o.stdio[1].mode = MPX_STDIO_FD;
    o.stdio[1].fd = fd;
    o.name = name;
    o.daemon = daemon;
    p = mpxt::start_process(o);
  }
  pipe.close_write();
  if (!p) return {};
  std::string out = mpxt::read_all(pipe.read_end());
  EXPECT_EQ(mpxt::join_exitcode(p.get()), 0) << m.name << " identity child; output: " << out;
  return mpxt::parse_kv(out);
}

}  // namespace

// ---- start methods ---------------------------------------------------------------------------

TEST(ProcessFork, RunsTheFunctionWithItsArgumentAndExitsZero) {
  mpxt::Shared<Report> report;
  g_report = report.get();
  int arg = 4242;
  auto p = mpxt::start_fork(record_arg_fn, &arg);
  ASSERT_TRUE(p);
  EXPECT_GT(mpxt::pid_of(p.get()), 0);
  EXPECT_NE(mpxt::pid_of(p.get()), getpid());
  EXPECT_EQ(mpxt::join_exitcode(p.get()), 0);
  EXPECT_EQ(report->value.load(), 4242) << "fn(arg) did not run with the parent's argument";
}

TEST(ProcessFork, RunsARegisteredEntryWithItsPayload) {
  ASSERT_MPX_OK(mpx_register("mpxt.record", record_entry));
  mpxt::Shared<Report> report;
  g_report = report.get();
  const char payload[] = "pay\0load";  // with a NUL inside
  auto p = mpxt::start_entry(MPX_START_FORK, "mpxt.record", payload, sizeof payload);
  ASSERT_TRUE(p);
  EXPECT_EQ(mpxt::join_exitcode(p.get()), 0);
  EXPECT_EQ(report->number.load(), static_cast<int64_t>(sizeof payload));
  EXPECT_EQ(std::memcmp(report->text, payload, sizeof payload), 0);
}

TEST(ProcessFork, RunsAnEntryGivenByPointer) {
  mpxt::Shared<Report> report;
  g_report = report.get();
  const char payload[] = "by pointer";
  auto o = mpxt::process_options(MPX_START_FORK);
  o.entry_fn = record_entry;
  o.payload = payload;
  o.payload_size = sizeof payload;
  auto p = mpxt::start_process(o);
  ASSERT_TRUE(p);
  EXPECT_EQ(mpxt::join_exitcode(p.get()), 0);
  EXPECT_EQ(report->number.load(), static_cast<int64_t>(sizeof payload));
  EXPECT_STREQ(report->text, payload);
}

TEST(ProcessFork, PayloadIsCopiedAtCreate) {
  mpxt::Shared<Report> report;
  g_report = report.get();
  char payload[] = "original";
  auto o = mpxt::process_options(MPX_START_FORK);
  o.entry_fn = record_entry;
  o.payload = payload;
  o.payload_size = sizeof payload;
  auto p = mpxt::create_process(o);
  ASSERT_TRUE(p);
  std::memcpy(payload, "changed!", sizeof payload);
  ASSERT_MPX_OK(mpx_process_start(p.get()));
  EXPECT_EQ(mpxt::join_exitcode(p.get()), 0);
  EXPECT_STREQ(report->text, "original") << "the options' payload is copied by mpx_process_create";
}

TEST(ProcessForkserver, RunsARegisteredEntryWithPayloadAndHandedFds) {
  mpxt::Pipe a, b;
  std::string payload(100000, '\0');
  for (size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<char>(i * 7);
  std::vector<int> fds = {a.write_end(), b.write_end()};
  auto p = mpxt::start_entry(MPX_START_FORKSERVER, "mpxt.echo", payload.data(), payload.size(), fds);
  ASSERT_TRUE(p);
  a.close_write();
  b.close_write();
  std::string echoed = mpxt::read_all(a.read_end());
  auto kv = mpxt::parse_kv(mpxt::read_all(b.read_end()));
  EXPECT_EQ(mpxt::join_exitcode(p.get()), 0);
  EXPECT_EQ(echoed.size(), payload.size());
  EXPECT_TRUE(echoed == payload) << "the payload arrived changed";
  EXPECT_EQ(kv["handed"], "2") << "mpx_handed_fds lists both, in order (the echo went to the first)";
  std::printf("[ info ] a forkserver child's open fds: %s\n", kv["fds"].c_str());
}

namespace {
struct Handed {
  std::atomic<int> count;
  int fds[8];
};
Handed *g_handed = nullptr;
void record_handed_fn(void *) {
  auto fds = mpxt::handed_fds();
  g_handed->count = static_cast<int>(fds.size());
  for (size_t i = 0; i < fds.size() && i < 8; ++i) g_handed->fds[i] = fds[i];
}
}  // namespace

TEST(ProcessFork, HandedFdsKeepTheirNumbersAndAreListed) {
  mpxt::Shared<Handed> handed;
  g_handed = handed.get();
  mpxt::Pipe a, b;
  int fds[] = {b.read_end(), a.write_end()};
  auto o = mpxt::process_options(MPX_START_FORK);
  o.fn = record_handed_fn;
  o.fds = fds;
  o.fd_count = 2;
  auto p = mpxt::start_process(o);
  ASSERT_TRUE(p);
  EXPECT_EQ(mpxt::join_exitcode(p.get()), 0);
  ASSERT_EQ(handed->count.load(), 2);
  EXPECT_EQ(handed->fds[0], fds[0]);
  EXPECT_EQ(handed->fds[1], fds[1]);
}

TEST(ProcessCurrent, NothingWasHandedToTheMainProcess) {
  size_t n = 0;
  EXPECT_MPX_OK(mpx_handed_fds(nullptr, &n));
  EXPECT_EQ(n, 0u);
}

TEST(ProcessForkserver, ChildIsForkedByTheServerAndKnowsItsParent) {
  int64_t server = 0;
  ASSERT_MPX_OK(mpx_forkserver_pid(&server));
  ASSERT_GT(server, 0) << "the warmup started the forkserver";
  auto ident = identity_of_child(kForkserver);
  EXPECT_EQ(ident["parent"], std::to_string(getpid())) << "mpx_parent_pid is the process that asked, not the server";
  auto p = start_behaving(kForkserver, mpxt::kBlock);
  ASSERT_TRUE(p);
  int64_t ppid = -1;
  EXPECT_NE(mpxt::proc_state(mpxt::pid_of(p.get()), &ppid), 0);
  EXPECT_EQ(ppid, server) << "a forkserver child is a child of the server";
  EXPECT_MPX_OK(mpx_process_kill(p.get()));
  EXPECT_EQ(mpxt::join_exitcode(p.get()), -SIGKILL);
}

TEST(ProcessForkserver, UnknownEntryIsEnoentAtStart) {
  auto o = mpxt::process_options(MPX_START_FORKSERVER);
  o.entry = "mpxt.no-such-entry";
  auto p = mpxt::create_process(o);
  ASSERT_TRUE(p);
  EXPECT_MPX(MPX_ENOENT, mpx_process_start(p.get()));
  EXPECT_EQ(mpxt::pid_of(p.get()), 0);
  EXPECT_EQ(mpxt::exitcode_of(p.get()), mpxt::kNoExitcode);
}

extern "C" __attribute__((visibility("default"), used)) void mpxt_exported_entry(const void *payload, size_t size) {
  mpxt::child_write(mpxt::report_fd(), payload, size);
}

void late_entry(const void *payload, size_t size) { mpxt::child_write(mpxt::report_fd(), payload, size); }

TEST(ProcessForkserver, LaterRegistrationsReachTheServerOnlyAsExportedSymbols) {
  // Registered after the server started (in the warmup): the server does not know the name.
  static int round = 0;
  const std::string late = "mpxt.late." + std::to_string(++round);
  ASSERT_MPX_OK(mpx_register(late.c_str(), late_entry));
  {
    auto o = mpxt::process_options(MPX_START_FORKSERVER);
    o.entry = late.c_str();
    auto p = mpxt::create_process(o);
    ASSERT_TRUE(p);
    EXPECT_MPX(MPX_ENOENT, mpx_process_start(p.get()));
  }
  // An exported symbol (the test binary is linked with -rdynamic) is found by dlsym.
  mpxt::Pipe pipe;
  std::vector<int> fds = {pipe.write_end()};
  auto p = mpxt::start_entry(MPX_START_FORKSERVER, "mpxt_exported_entry", "exported", 8, fds);
  ASSERT_TRUE(p);
  pipe.close_write();
  EXPECT_EQ(mpxt::read_all(pipe.read_end()), "exported");
  EXPECT_EQ(mpxt::join_exitcode(p.get()), 0);
}

TEST(ProcessForkserver, ForkMethodKnowsNamesRegisteredLate) {
  mpxt::Shared<Report> report;
  g_report = report.get();
  ASSERT_MPX_OK(mpx_register("mpxt.record_late", record_entry));
  auto p = mpxt::start_entry(MPX_START_FORK, "mpxt.record_late", "late", 4);
  ASSERT_TRUE(p);
  EXPECT_EQ(mpxt::join_exitcode(p.get()), 0);
  EXPECT_EQ(report->number.load(), 4);
}

TEST(ProcessSpawn, RunsBinTrue) {
  auto o = mpxt::process_options(MPX_START_SPAWN);
  o.file = "/bin/true";
  auto p = mpxt::start_process(o);
  ASSERT_TRUE(p);
  EXPECT_GT(mpxt::pid_of(p.get()), 0);
  EXPECT_EQ(mpxt::join_exitcode(p.get()), 0);
}

TEST(ProcessSpawn, ShellExitSevenIsSeven) {
  mpxt::Argv argv{"/bin/sh", "-c", "exit 7"};
  auto o = mpxt::spawn_options("/bin/sh", argv, false);
  auto p = mpxt::start_process(o);
  ASSERT_TRUE(p);
  EXPECT_EQ(mpxt::join_exitcode(p.get()), 7);
}

TEST(ProcessSpawn, RunsTheHelperProgram) {
  mpxt::Argv argv{"helper", "echo=hello from the helper", "ppid"};
  auto o = mpxt::spawn_options(mpxt::kChildPlain, argv);
  auto p = mpxt::start_process(o);
  ASSERT_TRUE(p);
  int fd = -1;
  ASSERT_MPX_OK(mpx_process_stdio(p.get(), 1, &fd));
  std::string out = mpxt::read_all(fd);
  EXPECT_EQ(mpxt::join_exitcode(p.get()), 0);
  EXPECT_EQ(out, "hello from the helper\nppid=" + std::to_string(getpid()) + "\n");
}

TEST(ProcessStart, DefaultMethodFollowsTheTarget) {
  // fn -> fork: the child's parent is this process.
  {
    auto o = mpxt::process_options(MPX_START_DEFAULT);
    o.fn = mpxt::behave_fn;
    o.arg = mpxt::behave_arg(mpxt::kBlock);
    auto p = mpxt::start_process(o);
    ASSERT_TRUE(p);
    int64_t ppid = -1;
    mpxt::proc_state(mpxt::pid_of(p.get()), &ppid);
    EXPECT_EQ(ppid, getpid()) << "fn -> fork";
  }
  // entry -> forkserver: the child's parent is the server.
  {
    uint8_t b = mpxt::kBlock;
    auto p = mpxt::start_entry(MPX_START_DEFAULT, "mpxt.behave", &b, 1);
    ASSERT_TRUE(p);
    int64_t ppid = -1, server = 0;
    mpxt::proc_state(mpxt::pid_of(p.get()), &ppid);
    ASSERT_MPX_OK(mpx_forkserver_pid(&server));
    EXPECT_EQ(ppid, server) << "entry -> forkserver";
  }
  // file -> spawn.
  {
    mpxt::Argv argv{"x", "exit=5"};
    auto o = mpxt::spawn_options(mpxt::kChildPlain, argv, false);
    o.method = MPX_START_DEFAULT;
    auto p = mpxt::start_process(o);
    ASSERT_TRUE(p);
    EXPECT_EQ(mpxt::join_exitcode(p.get()), 5) << "file -> spawn";
  }
}

TEST(ProcessCreate, TargetsThatDoNotFitTheMethodAreEinval) {
  struct Case {
    const char *what;
    std::function<void(mpx_process_options &)> set;
  };
  const std::vector<Case> cases = {
      {"no target", [](mpx_process_options &) {}},
      {"no target, fork", [](mpx_process_options &o) { o.method = MPX_START_FORK; }},
      {"fn with forkserver", [](mpx_process_options &o) { o.method = MPX_START_FORKSERVER; o.fn = mpxt::behave_fn; }},
      {"fn with spawn", [](mpx_process_options &o) { o.method = MPX_START_SPAWN; o.fn = mpxt::behave_fn; }},
      {"entry_fn with forkserver", [](mpx_process_options &o) { o.method = MPX_START_FORKSERVER; o.entry_fn = mpxt::behave_entry; }},
      {"entry_fn with spawn", [](mpx_process_options &o) { o.method = MPX_START_SPAWN; o.entry_fn = mpxt::behave_entry; }},
      {"file with fork", [](mpx_process_options &o) { o.method = MPX_START_FORK; o.file = "/bin/true"; }},
      {"entry with spawn", [](mpx_process_options &o) { o.method = MPX_START_SPAWN; o.entry = "mpxt.behave"; }},
      {"unknown method", [](mpx_process_options &o) { o.method = 9; o.fn = mpxt::behave_fn; }},
      {"unknown env_mode", [](mpx_process_options &o) { o.file = "/bin/true"; o.env_mode = 7; }},
      {"unknown stdio mode", [](mpx_process_options &o) { o.file = "/bin/true"; o.stdio[1].mode = 9; }},
      {"stdio file without a path", [](mpx_process_options &o) { o.file = "/bin/true"; o.stdio[1].mode = MPX_STDIO_FILE; }},
      {"payload NULL with a size", [](mpx_process_options &o) { o.entry = "mpxt.behave"; o.payload_size = 4; }},
      {"fds NULL with a count", [](mpx_process_options &o) { o.entry = "mpxt.behave"; o.fd_count = 2; }},
      {"a negative fd", [](mpx_process_options &o) {
         static const int bad[] = {-1};
         o.entry = "mpxt.behave";
         o.fds = bad;
         o.fd_count = 1;
       }},
      {"wrong struct size", [](mpx_process_options &o) { o.fn = mpxt::behave_fn; o.size = 4; }},
      {"struct size + 8", [](mpx_process_options &o) { o.fn = mpxt::behave_fn; o.size += 8; }},
  };
  for (const auto &c : cases) {
    auto o = mpxt::process_options();
    c.set(o);
    mpx_process *p = reinterpret_cast<mpx_process *>(0x1);
    EXPECT_MPX(MPX_EINVAL, mpx_process_create(&p, &o)) << c.what;
    EXPECT_EQ(p, nullptr) << c.what << ": *out is NULL on failure";
  }
  mpx_process *p = reinterpret_cast<mpx_process *>(0x1);
  EXPECT_MPX(MPX_EINVAL, mpx_process_create(&p, nullptr)) << "NULL options: no target";
  EXPECT_EQ(p, nullptr);
}

TEST(ProcessCreate, OptionsInitFillsDefaults) {
  mpx_process_options o;
  std::memset(&o, 0xCD, sizeof o);
  ASSERT_MPX_OK(mpx_process_options_init(&o, sizeof o));
  EXPECT_EQ(o.size, sizeof o);
  EXPECT_EQ(o.method, static_cast<uint32_t>(MPX_START_DEFAULT));
  EXPECT_EQ(o.name, nullptr);
  EXPECT_EQ(o.daemon, 0);
  EXPECT_EQ(o.fn, nullptr);
  EXPECT_EQ(o.arg, nullptr);
  EXPECT_EQ(o.entry, nullptr);
  EXPECT_EQ(o.entry_fn, nullptr);
  EXPECT_EQ(o.payload, nullptr);
  EXPECT_EQ(o.payload_size, 0u);
  EXPECT_EQ(o.fds, nullptr);
  EXPECT_EQ(o.fd_count, 0u);
  EXPECT_EQ(o.file, nullptr);
  EXPECT_EQ(o.argv, nullptr);
  EXPECT_EQ(o.env, nullptr);
  EXPECT_EQ(o.env_mode, static_cast<uint32_t>(MPX_ENV_INHERIT));
  EXPECT_EQ(o.cwd, nullptr);
  for (const auto &s : o.stdio) {
    EXPECT_EQ(s.mode, static_cast<uint32_t>(MPX_STDIO_INHERIT));
    EXPECT_EQ(s.fd, 0);
    EXPECT_EQ(s.path, nullptr);
  }
  for (size_t bad : {size_t{0}, sizeof o - 1, sizeof o + 1, SIZE_MAX}) {
    alignas(mpx_process_options) unsigned char buf[sizeof o * 2];
    std::memset(buf, 0xCD, sizeof buf);
    EXPECT_MPX(MPX_EINVAL, mpx_process_options_init(reinterpret_cast<mpx_process_options *>(buf), bad)) << bad;
    for (size_t i = std::min(bad, sizeof buf); i < sizeof buf; ++i) ASSERT_EQ(buf[i], 0xCD) << "wrote byte " << i;
  }
}

// ---- exit codes (scenario 2) -----------------------------------------------------------------

TEST(ProcessExitcode, ReturnIsZeroAndExitSevenIsSevenForEveryMethod) {
  for (Method m : kAllMethods) {
    auto r = start_behaving(m, mpxt::kReturn);
    ASSERT_TRUE(r) << m.name;
    EXPECT_EQ(mpxt::join_exitcode(r.get()), 0) << m.name << ": the target returned";
    auto e = start_behaving(m, mpxt::kExit7);
    ASSERT_TRUE(e) << m.name;
    EXPECT_EQ(mpxt::join_exitcode(e.get()), 7) << m.name << ": exit(7)";
  }
}

TEST(ProcessExitcode, KilledBySignalIsMinusTheSignalWithinOneSecond) {
  for (Method m : kAllMethods) {
    for (int sig : {SIGTERM, SIGKILL, SIGINT, SIGUSR1}) {
      SCOPED_TRACE(std::string(m.name) + " signal " + std::to_string(sig));
      auto p = start_behaving(m, mpxt::kBlock);
      ASSERT_TRUE(p);
      EXPECT_TRUE(mpxt::is_alive(p.get()));
      mpxt::Stopwatch sw;
      ASSERT_MPX_OK(mpx_process_signal(p.get(), sig));
      EXPECT_MPX_OK(mpx_process_join(p.get(), 2000));
      EXPECT_LT(sw.ms(), 1000) << "the exit status took too long to arrive";
      EXPECT_EQ(mpxt::exitcode_of(p.get()), -sig);
      EXPECT_FALSE(mpxt::is_alive(p.get()));
    }
  }
}

TEST(ProcessExitcode, SegfaultIsMinusElevenWithinOneSecond) {
  for (Method m : kAllMethods) {
    mpxt::Stopwatch sw;
    auto p = start_behaving(m, mpxt::kSegv);
    ASSERT_TRUE(p) << m.name;
    EXPECT_MPX_OK(mpx_process_join(p.get(), 5000)) << m.name;
    EXPECT_LT(sw.ms(), 1000) << m.name;
    EXPECT_EQ(mpxt::exitcode_of(p.get()), -SIGSEGV) << m.name;
  }
}

TEST(ProcessExitcode, TerminateKillInterruptSendTermKillInt) {
  for (Method m : kAllMethods) {
    struct {
      int (*fn)(mpx_process *);
      int sig;
      const char *name;
    } calls[] = {{mpx_process_terminate, SIGTERM, "terminate"},
                 {mpx_process_kill, SIGKILL, "kill"},
                 {mpx_process_interrupt, SIGINT, "interrupt"}};
    for (const auto &c : calls) {
      auto p = start_behaving(m, mpxt::kBlock);
      ASSERT_TRUE(p);
      ASSERT_MPX_OK(c.fn(p.get())) << m.name << " " << c.name;
      EXPECT_EQ(mpxt::join_exitcode(p.get(), 2000), -c.sig) << m.name << " " << c.name;
    }
  }
}

TEST(ProcessExitcode, ExitcodeIsEagainBeforeStartAndWhileRunning) {
  auto o = mpxt::process_options(MPX_START_FORK);
  o.fn = mpxt::behave_fn;
  o.arg = mpxt::behave_arg(mpxt::kBlock);
  auto p = mpxt::create_process(o);
  ASSERT_TRUE(p);
  int code = 12345;
  EXPECT_MPX(MPX_EAGAIN, mpx_process_exitcode(p.get(), &code)) << "not started";
  ASSERT_MPX_OK(mpx_process_start(p.get()));
  EXPECT_MPX(MPX_EAGAIN, mpx_process_exitcode(p.get(), &code)) << "running";
  EXPECT_MPX_OK(mpx_process_kill(p.get()));
  EXPECT_EQ(mpxt::join_exitcode(p.get()), -SIGKILL);
}

// ---- join, is_alive, sentinel ------------------------------------------------------------------

TEST(ProcessJoin, ZeroTimeoutReturnsAtOnceWhileRunning) {
  for (Method m : kAllMethods) {
    auto p = start_behaving(m, mpxt::kBlock);
    ASSERT_TRUE(p);
    mpxt::Stopwatch sw;
    EXPECT_MPX(MPX_ETIMEDOUT, mpx_process_join(p.get(), 0)) << m.name;
    EXPECT_LT(sw.ms(), 100) << m.name << ": join(0) only checks";
    EXPECT_TRUE(mpxt::is_alive(p.get())) << m.name;
  }
}

TEST(ProcessJoin, TimedJoinReturnsOnTimeAndExitcodeIsThenEagain) {
  for (Method m : kAllMethods) {
    auto p = start_behaving(m, mpxt::kBlock);
    ASSERT_TRUE(p);
    EXPECT_TRUE(mpxt::TimesOutWithin(200, [&] { return mpx_process_join(p.get(), 200); }, MPX_ETIMEDOUT, 500))
        << m.name;
    int code = 12345;
    EXPECT_MPX(MPX_EAGAIN, mpx_process_exitcode(p.get(), &code)) << m.name;
    EXPECT_TRUE(mpxt::is_alive(p.get())) << m.name;
  }
}

TEST(ProcessJoin, JoinWaitsForTheEndAndCanBeRepeated) {
  for (Method m : kAllMethods) {
    mpxt::Stopwatch sw;
    auto p = start_behaving(m, mpxt::kSleep300);
    ASSERT_TRUE(p);
    EXPECT_MPX_OK(mpx_process_join(p.get(), -1)) << m.name;
    EXPECT_GE(sw.ms(), 250) << m.name << ": returned before the child ended";
    EXPECT_EQ(mpxt::exitcode_of(p.get()), 0) << m.name;
    EXPECT_MPX_OK(mpx_process_join(p.get(), 0)) << m.name << ": join of an ended child";
    EXPECT_MPX_OK(mpx_process_join(p.get(), -1)) << m.name;
    EXPECT_EQ(mpxt::exitcode_of(p.get()), 0) << m.name;
  }
}

TEST(ProcessJoin, JoinBeforeStartIsEinval) {
  auto o = mpxt::process_options(MPX_START_FORK);
  o.fn = mpxt::behave_fn;
  auto p = mpxt::create_process(o);
  ASSERT_TRUE(p);
  EXPECT_MPX(MPX_EINVAL, mpx_process_join(p.get(), 0));
  EXPECT_MPX(MPX_EINVAL, mpx_process_join(p.get(), 100));
  EXPECT_FALSE(mpxt::is_alive(p.get()));
  EXPECT_EQ(mpxt::pid_of(p.get()), 0);
  int fd = 12345;
  EXPECT_MPX(MPX_EINVAL, mpx_process_sentinel(p.get(), &fd));
}

TEST(ProcessJoin, ManyThreadsJoinTheSameChild) {
  auto p = start_behaving(kFork, mpxt::kSleep300);
  ASSERT_TRUE(p);
  std::atomic<int> ok{0};
  std::vector<std::thread> ts;
  for (int i = 0; i < 4; ++i)
    ts.emplace_back([&] {
      if (mpx_process_join(p.get(), 5000) == MPX_OK && mpxt::exitcode_of(p.get()) == 0) ++ok;
    });
  for (auto &t : ts) t.join();
  EXPECT_EQ(ok.load(), 4);
}

TEST(ProcessJoin, IsAliveReapsAnEndedChild) {
  for (Method m : kAllMethods) {
    auto p = start_behaving(m, mpxt::kReturn);
    ASSERT_TRUE(p);
    int64_t ms = mpxt::ms_until([&] { return !mpxt::is_alive(p.get()); }, 5000ms);
    EXPECT_GE(ms, 0) << m.name << ": still alive after 5 s";
    EXPECT_EQ(mpxt::exitcode_of(p.get()), 0) << m.name << ": known without a join";
  }
}

TEST(ProcessSentinel, BecomesReadableWhenTheChildEnds) {
  for (Method m : kAllMethods) {
    auto p = start_behaving(m, mpxt::kBlock);
    ASSERT_TRUE(p);
    int fd = -1;
    ASSERT_MPX_OK(mpx_process_sentinel(p.get(), &fd)) << m.name;
    ASSERT_GE(fd, 0);
    EXPECT_TRUE(fcntl(fd, F_GETFD) & FD_CLOEXEC) << m.name << ": the sentinel must not leak into exec'ed programs";
    pollfd pfd{fd, POLLIN, 0};
    EXPECT_EQ(poll(&pfd, 1, 100), 0) << m.name << ": readable while the child runs";
    ASSERT_MPX_OK(mpx_process_kill(p.get()));
    pfd.revents = 0;
    EXPECT_EQ(poll(&pfd, 1, 2000), 1) << m.name << ": not readable after the child was killed";
    EXPECT_MPX_OK(mpx_process_join(p.get(), 0)) << m.name << ": readable sentinel, so join(0) succeeds";
    EXPECT_EQ(mpxt::exitcode_of(p.get()), -SIGKILL) << m.name;
  }
}

// ---- start twice, close, destroy ---------------------------------------------------------------

TEST(ProcessStart, StartingTwiceIsEinval) {
  for (Method m : kAllMethods) {
    auto p = start_behaving(m, mpxt::kBlock);
    ASSERT_TRUE(p);
    int64_t pid = mpxt::pid_of(p.get());
    EXPECT_MPX(MPX_EINVAL, mpx_process_start(p.get())) << m.name << ": while running";
    EXPECT_EQ(mpxt::pid_of(p.get()), pid) << m.name;
    ASSERT_MPX_OK(mpx_process_kill(p.get()));
    EXPECT_EQ(mpxt::join_exitcode(p.get()), -SIGKILL);
    EXPECT_MPX(MPX_EINVAL, mpx_process_start(p.get())) << m.name << ": after it ended";
    EXPECT_EQ(mpxt::exitcode_of(p.get()), -SIGKILL) << m.name << ": a refused start changes nothing";
  }
}

TEST(ProcessClose, CloseWhileRunningIsEagainAndKeepsTheObject) {
  auto p = start_behaving(kFork, mpxt::kBlock);
  ASSERT_TRUE(p);
  EXPECT_MPX(MPX_EAGAIN, mpx_process_close(p.get()));
  EXPECT_TRUE(mpxt::is_alive(p.get())) << "a refused close leaves the object usable";
  ASSERT_MPX_OK(mpx_process_terminate(p.get()));
  EXPECT_EQ(mpxt::join_exitcode(p.get()), -SIGTERM);
  mpx_process *raw = p.release();
  EXPECT_MPX_OK(mpx_process_close(raw));
  int alive = 0;
  EXPECT_MPX(MPX_EBADHANDLE, mpx_process_is_alive(raw, &alive)) << "close freed the object";
  EXPECT_MPX(MPX_EBADHANDLE, mpx_process_close(raw));
  EXPECT_MPX(MPX_EBADHANDLE, mpx_process_destroy(raw));
}

TEST(ProcessClose, CloseOrDestroyBeforeStartIsOk) {
  auto o = mpxt::process_options(MPX_START_FORK);
  o.fn = mpxt::behave_fn;
  mpx_process *a = nullptr, *b = nullptr;
  ASSERT_MPX_OK(mpx_process_create(&a, &o));
  ASSERT_MPX_OK(mpx_process_create(&b, &o));
  EXPECT_MPX_OK(mpx_process_close(a));
  EXPECT_MPX_OK(mpx_process_destroy(b));
}

TEST(ProcessDestroy, DestroyWhileAnotherThreadJoinsGivesThatJoinEclosed) {
  for (Method m : kAllMethods) {
    const int64_t timeout = m.method == MPX_START_SPAWN ? 20000 : -1;
    SCOPED_TRACE(m.name);
    auto p = start_behaving(m, mpxt::kBlock);
    ASSERT_TRUE(p);
    const int64_t pid = mpxt::pid_of(p.get());
    mpx_process *raw = p.release();
    std::atomic<int> rc{INT_MIN};
    std::atomic<int64_t> returned_at{-1};
    mpxt::Stopwatch sw;
    std::thread joiner([&] {
      rc = mpx_process_join(raw, timeout);
      returned_at = sw.ms();
    });
    mpxt::sleep_ms(150);
    EXPECT_EQ(returned_at.load(), -1) << "join returned before the destroy";
    const int64_t destroyed_at = sw.ms();
    EXPECT_MPX_OK(mpx_process_destroy(raw));
    for (int i = 0; i < 300 && returned_at.load() < 0; ++i) mpxt::sleep_ms(10);
    if (returned_at.load() < 0) {
      ADD_FAILURE() << "join still blocked 3 s after destroy";
      kill(static_cast<pid_t>(pid), SIGKILL);
      joiner.detach();
      std::fflush(nullptr);
      _exit(1);
    }
    joiner.join();
    EXPECT_MPX(MPX_ECLOSED, rc.load()) << "timeout " << timeout;
    EXPECT_LE(returned_at.load() - destroyed_at, 500) << "woke too slowly after destroy";
    EXPECT_FALSE(mpxt::proc_dead(pid)) << "destroy must not kill a running child";
    kill(static_cast<pid_t>(pid), SIGKILL);
    // Reaped by the library, now or (as Python does) at its next call.
    mpxt::ms_until(
        [&] {
          size_t none = 0;
          mpx_active_children(nullptr, &none);
          return mpxt::proc_state(pid) == 0;
        },
        3000ms);
  }
}

TEST(ProcessDestroy, TheChildOfADestroyedObjectIsReapedWhenItEnds) {
  // process.h: "A running child is not signalled: a library thread (running only while
  // there are such children) reaps it when it ends."
  for (Method m : kAllMethods) {
    SCOPED_TRACE(m.name);
    auto p = start_behaving(m, mpxt::kBlock);
    ASSERT_TRUE(p);
    const int64_t pid = mpxt::pid_of(p.get());
    EXPECT_MPX_OK(mpx_process_destroy(p.release()));
    mpxt::sleep_ms(100);
    EXPECT_FALSE(mpxt::proc_dead(pid)) << "destroy must not kill a running child";
    kill(static_cast<pid_t>(pid), SIGKILL);
    // No mpx call in between: the reaper (or, for a forkserver child, the server) does it.
    EXPECT_GE(mpxt::ms_until([&] { return mpxt::proc_state(pid) == 0; }, 1000ms), 0)
        << "still a zombie 1 s after it ended";
  }
}

TEST(ProcessDestroy, DestroyedHandleIsEbadhandle) {
  auto p = start_behaving(kFork, mpxt::kReturn);
  ASSERT_TRUE(p);
  EXPECT_EQ(mpxt::join_exitcode(p.get()), 0);
  mpx_process *raw = p.release();
  ASSERT_MPX_OK(mpx_process_destroy(raw));
  int v = 0;
  int64_t pid = 0;
  EXPECT_MPX(MPX_EBADHANDLE, mpx_process_join(raw, 0));
  EXPECT_MPX(MPX_EBADHANDLE, mpx_process_exitcode(raw, &v));
  EXPECT_MPX(MPX_EBADHANDLE, mpx_process_pid(raw, &pid));
  EXPECT_MPX(MPX_EBADHANDLE, mpx_process_destroy(raw));
}

TEST(ProcessFork, AForkedChildMayNotUseItsParentsProcessHandles) {
  // Python: "can only join a child process". SCENARIOS.md 50: an inherited handle the child
  // must not use is MPX_EFORKED.
  auto sibling = start_behaving(kFork, mpxt::kBlock);
  ASSERT_TRUE(sibling);
  mpx_process *s = sibling.get();
  auto st = mpxt::run_in_child([s] {
    int v = 0;
    int64_t pid = 0;
    CHILD_MPX(MPX_EFORKED, mpx_process_join(s, 0));
    CHILD_MPX(MPX_EFORKED, mpx_process_is_alive(s, &v));
    CHILD_MPX(MPX_EFORKED, mpx_process_exitcode(s, &v));
    CHILD_MPX(MPX_EFORKED, mpx_process_pid(s, &pid));
    CHILD_MPX(MPX_EFORKED, mpx_process_terminate(s));
    CHILD_MPX(MPX_EFORKED, mpx_process_kill(s));
    CHILD_MPX(MPX_EFORKED, mpx_process_start(s));
    return 0;
  });
  EXPECT_TRUE(st.ok()) << st.describe();
  EXPECT_TRUE(mpxt::is_alive(s)) << "the forked child's kill reached its sibling";
  EXPECT_MPX_OK(mpx_process_kill(s));
  EXPECT_EQ(mpxt::join_exitcode(s), -SIGKILL);
}

// ---- children reaped behind the library's back -------------------------------------------------

TEST(ProcessReaping, AChildTheApplicationReapedItselfReadsAs255) {
  // docs/processes.md: "If the application reaps mpx's children itself ... mpx still sees that
  // they ended, and reports 255." Above all, join must not hang.
  auto p = start_behaving(kFork, mpxt::kExit7);
  ASSERT_TRUE(p);
  const pid_t pid = static_cast<pid_t>(mpxt::pid_of(p.get()));
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 7);
  mpxt::Stopwatch sw;
  EXPECT_MPX_OK(mpx_process_join(p.get(), 2000));
  EXPECT_LT(sw.ms(), 1000);
  EXPECT_EQ(mpxt::exitcode_of(p.get()), 255);
  EXPECT_FALSE(mpxt::is_alive(p.get()));
}

TEST(ProcessReaping, WithSigchldIgnoredJoinStillReturns) {
  auto st = mpxt::run_in_child([] {
    signal(SIGCHLD, SIG_IGN);  // the kernel reaps every child at once
    for (Method m : {kFork, kSpawn}) {
      auto o = mpxt::process_options(m.method);
      mpxt::Argv argv{"x", "exit=3"};
      if (m.method == MPX_START_FORK) {
        o.fn = mpxt::behave_fn;
        o.arg = mpxt::behave_arg(mpxt::kExit7);
      } else {
        o.file = mpxt::kChildPlain;
        o.argv = argv.get();
      }
      mpx_process *p = nullptr;
      CHILD_MPX_OK(mpx_process_create(&p, &o));
      CHILD_MPX_OK(mpx_process_start(p));
      CHILD_MPX_OK(mpx_process_join(p, 3000));
      int code = 0;
      CHILD_MPX_OK(mpx_process_exitcode(p, &code));
      CHILD_CHECK(code == 255 || code == (m.method == MPX_START_FORK ? 7 : 3));
      mpx_process_destroy(p);
    }
    return 0;
  });
  EXPECT_TRUE(st.ok()) << st.describe();
}

// ---- forkserver children's working directory ------------------------------------------------------

namespace {
void cwd_entry(const void *, size_t) {
  char buf[4096];
  std::string cwd = getcwd(buf, sizeof buf) ? buf : "?";
  mpxt::child_write(mpxt::report_fd(), cwd);
}
const int kCwdEntry = mpxt::register_entry("mpxt.cwd", cwd_entry);
}  // namespace

TEST(ProcessForkserver, ChildRunsInTheClientsCurrentDirectory) {
  // As Python's forkserver children do (they chdir to the parent's directory at start).
  ASSERT_EQ(kCwdEntry, MPX_OK);
  char old[4096];
  ASSERT_NE(getcwd(old, sizeof old), nullptr);
  char tmpl[] = "/tmp/mpxt-cwd-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  char real[4096];
  ASSERT_NE(realpath(tmpl, real), nullptr);
  ASSERT_EQ(chdir(real), 0);
  mpxt::Pipe pipe;
  auto p = mpxt::start_entry(MPX_START_FORKSERVER, "mpxt.cwd", nullptr, 0, {pipe.write_end()});
  EXPECT_EQ(chdir(old), 0);
  if (p) {
    pipe.close_write();
    EXPECT_EQ(mpxt::read_all(pipe.read_end()), real);
    EXPECT_EQ(mpxt::join_exitcode(p.get()), 0);
  }
  rmdir(real);
}

// ---- signals -----------------------------------------------------------------------------------

TEST(ProcessSignal, SignalToAnEndedChildIsLeftAloneAndOk) {
  for (Method m : kAllMethods) {
    auto p = start_behaving(m, mpxt::kReturn);
    ASSERT_TRUE(p);
    EXPECT_EQ(mpxt::join_exitcode(p.get()), 0);
    EXPECT_MPX_OK(mpx_process_terminate(p.get())) << m.name;
    EXPECT_MPX_OK(mpx_process_kill(p.get())) << m.name;
    EXPECT_MPX_OK(mpx_process_signal(p.get(), SIGUSR1)) << m.name;
    EXPECT_EQ(mpxt::exitcode_of(p.get()), 0) << m.name << ": unchanged";
  }
}

TEST(ProcessSignal, EndedButUnjoinedChildIsLeftAlone) {
  // Ended but not reaped yet: the pid still belongs to it; a signal must not reach a recycled pid.
  auto p = start_behaving(kFork, mpxt::kReturn);
  ASSERT_TRUE(p);
  mpxt::sleep_ms(200);
  EXPECT_MPX_OK(mpx_process_kill(p.get()));
  EXPECT_EQ(mpxt::join_exitcode(p.get()), 0) << "the child had already returned; kill changes nothing";
}

TEST(ProcessSignal, InvalidSignalNumberIsEinval) {
  auto p = start_behaving(kFork, mpxt::kBlock);
  ASSERT_TRUE(p);
  for (int sig : {-1, 65, 1000, INT_MAX}) EXPECT_MPX(MPX_EINVAL, mpx_process_signal(p.get(), sig)) << sig;
  EXPECT_TRUE(mpxt::is_alive(p.get()));
}

// ---- names and identity -------------------------------------------------------------------------

TEST(ProcessName, MainProcessIsMainProcess) { EXPECT_EQ(mpxt::current_name(), "MainProcess"); }

TEST(ProcessName, DefaultNamesCountThisProcessesChildren) {
  auto o = mpxt::process_options(MPX_START_FORK);
  o.fn = mpxt::behave_fn;
  auto a = mpxt::create_process(o);
  auto b = mpxt::create_process(o);
  ASSERT_TRUE(a && b);
  std::string na = mpxt::process_name(a.get()), nb = mpxt::process_name(b.get());
  ASSERT_EQ(na.rfind("Process-", 0), 0u) << na;
  ASSERT_EQ(nb.rfind("Process-", 0), 0u) << nb;
  const long ia = std::strtol(na.c_str() + 8, nullptr, 10), ib = std::strtol(nb.c_str() + 8, nullptr, 10);
  EXPECT_GT(ia, 0);
  EXPECT_EQ(ib, ia + 1) << na << " then " << nb;
  EXPECT_EQ(na, "Process-" + std::to_string(ia)) << "nothing after the number";
}

TEST(ProcessName, ChildKnowsItsNameParentAndDaemonFlag) {
  for (Method m : kAllMethods) {
    auto ident = identity_of_child(m, "worker-7");
    EXPECT_EQ(ident["name"], "worker-7") << m.name;
    EXPECT_EQ(ident["parent"], std::to_string(getpid())) << m.name;
    EXPECT_EQ(ident["daemon"], "0") << m.name;
    auto dident = identity_of_child(m, nullptr, true);
    EXPECT_EQ(dident["name"].rfind("Process-", 0), 0u) << m.name << ": " << dident["name"];
    EXPECT_EQ(dident["daemon"], "1") << m.name;
  }
}

namespace {
struct Nested {
  char child_name[128];
  char grandchild_object_name[128];
  char grandchild_current_name[128];
  std::atomic<int> rc;
};
Nested *g_nested = nullptr;

void grandchild_fn(void *) {
  std::string n = mpxt::current_name();
  std::snprintf(g_nested->grandchild_current_name, sizeof g_nested->grandchild_current_name, "%s", n.c_str());
}

void nesting_child_fn(void *) {
  std::string me = mpxt::current_name();
  std::snprintf(g_nested->child_name, sizeof g_nested->child_name, "%s", me.c_str());
  auto o = mpxt::process_options(MPX_START_FORK);
  o.fn = grandchild_fn;
  mpx_process *p = nullptr;
  int rc = mpx_process_create(&p, &o);
  if (rc == MPX_OK) {
    char buf[128];
    size_t len = sizeof buf;
    if (mpx_process_name(p, buf, &len) == MPX_OK)
      std::snprintf(g_nested->grandchild_object_name, sizeof g_nested->grandchild_object_name, "%s", buf);
    rc = mpx_process_start(p);
    if (rc == MPX_OK) rc = mpx_process_join(p, 5000);
    mpx_process_destroy(p);
  }
  g_nested->rc = rc;
}
}  // namespace

TEST(ProcessName, NamesNestInChildren) {
  mpxt::Shared<Nested> nested;
  g_nested = nested.get();
  auto p = mpxt::start_fork(nesting_child_fn);
  ASSERT_TRUE(p);
  std::string parent_view = mpxt::process_name(p.get());
  EXPECT_EQ(mpxt::join_exitcode(p.get()), 0);
  EXPECT_MPX_OK(nested->rc.load());
  EXPECT_EQ(std::string(nested->child_name), parent_view) << "the child's mpx_current_name is its object's name";
  EXPECT_EQ(std::string(nested->grandchild_object_name), parent_view + ":1")
      << "the first child of " << parent_view;
  EXPECT_EQ(std::string(nested->grandchild_current_name), parent_view + ":1");
}

TEST(ProcessName, RenameTheObjectAnyTimeButTheChildKeepsItsStartName) {
  mpxt::Pipe pipe;
  auto o = mpxt::process_options(MPX_START_FORK);
  o.fn = identity_fn;
  o.arg = reinterpret_cast<void *>(static_cast<intptr_t>(pipe.write_end()));
  o.name = "before";
  auto p = mpxt::create_process(o);
  ASSERT_TRUE(p);
  EXPECT_MPX_OK(mpx_process_set_name(p.get(), "at-start"));
  EXPECT_EQ(mpxt::process_name(p.get()), "at-start");
  ASSERT_MPX_OK(mpx_process_start(p.get()));
  EXPECT_MPX_OK(mpx_process_set_name(p.get(), "after-start"));
  EXPECT_EQ(mpxt::process_name(p.get()), "after-start");
  pipe.close_write();
  auto kv = mpxt::parse_kv(mpxt::read_all(pipe.read_end()));
  EXPECT_EQ(mpxt::join_exitcode(p.get()), 0);
  EXPECT_EQ(kv["name"], "at-start");
}

TEST(ProcessName, NameBufferTooSmallIsEnobufsWithTheNeededSize) {
  auto o = mpxt::process_options(MPX_START_FORK);
  o.fn = mpxt::behave_fn;
  o.name = "twelve-chars";
  auto p = mpxt::create_process(o);
  ASSERT_TRUE(p);
  char buf[4];
  size_t len = sizeof buf;
  EXPECT_MPX(MPX_ENOBUFS, mpx_process_name(p.get(), buf, &len));
  EXPECT_EQ(len, 13u) << "needed size, NUL included";
  size_t zero = 0;
  EXPECT_MPX(MPX_ENOBUFS, mpx_process_name(p.get(), nullptr, &zero));
  EXPECT_EQ(zero, 13u);
  char exact[13];
  len = sizeof exact;
  EXPECT_MPX_OK(mpx_process_name(p.get(), exact, &len));
  EXPECT_EQ(len, 12u);
  EXPECT_STREQ(exact, "twelve-chars");
}

TEST(ProcessName, SetCurrentNameInAChild) {
  auto st = mpxt::run_in_child([] {
    CHILD_MPX_OK(mpx_set_current_name("renamed-main"));
    CHILD_CHECK(mpxt::current_name() == "renamed-main");
    return 0;
  });
  EXPECT_TRUE(st.ok()) << st.describe();
  EXPECT_EQ(mpxt::current_name(), "MainProcess") << "a child's rename does not reach the parent";
}

TEST(ProcessIdentity, MainProcessHasNoMpxParentAndIsNoDaemon) {
  int64_t parent = -1;
  int daemon = -1;
  EXPECT_MPX_OK(mpx_parent_pid(&parent));
  EXPECT_EQ(parent, 0) << "not started by mpx";
  EXPECT_MPX_OK(mpx_current_daemon(&daemon));
  EXPECT_EQ(daemon, 0);
}

TEST(ProcessDaemon, FlagCanBeSetBeforeStartOnly) {
  auto o = mpxt::process_options(MPX_START_FORK);
  o.fn = mpxt::behave_fn;
  o.arg = mpxt::behave_arg(mpxt::kBlock);
  auto p = mpxt::create_process(o);
  ASSERT_TRUE(p);
  int d = -1;
  EXPECT_MPX_OK(mpx_process_daemon(p.get(), &d));
  EXPECT_EQ(d, 0);
  EXPECT_MPX_OK(mpx_process_set_daemon(p.get(), 1));
  EXPECT_MPX_OK(mpx_process_daemon(p.get(), &d));
  EXPECT_EQ(d, 1);
  ASSERT_MPX_OK(mpx_process_start(p.get()));
  EXPECT_MPX(MPX_EINVAL, mpx_process_set_daemon(p.get(), 0));
  EXPECT_MPX_OK(mpx_process_daemon(p.get(), &d));
  EXPECT_EQ(d, 1);
}

// ---- daemons may not start children ------------------------------------------------------------

namespace {
void try_start_fn(void *arg) {
  auto *rc = static_cast<std::atomic<int> *>(arg);
  auto o = mpxt::process_options(MPX_START_FORK);
  o.fn = mpxt::behave_fn;
  mpx_process *p = nullptr;
  int r = mpx_process_create(&p, &o);
  if (r == MPX_OK) {
    r = mpx_process_start(p);
    if (r == MPX_OK) mpx_process_join(p, 5000);
    mpx_process_destroy(p);
  }
  rc->store(r);
}
}  // namespace

TEST(ProcessDaemon, ADaemonMayNotStartChildren) {
  {
    mpxt::Shared<std::atomic<int>> rc(INT_MIN);
    auto p = mpxt::start_fork(try_start_fn, rc.get(), true);
    ASSERT_TRUE(p);
    EXPECT_EQ(mpxt::join_exitcode(p.get()), 0);
    EXPECT_MPX(MPX_EPERM, rc->load()) << "fork daemon";
  }
  {
    mpxt::Pipe pipe;
    auto p = mpxt::start_entry(MPX_START_FORKSERVER, "mpxt.try_start", nullptr, 0, {pipe.write_end()}, true);
    ASSERT_TRUE(p);
    pipe.close_write();
    std::string out = mpxt::read_all(pipe.read_end());
    EXPECT_EQ(mpxt::join_exitcode(p.get()), 0);
    EXPECT_EQ(out, "start=" + std::to_string(MPX_EPERM) + "\n") << "forkserver daemon";
  }
  {
    mpxt::Argv argv{"x", "start-child"};
    auto o = mpxt::spawn_options(mpxt::kChild, argv);
    o.daemon = 1;
    auto p = mpxt::start_process(o);
    ASSERT_TRUE(p);
    int fd = -1;
    ASSERT_MPX_OK(mpx_process_stdio(p.get(), 1, &fd));
    std::string out = mpxt::read_all(fd);
    EXPECT_EQ(mpxt::join_exitcode(p.get()), 0);
    EXPECT_EQ(out, "start=" + std::to_string(MPX_EPERM) + "\n") << "spawned daemon";
  }
  {
    // A non-daemon child may.
    mpxt::Shared<std::atomic<int>> rc(INT_MIN);
    auto p = mpxt::start_fork(try_start_fn, rc.get(), false);
    ASSERT_TRUE(p);
    EXPECT_EQ(mpxt::join_exitcode(p.get()), 0);
    EXPECT_MPX_OK(rc->load()) << "a non-daemon child starts its own children";
  }
}

// ---- authkey -------------------------------------------------------------------------------------

TEST(ProcessAuthkey, IsThirtyTwoRandomBytesAndInheritedByEveryMethod) {
  auto key = mpxt::authkey();
  ASSERT_EQ(key.size(), static_cast<size_t>(MPX_AUTHKEY_SIZE));
  EXPECT_NE(key, std::vector<uint8_t>(MPX_AUTHKEY_SIZE, 0)) << "not random";
  for (Method m : kAllMethods) {
    auto ident = identity_of_child(m);
    EXPECT_EQ(ident["authkey"], mpxt::hex(key)) << m.name;
  }
}

TEST(ProcessAuthkey, ASetKeyIsWhatChildrenOfEveryMethodGet) {
  auto original = mpxt::authkey();
  std::vector<uint8_t> custom(17);
  for (size_t i = 0; i < custom.size(); ++i) custom[i] = static_cast<uint8_t>(0xA0 + i);
  ASSERT_MPX_OK(mpx_set_authkey(custom.data(), custom.size()));
  EXPECT_EQ(mpxt::authkey(), custom);
  for (Method m : kAllMethods) {
    // The forkserver was started with the old key: the new one must reach its children anyway.
    auto ident = identity_of_child(m);
    EXPECT_EQ(ident["authkey"], mpxt::hex(custom)) << m.name;
  }
  ASSERT_MPX_OK(mpx_set_authkey(original.data(), original.size()));
  EXPECT_EQ(mpxt::authkey(), original);
}

TEST(ProcessAuthkey, LengthLimitsAndSmallBuffers) {
  auto original = mpxt::authkey();
  std::vector<uint8_t> big(257, 1);
  EXPECT_MPX(MPX_EINVAL, mpx_set_authkey(big.data(), 0)) << "empty";
  EXPECT_MPX(MPX_EINVAL, mpx_set_authkey(big.data(), 257)) << "over 256 bytes";
  EXPECT_EQ(mpxt::authkey(), original) << "a refused key changes nothing";
  EXPECT_MPX_OK(mpx_set_authkey(big.data(), 256));
  EXPECT_EQ(mpxt::authkey().size(), 256u);
  uint8_t small[8];
  size_t len = sizeof small;
  EXPECT_MPX(MPX_ENOBUFS, mpx_authkey(small, &len));
  EXPECT_EQ(len, 256u) << "the needed length";
  ASSERT_MPX_OK(mpx_set_authkey(original.data(), original.size()));
}

// ---- cpu count, active children -----------------------------------------------------------------

TEST(ProcessCpuCount, IsPositiveAndAtMostTheOnlineCpus) {
  int n = 0;
  ASSERT_MPX_OK(mpx_cpu_count(&n));
  EXPECT_GT(n, 0);
  EXPECT_LE(n, static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN)));
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) {
    EXPECT_LE(n, CPU_COUNT(&set)) << "the CPUs this process may use";
  }
}

TEST(ProcessActiveChildren, ListsLiveChildrenAndReapsEndedOnes) {
  size_t count = 0;
  ASSERT_MPX_OK(mpx_active_children(nullptr, &count));
  EXPECT_EQ(count, 0u) << "no children yet";
  std::vector<Proc> kids;
  for (int i = 0; i < 3; ++i) kids.push_back(start_behaving(kFork, mpxt::kBlock));
  kids.push_back(start_behaving(kForkserver, mpxt::kBlock));
  kids.push_back(start_behaving(kSpawn, mpxt::kBlock));
  for (auto &k : kids) ASSERT_TRUE(k);
  count = 0;
  EXPECT_MPX(MPX_ENOBUFS, mpx_active_children(nullptr, &count));
  EXPECT_EQ(count, 5u);
  std::vector<mpx_process *> out(8, nullptr);
  count = out.size();
  ASSERT_MPX_OK(mpx_active_children(out.data(), &count));
  ASSERT_EQ(count, 5u);
  for (auto &k : kids) EXPECT_NE(std::find(out.begin(), out.begin() + 5, k.get()), out.begin() + 5) << "our handles";
  // Two end without a join: the next call reaps them and leaves them out.
  const int64_t pid0 = mpxt::pid_of(kids[0].get()), pid3 = mpxt::pid_of(kids[3].get());
  kill(static_cast<pid_t>(pid0), SIGKILL);
  kill(static_cast<pid_t>(pid3), SIGKILL);
  int64_t ms = mpxt::ms_until(
      [&] {
        size_t c = out.size();
        return mpx_active_children(out.data(), &c) == MPX_OK && c == 3;
      },
      3000ms);
  EXPECT_GE(ms, 0) << "ended children are still listed";
  EXPECT_EQ(mpxt::exitcode_of(kids[0].get()), -SIGKILL) << "reaped by active_children";
  EXPECT_EQ(mpxt::exitcode_of(kids[3].get()), -SIGKILL);
  for (auto &k : kids) {
    mpx_process_kill(k.get());
    EXPECT_MPX_OK(mpx_process_join(k.get(), 5000));
  }
  count = out.size();
  ASSERT_MPX_OK(mpx_active_children(out.data(), &count));
  EXPECT_EQ(count, 0u);
}

// ---- adopt, after_fork ---------------------------------------------------------------------------

TEST(ProcessAdopt, AChildForkedByHandIsJoinedSignalledAndReaped) {
  pid_t a = fork();
  if (a == 0) {
    std::this_thread::sleep_for(200ms);
    _exit(4);
  }
  ASSERT_GT(a, 0);
  mpx_process *p = nullptr;
  ASSERT_MPX_OK(mpx_process_adopt(&p, a, nullptr));
  Proc adopted(p);
  EXPECT_EQ(mpxt::pid_of(p), a);
  EXPECT_TRUE(mpxt::is_alive(p));
  EXPECT_MPX(MPX_EINVAL, mpx_process_start(p)) << "adopted means started";
  EXPECT_EQ(mpxt::join_exitcode(p), 4);

  pid_t b = fork();
  if (b == 0) {
    for (;;) pause();
  }
  auto o = mpxt::process_options();
  o.name = "adopted";
  mpx_process *q = nullptr;
  ASSERT_MPX_OK(mpx_process_adopt(&q, b, &o));
  Proc adopted2(q);
  EXPECT_EQ(mpxt::process_name(q), "adopted");
  EXPECT_MPX_OK(mpx_process_terminate(q));
  EXPECT_EQ(mpxt::join_exitcode(q), -SIGTERM);
  EXPECT_EQ(waitpid(b, nullptr, WNOHANG), -1) << "already reaped by the library";
}

TEST(ProcessAdopt, NotAChildOfOursIsRefused) {
  for (int64_t pid : {int64_t{0}, int64_t{-1}, static_cast<int64_t>(getpid()), static_cast<int64_t>(getppid()),
                      int64_t{1}, int64_t{INT32_MAX}}) {
    mpx_process *p = reinterpret_cast<mpx_process *>(0x1);
    int rc = mpx_process_adopt(&p, pid, nullptr);
    EXPECT_NE(rc, MPX_OK) << "adopt(" << pid << ")";
    EXPECT_EQ(p, nullptr) << "adopt(" << pid << ")";
    if (rc == MPX_OK) mpx_process_destroy(p);
  }
}

TEST(ProcessAfterFork, AChildForkedByHandTakesTheIdentityGiven) {
  const pid_t parent = getpid();
  auto st = mpxt::run_in_child([parent] {
    auto o = mpxt::process_options();
    o.name = "hand-forked";
    CHILD_MPX_OK(mpx_process_after_fork(&o, parent));
    CHILD_CHECK(mpxt::current_name() == "hand-forked");
    int64_t pp = 0;
    CHILD_MPX_OK(mpx_parent_pid(&pp));
    CHILD_CHECK_EQ(pp, parent);
    int d = -1;
    CHILD_MPX_OK(mpx_current_daemon(&d));
    CHILD_CHECK_EQ(d, 0);
    // Its own children are named after it.
    auto c = mpxt::process_options(MPX_START_FORK);
    c.fn = mpxt::behave_fn;
    mpx_process *p = nullptr;
    CHILD_MPX_OK(mpx_process_create(&p, &c));
    char buf[128];
    size_t len = sizeof buf;
    CHILD_MPX_OK(mpx_process_name(p, buf, &len));
    CHILD_CHECK(std::string(buf).rfind("Process-", 0) == 0);
    CHILD_MPX_OK(mpx_process_start(p));
    CHILD_MPX_OK(mpx_process_join(p, 5000));
    int code = -1;
    CHILD_MPX_OK(mpx_process_exitcode(p, &code));
    CHILD_CHECK_EQ(code, 0);
    mpx_process_destroy(p);
    return 0;
  });
  EXPECT_TRUE(st.ok()) << st.describe();
}

TEST(ProcessAfterFork, DaemonWhoseParentAlreadyDiedExitsWithOne) {
  // H (a subreaper) forks M, M forks C and exits; C then claims to be M's daemon.
  auto st = mpxt::run_in_child([] {
    CHILD_CHECK(prctl(PR_SET_CHILD_SUBREAPER, 1) == 0);
    mpxt::Shared<std::atomic<int64_t>> c_pid(0);
    pid_t m = fork();
    if (m == 0) {
      const pid_t dead_parent = getpid();
      pid_t c = fork();
      if (c == 0) {
        while (!mpxt::proc_dead(dead_parent)) std::this_thread::sleep_for(5ms);
        auto o = mpxt::process_options();
        o.daemon = 1;
        mpx_process_after_fork(&o, dead_parent);
        _exit(42);  // after_fork returned: wrong
      }
      c_pid->store(c);
      _exit(0);
    }
    int ws = 0;
    CHILD_CHECK(waitpid(m, &ws, 0) == m);
    for (int i = 0; i < 500 && c_pid->load() == 0; ++i) std::this_thread::sleep_for(1ms);
    const pid_t c = static_cast<pid_t>(c_pid->load());
    CHILD_CHECK(c > 0);
    mpxt::Stopwatch sw;
    int r = 0;
    while ((r = waitpid(c, &ws, WNOHANG)) == 0 && sw.ms() < 5000) std::this_thread::sleep_for(5ms);
    if (r == 0) {
      kill(c, SIGKILL);
      waitpid(c, &ws, 0);
      CHILD_FAIL("the orphaned daemon did not exit");
    }
    CHILD_CHECK(WIFEXITED(ws));
    CHILD_CHECK_EQ(WEXITSTATUS(ws), 1);
    return 0;
  });
  EXPECT_TRUE(st.ok()) << st.describe();
}

// ---- the forkserver ------------------------------------------------------------------------------

TEST(ProcessForkserver, StartIsIdempotentAndThePidIsAChildOfOurs) {
  int64_t before = 0, after = 0;
  ASSERT_MPX_OK(mpx_forkserver_pid(&before));
  ASSERT_GT(before, 0);
  EXPECT_MPX_OK(mpx_forkserver_start()) << "already running";
  ASSERT_MPX_OK(mpx_forkserver_pid(&after));
  EXPECT_EQ(after, before);
  int64_t ppid = 0;
  EXPECT_NE(mpxt::proc_state(before, &ppid), 0);
  EXPECT_EQ(ppid, getpid());
}

TEST(ProcessForkserver, StopKillsDaemonsAndLeavesTheOtherChildrenRunning) {
  // process.h: "Its daemon children are killed; the others go on, but their exit codes are
  // lost (they read as 255)."
  int64_t server = 0;
  ASSERT_MPX_OK(mpx_forkserver_pid(&server));
  auto blocked = start_behaving(kForkserver, mpxt::kBlock);
  auto sleeper = start_behaving(kForkserver, mpxt::kSleep300);
  auto daemon = start_behaving(kForkserver, mpxt::kBlock, true);
  ASSERT_TRUE(blocked && sleeper && daemon);
  const int64_t blocked_pid = mpxt::pid_of(blocked.get()), daemon_pid = mpxt::pid_of(daemon.get());
  ASSERT_MPX_OK(mpx_forkserver_stop());
  int64_t now = -1;
  EXPECT_MPX_OK(mpx_forkserver_pid(&now));
  EXPECT_EQ(now, 0);
  EXPECT_GE(mpxt::ms_until([&] { return mpxt::proc_state(server) == 0; }, 3000ms), 0)
      << "the stopped server is gone and reaped";
  EXPECT_GE(mpxt::ms_until([&] { return mpxt::proc_dead(daemon_pid); }, 2000ms), 0) << "its daemon child was killed";
  EXPECT_MPX_OK(mpx_process_join(daemon.get(), 2000)) << "the daemon's object sees it end";
  EXPECT_FALSE(mpxt::proc_dead(blocked_pid)) << "a non-daemon child goes on";
  EXPECT_TRUE(mpxt::is_alive(blocked.get()));
  EXPECT_EQ(mpxt::join_exitcode(sleeper.get()), 255) << "ended after the stop: exit code lost";
  EXPECT_MPX_OK(mpx_process_kill(blocked.get()));
  EXPECT_EQ(mpxt::join_exitcode(blocked.get()), 255) << "killed after the stop: exit code lost";
  EXPECT_TRUE(mpxt::proc_dead(blocked_pid)) << "mpx_process_kill still reaches it";
  // Starts again on demand (and for the rest of the tests).
  auto again = start_behaving(kForkserver, mpxt::kExit7);
  ASSERT_TRUE(again);
  EXPECT_EQ(mpxt::join_exitcode(again.get()), 7);
  ASSERT_MPX_OK(mpx_forkserver_pid(&now));
  EXPECT_GT(now, 0);
  EXPECT_NE(now, server);
}

TEST(ProcessForkserver, AForkedChildNeitherUsesNorStopsItsParentsServer) {
  int64_t server = 0;
  ASSERT_MPX_OK(mpx_forkserver_pid(&server));
  ASSERT_GT(server, 0);
  const int64_t parent_server = server;
  auto st = mpxt::run_in_child([parent_server] {
    int64_t mine = -1;
    CHILD_MPX_OK(mpx_forkserver_pid(&mine));
    CHILD_CHECK(mine != parent_server);  // not ours
    CHILD_MPX_OK(mpx_forkserver_stop());  // must not stop the parent's
    uint8_t b = mpxt::kExit7;
    auto o = mpxt::process_options(MPX_START_FORKSERVER);
    o.entry = "mpxt.behave";
    o.payload = &b;
    o.payload_size = 1;
    mpx_process *p = nullptr;
    CHILD_MPX_OK(mpx_process_create(&p, &o));
    CHILD_MPX_OK(mpx_process_start(p));
    CHILD_MPX_OK(mpx_forkserver_pid(&mine));
    CHILD_CHECK(mine > 0 && mine != parent_server);
    int64_t ppid = 0;
    mpxt::proc_state(mine, &ppid);
    CHILD_CHECK_EQ(ppid, getpid());
    CHILD_MPX_OK(mpx_process_join(p, 5000));
    int code = 0;
    CHILD_MPX_OK(mpx_process_exitcode(p, &code));
    CHILD_CHECK_EQ(code, 7);
    mpx_process_destroy(p);
    CHILD_MPX_OK(mpx_forkserver_stop());
    return 0;
  });
  EXPECT_TRUE(st.ok()) << st.describe();
  int64_t now = 0;
  ASSERT_MPX_OK(mpx_forkserver_pid(&now));
  EXPECT_EQ(now, server);
  EXPECT_FALSE(mpxt::proc_dead(server)) << "the child stopped its parent's server";
  auto p = start_behaving(kForkserver, mpxt::kReturn);
  ASSERT_TRUE(p);
  EXPECT_EQ(mpxt::join_exitcode(p.get()), 0);
}

TEST(ProcessRegister, SameNameSameFunctionIsOkAnotherFunctionIsEexist) {
  EXPECT_MPX_OK(mpx_register("mpxt.behave", mpxt::behave_entry)) << "again, same function";
  EXPECT_MPX(MPX_EEXIST, mpx_register("mpxt.behave", mpxt::exit_with_entry));
}
