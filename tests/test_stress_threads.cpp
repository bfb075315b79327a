// Multi-threaded stress: random malloc/calloc/aligned_alloc/realloc/free on
// several threads, every object filled with a pattern from (address, size,
// seed) and verified when it is freed, a share of the objects freed by another
// thread. At the end the heap is validated against the statistics.
//
// Work scales with GOALLOC_TEST_SCALE (and is divided by 10 under TSan).
#include "testutil.h"

#include <gtest/gtest.h>

#include <atomic>
#include <barrier>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace gatest;
using goalloc::kMaxSmallSize;

// An object the test owns: where, how many bytes were asked for, its pattern key.
struct Obj {
    void* p;
    std::size_t n;
    std::uint64_t key;
};

// Sizes skewed small: 60% <= 128 B, 25% <= 1 KiB, 10% <= 8 KiB, 4% <= 32 KiB,
// 0.9% up to 64 KiB and 0.1% up to 1 MiB.
std::size_t PickSize(Rng& r) {
    std::uint64_t x = r.Next() % 10000;
    if (x < 6000) return r.Range(1, 128);
    if (x < 8500) return r.Range(129, 1024);
    if (x < 9500) return r.Range(1025, 8 * KiB);
    if (x < 9900) return r.Range(8 * KiB + 1, 32 * KiB);
    if (x < 9990) return r.Range(32 * KiB + 1, 64 * KiB);
    return r.Range(64 * KiB + 1, 1 * MiB);
}

// The first failure any thread saw; later ones are dropped.
class FailureLog {
  public:
    void Record(const std::string& msg) {
        std::lock_guard<std::mutex> g(mu_);
        if (!failed_.exchange(true)) first_ = msg;
    }
    bool Failed() const { return failed_.load(std::memory_order_relaxed); }
    std::string First() {
        std::lock_guard<std::mutex> g(mu_);
        return first_;
    }

  private:
    std::mutex mu_;
    std::atomic<bool> failed_{false};
    std::string first_;
};

std::string Describe(const char* what, const Obj& o, std::size_t at) {
    char buf[200];
    std::snprintf(buf, sizeof buf, "%s: object %p (%zu bytes) corrupted at offset %zu", what, o.p,
                  o.n, at);
    return buf;
}

// Verifies an object's pattern and usable size. Returns false (and logs) on damage.
bool VerifyObj(const Obj& o, FailureLog& log, const char* who) {
    std::size_t at = FirstPatternMismatch(o.p, o.n, o.key);
    if (at != o.n) {
        log.Record(Describe(who, o, at));
        return false;
    }
    std::size_t u = ga_usable_size(o.p);
    if (u < o.n) {
        log.Record(std::string(who) + ": usable size below the request for " + HexAddr(o.p));
        return false;
    }
    return true;
}

// A mutex-protected queue of objects to be freed by its owner thread.
struct Inbox {
    std::mutex mu;
    std::vector<Obj> items;
};

struct StressConfig {
    int threads;
    std::size_t ops_per_thread;  // before scaling
    std::size_t max_live = 3000;     // objects a thread holds at most
    unsigned remote_free_pct = 15;   // share of frees done by another thread
};

// Runs the random-operation workload; objects still live at the end are
// returned (half freed by their thread, half handed back to the caller).
class RandomOpsStress {
  public:
    explicit RandomOpsStress(const StressConfig& cfg)
        : cfg_(cfg), ops_(Scaled(cfg.ops_per_thread, 1000)), inboxes_(cfg.threads),
          done_(cfg.threads) {
        for (auto& b : inboxes_) b = std::make_unique<Inbox>();
    }

    // Returns the survivors handed back; failures are in log().
    std::vector<Obj> Run() {
        std::vector<std::thread> ts;
        for (int t = 0; t < cfg_.threads; t++) ts.emplace_back([this, t] { Worker(t); });
        for (auto& t : ts) t.join();
        return std::move(survivors_);
    }
    FailureLog& log() { return log_; }
    std::size_t ops() const { return ops_; }

