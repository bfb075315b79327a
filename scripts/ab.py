#!/usr/bin/env python3
"""A/B runs of two builds (or two settings) of one program, interleaved.

    scripts/ab.py [--rounds N] [--env-a K=V ...] [--env-b K=V ...]
                  [--key NAME ...] [--out FILE] [--label-a A] [--label-b B]
                  -- CMD_A... [--vs CMD_B...]

Runs CMD_A and CMD_B alternately N times (the order swapped every round, so
neither always runs first on a warm or cold machine), and reports per side
the median and range of the wall time, the CPU time and the peak RSS
(wait4's ru_maxrss), plus any `key=value` figures the program printed on a
`gcstats` line (--key, e.g. --key assist_ns --key cycles), and the ratio of
the medians B/A. Without --vs, both sides run CMD_A and differ only in their
--env-a/--env-b settings. A run that exits non-zero stops the script (a
wrong answer is not a data point).

This is how the tuning notes' A/B figures are taken: the machine is shared
and noisy, so only interleaved runs and medians are compared, and a result
of a few percent is confirmed by a second set before it is believed.
--out appends the table, with the command line and the time, to FILE
(Markdown), so a figure quoted in bench/results/NOTES.md has a source.
Standard library only.
"""
import argparse
import datetime
import os
import re
import resource
import shlex
import statistics
import subprocess
import sys
import time


def run_once(cmd, env):
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.monotonic() - t0
    err = p.stderr.read()
    p.stderr.close()
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        sys.exit(f"ab.py: {shlex.join(cmd)} exited with {p.returncode}:\n{err[-2000:]}")
    figures = {"wall_s": wall, "cpu_s": ru.ru_utime + ru.ru_stime, "maxrss_mib": ru.ru_maxrss / 1024}
    for line in err.splitlines():
        if line.startswith("gcstats "):
            for k, v in re.findall(r"(\w+)=([-0-9.e+]+)", line):
                try:
                    figures[k] = float(v)
                except ValueError:
                    pass
    return figures


def parse_env(pairs):
    out = {}
    for kv in pairs:
        if "=" not in kv:
            sys.exit(f"ab.py: --env wants K=V, got {kv!r}")
        k, v = kv.split("=", 1)
        out[k] = v
    return out


def main():
    argv = sys.argv[1:]
    if "--" not in argv:
        sys.exit(__doc__)
    i = argv.index("--")
    ap = argparse.ArgumentParser(description="interleaved A/B runs")
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--env-a", action="append", default=[])
    ap.add_argument("--env-b", action="append", default=[])
    ap.add_argument("--key", action="append", default=[])
    ap.add_argument("--label-a", default="A")
    ap.add_argument("--label-b", default="B")
    ap.add_argument("--out")
    args = ap.parse_args(argv[:i])
    rest = argv[i + 1:]
    if "--vs" in rest:
        j = rest.index("--vs")
        cmd_a, cmd_b = rest[:j], rest[j + 1:]
    else:
        cmd_a = cmd_b = rest
    if not cmd_a or not cmd_b:
        sys.exit("ab.py: empty command")
    env_a = dict(os.environ, **parse_env(args.env_a))
    env_b = dict(os.environ, **parse_env(args.env_b))
    sides = {"a": [], "b": []}
    for r in range(args.rounds):
        order = ("a", "b") if r % 2 == 0 else ("b", "a")
        for s in order:
            f = run_once(cmd_a if s == "a" else cmd_b, env_a if s == "a" else env_b)
            sides[s].append(f)
        print(f"round {r + 1}/{args.rounds}: " + "  ".join(
            f"{s}={sides[s][-1]['wall_s']:.3f}s/{sides[s][-1]['maxrss_mib']:.1f}MiB" for s in ("a", "b")),
            file=sys.stderr, flush=True)
    keys = ["wall_s", "cpu_s", "maxrss_mib"] + [k for k in args.key if k not in ("wall_s", "cpu_s", "maxrss_mib")]
    rows = []
    for k in keys:
        va = [f[k] for f in sides["a"] if k in f]
        vb = [f[k] for f in sides["b"] if k in f]
        if not va or not vb:
            rows.append(f"| {k} | - | - | - |")
            continue
        ma, mb = statistics.median(va), statistics.median(vb)
        ratio = f"{mb / ma:.3f}" if ma else "-"
        rows.append(f"| {k} | {ma:.4g} ({min(va):.4g}–{max(va):.4g}) | {mb:.4g} ({min(vb):.4g}–{max(vb):.4g}) | {ratio} |")
    load = os.getloadavg()[0]
    head = [f"| figure (median, range) | {args.label_a} | {args.label_b} | B/A |", "|---|---:|---:|---:|"]
    desc_a = " ".join(args.env_a + [shlex.join(cmd_a)])
    desc_b = " ".join(args.env_b + [shlex.join(cmd_b)])
    text = "\n".join([
        f"A: `{desc_a}`", f"B: `{desc_b}`",
        f"{args.rounds} interleaved rounds; 1-minute load average at the end {load:.2f}", ""] + head + rows)
    print(text)
    if args.out:
        with open(args.out, "a") as f:
            stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
            f.write(f"\n### {stamp}\n\n`scripts/ab.py {shlex.join(sys.argv[1:])}`\n\n{text}\n")


if __name__ == "__main__":
    main()
