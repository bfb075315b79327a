// binary_trees — the Computer Language Benchmarks Game's binary-trees on
// goalloc's garbage collector (gc::make, gc::Ptr), one mutator thread.
// Flavours of the same program: binary_trees_boehm.c (Boehm GC), binary_trees.go.
//
//   binary_trees [DEPTH | depth=DEPTH]     (default 21, at least 6 is used)
//
// The game's rules: min depth 4, max depth D = max(6, DEPTH);
//   1. a "stretch" tree of depth D + 1 is built, checked and dropped;
//   2. a long-lived tree of depth D is built and kept to the end;
//   3. for d = 4, 6, ..., D: 2^(D - d + 4) trees of depth d are built bottom-up
//      (children before their parent), checked and dropped;
//   4. the long-lived tree is checked.
// check = the number of nodes of a tree. Standard output is exactly the game's:
//   stretch tree of depth N\t check: C
//   I\t trees of depth N\t check: C
//   long lived tree of depth N\t check: C
// and is identical in the three flavours (scripts/bench_gc.py compares them).
// Every check is compared with its exact value (2^(d+1) - 1 nodes per tree):
// exit 3 on a difference (a collector that freed a reachable node).
// Last, on stderr: `gcstats cycles=N pause_total_ns=N pause_max_ns=N
// gc_cpu_fraction=F vmhwm_kib=K ...` (gc::read_mem_stats: NumGC, PauseTotalNs,
// MaxPauseNs, GCCPUFraction; VmHWM).
#include <goalloc/gc.hpp>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>

#include "gcb_common.h"

namespace gc = goalloc::gc;

namespace {

struct Node {
    gc::Ptr<Node> left, right;
    Node() = default;
    Node(Node* l, Node* r) : left(l), right(r) {}
};

Node* bottom_up_tree(int depth) {
    if (depth <= 0) return gc::make<Node>();
    Node* l = bottom_up_tree(depth - 1);
    Node* r = bottom_up_tree(depth - 1);
    return gc::make<Node>(l, r);
}

long long item_check(const Node* n) {
    const Node* l = n->left;
    const Node* r = n->right;
    if (l == nullptr || r == nullptr) {
        if (l != r) {
            std::fprintf(stderr, "binary_trees: CORRUPTION: node %p has one child\n", static_cast<const void*>(n));
            std::exit(3);
        }
        return 1;
    }
    return 1 + item_check(l) + item_check(r);
}

void expect(long long got, long long want, const char* what) {
    if (got != want) {
        std::fprintf(stderr, "binary_trees: CORRUPTION: %s check %lld, expected %lld\n", what, got, want);
        std::exit(3);
    }
}

}  // namespace

int main(int argc, char** argv) {
    static const char* const positional[] = {"depth", nullptr};
    gcb_args_init(argc, argv, positional, "[DEPTH | depth=21]");
    const int n = static_cast<int>(gcb_arg("depth", 21, 0, 30));
    gcb_args_done();

    const int min_depth = 4;
    const int max_depth = std::max(min_depth + 2, n);
    const int stretch_depth = max_depth + 1;

    {
        long long c = item_check(bottom_up_tree(stretch_depth));
        std::printf("stretch tree of depth %d\t check: %lld\n", stretch_depth, c);
        expect(c, (2ll << stretch_depth) - 1, "stretch tree");
    }

    Node* long_lived = bottom_up_tree(max_depth);  // on this thread's stack: a root

    for (int d = min_depth; d <= max_depth; d += 2) {
        long long iterations = 1ll << (max_depth - d + min_depth);
        long long check = 0;
        for (long long i = 0; i < iterations; i++) check += item_check(bottom_up_tree(d));
        std::printf("%lld\t trees of depth %d\t check: %lld\n", iterations, d, check);
        expect(check, iterations * ((2ll << d) - 1), "trees");
    }

    long long c = item_check(long_lived);
    std::printf("long lived tree of depth %d\t check: %lld\n", max_depth, c);
    expect(c, (2ll << max_depth) - 1, "long lived tree");
    std::fflush(stdout);

    static gc::MemStats ms;  // 4 KiB: not on the stack
    gc::read_mem_stats(ms);
    std::fprintf(stderr,
                 "gcstats cycles=%" PRIu32 " pause_total_ns=%" PRIu64 " pause_max_ns=%" PRIu64
                 " gc_cpu_fraction=%.6f vmhwm_kib=%lld forced_cycles=%" PRIu32 " assist_ns=%" PRIu64
                 " heap_sys=%" PRIu64 " heap_released=%" PRIu64 " total_alloc=%" PRIu64 " mallocs=%" PRIu64 "\n",
                 ms.NumGC, ms.PauseTotalNs, ms.MaxPauseNs, ms.GCCPUFraction, gcb_vmhwm_kib(),
                 ms.NumForcedGC, ms.MarkAssistNs, ms.HeapSys, ms.HeapReleased, ms.TotalAlloc, ms.Mallocs);
    return 0;
}
