/*
 * Linux: the one file that knows it. Futexes (with futex_waitv and a robust
 * list to learn of the supervisor's death), pidfds, memfd regions, eventfds,
 * the CPU count with cgroup quotas, a CPU hint for spinning, and code
 * addresses as (loaded object, offset) through the dynamic linker.
 */
#define _GNU_SOURCE
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <dlfcn.h>
#include <link.h>
#include <linux/futex.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <sys/mman.h>
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

    atomic_store_explicit(word, (uint32_t)gettid(), memory_order_release);
    node.next = &head.list;
    head.list.next = &node;
    head.futex_offset = (long)((char *)word - (char *)&node);
    head.list_op_pending = NULL;
    if (syscall(SYS_set_robust_list, &head, sizeof head) != 0)
        return -errno;
    return 0;
}

/* ---- CPUs ------------------------------------------------------------ */

static int affinity_cpus(void)
{
    cpu_set_t *set;
    for (int ncpu = 1024; ncpu <= 1 << 20; ncpu *= 4) {
        set = CPU_ALLOC(ncpu);
        if (!set)
            break;
        size_t sz = CPU_ALLOC_SIZE(ncpu);
        if (sched_getaffinity(0, sz, set) == 0) {
            int n = CPU_COUNT_S(sz, set);
            CPU_FREE(set);
            return n > 0 ? n : 1;
        }
        CPU_FREE(set);
        if (errno != EINVAL)
            break;
    }
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

/* Read a whole small file under root into buf; returns its length or -1. */
static ssize_t slurp(const char *root, const char *path, char *buf, size_t cap)
{
    char full[PATH_MAX];
    if (snprintf(full, sizeof full, "%s%s", root, path) >= (int)sizeof full)
        return -1;
    int fd = open(full, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    size_t len = 0;
    for (;;) {
        ssize_t r = read(fd, buf + len, cap - 1 - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        len += (size_t)r;
        if (len == cap - 1)
            break;
    }
    close(fd);
    buf[len] = 0;
    return (ssize_t)len;
}

/* CPUs allowed by the quota files in dir and its parents up to top
   (cgroup v1: cpu.cfs_quota_us / cpu.cfs_period_us; v2: cpu.max). */
static double quota_in(const char *root, char *dir, size_t top, bool v2)
{
    double best = 0;
    char buf[256];
    for (;;) {
        size_t len = strlen(dir);
        double q = 0;
        if (v2) {
            char p[PATH_MAX];
            snprintf(p, sizeof p, "%s/cpu.max", dir);
            if (slurp(root, p, buf, sizeof buf) > 0 && strncmp(buf, "max", 3)) {
                double quota = 0, period = 0;
                if (sscanf(buf, "%lf %lf", &quota, &period) == 2 && period > 0)
                    q = quota / period;
            }
        } else {
            char p[PATH_MAX];
            double quota = -1, period = 0;
            snprintf(p, sizeof p, "%s/cpu.cfs_quota_us", dir);
            if (slurp(root, p, buf, sizeof buf) > 0)
                quota = strtod(buf, NULL);
            snprintf(p, sizeof p, "%s/cpu.cfs_period_us", dir);
            if (slurp(root, p, buf, sizeof buf) > 0)
                period = strtod(buf, NULL);
            if (quota > 0 && period > 0)
                q = quota / period;
        }
        if (q > 0 && (best == 0 || q < best))
            best = q;
        if (len <= top)
            break;
        char *slash = strrchr(dir + top, '/');
        if (!slash)
            break;
        *slash = 0;
    }
    return best;
}

/*
 * The CPU quota of this process's cgroups, in CPUs (0: none). Each cgroup
 * mount in mountinfo (v2, or v1 with the cpu controller) is matched with
 * this process's path in that hierarchy, and the quota files are read from
 * the process's own group up to the mount point.
 */
static double cgroup_quota(const char *root)
{
    enum { MI = 1 << 16, CG = 1 << 13 };
    char *mi = malloc(MI), *cg = malloc(CG), *line = malloc(CG);
    double best = 0;
    if (!mi || !cg || !line ||
        slurp(root, "/proc/self/mountinfo", mi, MI) <= 0 ||
        slurp(root, "/proc/self/cgroup", cg, CG) <= 0)
        goto out;

    for (char *save = NULL, *l = strtok_r(mi, "\n", &save); l;
         l = strtok_r(NULL, "\n", &save)) {
        /* id parent major:minor root mountpoint options ... - fstype src super */
        char mroot[1024], mpoint[1024], fstype[64], super[1024];
        const char *dash = strstr(l, " - ");
        if (!dash ||
            sscanf(l, "%*s %*s %*s %1023s %1023s", mroot, mpoint) != 2 ||
            sscanf(dash + 3, "%63s %*s %1023s", fstype, super) != 2)
            continue;
        bool v2 = !strcmp(fstype, "cgroup2");
        if (!v2) {
            if (strcmp(fstype, "cgroup"))
                continue;
            bool cpu = false;
            char sup[1024];
            snprintf(sup, sizeof sup, "%s", super);
            for (char *s2 = NULL, *o = strtok_r(sup, ",", &s2); o;
                 o = strtok_r(NULL, ",", &s2))
                cpu |= !strcmp(o, "cpu");
            if (!cpu)
                continue;
        }
        /* The matching line of /proc/self/cgroup: "0::/path" for v2,
           "N:cpu,cpuacct:/path" for v1. */
        memcpy(line, cg, CG);
        for (char *s3 = NULL, *c = strtok_r(line, "\n", &s3); c;
             c = strtok_r(NULL, "\n", &s3)) {
            char *c1 = strchr(c, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
            if (!c2)
                continue;
            *c2 = 0;
            const char *ctrl = c1 + 1, *path = c2 + 1;
            bool match = false;
            if (v2)
                match = !*ctrl;
            else {
                char ctl[256];
                snprintf(ctl, sizeof ctl, "%s", ctrl);
                for (char *s4 = NULL, *o = strtok_r(ctl, ",", &s4); o;
                     o = strtok_r(NULL, ",", &s4))
                    match |= !strcmp(o, "cpu");
            }
            if (!match)
                continue;
            /* The mount shows the hierarchy from mroot down. */
            size_t rl = strlen(mroot);
            if (!strcmp(mroot, "/"))
                rl = 0;
            else if (strncmp(path, mroot, rl) || (path[rl] && path[rl] != '/'))
                continue;
            char dir[PATH_MAX];
            snprintf(dir, sizeof dir, "%s%s", mpoint, path + rl);
            size_t dl = strlen(dir);
            while (dl > 1 && dir[dl - 1] == '/')
                dir[--dl] = 0;
            double q = quota_in(root, dir, strlen(mpoint), v2);
            if (q > 0 && (best == 0 || q < best))
                best = q;
        }
    }
out:
    free(mi);
    free(cg);
    free(line);
    return best;
}

/* The CPUs this process may use: its affinity mask, lowered to its cgroup
   CPU quota (rounded up) where one is set. Files are read under root. */
int mproc__cpu_count_at(const char *root)
{
    int n = affinity_cpus();
    double q = cgroup_quota(root);
    if (q > 0) {
        int qn = (int)q;
        if (qn < q)
            qn++;
        if (qn < 1)
            qn = 1;
        if (qn < n)
            n = qn;
    }
    return n;
}

int mproc__cpu_count(void)
{
    static _Atomic int cached;
    int n = atomic_load_explicit(&cached, memory_order_relaxed);
    if (!n) {
        n = mproc__cpu_count_at("");
        atomic_store_explicit(&cached, n, memory_order_relaxed);
    }
    return n;
}

/* Are we running under valgrind? Its memory checker scans every mapped
   byte when a process exits, so reservations are kept small there. */
#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define HAVE_VALGRIND 1
#endif
#endif

bool mproc__under_valgrind(void)
{
#ifdef HAVE_VALGRIND
    return RUNNING_ON_VALGRIND;
#else
    return false;
#endif
}

uint64_t mproc__ram(void)
{
    long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGESIZE);
    if (pages <= 0 || size <= 0)
        return UINT64_C(1) << 30;
    return (uint64_t)pages * (uint64_t)size;
}

/* ---- memory ---------------------------------------------------------- */

/*
 * Reserve size bytes of address space, committed only as touched, backed by
 * a memfd named "mproc" so that the library's memory is easy to tell apart
 * in /proc/PID/maps. Shared: mapped MAP_SHARED, so that processes forked
 * later see the same pages at the same address. Private: MAP_PRIVATE, pages
 * of this process alone. The descriptor is closed at once; the mapping keeps
 * the memory alive. Returns NULL with errno set.
 */
void *mproc__region_map(size_t size, bool shared)
{
    int fd = memfd_create("mproc", MFD_CLOEXEC);
    if (fd < 0)
        return NULL;
    if (ftruncate(fd, (off_t)size) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return NULL;
    }
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
                   (shared ? MAP_SHARED : MAP_PRIVATE) | MAP_NORESERVE, fd, 0);
    int e = errno;
    close(fd);
    errno = e;
    return p == MAP_FAILED ? NULL : p;
}

/* Keep [p, p+size) out of core dumps: a crashing worker must not write
   gigabytes of reserved, mostly untouched, staging memory. */
void mproc__no_dump(void *p, size_t size)
{
    madvise(p, size, MADV_DONTDUMP);
}

void mproc__region_unmap(void *p, size_t size)
{
    if (p)
        munmap(p, size);
}

/* Give the whole pages inside [p, p+size) back to the system; they read as
   zero afterwards, in every process that maps them. */
void mproc__discard(void *p, size_t size, bool shared)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    uintptr_t a = MPROC__ALIGN_UP((uintptr_t)p, page);
    uintptr_t e = ((uintptr_t)p + size) & ~(uintptr_t)(page - 1);
    if (e > a)
        madvise((void *)a, e - a, shared ? MADV_REMOVE : MADV_DONTNEED);
}

/* ---- processes ------------------------------------------------------- */

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

/*
 * A descriptor that becomes readable (or hangs up) when this process dies,
 * for a child to watch: a pidfd of this process (exact: fires when the whole
 * process exits, not the thread that asked), or, where pidfds are missing
 * (kernels before 5.3, valgrind), the read end of a pipe whose write end
 * this process keeps in *keep until it closes the pool. Both close-on-exec.
 */
int mproc__lifeline(int *keep)
{
    *keep = -1;
    int fd = (int)syscall(SYS_pidfd_open, getpid(), 0);
    if (fd >= 0)
        return fd;
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0)
        return -errno;
    *keep = p[1];
    return p[0];
}

