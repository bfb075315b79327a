/*
 * misuse.c CASE — commits one misuse of memory through one entry point of the
 * drop-in allocator (run under LD_PRELOAD=libgoalloc.so). goalloc must abort
 * (SIGABRT) with
 *   goalloc: <fn>(): double free of <addr>
 * or
 *   goalloc: <fn>(): invalid pointer <addr> (<why>)
 * on stderr. Before the misuse the program writes
 *   misuse target <addr>
 * to stderr (addr as printed by %p), so the driver (misuse_driver.cpp) can
 * find the address in goalloc's message. If the misuse goes unnoticed the
 * program prints "misuse not detected" and exits 1; an unknown CASE exits 2;
 * `misuse --list` prints the case names.
 */
#include "preload_common.h"

#include <pthread.h>
#include <sys/resource.h>
#include <unistd.h>

typedef void* (*new_fn)(size_t);
typedef void* (*new_al_fn)(size_t, size_t);
typedef void (*del_fn)(void*);
typedef void (*del_sized_fn)(void*, size_t);
typedef void (*del_al_fn)(void*, size_t);
typedef void (*del_sized_al_fn)(void*, size_t, size_t);
typedef void (*free_sized_fn)(void*, size_t);
typedef void (*free_aligned_sized_fn)(void*, size_t, size_t);

static void* sym(const char* name) {
    void* p = pl_sym(name);
    if (p == NULL) {
        fprintf(stderr, "misuse: %s not found\n", name);
        exit(4);
    }
    return p;
}

/* Announces the address, then the caller misuses it. */
static void* target(void* p) {
    fprintf(stderr, "misuse target %p\n", p);
    fflush(stderr);
    pl_escape(p);
    return p;
}

/* Through a volatile pointer: the compiler must not see what is freed. */
static void* volatile launder_slot;
static void* launder(void* p) {
    launder_slot = p;
    return launder_slot;
}

static int global_object[16];

static void* volatile thread_obj;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int thread_state; /* 1: object allocated; the thread then waits forever */

static void* alloc_and_wait(void* arg) {
    thread_obj = malloc(64);
    pthread_mutex_lock(&mu);
    thread_state = 1;
    pthread_cond_broadcast(&cv);
    if (arg != NULL) /* keep the span cached in this thread's mcache */
        while (thread_state != 2) pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
    return NULL;
}

static void* other_thread_object(int keep_thread_alive) {
    pthread_t t;
    pthread_create(&t, NULL, alloc_and_wait, keep_thread_alive ? (void*)1 : NULL);
    pthread_mutex_lock(&mu);
    while (thread_state != 1) pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
    if (!keep_thread_alive) pthread_join(t, NULL);
    return thread_obj;
}

static const char* const cases[] = {
    "double_free_small", "double_free_large", "interior_small", "interior_large", "stack", "wild", "global",
    "realloc_freed", "realloc_interior", "realloc_wild", "delete_freed", "delete_array_freed",
    "delete_sized_freed", "delete_aligned_freed", "delete_wild", "delete_interior", "usable_size_freed",
    "usable_size_wild", "free_sized_double", "free_aligned_sized_double", "cfree_double", "libc_free_double",
    "double_free_remote_live_thread", "double_free_remote_exited_thread", "double_free_after_reuse_cycle",
};

