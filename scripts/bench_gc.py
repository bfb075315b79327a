#!/usr/bin/env python3
"""The garbage-collector suite: bench/gc/* on goalloc's collector, Boehm GC and Go.

Three programs, each written three times with the same algorithm and output
(bench/gc/): binary_trees (the Benchmarks Game's, one mutator thread), gcbench
(Boehm's GCBench) and gc_latency (mutators replacing random entries of a large
live heap of 64-byte objects while cycles run). The goalloc flavour links
goalloc_core and uses gc::make/gc::Ptr; the Boehm flavour GC_MALLOC (Debian's
libgc); the Go flavour is built here with `go build` (Debian's golang-go; no
network: GOPROXY=off, GOCACHE and GOPATH under the build tree).

Per program: one warm-up run of every runtime (discarded; not for gc_latency,
whose runs are long), then K interleaved rounds (round r runs every runtime
once, the order rotated by r). Each run records wall time, user+sys CPU
(os.wait4's rusage), and what the program prints on stderr in its `gcstats`
line: collector cycles, total and longest stop-the-world pause, GC CPU
fraction, peak RSS (VmHWM: the ru_maxrss of wait4 would also keep the peak of
the process the child was forked from, this one), and for gc_latency the
mutator's hiccups and throughput. Runs are not pinned: every collector has
threads of its own (goalloc's mark worker and sweeper, Go's GC workers,
Boehm's parallel markers), all get every CPU. Before each run, cpu_pingpong
(bench/gc/cpu_pingpong.c, ~10 ms) measures a cache line's round trip between
the first two CPUs: the host moves this VM's vCPUs between placements, and
the report shows each program's times by the round trip its runs began with.
goalloc's gc_latency runs with GODEBUG=gctrace=2 (Go's with gctrace=1, for
its CPU accounting), and the report takes each run's longest pause apart
(the stop's wait, the barrier buffers' flush, the stopped world's work).

Checks (any failure fails the script, loudly): every run exits 0 and prints a
gcstats line; binary_trees' standard output equals the Benchmarks Game's lines
computed here from the algorithm, in every runtime; gcbench's standard output is
the same in every runtime and run; gc_latency's runs check their own heap.

binary_trees' peak RSS against Go's also depends on the depth: at each one
the peak is where a cycle happens to meet one of the program's big trees (the
stretch tree, the long-lived one, the last iteration's), for Go as for
goalloc. So after the main rounds binary_trees also runs at other depths
(--rss-depths, default 18,20,21; goalloc and Go only, --rss-rounds
interleaved rounds each, the order alternated, outputs checked), and the
report gives the peak RSS ratio at each depth and their geometric mean.

Reports medians over the rounds, ratios goalloc/peer, and the issue's goals
(met or not, with the numbers): gc.md, gc.json (every run) and two gnuplot
charts (gc_ratio.svg, gc_pauses.svg) into --out-dir: bench/results/ by
default, <build-dir>/quick/ with --quick. Standard library only.

  scripts/bench_gc.py --build-dir build-bench [--rounds 3] [--quick] [--depth 19]
                      [--live-mb 1024] [--seconds 10] [--rss-depths 18,20,21]
                      [--rss-rounds 3]
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
from bench_programs import cpu_list, dpkg_version, f3, render  # noqa: E402

RUNTIMES = ["goalloc", "boehm", "go"]
PEERS = ["boehm", "go"]
PROGRAMS = ["binary_trees", "gcbench", "gc_latency"]
WHAT = {
    "binary_trees": "the Benchmarks Game's binary-trees, one mutator thread",
    "gcbench": "Boehm's GCBench: top-down and bottom-up trees, a long-lived tree and array",
    "gc_latency": "mutator replacing random lists of 64-byte objects in a large live heap",
}
GCSTATS_RE = re.compile(r"^gcstats (.*)$", re.M)

# The goals.
GOAL_BT_SPEEDUP = 1.5       # binary_trees at least 1.5x faster than Boehm and Go
GOAL_MAX_PAUSE_NS = 50000   # longest stop-the-world over a 1 GiB live heap
GOAL_LIVE_MB = 1024
GOAL_MARK_CPU = 0.25        # collector CPU share while marking


def expected_binary_trees(depth):
    """The standard output of binary-trees at `depth`, from the algorithm."""
    min_depth = 4
    max_depth = max(min_depth + 2, depth)
    nodes = lambda d: (2 << d) - 1  # noqa: E731
    out = [f"stretch tree of depth {max_depth + 1}\t check: {nodes(max_depth + 1)}"]
    for d in range(min_depth, max_depth + 1, 2):
        it = 1 << (max_depth - d + min_depth)
        out.append(f"{it}\t trees of depth {d}\t check: {it * nodes(d)}")
    out.append(f"long lived tree of depth {max_depth}\t check: {nodes(max_depth)}")
    return "\n".join(out) + "\n"


# ---- building the Go flavours ------------------------------------------------------

def go_env(godir):
    env = dict(os.environ)
    env.update({"GOCACHE": os.path.join(godir, "cache"), "GOPATH": os.path.join(godir, "path"),
                "GOPROXY": "off", "GOFLAGS": "", "GOWORK": "off", "GOTOOLCHAIN": "local",
                "CGO_ENABLED": "0"})
    return env


def build_go(godir, programs):
    """go build bench/gc/NAME.go -> godir/NAME for each program; {name: exe}, or
    None if there is no go command."""
    go = shutil.which("go")
    if not go:
        return None
    os.makedirs(godir, exist_ok=True)
    exes = {}
    for name in programs:
        src = os.path.join(ROOT, "bench", "gc", f"{name}.go")
        exe = os.path.join(godir, name)
        res = subprocess.run([go, "build", "-o", exe, src], env=go_env(godir),
                             capture_output=True, text=True, cwd=os.path.dirname(src))
        if res.returncode != 0:
            sys.exit(f"bench_gc: go build {src} failed:\n{res.stdout}{res.stderr}")
        exes[name] = exe
    return exes


# ---- one run ----------------------------------------------------------------------

class RunError(Exception):
    pass


def clean_env():
    """Without the knobs of any of the three runtimes (and of the allocators),
    so each runs with its defaults (GOGC=100, ...)."""
    return benchlib.clean_env(("GC_",), ("GOGC", "GOMEMLIMIT", "GOMAXPROCS", "GODEBUG", "GOTRACEBACK"))


def parse_kv(text):
    out = {}
    for tok in text.split():
        if "=" in tok:
            k, v = tok.split("=", 1)
            try:
                out[k] = int(v)
            except ValueError:
                try:
                    out[k] = float(v)
                except ValueError:
                    out[k] = v
    return out


# One line of Go's GODEBUG=gctrace=1 (runtime/mgc.go's format, which goalloc's
# gctrace copies): the mark phase's wall clock (the middle "clock" figure) and
# its CPU, assist/background/idle (the middle "cpu" figures), and GOMAXPROCS.
GCTRACE_RE = re.compile(r"^gc \d+ @([\d.]+)s \d+%: [\d.]+\+([\d.]+)\+[\d.]+ ms clock, "
                        r"[\d.]+\+([\d.]+)/([\d.]+)/([\d.]+)\+[\d.]+ ms cpu, .* (\d+) P", re.M)


def go_mark_accounting(stderr, after_s):
    """Go's own GC CPU accounting of its mark phases, from its gctrace, over
    the cycles that began at or after after_s seconds (gc_latency: the end of
    the heap's build): (assists + background) / (mark wall x GOMAXPROCS), and
    idle-CPU marking / the same. None if no such cycle."""
    wall = work = idle = 0.0
    for m in GCTRACE_RE.finditer(stderr):
        if float(m.group(1)) < after_s:
            continue
        procs = int(m.group(6))
        wall += float(m.group(2)) * procs
        work += float(m.group(3)) + float(m.group(4))
        idle += float(m.group(5))
    if wall <= 0:
        return None
    return work / wall, idle / wall


# goalloc's GODEBUG=gctrace=2 line with a cycle's longest pause and its parts
# (gc/collector.cpp, print_gctrace): mark start's longest thread hold
# (pause1), and mark termination's stop wait, flush, work and restart.
STW_DETAIL_RE = re.compile(
    r"^gc (\d+) stw detail: longest pause (\d+) us; pause1 (\d+) us: stop1 \d+ us \(\d+ signalled\), "
    r"body1 \d+ us; termination attempts (\d+), stop2 (\d+) us \((\d+) signalled, last (\w+|-)\), "
    r"flush (\d+) us \((\d+) entries\), body (\d+) us \(caches (\d+) us\), restart (\d+) us", re.M)
PAUSE_PARTS = ("cycle", "longest_us", "pause1_us", "attempts", "stop_us", "signalled", "last",
               "flush_us", "entries", "body_us", "caches_us", "restart_us")


def longest_pause_parts(stderr):
    """The parts of the run's longest pause, from goalloc's gctrace=2: the
    cycle whose longest pause is the run's, as a dict (PAUSE_PARTS), or None."""
    best = None
    for m in STW_DETAIL_RE.finditer(stderr):
        d = {k: (v if k == "last" else int(v)) for k, v in zip(PAUSE_PARTS, m.groups())}
        if best is None or d["longest_us"] > best["longest_us"]:
            best = d
    return best


def run_once(exe, args, timeout, extra_env=None):
    cmd = [exe] + args
    env = clean_env()
    env.update(extra_env or {})
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
        code = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    desc = " ".join(shlex.quote(c) for c in cmd)
    tail = "\n".join((stdout + stderr).strip().splitlines()[-15:])
    if code != 0:
        how = f"signal {-code}" if code < 0 else f"status {code}"
        raise RunError(f"{desc} exited with {how}:\n{tail}")
    m = GCSTATS_RE.findall(stderr)
    if not m:
        raise RunError(f"{desc} printed no 'gcstats' line on stderr:\n{tail}")
    stats = parse_kv(m[-1])
    for k in ("cycles", "pause_total_ns", "pause_max_ns", "gc_cpu_fraction", "vmhwm_kib"):
        if k not in stats:
            raise RunError(f"{desc}: gcstats line without {k}=:\n{m[-1]}")
    return {
        "wall_s": wall, "user_s": ru.ru_utime, "sys_s": ru.ru_stime,
        "ru_maxrss_kib": ru.ru_maxrss, "rss_kib": stats["vmhwm_kib"],
        "stats": stats, "stdout": stdout, "stderr": stderr,
    }


# The host moves this VM's two vCPUs between placements: a cache line's round
# trip between them is ~55-85 ns at some times, ~100-300 ns at others and
# ~400-700 ns at others again (NOTES.md, twelfth pass), and the two-thread
# runtimes slow down as it grows. cpu_pingpong measures it (~10 ms) before
# each run, so that the report can say which runs had which.
CPU_BANDS = [(0.0, 100.0, "< 100 ns"), (100.0, 300.0, "100–300 ns"), (300.0, float("inf"), ">= 300 ns")]


def cpu_round_trip(probe):
    """The first two CPUs' cache-line round trip (ns), or None."""
    if probe is None:
        return None
    try:
        p = subprocess.run([probe], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = re.search(r"cpu_round_trip_ns=([0-9.]+)", p.stdout)
    return float(m.group(1)) if p.returncode == 0 and m and float(m.group(1)) > 0 else None


# ---- statistics ---------------------------------------------------------------------

def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def summarise(runs, programs, runtimes):
    """rows[program][runtime] = medians (and worst cases) over the measured runs."""
    rows = {}
    for prog in programs:
        row = {}
        for rt in runtimes:
            rs = [r for r in runs if r["program"] == prog and r["runtime"] == rt
                  and not r["warmup"]]
            if not rs:
                continue
            st = lambda k: [r["stats"].get(k) for r in rs]  # noqa: E731
            walls = [r["wall_s"] for r in rs]
            row[rt] = {
                "n": len(rs),
                "wall": med(walls),
                "spread": spread(walls),
                "cpu": med([r["user_s"] + r["sys_s"] for r in rs]),
                "rss_mib": med([r["rss_kib"] / 1024.0 for r in rs]),
                "cycles": med(st("cycles")),
                "pause_total_ms": med([x / 1e6 for x in st("pause_total_ns")]),
                "pause_max_us": med([x / 1e3 for x in st("pause_max_ns")]),
                "pause_max_worst_us": max(x / 1e3 for x in st("pause_max_ns")),
                "gc_cpu_fraction": med(st("gc_cpu_fraction")),
            }
            if prog == "gc_latency":
                g = row[rt]
                for k in ("ops_per_sec", "steady_cycles", "build_s"):
                    g[k] = med(st(k))
                g["max_gap_us"] = med([x / 1e3 for x in st("max_gap_ns")])
                g["max_gap_worst_us"] = max(x / 1e3 for x in st("max_gap_ns"))
                g["p50_gap_us"] = med([x / 1e3 for x in st("p50_gap_ns")])
                g["p99_gap_us"] = med([x / 1e3 for x in st("p99_gap_ns")])
                g["gaps_over_1ms"] = med(st("gaps_over_1ms"))
                mc = [x for x in st("mark_cpu_fraction") if x is not None and x >= 0]
                if mc:
                    g["mark_cpu_fraction"] = med(mc)
                    g["mark_cpu_fraction_worst"] = max(mc)
                    g["mark_duty"] = med(st("mark_duty"))
                    bg = [x for x in st("mark_bg_cpu_fraction") if x is not None and x >= 0]
                    g["mark_bg_cpu_fraction"] = med(bg) if bg else None
                # The collector's own account in Go's terms (idle-CPU marking apart).
                gm = [x for x in st("mark_go_cpu_fraction") if x is not None and x >= 0]
                if gm:
                    g["mark_go_cpu_fraction"] = med(gm)
                    g["mark_go_cpu_fraction_worst"] = max(gm)
                    idl = [x for x in st("mark_idle_cpu_fraction") if x is not None and x >= 0]
                    g["mark_idle_cpu_fraction"] = med(idl) if idl else None
                    pl = [x for x in st("mark_pooled_cpu_fraction") if x is not None and x >= 0]
                    if pl:
                        g["mark_pooled_cpu_fraction"] = med(pl)
                        g["mark_pooled_cpu_fraction_worst"] = max(pl)
        rows[prog] = row
    return rows


def ratio(a, b):
    return a / b if a is not None and b not in (None, 0) else None


def depth_sweep(exes, depths, rounds, timeout):
    """binary_trees at each of depths, goalloc and Go alternately, `rounds`
    times: ([run], [failure])."""
    runs, failures = [], []
    for d in depths:
        expected = expected_binary_trees(d)
        for rnd in range(1, rounds + 1):
            order = ["goalloc", "go"] if rnd % 2 else ["go", "goalloc"]
            parts = []
            for rt in order:
                exe = exes[rt]["binary_trees"]
                try:
                    r = run_once(exe, [str(d)], timeout)
                    if r["stdout"] != expected:
                        raise RunError(f"{exe} {d}: standard output differs from the Benchmarks "
                                       f"Game's lines:\n--- expected\n{expected}--- got\n{r['stdout']}")
                except RunError as e:
                    failures.append(str(e))
                    log(f"    FAILED: {e}")
                    continue
                runs.append({"runtime": rt, "depth": d, "round": rnd, "wall_s": r["wall_s"],
                             "rss_kib": r["rss_kib"], "cycles": r["stats"]["cycles"]})
                parts.append(f"{rt} {r['wall_s']:.2f}s/{r['rss_kib'] / 1024:.1f}M")
            log(f"    depth {d} round {rnd}/{rounds}: {', '.join(parts)}")
    return runs, failures


def depth_rows(depth_runs, rows, main_depth):
    """Per depth (the main rounds' depth included): median peak RSS and wall
    time of goalloc and Go, and the RSS ratio; sorted by depth."""
    out = []
    bt = rows.get("binary_trees", {})
    if "goalloc" in bt and "go" in bt:
        g, o = bt["goalloc"], bt["go"]
        out.append({"depth": main_depth, "n": min(g["n"], o["n"]), "goalloc_mib": g["rss_mib"],
                    "go_mib": o["rss_mib"], "goalloc_s": g["wall"], "go_s": o["wall"], "main": True})
    for d in sorted({r["depth"] for r in depth_runs}):
        g = [r for r in depth_runs if r["depth"] == d and r["runtime"] == "goalloc"]
        o = [r for r in depth_runs if r["depth"] == d and r["runtime"] == "go"]
        if not g or not o:
            continue
        out.append({"depth": d, "n": min(len(g), len(o)),
                    "goalloc_mib": med([r["rss_kib"] / 1024.0 for r in g]),
                    "go_mib": med([r["rss_kib"] / 1024.0 for r in o]),
                    "goalloc_s": med([r["wall_s"] for r in g]), "go_s": med([r["wall_s"] for r in o]),
                    "main": False})
    for r in out:
        r["ratio"] = ratio(r["goalloc_mib"], r["go_mib"])
    return sorted(out, key=lambda r: r["depth"])


def depth_geomean(drows):
    rs = [r["ratio"] for r in drows if r["ratio"]]
    return math.exp(sum(math.log(x) for x in rs) / len(rs)) if len(rs) >= 2 else None


def depth_table(drows, md):
    head = ["depth", "rounds", "goalloc MiB", "go MiB", "goalloc/go", "goalloc s", "go s"]
    body = [[f"{r['depth']}" + (" (main)" if r["main"] else ""), str(r["n"]), fnum(r["goalloc_mib"], "{:.1f}"),
             fnum(r["go_mib"], "{:.1f}"), fnum(r["ratio"]), fnum(r["goalloc_s"]), fnum(r["go_s"])]
            for r in drows]
    gm = depth_geomean(drows)
    if gm is not None:
        body.append(["geometric mean", "", "", "", fnum(gm), "", ""])
    return render(head, body, md)


def goal_lines(rows, live_mb, drows=()):
    out = []
    bt = rows.get("binary_trees", {})
    g = bt.get("goalloc")
    if g is None:
        out.append(f"- binary_trees >= {GOAL_BT_SPEEDUP}x faster than Boehm and Go: "
                   "**not evaluated** (goalloc did not run)")
    else:
        for p in PEERS:
            if p not in bt:
                out.append(f"- binary_trees >= {GOAL_BT_SPEEDUP}x faster than {p}: "
                           f"**not evaluated** ({p} did not run)")
                continue
            sp = bt[p]["wall"] / g["wall"]
            out.append(f"- binary_trees >= {GOAL_BT_SPEEDUP}x faster than {p}: "
                       f"**{'met' if sp >= GOAL_BT_SPEEDUP else 'not met'}** ({sp:.2f}x: "
                       f"{g['wall']:.3f} s vs {bt[p]['wall']:.3f} s)")
        if "go" in bt:
            r = g["rss_mib"] / bt["go"]["rss_mib"]
            out.append(f"- binary_trees peak RSS <= Go's: **{'met' if r <= 1.0 else 'not met'}** "
                       f"({g['rss_mib']:.1f} MiB vs {bt['go']['rss_mib']:.1f} MiB, ratio {r:.3f})")
        else:
            out.append("- binary_trees peak RSS <= Go's: **not evaluated** (go did not run)")
        gm = depth_geomean(drows)
        if gm is not None:
            per = ", ".join(f"{r['depth']}: {r['ratio']:.3f}" for r in drows if r["ratio"])
            out.append(f"- the same across depths (geometric mean of the per-depth median ratios): "
                       f"**{'met' if gm <= 1.0 else 'not met'}** ({gm:.3f}; {per})")
    lat = rows.get("gc_latency", {}).get("goalloc")
    size_note = "" if live_mb >= GOAL_LIVE_MB else \
        f"; measured over {live_mb} MiB, not the goal's {GOAL_LIVE_MB} MiB: indicative only"
    if lat is None:
        out.append(f"- max stop-the-world pause <= {GOAL_MAX_PAUSE_NS / 1000:g} us over a "
                   f"{GOAL_LIVE_MB} MiB live heap: **not evaluated** (goalloc did not run)")
        out.append(f"- GC CPU share <= {GOAL_MARK_CPU:.0%} while marking: **not evaluated**")
        return out
    worst = lat["pause_max_worst_us"]
    out.append(f"- max stop-the-world pause <= {GOAL_MAX_PAUSE_NS / 1000:g} us over a "
               f"{GOAL_LIVE_MB} MiB live heap (gc_latency, worst over the rounds): "
               f"**{'met' if worst * 1000 <= GOAL_MAX_PAUSE_NS else 'not met'}** "
               f"({worst:.1f} us; median of the runs {lat['pause_max_us']:.1f} us{size_note})")
    mc = lat.get("mark_cpu_fraction")
    if mc is None:
        out.append(f"- GC CPU share <= {GOAL_MARK_CPU:.0%} while marking: **not evaluated** "
                   "(gc_latency saw no marking interval)")
    else:
        w = lat["mark_cpu_fraction_worst"]
        bg = lat.get("mark_bg_cpu_fraction")
        out.append(f"- GC CPU share <= {GOAL_MARK_CPU:.0%} while marking, by the process clocks, the mutators' marking (assists, fractional share) included "
                   f"(gc_latency, worst over the rounds): "
                   f"**{'met' if w <= GOAL_MARK_CPU else 'not met'}** ({w:.1%}; median "
                   f"{mc:.1%}" + (f", of which background workers {bg:.1%}" if bg is not None
                                   else "") +
                   f"; marking {lat.get('mark_duty') or 0:.0%} of the run; whole-run "
                   f"GCCPUFraction {lat['gc_cpu_fraction']:.1%}{size_note})")
    gm = lat.get("mark_go_cpu_fraction")
    if gm is not None:
        gw = lat["mark_go_cpu_fraction_worst"]
        go = rows.get("gc_latency", {}).get("go", {})
        go_acct = (f"; Go itself, from its gctrace: median {go['mark_go_cpu_fraction']:.1%}, worst "
                   f"{go['mark_go_cpu_fraction_worst']:.1%}" if go.get("mark_go_cpu_fraction") is not None
                   else "")
        idl = lat.get("mark_idle_cpu_fraction")
        out.append(f"- the same in Go's accounting, which leaves marking on idle CPUs out as "
                   f"\"free\" (Go 1.19 runtime/mgc.go; the collector's MemStats.Mark*Ns over the "
                   f"cycles completed in the run): "
                   f"**{'met' if gw <= GOAL_MARK_CPU else 'not met'}** ({gw:.1%} worst; median "
                   f"{gm:.1%}" + (f"; idle-CPU marking besides: {idl:.1%}" if idl is not None else "")
                   + (f"; the collector's former pooled form: median {lat['mark_pooled_cpu_fraction']:.2%}, "
                      f"worst {lat['mark_pooled_cpu_fraction_worst']:.2%}"
                      if lat.get("mark_pooled_cpu_fraction") is not None else "")
                   + go_acct + ")")
    return out


# ---- tables ------------------------------------------------------------------------

def fnum(x, fmt="{:.3f}"):
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else fmt.format(x)


def time_table(rows, programs, runtimes, md):
    peers = [p for p in PEERS if p in runtimes]
    head = ["program"] + [f"{rt} s" for rt in runtimes] + [f"goalloc/{p}" for p in peers] + \
        ["spread"]
    body = []
    for prog in programs:
        row = rows[prog]
        g = row.get("goalloc", {}).get("wall")
        body.append([prog] + [fnum(row[rt]["wall"]) if rt in row else "-" for rt in runtimes]
                    + [f3(ratio(g, row[p]["wall"])) if p in row else "-" for p in peers]
                    + [f"{max((row[rt]['spread'] for rt in row), default=0):.0f}%"])
    return render(head, body, md)


def rss_table(rows, programs, runtimes, md):
    peers = [p for p in PEERS if p in runtimes]
    head = ["program"] + [f"{rt} MiB" for rt in runtimes] + [f"goalloc/{p}" for p in peers]
    body = []
    for prog in programs:
        row = rows[prog]
        g = row.get("goalloc", {}).get("rss_mib")
        body.append([prog] + [fnum(row[rt]["rss_mib"], "{:.1f}") if rt in row else "-"
                              for rt in runtimes]
                    + [f3(ratio(g, row[p]["rss_mib"])) if p in row else "-" for p in peers])
    return render(head, body, md)


def gc_table(rows, programs, runtimes, md):
    head = ["program", "runtime", "cycles", "pause total ms", "max pause us (median)",
            "max pause us (worst)", "GC CPU fraction", "CPU s"]
    body = []
    for prog in programs:
        for rt in runtimes:
            r = rows[prog].get(rt)
            if r is None:
                continue
            body.append([prog, rt, fnum(r["cycles"], "{:.0f}"), fnum(r["pause_total_ms"], "{:.2f}"),
                         fnum(r["pause_max_us"], "{:.1f}"), fnum(r["pause_max_worst_us"], "{:.1f}"),
                         fnum(r["gc_cpu_fraction"], "{:.3f}"), fnum(r["cpu"], "{:.2f}")])
    return render(head, body, md, align_left=2)


def pct(x):
    return "-" if x is None else f"{x:.1%}"


def latency_table(rows, runtimes, md):
    head = ["runtime", "ops/s", "steady cycles", "max gap us (median)", "max gap us (worst)",
            "p50 gap us", "p99 gap us", "gaps >= 1 ms", "GC CPU while marking",
            "of which background", "Go's accounting", "idle-CPU marking", "build s"]
    body = []
    for rt in runtimes:
        r = rows.get("gc_latency", {}).get(rt)
        if r is None:
            continue
        mc = r.get("mark_cpu_fraction")
        bg = r.get("mark_bg_cpu_fraction")
        body.append([rt, fnum(r["ops_per_sec"], "{:,.0f}"), fnum(r["steady_cycles"], "{:.0f}"),
                     fnum(r["max_gap_us"], "{:.0f}"), fnum(r["max_gap_worst_us"], "{:.0f}"),
                     fnum(r["p50_gap_us"], "{:.0f}"), fnum(r["p99_gap_us"], "{:.0f}"),
                     fnum(r["gaps_over_1ms"], "{:.0f}"),
                     pct(mc), pct(bg),
                     pct(r.get("mark_go_cpu_fraction")), pct(r.get("mark_idle_cpu_fraction")),
                     fnum(r["build_s"], "{:.2f}")])
    return render(head, body, md)


# ---- charts -------------------------------------------------------------------------

COLORS = {"goalloc": "#8172b2", "boehm": "#dd8452", "go": "#4c72b0"}


def gnuplot(script):
    exe = shutil.which("gnuplot")
    if not exe:
        log("bench_gc: gnuplot not found, no SVG chart")
        return False
    res = subprocess.run([exe], input=script, text=True, capture_output=True)
    if res.returncode != 0:
        log(f"bench_gc: gnuplot failed:\n{res.stderr}")
        return False
    return True


def bar_chart(path, title, ylabel, groups, series, logbase, hlines):
    """groups: x labels; series: [(name, color, [value or None per group])];
    hlines: [(y, label, style)]."""
    allv = [v for _, _, vals in series for v in vals if v is not None and v > 0]
    if not allv:
        return False
    lo = min(allv + [y for y, _, _ in hlines]) / 1.6
    hi = max(allv + [y for y, _, _ in hlines]) * 1.6
    width = 0.8 / len(series)
    with tempfile.TemporaryDirectory() as tmp:
        plots = []
        for j, (name, color, vals) in enumerate(series):
            data = os.path.join(tmp, f"s{j}.dat")
            with open(data, "w") as f:
                for i, v in enumerate(vals):
                    if v is not None and v > 0:
                        x = i + (j - (len(series) - 1) / 2) * width
                        f.write(f"{x:.4f} {v:.6g}\n")
            base = 1 if logbase == 2 else lo
            plots.append(f'"{data}" using 1:({base}):($1-{width / 2 * 0.9:.4f}):'
                         f'($1+{width / 2 * 0.9:.4f}):({base}):2 with boxxyerrorbars '
                         f'lc rgb "{color}" title "{name}"')
        xtics = ", ".join(f'"{g}" {i}' for i, g in enumerate(groups))
        if logbase == 2:  # ticks at powers of 2, below 1 as fractions (1/8, not 0.125)
            ticks = [2.0 ** k for k in range(-20, 21) if lo <= 2.0 ** k <= hi]
            label = lambda t: f"{t:g}" if t >= 1 else f"1/{1 / t:g}"  # noqa: E731
        else:  # powers of 10
            ticks = [10.0 ** k for k in range(-3, 10) if lo <= 10.0 ** k <= hi]
            label = lambda t: f"{t:.0f}" if t >= 1 else f"{t:g}"  # noqa: E731
        ytics = f"set ytics ({', '.join(f'{chr(34)}{label(t)}{chr(34)} {t:g}' for t in ticks)})\n"
        arrows = "".join(
            f'set arrow from graph 0, first {y} to graph 1, first {y} nohead lc rgb "{style}" '
            f'dt 2 lw 1\nset label "{label}" at graph 1.005, first {y} left font ",9"\n'
            for y, label, style in hlines)
        script = f"""
set terminal svg size {max(900, 130 * len(groups) + 250)},560 dynamic noenhanced font "sans,11" background "white"
set output "{path}"
set title "{title}"
set logscale y {logbase}
set yrange [{lo}:{hi}]
set ylabel "{ylabel}"
set xrange [-0.6:{len(groups) - 0.4}]
set xtics ({xtics}) rotate by 20 right scale 0
{ytics}set grid ytics
set style fill solid 0.85 border -1
set key outside right top vertical
{arrows}set bmargin 7
set rmargin 16
plot {", ".join(plots)}
"""
        return gnuplot(script)


def write_charts(out_dir, rows, programs, runtimes, rounds):
    svgs = {}
    peers = [p for p in PEERS if p in runtimes]
    if "goalloc" in runtimes and peers:
        groups, vals = [], {p: [] for p in peers}
        for prog in programs:
            row = rows[prog]
            if "goalloc" not in row:
                continue
            # gc_latency runs for a fixed time: its mutator's worst hiccup instead
            metrics = [("wall", "time") if prog != "gc_latency" else ("max_gap_us", "max hiccup"),
                       ("rss_mib", "peak RSS"), ("pause_max_us", "max pause")]
            for key, label in metrics:
                groups.append(f"{prog} {label}")
                for p in peers:
                    vals[p].append(ratio(row["goalloc"][key], row[p][key]) if p in row else None)
        if groups and bar_chart(
                os.path.join(out_dir, "gc_ratio.svg"),
                f"goalloc / peer (median of {rounds}; below 1 = goalloc faster, smaller, shorter)",
                "goalloc / peer", groups,
                [(f"vs {p}", COLORS[p], vals[p]) for p in peers], 2,
                [(1.0, "", "black"), (1 / GOAL_BT_SPEEDUP, f"1/{GOAL_BT_SPEEDUP}", "#555555")]):
            svgs["ratio"] = "gc_ratio.svg"
    groups = [p for p in programs if rows[p]]
    if groups and bar_chart(
            os.path.join(out_dir, "gc_pauses.svg"),
            f"longest stop-the-world pause, microseconds (worst of {rounds} run(s))",
            "max pause (us)", groups,
            [(rt, COLORS[rt], [rows[p][rt]["pause_max_worst_us"] if rt in rows[p] else None
                               for p in groups]) for rt in runtimes], 10,
            [(GOAL_MAX_PAUSE_NS / 1000, f"goal {GOAL_MAX_PAUSE_NS / 1000:g} us", "#c44e52")]):
        svgs["pauses"] = "gc_pauses.svg"
    return svgs


# ---- the report -------------------------------------------------------------------------

def linkage(exe):
    """'static' or 'dynamic': whether the ELF file has a PT_INTERP header."""
    import struct
    try:
        with open(exe, "rb") as f:
            head = f.read(64)
            if head[:4] != b"\x7fELF" or head[4] != 2:
                return "?"
            phoff, = struct.unpack_from("<Q", head, 0x20)
            phentsize, phnum = struct.unpack_from("<HH", head, 0x36)
            f.seek(phoff)
            table = f.read(phentsize * phnum)
    except OSError:
        return "?"
    for i in range(phnum):
        if struct.unpack_from("<I", table, i * phentsize)[0] == 3:  # PT_INTERP
            return "dynamic"
    return "static"


def machine_info(build, exes, goalloc_cache):
    src = goalloc_cache.get("CMAKE_HOME_DIRECTORY", ROOT)
    gcommit = sh(["git", "rev-parse", "HEAD"], cwd=src) or "?"
    gdirty = bool(sh(["git", "status", "--porcelain", "--untracked-files=all", "--",
                      "alloc", "gc", "include"], cwd=src))
    versions = {
        "goalloc": f"commit {gcommit[:12]}"
                   f"{' with uncommitted changes in alloc/, gc/ or include/' if gdirty else ''}, "
                   f"CMAKE_BUILD_TYPE={goalloc_cache.get('CMAKE_BUILD_TYPE', '?')}, "
                   f"GOALLOC_DEBUG_LEVEL={goalloc_cache.get('GOALLOC_DEBUG_LEVEL', '?')}",
        "boehm": "libgc " + (dpkg_version("libgc1") or dpkg_version("libgc-dev") or "?") +
                 " (Debian; threads and parallel marking as built, not incremental)",
        "go": (sh(["go", "version"]) or "?") + (f" (Debian golang-go {dpkg_version('golang-go')})"
                                              if dpkg_version("golang-go") else ""),
    }
    return {
        "uname": " ".join(x for x in platform.uname() if x),
        "cpu": cpu_model(),
        "nproc": len(cpu_list()),
        "memory": memory_total(),
        "commit": commit_description(),
        "compiler": (sh(["c++", "--version"]).splitlines() or ["?"])[0],
        "versions": versions,
        "exes": exes,
    }


def cpu_lines(runs, programs, runtimes):
    """The report's section on where the host had put the CPUs."""
    measured = [r for r in runs if not r["warmup"] and r.get("cpu_rt_ns") is not None]
    if not measured:
        return []
    rts = [r["cpu_rt_ns"] for r in measured]
    counts = [sum(1 for x in rts if lo <= x < hi) for lo, hi, _ in CPU_BANDS]
    md = ["## Where the host put the CPUs", ""]
    md.append(
        f"A cache line's round trip between the first two CPUs, measured just before each run "
        f"([`cpu_pingpong.c`](../gc/cpu_pingpong.c)): median {statistics.median(rts):.0f} ns, "
        f"{min(rts):.0f}–{max(rts):.0f} ns; runs that began with it "
        + ", ".join(f"{name}: {n}" for (_, _, name), n in zip(CPU_BANDS, counts))
        + ". On this virtual machine the same two vCPUs are ~55–85 ns apart at some times, "
        "~100–300 ns at others and ~400–700 ns at others again, from minute to minute (the host "
        "moves them; the round trip can also change during a run), and a runtime whose threads "
        "share cache lines (goalloc's mutator and background mark worker; Go's Ps) runs slower "
        "as it grows. Wall time by the round trip a run began with (median s, and runs):")
    md.append("")
    md.append("| program | runtime | " + " | ".join(f"{name}: wall s | runs" for _, _, name in CPU_BANDS) + " |")
    md.append("|---|---|" + "---:|---:|" * len(CPU_BANDS))
    for prog in programs:
        for rt in runtimes:
            mine = [r for r in measured if r["program"] == prog and r["runtime"] == rt]
            if not mine:
                continue
            cells = []
            for lo, hi, _ in CPU_BANDS:
                w = [r["wall_s"] for r in mine if lo <= r["cpu_rt_ns"] < hi]
                cells.append(f"{fnum(med(w))} | {len(w)}")
            md.append(f"| {prog} | {rt} | " + " | ".join(cells) + " |")
    md.append("")
    return md


def pause_parts_lines(runs):
    """gc_latency's longest pause in each of goalloc's runs, taken apart."""
    rs = [r for r in runs if r["program"] == "gc_latency" and r["runtime"] == "goalloc"
          and not r["warmup"] and r.get("pause_parts")]
    if not rs:
        return []
    md = ["## goalloc's longest pauses, taken apart (gc_latency)", "",
          "Each run's longest pause, from its `GODEBUG=gctrace=2` lines (the cycle whose longest "
          "pause is the run's): a pause of mark start is one thread scanning its own stack "
          "(`pause1`); one of mark termination is the stop's wait for the threads (and how many "
          "it had to signal, and how the last one stopped: at its own poll; at the end of the "
          "nosuspend region the signal found it in; in the signal's handler, having run code "
          "that never polls or waited in the kernel, as in a page fault; or claimed in a "
          "blocking call), the shading of the barrier buffers the stop found (and their "
          "entries), the stopped world's work (of which emptying the threads' span caches) and "
          "the restart. The CPUs' round trip is the probe's before the run.", "",
          "| round | longest pause us | cycle | where | stop wait us (signalled) | last to stop | "
          "flush us (entries) | work us (caches) | CPUs' round trip ns |",
          "|---:|---:|---:|---|---:|---|---:|---:|---:|"]
    for r in sorted(rs, key=lambda r: r["round"]):
        p = r["pause_parts"]
        where = "mark start" if p["longest_us"] == p["pause1_us"] else \
            f"termination (attempt {p['attempts']})" if p["attempts"] > 1 else "termination"
        rt = r.get("cpu_rt_ns")
        md.append(f"| {r['round']} | {p['longest_us']} | {p['cycle']} | {where} | "
                  f"{p['stop_us']} ({p['signalled']}) | {p['last']} | {p['flush_us']} ({p['entries']}) | "
                  f"{p['body_us']} ({p['caches_us']}) | {'-' if rt is None else f'{rt:.0f}'} |")
    md.append("")
    md.append("(The termination's parts are its last attempt's; gctrace rounds each part down to "
              "a microsecond.)")
    md.append("")
    return md


def write_report(path, args, info, rows, programs, runtimes, params, svgs, load_start,
                 load_end, started, elapsed, live_mb, runs=(), drows=()):
    md = ["# goalloc's collector vs Boehm GC and Go: GC benchmarks", ""]
    md.append(f"Generated {started} by `{args.command}` in {elapsed / 60:.1f} min.")
    md.append("")
    md.append(
        "Each program of [`bench/gc/`](../gc/) is written three times with the same algorithm: "
        "for goalloc's collector (`gc::make`, `gc::Ptr`, linked with `goalloc_core`), for Boehm "
        "GC (`GC_MALLOC`, Debian's libgc) and in Go (Debian's golang-go); every runtime runs with "
        "its defaults (GOGC=100 for Go, Boehm's free-space divisor, goalloc's pacer), unpinned "
        "(each collector has threads of its own). The C and C++ programs are linked statically "
        "when the static libraries are there (bench/gc/CMakeLists.txt; the last section says how "
        "they were), as `go build` links Go's: peak RSS then counts each runtime's own code, "
        "not the pages of libc.so and libstdc++.so a dynamic binary maps. "
        + ("Per program: one warm-up run per runtime (discarded; none for gc_latency), then "
           if not args.no_warmup else "Per program: ")
        + f"{args.rounds} interleaved round(s), each running every runtime once in an order "
        "rotated by one each round. Tables show medians over the rounds, and for pauses also the "
        "worst run. Wall time and CPU time are measured by the runner (`wait4`); everything else "
        "is what the program prints in its `gcstats` line at its end: peak RSS is the process's "
        "`VmHWM`. Ratios are goalloc / peer: **below 1, goalloc is faster (smaller, shorter)**. "
        "binary_trees printed exactly the Benchmarks Game's lines (checked against the values "
        "computed from the algorithm) and gcbench the same output in every runtime; every "
        "gc_latency run checked every object of its heap at its end.")
    md.append("")
    ncpu = info["nproc"]
    if max(load_start, load_end) >= 0.5 * ncpu:
        md.append(f"**Caution:** the machine was busy (1-minute load average {load_start:.1f} at "
                  f"the start, {load_end:.1f} at the end, on {ncpu} CPUs): other processes "
                  "competed for the CPUs, the collectors' own threads and so the pauses most. "
                  "The spread column shows how much the rounds disagreed.")
        md.append("")
    md += ["## Goals (issue #5)", ""] + goal_lines(rows, live_mb, drows) + [""]
    md += cpu_lines(runs, programs, runtimes)
    md += ["## Wall time (median, seconds)", ""] + time_table(rows, programs, runtimes, True)
    md += ["", "spread = (max - min) / median of the wall times of the noisiest runtime over the "
           "rounds. gc_latency runs for a fixed time: its wall time is building the heap, the "
           "mutation time and the final check; its throughput is in its own table below.", ""]
    if svgs.get("ratio"):
        md += ["![goalloc / peer](gc_ratio.svg)", ""]
    md += ["## Peak RSS (median, MiB)", ""] + rss_table(rows, programs, runtimes, True) + [""]
    if drows and len(drows) >= 2:
        md += ["## binary_trees' peak RSS by depth (goalloc vs Go)", ""]
        md.append("At each depth the peak is where a cycle happens to meet one of the program's big "
                  "trees (the stretch tree at the start, the long-lived one, the last iteration's "
                  "trees), for Go as for goalloc, so the ratio moves with the depth. Besides the main "
                  f"rounds' depth, {args.rss_rounds} interleaved round(s) of goalloc and Go at each "
                  "other depth, the order alternated, no warm-up; medians. Outputs checked as above.")
        md.append("")
        md += depth_table(drows, True) + [""]
    md += ["## Collector: cycles, pauses, CPU", ""]
    if svgs.get("pauses"):
        md += ["![longest pause](gc_pauses.svg)", ""]
    md += gc_table(rows, programs, runtimes, True) + [""]
    if "gc_latency" in programs:
        md += pause_parts_lines(runs)
        md += ["## gc_latency: the mutator's view", ""] + latency_table(rows, runtimes, True) + [""]
        md.append(
            "The mutator reads the clock every 1024 replacements; a gap is the time between two "
            "readings, so it includes 1024 replacements' own work (p50 gap) and any pause, "
            "assist or sweep the mutator did or waited for in between. Quantiles are the upper "
            "bounds of log2 buckets. 'GC CPU while marking' (goalloc only): over the intervals "
            "in which the mutator saw the write barrier on, process CPU time - the mutators' "
            "CPU time + the mutators' marking (assists and their fractional share), / (wall "
            "time x CPUs); 'of which background': without the mutators' marking (the "
            "collector's own threads only). 'Go's accounting': the "
            "collector's own figures for the mark phases that completed during the run "
            "(`MemStats.MarkBackgroundNs + MarkCycleAssistNs` over `MarkWallNs` x CPUs): "
            "background marking plus assists, as Go 1.19 counts GC CPU: while CPUs are idle, "
            "per P (each mutator a P running its fractional worker, all its time counted; the "
            "worker standing for the idle Ps, counted for their fractional share), otherwise "
            "the worker within the whole 25% share (gc/README.md, 'CPU accounting'); 'pooled "
            "form': the collector's former figure, all background marking up to 25% of the "
            "CPUs plus assists; "
            "'idle-CPU marking': background marking beyond its share, on a CPU no mutator "
            "wanted (`MarkIdleNs`), which Go leaves out as free. For Go the same two figures "
            "come from its own `GODEBUG=gctrace=1` lines (set for its gc_latency runs only): "
            "over the cycles that began after the heap was built, (assist + background mark "
            "CPU) / (concurrent mark wall time x GOMAXPROCS), and idle mark CPU / the same. See "
            "[`gc_latency.cpp`](../gc/gc_latency.cpp).")
        md.append("")
    md += ["## What the pause figures mean", ""]
    md.append("- **goalloc**: `gc::read_mem_stats` — `NumGC`, `PauseTotalNs`, `MaxPauseNs` (the "
              "longest time the collector held a mutator: a stop of the world at mark "
              "termination, from the stop request to the restart, or at mark start, which is "
              "done by handshakes without stopping the world, the longest one thread took to "
              "scan its own stack; the time until every thread has answered a handshake "
              "holds nobody and is not a pause — `GODEBUG=gctrace=2` prints it), `GCCPUFraction`.")
    md.append("- **Go**: `runtime.ReadMemStats` — `NumGC`, `PauseTotalNs`, `GCCPUFraction`; the "
              "longest single stop-the-world from runtime/metrics' `/gc/pauses:seconds` "
              "histogram (the upper bound of its highest non-empty bucket, ~6% wide), capped "
              "by the largest `PauseNs` (a cycle's pauses summed) when the 256-entry ring holds "
              "every cycle.")
    md.append("- **Boehm**: collections are stop-the-world from start to end (the collecting "
              "thread marks with the parallel markers while the others are stopped), so a "
              "pause is a collection's duration, `GC_EVENT_START` to `GC_EVENT_END` "
              "(`GC_set_on_collection_event`, CLOCK_MONOTONIC); cycles `GC_get_gc_no()` "
              "(including the collection `GC_INIT` does); its 'GC CPU fraction' is the share of "
              "wall time spent in collections (Boehm keeps no such figure). Boehm rounds a "
              "64-byte `GC_MALLOC` up to 80 bytes (one byte added for pointers past the end).")
    md.append("")
    md += ["## Programs", "", "| program | parameters | what |", "|---|---|---|"]
    for prog in programs:
        md.append(f"| {prog} | `{' '.join(params[prog]) or '(the classic constants)'}` | "
                  f"{WHAT[prog]} |")
    md.append("")
    md += ["## Machine and runtimes", ""]
    md.append(f"- machine: `{info['uname']}`")
    md.append(f"- CPU: {info['cpu']}, nproc {info['nproc']}, memory {info['memory']}")
    md.append(f"- load average (1 min) at start {load_start:.2f}, at end {load_end:.2f}")
    md.append(f"- git commit (programs and scripts): {info['commit']}")
    md.append(f"- C and C++ flavours compiled by: {info['compiler']} (-O2)")
    for rt in runtimes:
        kinds = sorted({linkage(e) for e in info["exes"].get(rt, {}).values()})
        md.append(f"- {rt}: {info['versions'].get(rt, '?')}; programs linked "
                  f"{'/'.join(kinds) or '?'}")
    md.append("- raw runs: [gc.json](gc.json)")
    md.append("")
    with open(path, "w") as f:
        f.write("\n".join(md))


# ---- main ---------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="\n".join(__doc__.splitlines()[1:]))
    ap.add_argument("--build-dir", default=os.path.join(ROOT, "build-bench"),
                    help="build tree with bench/gc/ built (target bench_gc) (build-bench)")
    ap.add_argument("--rounds", type=int, default=3, help="measured rounds (default 3)")
    ap.add_argument("--quick", action="store_true",
                    help="small parameters, 1 round, report into BUILD_DIR/quick/")
    ap.add_argument("--depth", type=int, help="binary_trees depth (default 19, quick 12)")
    ap.add_argument("--live-mb", type=int, help="gc_latency live heap, MiB (default 1024, quick 64)")
    ap.add_argument("--seconds", type=int, help="gc_latency mutation time (default 10, quick 2)")
    ap.add_argument("--programs", help="comma-separated subset of: " + ",".join(PROGRAMS))
    ap.add_argument("--runtimes", help="comma-separated subset of: " + ",".join(RUNTIMES))
    ap.add_argument("--out-dir", help="report directory (default bench/results, or "
                    "BUILD_DIR/quick with --quick)")
    ap.add_argument("--no-warmup", action="store_true", help="skip the warm-up runs")
    ap.add_argument("--timeout", type=float, default=900, help="seconds per run (default 900)")
    ap.add_argument("--rss-depths", help="other binary_trees depths at which to compare peak RSS "
                    "with Go's (comma-separated; default 18,20,21, none with --quick; '' for none)")
    ap.add_argument("--rss-rounds", type=int, default=3,
                    help="rounds at each of --rss-depths (default 3)")
    ap.add_argument("--command", help="command line to record in the report")
    args = ap.parse_args()
    args.command = args.command or "scripts/bench_gc.py" + \
        "".join(" " + shlex.quote(a) for a in sys.argv[1:])
    if args.quick:
        args.rounds = 1
    if args.rounds < 1:
        ap.error("--rounds must be >= 1")
    depth = args.depth if args.depth is not None else (12 if args.quick else 19)
    live_mb = args.live_mb if args.live_mb is not None else (64 if args.quick else 1024)
    seconds = args.seconds if args.seconds is not None else (2 if args.quick else 10)
    if depth < 0 or live_mb < 1 or seconds < 0:
        ap.error("--depth, --live-mb and --seconds must be positive")
    if args.rss_depths is None:
        args.rss_depths = "" if args.quick else "18,20,21"
    try:
        rss_depths = [int(x) for x in args.rss_depths.split(",") if x.strip()]
    except ValueError:
        ap.error("--rss-depths: comma-separated depths, e.g. 18,20,21")
    if any(d < 4 for d in rss_depths) or args.rss_rounds < 1:
        ap.error("--rss-depths must be >= 4 and --rss-rounds >= 1")
    params = {"binary_trees": [str(depth)], "gcbench": [],
              "gc_latency": [f"live_mb={live_mb}", f"seconds={seconds}"]}

    programs = PROGRAMS
    if args.programs:
        want = args.programs.split(",")
        bad = set(want) - set(PROGRAMS)
        if bad:
            ap.error(f"unknown program(s): {', '.join(sorted(bad))}")
        programs = [p for p in PROGRAMS if p in want]
    runtimes = list(RUNTIMES)
    if args.runtimes:
        want = args.runtimes.split(",")
        bad = set(want) - set(RUNTIMES)
        if bad:
            ap.error(f"unknown runtime(s): {', '.join(sorted(bad))}")
        runtimes = [r for r in RUNTIMES if r in want]

    # ---- what is there to run
    build = os.path.abspath(args.build_dir)
    gcdir = os.path.join(build, "bench", "gc")
    exes = {rt: {} for rt in runtimes}
    if "goalloc" in runtimes:
        for prog in programs:
            exe = os.path.join(gcdir, prog)
            if not os.access(exe, os.X_OK):
                sys.exit(f"bench_gc: {exe} not found: build the bench_gc target "
                         "(or leave goalloc out with --runtimes)")
            exes["goalloc"][prog] = exe
    if "boehm" in runtimes:
        for prog in programs:
            exe = os.path.join(gcdir, f"{prog}_boehm")
            if not os.access(exe, os.X_OK):
                log(f"WARNING: {exe} not found (Boehm GC, Debian package libgc-dev, was not found "
                    "when bench_gc was configured): boehm left out")
                exes.pop("boehm")
                break
            exes["boehm"][prog] = exe
    if "go" in runtimes:
        log("bench_gc: building the Go flavours (go build)")
        built = build_go(os.path.join(gcdir, "go"), programs)
        if built is None:
            log("WARNING: no 'go' command (Debian package golang-go): go left out")
            exes.pop("go")
        else:
            exes["go"] = built
    runtimes = [rt for rt in runtimes if rt in exes]
    if not runtimes:
        sys.exit("bench_gc: no runtime to run")
    probe = os.path.join(gcdir, "cpu_pingpong")
    if not os.access(probe, os.X_OK):
        log(f"WARNING: {probe} not found: the CPUs' round trip is not recorded")
        probe = None
    goalloc_cache = cmake_cache(build)
    if "goalloc" in runtimes:
        bt = goalloc_cache.get("CMAKE_BUILD_TYPE", "?")
        dl = goalloc_cache.get("GOALLOC_DEBUG_LEVEL", "?")
        if bt != "Release" or dl != "0":
            log(f"WARNING: {build} is a {bt} build with GOALLOC_DEBUG_LEVEL={dl}, not Release/0: "
                "its numbers are not goalloc's")

    out_dir = args.out_dir or (os.path.join(build, "quick") if args.quick
                               else os.path.join(ROOT, "bench", "results"))
    log(f"bench_gc: {len(programs)} programs x {len(runtimes)} runtimes ({', '.join(runtimes)}), "
        f"{'quick' if args.quick else 'full'} parameters, "
        f"{'' if args.no_warmup else 'warm-up + '}{args.rounds} round(s)")
    for rt in runtimes:
        log(f"  {rt:8s} {os.path.dirname(next(iter(exes[rt].values())))}/")

    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    load_start = os.getloadavg()[0]
    t_start = time.time()
    runs, failures = [], []
    bt_expected = expected_binary_trees(depth)
    for pi, prog in enumerate(programs):
        pargs = params[prog]
        log(f"[{pi + 1}/{len(programs)}] {prog} {' '.join(pargs)}")
        reference = {}  # the first gcbench output

        def attempt(rt, rnd, warmup):
            exe = exes[rt][prog]
            # Go's gc_latency prints its gctrace (one line a cycle, after the
            # cycle): its own accounting of the mark phases' CPU, the figure
            # goalloc's gc_latency takes from MemStats.Mark*Ns.
            go_trace = rt == "go" and prog == "gc_latency"
            # goalloc's gc_latency prints the parts of each cycle's longest
            # pause (gctrace=2), so that a long one says where it came from.
            ga_trace = rt == "goalloc" and prog == "gc_latency"
            cpu_rt = cpu_round_trip(probe)
            try:
                env = {"GODEBUG": "gctrace=1"} if go_trace else {"GODEBUG": "gctrace=2"} if ga_trace else None
                r = run_once(exe, pargs, args.timeout, env)
                if ga_trace:
                    r["pause_parts"] = longest_pause_parts(r["stderr"])
                if go_trace:
                    acct = go_mark_accounting(r["stderr"], float(r["stats"].get("build_s", 0)))
                    if acct is not None:
                        r["stats"]["mark_go_cpu_fraction"], r["stats"]["mark_idle_cpu_fraction"] = acct
                if prog == "binary_trees" and r["stdout"] != bt_expected:
                    raise RunError(f"{exe} {' '.join(pargs)}: standard output differs from the "
                                   f"Benchmarks Game's lines:\n--- expected\n{bt_expected}"
                                   f"--- got\n{r['stdout']}")
                if prog == "gcbench":
                    if not reference:
                        reference.update(rt=rt, out=r["stdout"])
                    elif r["stdout"] != reference["out"]:
                        raise RunError(f"{exe}: standard output differs from {reference['rt']}'s:"
                                       f"\n--- {reference['rt']}\n{reference['out']}--- {rt}\n"
                                       f"{r['stdout']}")
            except RunError as e:
                failures.append(str(e))
                log(f"    FAILED: {e}")
                return None
            r.pop("stderr", None)
            r.update(program=prog, runtime=rt, round=rnd, warmup=warmup, args=pargs, cpu_rt_ns=cpu_rt)
            if prog != "gcbench":
                r["stdout"] = r["stdout"][-2000:]
            runs.append(r)
            return r

        def show(r):
            s = r["stats"]
            txt = (f"{r['wall_s']:.2f}s/{r['rss_kib'] / 1024:.0f}M/{s['cycles']}gc/"
                   f"max {s['pause_max_ns'] / 1e3:.0f}us")
            if prog == "gc_latency":
                txt += f"/gap {s.get('max_gap_ns', 0) / 1e3:.0f}us"
            if r.get("cpu_rt_ns") is not None:
                txt += f" [cpus {r['cpu_rt_ns']:.0f}ns]"
            return txt

        if not args.no_warmup and prog != "gc_latency":
            parts = [f"{rt} {r['wall_s']:.2f}s" for rt in runtimes
                     if (r := attempt(rt, 0, True)) is not None]
            log(f"    warm-up: {', '.join(parts)}")
        for rnd in range(1, args.rounds + 1):
            k = (rnd - 1) % len(runtimes)
            order = runtimes[k:] + runtimes[:k]
            parts = [f"{rt} {show(r)}" for rt in order if (r := attempt(rt, rnd, False)) is not None]
            log(f"    round {rnd}/{args.rounds}: {', '.join(parts)}")
    depth_runs = []
    sweep = [d for d in rss_depths if d != depth]
    if sweep and "binary_trees" in programs and "goalloc" in runtimes and "go" in runtimes:
        log(f"binary_trees' peak RSS at other depths ({', '.join(map(str, sweep))}): goalloc and go, "
            f"{args.rss_rounds} round(s) each")
        depth_runs, dfail = depth_sweep(exes, sweep, args.rss_rounds, args.timeout)
        failures += dfail
    elapsed = time.time() - t_start
    load_end = os.getloadavg()[0]

    rows = summarise(runs, programs, runtimes)
    drows = depth_rows(depth_runs, rows, depth)
    log("")
    log("wall time (median s):")
    log("\n".join(time_table(rows, programs, runtimes, False)))
    log("")
    log("peak RSS (median MiB):")
    log("\n".join(rss_table(rows, programs, runtimes, False)))
    if len(drows) >= 2:
        log("")
        log("binary_trees' peak RSS by depth:")
        log("\n".join(depth_table(drows, False)))
    log("")
    log("collector:")
    log("\n".join(gc_table(rows, programs, runtimes, False)))
    if "gc_latency" in programs:
        log("")
        log("gc_latency:")
        log("\n".join(latency_table(rows, runtimes, False)))
    log("")
    log("goals:")
    log("\n".join(l.replace("**", "") for l in goal_lines(rows, live_mb, drows)))

    os.makedirs(out_dir, exist_ok=True)
    info = machine_info(build, exes, goalloc_cache)
    with open(os.path.join(out_dir, "gc.json"), "w") as f:
        json.dump({
            "generated": started, "command": args.command,
            "mode": "quick" if args.quick else "full", "rounds": args.rounds,
            "params": {p: params[p] for p in programs}, "machine": info,
            "load_avg_start": load_start, "load_avg_end": load_end,
            "runs": runs, "failures": failures, "medians": rows,
            "rss_depth_runs": depth_runs, "rss_by_depth": drows,
        }, f, indent=1)
    svgs = write_charts(out_dir, rows, programs, runtimes, args.rounds)
    md_path = os.path.join(out_dir, "gc.md")
    write_report(md_path, args, info, rows, programs, runtimes, params, svgs, load_start,
                 load_end, started, elapsed, live_mb, runs, drows)
    log("")
    log(f"wrote {md_path}, gc.json" + "".join(f", {s}" for s in svgs.values()) +
        f" ({elapsed / 60:.1f} min)")
    if failures:
        log(f"bench_gc: {len(failures)} run(s) FAILED (left out of the medians):")
        for f in failures:
            log("  " + f.splitlines()[0])
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
