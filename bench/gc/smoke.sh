#!/usr/bin/env bash
# smoke.sh DIR — the GC suite's smoke test (ctest, label bench): runs every
# goalloc program of bench/gc/ (built in DIR) with tiny parameters and fails if
#   - a program exits non-zero (3: a check of the heap failed) or prints no
#     gcstats line on stderr;
#   - binary_trees' standard output at depth 6 is not exactly the Benchmarks
#     Game's (below, computed from the algorithm: a tree of depth d has
#     2^(d+1) - 1 nodes);
#   - gcbench's long-lived tree or array is not intact;
#   - gc_latency (8 MiB live, 300000 replacements: ~75 MiB allocated) ran no
#     collection cycle;
#   - gc_mark (both shapes, 4 MiB live) prints no result line (it checks its
#     heap after its collections itself);
#   - cpu_pingpong (the CPUs' round trip, which bench_gc.py records before
#     each run) prints no figure, or none above 0 where two CPUs are allowed,
#     or takes a bad argument.
# When the Boehm flavours are built too, their binary_trees and gcbench output
# must be the same as goalloc's. A few seconds.
set -euo pipefail
if (($# != 1)); then
  echo "usage: $0 DIR" >&2
  exit 2
fi
dir="$1"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
fail() { echo "bench_gc_smoke: FAILED: $*" >&2; exit 1; }

# run NAME ARGS...: NAME's stdout in $tmp/NAME.out, stderr in $tmp/NAME.err
run() {
  local name="$1"; shift
  echo "== $name $*"
  local status=0
  "$dir/$name" "$@" >"$tmp/$name.out" 2>"$tmp/$name.err" || status=$?
  if ((status != 0)); then
    cat "$tmp/$name.out" "$tmp/$name.err" >&2
    fail "$name $* exited with status $status"
  fi
  grep -E '^gcstats cycles=[0-9]+ pause_total_ns=[0-9]+ pause_max_ns=[0-9]+ gc_cpu_fraction=[0-9.]+ vmhwm_kib=[0-9]+' \
       "$tmp/$name.err" || { cat "$tmp/$name.err" >&2; fail "$name: no gcstats line on stderr"; }
}

printf 'stretch tree of depth 7\t check: 255\n64\t trees of depth 4\t check: 1984\n16\t trees of depth 6\t check: 2032\nlong lived tree of depth 6\t check: 127\n' \
  >"$tmp/binary_trees.expected"
run binary_trees 6
diff "$tmp/binary_trees.expected" "$tmp/binary_trees.out" ||
  fail "binary_trees 6: standard output is not the Benchmarks Game's (diff above: expected, got)"

gcbench_args=(stretch=14 long_lived=10 array=20000 min=4 max=12)
run gcbench "${gcbench_args[@]}"
grep -qx ' Long-lived tree: 2047 nodes, array: ok' "$tmp/gcbench.out" ||
  { cat "$tmp/gcbench.out" >&2; fail "gcbench: the long-lived tree or array is not intact"; }

run gc_latency live_mb=8 ops=300000
cycles="$(sed -n 's/^gcstats cycles=\([0-9]*\) .*/\1/p' "$tmp/gc_latency.err")"
((cycles > 0)) || fail "gc_latency: no collection cycle ran (cycles=$cycles)"
grep -q '^result: gc_latency ops=300000 ' "$tmp/gc_latency.out" ||
  { cat "$tmp/gc_latency.out" >&2; fail "gc_latency: no result line for 300000 operations"; }

for shape in lists tree; do
  run gc_mark "$shape" live_mb=4 rounds=2
  grep -Eq "^result: gc_mark shape=$shape objects=[1-9][0-9]* mark_ns_per_object=[0-9.]+ " "$tmp/gc_mark.out" ||
    { cat "$tmp/gc_mark.out" >&2; fail "gc_mark $shape: no result line"; }
done

echo "== cpu_pingpong rounds=200"
status=0
"$dir/cpu_pingpong" rounds=200 >"$tmp/pingpong.out" 2>"$tmp/pingpong.err" || status=$?
((status == 0)) || { cat "$tmp/pingpong.err" >&2; fail "cpu_pingpong exited with status $status"; }
cat "$tmp/pingpong.out"
rt="$(sed -n 's/^cpu_round_trip_ns=\([0-9.]*\) cpus=[0-9,]*$/\1/p' "$tmp/pingpong.out")"
[[ -n "$rt" ]] || fail "cpu_pingpong: no cpu_round_trip_ns= line"
if (($(nproc) >= 2)); then
  awk -v x="$rt" 'BEGIN { exit !(x > 0) }' || fail "cpu_pingpong: round trip $rt ns with $(nproc) CPUs"
fi
status=0
"$dir/cpu_pingpong" rounds=x >/dev/null 2>&1 || status=$?
((status == 2)) || fail "cpu_pingpong rounds=x: status $status, expected 2 (usage)"

if [[ -x "$dir/binary_trees_boehm" && -x "$dir/gcbench_boehm" ]]; then
  cp "$tmp/binary_trees.out" "$tmp/bt_goalloc.out"
  cp "$tmp/gcbench.out" "$tmp/gcbench_goalloc.out"
  run binary_trees_boehm 6
  diff "$tmp/bt_goalloc.out" "$tmp/binary_trees_boehm.out" || fail "binary_trees: goalloc and Boehm differ"
  run gcbench_boehm "${gcbench_args[@]}"
  diff "$tmp/gcbench_goalloc.out" "$tmp/gcbench_boehm.out" || fail "gcbench: goalloc and Boehm differ"
else
  echo "(Boehm flavours not built: not compared)"
fi
echo "bench_gc_smoke: all passed"
