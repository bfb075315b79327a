/*
 * cache_thrash — active false sharing, after the idea of Hoard's cache-thrash
 * (original code).
 *
 * `threads` workers start together; each one, `iterations` times, allocates a
 * small object, writes every byte of it `reps` times, verifies it and frees it.
 * An allocator that hands objects of different threads out of one cache line
 * (one shared free list, or a shared span of small objects) makes the workers'
 * stores bounce that line between the cores.
 *
 * Self-check: every byte of every object is checked after the writes (fill +
 * reps): objects that overlap another thread's would not add up.
 *
 *   cache_thrash [threads=2] [size=8] [iterations=1000] [reps=100000] [seed=1]
 *   ops = threads * iterations (objects allocated and hammered).
 */
#include "cache_common.h"

static const char* const kName = "cache_thrash";

typedef struct {
  size_t size;
  long long iterations, reps;
  uint64_t seed;
  pthread_barrier_t* start;
} work_t;

static void* worker(void* arg) {
  work_t* w = (work_t*)arg;
  rng_t r = rng_seed(w->seed);
  pthread_barrier_wait(w->start);
  for (long long i = 0; i < w->iterations; i++) hammer_one(kName, w->size, w->reps, &r);
  return NULL;
}

int main(int argc, char** argv) {
  args_init(argc, argv, "[threads=2] [size=8] [iterations=1000] [reps=100000] [seed=1]");
  long long threads = arg_range("threads", 2, 1, 256);
  long long size = arg_range("size", 8, 1, 1 << 20);
  long long iterations = arg_range("iterations", 1000, 1, 1ll << 40);
  long long reps = arg_range("reps", 100000, 0, 1ll << 40);
  uint64_t seed = (uint64_t)arg_long("seed", 1);
  args_done();
  printf("cache_thrash: threads=%lld size=%lld iterations=%lld reps=%lld\n", threads, size,
         iterations, reps);

  pthread_barrier_t start;
  if (pthread_barrier_init(&start, NULL, (unsigned)threads) != 0) die("pthread_barrier_init");
  pthread_t* tids = (pthread_t*)xcalloc((size_t)threads, sizeof(pthread_t));
  work_t* work = (work_t*)xcalloc((size_t)threads, sizeof(work_t));
  for (long long i = 0; i < threads; i++)
    work[i] = (work_t){(size_t)size, iterations, reps, mix64(seed * 131u + (uint64_t)i), &start};

  double t0 = now_sec();
  for (long long i = 0; i < threads; i++) xthread_create(&tids[i], worker, &work[i]);
  for (long long i = 0; i < threads; i++) xthread_join(tids[i]);
  double elapsed = now_sec() - t0;

  pthread_barrier_destroy(&start);
  free(tids);
  free(work);
  report(kName, (uint64_t)(threads * iterations), elapsed);
  return 0;
}
