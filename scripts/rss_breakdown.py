#!/usr/bin/env python3
"""Where a program's peak resident memory is: its mappings at the moment of
its highest VmRSS.

    scripts/rss_breakdown.py [--out FILE] -- COMMAND...

Runs COMMAND, polls its /proc/PID/status every half millisecond, and each
time VmRSS reaches a new high reads /proc/PID/smaps and keeps the resident
kilobytes per kind of mapping: goalloc's arenas (the range its arena hints
start at, 0xc000000000 up to 0xd000000000; run with GOALLOC_ARENA_HINTS=1,
the default), the program and its shared libraries (file-backed), the
stacks, and other anonymous memory (goalloc's span records and bitmaps,
thread stacks of other threads, the C library's heap). Prints the breakdown
at the peak, also the program's own gcstats line if it prints one; --out
appends it, with the command and the time, to FILE (Markdown).

Polling cannot see a peak shorter than its period; the kernel's VmHWM (also
printed, from the last reading) can be a little higher than the peak seen.
Standard library only.
"""
import datetime
import os
import shlex
import subprocess
import sys
import time

ARENA_LO, ARENA_HI = 0xC000000000, 0xD000000000


def read_status(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                out[line.split(":")[0]] = int(line.split()[1])
    return out


def read_smaps(pid):
    kinds = {"goalloc arenas": 0, "program and shared libraries": 0, "stacks": 0, "other anonymous": 0}
    cur = None
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            head = line.split()
            if head and "-" in head[0] and len(head) >= 5 and not head[0].endswith(":"):
                lo = int(head[0].split("-")[0], 16)
                path = head[5] if len(head) > 5 else ""
                if ARENA_LO <= lo < ARENA_HI:
                    cur = "goalloc arenas"
                elif path.startswith("[stack"):
                    cur = "stacks"
                elif path.startswith("/"):
                    cur = "program and shared libraries"
                else:
                    cur = "other anonymous"
            elif line.startswith("Rss:") and cur is not None:
                kinds[cur] += int(line.split()[1])
    return kinds


def main():
    argv = sys.argv[1:]
    out = None
    if argv[:1] == ["--out"]:
        out, argv = argv[1], argv[2:]
    if argv[:1] != ["--"] or len(argv) < 2:
        sys.exit(__doc__)
    cmd = argv[1:]
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peak, at, kinds, hwm = 0, 0.0, None, 0
    t0 = time.monotonic()
    while p.poll() is None:
        try:
            st = read_status(p.pid)
            hwm = st.get("VmHWM", hwm)
            rss = st.get("VmRSS", 0)
            if rss > peak:
                k = read_smaps(p.pid)
                peak, at, kinds = rss, time.monotonic() - t0, k
        except (OSError, ValueError):
            pass
        time.sleep(0.0005)
    err = p.stderr.read()
    if p.returncode != 0:
        sys.exit(f"rss_breakdown.py: {shlex.join(cmd)} exited with {p.returncode}:\n{err[-2000:]}")
    if kinds is None:
        sys.exit("rss_breakdown.py: the program ended before a reading")
    gcstats = next((l for l in err.splitlines() if l.startswith("gcstats ")), "")
    lines = [f"peak VmRSS seen {peak / 1024:.1f} MiB at {at:.2f} s (last VmHWM read {hwm / 1024:.1f} MiB); "
             f"resident at that reading:", "", "| mappings | MiB |", "|---|---:|"]
    lines += [f"| {k} | {v / 1024:.1f} |" for k, v in kinds.items()]
    if gcstats:
        lines += ["", f"`{gcstats}`"]
    text = "\n".join(lines)
    print(text)
    if out:
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        with open(out, "a") as f:
            f.write(f"\n### {stamp}\n\n`scripts/rss_breakdown.py --out {out} -- {shlex.join(cmd)}`\n\n{text}\n")


if __name__ == "__main__":
    main()
