// Collector torture: mutator threads build, rewire and drop a random object
// graph while cycles run back to back (GC percent 10 plus a thread calling
// collect() in a loop). Every node carries an id, a payload and a checksum
// over them, and an optional noscan blob (tiny to large) whose bytes derive
// from the id; every node reached by a random walk from a root is verified.
// In debug builds (GOALLOC_DEBUG_LEVEL >= 2) the collector poisons swept
// memory, so a node freed while reachable fails its check: the test then
// prints the node's address and aborts.
//
// Roots: a shared table of Root<Node> (in malloc'd memory, updated with
// Root's atomic stores), per-thread Root<Node>s and raw pointers on each
// mutator's stack (found by the conservative stack scan). Mutator threads
// live for an epoch of 0.3-1.5 s and are replaced, so threads register and
// leave while cycles run.
//
// Duration: 30 s, 10 s under ThreadSanitizer; GOALLOC_TORTURE_SECONDS
// overrides. ctest also runs it with GODEBUG=gccheckmark=1 (gc_torture_checkmark).
//
// Publication: a node's plain fields are written before its `ready` word is
// stored with release; readers load `ready` with acquire before reading them
// (Ptr<> edges are relaxed atomics), so the test itself is race-free for TSan.
#include "gc_testutil.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_set>
#include <vector>

