// gcbench — Boehm's GCBench (after John Ellis and Pete Kovac's Java program,
// as Hans Boehm adapted it for C), on goalloc's garbage collector, one mutator
// thread. Written from the published description; flavours of the same
// program: gcbench_boehm.c (Boehm GC), gcbench.go.
//
//   gcbench [stretch=18] [long_lived=16] [array=500000] [min=4] [max=16]
//
// The classic constants are the defaults (kStretchTreeDepth, kLongLivedTreeDepth,
// kArraySize, kMinTreeDepth, kMaxTreeDepth); smaller ones are for smoke tests.
//   1. a tree of depth `stretch` is built bottom-up and dropped (stretches the heap);
//   2. a long-lived tree of depth `long_lived` is built top-down (Populate) and kept;
//   3. a long-lived array of `array` doubles (pointer-free) is kept, its first
//      half filled with 1/i;
//   4. for d = min, min+2, ..., max: NumIters(d) = 2 * TreeSize(stretch) / TreeSize(d)
//      trees of depth d are built top-down, dropped, then as many bottom-up, dropped
//      (TreeSize(d) = 2^(d+1) - 1 nodes);
//   5. the long-lived tree and array are checked (the original checks that they
//      are still there; this one counts the tree's nodes and checks the array).
// A node is 24 bytes (two pointers, two ints), as in the original's C version.
// Standard output (identical in the three flavours; scripts/bench_gc.py compares it):
// the original's lines without its timings and memory diagnostics, which vary and
// go to stderr ("\tTop down construction took N msec", ...), plus the check
// line. Exit 3 if a check fails. Last, on stderr, the gcstats line (see
// binary_trees.cpp).
#include <goalloc/gc.hpp>

#include <cinttypes>
#include <cstdio>
#include <cstdlib>

#include "gcb_common.h"

namespace gc = goalloc::gc;

namespace {

struct Node {
    gc::Ptr<Node> left, right;
    int i = 0, j = 0;
    Node() = default;
    Node(Node* l, Node* r) : left(l), right(r) {}
};
static_assert(sizeof(Node) == 24);

int stretch_depth, long_lived_depth, min_depth, max_depth;
long array_size;

long tree_size(int i) { return (1l << (i + 1)) - 1; }
long num_iters(int i) { return 2 * tree_size(stretch_depth) / tree_size(i); }

// Build the tree top-down: the children are stored into their parent (a Ptr
// store: the write barrier).
void populate(int depth, Node* n) {
    if (depth <= 0) return;
    depth--;
    n->left = gc::make<Node>();
    n->right = gc::make<Node>();
    populate(depth, n->left);
    populate(depth, n->right);
}

// Build the tree bottom-up.
Node* make_tree(int depth) {
    if (depth <= 0) return gc::make<Node>();
    Node* l = make_tree(depth - 1);
    Node* r = make_tree(depth - 1);
    return gc::make<Node>(l, r);
}

long count(const Node* n) {
    if (n == nullptr) return 0;
    return 1 + count(n->left) + count(n->right);
}

double ms_since(std::int64_t t0) { return static_cast<double>(gcb_now_ns() - t0) / 1e6; }

void time_construction(int depth) {
    long iters = num_iters(depth);
    std::printf("Creating %ld trees of depth %d\n", iters, depth);
    std::int64_t t0 = gcb_now_ns();
    for (long i = 0; i < iters; i++) {
        Node* temp = gc::make<Node>();
        populate(depth, temp);
    }
    std::fprintf(stderr, "\tTop down construction took %.0f msec\n", ms_since(t0));
    t0 = gcb_now_ns();
    for (long i = 0; i < iters; i++) make_tree(depth);
    std::fprintf(stderr, "\tBottom up construction took %.0f msec\n", ms_since(t0));
}

}  // namespace

int main(int argc, char** argv) {
    gcb_args_init(argc, argv, nullptr, "[stretch=18] [long_lived=16] [array=500000] [min=4] [max=16]");
    stretch_depth = static_cast<int>(gcb_arg("stretch", 18, 1, 26));
    long_lived_depth = static_cast<int>(gcb_arg("long_lived", 16, 1, 26));
    array_size = static_cast<long>(gcb_arg("array", 500000, 2002, 1l << 30));
    min_depth = static_cast<int>(gcb_arg("min", 4, 1, 26));
    max_depth = static_cast<int>(gcb_arg("max", 16, 1, 26));
    gcb_args_done();
    if (max_depth > stretch_depth) gcb_die("max (%d) must not exceed stretch (%d)", max_depth, stretch_depth);

    std::printf("Garbage Collector Test\n");
    std::printf(" Live storage will peak at %ld bytes.\n\n",
                2 * static_cast<long>(sizeof(Node)) * tree_size(long_lived_depth) +
                    static_cast<long>(sizeof(double)) * array_size);
    std::printf(" Stretching memory with a binary tree of depth %d\n", stretch_depth);
    std::int64_t t_start = gcb_now_ns();

    make_tree(stretch_depth);  // stretch the memory space quickly, then drop it

    std::printf(" Creating a long-lived binary tree of depth %d\n", long_lived_depth);
    Node* long_lived = gc::make<Node>();  // on this thread's stack: a root
    populate(long_lived_depth, long_lived);

    std::printf(" Creating a long-lived array of %ld doubles\n", array_size);
    double* array = gc::make_array<double>(static_cast<std::size_t>(array_size));  // noscan
    for (long i = 0; i < array_size / 2; i++) array[i] = 1.0 / static_cast<double>(i);

    for (int d = min_depth; d <= max_depth; d += 2) time_construction(d);

    long nodes = count(long_lived);
    bool ok = nodes == tree_size(long_lived_depth) && array[1000] == 1.0 / 1000 &&
              array[array_size / 2 - 1] == 1.0 / static_cast<double>(array_size / 2 - 1);
    std::printf(" Long-lived tree: %ld nodes, array: %s\n", nodes, ok ? "ok" : "CORRUPTED");
    std::fprintf(stderr, "Completed in %.0f msec.\n", ms_since(t_start));
    std::fflush(stdout);
    if (!ok) {
        std::fprintf(stderr, "gcbench: CORRUPTION: the long-lived tree has %ld nodes (expected %ld) or the array changed\n",
                     nodes, tree_size(long_lived_depth));
        return 3;
    }

    static gc::MemStats ms;
    gc::read_mem_stats(ms);
    std::fprintf(stderr,
                 "gcstats cycles=%" PRIu32 " pause_total_ns=%" PRIu64 " pause_max_ns=%" PRIu64
                 " gc_cpu_fraction=%.6f vmhwm_kib=%lld forced_cycles=%" PRIu32 " assist_ns=%" PRIu64
                 " heap_sys=%" PRIu64 " total_alloc=%" PRIu64 " mallocs=%" PRIu64 "\n",
                 ms.NumGC, ms.PauseTotalNs, ms.MaxPauseNs, ms.GCCPUFraction, gcb_vmhwm_kib(),
                 ms.NumForcedGC, ms.MarkAssistNs, ms.HeapSys, ms.TotalAlloc, ms.Mallocs);
    return 0;
}
