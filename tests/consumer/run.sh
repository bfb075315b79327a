#!/usr/bin/env bash
# Install test: installs a built goalloc into a temporary prefix, then builds and
# runs tests/consumer/main.c against it twice, with CMake's find_package(goalloc)
# and with pkg-config, as users would.
#
# Usage: tests/consumer/run.sh BUILD_DIR      (env CC, CMAKE: compilers/tools to use)
set -euo pipefail

if (($# != 1)) || [[ ! -d "$1" ]]; then
  echo "usage: $0 BUILD_DIR (a configured and built goalloc tree)" >&2
  exit 2
fi
build="$(cd "$1" && pwd)"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cmake_bin="${CMAKE:-cmake}"
cc_bin="${CC:-cc}"
for tool in "$cmake_bin" "$cc_bin" pkg-config; do
  command -v "$tool" >/dev/null 2>&1 || { echo "consumer: '$tool' not found" >&2; exit 1; }
done

tmp="$(mktemp -d "${TMPDIR:-/tmp}/goalloc-consumer.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
prefix="$tmp/prefix"

echo "== install $build -> $prefix"
"$cmake_bin" --install "$build" --prefix "$prefix" >"$tmp/install.log" || {
  cat "$tmp/install.log" >&2; exit 1; }

echo "== find_package(goalloc) consumer"
# CMake puts the installed library's directory in the consumer's RPATH.
"$cmake_bin" -S "$here" -B "$tmp/cmake-build" -DCMAKE_PREFIX_PATH="$prefix" \
             -DCMAKE_BUILD_TYPE=Release >"$tmp/configure.log" || {
  cat "$tmp/configure.log" >&2; exit 1; }
"$cmake_bin" --build "$tmp/cmake-build" >"$tmp/build.log" || { cat "$tmp/build.log" >&2; exit 1; }
out="$("$tmp/cmake-build/consumer")"
echo "$out"
[[ "$out" == OK ]] || { echo "consumer (cmake): expected OK" >&2; exit 1; }

echo "== pkg-config consumer"
pc="$(find "$prefix" -name goalloc.pc -path '*/pkgconfig/*' -print -quit)"
[[ -n "$pc" ]] || { echo "consumer: no goalloc.pc installed under $prefix" >&2; exit 1; }
PKG_CONFIG_PATH="$(dirname "$pc")"
export PKG_CONFIG_PATH
pc_prefix="$(pkg-config --variable=prefix goalloc)"
if [[ "$(cd "$pc_prefix" 2>/dev/null && pwd -P)" != "$(cd "$prefix" && pwd -P)" ]]; then
  echo "consumer: goalloc.pc says prefix=$pc_prefix but it was installed in $prefix;" \
       "the .pc file must be relocatable (prefix=\${pcfiledir}/...)" >&2
  exit 1
fi
libdir="$(pkg-config --variable=libdir goalloc)"
# shellcheck disable=SC2046  # pkg-config output is meant to be word-split
"$cc_bin" -o "$tmp/consumer-pc" "$here/main.c" $(pkg-config --cflags --libs goalloc) \
          -Wl,-rpath,"$libdir"
out="$("$tmp/consumer-pc")"
echo "$out"
[[ "$out" == OK ]] || { echo "consumer (pkg-config): expected OK" >&2; exit 1; }

echo "consumer: OK with find_package and with pkg-config"
