#!/usr/bin/env bash
# Instructions per malloc+free pair, counted by callgrind, for goalloc, glibc and
# (when installed) jemalloc, tcmalloc and mimalloc via LD_PRELOAD. Runs
# bench/callgrind_pair at two pair counts and takes dIr/dN, so start-up and
# warm-up cancel out; the `none` mode gives the loop's own cost, subtracted as
# "net". Prints a table and writes bench/results/callgrind_pair.md.
#
# Usage: scripts/callgrind_pair.sh [--build-dir DIR] [--pairs N] [--out FILE]
#   --build-dir  build tree with bench/callgrind_pair (default build-bench, made
#                by scripts/bench.sh: Release, GOALLOC_DEBUG_LEVEL=0)
#   --pairs      the larger pair count (default 1000000; the smaller is N/5)
#   --out        markdown report (default bench/results/callgrind_pair.md)
set -euo pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$GA_ROOT"

build="build-bench"
pairs=1000000
out="bench/results/callgrind_pair.md"
while (($#)); do
  case "$1" in
    --build-dir) build="${2:?--build-dir needs a value}"; shift 2 ;;
    --pairs)     pairs="${2:?--pairs needs a value}"; shift 2 ;;
    --out)       out="${2:?--out needs a value}"; shift 2 ;;
    -h|--help)   awk 'NR > 1 && /^#/ { print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *)           ga_die "unknown argument '$1' (see --help)" ;;
  esac
done
if [[ ! "$pairs" =~ ^[0-9]+$ ]] || ((pairs < 1000)); then
  ga_die "--pairs must be an integer >= 1000"
fi
command -v valgrind >/dev/null 2>&1 || ga_die "valgrind not found (apt-get install valgrind)"
exe="$build/bench/callgrind_pair"
[[ -x "$exe" ]] || ga_die "$exe not built: run scripts/bench.sh, or cmake --build $build --target callgrind_pair"

n_hi="$pairs"
n_lo=$((pairs / 5))
warmup=100000
work="$build/callgrind"
rm -rf "$work"
mkdir -p "$work" "$(dirname "$out")"

multiarch="$("${CC:-cc}" -print-multiarch 2>/dev/null || true)"
libdir="/usr/lib/${multiarch:-x86_64-linux-gnu}"

# name|mode|LD_PRELOAD library (empty: none)
runs=("none|none|" "goalloc|goalloc|" "glibc|glibc|")
# goalloc's drop-in malloc (libgoalloc.so), if built in this tree.
goalloc_so="$(find "$PWD/$build" -name libgoalloc.so -print -quit 2>/dev/null || true)"
if [[ -n "$goalloc_so" ]]; then
  runs+=("goalloc-preload|glibc|$goalloc_so")
else
  ga_info "skipping goalloc-preload: no libgoalloc.so in $build"
fi
for lib in jemalloc:libjemalloc.so.2 tcmalloc:libtcmalloc_minimal.so.4 mimalloc:libmimalloc.so.2; do
  name="${lib%%:*}"; so="$libdir/${lib#*:}"
  if [[ -e "$so" ]]; then
    runs+=("$name|glibc|$so")
  else
    ga_info "skipping $name: $so not installed"
  fi
done

# Ir collected inside measured_loop* for one run.
count_ir() {  # name mode preload n
  local name="$1" mode="$2" preload="$3" n="$4" file="$work/$1.$4.out"
  local -a env_cmd=(env)
  [[ -z "$preload" ]] || env_cmd+=("LD_PRELOAD=$preload")
  if ! "${env_cmd[@]}" valgrind --tool=callgrind --toggle-collect='measured_loop*' \
         --callgrind-out-file="$file" "$exe" "$mode" "$n" "$warmup" \
         >"$work/$name.$n.log" 2>&1; then
    cat "$work/$name.$n.log" >&2
    ga_die "callgrind run failed: $name N=$n"
  fi
  if [[ -n "$preload" ]] && ! grep -qF "malloc_from=$preload" "$work/$name.$n.log"; then
    ga_die "$name: malloc did not come from $preload: LD_PRELOAD had no effect (see $work/$name.$n.log)"
  fi
  local ir
  ir="$(awk '/^summary:/ && !n { n = 1; print $2 }' "$file")"
  [[ -n "$ir" ]] || ga_die "no 'summary:' line in $file"
  echo "$ir"
}

