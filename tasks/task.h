/* Tasks: delivery from any process with a mailbox (srv_task_deliver, delayed ones on the
 * deliverer's timers), waiting for results, the task state in the shared region (what each task
 * worker is running, counters), and settling an attempt: finish it or queue the next try. The
 * task workers' loop is task_worker.h. */
#ifndef SRV_TASKS_TASK_H
#define SRV_TASKS_TASK_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "core/ipc/mbox.h"
#include "srv/srv.h"

#define SRV_TASK_MAX (256u << 10) /* largest task payload (it is kept for retries) */

/* The task a task worker process is running, in the shared region so the manager can retry or
 * fail it when that process dies. Old and new processes of a slot overlap during a reload, so
 * each task worker slot has two, one per process generation parity. */
typedef struct srv__task_run {
    _Atomic uint64_t id; /* 0: idle */
    int32_t from;        /* the deliverer's mailbox */
    int32_t tries;
    int32_t attempt;
    uint32_t len;
    char data[SRV_TASK_MAX];
} srv__task_run_t;

/* Bytes of the shared region the task state takes for task_workers task worker slots. */
size_t srv__tasks_region_size(int task_workers);
/* Master, before fork: carve the task state from the shared region. Returns 0 or -ENOMEM. */
int srv__tasks_create(int task_workers);
/* The queue's depth and what became of tasks so far (for /metrics). */
typedef struct srv__tasks_counts {
    uint64_t queued, delivered, done, failed, retried;
} srv__tasks_counts_t;
void srv__tasks_counts(srv__tasks_counts_t *out);
/* For srv info: {"queued":..,"delivered":..,"done":..,"failed":..,"retried":..} */
int srv__tasks_info_json(char *buf, size_t cap);

/* The running record of the task worker in slot, process generation gen; NULL when slot is no
 * task worker's or there is no task state. */
srv__task_run_t *srv__task_record(int slot, uint32_t gen);
/* Task worker: run the task m (its payload already in run->data) through the app's on_task
 * and settle it. While it runs, run->id is set: a crash meanwhile is the manager's to settle. */
void srv__task_run(srv__task_run_t *run, const srv__msg_t *m, const srv_app_t *app);
/* Manager: the task worker in slot (process generation gen) died; retry or fail the task it
 * was running. */
void srv__task_orphaned(int slot, uint32_t gen);

#endif