  private:
    bool Alloc(Rng& rng, std::uint64_t seed, std::vector<Obj>& live) {
        std::size_t n = PickSize(rng);
        unsigned kind = rng.Next() % 100;
        void* p = nullptr;
        if (kind < 85) {
            p = ga_malloc(n);
            if (p && n <= kMaxSmallSize && ga_usable_size(p) != ClassSizeOf(n)) {
                log_.Record("usable size of a " + std::to_string(n) + "-byte object is " +
                            std::to_string(ga_usable_size(p)));
                return false;
            }
        } else if (kind < 93) {
            p = ga_calloc(1, n);
            if (p && FirstNonZero(p, n) != n) {
                log_.Record("calloc(1, " + std::to_string(n) + ") = " + HexAddr(p) +
                            " is not zeroed");
                return false;
            }
        } else {
            std::size_t align = std::size_t{1} << rng.Range(3, 13);
            p = ga_aligned_alloc(align, n);
            if (p && !IsAligned(p, align)) {
                log_.Record("aligned_alloc(" + std::to_string(align) + ") returned " + HexAddr(p));
                return false;
            }
        }
        if (!p) {
            log_.Record("allocation of " + std::to_string(n) + " bytes failed");
            return false;
        }
        Obj o{p, n, PatternKey(p, n, seed)};
        FillPattern(o.p, o.n, o.key);
        live.push_back(o);
        return true;
    }

    bool Realloc(Rng& rng, std::uint64_t seed, Obj& o) {
        if (!VerifyObj(o, log_, "before realloc")) return false;
        std::size_t m = PickSize(rng);
        void* q = ga_realloc(o.p, m);
        if (!q) {
            log_.Record("realloc to " + std::to_string(m) + " bytes failed");
            return false;
        }
        std::size_t keep = std::min(o.n, m);
        std::size_t at = FirstPatternMismatch(q, keep, o.key);
        if (at != keep) {
            log_.Record(Describe("realloc lost contents", Obj{q, keep, o.key}, at));
            return false;
        }
        o = Obj{q, m, PatternKey(q, m, seed)};
        FillPattern(o.p, o.n, o.key);
        return true;
    }

    bool Free(const Obj& o, const char* who) {
        if (!VerifyObj(o, log_, who)) return false;
        ga_free(o.p);
        return true;
    }

    bool DrainInbox(int t) {
        std::vector<Obj> items;
        {
            std::lock_guard<std::mutex> g(inboxes_[t]->mu);
            items.swap(inboxes_[t]->items);
        }
        for (const Obj& o : items)
            if (!Free(o, "cross-thread free")) return false;
        return true;
    }

    void Worker(int t) {
        const std::uint64_t seed = 0xC0FFEE + static_cast<std::uint64_t>(t) * 7919;
        Rng rng(seed);
        std::vector<Obj> live;
        live.reserve(cfg_.max_live + 1);
        bool ok = true;
        for (std::size_t op = 0; ok && op < ops_; op++) {
            if (op % 64 == 0) {
                ok = DrainInbox(t);
                if (log_.Failed()) break;
            }
            if (op % 5000 == 4999) ga_thread_flush();
            unsigned r = rng.Next() % 100;
            unsigned alloc_pct = live.size() < cfg_.max_live / 2 ? 60 : 40;
            if (live.empty() || (r < alloc_pct && live.size() < cfg_.max_live)) {
                ok = Alloc(rng, seed, live);
            } else if (r < alloc_pct + 5) {
                ok = Realloc(rng, seed, live[rng.Next() % live.size()]);
            } else {
                std::size_t k = rng.Next() % live.size();
                Obj o = live[k];
                live[k] = live.back();
                live.pop_back();
                if (cfg_.threads > 1 && rng.Percent(cfg_.remote_free_pct)) {
                    int to = static_cast<int>((t + 1 + rng.Next() % (cfg_.threads - 1)) % cfg_.threads);
                    std::lock_guard<std::mutex> g(inboxes_[to]->mu);
                    inboxes_[to]->items.push_back(o);
                } else {
                    ok = Free(o, "local free");
                }
            }
        }
        // Nobody sends after this point: every thread drains its inbox once more.
        done_.arrive_and_wait();
        if (!DrainInbox(t)) return;
        // Free half of what is left here, hand the rest to the main thread.
        std::size_t half = live.size() / 2;
        for (std::size_t i = 0; i < half; i++)
            if (!Free(live[i], "final free")) return;
        std::lock_guard<std::mutex> g(survivors_mu_);
        survivors_.insert(survivors_.end(), live.begin() + static_cast<std::ptrdiff_t>(half),
                          live.end());
    }

