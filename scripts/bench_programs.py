#!/usr/bin/env python3
"""The program suite of the head-to-head benchmark: bench/programs/* under every allocator.

Runs each workload (a program of bench/programs/ with its parameters) under
every allocator: glibc (no preload), and jemalloc, mimalloc, tcmalloc and
goalloc through LD_PRELOAD. Per workload: one warm-up run of every allocator
(discarded; goalloc's runs with GOALLOC_STATS=1 and must report mallocs > 0),
then K interleaved rounds (round r runs every allocator once, the order rotated
by r, so slow drift of the machine hits all allocators alike). Each run records
wall time, user+sys CPU and peak RSS (os.wait4's rusage) and the workload's own
ops_per_sec; it must exit 0 and print `malloc_from:` naming the expected
library (the program asks the dynamic linker which object defines malloc).
Peak RSS is the VmHWM the program prints at its end (peak_rss_kib=): the
ru_maxrss of wait4 also keeps the peak of the address space the child was
forked from, this Python process's (~18 MiB), which would hide small peaks;
ru_maxrss is still recorded in the JSON.

Pinning: a workload of T threads runs on the last T CPUs (taskset, else
numactl) when the machine has more than T CPUs, and unpinned otherwise (on a
2-CPU machine: the 1-thread workloads are pinned to CPU 1, the 2-thread ones
use both CPUs, unpinned).

Reports medians over the rounds: ratio goalloc/peer of wall time and of peak RSS
per workload, their geomeans per peer, the fastest peer per workload and
goalloc/fastest, and the issue's goals, met or not. Writes programs.md,
programs.json (every run) and programs_time.svg / programs_rss.svg (gnuplot)
into --out-dir: bench/results/ by default, <build-dir>/quick/ with --quick
(smoke numbers never land in bench/results/). --smoke: quick parameters, one
run per workload and allocator, no warm-up, no report; fails on any failed run
(for ctest, through bench/programs/smoke.sh). Standard library only.

  scripts/bench_programs.py --build-dir build-bench [--rounds 5] [--quick | --smoke]
"""
import argparse
import datetime
import json
import math
import os
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import benchlib  # noqa: E402
from benchlib import ROOT, cmake_cache, commit_description, cpu_model, log, memory_total, sh, spread  # noqa: E402


class Workload:
    def __init__(self, name, program, threads, full, quick, what):
        self.name, self.program, self.threads = name, program, threads
        self.full, self.quick, self.what = full, quick, what

    def args(self, quick):
        return (self.quick if quick else self.full).split()


# Parameters: "full" takes ~1-4 s with glibc on the 2-CPU reference machine,
# "quick" ~0.1-0.3 s (large: page faults dominate, ~20 us each in a VM).
WORKLOADS = [
    Workload("larson-1t", "larson", 1,
             "threads=1 slots=5000 ops=200000 rounds=100",
             "threads=1 slots=5000 ops=50000 rounds=40",
             "server churn, slot arrays handed to new threads every round"),
    Workload("larson-2t", "larson", 2,
             "threads=2 slots=5000 ops=200000 rounds=60",
             "threads=2 slots=5000 ops=50000 rounds=20",
             "server churn, 2 threads, cross-thread frees"),
    Workload("xmalloc", "xmalloc", 2,
             "pairs=1 objects=15000000",
             "pairs=1 objects=1500000",
             "1 producer allocates, 1 consumer frees"),
    Workload("cache_scratch", "cache_scratch", 2,
             "threads=2 size=8 iterations=1000 reps=150000",
             "threads=2 size=8 iterations=1000 reps=15000",
             "passive false sharing (objects handed over by main)"),
    Workload("cache_thrash", "cache_thrash", 2,
             "threads=2 size=8 iterations=1000 reps=300000",
             "threads=2 size=8 iterations=1000 reps=30000",
             "active false sharing (each thread its own objects)"),
    Workload("mstress", "mstress", 2,
             "threads=2 rounds=100 ops=200000",
             "threads=2 rounds=10 ops=100000",
             "power-of-two sizes, migrating objects, threads re-created"),
    Workload("binary_trees", "binary_trees", 1,
             "depth=19",
             "depth=14",
             "binary-trees (Benchmarks Game rules) with malloc/free"),
    Workload("alloc_test-1t", "alloc_test", 1,
             "threads=1 ops=25000000",
             "threads=1 ops=2000000",
             "Pareto sizes up to 64 KiB, random lifetimes"),
    Workload("alloc_test-2t", "alloc_test", 2,
             "threads=2 ops=25000000",
             "threads=2 ops=1500000",
             "Pareto sizes, random lifetimes, 2 independent threads"),
    Workload("sh6bench", "sh6bench", 1,
             "threads=1 iterations=600",
             "threads=1 iterations=50",
             "batches freed LIFO, FIFO and every other"),
    Workload("large", "large", 1,
             "slots=4 ops=60",
             "slots=2 ops=6",
             "1-32 MiB blocks, touched, freed, grown with realloc"),
]

