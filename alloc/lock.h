// lock.h — the allocator's mutex and its lock ranks.
//
// Mutex is a three-state futex lock (0 free, 1 held, 2 held with waiters) that
// never allocates, so it can be used inside malloc and across fork.
//
// Lock order is data (as Go's lockrank): a thread may take a lock only if its
// rank is greater than every rank it already holds. At GOALLOC_DEBUG_LEVEL >= 2
// each acquisition is checked against the ranks the thread holds.
//
//   rank               guards
//   kRankMCacheList    the registry of live mcaches (stats walk, fork)
//   kRankMCentral      one mcentral's partial/full span lists
//   kRankMHeap         the page heap, arenas, span metadata (fixalloc), large stats
//
// So mcentral may call into mheap while holding its lock, never the reverse.
// The collector's locks (gc/) take ranks around these (see the enum).
//
// Suspension: the collector stops threads with a signal (gc/world.cpp). A
// thread must never be stopped while it holds an allocator lock, or inside a
// collected allocation or write barrier (the collector would see half an
// update, or wait for a lock the stopped thread holds). Such a region is
// "nosuspend": tls_nosuspend > 0. The signal handler then only sets
// tls_suspend_pending, and the thread stops itself when it leaves the region.
// Every Mutex is nosuspend while held (not while waiting for it).
#pragma once

#include <atomic>
#include <cstdint>

#include "internal.h"

namespace goalloc {

enum LockRank : std::uint8_t {
    kRankNone = 0,
    kRankGcThreads = 1,    // gc: the registry of mutator threads (held across a stop-the-world)
    kRankGcFinalizers = 2, // gc: finalizer table and queue (may malloc)
    kRankGcRoots = 3,      // gc: Root<T> list and root ranges; cycle statistics (may malloc)
    kRankMCacheList = 4,
    kRankMCentral = 5,     // also the collected heap's mcentrals
    kRankMHeap = 6,
    kRankGcWork = 7,       // gc: the global work-buffer lists, the pacer (leaves)
};

// Nosuspend regions (see the top of this file). Same-thread signal safety
// only needs compiler ordering, hence signal fences.
// (Exported: goalloc/gc.hpp's inline write barrier uses them too.)
extern __thread std::uint32_t tls_nosuspend
    __attribute__((tls_model("initial-exec"), visibility("default")));
extern __thread std::uint32_t tls_suspend_pending
    __attribute__((tls_model("initial-exec"), visibility("default")));
// Installed by the collector: stop this thread now (it has a pending stop request).
extern void (*suspend_hook)() __attribute__((visibility("default")));
// Set by the collector while it stops the world: a thread leaving its last
// nosuspend region stops itself at once (a poll, cheaper than a signal).
extern std::uint32_t gc_stop_requested __attribute__((visibility("default")));
GA_INLINE void nosuspend_enter() {
    tls_nosuspend++;
    std::atomic_signal_fence(std::memory_order_seq_cst);
}
GA_INLINE void nosuspend_exit() {
    std::atomic_signal_fence(std::memory_order_seq_cst);
    if (--tls_nosuspend == 0 &&
        GA_UNLIKELY((tls_suspend_pending | __atomic_load_n(&gc_stop_requested, __ATOMIC_RELAXED)) != 0))
        suspend_hook();
}

void lockrank_acquire(LockRank r);  // debug level >= 2 only
void lockrank_release(LockRank r);

class Mutex {
public:
    explicit constexpr Mutex(LockRank rank) : rank_(rank) {}
    Mutex(const Mutex&) = delete;
    Mutex& operator=(const Mutex&) = delete;

    void lock() {
#if GOALLOC_DEBUG_LEVEL >= 2
        lockrank_acquire(rank_);
#endif
        // Nosuspend before the lock is taken: a stop between taking it and
        // entering the region would park a thread holding it. lock_slow
        // leaves the region while it waits.
        nosuspend_enter();
        std::uint32_t c = 0;
        if (GA_UNLIKELY(!state_.compare_exchange_strong(c, 1, std::memory_order_acquire,
                                                        std::memory_order_relaxed)))
            lock_slow();
    }
    void unlock() {
#if GOALLOC_DEBUG_LEVEL >= 2
        lockrank_release(rank_);
#endif
        if (GA_UNLIKELY(state_.exchange(0, std::memory_order_release) == 2)) wake();
        nosuspend_exit();
    }
    // Debug aid for *_locked functions: is this lock held by anyone? (Rank-held
    // by this thread at debug level 2.)
    bool is_locked() const { return state_.load(std::memory_order_relaxed) != 0; }
    // fork() handlers take every allocator lock at once, outside the rank
    // discipline (several locks of one rank); they use these.
    void lock_for_fork() {
        std::uint32_t c = 0;
        if (!state_.compare_exchange_strong(c, 1, std::memory_order_acquire, std::memory_order_relaxed))
            lock_slow();
    }
    void unlock_for_fork() {
        if (state_.exchange(0, std::memory_order_release) == 2) wake();
    }
    // In the child after fork(), where only the forking thread survives.
    void reset_after_fork() { state_.store(0, std::memory_order_relaxed); }

private:
    void lock_slow();
    void wake();
    std::atomic<std::uint32_t> state_{0};
    LockRank rank_;
};

#if GOALLOC_DEBUG_LEVEL >= 2
#define GA_ASSERT_LOCK_HELD(m) GA_CHECK((m).is_locked())
#else
#define GA_ASSERT_LOCK_HELD(m) \
    do {                       \
    } while (0)
#endif

class LockGuard {
public:
    explicit LockGuard(Mutex& m) : m_(m) { m_.lock(); }
    ~LockGuard() { m_.unlock(); }
    LockGuard(const LockGuard&) = delete;
    LockGuard& operator=(const LockGuard&) = delete;

private:
    Mutex& m_;
};

}  // namespace goalloc
