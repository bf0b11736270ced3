#!/usr/bin/env bash
# Every test: install, build (default and ASan+UBSan presets), run the C++ tests of both,
# the Python tests on every installed CPython, and the Node tests once they exist.
# MPX_TEST_PRESETS="default asan tsan" picks the C++ presets (default: "default asan").
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
jobs=$(nproc)
status=0

for preset in ${MPX_TEST_PRESETS:-default asan}; do
  echo "=== C++ tests: preset $preset"
  cmake --preset "$preset" >/dev/null
  cmake --build --preset "$preset" -j"$jobs"
  # Serial: the leak checks count /dev/shm entries, fds and children, which tests running
  # side by side would blur.
  ctest --preset "$preset" || status=1
done

echo "=== Python tests"
export MPX_LIBRARY="$PWD/build/default/src/libmpx.so.0"
export PYTHONPATH="$PWD/bindings/python${PYTHONPATH:+:$PYTHONPATH}"
if [ -d tests/python ]; then
  /usr/bin/python3 -m pytest -q tests/python || status=1
  for py in /root/.pyenv/versions/3.12*/bin/python3 /root/.pyenv/versions/3.13*/bin/python3; do
    [ -x "$py" ] || continue
    echo "--- $("$py" --version) (unittest)"
    "$py" -m unittest discover -s tests/python -t . -q || status=1
  done
fi

if [ -d tests/node ] && [ -f tests/node/package.json ]; then
  echo "=== Node tests"
  (cd tests/node && npm test) || status=1
fi

exit $status