# name -> (Debian package, file name of the library); glibc is the C library.
PEERS = {
    "jemalloc": ("libjemalloc2", "libjemalloc.so.2"),
    "mimalloc": ("libmimalloc2.0", "libmimalloc.so.2"),
    "tcmalloc": ("libtcmalloc-minimal4", "libtcmalloc_minimal.so.4"),
}
ALLOCATORS = ["glibc", "jemalloc", "mimalloc", "tcmalloc", "goalloc"]
STATS_RE = re.compile(r"goalloc: stats: mallocs=(\d+)")
RESULT_RE = re.compile(r"^result: (\S+) ops=(\d+) ops_per_sec=([0-9.]+)", re.M)
PEAK_RE = re.compile(r"^result: .* peak_rss_kib=(\d+)", re.M)
FROM_RE = re.compile(r"^malloc_from: (.*)$", re.M)

GOALS_TIME = 0.9      # geomean wall time goalloc/peer, each peer
GOALS_FASTEST = 1.25  # goalloc/fastest peer, each workload
GOALS_RSS = 1.0       # geomean peak RSS goalloc/jemalloc




def dpkg_version(pkg):
    return sh(["dpkg-query", "-W", "-f=${Version}", pkg]) if shutil.which("dpkg-query") else ""


def find_peer_lib(pkg, filename):
    """The library's path: from dpkg -L, else the usual multiarch directories."""
    if shutil.which("dpkg"):
        for line in sh(["dpkg", "-L", pkg]).splitlines():
            if os.path.basename(line) == filename and os.path.exists(line):
                return line
    multiarch = sh(["gcc", "-print-multiarch"]) or f"{platform.machine()}-linux-gnu"
    for d in (f"/usr/lib/{multiarch}", f"/lib/{multiarch}", "/usr/lib64", "/usr/lib",
              "/usr/local/lib"):
        p = os.path.join(d, filename)
        if os.path.exists(p):
            return p
    return None


# ---- pinning ------------------------------------------------------------------

def cpu_list():
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return list(range(os.cpu_count() or 1))


def pin_tool():
    """A function cpus -> command prefix, or None if pinning does not work here."""
    cpus = cpu_list()
    probe = str(cpus[-1])
    if shutil.which("taskset") and subprocess.run(
            ["taskset", "-c", probe, "true"], capture_output=True).returncode == 0:
        return lambda cs: ["taskset", "-c", ",".join(map(str, cs))]
    if shutil.which("numactl") and subprocess.run(
            ["numactl", f"--physcpubind={probe}", "true"], capture_output=True).returncode == 0:
        return lambda cs: ["numactl", "--physcpubind=" + ",".join(map(str, cs))]
    return None


def pin_prefix(tool, threads):
    """Pins a workload of `threads` threads to the last `threads` CPUs, if there
    are more CPUs than that; a workload that needs them all runs unpinned."""
    cpus = cpu_list()
    if tool is None or threads >= len(cpus):
        return []
    return tool(cpus[-threads:])


# ---- one run ---------------------------------------------------------------------

class RunError(Exception):
    pass


def clean_env():
    return benchlib.clean_env((), ("MIMALLOC_VERBOSE", "MIMALLOC_SHOW_STATS", "TCMALLOC_RELEASE_RATE"))


