// world.cpp — mutator threads: registration, stack bounds, stop-the-world.
//
// A thread registers at its first collected allocation (or register_thread)
// and leaves when it exits (a pthread key destructor) or calls
// unregister_thread. Registered threads are stopped with a signal handshake
// (as Boehm GC does on Linux): the collector sends kSuspendSignal to each; the
// handler records the stack pointer — everything below the thread's stack
// base from there on, including the registers the kernel saved in the signal
// frame, is then scanned conservatively — acknowledges, and waits on a futex
// until the world restarts. A thread inside a nosuspend region (alloc/lock.h)
// does not stop in the handler: it sets tls_suspend_pending, and stops itself
// on leaving the region (suspend_self), so a stopped thread never holds an
// allocator lock or a half-done allocation or barrier.
//
// Handshakes (below) reach every thread the same ways — poll, signal, or a
// claim on a blocked thread — but each thread runs the collector's function
// on itself and goes on; nobody waits for the others.
//
// Locks: threads_lock (rank kRankGcThreads) guards the registry; the
// collector holds it from stop_the_world to start_the_world (and across a
// handshake), so a thread cannot register or leave meanwhile. It is the collector's
// thread that stops the world; it is not itself a registered mutator.
#include <linux/futex.h>
#include <sched.h>
#include <signal.h>
#include <sys/syscall.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "gcinternal.h"

namespace goalloc::gc {

static constexpr int kSuspendSignal = SIGPWR;

static constinit Mutex threads_lock{kRankGcThreads};
static GcThread* threads_head = nullptr;  // threads_lock
static std::atomic<int> nthreads{0};      // written under threads_lock
static std::atomic<std::uint32_t> stw_epoch{0};  // odd: a stop is in progress
static std::atomic<std::uint32_t> stw_acks{0};
static std::atomic<std::uint32_t> stw_waiting{0};  // the stopper sleeps on stw_acks
// Set by the stopper for each stop: the threads it stops leave a CPU free for
// it, so a parked thread may spin for the restart (kParkSpinNs) instead of
// sleeping at once; a futex wake-up costs tens to hundreds of microseconds
// on a busy or virtualised machine, far more than the stop's work.
static std::atomic<std::uint32_t> stw_spin_ok{0};
static std::atomic<std::uint32_t> stw_sleepers{0};  // parked threads in FUTEX_WAIT on stw_epoch
static constexpr std::uint64_t kParkSpinNs = 100000;
// The stopper spins this long for acknowledgements, then yields its CPU (a
// signalled thread that was asleep needs one), then sleeps.
static constexpr std::uint64_t kSpinNs = 20000;
static constexpr std::uint64_t kYieldNs = 2000000;
// How long to wait for threads to stop (or answer a handshake) by polling
// before signalling them. An allocating or locking thread polls within a
// microsecond or two; a thread in a loop that does neither (binary_trees'
// item_check walking a tree) never does, and the wait is all pause: with
// 50 us, 14 of binary_trees' stops in 6 runs of depth 19 took over 40 us
// (~59 us: the wait, then a ~9 us signal), with 10 us none did; with 3 us
// such a stop takes ~10 us instead of ~17 (bench/results/NOTES.md,
// fourteenth pass). A thread the signal finds inside a nosuspend region
// stops at the region's end, as it would have. A handshake stops nobody,
// so it waits longer to spare threads the signal.
static constexpr std::uint64_t kStopPollNs = 3000;
static constexpr std::uint64_t kHandshakePollNs = 50000;

// Thread states for stopping (GcThread::state): a Blocked thread has saved
// its registers and stack pointer and sits in a blocking call; the stopper
// claims it instead of signalling it, and it cannot leave the call until the
// world restarts (Go's entersyscall/exitsyscall).
static constexpr std::uint32_t kRunning = 0, kBlocked = 1, kClaimed = 2;
// How a thread stopped (GcThread::stop_how): at its own poll; at the end of
// the nosuspend region the signal found it in; in the signal's handler (it
// was running code that never polls, or waiting in the kernel: a fault);
// claimed in a blocking call. gctrace=2 names the last one of a stop.
enum StopHow : std::uint8_t { kStopPoll, kStopRegion, kStopHandler, kStopClaimed };
static const char* const kStopHowNames[] = {"poll", "region", "handler", "claimed"};
// The suspend signal found this thread inside a nosuspend region (it stops
// at the region's end, suspend_self).
static __thread std::uint8_t tls_signalled_in_region = 0;
static pthread_key_t thread_key;
static pthread_once_t world_once = PTHREAD_ONCE_INIT;

static long futex(std::atomic<std::uint32_t>* a, int op, std::uint32_t v) {
    return syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(a), op, v, nullptr, nullptr, 0);
}

