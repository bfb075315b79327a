// collector.cpp — the GC cycle, pacing, assists, roots, statistics and the
// public control API (Go's mgc.go, mgcpacer.go, mstats.go; finalizers are in
// finalizer.cpp).
//
// One collector thread runs every cycle:
//   1. sweep termination: finish sweeping the previous cycle's spans; then,
//      by handshakes (world.cpp) — no stop of the world — wait out lazy
//      sweeps in flight, turn on the write barrier in every thread, and have
//      each thread turn on its black allocation and scan its own stack and
//      registers (with root ranges registered: one stop of the world for
//      all of it, gc/README.md);
//   2. concurrent mark: scan Root<T>s, the contents of finalizable objects and
//      the finalizer queue, then drain grey objects — the collector thread as
//      the background worker (25% of the CPUs, and idle CPUs unless
//      GOALLOC_GC_IDLE_MARK=0), and allocating threads through assists and,
//      while the worker marks on an idle CPU, their fractional share of
//      their time (Go's fractional workers, fractional_mark);
//   3. mark termination: when no grey objects are left, every thread shades
//      its write-barrier buffer (a handshake), then stop the world, shade
//      what the buffers took since; if that found nothing new, turn the
//      barrier off, return all thread caches to the mcentrals, (checkmark),
//      flip sweepgen, compute the next goal and trigger, start the world;
//      otherwise start the world and keep marking;
//   4. sweep: lazily by allocating threads (mcentral refills) and in the
//      background by the collector thread;
//   5. between cycles, once the sweep is done, the collector thread returns
//      free pages beyond the scavenger's goal (set at each mark termination,
//      pace_scavenger) to the OS, in bursts paced to 1% of the CPUs (Go's
//      background scavenger).
// Stacks are scanned only at (1): with the hybrid barrier (shade old and new)
// on everywhere before the first stack is scanned, and black allocation per
// thread once its stack is scanned, every object reachable at (1) or
// allocated after it is marked by (3) — Go's argument; gc/README.md has it.
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>

#include "gcinternal.h"
#include "options.h"
#include "sys.h"

namespace goalloc::gc {

static long futex_wait(std::atomic<std::uint32_t>* a, std::uint32_t v, long timeout_ns) {
    timespec ts{timeout_ns / 1000000000, timeout_ns % 1000000000};
    return syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(a), FUTEX_WAIT_PRIVATE, v,
                   timeout_ns >= 0 ? &ts : nullptr, nullptr, 0);
}
// A futex wait as a blocking call (world.cpp): stops do not signal the waiter.
struct WaitArgs {
    std::atomic<std::uint32_t>* a;
    std::uint32_t v;
    long timeout_ns;
};
static void wait_fn(void* p) {
    auto* w = static_cast<WaitArgs*>(p);
    futex_wait(w->a, w->v, w->timeout_ns);
}
void blocking_wait(std::atomic<std::uint32_t>* a, std::uint32_t v, long timeout_ns) {
    WaitArgs w{a, v, timeout_ns};
    blocking_call(wait_fn, &w);
}
void futex_wake(std::atomic<std::uint32_t>* a) {
    syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(a), FUTEX_WAKE_PRIVATE, 0x7fffffff, nullptr, nullptr, 0);
}

static std::uint64_t walltime_ns() {
    timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return std::uint64_t(ts.tv_sec) * 1000000000ull + std::uint64_t(ts.tv_nsec);
}

// ---- settings (run-time changeable) ----
static std::atomic<int> gc_percent{100};
static std::atomic<std::int64_t> mem_limit{INT64_MAX};
static std::uint64_t start_ns = 0;

int debug_poison() { return options().gcpoison; }
bool checkmark_enabled() { return options().gccheckmark != 0; }

// ---- collector thread wake-ups ----
static std::atomic<std::uint32_t> wake_seq{0};
static std::atomic<std::uint32_t> trigger_requested{0};
static std::atomic<std::uint32_t> forced_requests{0};
static std::atomic<std::uint32_t> swept_cycles{0};  // cycles whose sweep has finished (futex word)

// A cycle is asked for (forced, or the trigger crossed): what the collector
// thread's work between cycles (background sweep, collapse, scavenger)
// gives way to.
static bool cycle_requested() {
    return forced_requests.load(std::memory_order_relaxed) != 0 ||
           trigger_requested.load(std::memory_order_relaxed) != 0;
}

static void wake_collector() {
    wake_seq.fetch_add(1, std::memory_order_release);
    futex_wake(&wake_seq);
}

// ---- statistics of cycles ----
struct CycleStats {
    std::uint64_t pause_total_ns = 0, max_pause_ns = 0;
    std::uint64_t pause_ns[256] = {}, pause_end[256] = {};
    std::uint64_t last_gc = 0;
    std::uint32_t forced = 0;
    std::uint64_t gc_cpu_ns = 0;   // STW x ncpu + assists + background (not idle) marking
    // Concurrent mark phases, cumulative (MemStats' Mark*Ns): wall time, the
    // background worker's CPU within its 25% share, its CPU beyond (idle
    // CPUs), and assists in those cycles.
    std::uint64_t mark_wall_ns = 0, mark_bg_ns = 0, mark_idle_ns = 0, mark_assist_ns = 0;
    std::uint64_t mark_frac_ns = 0;  // allocating threads' fractional marking (in mark_bg_ns + mark_idle_ns)
};
static constinit Mutex stats_lock{kRankGcRoots};  // guards cstats (never held across a stop)
static CycleStats cstats;

// ---- pacer (Go 1.19's, simplified) ----
static constexpr double kGoalUtilization = 0.25;
// Go's cons/mark ratio: the mutator's allocation rate (bytes per CPU-ns it
// had) over the collector's scan rate (scan work per CPU-ns it had, idle
// marking included), the largest of the last five marks' (end_cycle_cons_mark).
// Guarded by pacer_lock; written at mark termination.
static double cons_mark = 0;
static std::uint64_t last_stack_bytes = 0, last_globals_bytes = 0;

static std::uint64_t heap_minimum(int pct) { return (std::uint64_t{4} << 20) * static_cast<std::uint64_t>(pct) / 100; }

// Go's trigger (mgcpacer.go, trigger()): the goal less the runway, kept
// between two bounds on the way from the marked heap to the goal.
// - Lower: min_pct of the way (Go's triggerLowerBound, 45/64 ~ 70%;
//   GOALLOC_GC_TRIGGER_MIN). A lower trigger lets a fast mutator allocate
//   more of the next cycle's marked heap black, so heap and RSS grow; above
//   it, assists pay instead (gc/README.md, "Pacing and assists").
// - Upper: 95% of the way (61/64 in Go), or, on a heap whose goal is large,
//   4 MiB under the goal if that is higher (Go's defaultHeapMinimum): 5% of
//   a 1 GiB span is 51 MiB of runway that a slow allocator does not need.
//   Never below the lower bound.
std::uint64_t pacer_trigger(std::uint64_t marked, std::uint64_t goal, std::uint64_t runway, int min_pct) {
    if (goal <= marked) return goal;
    constexpr std::uint64_t kDefaultHeapMinimum = std::uint64_t{4} << 20;
    const std::uint64_t span = goal - marked;
    const std::uint64_t lo = marked + span * static_cast<std::uint64_t>(min_pct) / 100;
    std::uint64_t hi = marked + span * 95 / 100;
    if (goal > kDefaultHeapMinimum && goal - kDefaultHeapMinimum > hi) hi = goal - kDefaultHeapMinimum;
    if (hi < lo) hi = lo;
    std::uint64_t trigger = runway < goal ? goal - runway : 0;
    if (trigger < lo) trigger = lo;
    if (trigger > hi) trigger = hi;
    return trigger;
}

static constinit Mutex pacer_lock{kRankGcWork};  // cons_mark, last_*_bytes, goal/trigger updates

static void compute_goal() {
    std::int64_t lim = mem_limit.load(std::memory_order_relaxed);
    const std::uint64_t heap_free = lim != INT64_MAX ? mheap.free_ready_bytes() : 0;  // (mheap.lock ranks below pacer_lock)
    LockGuard g(pacer_lock);
    int pct = gc_percent.load(std::memory_order_relaxed);
    std::uint64_t marked = gcs.heap_marked.load(std::memory_order_relaxed);
    std::uint64_t goal = UINT64_MAX;
    if (pct >= 0) {
        goal = marked + (marked + last_stack_bytes + last_globals_bytes) * static_cast<std::uint64_t>(pct) / 100;
        if (goal < heap_minimum(pct)) goal = heap_minimum(pct);
    }
    if (lim != INT64_MAX) {
        // Go 1.19's memoryLimitHeapGoal: the limit less what is mapped Ready
        // and can hold no collected object (malloc spans, metadata: Ready
        // memory less the collected spans and the free Ready pages, which the
        // heap will use before it grows, so a heap that shrank does not push
        // the goal down by what it left free), less how far Ready memory is
        // over the limit now (to get back under sooner).
        const std::uint64_t ulim = static_cast<std::uint64_t>(lim);
        const std::uint64_t ready = sys::stats.ready.load(std::memory_order_relaxed) +
                                    sys::stats.metadata.load(std::memory_order_relaxed);
        const std::uint64_t heap = gcs.inuse_bytes.load(std::memory_order_relaxed) + heap_free;
        std::uint64_t over = ready > heap ? ready - heap : 0;
        if (ready > ulim) over += ready - ulim;
        std::uint64_t lg = ulim > over ? ulim - over : 0;
        // Headroom for pacing errors (Go: 1 MiB; here 5%, as the scavenger's
        // target); never below what is live.
        lg = lg - lg / 20;
        std::uint64_t floor = marked + (std::uint64_t{1} << 20);
        if (lg < floor) lg = floor;
        if (lg < goal) goal = lg;
    }
    std::uint64_t trigger = UINT64_MAX;
    if (goal != UINT64_MAX) {
        // Go's runway: the scan work the last cycle did (its heap, stacks and
        // root ranges, as Go's lastHeapScan + lastStackScan + globalsScan:
        // gcs.scan_work counts all three), not the bytes it marked, which
        // count noscan objects and those allocated black, which nobody
        // scans. (Before a cycle has scanned: the marked heap and roots.)
        std::uint64_t scan = gcs.last_scan.load(std::memory_order_relaxed);
        if (scan == 0) scan = marked + last_stack_bytes + last_globals_bytes;
        double cm = cons_mark > 0 ? cons_mark : 0;
        double rw = cm * (1 - kGoalUtilization) / kGoalUtilization * static_cast<double>(scan);
        std::uint64_t runway = rw < 1e18 ? static_cast<std::uint64_t>(rw) : UINT64_MAX;
        trigger = pacer_trigger(marked, goal, runway, options().gctriggermin);
        if (marked == 0) trigger = goal * 7 / 8;
    }
    gcs.goal.store(goal, std::memory_order_relaxed);
    gcs.trigger.store(trigger, std::memory_order_relaxed);
}