def run_once(exe, args, alloc, libs, pin, stats=False, timeout=600):
    """Runs exe once under allocator `alloc`; returns a dict of measurements.
    Raises RunError if it fails or if the expected allocator was not in use."""
    env = clean_env()
    lib = libs[alloc]
    if lib:
        env["LD_PRELOAD"] = lib
    if stats:
        env["GOALLOC_STATS"] = "1"
    cmd = pin + [exe] + args
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, stdin=subprocess.DEVNULL)
        timer = threading.Timer(timeout, p.kill)
        timer.start()
        try:
            _, status, ru = os.wait4(p.pid, 0)
        finally:
            timer.cancel()
        wall = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    desc = f"{' '.join(shlex.quote(c) for c in cmd)} (allocator {alloc}" + \
        (f", LD_PRELOAD={lib}" if lib else "") + (", GOALLOC_STATS=1" if stats else "") + ")"
    tail = "\n".join((stdout + stderr).strip().splitlines()[-15:])
    if p.returncode != 0:
        how = f"signal {-p.returncode}" if p.returncode < 0 else f"status {p.returncode}"
        raise RunError(f"{desc} exited with {how}:\n{tail}")
    m = RESULT_RE.search(stdout)
    if not m:
        raise RunError(f"{desc} printed no 'result:' line:\n{tail}")
    f = FROM_RE.search(stdout)
    got = f.group(1).strip() if f else "?"
    if lib:
        ok = os.path.realpath(got) == os.path.realpath(lib)
    else:
        ok = re.match(r"libc[.-]", os.path.basename(os.path.realpath(got))) is not None
    if not ok:
        raise RunError(f"{desc}: malloc came from '{got}', not from "
                       f"{lib or 'the C library'}:\n{tail}")
    if "cannot be preloaded" in stderr:
        raise RunError(f"{desc}: the dynamic linker could not preload the library:\n{tail}")
    res = {
        "wall_s": wall,
        "user_s": ru.ru_utime,
        "sys_s": ru.ru_stime,
        "ru_maxrss_kib": ru.ru_maxrss,
        "maxrss_kib": ru.ru_maxrss,
        "ops": int(m.group(2)),
        "ops_per_sec": float(m.group(3)),
        "malloc_from": got,
    }
    peak = PEAK_RE.search(stdout)
    if peak:
        res["maxrss_kib"] = int(peak.group(1))
    if stats:
        s = STATS_RE.findall(stderr)
        if not s or int(s[-1]) <= 0:
            raise RunError(f"{desc}: no 'goalloc: stats: mallocs=N' line with N > 0 on "
                           f"stderr: goalloc was not in use:\n{tail}")
        res["goalloc_mallocs"] = int(s[-1])
    if alloc == "goalloc" and re.search(r"^goalloc: .*(double free|invalid pointer)", stderr, re.M):
        raise RunError(f"{desc}: goalloc reported misuse:\n{tail}")
    return res


# ---- statistics ----------------------------------------------------------------------

def geomean(xs):
    xs = [x for x in xs if x and x > 0]
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else float("nan")



def summarise(runs, workloads, allocs):
    """rows[workload] = {alloc: {wall, cpu, rss_mib, ops_per_sec, spread, n}}"""
    rows = {}
    for w in workloads:
        row = {}
        for a in allocs:
            rs = [r for r in runs if r["workload"] == w.name and r["allocator"] == a
                  and not r.get("warmup")]
            if not rs:
                continue
            walls = [r["wall_s"] for r in rs]
            row[a] = {
                "wall": statistics.median(walls),
                "cpu": statistics.median(r["user_s"] + r["sys_s"] for r in rs),
                "rss_mib": statistics.median(r["maxrss_kib"] for r in rs) / 1024.0,
                "ops_per_sec": statistics.median(r["ops_per_sec"] for r in rs),
                "spread": spread(walls),
                "n": len(rs),
            }
        rows[w.name] = row
    return rows


def analyse(rows, workloads, allocs):
    peers = [a for a in allocs if a != "goalloc"]
    an = {"peers": peers, "time": {}, "rss": {}, "fastest": {}, "geo_time": {}, "geo_rss": {}}
    for w in workloads:
        row = rows[w.name]
        if "goalloc" not in row:
            continue
        g = row["goalloc"]
        an["time"][w.name] = {p: g["wall"] / row[p]["wall"] for p in peers if p in row}
        an["rss"][w.name] = {p: g["rss_mib"] / row[p]["rss_mib"] for p in peers if p in row}
        present = [p for p in peers if p in row]
        if present:
            best = min(present, key=lambda p: row[p]["wall"])
            an["fastest"][w.name] = (best, g["wall"] / row[best]["wall"])
    for p in peers:
        an["geo_time"][p] = geomean([an["time"][w][p] for w in an["time"] if p in an["time"][w]])
        an["geo_rss"][p] = geomean([an["rss"][w][p] for w in an["rss"] if p in an["rss"][w]])
    an["geo_fastest"] = geomean([v[1] for v in an["fastest"].values()])
    return an


def goal_lines(an):
    out = []
    for p in ["glibc", "jemalloc", "mimalloc", "tcmalloc"]:
        v = an["geo_time"].get(p)
        if v is None or math.isnan(v):
            out.append(f"- geomean wall time goalloc/{p} <= {GOALS_TIME}: **not evaluated** "
                       f"({p} did not run)")
        else:
            out.append(f"- geomean wall time goalloc/{p} <= {GOALS_TIME}: "
                       f"**{'met' if v <= GOALS_TIME else 'not met'}** ({v:.3f})")
    if an["fastest"]:
        bad = sorted(((r, w, b) for w, (b, r) in an["fastest"].items() if r > GOALS_FASTEST),
                     reverse=True)
        worst_w, (worst_b, worst_r) = max(an["fastest"].items(), key=lambda kv: kv[1][1])
        detail = (f"worst {worst_w}: {worst_r:.3f}x {worst_b}" if not bad else
                  "over: " + ", ".join(f"{w} {r:.3f}x {b}" for r, w, b in bad))
        out.append(f"- no workload slower than {GOALS_FASTEST}x the fastest peer: "
                   f"**{'met' if not bad else 'not met'}** ({detail})")
    v = an["geo_rss"].get("jemalloc")
    if v is None or math.isnan(v):
        out.append(f"- peak RSS geomean goalloc/jemalloc <= {GOALS_RSS}: **not evaluated**")
    else:
        out.append(f"- peak RSS geomean goalloc/jemalloc <= {GOALS_RSS}: "
                   f"**{'met' if v <= GOALS_RSS else 'not met'}** ({v:.3f})")
    return out


