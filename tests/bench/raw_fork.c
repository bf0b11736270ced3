/* raw_fork: the raw cost of starting and joining an empty child from a minimal C program.
 *
 * bench_process runs this beside its own in-process baselines. fork() copies the page tables
 * of every mapping of the parent, so a process that has libstdc++ and libmpx mapped forks
 * slower than this program, which has only libc: this is the floor for fork() on the machine.
 * No C++ runtime and no libmpx here (see CMakeLists.txt).
 *
 *   bench_raw_fork fork N     N x (fork, child _exit(0), waitpid)
 *   bench_raw_fork spawn N    N x (posix_spawn /bin/true, waitpid)
 *
 * Prints the mean time per start+join in microseconds on one line; exits 1 if a child did not
 * exit with status 0, 2 on bad arguments.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static double now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int reap(pid_t pid) {
  int st = 0;
  while (waitpid(pid, &st, 0) < 0)
    if (errno != EINTR) return 0;
  return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

int main(int argc, char **argv) {
  if (argc != 3 || (strcmp(argv[1], "fork") != 0 && strcmp(argv[1], "spawn") != 0) || atol(argv[2]) <= 0) {
    fprintf(stderr, "usage: %s fork|spawn N\n", argv[0]);
    return 2;
  }
  const int spawn = strcmp(argv[1], "spawn") == 0;
  const long n = atol(argv[2]);
  char *child_argv[] = {"/bin/true", NULL};
  int bad = 0;
  const double t0 = now_us();
  for (long i = 0; i < n; ++i) {
    pid_t pid;
    if (spawn) {
      if (posix_spawn(&pid, "/bin/true", NULL, NULL, child_argv, environ) != 0) return 1;
    } else {
      pid = fork();
      if (pid == 0) _exit(0);
      if (pid < 0) return 1;
    }
    bad |= !reap(pid);
  }
  const double t1 = now_us();
  printf("%.3f\n", (t1 - t0) / (double)n);
  return bad;
}