// ---- the scavenger's goal (Go 1.19's gcPaceScavenger, mgcscavenge.go) ----
// How much heap memory to keep Ready; the collector thread releases free
// pages beyond it between cycles (collector_thread, scavenge_burst). Two
// goals, the lower wins:
// - GOGC's: the heap's pages in use at the last mark termination, scaled by
//   how the goal moved since the cycle before (heap goals are in object bytes,
//   RSS is in pages: the in-use figure carries the spans' fragmentation
//   along), plus 10% (Go's retainExtraPercent) for the allocator to take
//   without a fault;
// - the memory limit's: all mapped Ready memory (heap and metadata, Go's
//   mappedReady) under 95% of GOMEMLIMIT (Go's reduceExtraPercent).
// A goal the heap already meets (within a page) is none, as in Go.
// Written at mark termination (after the world restarts) and when GOGC or
// the limit changes; scav_* guarded by pacer_lock.
static std::uint64_t scav_last_inuse = 0, scav_last_goal = 0;

// A goal `keep` that Ready heap memory `retained` already meets, within a
// page, is none (UINT64_MAX), as in Go.
static std::uint64_t unmet_or_none(std::uint64_t keep, std::uint64_t retained) {
    return retained > keep && retained - keep >= kPageSize ? keep : UINT64_MAX;
}

static void pace_scavenger(bool at_mark_termination) {
    std::uint64_t goal = gcs.goal.load(std::memory_order_relaxed);
    std::uint64_t keep = UINT64_MAX;
    const std::uint64_t inuse = at_mark_termination ? mheap.inuse_bytes() : 0;  // (mheap.lock ranks below pacer_lock)
    {
        LockGuard g(pacer_lock);
        if (at_mark_termination) scav_last_inuse = inuse;
        if (goal != UINT64_MAX && scav_last_goal != 0 && scav_last_goal != UINT64_MAX && scav_last_inuse != 0) {
            double k = static_cast<double>(scav_last_inuse) * static_cast<double>(goal) /
                       static_cast<double>(scav_last_goal);
            k += k / 10;
            if (k < 1e18) keep = (static_cast<std::uint64_t>(k) + kPageSize - 1) & ~std::uint64_t{kPageSize - 1};
        }
        if (at_mark_termination) scav_last_goal = goal;
    }
    const std::uint64_t retained = MHeap::retained();
    std::int64_t lim = mem_limit.load(std::memory_order_relaxed);
    const bool on = options().gcscavenge;
    // The allocating threads' part (mheap.h, scavenge_owed): a growth beyond
    // GOGC's goal releases as much, and Ready memory beyond the limit itself
    // (not 95% of it) is released at the allocation that went over. As in
    // Go, a GOGC goal the heap meets now asks nothing of growths until the
    // next mark termination.
    mheap.scavenge_growth_goal.store(on ? unmet_or_none(keep, retained) : UINT64_MAX, std::memory_order_relaxed);
    mheap.scavenge_limit.store(on && lim != INT64_MAX ? static_cast<std::uint64_t>(lim) : UINT64_MAX,
                               std::memory_order_relaxed);
    if (lim != INT64_MAX) {
        std::uint64_t lgoal = static_cast<std::uint64_t>(static_cast<double>(lim) * 0.95);
        std::uint64_t meta = sys::stats.metadata.load(std::memory_order_relaxed);
        if (retained + meta > lgoal) {
            std::uint64_t heap_keep = lgoal > meta ? lgoal - meta : 0;
            if (heap_keep < keep) keep = heap_keep;
        }
    }
    mheap.scavenge_goal.store(unmet_or_none(keep, retained), std::memory_order_relaxed);
}

static bool scavenge_due() {
    if (!options().gcscavenge) return false;
    std::uint64_t keep = mheap.scavenge_goal.load(std::memory_order_relaxed);
    return keep != UINT64_MAX && MHeap::retained() > keep;
}

// A burst of the background scavenger (Go's scavengerState.run): 64 KiB at
// a time (a whole huge page with huge pages on), for up to 1 ms or until the
// goal is met or no free Ready page is left. Returns the time it took, for the
// caller to sleep in proportion (1% of the CPUs, Go's scavengePercent), and
// sets *more if it stopped with work left.
static std::uint64_t scavenge_burst(bool* more) {
    const std::uint64_t t0 = nanotime();
    std::uint64_t now = t0;
    *more = false;
    while (now - t0 < 1000000) {
        std::uint64_t keep = mheap.scavenge_goal.load(std::memory_order_relaxed), r = MHeap::retained();
        if (keep == UINT64_MAX || r <= keep) return now - t0;
        std::uint64_t want = r - keep < (64 << 10) ? r - keep : (64 << 10);
        if (mheap.scavenge_one(static_cast<std::size_t>(want)) == 0) {
            // Nothing free to release: the goal cannot be met until the heap
            // frees pages, which the next mark termination re-paces.
            mheap.scavenge_goal.store(UINT64_MAX, std::memory_order_relaxed);
            return nanotime() - t0;
        }
        now = nanotime();
        if (cycle_requested()) return now - t0;
    }
    *more = true;
    return now - t0;
}

static std::atomic<std::uint32_t> cycles_started{0};  // incremented in each cycle's first stop-the-world

void note_heap_live_add(std::uint64_t bytes) {
    std::uint64_t live = gcs.heap_live.fetch_add(bytes, std::memory_order_relaxed) + bytes;
    if (live < gcs.trigger.load(std::memory_order_relaxed) ||
        gcs.phase.load(std::memory_order_relaxed) != kPhaseOff)
        return;
    if (trigger_requested.load(std::memory_order_relaxed) == 0 &&
        trigger_requested.exchange(1, std::memory_order_acq_rel) == 0)
        wake_collector();
    // Past the goal and the cycle has not even started (the collector thread
    // is late: no CPU for it): wait for it to start rather than run away from
    // the goal. Go starts the cycle on the allocating goroutine itself.
    std::uint64_t goal = gcs.goal.load(std::memory_order_relaxed);
    if (goal == UINT64_MAX || live <= goal || tls_gc_thread == nullptr) return;
    std::uint32_t s = cycles_started.load(std::memory_order_acquire);
    while (gcs.phase.load(std::memory_order_acquire) == kPhaseOff &&
           cycles_started.load(std::memory_order_acquire) == s &&
           gcs.heap_live.load(std::memory_order_relaxed) > gcs.goal.load(std::memory_order_relaxed))
        blocking_wait(&cycles_started, s, 1000000);
}

// ---- assists (Go's gcAssistAlloc) ----
static double assist_ratio() {
    std::uint64_t goal = gcs.goal.load(std::memory_order_relaxed);
    std::uint64_t live = gcs.heap_live.load(std::memory_order_relaxed);
    if (goal == UINT64_MAX) goal = live + (std::uint64_t{64} << 20);
    // Scan work expected this cycle: what the last one did (Go 1.18's
    // heapScan + stacks + globals). Marked bytes would overstate it: they
    // include noscan objects and those allocated black, which nobody scans.
    // Once the cycle has done more than that, assume the worst — the whole
    // heap may need scanning — and pace against the hard goal (+10%), as Go.
    std::uint64_t last = gcs.last_scan.load(std::memory_order_relaxed);
    std::int64_t expected = static_cast<std::int64_t>(last != 0 ? last : gcs.heap_marked.load(std::memory_order_relaxed));
    std::int64_t work = gcs.scan_work.load(std::memory_order_relaxed);
    if (work > expected || live > goal) {
        expected = static_cast<std::int64_t>(live > gcs.heap_marked.load(std::memory_order_relaxed)
                                                 ? live : gcs.heap_marked.load(std::memory_order_relaxed));
        goal += goal / 10;
    }
    std::int64_t remaining = static_cast<std::int64_t>(live < goal ? goal - live : 64 << 10);
    std::int64_t left = expected - work;
    if (left < (64 << 10)) left = 64 << 10;
    return static_cast<double>(left) / static_cast<double>(remaining);
}

// A thread's fractional account belongs to one mark phase (gcs.mark_start):
// a new phase starts it afresh.
static void frac_account_sync(GcThread* t, std::uint64_t start) {
    if (t->frac_start == start) return;
    t->frac_start = start;
    t->frac_ns = 0;
    t->frac_assist_ns = 0;
}

