#!/usr/bin/env bash
# Build libmpx and bench_sync, then run the C++ and the Python side-by-side benchmarks and
# print one combined report. Every figure is compared with baselines measured in the same run.
#
#   tests/bench/run.sh            full run (35-40 s on the 2-core VMs, build included)
#   tests/bench/run.sh --quick    a few seconds: checks results, figures are only indicative
#
# MPX_BENCH_PRESET picks the CMake preset (default: release); PYTHON the interpreter
# (default: python3). MPX_BENCH_SCALE, MPX_BENCH_REPS and the other knobs of README.md pass
# through to both programs.
set -euo pipefail
cd "$(dirname "$0")/../.."
preset=${MPX_BENCH_PRESET:-release}
python=${PYTHON:-python3}
build=build/$preset

quick=()
for a in "$@"; do
  case $a in
    --quick) quick=(--quick) ;;
    *) echo "usage: $0 [--quick]" >&2; exit 2 ;;
  esac
done

echo "=== building (preset $preset: libmpx and bench_sync)"
cmake --preset "$preset" >/dev/null
cmake --build --preset "$preset" -j"$(nproc)" --target mpx bench_sync >/dev/null

echo
echo "=== mpx sync benchmarks  $(date -u '+%Y-%m-%d %H:%M UTC')  $(uname -sr)  $(nproc) CPUs  " \
     "commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD 2>/dev/null || echo '+changes')"
status=0
start=$SECONDS

echo
echo "=== C API: tests/bench/bench_sync.cpp ($build/tests/bench/bench_sync ${quick[*]})"
"$build/tests/bench/bench_sync" "${quick[@]}" || status=1

echo
echo "=== Python: tests/bench/bench_sync.py ($("$python" --version 2>&1))"
PYTHONPATH="$PWD/bindings/python${PYTHONPATH:+:$PYTHONPATH}" MPX_LIBRARY="$PWD/$build/src/libmpx.so.0" \
  "$python" tests/bench/bench_sync.py "${quick[@]}" || status=1

echo
echo "=== done in $((SECONDS - start)) s$([ $status -eq 0 ] || echo '; SOME RESULTS WERE WRONG (see FAILED above)')"
exit $status