/* A descriptor readable when a child of this process changes state. The
   caller must have SIGCHLD blocked. */
int mproc__child_events(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    int fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    return fd < 0 ? -errno : fd;
}

void mproc__child_events_drain(int fd)
{
    struct signalfd_siginfo si[8];
    while (read(fd, si, sizeof si) > 0)
        ;
}

/* Has the child pid exited? Looks without reaping it. A child somebody else
   reaped (the program's own waitpid(-1), or SIGCHLD ignored) has too. */
bool mproc__child_exited(pid_t pid)
{
    siginfo_t si = {0};
    if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) != 0)
        return errno == ECHILD;
    return si.si_pid == pid;
}

/* Ask for SIGKILL when the parent dies; fails if it already has, which is
   the race PR_SET_PDEATHSIG alone leaves open. */
int mproc__die_with_parent(pid_t parent)
{
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0)
        return -errno;
    return getppid() == parent ? 0 : -ESRCH;
}

void mproc__set_name(const char *name)
{
    prctl(PR_SET_NAME, name);
}

int mproc__event_open(void)
{
    int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    return fd < 0 ? -errno : fd;
}

int mproc__event_post(int fd)
{
    uint64_t one = 1;
    return write(fd, &one, sizeof one) == sizeof one ? 0 : -errno;
}

