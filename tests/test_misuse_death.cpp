// Misuse of memory is detected and aborts the process with a message on
// stderr that names the address: double frees, interior, stack, global and
// wild pointers, and realloc/usable_size of freed objects.
//
// Death tests run "threadsafe": the child re-executes the test binary, so its
// heap (and, with ASLR, its stack and globals) lie at other addresses than the
// parent's. Each misuse therefore runs entirely in the child, which first
// prints the address it is about to misuse ("goalloc-test: misuse target
// 0x..."); the matcher then requires an abort (SIGABRT) and a line
//   goalloc: ... <kind of misuse> ... <that address, as %p>
// e.g. "goalloc: ga_free(): double free of 0x7f0012345680 (size class 5, 48 bytes)".
#include "testutil.h"

#include <gtest/gtest.h>

#include <csignal>
#include <cstdio>
#include <regex>
#include <string>
#include <sys/resource.h>

namespace {

using namespace gatest;

constexpr char kTargetMarker[] = "goalloc-test: misuse target ";

// Kinds of misuse, as regex alternatives matched in goalloc's message.
constexpr char kDoubleFree[] = "double free";
constexpr char kInvalidPointer[] = "invalid pointer";
// A large object's pages go back to the page heap when it is freed, so a second
// free may only be recognisable as a pointer goalloc does not own.
constexpr char kDoubleFreeOrInvalid[] = "double free|invalid pointer";
// realloc/usable_size of a freed object: the allocator may call it either.
constexpr char kFreedObject[] = "double free|invalid pointer|use after free|freed";

// Matches the stderr of a death-test child that printed its target address.
class NamesMisusedAddress : public ::testing::MatcherInterface<const std::string&> {
  public:
    explicit NamesMisusedAddress(std::string kinds) : kinds_(std::move(kinds)) {}

    bool MatchAndExplain(const std::string& err,
                         ::testing::MatchResultListener* listener) const override {
        std::size_t at = err.find(kTargetMarker);
        if (at == std::string::npos) {
            *listener << "the child never printed its target address";
            return false;
        }
        std::size_t begin = at + sizeof kTargetMarker - 1;
        std::string addr = err.substr(begin, err.find('\n', begin) - begin);
        if (!std::regex_match(addr, std::regex("0x[0-9a-f]+"))) {
            *listener << "unparsable target address '" << addr << "'";
            return false;
        }
        // goalloc's own line, after the marker: the kind of misuse, then the
        // address (not merely a prefix of a longer number).
        std::regex want("goalloc: [^\\n]*(" + kinds_ + ")[^\\n]*" + addr + "([^0-9a-fA-F]|$)");
        std::string rest = err.substr(begin);
        if (!std::regex_search(rest, want)) {
            *listener << "no 'goalloc: ...(" << kinds_ << ")... " << addr << "' line";
            return false;
        }
        // The brief's general form, too.
        if (!std::regex_search(rest, std::regex("goalloc: .*(double free|invalid|not allocated|"
                                                "freed).*0x[0-9a-f]+"))) {
            *listener << "message does not have goalloc's general form";
            return false;
        }
        return true;
    }
    void DescribeTo(std::ostream* os) const override {
        *os << "has a 'goalloc: ...(" << kinds_ << ")... <misused address>' line";
    }
    void DescribeNegationTo(std::ostream* os) const override {
        *os << "has no 'goalloc: ...(" << kinds_ << ")... <misused address>' line";
    }

