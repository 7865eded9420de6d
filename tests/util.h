/* Helpers shared by the tests: counting what a process holds, and kinds. */
#ifndef MPROC_TEST_UTIL_H
#define MPROC_TEST_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <mproc.h>
#include <stdbool.h>
#include <sys/types.h>

/* Both kinds of pool, for tests that run on each. */
extern const mproc_kind tu_kinds[2];
const char *tu_kind_name(mproc_kind k);

/* What this process holds, read from /proc. */
int tu_fds(void);          /* open descriptors */
int tu_descendants(void);  /* live or zombie processes below us */
int tu_zombies(void);      /* zombie children of ours */
pid_t tu_supervisor(void); /* our child mproc-super, or 0 */
int tu_maps(void);         /* the library's mappings (memfd:mproc) */

/* Wait up to `seconds` for tu_descendants() to be `want`; returns the count. */
int tu_wait_descendants(int want, double seconds);

/* Restore default dispositions of the fault signals, which cmocka catches
   (a worker forked while cmocka's handlers are in place would longjmp into
   a copy of the test instead of dying). */
void tu_default_signals(void);

double tu_now(void);

/* How much slower than native the tests run (MPROC_TEST_SLOW; 20 under
   valgrind): every timeout and time bound of a test is multiplied by it. */
double tu_slow(void);

/* A per-item timeout of `seconds` for a map in which workers also crash:
   seconds * tu_slow(), at least 10 s under a launcher and 2 s in a
   sanitizer's build. Valgrind checks a
   dying worker's leaks before it lets it die, about half a second on an idle
   machine and more on a busy one; a crash must not be taken for a hang. */
double tu_timeout(double seconds);

/* A snapshot of what the process holds, and a check that nothing leaked. */
struct tu_held {
    int fds, maps, procs;
};
struct tu_held tu_held(void);
void tu_assert_released(struct tu_held before);

#endif
