// gc_latency — stop-the-world pauses while mutators run over a large live heap,
// on goalloc's garbage collector. Flavours of the same program:
// gc_latency_boehm.c (Boehm GC), gc_latency.go.
//
//   gc_latency [LIVE_MB [SECONDS]] [live_mb=1024] [seconds=10] [ops=0] [chain=4]
//              [threads=1] [seed=1] [verify=1]
//
// Builds a live heap of live_mb MiB of 64-byte objects: a table (one collected
// array of Ptr, held by a Root) of live_mb MiB / (chain * 64 B) entries, each a
// list of `chain` objects. Then `threads` mutators (this thread and threads-1
// more, each owning a slice of the table) replace random entries by new lists
// for `seconds` seconds, or for `ops` replacements in all when ops > 0, so
// that the old lists become garbage and cycles run, concurrently, over the
// whole live heap. Every 1024 replacements a mutator reads the clock: the gaps
// between consecutive readings are its hiccups (the longest, and quantiles of
// a log2 histogram: upper bounds of their power-of-two bucket); it also checks
// the list it replaces (verify=1). At the end every list is checked: each
// object carries a stamp derived from its entry and position, so an object
// freed while reachable and handed out again shows (exit 3).
//
// Also measured, goalloc only: the collector's CPU share while marking. The
// first mutator samples the write-barrier flag (on while marking) with the
// clock; over the marking intervals it sees, collector CPU = process CPU time -
// the mutators' CPU time (their thread clocks) + mark assists and fractional
// marking (MarkAssistNs, MarkFractionalNs: done on mutator threads; at most
// the mutators' CPU time in those intervals, since both are wall time),
// divided by wall time x CPUs available (mark_cpu_fraction=; without them:
// mark_bg_cpu_fraction=; steady_frac_ns= is the fractional marking's time;
// mark_duty= is the share of the run spent marking). Beside it, the
// collector's own account of the cycles completed during the run
// (MemStats.Mark*Ns), in Go's terms: mark_go_cpu_fraction= is background
// marking (the worker and the mutators' fractional share) within its 25%
// share plus assists, mark_idle_cpu_fraction= the marking beyond it, on CPUs
// no mutator wanted, which Go 1.19 leaves out of its
// GC CPU utilization as "free" (runtime/mgc.go, gcMarkTermination);
// mark_pooled_cpu_fraction= the collector's pooled form of the same (before
// aea26af its only one: the worker's idle-CPU time counted in place of any
// share the mutators did not mark, gc/README.md "CPU accounting").
//
// stdout: `result: gc_latency ...` (human-readable); stderr: the gcstats line
// (see binary_trees.cpp) with the hiccups and the rest appended.
#include <goalloc/gc.hpp>

#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

#include "gcb_common.h"

namespace gc = goalloc::gc;

namespace {

struct Obj {
    gc::Ptr<Obj> next;
    std::uint64_t stamp = 0;
    std::uint64_t pad[6] = {};
    Obj() = default;
    Obj(Obj* n, std::uint64_t s) : next(n), stamp(s) {}
};
static_assert(sizeof(Obj) == 64);

std::uint64_t stamp_of(std::uint64_t entry, int k) { return gcb_mix64(entry * 8 + static_cast<std::uint64_t>(k)) | 1; }

int chain;
bool verify;
std::atomic<bool> stop{false};
std::atomic<int> finished{0};  // mutators done (their CPU clocks go away)

Obj* make_list(std::uint64_t entry) {
    Obj* head = nullptr;
    for (int k = chain - 1; k >= 0; k--) head = gc::make<Obj>(head, stamp_of(entry, k));
    return head;
}

void check_list(const Obj* o, std::uint64_t entry) {
    for (int k = 0; k < chain; k++) {
        if (o == nullptr || o->stamp != stamp_of(entry, k)) {
            std::fprintf(stderr, "gc_latency: CORRUPTION: entry %" PRIu64 ", object %d of its list: %s\n", entry, k,
                         o == nullptr ? "missing" : "wrong stamp");
            std::exit(3);
        }
        o = o->next;
    }
    if (o != nullptr) {
        std::fprintf(stderr, "gc_latency: CORRUPTION: entry %" PRIu64 ": list longer than %d\n", entry, chain);
        std::exit(3);
    }
}

struct Worker {
    int id;
    gc::Ptr<Obj>* table;
    std::uint64_t lo, hi;     // its slice of the table
    std::uint64_t quota;      // replacements to do (0: until stop)
    std::uint64_t seed;
    std::int64_t deadline;    // CLOCK_MONOTONIC ns (worker 0 sets stop)
    std::uint64_t ops = 0;
    gcb_gaps_t gaps = {};
    clockid_t cpu_clock{};
    pthread_t thread{};
    std::atomic<bool> ready{false};
};

// The first mutator's view of marking (see the header comment).
struct MarkSampler {
    std::vector<Worker*>* workers = nullptr;
    bool marking = false;
    std::int64_t t0 = 0, proc0 = 0, mut0 = 0;
    std::int64_t wall = 0, gc_cpu = 0, mut_cpu = 0;
    std::uint64_t intervals = 0;

