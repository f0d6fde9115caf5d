/* This process's app timers (srv_timer_after/tick/clear): one srv__timers_t for the thread that
 * runs the process's event loop, each timer's app callback found by id when it fires. The loop
 * asks srv__timer_timeout() how long it may sleep and calls srv__timer_run() after each turn. */
#ifndef SRV_TIMER_TIMER_H
#define SRV_TIMER_TIMER_H

#include <stdatomic.h>
#include <stdint.h>

/* Milliseconds until the next app timer is due (0: now), -1 when there is none. */
int srv__timer_timeout(void);
/* Run every app timer that is due. */
void srv__timer_run(void);
/* Publish the number of timers pending to *gauge (shared stats) from now on. */
void srv__timer_set_gauge(_Atomic int64_t *gauge);

#endif
