/* The collector's C API (ga_gc_*), exercised from C: compiled as C11 and
 * linked into test_gc_capi (the gtest side calls these functions). Each
 * returns 0 on success or the __LINE__ of the first failed check. */
#include <goalloc/goalloc.h>

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) return __LINE__;                                                                 \
    } while (0)
#define NOINLINE __attribute__((noinline))

struct cnode {
    struct cnode* next; /* scanned conservatively (GA_GC_SCAN) */
    uint64_t id;
    uint64_t sum;
};

static uint64_t mix(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Clears stack below the caller (stale pointers in dead frames). */
static NOINLINE void scrub_stack(void) {
    volatile unsigned char buf[32768];
    memset((unsigned char*)buf, 0, sizeof buf);
    __asm__ volatile("" : : "r"(buf) : "memory");
}

static void collect_scrubbed(void) {
    scrub_stack();
    ga_gc_collect();
}

int capi_alloc_zeroed(void) {
    static const size_t sizes[] = {1, 8, 15, 16, 24, 100, 1024, 4000, 32768, 40000, 1 << 20};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        for (int flags = GA_GC_SCAN; flags <= GA_GC_NOSCAN; flags++) {
            for (int rep = 0; rep < 10; rep++) {
                unsigned char* p = (unsigned char*)ga_gc_alloc(sizes[i], flags);
                CHECK(p != NULL);
                for (size_t b = 0; b < sizes[i]; b++) CHECK(p[b] == 0);
                memset(p, 0xAB, sizes[i]); /* dirty, for reuse after a collect */
            }
        }
        collect_scrubbed();
    }
    return 0;
}

int capi_alloc_failure(void) {
    errno = 0;
    void* p = ga_gc_alloc((size_t)1 << 62, GA_GC_NOSCAN);
    CHECK(p == NULL);
    CHECK(errno == ENOMEM);
    return 0;
}

/* A list rooted in a range added with ga_gc_add_roots. */
static struct cnode* g_head; /* the root range: one word */

static NOINLINE void build_list(int n) {
    for (int i = 0; i < n; i++) {
        struct cnode* c = (struct cnode*)ga_gc_alloc(sizeof *c, GA_GC_SCAN);
        c->id = (uint64_t)i;
        c->sum = mix((uint64_t)i + 99);
        ga_gc_store((void**)&c->next, g_head);
        g_head = c; /* the root range is scanned at cycle start; GC is off here */
    }
}

static NOINLINE int check_list(int n) {
    int len = 0;
    for (struct cnode* c = g_head; c != NULL; c = c->next, len++) {
        CHECK(c->id == (uint64_t)(n - 1 - len));
        CHECK(c->sum == mix(c->id + 99));
    }
    CHECK(len == n);
    return 0;
}

static NOINLINE void churn(int n) {
    for (int i = 0; i < n; i++) {
        struct cnode* c = (struct cnode*)ga_gc_alloc(sizeof *c, GA_GC_SCAN);
        memset(c, 0xEE, sizeof *c);
    }
}

int capi_roots_and_scan(void) {
    int prev = ga_gc_set_percent(-1);
    ga_gc_add_roots(&g_head, sizeof g_head);
    build_list(2000);
    for (int i = 0; i < 3; i++) {
        collect_scrubbed();
        churn(5000);
    }
    collect_scrubbed();
    int rc = check_list(2000);
    g_head = NULL;
    ga_gc_remove_roots(&g_head);
    ga_gc_set_percent(prev);
    return rc;
}

/* Finalizers; and words of a NOSCAN object are not traced. */
static int g_fin_count;
static int g_fin_bad;
static void on_finalize(void* obj, void* arg) {
    struct cnode* c = (struct cnode*)obj;
    if (arg != (void*)&g_fin_count || c->sum != mix(c->id + 7)) __atomic_fetch_add(&g_fin_bad, 1, __ATOMIC_SEQ_CST);
    __atomic_fetch_add(&g_fin_count, 1, __ATOMIC_SEQ_CST);
}

static NOINLINE struct cnode* make_finalized(uint64_t id) {
    struct cnode* c = (struct cnode*)ga_gc_alloc(sizeof *c, GA_GC_SCAN);
    c->id = id;
    c->sum = mix(id + 7);
    ga_gc_set_finalizer(c, on_finalize, &g_fin_count);
    return c;
}

static void** g_noscan_root; /* -> a NOSCAN block, itself rooted */
static struct cnode** g_scan_root; /* -> a SCAN block */

static NOINLINE void setup_holders(void) {
    g_noscan_root = (void**)ga_gc_alloc(64, GA_GC_NOSCAN);
    g_scan_root = (struct cnode**)ga_gc_alloc(64, GA_GC_SCAN);
    g_noscan_root[3] = make_finalized(1); /* not traced: dies */
    ga_gc_store((void**)&g_scan_root[5], make_finalized(2)); /* traced: lives */
}

static int fin_count(void) { return __atomic_load_n(&g_fin_count, __ATOMIC_SEQ_CST); }