std::uint64_t nanotime() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return std::uint64_t(ts.tv_sec) * 1000000000ull + std::uint64_t(ts.tv_nsec);
}

std::uint64_t thread_cpu_ns() {
    timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return std::uint64_t(ts.tv_sec) * 1000000000ull + std::uint64_t(ts.tv_nsec);
}

int ncpu() {
    static int n = 0;
    if (n == 0) {
        cpu_set_t set;
        int c = 0;
        if (sched_getaffinity(0, sizeof set, &set) == 0) c = CPU_COUNT(&set);
        if (c <= 0) c = static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN));
        n = c > 0 ? c : 1;
    }
    return n;
}

// Describe the stack this thread leaves to be scanned while it is stopped or
// runs a handshake: from the interrupted stack pointer less the 128-byte red
// zone, with the general registers of the signal context `uc`; or, at a
// poll, from `here` in the caller's frame, where __builtin_unwind_init has
// spilled the callee-saved registers.
static GA_INLINE void save_context(GcThread* t, ucontext_t* uc, std::uintptr_t here) {
    std::uintptr_t sp = here;
    if (uc != nullptr) {
        for (int i = 0; i < NGREG && i < 24; i++) t->regs[i] = static_cast<std::uintptr_t>(uc->uc_mcontext.gregs[i]);
        sp = static_cast<std::uintptr_t>(uc->uc_mcontext.gregs[REG_RSP]) - 128;
    } else {
        for (auto& r : t->regs) r = 0;
    }
    t->saved_sp.store(sp, std::memory_order_relaxed);
}

// Stop here until the world restarts. Registers are spilled into this frame
// (and, in the signal case, into the signal frame above it).
//
// In the signal case the scan starts at the interrupted stack pointer (minus
// the 128-byte red zone) and the general registers are copied out of the
// signal context; the kernel's signal frame itself — which holds the vector
// registers, full of stale copies of pointers from memcpy and the like — is
// not scanned. (A live pointer held only in a vector register would be
// missed; compilers keep pointers in general registers or memory.)
static GA_NOINLINE void park(GcThread* t, ucontext_t* uc) {
    __builtin_unwind_init();
    volatile std::uintptr_t marker = 0;
    std::uint32_t e = stw_epoch.load(std::memory_order_acquire);
    if ((e & 1) == 0) return;  // a stale request: no stop in progress
    // A thread inside blocking_call keeps its saved state when a stray signal
    // parks it here; put it back on the way out.
    std::uintptr_t old_sp = t->saved_sp.load(std::memory_order_relaxed);
    save_context(t, uc, reinterpret_cast<std::uintptr_t>(&marker));
    t->stop_how.store(uc != nullptr ? kStopHandler : tls_signalled_in_region ? kStopRegion : kStopPoll,
                      std::memory_order_relaxed);
    t->stop_ack_ns.store(nanotime(), std::memory_order_relaxed);
    t->ack_epoch.store(e, std::memory_order_release);
    stw_acks.fetch_add(1, std::memory_order_acq_rel);
    if (stw_waiting.load(std::memory_order_acquire)) futex(&stw_acks, FUTEX_WAKE_PRIVATE, 1);
    // Spin for the restart while a CPU is left for the stopper, then sleep.
    // (Spinning with more threads than CPUs would take the CPU it needs.)
    if (stw_spin_ok.load(std::memory_order_relaxed)) {
        std::uint64_t t0 = nanotime();
        while (stw_epoch.load(std::memory_order_acquire) == e && nanotime() - t0 < kParkSpinNs)
            for (int i = 0; i < 16; i++) __builtin_ia32_pause();
    }
    if (stw_epoch.load(std::memory_order_acquire) == e) {
        stw_sleepers.fetch_add(1, std::memory_order_seq_cst);
        while (stw_epoch.load(std::memory_order_seq_cst) == e) futex(&stw_epoch, FUTEX_WAIT_PRIVATE, e);
        stw_sleepers.fetch_sub(1, std::memory_order_relaxed);
    }
    if (old_sp != 0)
        for (auto& r : t->regs) r = 0;
    t->saved_sp.store(old_sp, std::memory_order_relaxed);
    (void)marker;
}

