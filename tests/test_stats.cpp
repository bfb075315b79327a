// ga_stats(), ga_heap_validate() and ga_release_free_memory(): the counters
// follow exactly what the program did, at quiet points.
#include "testutil.h"

#include <gtest/gtest.h>

#include <condition_variable>
#include <cstring>
#include <mutex>
#include <thread>
#include <vector>

namespace {

using namespace gatest;
using goalloc::class_to_size;
using goalloc::kMaxSmallSize;
using goalloc::kNumSizeClasses;

constexpr std::uint64_t kArenaSize = 64 * MiB;

// Allocates `count` objects of `size` bytes; returns them and their usable bytes.
std::vector<void*> AllocMany(std::size_t size, std::size_t count, std::uint64_t* usable_sum) {
    std::vector<void*> out;
    *usable_sum = 0;
    for (std::size_t i = 0; i < count; i++) {
        void* p = ga_malloc(size);
        if (p == nullptr) {
            ADD_FAILURE() << "ga_malloc(" << size << ") failed";
            break;
        }
        *usable_sum += ga_usable_size(p);
        out.push_back(p);
    }
    return out;
}
void FreeAll(std::vector<void*>& ptrs) {
    for (void* p : ptrs) ga_free(p);
    ptrs.clear();
}

// Checks the relations that hold between the counters at any quiet point.
void ExpectConsistent(const ga_stats_t& s) {
    EXPECT_EQ(s.live_objects, s.mallocs - s.frees);
    EXPECT_LE(s.frees, s.mallocs);
    EXPECT_LE(s.bytes_released, s.bytes_mapped);
    EXPECT_LE(s.bytes_in_use, s.bytes_mapped - s.bytes_released)
        << "live objects must sit in mapped, not released, memory";
    EXPECT_LE(s.bytes_mapped, s.bytes_reserved);
    EXPECT_LE(s.bytes_reserved, s.arenas * kArenaSize);
    EXPECT_LE(s.large_objects, s.live_objects);
    EXPECT_LE(s.large_objects, s.spans_in_use);
    if (s.live_objects > 0) {
        EXPECT_GT(s.spans_in_use, 0u);
        EXPECT_GT(s.bytes_in_use, 0u);
        EXPECT_GE(s.arenas, 1u);
        EXPECT_GT(s.bytes_metadata, 0u);
    }
}

// ---------------------------------------------------------------- counters

TEST(Stats, MallocAndFreeCountersFollowEachCallExactly) {
    const std::size_t sizes[] = {0, 1, 8, 9, 48, 100, 1000, 1025, 4096, 20000, 32768,
                                 32769, 100 * KiB, 2 * MiB};
    for (std::size_t size : sizes) {
        SCOPED_TRACE(::testing::Message() << size << "-byte objects");
        const std::size_t count = size > kMaxSmallSize ? 5 : 300;
        ga_stats_t s0 = QuietStats();
        std::uint64_t usable = 0;
        std::vector<void*> ptrs = AllocMany(size, count, &usable);
        ASSERT_EQ(ptrs.size(), count);
        ga_stats_t s1 = QuietStats();
        EXPECT_EQ(s1.mallocs - s0.mallocs, count);
        EXPECT_EQ(s1.frees - s0.frees, 0u);
        EXPECT_EQ(s1.live_objects - s0.live_objects, count);
        EXPECT_EQ(s1.bytes_in_use - s0.bytes_in_use, usable);
        if (size <= kMaxSmallSize) {
            EXPECT_EQ(usable, count * ClassSizeOf(size));
        }
        EXPECT_GT(s1.spans_in_use, 0u);
        ExpectConsistent(s1);

        // Free half, then the rest.
        std::vector<void*> first(ptrs.begin(), ptrs.begin() + count / 2);
        std::vector<void*> rest(ptrs.begin() + count / 2, ptrs.end());
        std::uint64_t first_bytes = 0;
        for (void* p : first) first_bytes += ga_usable_size(p);
        FreeAll(first);
        ga_stats_t s2 = QuietStats();
        EXPECT_EQ(s2.frees - s0.frees, count / 2);
        EXPECT_EQ(s2.live_objects - s0.live_objects, count - count / 2);
        EXPECT_EQ(s1.bytes_in_use - s2.bytes_in_use, first_bytes);
        ExpectConsistent(s2);

        FreeAll(rest);
        ga_stats_t s3 = QuietStats();
        EXPECT_EQ(s3.mallocs - s0.mallocs, count);
        EXPECT_EQ(s3.frees - s0.frees, count);
        EXPECT_EQ(s3.live_objects, s0.live_objects);
        EXPECT_EQ(s3.bytes_in_use, s0.bytes_in_use);
        ExpectConsistent(s3);
    }
}

TEST(Stats, BytesInUseMovesByTheClassSizeOfEachObject) {
    for (int c = 1; c < kNumSizeClasses; c++) {
        // A request one byte above the previous class lands in class c.
        std::size_t n = class_to_size[c - 1] + 1;
        ga_stats_t before = QuietStats();
        void* p = ga_malloc(n);
        ASSERT_NE(p, nullptr);
        ga_stats_t during = QuietStats();
        EXPECT_EQ(during.bytes_in_use - before.bytes_in_use, class_to_size[c])
            << "malloc(" << n << "), class " << c;
        ga_free(p);
        EXPECT_EQ(QuietStats().bytes_in_use, before.bytes_in_use) << "free of class " << c;
    }
}

TEST(Stats, CallocReallocAndAlignedAllocAreCounted) {
    ga_stats_t s0 = QuietStats();
    void* a = ga_calloc(10, 10);
    void* b = ga_aligned_alloc(4096, 100);
    void* c = ga_realloc(nullptr, 300);
    ASSERT_TRUE(a && b && c);
    ga_stats_t s1 = QuietStats();
    EXPECT_EQ(s1.live_objects - s0.live_objects, 3u);
    EXPECT_EQ(s1.mallocs - s0.mallocs, 3u);
    EXPECT_EQ(s1.bytes_in_use - s0.bytes_in_use,
              ga_usable_size(a) + ga_usable_size(b) + ga_usable_size(c));

    // Moving an object with realloc keeps the live count.
    c = ga_realloc(c, 100 * KiB);
    ASSERT_NE(c, nullptr);
    ga_stats_t s2 = QuietStats();
    EXPECT_EQ(s2.live_objects, s1.live_objects);
    EXPECT_EQ(s2.large_objects, s1.large_objects + 1);
    EXPECT_EQ(s2.bytes_in_use - s0.bytes_in_use,
              ga_usable_size(a) + ga_usable_size(b) + ga_usable_size(c));
    ExpectConsistent(s2);

    EXPECT_EQ(ga_realloc(c, 0), nullptr);
    ga_free(a);
    ga_free(b);
    ga_stats_t s3 = QuietStats();
    EXPECT_EQ(s3.live_objects, s0.live_objects);
    EXPECT_EQ(s3.bytes_in_use, s0.bytes_in_use);
    EXPECT_EQ(s3.large_objects, s0.large_objects);
}

TEST(Stats, LargeObjectsCountsOnlyObjectsAbove32K) {
    ga_stats_t s0 = QuietStats();
    void* small_max = ga_malloc(kMaxSmallSize);  // the largest small object
    void* large_min = ga_malloc(kMaxSmallSize + 1);
    void* large_big = ga_malloc(1 * MiB);
    ASSERT_TRUE(small_max && large_min && large_big);
    ga_stats_t s1 = QuietStats();
    EXPECT_EQ(s1.large_objects - s0.large_objects, 2u);
    EXPECT_EQ(s1.live_objects - s0.live_objects, 3u);
    ga_free(large_min);
    EXPECT_EQ(QuietStats().large_objects - s0.large_objects, 1u);
    ga_free(small_max);
    EXPECT_EQ(QuietStats().large_objects - s0.large_objects, 1u);
    ga_free(large_big);
    EXPECT_EQ(QuietStats().large_objects, s0.large_objects);
}

TEST(Stats, EachLargeObjectHoldsItsOwnSpan) {
    ga_stats_t s0 = QuietStats();
    std::uint64_t usable = 0;
    std::vector<void*> ptrs = AllocMany(200 * KiB, 3, &usable);
    ASSERT_EQ(ptrs.size(), 3u);
    ga_stats_t s1 = QuietStats();
    EXPECT_EQ(s1.spans_in_use - s0.spans_in_use, 3u);
    FreeAll(ptrs);
    EXPECT_EQ(QuietStats().spans_in_use, s0.spans_in_use);
}

TEST(Stats, SpansAreInUseWhileObjectsOfEveryClassLive) {
    ga_stats_t s0 = QuietStats();
    std::vector<void*> ptrs;
    for (int c = 1; c < kNumSizeClasses; c++) {
        void* p = ga_malloc(class_to_size[c]);
        ASSERT_NE(p, nullptr);
        ptrs.push_back(p);
    }
    ga_stats_t s1 = QuietStats();
    // One object per class: every class needs a span of its own.
    EXPECT_GE(s1.spans_in_use, static_cast<std::uint64_t>(kNumSizeClasses - 1));
    ExpectConsistent(s1);
    FreeAll(ptrs);
    ga_stats_t s2 = QuietStats();
    EXPECT_EQ(s2.live_objects, s0.live_objects);
    ExpectConsistent(s2);
}

// ---------------------------------------------------------------- threads and validate

// Runs `fn` on `n` threads and joins them.
template <typename F>
void RunThreads(int n, F fn) {
    std::vector<std::thread> ts;
    for (int i = 0; i < n; i++) ts.emplace_back(fn, i);
    for (auto& t : ts) t.join();
}

TEST(Stats, CountersOfExitedThreadsAreMergedAtJoin) {
    // Threads that only allocate: their objects come back to the main thread.
    constexpr int kThreads = 4, kPerThread = 500;
    ga_stats_t s0 = QuietStats();
    std::mutex mu;
    std::vector<void*> handed;
    RunThreads(kThreads, [&](int t) {
        std::vector<void*> mine;
        for (int i = 0; i < kPerThread; i++) {
            void* p = ga_malloc(static_cast<std::size_t>(16 + (i % 50) * 24 + t));
            if (p) mine.push_back(p);
        }
        std::lock_guard<std::mutex> g(mu);
        handed.insert(handed.end(), mine.begin(), mine.end());
    });
    ASSERT_EQ(handed.size(), static_cast<std::size_t>(kThreads * kPerThread));
    ga_stats_t s1 = QuietStats();
    EXPECT_EQ(s1.mallocs - s0.mallocs, handed.size());
    EXPECT_EQ(s1.live_objects - s0.live_objects, handed.size());
    EXPECT_EQ(ga_heap_validate(), s1.live_objects);

    // Threads that only free (their first goalloc call is ga_free).
    std::vector<std::vector<void*>> batches(kThreads);
    for (std::size_t i = 0; i < handed.size(); i++) batches[i % kThreads].push_back(handed[i]);
    RunThreads(kThreads, [&](int t) {
        for (void* p : batches[t]) ga_free(p);
    });
    ga_stats_t s2 = QuietStats();
    EXPECT_EQ(s2.frees - s1.frees, handed.size());
    EXPECT_EQ(s2.live_objects, s0.live_objects);
    EXPECT_EQ(s2.bytes_in_use, s0.bytes_in_use);
    EXPECT_EQ(ga_heap_validate(), s2.live_objects);
    ExpectConsistent(s2);
}

TEST(Stats, HeapValidateCountsTheLiveObjectsAtAQuietPoint) {
    constexpr int kThreads = 4;
    std::mutex mu;
    std::vector<void*> kept;
    ga_stats_t s0 = QuietStats();
    EXPECT_EQ(ga_heap_validate(), s0.live_objects);
    RunThreads(kThreads, [&](int t) {
        Rng rng(1000 + t);
        std::vector<void*> live;
        for (int i = 0; i < 20000; i++) {
            if (!live.empty() && rng.Percent(45)) {
                std::size_t k = rng.Next() % live.size();
                ga_free(live[k]);
                live[k] = live.back();
                live.pop_back();
            } else {
                std::size_t n = rng.Percent(97) ? rng.Range(1, 2000) : rng.Range(2001, 300 * KiB);
                if (void* p = ga_malloc(n)) live.push_back(p);
            }
        }
        std::lock_guard<std::mutex> g(mu);
        kept.insert(kept.end(), live.begin(), live.end());
    });
    ga_stats_t s1 = QuietStats();
    EXPECT_EQ(s1.live_objects - s0.live_objects, kept.size());
    EXPECT_EQ(s1.live_objects, s1.mallocs - s1.frees);
    EXPECT_EQ(ga_heap_validate(), s1.live_objects);
    ExpectConsistent(s1);
    FreeAll(kept);
    ga_stats_t s2 = QuietStats();
    EXPECT_EQ(s2.live_objects, s0.live_objects);
    EXPECT_EQ(ga_heap_validate(), s2.live_objects);
}

TEST(Stats, ThreadFlushMakesAWorkingThreadsCountersExact) {
    // A live worker flushes, then parks: its counters must be visible.
    std::mutex mu;
    std::condition_variable cv;
    bool flushed = false, done = false;
    std::vector<void*> ptrs;
    ga_stats_t s0 = QuietStats();
    std::thread worker([&] {
        for (int i = 0; i < 300; i++)
            if (void* p = ga_malloc(40)) ptrs.push_back(p);
        for (int i = 0; i < 100; i++) ga_free(ptrs[i]);
        ga_thread_flush();
        std::unique_lock<std::mutex> lk(mu);
        flushed = true;
        cv.notify_all();
        cv.wait(lk, [&] { return done; });
    });
    {
        std::unique_lock<std::mutex> lk(mu);
        cv.wait(lk, [&] { return flushed; });
    }
    ga_stats_t s1 = QuietStats();
    EXPECT_EQ(s1.mallocs - s0.mallocs, 300u);
    EXPECT_EQ(s1.frees - s0.frees, 100u);
    EXPECT_EQ(s1.live_objects - s0.live_objects, 200u);
    EXPECT_EQ(ga_heap_validate(), s1.live_objects);
    {
        std::lock_guard<std::mutex> lk(mu);
        done = true;
        cv.notify_all();
    }
    worker.join();
    for (int i = 100; i < 300; i++) ga_free(ptrs[i]);
    EXPECT_EQ(QuietStats().live_objects, s0.live_objects);
}

// ---------------------------------------------------------------- releasing memory

TEST(Stats, ReleasingFreedLargeMemoryGivesBytesBackToTheOS) {
    std::vector<void*> ptrs;
    for (int i = 0; i < 64; i++) {
        void* p = ga_malloc(1 * MiB);
        ASSERT_NE(p, nullptr);
        std::memset(p, 0x5C, 1 * MiB);  // make the pages resident
        ptrs.push_back(p);
    }
    FreeAll(ptrs);
    ga_stats_t before = QuietStats();
    std::size_t released = ga_release_free_memory();
    ga_stats_t after = QuietStats();
    EXPECT_GT(released, 0u);
    // 64 MiB were freed in whole pages; nearly all of it can go back.
    EXPECT_GE(released, 32 * MiB);
    EXPECT_GT(after.bytes_released, before.bytes_released);
    EXPECT_GE(after.bytes_released - before.bytes_released, released);
    ExpectConsistent(after);
}

TEST(Stats, ReleasingTwiceWithoutFreeingReleasesNothingMore) {
    void* p = ga_malloc(8 * MiB);
    ASSERT_NE(p, nullptr);
    std::memset(p, 1, 8 * MiB);
    ga_free(p);
    ga_thread_flush();
    EXPECT_GT(ga_release_free_memory(), 0u);
    EXPECT_EQ(ga_release_free_memory(), 0u);
}

TEST(Stats, ReusingReleasedPagesLowersBytesReleasedAndReadsAsZeroInCalloc) {
    std::vector<void*> ptrs;
    for (int i = 0; i < 16; i++) {
        void* p = ga_malloc(1 * MiB);
        ASSERT_NE(p, nullptr);
        std::memset(p, 0xEE, 1 * MiB);
        ptrs.push_back(p);
    }
    FreeAll(ptrs);
    ga_thread_flush();
    ASSERT_GT(ga_release_free_memory(), 0u);
    ga_stats_t released = QuietStats();
    ASSERT_GT(released.bytes_released, 0u);
    for (int i = 0; i < 16; i++) {
        void* p = ga_calloc(1, 1 * MiB);
        ASSERT_NE(p, nullptr);
        EXPECT_EQ(FirstNonZero(p, 1 * MiB), 1 * MiB) << "calloc over released pages " << p;
        ptrs.push_back(p);
    }
    ga_stats_t reused = QuietStats();
    EXPECT_LT(reused.bytes_released, released.bytes_released);
    ExpectConsistent(reused);
    FreeAll(ptrs);
}

TEST(Stats, CountersStayConsistentAtEveryQuietPoint) {
    Rng rng(5);
    std::vector<void*> live;
    for (int round = 0; round < 50; round++) {
        for (int i = 0; i < 200; i++) {
            if (!live.empty() && rng.Percent(40)) {
                std::size_t k = rng.Next() % live.size();
                ga_free(live[k]);
                live[k] = live.back();
                live.pop_back();
            } else if (void* p = ga_malloc(rng.Percent(98) ? rng.Range(0, 4000)
                                                            : rng.Range(32 * KiB, 1 * MiB))) {
                live.push_back(p);
            }
        }
        if (round % 10 == 9) ga_release_free_memory();
        ga_stats_t s = QuietStats();
        SCOPED_TRACE(::testing::Message() << "round " << round);
        ExpectConsistent(s);
        ASSERT_EQ(ga_heap_validate(), s.live_objects);
    }
    FreeAll(live);
}

}  // namespace
