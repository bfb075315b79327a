// The shared library works when loaded at run time with dlopen(): its
// thread-local caches (initial-exec TLS) fit, and the API works from the main
// thread and from threads created after the load, across threads.
//
// This executable does not link goalloc; GOALLOC_SO_PATH is the built libgoalloc.so.
#include <goalloc/goalloc.h>

#include "sizeclasses.h"

#include <gtest/gtest.h>

#include <dlfcn.h>

#include <cstring>
#include <thread>
#include <vector>

#ifndef GOALLOC_SO_PATH
#error "GOALLOC_SO_PATH must name the goalloc shared library"
#endif

namespace {

struct GoallocApi {
    void* handle = nullptr;
    decltype(&ga_malloc) malloc_fn = nullptr;
    decltype(&ga_free) free_fn = nullptr;
    decltype(&ga_usable_size) usable_size_fn = nullptr;
    decltype(&ga_stats) stats_fn = nullptr;
    decltype(&ga_thread_flush) thread_flush_fn = nullptr;
    decltype(&ga_heap_validate) heap_validate_fn = nullptr;
};

template <typename F>
void Resolve(void* handle, const char* name, F* out) {
    *out = reinterpret_cast<F>(dlsym(handle, name));
    ASSERT_NE(*out, nullptr) << "dlsym(" << name << "): " << dlerror();
}

// Loads the library once for the whole test program.
const GoallocApi& Api() {
    static GoallocApi api = [] {
        GoallocApi a;
        a.handle = dlopen(GOALLOC_SO_PATH, RTLD_NOW | RTLD_LOCAL);
        if (!a.handle) {
            ADD_FAILURE() << "dlopen(" GOALLOC_SO_PATH "): " << dlerror();
            return a;
        }
        Resolve(a.handle, "ga_malloc", &a.malloc_fn);
        Resolve(a.handle, "ga_free", &a.free_fn);
        Resolve(a.handle, "ga_usable_size", &a.usable_size_fn);
        Resolve(a.handle, "ga_stats", &a.stats_fn);
        Resolve(a.handle, "ga_thread_flush", &a.thread_flush_fn);
        Resolve(a.handle, "ga_heap_validate", &a.heap_validate_fn);
        return a;
    }();
    return api;
}

class Dlopen : public ::testing::Test {
  protected:
    void SetUp() override {
        const GoallocApi& a = Api();
        ASSERT_TRUE(a.handle && a.malloc_fn && a.free_fn && a.usable_size_fn && a.stats_fn &&
                    a.thread_flush_fn && a.heap_validate_fn)
            << "the library or one of its symbols did not load";
    }
    const GoallocApi& api() { return Api(); }
    ga_stats_t Stats() {
        api().thread_flush_fn();
        ga_stats_t s;
        api().stats_fn(&s);
        return s;
    }
};

std::size_t ClassSize(std::size_t n) {
    using namespace goalloc;
    int c = n <= kSmallSizeMax ? size_to_class8[(n + 7) / 8]
                               : size_to_class128[(n - kSmallSizeMax + 127) / 128];
    return class_to_size[c];
}

TEST(DlopenSetup, ThisProgramHasNoStaticCopyOfGoalloc) {
    // Otherwise the other tests would not prove anything about the .so.
    EXPECT_EQ(dlsym(RTLD_DEFAULT, "ga_malloc"), nullptr);
}

TEST_F(Dlopen, DlsymdFunctionsAllocateOnTheMainThread) {
    ga_stats_t s0 = Stats();
    std::vector<void*> ptrs;
    for (std::size_t n : {1, 100, 1000, 5000, 32768, 40000, 1 << 20}) {
        void* p = api().malloc_fn(n);
        ASSERT_NE(p, nullptr) << n;
        std::size_t u = api().usable_size_fn(p);
        if (n <= goalloc::kMaxSmallSize) {
            EXPECT_EQ(u, ClassSize(n)) << n;
        } else {
            EXPECT_GE(u, n);
        }
        std::memset(p, 0x6B, u);
        ptrs.push_back(p);
    }
    ga_stats_t s1 = Stats();
    EXPECT_EQ(s1.live_objects - s0.live_objects, ptrs.size());
    EXPECT_EQ(api().heap_validate_fn(), s1.live_objects);
    for (void* p : ptrs) api().free_fn(p);
    EXPECT_EQ(Stats().live_objects, s0.live_objects);
}

TEST_F(Dlopen, DlsymdFunctionsWorkOnANewThreadAndAcrossThreads) {
    ga_stats_t s0 = Stats();
    constexpr int kCount = 2000;
    std::vector<void*> from_thread;
    std::vector<void*> from_main;
    for (int i = 0; i < kCount; i++) {
        void* p = api().malloc_fn(static_cast<std::size_t>(8 + i % 300));
        ASSERT_NE(p, nullptr);
        std::memset(p, 0x11, 8);
        from_main.push_back(p);
    }
    bool thread_ok = true;
    std::thread t([&] {
        for (int i = 0; i < kCount; i++) {
            std::size_t n = static_cast<std::size_t>(16 + (i * 37) % 5000);
            void* p = api().malloc_fn(n);
            if (!p || api().usable_size_fn(p) != ClassSize(n)) {
                thread_ok = false;
                return;
            }
            std::memset(p, 0x22, n);
            from_thread.push_back(p);
        }
        // Free what the main thread allocated (cross-thread frees).
        for (void* p : from_main) {
            if (static_cast<unsigned char*>(p)[0] != 0x11) thread_ok = false;
            api().free_fn(p);
        }
    });
    t.join();
    ASSERT_TRUE(thread_ok) << "allocation on the new thread failed or had the wrong size";
    ASSERT_EQ(from_thread.size(), static_cast<std::size_t>(kCount));
    ga_stats_t s1 = Stats();
    EXPECT_EQ(s1.live_objects - s0.live_objects, from_thread.size());
    EXPECT_EQ(s1.live_objects, s1.mallocs - s1.frees);
    EXPECT_EQ(api().heap_validate_fn(), s1.live_objects);
    for (void* p : from_thread) {
        EXPECT_EQ(static_cast<unsigned char*>(p)[0], 0x22);
        api().free_fn(p);
    }
    ga_stats_t s2 = Stats();
    EXPECT_EQ(s2.live_objects, s0.live_objects);
    EXPECT_EQ(api().heap_validate_fn(), s2.live_objects);
}

}  // namespace
