#include "shm/segment.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <map>
#include <utility>

#include "mpx/segment.h"
#include "platform/fork_mutex.hpp"
#include "platform/process.hpp"
#include "shm/tracker.hpp"

namespace mpx {

namespace {

// One mapping per (device, inode) in this process.
// Recursive: dropping the last reference to a Segment under the lock re-enters it.
platform::ForkMutex g_cache_mu(platform::ForkMutex::kSegmentCache, true);
std::map<std::pair<uint64_t, uint64_t>, std::weak_ptr<Segment>> *g_cache = nullptr;

struct CacheLock : platform::ForkMutexGuard {
  CacheLock() : ForkMutexGuard(g_cache_mu) {}
};

std::shared_ptr<Segment> cache_find(uint64_t dev, uint64_t ino) {
  if (!g_cache) return nullptr;
  auto it = g_cache->find({dev, ino});
  return it == g_cache->end() ? nullptr : it->second.lock();
}

void cache_put(uint64_t dev, uint64_t ino, const std::shared_ptr<Segment> &seg) {
  if (!g_cache) g_cache = new std::map<std::pair<uint64_t, uint64_t>, std::weak_ptr<Segment>>();
  (*g_cache)[{dev, ino}] = seg;
}

std::string shm_path(const std::string &name) { return "/" + name; }

}  // namespace

Segment::~Segment() {
  if (base_) munmap(base_, size_);
  if (fd_ >= 0) close(fd_);
  CacheLock lock;
  if (g_cache) {
    auto it = g_cache->find({dev_, ino_});
    if (it != g_cache->end() && it->second.expired()) g_cache->erase(it);
  }
}

void Segment::live_fds(std::vector<int> *out) {
  std::vector<std::shared_ptr<Segment>> live;  // released after the lock
  CacheLock lock;
  if (!g_cache) return;
  for (auto &[key, weak] : *g_cache)
    if (auto seg = weak.lock(); seg && seg->fd_ >= 0) {
      out->push_back(seg->fd_);
      live.push_back(std::move(seg));
    }
}

Status Segment::check_name(const char *name, std::string *normalised) {
  if (!name) return fail(MPX_EINVAL, "segment name is NULL");
  if (*name == '/') ++name;
  const size_t n = std::strlen(name);
  if (n == 0) return fail(MPX_EINVAL, "segment name is empty");
  if (n > MPX_SEGMENT_NAME_MAX)
    return fail(MPX_EINVAL, "segment name is {} bytes, longer than {}", n, MPX_SEGMENT_NAME_MAX);
  if (std::strchr(name, '/')) return fail(MPX_EINVAL, "segment name '{}' contains '/'", name);
  if (std::strcmp(name, ".") == 0 || std::strcmp(name, "..") == 0)
    return fail(MPX_EINVAL, "segment name '{}' is reserved", name);
  normalised->assign(name, n);
  return MPX_OK;
}

Status Segment::map_fd(int fd, std::string name, bool check_owner, std::shared_ptr<Segment> *out) {
  struct stat st;
  if (fstat(fd, &st) != 0) {
    Status s = fail_errno("fstat");
    close(fd);
    return s;
  }
  if (check_owner && (st.st_uid != geteuid() || (st.st_mode & 077) != 0)) {
    close(fd);
    return fail(MPX_EACCES, "segment '{}' has owner {} and mode {:o}; mpx attaches only its user's 0600 segments",
                name, unsigned(st.st_uid), unsigned(st.st_mode & 0777));
  }
  if (st.st_size <= 0) {
    close(fd);
    return fail(MPX_ECORRUPT, "segment '{}' is empty", name);
  }
  CacheLock lock;
  if (auto existing = cache_find(uint64_t(st.st_dev), uint64_t(st.st_ino))) {
    close(fd);
    *out = std::move(existing);
    return MPX_OK;
  }
  void *p = mmap(nullptr, size_t(st.st_size), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) {
    Status s = fail_errno("mmap");
    close(fd);
    return s;
  }
  std::shared_ptr<Segment> seg(new (std::nothrow) Segment());
  if (!seg) {
    munmap(p, size_t(st.st_size));
    close(fd);
    return fail(MPX_ENOMEM, "out of memory");
  }
  seg->fd_ = fd;
  seg->base_ = static_cast<uint8_t *>(p);
  seg->size_ = size_t(st.st_size);
  seg->dev_ = uint64_t(st.st_dev);
  seg->ino_ = uint64_t(st.st_ino);
  seg->name_ = std::move(name);
  cache_put(seg->dev_, seg->ino_, seg);
  *out = std::move(seg);
  return MPX_OK;
}

Status Segment::create_anonymous(size_t bytes, std::shared_ptr<Segment> *out) {
  if (bytes == 0) return fail(MPX_EINVAL, "segment size is 0");
  if (bytes > size_t(INT64_MAX)) return fail(MPX_EINVAL, "segment size {} is too large", bytes);
  int fd = memfd_create("mpx", MFD_CLOEXEC);
  if (fd < 0) return fail_errno("memfd_create");
  if (ftruncate(fd, off_t(bytes)) != 0) {
    Status s = fail_errno("ftruncate");
    close(fd);
    return s;
  }
  return map_fd(fd, std::string(), false, out);
}

Status Segment::create_named(const std::string &name, size_t bytes, bool tracked, std::shared_ptr<Segment> *out) {
  if (bytes == 0) return fail(MPX_EINVAL, "segment size is 0");
  if (bytes > size_t(INT64_MAX)) return fail(MPX_EINVAL, "segment size {} is too large", bytes);
  // O_EXCL: never adopt a name someone else created first, whatever its mode.
  int fd = shm_open(shm_path(name).c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    if (errno == EEXIST) return fail(MPX_EEXIST, "segment '{}' already exists", name);
    return fail_errno("shm_open");
  }
  // The umask may have cleared bits of 0600 but never added any; make it exactly 0600.
  fchmod(fd, 0600);
  // Every holder keeps a shared lock: the tracker removes the name only when none is left.
  flock(fd, LOCK_SH);
  if (ftruncate(fd, off_t(bytes)) != 0) {
    Status s = fail_errno("ftruncate");
    close(fd);
    shm_unlink(shm_path(name).c_str());
    return s;
  }
  Status s = map_fd(fd, name, false, out);
  if (s != MPX_OK) {
    shm_unlink(shm_path(name).c_str());
    return s;
  }
  if (tracked) tracker::track(name, (*out)->inode());
  return MPX_OK;
}

Status Segment::create_random(size_t bytes, bool tracked, std::shared_ptr<Segment> *out) {
  for (int attempt = 0; attempt < 16; ++attempt) {
    uint64_t r;
    if (!platform::random_bytes(&r, sizeof r)) return fail_errno("getrandom");
    char name[32];
    std::snprintf(name, sizeof name, "mpx_%016" PRIx64, r);
    Status s = create_named(name, bytes, tracked, out);
    if (s != MPX_EEXIST) return s;
  }
  return fail(MPX_EEXIST, "could not find a free random segment name");
}

Status Segment::attach_named(const std::string &name, std::shared_ptr<Segment> *out) {
  int fd = shm_open(shm_path(name).c_str(), O_RDWR | O_CLOEXEC, 0);
  if (fd < 0) {
    if (errno == ENOENT) return fail(MPX_ENOENT, "no segment named '{}'", name);
    if (errno == EACCES) return fail(MPX_EACCES, "segment '{}': permission denied", name);
    return fail_errno("shm_open");
  }
  flock(fd, LOCK_SH);
  return map_fd(fd, name, true, out);
}

Status Segment::attach_anonymous(uint32_t pid, int fd, uint64_t ino, std::shared_ptr<Segment> *out) {
  {
    CacheLock lock;
    if (g_cache) {
      for (auto &[key, weak] : *g_cache) {
        if (key.second != ino) continue;
        if (auto seg = weak.lock(); seg && !seg->named()) {
          *out = std::move(seg);
          return MPX_OK;
        }
      }
    }
  }
  // The creator's descriptor, reached through /proc while the creator lives.
  struct stat st;
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%u/fd/%d", pid, fd);
  int own = open(path, O_RDWR | O_CLOEXEC);
  if (own >= 0 && fstat(own, &st) == 0 && uint64_t(st.st_ino) == ino) return map_fd(own, std::string(), false, out);
  int open_errno = errno;
  if (own >= 0) close(own);
  // A descriptor inherited across exec keeps its number, and outlives its creator. Probe it
  // only now (it may be any file of ours) and through a duplicate, so that it cannot be
  // closed and reused between the check and the map.
  if (fd >= 0) {
    int dup = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    if (dup >= 0 && fstat(dup, &st) == 0 && uint64_t(st.st_ino) == ino) return map_fd(dup, std::string(), false, out);
    if (dup >= 0) close(dup);
  }
  if (own >= 0) return fail(MPX_ENOENT, "anonymous segment {}:{} is gone (descriptor reused)", pid, fd);
  if (open_errno == ENOENT) return fail(MPX_ENOENT, "anonymous segment {}:{} is gone (its process exited)", pid, fd);
  if (open_errno == EACCES || open_errno == EPERM) return fail(MPX_EACCES, "cannot reach {}: permission denied", path);
  return fail_errno("open(/proc/<pid>/fd)", open_errno);
}

Status Segment::adopt_fd(int fd, std::string name, std::shared_ptr<Segment> *out) {
  // A named segment's shared flock (which keeps the tracker from removing the name) belongs
  // to the open file description, which the received descriptor shares with the sender's.
  return map_fd(fd, std::move(name), false, out);
}

Status Segment::unlink_name(const std::string &name) {
  if (shm_unlink(shm_path(name).c_str()) != 0) {
    if (errno == ENOENT) return fail(MPX_ENOENT, "no segment named '{}'", name);
    return fail_errno("shm_unlink");
  }
  tracker::untrack(name);
  return MPX_OK;
}

std::string Segment::token(uint64_t offset) const {
  if (named()) return fmt::format("mpx1:n:{}:{}", name_, offset);
  // Our descriptor number is valid in this process (inherited ones keep their number).
  return fmt::format("mpx1:a:{}:{}:{}:{}", platform::current_pid(), fd_, ino_, offset);
}

namespace {
bool parse_u64(const char *&p, uint64_t *v) {
  if (*p < '0' || *p > '9') return false;
  uint64_t x = 0;
  while (*p >= '0' && *p <= '9') {
    if (x > (UINT64_MAX - 9) / 10) return false;
    x = x * 10 + uint64_t(*p++ - '0');
  }
  *v = x;
  return true;
}
}  // namespace

Status parse_token(const char *text, Token *out) {
  if (!text) return fail(MPX_EINVAL, "token is NULL");
  if (std::strlen(text) >= MPX_TOKEN_MAX) return fail(MPX_EINVAL, "token is too long");
  const char *p = text;
  if (std::strncmp(p, "mpx1:", 5) != 0) return fail(MPX_EINVAL, "'{}' is not an mpx token", text);
  p += 5;
  Token t;
  if (p[0] == 'n' && p[1] == ':') {
    p += 2;
    const char *colon = std::strrchr(p, ':');
    if (!colon) return fail(MPX_EINVAL, "malformed token '{}'", text);
    std::string name(p, size_t(colon - p));
    if (Status s = Segment::check_name(name.c_str(), &t.name); s != MPX_OK) return s;
    p = colon + 1;
    t.named = true;
  } else if (p[0] == 'a' && p[1] == ':') {
    p += 2;
    uint64_t pid, fd;
    if (!parse_u64(p, &pid) || *p++ != ':' || !parse_u64(p, &fd) || *p++ != ':' || !parse_u64(p, &t.ino) ||
        *p++ != ':' || pid == 0 || pid > UINT32_MAX || fd > INT32_MAX)
      return fail(MPX_EINVAL, "malformed token '{}'", text);
    t.pid = uint32_t(pid);
    t.fd = int(fd);
  } else {
    return fail(MPX_EINVAL, "malformed token '{}'", text);
  }
  if (!parse_u64(p, &t.offset) || *p != '\0') return fail(MPX_EINVAL, "malformed token '{}'", text);
  *out = std::move(t);
  return MPX_OK;
}

Status attach_token(const Token &t, std::shared_ptr<Segment> *out) {
  return t.named ? Segment::attach_named(t.name, out) : Segment::attach_anonymous(t.pid, t.fd, t.ino, out);
}

}  // namespace mpx