// ---- handshakes (per-thread safepoints, no stopped world) ----
//
// A handshake asks every registered thread to run hs_fn on itself at its next
// poll (leaving its outermost nosuspend region) or in the suspend signal's
// handler, and to acknowledge; the thread then goes on at once. A thread in
// a blocking call is claimed and the collector runs hs_fn for it (its stack
// was saved by blocking_call). The collector waits until every thread has
// acknowledged, but no thread waits for another: each is held only for its
// own hs_fn (JVM thread-local handshakes; Go's forEachP). With hs_fn null the
// handshake only proves that every thread has been outside a nosuspend region
// since it began: a store that read the barrier flag before the flag changed
// has completed.
//
// hs_seq is odd while a handshake is in progress; GcThread::hs_ack is the
// handshake the thread has done. The collector holds threads_lock from
// handshake start to end (no thread registers or leaves meanwhile), and a
// thread in a blocking call never runs hs_fn itself (it may poll while
// waiting for a lock inside the call): the collector does it, under a claim.
static std::atomic<std::uint32_t> hs_seq{0};
static void (*hs_fn)(GcThread*) = nullptr;            // threads lock; read by threads while hs_seq is odd
static std::atomic<std::uint64_t> hs_max_ns{0};       // longest hs_fn of the handshake (thread pause)
static std::atomic<std::uint32_t> hs_waiting{0};      // the collector sleeps on hs_acks
static std::atomic<std::uint32_t> hs_acks{0};

static void note_hs_time(std::uint64_t ns) {
    std::uint64_t m = hs_max_ns.load(std::memory_order_relaxed);
    while (ns > m && !hs_max_ns.compare_exchange_weak(m, ns, std::memory_order_relaxed)) {
    }
}

// Run the pending handshake on this thread (uc: the signal's context, or
// null at a poll). Registers are spilled into this frame, and the stack is
// described as park() describes it, so hs_fn may scan it.
static GA_NOINLINE void handshake_self(GcThread* t, ucontext_t* uc) {
    // A nosuspend region from the first check on: the suspend signal arriving
    // in here must not run the handshake a second time (nested) and let the
    // collector move on while this one still reads hs_fn; and hs_fn takes
    // locks, whose polls must not re-enter here. Left without a poll: the
    // caller parks next if a stop is pending.
    tls_nosuspend++;
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    std::uint32_t e = hs_seq.load(std::memory_order_acquire);
    if ((e & 1) == 0 || t->hs_ack.load(std::memory_order_relaxed) == e ||
        t->state.load(std::memory_order_acquire) != kRunning) {  // in a blocking call: the collector does it
        __atomic_signal_fence(__ATOMIC_SEQ_CST);
        tls_nosuspend--;
        return;
    }
    std::uint64_t t0 = nanotime();
    __builtin_unwind_init();
    volatile std::uintptr_t marker = 0;
    if (void (*fn)(GcThread*) = hs_fn) {
        save_context(t, uc, reinterpret_cast<std::uintptr_t>(&marker));
        fn(t);
        t->saved_sp.store(0, std::memory_order_relaxed);
        for (auto& r : t->regs) r = 0;
    }
    t->hs_ack.store(e, std::memory_order_release);
    hs_acks.fetch_add(1, std::memory_order_acq_rel);
    if (hs_waiting.load(std::memory_order_acquire)) futex(&hs_acks, FUTEX_WAKE_PRIVATE, 1);
    note_hs_time(nanotime() - t0);
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    tls_nosuspend--;
    (void)marker;
}

