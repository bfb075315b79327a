// gcinternal.h — the collector's shared state and the interfaces between its
// files. The collector is Go's (mgc.go and friends) on goalloc's mheap:
//
//   heap.cpp       allocation of collected objects (per-thread span cache for
//                  the 136 span classes, tiny allocator, black allocation,
//                  heap bits), the collected mcentrals with Go's swept/unswept
//                  lists, sweeping.
//   world.cpp      mutator threads: registration, stop-the-world by signal
//                  handshake, stack bounds.
//   mark.cpp       grey objects, work buffers, scanning (objects precisely by
//                  heap bits, stacks and root ranges conservatively), the
//                  write-barrier buffers, checkmark.
//   collector.cpp  the cycle (sweep termination, mark, mark termination,
//                  sweep), the background worker, assists, the pacer, gctrace,
//                  MemStats, finalizers, roots, the public API.
//
// Phases (gcphase): kPhaseOff (allocating, sweeping), kPhaseMark (concurrent
// mark; barrier on; black allocation in each thread once its stack is
// scanned, and marking once every stack is: gcs.blacken). Mark termination
// happens with the world stopped, so it needs no phase value of its own.
//
// sweepgen (Go's): the heap's sweepgen `sg` grows by 2 at each mark
// termination. A span not held by a thread's cache is on one list of its
// mcentral: "swept" lists hold spans with sweepgen == sg, "unswept" lists
// spans with sweepgen == sg-2; which physical list is which flips with sg
// (index (sg/2)&1 is the swept one), so mark termination makes every span
// unswept at once. A span popped for sweeping is owned by its sweeper.
// A span held by a thread's cache is swept (sweepgen == sg); mark termination
// returns every cached span to its mcentral before flipping.
//
// Locks (ranks in alloc/lock.h): threads registry (kRankGcThreads, held across
// a stop-the-world by the collector), finalizers (kRankGcFinalizers), roots
// (kRankGcRoots), each collected mcentral (kRankMCentral), mheap, work lists
// (kRankGcWork). Every one of them is a nosuspend region.
#pragma once

#include <pthread.h>

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "goalloc/gc.hpp"
#include "lock.h"
#include "mheap.h"
#include "mspan.h"

