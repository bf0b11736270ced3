#include "support/leak.hpp"

#include <dirent.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace mpxt {

void run_helper_if_requested();  // child.cpp

static bool env_off(const char *name) {
  const char *v = std::getenv(name);
  return v != nullptr && (std::strcmp(v, "0") == 0 || std::strcmp(v, "off") == 0 || std::strcmp(v, "no") == 0);
}

static std::vector<std::string> list_dir(const char *path) {
  std::vector<std::string> out;
  DIR *d = opendir(path);
  if (d == nullptr) return out;
  while (dirent *e = readdir(d)) {
    if (std::strcmp(e->d_name, ".") == 0 || std::strcmp(e->d_name, "..") == 0) continue;
    out.emplace_back(e->d_name);
  }
  closedir(d);
  return out;
}

int count_fds() { return static_cast<int>(list_dir("/proc/self/fd").size()) - 1; /* opendir's own */ }

std::set<std::string> shm_entries() {
  auto v = list_dir("/dev/shm");
  return std::set<std::string>(v.begin(), v.end());
}

int count_threads() { return static_cast<int>(list_dir("/proc/self/task").size()); }

static std::set<std::string> fd_targets() {
  std::set<std::string> out;
  for (const auto &name : list_dir("/proc/self/fd")) {
    char buf[512];
    std::string p = "/proc/self/fd/" + name;
    ssize_t n = readlink(p.c_str(), buf, sizeof buf - 1);
    if (n < 0) continue;  // the directory's own fd, already closed
    buf[n] = '\0';
    out.insert(name + " -> " + buf);
  }
  return out;
}

ResourceSnapshot take_snapshot() {
  ResourceSnapshot s;
  s.fd_targets = fd_targets();
  s.fds = static_cast<int>(s.fd_targets.size());
  s.shm = shm_entries();
  s.threads = count_threads();
  const pid_t self = getpid();
  for (const auto &name : list_dir("/proc")) {
    if (name.empty() || name[0] < '0' || name[0] > '9') continue;
    std::ifstream st("/proc/" + name + "/stat");
    std::string line;
    if (!std::getline(st, line)) continue;
    // pid (comm) state ppid ...; comm may contain spaces and parentheses.
    auto close = line.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream rest(line.substr(close + 1));
    char state = '?';
    long ppid = 0;
    rest >> state >> ppid;
    if (ppid != self) continue;
    if (state == 'Z')
      ++s.zombies;
    else
      ++s.children;
  }
  return s;
}

// Names made by mpxt::unique_name in another process ("mpxt.<pid>."): another test's, when
// tests run in parallel.
static bool other_tests_name(const std::string &name) {
  if (name.rfind("mpxt.", 0) != 0) return false;
  const long pid = std::strtol(name.c_str() + 5, nullptr, 10);
  return pid > 0 && pid != getpid();
}

// Is /dev/shm/<name> open or mapped by a process that is neither this one nor one of its
// children? Then it belongs to someone else (a test running in parallel, the user's programs).
static bool held_by_unrelated_process(const std::string &name) {
  const std::string target = "/dev/shm/" + name;
  const pid_t self = getpid();
  for (const auto &p : list_dir("/proc")) {
    if (p.empty() || p[0] < '0' || p[0] > '9') continue;
    const pid_t pid = static_cast<pid_t>(std::atol(p.c_str()));
    if (pid == self) continue;
    std::ifstream st("/proc/" + p + "/stat");
    std::string line;
    if (std::getline(st, line)) {
      auto close = line.rfind(')');
      std::istringstream rest(close == std::string::npos ? std::string() : line.substr(close + 1));
      char state = '?';
      long ppid = 0;
      rest >> state >> ppid;
      if (ppid == self) continue;
    }
    std::ifstream maps("/proc/" + p + "/maps");
    std::string m;
    while (std::getline(maps, m))
      if (m.find(target) != std::string::npos) return true;
    for (const auto &fd : list_dir(("/proc/" + p + "/fd").c_str())) {
      char buf[512];
      ssize_t n = readlink(("/proc/" + p + "/fd/" + fd).c_str(), buf, sizeof buf - 1);
      if (n > 0 && target.compare(0, std::string::npos, buf, static_cast<size_t>(n)) == 0) return true;
    }
  }
  return false;
}

