/*
 * Starting commands, and making sure none outlives mproc run.
 *
 * Each command runs in a process group of its own (so that a timeout, a
 * signal or the end of mproc run reaches all it started) and is tied to
 * mproc run twice over:
 *
 * - In the child, before exec, PR_SET_PDEATHSIG asks the kernel to SIGKILL
 *   the command when mproc run dies, however it dies; getppid() then checks
 *   that mproc run did not die before the request was in place.
 * - The guard, a process forked at start, holds the read end of a pipe
 *   whose write end only mproc run holds. When mproc run ends in any way,
 *   SIGKILL included, the pipe reads end-of-file and the guard kills every
 *   process group in a table shared with mproc run: the command's children
 *   too, which PDEATHSIG does not reach.
 *
 * The child writes its own pid into the table before exec, so there is no
 * moment when a command can have started anything without the guard
 * knowing its group. mproc run clears a slot only after it has killed what
 * was left in the group and reaped the command, so a slot never names a
 * group whose pid could have been reused.
 *
 * The child is made with vfork: it shares mproc run's memory until exec,
 * which is what makes starting a command cheap (no page tables copied); it
 * reports why it could not exec on a close-on-exec pipe. mproc run is
 * single-threaded and every signal is blocked in it (the loop reads them
 * from a signalfd), so the child cannot be interrupted by a handler that
 * touches the shared memory; the child unblocks them just before exec.
 * A command that detaches itself on purpose (setsid, or a new process
 * group) leaves the group and is not followed.
 */
#define _GNU_SOURCE
#include "run.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

static _Atomic pid_t *table;
static int table_slots;
static pid_t self;
static struct rlimit nofile;
static bool nofile_raised;

static void guard(int fd)
{
    /* The guard must not hold mproc run's output open (a reader would wait
       for it), nor be ended by a Ctrl-C meant for mproc run. */
    int null = open("/dev/null", O_RDWR);
    if (null >= 0) {
        dup2(null, 0);
        dup2(null, 1);
        dup2(null, 2);
        if (null > 2)
            close(null);
    }
    int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE, SIGTSTP};
    for (size_t i = 0; i < sizeof sigs / sizeof *sigs; i++)
        signal(sigs[i], SIG_IGN);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    char c;
    while (read(fd, &c, 1) < 0 && errno == EINTR)
        ;
    for (int i = 0; i < table_slots; i++) {
        pid_t g = atomic_load_explicit(&table[i], memory_order_relaxed);
        if (g > 0)
            kill(-g, SIGKILL);
    }
    _exit(0);
}

int guard_start(int slots)
{
    table = mmap(NULL, (size_t)slots * sizeof *table, PROT_READ | PROT_WRITE,
                 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (table == MAP_FAILED) {
        table = NULL;
        return -errno;
    }
    table_slots = slots;
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0)
        return -errno;
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        close(p[0]);
        close(p[1]);
        return -e;
    }
    if (pid == 0) {
        close(p[1]);
        guard(p[0]);
    }
    /* mproc run keeps the write end open until it ends; the guard is not
       waited for: it ends by itself on end-of-file. */
    close(p[0]);
    return 0;
}

void guard_clear(int slot)
{
    if (table && slot >= 0 && slot < table_slots)
        atomic_store_explicit(&table[slot], 0, memory_order_relaxed);
}

void spawn_init(void)
{
    self = getpid();
    /* More descriptors for many commands at once; the commands get the
       limit mproc run was given back. */
    if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 &&
        nofile.rlim_cur < nofile.rlim_max) {
        struct rlimit more = nofile;
        more.rlim_cur = more.rlim_max > 65536 ? 65536 : more.rlim_max;
        nofile_raised = setrlimit(RLIMIT_NOFILE, &more) == 0;
    }
}

/* Why a child did not reach its command: which step failed, and errno. */
static const char *const steps[] = {"prctl", "setpgid", "dup2", "exec"};
struct failure {
    int step, err;
};

/* The child, between vfork and exec: only system calls, nothing that
   allocates or locks, since it runs on mproc run's memory. A step that
   fails is told on `report`, a close-on-exec pipe: an exec that succeeds
   closes it unwritten. (A pipe, not the memory vfork shares, so that the
   report arrives where vfork is a plain fork too, as under a sanitizer.) */
static _Noreturn void fail_step(int report, int step)
{
    struct failure f = {step, errno ? errno : ESRCH};
    ssize_t n = write(report, &f, sizeof f);
    (void)n; /* nothing more a failing child can do */
    _exit(127);
}

static _Noreturn void child(const struct spawn_req *r, int report)
{
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != self)
        fail_step(report, 0);
    if (r->own_group && setpgid(0, 0) != 0)
        fail_step(report, 1);
    if (r->own_group && table && r->slot >= 0 && r->slot < table_slots)
        atomic_store_explicit(&table[r->slot], getpid(), memory_order_relaxed);
    int fds[3] = {r->in, r->out, r->err};
    for (int i = 0; i < 3; i++)
        if (fds[i] != i && dup2(fds[i], i) < 0)
            fail_step(report, 2);
    if (nofile_raised)
        setrlimit(RLIMIT_NOFILE, &nofile);
    signal(SIGPIPE, SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    execvp(r->argv[0], r->argv);
    fail_step(report, 3);
}

pid_t spawn(const struct spawn_req *r, const char **what)
{
    /* The report pipe must not be one of the descriptors 0 to 2 that the
       child sets up for the command. */
    int rep[2];
    if (pipe2(rep, O_CLOEXEC) != 0) {
        *what = "pipe";
        return -errno;
    }
    for (int i = 0; i < 2; i++)
        if (rep[i] < 3) {
            int moved = fcntl(rep[i], F_DUPFD_CLOEXEC, 3);
            int e = errno;
            close(rep[i]);
            rep[i] = moved;
            if (moved < 0) {
                close(rep[1 - i]);
                *what = "pipe";
                return -e;
            }
        }
    pid_t pid = vfork();
    if (pid == 0)
        child(r, rep[1]);
    int e = errno;
    close(rep[1]);
    if (pid < 0) {
        close(rep[0]);
        *what = "fork";
        return -e;
    }
    struct failure f;
    ssize_t got;
    while ((got = read(rep[0], &f, sizeof f)) < 0 && errno == EINTR)
        ;
    close(rep[0]);
    if (got == (ssize_t)sizeof f) {
        /* The child reached _exit: reap it here, it was never a command. */
        int st;
        while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
            ;
        guard_clear(r->slot);
        *what = steps[f.step >= 0 && f.step < 4 ? f.step : 3];
        return -f.err;
    }
    return pid;
}
