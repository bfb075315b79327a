// fixalloc.h — Go's fixalloc: a free-list allocator of fixed-size metadata
// objects (mspan, span bitmaps, mcache) carved from 256 KiB chunks obtained
// with sys::alloc, or from the owner's chunk source (the mheap's: huge-page
// regions on a large collected heap, mheap.h).
//
// Not thread-safe: the owner's lock guards it (mheap.lock for spans, the
// mcache registry lock for mcaches). Memory is never returned to the OS; freed
// objects are reused. Objects come back zeroed.
#pragma once

#include <cstddef>
#include <cstring>

#include "sys.h"

namespace goalloc {

class FixAlloc {
public:
    // Objects of `size` bytes, each aligned to `align` (a power of two, at
    // least 8): 64 keeps records on cache lines of their own.
    constexpr explicit FixAlloc(std::size_t size, std::size_t align = 64)
        : size_((size + align - 1) & ~(align - 1)) {}

    void* alloc() {
        if (free_ != nullptr) {
            Link* l = free_;
            free_ = l->next;
            std::memset(l, 0, size_);
            inuse_++;
            return l;
        }
        if (chunk_left_ < size_) {
            void* c = source_ != nullptr ? source_(kChunk) : sys::alloc(kChunk);
            if (c == nullptr) return nullptr;
            chunk_ = static_cast<char*>(c);
            chunk_left_ = kChunk;
        }
        void* p = chunk_;
        chunk_ += size_;
        chunk_left_ -= size_;
        inuse_++;
        return p;  // fresh sys::alloc memory is zero
    }
    void free(void* p) {
        Link* l = static_cast<Link*>(p);
        l->next = free_;
        free_ = l;
        inuse_--;
    }
    std::size_t inuse() const { return inuse_; }
    // Where new chunks come from (zeroed memory of kChunk bytes, or nullptr),
    // called under the owner's lock; nullptr: sys::alloc.
    void set_source(void* (*source)(std::size_t)) { source_ = source; }
    static constexpr std::size_t kChunk = 256 << 10;

private:
    struct Link {
        Link* next;
    };
    std::size_t size_;
    Link* free_ = nullptr;
    char* chunk_ = nullptr;
    std::size_t chunk_left_ = 0;
    void* (*source_)(std::size_t) = nullptr;
    std::size_t inuse_ = 0;
};

}  // namespace goalloc
