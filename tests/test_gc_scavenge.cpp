// The background scavenger (gc/collector.cpp, Go 1.19's bgscavenge): after a
// large heap dies, the collector thread returns its free pages to the OS down
// to Go's retention goal (the pages in use, plus 10%), the live objects stay
// intact, and pages used again read as zero; with GOGC off nothing is
// returned until a memory limit asks for it, and then mapped memory comes
// down under 95% of the limit. Each test runs in a process of its own
// (gtest_discover_tests), so resident-memory figures are this test's.
#include "gc_testutil.h"
#include "mheap.h"  // mheap.scavenged_bytes
#include "mheap_testutil.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <memory>
#include <thread>
#include <vector>

namespace {

using namespace gatest;
using namespace gctest;

struct Cell {
    gc::Ptr<Cell> next;
    std::uint64_t v[7];  // 64 bytes in all
};

std::uint64_t VmRssBytes() {
    std::FILE* f = std::fopen("/proc/self/status", "r");
    if (f == nullptr) return 0;
    char line[256];
    std::uint64_t kib = 0;
    while (std::fgets(line, sizeof line, f) != nullptr)
        if (std::sscanf(line, "VmRSS: %lu kB", &kib) == 1) break;
    std::fclose(f);
    return kib * 1024;
}

// A list of bytes / 64 cells on *root, each cell's payload derived from seed
// and its position (from the head: count - 1 down to 0).
__attribute__((noinline)) std::size_t BuildList(gc::Root<Cell>* root, std::size_t bytes, std::uint64_t seed) {
    std::size_t n = bytes / sizeof(Cell);
    for (std::size_t i = 0; i < n; i++) {
        Cell* c = gc::make<Cell>();
        for (int k = 0; k < 7; k++) c->v[k] = Mix(seed * 1000003 + i * 8 + static_cast<std::uint64_t>(k));
        c->next = root->get();
        *root = c;
    }
    return n;
}

// Number of cells whose payload is wrong (or missing: a short list).
__attribute__((noinline)) std::size_t CheckList(const gc::Root<Cell>& root, std::size_t n, std::uint64_t seed) {
    std::size_t bad = 0, i = n;
    for (Cell* c = root.get(); c != nullptr; c = c->next.get()) {
        if (i == 0) return bad + 1;  // longer than built
        i--;
        for (int k = 0; k < 7; k++)
            if (c->v[k] != Mix(seed * 1000003 + i * 8 + static_cast<std::uint64_t>(k))) {
                bad++;
                break;
            }
    }
    return bad + i;
}

// Builds a list of `bytes`, checks it, drops it; returns the process's
// resident bytes while it was live.
__attribute__((noinline)) std::uint64_t BuildAndDrop(std::size_t bytes, std::uint64_t seed) {
    auto big = std::make_unique<gc::Root<Cell>>();
    std::size_t n = BuildList(big.get(), bytes, seed);
    EXPECT_EQ(CheckList(*big, n, seed), 0u);
    return VmRssBytes();
}

// Heap bytes Ready (not released): Go's heapRetained.
std::uint64_t Retained(const gc::MemStats& s) { return s.HeapSys - s.HeapReleased; }

// Polls until pred() holds or timeout_ms passes.
template <class F>
bool WaitFor(F pred, int timeout_ms) {
    for (int t = 0; t < timeout_ms; t += 20) {
        if (pred()) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return pred();
}

TEST(GcScavenge, ReturnsTheHeapFreedBeyondTheGoal) {
    GcPercentGuard pct(100);
    auto keep = std::make_unique<gc::Root<Cell>>();
    const std::size_t nkeep = BuildList(keep.get(), 2 * MiB, 7);
    const std::uint64_t scav0 = goalloc::mheap.scavenged_bytes.load();
    // 160 MiB live for a moment (under the 256 MiB at which huge pages start).
    const std::uint64_t rss_big = BuildAndDrop(160 * MiB, 8);
    ScrubStack();
    gc::collect();
    gc::collect();
    // The collector thread sweeps, then releases what its goal leaves over:
    // about 1.1 x the pages in use.
    gc::MemStats s;
    bool met = WaitFor(
        [&] {
            s = ReadStats();
            return Retained(s) <= s.HeapInuse + s.HeapInuse / 5 + 2 * MiB;
        },
        15000);
    EXPECT_TRUE(met) << "retained " << Retained(s) / MiB << " MiB with " << s.HeapInuse / MiB
                     << " MiB in use after 15 s";
    EXPECT_GE(goalloc::mheap.scavenged_bytes.load() - scav0, 120 * MiB);
    EXPECT_GE(s.HeapReleased, 120 * MiB);
    const std::uint64_t rss = VmRssBytes();
    EXPECT_LE(rss + 100 * MiB, rss_big) << "resident " << rss / MiB << " MiB, " << rss_big / MiB
                                        << " MiB with the big heap live";
    EXPECT_EQ(CheckList(*keep, nkeep, 7), 0u) << "a live object changed while the heap was released";
    // Released pages come back as zero pages, so the allocator does not clear
    // them: whatever it hands out from them must read as zero, although the
    // dead list left every word of them non-zero.
    std::size_t nonzero = 0;
    for (int i = 0; i < 1024; i++) {
        auto* p = static_cast<const std::uint64_t*>(gc::alloc(64 * KiB, false));
        for (std::size_t w = 0; w < 64 * KiB / 8; w++) nonzero += p[w] != 0;
    }
    EXPECT_EQ(nonzero, 0u) << "words of fresh objects not zero";
    auto again = std::make_unique<gc::Root<Cell>>();
    const std::size_t n2 = BuildList(again.get(), 64 * MiB, 9);
    EXPECT_EQ(CheckList(*again, n2, 9), 0u);
    EXPECT_EQ(CheckList(*keep, nkeep, 7), 0u);
    // The heap walk holds between cycles only (while marking, a span's
    // remoteBits hold its black-allocation snapshot, not remote frees): the
    // list above may have started one, so finish a cycle first.
    gc::collect();
    EXPECT_GT(ga_heap_validate(), 0u);
}

TEST(GcScavenge, MemoryLimitBringsMappedMemoryUnderIt) {
    GcPercentGuard off(-1);
    const std::int64_t original = gc::set_memory_limit(-1);
    const std::uint64_t rss_big = BuildAndDrop(160 * MiB, 10);
    ScrubStack();
    gc::collect();
    // With GOGC off the heap goal is unbounded, and so is the retention goal:
    // the free heap stays mapped.
    const gc::MemStats s0 = ReadStats();
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    gc::MemStats s1 = ReadStats();
    EXPECT_LT(s1.HeapReleased, s0.HeapReleased + 16 * MiB) << "released with no goal asking for it";
    EXPECT_GE(Retained(s1), 120 * MiB);
    // A limit: mapped Ready memory (heap and metadata) goes under 95% of it.
    const std::uint64_t limit = 96 * MiB;
    gc::set_memory_limit(static_cast<std::int64_t>(limit));
    gc::MemStats s;
    bool met = WaitFor(
        [&] {
            s = ReadStats();
            return Retained(s) + (s.Sys - s.HeapSys) <= limit - limit / 20 + MiB;
        },
        15000);
    EXPECT_TRUE(met) << "retained " << Retained(s) / MiB << " MiB + metadata " << (s.Sys - s.HeapSys) / MiB
                     << " MiB after 15 s, limit " << limit / MiB << " MiB";
    const std::uint64_t rss = VmRssBytes();
    EXPECT_LE(rss + 60 * MiB, rss_big) << "resident " << rss / MiB << " MiB, " << rss_big / MiB
                                       << " MiB with the big heap live";
    EXPECT_EQ(gc::set_memory_limit(original), static_cast<std::int64_t>(limit));
    gc::collect();  // between cycles (above)
    EXPECT_GT(ga_heap_validate(), 0u);
}


// Go 1.19 checks Ready memory against the memory limit at every span
// allocation and releases the excess before the allocation returns
// (mheap.allocSpan; here alloc_span records it in mheap.scavenge_owed and the
// allocating thread pays it out of its nosuspend region, gc/heap.cpp). Every
// other 8 KiB object dies, leaving 1-page holes the 64 KiB objects allocated
// next cannot use: as long as holes are left, no allocation may leave Ready
// memory over the limit, and the holes are released by the allocating
// thread, not by the collector thread some time later.
struct Page {
    std::uint64_t v[1024];
};
struct Block {
    std::uint64_t v[8192];
};


__attribute__((noinline)) void MakeHoles(std::vector<std::unique_ptr<gc::Root<Page>>>* keep, int n) {
    for (int i = 0; i < n; i++) {
        Page* p = gc::make<Page>();
        p->v[0] = static_cast<std::uint64_t>(i);
        if (i % 2 == 1) keep->push_back(std::make_unique<gc::Root<Page>>(p));
    }
}

TEST(GcScavenge, AnAllocationOverTheMemoryLimitReleasesTheExcessAtOnce) {
    GcPercentGuard off(-1);
    const std::int64_t original = gc::set_memory_limit(-1);
    std::vector<std::unique_ptr<gc::Root<Page>>> keep;
    MakeHoles(&keep, 8192);  // 64 MiB, half of it to die
    ScrubStack();
    gc::collect();
    const std::size_t holes = FreeReadyPages();
    ASSERT_GE(holes, 2048u) << "at least half of the dead pages are free holes";
    // A limit with the background scavenger's target (95% of it) above the
    // Ready memory now: only the allocations' own releases bring it down.
    const std::uint64_t limit = ReadyWithMetadata() * 20 / 19 + 2 * MiB;
    gc::set_memory_limit(static_cast<std::int64_t>(limit));
    const std::uint64_t assist0 = goalloc::mheap.scavenged_assist_bytes.load();
    std::vector<std::unique_ptr<gc::Root<Block>>> blocks;
    const std::size_t nblocks = (holes * goalloc::kPageSize + (limit - ReadyWithMetadata()) + 16 * MiB) / sizeof(Block);
    int over_with_holes = 0, went_over = 0;
    for (std::size_t i = 0; i < nblocks; i++) {
        Block* b = gc::make<Block>();
        // Checked before anything else allocates (the Root below is malloc'd,
        // and malloc's span allocations pay the debt too). 64 KiB of slack:
        // the metadata another thread's span allocation may add meanwhile.
        if (ReadyWithMetadata() > limit + 64 * KiB) {
            went_over++;
            if (FreeReadyPages() != 0) over_with_holes++;
        }
        b->v[0] = i;
        blocks.push_back(std::make_unique<gc::Root<Block>>(b));
    }
    const std::uint64_t assisted = goalloc::mheap.scavenged_assist_bytes.load() - assist0;
    EXPECT_EQ(gc::set_memory_limit(original), static_cast<std::int64_t>(limit));
    EXPECT_EQ(over_with_holes, 0) << "allocations left Ready memory over the limit with free Ready pages";
    EXPECT_NE(goalloc::blocking_hook.load(), nullptr) << "registered threads pay through the blocking call";
    EXPECT_GT(went_over, 0) << "the test should outgrow what can be released";
    EXPECT_GE(assisted, holes * goalloc::kPageSize / 2) << "the allocating thread released "
                                                        << assisted / KiB << " KiB of " << holes * 8 << " KiB";
    for (std::size_t i = 0; i < keep.size(); i++) ASSERT_EQ(keep[i]->get()->v[0], 2 * i + 1);
    for (std::size_t i = 0; i < blocks.size(); i++) ASSERT_EQ(blocks[i]->get()->v[0], i);
    gc::collect();  // between cycles (above)
    EXPECT_GT(ga_heap_validate(), 0u);
}

}  // namespace