    StressConfig cfg_;
    std::size_t ops_;
    std::vector<std::unique_ptr<Inbox>> inboxes_;
    std::barrier<> done_;
    FailureLog log_;
    std::mutex survivors_mu_;
    std::vector<Obj> survivors_;
};

// Runs the stress and checks the heap against the statistics afterwards.
void RunRandomOpsAndValidate(const StressConfig& cfg) {
    ga_stats_t s0 = QuietStats();
    RandomOpsStress stress(cfg);
    auto t0 = std::chrono::steady_clock::now();
    std::vector<Obj> survivors = stress.Run();
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("%d threads x %zu ops: %.2f s, %zu objects left to the main thread\n", cfg.threads,
                stress.ops(), secs, survivors.size());
    ASSERT_FALSE(stress.log().Failed()) << stress.log().First();

    ga_stats_t s1 = QuietStats();
    EXPECT_EQ(s1.live_objects, s1.mallocs - s1.frees);
    EXPECT_EQ(s1.live_objects - s0.live_objects, survivors.size());
    EXPECT_EQ(ga_heap_validate(), s1.live_objects);

    // The main thread frees what the workers left (more cross-thread frees).
    FailureLog log;
    for (const Obj& o : survivors)
        if (VerifyObj(o, log, "main-thread free")) ga_free(o.p);
    ASSERT_FALSE(log.Failed()) << log.First();
    ga_stats_t s2 = QuietStats();
    EXPECT_EQ(s2.live_objects, s0.live_objects);
    EXPECT_EQ(s2.live_objects, s2.mallocs - s2.frees);
    EXPECT_EQ(s2.bytes_in_use, s0.bytes_in_use);
    EXPECT_EQ(ga_heap_validate(), s2.live_objects);
}

class RandomOps : public ::testing::TestWithParam<int> {};

TEST_P(RandomOps, CrossThreadFreesKeepEveryObjectIntactAndTheHeapConsistent) {
    RunRandomOpsAndValidate(StressConfig{GetParam(), 200000});
}

INSTANTIATE_TEST_SUITE_P(StressThreads, RandomOps, ::testing::Values(4, 8),
                         [](const ::testing::TestParamInfo<int>& info) {
                             return std::to_string(info.param) + "threads";
                         });

TEST(StressThreads, MostFreesOnOtherThreadsKeepEveryObjectIntact) {
    StressConfig cfg{4, 100000};
    cfg.remote_free_pct = 80;
    RunRandomOpsAndValidate(cfg);
}

