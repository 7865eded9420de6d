/*
 * Linux: time, the CPU hint for spinning, and futexes (with futex_waitv, and
 * a robust list through which a waiter learns of the supervisor's death).
 */
#define _GNU_SOURCE
#include "../internal.h"

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

uint64_t mproc__now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * MPROC__NS + (uint64_t)ts.tv_nsec;
}

void mproc__sleep(uint64_t ns)
{
    struct timespec ts = {.tv_sec = (time_t)(ns / MPROC__NS),
                          .tv_nsec = (long)(ns % MPROC__NS)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

void mproc__sleep_precisely(void)
{
    prctl(PR_SET_TIMERSLACK, 1UL);
}

void mproc__yield(void)
{
    sched_yield();
}

void mproc__relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

static struct timespec to_timespec(uint64_t ns)
{
    return (struct timespec){.tv_sec = (time_t)(ns / MPROC__NS),
                             .tv_nsec = (long)(ns % MPROC__NS)};
}

/*
 * Sleep while *w == val, until woken or until the absolute CLOCK_MONOTONIC
 * deadline (0: none). Returns 0 (woken, or the value had changed: the caller
 * re-checks either way), -ETIMEDOUT or -EINTR.
 */
int mproc__futex_wait(_Atomic uint32_t *w, uint32_t val, uint64_t deadline,
                      bool shared)
{
    struct timespec ts = to_timespec(deadline);
    int op = FUTEX_WAIT_BITSET | (shared ? 0 : FUTEX_PRIVATE_FLAG);
    long r = syscall(SYS_futex, w, op, val, deadline ? &ts : NULL, NULL,
                     FUTEX_BITSET_MATCH_ANY);
    if (r == 0 || errno == EAGAIN)
        return 0;
    return -errno;
}

void mproc__futex_wake(_Atomic uint32_t *w, int n, bool shared)
{
    int op = FUTEX_WAKE | (shared ? 0 : FUTEX_PRIVATE_FLAG);
    syscall(SYS_futex, w, op, n, NULL, NULL, 0);
}

#ifndef SYS_futex_waitv
#define SYS_futex_waitv 449
#endif

static _Atomic int no_waitv;

/*
 * Sleep on two shared futexes at once: *w == val and *w2 == val2. The second
 * is the supervisor's robust word, which the kernel changes and wakes when
 * the supervisor dies, however it dies. Kernels before 5.16 lack futex_waitv;
 * there the wait is cut into short slices that look at *w2 in between.
 */
int mproc__futex_wait2(_Atomic uint32_t *w, uint32_t val, _Atomic uint32_t *w2,
                       uint32_t val2, uint64_t deadline)
{
    if (!atomic_load_explicit(&no_waitv, memory_order_relaxed)) {
        struct futex_waitv v[2] = {
            {.val = val, .uaddr = (uintptr_t)w, .flags = FUTEX_32},
            {.val = val2, .uaddr = (uintptr_t)w2, .flags = FUTEX_32},
        };
        struct timespec ts = to_timespec(deadline);
        long r = syscall(SYS_futex_waitv, v, 2, 0, deadline ? &ts : NULL,
                         CLOCK_MONOTONIC);
        if (r >= 0 || errno == EAGAIN)
            return 0;
        if (errno != ENOSYS)
            return -errno;
        atomic_store_explicit(&no_waitv, 1, memory_order_relaxed);
    }
    uint64_t slice = mproc__now() + 50 * 1000 * 1000;
    if (deadline && deadline < slice)
        slice = deadline;
    int r = mproc__futex_wait(w, val, slice, true);
    if (r == -ETIMEDOUT && slice != deadline)
        return 0;
    return r;
}

/*
 * Make *word a robust futex held by this (single-threaded) process: the
 * kernel walks a process's robust list when it exits, and for each word still
 * holding the process's tid sets FUTEX_OWNER_DIED and wakes a waiter. This
 * replaces libc's own list for the calling thread, which is why only the
 * supervisor, which never uses robust mutexes, calls it. The list node lives
 * in this process's memory; the word may be anywhere (futex_offset spans).
 */
int mproc__robust_hold(_Atomic uint32_t *word)
{
    static struct robust_list_head head;
    static struct robust_list node;

    /* Release: pairs with the acquire loads of the word by the caller
       (processes.c: alive, check_job, sleep_on's fetch-or). Stronger than
       needed: the supervisor stores it before forking the workers, whose
       release of `ready` the opener acquires before it ever looks here. */
    atomic_store_explicit(word, (uint32_t)gettid(), memory_order_release);
    node.next = &head.list;
    head.list.next = &node;
    head.futex_offset = (long)((char *)word - (char *)&node);
    head.list_op_pending = NULL;
    if (syscall(SYS_set_robust_list, &head, sizeof head) != 0)
        return -errno;
    return 0;
}
