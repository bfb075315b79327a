#!/usr/bin/env bash
# What one random memory access costs on this machine with 4 KiB pages and with
# transparent huge pages (bench/random_access.c): the measurement behind the
# collected heap's huge-page policy (GOALLOC_GC_HUGEPAGES, gc/README.md "Fresh
# memory"). Builds the probe if needed, runs it, prints its lines and writes
# them with the machine's description to bench/results/random_access.md.
#
# Usage: scripts/random_access.sh [--build-dir DIR] [--mib N] [--out FILE]
#   --build-dir  build tree (default build-bench, as scripts/bench.sh makes it)
#   --mib        size of the range accessed (default 1024)
#   --out        markdown report (default bench/results/random_access.md)
set -euo pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$GA_ROOT"

build="build-bench"
mib=1024
out="bench/results/random_access.md"
while (($#)); do
  case "$1" in
    --build-dir) build="${2:?--build-dir needs a value}"; shift 2 ;;
    --mib)       mib="${2:?--mib needs a value}"; shift 2 ;;
    --out)       out="${2:?--out needs a value}"; shift 2 ;;
    -h|--help)   awk 'NR > 1 && /^#/ { print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *)           ga_die "unknown argument '$1' (see --help)" ;;
  esac
done
[[ "$mib" =~ ^[0-9]+$ ]] && ((mib >= 16)) || ga_die "--mib must be an integer >= 16"
if [[ ! -x "$build/bench/random_access" ]]; then
  [[ -f "$build/CMakeCache.txt" ]] || ga_die "$build is not configured: run scripts/bench.sh first"
  cmake --build "$build" --target random_access >/dev/null
fi
# Three runs: with 4 KiB pages the figure moves from run to run on a VM (the
# host's own page tables decide much of a guest's page walk).
result=""
for run in 1 2 3; do
  r="$("$build/bench/random_access" "$mib" 8 4000000)"
  echo "run $run: $r"
  result+="run $run: $r"$'\n'
done
thp="$(cat /sys/kernel/mm/transparent_hugepage/enabled 2>/dev/null || echo '?')"
{
  echo "# One random memory access, 4 KiB pages vs huge pages"
  echo
  echo "Generated $(date -u '+%Y-%m-%d %H:%M UTC') by \`scripts/random_access.sh --mib $mib\` at $(git rev-parse --short HEAD 2>/dev/null || echo '?')."
  echo
  echo "[\`bench/random_access.c\`](../random_access.c): loads one word from each of 4,000,000 random cache lines of a ${mib} MiB range, prefetching 8 accesses ahead (the loads are independent, so the core may overlap as many misses as it can track); median of five passes, per page size; three runs. Machine: $(uname -srm), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) CPUs; transparent_hugepage/enabled: \`$thp\`; 1-minute load average $(cut -d' ' -f1 /proc/loadavg)."
  echo
  echo '```'
  echo "$result"
  echo '```'
} > "$out"
echo "wrote $out"
