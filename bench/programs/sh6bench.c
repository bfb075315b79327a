/*
 * sh6bench — batches of mixed sizes freed in several orders, after the idea of
 * MicroQuill's SmartHeap benchmark sh6bench (original code).
 *
 * `iterations` times, each thread runs three phases over a batch of `batch`
 * objects whose sizes step through [min, max] (size i = min + (i * step) mod
 * (max - min + 1), step = a prime, so neighbours differ and every size occurs):
 *   LIFO  allocate the batch, free it last-allocated-first;
 *   FIFO  allocate the batch, free it first-allocated-first;
 *   holes allocate the batch, free every other object, refill those slots with
 *         objects of other sizes, then free the whole batch from the end.
 * The size sequence shifts by one each iteration, so the batches do not repeat.
 *
 * Self-check: every object is stamped (nonce kept in the batch array) and
 * verified before it is freed; exit 3 on a mismatch.
 *
 *   sh6bench [threads=1] [iterations=400] [batch=10000] [min=16] [max=1000] [seed=1]
 *   ops (result) = mallocs (each freed): threads * iterations * 3.5 * batch.
 */
#include "common.h"

static const char* const kName = "sh6bench";

typedef struct {
  long long iterations, batch, min, max;
  uint64_t seed, mallocs;
} work_t;

static void* worker(void* arg) {
  work_t* w = (work_t*)arg;
  rng_t r = rng_seed(w->seed);
  obj_t* b = (obj_t*)xcalloc((size_t)w->batch, sizeof(obj_t));
  const uint64_t range = (uint64_t)(w->max - w->min + 1), step = 7919;
  uint64_t mallocs = 0;
  for (long long it = 0; it < w->iterations; it++) {
    uint64_t shift = (uint64_t)it;
#define SIZE_AT(i, salt) ((size_t)w->min + (((uint64_t)(i) + shift + (salt)) * step) % range)
    /* LIFO */
    for (long long i = 0; i < w->batch; i++) b[i] = obj_new(kName, SIZE_AT(i, 0), &r);
    for (long long i = w->batch - 1; i >= 0; i--) obj_free(kName, &b[i]);
    /* FIFO */
    for (long long i = 0; i < w->batch; i++) b[i] = obj_new(kName, SIZE_AT(i, 1), &r);
    for (long long i = 0; i < w->batch; i++) obj_free(kName, &b[i]);
    /* holes */
    for (long long i = 0; i < w->batch; i++) b[i] = obj_new(kName, SIZE_AT(i, 2), &r);
    for (long long i = 1; i < w->batch; i += 2) obj_free(kName, &b[i]);
    for (long long i = 1; i < w->batch; i += 2) b[i] = obj_new(kName, SIZE_AT(i, 3 + range / 2), &r);
    for (long long i = w->batch - 1; i >= 0; i--) obj_free(kName, &b[i]);
#undef SIZE_AT
    mallocs += (uint64_t)(3 * w->batch + w->batch / 2);
  }
  free(b);
  w->mallocs = mallocs;
  return NULL;
}

int main(int argc, char** argv) {
  args_init(argc, argv, "[threads=1] [iterations=400] [batch=10000] [min=16] [max=1000] [seed=1]");
  long long threads = arg_range("threads", 1, 1, 256);
  long long iterations = arg_range("iterations", 400, 1, 1ll << 40);
  long long batch = arg_range("batch", 10000, 2, 1 << 26);
  long long min = arg_range("min", 16, 1, 1 << 30);
  long long max = arg_range("max", 1000, min, 1 << 30);
  uint64_t seed = (uint64_t)arg_long("seed", 1);
  args_done();
  printf("sh6bench: threads=%lld iterations=%lld batch=%lld size=%lld..%lld\n", threads,
         iterations, batch, min, max);

  pthread_t* tids = (pthread_t*)xcalloc((size_t)threads, sizeof(pthread_t));
  work_t* work = (work_t*)xcalloc((size_t)threads, sizeof(work_t));
  for (long long i = 0; i < threads; i++)
    work[i] = (work_t){iterations, batch, min, max, mix64(seed * 8191u + (uint64_t)i), 0};

  double t0 = now_sec();
  for (long long i = 0; i < threads; i++) xthread_create(&tids[i], worker, &work[i]);
  for (long long i = 0; i < threads; i++) xthread_join(tids[i]);
  double elapsed = now_sec() - t0;

  uint64_t mallocs = 0;
  for (long long i = 0; i < threads; i++) mallocs += work[i].mallocs;
  free(tids);
  free(work);
  report(kName, mallocs, elapsed);
  return 0;
}