static int run(const char* c) {
#define IS(name) (strcmp(c, name) == 0)
    if (IS("double_free_small")) {
        void* p = malloc(48);
        free(p);
        free(target(p));
    } else if (IS("double_free_large")) {
        void* p = malloc(100000);
        free(p);
        free(target(p));
    } else if (IS("interior_small")) {
        char* p = (char*)malloc(64);
        free(target(p + 16));
    } else if (IS("interior_large")) {
        char* p = (char*)malloc(100000);
        free(target(p + 16));
    } else if (IS("stack")) {
        char buf[64];
        free(target(launder(buf + 8)));
    } else if (IS("wild")) {
        free(target(launder((void*)(uintptr_t)0x12345678)));
    } else if (IS("global")) {
        free(target(launder(&global_object[2])));
    } else if (IS("realloc_freed")) {
        void* p = malloc(100);
        free(p);
        void* q = realloc(target(p), 200);
        pl_escape(q);
    } else if (IS("realloc_interior")) {
        char* p = (char*)malloc(1000);
        void* q = realloc(target(p + 8), 2000);
        pl_escape(q);
    } else if (IS("realloc_wild")) {
        void* q = realloc(target(launder((void*)(uintptr_t)0x12345678)), 10);
        pl_escape(q);
    } else if (IS("delete_freed")) {
        new_fn op_new = (new_fn)sym("_Znwm");
        del_fn op_delete = (del_fn)sym("_ZdlPv");
        void* p = op_new(32);
        op_delete(p);
        op_delete(target(p));
    } else if (IS("delete_array_freed")) {
        new_fn op_new = (new_fn)sym("_Znam");
        del_fn op_delete = (del_fn)sym("_ZdaPv");
        void* p = op_new(320);
        op_delete(p);
        op_delete(target(p));
    } else if (IS("delete_sized_freed")) {
        new_fn op_new = (new_fn)sym("_Znwm");
        del_sized_fn op_delete = (del_sized_fn)sym("_ZdlPvm");
        void* p = op_new(200);
        op_delete(p, 200);
        op_delete(target(p), 200);
    } else if (IS("delete_aligned_freed")) {
        new_al_fn op_new = (new_al_fn)sym("_ZnwmSt11align_val_t");
        del_al_fn op_delete = (del_al_fn)sym("_ZdlPvSt11align_val_t");
        void* p = op_new(200, 256);
        op_delete(p, 256);
        op_delete(target(p), 256);
    } else if (IS("delete_wild")) {
        del_fn op_delete = (del_fn)sym("_ZdlPv");
        op_delete(target(launder((void*)(uintptr_t)0x12345678)));
    } else if (IS("delete_interior")) {
        new_fn op_new = (new_fn)sym("_Znwm");
        del_sized_al_fn op_delete = (del_sized_al_fn)sym("_ZdlPvmSt11align_val_t");
        char* p = (char*)op_new(512);
        op_delete(target(p + 64), 448, 64);
    } else if (IS("usable_size_freed")) {
        void* p = malloc(100);
        free(p);
        size_t u = malloc_usable_size(target(p));
        fprintf(stderr, "usable size %zu\n", u);
    } else if (IS("usable_size_wild")) {
        size_t u = malloc_usable_size(target(launder((void*)(uintptr_t)0x12345678)));
        fprintf(stderr, "usable size %zu\n", u);
    } else if (IS("free_sized_double")) {
        free_sized_fn fs = (free_sized_fn)sym("free_sized");
        void* p = malloc(100);
        fs(p, 100);
        fs(target(p), 100);
    } else if (IS("free_aligned_sized_double")) {
        free_aligned_sized_fn fas = (free_aligned_sized_fn)sym("free_aligned_sized");
        void* p = aligned_alloc(64, 128);
        fas(p, 64, 128);
        fas(target(p), 64, 128);
    } else if (IS("cfree_double")) {
        del_fn cf = (del_fn)sym("cfree");
        void* p = malloc(24);
        cf(p);
        cf(target(p));
    } else if (IS("libc_free_double")) {
        del_fn lf = (del_fn)sym("__libc_free");
        void* p = malloc(24);
        lf(p);
        lf(target(p));
    } else if (IS("double_free_remote_live_thread")) {
        /* allocated by a thread that still caches the span: both frees are remote */
        void* p = other_thread_object(1);
        free(p);
        free(target(p));
    } else if (IS("double_free_remote_exited_thread")) {
        void* p = other_thread_object(0);
        free(p);
        free(target(p));
    } else if (IS("double_free_after_reuse_cycle")) {
        /* the span is emptied and refilled between the two frees of p */
        void* p = malloc(2048);
        void* others[64];
        for (int i = 0; i < 64; i++) others[i] = malloc(2048);
        free(p);
        for (int i = 0; i < 64; i++) free(others[i]);
        void* q = malloc(4096); /* another class: p's slot stays free */
        free(target(p));
        pl_escape(q);
    } else {
        fprintf(stderr, "misuse: unknown case '%s'\n", c);
        return 2;
    }
#undef IS
    fprintf(stderr, "misuse not detected\n");
    return 1;
}

int main(int argc, char** argv) {
    struct rlimit no_core = {0, 0};
    setrlimit(RLIMIT_CORE, &no_core); /* the abort is expected: no core files */
    if (argc != 2) {
        fprintf(stderr, "usage: misuse CASE | --list\n");
        return 2;
    }
    if (strcmp(argv[1], "--list") == 0) {
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) printf("%s\n", cases[i]);
        return 0;
    }
    require_goalloc("misuse");
    return run(argv[1]);
}
