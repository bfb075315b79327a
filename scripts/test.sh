#!/usr/bin/env bash
# Build goalloc and run its tests: installs missing Debian packages (as root),
# builds build/ (RelWithDebInfo, GOALLOC_DEBUG_LEVEL=2) and runs ctest there, then
# builds the stress tests with ThreadSanitizer in build-tsan/ and runs them.
#
# Usage: scripts/test.sh [CTEST_ARGS...]      e.g. scripts/test.sh -L preload
#   CTEST_ARGS go to the main ctest run only.
#   GOALLOC_TSAN=1     always run the TSan pass (default: only when no CTEST_ARGS)
#   GOALLOC_TSAN=0     skip the TSan pass
#   GOALLOC_TSAN=only  run only the TSan pass
set -euo pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$GA_ROOT"

tsan_mode="${GOALLOC_TSAN:-auto}"
case "$tsan_mode" in
  auto) if (($# == 0)); then run_tsan=1; else run_tsan=0; fi; run_main=1 ;;
  1)    run_tsan=1; run_main=1 ;;
  0)    run_tsan=0; run_main=1 ;;
  only) run_tsan=1; run_main=0 ;;
  *)    ga_die "GOALLOC_TSAN must be 0, 1 or only (got '$tsan_mode')" ;;
esac
jobs="$(ga_nproc)"
ctest_common=(--output-on-failure -j2 --timeout 600)

# Prints the executables that the tests labelled stress run in build tree $1, or
# nothing if ctest does not know them all (not built yet: gtest_discover_tests
# finds the tests, and their labels, only once the executables exist).
stress_exes_py='
import json, os, subprocess, sys
build = os.path.realpath(sys.argv[1])
try:
    out = subprocess.run(["ctest", "-L", "stress", "--show-only=json-v1"], cwd=build,
                         check=True, capture_output=True, text=True).stdout
except (OSError, subprocess.CalledProcessError):
    sys.exit(0)
exes = set()
for t in json.loads(out).get("tests", []):
    exe = os.path.realpath((t.get("command") or ["/"])[0])
    if not exe.startswith(build + os.sep):
        sys.exit(0)  # not built yet, or a command from outside the tree (a script)
    exes.add(os.path.basename(exe))
print(" ".join(sorted(exes)))
'

ga_section "dependencies"
ga_ensure_packages "${GA_TEST_PACKAGES[@]}"
for tool in cmake ctest c++ python3; do
  command -v "$tool" >/dev/null 2>&1 || ga_die "'$tool' not found"
done

if ((run_main)); then
  ga_section "configure build/ (RelWithDebInfo, GOALLOC_DEBUG_LEVEL=2)"
  cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGOALLOC_DEBUG_LEVEL=2 \
        -DGOALLOC_BUILD_TESTS=ON
  ga_section "build build/ (-j$jobs)"
  cmake --build build -j "$jobs"
  ga_section "ctest build/ ${*:-(all tests)}"
  (cd build && ctest "${ctest_common[@]}" --no-tests=error "$@")
fi

if ((run_tsan)); then
  ga_section "configure build-tsan/ (ThreadSanitizer, stress tests only)"
  cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGOALLOC_DEBUG_LEVEL=2 \
        -DGOALLOC_SANITIZE=thread -DGOALLOC_BUILD_TESTS=ON -DGOALLOC_BUILD_BENCH=OFF

  # Build only the executables the stress tests run (cheaper than the whole tree),
  # as listed by build/ (same targets) and by build-tsan/ if built before; build
  # everything when neither knows them.
  read -ra targets <<<"$( { python3 -c "$stress_exes_py" build-tsan
                            [[ ! -d build ]] || python3 -c "$stress_exes_py" build
                          } | tr ' ' '\n' | sort -u | tr '\n' ' ' || true)"
  ga_section "build build-tsan/ (-j$jobs): ${targets[*]:-all targets}"
  if ((${#targets[@]} == 0)) || ! cmake --build build-tsan -j "$jobs" --target "${targets[@]}"; then
    ((${#targets[@]} == 0)) || ga_warn "building the stress targets alone failed; building everything"
    cmake --build build-tsan -j "$jobs"
  fi
  n_stress="$(cd build-tsan && ctest -L stress --show-only=json-v1 |
              python3 -c 'import json,sys; print(len(json.load(sys.stdin).get("tests", [])))')"
  if ((n_stress == 0)); then
    ga_die "no tests are labelled 'stress': the TSan pass would test nothing (give the concurrency tests LABELS stress)"
  fi
  ga_section "ctest build-tsan/ -L stress (ThreadSanitizer)"
  # tests/tsan.supp: one benign race by design of the collector's span lookup (see the file).
  export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:suppressions=$GA_ROOT/tests/tsan.supp${TSAN_OPTIONS:+:$TSAN_OPTIONS}"
  (cd build-tsan && ctest "${ctest_common[@]}" --no-tests=error -L stress)
fi

ga_section "done: all requested test passes succeeded"