void assist_alloc(GcThread* t, std::uint64_t bytes) {
    // Not while mark start's handshakes run: nothing may be blackened before
    // every thread has the barrier on.
    if (GA_UNLIKELY(gcs.blacken.load(std::memory_order_acquire) == 0)) return;
    // Debt and credit belong to one mark, as Go's gcResetMarkState zeroes
    // each goroutine's gcAssistBytes when a cycle starts. (Carried over, a
    // debt could keep a thread parked through mark after mark: one that woke
    // to find the next mark under way went on waiting for credit toward a
    // debt the new mark's pacing never counted.)
    const std::uint64_t mark = gcs.mark_start.load(std::memory_order_relaxed);
    if (t->assist_mark != mark) {
        t->assist_mark = mark;
        t->assist_credit = 0;
    }
    auto marking = [mark] {
        return gcs.phase.load(std::memory_order_acquire) == kPhaseMark &&
               gcs.mark_start.load(std::memory_order_relaxed) == mark;
    };
    t->assist_credit -= static_cast<std::int64_t>(static_cast<double>(bytes) * assist_ratio());
    if (t->assist_credit >= 0) return;
    // Steal background credit first.
    std::int64_t bg = gcs.bg_credit.load(std::memory_order_relaxed);
    while (bg > 0) {
        std::int64_t take = bg < -t->assist_credit ? bg : -t->assist_credit;
        if (gcs.bg_credit.compare_exchange_weak(bg, bg - take, std::memory_order_relaxed)) {
            t->assist_credit += take;
            break;
        }
    }
    if (t->assist_credit >= 0) return;
    // The time counted as assisting is the drains' (Go's gcAssistTime, taken
    // around gcDrainN): not the yields below, nor a wait past the hard goal,
    // in which the thread uses no CPU (Go parks the goroutine).
    std::uint64_t spent = 0;
    int idle = 0;
    gcs.nassist.fetch_add(1, std::memory_order_relaxed);
    while (t->assist_credit < 0 && marking()) {
        std::int64_t chunk = -t->assist_credit < (64 << 10) ? -t->assist_credit : (64 << 10);
        std::uint64_t d0 = nanotime();
        nosuspend_enter();
        std::int64_t done = drain(chunk);
        nosuspend_exit();
        spent += nanotime() - d0;
        t->assist_credit += done;
        if (done == 0) {
            // Nothing to scan right now (the worker holds it): do not spin.
            if (++idle > 2) break;
            sched_yield();
        }
    }
    gcs.nassist.fetch_sub(1, std::memory_order_release);
    if (t->assist_credit < 0) {
        // No credit to steal and no work to do: the background marker holds
        // it. Go's gcParkAssist: wait for the background credit to pay the
        // debt (or the mark to end) before allocating more. Forgiving the
        // debt instead let the program allocate on through the mark (so
        // more was allocated black) while one thread marked a deep
        // structure alone: binary_trees' marks all ran to the goal.
        // Until its own mark is over (Go's gcParkAssist returns when the
        // cycle ends): a wake-up that finds the next mark under way leaves.
        while (t->assist_credit < 0 && marking()) {
            const std::uint32_t seq = gcs.credit_seq.load(std::memory_order_acquire);
            gcs.assist_parked.fetch_add(1, std::memory_order_seq_cst);
            std::int64_t bg = gcs.bg_credit.load(std::memory_order_seq_cst);
            while (bg > 0 && t->assist_credit < 0) {
                std::int64_t take = bg < -t->assist_credit ? bg : -t->assist_credit;
                if (gcs.bg_credit.compare_exchange_weak(bg, bg - take, std::memory_order_relaxed)) {
                    t->assist_credit += take;
                    bg -= take;
                }
            }
            if (t->assist_credit < 0 && marking()) blocking_wait(&gcs.credit_seq, seq, 1000000);
            gcs.assist_parked.fetch_sub(1, std::memory_order_relaxed);
        }
        if (t->assist_credit < 0) t->assist_credit = 0;  // the mark is over: forgiven
    }
    gcs.assist_ns.fetch_add(spent, std::memory_order_relaxed);
    // Assists are this thread's marking too: they count against its
    // fractional share.
    frac_account_sync(t, mark);
    t->frac_assist_ns += spent;
}

void wake_parked_assists() {
    gcs.credit_seq.fetch_add(1, std::memory_order_release);
    futex_wake(&gcs.credit_seq);
}

// ---- fractional marking (Go's fractional mark workers) ----
// Go sizes background marking at 25% of GOMAXPROCS: whole Ps of dedicated
// workers, and where that rounds badly (off by more than 30%: 0.5 P on 2 Ps)
// fractional workers instead, which each P runs for a share of its time
// (mgcpacer.go, startCycle). On a P that runs the program, that share is
// taken from the program's goroutine; on an idle P the worker goes on as
// an idle worker, whose time Go counts as free. The collector here has one
// background thread. With every CPU busy it keeps to the whole 25% itself
// (the budget in run_cycle). While CPUs are idle it marks flat out on one of
// them (Go's idle worker), and each allocating thread, standing for the P
// its goroutine would run on, marks for the fractional share of its own
// time, at its span refills (Go's scheduler points). Without that the
// program ran at full speed through the mark while Go's runs at 75%, and
// ate its runway before the worker was done: gc_latency assisted at the
// end of most marks.

// CPUs are idle: fewer registered threads (- the finalizer thread) than CPUs.
static bool idle_cpus_now() { return options().gcidlemark && registered_threads() - 1 < ncpu(); }

static std::uint32_t fractional_ppm() {
    double total = kGoalUtilization * ncpu();
    double dedicated = std::floor(total + 0.5);
    if (total <= 0 || std::fabs(dedicated / total - 1) <= 0.3) return 0;
    if (dedicated > total) dedicated -= 1;
    return static_cast<std::uint32_t>((total - dedicated) / ncpu() * 1e6);
}

// Scan work of one chunk of fractional marking (a nosuspend region each;
// ~20 us on a large heap when work was counted as scan work + 16 bytes an
// object; with scan work alone, up to twice that for 16-byte objects).
static constexpr std::int64_t kFracChunk = 32 << 10;
// A thread marks in slices of at most this long, at refills while it is
// behind its share. Go's fractional worker runs on until it is 20% ahead;
// meanwhile the goroutine it displaced moves to another P. A thread cannot
// move: run to 20% ahead of a share of the time since the mark began, its
// slices grew with the mark (gc_latency: 2.5 ms slices at 10 ms into a mark,
// 50-70 ms hiccups a second in), so it catches up in short slices instead.
static constexpr std::uint64_t kFracSliceNs = 200000;
// At most this far behind: time it spent blocked (a heap growth faulted in,
// a wait) is forgiven, as Go's P would have run its fractional worker then
// instead of taking it from the program later.
static constexpr std::uint64_t kFracMaxBehindNs = 1000000;
// The margin a thread keeps below its share: its last chunk's time, at most.
static constexpr std::uint64_t kFracMaxChunkNs = 100000;

void fractional_mark(GcThread* t) {
    std::uint32_t ppm = gcs.frac_ppm.load(std::memory_order_relaxed);
    if (ppm == 0 || gcs.blacken.load(std::memory_order_acquire) == 0) return;
    std::uint64_t start = gcs.mark_start.load(std::memory_order_relaxed);
    frac_account_sync(t, start);
    std::uint64_t now = nanotime();
    if (now <= start) return;
    const double goal = static_cast<double>(ppm) * 1e-6;
    // The share covers all of this thread's marking, its assists with its
    // fractional chunks, as Go's 25% goal covers assists: Go's P runs its
    // fractional worker on top of them, so assists took it over 25%. It
    // keeps one chunk's time below the share (a chunk that starts on the
    // share's edge ends beyond it).
    auto behind = [&](std::uint64_t at) {
        return goal * static_cast<double>(at - start) -
               static_cast<double>(t->frac_ns + t->frac_assist_ns + t->frac_chunk_ns);
    };
    double b = behind(now);
    if (b <= 0) return;
    if (b > static_cast<double>(kFracMaxBehindNs)) t->frac_ns += static_cast<std::uint64_t>(b) - kFracMaxBehindNs;
    // Behind its share: mark until it is not, for one slice at most, or out
    // of work. Its work is background credit, which assists (this thread's
    // first) draw on. With nothing to drain, yield a little, as an assist
    // does: the worker hands over half of its buffer when it sees a drain
    // looking for work (Gcw::balance).
    const std::uint64_t slice_end = now + kFracSliceNs;
    // With the worker's check (run_cycle, `quiesce`): one of the two sees the
    // other (both sequentially consistent), so no fractional drain is under
    // way once the worker has seen no drains and gone on to stop the world.
    gcs.nassist.fetch_add(1, std::memory_order_seq_cst);
    if (gcs.frac_ppm.load(std::memory_order_seq_cst) == 0) {
        gcs.nassist.fetch_sub(1, std::memory_order_release);
        return;
    }
    int idle = 0;
    while (gcs.phase.load(std::memory_order_relaxed) == kPhaseMark) {
        nosuspend_enter();
        std::int64_t done = drain(kFracChunk, true);
        std::uint64_t t1 = nanotime();
        // Counted inside the region, so that a chunk belongs to the cycle
        // that ran it (termination stops the world and resets the count).
        gcs.frac_cycle_ns.fetch_add(t1 - now, std::memory_order_relaxed);
        nosuspend_exit();
        t->frac_ns += t1 - now;
        if (done == 0) {
            if (++idle > 2) break;
            sched_yield();
            now = nanotime();
            continue;
        }
        // The margin: this chunk's time, within reason (a chunk that
        // stalled on a fault says nothing of the next).
        t->frac_chunk_ns = t1 - now < kFracMaxChunkNs ? t1 - now : kFracMaxChunkNs;
        now = t1;
        if (now >= slice_end || behind(now) <= 0) break;
    }
    gcs.nassist.fetch_sub(1, std::memory_order_release);
}