    std::int64_t mutator_cpu() const {
        std::int64_t s = 0;
        for (Worker* w : *workers) s += gcb_clock_ns(w->cpu_clock);
        return s;
    }
    void sample(std::int64_t now) {
        if (finished.load(std::memory_order_relaxed) != 0) {  // ops= mode: others may be gone
            marking = false;
            return;
        }
        bool m = __atomic_load_n(&gc::detail::write_barrier_enabled, __ATOMIC_RELAXED) != 0;
        if (m == marking) return;
        std::int64_t proc = gcb_clock_ns(CLOCK_PROCESS_CPUTIME_ID), mut = mutator_cpu();
        if (m) {
            t0 = now, proc0 = proc, mut0 = mut;
        } else {
            wall += now - t0;
            gc_cpu += (proc - proc0) - (mut - mut0);
            mut_cpu += mut - mut0;
            intervals++;
        }
        marking = m;
    }
};
MarkSampler sampler;

void run(Worker* w) {
    pthread_getcpuclockid(pthread_self(), &w->cpu_clock);
    w->ready.store(true, std::memory_order_release);
    std::uint64_t rng = gcb_rng_seed(w->seed);
    std::uint64_t n = w->hi - w->lo;
    std::int64_t last = gcb_now_ns();
    for (std::uint64_t op = 1;; op++) {
        std::uint64_t i = w->lo + gcb_rng_below(&rng, n);
        Obj* fresh = make_list(i);
        if ((op & 1023) == 0) {
            if (verify) check_list(w->table[i], i);
            w->table[i] = fresh;
            std::int64_t now = gcb_now_ns();
            gcb_gaps_add(&w->gaps, now - last);
            last = now;
            if (w->id == 0) {
                sampler.sample(now);
                if (w->quota == 0 && now >= w->deadline) stop.store(true, std::memory_order_relaxed);
            }
            if (w->quota != 0 ? op >= w->quota : stop.load(std::memory_order_relaxed)) {
                w->ops = op;
                break;
            }
        } else {
            w->table[i] = fresh;
            if (w->quota != 0 && op >= w->quota) {
                w->ops = op;
                break;
            }
        }
    }
    if (w->id == 0) sampler.sample(gcb_now_ns());  // a marking interval still open stays uncounted
    finished.fetch_add(1, std::memory_order_relaxed);
}

void* thread_main(void* arg) {
    run(static_cast<Worker*>(arg));
    gc::unregister_thread();
    return nullptr;
}

int ncpus() {
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) != 0) return 1;
    return CPU_COUNT(&set);
}

}  // namespace

