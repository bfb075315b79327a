#!/usr/bin/env bash
# real_programs.sh GOALLOC_RUN LIBGOALLOC CASE — runs an unmodified real program
# twice, once on the C library's malloc and once on goalloc (through
# scripts/goalloc-run, with GOALLOC_STATS=1), and requires:
#   - both runs succeed and print exactly the same stdout;
#   - every program started through goalloc-run printed goalloc's summary line
#     at exit ("goalloc: stats: mallocs=N ..."; programs that fork/exec add
#     their children's lines), and at least one shows mallocs > 0;
#   - goalloc reported no misuse and no fatal error.
# CASE is one of: python perl git sort gcc sqlite3. Exit 77 (ctest: skipped) if
# the program is not installed. Contents and seeds are fixed, so the output is
# deterministic; the work happens in a temporary directory under $TMPDIR.
set -euo pipefail

if (($# != 3)); then
  echo "usage: $0 GOALLOC_RUN LIBGOALLOC CASE   (CASE: python perl git sort gcc sqlite3)" >&2
  exit 2
fi
goalloc_run="$1"
lib="$2"
case_name="$3"
[[ -x "$goalloc_run" ]] || { echo "FAIL: $goalloc_run is not executable" >&2; exit 1; }
[[ -e "$lib" ]] || { echo "FAIL: $lib does not exist" >&2; exit 1; }

# Neither run may inherit goalloc from the caller: the plain one must be plain.
unset LD_PRELOAD GOALLOC_STATS GOALLOC_VERBOSE GOALLOC_LIB
export LC_ALL=C TZ=UTC

need() {
  local p
  for p in "$@"; do
    if ! command -v "$p" >/dev/null 2>&1; then
      echo "SKIP: '$p' is not installed"
      exit 77
    fi
  done
}

case "$case_name" in
  python) need python3 ;;
  perl) need perl ;;
  git) need git awk ;;
  sort) need sort awk md5sum ;;
  gcc) need gcc nm awk sha256sum ;;
  sqlite3) need sqlite3 awk ;;
  *) echo "unknown case '$case_name' (python perl git sort gcc sqlite3)" >&2; exit 2 ;;
esac
fn="case_${case_name}"

tmp="$(mktemp -d "${TMPDIR:-/tmp}/goalloc-real-${case_name}.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

# R CMD ARGS...: how a case starts the program under test. In the plain run it
# just runs it; in the goalloc run it goes through goalloc-run with statistics
# on, and is counted (each such process must print a summary line).
mode=plain
R() {
  if [[ "$mode" == goalloc ]]; then
    echo "$1" >>"$tmp/started"
    GOALLOC_STATS=1 GOALLOC_LIB="$lib" "$goalloc_run" "$@"
  else
    "$@"
  fi
}

# ---- the cases: each writes its result to stdout, working in $PWD ----------

case_python() {
  # PYTHONMALLOC=malloc: every Python object comes from malloc (no pymalloc).
  PYTHONMALLOC=malloc PYTHONHASHSEED=0 R python3 - <<'EOF'
import hashlib
h = hashlib.sha256()
for rnd in range(3):
    d = {}
    for i in range(200000):
        d["key%d_%d" % (rnd, i)] = [i, str(i * 7919), (i, rnd), {"n": i}]
    lst = [str(x) * 3 for x in range(100000)]
    lst.sort(key=lambda s: s[::-1])
    h.update(repr(len(d)).encode())
    for k in list(d)[::997]:
        h.update(k.encode())
        h.update(repr(d[k]).encode())
    h.update("".join(lst[::1009]).encode())
    del d, lst
big = [bytes(range(256)) * (400 + i) for i in range(200)]   # ~100 KiB each
h.update(b"".join(b[i:i + 10] for i, b in enumerate(big)))
s = set(range(0, 300000, 3))
s -= set(range(0, 300000, 5))
print(h.hexdigest())
print(sum(len(b) for b in big), len(s), sum(s) % 1000003)
EOF
}

case_perl() {
  R perl -e '
    use strict; use warnings; use Digest::MD5 qw(md5_hex);
    my $ctx = Digest::MD5->new;
    for my $r (0 .. 2) {
      my %h;
      for my $i (0 .. 199999) { $h{"k$r-$i"} = ("v" x ($i % 50)) . $i; }
      my $s = "";
      for my $k (sort keys %h) { $s .= substr($k, -3) . length($h{$k}); }
      $ctx->add($s);
      my @a = map { scalar reverse $_ } map { $_ * 31 } 1 .. 100000;
      $ctx->add(join ",", (sort @a)[0 .. 99]);
      delete $h{"k$r-$_"} for grep { $_ % 3 } 0 .. 199999;
      print scalar(keys %h), "\n";
    }
    my $big = "x" x 5_000_000; $big =~ s/x{1000}/y/g;
    print length($big), "\n", $ctx->hexdigest, "\n";'
}

