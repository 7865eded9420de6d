/*
 * Linux: the CPUs this process may use (affinity and cgroup quotas), its
 * memory, the regions a pool maps (memfd-backed), and the processes of a
 * pool: lifelines (pidfds), child events (signalfd), eventfds, names.
 */
#define _GNU_SOURCE
#include "../internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

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

#if defined(HAVE_VALGRIND) && __has_include(<valgrind/memcheck.h>)
#include <valgrind/memcheck.h>
#endif

/* Memory other processes write (a shared region): valgrind sees only this
   process's stores, so a copy of undefined bytes into it would stay
   undefined for it after workers wrote there. Such memory is defined as
   far as this process can know, as freshly mapped memory is. */
void mproc__shared_written(void *p, size_t size)
{
#ifdef VALGRIND_MAKE_MEM_DEFINED
    VALGRIND_MAKE_MEM_DEFINED(p, size);
#else
    (void)p, (void)size;
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
 * of this process alone. The descriptor (close-on-exec) is handed back in
 * *keep, for a process that is not forked to map the same pages
 * (mproc__region_map_at); with keep NULL it is closed at once, and the
 * mapping keeps the memory alive. Returns NULL with errno set.
 */
void *mproc__region_map(size_t size, bool shared, int *keep)
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
    if (keep && p != MAP_FAILED)
        *keep = fd;
    else
        close(fd);
    errno = e;
    return p == MAP_FAILED ? NULL : p;
}

/* Map the region file fd (size bytes, from mproc__region_map's keep) at
   exactly `at`, as the process that made it did: a spawned worker reads
   the board's pointers as they are. Never over a mapping of this process
   (MAP_FIXED_NOREPLACE; EEXIST when one is in the way). NULL with errno. */
void *mproc__region_map_at(int fd, void *at, size_t size)
{
    void *p = mmap(at, size, PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_NORESERVE | MAP_FIXED_NOREPLACE, fd, 0);
    if (p == MAP_FAILED)
        return NULL;
    if (p != at) { /* a kernel before 4.17 takes the flag as a hint */
        munmap(p, size);
        errno = EEXIST;
        return NULL;
    }
    return p;
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

/*
 * A sparse file in memory (a memfd, close-on-exec) of `size` bytes, none of
 * them committed: pages exist only where written. Returns the descriptor,
 * or -1 with errno set.
 */
int mproc__file_open(const char *name, uint64_t size)
{
    int fd = memfd_create(name, MFD_CLOEXEC);
    if (fd < 0)
        return -1;
    if (ftruncate(fd, (off_t)size) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

/* Map [off, off+size) of such a file, shared and writable; NULL with errno
   set. off is a multiple of the page size. */
void *mproc__file_map(int fd, uint64_t off, size_t size)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_NORESERVE, fd, (off_t)off);
    return p == MAP_FAILED ? NULL : p;
}

/* Give the whole pages inside [off, off+size) of the file back to the
   system: they read as zero afterwards, in every process. */
void mproc__file_punch(int fd, uint64_t off, uint64_t size)
{
    uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
    uint64_t a = (off + page - 1) & ~(page - 1);
    uint64_t e = (off + size) & ~(page - 1);
    if (e > a)
        fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)a,
                  (off_t)(e - a));
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
/* The supervisor's signals, read from a descriptor: its children's deaths,
   and job control (a stop asked of it, its continuing). They must be
   blocked. */
int mproc__child_events(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    sigaddset(&set, SIGCONT);
    sigaddset(&set, SIGTSTP);
    sigaddset(&set, SIGTTIN);
    sigaddset(&set, SIGTTOU);
    int fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    return fd < 0 ? -errno : fd;
}

