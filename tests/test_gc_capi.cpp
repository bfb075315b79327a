// The collector's C API: the checks live in gc_c_api.c, compiled as C; each
// returns 0 or the line of its first failed check.
#include <gtest/gtest.h>

extern "C" {
int capi_alloc_zeroed(void);
int capi_alloc_failure(void);
int capi_roots_and_scan(void);
int capi_finalizers_and_noscan(void);
int capi_control_and_stats(void);
int capi_threads(void);
}

namespace {

TEST(GcCApi, AllocZeroed) { EXPECT_EQ(capi_alloc_zeroed(), 0) << "gc_c_api.c line of the failed check"; }
TEST(GcCApi, AllocFailureIsNullEnomem) { EXPECT_EQ(capi_alloc_failure(), 0) << "gc_c_api.c line"; }
TEST(GcCApi, RootsAndScannedObjects) { EXPECT_EQ(capi_roots_and_scan(), 0) << "gc_c_api.c line"; }
TEST(GcCApi, FinalizersAndNoscan) { EXPECT_EQ(capi_finalizers_and_noscan(), 0) << "gc_c_api.c line"; }
TEST(GcCApi, ControlAndStats) { EXPECT_EQ(capi_control_and_stats(), 0) << "gc_c_api.c line"; }
TEST(GcCApi, Threads) { EXPECT_EQ(capi_threads(), 0) << "gc_c_api.c line"; }

}  // namespace