case_git() {
  export HOME="$PWD/home" GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null
  export GIT_AUTHOR_NAME="Goalloc Test" GIT_AUTHOR_EMAIL="test@goalloc.invalid"
  export GIT_COMMITTER_NAME="Goalloc Test" GIT_COMMITTER_EMAIL="test@goalloc.invalid"
  export GIT_AUTHOR_DATE="2021-02-03T04:05:06Z" GIT_COMMITTER_DATE="2021-02-03T04:05:06Z"
  mkdir -p home repo/src
  cd repo
  R git init -q -b main .
  local i
  for i in $(seq 1 200); do
    awk -v n="$i" 'BEGIN { for (j = 0; j < 50 + n; j++) printf "file %d line %d %d\n", n, j, (n * 7919 + j * 104729) % 1000003 }' \
      >"src/f$i.txt"
  done
  R git add -A
  R git commit -q -m "first commit: 200 files"
  for i in $(seq 1 200 | awk 'NR % 3 == 0'); do echo "changed $i" >>"src/f$i.txt"; done
  rm src/f7.txt
  R git add -A
  GIT_AUTHOR_DATE="2021-02-04T00:00:00Z" GIT_COMMITTER_DATE="2021-02-04T00:00:00Z" \
    R git commit -q -m "second commit"
  R git log --format=%H
  R git cat-file -p HEAD
  R git diff --stat HEAD~1 HEAD | tail -n 1
  R git repack -adq
  R git rev-list --objects --all | sort
  R git fsck --no-progress --no-dangling
}

case_sort() {
  awk 'BEGIN { s = 12345
               for (i = 0; i < 200000; i++) {
                 s = (s * 1103515245 + 12345) % 2147483648
                 printf "%010d line%06d %s\n", s, i, substr("abcdefghijklmnopqrstuvwxyz", s % 26 + 1, 4)
               } }' >input.txt
  R sort input.txt >sorted.txt
  md5sum <sorted.txt
  head -n 3 sorted.txt
  tail -n 3 sorted.txt
  # several keys, small buffer (temporary files and a merge), two threads
  R sort -k3,3 -k2,2r -S 1M --parallel=2 -T "$PWD" input.txt | md5sum
  R sort -u -k3,3 input.txt | wc -l
  R sort -n -r input.txt >rsorted.txt
  head -n 2 rsorted.txt
}

case_gcc() {
  {
    echo '#include <stdio.h>'
    echo '#include <stdlib.h>'
    echo '#include <string.h>'
    awk 'BEGIN { for (i = 0; i < 300; i++)
                   printf "static unsigned f%d(unsigned x) { unsigned y = x * %d + %d; for (int k = 0; k < %d; k++) y = (y << 3) ^ (y >> 5) ^ k; return y; }\n", i, 2 * i + 1, i * 7, i % 13 + 1 }'
    echo 'struct node { struct node* next; char name[40]; unsigned v; };'
    echo 'int main(void) {'
    echo '  unsigned acc = 1; struct node* head = NULL;'
    awk 'BEGIN { for (i = 0; i < 300; i++) printf "  acc = f%d(acc);\n", i }'
    echo '  for (int i = 0; i < 1000; i++) { struct node* n = malloc(sizeof *n); n->next = head; n->v = acc + i; snprintf(n->name, sizeof n->name, "node-%d", i); head = n; }'
    echo '  unsigned sum = 0; size_t names = 0;'
    echo '  while (head) { struct node* n = head; head = n->next; sum += n->v; names += strlen(n->name); free(n); }'
    echo '  printf("acc=%u sum=%u names=%zu\n", acc, sum, names);'
    echo '  return 0;'
    echo '}'
  } >prog.c
  R gcc -O2 -c prog.c -o prog.o
  R nm prog.o
  sha256sum prog.o
  R gcc prog.o -o prog
  R ./prog
}

