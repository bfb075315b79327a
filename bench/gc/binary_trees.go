//go:build ignore

// binary_trees — the Computer Language Benchmarks Game's binary-trees in Go,
// one mutator goroutine: the same program as binary_trees.cpp (goalloc) and
// binary_trees_boehm.c, with the same standard output. scripts/bench_gc.py
// builds it with `go build binary_trees.go` (the ignore tag keeps the three
// Go programs of this directory, each a package main, out of `go build ./...`).
//
//	binary_trees [DEPTH | depth=DEPTH]     (default 21, at least 6 is used)
//
// See binary_trees.cpp for the rules and the self-check. Last, on stderr, the
// gcstats line (see gcStats below).
package main

import (
	"fmt"
	"math"
	"os"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
)

type Node struct {
	left, right *Node
}

func bottomUpTree(depth int) *Node {
	if depth <= 0 {
		return &Node{}
	}
	return &Node{bottomUpTree(depth - 1), bottomUpTree(depth - 1)}
}

func (n *Node) itemCheck() int64 {
	if n.left == nil || n.right == nil {
		if n.left != n.right {
			fmt.Fprintf(os.Stderr, "binary_trees: CORRUPTION: node %p has one child\n", n)
			os.Exit(3)
		}
		return 1
	}
	return 1 + n.left.itemCheck() + n.right.itemCheck()
}

func expect(got, want int64, what string) {
	if got != want {
		fmt.Fprintf(os.Stderr, "binary_trees: CORRUPTION: %s check %d, expected %d\n", what, got, want)
		os.Exit(3)
	}
}

func main() {
	args := parseArgs([]string{"depth"}, "[DEPTH | depth=21]")
	n := int(args.get("depth", 21, 0, 30))
	args.done()

	const minDepth = 4
	maxDepth := n
	if maxDepth < minDepth+2 {
		maxDepth = minDepth + 2
	}
	stretchDepth := maxDepth + 1

	c := bottomUpTree(stretchDepth).itemCheck()
	fmt.Printf("stretch tree of depth %d\t check: %d\n", stretchDepth, c)
	expect(c, int64(2)<<stretchDepth-1, "stretch tree")

	longLived := bottomUpTree(maxDepth)

	for d := minDepth; d <= maxDepth; d += 2 {
		iterations := int64(1) << (maxDepth - d + minDepth)
		var check int64
		for i := int64(0); i < iterations; i++ {
			check += bottomUpTree(d).itemCheck()
		}
		fmt.Printf("%d\t trees of depth %d\t check: %d\n", iterations, d, check)
		expect(check, iterations*(int64(2)<<d-1), "trees")
	}

	c = longLived.itemCheck()
	fmt.Printf("long lived tree of depth %d\t check: %d\n", maxDepth, c)
	expect(c, int64(2)<<maxDepth-1, "long lived tree")
	fmt.Fprintln(os.Stderr, gcStats(""))
}

// ---- shared by the Go programs of bench/gc/ (each file is its own program) ----