namespace goalloc::gc {

using detail::TypeInfo;

inline constexpr std::uint32_t kPhaseOff = 0;
inline constexpr std::uint32_t kPhaseMark = 1;

inline constexpr std::size_t kTinySize = 16;
// GOALLOC_GC_HUGEPAGES=auto: huge pages once the heap has mapped this much
// (collector.cpp, collector_init).
inline constexpr std::size_t kHugePagesAutoBytes = std::size_t{256} << 20;
inline constexpr std::uint8_t kSpanOobHeapBits = 1;  // MSpan::gcflags: heapBits is ga_calloc'd
inline constexpr std::uint8_t kSpanBlackCache = 2;
// A large object of a precise type (make_array of Ptr<> or of structs with
// Ptr<> members): the words its heap bits mark are Ptr<> fields, shaded as
// precise pointers (shade<true>). Set before the span is published.
inline constexpr std::uint8_t kSpanPreciseLarge = 4;
// MSpan::uniform of a scan span that has held no object yet.
inline const void* const kUniformUnset = reinterpret_cast<const void*>(1);
// The type layout that applies to the scan object of span s (small objects of
// a uniform span), or nullptr: read the heap bits.
inline const TypeInfo* uniform_type(const MSpan* s) {
    const void* u = s->uniform.load(std::memory_order_acquire);
    return u == kUniformUnset ? nullptr : static_cast<const TypeInfo*>(u);
}   // MSpan::gcflags: remoteBits = free slots when marking began
inline constexpr int kTinySpanClass = (2 << 1) | 1;  // size class 2 (16 B), noscan

// Nonzero on the thread that has stopped the world, until it restarts it
// (world.cpp): that thread is the one stop_pending() must never stop.
extern __thread std::uint32_t tls_world_stopper __attribute__((tls_model("initial-exec")));

// A stop of the world is waiting for this thread (signalled, or requested for
// all): long nosuspend work (assist drains, lazy sweeping) checks this and
// gets out of the region at the next consistent point. Never true on the
// thread that stopped the world: its drains with the world stopped (mark
// termination's last resort, checkmark) must run to the end.
// (gc_stop_requested is also up during a handshake, world.cpp; a thread that
// has done its part need not get out.)
bool stop_pending_slow();
inline bool stop_pending() {
    if (GA_LIKELY((tls_suspend_pending | __atomic_load_n(&gc_stop_requested, __ATOMIC_RELAXED)) == 0)) return false;
    return tls_world_stopper == 0 && stop_pending_slow();
}

// The collector reads and writes program memory that the program may be
// writing at the same moment — by design: a conservative word may be any
// data, a marker reads pointer fields the program is storing to, the sweeper
// poisons memory the program no longer reaches. These accesses go through the
// two helpers below, which ThreadSanitizer does not instrument (as Go's race
// detector does not look inside the runtime); the collector's own
// synchronisation (mark bits, lists, locks, the stop handshake) stays checked.
#if defined(__SANITIZE_THREAD__)
#define GA_NO_TSAN inline __attribute__((no_sanitize("thread"), noinline))
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define GA_NO_TSAN inline __attribute__((no_sanitize("thread"), noinline))
#endif
#endif
#ifndef GA_NO_TSAN
#define GA_NO_TSAN inline __attribute__((always_inline))
#endif
GA_NO_TSAN std::uintptr_t load_program_word(const std::uintptr_t* p) {
    return *static_cast<const volatile std::uintptr_t*>(p);
}
GA_NO_TSAN void fill_program_memory(std::uintptr_t p, std::size_t n, unsigned char byte) {
    std::uint64_t v = 0x0101010101010101ull * byte;
    auto* q = reinterpret_cast<volatile std::uint64_t*>(p);
    for (std::size_t i = 0; i < n / 8; i++) q[i] = v;
}

// ---- per-thread state of a registered mutator ----
// One cached span (owner thread only). wbase, abw, elemsize and needzero
// copy what the allocation fast path needs (fixed while the span is cached:
// only uncached spans are swept), so it touches the entry and not the span.
struct AllocEntry {
    std::uint64_t cache;              // free objects of word `word` not yet handed out (1 = free)
    std::uintptr_t wbase;             // address of the object of bit 0 of word `word`
    std::atomic<std::uint64_t>* abw;  // &span->allocBits[word]
    MSpan* span;                      // nullptr: empty (cache == 0)
    std::uint32_t word;               // current allocBits word
    std::uint32_t elemsize;
    std::uint8_t needzero;
};

inline constexpr std::size_t kWbBufEntries = 512;

struct GcThread {
    AllocEntry alloc[kNumSpanClasses];
    // Bit i: alloc[i] holds a span. Written by the owner (refill, uncache)
    // or by the collector with the thread stopped or claimed; read by the
    // same. Emptying the caches (mark termination, with the world stopped)
    // and the black-allocation snapshot visit only these entries: walking
    // all 136 read ~100 lines of another thread's cache (6.5 KiB), at times
    // tens of microseconds of termination's pause on this host.
    std::uint64_t alloc_used[(kNumSpanClasses + 63) / 64] = {};
    std::uintptr_t tiny = 0;        // current tiny block (16 B, noscan), 0 if none
    std::uintptr_t tinyoffset = 0;
    // Write-barrier buffer: pointers to shade (Go's wbBuf). Entries [0, wbn)
    // are valid; only this thread writes, and the collector reads/empties it
    // with the thread stopped (never stopped mid-push: nosuspend).
    std::uint32_t wbn = 0;
    std::uintptr_t wbuf[kWbBufEntries];
    // Tiny allocations, merged when the cache is released (owner writes).
    std::atomic<std::uint64_t> ntiny{0};
    // Scan work (bytes) this thread is owed (>0) or owes (<0), in the mark
    // that began at assist_mark (gcs.mark_start); a new mark starts it at 0,
    // as Go's gcResetMarkState zeroes each goroutine's gcAssistBytes (owner).
    std::int64_t assist_credit = 0;
    std::uint64_t assist_mark = 0;
    // Fractional marking (owner only): its time, and its assists' drain
    // time, in the mark phase that began at frac_start (gcs.mark_start); both
    // count against its fractional share (fractional_mark). frac_chunk_ns:
    // its last fractional chunk's time (capped), the margin it keeps below
    // the share.
    std::uint64_t frac_ns = 0, frac_assist_ns = 0, frac_start = 0, frac_chunk_ns = 0;
    // Stack and suspension (world.cpp).
    pthread_t tid{};
    std::uintptr_t stack_lo = 0, stack_hi = 0;
    std::atomic<std::uintptr_t> saved_sp{0};  // while stopped: scan [saved_sp, stack_hi)
    std::uintptr_t regs[24] = {};              // while stopped by the signal: general registers
    std::atomic<std::uint32_t> ack_epoch{0};  // the stop epoch this thread acknowledged
    std::atomic<std::uint32_t> state{0};      // world.cpp: running, blocked, claimed by a stop or handshake
    std::atomic<std::uint32_t> hs_ack{0};     // the handshake this thread has done (world.cpp)
    // Black allocation on for this thread: its stack has been scanned this
    // cycle (snapshot_for_mark); written by the thread's own handshake, the
    // collector (thread claimed, or world stopped) or at registration.
    std::uint8_t blacken = 0;
    std::uint32_t stop_epoch = 0;             // threads lock: the stop that signalled this thread
    // How and when this thread stopped for its last stop (world.cpp,
    // StopHow): written by the thread before it acknowledges, or by the
    // stopper when it claims the thread; read by the stopper after. Both can
    // write for the same stop (a thread that went into a blocking call after
    // the stop began is claimed while the signal parks it), so atomics,
    // relaxed: either account is true, and they are diagnostics.
    std::atomic<std::uint8_t> stop_how{0};
    std::atomic<std::uint64_t> stop_ack_ns{0};
    bool wake_on_start = false;               // threads lock: claimed by this stop, to be woken
    // Checkmark mode: the words of this thread's stack and registers that
    // the cycle's first stop resolved to objects, 0 elsewhere (written by
    // that scan, read by checkmark_run with the world stopped; freed at
    // unregister).
    std::uintptr_t* ck_copy = nullptr;
    std::size_t ck_words = 0;
    std::uintptr_t ck_sp = 0;  // the stack address ck_copy[0] was read from
    bool exiting = false;
    // A heap growth this thread made with huge pages on, to fault in outside
    // mheap.lock as a blocking call (heap.cpp, populate_growth; owner only).
    std::uintptr_t populate_base = 0;
    std::size_t populate_bytes = 0;
    void* populate_meta = nullptr;  // a metadata region being filled (MHeap::metadata_region_to_fill)
    GcThread* next = nullptr;  // registry (threads lock)
    GcThread* prev = nullptr;
};

extern __thread GcThread* tls_gc_thread __attribute__((tls_model("initial-exec")));

// ---- global collector state ----
// Grouped by who writes a field how often, a cache line a group, so that the
// mutators' per-refill updates and the markers' credit do not move the lines
// the other side reads: on this host the two CPUs are at times ~450 ns apart
// for a cache line's round trip, ~70 ns at others (bench/results/NOTES.md,
// twelfth pass).
struct GcState {
    // Read-mostly: written once a phase or cycle (the collector, or the
    // world stopped), read on every refill and by every marker.
    alignas(64) std::atomic<std::uint32_t> phase{kPhaseOff};
    std::atomic<std::uint32_t> sweepgen{4};
    // Marking may blacken objects: every stack has been scanned (or is being,
    // by handshake: then threads turn on black allocation one by one,
    // GcThread::blacken). New threads start with this value.
    std::atomic<std::uint32_t> blacken{0};
    std::atomic<std::uint32_t> cycles{0};   // completed cycles (NumGC)
    // Pacer inputs/outputs (bytes).
    std::atomic<std::uint64_t> heap_marked{0};  // bytes marked by the last cycle
    std::atomic<std::uint64_t> last_scan{0};    // scan work (bytes) the last cycle did
    std::atomic<std::uint64_t> trigger{0};
    std::atomic<std::uint64_t> goal{0};
    // Go's fractional mark workers (collector.cpp, fractional_mark). The
    // collector thread writes these while marking: frac_ppm, the share of
    // its time an allocating thread marks (parts per million; 0 = none:
    // the background worker is not on an idle CPU); mark_start, when the
    // concurrent mark began (nanotime).
    std::atomic<std::uint32_t> frac_ppm{0};
    std::atomic<std::uint64_t> mark_start{0};
    // Proportional sweep (Go's sweepPagesPerByte, in spans): set at each
    // cycle's end (world stopped) so that allocating threads finish the
    // sweep by the time heap_live reaches the trigger, whatever CPU the
    // background sweeper gets. Read by allocating threads (sweep_credit).
    alignas(64) std::atomic<double> sweep_per_byte{0};  // spans to sweep per byte allocated
    std::atomic<std::uint64_t> sweep_basis{0};  // heap_live at the flip
    std::atomic<std::int64_t> sweep_unswept0{0};  // unswept at the flip

