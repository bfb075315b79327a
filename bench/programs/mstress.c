/*
 * mstress — allocation stress with migrating objects, after the idea of
 * mimalloc's test-stress (original code).
 *
 * Each of `rounds` rounds starts `threads` new threads (threads are re-created
 * every round, so thread caches are born and torn down over and over). A thread
 * keeps `local` slots and does `ops` steps, each one of:
 *   50%  allocate an object into a random slot (freeing what was there),
 *   25%  free a random slot,
 *   25%  swap a random slot with a random slot of the shared transfer array
 *        (`transfer` slots, each guarded by a spinlock): the object it takes was
 *        allocated by another thread, possibly of an earlier round.
 * Sizes are powers of two, 16 B .. 256 KiB, each size half as likely as the one
 * below (so every size class carries about the same bytes, and a few objects go
 * past 32 KiB to the large-object path). When a thread ends it frees half of its
 * slots and leaves the other half in the transfer array for the next rounds; the
 * main thread frees what remains at the end.
 *
 * Self-check: every object is stamped, with a nonce that travels with the slot,
 * and verified before every free; exit 3 on a mismatch.
 *
 *   mstress [threads=2] [rounds=50] [ops=200000] [local=2000] [transfer=4096] [maxlog=18] [seed=1]
 *   ops (result) = mallocs done by all threads.
 */
#include "common.h"

#include <stdatomic.h>

static const char* const kName = "mstress";

typedef struct {
  atomic_flag lock;
  obj_t obj;
} tslot_t;

static tslot_t* g_transfer;
static long long g_ntransfer, g_local, g_ops, g_maxlog;
static _Atomic long long g_mallocs;

static void slot_lock(tslot_t* s) {
  while (atomic_flag_test_and_set_explicit(&s->lock, memory_order_acquire)) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
  }
}
static void slot_unlock(tslot_t* s) { atomic_flag_clear_explicit(&s->lock, memory_order_release); }

static size_t pow2_size(rng_t* r) {
  /* 2^4 with probability 1/2, 2^5 with 1/4, ... capped at 2^maxlog. */
  long long k = 4 + __builtin_ctzll(rng_next(r) | (1ull << 62));
  if (k > g_maxlog) k = g_maxlog;
  return (size_t)1 << k;
}

static void swap_with_transfer(obj_t* o, rng_t* r) {
  tslot_t* s = &g_transfer[rng_below(r, (uint64_t)g_ntransfer)];
  slot_lock(s);
  obj_t tmp = s->obj;
  s->obj = *o;
  slot_unlock(s);
  *o = tmp;
}

static void* worker(void* arg) {
  rng_t r = rng_seed((uint64_t)(uintptr_t)arg);
  obj_t* local = (obj_t*)xcalloc((size_t)g_local, sizeof(obj_t));
  long long mallocs = 0;
  for (long long i = 0; i < g_ops; i++) {
    uint64_t what = rng_below(&r, 4);
    obj_t* o = &local[rng_below(&r, (uint64_t)g_local)];
    if (what < 2) {
      obj_free(kName, o);
      *o = obj_new(kName, pow2_size(&r), &r);
      mallocs++;
    } else if (what == 2) {
      obj_free(kName, o);
    } else {
      swap_with_transfer(o, &r);
    }
  }
  for (long long i = 0; i < g_local; i++) {
    if (i & 1) {
      swap_with_transfer(&local[i], &r);
    }
    obj_free(kName, &local[i]);
  }
  free(local);
  atomic_fetch_add(&g_mallocs, mallocs);
  return NULL;
}

int main(int argc, char** argv) {
  args_init(argc, argv,
            "[threads=2] [rounds=50] [ops=200000] [local=2000] [transfer=4096] [maxlog=18] [seed=1]");
  long long threads = arg_range("threads", 2, 1, 256);
  long long rounds = arg_range("rounds", 50, 1, 1 << 24);
  g_ops = arg_range("ops", 200000, 1, 1ll << 40);
  g_local = arg_range("local", 2000, 1, 1 << 24);
  g_ntransfer = arg_range("transfer", 4096, 1, 1 << 24);
  g_maxlog = arg_range("maxlog", 18, 4, 26);
  uint64_t seed = (uint64_t)arg_long("seed", 1);
  args_done();
  printf("mstress: threads=%lld rounds=%lld ops=%lld local=%lld transfer=%lld size=16..%lld\n",
         threads, rounds, g_ops, g_local, g_ntransfer, 1ll << g_maxlog);

  g_transfer = (tslot_t*)xcalloc((size_t)g_ntransfer, sizeof(tslot_t));
  for (long long i = 0; i < g_ntransfer; i++) atomic_flag_clear(&g_transfer[i].lock);
  pthread_t* tids = (pthread_t*)xcalloc((size_t)threads, sizeof(pthread_t));

  double t0 = now_sec();
  for (long long round = 0; round < rounds; round++) {
    for (long long i = 0; i < threads; i++)
      xthread_create(&tids[i], worker,
                     (void*)(uintptr_t)mix64(seed * 1000003u + (uint64_t)(round * threads + i)));
    for (long long i = 0; i < threads; i++) xthread_join(tids[i]);
  }
  double elapsed = now_sec() - t0;

  for (long long i = 0; i < g_ntransfer; i++) obj_free(kName, &g_transfer[i].obj);
  free(g_transfer);
  free(tids);
  report(kName, (uint64_t)atomic_load(&g_mallocs), elapsed);
  return 0;
}
