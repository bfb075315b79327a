"""Facts about the machine and the source tree that every benchmark report
records, and small helpers the benchmark runners share (used by
bench_report.py, bench_programs.py and bench_gc.py). Standard library only."""
import os
import re
import statistics
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def sh(cmd, cwd=None):
    """stdout of cmd, stripped; "" if it cannot run or fails."""
    try:
        return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            return next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), "?")
    except OSError:
        return "?"


def memory_total():
    try:
        with open("/proc/meminfo") as f:
            kb = int(next(l for l in f if l.startswith("MemTotal")).split()[1])
            return f"{kb / 2**20:.1f} GiB"
    except (OSError, StopIteration, ValueError):
        return "?"


def commit_description():
    """HEAD, marked when the tree has local changes outside bench/results/ (the
    reports themselves do not count)."""
    commit = sh(["git", "rev-parse", "HEAD"], cwd=ROOT) or "?"
    if sh(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
           ":(exclude)bench/results"], cwd=ROOT):
        commit += " (with uncommitted changes)"
    return commit


def cmake_cache(build_dir):
    """The variables of a build tree's CMakeCache.txt ({} if there is none)."""
    values = {}
    try:
        with open(os.path.join(build_dir, "CMakeCache.txt")) as f:
            for line in f:
                m = re.match(r"^([A-Za-z_0-9]+):[A-Z]+=(.*)$", line.rstrip("\n"))
                if m:
                    values[m.group(1)] = m.group(2)
    except OSError:
        pass
    return values


def log(msg=""):
    print(msg, flush=True)


def spread(xs):
    """(max - min) / median of xs, in percent (0 for fewer than two values)."""
    m = statistics.median(xs) if xs else 0
    return 100.0 * (max(xs) - min(xs)) / m if len(xs) > 1 and m > 0 else 0.0


def clean_env(drop_prefixes=(), drop_names=()):
    """The environment without LD_PRELOAD and goalloc's and glibc malloc's
    settings, nor the given prefixes and names, so that every runtime under
    test runs with its defaults; LC_ALL=C."""
    prefixes = ("GOALLOC_", "MALLOC_") + tuple(drop_prefixes)
    env = {k: v for k, v in os.environ.items()
           if k != "LD_PRELOAD" and not k.startswith(prefixes) and k not in drop_names}
    env["LC_ALL"] = "C"
    return env
