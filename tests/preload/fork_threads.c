/*
 * fork_threads.c — fork() while 4 threads are busy in the allocator.
 *
 * The parent runs 4 worker threads that malloc/free without pause (sizes from
 * 8 B to 256 KiB; some objects pass between threads through shared slots, so
 * frees are also remote) and calls fork() FORKS times. Each child, which
 * inherits the heap in whatever state fork() caught it:
 *   - mallocs, fills, checks and frees many objects of several sizes;
 *   - frees objects the parent's main thread allocated before fork, and
 *     objects the (now absent) worker threads left in the shared slots;
 *   - does the same in a new thread, and joins it;
 *   - forks a grandchild that allocates (once in a while);
 *   - _exit(0), or _exit(10 + n) for a failed check n.
 * The parent polls waitpid for each child with a deadline of CHILD_TIMEOUT
 * seconds: a child stuck on an allocator lock is killed and FAILS the test
 * instead of hanging it. alarm() is the last line of defence for the parent.
 *
 * Exit status 0 when every child exited 0 in time and the parent's heap
 * validates afterwards.
 */
#include "preload_common.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define FORKS 50
#define WORKERS 4
#define SLOTS 256   /* per worker, private */
#define SHARED 512  /* shared between workers: remote frees */
#define CHILD_TIMEOUT 20

static volatile int stop_workers;
static void* shared_slots[SHARED];
static unsigned long worker_ops[WORKERS];

static size_t pick_size(uint64_t* rng) {
    uint64_t r = pl_rand(rng);
    switch (r % 8) {
    case 0: return 8 + (r >> 8) % 64;
    case 1: case 2: case 3: return 16 + (r >> 8) % 1024;
    case 4: case 5: return 1024 + (r >> 8) % 8192;
    case 6: return 8192 + (r >> 8) % 40000;        /* around the 32 KiB boundary */
    default: return 32768 + (r >> 8) % (256 * 1024); /* large objects */
    }
}

/* An object carries its size and a tag so a check can see it intact. */
static void* obj_new(size_t n, uint32_t tag) {
    if (n < 16) n = 16;
    uint32_t* p = (uint32_t*)malloc(n);
    if (p == NULL) return NULL;
    p[0] = (uint32_t)n;
    p[1] = tag;
    ((unsigned char*)p)[n - 1] = (unsigned char)tag;
    return p;
}

static int obj_ok(const void* v) {
    const uint32_t* p = (const uint32_t*)v;
    size_t n = p[0];
    return n >= 16 && n <= (1u << 20) && ((const unsigned char*)p)[n - 1] == (unsigned char)p[1] &&
           malloc_usable_size((void*)v) >= n;
}

static void* worker(void* arg) {
    int id = (int)(intptr_t)arg;
    uint64_t rng = 0x9e3779b97f4a7c15ULL * (uint64_t)(id + 1);
    void* mine[SLOTS] = {0};
    unsigned long ops = 0;
    while (!__atomic_load_n(&stop_workers, __ATOMIC_RELAXED)) {
        uint64_t r = pl_rand(&rng);
        int i = (int)(r % SLOTS);
        if (mine[i] != NULL) {
            if (!obj_ok(mine[i])) {
                fprintf(stderr, "fork_threads: worker %d: object %p damaged\n", id, mine[i]);
                abort();
            }
            free(mine[i]);
        }
        mine[i] = obj_new(pick_size(&rng), (uint32_t)r);
        if ((r >> 32) % 4 == 0) {
            /* swap one object with a shared slot: whoever takes it frees it */
            int s = (int)((r >> 40) % SHARED);
            void* old = __atomic_exchange_n(&shared_slots[s], obj_new(pick_size(&rng), (uint32_t)(r >> 7)),
                                            __ATOMIC_ACQ_REL);
            if (old != NULL) free(old);
        }
        ops++;
        if ((ops & 1023) == 0) __atomic_store_n(&worker_ops[id], ops, __ATOMIC_RELAXED);
    }
    for (int i = 0; i < SLOTS; i++) free(mine[i]);
    return NULL;
}

