// finalizer.cpp — set_finalizer and the finalizer thread (Go's mfinal.go:
// SetFinalizer, finq, runfinq).
//
// Invariants and locks:
//   * fin_table holds the registered finalizers, sorted by object address;
//     finq those whose object the sweep found unmarked, ready to run. Both,
//     and their counts, are guarded by fin_lock (rank kRankGcFinalizers).
//   * A span with a registered finalizer has specials set, so the sweeper
//     calls finalizers_sweep_span for it; that clears specials when none is
//     left.
//   * What a finalizable object points to is a root (finalizers_scan, during
//     mark), so it survives until the finalizer has run; a queued object and
//     its argument are roots until the finalizer thread takes them, which
//     shades the object as it leaves the queue while marking (the deletion
//     barrier). The sweep marks a queued object, so it lives one more cycle
//     (Go's resurrection).
//   * The finalizer thread is a registered mutator: it runs each finalizer
//     once, then clears its own dead stack so nothing the finalizer touched
//     stays reachable from it.
#include <cstring>

#include "gcinternal.h"

namespace goalloc::gc {

struct Finalizer {
    std::uintptr_t obj;
    void (*fn)(void*, void*);
    void* arg;
};
static constinit Mutex fin_lock{kRankGcFinalizers};
static Finalizer* fin_table = nullptr;  // fin_lock: sorted by obj
static std::size_t fin_n = 0, fin_cap = 0;
static Finalizer* finq = nullptr;       // fin_lock: ready to run
static std::size_t finq_n = 0, finq_cap = 0;
static std::atomic<std::uint32_t> fin_seq{0};     // bumped when finq gains entries (futex word)
static std::atomic<std::uint64_t> fin_queued{0};  // total ever queued
static std::atomic<std::uint64_t> fin_done{0};    // total run
static std::atomic<std::uint32_t> fin_done_seq{0};

static bool grow(Finalizer** a, std::size_t* cap, std::size_t need) {
    if (need <= *cap) return true;
    std::size_t nc = *cap ? *cap * 2 : 64;
    while (nc < need) nc *= 2;
    auto* p = static_cast<Finalizer*>(ga_realloc(*a, nc * sizeof(Finalizer)));
    if (p == nullptr) return false;
    *a = p;
    *cap = nc;
    return true;
}

static std::size_t fin_lower_bound(std::uintptr_t obj) {
    std::size_t lo = 0, hi = fin_n;
    while (lo < hi) {
        std::size_t mid = (lo + hi) / 2;
        if (fin_table[mid].obj < obj) lo = mid + 1; else hi = mid;
    }
    return lo;
}

namespace detail {
void set_finalizer_raw(void* objp, void (*fn)(void*, void*), void* arg) {
    auto obj = reinterpret_cast<std::uintptr_t>(objp);
    MSpan* s;
    std::uint32_t idx;
    if (find_object(obj, &s, &idx) != obj) {
        Msg m;
        m.s("goalloc: fatal error: set_finalizer: pointer ").hex(obj)
            .s(" is not the start of a collected object\n");
        m.fatal();
    }
    LockGuard g(fin_lock);
    std::size_t i = fin_lower_bound(obj);
    bool have = i < fin_n && fin_table[i].obj == obj;
    if (fn == nullptr) {
        if (have) {
            std::memmove(&fin_table[i], &fin_table[i + 1], (fin_n - i - 1) * sizeof(Finalizer));
            fin_n--;
        }
        return;
    }
    if (have) {
        Msg m;
        m.s("goalloc: fatal error: set_finalizer: finalizer already set for ").hex(obj).s("\n");
        m.fatal();
    }
    if (!grow(&fin_table, &fin_cap, fin_n + 1)) throw_fatal("gc: out of memory in set_finalizer");
    std::memmove(&fin_table[i + 1], &fin_table[i], (fin_n - i) * sizeof(Finalizer));
    fin_table[i] = Finalizer{obj, fn, arg};
    fin_n++;
    s->specials.store(1, std::memory_order_relaxed);
}
}  // namespace detail

// Concurrent, during mark: what finalizable objects point to stays alive, and
// queued objects are roots until their finalizer has run.
void finalizers_scan() {
    LockGuard g(fin_lock);
    for (std::size_t i = 0; i < fin_n; i++) {
        scan_object_contents(fin_table[i].obj);
        if (fin_table[i].arg) grey_batched(reinterpret_cast<std::uintptr_t>(fin_table[i].arg));
    }
    for (std::size_t i = 0; i < finq_n; i++) {
        grey_batched(finq[i].obj);
        if (finq[i].arg) grey_batched(reinterpret_cast<std::uintptr_t>(finq[i].arg));
    }
    grey_flush();
}

void finalizers_scan_check() {
    LockGuard g(fin_lock);
    // Contents only (the object itself may be unreachable).
    for (std::size_t i = 0; i < fin_n; i++) scan_object_contents(fin_table[i].obj);
    for (std::size_t i = 0; i < finq_n; i++)
        scan_conservative_check(reinterpret_cast<std::uintptr_t>(&finq[i].obj),
                                reinterpret_cast<std::uintptr_t>(&finq[i].obj) + 8);
}

// During the sweep of s (sweepgen == sg-1, owned by the sweeper): queue the
// finalizers of unmarked objects, and mark those objects so they live until
// their finalizer has run (Go: the object is resurrected for one cycle).
void finalizers_sweep_span(MSpan* s) {
    bool queued = false;
    {
        LockGuard g(fin_lock);
        std::size_t i = fin_lower_bound(s->base), j = i, left = 0;
        for (; i < fin_n && fin_table[i].obj < s->limit; i++) {
            std::uint32_t idx = s->index_of(fin_table[i].obj);
            std::uint64_t bit = std::uint64_t{1} << (idx & 63);
            if (s->gcmarkBits[idx >> 6].load(std::memory_order_relaxed) & bit) {
                fin_table[j++] = fin_table[i];
                left++;
                continue;
            }
            if (!grow(&finq, &finq_cap, finq_n + 1)) throw_fatal("gc: out of memory queueing a finalizer");
            finq[finq_n++] = fin_table[i];
            fin_queued.fetch_add(1, std::memory_order_relaxed);
            s->gcmarkBits[idx >> 6].fetch_or(bit, std::memory_order_relaxed);
            queued = true;
        }
        if (j != i) {
            std::memmove(&fin_table[j], &fin_table[i], (fin_n - i) * sizeof(Finalizer));
            fin_n -= i - j;
        }
        if (left == 0) s->specials.store(0, std::memory_order_relaxed);
    }
    if (queued) {
        fin_seq.fetch_add(1, std::memory_order_release);
        futex_wake(&fin_seq);
    }
}

// Clear the stack below the caller: a finalizer's dead frames would otherwise
// keep whatever it last touched reachable from this thread's stack.
static GA_NOINLINE void scrub_stack() {
    volatile char buf[16384];
    for (std::size_t i = 0; i < sizeof buf; i += 8) buf[i] = 0;
    __asm__ volatile("" ::: "memory");
}

// The entry being run (the finalizer thread's only). Not a root: its object
// was resurrected by the sweep that queued it, and shaded as it left the
// queue if a mark was on.
static Finalizer fin_running;

// Run fin_running's finalizer, then leave no copy of its object or argument
// where this thread's stack scan would find one: not in the dead frames
// (scrub_stack), not in a register. The thread's registers are scanned: the
// callee-saved ones when it waits (blocking_call spills them onto the
// scanned stack), all of them when a stop signals it. A stale copy there
// would keep the object, and all it points to, alive for good, and the
// next finalizer of a chain would never run (GcFinalizer.OrderedAlongChains
// failed so when this code moved to its own file and the compiler kept the
// object in a callee-saved register of the loop across the call). So the
// loop never holds the entry (it is copied under the lock, then read here
// only): the callee-saved registers this returns with are the loop's own;
// and the caller-saved ones, where the finalizer may leave the object, are
// cleared before returning.
static GA_NOINLINE void run_popped() {
    fin_running.fn(reinterpret_cast<void*>(fin_running.obj), fin_running.arg);
    fin_running = Finalizer{0, nullptr, nullptr};
    scrub_stack();
#if defined(__x86_64__)
    __asm__ volatile(
        "xor %%eax, %%eax\n\txor %%ecx, %%ecx\n\txor %%edx, %%edx\n\txor %%esi, %%esi\n\t"
        "xor %%edi, %%edi\n\txor %%r8d, %%r8d\n\txor %%r9d, %%r9d\n\txor %%r10d, %%r10d\n\t"
        "xor %%r11d, %%r11d"
        :
        :
        : "rax", "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10", "r11", "memory");
#endif
}

void* finalizer_thread(void*) {
    register_thread();
    for (;;) {
        std::uint32_t seq = fin_seq.load(std::memory_order_acquire);
        bool have = false;
        {
            LockGuard g(fin_lock);
            if (finq_n != 0) {
                fin_running = finq[--finq_n];
                have = true;
                // Leaving the queue, which is a root: the deletion barrier.
                if (gcs.phase.load(std::memory_order_relaxed) == kPhaseMark) greyobject(fin_running.obj);
            }
        }
        if (!have) {
            blocking_wait(&fin_seq, seq, -1);
            continue;
        }
        run_popped();
        fin_done.fetch_add(1, std::memory_order_release);
        fin_done_seq.fetch_add(1, std::memory_order_release);
        futex_wake(&fin_done_seq);
    }
    return nullptr;
}

void run_finalizers() {
    std::uint64_t want = fin_queued.load(std::memory_order_acquire);
    for (;;) {
        std::uint32_t seq = fin_done_seq.load(std::memory_order_acquire);
        if (fin_done.load(std::memory_order_acquire) >= want) return;
        blocking_wait(&fin_done_seq, seq, 1000000);
    }
}

}  // namespace goalloc::gc
