// Thread churn: thousands of short-lived threads, created in waves, each using
// many size classes and leaving some objects behind for other threads. Their
// caches and counters must be recycled at thread exit: the mapped memory and
// the metadata stay bounded, and the heap validates at the end.
//
// Work scales with GOALLOC_TEST_SCALE (and is divided by 10 under TSan).
#include "testutil.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace gatest;
using goalloc::class_to_size;
using goalloc::kNumSizeClasses;

struct Obj {
    void* p;
    std::size_t n;
    std::uint64_t key;
};

// Objects handed between threads, and the first failure seen.
struct Pool {
    std::mutex mu;
    std::vector<Obj> objs;
    std::string failure;

    void Fail(const std::string& msg) {
        std::lock_guard<std::mutex> g(mu);
        if (failure.empty()) failure = msg;
    }
    bool Failed() {
        std::lock_guard<std::mutex> g(mu);
        return !failure.empty();
    }
    std::vector<Obj> TakeUpTo(std::size_t n) {
        std::lock_guard<std::mutex> g(mu);
        n = std::min(n, objs.size());
        std::vector<Obj> out(objs.end() - static_cast<std::ptrdiff_t>(n), objs.end());
        objs.resize(objs.size() - n);
        return out;
    }
    void Give(const std::vector<Obj>& v) {
        std::lock_guard<std::mutex> g(mu);
        objs.insert(objs.end(), v.begin(), v.end());
    }
};

bool CheckAndFree(const Obj& o, Pool& pool, const char* who) {
    std::size_t at = FirstPatternMismatch(o.p, o.n, o.key);
    if (at != o.n) {
        pool.Fail(std::string(who) + ": object " + HexAddr(o.p) + " (" + std::to_string(o.n) +
                  " bytes) corrupted at offset " + std::to_string(at));
        return false;
    }
    ga_free(o.p);
    return true;
}

// One short-lived thread: frees a few objects other threads left (so some
// threads start with a remote free), allocates ~270 objects over all size
// classes plus a few large ones, frees most and leaves ~10% in the pool.
void ChurnThread(Pool& pool, std::uint64_t seed) {
    Rng rng(seed);
    for (const Obj& o : pool.TakeUpTo(rng.Range(0, 20)))
        if (!CheckAndFree(o, pool, "churn thread")) return;
    std::vector<Obj> mine;
    for (int round = 0; round < 4; round++) {
        for (int c = 1; c < kNumSizeClasses; c++) {
            std::size_t n = rng.Range(class_to_size[c - 1] + 1, class_to_size[c]);
            void* p = ga_malloc(n);
            if (!p) return pool.Fail("malloc(" + std::to_string(n) + ") failed");
            mine.push_back(Obj{p, n, PatternKey(p, n, seed)});
            FillPattern(p, n, mine.back().key);
        }
    }
    for (int i = 0; i < 3; i++) {
        std::size_t n = rng.Range(33 * KiB, 256 * KiB);
        void* p = ga_malloc(n);
        if (!p) return pool.Fail("malloc(" + std::to_string(n) + ") failed");
        mine.push_back(Obj{p, n, PatternKey(p, n, seed)});
        FillPattern(p, n, mine.back().key);
    }
    std::vector<Obj> left;
    for (const Obj& o : mine) {
        if (rng.Percent(10)) {
            left.push_back(o);
        } else if (!CheckAndFree(o, pool, "churn thread")) {
            return;
        }
    }
    pool.Give(left);
}