/* What every child (and a thread of it) does: allocate a lot, check, free. */
static int child_workload(uint64_t seed) {
    static const size_t sizes[] = {8, 16, 24, 48, 100, 256, 1000, 4096, 5000, 20000, 32768, 40000, 200000, 1 << 20};
    enum { NS = sizeof sizes / sizeof sizes[0], PER = 64 };
    void* objs[NS][PER];
    uint64_t rng = seed;
    for (int round = 0; round < 4; round++) {
        for (int s = 0; s < NS; s++)
            for (int k = 0; k < PER; k++) {
                objs[s][k] = obj_new(sizes[s], (uint32_t)pl_rand(&rng));
                if (objs[s][k] == NULL) return 1;
            }
        for (int s = 0; s < NS; s++)
            for (int k = 0; k < PER; k++)
                if (!obj_ok(objs[s][k])) return 2;
        for (int s = 0; s < NS; s++)
            for (int k = (round & 1); k < PER; k += 2) free(objs[s][k]);
        for (int s = 0; s < NS; s++)
            for (int k = !(round & 1); k < PER; k += 2) {
                void* q = realloc(objs[s][k], sizes[(s + 3) % NS]);
                if (q == NULL) return 3;
                free(q);
            }
        char* z = (char*)calloc(1000, 10);
        if (z == NULL) return 4;
        for (int i = 0; i < 10000; i++)
            if (z[i] != 0) return 5;
        free(z);
    }
    return 0;
}

static void* child_thread(void* arg) {
    return (void*)(intptr_t)child_workload((uint64_t)(uintptr_t)arg);
}

static void run_child(int round, void** inherited, int n_inherited) {
    int rc = child_workload(0x1234 + (uint64_t)round);
    if (rc != 0) _exit(10 + rc);
    /* Objects the main thread allocated before fork: still ours. */
    for (int i = 0; i < n_inherited; i++) {
        if (!obj_ok(inherited[i])) _exit(20);
        free(inherited[i]);
    }
    /* Objects the workers left in the shared slots: allocated by threads that
     * do not exist in this process, freed here. */
    for (int s = 0; s < SHARED; s++) {
        void* p = __atomic_exchange_n(&shared_slots[s], NULL, __ATOMIC_ACQ_REL);
        if (p != NULL) {
            if (!obj_ok(p)) _exit(21);
            free(p);
        }
    }
    pthread_t t;
    if (pthread_create(&t, NULL, child_thread, (void*)(uintptr_t)(round * 77 + 5)) != 0) _exit(30);
    void* trc = NULL;
    pthread_join(t, &trc);
    if (trc != NULL) _exit(30 + (int)(intptr_t)trc);
    if (round % 10 == 0) {
        /* a grandchild: fork from a child whose own state came from a fork */
        pid_t g = fork();
        if (g == 0) _exit(child_workload(99) == 0 ? 0 : 1);
        int st = 0;
        if (g < 0 || waitpid(g, &st, 0) != g || !WIFEXITED(st) || WEXITSTATUS(st) != 0) _exit(40);
    }
    _exit(0);
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    require_goalloc("fork_threads");
    alarm(110); /* SIGALRM ends a parent that is itself stuck */
    pthread_t th[WORKERS];
    for (int i = 0; i < WORKERS; i++) pthread_create(&th[i], NULL, worker, (void*)(intptr_t)i);
    /* let the workers get going before the first fork */
    while (__atomic_load_n(&worker_ops[WORKERS - 1], __ATOMIC_RELAXED) < 1024) usleep(1000);

    int rounds = 0;
    for (int round = 0; round < FORKS; round++, rounds++) {
        enum { NI = 32 };
        void* inherited[NI];
        for (int i = 0; i < NI; i++) inherited[i] = obj_new(16 + (size_t)i * 997 * (i % 3 ? 1 : 7), (uint32_t)i);
        pid_t pid = fork();
        if (pid < 0) {
            CHECK(0, "fork() failed: %s", strerror(errno));
            break;
        }
        if (pid == 0) run_child(round, inherited, NI);
        for (int i = 0; i < NI; i++) free(inherited[i]);
        double deadline = now() + CHILD_TIMEOUT;
        int status = 0;
        pid_t w;
        while ((w = waitpid(pid, &status, WNOHANG)) == 0 && now() < deadline) usleep(2000);
        if (w == 0) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            CHECK(0, "fork %d: child %d did not finish within %d s (deadlock in the allocator?)", round, (int)pid,
                  CHILD_TIMEOUT);
            break; /* one stuck child is enough */
        }
        CHECK(w == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0,
              "fork %d: child %s %d", round, WIFSIGNALED(status) ? "killed by signal" : "exited with",
              WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
    }
    __atomic_store_n(&stop_workers, 1, __ATOMIC_RELAXED);
    unsigned long total = 0;
    for (int i = 0; i < WORKERS; i++) {
        pthread_join(th[i], NULL);
        total += worker_ops[i];
    }
    for (int s = 0; s < SHARED; s++) free(shared_slots[s]);
    uint64_t found = pl_heap_validate();
    printf("%d of %d forks done; workers did ~%lu operations; %llu live objects after\n", rounds, FORKS, total,
           (unsigned long long)found);
    CHECK(total > 0, "workers made no progress");
    CHECK(rounds == FORKS, "stopped after %d of %d forks", rounds, FORKS);
    return checks_done();
}