ga_section "callgrind: instructions per malloc+free pair (N=$n_lo and N=$n_hi, sizes 8..512)"
declare -A per_pair version
for run in "${runs[@]}"; do
  IFS='|' read -r name mode preload <<<"$run"
  printf '  %-15s ' "$name"
  ir_lo="$(count_ir "$name" "$mode" "$preload" "$n_lo")"
  ir_hi="$(count_ir "$name" "$mode" "$preload" "$n_hi")"
  per_pair[$name]="$(python3 -c "print(f'{($ir_hi - $ir_lo) / ($n_hi - $n_lo):.1f}')")"
  echo "Ir(N=$n_lo)=$ir_lo Ir(N=$n_hi)=$ir_hi -> ${per_pair[$name]} Ir/pair"
  if [[ "$name" == goalloc-preload ]]; then
    version[$name]="drop-in malloc, LD_PRELOAD=$build/${preload#"$PWD/$build/"}"
  elif [[ -n "$preload" ]]; then
    pkg="$(dpkg -S "$preload" 2>/dev/null | awk -F: 'NR == 1 { print $1 }' || true)"
    ver=""
    [[ -z "$pkg" ]] || ver="$(dpkg-query -W -f='${Version}' "$pkg" 2>/dev/null || true)"
    version[$name]="${pkg:-?} ${ver:-?} ($(basename "$preload"))"
  fi
done

loop="${per_pair[none]}"
glibc_version="$(ldd --version 2>/dev/null | awk 'NR == 1 { print $NF }')"
version[goalloc]="$(git rev-parse --short HEAD 2>/dev/null || echo '?')$( [[ -z "$(git status --porcelain --untracked-files=no -- . ':(exclude)bench/results' 2>/dev/null)" ]] || echo '-dirty')"
version[glibc]="glibc ${glibc_version:-?}"
cache_value() { awk -v k="$1" 'index($0, k ":") == 1 && !n { n = 1; sub(/^[^=]*=/, ""); print }' "$build/CMakeCache.txt" 2>/dev/null; }
debug_level="$(cache_value GOALLOC_DEBUG_LEVEL)"
build_type="$(cache_value CMAKE_BUILD_TYPE)"
cc_path="$(cache_value CMAKE_C_COMPILER)"
compiler="$("${cc_path:-cc}" --version 2>/dev/null | awk 'NR == 1' || echo '?')"
[[ "$debug_level" == 0 ]] || ga_warn "$build has GOALLOC_DEBUG_LEVEL=${debug_level:-?}; publish only level 0 numbers"

table="| allocator | Ir/pair | Ir/pair net of loop | version |
|---|---:|---:|---|"
for run in "${runs[@]}"; do
  IFS='|' read -r name _ _ <<<"$run"
  [[ "$name" != none ]] || continue
  net="$(python3 -c "print(f'{${per_pair[$name]} - $loop:.1f}')")"
  table+=$'\n'"| $name | ${per_pair[$name]} | $net | ${version[$name]:-} |"
done

ga_section "result (loop overhead: $loop Ir/pair)"
echo "$table"

cmdline="scripts/callgrind_pair.sh --build-dir $build --pairs $pairs --out $out"
{
  echo "# Instructions per malloc+free pair (callgrind)"
  echo
  echo "Generated by \`$cmdline\` on $(date -u '+%Y-%m-%d %H:%M UTC')."
  echo
  echo "Each allocator runs \`bench/callgrind_pair MODE N $warmup\`: $warmup warm-up pairs,"
  echo "then N pairs \`p = malloc(size); free(p)\` with sizes 8..512 bytes from xorshift64,"
  echo "precomputed into an array. \`valgrind --tool=callgrind --toggle-collect='measured_loop*'\`"
  echo "counts the instructions (Ir) of the measured loop and everything it calls, for"
  echo "N=$n_lo and N=$n_hi; Ir/pair = (Ir(N=$n_hi) - Ir(N=$n_lo)) / $((n_hi - n_lo)). The loop"
  echo "itself (mode \`none\`: the same loop without allocating) costs $loop Ir/pair, subtracted"
  echo "in the \"net\" column. jemalloc, tcmalloc and mimalloc are Debian's builds (with"
  echo "Debian's configure options), replacing malloc via LD_PRELOAD; goalloc-preload is"
  echo "goalloc's own drop-in libgoalloc.so the same way, goalloc calls ga_malloc/ga_free."
  echo
  echo "$table"
  echo
  echo "## Machine and versions"
  echo
  echo "- uname: \`$(uname -srvmo)\`"
  echo "- CPUs: $(ga_nproc) x $(awk -F': ' '/^model name/ && !n { n = 1; print $2 }' /proc/cpuinfo 2>/dev/null)"
  echo "- goalloc: ${version[goalloc]}, CMAKE_BUILD_TYPE=${build_type:-?}, GOALLOC_DEBUG_LEVEL=${debug_level:-?}"
  echo "- compiler: $compiler"
  echo "- glibc: ${glibc_version:-?}"
  echo "- valgrind: $(valgrind --version)"
} >"$out"
ga_info "wrote $out"