  private:
    std::string kinds_;
};

::testing::Matcher<const std::string&> NamesAddress(const char* kinds) {
    return ::testing::MakeMatcher(new NamesMisusedAddress(kinds));
}

// Expects `misuse` (run in the child) to abort with goalloc's message.
#define EXPECT_MISUSE_ABORTS(misuse, kinds)                                            \
    EXPECT_EXIT(                                                                       \
        {                                                                              \
            NoCoreDump();                                                              \
            misuse;                                                                    \
            std::fprintf(stderr, "goalloc-test: the misuse was not detected\n");      \
        },                                                                             \
        ::testing::KilledBySignal(SIGABRT), NamesAddress(kinds))

void NoCoreDump() {
    struct rlimit rl = {0, 0};
    setrlimit(RLIMIT_CORE, &rl);
}

// Announces the address the next call misuses.
void Target(const void* p) { std::fprintf(stderr, "%s%p\n", kTargetMarker, p); }

// A 48-byte object with live neighbours of its class on both sides, so that
// its span stays in use and the allocator knows the slot's state.
void* SmallVictim() {
    static void* neighbours[16];
    for (void*& p : neighbours) {
        p = ga_malloc(48);
        if (!p) std::abort();
    }
    return neighbours[8];
}
void* LargeVictim() {
    static void* guard_before;
    static void* guard_after;
    guard_before = ga_malloc(1 * MiB);
    void* v = ga_malloc(1 * MiB);
    guard_after = ga_malloc(1 * MiB);
    if (!guard_before || !v || !guard_after) std::abort();
    return v;
}
char* Bytes(void* p) { return static_cast<char*>(p); }

char g_global_array[4096];

class Misuse : public ::testing::Test {
  protected:
    void SetUp() override { GTEST_FLAG_SET(death_test_style, "threadsafe"); }
};

// ---------------------------------------------------------------- double free

void DoubleFreeSmall() {
    void* v = SmallVictim();
    ga_free(v);
    Target(v);
    ga_free(v);
}
TEST_F(Misuse, DoubleFreeOfSmallObjectAbortsNamingTheAddress) {
    EXPECT_MISUSE_ABORTS(DoubleFreeSmall(), kDoubleFree);
}

void DoubleFreeLarge() {
    void* v = LargeVictim();
    ga_free(v);
    Target(v);
    ga_free(v);
}
TEST_F(Misuse, DoubleFreeOfLargeObjectAbortsNamingTheAddress) {
    EXPECT_MISUSE_ABORTS(DoubleFreeLarge(), kDoubleFreeOrInvalid);
}

// ---------------------------------------------------------------- interior pointers

void FreeSmallInterior() {
    void* v = SmallVictim();
    Target(Bytes(v) + 8);
    ga_free(Bytes(v) + 8);
}
TEST_F(Misuse, FreeOfInteriorPointerOfSmallObjectAbortsNamingTheAddress) {
    EXPECT_MISUSE_ABORTS(FreeSmallInterior(), kInvalidPointer);
}

void FreeLargeInteriorFirstPage() {
    void* v = LargeVictim();
    Target(Bytes(v) + 16);
    ga_free(Bytes(v) + 16);
}
TEST_F(Misuse, FreeOfPointerIntoFirstPageOfLargeObjectAbortsNamingTheAddress) {
    EXPECT_MISUSE_ABORTS(FreeLargeInteriorFirstPage(), kInvalidPointer);
}

void FreeLargeInteriorLaterPage() {
    void* v = LargeVictim();
    Target(Bytes(v) + 5 * goalloc::kPageSize);
    ga_free(Bytes(v) + 5 * goalloc::kPageSize);
}
TEST_F(Misuse, FreeOfPointerIntoLaterPageOfLargeObjectAbortsNamingTheAddress) {
    EXPECT_MISUSE_ABORTS(FreeLargeInteriorLaterPage(), kInvalidPointer);
}

// ---------------------------------------------------------------- foreign pointers

void FreeStack() {
    volatile char on_stack[64] = {1};
    void* p = const_cast<char*>(&on_stack[16]);
    Target(p);
    ga_free(p);
}
TEST_F(Misuse, FreeOfStackAddressAbortsNamingTheAddress) {
    EXPECT_MISUSE_ABORTS(FreeStack(), kInvalidPointer);
}

void FreeWild() {
    void* p = reinterpret_cast<void*>(std::uintptr_t{0x12345678});
    Target(p);
    ga_free(p);
}
TEST_F(Misuse, FreeOfWildAddressAbortsNamingTheAddress) {
    EXPECT_MISUSE_ABORTS(FreeWild(), kInvalidPointer);
}

void FreeGlobal() {
    void* p = g_global_array + 64;
    Target(p);
    ga_free(p);
}
TEST_F(Misuse, FreeOfPointerIntoGlobalArrayAbortsNamingTheAddress) {
    EXPECT_MISUSE_ABORTS(FreeGlobal(), kInvalidPointer);
}

void FreeUnallocatedHeapPage() {
    // Far past the only objects of this fresh process, in pages goalloc never
    // handed out (inside or beyond its reservation).
    void* v = SmallVictim();
    void* p = Bytes(v) + 24 * MiB;
    Target(p);
    ga_free(p);
}
TEST_F(Misuse, FreeOfAddressNeverHandedOutAbortsNamingTheAddress) {
    EXPECT_MISUSE_ABORTS(FreeUnallocatedHeapPage(), kInvalidPointer);
}

// ---------------------------------------------------------------- freed objects

void ReallocFreed() {
    void* v = SmallVictim();
    ga_free(v);
    Target(v);
    void* q = ga_realloc(v, 100);
    std::fprintf(stderr, "realloc returned %p\n", q);
}
TEST_F(Misuse, ReallocOfFreedPointerAbortsNamingTheAddress) {
    EXPECT_MISUSE_ABORTS(ReallocFreed(), kFreedObject);
}

void ReallocInterior() {
    void* v = SmallVictim();
    Target(Bytes(v) + 16);
    void* q = ga_realloc(Bytes(v) + 16, 1000);
    std::fprintf(stderr, "realloc returned %p\n", q);
}
TEST_F(Misuse, ReallocOfInteriorPointerAbortsNamingTheAddress) {
    EXPECT_MISUSE_ABORTS(ReallocInterior(), kInvalidPointer);
}

void UsableSizeFreed() {
    void* v = SmallVictim();
    ga_free(v);
    Target(v);
    std::fprintf(stderr, "usable size %zu\n", ga_usable_size(v));
}
TEST_F(Misuse, UsableSizeOfFreedPointerAbortsNamingTheAddress) {
    EXPECT_MISUSE_ABORTS(UsableSizeFreed(), kFreedObject);
}

void UsableSizeFreedLarge() {
    void* v = LargeVictim();
    ga_free(v);
    Target(v);
    std::fprintf(stderr, "usable size %zu\n", ga_usable_size(v));
}
TEST_F(Misuse, UsableSizeOfFreedLargePointerAbortsNamingTheAddress) {
    EXPECT_MISUSE_ABORTS(UsableSizeFreedLarge(), kFreedObject);
}

void UsableSizeWild() {
    void* p = reinterpret_cast<void*>(std::uintptr_t{0x12345678});
    Target(p);
    std::fprintf(stderr, "usable size %zu\n", ga_usable_size(p));
}
TEST_F(Misuse, UsableSizeOfWildAddressAbortsNamingTheAddress) {
    EXPECT_MISUSE_ABORTS(UsableSizeWild(), kInvalidPointer);
}

// The checks must not fire on correct use right next to misuse-shaped cases.
TEST_F(Misuse, CorrectUseNextToTheMisusedShapesDoesNotAbort) {
    void* v = SmallVictim();
    EXPECT_EQ(ga_usable_size(v), 48u);
    ga_free(v);
    void* again = ga_malloc(48);  // may reuse the slot: freeing it again is legal
    ASSERT_NE(again, nullptr);
    ga_free(again);
    void* l = LargeVictim();
    EXPECT_GE(ga_usable_size(l), 1 * MiB);
    ga_free(l);
}

}  // namespace