// ---- roots: Root<T> nodes and root ranges ----
struct RootNodeRaw {
    RootNodeRaw* next;
    RootNodeRaw* prev;
    void* ptr;
};
static constinit Mutex roots_lock{kRankGcRoots};
static RootNodeRaw* roots_head = nullptr;  // roots_lock
struct RootRange {
    std::uintptr_t lo, hi;
};
// Root ranges have their own lock: the collector holds it through a mark
// start by handshakes (run_cycle), so that no range appears or disappears
// while stacks are scanned one at a time; only add_roots/remove_roots wait.
static constinit Mutex ranges_lock{kRankGcRoots};
static RootRange* ranges = nullptr;  // ranges_lock
static std::size_t nranges = 0, cap_ranges = 0;

namespace detail {
void root_register(void* node) {
    auto* n = static_cast<RootNodeRaw*>(node);
    LockGuard g(roots_lock);
    n->prev = nullptr;
    n->next = roots_head;
    if (roots_head) roots_head->prev = n;
    roots_head = n;
    if (gcs.phase.load(std::memory_order_relaxed) == kPhaseMark) {
        void* v = __atomic_load_n(&n->ptr, __ATOMIC_RELAXED);
        if (v) greyobject(reinterpret_cast<std::uintptr_t>(v));
    }
}
void root_unregister(void* node) {
    auto* n = static_cast<RootNodeRaw*>(node);
    LockGuard g(roots_lock);
    if (n->prev) n->prev->next = n->next; else roots_head = n->next;
    if (n->next) n->next->prev = n->prev;
    // Deletion barrier: the value leaves the root set.
    if (gcs.phase.load(std::memory_order_relaxed) == kPhaseMark) {
        void* v = __atomic_load_n(&n->ptr, __ATOMIC_RELAXED);
        if (v) greyobject(reinterpret_cast<std::uintptr_t>(v));
    }
}
}  // namespace detail

void add_roots(const void* start, std::size_t bytes) {
    LockGuard g(ranges_lock);
    if (nranges == cap_ranges) {
        std::size_t nc = cap_ranges ? cap_ranges * 2 : 16;
        auto* r = static_cast<RootRange*>(ga_realloc(ranges, nc * sizeof(RootRange)));
        if (r == nullptr) throw_fatal("gc: out of memory in add_roots");
        ranges = r;
        cap_ranges = nc;
    }
    auto lo = reinterpret_cast<std::uintptr_t>(start);
    ranges[nranges++] = RootRange{lo, lo + bytes};
}

void remove_roots(const void* start) {
    LockGuard g(ranges_lock);
    auto lo = reinterpret_cast<std::uintptr_t>(start);
    for (std::size_t i = 0; i < nranges; i++)
        if (ranges[i].lo == lo) {
            ranges[i] = ranges[--nranges];
            return;
        }
}

// World stopped: the root ranges (conservative).
static std::uint64_t scan_root_ranges() {
    LockGuard g(ranges_lock);
    std::uint64_t bytes = 0;
    for (std::size_t i = 0; i < nranges; i++) {
        scan_conservative_check(ranges[i].lo, ranges[i].hi);
        bytes += ranges[i].hi - ranges[i].lo;
    }
    return bytes;
}

static void scan_root_nodes() {
    LockGuard g(roots_lock);
    for (RootNodeRaw* n = roots_head; n != nullptr; n = n->next) {
        auto v = reinterpret_cast<std::uintptr_t>(__atomic_load_n(&n->ptr, __ATOMIC_RELAXED));
        if (v != 0) {
            if (checkmark_active()) scan_conservative_check(reinterpret_cast<std::uintptr_t>(&n->ptr),
                                                            reinterpret_cast<std::uintptr_t>(&n->ptr) + 8);
            else grey_batched(v);
        }
    }
    grey_flush();
}

void roots_scan() { scan_root_nodes(); }

// ---- roots at checkmark (the finalizers' part: finalizer.cpp) ----
void roots_scan_checkmark() {
    scan_root_ranges();
    scan_root_nodes();
    finalizers_scan_check();
}

// ---- the cycle ----
struct CycleTimes {
    std::uint64_t stop1_ns, stop2_ns, flush2_ns, body2_ns, start2_ns;  // gctrace=2 detail
    std::uint64_t caches2_ns;  // ...of body2_ns: emptying the threads' span caches
    std::uint32_t sig1, sig2;  // threads signalled by the stops
    const char* late2 = "-";   // how the last thread termination's stop waited for stopped (last_stop_late)
    std::uint32_t flush2_entries;  // barrier-buffer entries termination's stop found
    std::uint64_t body1_ns;
    bool hs1;                      // mark started by handshakes (no stop)
    std::uint64_t hs1_hold_ns;     // ...the longest a thread was held by its own
    std::uint64_t preflush_ns, preflush_hold_ns;  // termination's barrier-buffer handshakes
    int attempts;
    std::uint64_t start, stw1, stw1_end, mark_end, stw2_end;
    std::uint64_t stw1_ns, stw2_ns;
    std::uint64_t heap0, heap1, marked, goal;
    std::uint64_t bg_cpu_ns, idle_cpu_ns, assist_ns, mark_wall_ns;
    std::uint64_t frac_ns;  // allocating threads' fractional marking (in bg_cpu_ns + idle_cpu_ns)
    bool forced;
    // The pacer's view of the mark (GODEBUG=gcpacertrace=1): the heap when
    // marking began, the scan work expected (the last cycle's) and done
    // (stacks and root ranges apart), the utilization (background + assists)
    // and the cons/mark estimate the mark began with.
    std::uint64_t triggered, scan_expected, scan_stacks, scan_globals;
    std::int64_t scan_work;
    double utilization, old_cons_mark;
};

// The last four marks' cons/mark ratios (Go 1.21's lastConsMark), oldest
// first. Guarded by pacer_lock.
static double last_cons_mark[4];

// Go's endCycle: the cons/mark ratio this mark would have needed to end at
// its goal with the collector at its 25% — allocation per mutator CPU-ns over
// scan work per collector CPU-ns, idle marking counted on the collector's
// side (the mutator could have had that CPU, and did not want it):
//   (heap_live − triggered) · (u + u_idle) / (scan work · (1 − u)),
// u = 25% + assists' share of the CPUs over the mark, u_idle idle marking's
// share. The estimate for the next cycle is the largest of this mark's and
// the four before (Go 1.21 on: "to bias a noisy cons/mark measurement toward
// fewer assists at the expense of additional GC cycles (starting earlier)").
// Go 1.19 smoothed it through a PI controller instead (kp 0.9, ti 4), whose
// output, fed back as its own input, alternates from cycle to cycle: here it
// swung between +0.25 and −0.05 in gc_latency, each low estimate putting the
// next trigger at the 95% bound and the mark into assists (bench/results/
// ab.md, "consMark: ... PI controller"). (World stopped.)
static void end_cycle_cons_mark(CycleTimes& c) {
    LockGuard g(pacer_lock);
    c.old_cons_mark = cons_mark;
    double cap = static_cast<double>(c.mark_wall_ns) * ncpu();
    double u = kGoalUtilization, idle = 0;
    if (cap > 0) {
        u += static_cast<double>(c.assist_ns) / cap;
        idle = static_cast<double>(c.idle_cpu_ns) / cap;
    }
    c.utilization = u;
    if (c.heap1 <= c.triggered || c.scan_work <= 0) return;  // nothing to learn (Go: likewise)
    if (u > 0.95) u = 0.95;  // assists took (nearly) every CPU: keep 1 − u positive
    double current = static_cast<double>(c.heap1 - c.triggered) * (u + idle) /
                     (static_cast<double>(c.scan_work) * (1 - u));
    double est = current;
    for (double x : last_cons_mark) est = x > est ? x : est;
    for (int i = 0; i < 3; i++) last_cons_mark[i] = last_cons_mark[i + 1];
    last_cons_mark[3] = current;
    cons_mark = est;
}

static void release_cache_cb(GcThread* t, void*) { release_thread_cache(t); }
static void snapshot_cb(GcThread* t, void*) { snapshot_for_mark(t); }
// n (if not null): adds the entries shaded (gctrace=2's count).
static void flush_wbuf_cb(GcThread* t, void* n) {
    if (n != nullptr) *static_cast<std::uint32_t*>(n) += t->wbn;
    flush_wbuf(t);
}
static void end_black_cb(GcThread* t, void*) { t->blacken = 0; }

static std::uint64_t cycle_max_pause = 0;  // collector thread: longest pause of the running cycle

static std::uint64_t cycle_pause_sum = 0, cycle_pause_end = 0;  // collector thread: the running cycle

static void record_pause(std::uint64_t ns, std::uint64_t end_wall) {
    if (ns > cycle_max_pause) cycle_max_pause = ns;
    cycle_pause_sum += ns;
    cycle_pause_end = end_wall;
    LockGuard g(stats_lock);
    cstats.pause_total_ns += ns;
    if (ns > cstats.max_pause_ns) cstats.max_pause_ns = ns;
    cstats.gc_cpu_ns += ns * static_cast<std::uint64_t>(ncpu());
}