# ---- tables ------------------------------------------------------------------------

def render(head, body, markdown, align_left=1):
    if markdown:
        out = ["| " + " | ".join(head) + " |",
               "|" + "|".join("---" if i < align_left else "---:" for i in range(len(head))) + "|"]
        return out + ["| " + " | ".join(b) + " |" for b in body]
    widths = [max(len(x) for x in col) for col in zip(head, *body)]
    fmt = lambda cells: "  ".join(c.ljust(w) if i < align_left else c.rjust(w)  # noqa: E731
                                  for i, (c, w) in enumerate(zip(cells, widths)))
    return [fmt(head), fmt(["-" * w for w in widths])] + [fmt(b) for b in body]


def f3(x):
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3f}"


def time_table(rows, an, workloads, allocs, markdown):
    head = ["workload"] + [f"{a} s" for a in allocs] + ["fastest peer", "goalloc/fastest",
                                                         "spread"]
    body = []
    for w in workloads:
        row = rows[w.name]
        fast = an["fastest"].get(w.name)
        body.append([w.name] + [f"{row[a]['wall']:.3f}" if a in row else "-" for a in allocs]
                    + [fast[0] if fast else "-", f3(fast[1]) if fast else "-",
                       f"{max((row[a]['spread'] for a in row), default=0):.0f}%"])
    return render(head, body, markdown)


def ratio_table(an, workloads, kind, markdown):
    peers = an["peers"]
    head = ["workload"] + [f"goalloc/{p}" for p in peers]
    body = [[w.name] + [f3(an[kind].get(w.name, {}).get(p)) for p in peers] for w in workloads]
    body.append(["**geomean**" if markdown else "geomean"] +
                [(f"**{f3(an['geo_' + kind][p])}**" if markdown else f3(an["geo_" + kind][p]))
                 for p in peers])
    return render(head, body, markdown)


def rss_table(rows, workloads, allocs, markdown):
    head = ["workload"] + [f"{a} MiB" for a in allocs]
    body = [[w.name] + [f"{rows[w.name][a]['rss_mib']:.1f}" if a in rows[w.name] else "-"
                        for a in allocs] for w in workloads]
    return render(head, body, markdown)


def fmt_rate(x):
    for div, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if x >= div:
            return f"{x / div:.3g}{unit}"
    return f"{x:.3g}"


def cpu_ops_table(rows, workloads, allocs, markdown):
    head = ["workload"] + [f"{a} CPU s" for a in allocs] + [f"{a} ops/s" for a in allocs]
    body = []
    for w in workloads:
        row = rows[w.name]
        body.append([w.name] + [f"{row[a]['cpu']:.2f}" if a in row else "-" for a in allocs]
                    + [fmt_rate(row[a]["ops_per_sec"]) if a in row else "-" for a in allocs])
    return render(head, body, markdown)


# ---- charts -------------------------------------------------------------------------

COLORS = {"glibc": "#4c72b0", "jemalloc": "#dd8452", "mimalloc": "#55a868", "tcmalloc": "#c44e52"}