void mproc__event_drain(int fd)
{
    uint64_t v;
    while (read(fd, &v, sizeof v) == sizeof v)
        ;
}

/* ---- code addresses across processes ----------------------------------- */

struct code_search {
    uintptr_t addr;
    struct mproc__code *ref;        /* mproc__code_ref: filled in */
    const struct mproc__code *want; /* mproc__code_find: looked for */
    uintptr_t found;
};

/* Does the loaded object hold addr in one of its executable segments? */
static bool holds_code(const struct dl_phdr_info *info, uintptr_t addr)
{
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X))
            continue;
        uintptr_t lo = info->dlpi_addr + ph->p_vaddr;
        if (addr >= lo && addr - lo < ph->p_memsz)
            return true;
    }
    return false;
}

/* The object's GNU build id, from its notes: its length, 0 if none. */
static uint32_t build_id(const struct dl_phdr_info *info, unsigned char *id,
                         size_t cap)
{
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_NOTE)
            continue;
        size_t align = ph->p_align == 8 ? 8 : 4;
        const char *at = (const char *)(info->dlpi_addr + ph->p_vaddr);
        const char *end = at + ph->p_memsz;
        while ((size_t)(end - at) >= sizeof(ElfW(Nhdr))) {
            const ElfW(Nhdr) *nh = (const void *)at;
            const char *name = at + sizeof *nh;
            const char *desc = name + MPROC__ALIGN_UP(nh->n_namesz, align);
            const char *next = desc + MPROC__ALIGN_UP(nh->n_descsz, align);
            if (next > end)
                break;
            if (nh->n_type == NT_GNU_BUILD_ID && nh->n_namesz == 4 &&
                !memcmp(name, "GNU", 4) && nh->n_descsz <= cap) {
                memcpy(id, desc, nh->n_descsz);
                return nh->n_descsz;
            }
            at = next;
        }
    }
    return 0;
}

