/*
 * thread_churn.c — 2000 short-lived threads allocating under LD_PRELOAD.
 *
 * Threads run in waves of WAVE. Each allocates objects of mixed sizes (small
 * and large), checks and frees most of them itself, and swaps the rest into a
 * shared pool: whatever it takes out of the pool (allocated by another thread,
 * usually one that has exited since) it checks and frees — remote frees onto
 * spans whose owner is gone. After every wave the threads are joined.
 *
 * Checks: no damaged object; after the churn, and the pool freed by the main
 * thread, every object is accounted for (ga_heap_validate and live_objects
 * back to where they started); memory does not grow with the number of
 * threads (bytes_mapped after 2000 threads is close to what it was after the
 * first 200: the caches of exited threads are recycled).
 */
#include "preload_common.h"

#include <pthread.h>
#include <unistd.h>

#define THREADS 2000
#define WAVE 8
#define PER_THREAD 96
#define POOL 1024

static void* pool[POOL];
static unsigned long damaged;

static void* obj_new(size_t n, uint32_t tag) {
    uint32_t* p = (uint32_t*)malloc(n);
    if (p == NULL) return NULL;
    p[0] = (uint32_t)n;
    p[1] = tag;
    ((unsigned char*)p)[n - 1] = (unsigned char)tag;
    return p;
}

static void obj_free(void* v) {
    if (v == NULL) return;
    uint32_t* p = (uint32_t*)v;
    size_t n = p[0];
    if (n < 8 || n > (1u << 20) || ((unsigned char*)p)[n - 1] != (unsigned char)p[1])
        __atomic_fetch_add(&damaged, 1, __ATOMIC_RELAXED);
    free(v);
}

static void* thread_main(void* arg) {
    uint64_t rng = 0xdeadbeefcafeULL + (uint64_t)(uintptr_t)arg * 0x9e3779b97f4a7c15ULL;
    void* mine[PER_THREAD];
    for (int i = 0; i < PER_THREAD; i++) {
        uint64_t r = pl_rand(&rng);
        size_t n = (i % 16 == 15) ? 33000 + (size_t)(r % 100000) : 8 + (size_t)(r % 2048);
        mine[i] = obj_new(n, (uint32_t)(r >> 16));
    }
    for (int i = 0; i < PER_THREAD; i++) {
        if (i % 4 == 0) {
            int s = (int)(pl_rand(&rng) % POOL);
            void* old = __atomic_exchange_n(&pool[s], mine[i], __ATOMIC_ACQ_REL);
            obj_free(old);
        } else {
            obj_free(mine[i]);
        }
    }
    return NULL;
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    require_goalloc("thread_churn");
    uint64_t before = pl_heap_validate();
    pl_stats s0, s200, s1;
    pl_stats_get(&s0);
    size_t rss200 = 0;
    for (int base = 0; base < THREADS; base += WAVE) {
        pthread_t th[WAVE];
        for (int i = 0; i < WAVE; i++) {
            int rc = pthread_create(&th[i], NULL, thread_main, (void*)(uintptr_t)(base + i));
            CHECK(rc == 0, "pthread_create: %d", rc);
        }
        for (int i = 0; i < WAVE; i++) pthread_join(th[i], NULL);
        if (base + WAVE == 200) {
            pl_stats_get(&s200);
            rss200 = pl_rss();
        }
    }
    pl_stats_get(&s1);
    size_t rss1 = pl_rss();
    int pooled = 0;
    for (int s = 0; s < POOL; s++)
        if (pool[s] != NULL) {
            pooled++;
            obj_free(pool[s]);
            pool[s] = NULL;
        }
    uint64_t after = pl_heap_validate();
    pl_stats s2;
    pl_stats_get(&s2);
    printf("thread_churn: %d threads; mapped %llu KiB after 200 threads, %llu KiB after %d; RSS %zu -> %zu KiB; "
           "%d objects left in the pool; live objects %llu before, %llu after\n",
           THREADS, (unsigned long long)(s200.bytes_mapped >> 10), (unsigned long long)(s1.bytes_mapped >> 10),
           THREADS, rss200 >> 10, rss1 >> 10, pooled, (unsigned long long)before, (unsigned long long)after);
    CHECK(damaged == 0, "%lu damaged objects", damaged);
    CHECK(pooled > 0, "no object went through the pool");
    CHECK(s1.mallocs - s0.mallocs >= (uint64_t)THREADS * PER_THREAD,
          "mallocs grew by %llu, want >= %d: are exited threads' counters merged?",
          (unsigned long long)(s1.mallocs - s0.mallocs), THREADS * PER_THREAD);
    CHECK(after <= before + 16, "live objects %llu -> %llu after all threads exited and the pool was freed",
          (unsigned long long)before, (unsigned long long)after);
    CHECK(s2.live_objects <= s0.live_objects + 16, "live_objects counter %llu -> %llu",
          (unsigned long long)s0.live_objects, (unsigned long long)s2.live_objects);
    /* 1800 more threads must not need much more memory than the first 200. */
    CHECK(s1.bytes_mapped <= s200.bytes_mapped + 32 * 1024 * 1024,
          "bytes_mapped grew from %llu to %llu KiB over 1800 more threads",
          (unsigned long long)(s200.bytes_mapped >> 10), (unsigned long long)(s1.bytes_mapped >> 10));
    CHECK(rss1 <= rss200 + 32 * 1024 * 1024, "RSS grew from %zu to %zu KiB over 1800 more threads", rss200 >> 10,
          rss1 >> 10);
    return checks_done();
}
