// gc_mark — what marking costs per object, with no mutator running: builds a
// live heap of one shape, then runs forced collections (gc::collect) one after
// another and reports the mark phases' wall and CPU time per live object.
// goalloc only: a tool for tuning the marker (gc/README.md, "Marking and the
// memory system"), free of the pacing, assists and black allocation that
// shape gc_latency's and binary_trees' figures.
//
//   gc_mark [shape=lists|tree] [live_mb=1024] [rounds=5] [chain=4] [seed=1]
//
//   lists  a table (one collected array of Ptr, held by a Root) of lists of
//          `chain` 64-byte objects, like gc_latency's heap; the table is then
//          shuffled, so its entries lead all over the heap (as after
//          gc_latency's random replacements) while each list's objects stay
//          side by side
//   tree   one binary tree of 16-byte nodes built bottom-up, like
//          binary_trees' long-lived tree: a node sits just after its
//          children, and marking walks the heap nearly in order
//
// stdout: one line per collection and `result: gc_mark ...`; stderr: a
// `gcstats` line (see binary_trees.cpp) with mark_ns_per_object= (median over
// the rounds of mark wall time / live objects), mark_cpu_ns_per_object= (the
// collector's marking CPU, MemStats.Mark*Ns, per object) and objects=, so
// scripts/ab.py can compare two builds on them.
#include <goalloc/gc.hpp>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <vector>

#include "gcb_common.h"

namespace gc = goalloc::gc;

namespace {

struct Obj {
    gc::Ptr<Obj> next;
    std::uint64_t stamp = 0;
    std::uint64_t pad[6] = {};
};
static_assert(sizeof(Obj) == 64);

struct Node {
    gc::Ptr<Node> left, right;
};
static_assert(sizeof(Node) == 16);

Node* tree(int depth) {
    if (depth <= 0) return gc::make<Node>();
    Node* l = tree(depth - 1);
    Node* r = tree(depth - 1);
    Node* n = gc::make<Node>();
    n->left = l;
    n->right = r;
    return n;
}

long long count(const Node* n) { return n == nullptr ? 0 : 1 + count(n->left) + count(n->right); }

}  // namespace

