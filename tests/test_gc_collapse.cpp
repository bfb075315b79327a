// test_gc_collapse — the collector's collapse of what the heap mapped
// before it switched to huge pages (MHeap::collapse_early_arenas, on a thread
// of the collector's at SCHED_IDLE). Its own executable, run with nothing
// beside it (RUN_SERIAL, tests/CMakeLists.txt): an idle-priority thread gets
// no CPU while other tests keep both busy, and the collapse would not finish.
#include "gc_testutil.h"

#include <gtest/gtest.h>
#include <sched.h>
#include <unistd.h>

#include <cstdio>
#include <string>

using namespace gctest;

// One run of `gc_test_child collapse` (see there): what the mapping that
// holds the first object came to, and the collapse thread's policy (-1: not
// seen running). Skips where the kernel cannot collapse.
struct CollapseRun {
    unsigned long rss = 0, huge = 0;  // KiB
    int policy = -1;
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
    ASSERT_EQ(std::sscanf(r.out.c_str(), "collapse rss %lu huge %lu policy %d", &(c).rss, &(c).huge, &(c).policy), \
              3)                                                                                                \
        << r.out

// Once the heap has switched to huge pages (past 256 MiB by default), what
// it mapped before is collapsed into huge pages too, by a thread of the
// collector's (MHeap::collapse_early_arenas): else a quarter of a 1 GiB heap
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

// The collapse runs at SCHED_IDLE: at normal priority it took a CPU from the
// program (a mutator signalled by a stop waited behind it; bench/results/
// NOTES.md, thirteenth pass). Checked when the child saw the thread running
// (it usually does: 256 MiB take a tenth of a second or more to collapse).
TEST(GcCollapse, CollapseThreadRunsAtIdlePriority) {
    CollapseRun c;
    RUN_COLLAPSE_CHILD(c);
    if (c.policy < 0) GTEST_SKIP() << "the collapse ended before the child looked: " << c.out;
    EXPECT_EQ(c.policy, SCHED_IDLE) << c.out;
}

// The collapse waits for each mark to end before its next huge page
// (collapse_between_marks): a huge page in collapse holds the address space's
// lock and its own pages for milliseconds, and a mark's termination stops the
// world, which would wait for a thread stuck behind it (a 169 us stop in a
// gc_latency run; bench/results/NOTES.md). Cycles run while the collapse is
// in progress, marks of 10 ms or more; none of their terminations may begin
// during a huge page's collapse (without the wait: most of them did).
TEST(GcCollapse, MarkTerminationNeverOverlapsACollapse) {
    RUN_COLLAPSE_MODE("collapsemark", r);
    int cycles = -1;
    unsigned long long overlapped = 0;
    ASSERT_EQ(std::sscanf(r.out.c_str(), "collapsemark cycles %d in_collapse %llu", &cycles, &overlapped), 2) << r.out;
    if (cycles < 3) GTEST_SKIP() << "the collapse ended before cycles could run beside it: " << r.out;
    EXPECT_EQ(overlapped, 0ull) << r.out;
}
