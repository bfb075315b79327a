#!/usr/bin/env bash
# Benchmarks goalloc against glibc malloc: installs what is missing (as root),
# builds build-bench/ (Release, GOALLOC_DEBUG_LEVEL=0, no tests), runs the
# bench_malloc micro suite in K interleaved rounds (goalloc family, then glibc
# family, separate processes, pinned to one CPU when possible), summarises them
# with scripts/bench_report.py into bench/results/latest.md + micro_ratio.svg, and
# counts instructions per malloc+free pair with scripts/callgrind_pair.sh. Then
# the program suite (scripts/bench_programs.py): the workloads of bench/programs/
# under glibc, jemalloc, mimalloc, tcmalloc and goalloc (LD_PRELOAD), K
# interleaved rounds, into bench/results/programs.md (+ .json, two SVG charts).
# Last, the garbage-collector suite (scripts/bench_gc.py): the programs of
# bench/gc/ (binary_trees, gcbench, gc_latency) on goalloc's collector, Boehm GC
# (Debian's libgc) and Go (Debian's golang-go), interleaved rounds, then
# binary_trees' peak RSS against Go's at depths 18, 20 and 21 (3 rounds each,
# ~4 min), into bench/results/gc.md (+ .json, two SVG charts).
#
# Usage: scripts/bench.sh [--quick] [--rounds K] [--min-time SECONDS] [--no-callgrind]
#                         [--no-programs | --programs-only] [--program-rounds K]
#                         [--no-gc | --gc-only] [--gc-rounds K]
#   --quick      1 round, --benchmark_min_time=0.01, no callgrind, quick program
#                and GC parameters; a smoke run whose reports go to build-bench/quick/,
#                not bench/results/
#   --rounds K   rounds of the micro suite (default 5), and of the program suite
#                unless --program-rounds is given
#   --min-time   Google Benchmark's --benchmark_min_time (default: its own, 0.5 s)
#   --no-programs      skip the program suite
#   --programs-only    run only the program suite (no micro suite, no callgrind, no GC suite)
#   --program-rounds K rounds of the program suite (a full round takes ~2 min)
#   --no-gc            skip the GC suite
#   --gc-only          run only the GC suite
#   --gc-rounds K      rounds of the GC suite (default 3; a full round takes ~2 min)
set -euo pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$GA_ROOT"

cmdline="scripts/bench.sh${*:+ $*}"
quick=0
rounds=5
min_time=""
callgrind=1
programs=1
micro=1
program_rounds=""
gc=1
gc_rounds=3
while (($#)); do
  case "$1" in
    --quick)        quick=1; shift ;;
    --rounds)       rounds="${2:?--rounds needs a value}"; shift 2 ;;
    --min-time)     min_time="${2:?--min-time needs a value}"; shift 2 ;;
    --no-callgrind) callgrind=0; shift ;;
    --no-programs)  programs=0; shift ;;
    --programs-only) micro=0; callgrind=0; gc=0; shift ;;
    --program-rounds) program_rounds="${2:?--program-rounds needs a value}"; shift 2 ;;
    --no-gc)        gc=0; shift ;;
    --gc-only)      micro=0; callgrind=0; programs=0; shift ;;
    --gc-rounds)    gc_rounds="${2:?--gc-rounds needs a value}"; shift 2 ;;
    -h|--help)      awk 'NR > 1 && /^#/ { print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *)              ga_die "unknown argument '$1' (see --help)" ;;
  esac
done
if ((quick)); then
  rounds=1; min_time="${min_time:-0.01}"; callgrind=0
fi
[[ "$rounds" =~ ^[1-9][0-9]*$ ]] || ga_die "--rounds must be a positive integer"
program_rounds="${program_rounds:-$rounds}"
[[ "$program_rounds" =~ ^[1-9][0-9]*$ ]] || ga_die "--program-rounds must be a positive integer"
[[ "$gc_rounds" =~ ^[1-9][0-9]*$ ]] || ga_die "--gc-rounds must be a positive integer"
((micro || programs || gc)) || ga_die "the --no-* and --*-only options given leave nothing to run"
build="build-bench"
results="bench/results"
((quick == 0)) || results="$build/quick"
jobs="$(ga_nproc)"

ga_section "dependencies"
ga_ensure_packages "${GA_TEST_PACKAGES[@]}" libjemalloc-dev libmimalloc-dev \
                   libgoogle-perftools-dev gnuplot-nox libgc-dev golang-go
for tool in cmake c++ python3; do
  command -v "$tool" >/dev/null 2>&1 || ga_die "'$tool' not found"
done