static void suspend_handler(int, siginfo_t*, void* ctx) {
    int saved_errno = errno;
    GcThread* t = tls_gc_thread;
    // A signal that arrives after this thread has stopped for the stop that
    // sent it (it polled meanwhile, or was claimed in a blocking call) has
    // nothing to do: parking again, nested, would rewrite the state the
    // stopper is reading. (No handshake runs during a stop.)
    std::uint32_t e = stw_epoch.load(std::memory_order_acquire);
    if (t != nullptr && (e & 1) != 0 && t->ack_epoch.load(std::memory_order_acquire) == e) t = nullptr;
    if (t != nullptr) {
        if (tls_nosuspend != 0) {
            tls_suspend_pending = 1;
            tls_signalled_in_region = 1;
        } else {
            handshake_self(t, static_cast<ucontext_t*>(ctx));
            park(t, static_cast<ucontext_t*>(ctx));
        }
    }
    errno = saved_errno;
}

static void suspend_self() {
    tls_suspend_pending = 0;
    GcThread* t = tls_gc_thread;
    if (t != nullptr) {
        handshake_self(t, nullptr);
        park(t, nullptr);
    }
    tls_signalled_in_region = 0;  // (a handshake's signal, too)
}

static void thread_exit(void* p) {
    GcThread* t = static_cast<GcThread*>(p);
    if (t != nullptr && tls_gc_thread == t) unregister_thread();
}

static void world_init() {
    heap_init_gc();
    pthread_key_create(&thread_key, thread_exit);
    struct sigaction sa;
    std::memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = suspend_handler;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigfillset(&sa.sa_mask);  // nothing else interrupts a parked thread
    sigaction(kSuspendSignal, &sa, nullptr);
    suspend_hook = suspend_self;
    // A registered thread paying the heap's scavenging debt (mheap.h) does
    // it as a blocking call: a stop claims it instead of waiting for madvise.
    blocking_hook.store(blocking_call, std::memory_order_release);
}

static void stack_bounds(GcThread* t) {
    pthread_attr_t attr;
    void* addr = nullptr;
    std::size_t size = 0;
    if (pthread_getattr_np(pthread_self(), &attr) == 0) {
        pthread_attr_getstack(&attr, &addr, &size);
        pthread_attr_destroy(&attr);
    }
    t->stack_lo = reinterpret_cast<std::uintptr_t>(addr);
    t->stack_hi = t->stack_lo + size;
    if (size == 0) {  // unknown: from here to a generous bound
        volatile int here = 0;
        t->stack_lo = reinterpret_cast<std::uintptr_t>(&here) - (8u << 20);
        t->stack_hi = reinterpret_cast<std::uintptr_t>(&here) + 4096;
    }
}

void start_collector();  // collector.cpp

GcThread* current_thread_slow() {
    register_thread();
    return tls_gc_thread;
}

void register_thread() {
    if (tls_gc_thread != nullptr) return;
    pthread_once(&world_once, world_init);
    void* mem = ga_calloc(1, sizeof(GcThread));
    if (mem == nullptr) throw_fatal("gc: out of memory registering a thread");
    GcThread* t = new (mem) GcThread();
    t->tid = pthread_self();
    stack_bounds(t);
    {
        LockGuard g(threads_lock);
        t->next = threads_head;
        if (threads_head) threads_head->prev = t;
        threads_head = t;
        nthreads++;
        t->blacken = gcs.blacken.load(std::memory_order_relaxed) ? 1 : 0;  // marking: its empty stack is scanned
        tls_gc_thread = t;  // under the lock: the collector signals only registered threads
    }
    pthread_setspecific(thread_key, t);
    // Take one suspend signal now, with no stop in progress (park returns at
    // once): the first signal a thread takes faults in its signal frame's
    // stack pages and the handler's code, which made the first stop of the
    // world that needed a signal take ~200 us more.
    pthread_kill(pthread_self(), kSuspendSignal);
    start_collector();
}

