#!/usr/bin/env bash
# Build libmpx and the benchmarks, then run the C++ and the Python side-by-side benchmarks and
# print one combined report. Every figure is compared with baselines measured in the same run.
#
#   tests/bench/run.sh                  everything (about 3 min on the 2-core VMs, build included)
#   tests/bench/run.sh sync             only the sync benchmarks (35-40 s); `process`, `queue`,
#                                       `pipe`, `pool` and `manager` likewise (any several may be given)
#   tests/bench/run.sh --quick [...]    a few seconds: checks results, figures are only indicative
#
# MPX_BENCH_PRESET picks the CMake preset (default: release); PYTHON the interpreter
# (default: python3). MPX_BENCH_SCALE, MPX_BENCH_REPS and the other knobs of README.md pass
# through to every program.
set -euo pipefail
cd "$(dirname "$0")/../.."
preset=${MPX_BENCH_PRESET:-release}
python=${PYTHON:-python3}
build=build/$preset

quick=()
parts=()
for a in "$@"; do
  case $a in
    --quick) quick=(--quick) ;;
    sync | process | queue | pipe | pool | manager) parts+=("$a") ;;
    *) echo "usage: $0 [--quick] [sync] [process] [queue] [pipe] [pool] [manager]" >&2; exit 2 ;;
  esac
done
[ ${#parts[@]} -gt 0 ] || parts=(sync process queue pipe pool manager)
want() { [[ " ${parts[*]} " == *" $1 "* ]]; }

targets=(mpx)
want sync && targets+=(bench_sync)
want process && targets+=(bench_process bench_raw_fork)
want queue && targets+=(bench_queue)
want pipe && targets+=(bench_pipe)
want pool && targets+=(bench_pool)
want manager && targets+=(bench_manager)
echo "=== building (preset $preset: ${targets[*]})"
cmake --preset "$preset" >/dev/null
cmake --build --preset "$preset" -j"$(nproc)" --target "${targets[@]}" >/dev/null
# Byte-compile the binding, as an installed package is: otherwise, with PYTHONDONTWRITEBYTECODE
# set or a stale __pycache__, every spawned child compiles mpx's modules from source (10 ms and
# more) while multiprocessing's come compiled with the interpreter.
"$python" -m compileall -q bindings/python/mpx >/dev/null

echo
echo "=== mpx benchmarks (${parts[*]})  $(date -u '+%Y-%m-%d %H:%M UTC')  $(uname -sr)  $(nproc) CPUs  " \
     "commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD 2>/dev/null || echo '+changes')"
status=0
start=$SECONDS
py() {  # script: run a Python benchmark with the binding and the library of this build
  PYTHONPATH="$PWD/bindings/python${PYTHONPATH:+:$PYTHONPATH}" MPX_LIBRARY="$PWD/$build/src/libmpx.so.0" \
    "$python" "$1" "${quick[@]}"
}

if want sync; then
  echo
  echo "=== C API: tests/bench/bench_sync.cpp ($build/tests/bench/bench_sync ${quick[*]})"
  "$build/tests/bench/bench_sync" "${quick[@]}" || status=1

  echo
  echo "=== Python: tests/bench/bench_sync.py ($("$python" --version 2>&1))"
  py tests/bench/bench_sync.py || status=1
fi

if want process; then
  echo
  echo "=== C API: tests/bench/bench_process.cpp ($build/tests/bench/bench_process ${quick[*]})"
  "$build/tests/bench/bench_process" "${quick[@]}" || status=1

  echo
  echo "=== Python: tests/bench/bench_process.py ($("$python" --version 2>&1))"
  py tests/bench/bench_process.py || status=1
fi

for part in queue pipe pool; do
  want $part || continue
  echo
  echo "=== C API: tests/bench/bench_$part.cpp ($build/tests/bench/bench_$part ${quick[*]})"
  "$build/tests/bench/bench_$part" "${quick[@]}" || status=1

  echo
  echo "=== Python: tests/bench/bench_$part.py ($("$python" --version 2>&1))"
  py tests/bench/bench_$part.py || status=1
done

if want manager; then
  echo
  echo "=== C API: tests/bench/bench_manager.cpp ($build/tests/bench/bench_manager ${quick[*]})"
  "$build/tests/bench/bench_manager" "${quick[@]}" || status=1
  echo
  echo "=== Python: tests/bench/bench_manager.py ($("$python" --version 2>&1))"
  py tests/bench/bench_manager.py || status=1
fi

echo
echo "=== done in $((SECONDS - start)) s$([ $status -eq 0 ] || echo '; SOME RESULTS WERE WRONG (see FAILED above)')"
exit $status
