/* The operating-system layer and the heaps, through their internal calls. */
#define _GNU_SOURCE
#include "util.h"

#include "internal.h"

#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char root[256];

static void put(const char *path, const char *text)
{
    char full[512], dir[512];
    snprintf(full, sizeof full, "%s%s", root, path);
    snprintf(dir, sizeof dir, "%s", full);
    for (char *s = dir + strlen(root) + 1; (s = strchr(s, '/')); s++) {
        *s = 0;
        mkdir(dir, 0755);
        *s = '/';
    }
    FILE *f = fopen(full, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int make_root(void **state)
{
    (void)state;
    snprintf(root, sizeof root, "/tmp/mproc-test-root-XXXXXX");
    return mkdtemp(root) ? 0 : -1;
}

static int drop_root(void **state)
{
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    return system(cmd) == 0 ? 0 : -1;
}

static int affinity(void)
{
    cpu_set_t set;
    sched_getaffinity(0, sizeof set, &set);
    return CPU_COUNT(&set);
}

static void cpu_count_without_cgroups(void **state)
{
    (void)state;
    assert_int_equal(mproc__cpu_count_at("/nonexistent-root"), affinity());
    assert_int_equal(mproc__cpu_count(), mproc__cpu_count_at(""));
}

static void cpu_count_v1_quota(void **state)
{
    (void)state;
    put("/proc/self/mountinfo",
        "30 25 0:26 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"
        "31 25 0:27 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup "
        "rw,cpu,cpuacct\n");
    put("/proc/self/cgroup", "5:memory:/job\n4:cpu,cpuacct:/job\n");
    put("/sys/fs/cgroup/cpu,cpuacct/job/cpu.cfs_quota_us", "50000\n");
    put("/sys/fs/cgroup/cpu,cpuacct/job/cpu.cfs_period_us", "100000\n");
    assert_int_equal(mproc__cpu_count_at(root), 1);
    /* No quota (-1): the affinity mask decides. */
    put("/sys/fs/cgroup/cpu,cpuacct/job/cpu.cfs_quota_us", "-1\n");
    assert_int_equal(mproc__cpu_count_at(root), affinity());
}

static void cpu_count_v2_quota_and_parents(void **state)
{
    (void)state;
    put("/proc/self/mountinfo",
        "35 24 0:30 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw\n");
    put("/proc/self/cgroup", "0::/a/b\n");
    put("/sys/fs/cgroup/a/b/cpu.max", "max 100000\n");
    put("/sys/fs/cgroup/a/cpu.max", "100000 100000\n");
    assert_int_equal(mproc__cpu_count_at(root), 1);
    /* A fractional quota rounds up, and never exceeds the affinity mask. */
    put("/sys/fs/cgroup/a/cpu.max", "max 100000\n");
    put("/sys/fs/cgroup/a/b/cpu.max", "25000 100000\n");
    assert_int_equal(mproc__cpu_count_at(root), 1);
    put("/sys/fs/cgroup/a/b/cpu.max", "6400000 100000\n");
    assert_int_equal(mproc__cpu_count_at(root), affinity());
}

static void cpu_count_container_mount_root(void **state)
{
    (void)state;
    /* Inside a container the mount shows the hierarchy from the container's
       own group, which /proc/self/cgroup names in full. */
    put("/proc/self/mountinfo", "40 30 0:31 /docker/abc /sys/fs/cgroup/cpu rw "
                                "- cgroup cgroup rw,cpu\n");
    put("/proc/self/cgroup", "3:cpu:/docker/abc\n");
    put("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", "100000\n");
    put("/sys/fs/cgroup/cpu/cpu.cfs_period_us", "100000\n");
    assert_int_equal(mproc__cpu_count_at(root), 1);
}

/* ---- heaps ---- */

static char space[1 << 16] __attribute__((aligned(4096)));

static void heap_aligns_and_exhausts(void **state)
{
    (void)state;
    struct mproc__heap h;
    mproc__heap_init(&h, space, sizeof space, false, 0, false);
    void *a = mproc__heap_alloc(&h, 1);
    void *b = mproc__heap_alloc(&h, 65);
    assert_non_null(a);
    assert_non_null(b);
    assert_int_equal((uintptr_t)a % 64, 0);
    assert_int_equal((uintptr_t)b % 64, 0);
    assert_int_equal((char *)b - (char *)a, 64);
    errno = 0;
    assert_null(mproc__heap_alloc(&h, sizeof space));
    assert_int_equal(errno, ENOMEM);
    errno = 0;
    assert_null(mproc__heap_alloc(&h, 0));
    assert_int_equal(errno, EINVAL);
    assert_true(mproc__heap_owns(&h, a, 1));
    assert_true(mproc__heap_owns(&h, a, sizeof space));
    assert_false(mproc__heap_owns(&h, a, sizeof space + 1));
    assert_false(mproc__heap_owns(&h, (char *)a + 64, sizeof space));
    assert_false(mproc__heap_owns(&h, space + sizeof space, 1));
    mproc__heap_destroy(&h);
}

static void heap_coalesces(void **state)
{
    (void)state;
    struct mproc__heap h;
    size_t q = sizeof space / 4;
    mproc__heap_init(&h, space, sizeof space, false, 0, false);
    char *a = mproc__heap_alloc(&h, q), *b = mproc__heap_alloc(&h, q);
    char *c = mproc__heap_alloc(&h, q), *d = mproc__heap_alloc(&h, q);
    assert_non_null(d);
    assert_null(mproc__heap_alloc(&h, 64));
    /* Free b then c: one free block of 2q, found again at b. */
    mproc__heap_free(&h, b);
    mproc__heap_free(&h, c);
    assert_ptr_equal(mproc__heap_alloc(&h, 2 * q), b);
    /* Free all in a scattered order: the whole range comes back in one. */
    mproc__heap_free(&h, d);
    mproc__heap_free(&h, a);
    mproc__heap_free(&h, b);
    assert_ptr_equal(mproc__heap_alloc(&h, sizeof space), space);
    mproc__heap_free(&h, space);
    /* Fragmentation: every other block free leaves no room for two. */
    char *blk[16];
    for (int i = 0; i < 16; i++)
        blk[i] = mproc__heap_alloc(&h, sizeof space / 16);
    for (int i = 0; i < 16; i += 2)
        mproc__heap_free(&h, blk[i]);
    assert_null(mproc__heap_alloc(&h, sizeof space / 16 + 1));
    assert_non_null(mproc__heap_alloc(&h, sizeof space / 16));
    mproc__heap_destroy(&h);
}

static void heap_ignores_foreign_pointers(void **state)
{
    (void)state;
    struct mproc__heap h;
    mproc__heap_init(&h, space, sizeof space, false, 0, false);
    char *a = mproc__heap_alloc(&h, 128);
    int x;
    mproc__heap_free(&h, &x);
    mproc__heap_free(&h, a + 64); /* inside a block, not its start */
    mproc__heap_free(&h, NULL);
    assert_ptr_equal(mproc__heap_alloc(&h, 64), a + 128);
    mproc__heap_free(&h, a);
    mproc__heap_free(&h, a); /* twice: the second is ignored */
    assert_ptr_equal(mproc__heap_alloc(&h, 128), a);
    mproc__heap_destroy(&h);
}

static void heap_zeroes_what_it_hands_out(void **state)
{
    (void)state;
    size_t size = 1 << 20;
    char *r = mproc__region_map(size, true, NULL);
    assert_non_null(r);
    struct mproc__heap h;
    mproc__heap_init(&h, r, size, true, 0, true);
    char *a = mproc__heap_alloc(&h, 10000), *b = mproc__heap_alloc(&h, 100);
    memset(a, 0xab, 10000);
    memset(b, 0xcd, 100);
    mproc__heap_free(&h, a);
    char *c = mproc__heap_alloc(&h, 10000);
    assert_ptr_equal(c, a);
    for (size_t i = 0; i < 10000; i++)
        if (c[i])
            fail_msg("byte %zu not zero", i);
    for (size_t i = 0; i < 100; i++)
        assert_int_equal((unsigned char)b[i], 0xcd); /* the neighbour is kept */
    mproc__heap_destroy(&h);
    mproc__region_unmap(r, size);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(cpu_count_without_cgroups),
        cmocka_unit_test_setup_teardown(cpu_count_v1_quota, make_root,
                                        drop_root),
        cmocka_unit_test_setup_teardown(cpu_count_v2_quota_and_parents,
                                        make_root, drop_root),
        cmocka_unit_test_setup_teardown(cpu_count_container_mount_root,
                                        make_root, drop_root),
        cmocka_unit_test(heap_aligns_and_exhausts),
        cmocka_unit_test(heap_coalesces),
        cmocka_unit_test(heap_ignores_foreign_pointers),
        cmocka_unit_test(heap_zeroes_what_it_hands_out),
    };
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
