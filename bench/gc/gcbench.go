//go:build ignore

// gcbench — Boehm's GCBench in Go, one mutator goroutine: the same program as
// gcbench.cpp (goalloc) and gcbench_boehm.c, with the same standard output.
// Built by scripts/bench_gc.py with `go build gcbench.go`.
//
//	gcbench [stretch=18] [long_lived=16] [array=500000] [min=4] [max=16]
//
// See gcbench.cpp for what it does. Last, on stderr, the gcstats line.
package main

import (
	"fmt"
	"math"
	"os"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"time"
	"unsafe"
)

type Node struct {
	left, right *Node
	i, j        int32
}

var stretchDepth, longLivedDepth, minDepth, maxDepth int
var arraySize int64

func treeSize(i int) int64 { return int64(1)<<(i+1) - 1 }
func numIters(i int) int64 { return 2 * treeSize(stretchDepth) / treeSize(i) }

// populate builds the tree top-down.
func populate(depth int, n *Node) {
	if depth <= 0 {
		return
	}
	depth--
	n.left = &Node{}
	n.right = &Node{}
	populate(depth, n.left)
	populate(depth, n.right)
}

// makeTree builds the tree bottom-up.
func makeTree(depth int) *Node {
	if depth <= 0 {
		return &Node{}
	}
	return &Node{left: makeTree(depth - 1), right: makeTree(depth - 1)}
}

func count(n *Node) int64 {
	if n == nil {
		return 0
	}
	return 1 + count(n.left) + count(n.right)
}

func msSince(t0 time.Time) float64 { return float64(time.Since(t0).Nanoseconds()) / 1e6 }

func timeConstruction(depth int) {
	iters := numIters(depth)
	fmt.Printf("Creating %d trees of depth %d\n", iters, depth)
	t0 := time.Now()
	for i := int64(0); i < iters; i++ {
		temp := &Node{}
		populate(depth, temp)
	}
	fmt.Fprintf(os.Stderr, "\tTop down construction took %.0f msec\n", msSince(t0))
	t0 = time.Now()
	for i := int64(0); i < iters; i++ {
		makeTree(depth)
	}
	fmt.Fprintf(os.Stderr, "\tBottom up construction took %.0f msec\n", msSince(t0))
}

func main() {
	args := parseArgs(nil, "[stretch=18] [long_lived=16] [array=500000] [min=4] [max=16]")
	stretchDepth = int(args.get("stretch", 18, 1, 26))
	longLivedDepth = int(args.get("long_lived", 16, 1, 26))
	arraySize = args.get("array", 500000, 2002, 1<<30)
	minDepth = int(args.get("min", 4, 1, 26))
	maxDepth = int(args.get("max", 16, 1, 26))
	args.done()
	if maxDepth > stretchDepth {
		die("max (%d) must not exceed stretch (%d)", maxDepth, stretchDepth)
	}

	fmt.Printf("Garbage Collector Test\n")
	fmt.Printf(" Live storage will peak at %d bytes.\n\n",
		2*int64(unsafe.Sizeof(Node{}))*treeSize(longLivedDepth)+8*arraySize)
	fmt.Printf(" Stretching memory with a binary tree of depth %d\n", stretchDepth)
	tStart := time.Now()

	makeTree(stretchDepth)

	fmt.Printf(" Creating a long-lived binary tree of depth %d\n", longLivedDepth)
	longLived := &Node{}
	populate(longLivedDepth, longLived)

	fmt.Printf(" Creating a long-lived array of %d doubles\n", arraySize)
	array := make([]float64, arraySize)
	for i := int64(0); i < arraySize/2; i++ {
		array[i] = 1.0 / float64(i)
	}

	for d := minDepth; d <= maxDepth; d += 2 {
		timeConstruction(d)
	}

	nodes := count(longLived)
	ok := nodes == treeSize(longLivedDepth) && array[1000] == 1.0/1000 &&
		array[arraySize/2-1] == 1.0/float64(arraySize/2-1)
	state := "ok"
	if !ok {
		state = "CORRUPTED"
	}
	fmt.Printf(" Long-lived tree: %d nodes, array: %s\n", nodes, state)
	fmt.Fprintf(os.Stderr, "Completed in %.0f msec.\n", msSince(tStart))
	if !ok {
		fmt.Fprintf(os.Stderr, "gcbench: CORRUPTION: the long-lived tree has %d nodes (expected %d) or the array changed\n",
			nodes, treeSize(longLivedDepth))
		os.Exit(3)
	}
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
		"total_alloc=%d mallocs=%d gomaxprocs=%d",
		ms.NumGC, ms.PauseTotalNs, max, ms.GCCPUFraction, vmhwmKiB(), ms.NumForcedGC, lo, ringMax,
		ms.HeapSys, ms.TotalAlloc, ms.Mallocs, runtime.GOMAXPROCS(0))
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