static int ref_of(struct dl_phdr_info *info, size_t size, void *p)
{
    (void)size;
    struct code_search *cs = p;
    if (!holds_code(info, cs->addr))
        return 0;
    const char *name = info->dlpi_name ? info->dlpi_name : "";
    if (strlen(name) >= sizeof cs->ref->object)
        return -1;
    strcpy(cs->ref->object, name);
    cs->ref->offset = cs->addr - info->dlpi_addr;
    cs->ref->id_len = build_id(info, cs->ref->id, sizeof cs->ref->id);
    return 1;
}

/*
 * Walking every loaded object (an MPI program has a hundred) costs tens of
 * microseconds, and a map looks up the same function each time: each thread
 * remembers its last answer, with the object it was found in. The answer
 * holds while that object is still the one loaded there, which
 * _dl_find_object tells without a lock.
 */
struct code_memo {
    uintptr_t addr;
    struct link_map *map;
    void *start;
    struct mproc__code ref;
};

static bool still_loaded(const struct code_memo *m, uintptr_t addr)
{
    struct dl_find_object fo;
    return m->map && _dl_find_object((void *)addr, &fo) == 0 &&
           fo.dlfo_link_map == m->map && fo.dlfo_map_start == m->start;
}

static void remember(struct code_memo *m, uintptr_t addr,
                     const struct mproc__code *ref)
{
    struct dl_find_object fo;
    if (_dl_find_object((void *)addr, &fo) != 0) {
        m->map = NULL;
        return;
    }
    *m = (struct code_memo){.addr = addr,
                            .map = fo.dlfo_link_map,
                            .start = fo.dlfo_map_start,
                            .ref = *ref};
}

/* A function's address as a number, and back (ISO C has no cast between
   function and object pointers; every ELF platform agrees on the bits). */
static uintptr_t code_addr(void (*fn)(void))
{
    uintptr_t a;
    memcpy(&a, &fn, sizeof a);
    return a;
}

int mproc__code_ref(void (*fn)(void), struct mproc__code *ref)
{
    static _Thread_local struct code_memo memo;
    uintptr_t addr = code_addr(fn);
    if (memo.addr == addr && still_loaded(&memo, addr)) {
        *ref = memo.ref;
        return 0;
    }
    memset(ref, 0, sizeof *ref);
    struct code_search cs = {.addr = addr, .ref = ref};
    if (dl_iterate_phdr(ref_of, &cs) != 1)
        return MPROC_EINVAL;
    remember(&memo, addr, ref);
    return 0;
}

static int find_of(struct dl_phdr_info *info, size_t size, void *p)
{
    (void)size;
    struct code_search *cs = p;
    const char *name = info->dlpi_name ? info->dlpi_name : "";
    if (strcmp(name, cs->want->object) != 0)
        return 0;
    uintptr_t addr = info->dlpi_addr + (uintptr_t)cs->want->offset;
    if (!holds_code(info, addr))
        return 0;
    unsigned char id[sizeof cs->want->id];
    uint32_t len = build_id(info, id, sizeof id);
    if (len != cs->want->id_len || memcmp(id, cs->want->id, len) != 0)
        return -1; /* the same name, another build */
    cs->found = addr;
    return 1;
}

static void (*code_fn(uintptr_t a))(void)
{
    void (*fn)(void);
    memcpy(&fn, &a, sizeof fn);
    return fn;
}

void (*mproc__code_find(const struct mproc__code *ref))(void)
{
    static _Thread_local struct code_memo memo;
    if (memchr(ref->object, 0, sizeof ref->object) == NULL)
        return NULL;
    /* Refs are whole structs, zero past the object's name (mproc__code_ref
       clears them): equal refs are equal bytes. */
    if (memo.map && !memcmp(&memo.ref, ref, sizeof *ref) &&
        still_loaded(&memo, memo.addr))
        return code_fn(memo.addr);
    struct code_search cs = {.want = ref};
    if (dl_iterate_phdr(find_of, &cs) != 1)
        return NULL;
    remember(&memo, cs.found, ref);
    return code_fn(cs.found);
}