bool foreign_shm(const std::string &name) { return other_tests_name(name) || held_by_unrelated_process(name); }

std::string leak_report(const ResourceSnapshot &before, const ResourceSnapshot &after) {
  std::ostringstream r;
  if (after.fds != before.fds) {
    r << "open fds " << before.fds << " -> " << after.fds << ";";
    for (const auto &t : after.fd_targets)
      if (!before.fd_targets.count(t)) r << " new [" << t << "]";
    for (const auto &t : before.fd_targets)
      if (!after.fd_targets.count(t)) r << " gone [" << t << "]";
    r << "\n";
  }
  if (!env_off("MPX_TEST_SHM_CHECK")) {
    for (const auto &n : after.shm)
      if (!before.shm.count(n) && !foreign_shm(n)) r << "/dev/shm/" << n << " left behind\n";
  }
  if (after.children != before.children)
    r << "live child processes " << before.children << " -> " << after.children << "\n";
  if (after.zombies != before.zombies) r << "zombies " << before.zombies << " -> " << after.zombies << "\n";
  if (after.threads != before.threads) r << "threads " << before.threads << " -> " << after.threads << "\n";
  return r.str();
}

// Other processes (e.g. tests run in parallel) may be creating and removing /dev/shm entries, and
// a child we killed may take a moment to be reaped by us: re-check for a while before failing.
// A name whose creator (another test) has exited is removed by mpx's tracker within a few
// seconds: /dev/shm differences get that long, the rest 1 s.
static std::string settled_report(const ResourceSnapshot &before) {
  std::string report;
  for (int i = 0; i < 280; ++i) {
    ResourceSnapshot now = take_snapshot();
    report = leak_report(before, now);
    if (report.empty()) break;
    const bool only_shm = report.find("/dev/shm/") != std::string::npos &&
                          leak_report(before, ResourceSnapshot{now.fds, now.fd_targets, before.shm, now.children,
                                                               now.zombies, now.threads})
                              .empty();
    if (i >= 40 && !only_shm) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  return report;
}

LeakGuard::LeakGuard() : before_(take_snapshot()) {}

LeakGuard::~LeakGuard() {
  std::string r = settled_report(before_);
  if (!r.empty()) ADD_FAILURE() << "resources leaked:\n" << r;
}

static std::vector<void (*)()> &warmups() {
  static std::vector<void (*)()> v;
  return v;
}

bool register_warmup(void (*fn)()) {
  warmups().push_back(fn);
  return true;
}

namespace {

class LeakListener : public ::testing::EmptyTestEventListener {
 public:
  void OnTestProgramStart(const ::testing::UnitTest &) override {
    run_helper_if_requested();  // a re-exec'ed helper never returns from here
    if (!enabled_) return;
    // The first thread a process creates may bring a runtime thread with it (ThreadSanitizer's
    // background thread): let that happen before the first snapshot.
    std::thread([] {}).join();
    for (auto fn : warmups()) fn();
  }
  void OnTestStart(const ::testing::TestInfo &) override {
    if (enabled_) before_ = take_snapshot();
  }
  // Listeners appended after the default printer get OnTestEnd before it, so a failure added
  // here is still reported as this test's failure.
  void OnTestEnd(const ::testing::TestInfo &info) override {
    if (!enabled_ || info.result()->Skipped()) return;
    std::string r = settled_report(before_);
    if (!r.empty()) ADD_FAILURE() << "resources leaked by " << info.test_suite_name() << "." << info.name() << ":\n" << r;
  }

 private:
  bool enabled_ = !env_off("MPX_TEST_LEAK_CHECK");
  ResourceSnapshot before_;
};

}  // namespace

void install_support() {
  static bool installed = [] {
    ::testing::UnitTest::GetInstance()->listeners().Append(new LeakListener);
    return true;
  }();
  (void)installed;
}

// Installed in every binary that links this object (child.cpp references install_support).
[[maybe_unused]] static const bool g_installed = (install_support(), true);

}  // namespace mpxt