// Take the registry lock. A registered thread waits for it as a Blocked
// thread: the collector holds the lock across a whole stop, and a thread
// asleep in the lock's futex cannot always be reached by a signal (under
// ThreadSanitizer, signals wait until the thread leaves a raw system call).
static void lock_registry_fn(void*) { threads_lock.lock(); }
static void lock_registry() {
    if (tls_gc_thread != nullptr)
        blocking_call(lock_registry_fn, nullptr);
    else
        threads_lock.lock();
}

void unregister_thread() {
    GcThread* t = tls_gc_thread;
    if (t == nullptr) return;
    nosuspend_enter();
    flush_wbuf(t);
    release_thread_cache(t);
    nosuspend_exit();
    lock_registry();
    if (t->prev) t->prev->next = t->next; else threads_head = t->next;
    if (t->next) t->next->prev = t->prev;
    nthreads--;
    tls_gc_thread = nullptr;
    threads_lock.unlock();
    tls_suspend_pending = 0;
    pthread_setspecific(thread_key, nullptr);
    free_stack_copy(t);
    t->~GcThread();
    ga_free(t);
}

namespace detail {
bool thread_allocates_black() {
    GcThread* t = tls_gc_thread;
    return t != nullptr && t->blacken != 0;
}
}  // namespace detail

int registered_threads() { return nthreads.load(std::memory_order_relaxed); }

// Run fn(arg), a blocking call, as a Blocked thread. Callee-saved registers
// are spilled into this frame, and the stack from here up is what a stop
// scans; fn must not touch the collected heap.
GA_NOINLINE void blocking_call(void (*fn)(void*), void* arg) {
    GcThread* t = tls_gc_thread;
    if (t == nullptr) {
        fn(arg);
        return;
    }
    __builtin_unwind_init();
    volatile std::uintptr_t marker = 0;
    for (auto& r : t->regs) r = 0;
    t->saved_sp.store(reinterpret_cast<std::uintptr_t>(&marker), std::memory_order_relaxed);
    t->state.store(kBlocked, std::memory_order_seq_cst);
    fn(arg);
    for (;;) {
        std::uint32_t st = kBlocked;
        if (t->state.compare_exchange_strong(st, kRunning, std::memory_order_acq_rel)) break;
        futex(&t->state, FUTEX_WAIT_PRIVATE, kClaimed);  // claimed by a stop: wait for the restart
    }
    t->saved_sp.store(0, std::memory_order_relaxed);
    (void)marker;
}

// One step of a stopper's wait for acknowledgements, `el` ns into it: spin,
// then yield the CPU (a signalled thread that was asleep needs one), then
// sleep on `acks` until it changes, or 1 ms at most (a thread may have entered
// a blocking call meanwhile, to be claimed). `waiting` tells acknowledgers to
// wake the stopper; the caller clears it when done.
static void wait_step(std::uint64_t el, std::atomic<std::uint32_t>* acks, std::atomic<std::uint32_t>* waiting) {
    if (el < kSpinNs) {
        for (int i = 0; i < 32; i++) __builtin_ia32_pause();
        return;
    }
    if (el < kYieldNs) {
        sched_yield();
        return;
    }
    waiting->store(1, std::memory_order_seq_cst);
    std::uint32_t n = acks->load(std::memory_order_seq_cst);
    timespec ts{0, 1000000};
    syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(acks), FUTEX_WAIT_PRIVATE, n, &ts, nullptr, 0);
}

static std::uint32_t stw_signalled = 0;  // threads lock
std::uint32_t last_stop_signalled() { return stw_signalled; }

const char* last_stop_late() {
    std::uint32_t e = stw_epoch.load(std::memory_order_relaxed);
    const GcThread* late = nullptr;
    for (const GcThread* t = threads_head; t != nullptr; t = t->next)
        if (t->stop_epoch == e && t->ack_epoch.load(std::memory_order_acquire) == e &&
            (late == nullptr ||
             t->stop_ack_ns.load(std::memory_order_relaxed) > late->stop_ack_ns.load(std::memory_order_relaxed)))
            late = t;
    return late == nullptr ? "-" : kStopHowNames[late->stop_how.load(std::memory_order_relaxed)];
}

