// C entry points shared by every module: errors, version, library memory.
#include <cstdlib>

#include "core/error.hpp"

extern "C" {

MPX_API const char *mpx_strerror(int code) { return mpx::error_text(code); }
MPX_API const char *mpx_error_name(int code) { return mpx::error_name(code); }
MPX_API const char *mpx_last_error_message(void) { return mpx::detail::message(); }
MPX_API uint32_t mpx_version(void) { return MPX_VERSION_NUMBER; }

#define MPX_STR2(x) #x
#define MPX_STR(x) MPX_STR2(x)
MPX_API const char *mpx_version_string(void) {
  return MPX_STR(MPX_VERSION_MAJOR) "." MPX_STR(MPX_VERSION_MINOR) "." MPX_STR(MPX_VERSION_PATCH);
}

MPX_API void mpx_free(void *ptr) { std::free(ptr); }

}  // extern "C"