// gcStats is the gcstats line: runtime.ReadMemStats's NumGC, PauseTotalNs and
// GCCPUFraction, and the longest single stop-the-world pause. PauseNs of
// MemStats holds, for each of the last 256 cycles, the sum of that cycle's
// pauses; the longest single pause comes from runtime/metrics'
// /gc/pauses:seconds histogram, as the upper bound of its highest non-empty
// bucket (pause_max_lo_ns: its lower bound), capped by the largest PauseNs when
// the ring still holds every cycle.
func gcStats(extra string) string {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	ringMax := uint64(0)
	for i := uint32(0); i < ms.NumGC && i < 256; i++ {
		if p := ms.PauseNs[i]; p > ringMax {
			ringMax = p
		}
	}
	lo, hi := uint64(0), uint64(0)
	sample := []metrics.Sample{{Name: "/gc/pauses:seconds"}}
	metrics.Read(sample)
	if sample[0].Value.Kind() == metrics.KindFloat64Histogram {
		h := sample[0].Value.Float64Histogram()
		for i := len(h.Counts) - 1; i >= 0; i-- {
			if h.Counts[i] > 0 {
				l, u := h.Buckets[i], h.Buckets[i+1]
				if math.IsInf(l, -1) || l < 0 {
					l = 0
				}
				if math.IsInf(u, 1) {
					u = l
				}
				lo, hi = uint64(l*1e9), uint64(math.Ceil(u*1e9))
				break
			}
		}
	}
	max := hi
	if ms.NumGC <= 256 && (max == 0 || ringMax < max) {
		max = ringMax
	}
	if lo > max {
		lo = max
	}
	s := fmt.Sprintf("gcstats cycles=%d pause_total_ns=%d pause_max_ns=%d gc_cpu_fraction=%.6f "+
		"vmhwm_kib=%d forced_cycles=%d pause_max_lo_ns=%d pause_max_cycle_ns=%d heap_sys=%d "+
		"heap_released=%d total_alloc=%d mallocs=%d gomaxprocs=%d",
		ms.NumGC, ms.PauseTotalNs, max, ms.GCCPUFraction, vmhwmKiB(), ms.NumForcedGC, lo, ringMax,
		ms.HeapSys, ms.HeapReleased, ms.TotalAlloc, ms.Mallocs, runtime.GOMAXPROCS(0))
	if extra != "" {
		s += " " + extra
	}
	return s
}

// vmhwmKiB is VmHWM of /proc/self/status (peak RSS), -1 if unknown.
func vmhwmKiB() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			f := strings.Fields(line[6:])
			if len(f) > 0 {
				if v, err := strconv.ParseInt(f[0], 10, 64); err == nil {
					return v
				}
			}
		}
	}
	return -1
}

// Parameters as the C programs take them: key=value, or bare values for the
// positional keys in order; k/m/g suffixes; unknown keys are errors (exit 2).
type argSet struct {
	usage string
	keys  []string
	vals  []string
	used  []bool
}

func die(format string, a ...interface{}) {
	fmt.Fprintf(os.Stderr, "error: "+format+"\n", a...)
	os.Exit(2)
}

func parseArgs(positional []string, usage string) *argSet {
	s := &argSet{usage: usage}
	npos := 0
	for _, a := range os.Args[1:] {
		if a == "-h" || a == "--help" {
			fmt.Printf("usage: %s %s\n", os.Args[0], usage)
			os.Exit(0)
		}
		if i := strings.IndexByte(a, '='); i >= 0 {
			s.keys = append(s.keys, a[:i])
			s.vals = append(s.vals, a[i+1:])
		} else {
			if npos >= len(positional) {
				die("unexpected argument '%s' (usage: %s %s)", a, os.Args[0], usage)
			}
			s.keys = append(s.keys, positional[npos])
			s.vals = append(s.vals, a)
			npos++
		}
		s.used = append(s.used, false)
	}
	return s
}

func (s *argSet) get(key string, def, lo, hi int64) int64 {
	v := def
	for i, k := range s.keys {
		if k != key {
			continue
		}
		str, shift := s.vals[i], uint(0)
		if n := len(str); n > 0 {
			switch str[n-1] {
			case 'k', 'K':
				shift = 10
			case 'm', 'M':
				shift = 20
			case 'g', 'G':
				shift = 30
			}
			if shift > 0 {
				str = str[:n-1]
			}
		}
		x, err := strconv.ParseInt(str, 0, 64)
		if err != nil {
			die("bad value '%s' for %s", s.vals[i], key)
		}
		v = x << shift
		s.used[i] = true
	}
	if v < lo || v > hi {
		die("%s=%d out of range [%d, %d]", key, v, lo, hi)
	}
	return v
}

func (s *argSet) done() {
	for i, u := range s.used {
		if !u {
			die("unknown parameter '%s' (usage: %s %s)", s.keys[i], os.Args[0], s.usage)
		}
	}
}
