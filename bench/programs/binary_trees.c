/*
 * binary_trees — the Computer Language Benchmarks Game's binary-trees, with one
 * malloc per node and one free per node (original code, written to the game's
 * rules).
 *
 * With max depth D (at least 6, given min_depth 4 + 2):
 *   1. build a "stretch" tree of depth D + 1, walk it, free it;
 *   2. build a long-lived tree of depth D, kept until the end;
 *   3. for d = 4, 6, ..., D: build, walk and free 2^(D - d + 4) trees of depth d;
 *   4. walk the long-lived tree, free it.
 * The output is the game's: "stretch tree of depth N\t check: C",
 * "I\t trees of depth N\t check: C", "long lived tree of depth N\t check: C".
 * Nodes are 16 bytes (two child pointers), allocated top-down.
 *
 * Self-check: the walk checks the shape (a node has two children or none) and
 * every check value is compared with its exact value (a tree of depth d has
 * 2^(d+1) - 1 nodes); exit 3 on a difference. Single-threaded.
 *
 *   binary_trees [depth=21]
 *   ops = nodes allocated (and freed).
 */
#include "common.h"

static const char* const kName = "binary_trees";

typedef struct node {
  struct node* left;
  struct node* right;
} node_t;

static uint64_t g_nodes;

static node_t* build(int depth) {
  node_t* n = (node_t*)malloc(sizeof(node_t));
  if (n == NULL) die("malloc failed");
  g_nodes++;
  if (depth > 0) {
    n->left = build(depth - 1);
    n->right = build(depth - 1);
  } else {
    n->left = n->right = NULL;
  }
  return n;
}

static long long check(const node_t* n) {
  if ((n->left == NULL) != (n->right == NULL)) {
    fprintf(stderr, "%s: CORRUPTION: node %p has one child\n", kName, (const void*)n);
    exit(CORRUPTION_EXIT);
  }
  return n->left == NULL ? 1 : 1 + check(n->left) + check(n->right);
}

static void release(node_t* n) {
  if (n->left != NULL) {
    release(n->left);
    release(n->right);
  }
  free(n);
}

static void expect(long long got, long long want, const char* what) {
  if (got != want) {
    fprintf(stderr, "%s: CORRUPTION: %s check %lld, expected %lld\n", kName, what, got, want);
    exit(CORRUPTION_EXIT);
  }
}

int main(int argc, char** argv) {
  args_init(argc, argv, "[depth=21]");
  int max_depth = (int)arg_range("depth", 21, 6, 30);
  args_done();
  const int min_depth = 4;

  double t0 = now_sec();
  int stretch = max_depth + 1;
  node_t* t = build(stretch);
  long long c = check(t);
  release(t);
  printf("stretch tree of depth %d\t check: %lld\n", stretch, c);
  expect(c, (2ll << stretch) - 1, "stretch tree");

  node_t* long_lived = build(max_depth);
  for (int d = min_depth; d <= max_depth; d += 2) {
    long long iterations = 1ll << (max_depth - d + min_depth);
    long long sum = 0;
    for (long long i = 0; i < iterations; i++) {
      t = build(d);
      sum += check(t);
      release(t);
    }
    printf("%lld\t trees of depth %d\t check: %lld\n", iterations, d, sum);
    expect(sum, iterations * ((2ll << d) - 1), "trees");
  }
  c = check(long_lived);
  printf("long lived tree of depth %d\t check: %lld\n", max_depth, c);
  expect(c, (2ll << max_depth) - 1, "long lived tree");
  release(long_lived);
  double elapsed = now_sec() - t0;

  printf("binary_trees: depth=%d nodes=%llu\n", max_depth, (unsigned long long)g_nodes);
  report(kName, g_nodes, elapsed);
  return 0;
}
