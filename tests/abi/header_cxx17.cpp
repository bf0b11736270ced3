// The umbrella header as strict C++17, linked against the shared library like a C++ user.
#include "mpx/mpx.h"

#include <cstdio>
#include <type_traits>

static_assert(std::is_same_v<decltype(&mpx_lock_acquire), int (*)(mpx_lock *, int64_t)>,
              "timeouts are int64_t milliseconds");
static_assert(std::is_standard_layout_v<mpx_segment_options> && std::is_trivial_v<mpx_segment_options>);
static_assert(std::is_standard_layout_v<mpx_lock_options> && std::is_trivial_v<mpx_lock_options>);
static_assert(std::is_standard_layout_v<mpx_semaphore_options> && std::is_trivial_v<mpx_semaphore_options>);
static_assert(std::is_standard_layout_v<mpx_array_options> && std::is_trivial_v<mpx_array_options>);
static_assert(MPX_OK == 0 && MPX_ERRNO_LAST < 0);

int main() {
  if (mpx_version() != MPX_VERSION_NUMBER) {
    std::fprintf(stderr, "header version %d, library %u\n", MPX_VERSION_NUMBER, mpx_version());
    return 1;
  }
  mpx_event *ev = nullptr;
  int rc = mpx_event_create(&ev);
  if (rc == MPX_OK) rc = mpx_event_set(ev);
  if (rc == MPX_OK) rc = mpx_event_wait(ev, 0);
  mpx_event_destroy(ev);
  if (rc != MPX_OK) {
    std::fprintf(stderr, "event round trip: %s (%s)\n", mpx_error_name(rc), mpx_last_error_message());
    return 1;
  }
  std::printf("mpx %s from C++17: ok\n", mpx_version_string());
  return 0;
}
