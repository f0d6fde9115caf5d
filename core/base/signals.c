/* Signals through a signalfd: block, open, drain; see signals.h. */
#include "core/base/signals.h"

#include <errno.h>
#include <sys/signalfd.h>
#include <unistd.h>

int srv__signals_open(const int *sigs, int n)
{
    sigset_t set;
    sigemptyset(&set);
    for (int i = 0; i < n; i++)
        if (sigaddset(&set, sigs[i]) != 0)
            return -errno;
    /* A signal not blocked would still take its default action instead of reaching the fd. */
    if (sigprocmask(SIG_BLOCK, &set, NULL) != 0)
        return -errno;
    int fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    return fd >= 0 ? fd : -errno;
}

int srv__signals_drain(int fd, srv__signal_fn fn, void *arg)
{
    int count = 0;
    for (;;) {
        struct signalfd_siginfo si;
        ssize_t n = read(fd, &si, sizeof(si));
        if (n == (ssize_t)sizeof(si)) {
            count++;
            fn((int)si.ssi_signo, arg);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno != EAGAIN)
            return -errno;
        return count; /* none left (a signalfd never returns a partial record) */
    }
}
