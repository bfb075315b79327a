// test_gc_collapse — the collector's collapse of what the heap mapped
// before it switched to huge pages (MHeap::collapse_step, on the collector
// thread between cycles). Its own executable, run with nothing beside it
// (RUN_SERIAL, tests/CMakeLists.txt): each child maps 300 MiB and waits for
// up to 20 s of collapse work.
#include "gc_testutil.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <string>

using namespace gctest;

// One run of `gc_test_child collapse` (see there): what the mapping that
// holds the first object came to. Skips where the kernel cannot collapse.
struct CollapseRun {
    unsigned long rss = 0, huge = 0;  // KiB
    std::string out;
};
// Runs `gc_test_child <mode>` (GOGC=off) into ChildResult r, skipping the
// test where the kernel cannot collapse. (A macro: GTEST_SKIP and ASSERT
// must return from the test body.)
#define RUN_COLLAPSE_MODE(mode, r)                                                                         \
    if (access("/sys/kernel/mm/transparent_hugepage/enabled", F_OK) != 0)                                  \
        GTEST_SKIP() << "no transparent huge pages in this kernel";                                        \
    ChildResult r = RunChild({GC_TEST_CHILD, mode}, {"GOGC=off"}, {"GOGC", "GOALLOC_GC_HUGEPAGES"});       \
    ASSERT_TRUE(r.exited && r.status == 0) << Describe(r);                                                 \
    if (r.out.rfind("collapse unsupported", 0) == 0)                                                       \
        GTEST_SKIP() << "no MADV_COLLAPSE in this kernel, or huge pages set to never"
#define RUN_COLLAPSE_CHILD(c)                                                                                   \
    RUN_COLLAPSE_MODE("collapse", r);                                                                           \
    (c).out = r.out;                                                                                            \
    ASSERT_EQ(std::sscanf(r.out.c_str(), "collapse rss %lu huge %lu", &(c).rss, &(c).huge), 2) << r.out

// Once the heap has switched to huge pages (past 256 MiB by default), what
// it mapped before is collapsed into huge pages too, by the collector
// thread between cycles (MHeap::collapse_step): else a quarter of a 1 GiB heap
// keeps 4 KiB pages, and marking it misses the TLB (gc_mark lists 1 GiB:
// 15% slower). The child writes 300 MiB of large objects; the mapping that
// holds the first ends up on huge pages (here 100%; without the collapse,
// 22%: only what was mapped after the switch).
TEST(GcCollapse, HeapMappedBeforeTheHugePageSwitchIsCollapsed) {
    CollapseRun c;
    RUN_COLLAPSE_CHILD(c);
    EXPECT_GE(c.rss, 2048ul) << c.out;
    // (Not 100%: a collapse can fail when the kernel finds no free huge
    // page; two thirds still tells the collapse from none.)
    EXPECT_GE(c.huge * 3, c.rss * 2) << c.out;
}

// No mark runs while a huge page is collapsed (the collector thread makes the
// collapse's steps between cycles): a huge page in collapse holds the address
// space's lock and its own pages for milliseconds, and a mark's termination
// stops the world, which would wait for a thread stuck behind it (a 169 us
// stop in a gc_latency run; bench/results/NOTES.md). Cycles run while the
// collapse is in progress, marks of 10 ms or more; none of their terminations
// may begin during a huge page's collapse. (A thread of its own that waited
// for each mark to end before a page: 13 of 13 and 3 of 3 without the wait;
// with it, 22 of 22 with a program spinning beside the test, which left the
// thread at SCHED_IDLE no CPU in the middle of its pages.)
TEST(GcCollapse, MarkTerminationNeverOverlapsACollapse) {
    RUN_COLLAPSE_MODE("collapsemark", r);
    int cycles = -1;
    unsigned long long overlapped = 0;
    ASSERT_EQ(std::sscanf(r.out.c_str(), "collapsemark cycles %d in_collapse %llu", &cycles, &overlapped), 2) << r.out;
    if (cycles < 3) GTEST_SKIP() << "the collapse ended before cycles could run beside it: " << r.out;
    EXPECT_EQ(overlapped, 0ull) << r.out;
}
