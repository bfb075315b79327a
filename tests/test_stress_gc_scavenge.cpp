// The scavenger under allocation: mutator threads build, check and drop lists
// whose size swings between small and large, so that heap goals fall and the
// collector thread releases pages (gc/collector.cpp, scavenge_burst) while the
// other threads allocate from the page heap, and reuse released pages. Every
// cell's payload is checked before its list is dropped, a long-lived list is
// checked throughout, and the heap walk (ga_heap_validate: spans, bitmaps,
// page states, Ready/Prepared accounting) runs after each round, with the
// scavenger possibly mid-step. Then the same under a memory limit, where the
// allocating threads release pages too. In the ThreadSanitizer pass too.
#include "gc_testutil.h"
#include "mheap.h"  // mheap.scavenged_bytes
#include "sys.h"    // sys::stats

#include <gtest/gtest.h>

#include <atomic>
#include <cstdio>
#include <memory>
#include <random>
#include <thread>
#include <vector>

namespace {

using namespace gatest;
using namespace gctest;

struct Cell {
    gc::Ptr<Cell> next;
    std::uint64_t v[5];  // 48 bytes in all
};

__attribute__((noinline)) std::size_t Build(gc::Root<Cell>* root, std::size_t n, std::uint64_t seed) {
    for (std::size_t i = 0; i < n; i++) {
        Cell* c = gc::make<Cell>();
        for (int k = 0; k < 5; k++) c->v[k] = Mix(seed ^ (i * 8 + static_cast<std::uint64_t>(k)));
        c->next = root->get();
        *root = c;
    }
    return n;
}

__attribute__((noinline)) std::size_t Bad(const gc::Root<Cell>& root, std::size_t n, std::uint64_t seed) {
    std::size_t bad = 0, i = n;
    for (Cell* c = root.get(); c != nullptr; c = c->next.get()) {
        if (i == 0) return bad + 1;
        i--;
        for (int k = 0; k < 5; k++)
            if (c->v[k] != Mix(seed ^ (i * 8 + static_cast<std::uint64_t>(k)))) {
                bad++;
                break;
            }
    }
    return bad + i;
}

// A barrier that waits in short sleeps, not in one futex wait: a registered
// thread blocked in a raw system call cannot take the signal of a stop of the
// world under ThreadSanitizer (it defers signals until the call returns), so
// a stop that found it there would wait for it for good while the other
// thread, stopped, never arrived.
class PollingBarrier {
  public:
    explicit PollingBarrier(int n) : n_(n) {}
    void arrive_and_wait() {
        const int g = gen_.load(std::memory_order_acquire);
        if (arrived_.fetch_add(1, std::memory_order_acq_rel) + 1 == n_) {
            arrived_.store(0, std::memory_order_relaxed);
            gen_.fetch_add(1, std::memory_order_acq_rel);
            return;
        }
        while (gen_.load(std::memory_order_acquire) == g) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }

  private:
    const int n_;
    std::atomic<int> arrived_{0}, gen_{0};
};

// Rounds of: two threads build big lists, drop them, one runs two cycles,
// both build, check and drop small lists while the heap is released. Returns
// the bytes released meanwhile.
std::uint64_t RunRounds() {
#if defined(__SANITIZE_THREAD__)
    const int kRounds = 4;
    const std::size_t kBig = 12 * MiB / sizeof(Cell), kSmall = 64 * KiB / sizeof(Cell);
#else
    const int kRounds = 6;
    const std::size_t kBig = 24 * MiB / sizeof(Cell), kSmall = 256 * KiB / sizeof(Cell);
#endif
    const int kThreads = 2;
    auto longlived = std::make_unique<gc::Root<Cell>>();
    const std::size_t nlong = Build(longlived.get(), 100000, 0x1234);
    const std::uint64_t scav0 = goalloc::mheap.scavenged_bytes.load();
    std::atomic<std::size_t> bad{0};
    for (int round = 0; round < kRounds; round++) {
        std::vector<std::thread> ts;
        // Both threads build a big list, then drop it together; one of them
        // runs two cycles, whose goal falls with the marked heap, so the
        // scavenger has the big lists' pages to release while both go on
        // building, checking and dropping small lists.
        PollingBarrier sync(kThreads);
        for (int t = 0; t < kThreads; t++) {
            ts.emplace_back([&, t, round] {
                std::mt19937_64 rng(static_cast<std::uint64_t>(round * 16 + t));
                {
                    const std::uint64_t seed = rng();
                    auto r = std::make_unique<gc::Root<Cell>>();
                    Build(r.get(), kBig, seed);
                    bad.fetch_add(Bad(*r, kBig, seed));
                    sync.arrive_and_wait();
                }
                sync.arrive_and_wait();
                if (t == 0) {
                    ScrubStack();
                    gc::collect();
                    gc::collect();
                }
                for (int phase = 0; phase < 16; phase++) {
                    const std::uint64_t seed = rng();
                    const std::size_t n = kSmall + rng() % kSmall;
                    auto r = std::make_unique<gc::Root<Cell>>();
                    Build(r.get(), n, seed);
                    bad.fetch_add(Bad(*r, n, seed));
                    std::this_thread::sleep_for(std::chrono::milliseconds(5));
                }
            });
        }
        for (auto& th : ts) th.join();
        EXPECT_EQ(bad.load(), 0u) << "round " << round;
        EXPECT_EQ(Bad(*longlived, nlong, 0x1234), 0u) << "round " << round;
        if (bad.load() != 0) break;
        ScrubStack();
        gc::collect();
        // The collector thread may be releasing pages now: the walk allows
        // for the run it has out.
        EXPECT_GT(ga_heap_validate(), 0u);
    }
    return goalloc::mheap.scavenged_bytes.load() - scav0;
}

TEST(GcScavengeStress, ThreadsAllocateWhileTheHeapIsReleased) {
    GcPercentGuard pct(100);
    const std::uint64_t released = RunRounds();
    // The test is about releases under way while threads allocate: make sure
    // there were some.
    std::printf("released %llu MiB while the threads ran\n", static_cast<unsigned long long>(released / MiB));
    EXPECT_GE(released, 8 * MiB);
}

// The same under a memory limit the big lists go over: the allocating
// threads release pages themselves, at once (mheap.scavenge_owed), both at
// the same time and beside the collector thread's scavenger.
TEST(GcScavengeStress, ThreadsOverTheMemoryLimitReleaseAsTheyAllocate) {
    GcPercentGuard pct(100);
    const std::uint64_t ready = goalloc::sys::stats.ready.load() + goalloc::sys::stats.metadata.load();
#if defined(__SANITIZE_THREAD__)
    const std::uint64_t limit = ready + 16 * MiB;
#else
    const std::uint64_t limit = ready + 32 * MiB;
#endif
    const std::int64_t original = gc::set_memory_limit(static_cast<std::int64_t>(limit));
    const std::uint64_t assist0 = goalloc::mheap.scavenged_assist_bytes.load();
    const std::uint64_t released = RunRounds();
    const std::uint64_t assisted = goalloc::mheap.scavenged_assist_bytes.load() - assist0;
    EXPECT_EQ(gc::set_memory_limit(original), static_cast<std::int64_t>(limit));
    std::printf("released %llu MiB, %llu MiB of it by allocating threads\n",
                static_cast<unsigned long long>(released / MiB), static_cast<unsigned long long>(assisted / MiB));
    EXPECT_GE(released, 8 * MiB);
    EXPECT_GT(assisted, 0u);
}

}  // namespace
