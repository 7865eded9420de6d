/*
 * The heaps of a pool: the user's shared arena (mproc_shared_alloc) and, for
 * process pools, the staging area where job data is copied for workers.
 *
 * Each heap manages a fixed range of address space reserved when the pool
 * opened (and, for process pools, mapped before the fork, so every worker
 * sees it at the same address). Its bookkeeping is two sorted arrays of
 * extents in the caller's private memory: the free ones, by address, and the
 * used ones, by address. Allocation is first fit; freeing merges with free
 * neighbours. The used array is a deque (it starts at `ulo`), shifting the
 * shorter side on an insert or an erase: blocks are mostly allocated at
 * rising addresses and freed oldest first (a queue of tasks), which then
 * costs O(1) however many blocks are live. Nothing is ever written into the range itself, so memory is
 * committed only where the user (or a copy) touches it.
 *
 * The arena hands out zeroed memory: freed pages are discarded (MADV_REMOVE
 * for shared memory, which every process sees) and the partial pages at a
 * block's edges cleared. The staging heap keeps freed memory committed, up
 * to `keep` bytes, so that repeated maps do not fault their pages in again.
 *
 * Callers: any thread of the process that opened the pool; the mutex covers
 * the bookkeeping.
 */
#define _GNU_SOURCE
#include "internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct mproc__extent {
    size_t off, len;
};

void mproc__heap_init(struct mproc__heap *h, char *base, size_t size, bool zero,
                      size_t keep, bool shared)
{
    memset(h, 0, sizeof *h);
    h->base = base;
    h->shared = shared;
    h->page = (size_t)sysconf(_SC_PAGESIZE);
    h->size = size & ~(size_t)(MPROC__LINE - 1);
    h->zero = zero;
    h->keep = keep;
    pthread_mutex_init(&h->lock, NULL);
}

void mproc__heap_destroy(struct mproc__heap *h)
{
    free(h->free);
    free(h->used);
    pthread_mutex_destroy(&h->lock);
    memset(h, 0, sizeof *h);
}

static bool grow(struct mproc__extent **a, size_t n, size_t *cap)
{
    if (n < *cap)
        return true;
    size_t c = *cap ? *cap * 2 : 16;
    struct mproc__extent *p = realloc(*a, c * sizeof *p);
    if (!p)
        return false;
    *a = p;
    *cap = c;
    return true;
}

/* First index whose extent starts at or after off. */
static size_t lower(const struct mproc__extent *a, size_t n, size_t off)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (a[mid].off < off)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static void insert(struct mproc__extent *a, size_t *n, size_t at,
                   struct mproc__extent e)
{
    memmove(a + at + 1, a + at, (*n - at) * sizeof *a);
    a[at] = e;
    (*n)++;
}

static void erase(struct mproc__extent *a, size_t *n, size_t at)
{
    memmove(a + at, a + at + 1, (*n - at - 1) * sizeof *a);
    (*n)--;
}

/* Room for one more used extent after the last. */
static bool grow_used(struct mproc__heap *h)
{
    if (h->ulo + h->nused < h->capused)
        return true;
    if (h->ulo && h->nused + 1 <= h->capused / 2) {
        memmove(h->used, h->used + h->ulo, h->nused * sizeof *h->used);
        h->ulo = 0;
        return true;
    }
    size_t c = h->capused ? h->capused * 2 : 16;
    struct mproc__extent *p = malloc(c * sizeof *p);
    if (!p)
        return false;
    if (h->nused)
        memcpy(p, h->used + h->ulo, h->nused * sizeof *p);
    free(h->used);
    h->used = p;
    h->capused = c;
    h->ulo = 0;
    return true;
}

static void insert_used(struct mproc__heap *h, size_t at,
                        struct mproc__extent e)
{
    struct mproc__extent *a = h->used + h->ulo;
    if (h->ulo && at < h->nused / 2) {
        memmove(a - 1, a, at * sizeof *a);
        h->ulo--;
        a[at - 1] = e;
    } else {
        memmove(a + at + 1, a + at, (h->nused - at) * sizeof *a);
        a[at] = e;
    }
    h->nused++;
}

