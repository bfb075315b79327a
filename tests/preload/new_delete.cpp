// new_delete.cpp — every C++ operator new/delete form on goalloc, in a
// program that gets goalloc only through LD_PRELOAD (so the definitions
// interpose libstdc++'s), and the failure protocol: operator new calls the
// new_handler until it is removed, then throws std::bad_alloc; the nothrow
// forms return nullptr.
//
// Self-checking like entry_points.c: a FAIL line per failed check, then
// "N passed, M failed"; exit 0 only if nothing failed (3 if not on goalloc).
#include "preload_common.h"

#include <atomic>
#include <cstddef>
#include <cstring>
#include <map>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

namespace {

std::uint64_t live() {
    pl_stats s;
    pl_stats_get(&s);
    return s.live_objects;
}

bool aligned_to(const void* p, std::size_t a) { return (reinterpret_cast<std::uintptr_t>(p) & (a - 1)) == 0; }

// volatile: the compiler must not see that the request cannot succeed.
volatile std::size_t huge_sizes[] = {SIZE_MAX / 2, std::size_t{1} << 50, SIZE_MAX - 64};

const char* const cxx_symbols[] = {
    "_Znwm", "_Znam", "_ZnwmRKSt9nothrow_t", "_ZnamRKSt9nothrow_t", "_ZnwmSt11align_val_t",
    "_ZnamSt11align_val_t", "_ZnwmSt11align_val_tRKSt9nothrow_t", "_ZnamSt11align_val_tRKSt9nothrow_t",
    "_ZdlPv", "_ZdaPv", "_ZdlPvRKSt9nothrow_t", "_ZdaPvRKSt9nothrow_t", "_ZdlPvm", "_ZdaPvm",
    "_ZdlPvSt11align_val_t", "_ZdaPvSt11align_val_t", "_ZdlPvmSt11align_val_t", "_ZdaPvmSt11align_val_t",
    "_ZdlPvSt11align_val_tRKSt9nothrow_t", "_ZdaPvSt11align_val_tRKSt9nothrow_t",
};

// libstdc++ is loaded here and defines every one of these too: the
// preloaded library must come first.
void test_symbols() {
    for (const char* s : cxx_symbols) CHECK(pl_sym_in_goalloc(s), "%s does not resolve to libgoalloc", s);
}

// One allocation: it must be one live object on goalloc's heap with at least
// n usable bytes, aligned to `align`; writing all of it must be fine.
void expect_object(const char* what, void* p, std::size_t n, std::size_t align, std::uint64_t live_before) {
    CHECK(p != nullptr, "%s(%zu) returned nullptr", what, n);
    if (p == nullptr) return;
    CHECK(aligned_to(p, align), "%s(%zu) = %p is not %zu-aligned", what, n, p, align);
    CHECK(malloc_usable_size(p) >= n, "%s(%zu): usable size %zu", what, n, malloc_usable_size(p));
    CHECK(live() == live_before + 1, "%s(%zu): live_objects %llu -> %llu (not on goalloc's heap?)", what, n,
          (unsigned long long)live_before, (unsigned long long)live());
    std::memset(p, 0x6b, n);
}

void expect_freed(const char* what, std::uint64_t live_before) {
    CHECK(live() == live_before, "%s: live_objects %llu, want %llu", what, (unsigned long long)live(),
          (unsigned long long)live_before);
}

void test_plain_forms() {
    static const std::size_t sizes[] = {0, 1, 100, 1000, 32768, 40000, 1 << 20};
    for (std::size_t n : sizes) {
        std::uint64_t l = live();
        void* p = ::operator new(n);
        expect_object("operator new", p, n, 8, l);
        if (n == 100) CHECK(malloc_usable_size(p) == 112, "operator new(100): usable %zu", malloc_usable_size(p));
        ::operator delete(p);
        expect_freed("operator delete(void*)", l);

        p = ::operator new[](n);
        expect_object("operator new[]", p, n, 8, l);
        ::operator delete[](p);
        expect_freed("operator delete[](void*)", l);

        p = ::operator new(n, std::nothrow);
        expect_object("operator new(nothrow)", p, n, 8, l);
        ::operator delete(p, std::nothrow);
        expect_freed("operator delete(void*, nothrow)", l);

        p = ::operator new[](n, std::nothrow);
        expect_object("operator new[](nothrow)", p, n, 8, l);
        ::operator delete[](p, std::nothrow);
        expect_freed("operator delete[](void*, nothrow)", l);

        p = ::operator new(n);
        expect_object("operator new", p, n, 8, l);
        ::operator delete(p, n);
        expect_freed("operator delete(void*, size_t)", l);

        p = ::operator new[](n);
        expect_object("operator new[]", p, n, 8, l);
        ::operator delete[](p, n);
        expect_freed("operator delete[](void*, size_t)", l);
    }
}

void test_aligned_forms() {
    static const std::size_t aligns[] = {16, 32, 64, 256, 4096, 8192, 65536, std::size_t{1} << 20};
    static const std::size_t sizes[] = {1, 100, 5000, 40000, 300000};
    for (std::size_t a : aligns) {
        std::align_val_t al{a};
        for (std::size_t n : sizes) {
            std::uint64_t l = live();
            void* p = ::operator new(n, al);
            expect_object("operator new(align_val_t)", p, n, a, l);
            ::operator delete(p, al);
            expect_freed("operator delete(void*, align_val_t)", l);

            p = ::operator new[](n, al);
            expect_object("operator new[](align_val_t)", p, n, a, l);
            ::operator delete[](p, al);
            expect_freed("operator delete[](void*, align_val_t)", l);

            p = ::operator new(n, al);
            expect_object("operator new(align_val_t)", p, n, a, l);
            ::operator delete(p, n, al);
            expect_freed("operator delete(void*, size_t, align_val_t)", l);

            p = ::operator new[](n, al);
            expect_object("operator new[](align_val_t)", p, n, a, l);
            ::operator delete[](p, n, al);
            expect_freed("operator delete[](void*, size_t, align_val_t)", l);

            p = ::operator new(n, al, std::nothrow);
            expect_object("operator new(align_val_t, nothrow)", p, n, a, l);
            ::operator delete(p, al, std::nothrow);
            expect_freed("operator delete(void*, align_val_t, nothrow)", l);

            p = ::operator new[](n, al, std::nothrow);
            expect_object("operator new[](align_val_t, nothrow)", p, n, a, l);
            ::operator delete[](p, al, std::nothrow);
            expect_freed("operator delete[](void*, align_val_t, nothrow)", l);
        }
    }
}

struct alignas(128) Over {
    char bytes[200];
};
struct alignas(4096) PageAligned {
    int x;
};
struct Base {
    virtual ~Base() = default;
    int b = 1;
};
struct Derived : Base {
    char payload[3000];  // sized delete through Base* passes Derived's size
};

// The forms the compiler picks for new/delete expressions.
void test_expressions() {
    std::uint64_t l = live();
    int* i = new int(42);
    pl_escape(i);
    CHECK(*i == 42 && live() == l + 1, "new int");
    delete i;
    int* arr = new int[1000]();
    pl_escape(arr);
    CHECK(arr[999] == 0 && live() == l + 1, "new int[1000]()");
    delete[] arr;
    Over* o = new Over;
    pl_escape(o);
    CHECK(aligned_to(o, 128) && live() == l + 1, "new Over (alignas 128) = %p", static_cast<void*>(o));
    delete o;
    Over* oa = new Over[5];
    pl_escape(oa);
    CHECK(aligned_to(oa, 128), "new Over[5] = %p", static_cast<void*>(oa));
    delete[] oa;
    PageAligned* pa = new (std::nothrow) PageAligned;
    pl_escape(pa);
    CHECK(pa != nullptr && aligned_to(pa, 4096), "new (nothrow) PageAligned = %p", static_cast<void*>(pa));
    delete pa;
    Base* b = new Derived;
    pl_escape(b);
    CHECK(live() == l + 1, "new Derived");
    delete b;  // virtual destructor: sized delete with sizeof(Derived)
    auto u = std::make_unique<std::string>(1000, 'x');
    CHECK(u->size() == 1000, "make_unique<string>");
    u.reset();
    auto sp = std::make_shared<std::vector<Over>>(10);
    CHECK(aligned_to(sp->data(), 128), "vector<Over> data %p", static_cast<void*>(sp->data()));
    sp.reset();
    expect_freed("new/delete expressions", l);
}

// Standard containers: lots of operator new/delete traffic, checked by content.
void test_containers() {
    std::uint64_t l = live();
    {
        std::vector<std::string> v;
        for (int k = 0; k < 100000; k++) v.push_back("string number " + std::to_string(k * 7919 % 100003));
        std::map<std::string, int> m;
        for (std::size_t k = 0; k < v.size(); k += 3) m[v[k]] += static_cast<int>(k);
        std::unordered_map<int, std::vector<int>> um;
        for (int k = 0; k < 50000; k++) um[k % 997].push_back(k);
        unsigned long long sum = 0;
        for (const auto& [key, val] : m) sum = sum * 31 + key.size() + static_cast<unsigned>(val);
        for (int k = 0; k < 997; k++) sum += um[k].size() * static_cast<unsigned>(k);
        CHECK(m.size() == 33334 && um.size() == 997, "container sizes %zu %zu", m.size(), um.size());
        CHECK(sum != 0, "checksum");
    }
    expect_freed("containers destroyed", l);
}

// Memory allocated by one thread is deleted by another (remote frees).
void test_threads() {
    std::uint64_t l = live();
    std::vector<std::string*> handoff;
    std::thread producer([&] {
        for (int k = 0; k < 20000; k++) handoff.push_back(new std::string(40 + k % 200, 'a' + k % 26));
    });
    producer.join();
    std::thread consumer([&] {
        std::size_t total = 0;
        for (std::string* s : handoff) {
            total += s->size();
            delete s;
        }
        CHECK(total > 0, "consumer");
    });
    consumer.join();
    handoff.clear();
    handoff.shrink_to_fit();
    // Both threads have exited (their counters are merged): every object is
    // back, give or take the C++ runtime's own thread bookkeeping.
    std::uint64_t now = live();
    std::uint64_t found = pl_heap_validate();
    CHECK(now <= l + 16 && found <= l + 16 && now == found,
          "after cross-thread deletes: live_objects %llu, heap walk %llu, %llu before",
          (unsigned long long)now, (unsigned long long)found, (unsigned long long)l);
}

// Exceptions: their memory comes from malloc (__cxa_allocate_exception).
void test_exceptions() {
    int caught = 0;
    for (int k = 0; k < 10000; k++) {
        try {
            throw std::runtime_error(std::string(100 + k % 50, 'e'));
        } catch (const std::runtime_error& e) {
            caught += e.what()[0] == 'e';
        }
    }
    CHECK(caught == 10000, "caught %d of 10000 exceptions", caught);
}

// ---- the failure protocol ----

int handler_calls;
int handler_limit;

// Counts its calls; at the limit it uninstalls itself, so the next failure
// throws (or, for nothrow, returns nullptr).
void counting_handler() {
    if (++handler_calls >= handler_limit) std::set_new_handler(nullptr);
}

void throwing_handler() {
    handler_calls++;
    throw std::bad_alloc();
}

template <class Alloc>
void expect_handler_then_bad_alloc(const char* what, Alloc alloc) {
    for (std::size_t n : huge_sizes) {
        handler_calls = 0;
        handler_limit = 3;
        std::set_new_handler(counting_handler);
        bool threw = false;
        void* p = nullptr;
        try {
            p = alloc(n);
        } catch (const std::bad_alloc&) {
            threw = true;
        } catch (...) {
            CHECK(false, "%s(%zu) threw something other than bad_alloc", what, n);
        }
        std::set_new_handler(nullptr);
        CHECK(threw && p == nullptr, "%s(%zu) did not throw bad_alloc (p = %p)", what, n, p);
        CHECK(handler_calls == 3, "%s(%zu): new_handler called %d times, want 3", what, n, handler_calls);
        // No handler at all: bad_alloc at once.
        threw = false;
        try {
            p = alloc(n);
        } catch (const std::bad_alloc&) {
            threw = true;
        }
        CHECK(threw, "%s(%zu) without a handler did not throw bad_alloc", what, n);
    }
}

template <class Alloc>
void expect_nothrow_null(const char* what, Alloc alloc) {
    for (std::size_t n : huge_sizes) {
        // No handler.
        std::set_new_handler(nullptr);
        void* p = alloc(n);
        CHECK(p == nullptr, "%s(%zu) = %p, want nullptr", what, n, p);
        // A handler that gives up after two calls.
        handler_calls = 0;
        handler_limit = 2;
        std::set_new_handler(counting_handler);
        p = alloc(n);
        std::set_new_handler(nullptr);
        CHECK(p == nullptr && handler_calls == 2, "%s(%zu) with a handler: %p after %d handler calls, want 2",
              what, n, p, handler_calls);
        // A handler that throws bad_alloc: nothrow still returns nullptr.
        handler_calls = 0;
        std::set_new_handler(throwing_handler);
        bool escaped = false;
        try {
            p = alloc(n);
        } catch (...) {
            escaped = true;
        }
        std::set_new_handler(nullptr);
        CHECK(!escaped && p == nullptr && handler_calls == 1,
              "%s(%zu) with a throwing handler: escaped %d p %p calls %d", what, n, escaped, p, handler_calls);
    }
}

void test_failure() {
    std::uint64_t l = live();
    expect_handler_then_bad_alloc("operator new", [](std::size_t n) { return ::operator new(n); });
    expect_handler_then_bad_alloc("operator new[]", [](std::size_t n) { return ::operator new[](n); });
    expect_handler_then_bad_alloc("operator new(align 64)",
                                  [](std::size_t n) { return ::operator new(n, std::align_val_t{64}); });
    expect_handler_then_bad_alloc("operator new[](align 1 MiB)",
                                  [](std::size_t n) { return ::operator new[](n, std::align_val_t{1 << 20}); });
    expect_nothrow_null("operator new(nothrow)", [](std::size_t n) { return ::operator new(n, std::nothrow); });
    expect_nothrow_null("operator new[](nothrow)",
                        [](std::size_t n) { return ::operator new[](n, std::nothrow); });
    expect_nothrow_null("operator new(align 256, nothrow)",
                        [](std::size_t n) { return ::operator new(n, std::align_val_t{256}, std::nothrow); });
    expect_nothrow_null("operator new[](align 8192, nothrow)",
                        [](std::size_t n) { return ::operator new[](n, std::align_val_t{8192}, std::nothrow); });
    // A new-expression of a huge array: bad_alloc (or its subclass for a
    // length the compiler computes to overflow).
    volatile std::size_t count = std::size_t{1} << 47;
    bool threw = false;
    try {
        char* c = new char[count];
        pl_escape(c);
        delete[] c;
    } catch (const std::bad_alloc&) {
        threw = true;
    }
    CHECK(threw, "new char[2^47] did not throw bad_alloc");
    char* c = new (std::nothrow) char[count];
    CHECK(c == nullptr, "new (nothrow) char[2^47] = %p", static_cast<void*>(c));
    expect_freed("failed allocations", l);
    // The heap works after all that.
    std::string s(5000, 'z');
    CHECK(s.back() == 'z', "allocation after failures");
}

}  // namespace

int main() {
    setvbuf(stdout, nullptr, _IOLBF, 0);
    require_goalloc("new_delete");
    test_symbols();
    test_plain_forms();
    test_aligned_forms();
    test_expressions();
    test_containers();
    test_threads();
    test_exceptions();
    test_failure();
    return checks_done();
}
