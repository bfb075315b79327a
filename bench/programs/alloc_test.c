/*
 * alloc_test — heavy-tailed sizes and random lifetimes (original code; in the
 * spirit of the alloc-test of mimalloc-bench and of Zorn & Grunwald's synthetic
 * models of allocation traces).
 *
 * Each of `threads` threads works alone (no sharing) for `ops` ticks. Per tick it
 * frees the objects whose lifetime ended at that tick, then allocates one object:
 *   size      Pareto(x_m = min, alpha = alpha/100), truncated to max (64 KiB):
 *             median ~28 B, mean ~80 B, one in ~150 above 1 KiB, ~5 in 100000
 *             at the 64 KiB cap;
 *   lifetime  1..16 ticks (60%), 17..1024 (30%), or 1025..wheel-1 (10%),
 *             uniform within each band.
 * Lifetimes are kept in a timing wheel of `wheel` buckets; objects link through a
 * record pool kept outside the heap objects. About wheel/20 + 160 objects are
 * live at a time in steady state (3400 per thread with the default wheel).
 *
 * Self-check: every object is stamped (nonce kept in its record) and verified
 * when it expires and at the end; exit 3 on a mismatch.
 *
 *   alloc_test [threads=1] [ops=3000000] [wheel=65536] [min=16] [max=65536] [alpha=120] [seed=1]
 *   ops (result) = threads * ops mallocs (each freed).
 */
#include "common.h"

#include <math.h>

static const char* const kName = "alloc_test";

#define NSIZES 65536 /* precomputed Pareto samples, so no libm call per malloc */

typedef struct {
  obj_t obj;
  uint32_t next; /* next record in the same bucket, or in the free list */
} rec_t;

static uint32_t* g_sizes;
static long long g_ops, g_wheel;

static const uint32_t kNil = UINT32_MAX;

static void* worker(void* arg) {
  rng_t r = rng_seed((uint64_t)(uintptr_t)arg);
  uint64_t mask = (uint64_t)g_wheel - 1;
  rec_t* recs = (rec_t*)xcalloc((size_t)g_wheel, sizeof(rec_t));
  uint32_t* bucket = (uint32_t*)xcalloc((size_t)g_wheel, sizeof(uint32_t));
  for (long long i = 0; i < g_wheel; i++) {
    bucket[i] = kNil;
    recs[i].next = (uint32_t)(i + 1 < g_wheel ? i + 1 : kNil);
  }
  uint32_t free_recs = 0;
  for (uint64_t now = 0; now < (uint64_t)g_ops; now++) {
    uint32_t i = bucket[now & mask];
    bucket[now & mask] = kNil;
    while (i != kNil) {
      uint32_t next = recs[i].next;
      obj_free(kName, &recs[i].obj);
      recs[i].next = free_recs;
      free_recs = i;
      i = next;
    }
    uint64_t band = rng_below(&r, 10), life;
    if (band < 6) life = rng_range(&r, 1, 16);
    else if (band < 9) life = rng_range(&r, 17, 1024);
    else life = rng_range(&r, 1025, mask);
    /* Lifetimes < wheel, one object per tick: at most wheel - 1 live, so a record is free. */
    i = free_recs;
    free_recs = recs[i].next;
    recs[i].obj = obj_new(kName, g_sizes[rng_below(&r, NSIZES)], &r);
    uint64_t b = (now + life) & mask;
    recs[i].next = bucket[b];
    bucket[b] = i;
  }
  for (long long b = 0; b < g_wheel; b++)
    for (uint32_t i = bucket[b]; i != kNil; i = recs[i].next) obj_free(kName, &recs[i].obj);
  free(bucket);
  free(recs);
  return NULL;
}

int main(int argc, char** argv) {
  args_init(argc, argv,
            "[threads=1] [ops=3000000] [wheel=65536] [min=16] [max=65536] [alpha=120] [seed=1]");
  long long threads = arg_range("threads", 1, 1, 256);
  g_ops = arg_range("ops", 3000000, 1, 1ll << 40);
  g_wheel = arg_range("wheel", 65536, 2048, 1 << 24);
  long long min = arg_range("min", 16, 1, 1 << 20);
  long long max = arg_range("max", 65536, min, 1 << 30);
  long long alpha = arg_range("alpha", 120, 10, 1000);
  uint64_t seed = (uint64_t)arg_long("seed", 1);
  args_done();
  if (g_wheel & (g_wheel - 1)) die("wheel must be a power of two");
  printf("alloc_test: threads=%lld ops=%lld wheel=%lld size=pareto(%lld, %.2f) <= %lld\n",
         threads, g_ops, g_wheel, min, alpha / 100.0, max);

  g_sizes = (uint32_t*)xcalloc(NSIZES, sizeof(uint32_t));
  rng_t r = rng_seed(seed);
  for (int i = 0; i < NSIZES; i++) {
    double u = 1.0 - rng_unit(&r); /* (0, 1] */
    double s = (double)min / pow(u, 100.0 / (double)alpha);
    g_sizes[i] = s >= (double)max ? (uint32_t)max : (uint32_t)s;
  }
  pthread_t* tids = (pthread_t*)xcalloc((size_t)threads, sizeof(pthread_t));

  double t0 = now_sec();
  for (long long i = 0; i < threads; i++)
    xthread_create(&tids[i], worker, (void*)(uintptr_t)mix64(seed * 524287u + (uint64_t)i));
  for (long long i = 0; i < threads; i++) xthread_join(tids[i]);
  double elapsed = now_sec() - t0;

  free(tids);
  free(g_sizes);
  report(kName, (uint64_t)(threads * g_ops), elapsed);
  return 0;
}
