// Internal error reporting: a Status is an mpx error code; detail goes to the calling
// thread's last-error message, formatted with fmt. Codes map 1:1 to the C API's MPX_E*.
#pragma once

#include <cerrno>
#include <fmt/format.h>

#include "mpx/common.h"

namespace mpx {

using Status = int;  // MPX_OK or a negative MPX_E* code

namespace detail {
void set_message(const char *msg) noexcept;
const char *message() noexcept;
}  // namespace detail

const char *error_text(int code) noexcept;  // static English text, never NULL
const char *error_name(int code) noexcept;  // "MPX_E..." or "MPX_EUNKNOWN"

// Record `code` with a formatted message for the calling thread and return the code.
template <typename... Args>
Status fail(Status code, fmt::format_string<Args...> f, Args &&...args) noexcept {
  try {
    detail::set_message(fmt::format(f, std::forward<Args>(args)...).c_str());
  } catch (...) {
    detail::set_message(error_text(code));
  }
  return code;
}

// Map an errno value to the closest mpx code.
Status errno_to_status(int err) noexcept;

// fail() for a failed system call: the code from errno, the message naming the call.
Status fail_errno(const char *what, int err = errno) noexcept;

}  // namespace mpx
