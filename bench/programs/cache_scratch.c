/*
 * cache_scratch — passive false sharing, after the idea of Hoard's cache-scratch
 * (original code).
 *
 * The main thread allocates one small object per worker, back to back (so a
 * compact allocator puts them in one cache line), fills them, and hands object i
 * to worker i. Each worker verifies and frees the object it was given, then
 * `iterations` times allocates an object of the same size, writes every byte of
 * it `reps` times, verifies it and frees it. An allocator that gives a worker
 * back the freed object, or memory next to another worker's, makes the workers
 * write to one cache line from two cores; one that keeps each thread's objects
 * apart does not.
 *
 * Self-check: every byte of every object is checked after the writes (fill +
 * reps); the handed-over objects are checked by the worker before it frees them.
 *
 *   cache_scratch [threads=2] [size=8] [iterations=1000] [reps=100000] [seed=1]
 *   ops = threads * iterations (objects allocated and hammered).
 */
#include "cache_common.h"

static const char* const kName = "cache_scratch";

typedef struct {
  void* given;
  uint64_t given_tag;
  size_t size;
  long long iterations, reps;
  uint64_t seed;
} work_t;

static void* worker(void* arg) {
  work_t* w = (work_t*)arg;
  rng_t r = rng_seed(w->seed);
  if (!fill_ok(w->given, w->size, w->given_tag, 0))
    corrupt(kName, "handed-over object", w->given, w->size);
  free(w->given);
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
  printf("cache_scratch: threads=%lld size=%lld iterations=%lld reps=%lld\n", threads, size,
         iterations, reps);

  pthread_t* tids = (pthread_t*)xcalloc((size_t)threads, sizeof(pthread_t));
  work_t* work = (work_t*)xcalloc((size_t)threads, sizeof(work_t));
  rng_t r = rng_seed(seed);
  /* Allocated back to back, before any worker starts. */
  for (long long i = 0; i < threads; i++) {
    work[i].given = malloc((size_t)size);
    if (work[i].given == NULL) die("malloc failed");
  }
  for (long long i = 0; i < threads; i++) {
    work[i].size = (size_t)size;
    work[i].given_tag = obj_tag(work[i].given, (size_t)size, rng_next(&r));
    fill(work[i].given, (size_t)size, work[i].given_tag);
    work[i].iterations = iterations;
    work[i].reps = reps;
    work[i].seed = mix64(seed * 31u + (uint64_t)i);
  }

  double t0 = now_sec();
  for (long long i = 0; i < threads; i++) xthread_create(&tids[i], worker, &work[i]);
  for (long long i = 0; i < threads; i++) xthread_join(tids[i]);
  double elapsed = now_sec() - t0;

  free(tids);
  free(work);
  report(kName, (uint64_t)(threads * iterations), elapsed);
  return 0;
}
