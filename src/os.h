/*
 * What libmproc asks of the operating system: the interface of src/linux/,
 * the only code that knows which system it runs on. Another system would be
 * another folder behind this header.
 */
#ifndef MPROC_OS_H
#define MPROC_OS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <signal.h>
#include <sys/types.h>

/* ---- time, futexes (linux/sync.c) ------------------------------------ */

uint64_t mproc__now(void);
void mproc__sleep(uint64_t ns);
void mproc__relax(void);
void mproc__yield(void);
void mproc__sleep_precisely(void);
int mproc__futex_wait(_Atomic uint32_t *w, uint32_t val, uint64_t deadline,
                      bool shared);
void mproc__futex_wake(_Atomic uint32_t *w, int n, bool shared);
int mproc__futex_wait2(_Atomic uint32_t *w, uint32_t val, _Atomic uint32_t *w2,
                       uint32_t val2, uint64_t deadline);
int mproc__robust_hold(_Atomic uint32_t *word);
#define MPROC__OWNER_DIED 0x40000000u
#define MPROC__WAITERS    0x80000000u

/* ---- CPUs, memory, processes (linux/system.c) ------------------------ */

int mproc__cpu_count(void);
int mproc__cpu_count_at(const char *root);
uint64_t mproc__ram(void);
bool mproc__under_valgrind(void);
void mproc__shared_written(void *p, size_t size);

void *mproc__region_map(size_t size, bool shared, int *keep);
void *mproc__region_map_at(int fd, void *at, size_t size);
void mproc__region_unmap(void *p, size_t size);
void mproc__no_dump(void *p, size_t size);
void mproc__discard(void *p, size_t size, bool shared);
int mproc__file_open(const char *name, uint64_t size);
void *mproc__file_map(int fd, uint64_t off, size_t size);
void mproc__file_punch(int fd, uint64_t off, uint64_t size);

int mproc__lifeline(int *keep);
int mproc__child_events(void);
#define MPROC__EV_STOP 1u /* SIGTSTP, SIGTTIN or SIGTTOU arrived */
#define MPROC__EV_CONT 2u /* SIGCONT arrived: the process was continued */
unsigned mproc__child_events_drain(int fd);
int mproc__subreaper(void);
void mproc__each_child(void (*fn)(pid_t pid, void *ctx), void *ctx);
bool mproc__child_exited(pid_t pid);
int mproc__die_with_parent(pid_t parent);
void mproc__parent_death_signal(int sig);
void mproc__set_name(const char *name);
int mproc__self_exe(void);
#ifdef _POSIX_C_SOURCE /* sigset_t is POSIX, and the MPI files are ISO C */
pid_t mproc__exec(int exe_fd, char *const argv[], char *const envp[],
                  const int *keep, int nkeep, const sigset_t *mask);
#endif
int mproc__event_open(void);
int mproc__event_post(int fd);
void mproc__event_drain(int fd);

/* ---- a function's address across processes (linux/code.c) ----------- -- */

/*
 * A code address as (loaded object, offset), so that a process whose objects
 * are loaded elsewhere (ASLR), an MPI rank running the same program, finds
 * the same function. The main program's object is "". The object's build
 * id, where it has one, tells a different build of the same file (another
 * binary under MPMD, a node with a stale copy), whose offset would point
 * at other code.
 */
struct mproc__code {
    uint64_t offset;
    uint32_t id_len;
    unsigned char id[36];
    char object[464];
};

int mproc__code_ref(void (*fn)(void), struct mproc__code *ref);
void (*mproc__code_find(const struct mproc__code *ref))(void);

/*
 * The program's loaded objects as one process sees them, so that another
 * run of the same program (a spawned worker) finds the first one's code and
 * static data in its own address space: an address inside [lo, hi) of an
 * object is at base + (address - lo's object base) there. Objects are told
 * apart by name and build id, as above.
 */
struct mproc__object {
    uint64_t lo, hi;          /* the loaded segments' span in the lister */
    uint64_t base;            /* the object's load bias there (dlpi_addr) */
    _Atomic uint32_t missing; /* 1: a spawned worker does not load it */
    uint32_t id_len;
    unsigned char id[36];
    char object[464];
};

int mproc__objects(struct mproc__object *o, int cap);
int mproc__object_of(const struct mproc__object *o, int n, uintptr_t addr);
int mproc__object_here(const struct mproc__object *o, uintptr_t *base);

#endif /* MPROC_OS_H */
