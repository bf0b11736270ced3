/* The umbrella header as strict C99, linked against the shared library like a C user. */
#include "mpx/mpx.h"

#include <stdio.h>
#include <string.h>

int main(void) {
  mpx_lock *lock = NULL;
  mpx_lock_options lo;
  mpx_segment_options so;
  mpx_semaphore_options sem;
  mpx_array_options ao;
  int64_t forever = MPX_INFINITE;
  char token[MPX_TOKEN_MAX];
  size_t len = sizeof token;
  int rc;

  if (mpx_version() != MPX_VERSION_NUMBER) {
    fprintf(stderr, "header version %d, library %u\n", MPX_VERSION_NUMBER, (unsigned)mpx_version());
    return 1;
  }
  if (mpx_lock_options_init(&lo, sizeof lo) != MPX_OK || mpx_segment_options_init(&so, sizeof so) != MPX_OK ||
      mpx_semaphore_options_init(&sem, sizeof sem) != MPX_OK || mpx_array_options_init(&ao, sizeof ao) != MPX_OK) {
    fprintf(stderr, "options_init failed: %s\n", mpx_last_error_message());
    return 1;
  }
  rc = mpx_lock_create(&lock, &lo);
  if (rc != MPX_OK) {
    fprintf(stderr, "mpx_lock_create: %s (%s)\n", mpx_error_name(rc), mpx_last_error_message());
    return 1;
  }
  rc = mpx_lock_acquire(lock, forever);
  if (rc == MPX_OK) rc = mpx_lock_release(lock);
  if (rc == MPX_OK) rc = mpx_lock_token(lock, token, &len);
  if (rc == MPX_OK && strlen(token) != len) rc = MPX_EINVAL;
  mpx_lock_destroy(lock);
  if (rc != MPX_OK) {
    fprintf(stderr, "lock round trip: %s (%s)\n", mpx_error_name(rc), mpx_last_error_message());
    return 1;
  }
  printf("mpx %s from C99: ok\n", mpx_version_string());
  return 0;
}
