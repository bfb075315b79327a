#!/usr/bin/env bash
# smoke.sh BUILD_DIR — the program suite's smoke test (ctest, label bench): runs
# every workload of bench/programs/ once with its quick parameters under every
# allocator that is installed (glibc; jemalloc, mimalloc, tcmalloc and goalloc
# through LD_PRELOAD), and fails if any run exits non-zero (a workload exits 3
# when an object does not hold its pattern), if a run's malloc did not come from
# the expected library, or if goalloc's run (GOALLOC_STATS=1) reports no mallocs.
# Missing peer allocators are left out with a warning. About 10-20 s.
#
# BUILD_DIR holds alloc/libgoalloc.so and bench/programs/*.
set -euo pipefail
if (($# != 1)); then
  echo "usage: $0 BUILD_DIR" >&2
  exit 2
fi
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec python3 "$here/../../scripts/bench_programs.py" --smoke --build-dir "$1"