// At the end of cycle n+1 (NumGC n -> n+1), as Go: PauseNs[(NumGC+255)%256]
// is the latest completed cycle (the sum of its pauses), and the ring always
// holds the last 256 completed cycles. Caller: stats_lock.
static void publish_cycle_pause(std::uint32_t n) {
    cstats.pause_ns[n % 256] = cycle_pause_sum;
    cstats.pause_end[n % 256] = cycle_pause_end;
    cycle_pause_sum = cycle_pause_end = 0;
}

static void fmt_ms(char* buf, std::size_t n, std::uint64_t ns) {
    // Go's fmtNSAsMS: integer ms from 10 ms on, else up to 3 significant digits.
    if (ns >= 10000000) {
        std::snprintf(buf, n, "%llu", static_cast<unsigned long long>(ns / 1000000));
        return;
    }
    std::uint64_t x = ns / 1000;
    if (x == 0) {
        std::snprintf(buf, n, "0");
        return;
    }
    int dec = 3;
    while (x >= 100) {
        x /= 10;
        dec--;
    }
    std::uint64_t p = 1;
    for (int i = 0; i < dec; i++) p *= 10;
    if (dec == 0) std::snprintf(buf, n, "%llu", static_cast<unsigned long long>(x));
    else std::snprintf(buf, n, "%llu.%0*llu", static_cast<unsigned long long>(x / p), dec,
                       static_cast<unsigned long long>(x % p));
}

static void write_stderr_line(const char* line) {
    Msg m;
    m.s(line);
    m.write_stderr();
}

// A float as Go's print writes one: sign, one digit, six decimals and a
// three-digit exponent (+1.234560e-001).
static void fmt_go_float(char* buf, std::size_t n, double v) {
    if (!std::isfinite(v)) {
        std::snprintf(buf, n, "%s", std::isnan(v) ? "NaN" : v > 0 ? "+Inf" : "-Inf");
        return;
    }
    int e = 0;
    double m = v < 0 ? -v : v;
    if (m != 0) {
        e = static_cast<int>(std::floor(std::log10(m)));
        m /= std::pow(10.0, e);
        if (m >= 9.9999995) {  // rounds up to 10.000000
            m /= 10;
            e++;
        }
    }
    std::snprintf(buf, n, "%c%.6fe%c%03d", v < 0 ? '-' : '+', m, e < 0 ? '-' : '+', e < 0 ? -e : e);
}

// GODEBUG=gcpacertrace=1: Go's pacer line (mgcpacer.go, endCycle), printed
// before the cycle's gctrace line as Go prints it.
static void print_pacertrace(const CycleTimes& c) {
    char cm[32], line[320];
    fmt_go_float(cm, sizeof cm, c.old_cons_mark);
    std::uint64_t roots = c.scan_stacks + c.scan_globals;
    std::uint64_t work = c.scan_work > 0 ? static_cast<std::uint64_t>(c.scan_work) : 0;
    std::snprintf(line, sizeof line,
                  "pacer: %d%% CPU (%d exp.) for %llu+%llu+%llu B work (%llu B exp.) in %llu B -> %llu B "
                  "(\u2206goal %lld, cons/mark %s)\n",
                  static_cast<int>(c.utilization * 100), static_cast<int>(kGoalUtilization * 100),
                  static_cast<unsigned long long>(work > roots ? work - roots : 0),
                  static_cast<unsigned long long>(c.scan_stacks), static_cast<unsigned long long>(c.scan_globals),
                  static_cast<unsigned long long>(c.scan_expected), static_cast<unsigned long long>(c.triggered),
                  static_cast<unsigned long long>(c.heap1),
                  static_cast<long long>(c.heap1) - static_cast<long long>(c.goal), cm);
    write_stderr_line(line);
}

static void print_gctrace(std::uint32_t num, const CycleTimes& c) {
    char a[5][24], b[5][24], line[400];
    fmt_ms(a[0], 24, c.stw1_ns);
    fmt_ms(a[1], 24, c.mark_end - c.stw1_end);
    fmt_ms(a[2], 24, c.stw2_ns);
    fmt_ms(b[0], 24, c.stw1_ns * ncpu());
    fmt_ms(b[1], 24, c.assist_ns);
    fmt_ms(b[2], 24, c.bg_cpu_ns);
    fmt_ms(b[3], 24, c.idle_cpu_ns);
    fmt_ms(b[4], 24, c.stw2_ns * ncpu());
    std::uint64_t now = nanotime();
    double since = static_cast<double>(c.start - start_ns) / 1e9;
    std::uint64_t gccpu, total = (now - start_ns) * static_cast<std::uint64_t>(ncpu());
    {
        LockGuard g(stats_lock);
        gccpu = cstats.gc_cpu_ns;
    }
    int pct = total ? static_cast<int>(gccpu * 100 / total) : 0;
    std::snprintf(line, sizeof line,
                  "gc %u @%.3fs %d%%: %s+%s+%s ms clock, %s+%s/%s/%s+%s ms cpu, %llu->%llu->%llu MB, "
                  "%llu MB goal, %llu MB stacks, %llu MB globals, %d P%s\n",
                  num, since, pct, a[0], a[1], a[2], b[0], b[1], b[2], b[3], b[4],
                  static_cast<unsigned long long>(c.heap0 >> 20), static_cast<unsigned long long>(c.heap1 >> 20),
                  static_cast<unsigned long long>(c.marked >> 20), static_cast<unsigned long long>(c.goal >> 20),
                  static_cast<unsigned long long>(last_stack_bytes >> 20),
                  static_cast<unsigned long long>(last_globals_bytes >> 20), ncpu(), c.forced ? " (forced)" : "");
    write_stderr_line(line);
    if (options().gctrace >= 2 && c.hs1) {
        // Mark start by handshakes: how long until every thread was reached
        // (nobody waits for that), and the longest one thread was held.
        std::snprintf(line, sizeof line,
                      "gc %u handshakes: mark start %llu us to reach every thread (%u signalled), longest thread "
                      "hold %llu us; barrier-buffer flushes %llu us, longest hold %llu us\n",
                      num, static_cast<unsigned long long>((c.stw1_end - c.stw1) / 1000), c.sig1,
                      static_cast<unsigned long long>(c.hs1_hold_ns / 1000),
                      static_cast<unsigned long long>(c.preflush_ns / 1000),
                      static_cast<unsigned long long>(c.preflush_hold_ns / 1000));
        write_stderr_line(line);
    }
    if (options().gctrace >= 2) {
        std::snprintf(line, sizeof line,
                      "gc %u stw detail: longest pause %llu us; pause1 %llu us: stop1 %llu us (%u signalled), body1 %llu us; "
                      "termination attempts %d, "
                      "stop2 %llu us (%u signalled, last %s), flush %llu us (%u entries), body %llu us (caches %llu us), restart %llu us\n",
                      num, static_cast<unsigned long long>(cycle_max_pause / 1000),
                      static_cast<unsigned long long>(c.stw1_ns / 1000),
                      static_cast<unsigned long long>(c.stop1_ns / 1000), c.sig1,
                      static_cast<unsigned long long>(c.body1_ns / 1000), c.attempts,
                      static_cast<unsigned long long>(c.stop2_ns / 1000), c.sig2, c.late2,
                      static_cast<unsigned long long>(c.flush2_ns / 1000), c.flush2_entries,
                      static_cast<unsigned long long>(c.body2_ns / 1000),
                      static_cast<unsigned long long>(c.caches2_ns / 1000),
                      static_cast<unsigned long long>(c.start2_ns / 1000));
        write_stderr_line(line);
    }
}

static std::uint64_t stack_bytes_cb_total;
static void stack_bytes_cb(GcThread* t, void*) {
    std::uintptr_t sp = t->saved_sp.load(std::memory_order_relaxed);
    if (sp >= t->stack_lo && sp <= t->stack_hi) stack_bytes_cb_total += t->stack_hi - sp;
}

// Handshake of mark start (run by each thread on itself): from now on it
// allocates black, and its stack is scanned.
static std::atomic<std::uint64_t> hs_stack_bytes{0};
static void mark_start_thread(GcThread* t) {
    snapshot_for_mark(t);
    hs_stack_bytes.fetch_add(scan_one_stack(t), std::memory_order_relaxed);
}

