/* A function in an object the program dlopens (test_spawn.c): a fresh run
   of the program does not load it. */
int plugin_triple(const void *in, void *out, void *arg);

int plugin_triple(const void *in, void *out, void *arg)
{
    (void)arg;
    *(int *)out = 3 * *(const int *)in;
    return 0;
}
