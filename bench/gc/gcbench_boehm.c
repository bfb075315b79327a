/*
 * gcbench_boehm — Boehm's GCBench on Boehm GC (GC_MALLOC for the nodes,
 * GC_MALLOC_ATOMIC for the array of doubles), one mutator thread: the same
 * program as gcbench.cpp (goalloc) and gcbench.go, with the same standard output.
 *
 *   gcbench_boehm [stretch=18] [long_lived=16] [array=500000] [min=4] [max=16]
 *
 * See gcbench.cpp for what it does, gcb_boehm.h for the gcstats line on stderr.
 */
#include "gcb_boehm.h"

typedef struct node {
  struct node* left;
  struct node* right;
  int i, j;
} node_t;

static int stretch_depth, long_lived_depth, min_depth, max_depth;
static long array_size;

static long tree_size(int i) { return (1l << (i + 1)) - 1; }
static long num_iters(int i) { return 2 * tree_size(stretch_depth) / tree_size(i); }

static node_t* new_node(node_t* l, node_t* r) {
  node_t* n = (node_t*)GC_MALLOC(sizeof(node_t));
  if (n == NULL) gcb_die("GC_MALLOC failed");
  n->left = l;
  n->right = r;
  return n;
}

/* Build the tree top-down. */
static void populate(int depth, node_t* n) {
  if (depth <= 0) return;
  depth--;
  n->left = new_node(NULL, NULL);
  n->right = new_node(NULL, NULL);
  populate(depth, n->left);
  populate(depth, n->right);
}

/* Build the tree bottom-up. */
static node_t* make_tree(int depth) {
  if (depth <= 0) return new_node(NULL, NULL);
  node_t* l = make_tree(depth - 1);
  node_t* r = make_tree(depth - 1);
  return new_node(l, r);
}

static long count(const node_t* n) {
  if (n == NULL) return 0;
  return 1 + count(n->left) + count(n->right);
}

static double ms_since(int64_t t0) { return (double)(gcb_now_ns() - t0) / 1e6; }

static void time_construction(int depth) {
  long iters = num_iters(depth);
  printf("Creating %ld trees of depth %d\n", iters, depth);
  int64_t t0 = gcb_now_ns();
  for (long i = 0; i < iters; i++) {
    node_t* temp = new_node(NULL, NULL);
    populate(depth, temp);
  }
  fprintf(stderr, "\tTop down construction took %.0f msec\n", ms_since(t0));
  t0 = gcb_now_ns();
  for (long i = 0; i < iters; i++) make_tree(depth);
  fprintf(stderr, "\tBottom up construction took %.0f msec\n", ms_since(t0));
}

int main(int argc, char** argv) {
  GCB_BOEHM_INIT();
  gcb_args_init(argc, argv, NULL, "[stretch=18] [long_lived=16] [array=500000] [min=4] [max=16]");
  stretch_depth = (int)gcb_arg("stretch", 18, 1, 26);
  long_lived_depth = (int)gcb_arg("long_lived", 16, 1, 26);
  array_size = (long)gcb_arg("array", 500000, 2002, 1l << 30);
  min_depth = (int)gcb_arg("min", 4, 1, 26);
  max_depth = (int)gcb_arg("max", 16, 1, 26);
  gcb_args_done();
  if (max_depth > stretch_depth) gcb_die("max (%d) must not exceed stretch (%d)", max_depth, stretch_depth);

  printf("Garbage Collector Test\n");
  printf(" Live storage will peak at %ld bytes.\n\n",
         2 * (long)sizeof(node_t) * tree_size(long_lived_depth) + (long)sizeof(double) * array_size);
  printf(" Stretching memory with a binary tree of depth %d\n", stretch_depth);
  int64_t t_start = gcb_now_ns();

  make_tree(stretch_depth);

  printf(" Creating a long-lived binary tree of depth %d\n", long_lived_depth);
  node_t* long_lived = new_node(NULL, NULL);
  populate(long_lived_depth, long_lived);

  printf(" Creating a long-lived array of %ld doubles\n", array_size);
  double* array = (double*)GC_MALLOC_ATOMIC(sizeof(double) * (size_t)array_size);
  if (array == NULL) gcb_die("GC_MALLOC_ATOMIC failed");
  for (long i = 0; i < array_size / 2; i++) array[i] = 1.0 / (double)i;

  for (int d = min_depth; d <= max_depth; d += 2) time_construction(d);

  long nodes = count(long_lived);
  int ok = nodes == tree_size(long_lived_depth) && array[1000] == 1.0 / 1000 &&
           array[array_size / 2 - 1] == 1.0 / (double)(array_size / 2 - 1);
  printf(" Long-lived tree: %ld nodes, array: %s\n", nodes, ok ? "ok" : "CORRUPTED");
  fprintf(stderr, "Completed in %.0f msec.\n", ms_since(t_start));
  fflush(stdout);
  if (!ok) {
    fprintf(stderr, "gcbench: CORRUPTION: the long-lived tree has %ld nodes (expected %ld) or the array changed\n",
            nodes, tree_size(long_lived_depth));
    return 3;
  }
  gcb_boehm_report("");
  return 0;
}
