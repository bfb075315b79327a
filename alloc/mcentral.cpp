// mcentral.cpp — central span lists per size class (see mcentral.h).
#include "mcentral.h"

#include "mheap.h"

namespace goalloc {

void SpanList::push_back(MSpan* s, std::uint8_t id) {
    GA_ASSERT(s->list == kListNone);
    s->list = id;
    s->next = nullptr;
    s->prev = tail;
    if (tail) tail->next = s; else head = s;
    tail = s;
    count++;
}

void SpanList::remove(MSpan* s) {
    if (s->prev) s->prev->next = s->next; else head = s->next;
    if (s->next) s->next->prev = s->prev; else tail = s->prev;
    s->next = s->prev = nullptr;
    s->list = kListNone;
    count--;
}

MSpan* SpanList::pop_front() {
    MSpan* s = head;
    if (s) remove(s);
    return s;
}

MSpan* MCentral::cache_span(MCache* c) {
    lock.lock();
    // Visit each partial span at most once: a span whose only free objects are
    // still in flight (remoteCount > 0, bits not yet published) goes to the back.
    for (std::size_t n = partial.count; n > 0; n--) {
        MSpan* s = partial.pop_front();
        s->drain_remote();
        std::uint32_t used = s->count_alloc();
        s->allocCount.store(used, std::memory_order_relaxed);
        if (used < s->nelems) {
            if (used == 0 && nempty > 0) nempty--;
            s->owner.store(c, std::memory_order_seq_cst);
            lock.unlock();
            return s;
        }
        if (s->remoteCount.load(std::memory_order_seq_cst) != 0)
            partial.push_back(s, kListPartial);
        else
            full.push_back(s, kListFull);
    }
    lock.unlock();
    MSpan* s = mheap.alloc_span(class_to_allocnpages[sizeclass], sizeclass, SpanKind::Malloc);
    if (s != nullptr) {
        lock.lock();  // owner changes under the lock
        s->owner.store(c, std::memory_order_seq_cst);
        lock.unlock();
        mheap.maybe_pay_scavenge_owed();
    }
    return s;
}

bool MCentral::uncache_span(MSpan* s) {
    lock.lock();
    GA_ASSERT(s->list == kListNone);
    if (s->notified.load(std::memory_order_relaxed) != 0) {  // pushers hold this lock
        lock.unlock();
        return false;
    }
    s->owner.store(nullptr, std::memory_order_seq_cst);
    std::uint32_t used = s->allocCount.load(std::memory_order_relaxed);
    if (s->remoteCount.load(std::memory_order_seq_cst) != 0) {
        s->drain_remote();
        used = s->count_alloc();
        s->allocCount.store(used, std::memory_order_relaxed);
    }
    bool pending = s->remoteCount.load(std::memory_order_seq_cst) != 0;
    if (used == 0 && !pending) {
        put_empty_locked(s);
    } else if (used < s->nelems || pending) {
        partial.push_back(s, kListPartial);
    } else {
        full.push_back(s, kListFull);
    }
    lock.unlock();
    return true;
}

void MCentral::put_empty_locked(MSpan* s) {
    GA_ASSERT_LOCK_HELD(lock);
    if (nempty < kMaxEmptySpans) {
        partial.push_back(s, kListPartial);
        nempty++;
    } else {
        mheap.free_span(s);
    }
}

void MCentral::remote_free_locked(MSpan* s) {
    GA_ASSERT_LOCK_HELD(lock);
    if (s->owner.load(std::memory_order_seq_cst) != nullptr) return;  // its owner drains it
    std::uint32_t pending = s->remoteCount.load(std::memory_order_seq_cst);
    if (pending < s->allocCount.load(std::memory_order_relaxed)) {
        // Not empty yet: make sure an mcache can find it; it drains on caching.
        if (s->list == kListFull) {
            full.remove(s);
            partial.push_back(s, kListPartial);
        }
        return;
    }
    s->drain_remote();
    std::uint32_t used = s->count_alloc();
    s->allocCount.store(used, std::memory_order_relaxed);
    if (used == 0 && s->remoteCount.load(std::memory_order_seq_cst) == 0) {
        if (s->list == kListPartial) partial.remove(s); else if (s->list == kListFull) full.remove(s);
        put_empty_locked(s);
    } else if (s->list == kListFull) {
        full.remove(s);
        partial.push_back(s, kListPartial);
    }
}

bool MCentral::adopt(MSpan* s, MCache* c) {
    lock.lock();
    if (s->owner.load(std::memory_order_relaxed) != nullptr || s->list == kListNone) {
        lock.unlock();
        return false;
    }
    if (s->list == kListPartial) {
        partial.remove(s);
        if (s->allocCount.load(std::memory_order_relaxed) == 0 && nempty > 0) nempty--;
    } else {
        full.remove(s);
    }
    s->notified.store(0, std::memory_order_relaxed);
    s->owner.store(c, std::memory_order_seq_cst);
    lock.unlock();
    return true;
}

std::size_t MCentral::release_empty() {
    std::size_t freed = 0;
    lock.lock();
    for (MSpan* s = partial.head; s != nullptr;) {
        MSpan* next = s->next;
        s->drain_remote();
        std::uint32_t used = s->count_alloc();
        s->allocCount.store(used, std::memory_order_relaxed);
        if (used == 0 && s->remoteCount.load(std::memory_order_seq_cst) == 0) {
            partial.remove(s);
            mheap.free_span(s);
            freed++;
        }
        s = next;
    }
    nempty = 0;
    lock.unlock();
    return freed;
}

}  // namespace goalloc