__thread std::uint32_t tls_world_stopper __attribute__((tls_model("initial-exec"))) = 0;

void stop_the_world() {
    lock_registry();
    tls_world_stopper = 1;
    std::uint32_t e = stw_epoch.load(std::memory_order_relaxed) + 1;  // odd
    stw_acks.store(0, std::memory_order_relaxed);
    stw_epoch.store(e, std::memory_order_release);
    __atomic_store_n(&gc_stop_requested, 1, __ATOMIC_SEQ_CST);
    GcThread* self = tls_gc_thread;
    std::uint32_t want = 0;
    for (GcThread* t = threads_head; t != nullptr; t = t->next) {
        if (t == self) continue;
        std::uint32_t st = kBlocked;
        if (t->state.compare_exchange_strong(st, kClaimed, std::memory_order_acq_rel)) continue;
        want++;
        t->stop_epoch = e;
    }
    stw_spin_ok.store(want < static_cast<std::uint32_t>(ncpu()) ? 1 : 0, std::memory_order_relaxed);
    // Thread t is one this stop must stop and it has not acknowledged yet.
    auto unacked = [&](GcThread* t) {
        return t != self && t->stop_epoch == e && t->ack_epoch.load(std::memory_order_acquire) != e;
    };
    auto all_acked = [&] {
        for (GcThread* t = threads_head; t != nullptr; t = t->next)
            if (unacked(t)) return false;
        return true;
    };
    // A thread that was running at the claim above may enter a blocking call
    // before it polls: claim it then (its registers and stack pointer are
    // saved), as the handshake does. Without this the stop waited for its
    // signal, which never comes while it sleeps in a raw system call under
    // ThreadSanitizer (signals wait until the call returns): a finalizer
    // thread asleep with no timeout hung a stop for good.
    auto claim_blocked = [&] {
        for (GcThread* t = threads_head; t != nullptr; t = t->next) {
            if (!unacked(t)) continue;
            std::uint32_t st = kBlocked;
            if (t->state.compare_exchange_strong(st, kClaimed, std::memory_order_acq_rel)) {
                t->stop_how.store(kStopClaimed, std::memory_order_relaxed);
                t->stop_ack_ns.store(nanotime(), std::memory_order_relaxed);
                t->ack_epoch.store(e, std::memory_order_release);
                if (want != 0) want--;
            }
        }
    };
    // Threads that allocate or take a lock stop by themselves within
    // microseconds (the poll in nosuspend_exit); signal the others.
    std::uint64_t tp = nanotime();
    while (nanotime() - tp < kStopPollNs && !all_acked())
        for (int i = 0; i < 16; i++) __builtin_ia32_pause();
    claim_blocked();
    stw_signalled = 0;
    for (GcThread* t = threads_head; t != nullptr; t = t->next) {
        if (!unacked(t)) continue;
        stw_signalled++;
        int r = pthread_kill(t->tid, kSuspendSignal);
        if (r != 0) throw_fatal("gc: cannot signal a registered thread (did it exit without unregistering?)");
    }
    std::uint64_t t0 = nanotime();
    for (;;) {
        std::uint32_t n = stw_acks.load(std::memory_order_acquire);
        // Count only this stop's acknowledgements (a stray signal to a
        // claimed thread may have added one).
        if (n >= want && all_acked()) break;
        wait_step(nanotime() - t0, &stw_acks, &stw_waiting);
        claim_blocked();
    }
    stw_waiting.store(0, std::memory_order_relaxed);
}

std::uint64_t start_the_world() {
    // Let every thread go first, then make the system calls that wake sleepers.
    for (GcThread* t = threads_head; t != nullptr; t = t->next) {
        std::uint32_t st = kClaimed;
        t->wake_on_start = t->state.compare_exchange_strong(st, kBlocked, std::memory_order_acq_rel);
    }
    __atomic_store_n(&gc_stop_requested, 0, __ATOMIC_SEQ_CST);
    stw_epoch.fetch_add(1, std::memory_order_seq_cst);  // even
    std::uint64_t now = nanotime();
    for (GcThread* t = threads_head; t != nullptr; t = t->next)
        if (t->wake_on_start) futex(&t->state, FUTEX_WAKE_PRIVATE, 1);
    // (A thread about to sleep counts itself in stw_sleepers first, then
    // re-checks the epoch: seq_cst on both sides, so one of them sees the other.)
    if (stw_sleepers.load(std::memory_order_seq_cst) != 0) futex(&stw_epoch, FUTEX_WAKE_PRIVATE, 0x7fffffff);
    tls_world_stopper = 0;
    threads_lock.unlock();
    return now;
}

