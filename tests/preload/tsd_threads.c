/*
 * tsd_threads.c — thread exit with pthread key (TSD) destructors that allocate
 * after goalloc's thread cache is gone.
 *
 * goalloc destroys a thread's cache in its own pthread key destructor. glibc
 * runs key destructors in rounds (up to PTHREAD_DESTRUCTOR_ITERATIONS = 4), in
 * key order within a round, so a destructor of a key created before goalloc's
 * runs before it, one created after runs after it, and one that re-arms its
 * key runs again in later rounds — after goalloc's destructor for sure.
 * Here every thread sets:
 *   key_early (created before the first malloc of main) and key_late (created
 *   after threads have allocated): destructors that malloc, check and free
 *   objects of several sizes, and re-arm themselves for 3 rounds;
 *   key_keep: a destructor that mallocs objects, fills them, re-arms for
 *   3 rounds, and leaves the pointers in a global table; the main thread
 *   checks and frees them after joining.
 * Threads are created in waves, some detached. At the end the main thread
 * checks the kept objects, frees them, and the heap must validate with no
 * objects leaked (ga_heap_validate before == after, within a small slack for
 * objects the C library itself keeps).
 */
#include "preload_common.h"

#include <pthread.h>
#include <semaphore.h>
#include <unistd.h>

#define THREADS 400
#define WAVE 16
#define ROUNDS 3      /* destructor rounds per key (glibc allows 4) */
#define KEEP_SIZES 3

static pthread_key_t key_early, key_late, key_keep;
static void* kept[THREADS][ROUNDS][KEEP_SIZES];
static const size_t keep_sizes[KEEP_SIZES] = {40, 3000, 70000};
static unsigned long destructor_runs, destructor_bad;
static sem_t detached_done;

struct tinfo {
    int id;
    int round_early, round_late, round_keep;
};
static struct tinfo infos[THREADS];

static void bad(const char* what, int id) {
    __atomic_fetch_add(&destructor_bad, 1, __ATOMIC_RELAXED);
    char buf[128];
    int n = snprintf(buf, sizeof buf, "FAIL: thread %d: %s\n", id, what);
    if (write(1, buf, (size_t)n) < 0) { /* nothing to do */ }
}

/* malloc, fill, check, free: several sizes, small and large, plus calloc and
 * realloc, from inside a TSD destructor. */
static void churn(int id) {
    static const size_t sizes[] = {8, 24, 100, 1000, 8000, 32768, 50000, 300000};
    void* p[sizeof sizes / sizeof sizes[0]];
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        p[i] = malloc(sizes[i]);
        if (p[i] == NULL) {
            bad("malloc in a TSD destructor returned NULL", id);
            continue;
        }
        memset(p[i], (int)i + 1, sizes[i]);
    }
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        if (p[i] == NULL) continue;
        if (((unsigned char*)p[i])[sizes[i] - 1] != (unsigned char)(i + 1)) bad("object damaged", id);
        free(p[i]);
    }
    char* z = (char*)calloc(64, 64);
    if (z == NULL || z[4095] != 0) bad("calloc in a TSD destructor", id);
    z = (char*)realloc(z, 100000);
    if (z == NULL) bad("realloc in a TSD destructor", id);
    free(z);
}

static void destroy_early(void* v) {
    struct tinfo* t = (struct tinfo*)v;
    __atomic_fetch_add(&destructor_runs, 1, __ATOMIC_RELAXED);
    churn(t->id);
    if (++t->round_early < ROUNDS) pthread_setspecific(key_early, t); /* run again next round */
}

static void destroy_late(void* v) {
    struct tinfo* t = (struct tinfo*)v;
    __atomic_fetch_add(&destructor_runs, 1, __ATOMIC_RELAXED);
    churn(t->id);
    if (++t->round_late < ROUNDS) pthread_setspecific(key_late, t);
}

static void destroy_keep(void* v) {
    struct tinfo* t = (struct tinfo*)v;
    __atomic_fetch_add(&destructor_runs, 1, __ATOMIC_RELAXED);
    int r = t->round_keep;
    for (int k = 0; k < KEEP_SIZES; k++) {
        unsigned char* p = (unsigned char*)malloc(keep_sizes[k]);
        if (p == NULL) {
            bad("malloc (kept) in a TSD destructor returned NULL", t->id);
            continue;
        }
        memset(p, (t->id + r * 7 + k) & 0xff, keep_sizes[k]);
        kept[t->id][r][k] = p;
    }
    if (++t->round_keep < ROUNDS) pthread_setspecific(key_keep, t);
}

