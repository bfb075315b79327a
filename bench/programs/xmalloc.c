/*
 * xmalloc — producer/consumer, after the idea of Lever & Boreham's xmalloc-test
 * (original code): objects are allocated by one thread and freed by another.
 *
 * `pairs` producer threads and as many consumer threads; producer i sends to
 * consumer i through a bounded single-producer single-consumer lock-free ring of
 * `queue` entries. A producer allocates `objects` objects of random size in
 * [min, max], stamps each, and pushes it; its consumer pops it, verifies it and
 * frees it. Every free is a cross-thread free; the producer's thread cache only
 * ever allocates, the consumer's only frees. A full or empty ring spins briefly,
 * then yields the CPU. The producer publishes its pushes 64 at a time (fewer
 * stores to the shared index), the consumer takes all that is published.
 *
 * Self-check: the consumer verifies each object's stamp (whose nonce travels in
 * the ring, outside the object) before freeing it, and counts what it received;
 * exit 3 on a mismatch or a lost object.
 *
 *   xmalloc [pairs=1] [objects=2000000] [queue=1024] [min=16] [max=512] [seed=1]
 *   ops = pairs * objects (malloc+free pairs).
 */
#include "common.h"

#include <sched.h>
#include <stdatomic.h>

static const char* const kName = "xmalloc";

typedef struct {
  _Alignas(64) _Atomic size_t tail; /* written by the producer */
  _Alignas(64) _Atomic size_t head; /* written by the consumer */
  _Alignas(64) obj_t* items;
  size_t mask, publish;
  long long objects, min, max;
  uint64_t seed;
  long long received;
} ring_t;

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

static inline void backoff(unsigned* spins) {
  if (++*spins < 64) {
    cpu_relax();
  } else {
    *spins = 0;
    sched_yield();
  }
}

static void* producer(void* arg) {
  ring_t* q = (ring_t*)arg;
  rng_t r = rng_seed(q->seed);
  size_t tail = 0, head = 0;
  for (long long i = 0; i < q->objects; i++) {
    obj_t o = obj_new(kName, rng_range(&r, (uint64_t)q->min, (uint64_t)q->max), &r);
    unsigned spins = 0;
    while (tail - head > q->mask) {
      head = atomic_load_explicit(&q->head, memory_order_acquire);
      if (tail - head > q->mask) backoff(&spins);
    }
    q->items[tail & q->mask] = o;
    /* Publish every `publish` objects (and when the ring fills): fewer stores to
     * the shared line than one per object. */
    if (++tail % q->publish == 0 || tail - head > q->mask)
      atomic_store_explicit(&q->tail, tail, memory_order_release);
  }
  atomic_store_explicit(&q->tail, tail, memory_order_release);
  return NULL;
}

static void* consumer(void* arg) {
  ring_t* q = (ring_t*)arg;
  size_t head = 0, tail = 0;
  long long got = 0;
  while (got < q->objects) {
    unsigned spins = 0;
    while (head == tail) {
      tail = atomic_load_explicit(&q->tail, memory_order_acquire);
      if (head == tail) backoff(&spins);
    }
    /* Take everything available, then publish the space in one store. */
    while (head != tail) {
      obj_t o = q->items[head & q->mask];
      obj_free(kName, &o);
      head++;
      got++;
    }
    atomic_store_explicit(&q->head, head, memory_order_release);
  }
  q->received = got;
  return NULL;
}

int main(int argc, char** argv) {
  args_init(argc, argv, "[pairs=1] [objects=2000000] [queue=1024] [min=16] [max=512] [seed=1]");
  long long pairs = arg_range("pairs", 1, 1, 128);
  long long objects = arg_range("objects", 2000000, 1, 1ll << 40);
  long long queue = arg_range("queue", 1024, 2, 1 << 24);
  long long min = arg_range("min", 16, 1, 1 << 30);
  long long max = arg_range("max", 512, min, 1 << 30);
  uint64_t seed = (uint64_t)arg_long("seed", 1);
  args_done();
  if (queue & (queue - 1)) die("queue must be a power of two");
  printf("xmalloc: pairs=%lld objects=%lld queue=%lld size=%lld..%lld\n", pairs, objects, queue,
         min, max);

  ring_t* rings = (ring_t*)aligned_alloc(64, sizeof(ring_t) * (size_t)pairs);
  if (rings == NULL) die("aligned_alloc failed");
  for (long long i = 0; i < pairs; i++) {
    ring_t* q = &rings[i];
    atomic_init(&q->tail, 0);
    atomic_init(&q->head, 0);
    q->items = (obj_t*)xcalloc((size_t)queue, sizeof(obj_t));
    q->mask = (size_t)queue - 1;
    q->publish = (size_t)(queue >= 256 ? 64 : queue / 4 + 1);
    q->objects = objects;
    q->min = min;
    q->max = max;
    q->seed = mix64(seed * 7919u + (uint64_t)i);
    q->received = 0;
  }
  pthread_t* tids = (pthread_t*)xcalloc((size_t)pairs * 2, sizeof(pthread_t));

  double t0 = now_sec();
  for (long long i = 0; i < pairs; i++) {
    xthread_create(&tids[2 * i], consumer, &rings[i]);
    xthread_create(&tids[2 * i + 1], producer, &rings[i]);
  }
  for (long long i = 0; i < 2 * pairs; i++) xthread_join(tids[i]);
  double elapsed = now_sec() - t0;

  for (long long i = 0; i < pairs; i++) {
    if (rings[i].received != objects) {
      fprintf(stderr, "xmalloc: CORRUPTION: consumer %lld received %lld of %lld objects\n", i,
              rings[i].received, objects);
      return CORRUPTION_EXIT;
    }
    free(rings[i].items);
  }
  free(rings);
  free(tids);
  report(kName, (uint64_t)(pairs * objects), elapsed);
  return 0;
}
