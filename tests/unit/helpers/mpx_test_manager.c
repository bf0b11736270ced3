/*
 * The manager server program the spawn tests start (mpx_manager_options.file): all of it is
 * mpx_manager_main(), which serves as the parent asked and returns once the server stops.
 * Exit status: 0 after a clean stop, 1 when mpx_manager_main failed (a message on stderr).
 */
#include <stdio.h>

#include "mpx/mpx.h"

int main(void) {
  const int rc = mpx_manager_main();
  if (rc != MPX_OK) {
    fprintf(stderr, "mpx_test_manager: %s: %s\n", mpx_error_name(rc), mpx_last_error_message());
    return 1;
  }
  return 0;
}