namespace {

using namespace gatest;
using namespace gctest;
using Clock = std::chrono::steady_clock;

constexpr int kEdges = 4;
constexpr int kPayload = 5;
constexpr std::uint64_t kReady = 0x5EAD'7EAD'0000'0000ull;

struct Node {
    gc::Ptr<Node> edges[kEdges];
    gc::Ptr<unsigned char> blob;  // noscan bytes, or null
    std::uint64_t id;
    std::uint64_t blob_len;
    std::uint64_t payload[kPayload];
    std::uint64_t checksum;
    std::atomic<std::uint64_t> ready;  // kReady ^ id once initialised
};

unsigned char BlobByte(std::uint64_t id, std::uint64_t i) {
    return static_cast<unsigned char>(Mix(id * 0x100000001B3ull + (i >> 3)) >> ((i & 7) * 8));
}
std::uint64_t Checksum(const Node* n) {
    std::uint64_t c = Mix(n->id ^ 0xC0DE);
    for (int i = 0; i < kPayload; i++) c = Mix(c ^ n->payload[i]);
    return Mix(c ^ n->blob_len);
}

[[noreturn]] void Fail(const Node* n, const char* what, std::uint64_t detail = 0) {
    std::fprintf(stderr,
                 "\nGC TORTURE FAILURE: node %p: %s (detail %#llx); base_of %p, size_of %zu\n",
                 static_cast<const void*>(n), what, static_cast<unsigned long long>(detail),
                 gc::base_of(n), gc::size_of(n));
    std::fflush(stderr);
    std::abort();
}

// Full: every blob byte; otherwise the first/last 64 and every 97th.
void Verify(const Node* n, bool full) {
    if (n == nullptr) return;
    std::uint64_t r = n->ready.load(std::memory_order_acquire);
    std::uint64_t id = n->id;
    if (r != (kReady ^ id)) Fail(n, "ready word does not match the id (freed or overwritten?)", r);
    if (gc::base_of(n) != n) Fail(n, "not a live collected object");
    if (n->checksum != Checksum(n)) Fail(n, "payload checksum mismatch", n->checksum);
    const unsigned char* b = n->blob.get();
    std::uint64_t len = n->blob_len;
    if ((b == nullptr) != (len == 0)) Fail(n, "blob pointer/length mismatch", len);
    if (b == nullptr) return;
    void* bb = gc::base_of(b);
    if (bb == nullptr || gc::size_of(b) < len) {
        std::fprintf(stderr, "\nGC TORTURE: blob %p (len %llu): base_of %p, size_of %zu; again: base_of %p\n",
                     static_cast<const void*>(b), static_cast<unsigned long long>(len), bb, gc::size_of(b),
                     gc::base_of(b));
        Fail(n, "blob is not a live collected object", len);
    }
    for (std::uint64_t i = 0; i < len; i++) {
        if (!full && i >= 64 && i + 64 < len && i % 97 != 0) continue;
        if (b[i] != BlobByte(id, i)) Fail(n, "blob byte corrupted at offset", i);
    }
}

std::size_t PickBlobLen(Rng& rng) {
    std::uint64_t x = rng.Next() % 1000;
    if (x < 400) return 0;
    if (x < 700) return rng.Range(1, 15);  // tiny
    if (x < 950) return rng.Range(16, 2048);
    if (x < 999) return rng.Range(2049, 32 * KiB);
    return rng.Range(32 * KiB + 1, 200 * KiB);  // large
}

std::atomic<std::uint64_t> g_next_id{1};

// A node whose edges point to some of `near` (nodes the caller holds).
Node* NewNode(Rng& rng, Node* const* near, int n_near) {
    Node* n = gc::make<Node>();
    n->id = g_next_id.fetch_add(1, std::memory_order_relaxed);
    for (int i = 0; i < kPayload; i++) n->payload[i] = rng.Next();
    std::size_t len = PickBlobLen(rng);
    if (len) {
        auto* b = static_cast<unsigned char*>(gc::alloc(len, false));
        for (std::size_t i = 0; i < len; i++) b[i] = BlobByte(n->id, i);
        n->blob = b;
    }
    n->blob_len = len;
    n->checksum = Checksum(n);
    for (int e = 0; e < kEdges && n_near > 0; e++)
        if (rng.Percent(50)) n->edges[e] = near[rng.Range(0, static_cast<std::size_t>(n_near - 1))];
    n->ready.store(kReady ^ n->id, std::memory_order_release);
    return n;
}

struct Shared {
    static constexpr int kSlots = 64;
    std::vector<std::unique_ptr<gc::Root<Node>>> roots;  // malloc'd: not scanned
    std::atomic<bool> stop{false};
    std::atomic<std::uint64_t> live_estimate{0};  // HeapAlloc right after a collect()
    std::uint64_t max_live = 0;
    std::atomic<std::uint64_t> ops{0}, visits{0}, created{0}, threads{0};
    Shared() {
        for (int i = 0; i < kSlots; i++) roots.push_back(std::make_unique<gc::Root<Node>>());
    }
};

constexpr int kLocal = 16;
constexpr int kWalk = 24;

// One mutator epoch.
void Mutator(Shared& sh, std::uint64_t seed, double epoch_s) {
    Rng rng(seed);
    Node* volatile local[kLocal] = {};   // stack roots (conservative scan)
    gc::Root<Node> lroots[4];            // registered roots on the stack
    Node* path[kWalk];
    const auto end = Clock::now() + std::chrono::duration<double>(epoch_s);
    std::uint64_t ops = 0, visits = 0, created = 0;

    auto pick_root = [&]() -> Node* {
        std::uint64_t x = rng.Next() % 10;
        if (x < 5) return sh.roots[rng.Range(0, Shared::kSlots - 1)]->get();
        if (x < 8) return local[rng.Range(0, kLocal - 1)];
        return lroots[rng.Range(0, 3)].get();
    };
    // A random walk from a root; fills path, returns its length.
    auto walk = [&]() -> int {
        int len = 0;
        Node* n = pick_root();
        while (n != nullptr && len < kWalk) {
            Verify(n, rng.Percent(5));
            path[len++] = n;
            visits++;
            if (rng.Percent(8)) break;
            n = n->edges[rng.Range(0, kEdges - 1)].get();
        }
        return len;
    };

    while (!sh.stop.load(std::memory_order_relaxed)) {
        if ((ops & 63) == 0 && Clock::now() > end) break;
        ops++;
        const bool crowded = sh.live_estimate.load(std::memory_order_relaxed) > sh.max_live;
        int len = walk();
        std::uint64_t op = rng.Next() % 100;
        if (crowded && op < 40) {
            // Too much live data: drop a shared root (and a local one).
            *sh.roots[rng.Range(0, Shared::kSlots - 1)] = nullptr;
            local[rng.Range(0, kLocal - 1)] = nullptr;
            if (len > 0) path[rng.Range(0, static_cast<std::size_t>(len - 1))]->edges[rng.Range(0, kEdges - 1)] = nullptr;
        } else if (op < 35) {
            // Rewire: an edge of a walked node to another walked node.
            if (len >= 1) {
                Node* a = path[rng.Range(0, static_cast<std::size_t>(len - 1))];
                Node* b = path[rng.Range(0, static_cast<std::size_t>(len - 1))];
                if (rng.Percent(30)) b = pick_root();
                if (b != nullptr) Verify(b, false);
                a->edges[rng.Range(0, kEdges - 1)] = b;
            }
        } else if (op < 65) {
            // Create and insert: the new node takes over what the slot held
            // as its first edge (so inserting drops nothing).
            Node* n = NewNode(rng, path, len);
            created++;
            std::uint64_t where = rng.Next() % 4;
            if (where == 0 || len == 0) {
                gc::Root<Node>& r = *sh.roots[rng.Range(0, Shared::kSlots - 1)];
                n->edges[0] = r.get();
                r = n;
            } else if (where == 1) {
                std::size_t i = rng.Range(0, kLocal - 1);
                n->edges[0] = local[i];
                local[i] = n;
            } else if (where == 2) {
                gc::Root<Node>& r = lroots[rng.Range(0, 3)];
                n->edges[0] = r.get();
                r = n;
            } else {
                gc::Ptr<Node>& e = path[rng.Range(0, static_cast<std::size_t>(len - 1))]->edges[rng.Range(0, kEdges - 1)];
                n->edges[0] = e.get();
                e = n;
            }
        } else if (op < 70) {
            // Drop: an edge or a root.
            if (len > 0 && rng.Percent(60)) path[rng.Range(0, static_cast<std::size_t>(len - 1))]->edges[rng.Range(0, kEdges - 1)] = nullptr;
            else if (rng.Percent(50)) *sh.roots[rng.Range(0, Shared::kSlots - 1)] = nullptr;
            else local[rng.Range(0, kLocal - 1)] = nullptr;
        } else if (op < 80) {
            // Move between root kinds.
            if (len > 0) {
                Node* n = path[len - 1];
                std::uint64_t where = rng.Next() % 3;
                if (where == 0) *sh.roots[rng.Range(0, Shared::kSlots - 1)] = n;
                else if (where == 1) local[rng.Range(0, kLocal - 1)] = n;
                else lroots[rng.Range(0, 3)] = n;
            }
        } else if (op < 85) {
            // Garbage that never gets linked (plus its blob).
            Node* g = NewNode(rng, path, len);
            created++;
            Verify(g, true);
        }
        // else: the walk alone.
        for (int i = 0; i < len; i++) path[i] = nullptr;
    }
    // Before the thread leaves: hand a few of its stack-held nodes over.
    for (int i = 0; i < kLocal; i += 4)
        if (local[i] != nullptr && rng.Percent(50)) *sh.roots[rng.Range(0, Shared::kSlots - 1)] = local[i];
    sh.ops.fetch_add(ops);
    sh.visits.fetch_add(visits);
    sh.created.fetch_add(created);
}

double TortureSeconds() {
    if (const char* s = std::getenv("GOALLOC_TORTURE_SECONDS")) {
        double v = std::strtod(s, nullptr);
        if (v > 0) return v;
    }
    return GATEST_TSAN ? 10.0 : 30.0;
}

// Every node reachable from the shared roots, each verified in full.
std::vector<Node*> ReachableVerified(Shared& sh) {
    std::vector<Node*> out;
    std::unordered_set<Node*> seen;
    std::vector<Node*> stack;
    for (auto& r : sh.roots)
        if (Node* n = r->get(); n != nullptr && seen.insert(n).second) stack.push_back(n);
    while (!stack.empty()) {
        Node* n = stack.back();
        stack.pop_back();
        Verify(n, true);
        out.push_back(n);
        for (auto& e : n->edges)
            if (Node* m = e.get(); m != nullptr && seen.insert(m).second) stack.push_back(m);
    }
    return out;
}

__attribute__((noinline)) void Garbage(std::size_t bytes) {
    for (std::size_t done = 0; done < bytes;) {
        std::size_t n = 16 + (done / 8) % 3000;
        auto* p = static_cast<unsigned char*>(gc::alloc(n, (done & 1) != 0));
        std::memset(p, 0xDB, n);
        done += n;
    }
}

TEST(GcTorture, RandomGraph) {
    const double seconds = TortureSeconds();
    constexpr int kMutators = 4;
    GcPercentGuard pct(10);
    Shared sh;
    sh.max_live = (GATEST_TSAN ? 6 : 24) * MiB;
    const std::uint32_t gc0 = ReadStats().NumGC;
    const auto t0 = Clock::now();
    const auto deadline = t0 + std::chrono::duration<double>(seconds);

    std::atomic<std::uint64_t> forced{0};
    std::thread collector([&] {
        gc::ThreadScope scope;
        while (!sh.stop.load()) {
            gc::collect();
            forced.fetch_add(1);
            gc::MemStats s;
            gc::read_mem_stats(s);
            sh.live_estimate.store(s.HeapAlloc);
        }
    });

    // Mutator slots: each runs epochs, a fresh thread per epoch.
    std::vector<std::thread> slots;
    for (int m = 0; m < kMutators; m++) {
        slots.emplace_back([&, m] {
            Rng rng(0x7042 + static_cast<std::uint64_t>(m));
            while (Clock::now() < deadline) {
                double epoch = 0.3 + static_cast<double>(rng.Next() % 1200) / 1000.0;
                std::uint64_t seed = rng.Next();
                bool scope = rng.Percent(50);
                std::thread t([&sh, seed, epoch, scope] {
                    if (scope) {
                        gc::ThreadScope s;
                        Mutator(sh, seed, epoch);
                    } else {
                        // Registers at its first collected allocation, leaves at
                        // exit. That allocation must come first: Mutator reads
                        // shared roots at once, and a thread that holds
                        // collected pointers must be registered (its stack is
                        // not scanned before). Walking first was this test's
                        // own bug: a cycle could free a node it was walking.
                        (void)gc::alloc(8, false);
                        Mutator(sh, seed, epoch);
                    }
                });
                t.join();
                sh.threads.fetch_add(1);
            }
        });
    }
    for (auto& t : slots) t.join();
    sh.stop.store(true);
    collector.join();
    const double elapsed = std::chrono::duration<double>(Clock::now() - t0).count();

    gc::MemStats s = ReadStats();
    const std::uint32_t cycles = s.NumGC - gc0;
    std::printf("torture: %.1f s, %u cycles (%llu forced), %llu mutator threads, %llu ops, "
                "%llu visits, %llu nodes created, max pause %.2f ms, assist %.1f ms\n",
                elapsed, cycles, static_cast<unsigned long long>(forced.load()),
                static_cast<unsigned long long>(sh.threads.load()),
                static_cast<unsigned long long>(sh.ops.load()),
                static_cast<unsigned long long>(sh.visits.load()),
                static_cast<unsigned long long>(sh.created.load()),
                static_cast<double>(s.MaxPauseNs) / 1e6, static_cast<double>(s.MarkAssistNs) / 1e6);
    EXPECT_GE(cycles, 20u) << "too few collection cycles ran during the torture";
    EXPECT_GT(sh.visits.load(), 10000u);
    EXPECT_GE(sh.threads.load(), static_cast<std::uint64_t>(kMutators));

    // Everything still reachable is intact, now and after more cycles with
    // fresh garbage that would reuse any wrongly freed memory.
    std::vector<Node*> live = ReachableVerified(sh);
    const std::size_t n_live = live.size();
    live.clear();
    live.shrink_to_fit();
    for (int i = 0; i < 3; i++) {
        gc::collect();
        Garbage(8 * MiB);
    }
    gc::collect();
    std::vector<Node*> again = ReachableVerified(sh);
    EXPECT_EQ(again.size(), n_live) << "the reachable graph changed without mutators";
    gc::MemStats q = ReadStats();
    EXPECT_GE(q.HeapObjects, n_live);
    EXPECT_EQ(q.Mallocs - q.Frees, q.HeapObjects);
    std::printf("torture: %zu nodes reachable at the end, heap %.1f MB\n", n_live,
                static_cast<double>(q.HeapAlloc) / MiB);
}

}  // namespace
