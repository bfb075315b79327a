# Shared helpers for scripts/*.sh (sourced, not run): section headers, logging,
# installing missing Debian packages, the repository root.
# shellcheck shell=bash disable=SC2034  # variables are used by the sourcing scripts

GA_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
GA_APT_UPDATED=0

ga_section() { printf '\n==== %s ====\n' "$*"; }
ga_info()    { printf '  %s\n' "$*"; }
ga_warn()    { printf 'WARNING: %s\n' "$*" >&2; }
ga_die()     { printf 'ERROR: %s\n' "$*" >&2; exit 1; }

# ga_ensure_packages PKG...: install the Debian packages that are not installed.
# Installs only as root (otherwise it warns and lets the build fail clearly);
# runs apt-get update at most once per script.
ga_ensure_packages() {
  local p missing=()
  if ! command -v dpkg >/dev/null 2>&1; then
    ga_warn "dpkg not found (not Debian?): make sure these are installed: $*"
    return 0
  fi
  for p in "$@"; do
    dpkg -s "$p" 2>/dev/null | grep -q '^Status: install ok installed' || missing+=("$p")
  done
  if ((${#missing[@]} == 0)); then
    ga_info "all $# required packages are installed"
    return 0
  fi
  ga_info "missing packages: ${missing[*]}"
  if [[ "$(id -u)" -ne 0 ]]; then
    ga_warn "not root, not installing; run: sudo apt-get install -y --no-install-recommends ${missing[*]}"
    return 0
  fi
  command -v apt-get >/dev/null 2>&1 || ga_die "apt-get not found; install: ${missing[*]}"
  if ((GA_APT_UPDATED == 0)); then
    DEBIAN_FRONTEND=noninteractive apt-get update -q
    GA_APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
}

# Packages needed to build and test goalloc.
GA_TEST_PACKAGES=(cmake g++ make python3 libgtest-dev libgmock-dev googletest
                  libbenchmark-dev pkg-config valgrind
                  # the real programs of the preload tests
                  sqlite3 git perl binutils gawk
                  # the peers of the benchmark smoke test (runtime libraries)
                  libjemalloc2 libmimalloc2.0 libtcmalloc-minimal4)

ga_nproc() { nproc 2>/dev/null || getconf _NPROCESSORS_ONLN 2>/dev/null || echo 1; }
