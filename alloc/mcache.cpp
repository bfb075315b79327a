// mcache.cpp — per-thread caches: refill, flush, creation and thread exit.
#include "mcache.h"

#include <pthread.h>

#include <new>

#include "mheap.h"

namespace goalloc {

constinit MCache empty_mcache;
__thread MCache* tls_mcache __attribute__((tls_model("initial-exec"))) = &empty_mcache;

// Registry of live mcaches and their metadata allocator.
static constinit Mutex cache_list_lock{kRankMCacheList};
static constinit FixAlloc cache_alloc{sizeof(MCache)};  // cache_list_lock
static MCache* cache_list = nullptr;                     // cache_list_lock
static pthread_key_t cache_key;
static std::atomic<int> key_state{0};  // 0 none, 1 creating, 2 ready

static void mcache_destroy(void* arg);

static void ensure_key() {
    if (GA_LIKELY(key_state.load(std::memory_order_acquire) == 2)) return;
    int expected = 0;
    if (key_state.compare_exchange_strong(expected, 1, std::memory_order_acq_rel)) {
        // pthread_key_create does not allocate in glibc.
        pthread_key_create(&cache_key, mcache_destroy);
        key_state.store(2, std::memory_order_release);
    } else {
        while (key_state.load(std::memory_order_acquire) != 2) __builtin_ia32_pause();
    }
}

MCache* mcache_create() {
    heap_init();
    ensure_key();
    cache_list_lock.lock();
    void* mem = cache_alloc.alloc();
    MCache* c = nullptr;
    if (mem != nullptr) {
        c = new (mem) MCache();
        c->next = cache_list;
        if (cache_list) cache_list->prev = c;
        cache_list = c;
    }
    cache_list_lock.unlock();
    if (c == nullptr) return nullptr;
    tls_mcache = c;
    // A destructor that runs after ours and allocates re-creates the cache;
    // glibc then calls our destructor again in its next round.
    pthread_setspecific(cache_key, c);
    return c;
}

static void mcache_destroy(void* arg) {
    MCache* c = static_cast<MCache*>(arg);
    c->flush();
    if (tls_mcache == c) tls_mcache = &empty_mcache;
    cache_list_lock.lock();
    if (c->prev) c->prev->next = c->next; else cache_list = c->next;
    if (c->next) c->next->prev = c->prev;
    c->~MCache();
    cache_alloc.free(c);
    cache_list_lock.unlock();
}

// fork(): the child must find every allocator lock free and consistent, so
// the parent takes them all (in rank order) just before fork and releases
// them after; the child resets them and then gives back the spans cached by
// threads that do not exist in it.
static void fork_prepare() {
    cache_list_lock.lock_for_fork();
    for (int c = 1; c < kNumSizeClasses; c++) mheap.central[c].lock.lock_for_fork();
    mheap.lock.lock_for_fork();
}

static void fork_parent() {
    mheap.lock.unlock_for_fork();
    for (int c = kNumSizeClasses - 1; c >= 1; c--) mheap.central[c].lock.unlock_for_fork();
    cache_list_lock.unlock_for_fork();
}

// In the child, the only thread: give back every small span that a thread of
// the parent owned. The orphans' own span lists are not walked: their thread
// may have been in the middle of changing them at the fork (no lock guards
// them), or of popping its notify stack — a span popped but not yet cleared
// keeps `notified` set, which made uncache_span refuse it for ever and the
// child spin in flush(). The arena index is consistent (mheap.lock was held).
static void reclaim_orphaned_spans(const MCache* self) {
    for (std::size_t i = 0; i < mheap.pages.narenas(); i++) {
        const HeapArena* a = mheap.pages.arena(i);
        for (std::size_t pg = 0; pg < kPagesPerArena;) {
            MSpan* s = a->spans[pg].load(std::memory_order_relaxed);
            if (s == nullptr || s->base != a->base + pg * kPageSize) {
                pg++;
                continue;
            }
            std::size_t np = s->npages;  // (s may be freed below)
            MCache* o = s->owner.load(std::memory_order_relaxed);
            if (s->state.load(std::memory_order_relaxed) == SpanState::InUse && s->kind == SpanKind::Malloc &&
                s->sizeclass != 0 && o != nullptr && o != self) {
                s->notified.store(0, std::memory_order_relaxed);
                s->list = kListNone;
                s->allocCount.store(s->count_alloc(), std::memory_order_relaxed);
                mheap.central[s->sizeclass].uncache_span(s);  // cannot refuse: notified is 0
            }
            pg += np;
        }
    }
}

static void fork_child() {
    mheap.lock.reset_after_fork();
    for (int c = 1; c < kNumSizeClasses; c++) mheap.central[c].lock.reset_after_fork();
    cache_list_lock.reset_after_fork();
    MCache* self = tls_mcache;
    reclaim_orphaned_spans(self);
    cache_list_lock.lock();
    for (MCache* c = cache_list; c != nullptr;) {
        MCache* next = c->next;
        if (c != self) {
            if (c->prev) c->prev->next = c->next; else cache_list = c->next;
            if (c->next) c->next->prev = c->prev;
            for (int sc = 1; sc < kNumSizeClasses; sc++) c->merge_stats(sc);
            c->~MCache();
            cache_alloc.free(c);
        }
        c = next;
    }
    cache_list_lock.unlock();
}

// Registered when the library is loaded, not inside malloc: pthread_atfork
// may itself allocate.
__attribute__((constructor)) static void register_fork_handlers() {
    pthread_atfork(fork_prepare, fork_parent, fork_child);
}

void MCache::merge_stats(int sc) {
    MCacheEntry* e = &alloc[sc];
    if (e->nmalloc) mheap.nmalloc[sc].fetch_add(e->nmalloc, std::memory_order_relaxed);
    if (e->nfree) mheap.nfree[sc].fetch_add(e->nfree, std::memory_order_relaxed);
    e->nmalloc = e->nfree = 0;
}

void MCache::load_word(MCacheEntry* e, std::uint32_t w) {
    MSpan* s = e->span;
    e->word = w;
    e->bitsWord = &s->allocBits[w];
    e->cache = ~e->bitsWord->load(std::memory_order_relaxed);
    e->wordBase = s->base + std::uintptr_t{w} * 64 * s->elemsize;
}

// Find a word of the span, after the current one and wrapping around to it,
// that has free objects (local frees elsewhere in the span, or drained remote
// frees). The current word's cache is empty, so its allocBits word is all ones
// unless a drain cleared bits in it.
bool MCache::next_word(MCacheEntry* e) {
    MSpan* s = e->span;
    std::uint32_t nw = s->nwords;
    for (std::uint32_t k = 1; k <= nw; k++) {
        std::uint32_t w = e->word + k;
        if (w >= nw) w -= nw;
        if (~s->allocBits[w].load(std::memory_order_relaxed) != 0) {
            load_word(e, w);
            return true;
        }
    }
    return false;
}

// A thread folds its per-class counters into the shared ones on refill once
// they reach this many operations (and always on flush and exit): often
// enough for ga_stats to follow a running program, rarely enough that the
// shared counters' cache lines do not bounce between threads.
static constexpr std::uint64_t kMergeBatch = 4096;

// Empty spans a thread keeps before giving more back, so that a batch that
// fills and empties spans reuses them without locks or page-heap work: up to
// kOwnedEmptyBytes in all (and at least one span of any class).
static constexpr std::size_t kOwnedEmptyBytes = std::size_t{1} << 20;

bool MCache::keep_empty(int sc) {
    std::size_t bytes = std::size_t{class_to_allocnpages[sc]} * kPageSize;
    if (owned_empty[sc] != 0 && owned_empty_bytes + bytes > kOwnedEmptyBytes) return false;
    owned_empty[sc]++;
    owned_empty_bytes += bytes;
    return true;
}

void MCache::unkeep_empty(int sc) {
    if (owned_empty[sc] == 0) return;
    owned_empty[sc]--;
    owned_empty_bytes -= std::size_t{class_to_allocnpages[sc]} * kPageSize;
}

void MCache::notify_locked(MSpan* s) {
    // Caller: a remote freer holding s's mcentral lock, with s->owner == this
    // and s->notified just set by it.
    MSpan* head = notify_head.load(std::memory_order_relaxed);
    do {
        s->notifyNext = head;
    } while (!notify_head.compare_exchange_weak(head, s, std::memory_order_release, std::memory_order_relaxed));
}

void MCache::take_notified() {
    MSpan* s = notify_head.exchange(nullptr, std::memory_order_acquire);
    while (s != nullptr) {
        MSpan* next = s->notifyNext;  // before s can be pushed anywhere again
        s->notified.store(0, std::memory_order_release);
        int sc = s->sizeclass;
        if (s->list == kListOwnedFull) {  // its pending frees make it partial
            owned_full[sc].remove(s);
            owned_partial[sc].push_back(s, kListOwnedPartial);
        }
        s = next;  // current spans and owned_partial ones are drained when used
    }
}

void MCache::adopt(MSpan* s) {
    // Now the holder: apply what was freed while nobody owned it.
    if (s->remoteCount.load(std::memory_order_acquire) != 0) s->drain_remote();
    s->allocCount.store(s->count_alloc(), std::memory_order_relaxed);
    settle(s);
}

void MCache::give_back(MSpan* s) {
    if (!mheap.central[s->sizeclass].uncache_span(s)) {
        // On our notify stack: keep it; take_notified will list it.
        owned_partial[s->sizeclass].push_back(s, kListOwnedPartial);
    }
}

void MCache::settle(MSpan* s) {
    int sc = s->sizeclass;
    std::uint32_t used = s->allocCount.load(std::memory_order_relaxed);
    bool pending = s->remoteCount.load(std::memory_order_acquire) != 0;
    if (used == 0 && !pending) {
        if (keep_empty(sc)) {
            owned_partial[sc].push_back(s, kListOwnedPartial);
        } else {
            give_back(s);
        }
    } else if (used < s->nelems || pending) {
        owned_partial[sc].push_back(s, kListOwnedPartial);
    } else {
        owned_full[sc].push_back(s, kListOwnedFull);
    }
}

void MCache::owned_free(const char* fn, std::uintptr_t a, MSpan* s, std::uint32_t idx) {
    std::uint32_t w = idx >> 6;
    std::uint64_t bit = std::uint64_t{1} << (idx & 63);
    std::uint64_t x = s->allocBits[w].load(std::memory_order_relaxed);
    if (GA_UNLIKELY(!(x & bit))) misuse_double_free(fn, a, s);
    s->allocBits[w].store(x & ~bit, std::memory_order_relaxed);
    int sc = s->sizeclass;
    alloc[sc].nfree++;
    std::uint32_t used = s->allocCount.load(std::memory_order_relaxed) - 1;
    s->allocCount.store(used, std::memory_order_relaxed);
    if (s->list == kListOwnedFull) {
        owned_full[sc].remove(s);
        owned_partial[sc].push_back(s, kListOwnedPartial);
    }
    if (used == 0 && s->remoteCount.load(std::memory_order_acquire) == 0) {
        if (!keep_empty(sc)) {
            owned_partial[sc].remove(s);
            give_back(s);
        }
    }
}

// The entry's span is done with (full, or the thread is flushing): it stays
// owned, on the list its state calls for.
void MCache::release_span(MCacheEntry* e) {
    MSpan* s = e->span;
    s->allocCount.store(s->count_alloc(), std::memory_order_relaxed);
    e->span = nullptr;
    e->cache = 0;
    e->bitsWord = nullptr;
    settle(s);
}

bool MCache::refill(int sc) {
    MCacheEntry* e = &alloc[sc];
    GA_ASSERT(e->cache == 0);
    if (e->span != nullptr) {
        if (next_word(e)) return true;
        if (e->span->remoteCount.load(std::memory_order_acquire) != 0 && e->span->drain_remote() != 0 &&
            next_word(e))
            return true;
        release_span(e);
    }
    // Merging touches counters every thread shares: do it in batches.
    if (alloc[sc].nmalloc + alloc[sc].nfree >= kMergeBatch) merge_stats(sc);
    if (notify_head.load(std::memory_order_relaxed) != nullptr) take_notified();
    MSpan* s = nullptr;
    // Each owned partial span at most once: one whose only free objects are
    // remote frees still in flight (counted, bits not yet published) stays on
    // owned_partial for a later refill rather than going to owned_full, where
    // nobody would look at it again.
    for (std::size_t n = owned_partial[sc].count; n > 0; n--) {
        s = owned_partial[sc].pop_front();
        if (s->remoteCount.load(std::memory_order_acquire) != 0) {
            s->drain_remote();
            s->allocCount.store(s->count_alloc(), std::memory_order_relaxed);
        }
        std::uint32_t used = s->allocCount.load(std::memory_order_relaxed);
        if (used < s->nelems) {
            if (used == 0) unkeep_empty(sc);
            break;
        }
        if (s->remoteCount.load(std::memory_order_acquire) != 0)
            owned_partial[sc].push_back(s, kListOwnedPartial);
        else
            owned_full[sc].push_back(s, kListOwnedFull);
        s = nullptr;
    }
    if (s == nullptr) s = mheap.central[sc].cache_span(this);
    if (s == nullptr) return false;
    e->span = s;
    e->elemsize = s->elemsize;
    e->word = s->nwords - 1;  // next_word starts at word 0
    return next_word(e);
}

// Give every owned span back to the mcentrals. A span a remote freer pushes
// on our notify stack meanwhile is refused by uncache_span and comes back to
// owned_partial; popping the stack again lets it go. Once no span names us as
// owner, nobody pushes any more, so the loop ends.
void MCache::flush() {
    for (;;) {
        take_notified();
        bool again = false;
        for (int sc = 1; sc < kNumSizeClasses; sc++) {
            MCacheEntry* e = &alloc[sc];
            if (e->span != nullptr) {
                MSpan* s = e->span;
                s->allocCount.store(s->count_alloc(), std::memory_order_relaxed);
                e->span = nullptr;
                e->cache = 0;
                e->bitsWord = nullptr;
                if (!mheap.central[sc].uncache_span(s)) {
                    owned_partial[sc].push_back(s, kListOwnedPartial);
                    again = true;
                }
            }
            for (SpanList* l : {&owned_partial[sc], &owned_full[sc]}) {
                SpanList keep;
                while (MSpan* s = l->pop_front()) {
                    if (!mheap.central[sc].uncache_span(s)) {
                        keep.push_back(s, kListOwnedPartial);
                        again = true;
                    }
                }
                while (MSpan* s = keep.pop_front()) owned_partial[sc].push_back(s, kListOwnedPartial);
            }
            owned_empty[sc] = 0;
            owned_empty_bytes = 0;
            merge_stats(sc);
        }
        if (!again) return;
    }
}

}  // namespace goalloc
