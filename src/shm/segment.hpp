// A mapped shared-memory file: anonymous (memfd) or named (shm_open). One mapping per file
// per process: attaching the same file again returns the same Segment (cached by inode).
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/error.hpp"

namespace mpx {

class Segment {
 public:
  ~Segment();
  Segment(const Segment &) = delete;
  Segment &operator=(const Segment &) = delete;

  // Anonymous (memfd), zero-filled, inherited by forked children.
  static Status create_anonymous(size_t bytes, std::shared_ptr<Segment> *out);
  // Named, created exclusively with mode 0600 (whatever the umask). name: validated form.
  // tracked: the tracker removes the name once this process is gone and nobody holds it.
  static Status create_named(const std::string &name, size_t bytes, bool tracked, std::shared_ptr<Segment> *out);
  static Status create_random(size_t bytes, bool tracked, std::shared_ptr<Segment> *out);
  // Attach by name: MPX_ENOENT when missing, MPX_EACCES when not ours or not 0600.
  static Status attach_named(const std::string &name, std::shared_ptr<Segment> *out);
  // Attach an anonymous segment of process `pid` by its descriptor number and inode: the
  // inherited descriptor when this process has it, else /proc/<pid>/fd/<fd>.
  static Status attach_anonymous(uint32_t pid, int fd, uint64_t ino, std::shared_ptr<Segment> *out);

  // Map a descriptor received from another process (a memfd, or a named segment's, then
  // `name` is its name); its size comes from fstat. The descriptor is owned from here on.
  static Status adopt_fd(int fd, std::string name, std::shared_ptr<Segment> *out);

  // The descriptors of every segment this process has mapped (a fork that closes the
  // descriptors it inherited must keep these).
  static void live_fds(std::vector<int> *out);

  // Normalise a user-supplied name: strip one leading '/', reject '/' and empty or too long.
  static Status check_name(const char *name, std::string *normalised);
  static Status unlink_name(const std::string &name);

  uint8_t *base() const { return base_; }
  size_t size() const { return size_; }
  int fd() const { return fd_; }
  uint64_t inode() const { return ino_; }
  bool named() const { return !name_.empty(); }
  const std::string &name() const { return name_; }

  // Printable token naming byte `offset` of this segment: "mpx1:n:<name>:<off>" or
  // "mpx1:a:<pid>:<fd>:<ino>:<off>".
  std::string token(uint64_t offset) const;

 private:
  Segment() = default;
  static Status map_fd(int fd, std::string name, bool check_owner, std::shared_ptr<Segment> *out);

  int fd_ = -1;
  uint8_t *base_ = nullptr;
  size_t size_ = 0;
  uint64_t dev_ = 0;
  uint64_t ino_ = 0;
  std::string name_;
};

// A parsed token.
struct Token {
  bool named = false;
  std::string name;  // named
  uint32_t pid = 0;  // anonymous
  int fd = -1;
  uint64_t ino = 0;
  uint64_t offset = 0;
};

Status parse_token(const char *text, Token *out);
Status attach_token(const Token &t, std::shared_ptr<Segment> *out);

}  // namespace mpx
