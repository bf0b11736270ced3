// What every side-by-side benchmark program needs: a clock, the median, failure reporting
// (a wrong result makes the exit status 1), and the knobs read from the environment.
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "mpx/mpx.h"

namespace mpxbench {

inline int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

inline double median(std::vector<double> v) {
  if (v.empty()) return NAN;
  std::sort(v.begin(), v.end());
  const size_t m = v.size() / 2;
  return v.size() % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

inline bool g_failed = false;  // a wrong result anywhere: exit status 1

__attribute__((format(printf, 1, 2))) inline void failure(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  std::fprintf(stderr, "FAILED: ");
  std::vfprintf(stderr, fmt, ap);
  std::fprintf(stderr, "\n");
  va_end(ap);
  g_failed = true;
}

// Abort the benchmark on an mpx error in the parent (setup failures are not figures).
inline void check(int rc, const char *what) {
  if (rc != MPX_OK) {
    std::fprintf(stderr, "FAILED: %s: %s (%s)\n", what, mpx_error_name(rc), mpx_last_error_message());
    std::exit(1);
  }
}

inline long env_long(const char *name, long dflt) {
  const char *s = std::getenv(name);
  if (!s || !*s) return dflt;
  char *end;
  const long v = std::strtol(s, &end, 10);
  return (*end == 0 && v > 0) ? v : dflt;
}

inline double env_double(const char *name, double dflt) {
  const char *s = std::getenv(name);
  if (!s || !*s) return dflt;
  char *end;
  const double v = std::strtod(s, &end);
  return (*end == 0 && v > 0) ? v : dflt;
}

// A workload size: the environment's `name` if set, else dflt times MPX_BENCH_SCALE (>= 1).
inline long scaled_count(const char *name, long dflt) {
  const double scale = env_double("MPX_BENCH_SCALE", 1.0);
  return env_long(name, std::max(1L, long(double(dflt) * scale)));
}

}  // namespace mpxbench
