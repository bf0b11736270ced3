#!/usr/bin/env bash
# Every test: install, build (default and ASan+UBSan presets), run the C++ tests of both,
# the Python tests on every installed CPython, and the Node tests once they exist.
# MPX_TEST_PRESETS="default asan tsan" picks the C++ presets (default: "default asan").
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
jobs=$(nproc)
status=0
passed=0
failed=0
# Each suite (a preset's ctest, one Python's run) counts once in the closing line.
suite() { if "$@"; then passed=$((passed + 1)); else failed=$((failed + 1)); status=1; fi; }

for preset in ${MPX_TEST_PRESETS:-default asan}; do
  echo "=== C++ tests: preset $preset"
  cmake --preset "$preset" >/dev/null
  cmake --build --preset "$preset" -j"$jobs"
  # Serial: the leak checks count /dev/shm entries, fds and children, which tests running
  # side by side would blur.
  suite ctest --preset "$preset"
done

echo "=== Python tests"
export MPX_LIBRARY="$PWD/build/default/src/libmpx.so.0"
export PYTHONPATH="$PWD/bindings/python${PYTHONPATH:+:$PYTHONPATH}"
if [ -d tests/python ]; then
  suite /usr/bin/python3 -m pytest -q tests/python
  for py in /root/.pyenv/versions/3.12*/bin/python3 /root/.pyenv/versions/3.13*/bin/python3; do
    [ -x "$py" ] || continue
    echo "--- $("$py" --version) (unittest)"
    suite "$py" -m unittest discover -s tests/python -q
  done
fi

echo "=== docs/examples (each compiled and run as a user would)"
suite bash docs/examples/run_examples.sh build/default

if [ -d tests/node ] && [ -f tests/node/package.json ]; then
  echo "=== Node tests"
  suite bash -c 'cd tests/node && npm test'
fi

echo "suites: $passed passed, $failed failed"
exit $status
