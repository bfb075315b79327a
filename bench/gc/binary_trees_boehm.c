/*
 * binary_trees_boehm — the Computer Language Benchmarks Game's binary-trees on
 * Boehm GC (GC_MALLOC), one mutator thread: the same program as
 * binary_trees.cpp (goalloc) and binary_trees.go, with the same standard output.
 *
 *   binary_trees_boehm [DEPTH | depth=DEPTH]     (default 21, at least 6 is used)
 *
 * See binary_trees.cpp for the rules and the self-check, gcb_boehm.h for how
 * the gcstats line on stderr is measured.
 */
#include "gcb_boehm.h"

typedef struct node {
  struct node* left;
  struct node* right;
} node_t;

static node_t* bottom_up_tree(int depth) {
  node_t* l = NULL;
  node_t* r = NULL;
  if (depth > 0) {
    l = bottom_up_tree(depth - 1);
    r = bottom_up_tree(depth - 1);
  }
  node_t* n = (node_t*)GC_MALLOC(sizeof(node_t));
  if (n == NULL) gcb_die("GC_MALLOC failed");
  n->left = l;
  n->right = r;
  return n;
}

static long long item_check(const node_t* n) {
  if (n->left == NULL || n->right == NULL) {
    if (n->left != n->right) {
      fprintf(stderr, "binary_trees: CORRUPTION: node %p has one child\n", (const void*)n);
      exit(3);
    }
    return 1;
  }
  return 1 + item_check(n->left) + item_check(n->right);
}

static void expect(long long got, long long want, const char* what) {
  if (got != want) {
    fprintf(stderr, "binary_trees: CORRUPTION: %s check %lld, expected %lld\n", what, got, want);
    exit(3);
  }
}

int main(int argc, char** argv) {
  GCB_BOEHM_INIT();
  static const char* const positional[] = {"depth", NULL};
  gcb_args_init(argc, argv, positional, "[DEPTH | depth=21]");
  const int n = (int)gcb_arg("depth", 21, 0, 30);
  gcb_args_done();

  const int min_depth = 4;
  const int max_depth = n > min_depth + 2 ? n : min_depth + 2;
  const int stretch_depth = max_depth + 1;

  long long c = item_check(bottom_up_tree(stretch_depth));
  printf("stretch tree of depth %d\t check: %lld\n", stretch_depth, c);
  expect(c, (2ll << stretch_depth) - 1, "stretch tree");

  node_t* long_lived = bottom_up_tree(max_depth);

  for (int d = min_depth; d <= max_depth; d += 2) {
    long long iterations = 1ll << (max_depth - d + min_depth);
    long long check = 0;
    for (long long i = 0; i < iterations; i++) check += item_check(bottom_up_tree(d));
    printf("%lld\t trees of depth %d\t check: %lld\n", iterations, d, check);
    expect(check, iterations * ((2ll << d) - 1), "trees");
  }

  c = item_check(long_lived);
  printf("long lived tree of depth %d\t check: %lld\n", max_depth, c);
  expect(c, (2ll << max_depth) - 1, "long lived tree");
  fflush(stdout);
  gcb_boehm_report("");
  return 0;
}