def write_svg(an, kind, path, title, ylabel, goal):
    gnuplot = shutil.which("gnuplot")
    if not gnuplot:
        log("bench_programs: gnuplot not found, no SVG chart")
        return False
    peers = an["peers"]
    names = list(an[kind].keys())
    if not names or not peers:
        return False
    groups = names + ["geomean"]
    values = [an[kind][n] for n in names] + [an["geo_" + kind]]
    allv = [v[p] for v in values for p in peers if p in v and not math.isnan(v[p])]
    lo = min(min(allv), goal or 1.0, 1.0) / 1.25
    hi = max(max(allv), 1.0) * 1.25
    width = 0.8 / len(peers)
    with tempfile.TemporaryDirectory() as tmp:
        plots = []
        for j, p in enumerate(peers):
            data = os.path.join(tmp, f"{p}.dat")
            with open(data, "w") as f:
                for i, v in enumerate(values):
                    if p in v and not math.isnan(v[p]):
                        x = i + (j - (len(peers) - 1) / 2) * width
                        f.write(f"{x:.4f} {v[p]:.6f}\n")
            plots.append(f'"{data}" using 1:(1):($1-{width / 2 * 0.9:.4f}):($1+{width / 2 * 0.9:.4f})'
                         f':(1):2 with boxxyerrorbars lc rgb "{COLORS.get(p, "#888888")}" '
                         f'title "vs {p}"')
        xtics = ", ".join(f'"{g}" {i}' for i, g in enumerate(groups))
        nice = [1 / 16, 1 / 8, 0.25, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.25, 1.5, 2, 3, 4, 6, 8,
                16, 32, 64]
        ticks = [t for t in nice if lo <= t <= hi]
        if len(ticks) > 12:
            ticks = [t for t in ticks if t in (1 / 16, 1 / 8, 0.25, 0.5, 0.8, 1.0, 1.25, 2, 4, 8,
                                               16, 32, 64)]
        ytics = ", ".join(f'"{t:g}" {t}' for t in ticks)
        goal_arrow = (f'set arrow from graph 0, first {goal} to graph 1, first {goal} nohead '
                      f'lc rgb "#555555" dt 2 lw 1\n'
                      f'set label "goal {goal}" at graph 1.005, first {goal} left font ",9"\n'
                      if goal and goal != 1.0 else "")
        script = f"""
set terminal svg size {max(900, 90 * len(groups) + 200)},560 dynamic noenhanced font "sans,11" background "white"
set output "{path}"
set title "{title}"
set logscale y 2
set yrange [{lo}:{hi}]
set ylabel "{ylabel}"
set xrange [-0.6:{len(groups) - 0.4}]
set xtics ({xtics}) rotate by 30 right scale 0
set ytics ({ytics})
set grid ytics
set style fill solid 0.85 border -1
set key outside right top vertical
set arrow from graph 0, first 1 to graph 1, first 1 nohead lc rgb "black" lw 1
{goal_arrow}set arrow from {len(names) - 0.5}, graph 0 to {len(names) - 0.5}, graph 1 nohead lc rgb "#999999" dt 3
set bmargin 7
plot {", ".join(plots)}
"""
        res = subprocess.run([gnuplot], input=script, text=True, capture_output=True)
        if res.returncode != 0:
            log(f"bench_programs: gnuplot failed:\n{res.stderr}")
            return False
    return True


# ---- the report -----------------------------------------------------------------------

def machine_info(libs, goalloc_cache):
    cpu, mem = cpu_model(), memory_total()
    # goalloc as built: the commit of the source tree its build came from, and
    # whether that tree's allocator sources (alloc/, include/) had local changes.
    src = goalloc_cache.get("CMAKE_HOME_DIRECTORY", ROOT)
    gcommit = sh(["git", "rev-parse", "HEAD"], cwd=src) or "?"
    gdirty = bool(sh(["git", "status", "--porcelain", "--untracked-files=no", "--",
                      "alloc", "include"], cwd=src))
    versions = {
        "glibc": dpkg_version("libc6") or (os.confstr("CS_GNU_LIBC_VERSION")
                                           if hasattr(os, "confstr") else "?"),
        "goalloc": f"commit {gcommit[:12]}"
                   f"{' with uncommitted changes in alloc/ or include/' if gdirty else ''}"
                   f"{'' if os.path.realpath(src) == os.path.realpath(ROOT) else f' (source {src})'}, "
                   f"CMAKE_BUILD_TYPE={goalloc_cache.get('CMAKE_BUILD_TYPE', '?')}, "
                   f"GOALLOC_DEBUG_LEVEL={goalloc_cache.get('GOALLOC_DEBUG_LEVEL', '?')}",
    }
    for name, (pkg, _) in PEERS.items():
        versions[name] = dpkg_version(pkg) or "?"
    cc = (sh(["cc", "--version"]).splitlines() or ["?"])[0]
    return {
        "uname": " ".join(x for x in platform.uname() if x),
        "cpu": cpu,
        "nproc": len(cpu_list()),
        "memory": mem,
        "commit": commit_description(),
        "compiler": cc,
        "versions": versions,
        "libs": libs,
    }