int main(int argc, char** argv) {
    static const char* const positional[] = {"shape", nullptr};
    gcb_args_init(argc, argv, positional, "[shape=lists|tree] [live_mb=1024] [rounds=5] [chain=4] [seed=1]");
    const char* shape = gcb_arg_str("shape", "lists");
    const std::uint64_t live_mb = static_cast<std::uint64_t>(gcb_arg("live_mb", 1024, 1, 1 << 20));
    const int rounds = static_cast<int>(gcb_arg("rounds", 5, 1, 1000));
    const int chain = static_cast<int>(gcb_arg("chain", 4, 1, 1 << 20));
    std::uint64_t seed = static_cast<std::uint64_t>(gcb_arg("seed", 1, 0, 1ll << 62));
    gcb_args_done();
    bool lists = std::strcmp(shape, "lists") == 0;
    if (!lists && std::strcmp(shape, "tree") != 0) {
        std::fprintf(stderr, "gc_mark: shape must be lists or tree, not %s\n", shape);
        return 2;
    }
    gc::set_gc_percent(-1);  // only the forced collections below

    static gc::Root<gc::Ptr<Obj>> table;
    static gc::Root<Node> root;
    std::uint64_t objects = 0, entries = 0;
    std::int64_t b0 = gcb_clock_ns(CLOCK_MONOTONIC);
    if (lists) {
        entries = (live_mb << 20) / (static_cast<std::uint64_t>(chain) * sizeof(Obj));
        table = gc::make_array<gc::Ptr<Obj>>(entries);
        for (std::uint64_t e = 0; e < entries; e++) {
            Obj* head = nullptr;
            for (int k = 0; k < chain; k++) {
                Obj* o = gc::make<Obj>();
                o->next = head;
                o->stamp = e;
                head = o;
            }
            table[e] = head;
        }
        for (std::uint64_t i = entries - 1; i > 0; i--) {  // Fisher-Yates
            std::uint64_t j = gcb_mix64(seed++) % (i + 1);
            Obj* a = table[i];
            table[i] = table[j];
            table[j] = a;
        }
        objects = entries * static_cast<std::uint64_t>(chain) + 1;
    } else {
        int depth = 1;
        while ((std::uint64_t{2} << (depth + 1)) * sizeof(Node) <= (live_mb << 20)) depth++;
        root = tree(depth);
        objects = static_cast<std::uint64_t>(count(root));
    }
    double build_s = static_cast<double>(gcb_clock_ns(CLOCK_MONOTONIC) - b0) / 1e9;
    std::printf("gc_mark: shape=%s, %" PRIu64 " live objects (%.0f MiB), built in %.2f s\n", shape, objects,
                static_cast<double>(lists ? objects * sizeof(Obj) : objects * sizeof(Node)) / 1048576.0, build_s);
    gc::collect();  // the build's garbage and the first sweep out of the way

    std::vector<double> wall_per, cpu_per;
    static gc::MemStats m0, m1;  // 4 KiB each: not on the stack
    for (int r = 0; r < rounds; r++) {
        gc::read_mem_stats(m0);
        std::int64_t t0 = gcb_clock_ns(CLOCK_MONOTONIC);
        gc::collect();
        std::int64_t t1 = gcb_clock_ns(CLOCK_MONOTONIC);
        gc::read_mem_stats(m1);
        double wall = static_cast<double>(m1.MarkWallNs - m0.MarkWallNs);
        double cpu = static_cast<double>(m1.MarkBackgroundNs - m0.MarkBackgroundNs + m1.MarkIdleNs - m0.MarkIdleNs +
                                         m1.MarkCycleAssistNs - m0.MarkCycleAssistNs);
        wall_per.push_back(wall / static_cast<double>(objects));
        cpu_per.push_back(cpu / static_cast<double>(objects));
        std::printf("collection %d: %.1f ms, mark %.1f ms wall, %.1f ms CPU: %.1f ns an object (%.1f ns CPU)\n", r + 1,
                    static_cast<double>(t1 - t0) / 1e6, wall / 1e6, cpu / 1e6, wall_per.back(), cpu_per.back());
    }
    if (lists) {  // the heap is intact
        for (std::uint64_t e = 0; e < entries; e++) {
            int k = 0;
            for (const Obj* o = table[e]; o != nullptr; o = o->next) k++;
            if (k != chain) {
                std::fprintf(stderr, "gc_mark: CORRUPTION: entry %" PRIu64 " has %d objects\n", e, k);
                return 3;
            }
        }
    } else if (static_cast<std::uint64_t>(count(root)) != objects) {
        std::fprintf(stderr, "gc_mark: CORRUPTION: the tree lost nodes\n");
        return 3;
    }
    std::sort(wall_per.begin(), wall_per.end());
    std::sort(cpu_per.begin(), cpu_per.end());
    double wmed = wall_per[wall_per.size() / 2], cmed = cpu_per[cpu_per.size() / 2];
    std::printf("result: gc_mark shape=%s objects=%" PRIu64 " mark_ns_per_object=%.2f mark_cpu_ns_per_object=%.2f\n",
                shape, objects, wmed, cmed);
    std::fflush(stdout);
    gc::read_mem_stats(m1);
    std::fprintf(stderr,
                 "gcstats cycles=%" PRIu32 " pause_total_ns=%" PRIu64 " pause_max_ns=%" PRIu64
                 " gc_cpu_fraction=%.6f vmhwm_kib=%lld objects=%" PRIu64
                 " mark_ns_per_object=%.3f mark_cpu_ns_per_object=%.3f build_s=%.3f\n",
                 m1.NumGC, m1.PauseTotalNs, m1.MaxPauseNs, m1.GCCPUFraction, gcb_vmhwm_kib(), objects, wmed, cmed,
                 build_s);
    return 0;
}
