// lock.cpp — futex slow paths and the debug lock-rank checker.
#include "lock.h"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace goalloc {

__thread std::uint32_t tls_nosuspend
    __attribute__((tls_model("initial-exec"), visibility("default"))) = 0;
__thread std::uint32_t tls_suspend_pending
    __attribute__((tls_model("initial-exec"), visibility("default"))) = 0;
static void no_suspend_hook() { tls_suspend_pending = 0; }
__attribute__((visibility("default"))) void (*suspend_hook)() = no_suspend_hook;
__attribute__((visibility("default"))) std::uint32_t gc_stop_requested = 0;

static long futex(std::atomic<std::uint32_t>* addr, int op, std::uint32_t val) {
    return syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(addr), op, val, nullptr, nullptr, 0);
}

void Mutex::lock_slow() {
    // Spin briefly: the critical sections of the allocator are short.
    for (int i = 0; i < 64; i++) {
        std::uint32_t c = 0;
        if (state_.compare_exchange_weak(c, 1, std::memory_order_acquire, std::memory_order_relaxed))
            return;
        __builtin_ia32_pause();
    }
    // Mark contended and sleep until the holder wakes us. A waiting thread
    // holds nothing: it may be stopped (lock.h), so it leaves its nosuspend
    // region while it sleeps.
    while (state_.exchange(2, std::memory_order_acquire) != 0) {
        nosuspend_exit();
        futex(&state_, FUTEX_WAIT_PRIVATE, 2);
        nosuspend_enter();
    }
}

void Mutex::wake() { futex(&state_, FUTEX_WAKE_PRIVATE, 1); }

// Ranks held by this thread, as a bitmask (ranks are small integers).
static thread_local std::uint32_t held_ranks;

void lockrank_acquire(LockRank r) {
    std::uint32_t same_or_above = held_ranks & ~((1u << r) - 1);
    if (GA_UNLIKELY(same_or_above != 0)) {
        Msg m;
        m.s("goalloc: fatal error: lock order violation: taking rank ").dec(r).s(" while holding ranks mask ")
            .hex(held_ranks).s("\n");
        m.fatal();
    }
    held_ranks |= 1u << r;
}

void lockrank_release(LockRank r) { held_ranks &= ~(1u << r); }

}  // namespace goalloc
