/*
 * goalloc — Go's runtime allocator for C and C++.
 *
 * The C API of the allocator core. Every function here is thread-safe and may be
 * called from any thread at any time; none of them ever calls the system malloc.
 *
 * Conventions follow the C library: on failure an allocation function returns
 * NULL and sets errno (ENOMEM for exhausted memory or absurd sizes, EINVAL for a
 * bad alignment). Misuse of memory — freeing a pointer twice, freeing an interior,
 * stack or wild pointer — is detected and aborts the process with a message on
 * stderr that names the address, never silent corruption.
 */
#ifndef GOALLOC_GOALLOC_H
#define GOALLOC_GOALLOC_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define GA_API __attribute__((visibility("default")))
#define GA_MALLOC_ATTR __attribute__((malloc, warn_unused_result))
#else
#define GA_API
#define GA_MALLOC_ATTR
#endif

/* Allocation, with the semantics of the C library functions of the same name. */
GA_API void* ga_malloc(size_t size) GA_MALLOC_ATTR;
GA_API void ga_free(void* p);
GA_API void* ga_calloc(size_t n, size_t size) GA_MALLOC_ATTR;
/* realloc(NULL, n) == malloc(n); realloc(p, 0) frees p and returns NULL (glibc). */
GA_API void* ga_realloc(void* p, size_t size);
/* alignment: a power of two (any size, also beyond the page size). */
GA_API void* ga_aligned_alloc(size_t alignment, size_t size) GA_MALLOC_ATTR;
/* 0 for NULL; otherwise the usable size of the object: for requests up to
 * 32 KiB exactly the size of Go's size class for the request. */
GA_API size_t ga_usable_size(const void* p);

/* Statistics. Counters kept per thread are merged every few thousand
 * operations (at a cache refill), when a thread flushes its cache
 * (ga_thread_flush) and when it exits; at a quiet point (other threads
 * joined or flushed) mallocs - frees == live_objects exactly. */
typedef struct ga_stats_t {
    uint64_t bytes_in_use;       /* bytes in live objects (by size class) */
    uint64_t bytes_mapped;       /* bytes mapped from the OS (Prepared + Ready) */
    uint64_t bytes_released;     /* mapped bytes given back with madvise and not reused */
    uint64_t bytes_reserved;     /* address space reserved (all states but None) */
    uint64_t bytes_metadata;     /* out-of-band metadata: spans, arena tables, caches */
    uint64_t live_objects;       /* mallocs - frees */
    uint64_t mallocs;            /* cumulative */
    uint64_t frees;              /* cumulative */
    uint64_t spans_in_use;       /* spans holding objects (small and large) */
    uint64_t large_objects;      /* live objects above 32 KiB */
    uint64_t heap_pages_free;    /* free pages in the page heap */
    uint64_t arenas;             /* 64 MiB arenas reserved */
} ga_stats_t;

GA_API void ga_stats(ga_stats_t* out);

/* Return this thread's cached spans to the central lists and merge its
 * statistics; the thread keeps working and refills on its next allocation. */
GA_API void ga_thread_flush(void);

/* Give free pages back to the OS (madvise). Returns the bytes released now. */
GA_API size_t ga_release_free_memory(void);

/* Debug validator: walks the whole heap — arenas, page bitmaps, spans, allocBits,
 * counts — and aborts with a description if any invariant is broken. Returns the
 * number of live objects it found. Only exact at a quiet point. */
GA_API uint64_t ga_heap_validate(void);


/* ---- The garbage-collected heap (C subset; C++: goalloc/gc.hpp) ----
 * Collected objects are scanned conservatively (every word) unless allocated
 * with GA_GC_NOSCAN. They are found from the stacks and registers of
 * registered threads (a thread registers at its first ga_gc_alloc), from
 * ranges added with ga_gc_add_roots, and from scanned collected objects.
 * Stores of collected pointers into collected objects must use ga_gc_store
 * (the write barrier). */
#define GA_GC_SCAN 0
#define GA_GC_NOSCAN 1
GA_API void* ga_gc_alloc(size_t size, int flags) GA_MALLOC_ATTR; /* zeroed; NULL+ENOMEM on failure */
GA_API void ga_gc_store(void** slot, void* value);
GA_API void ga_gc_collect(void);
GA_API int ga_gc_set_percent(int percent);              /* <0 = off; returns previous */
GA_API int64_t ga_gc_set_memory_limit(int64_t bytes);   /* <0 only queries; returns previous */
GA_API void ga_gc_register_thread(void);
GA_API void ga_gc_unregister_thread(void);
GA_API void ga_gc_add_roots(const void* start, size_t bytes);
GA_API void ga_gc_remove_roots(const void* start);
GA_API void ga_gc_set_finalizer(void* obj, void (*fn)(void* obj, void* arg), void* arg);
typedef struct ga_gc_stats_t {
    uint64_t heap_alloc;      /* HeapAlloc */
    uint64_t heap_sys;        /* HeapSys */
    uint64_t heap_objects;    /* HeapObjects */
    uint64_t total_alloc;     /* TotalAlloc */
    uint64_t mallocs, frees;  /* Mallocs, Frees */
    uint64_t next_gc;         /* NextGC */
    uint64_t pause_total_ns;  /* PauseTotalNs */
    uint64_t max_pause_ns;    /* longest stop-the-world */
    uint32_t num_gc;          /* NumGC */
    double gc_cpu_fraction;   /* GCCPUFraction */
} ga_gc_stats_t;
GA_API void ga_gc_stats(ga_gc_stats_t* out);

#ifdef __cplusplus
}  /* extern "C" */
#endif

#endif /* GOALLOC_GOALLOC_H */