case_sqlite3() {
  {
    echo "CREATE TABLE t(id INTEGER PRIMARY KEY, grp INTEGER, name TEXT, val REAL);"
    echo "BEGIN;"
    awk -v q="'" 'BEGIN {
      s = 42
      for (i = 0; i < 5000; i++) {
        s = (s * 1103515245 + 12345) % 2147483648
        printf "INSERT INTO t(grp, name, val) VALUES (%d, %sname-%d-%d%s, %d.%02d);\n", s % 37, q, s % 1000, i, q, s % 100000, i % 100
      } }'
    cat <<'EOF'
COMMIT;
CREATE INDEX t_grp ON t(grp);
SELECT grp, count(*), printf('%.2f', sum(val)), min(name), max(name) FROM t GROUP BY grp ORDER BY grp;
SELECT count(DISTINCT name), printf('%.2f', avg(val)) FROM t;
UPDATE t SET name = name || '-x' WHERE id % 7 = 0;
DELETE FROM t WHERE grp IN (3, 5, 8);
SELECT grp, count(*), length(group_concat(name, ',')) FROM t GROUP BY grp HAVING count(*) > 100 ORDER BY 2 DESC, 1;
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 20000) SELECT sum(x), count(*) FROM c;
SELECT name FROM t ORDER BY val DESC, id LIMIT 5;
PRAGMA integrity_check;
EOF
  } >script.sql
  R sqlite3 db.sqlite <script.sql
}

# ---- run a case both ways and compare -----------------------------------------


run_mode() {  # MODE: run the case in $tmp/MODE, output in $tmp/MODE.out/.err
  mode="$1"
  mkdir -p "$tmp/$mode"
  local rc
  # Not in a `||` list: errexit must stay in force inside the case, so a
  # failing step fails the run even when the output happens to match.
  set +e
  (set -e; cd "$tmp/$mode"; "$fn") >"$tmp/$mode.out" 2>"$tmp/$mode.err"
  rc=$?
  set -e
  if ((rc != 0)); then
    echo "FAIL: $case_name ($mode) exited with $rc"
    echo "--- stdout (last 20 lines) ---"; tail -n 20 "$tmp/$mode.out"
    echo "--- stderr (last 40 lines) ---"; tail -n 40 "$tmp/$mode.err"
    exit 1
  fi
}

: >"$tmp/started"
start=$SECONDS
run_mode plain
t_plain=$((SECONDS - start))
start=$SECONDS
run_mode goalloc
t_goalloc=$((SECONDS - start))

status=0
if ! cmp -s "$tmp/plain.out" "$tmp/goalloc.out"; then
  echo "FAIL: $case_name: stdout differs between glibc malloc and goalloc"
  diff -u "$tmp/plain.out" "$tmp/goalloc.out" | head -n 40
  status=1
fi
if [[ ! -s "$tmp/plain.out" ]]; then
  echo "FAIL: $case_name printed nothing"
  status=1
fi

# goalloc's summary lines: one per process that had goalloc loaded.
mapfile -t mallocs < <(grep -o 'goalloc: stats: mallocs=[0-9]*' "$tmp/goalloc.err" | sed 's/.*mallocs=//')
started=$(wc -l <"$tmp/started")
max=0
for m in "${mallocs[@]}"; do ((m > max)) && max=$m; done
if ((${#mallocs[@]} == 0)); then
  echo "FAIL: $case_name: no 'goalloc: stats: mallocs=' line: goalloc was not loaded"
  status=1
elif ((max == 0)); then
  echo "FAIL: $case_name: every stats line shows mallocs=0"
  status=1
fi
if ((${#mallocs[@]} < started)); then
  echo "FAIL: $case_name: $started programs started through goalloc-run, only ${#mallocs[@]} stats lines"
  status=1
fi
if grep -E 'goalloc: .*(double free|invalid pointer|fatal)' "$tmp/goalloc.err" >/dev/null; then
  echo "FAIL: $case_name: goalloc reported an error:"
  grep -E 'goalloc: .*(double free|invalid pointer|fatal)' "$tmp/goalloc.err" | head -n 5
  status=1
fi
if grep -F 'not running on goalloc' "$tmp/goalloc.err" >/dev/null; then status=1; fi

echo "$case_name: $(wc -l <"$tmp/plain.out") lines of identical output; glibc ${t_plain}s, goalloc ${t_goalloc}s;" \
     "$started programs started on goalloc, ${#mallocs[@]} processes reported stats, largest mallocs=$max"
if ((status != 0)); then
  echo "--- goalloc run stderr (last 20 lines) ---"
  tail -n 20 "$tmp/goalloc.err"
fi
exit "$status"