int capi_finalizers_and_noscan(void) {
    int prev = ga_gc_set_percent(-1);
    ga_gc_add_roots(&g_noscan_root, sizeof g_noscan_root);
    ga_gc_add_roots(&g_scan_root, sizeof g_scan_root);
    setup_holders();
    /* There is no ga_gc_run_finalizers in C: poll for the finalizer thread. */
    int seen = 0;
    for (int i = 0; i < 10 && !seen; i++) {
        collect_scrubbed();
        for (int w = 0; w < 200 && fin_count() == 0; w++) {
            struct timespec ts = {0, 5 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
        seen = fin_count() > 0;
    }
    CHECK(seen);
    CHECK(fin_count() == 1);
    CHECK(__atomic_load_n(&g_fin_bad, __ATOMIC_SEQ_CST) == 0);
    CHECK(g_scan_root[5]->id == 2 && g_scan_root[5]->sum == mix(2 + 7));
    /* Dropping the scan holder lets the second object go. */
    g_scan_root = NULL;
    for (int i = 0; i < 10 && fin_count() < 2; i++) {
        collect_scrubbed();
        for (int w = 0; w < 200 && fin_count() < 2; w++) {
            struct timespec ts = {0, 5 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
    }
    CHECK(fin_count() == 2);
    CHECK(__atomic_load_n(&g_fin_bad, __ATOMIC_SEQ_CST) == 0);
    ga_gc_remove_roots(&g_noscan_root);
    ga_gc_remove_roots(&g_scan_root);
    g_noscan_root = NULL;
    ga_gc_set_percent(prev);
    return 0;
}

int capi_control_and_stats(void) {
    int prev = ga_gc_set_percent(60);
    CHECK(ga_gc_set_percent(-1) == 60);
    int64_t lim = ga_gc_set_memory_limit(-1);
    CHECK(lim > 0);
    CHECK(ga_gc_set_memory_limit(1LL << 40) == lim);
    CHECK(ga_gc_set_memory_limit(lim) == (1LL << 40));

    ga_gc_stats_t s0, s1, s2;
    ga_gc_collect();
    ga_gc_stats(&s0);
    CHECK(s0.mallocs - s0.frees == s0.heap_objects);
    churn(10000);
    ga_gc_stats(&s1);
    CHECK(s1.num_gc == s0.num_gc); /* off */
    CHECK(s1.mallocs >= s0.mallocs + 10000);
    CHECK(s1.total_alloc >= s0.total_alloc + 10000 * sizeof(struct cnode));
    CHECK(s1.heap_objects >= s0.heap_objects + 10000);
    collect_scrubbed();
    ga_gc_stats(&s2);
    CHECK(s2.num_gc == s1.num_gc + 1);
    CHECK(s2.frees >= s1.frees + 9900);
    CHECK(s2.heap_objects <= s0.heap_objects + 100);
    CHECK(s2.mallocs - s2.frees == s2.heap_objects);
    CHECK(s2.heap_sys >= s2.heap_alloc);
    CHECK(s2.pause_total_ns > 0);
    CHECK(s2.max_pause_ns > 0 && s2.max_pause_ns <= s2.pause_total_ns);
    CHECK(s2.gc_cpu_fraction >= 0.0 && s2.gc_cpu_fraction <= 1.0);
    CHECK(ga_gc_set_percent(prev) == -1);
    ga_gc_collect();
    ga_gc_stats(&s2);
    CHECK(s2.next_gc > 0);
    return 0;
}

/* Threads registering, allocating, publishing and unregistering from C. */
#define C_THREADS 4
static struct cnode* g_thread_roots[C_THREADS];

static void* thread_main(void* arg) {
    intptr_t t = (intptr_t)arg;
    ga_gc_register_thread();
    struct cnode* head = NULL;
    for (int i = 0; i < 5000; i++) {
        struct cnode* c = (struct cnode*)ga_gc_alloc(sizeof *c, GA_GC_SCAN);
        c->id = (uint64_t)(t * 100000 + i);
        c->sum = mix(c->id);
        if (i % 10 == 0) {
            ga_gc_store((void**)&c->next, head);
            head = c;
        }
        if (i % 1000 == 0) ga_gc_collect();
    }
    __atomic_store_n(&g_thread_roots[t], head, __ATOMIC_RELEASE);
    ga_gc_unregister_thread();
    return NULL;
}

int capi_threads(void) {
    int prev = ga_gc_set_percent(50);
    ga_gc_add_roots(g_thread_roots, sizeof g_thread_roots);
    pthread_t th[C_THREADS];
    for (intptr_t t = 0; t < C_THREADS; t++)
        CHECK(pthread_create(&th[t], NULL, thread_main, (void*)t) == 0);
    for (int t = 0; t < C_THREADS; t++) pthread_join(th[t], NULL);
    for (int i = 0; i < 3; i++) {
        collect_scrubbed();
        churn(3000);
    }
    for (int t = 0; t < C_THREADS; t++) {
        int n = 0;
        for (struct cnode* c = g_thread_roots[t]; c != NULL; c = c->next, n++) {
            CHECK(c->sum == mix(c->id));
            CHECK(c->id / 100000 == (uint64_t)t);
        }
        CHECK(n == 500);
    }
    ga_gc_remove_roots(g_thread_roots);
    memset(g_thread_roots, 0, sizeof g_thread_roots);
    ga_gc_set_percent(prev);
    return 0;
}
