/* The timer process (one per server when the config has cron jobs): runs the [[cron]] jobs,
 * each on its own thread, and publishes their stats in the shared region for srv info. */
#ifndef SRV_TIMER_TIMER_PROCESS_H
#define SRV_TIMER_TIMER_PROCESS_H

#include <stddef.h>

#include "timer/cron_sched.h"

/* Bytes of the shared region the cron stats take. */
size_t srv__cron_info_region_size(void);
/* Master, before fork: carve the cron stats from the shared region. Returns 0 or -ENOMEM. */
int srv__cron_info_create(void);
/* For srv info: {"jobs":[...],"locks":{...}} as last published (any process). */
int srv__cron_info_json(char *buf, size_t cap);
/* Timer process: publish the jobs' current stats. */
void srv__cron_publish(srv__cron_sched_t *s);

/* Entry of the forked timer process (a srv__child_main_fn; chans is empty); never returns. */
__attribute__((noreturn)) void srv__timer_main(int slot, int ctl_fd, const int *chans, int nchans);

#endif