TEST(StressChurn, ThousandsOfShortLivedThreadsDoNotGrowMemory) {
    constexpr int kWaveSize = 8;
    const int waves = static_cast<int>(Scaled(300, 30));  // 2400 threads unscaled
    constexpr std::uint64_t kMappedSlack = 16 * MiB;
    constexpr std::uint64_t kMetadataSlack = 2 * MiB;

    Pool pool;
    ga_stats_t s0 = QuietStats();
    ga_stats_t first{}, peak{};
    int peak_wave = 0;
    for (int w = 0; w < waves; w++) {
        std::vector<std::thread> ts;
        for (int i = 0; i < kWaveSize; i++)
            ts.emplace_back(ChurnThread, std::ref(pool),
                            static_cast<std::uint64_t>(w) * kWaveSize + i + 1);
        for (auto& t : ts) t.join();
        ASSERT_FALSE(pool.Failed()) << pool.failure;
        // The main thread frees about half of what the wave left behind; the
        // next wave's threads take some of the rest.
        for (const Obj& o : pool.TakeUpTo(pool.objs.size() / 2))
            CheckAndFree(o, pool, "main thread");
        ASSERT_FALSE(pool.Failed()) << pool.failure;

        ga_stats_t s = QuietStats();
        ASSERT_EQ(s.live_objects, s.mallocs - s.frees) << "after wave " << w;
        if (w == 0) first = peak = s;
        if (s.bytes_mapped > peak.bytes_mapped) {
            peak = s;
            peak_wave = w;
        }
        ASSERT_LE(s.bytes_mapped, first.bytes_mapped + kMappedSlack)
            << "mapped memory grew from " << first.bytes_mapped << " after the first wave to "
            << s.bytes_mapped << " after wave " << w << " of " << waves;
        ASSERT_LE(s.bytes_metadata, first.bytes_metadata + kMetadataSlack)
            << "metadata grew from " << first.bytes_metadata << " after the first wave to "
            << s.bytes_metadata << " after wave " << w << " (thread caches not recycled?)";
    }
    ga_stats_t last = QuietStats();
    std::printf("%d threads: mapped %.1f MiB after wave 0, peak %.1f MiB (wave %d), %.1f MiB "
                "at the end; metadata %.1f -> %.1f KiB\n",
                waves * kWaveSize, first.bytes_mapped / double(MiB),
                peak.bytes_mapped / double(MiB), peak_wave, last.bytes_mapped / double(MiB),
                first.bytes_metadata / 1024.0, last.bytes_metadata / 1024.0);

    // Everything still in the pool is live, and nothing else from this test.
    EXPECT_EQ(last.live_objects - s0.live_objects, pool.objs.size());
    EXPECT_EQ(ga_heap_validate(), last.live_objects);
    for (const Obj& o : pool.TakeUpTo(pool.objs.size())) CheckAndFree(o, pool, "main thread");
    ASSERT_FALSE(pool.Failed()) << pool.failure;
    ga_stats_t end = QuietStats();
    EXPECT_EQ(end.live_objects, s0.live_objects);
    EXPECT_EQ(end.bytes_in_use, s0.bytes_in_use);
    EXPECT_EQ(ga_heap_validate(), end.live_objects);
}

// Threads whose only goalloc call is a free of objects other threads
// allocated, and threads that allocate and exit without freeing anything:
// both must leave a heap that validates, with exact counters.
TEST(StressChurn, ThreadsThatOnlyFreeOrOnlyAllocateExitCleanly) {
    const int rounds = static_cast<int>(Scaled(200, 20));
    Pool pool;
    ga_stats_t s0 = QuietStats();
    std::uint64_t allocated = 0;
    for (int r = 0; r < rounds; r++) {
        // An allocate-only thread.
        std::thread a([&pool, r] {
            Rng rng(900 + r);
            std::vector<Obj> mine;
            for (int i = 0; i < 100; i++) {
                std::size_t n = rng.Percent(95) ? rng.Range(1, 4096) : rng.Range(33 * KiB, 100 * KiB);
                void* p = ga_malloc(n);
                if (!p) return pool.Fail("malloc failed");
                mine.push_back(Obj{p, n, PatternKey(p, n, 900)});
                FillPattern(p, n, mine.back().key);
            }
            pool.Give(mine);
        });
        a.join();
        ASSERT_FALSE(pool.Failed()) << pool.failure;
        allocated += 100;
        // A free-only thread.
        std::vector<Obj> batch = pool.TakeUpTo(100);
        std::thread f([&pool, batch] {
            for (const Obj& o : batch)
                if (!CheckAndFree(o, pool, "free-only thread")) return;
        });
        f.join();
        ASSERT_FALSE(pool.Failed()) << pool.failure;
    }
    ga_stats_t s1 = QuietStats();
    EXPECT_EQ(s1.mallocs - s0.mallocs, allocated);
    EXPECT_EQ(s1.frees - s0.frees, allocated);
    EXPECT_EQ(s1.live_objects, s0.live_objects);
    EXPECT_EQ(s1.bytes_in_use, s0.bytes_in_use);
    EXPECT_EQ(ga_heap_validate(), s1.live_objects);
}

}  // namespace