static void erase_used(struct mproc__heap *h, size_t at)
{
    struct mproc__extent *a = h->used + h->ulo;
    if (at < h->nused / 2) {
        memmove(a + 1, a, at * sizeof *a);
        h->ulo++;
    } else {
        memmove(a + at, a + at + 1, (h->nused - at - 1) * sizeof *a);
    }
    if (!--h->nused)
        h->ulo = 0;
}

static void discard_all(struct mproc__heap *h)
{
    for (size_t i = 0; i < h->nfree; i++)
        mproc__discard(h->base + h->free[i].off, h->free[i].len, h->shared);
    h->dirty = 0;
}

void *mproc__heap_alloc(struct mproc__heap *h, size_t size)
{
    if (!size) {
        errno = EINVAL;
        return NULL;
    }
    if (size > h->size) {
        errno = ENOMEM;
        return NULL;
    }
    size = MPROC__ALIGN_UP(size, MPROC__LINE);
    pthread_mutex_lock(&h->lock);
    if (!h->nfree && !h->nused && h->size) {
        /* First use: the whole range is one free extent. */
        if (!grow(&h->free, 0, &h->capfree))
            goto nomem;
        h->free[h->nfree++] = (struct mproc__extent){0, h->size};
    }
    if (!grow_used(h))
        goto nomem;
    for (size_t i = 0; i < h->nfree; i++) {
        struct mproc__extent *f = &h->free[i];
        if (f->len < size)
            continue;
        struct mproc__extent u = {f->off, size};
        f->off += size;
        f->len -= size;
        if (!f->len)
            erase(h->free, &h->nfree, i);
        insert_used(h, lower(h->used + h->ulo, h->nused, u.off), u);
        pthread_mutex_unlock(&h->lock);
        return h->base + u.off;
    }
nomem:
    pthread_mutex_unlock(&h->lock);
    errno = ENOMEM;
    return NULL;
}

void mproc__heap_free(struct mproc__heap *h, void *p)
{
    if (!p || (char *)p < h->base || (char *)p >= h->base + h->size)
        return;
    size_t off = (size_t)((char *)p - h->base);
    pthread_mutex_lock(&h->lock);
    struct mproc__extent *used = h->used + h->ulo;
    size_t i = lower(used, h->nused, off);
    if (i == h->nused || used[i].off != off ||
        !grow(&h->free, h->nfree, &h->capfree)) {
        pthread_mutex_unlock(&h->lock);
        return;
    }
    struct mproc__extent e = used[i];
    erase_used(h, i);

    if (h->zero) {
        /* Whole pages go back to the system and read as zero; the bytes on
           pages shared with a neighbour are cleared by hand. */
        size_t page = h->page;
        size_t a = MPROC__ALIGN_UP(e.off, page),
               z = (e.off + e.len) & ~(page - 1);
        if (z > a) {
            memset(h->base + e.off, 0, a - e.off);
            mproc__discard(h->base + a, z - a, h->shared);
            memset(h->base + z, 0, e.off + e.len - z);
        } else {
            memset(h->base + e.off, 0, e.len);
        }
    } else {
        h->dirty += e.len;
    }

    size_t at = lower(h->free, h->nfree, e.off);
    if (at > 0 && h->free[at - 1].off + h->free[at - 1].len == e.off) {
        h->free[at - 1].len += e.len;
        if (at < h->nfree && e.off + e.len == h->free[at].off) {
            h->free[at - 1].len += h->free[at].len;
            erase(h->free, &h->nfree, at);
        }
    } else if (at < h->nfree && e.off + e.len == h->free[at].off) {
        h->free[at].off = e.off;
        h->free[at].len += e.len;
    } else {
        insert(h->free, &h->nfree, at, e);
    }
    if (!h->zero && h->dirty > h->keep)
        discard_all(h);
    pthread_mutex_unlock(&h->lock);
}

bool mproc__heap_owns(const struct mproc__heap *h, const void *p, size_t size)
{
    const char *c = p;
    return h->size && c >= h->base && size <= h->size &&
           (size_t)(c - h->base) <= h->size - size;
}