ga_section "configure and build $build/ (Release, GOALLOC_DEBUG_LEVEL=0)"
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DGOALLOC_DEBUG_LEVEL=0 \
      -DGOALLOC_BUILD_TESTS=OFF -DGOALLOC_BUILD_BENCH=ON
# goalloc (libgoalloc.so): callgrind_pair.sh and the program suite preload it.
targets=(goalloc)
((micro == 0)) || targets+=(bench_malloc callgrind_pair)
((programs == 0)) || targets+=(bench_programs)
# bench_gc: the goalloc and Boehm flavours (the Go ones: bench_gc.py runs go build).
((gc == 0)) || targets+=(bench_gc)
cmake --build "$build" -j "$jobs" --target "${targets[@]}"
exe="$build/bench/bench_malloc"

# Pin to the last CPU (CPU 0 takes more interrupts); check the tool really works
# here, since containers may forbid changing affinity.
cpu=$(($(ga_nproc) - 1))
pin=()
if command -v taskset >/dev/null 2>&1 && taskset -c "$cpu" true 2>/dev/null; then
  pin=(taskset -c "$cpu")
elif command -v numactl >/dev/null 2>&1 && numactl --physcpubind="$cpu" true 2>/dev/null; then
  pin=(numactl --physcpubind="$cpu")
else
  ga_warn "neither taskset nor numactl can pin here: running unpinned"
fi

mkdir -p "$results"
if ((micro)); then
  bench_args=()
  [[ -z "$min_time" ]] || bench_args+=("--benchmark_min_time=$min_time")
  json_dir="$build/bench-json"
  rm -rf "$json_dir"
  mkdir -p "$json_dir" "$results"

  ga_section "micro suite: $rounds round(s)${pin:+, pinned with ${pin[*]}}${min_time:+, min_time $min_time s}"
  start_all=$SECONDS
  for ((r = 1; r <= rounds; r++)); do
    for family in goalloc glibc; do
      json="$json_dir/round$r-$family.json"
      printf '  [round %d/%d] %-7s ... ' "$r" "$rounds" "$family"
      t0=$SECONDS
      if ! "${pin[@]}" "$exe" --benchmark_filter="^BM_[A-Za-z0-9_]+/$family/" \
             --benchmark_out="$json" --benchmark_out_format=json \
             "${bench_args[@]}" >"$json_dir/round$r-$family.log" 2>&1; then
        echo "FAILED"
        cat "$json_dir/round$r-$family.log" >&2
        ga_die "bench_malloc failed (round $r, $family)"
      fi
      n="$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["benchmarks"]))' \
             "$json" 2>/dev/null || echo 0)"
      ((n > 0)) || { echo "FAILED"; ga_die "no $family benchmark ran (see $json_dir/round$r-$family.log)"; }
      echo "$n benchmarks in $((SECONDS - t0)) s"
    done
  done
  ga_info "micro suite took $((SECONDS - start_all)) s"

  if ((callgrind)); then
    ga_section "instruction counts (callgrind)"
    bash scripts/callgrind_pair.sh --build-dir "$build" --out "$results/callgrind_pair.md"
  fi

  ga_section "report"
  report_args=(--build-dir "$build" --out-md "$results/latest.md" --svg "$results/micro_ratio.svg"
               --command "$cmdline" --rounds "$rounds")
  ((${#pin[@]} == 0)) || report_args+=(--pin "${pin[*]}")
  ((callgrind == 0)) || report_args+=(--see-also callgrind_pair.md)
  ((programs == 0)) || report_args+=(--see-also programs.md)
  ((gc == 0)) || report_args+=(--see-also gc.md)
  python3 scripts/bench_report.py "${report_args[@]}" "$json_dir"/round*-*.json
fi

if ((programs)); then
  prog_args=(--build-dir "$build" --out-dir "$results" --rounds "$program_rounds"
             --command "$cmdline")
  params="full parameters"
  if ((quick)); then prog_args+=(--quick); params="quick parameters"; fi
  ga_section "program suite: $program_rounds round(s), $params"
  python3 scripts/bench_programs.py "${prog_args[@]}"
fi

if ((gc)); then
  gc_args=(--build-dir "$build" --out-dir "$results" --rounds "$gc_rounds" --command "$cmdline")
  params="full parameters"
  if ((quick)); then gc_args+=(--quick); params="quick parameters"; fi
  ga_section "GC suite: $gc_rounds round(s), $params (goalloc, Boehm GC, Go)"
  python3 scripts/bench_gc.py "${gc_args[@]}"
fi

ga_section "done: results in $results/"
ls -l "$results"
