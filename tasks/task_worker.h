/* The task workers' loop: take tasks from the shared queue, run them through the app's on_task
 * one at a time, and keep the process's mailbox and timers going meanwhile. */
#ifndef SRV_TASKS_TASK_WORKER_H
#define SRV_TASKS_TASK_WORKER_H

/* Entry of a forked task worker (a srv__child_main_fn; it owns no reactor channel, so chans is
 * empty); never returns. */
__attribute__((noreturn)) void srv__task_worker_main(int slot, int ctl_fd, const int *chans,
                                                     int nchans);

#endif