bool stop_pending_slow() {
    if (tls_suspend_pending != 0 || (stw_epoch.load(std::memory_order_acquire) & 1) != 0) return true;
    std::uint32_t e = hs_seq.load(std::memory_order_acquire);
    GcThread* t = tls_gc_thread;
    return (e & 1) != 0 && t != nullptr && t->hs_ack.load(std::memory_order_relaxed) != e &&
           t->state.load(std::memory_order_relaxed) == kRunning;
}

static std::uint32_t hs_signalled = 0;  // threads lock: the last handshake's signals

void handshake_begin() {
    lock_registry();
}

void handshake_end() {
    threads_lock.unlock();
}

std::uint64_t handshake(void (*fn)(GcThread*)) {
    hs_fn = fn;
    hs_max_ns.store(0, std::memory_order_relaxed);
    std::uint32_t e = hs_seq.load(std::memory_order_relaxed) + 1;  // odd
    hs_seq.store(e, std::memory_order_seq_cst);
    __atomic_store_n(&gc_stop_requested, 1, __ATOMIC_SEQ_CST);
    GcThread* self = tls_gc_thread;
    if (self != nullptr && self->hs_ack.load(std::memory_order_relaxed) != e) {
        // The caller's own part (a registered thread handshaking): here.
        handshake_self(self, nullptr);
    }
    hs_signalled = 0;
    bool signalled = false;
    std::uint64_t t0 = nanotime();
    for (;;) {
        bool all = true;
        for (GcThread* t = threads_head; t != nullptr; t = t->next) {
            if (t->hs_ack.load(std::memory_order_acquire) == e) continue;
            std::uint32_t st = kBlocked;
            if (t->state.compare_exchange_strong(st, kClaimed, std::memory_order_acq_rel)) {
                // In a blocking call: its registers and stack pointer are saved.
                std::uint64_t w0 = nanotime();
                if (fn != nullptr) fn(t);
                t->hs_ack.store(e, std::memory_order_release);
                note_hs_time(nanotime() - w0);
                t->state.store(kBlocked, std::memory_order_seq_cst);
                futex(&t->state, FUTEX_WAKE_PRIVATE, 1);
                continue;
            }
            all = false;
        }
        if (all) break;
        std::uint64_t el = nanotime() - t0;
        if (!signalled && el >= kHandshakePollNs) {
            // Threads that have not polled (running code that neither
            // allocates nor stores a pointer, or descheduled): the signal.
            signalled = true;
            for (GcThread* t = threads_head; t != nullptr; t = t->next) {
                if (t == self || t->hs_ack.load(std::memory_order_acquire) == e) continue;
                if (t->state.load(std::memory_order_acquire) != kRunning) continue;
                hs_signalled++;
                if (pthread_kill(t->tid, kSuspendSignal) != 0)
                    throw_fatal("gc: cannot signal a registered thread (did it exit without unregistering?)");
            }
        }
        wait_step(el, &hs_acks, &hs_waiting);
    }
    hs_waiting.store(0, std::memory_order_relaxed);
    __atomic_store_n(&gc_stop_requested, 0, __ATOMIC_SEQ_CST);
    hs_seq.store(e + 1, std::memory_order_release);
    hs_fn = nullptr;
    return hs_max_ns.load(std::memory_order_relaxed);
}

std::uint32_t last_handshake_signalled() { return hs_signalled; }

void for_each_thread(void (*f)(GcThread*, void*), void* arg) {
    for (GcThread* t = threads_head; t != nullptr; t = t->next) f(t, arg);
}

}  // namespace goalloc::gc