static void run_cycle(bool forced) {
    CycleTimes c{};
    c.forced = forced;
    c.start = nanotime();
    // GODEBUG=gcstoptheworld=1 (Go's): the whole mark with the world stopped
    // (one pause, from here to the end of mark termination).
    const bool stw_mark = options().gcstoptheworld != 0;
    // 1. Sweep termination.
    finish_sweep();
    c.stw1 = nanotime();
    // Mark starts by handshakes, without stopping the world, unless root
    // ranges are registered: they take stores without a barrier from every
    // thread (a stack that all threads share), so they must be scanned in
    // the same instant as every stack — a stop of the world (gc/README.md).
    // ranges_lock is held until the stacks are scanned: no range appears
    // meanwhile.
    c.hs1 = false;
    if (!stw_mark) {
        handshake_begin();
        ranges_lock.lock();
        c.hs1 = nranges == 0;
        if (!c.hs1) {
            ranges_lock.unlock();
            handshake_end();
        }
    }
    if (c.hs1) {
        // Every sweep in flight (a lazy sweep inside a thread's nosuspend
        // region) has finished: from here no span is being swept, and none
        // is left to sweep, so mark bits may be set.
        handshake(nullptr);
    } else {
        stop_the_world();
        c.sig1 = last_stop_signalled();
    }
    c.stop1_ns = nanotime() - c.stw1;
    GA_ASSERT(sweep_done());
    cycles_started.fetch_add(1, std::memory_order_acq_rel);
    c.heap0 = gcs.heap_live.load(std::memory_order_relaxed);
    c.goal = gcs.goal.load(std::memory_order_relaxed);
    gcs.bytes_marked.store(0, std::memory_order_relaxed);
    gcs.scan_work.store(0, std::memory_order_relaxed);
    gcs.bg_credit.store(0, std::memory_order_relaxed);
    // Fractional marking from the first allocation that may blacken (its
    // clock starts here, before the worker's first drain): until the
    // worker's first credit, an allocating thread would otherwise assist.
    const std::uint32_t frac_ppm = options().gcfractional && !stw_mark ? fractional_ppm() : 0;
    // The mark phase's clock (its CPU accounting and the fractional shares)
    // starts here, with the mark start's handshakes and root scan.
    const std::uint64_t mark_start = nanotime(), cpu0 = thread_cpu_ns();
    gcs.mark_start.store(mark_start, std::memory_order_relaxed);
    gcs.frac_ppm.store(idle_cpus_now() ? frac_ppm : 0, std::memory_order_relaxed);
    gcs.phase.store(kPhaseMark, std::memory_order_relaxed);
    __atomic_store_n(&detail::write_barrier_enabled, 1, __ATOMIC_SEQ_CST);
    std::uint64_t globals;
    if (c.hs1) {
        // Go's hybrid barrier lets stacks be scanned one at a time, provided
        // the barrier (both halves) is on in every thread before the first
        // stack is scanned, and a thread allocates black only once its own
        // stack has been scanned (its stores initialising a new object have
        // no barrier): two handshakes.
        handshake(nullptr);
        hs_stack_bytes.store(0, std::memory_order_relaxed);
        c.hs1_hold_ns = handshake(mark_start_thread);
        c.sig1 = last_handshake_signalled();
        stack_bytes_cb_total = hs_stack_bytes.load(std::memory_order_relaxed);
        gcs.blacken.store(1, std::memory_order_release);
        globals = 0;  // no root ranges
        ranges_lock.unlock();
        handshake_end();
        c.stw1_end = nanotime();
        c.body1_ns = c.stw1_end - c.stw1 - c.stop1_ns;
        futex_wake(&cycles_started);  // allocators waiting for the cycle to start
        // No thread was stopped for longer than its own handshake.
        c.stw1_ns = c.hs1_hold_ns;
        record_pause(c.stw1_ns, walltime_ns());
    } else {
        gcs.blacken.store(1, std::memory_order_relaxed);
        stack_bytes_cb_total = 0;
        for_each_thread(stack_bytes_cb, nullptr);
        for_each_thread(snapshot_cb, nullptr);
        scan_stacks();
        globals = scan_root_ranges();
        c.body1_ns = nanotime() - c.stw1 - c.stop1_ns;
        c.stw1_end = 0;
        if (!stw_mark) {
            // The pause ends when the world may run again (start_the_world's
            // time), not when this thread is done waking sleepers: a woken
            // thread may take this thread's CPU for a while.
            c.stw1_end = start_the_world();
            futex_wake(&cycles_started);  // allocators waiting for the cycle to start
        }
        if (c.stw1_end == 0) c.stw1_end = nanotime();
        c.stw1_ns = c.stw1_end - c.stw1;
        if (!stw_mark) record_pause(c.stw1_ns, walltime_ns());
    }

    // 2. Concurrent mark.
    std::uint64_t assist0 = gcs.assist_ns.load(std::memory_order_relaxed);
    std::uint64_t heap_at_mark = gcs.heap_live.load(std::memory_order_relaxed);
    c.scan_expected = gcs.last_scan.load(std::memory_order_relaxed);
    roots_scan();
    finalizers_scan();
    double target = kGoalUtilization * ncpu();  // CPUs' worth of background marking
    // Go's per-P accounting applies while every registered thread had an idle
    // CPU beside it and marked its fractional share: fewest such threads.
    bool per_p = frac_ppm != 0;
    int mutators_min = registered_threads() - 1;
    int attempts = 0;
    // No grey objects left: the mark may be about to end. New fractional
    // drains are held off until marking goes on, so that termination's stop
    // never waits for one (a drain is a nosuspend region, and one stalled —
    // a page fault, a vCPU taken by the host — made a 2.2 ms pause in a
    // gc_latency run, bench/results/NOTES.md).
    bool quiesce = false;
    for (;;) {
        // Idle CPUs (fewer registered threads than CPUs; - the finalizer
        // thread): this thread marks flat out, allocating threads their
        // fractional share (fractional_mark).
        bool idle_cpus = idle_cpus_now();
        if (!quiesce) gcs.frac_ppm.store(idle_cpus ? frac_ppm : 0, std::memory_order_relaxed);
        if (!idle_cpus) per_p = false;
        if (int m = registered_threads() - 1; m < mutators_min) mutators_min = m;
        std::int64_t done = drain(stw_mark ? -1 : 256 << 10, true);
        quiesce = done == 0 && !work_available();
        if (quiesce) gcs.frac_ppm.store(0, std::memory_order_seq_cst);
        if (quiesce && gcs.nassist.load(std::memory_order_seq_cst) != 0) {
            // Assists hold the last grey objects in their local buffers:
            // stopping now would only make them hand the work back (and the
            // termination attempt fail). Let them finish.
            sched_yield();
            continue;
        }
        if (done == 0 && !work_available() && !stw_mark) {
            // Go's gcMarkDone: first every thread shades its own barrier
            // buffer (a handshake), so that the stop below finds them nearly
            // empty; if that made grey objects, mark them and come back.
            std::uint64_t f0 = nanotime();
            handshake_begin();
            std::uint64_t hold = handshake(flush_wbuf);
            handshake_end();
            c.preflush_ns += nanotime() - f0;
            // (Not a pause: a thread shading its own full buffer is the
            // barrier's ordinary work; gctrace=2 shows the longest.)
            if (hold > c.preflush_hold_ns) c.preflush_hold_ns = hold;
            if (work_available()) continue;
        }
        if (done == 0 && !work_available()) {
            // 3. Mark termination, if the barrier buffers hold nothing new.
            if (mheap.collapsing_page()) terminations_in_collapse.fetch_add(1, std::memory_order_relaxed);
            std::uint64_t t2 = nanotime();
            if (!stw_mark) stop_the_world();
            std::uint64_t t2s = nanotime();
            c.flush2_entries = 0;
            for_each_thread(flush_wbuf_cb, &c.flush2_entries);
            c.stop2_ns = t2s - t2;
            c.sig2 = stw_mark ? 0 : last_stop_signalled();
            if (!stw_mark && options().gctrace >= 2) c.late2 = last_stop_late();
            c.flush2_ns = nanotime() - t2s;
            c.attempts = attempts + 1;
            if (work_available()) {
                // Found work (an assist's last chunk, barrier buffers): mark it
                // concurrently and try again. Every attempt marks new objects,
                // so this ends; only after many attempts finish it stopped.
                if (++attempts >= 64 || stw_mark) {
                    drain(-1);
                } else {
                    std::uint64_t t2e = nanotime();
                    start_the_world();
                    record_pause(t2e - t2, walltime_ns());
                    continue;
                }
            }
            c.mark_end = t2;
            gcs.frac_ppm.store(0, std::memory_order_relaxed);
            gcs.phase.store(kPhaseOff, std::memory_order_relaxed);
            gcs.blacken.store(0, std::memory_order_relaxed);
            std::uint64_t tc = nanotime();
            for_each_thread(end_black_cb, nullptr);
            __atomic_store_n(&detail::write_barrier_enabled, 0, __ATOMIC_RELAXED);
            for_each_thread(release_cache_cb, nullptr);
            c.caches2_ns = nanotime() - tc;
            if (checkmark_enabled()) checkmark_run();
            c.heap1 = gcs.heap_live.load(std::memory_order_relaxed);
            std::uint64_t marked = static_cast<std::uint64_t>(gcs.bytes_marked.load(std::memory_order_relaxed));
            c.marked = marked;
            gcs.heap_marked.store(marked, std::memory_order_relaxed);
            gcs.last_scan.store(static_cast<std::uint64_t>(gcs.scan_work.load(std::memory_order_relaxed)),
                                std::memory_order_relaxed);
            gcs.heap_live.store(marked, std::memory_order_relaxed);
            gcs.unswept.store(gcs.nspans.load(std::memory_order_relaxed), std::memory_order_relaxed);
            gcs.sweepgen.fetch_add(2, std::memory_order_release);
            {
                LockGuard g(pacer_lock);
                last_stack_bytes = stack_bytes_cb_total;
                last_globals_bytes = globals;
            }
            // CPU accounting (before NumGC moves, so that a reader that sees
            // the cycle sees its figures), as Go's (mgc.go,
            // gcMarkTermination): dedicated and fractional workers' time is
            // background, idle workers' time is free, assists count apart
            // (all done: the world is stopped).
            // - While CPUs were idle and threads marked their fractional
            //   share, per P: each allocating thread is a P running its
            //   fractional worker (all its time counts); the worker stands
            //   for the idle Ps, each of which would run its fractional
            //   worker for its share and the idle worker the rest of the
            //   time.
            // - Otherwise (the worker kept to the whole share itself, or
            //   fractional marking is off) pooled: the worker, with any
            //   fractional marking, up to the whole share (25% of the CPUs),
            //   the rest idle-CPU marking.
            {
                c.frac_ns = gcs.frac_cycle_ns.exchange(0, std::memory_order_relaxed);
                std::uint64_t worker = thread_cpu_ns() - cpu0, cpu = worker + c.frac_ns, el = c.mark_end - mark_start;
                if (per_p) {
                    double idle_ps = ncpu() - (mutators_min > 0 ? mutators_min : 0);
                    auto wshare = static_cast<std::uint64_t>(static_cast<double>(frac_ppm) * 1e-6 * idle_ps *
                                                             static_cast<double>(el));
                    c.bg_cpu_ns = (worker < wshare ? worker : wshare) + c.frac_ns;
                } else {
                    std::uint64_t share = static_cast<std::uint64_t>(target * static_cast<double>(el));
                    c.bg_cpu_ns = cpu < share ? cpu : share;
                }
                c.idle_cpu_ns = cpu - c.bg_cpu_ns;
                c.assist_ns = gcs.assist_ns.load(std::memory_order_relaxed) - assist0;
                c.mark_wall_ns = el;
            }
            // Pacer: the cons/mark estimate from this mark (its CPU figures
            // above), then the next goal and trigger.
            c.triggered = heap_at_mark;
            c.scan_work = gcs.scan_work.load(std::memory_order_relaxed);
            c.scan_stacks = stack_bytes_cb_total;
            c.scan_globals = globals;
            end_cycle_cons_mark(c);
            compute_goal();
            sweep_pace();
            trigger_requested.store(0, std::memory_order_relaxed);
            std::uint32_t n = gcs.cycles.load(std::memory_order_relaxed);
            std::uint64_t t3 = nanotime();
            c.stw2_ns = t3 - t2;
            // (Stop-the-world mark: one pause from the first stop.)
            record_pause(stw_mark ? t3 - c.stw1 : c.stw2_ns, walltime_ns());
            {
                LockGuard g(stats_lock);
                publish_cycle_pause(n);
                cstats.last_gc = walltime_ns();
                if (forced) cstats.forced++;
                cstats.gc_cpu_ns += c.bg_cpu_ns + c.assist_ns;
                cstats.mark_wall_ns += c.mark_wall_ns;
                cstats.mark_bg_ns += c.bg_cpu_ns;
                cstats.mark_idle_ns += c.idle_cpu_ns;
                cstats.mark_assist_ns += c.assist_ns;
                cstats.mark_frac_ns += c.frac_ns;
                gcs.cycles.store(n + 1, std::memory_order_release);  // with the ring (read_mem_stats)
            }
            c.body2_ns = nanotime() - t2s - c.flush2_ns;
            start_the_world();
            wake_parked_assists();  // assists waiting for credit: the mark is over
            pace_scavenger(true);
            if (stw_mark) futex_wake(&cycles_started);
            c.stw2_end = nanotime();
            c.start2_ns = c.stw2_end - t3;
            break;
        }
        // Throttle the background worker to its share (25% of the CPUs),
        // unless it may use idle CPUs (GOALLOC_GC_IDLE_MARK=1) and some are.
        if (done != 0 && target < 1.0 && !idle_cpus && !stw_mark) {
            // The share counts assists too (their drains' wall time: an upper bound of their CPU time).
            std::uint64_t used = thread_cpu_ns() - cpu0 + (gcs.assist_ns.load(std::memory_order_relaxed) - assist0),
                          el = nanotime() - mark_start;
            double allowed = target * static_cast<double>(el);
            if (static_cast<double>(used) > allowed) {
                std::uint64_t sl = static_cast<std::uint64_t>(static_cast<double>(used) / target) - el;
                if (sl > 2000000) sl = 2000000;
                timespec ts{0, static_cast<long>(sl)};
                nanosleep(&ts, nullptr);
            }
        }
    }
    if (options().gcpacertrace) print_pacertrace(c);
    if (options().gctrace) print_gctrace(gcs.cycles.load(std::memory_order_relaxed), c);
    cycle_max_pause = 0;
}