int main(int argc, char** argv) {
    static const char* const positional[] = {"live_mb", "seconds", nullptr};
    gcb_args_init(argc, argv, positional,
                  "[LIVE_MB [SECONDS]] [live_mb=1024] [seconds=10] [ops=0] [chain=4] [threads=1] [seed=1] [verify=1]");
    const long long live_mb = gcb_arg("live_mb", 1024, 1, 1 << 20);
    const long long seconds = gcb_arg("seconds", 10, 0, 1 << 20);
    const long long total_ops = gcb_arg("ops", 0, 0, 1ll << 50);
    chain = static_cast<int>(gcb_arg("chain", 4, 1, 64));
    const int threads = static_cast<int>(gcb_arg("threads", 1, 1, 64));
    const long long seed = gcb_arg("seed", 1, 0, 1ll << 62);
    verify = gcb_arg("verify", 1, 0, 1) != 0;
    gcb_args_done();

    const std::uint64_t entries = (static_cast<std::uint64_t>(live_mb) << 20) / (static_cast<std::uint64_t>(chain) * 64);
    if (entries < static_cast<std::uint64_t>(threads)) gcb_die("live_mb too small for %d threads", threads);

    // ---- build the live heap
    std::int64_t t_build = gcb_now_ns();
    gc::Ptr<Obj>* table = gc::make_array<gc::Ptr<Obj>>(entries);
    gc::Root<gc::Ptr<Obj>> table_root(table);
    for (std::uint64_t i = 0; i < entries; i++) table[i] = make_list(i);
    double build_s = static_cast<double>(gcb_now_ns() - t_build) / 1e9;

    static gc::MemStats ms0, ms1;
    gc::read_mem_stats(ms0);

    // ---- mutate
    std::vector<Worker> ws(static_cast<std::size_t>(threads));
    std::vector<Worker*> wp;
    for (int t = 0; t < threads; t++) {
        Worker& w = ws[static_cast<std::size_t>(t)];
        w.id = t;
        w.table = table;
        w.lo = entries * static_cast<std::uint64_t>(t) / static_cast<std::uint64_t>(threads);
        w.hi = entries * static_cast<std::uint64_t>(t + 1) / static_cast<std::uint64_t>(threads);
        w.quota = total_ops > 0 ? (static_cast<std::uint64_t>(total_ops) + static_cast<std::uint64_t>(t)) /
                                      static_cast<std::uint64_t>(threads)
                                : 0;
        if (total_ops > 0 && w.quota == 0) w.quota = 1;
        w.seed = static_cast<std::uint64_t>(seed) * 1000003u + static_cast<std::uint64_t>(t);
        wp.push_back(&w);
    }
    sampler.workers = &wp;
    std::int64_t t0 = gcb_now_ns();
    ws[0].deadline = t0 + seconds * 1000000000ll;
    pthread_getcpuclockid(pthread_self(), &ws[0].cpu_clock);
    for (int t = 1; t < threads; t++) {
        if (pthread_create(&ws[static_cast<std::size_t>(t)].thread, nullptr, thread_main, &ws[static_cast<std::size_t>(t)]) != 0)
            gcb_die("pthread_create failed");
        while (!ws[static_cast<std::size_t>(t)].ready.load(std::memory_order_acquire)) sched_yield();
    }
    std::int64_t proc_start = gcb_clock_ns(CLOCK_PROCESS_CPUTIME_ID);
    run(&ws[0]);
    for (int t = 1; t < threads; t++) pthread_join(ws[static_cast<std::size_t>(t)].thread, nullptr);
    std::int64_t t1 = gcb_now_ns();
    std::int64_t proc_cpu = gcb_clock_ns(CLOCK_PROCESS_CPUTIME_ID) - proc_start;
    gc::read_mem_stats(ms1);

    // ---- check every list
    if (verify)
        for (std::uint64_t i = 0; i < entries; i++) check_list(table[i], i);

    gcb_gaps_t gaps = {};
    std::uint64_t ops = 0;
    for (Worker& w : ws) {
        gcb_gaps_merge(&gaps, &w.gaps);
        ops += w.ops;
    }
    double secs = static_cast<double>(t1 - t0) / 1e9;
    double rate = secs > 0 ? static_cast<double>(ops) / secs : 0;
    std::int64_t p50 = gcb_gaps_quantile(&gaps, 0.5), p99 = gcb_gaps_quantile(&gaps, 0.99),
                 p999 = gcb_gaps_quantile(&gaps, 0.999);
    std::uint64_t assist = ms1.MarkAssistNs - ms0.MarkAssistNs;
    std::uint64_t frac = ms1.MarkFractionalNs - ms0.MarkFractionalNs;
    // Assists and fractional marking run on the mutators while marking: their
    // CPU time is part of the mutators' CPU time in the marking intervals.
    // MarkAssistNs and MarkFractionalNs are wall time (they include waiting
    // for a CPU), so they are capped by that.
    const std::int64_t assist_cpu = std::min(static_cast<std::int64_t>(assist + frac), sampler.mut_cpu);
    const double mark_avail = static_cast<double>(sampler.wall) * ncpus();
    const double mark_frac = sampler.wall > 0 ? static_cast<double>(sampler.gc_cpu + assist_cpu) / mark_avail : -1;
    const double mark_bg_frac = sampler.wall > 0 ? static_cast<double>(sampler.gc_cpu) / mark_avail : -1;
    // The collector's own account of the mark phases that completed during
    // the run, in Go's terms (MemStats.Mark*Ns): background worker within its
    // 25% share + assists, over mark wall time x CPUs; idle-CPU marking apart
    // (Go omits it from its utilization as "free").
    const double cyc_avail = static_cast<double>(ms1.MarkWallNs - ms0.MarkWallNs) * ncpus();
    const double mark_go_frac =
        cyc_avail > 0 ? static_cast<double>(ms1.MarkBackgroundNs - ms0.MarkBackgroundNs +
                                            ms1.MarkCycleAssistNs - ms0.MarkCycleAssistNs) / cyc_avail
                      : -1;
    const double mark_idle_frac =
        cyc_avail > 0 ? static_cast<double>(ms1.MarkIdleNs - ms0.MarkIdleNs) / cyc_avail : -1;
    // The same in the collector's pooled form (before aea26af, its only one):
    // all background marking, the worker's idle-CPU time with it, counted up
    // to 25% of the CPUs (over the run's cycles together), + assists.
    const double pooled_cap = 0.25 * cyc_avail;
    const double mark_pooled_frac =
        cyc_avail > 0 ? (std::min(static_cast<double>(ms1.MarkBackgroundNs - ms0.MarkBackgroundNs + ms1.MarkIdleNs -
                                                      ms0.MarkIdleNs),
                                  pooled_cap) +
                         static_cast<double>(ms1.MarkCycleAssistNs - ms0.MarkCycleAssistNs)) / cyc_avail
                      : -1;
    std::printf("result: gc_latency ops=%" PRIu64 " ops_per_sec=%.0f time_s=%.3f live_mb=%lld entries=%" PRIu64
                " chain=%d threads=%d build_s=%.3f max_gap_us=%.1f p50_gap_us=%.1f p99_gap_us=%.1f"
                " p999_gap_us=%.1f gaps_over_1ms=%" PRIu64 "\n",
                ops, rate, secs, live_mb, entries, chain, threads, build_s, gaps.max / 1e3, p50 / 1e3, p99 / 1e3,
                p999 / 1e3, gaps.over_1ms);
    std::fflush(stdout);

    static gc::MemStats ms;
    gc::read_mem_stats(ms);
    std::fprintf(stderr,
                 "gcstats cycles=%" PRIu32 " pause_total_ns=%" PRIu64 " pause_max_ns=%" PRIu64
                 " gc_cpu_fraction=%.6f vmhwm_kib=%lld forced_cycles=%" PRIu32 " assist_ns=%" PRIu64
                 " heap_sys=%" PRIu64 " total_alloc=%" PRIu64 " mallocs=%" PRIu64
                 " ops=%" PRIu64 " ops_per_sec=%.0f run_s=%.3f build_s=%.3f steady_cycles=%" PRIu32
                 " steady_pause_total_ns=%" PRIu64 " max_gap_ns=%" PRId64 " p50_gap_ns=%" PRId64
                 " p99_gap_ns=%" PRId64 " p999_gap_ns=%" PRId64 " gaps_over_100us=%" PRIu64 " gaps_over_1ms=%" PRIu64
                 " gaps=%" PRIu64 " mark_cpu_fraction=%.6f mark_bg_cpu_fraction=%.6f mark_duty=%.6f"
                 " mark_intervals=%" PRIu64 " mark_wall_ns=%" PRId64 " mark_mutator_cpu_ns=%" PRId64 " steady_assist_ns=%" PRIu64
                 " steady_cpu_s=%.3f ncpu=%d mark_go_cpu_fraction=%.6f mark_idle_cpu_fraction=%.6f"
                 " steady_frac_ns=%" PRIu64 " mark_pooled_cpu_fraction=%.6f\n",
                 ms.NumGC, ms.PauseTotalNs, ms.MaxPauseNs, ms.GCCPUFraction, gcb_vmhwm_kib(), ms.NumForcedGC,
                 ms.MarkAssistNs, ms.HeapSys, ms.TotalAlloc, ms.Mallocs, ops, rate, secs, build_s,
                 ms1.NumGC - ms0.NumGC, ms1.PauseTotalNs - ms0.PauseTotalNs, gaps.max, p50, p99, p999,
                 gaps.over_100us, gaps.over_1ms, gaps.n, mark_frac, mark_bg_frac,
                 secs > 0 ? static_cast<double>(sampler.wall) / (static_cast<double>(t1 - t0)) : 0.0,
                 sampler.intervals, sampler.wall, sampler.mut_cpu, assist, static_cast<double>(proc_cpu) / 1e9, ncpus(),
                 mark_go_frac, mark_idle_frac, frac, mark_pooled_frac);
    return 0;
}
