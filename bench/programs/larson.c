/*
 * larson — server churn, after the idea of Larson & Krishnan's benchmark
 * (original code).
 *
 * T slot arrays of `slots` objects each. The main thread fills them; then, for
 * `rounds` rounds, T new threads are started, thread i of round r taking slot
 * array (i + r) mod T: it does `ops` times "free a random slot, allocate an
 * object of random size in [min, max] there", and exits. So every round, objects
 * allocated by the threads of the last round (or by main) are freed by other,
 * newer threads, as in a server whose connections move between worker threads.
 *
 * Self-check: every object is stamped at allocation and verified before it is
 * freed (common.h), including the final frees by main; exit 3 on a mismatch.
 *
 *   larson [threads=2] [slots=1000] [ops=100000] [rounds=20] [min=16] [max=1024] [seed=1]
 *   ops counts free+malloc pairs: the result is rounds * threads * ops.
 */
#include "common.h"

static const char* const kName = "larson";

typedef struct {
  obj_t* slots;
  long long nslots, ops, min, max;
  uint64_t seed;
} work_t;

static void* worker(void* arg) {
  work_t* w = (work_t*)arg;
  rng_t r = rng_seed(w->seed);
  for (long long i = 0; i < w->ops; i++) {
    obj_t* o = &w->slots[rng_below(&r, (uint64_t)w->nslots)];
    obj_free(kName, o);
    *o = obj_new(kName, rng_range(&r, (uint64_t)w->min, (uint64_t)w->max), &r);
  }
  return NULL;
}

int main(int argc, char** argv) {
  args_init(argc, argv, "[threads=2] [slots=1000] [ops=100000] [rounds=20] [min=16] [max=1024] [seed=1]");
  long long threads = arg_range("threads", 2, 1, 256);
  long long nslots = arg_range("slots", 1000, 1, 1 << 24);
  long long ops = arg_range("ops", 100000, 1, 1ll << 40);
  long long rounds = arg_range("rounds", 20, 1, 1 << 20);
  long long min = arg_range("min", 16, 1, 1 << 30);
  long long max = arg_range("max", 1024, min, 1 << 30);
  uint64_t seed = (uint64_t)arg_long("seed", 1);
  args_done();
  printf("larson: threads=%lld slots=%lld ops=%lld rounds=%lld size=%lld..%lld\n", threads,
         nslots, ops, rounds, min, max);

  obj_t** arrays = (obj_t**)xcalloc((size_t)threads, sizeof(obj_t*));
  rng_t r = rng_seed(seed);
  for (long long t = 0; t < threads; t++) {
    arrays[t] = (obj_t*)xcalloc((size_t)nslots, sizeof(obj_t));
    for (long long i = 0; i < nslots; i++)
      arrays[t][i] = obj_new(kName, rng_range(&r, (uint64_t)min, (uint64_t)max), &r);
  }
  pthread_t* tids = (pthread_t*)xcalloc((size_t)threads, sizeof(pthread_t));
  work_t* work = (work_t*)xcalloc((size_t)threads, sizeof(work_t));

  double t0 = now_sec();
  for (long long round = 0; round < rounds; round++) {
    for (long long i = 0; i < threads; i++) {
      work[i] = (work_t){arrays[(i + round) % threads], nslots, ops, min, max,
                         mix64(seed * 1000003u + (uint64_t)(round * threads + i))};
      xthread_create(&tids[i], worker, &work[i]);
    }
    for (long long i = 0; i < threads; i++) xthread_join(tids[i]);
  }
  double elapsed = now_sec() - t0;

  for (long long t = 0; t < threads; t++) {
    for (long long i = 0; i < nslots; i++) obj_free(kName, &arrays[t][i]);
    free(arrays[t]);
  }
  free(arrays);
  free(tids);
  free(work);
  report(kName, (uint64_t)(rounds * threads * ops), elapsed);
  return 0;
}
