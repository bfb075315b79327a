#!/usr/bin/env python3
"""Summarise bench_malloc runs: goalloc against glibc, benchmark by benchmark.

Reads Google Benchmark JSON files (any number of rounds of the goalloc and glibc
families, as scripts/bench.sh writes them), takes the median CPU time of each
benchmark per allocator, and reports time(goalloc) / time(glibc): below 1 means
goalloc is faster. Prints a table, writes a markdown report and, if gnuplot is
installed, an SVG bar chart of the ratios. Standard library only.

  scripts/bench_report.py --out-md bench/results/latest.md \
      --svg bench/results/micro_ratio.svg --build-dir build-bench round-*.json
"""
import argparse
import datetime
import json
import math
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile

ALLOCATORS = ("goalloc", "glibc")
TO_NS = {"ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}
from benchlib import ROOT, cmake_cache, commit_description, cpu_model, memory_total, sh  # noqa: E402


def split_name(name):
    """'BM_pair/goalloc/64' -> ('BM_pair/64', 'goalloc'); None if no allocator."""
    parts = name.split("/")
    if len(parts) < 2 or parts[1] not in ALLOCATORS:
        return None
    return "/".join([parts[0]] + parts[2:]), parts[1]


def load(paths):
    """Returns (order, samples, contexts, errors).

    samples[(key, allocator)] = {"ns": [...], "items": [...]} over all rounds."""
    order, samples, contexts, errors = [], {}, [], []
    for path in paths:
        with open(path) as f:
            data = json.load(f)
        contexts.append(data.get("context", {}))
        for b in data.get("benchmarks", []):
            if b.get("run_type", "iteration") != "iteration":
                continue  # aggregates (mean, median...) of --benchmark_repetitions
            split = split_name(b["name"])
            if split is None:
                continue
            if b.get("error_occurred"):
                errors.append(f"{b['name']}: {b.get('error_message', 'error')}")
                continue
            if split[0] not in order:
                order.append(split[0])
            s = samples.setdefault(split, {"ns": [], "items": []})
            s["ns"].append(b["cpu_time"] * TO_NS[b.get("time_unit", "ns")])
            if "items_per_second" in b:
                s["items"].append(b["items_per_second"])
    return order, samples, contexts, errors


def spread(xs):
    """(max - min) / median, in percent: how much the rounds disagree."""
    return 100.0 * (max(xs) - min(xs)) / statistics.median(xs) if len(xs) > 1 else 0.0


def summarise(order, samples):
    rows = []
    for key in order:
        g, c = samples.get((key, "goalloc")), samples.get((key, "glibc"))
        if not g or not c:
            continue
        gt, ct = statistics.median(g["ns"]), statistics.median(c["ns"])
        rows.append({
            "key": key,
            "goalloc_ns": gt,
            "glibc_ns": ct,
            "goalloc_items": statistics.median(g["items"]) if g["items"] else None,
            "glibc_items": statistics.median(c["items"]) if c["items"] else None,
            "ratio": gt / ct,
            "spread": max(spread(g["ns"]), spread(c["ns"])),
            "rounds": min(len(g["ns"]), len(c["ns"])),
        })
    return rows


def geomean(xs):
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else float("nan")


def fmt_items(x):
    return "-" if x is None else f"{x / 1e6:.1f}M"


def table_lines(rows, markdown):
    head = ["benchmark", "goalloc ns", "glibc ns", "goalloc items/s", "glibc items/s",
            "ratio", "spread"]
    body = [[r["key"], f"{r['goalloc_ns']:.1f}", f"{r['glibc_ns']:.1f}",
             fmt_items(r["goalloc_items"]), fmt_items(r["glibc_items"]),
             f"{r['ratio']:.3f}", f"{r['spread']:.0f}%"] for r in rows]
    if markdown:
        out = ["| " + " | ".join(head) + " |", "|---" + "|---:" * (len(head) - 1) + "|"]
        out += ["| " + " | ".join(b) + " |" for b in body]
        return out
    widths = [max(len(x) for x in col) for col in zip(head, *body)]
    fmt = lambda cells: "  ".join(c.ljust(w) if i == 0 else c.rjust(w)  # noqa: E731
                                  for i, (c, w) in enumerate(zip(cells, widths)))
    return [fmt(head), fmt(["-" * w for w in widths])] + [fmt(b) for b in body]


run = sh  # (the name this script grew up with)


def machine_lines(build_dir, contexts):
    cpu, mem, commit = cpu_model(), memory_total(), commit_description()
    cache = cmake_cache(build_dir) if build_dir else {}
    cxx = cache.get("CMAKE_CXX_COMPILER", "c++")
    build_type = cache.get("CMAKE_BUILD_TYPE", "?")
    flags = " ".join(x for x in (cache.get("CMAKE_CXX_FLAGS", ""),
                                 cache.get(f"CMAKE_CXX_FLAGS_{build_type.upper()}", "")) if x)
    compiler = (run([cxx, "--version"]).splitlines() or [cxx])[0]
    ctx = contexts[0] if contexts else {}
    u = platform.uname()
    return [
        f"- machine: {u.system} {u.release} {u.machine}, {os.cpu_count()} CPUs x {cpu}, {mem}",
        f"- CPU scaling enabled: {ctx.get('cpu_scaling_enabled', '?')}; "
        f"load average at start: {ctx.get('load_avg', '?')}",
        f"- git commit: {commit}",
        f"- compiler: {compiler}",
        f"- build: CMAKE_BUILD_TYPE={build_type}, flags `{flags}`, "
        f"GOALLOC_DEBUG_LEVEL={cache.get('GOALLOC_DEBUG_LEVEL', ctx.get('goalloc_debug_level', '?'))}",
        f"- glibc: {ctx.get('glibc_version', '?')}; Google Benchmark library built as "
        f"{ctx.get('library_build_type', '?')}",
    ]


def write_svg(rows, path, geo):
    """Bars from 1 to each ratio on a log scale: down = goalloc faster."""
    gnuplot = shutil.which("gnuplot")
    if not gnuplot:
        print("bench_report: gnuplot not found, no SVG chart", file=sys.stderr)
        return False
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "ratios.dat")
        with open(data, "w") as f:
            for r in rows:
                f.write(f"\"{r['key']}\" {r['ratio']:.6f}\n")
        lo = min(min(r["ratio"] for r in rows), 1.0) / 1.25
        hi = max(max(r["ratio"] for r in rows), 1.0) * 1.25
        width = max(800, 24 * len(rows) + 160)
        script = f"""
set terminal svg size {width},560 dynamic noenhanced font "sans,11" background "white"
set output "{path}"
set title "goalloc / glibc CPU time per benchmark (median of rounds; below 1 = goalloc faster), geomean {geo:.3f}"
set logscale y 2
set yrange [{lo}:{hi}]
set ylabel "time ratio goalloc / glibc"
set xrange [-0.6:{len(rows) - 0.4}]
set xtics rotate by -60 scale 0 font ",9"
set grid ytics
set style fill solid 0.85 border -1
set key off
set arrow from graph 0, first 1 to graph 1, first 1 nohead lc rgb "black" lw 1
set bmargin 12
set rmargin 10
plot "{data}" using 0:(1):($0-0.35):($0+0.35):(1):2:($2 <= 1 ? 0x2e8b57 : 0xc0392b):xtic(1) \\
     with boxxyerrorbars lc rgb variable
"""
        res = subprocess.run([gnuplot], input=script, text=True, capture_output=True)
        if res.returncode != 0:
            print(f"bench_report: gnuplot failed:\n{res.stderr}", file=sys.stderr)
            return False
    return True


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("json", nargs="+", help="Google Benchmark JSON outputs")
    ap.add_argument("--out-md", help="markdown report to write")
    ap.add_argument("--svg", help="SVG bar chart of the ratios to write (needs gnuplot)")
    ap.add_argument("--build-dir", help="build tree, for the compiler and build settings")
    ap.add_argument("--command", default="", help="command line to record in the report")
    ap.add_argument("--pin", default="", help="CPU pinning used, to record")
    ap.add_argument("--rounds", type=int, default=0, help="rounds run, to record")
    ap.add_argument("--see-also", action="append", default=[], help="related report to link")
    args = ap.parse_args()

    order, samples, contexts, errors = load(args.json)
    rows = summarise(order, samples)
    if not rows:
        sys.exit("bench_report: no benchmark ran for both goalloc and glibc")
    geo = geomean([r["ratio"] for r in rows])
    missing = [k for k in order if not (samples.get((k, "goalloc")) and samples.get((k, "glibc")))]

    lines = table_lines(rows, markdown=False)
    print("\n".join(lines))
    print(f"\ngeomean time ratio goalloc/glibc over {len(rows)} benchmarks: {geo:.3f} "
          f"({'goalloc faster' if geo < 1 else 'glibc faster'})")
    for e in errors:
        print(f"FAILED: {e}", file=sys.stderr)
    for k in missing:
        print(f"bench_report: {k} ran for one allocator only, left out", file=sys.stderr)

    svg_ok = False
    if args.svg:
        os.makedirs(os.path.dirname(os.path.abspath(args.svg)), exist_ok=True)
        svg_ok = write_svg(rows, os.path.abspath(args.svg), geo)
        if svg_ok:
            print(f"wrote {args.svg}")

    if args.out_md:
        out_dir = os.path.dirname(os.path.abspath(args.out_md))
        os.makedirs(out_dir, exist_ok=True)
        rounds = args.rounds or max(r["rounds"] for r in rows)
        now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        md = ["# goalloc vs glibc malloc: micro benchmarks", ""]
        md.append(f"Generated {now} by `{args.command or 'scripts/bench_report.py'}`.")
        md.append("")
        md.append(f"**Geomean time ratio goalloc/glibc: {geo:.3f}** over {len(rows)} benchmarks "
                  "(below 1: goalloc faster).")
        md.append("")
        md.append(f"{rounds} round(s), each running the goalloc family, then the glibc family, "
                  "each in its own process of `bench_malloc` (Google Benchmark). The table shows the median "
                  "CPU time per iteration over the rounds, items/s (allocation calls per second), "
                  "ratio = goalloc time / glibc time, and spread = (max - min) / median of the "
                  "noisier allocator across rounds."
                  + (f" Pinned with `{args.pin}`." if args.pin else " Not pinned to a CPU."))
        md.append("")
        if svg_ok:
            md += [f"![ratios]({os.path.relpath(os.path.abspath(args.svg), out_dir)})", ""]
        md += table_lines(rows, markdown=True)
        md.append("")
        if errors:
            md += ["Failed benchmarks:", ""] + [f"- {e}" for e in errors] + [""]
        md += ["## Machine and build", ""] + machine_lines(args.build_dir, contexts) + [""]
        if args.see_also:
            md += ["See also: " + ", ".join(f"[{s}]({s})" for s in args.see_also), ""]
        with open(args.out_md, "w") as f:
            f.write("\n".join(md))
        print(f"wrote {args.out_md}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
