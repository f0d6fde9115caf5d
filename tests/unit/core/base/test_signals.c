/* Signals through a signalfd: blocked signals reach the handler once each, in order; an empty
 * fd drains to 0; a bad fd is an error, not a hang. */
#include "core/base/signals.h"

#include <errno.h>
#include <unistd.h>

#include "check.h"

typedef struct seen {
    int sigs[8];
    int n;
} seen_t;

static void record(int sig, void *arg)
{
    seen_t *s = arg;
    if (s->n < 8)
        s->sigs[s->n++] = sig;
}

int main(void)
{
    int sigs[] = {SIGUSR1, SIGUSR2, SIGRTMIN};
    int fd = srv__signals_open(sigs, 3);
    CHECK(fd >= 0);
    seen_t seen = {0};
    CHECK_INT(srv__signals_drain(fd, record, &seen), ==, 0);

    /* Blocked: raising them does not kill us, they wait on the fd. Standard signals are read
     * lowest number first; a real-time one after them. */
    CHECK_INT(raise(SIGUSR2), ==, 0);
    CHECK_INT(raise(SIGUSR1), ==, 0);
    CHECK_INT(raise(SIGRTMIN), ==, 0);
    CHECK_INT(srv__signals_drain(fd, record, &seen), ==, 3);
    CHECK_INT(seen.n, ==, 3);
    CHECK_INT(seen.sigs[0], ==, SIGUSR1);
    CHECK_INT(seen.sigs[1], ==, SIGUSR2);
    CHECK_INT(seen.sigs[2], ==, SIGRTMIN);
    CHECK_INT(srv__signals_drain(fd, record, &seen), ==, 0);

    /* Signals not in the set are not read. */
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGWINCH);
    CHECK_INT(sigprocmask(SIG_BLOCK, &mask, NULL), ==, 0);
    CHECK_INT(raise(SIGWINCH), ==, 0);
    CHECK_INT(srv__signals_drain(fd, record, &seen), ==, 0);

    CHECK_INT(srv__signals_open((int[]){0x7fff}, 1), ==, -EINVAL);
    close(fd);
    CHECK_INT(srv__signals_drain(fd, record, &seen), ==, -EBADF);
    printf("ok\n");
    return 0;
}
