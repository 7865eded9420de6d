/*
 * mproc from C++: MPROC_MAP over a std::vector, with a lambda for fn, on
 * processes and on threads; the pool closes itself (std::unique_ptr).
 *
 *   c++ -std=c++17 squares.cpp $(pkg-config --cflags --libs mproc) -o squares
 *
 * fn is called from C: an exception must not leave it (catch inside and
 * return a nonzero code, which lands in the item's status). Items and
 * results are copied as bytes between processes, so their types are
 * trivially copyable: no std::string, no owning pointers.
 */
#include <mproc.h>

#include <cmath>
#include <cstdio>
#include <memory>
#include <numeric>
#include <type_traits>
#include <vector>

struct square_root {
    long square;
    double root;
};
static_assert(std::is_trivially_copyable<square_root>::value,
              "results cross between processes as bytes");

using pool_ptr = std::unique_ptr<mproc_pool, decltype(&mproc_pool_close)>;

static pool_ptr open_pool(mproc_kind kind, int workers)
{
    mproc_options opt = mproc_options();
    opt.kind = kind;
    opt.workers = workers;
    mproc_pool *pool = nullptr;
    int r = mproc_pool_open(&pool, &opt);
    if (r < 0)
        std::fprintf(stderr, "open: %s\n", mproc_strerror(r));
    return pool_ptr(pool, &mproc_pool_close);
}

int main()
{
    std::vector<long> in(10000);
    std::iota(in.begin(), in.end(), 0L);
    for (mproc_kind kind : {MPROC_PROCESSES, MPROC_THREADS}) {
        pool_ptr pool = open_pool(kind, 3);
        if (!pool)
            return 1;
        std::vector<square_root> out(in.size());
        int failed = MPROC_MAP(
            pool.get(),
            [](const void *item, void *result, void *) {
                long x = *static_cast<const long *>(item);
                *static_cast<square_root *>(result) = {x * x, std::sqrt(x)};
                return 0;
            },
            in.data(), out.data(), in.size());
        if (failed != 0) {
            std::fprintf(stderr, "map: %d (%s)\n", failed,
                         failed < 0 ? mproc_strerror(failed) : "items failed");
            return 1;
        }
        for (long x : in)
            if (out[x].square != x * x || out[x].root != std::sqrt(x)) {
                std::fprintf(stderr, "item %ld: %ld %g\n", x, out[x].square,
                             out[x].root);
                return 1;
            }
        std::printf("%s: %zu squares and roots\n",
                    kind == MPROC_THREADS ? "threads" : "processes",
                    out.size());
    }
    return 0;
}