std::atomic<std::uint64_t> terminations_in_collapse{0};

static void* collector_thread(void*) {
    for (;;) {
        (void)mheap.take_collapse_request();  // (the steps are below)
        std::uint32_t seq = wake_seq.load(std::memory_order_acquire);
        std::uint32_t forced = forced_requests.load(std::memory_order_acquire);
        bool trig = trigger_requested.load(std::memory_order_acquire) != 0 &&
                    gcs.heap_live.load(std::memory_order_relaxed) >= gcs.trigger.load(std::memory_order_relaxed);
        if (forced != 0 || trig) {
            if (forced != 0) forced_requests.fetch_sub(forced, std::memory_order_acq_rel);
            run_cycle(forced != 0);
            if (forced != 0) finish_sweep();
        } else if (trigger_requested.load(std::memory_order_relaxed) != 0) {
            trigger_requested.store(0, std::memory_order_relaxed);  // stale (settings changed)
        }
        // Background sweep, a little at a time, between requests.
        while (options().gcbgsweep && !sweep_done()) {
            if (cycle_requested()) break;
            sweep_some(16);
        }
        if (sweep_done()) {
            swept_cycles.store(gcs.cycles.load(std::memory_order_acquire), std::memory_order_release);
            futex_wake(&swept_cycles);
        }
        // After the huge-page switch: collapse what the heap mapped before
        // it into huge pages (MHeap::collapse_step), a page at a time,
        // between cycles, when nothing else waits for this thread. A page in
        // collapse holds its 4 KiB pages and the address space's lock for
        // 0.7-3.9 ms: a thread that touches them, faults or maps memory
        // waits. Here no mark runs meanwhile, so no stop of the world waits
        // for such a thread; a cycle that falls due waits for the page (the
        // allocating threads go on to the goal meanwhile). The collapse had
        // a thread of its own, which waited for marks to end before each
        // page; at SCHED_IDLE (at normal priority it took the CPU of a
        // mutator a stop of the world waited for) it got no CPU while the
        // program's threads and the collector's kept both busy, in the
        // middle of a page as well, and every termination of a busy run
        // overlapped a page (GcCollapse.MarkTerminationNeverOverlapsACollapse,
        // with another program spinning beside it: 22 of 22).
        if (mheap.collapsing() && sweep_done() && !cycle_requested()) {
            (void)mheap.collapse_step();
            continue;
        }
        // The background scavenger, when the heap keeps more than its goal,
        // with nothing else to do: bursts of up to 1 ms, each followed by a
        // sleep 1/(1% of the CPUs) - 1 times as long (Go's scavengePercent),
        // which a cycle's trigger cuts short.
        // What an allocation left owed (mheap.h: one made in a nosuspend
        // region could not pay at once).
        if (mheap.scavenge_owed.load(std::memory_order_relaxed) != 0) (void)mheap.pay_scavenge_owed();
        if (sweep_done() && scavenge_due() && !cycle_requested()) {
            bool more = false;
            std::uint64_t worked = scavenge_burst(&more);
            if (more && !cycle_requested()) {
                double ratio = 100.0 / ncpu() - 1;
                futex_wait(&wake_seq, seq, static_cast<long>(static_cast<double>(worked) * (ratio > 0 ? ratio : 0)));
            }
            continue;
        }
        if (forced_requests.load(std::memory_order_relaxed) == 0 && trigger_requested.load() == 0)
            futex_wait(&wake_seq, seq, 100000000);
    }
    return nullptr;
}

// ---- prefaulting the heap's growth (GOALLOC_GC_PREFAULT=1) ----
// Every page the heap maps as it grows is otherwise faulted in by the first
// thread to touch it, one fault per 4 KiB page. Under virtualisation a fault
// costs microseconds to tens of microseconds: gc_latency's mutator spent 15%
// of its time in page faults while building its heap. With the option, the
// mheap reports each newly mapped range (heap_grow_hook, under its lock: a
// ring slot and a wake-up) and this thread, which is not registered (never
// stopped, never touches objects), faults the range in with madvise
// (sys::populate), ahead of the allocating threads. A full ring drops ranges:
// they are then faulted on touch as before. (Like the JVM's AlwaysPreTouch,
// it is off by default: it raises allocation throughput on fresh memory, but
// populating holds the address-space lock, and a thread growing the heap —
// unstoppable, under mheap.lock — waits behind it, which made some stops of
// the world take milliseconds on this machine.)
static constexpr std::uint32_t kGrowRing = 64;
static std::uintptr_t grow_base[kGrowRing];      // [head % kGrowRing] written under mheap.lock
static std::size_t grow_bytes[kGrowRing];
static std::atomic<std::uint32_t> grow_head{0};  // mheap.lock (one producer at a time)
static std::atomic<std::uint32_t> grow_tail{0};  // the prefault thread

static void on_heap_grow(std::uintptr_t base, std::size_t bytes, bool) {
    std::uint32_t h = grow_head.load(std::memory_order_relaxed);
    if (h - grow_tail.load(std::memory_order_acquire) >= kGrowRing) return;
    grow_base[h % kGrowRing] = base;
    grow_bytes[h % kGrowRing] = bytes;
    grow_head.store(h + 1, std::memory_order_release);
    futex_wake(&grow_head);
}

// Without the prefault thread: a range grown with huge pages is faulted in
// by the thread that grew it, once out of the lock (heap.cpp,
// populate_growth). A growth by an unregistered thread (the malloc front
// end's, the collector's) is faulted on touch as before.
static void on_heap_grow_self(std::uintptr_t base, std::size_t bytes, bool huge) {
    GcThread* t = tls_gc_thread;
    if (!huge || t == nullptr) return;
    if (t->populate_bytes != 0 && t->populate_base + t->populate_bytes == base) {
        t->populate_bytes += bytes;  // (grow_locked maps a reservation's tail, then more)
        return;
    }
    if (t->populate_bytes != 0) return;  // one pending range: the rest faults on touch
    t->populate_base = base;
    t->populate_bytes = bytes;
}