    // Allocating threads, at every refill or sweep.
    alignas(64) std::atomic<std::uint64_t> heap_live{0};  // marked at last cycle + allocated since (span granularity)
    std::atomic<std::uint64_t> inuse_bytes{0};  // pages of collected spans
    std::atomic<std::int64_t> nspans{0};    // collected spans in use
    std::atomic<std::int64_t> unswept{0};   // spans not yet swept this cycle (nspans at the flip)
    // Fractional marking this cycle: added by allocating threads inside their
    // nosuspend regions, read and reset by termination (world stopped).
    std::atomic<std::uint64_t> frac_cycle_ns{0};
    std::atomic<std::uint64_t> assist_ns{0};   // assists' drain time (not their yields or waits)
    // Statistics.
    alignas(64) std::atomic<std::uint64_t> total_alloc{0};  // merged from threads
    std::atomic<std::uint64_t> nmalloc{0};
    std::atomic<std::uint64_t> nfree{0};
    std::atomic<std::uint64_t> freed_bytes{0};
    std::atomic<std::uint64_t> ntiny{0};

    // Markers, during mark (reset at each cycle start): their flushes, and
    // the background credit assists steal from.
    alignas(64) std::atomic<std::int64_t> bytes_marked{0};  // this cycle, incl. black allocations
    std::atomic<std::int64_t> scan_work{0};     // bytes scanned this cycle
    std::atomic<std::int64_t> bg_credit{0};     // background scan credit assists may steal
    // Assists: how many are draining, and Go's assist queue: threads whose
    // assist found neither credit nor work wait for background credit
    // (assist_parked of them; each waits on credit_seq, which a background
    // drain that flushes credit while any wait, and mark termination, bump
    // and wake: wake_parked_assists). Read by a drain at its polls.
    alignas(64) std::atomic<std::uint32_t> nassist{0};  // threads inside an assist's (or fractional) drain loop
    std::atomic<std::uint32_t> assist_parked{0};
    std::atomic<std::uint32_t> credit_seq{0};
};
extern GcState gcs;
// Mark terminations that began while a huge page of the collapse was in
// progress (collector thread writes; tests read). The collapse runs on the
// collector thread between cycles (collector.cpp, collector_thread), so none
// should.
extern std::atomic<std::uint64_t> terminations_in_collapse;

// ---- heap.cpp ----
struct GcCentral {
    Mutex lock{kRankMCentral};
    MSpan* partial[2] = {nullptr, nullptr};  // lock: [(sg/2)&1] swept, other unswept
    MSpan* full[2] = {nullptr, nullptr};
};
void heap_init_gc();
// Return every span a thread caches to its mcentral (world stopped, or the
// thread itself at exit). Adjusts heap_live for the unused slots.
void release_thread_cache(GcThread* t);
void merge_thread_stats(GcThread* t);
void snapshot_for_mark(GcThread* t);  // world stopped, marking starting: see heap.cpp
// Sweep one span popped from an unswept list (or a large span); true if the span survives.
std::size_t sweep_some(std::size_t max_spans);  // background/finishing sweep: spans swept
bool sweep_done();
void finish_sweep();  // sweep everything still unswept
// An allocating thread whose allocation grew heap_live: sweep what
// proportional sweeping asks of it. Caller: not in a nosuspend region.
void sweep_credit();
// At a cycle's end, after the flip and the new trigger (world stopped).
void sweep_pace();
// Object lookup for marking: the start of the allocated object holding p, or 0.
std::uintptr_t find_object(std::uintptr_t p, MSpan** sp, std::uint32_t* idxp);
// The same, inline, for the markers. kPrecise: p was read from a Ptr<> field
// of a precisely typed object, so it points into an object the program
// keeps reachable, in a published span, and nothing is swept while marking:
// as Go's greyobject, it skips the publication check (sweepgen, in the
// record's second cache line) and, in release builds, the allocBits word
// (one cache miss a pointer). A collected span in use and the bounds are
// checked always. The one way a marker can meet a Ptr<> to a free slot in a
// correct program: it found a slot being allocated through a stale
// conservative word and scans it before the allocating thread has zeroed it
// (a few instructions); release builds then mark that free slot, which the
// sweep keeps one cycle more. Debug builds check the word and skip such a
// pointer, so that their sweep can assert that no free slot is marked.
// Reads a span record without a lock (as Go's findObject): see tests/tsan.supp.
template <bool kPrecise>
GA_INLINE std::uintptr_t find_object_at(std::uintptr_t p, MSpan** sp, std::uint32_t* idxp) {
    // (A Ptr<> field into the span being scanned skips all of this: mark.cpp,
    // shade_field.)
    MSpan* s = span_of(p);
    if (s == nullptr) return 0;
    // A collected span is published by its first sweepgen store (release),
    // after its fields and heap bits are set; malloc spans keep sweepgen 0.
    if (!kPrecise && s->sweepgen.load(std::memory_order_acquire) == 0) return 0;
    if (s->kind != SpanKind::Collected) return 0;
    if (s->state.load(std::memory_order_acquire) != SpanState::InUse) return 0;
    if (p < s->base || p >= s->limit) return 0;
    std::uint32_t idx = s->index_of(p);
    if (idx >= s->nelems) return 0;
    if (!kPrecise || GOALLOC_DEBUG_LEVEL >= 1) {
        std::atomic<std::uint64_t>* ab = __atomic_load_n(&s->allocBits, __ATOMIC_ACQUIRE);
        if (!((ab[idx >> 6].load(std::memory_order_relaxed) >> (idx & 63)) & 1)) return 0;
    }
    *sp = s;
    *idxp = idx;
    return s->object_base(idx);
}
// Call f(span) for every collected span on an mcentral list (world stopped).
void for_all_spans(void (*f)(MSpan*, void*), void* arg);

// ---- world.cpp ----
GcThread* current_thread_slow();  // registers the caller if needed
inline GcThread* current_thread() {
    GcThread* t = tls_gc_thread;
    return __builtin_expect(t != nullptr, 1) ? t : current_thread_slow();
}
// Stop every registered thread except the caller. Returns when all have
// acknowledged (they are outside nosuspend regions, their stacks saved).
// Holds the threads lock until start_the_world.
void stop_the_world();
std::uint64_t start_the_world();  // returns nanotime() when the world was let go
// The last stop (collector thread; gctrace=2): threads that had to be signalled.
std::uint32_t last_stop_signalled();
// How the thread that stopped last in the last stop did ("poll", "region",
// "handler", "claimed"; "-" if the stop waited for nobody): gctrace=2.
const char* last_stop_late();
// Handshakes (world.cpp): handshake_begin takes the registry lock (no thread
// registers or leaves until handshake_end); handshake(fn) has every
// registered thread run fn on itself at its next poll — or the collector run
// it for a thread in a blocking call — and returns when all have, with the
// longest time one fn took (what a thread was held). fn null: only a proof
// that every thread has left any nosuspend region it was in.
void handshake_begin();
std::uint64_t handshake(void (*fn)(GcThread*));
void handshake_end();
std::uint32_t last_handshake_signalled();  // threads the last handshake signalled
// With the world stopped: call f on each registered thread (including the caller's, if registered).
void for_each_thread(void (*f)(GcThread*, void*), void* arg);
int registered_threads();
// Run a blocking call (a futex wait) so that stops need not signal this thread.
void blocking_call(void (*fn)(void*), void* arg);
int ncpu();
std::uint64_t nanotime();
std::uint64_t thread_cpu_ns();

// ---- mark.cpp ----
void mark_warm();              // start-up: pre-fault the first work buffers
bool greyobject(std::uintptr_t p);  // shade p (any interior pointer); true if newly marked
void grey_batched(std::uintptr_t p);  // greyobject, queued on this thread's batch...
void grey_flush();                    // ...until this hands the batch to the markers
void scan_conservative(std::uintptr_t lo, std::uintptr_t hi);  // shade every word
void scan_stacks();            // world stopped
// One thread's stack and registers (saved_sp set: the thread itself in a
// handshake, or claimed by the collector); returns the stack bytes scanned.
std::uint64_t scan_one_stack(GcThread* t);
void free_stack_copy(GcThread* t);  // checkmark's copy of the stack
void scan_object_contents(std::uintptr_t obj);  // shade obj's pointers without marking obj
// Drain up to `budget` bytes of scan work (<0: until empty). Returns work
// done. bg_credit (the worker's and fractional drains): hand the work to
// gcs.bg_credit as it goes, for assists to steal.
std::int64_t drain(std::int64_t budget, bool bg_credit = false);
// drain's choice, per marking thread, between prefetching through its FIFO
// and scanning objects in the order the work buffer gives them (mark.cpp,
// "but only where that pays"): timed windows of progress, an estimate per
// mode, the faster one run and the other tried now and then.
struct PrefetchTuner {
    std::uint64_t seg_t0;      // nanotime() when the current drain's part of the window began
    std::uint64_t win_ns;      // window time accumulated in earlier drains
    std::int64_t win_ticks;    // progress in the window so far (earlier drains)
    float est[2];              // ns per unit of progress: [0] FIFO, [1] direct; 0 = not yet measured
    std::uint8_t direct;       // the mode of the current window
    std::uint8_t exploring;    // the current window tries the mode that is not the best
    std::uint16_t gap;         // windows between two explorations (doubles while the best holds)
    std::uint16_t until;       // windows left until the next exploration
};
inline constexpr std::uint16_t kTuneGapMin = 4, kTuneGapMax = 256;  // windows between explorations
bool prefetch_tuner_next(PrefetchTuner& t, std::uint64_t ns, std::int64_t ticks);
// Background credit was flushed (or the mark ended): wake the assists that
// wait for it (collector.cpp).
void wake_parked_assists();
bool work_available();
void flush_wbuf(GcThread* t);  // shade the thread's barrier buffer (owner, or world stopped)
void checkmark_run();          // world stopped, mark done: verify
bool checkmark_active();       // inside checkmark_run
void scan_conservative_check(std::uintptr_t lo, std::uintptr_t hi);  // checkmark: a root range

// ---- collector.cpp ----
void note_heap_live_add(std::uint64_t bytes);  // checks the trigger
// The pacer's trigger from the marked heap, the goal and the runway, within
// Go's bounds (collector.cpp); min_pct: the lower bound, GOALLOC_GC_TRIGGER_MIN.
std::uint64_t pacer_trigger(std::uint64_t marked, std::uint64_t goal, std::uint64_t runway, int min_pct);
void assist_alloc(GcThread* t, std::uint64_t bytes);
void fractional_mark(GcThread* t);  // Go's fractional worker's share, at a span refill while marking
void roots_scan();                 // concurrent, during mark
void roots_scan_checkmark();       // world stopped
// A futex wait run as a blocking call (stops need not signal the waiter), and the wake-up.
void blocking_wait(std::atomic<std::uint32_t>* a, std::uint32_t v, long timeout_ns);
void futex_wake(std::atomic<std::uint32_t>* a);

// ---- finalizer.cpp ----
void finalizers_scan();            // concurrent, during mark: contents of finalizable objects + queue
void finalizers_scan_check();      // world stopped, checkmark: the same, contents only
void finalizers_sweep_span(MSpan* s);  // during sweep of a span with specials
void* finalizer_thread(void*);     // started with the collector
int debug_poison();                // poison freed objects?
bool checkmark_enabled();

}  // namespace goalloc::gc
