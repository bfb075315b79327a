//go:build ignore

// gc_latency — stop-the-world pauses while mutators run over a large live heap,
// in Go: the same program as gc_latency.cpp (goalloc) and gc_latency_boehm.c.
// Built by scripts/bench_gc.py with `go build gc_latency.go`.
//
//	gc_latency [LIVE_MB [SECONDS]] [live_mb=1024] [seconds=10] [ops=0] [chain=4]
//	           [threads=1] [seed=1] [verify=1]
//
// The table is a slice of *Obj, the lists 64-byte objects; the mutators are
// goroutines (the first is main's). See gc_latency.cpp for what it does and
// prints. The collector's CPU share while marking is not measured here (Go
// 1.19 exposes no marking flag; its GCCPUFraction covers the whole run).
package main

import (
	"fmt"
	"math"
	"math/bits"
	"os"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

type Obj struct {
	next  *Obj
	stamp uint64
	pad   [6]uint64
}

var (
	chain  int
	verify bool
	table  []*Obj
	stop   int32
)

func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

type rng struct{ s uint64 }

func newRng(seed uint64) rng { return rng{mix64(seed+0x9e3779b97f4a7c15) | 1} }

func (r *rng) next() uint64 { // xorshift64*
	x := r.s
	x ^= x >> 12
	x ^= x << 25
	x ^= x >> 27
	r.s = x
	return x * 0x2545f4914f6cdd1d
}

func mulhi(a, b uint64) uint64 {
	aLo, aHi := a&0xffffffff, a>>32
	bLo, bHi := b&0xffffffff, b>>32
	t := aHi*bLo + (aLo*bLo)>>32
	w1 := t&0xffffffff + aLo*bHi
	return aHi*bHi + t>>32 + w1>>32
}

func (r *rng) below(n uint64) uint64 { return mulhi(r.next(), n) }

func stampOf(entry uint64, k int) uint64 { return mix64(entry*8+uint64(k)) | 1 }

func makeList(entry uint64) *Obj {
	var head *Obj
	for k := chain - 1; k >= 0; k-- {
		head = &Obj{next: head, stamp: stampOf(entry, k)}
	}
	return head
}

func checkList(o *Obj, entry uint64) {
	for k := 0; k < chain; k++ {
		if o == nil || o.stamp != stampOf(entry, k) {
			what := "wrong stamp"
			if o == nil {
				what = "missing"
			}
			fmt.Fprintf(os.Stderr, "gc_latency: CORRUPTION: entry %d, object %d of its list: %s\n", entry, k, what)
			os.Exit(3)
		}
		o = o.next
	}
	if o != nil {
		fmt.Fprintf(os.Stderr, "gc_latency: CORRUPTION: entry %d: list longer than %d\n", entry, chain)
		os.Exit(3)
	}
}

// gaps: log2 histogram of the time between consecutive clock readings.
type gaps struct {
	count              [64]uint64
	n                  uint64
	max                int64
	over100us, over1ms uint64
}

func (g *gaps) add(d int64) {
	if d < 1 {
		d = 1
	}
	g.count[bits.Len64(uint64(d))-1]++
	g.n++
	if d > g.max {
		g.max = d
	}
	if d >= 100000 {
		g.over100us++
	}
	if d >= 1000000 {
		g.over1ms++
	}
}

func (g *gaps) merge(o *gaps) {
	for b := range g.count {
		g.count[b] += o.count[b]
	}
	g.n += o.n
	if o.max > g.max {
		g.max = o.max
	}
	g.over100us += o.over100us
	g.over1ms += o.over1ms
}

// quantile: upper bound of the bucket holding quantile q, at most the max.
func (g *gaps) quantile(q float64) int64 {
	want := uint64(q*float64(g.n) + 0.5)
	if want == 0 {
		want = 1
	}
	seen := uint64(0)
	for b := 0; b < 64; b++ {
		seen += g.count[b]
		if seen >= want {
			up := int64(math.MaxInt64)
			if b < 62 {
				up = int64(1) << uint(b+1)
			}
			if up > g.max {
				up = g.max
			}
			return up
		}
	}
	return g.max
}

type worker struct {
	id                  int
	lo, hi, quota, seed uint64
	deadline            time.Time
	ops                 uint64
	g                   gaps
}

func run(w *worker) {
	r := newRng(w.seed)
	n := w.hi - w.lo
	last := time.Now()
	for op := uint64(1); ; op++ {
		i := w.lo + r.below(n)
		fresh := makeList(i)
		if op&1023 == 0 {
			if verify {
				checkList(table[i], i)
			}
			table[i] = fresh
			now := time.Now()
			w.g.add(now.Sub(last).Nanoseconds())
			last = now
			if w.id == 0 && w.quota == 0 && !now.Before(w.deadline) {
				atomic.StoreInt32(&stop, 1)
			}
			if w.quota != 0 && op >= w.quota || w.quota == 0 && atomic.LoadInt32(&stop) != 0 {
				w.ops = op
				return
			}
		} else {
			table[i] = fresh
			if w.quota != 0 && op >= w.quota {
				w.ops = op
				return
			}
		}
	}
}

func main() {
	args := parseArgs([]string{"live_mb", "seconds"},
		"[LIVE_MB [SECONDS]] [live_mb=1024] [seconds=10] [ops=0] [chain=4] [threads=1] [seed=1] [verify=1]")
	liveMB := args.get("live_mb", 1024, 1, 1<<20)
	seconds := args.get("seconds", 10, 0, 1<<20)
	totalOps := args.get("ops", 0, 0, 1<<50)
	chain = int(args.get("chain", 4, 1, 64))
	threads := int(args.get("threads", 1, 1, 64))
	seed := args.get("seed", 1, 0, 1<<62)
	verify = args.get("verify", 1, 0, 1) != 0
	args.done()

	entries := uint64(liveMB) << 20 / (uint64(chain) * 64)
	if entries < uint64(threads) {
		die("live_mb too small for %d threads", threads)
	}

	// ---- build the live heap
	tBuild := time.Now()
	table = make([]*Obj, entries)
	for i := uint64(0); i < entries; i++ {
		table[i] = makeList(i)
	}
	buildS := time.Since(tBuild).Seconds()
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)

	// ---- mutate
	ws := make([]worker, threads)
	for t := range ws {
		w := &ws[t]
		w.id = t
		w.lo = entries * uint64(t) / uint64(threads)
		w.hi = entries * uint64(t+1) / uint64(threads)
		if totalOps > 0 {
			w.quota = (uint64(totalOps) + uint64(t)) / uint64(threads)
			if w.quota == 0 {
				w.quota = 1
			}
		}
		w.seed = uint64(seed)*1000003 + uint64(t)
	}
	t0 := time.Now()
	ws[0].deadline = t0.Add(time.Duration(seconds) * time.Second)
	var wg sync.WaitGroup
	for t := 1; t < threads; t++ {
		wg.Add(1)
		go func(w *worker) {
			defer wg.Done()
			run(w)
		}(&ws[t])
	}
	run(&ws[0])
	wg.Wait()
	secs := time.Since(t0).Seconds()
	runtime.ReadMemStats(&ms1)

	// ---- check every list
	if verify {
		for i := uint64(0); i < entries; i++ {
			checkList(table[i], i)
		}
	}

	var g gaps
	ops := uint64(0)
	for t := range ws {
		g.merge(&ws[t].g)
		ops += ws[t].ops
	}
	rate := 0.0
	if secs > 0 {
		rate = float64(ops) / secs
	}
	p50, p99, p999 := g.quantile(0.5), g.quantile(0.99), g.quantile(0.999)
	fmt.Printf("result: gc_latency ops=%d ops_per_sec=%.0f time_s=%.3f live_mb=%d entries=%d chain=%d threads=%d "+
		"build_s=%.3f max_gap_us=%.1f p50_gap_us=%.1f p99_gap_us=%.1f p999_gap_us=%.1f gaps_over_1ms=%d\n",
		ops, rate, secs, liveMB, entries, chain, threads, buildS, float64(g.max)/1e3, float64(p50)/1e3,
		float64(p99)/1e3, float64(p999)/1e3, g.over1ms)
	extra := fmt.Sprintf("ops=%d ops_per_sec=%.0f run_s=%.3f build_s=%.3f steady_cycles=%d "+
		"steady_pause_total_ns=%d max_gap_ns=%d p50_gap_ns=%d p99_gap_ns=%d p999_gap_ns=%d "+
		"gaps_over_100us=%d gaps_over_1ms=%d gaps=%d",
		ops, rate, secs, buildS, ms1.NumGC-ms0.NumGC, ms1.PauseTotalNs-ms0.PauseTotalNs, g.max, p50, p99,
		p999, g.over100us, g.over1ms, g.n)
	fmt.Fprintln(os.Stderr, gcStats(extra))
	runtime.KeepAlive(table)
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