def write_report(path, args, info, rows, an, workloads, allocs, rounds, pin_desc, svgs,
                 load_start, load_end, started, elapsed, json_name):
    md = ["# goalloc vs glibc, jemalloc, mimalloc, tcmalloc: program suite", ""]
    md.append(f"Generated {started} by `{args.command}` in {elapsed / 60:.1f} min.")
    md.append("")
    md.append("Each workload is a program of [`bench/programs/`](../programs/) "
              "(none links goalloc) run under each allocator: glibc without a preload, the "
              "others through `LD_PRELOAD`. Per workload: one warm-up run per allocator "
              f"(discarded), then {rounds} interleaved round(s), each running every allocator "
              "once in an order rotated by one each round. Tables show medians over the rounds: "
              "wall time of the process, peak RSS (the process's `VmHWM` at its end; the "
              "`ru_maxrss` of `wait4` would also count the runner's own RSS, inherited through "
              "fork and exec), CPU time (user + sys, `wait4`) and the "
              "workload's own throughput. Ratios are goalloc / peer: **below 1, goalloc is faster "
              "(smaller)**. Every run exited 0 and named the expected library as the definer of "
              "`malloc` (`malloc_from:`, asked of the dynamic linker); goalloc's warm-up runs "
              "had `GOALLOC_STATS=1` and reported `mallocs=N` with N > 0.")
    md.append("")
    md.append(f"Pinning: {pin_desc}")
    md.append("")
    ncpu = info["nproc"]
    if max(load_start, load_end) >= 0.5 * ncpu:
        md.append(f"**Caution:** the machine was busy (1-minute load average {load_start:.1f} at "
                  f"the start, {load_end:.1f} at the end, on {ncpu} CPUs): other processes "
                  "competed for the CPUs, the 2-thread workloads most. The spread column shows "
                  "how much the rounds disagreed; take ratios within the spread as ties.")
        md.append("")
    md += ["## Goals (issue #4)", ""] + goal_lines(an) + [""]
    md += ["## Wall time (median, seconds)", ""]
    md += time_table(rows, an, workloads, allocs, True)
    md += ["", "spread = (max - min) / median of the wall times of the noisiest allocator "
           "over the rounds.", ""]
    md += ["## goalloc / peer, wall time", ""]
    if svgs.get("time"):
        md += [f"![relative wall time]({svgs['time']})", ""]
    md += ratio_table(an, workloads, "time", True) + [""]
    md += ["## Peak RSS (median, MiB)", ""] + rss_table(rows, workloads, allocs, True) + [""]
    md += ["## goalloc / peer, peak RSS", ""]
    if svgs.get("rss"):
        md += [f"![relative peak RSS]({svgs['rss']})", ""]
    md += ratio_table(an, workloads, "rss", True) + [""]
    md += ["## CPU time (user + sys, median s) and throughput (workload's ops/s, median)", ""]
    md += cpu_ops_table(rows, workloads, allocs, True) + [""]
    md += ["## Workloads", "", "| workload | threads | parameters | what |", "|---|---:|---|---|"]
    for w in workloads:
        md.append(f"| {w.name} | {w.threads} | `{w.program} {' '.join(w.args(args.quick))}` "
                  f"| {w.what} |")
    md.append("")
    md += ["## Machine and allocators", ""]
    md.append(f"- machine: `{info['uname']}`")
    md.append(f"- CPU: {info['cpu']}, nproc {info['nproc']}, memory {info['memory']}")
    md.append(f"- load average (1 min) at start {load_start:.2f}, at end {load_end:.2f}")
    md.append(f"- git commit (workloads and scripts): {info['commit']}")
    md.append(f"- workloads compiled by: {info['compiler']} (-O2)")
    for a in allocs:
        lib = info["libs"].get(a)
        md.append(f"- {a}: {info['versions'].get(a, '?')}" + (f", `{lib}`" if lib else
                                                               " (no preload)"))
    md.append(f"- raw runs: [{json_name}]({json_name})")
    md.append("")
    with open(path, "w") as f:
        f.write("\n".join(md))


