/* A program outside the mpx tree, built against an installed mpx. */
#define _POSIX_C_SOURCE 200809L
#include <mpx/mpx.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

int main(void) {
  mpx_array *counter;
  mpx_lock *lock;
  long *value;
  if (mpx_array_create(&counter, 'l', 1, NULL) != MPX_OK || mpx_array_lock(counter, &lock) != MPX_OK ||
      mpx_array_address(counter, (void **)&value) != MPX_OK) {
    fprintf(stderr, "mpx: %s\n", mpx_last_error_message());
    return 1;
  }
  pid_t kids[2];
  for (int k = 0; k < 2; k++) {
    if ((kids[k] = fork()) == 0) {
      for (int i = 0; i < 10000; i++) {
        mpx_lock_acquire(lock, MPX_INFINITE);
        ++*value;
        mpx_lock_release(lock);
      }
      _exit(0);
    }
  }
  for (int k = 0; k < 2; k++) waitpid(kids[k], NULL, 0);
  printf("consumer: libmpx %s, counter %ld\n", mpx_version_string(), *value);
  mpx_lock_destroy(lock);
  mpx_array_destroy(counter);
  return *value == 20000 ? 0 : 1;
}