static void* thread_main(void* arg) {
    struct tinfo* t = (struct tinfo*)arg;
    /* some ordinary allocation first, so the thread has a cache to lose */
    void* a[32];
    for (int i = 0; i < 32; i++) a[i] = malloc((size_t)(i + 1) * 37);
    for (int i = 0; i < 32; i += 2) free(a[i]);
    pthread_setspecific(key_early, t);
    pthread_setspecific(key_late, t);
    pthread_setspecific(key_keep, t);
    for (int i = 1; i < 32; i += 2) free(a[i]);
    void* last = malloc(777); /* one more allocation after the keys are set */
    free(last);
    if (t->id % 4 == 3) sem_post(&detached_done);
    return NULL;
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    /* before anything of ours allocates: a key with a low index */
    pthread_key_create(&key_early, destroy_early);
    require_goalloc("tsd_threads");
    printf("tsd_threads: %d threads, %d destructor rounds per key\n", THREADS, ROUNDS);
    sem_init(&detached_done, 0, 0);

    /* Create key_late only once threads have allocated (goalloc's key exists). */
    pthread_key_create(&key_late, destroy_late);
    pthread_key_create(&key_keep, destroy_keep);

    uint64_t before = pl_heap_validate();
    pl_stats s0;
    pl_stats_get(&s0);
    int detached = 0;
    for (int base = 0; base < THREADS; base += WAVE) {
        pthread_t th[WAVE];
        int joinable[WAVE];
        for (int i = 0; i < WAVE && base + i < THREADS; i++) {
            int id = base + i;
            infos[id].id = id;
            pthread_attr_t attr;
            pthread_attr_init(&attr);
            joinable[i] = id % 4 != 3;
            if (!joinable[i]) {
                pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
                detached++;
            }
            int rc = pthread_create(&th[i], &attr, thread_main, &infos[id]);
            CHECK(rc == 0, "pthread_create: %d", rc);
            pthread_attr_destroy(&attr);
        }
        for (int i = 0; i < WAVE && base + i < THREADS; i++)
            if (joinable[i]) pthread_join(th[i], NULL);
    }
    /* Detached threads: their thread_main has returned (semaphore); wait until
     * their destructors have run too (they fill kept[] last). */
    for (int i = 0; i < detached; i++) sem_wait(&detached_done);
    for (int spin = 0; spin < 5000; spin++) {
        int missing = 0;
        for (int id = 3; id < THREADS; id += 4)
            if (__atomic_load_n(&kept[id][ROUNDS - 1][KEEP_SIZES - 1], __ATOMIC_ACQUIRE) == NULL) missing++;
        if (missing == 0) break;
        usleep(1000);
    }
    usleep(20000); /* let the last detached threads finish exiting */

    unsigned long want_runs = (unsigned long)THREADS * 3 * ROUNDS;
    CHECK(destructor_runs == want_runs, "TSD destructors ran %lu times, want %lu", destructor_runs, want_runs);
    CHECK(destructor_bad == 0, "%lu failures inside destructors", destructor_bad);

    /* The main thread checks and frees what the destructors kept. */
    int damaged = 0, missing = 0;
    for (int id = 0; id < THREADS; id++)
        for (int r = 0; r < ROUNDS; r++)
            for (int k = 0; k < KEEP_SIZES; k++) {
                unsigned char* p = (unsigned char*)kept[id][r][k];
                if (p == NULL) {
                    missing++;
                    continue;
                }
                unsigned char want = (unsigned char)((id + r * 7 + k) & 0xff);
                if (p[0] != want || p[keep_sizes[k] - 1] != want || malloc_usable_size(p) < keep_sizes[k])
                    damaged++;
                free(p);
            }
    CHECK(missing == 0, "%d kept objects missing", missing);
    CHECK(damaged == 0, "%d kept objects damaged", damaged);

    uint64_t after = pl_heap_validate();
    pl_stats s1;
    pl_stats_get(&s1);
    printf("heap: %llu live objects before, %llu after; mallocs +%llu; bytes_mapped %llu -> %llu KiB\n",
           (unsigned long long)before, (unsigned long long)after, (unsigned long long)(s1.mallocs - s0.mallocs),
           (unsigned long long)(s0.bytes_mapped >> 10), (unsigned long long)(s1.bytes_mapped >> 10));
    /* Every object allocated in a destructor was freed: nothing leaked (a
     * little slack for the C library's own per-thread bookkeeping). */
    CHECK(after <= before + 16, "live objects %llu -> %llu: objects allocated in TSD destructors leaked",
          (unsigned long long)before, (unsigned long long)after);
    CHECK(s1.mallocs > s0.mallocs + (uint64_t)THREADS * ROUNDS * 8,
          "mallocs %llu -> %llu: destructor allocations not counted", (unsigned long long)s0.mallocs,
          (unsigned long long)s1.mallocs);
    return checks_done();
}
