/* mpx-manager: the program a manager server started by spawn runs (mpx_manager_options.file).
 * It serves as its parent asked through the environment, and exits once the server stops. */
#include <stdio.h>

#include "mpx/manager.h"

int main(void) {
  const int rc = mpx_manager_main();
  if (rc != 0) fprintf(stderr, "mpx-manager: %s (%s)\n", mpx_last_error_message(), mpx_error_name(rc));
  return rc == 0 ? 0 : 1;
}
