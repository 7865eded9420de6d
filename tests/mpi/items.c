/* An item function in a shared library of its own, so that the MPI tests
   send a function that lies outside the main program. */
int mpi_items_cube(const void *in, void *out, void *arg);

int mpi_items_cube(const void *in, void *out, void *arg)
{
    (void)arg;
    long x = *(const long *)in;
    *(long *)out = x * x * x;
    return 0;
}
