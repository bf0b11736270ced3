#include "core/error.hpp"

#include <cstring>

namespace mpx {
namespace detail {

namespace {
thread_local char t_message[512];
}

void set_message(const char *msg) noexcept {
  std::strncpy(t_message, msg, sizeof t_message - 1);
  t_message[sizeof t_message - 1] = '\0';
}

const char *message() noexcept { return t_message; }

}  // namespace detail

Status errno_to_status(int err) noexcept {
  switch (err) {
    case 0: return MPX_OK;
    case EINVAL: return MPX_EINVAL;
    case ENOMEM: return MPX_ENOMEM;
    case ETIMEDOUT: return MPX_ETIMEDOUT;
    case EEXIST: return MPX_EEXIST;
    case ENOENT: return MPX_ENOENT;
    case EACCES: return MPX_EACCES;
    case EPERM: return MPX_EPERM;
    case EOVERFLOW: return MPX_EOVERFLOW;
    case ENOBUFS: return MPX_ENOBUFS;
    case ENOSYS:
    case EOPNOTSUPP: return MPX_ENOTSUP;
    case ERANGE: return MPX_ERANGE;
    case EMFILE:
    case ENFILE: return MPX_EMFILE;
    case ENOSPC: return MPX_ENOSPC;
    case EMSGSIZE: return MPX_EMSGSIZE;
    case EPROTO: return MPX_EPROTO;
    case EPIPE: return MPX_EPIPE;
    case EADDRINUSE: return MPX_EADDRINUSE;
    case EAGAIN: return MPX_EAGAIN;
    case EDEADLK: return MPX_EDEADLK;
    case ENAMETOOLONG: return MPX_EINVAL;
    default: return MPX_ESYS;
  }
}

Status fail_errno(const char *what, int err) noexcept {
  return fail(errno_to_status(err), "{}: {} (errno {})", what, std::strerror(err), err);
}

}  // namespace mpx

namespace {
struct ErrorInfo {
  int code;
  const char *name;
  const char *text;
};

constexpr ErrorInfo kErrors[] = {
    {MPX_OK, "MPX_OK", "success"},
    {MPX_EINVAL, "MPX_EINVAL", "invalid argument"},
    {MPX_ENOMEM, "MPX_ENOMEM", "out of memory"},
    {MPX_EBADHANDLE, "MPX_EBADHANDLE", "invalid, destroyed or mistyped handle"},
    {MPX_ETIMEDOUT, "MPX_ETIMEDOUT", "timed out"},
    {MPX_EEXIST, "MPX_EEXIST", "already exists"},
    {MPX_ENOENT, "MPX_ENOENT", "no such name"},
    {MPX_EACCES, "MPX_EACCES", "permission denied"},
    {MPX_EPERM, "MPX_EPERM", "operation not permitted"},
    {MPX_EOWNERDEAD, "MPX_EOWNERDEAD", "previous owner died; state may be inconsistent"},
    {MPX_ENOTRECOVERABLE, "MPX_ENOTRECOVERABLE", "state not recoverable"},
    {MPX_EOVERFLOW, "MPX_EOVERFLOW", "value would exceed its maximum"},
    {MPX_EBROKEN, "MPX_EBROKEN", "broken"},
    {MPX_ECLOSED, "MPX_ECLOSED", "closed"},
    {MPX_ECORRUPT, "MPX_ECORRUPT", "shared state is corrupt"},
    {MPX_ENOBUFS, "MPX_ENOBUFS", "buffer too small"},
    {MPX_EFORKED, "MPX_EFORKED", "handle not usable in a forked child"},
    {MPX_ENOTSUP, "MPX_ENOTSUP", "not supported"},
    {MPX_ESYS, "MPX_ESYS", "system error"},
    {MPX_ERANGE, "MPX_ERANGE", "index out of range"},
    {MPX_EMFILE, "MPX_EMFILE", "too many open files"},
    {MPX_ENOSPC, "MPX_ENOSPC", "no space left"},
    {MPX_EMSGSIZE, "MPX_EMSGSIZE", "message too large"},
    {MPX_EOF, "MPX_EOF", "end of file"},
    {MPX_EPROTO, "MPX_EPROTO", "protocol error"},
    {MPX_EPIPE, "MPX_EPIPE", "broken pipe"},
    {MPX_EAUTH, "MPX_EAUTH", "authentication failed"},
    {MPX_EWORKERDIED, "MPX_EWORKERDIED", "worker died"},
    {MPX_EADDRINUSE, "MPX_EADDRINUSE", "address already in use"},
    {MPX_EAGAIN, "MPX_EAGAIN", "resource temporarily unavailable"},
    {MPX_EDEADLK, "MPX_EDEADLK", "operation would deadlock"},
    {MPX_ETASK, "MPX_ETASK", "the task failed"},
    {MPX_ECANCELED, "MPX_ECANCELED", "the task was cancelled"},
};

const ErrorInfo *find(int code) {
  for (const auto &e : kErrors)
    if (e.code == code) return &e;
  return nullptr;
}
}  // namespace

namespace mpx {
const char *error_text(int code) noexcept {
  const ErrorInfo *e = find(code);
  return e ? e->text : "unknown error";
}

const char *error_name(int code) noexcept {
  const ErrorInfo *e = find(code);
  return e ? e->name : "MPX_EUNKNOWN";
}
}  // namespace mpx

