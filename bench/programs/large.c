/*
 * large — big blocks: allocate, touch, free, and grow with realloc (original code).
 *
 * `slots` live blocks. Each of `ops` steps picks a random slot and either
 * (growth% of the steps, if the slot holds a block below the cap) grows its block
 * with realloc to 1.25-2x its size, at most `cap`, or frees it and allocates a
 * new block of a log-uniform random size in [min, max] (1..32 MiB). Every new or
 * grown byte range is touched: one word written per 4 KiB page, so each block
 * costs its page faults unless the allocator reuses memory that is still mapped.
 *
 * Self-check: every block is stamped (one word per page and its last word,
 * nonce kept in the slot) and verified before it is freed, and before and after
 * each realloc (the contents must move with the block); exit 3 on a mismatch.
 *
 *   large [slots=4] [ops=600] [min=1m] [max=32m] [cap=48m] [growth=25] [seed=1]
 *   ops (result) = mallocs + reallocs.
 */
#include "common.h"

static const char* const kName = "large";

typedef struct {
  void* p;
  size_t size;
  uint64_t nonce;
} block_t;

static uint64_t tag_of(const block_t* b) { return obj_tag(b->p, b->size, b->nonce); }

static void check(const block_t* b, const char* what) {
  if (!stamp_ok(b->p, b->size, tag_of(b), STRIDE_PAGE)) corrupt(kName, what, b->p, b->size);
}

/* Log-uniform in [min, max]: a uniform octave, then uniform within it. */
static size_t big_size(rng_t* r, size_t min, size_t max) {
  int octaves = 0;
  while ((min << (octaves + 1)) <= max) octaves++;
  size_t lo = min << rng_below(r, (uint64_t)octaves + 1);
  size_t hi = lo * 2 - 1 < max ? lo * 2 - 1 : max;
  return (size_t)rng_range(r, lo, hi);
}

int main(int argc, char** argv) {
  args_init(argc, argv, "[slots=4] [ops=600] [min=1m] [max=32m] [cap=48m] [growth=25] [seed=1]");
  long long nslots = arg_range("slots", 4, 1, 1 << 20);
  long long ops = arg_range("ops", 600, 1, 1ll << 40);
  long long min = arg_range("min", 1 << 20, 4096, 1ll << 36);
  long long max = arg_range("max", 32 << 20, min, 1ll << 36);
  long long cap = arg_range("cap", 48 << 20, max, 1ll << 37);
  long long growth = arg_range("growth", 25, 0, 100);
  uint64_t seed = (uint64_t)arg_long("seed", 1);
  args_done();
  printf("large: slots=%lld ops=%lld size=%lld..%lld KiB cap=%lld KiB growth=%lld%%\n", nslots,
         ops, min >> 10, max >> 10, cap >> 10, growth);

  block_t* slots = (block_t*)xcalloc((size_t)nslots, sizeof(block_t));
  rng_t r = rng_seed(seed);
  uint64_t mallocs = 0, reallocs = 0;

  double t0 = now_sec();
  for (long long i = 0; i < ops; i++) {
    block_t* b = &slots[rng_below(&r, (uint64_t)nslots)];
    if (b->p != NULL && (long long)b->size < cap && (long long)rng_below(&r, 100) < growth) {
      check(b, "before realloc");
      size_t old = b->size;
      uint64_t old_tag = tag_of(b); /* the tag mixes in the old address */
      size_t want = old + old / 4 + (size_t)rng_below(&r, old * 3 / 4 + 1);
      if (want > (size_t)cap) want = (size_t)cap;
      void* q = realloc(b->p, want);
      if (q == NULL) die("realloc(%zu) failed", want);
      if (!stamp_ok(q, old, old_tag, STRIDE_PAGE)) corrupt(kName, "after realloc", q, old);
      b->p = q;
      b->size = want;
      b->nonce = rng_next(&r);
      stamp(b->p, b->size, tag_of(b), STRIDE_PAGE);
      reallocs++;
    } else {
      if (b->p != NULL) {
        check(b, "before free");
        free(b->p);
      }
      b->size = big_size(&r, (size_t)min, (size_t)max);
      b->p = malloc(b->size);
      if (b->p == NULL) die("malloc(%zu) failed", b->size);
      b->nonce = rng_next(&r);
      stamp(b->p, b->size, tag_of(b), STRIDE_PAGE);
      mallocs++;
    }
  }
  for (long long i = 0; i < nslots; i++)
    if (slots[i].p != NULL) {
      check(&slots[i], "before free");
      free(slots[i].p);
    }
  double elapsed = now_sec() - t0;

  free(slots);
  printf("large: mallocs=%llu reallocs=%llu\n", (unsigned long long)mallocs,
         (unsigned long long)reallocs);
  report(kName, mallocs + reallocs, elapsed);
  return 0;
}
