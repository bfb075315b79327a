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
#pragma once

#include <atomic>
#include <cstdint>

#include "internal.h"

namespace goalloc {

enum LockRank : std::uint8_t {
    kRankNone = 0,
    kRankMCacheList = 1,
    kRankMCentral = 2,
    kRankMHeap = 3,
};

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
        std::uint32_t c = 0;
        if (GA_LIKELY(state_.compare_exchange_strong(c, 1, std::memory_order_acquire,
                                                     std::memory_order_relaxed)))
            return;
        lock_slow();
    }
    void unlock() {
#if GOALLOC_DEBUG_LEVEL >= 2
        lockrank_release(rank_);
#endif
        if (GA_UNLIKELY(state_.exchange(0, std::memory_order_release) == 2)) wake();
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