// Runs a small random-ops workload on worker threads while the main thread
// calls `probe` every 2 ms; then checks the heap at the quiet point.
template <typename Probe>
void RunWhileProbing(Probe probe) {
    ga_stats_t s0 = QuietStats();
    RandomOpsStress stress(StressConfig{3, 60000});
    std::atomic<bool> finished{false};
    std::vector<Obj> survivors;
    std::thread runner([&] {
        survivors = stress.Run();
        finished = true;
    });
    int probes = 0;
    while (!finished.load()) {
        probe();
        probes++;
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    runner.join();
    std::printf("%d probes while the workers ran\n", probes);
    ASSERT_FALSE(stress.log().Failed()) << stress.log().First();
    EXPECT_GT(probes, 0);
    ga_stats_t s1 = QuietStats();
    EXPECT_EQ(ga_heap_validate(), s1.live_objects);
    EXPECT_EQ(s1.live_objects - s0.live_objects, survivors.size());
    for (const Obj& o : survivors) ga_free(o.p);
    EXPECT_EQ(QuietStats().live_objects, s0.live_objects);
}

// Every API function may be called at any time (goalloc.h): reading the
// statistics while other threads allocate must not disturb them or crash.
TEST(StressThreads, StatsAreSafeToReadWhileThreadsAllocate) {
    ga_stats_t prev{};
    RunWhileProbing([&prev] {
        ga_stats_t s;
        ga_stats(&s);
        // Cumulative counters never go backwards, even while threads merge theirs.
        if (s.mallocs < prev.mallocs || s.frees < prev.frees)
            ADD_FAILURE() << "cumulative counters went backwards: mallocs " << prev.mallocs
                          << " -> " << s.mallocs << ", frees " << prev.frees << " -> " << s.frees;
        prev = s;
    });
}

// The same for the validator: its count is only exact at a quiet point, but a
// call while other threads allocate must not report a broken heap.
TEST(StressThreads, HeapValidateIsSafeWhileThreadsAllocate) {
    RunWhileProbing([] { (void)ga_heap_validate(); });
}

// Producer threads allocate, consumer threads free everything they receive: the
// freed memory must be reused, not pile up (bounded queues keep the live data
// small, so the mapped memory must stay far below what was allocated in total).
TEST(StressThreads, RemoteFreesFromConsumerThreadsAreReused) {
    constexpr int kPairs = 2;
    constexpr std::size_t kQueueMax = 1000;
    const std::size_t per_producer = Scaled(200000, 2000);
    struct Queue {
        std::mutex mu;
        std::condition_variable cv;
        std::deque<Obj> items;
        bool closed = false;
    };
    std::vector<std::unique_ptr<Queue>> queues;
    for (int i = 0; i < kPairs; i++) queues.push_back(std::make_unique<Queue>());
    FailureLog log;
    std::atomic<std::uint64_t> allocated_bytes{0};

    ga_stats_t s0 = QuietStats();
    std::vector<std::thread> ts;
    for (int i = 0; i < kPairs; i++) {
        Queue& q = *queues[i];
        ts.emplace_back([&, i] {  // producer
            Rng rng(77 + i);
            std::uint64_t bytes = 0;
            for (std::size_t k = 0; k < per_producer && !log.Failed(); k++) {
                std::size_t n = PickSize(rng);
                void* p = ga_malloc(n);
                if (!p) {
                    log.Record("producer: malloc failed");
                    break;
                }
                Obj o{p, n, PatternKey(p, n, 77)};
                FillPattern(o.p, o.n, o.key);
                bytes += ga_usable_size(p);
                std::unique_lock<std::mutex> lk(q.mu);
                q.cv.wait(lk, [&] { return q.items.size() < kQueueMax; });
                q.items.push_back(o);
                q.cv.notify_all();
            }
            allocated_bytes += bytes;
            std::lock_guard<std::mutex> lk(q.mu);
            q.closed = true;
            q.cv.notify_all();
        });
        ts.emplace_back([&] {  // consumer
            for (;;) {
                std::unique_lock<std::mutex> lk(q.mu);
                q.cv.wait(lk, [&] { return !q.items.empty() || q.closed; });
                if (q.items.empty()) return;
                Obj o = q.items.front();
                q.items.pop_front();
                q.cv.notify_all();
                lk.unlock();
                if (VerifyObj(o, log, "consumer free")) ga_free(o.p);
            }
        });
    }
    for (auto& t : ts) t.join();
    ASSERT_FALSE(log.Failed()) << log.First();

    ga_stats_t s1 = QuietStats();
    EXPECT_EQ(s1.live_objects, s0.live_objects);
    EXPECT_EQ(s1.mallocs - s0.mallocs, kPairs * per_producer);
    EXPECT_EQ(ga_heap_validate(), s1.live_objects);
    std::uint64_t growth = s1.bytes_mapped > s0.bytes_mapped ? s1.bytes_mapped - s0.bytes_mapped : 0;
    std::printf("allocated %.1f MiB in total, mapped grew by %.1f MiB\n",
                allocated_bytes.load() / double(MiB), growth / double(MiB));
    // At most ~2 * kQueueMax objects are live at once (a few MiB); freed memory
    // that was never reused would make the heap grow with the total instead.
    EXPECT_LT(growth, 128 * MiB);
}

}  // namespace
