#!/usr/bin/env bash
# The main job: install, build, and run the tour of the seeds' scenarios.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
cmake --preset default >/dev/null
cmake --build --preset default -j"$(nproc)" --target mpx mpx_tour
build/default/tools/mpx_tour
if [ -f bindings/python/examples/tour.py ]; then
  MPX_LIBRARY=build/default/src/libmpx.so.0 PYTHONPATH=bindings/python python3 bindings/python/examples/tour.py
fi
