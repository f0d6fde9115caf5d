/* A deliberate leak: under SRV_ASAN the test that runs this passes only when LeakSanitizer
 * reports it, which proves the unit tests' leak checking is live on this machine (LSan can be
 * silently unavailable, e.g. under some ptrace restrictions). */
#include <stdio.h>
#include <stdlib.h>

static void *volatile g_sink;

int main(void)
{
    g_sink = malloc(4242);
    g_sink = NULL; /* the only pointer is gone: a leak at exit */
    puts("leaked 4242 bytes");
    return 0;
}
