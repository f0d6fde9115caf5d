/* Custom processes ([[process]] in the config): the app's long-running entry functions. */
#ifndef SRV_WORKER_PROC_H
#define SRV_WORKER_PROC_H

/* Entry of a forked custom process (a srv__child_main_fn; chans is empty): runs the app's
 * entry function for its [[process]] instance and exits when it returns; never returns. */
__attribute__((noreturn)) void srv__process_main(int slot, int ctl_fd, const int *chans,
                                                 int nchans);

#endif
