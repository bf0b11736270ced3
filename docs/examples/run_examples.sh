#!/bin/sh
# Compile and run every example in docs/examples against a build tree, as a user would:
# C with `cc -std=c99 -pthread`, C++ with `c++ -std=c++20 -pthread`, Python with the binding from the checkout.
# Prints one line per example; exits nonzero if any fails to build, fails or hangs (60 s).
#
#   docs/examples/run_examples.sh [build-dir]        (default: build/default)
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${1:-$root/build/default}" && pwd) || exit 2
lib=$build/src
if [ ! -e "$lib/libmpx.so.0" ]; then
  echo "run_examples: $lib/libmpx.so.0 not found: build the library first" >&2
  exit 2
fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT INT TERM
failed=0

run() {  # name, log, command...
  name=$1 log=$2
  shift 2
  if timeout 60 "$@" >"$log" 2>&1; then
    echo "ok    $name"
  else
    echo "FAIL  $name (exit $?)"
    sed 's/^/      /' "$log" | tail -n 30
    failed=$((failed + 1))
  fi
}

for src in "$root"/docs/examples/*.c "$root"/docs/examples/*.cpp; do
  [ -e "$src" ] || continue
  name=$(basename "$src")
  exe=$out/${name%.*}
  case $src in
    *.c) compile="cc -std=c99 -pthread -Wall -Wextra -Werror" ;;
    *) compile="c++ -std=c++20 -pthread -Wall -Wextra -Werror" ;;
  esac
  if ! $compile "$src" -I "$root/include" -L "$lib" -lmpx -Wl,-rpath,"$lib" -o "$exe" >"$exe.build.log" 2>&1; then
    echo "FAIL  $name (does not compile)"
    sed 's/^/      /' "$exe.build.log" | tail -n 30
    failed=$((failed + 1))
    continue
  fi
  run "$name" "$exe.log" "$exe"
done

for src in "$root"/docs/examples/*.py; do
  [ -e "$src" ] || continue
  name=$(basename "$src")
  run "$name" "$out/$name.log" env PYTHONPATH="$root/bindings/python" MPX_LIBRARY="$lib/libmpx.so.0" python3 "$src"
done

if [ "$failed" -ne 0 ]; then
  echo "run_examples: $failed example(s) failed"
  exit 1
fi
echo "run_examples: all passed"
