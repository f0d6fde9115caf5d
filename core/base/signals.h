/* Signals read as events: a process blocks the signals it handles and reads them through a
 * signalfd from its poll loop, so no work runs in a signal handler (the master and the manager
 * both do this). */
#ifndef SRV_SIGNALS_H
#define SRV_SIGNALS_H

#include <signal.h>

/* Block the n signals in sigs in the calling thread (threads and children started after
 * inherit the mask) and open a non-blocking, close-on-exec signalfd that reads them. Call
 * before starting any thread, so no thread takes one of them the default way. Returns the fd,
 * or -errno (the signals stay blocked). */
int srv__signals_open(const int *sigs, int n);

/* Called once per signal read, with the arg given to srv__signals_drain(). */
typedef void (*srv__signal_fn)(int sig, void *arg);

/* Read every signal pending on fd (from srv__signals_open) and call fn for each, in order.
 * Returns how many were read, or -errno when reading failed for another reason than none
 * being left. */
int srv__signals_drain(int fd, srv__signal_fn fn, void *arg);

#endif