unsigned mproc__child_events_drain(int fd)
{
    struct signalfd_siginfo si[8];
    unsigned ev = 0;
    ssize_t r;
    while ((r = read(fd, si, sizeof si)) > 0)
        for (size_t i = 0; i < (size_t)r / sizeof si[0]; i++) {
            if (si[i].ssi_signo == SIGCONT)
                ev |= MPROC__EV_CONT;
            else if (si[i].ssi_signo != SIGCHLD)
                ev |= MPROC__EV_STOP;
        }
    return ev;
}

int mproc__subreaper(void)
{
    return prctl(PR_SET_CHILD_SUBREAPER, 1) ? -errno : 0;
}

/* Every child of this (single-threaded) process, from the kernel's list;
   one that appears while it is read may be missed, never a stranger. */
void mproc__each_child(void (*fn)(pid_t pid, void *ctx), void *ctx)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/self/task/%d/children", (int)getpid());
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    pid_t pid = 0;
    bool in = false;
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        for (ssize_t i = 0; i < n; i++) {
            if (buf[i] >= '0' && buf[i] <= '9') {
                pid = pid * 10 + (buf[i] - '0');
                in = true;
            } else if (in) {
                fn(pid, ctx);
                pid = 0;
                in = false;
            }
        }
    }
    if (in)
        fn(pid, ctx);
    close(fd);
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

/* Ask for sig when the thread that forked us ends. */
void mproc__parent_death_signal(int sig)
{
    (void)prctl(PR_SET_PDEATHSIG, sig);
}

/* Ask for SIGKILL when the parent dies; fails if it already has, which is
   the race PR_SET_PDEATHSIG alone leaves open. */
int mproc__die_with_parent(pid_t parent)
{
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0)
        return -errno;
    return getppid() == parent ? 0 : -ESRCH;
}

/*
 * The program's own executable, for fresh runs of it (spawned processes):
 * a descriptor (close-on-exec) of the file the kernel ran, so that they run
 * that very file even if it was deleted or replaced (rebuilt) since; a child
 * names it /proc/self/fd/N in its copy of the descriptors (mproc__exec).
 * Returns the descriptor, or -errno.
 */
int mproc__self_exe(void)
{
    int fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
    return fd < 0 ? -errno : fd;
}

/*
 * Start the executable open at exe_fd (mproc__self_exe) as a child of this
 * process with argv and envp and the signal
 * mask `mask` (as exec does, handled signals start at their default action
 * and ignored ones stay ignored, as in a fork), keeping open the
 * descriptors in keep[0..nkeep) (their close-on-exec is cleared in the
 * child alone). posix_spawn, which vforks: no page table is copied, so the
 * cost does not grow with this process's memory. Returns the pid, or
 * -errno (the exec's own failure included).
 */
pid_t mproc__exec(int exe_fd, char *const argv[], char *const envp[],
                  const int *keep, int nkeep, const sigset_t *mask)
{
    /* The child resolves the path in its own copy of our descriptors,
       before exec closes the close-on-exec ones. */
    char path[32];
    snprintf(path, sizeof path, "/proc/self/fd/%d", exe_fd);
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    int err = posix_spawn_file_actions_init(&fa);
    if (err)
        return -err;
    err = posix_spawnattr_init(&at);
    if (err) {
        posix_spawn_file_actions_destroy(&fa);
        return -err;
    }
    /* dup2 of a descriptor onto itself clears its close-on-exec flag
       (POSIX.1-2024 posix_spawn_file_actions_adddup2; glibc 2.29 on). */
    for (int i = 0; i < nkeep && !err; i++)
        if (keep[i] >= 0)
            err = posix_spawn_file_actions_adddup2(&fa, keep[i], keep[i]);
    if (!err)
        err = posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK);
    if (!err)
        err = posix_spawnattr_setsigmask(&at, mask);
    pid_t pid = -1;
    if (!err)
        err = posix_spawn(&pid, path, &fa, &at, argv, envp);
    posix_spawnattr_destroy(&at);
    posix_spawn_file_actions_destroy(&fa);
    return err ? -err : pid;
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
