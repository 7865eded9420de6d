/* mproc.h as C++ (built once per standard, C++11 to C++20, with the
   project's warnings, as errors under MPROC_WERROR): every declaration
   parses, MPROC_MAP takes the forms C users write. Never run. */
#include <mproc.h>

namespace
{
int copy(const void *in, void *out, void *)
{
    *static_cast<long *>(out) = *static_cast<const long *>(in);
    return 0;
}
} // namespace

int header_compiles(mproc_pool *pool)
{
    long in[4] = {1, 2, 3, 4};
    long out[4];
    const long *const_in = in;
    int r = MPROC_MAP(pool, copy, in, out, 4);
    r += MPROC_MAP(pool, copy, const_in, &out[0], sizeof in / sizeof *in);
    r += MPROC_MAP(
        pool, [](const void *, void *, void *) { return 0; }, in, out, 4);
    struct two {
        long a, b;
    } pairs[4];
    r += MPROC_MAP(
        pool,
        [](const void *i, void *o, void *) {
            long x = *static_cast<const long *>(i);
            *static_cast<two *>(o) = {x, x + 1};
            return 0;
        },
        in, pairs, 4);
    mproc_job job = mproc_job();
    job.fn = copy;
    return r + mproc_map(pool, &job);
}