static void* prefault_thread(void*) {
    for (;;) {
        std::uint32_t h = grow_head.load(std::memory_order_acquire);
        std::uint32_t t = grow_tail.load(std::memory_order_relaxed);
        for (; t != h; t++) {
            // In pieces: populating holds the address space lock for reading,
            // and a thread mapping more heap (under mheap.lock, unstoppable)
            // waits for it to write.
            constexpr std::size_t kPiece = 16 << 10;
            std::uintptr_t b = grow_base[t % kGrowRing];
            std::size_t n = grow_bytes[t % kGrowRing];
            for (std::size_t o = 0; o < n; o += kPiece)
                sys::populate(reinterpret_cast<void*>(b + o), n - o < kPiece ? n - o : kPiece);
            grow_tail.store(t + 1, std::memory_order_release);
        }
        futex_wait(&grow_head, h, 1000000000);
    }
    return nullptr;
}

static pthread_once_t collector_once = PTHREAD_ONCE_INIT;
static void collector_init() {
    start_ns = nanotime();
    const Options& o = options();
    gc_percent.store(o.gogc, std::memory_order_relaxed);
    mem_limit.store(o.memlimit, std::memory_order_relaxed);
    compute_goal();
    // Transparent huge pages for the heap (GOALLOC_GC_HUGEPAGES): marking
    // chases pointers across the whole heap, and with 4 KiB pages nearly
    // every object it visits on a large heap also misses the TLB (a
    // two-dimensional page walk under virtualisation: a random access to a
    // 1 GiB range took 42-68 ns here from run to run with 4 KiB pages, 16-20
    // ns with huge pages; scripts/random_access.sh). By default (auto) from
    // kHugePagesAutoBytes mapped: a small heap fits the TLB's reach well
    // enough (binary_trees' 70 MB: no difference) and keeps 4 KiB
    // granularity. gc/README.md, "Fresh memory".
    if (o.gchugepages == 1) mheap.set_hugepages_from(0);
    else if (o.gchugepages < 0) mheap.set_hugepages_from(kHugePagesAutoBytes);
    mark_warm();
    {
        // Fault in the cycle statistics (zero pages until first written)
        // now, not in the first cycle's mark termination, which wrote them
        // with the world stopped (the first pause measured 50-150 us longer).
        LockGuard g(stats_lock);
        auto* b = reinterpret_cast<volatile char*>(&cstats);
        for (std::size_t i = 0; i < sizeof cstats; i += 64) b[i] = 0;
    }
    pthread_t th;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&th, &attr, collector_thread, nullptr) != 0) throw_fatal("gc: cannot start the collector thread");
    if (pthread_create(&th, &attr, finalizer_thread, nullptr) != 0) throw_fatal("gc: cannot start the finalizer thread");
    if (o.gcprefault && pthread_create(&th, &attr, prefault_thread, nullptr) == 0)
        heap_grow_hook.store(on_heap_grow, std::memory_order_release);
    else if (o.gchugepages != 0)
        heap_grow_hook.store(on_heap_grow_self, std::memory_order_release);
    pthread_attr_destroy(&attr);
}

void start_collector() { pthread_once(&collector_once, collector_init); }

// ---- public control API ----
void collect() {
    register_thread();
    // Wait for a whole cycle that starts after this call (and its sweep): the
    // cycle numbered started+1. Cycles complete in order.
    std::uint32_t target = cycles_started.load(std::memory_order_acquire) + 1;
    forced_requests.fetch_add(1, std::memory_order_acq_rel);
    wake_collector();
    for (;;) {
        std::uint32_t s = swept_cycles.load(std::memory_order_acquire);
        if (static_cast<std::int32_t>(s - target) >= 0) break;
        blocking_wait(&swept_cycles, s, 10000000);
    }
}

int set_gc_percent(int percent) {
    register_thread();
    int old = gc_percent.exchange(percent < 0 ? -1 : percent, std::memory_order_relaxed);
    compute_goal();
    pace_scavenger(false);
    wake_collector();
    note_heap_live_add(0);  // start a cycle now if the new trigger is already behind us
    return old;
}

std::int64_t set_memory_limit(std::int64_t b) {
    register_thread();
    if (b < 0) return mem_limit.load(std::memory_order_relaxed);
    std::int64_t old = mem_limit.exchange(b, std::memory_order_relaxed);
    compute_goal();
    pace_scavenger(false);
    wake_collector();
    note_heap_live_add(0);
    return old;
}

void read_mem_stats(MemStats& out) {
    register_thread();
    std::memset(&out, 0, sizeof out);
    stop_the_world();
    for_each_thread(release_cache_cb, nullptr);
    std::uint64_t nmalloc = gcs.nmalloc.load(std::memory_order_relaxed);
    std::uint64_t nfree = gcs.nfree.load(std::memory_order_relaxed);
    std::uint64_t ntiny = gcs.ntiny.load(std::memory_order_relaxed);
    std::uint64_t total = gcs.total_alloc.load(std::memory_order_relaxed);
    std::uint64_t freed = gcs.freed_bytes.load(std::memory_order_relaxed);
    std::uint64_t inuse = gcs.inuse_bytes.load(std::memory_order_relaxed);
    std::uint64_t goal = gcs.goal.load(std::memory_order_relaxed);
    std::uint32_t ngc = gcs.cycles.load(std::memory_order_relaxed);
    start_the_world();
    out.Mallocs = nmalloc + ntiny;
    out.Frees = nfree + ntiny;
    out.HeapObjects = out.Mallocs - out.Frees;
    out.TotalAlloc = total;
    out.HeapAlloc = out.Alloc = total - freed;
    out.HeapSys = sys::stats.ready.load(std::memory_order_relaxed) + sys::stats.prepared.load(std::memory_order_relaxed);
    out.HeapInuse = inuse;
    out.HeapIdle = out.HeapSys > inuse ? out.HeapSys - inuse : 0;
    out.HeapReleased = sys::stats.prepared.load(std::memory_order_relaxed);
    out.Sys = out.HeapSys + sys::stats.metadata.load(std::memory_order_relaxed);
    out.NextGC = goal == UINT64_MAX ? 0 : goal;
    {
        LockGuard g(stats_lock);
        // NumGC and the pause ring together (a cycle may have ended since the stop).
        ngc = gcs.cycles.load(std::memory_order_relaxed);
        out.NumGC = ngc;
        out.LastGC = cstats.last_gc;
        out.PauseTotalNs = cstats.pause_total_ns;
        std::memcpy(out.PauseNs, cstats.pause_ns, sizeof out.PauseNs);
        std::memcpy(out.PauseEnd, cstats.pause_end, sizeof out.PauseEnd);
        out.NumForcedGC = cstats.forced;
        out.MaxPauseNs = cstats.max_pause_ns;
        out.MarkWallNs = cstats.mark_wall_ns;
        out.MarkBackgroundNs = cstats.mark_bg_ns;
        out.MarkIdleNs = cstats.mark_idle_ns;
        out.MarkCycleAssistNs = cstats.mark_assist_ns;
        out.MarkFractionalNs = cstats.mark_frac_ns;
        std::uint64_t now = nanotime();
        std::uint64_t avail = (now - start_ns) * static_cast<std::uint64_t>(ncpu());
        out.GCCPUFraction = avail ? static_cast<double>(cstats.gc_cpu_ns) / static_cast<double>(avail) : 0;
        if (out.GCCPUFraction > 1) out.GCCPUFraction = 1;
    }
    out.MarkAssistNs = gcs.assist_ns.load(std::memory_order_relaxed);
}

}  // namespace goalloc::gc

// ---- C API ----
using namespace goalloc::gc;
extern "C" {
GA_API void ga_gc_store(void** slot, void* value) { goalloc::gc::store(slot, value); }
GA_API void ga_gc_collect(void) { collect(); }
GA_API int ga_gc_set_percent(int p) { return set_gc_percent(p); }
GA_API int64_t ga_gc_set_memory_limit(int64_t b) { return set_memory_limit(b); }
GA_API void ga_gc_register_thread(void) { register_thread(); }
GA_API void ga_gc_unregister_thread(void) { unregister_thread(); }
GA_API void ga_gc_add_roots(const void* s, size_t n) { add_roots(s, n); }
GA_API void ga_gc_remove_roots(const void* s) { remove_roots(s); }
GA_API void ga_gc_set_finalizer(void* obj, void (*fn)(void*, void*), void* arg) {
    goalloc::gc::detail::set_finalizer_raw(obj, fn, arg);
}
GA_API void ga_gc_stats(ga_gc_stats_t* out) {
    // MemStats is large (the PauseNs rings): not on the caller's stack.
    auto* msp = static_cast<MemStats*>(ga_malloc(sizeof(MemStats)));
    if (msp == nullptr) goalloc::throw_fatal("gc: out of memory in ga_gc_stats");
    MemStats& ms = *msp;
    read_mem_stats(ms);
    out->heap_alloc = ms.HeapAlloc;
    out->heap_sys = ms.HeapSys;
    out->heap_objects = ms.HeapObjects;
    out->total_alloc = ms.TotalAlloc;
    out->mallocs = ms.Mallocs;
    out->frees = ms.Frees;
    out->next_gc = ms.NextGC;
    out->pause_total_ns = ms.PauseTotalNs;
    out->max_pause_ns = ms.MaxPauseNs;
    out->num_gc = ms.NumGC;
    out->gc_cpu_fraction = ms.GCCPUFraction;
    ga_free(msp);
}
}
