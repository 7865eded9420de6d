/*
 * Linux: code addresses as (loaded object, offset, build id) through the
 * dynamic linker, so that another process of the same program (an MPI rank)
 * finds the same function wherever its objects were loaded.
 */
#define _GNU_SOURCE
#include "../internal.h"

#include <dlfcn.h>
#include <errno.h>
#include <link.h>
#include <stdlib.h>
#include <string.h>

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

/* ---- the program's objects, for spawned workers ------------------------ */

struct object_list {
    struct mproc__object *o;
    int cap, n;
};

/* The span of the object's loaded segments, as addresses. */
static void span(const struct dl_phdr_info *info, uint64_t *lo, uint64_t *hi)
{
    *lo = UINT64_MAX;
    *hi = 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD)
            continue;
        uint64_t a = info->dlpi_addr + ph->p_vaddr;
        if (a < *lo)
            *lo = a;
        if (a + ph->p_memsz > *hi)
            *hi = a + ph->p_memsz;
    }
}

static int list_one(struct dl_phdr_info *info, size_t size, void *p)
{
    (void)size;
    struct object_list *l = p;
    const char *name = info->dlpi_name ? info->dlpi_name : "";
    uint64_t lo, hi;
    span(info, &lo, &hi);
    if (lo >= hi || strlen(name) >= sizeof l->o->object)
        return 0; /* nothing loaded, or a name no worker could match */
    if (l->n < l->cap) {
        struct mproc__object *o = &l->o[l->n];
        memset(o, 0, sizeof *o);
        o->lo = lo;
        o->hi = hi;
        o->base = info->dlpi_addr;
        strcpy(o->object, name);
        o->id_len = build_id(info, o->id, sizeof o->id);
    }
    l->n++;
    return 0;
}

/* List this process's loaded objects into o[0..cap); returns how many
   there are (more than cap: call again with room for them). */
int mproc__objects(struct mproc__object *o, int cap)
{
    struct object_list l = {.o = o, .cap = cap};
    dl_iterate_phdr(list_one, &l);
    return l.n;
}

/* The index of the object whose span holds addr, or -1. */
int mproc__object_of(const struct mproc__object *o, int n, uintptr_t addr)
{
    for (int i = 0; i < n; i++)
        if (addr >= o[i].lo && addr < o[i].hi)
            return i;
    return -1;
}

struct object_search {
    const struct mproc__object *want;
    uintptr_t base;
};

static int here_one(struct dl_phdr_info *info, size_t size, void *p)
{
    (void)size;
    struct object_search *os = p;
    const char *name = info->dlpi_name ? info->dlpi_name : "";
    if (strcmp(name, os->want->object) != 0)
        return 0;
    unsigned char id[sizeof os->want->id];
    uint32_t len = build_id(info, id, sizeof id);
    /* The span's size as well: an object built without a build id (lld's
       default) is told from another build of it by its layout at least. */
    uint64_t lo, hi;
    span(info, &lo, &hi);
    if (len != os->want->id_len || memcmp(id, os->want->id, len) != 0 ||
        hi - lo != os->want->hi - os->want->lo)
        return -1; /* the same name, another build */
    os->base = info->dlpi_addr;
    return 1;
}

/* Where this process loaded the object another run listed: its load bias
   in *base; -1 when it is not loaded here, or is another build. */
int mproc__object_here(const struct mproc__object *o, uintptr_t *base)
{
    struct object_search os = {.want = o};
    if (dl_iterate_phdr(here_one, &os) != 1)
        return -1;
    *base = os.base;
    return 0;
}