# ---- main ---------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="\n".join(__doc__.splitlines()[1:]))
    ap.add_argument("--build-dir", default=os.path.join(ROOT, "build-bench"),
                    help="build tree with alloc/libgoalloc.so and bench/programs/ (build-bench)")
    ap.add_argument("--programs-dir", help="where the workload executables are "
                    "(default BUILD_DIR/bench/programs)")
    ap.add_argument("--goalloc-lib", help="libgoalloc.so to preload (default BUILD_DIR/alloc/libgoalloc.so)")
    ap.add_argument("--rounds", type=int, default=5, help="measured rounds (default 5)")
    ap.add_argument("--quick", action="store_true",
                    help="quick parameters, 1 round, report into BUILD_DIR/quick/")
    ap.add_argument("--smoke", action="store_true",
                    help="quick parameters, one run per workload and allocator, no report; "
                    "fails if any run fails (ctest)")
    ap.add_argument("--out-dir", help="report directory (default bench/results, or "
                    "BUILD_DIR/quick with --quick)")
    ap.add_argument("--workloads", help="comma-separated subset of: " +
                    ",".join(w.name for w in WORKLOADS))
    ap.add_argument("--allocators", help="comma-separated subset of: " + ",".join(ALLOCATORS))
    ap.add_argument("--no-warmup", action="store_true", help="skip the warm-up runs "
                    "(goalloc's GOALLOC_STATS check then runs on its own)")
    ap.add_argument("--timeout", type=float, default=600, help="seconds per run (default 600)")
    ap.add_argument("--command", help="command line to record in the report")
    args = ap.parse_args()
    args.command = args.command or "scripts/bench_programs.py" + \
        "".join(" " + shlex.quote(a) for a in sys.argv[1:])
    if args.smoke:
        args.quick = True
    if args.quick:
        args.rounds = 1
    if args.rounds < 1:
        ap.error("--rounds must be >= 1")

    build = os.path.abspath(args.build_dir)
    progdir = os.path.abspath(args.programs_dir or os.path.join(build, "bench", "programs"))
    glib = os.path.abspath(args.goalloc_lib or os.path.join(build, "alloc", "libgoalloc.so"))
    workloads = WORKLOADS
    if args.workloads:
        want = args.workloads.split(",")
        unknown = set(want) - {w.name for w in WORKLOADS}
        if unknown:
            ap.error(f"unknown workload(s): {', '.join(sorted(unknown))}")
        workloads = [w for w in WORKLOADS if w.name in want]
    allocs = list(ALLOCATORS)
    if args.allocators:
        want = args.allocators.split(",")
        unknown = set(want) - set(ALLOCATORS)
        if unknown:
            ap.error(f"unknown allocator(s): {', '.join(sorted(unknown))}")
        allocs = [a for a in ALLOCATORS if a in want]

    # ---- what is there to run
    for w in workloads:
        exe = os.path.join(progdir, w.program)
        if not os.access(exe, os.X_OK):
            sys.exit(f"bench_programs: {exe} not found: build the bench_programs target "
                     f"(or pass --programs-dir)")
    libs = {"glibc": None}
    for a in allocs:
        if a == "goalloc":
            if not os.path.exists(glib):
                sys.exit(f"bench_programs: {glib} not found: build the goalloc target "
                         "(or pass --goalloc-lib)")
            libs[a] = glib
        elif a in PEERS:
            lib = find_peer_lib(*PEERS[a])
            if lib is None:
                log(f"WARNING: {a} not found ({PEERS[a][1]}, Debian package {PEERS[a][0]}): "
                    "left out")
                continue
            libs[a] = lib
    allocs = [a for a in allocs if a in libs]
    goalloc_cache = cmake_cache(os.path.dirname(os.path.dirname(os.path.realpath(glib))))
    if "goalloc" in allocs and not args.smoke:
        bt = goalloc_cache.get("CMAKE_BUILD_TYPE", "?")
        dl = goalloc_cache.get("GOALLOC_DEBUG_LEVEL", "?")
        if bt != "Release" or dl != "0":
            log(f"WARNING: {glib} comes from a {bt} build with GOALLOC_DEBUG_LEVEL={dl}, "
                "not Release/0: its numbers are not goalloc's")

    tool = pin_tool()
    ncpu = len(cpu_list())
    if tool is None:
        pin_desc = "none (neither taskset nor numactl can set affinity here)."
    else:
        pinned = sorted({w.threads for w in workloads if w.threads < ncpu})
        unpinned = sorted({w.threads for w in workloads if w.threads >= ncpu})
        pin_desc = (f"{' '.join(tool([0])[:1])}; a workload of T threads runs on the last T of "
                    f"the {ncpu} CPUs when T < {ncpu}" +
                    (f" (here: T = {', '.join(map(str, pinned))})" if pinned else "") +
                    (f"; T = {', '.join(map(str, unpinned))} needs every CPU and runs unpinned"
                     if unpinned else "") + ".")

    out_dir = args.out_dir or (os.path.join(build, "quick") if args.quick
                               else os.path.join(ROOT, "bench", "results"))
    mode = "smoke" if args.smoke else ("quick" if args.quick else "full")
    log(f"bench_programs: {len(workloads)} workloads x {len(allocs)} allocators "
        f"({', '.join(allocs)}), {mode} parameters, "
        f"{'no warm-up, ' if args.smoke or args.no_warmup else 'warm-up + '}"
        f"{args.rounds} round(s)")
    for a in allocs:
        log(f"  {a:9s} {libs[a] or '(no preload: the C library)'}")
    log(f"  pinning: {pin_desc}")

    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    load_start = os.getloadavg()[0]
    t_start = time.time()
    runs, failures = [], []
    for wi, w in enumerate(workloads):
        exe = os.path.join(progdir, w.program)
        wargs = w.args(args.quick)
        pin = pin_prefix(tool, w.threads)
        log(f"[{wi + 1}/{len(workloads)}] {w.name}: {w.program} {' '.join(wargs)}"
            + (f"  ({' '.join(pin)})" if pin else "  (unpinned)"))

        def attempt(alloc, rnd, warmup=False, stats=False):
            try:
                r = run_once(exe, wargs, alloc, libs, pin, stats=stats, timeout=args.timeout)
            except RunError as e:
                failures.append(str(e))
                log(f"    FAILED: {e}")
                return None
            r.update({"workload": w.name, "allocator": alloc, "round": rnd, "warmup": warmup,
                      "args": wargs, "pin": pin})
            runs.append(r)
            return r

        if args.smoke:
            for a in allocs:
                r = attempt(a, 0, stats=(a == "goalloc"))
                if r:
                    extra = f", goalloc mallocs={r['goalloc_mallocs']}" if a == "goalloc" else ""
                    log(f"    {a:9s} ok  {r['wall_s']:.3f} s  {r['maxrss_kib'] / 1024:.1f} MiB{extra}")
            continue
        if args.no_warmup:
            if "goalloc" in allocs:
                r = attempt("goalloc", 0, warmup=True, stats=True)
                if r:
                    log(f"    goalloc check: mallocs={r['goalloc_mallocs']}")
        else:
            parts = []
            for a in allocs:
                r = attempt(a, 0, warmup=True, stats=(a == "goalloc"))
                if r:
                    parts.append(f"{a} {r['wall_s']:.2f}s" + (
                        f" (mallocs={r['goalloc_mallocs']})" if a == "goalloc" else ""))
            log(f"    warm-up: {', '.join(parts)}")
        for rnd in range(1, args.rounds + 1):
            k = (rnd - 1) % len(allocs)
            order = allocs[k:] + allocs[:k]
            parts = []
            for a in order:
                r = attempt(a, rnd)
                if r:
                    parts.append(f"{a} {r['wall_s']:.3f}s/{r['maxrss_kib'] / 1024:.0f}M")
            log(f"    round {rnd}/{args.rounds}: {', '.join(parts)}")
    elapsed = time.time() - t_start
    load_end = os.getloadavg()[0]

    if args.smoke:
        if failures:
            log(f"bench_programs: smoke: {len(failures)} run(s) FAILED")
            return 1
        log(f"bench_programs: smoke: all {len(runs)} runs passed in {elapsed:.1f} s")
        return 0

    rows = summarise(runs, workloads, allocs)
    an = analyse(rows, workloads, allocs)
    log("")
    log("wall time (median s):")
    log("\n".join(time_table(rows, an, workloads, allocs, False)))
    log("")
    log("goalloc / peer, wall time:")
    log("\n".join(ratio_table(an, workloads, "time", False)))
    log("")
    log("peak RSS (median MiB):")
    log("\n".join(rss_table(rows, workloads, allocs, False)))
    log("")
    log("goalloc / peer, peak RSS:")
    log("\n".join(ratio_table(an, workloads, "rss", False)))
    log("")
    log("goals:")
    log("\n".join(l.replace("**", "") for l in goal_lines(an)))

    os.makedirs(out_dir, exist_ok=True)
    info = machine_info(libs, goalloc_cache)
    json_name = "programs.json"
    with open(os.path.join(out_dir, json_name), "w") as f:
        json.dump({
            "generated": started, "command": args.command, "mode": mode,
            "rounds": args.rounds, "pinning": pin_desc, "machine": info,
            "load_avg_start": load_start, "load_avg_end": load_end,
            "workloads": [{"name": w.name, "program": w.program, "threads": w.threads,
                           "args": w.args(args.quick)} for w in workloads],
            "runs": runs, "failures": failures,
            "medians": rows,
        }, f, indent=1)
    svgs = {}
    if "goalloc" in allocs and len(allocs) > 1:
        if write_svg(an, "time", os.path.join(out_dir, "programs_time.svg"),
                     f"goalloc wall time / peer wall time (median of {args.rounds}; "
                     "below 1 = goalloc faster)", "goalloc / peer (wall time)", GOALS_TIME):
            svgs["time"] = "programs_time.svg"
        if write_svg(an, "rss", os.path.join(out_dir, "programs_rss.svg"),
                     f"goalloc peak RSS / peer peak RSS (median of {args.rounds}; "
                     "below 1 = goalloc smaller)", "goalloc / peer (peak RSS)", None):
            svgs["rss"] = "programs_rss.svg"
    md_path = os.path.join(out_dir, "programs.md")
    write_report(md_path, args, info, rows, an, workloads, allocs, args.rounds, pin_desc, svgs,
                 load_start, load_end, started, elapsed, json_name)
    log("")
    log(f"wrote {md_path}, {json_name}" + "".join(f", {s}" for s in svgs.values()) +
        f" ({elapsed / 60:.1f} min)")
    if failures:
        log(f"bench_programs: {len(failures)} run(s) FAILED (left out of the medians)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
