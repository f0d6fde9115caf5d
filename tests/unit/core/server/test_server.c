/* The server's slot layout (core/server/server.c): slot counts and kinds for workers, task
 * workers, the timer process and custom process instances; each slot's mailbox by generation. */
#include "core/server/server.h"

#include <stdlib.h>
#include <string.h>

#include "check.h"

/* Lay srv__server out for the given counts; procs[i] instances of [[process]] i. */
static void layout(int workers, int tasks, int ncron, int nprocess, const int *procs)
{
    memset(&srv__server, 0, sizeof(srv__server));
    srv__config_t *cfg = &srv__server.cfg;
    cfg->worker_num = workers;
    cfg->task_worker_num = tasks;
    cfg->ncron = ncron;
    cfg->nprocess = nprocess;
    for (int i = 0; i < nprocess; i++)
        cfg->process[i].num = procs[i];
    srv__server_layout(&srv__server);
}

/* Slots [from, to) are all of kind k, named name. */
static void kinds(int from, int to, srv__slot_kind_t k, const char *name)
{
    for (int s = from; s < to; s++) {
        CHECK_INT(srv__slot_kind(s), ==, k);
        CHECK_STR(srv__slot_kind_name(s), name);
    }
}

static void test_workers_only(void)
{
    layout(4, 0, 0, 0, NULL);
    CHECK_INT(srv__server.nslots, ==, 4);
    CHECK_INT(srv__server.timer_slot, ==, -1);
    CHECK_INT(srv__server.proc_base, ==, 4);
    CHECK_INT(srv__server.taskq, ==, 8);
    kinds(0, 4, SRV_SLOT_WORKER, "worker");
    CHECK_INT(srv__slot_process(4, NULL), ==, -1); /* no custom process slot */
}

static void test_task_workers(void)
{
    layout(2, 3, 0, 0, NULL);
    CHECK_INT(srv__server.nslots, ==, 5);
    CHECK_INT(srv__server.timer_slot, ==, -1);
    CHECK_INT(srv__server.proc_base, ==, 5);
    CHECK_INT(srv__server.taskq, ==, 10);
    kinds(0, 2, SRV_SLOT_WORKER, "worker");
    kinds(2, 5, SRV_SLOT_TASK, "task");
}

static void test_cron_timer_slot(void)
{
    layout(2, 1, 3, 0, NULL);
    CHECK_INT(srv__server.timer_slot, ==, 3); /* one timer process however many jobs */
    CHECK_INT(srv__server.proc_base, ==, 4);
    CHECK_INT(srv__server.nslots, ==, 4);
    CHECK_INT(srv__server.taskq, ==, 8);
    kinds(0, 2, SRV_SLOT_WORKER, "worker");
    kinds(2, 3, SRV_SLOT_TASK, "task");
    kinds(3, 4, SRV_SLOT_TIMER, "timer");

    layout(3, 0, 1, 0, NULL); /* without task workers the timer follows the workers */
    CHECK_INT(srv__server.timer_slot, ==, 3);
    CHECK_INT(srv__server.nslots, ==, 4);
    kinds(3, 4, SRV_SLOT_TIMER, "timer");
}

/* Every custom-process slot from proc_base on names its [[process]] and instance in order. */
static void check_processes(int nprocess, const int *procs)
{
    int s = srv__server.proc_base;
    for (int i = 0; i < nprocess; i++) {
        for (int k = 0; k < procs[i]; k++, s++) {
            int inst = -1;
            CHECK_INT(srv__slot_process(s, &inst), ==, i);
            CHECK_INT(inst, ==, k);
            CHECK_INT(srv__slot_process(s, NULL), ==, i);
            kinds(s, s + 1, SRV_SLOT_PROCESS, "process");
        }
    }
    CHECK_INT(s, ==, srv__server.nslots);
    CHECK_INT(srv__slot_process(s, NULL), ==, -1); /* past the last instance */
}

static void test_custom_processes(void)
{
    const int procs[] = {2, 1, 3};
    layout(1, 2, 1, 3, procs); /* everything at once */
    CHECK_INT(srv__server.timer_slot, ==, 3);
    CHECK_INT(srv__server.proc_base, ==, 4);
    CHECK_INT(srv__server.nslots, ==, 10);
    CHECK_INT(srv__server.taskq, ==, 20);
    kinds(0, 1, SRV_SLOT_WORKER, "worker");
    kinds(1, 3, SRV_SLOT_TASK, "task");
    kinds(3, 4, SRV_SLOT_TIMER, "timer");
    check_processes(3, procs);

    layout(2, 0, 0, 3, procs); /* no cron jobs: no timer slot before them */
    CHECK_INT(srv__server.timer_slot, ==, -1);
    CHECK_INT(srv__server.proc_base, ==, 2);
    CHECK_INT(srv__server.nslots, ==, 8);
    kinds(0, 2, SRV_SLOT_WORKER, "worker");
    check_processes(3, procs);
}

/* Two mailboxes per slot, picked by the parity of the slot's generation: the boxes of all slots
 * are distinct and below the task queue's. */
static void test_slot_box(void)
{
    const int procs[] = {2};
    layout(2, 1, 1, 1, procs);
    int n = srv__server.nslots;
    CHECK(srv__server.stats == NULL);
    for (int s = 0; s < n; s++)
        CHECK_INT(srv__slot_box(s), ==, 2 * s); /* no stats yet: generation 0 */

    srv__stats_t *st = calloc(1, sizeof(*st) + (size_t)n * sizeof(st->workers[0]));
    CHECK(st != NULL);
    st->nworkers = n;
    srv__server.stats = st;
    char seen[64] = {0};
    CHECK(2 * n <= (int)sizeof(seen));
    for (uint32_t gen = 0; gen < 5; gen++) {
        for (int s = 0; s < n; s++) {
            atomic_store(&st->workers[s].generation, gen + (uint32_t)s);
            int box = srv__slot_box(s);
            CHECK_INT(box, ==, 2 * s + (int)((gen + (uint32_t)s) & 1));
            CHECK_INT(box, <, srv__server.taskq);
            seen[box] = 1;
        }
    }
    for (int b = 0; b < 2 * n; b++)
        CHECK_INT(seen[b], ==, 1); /* each slot used both of its boxes, and only its own */
    atomic_store(&st->workers[1].generation, UINT32_MAX); /* odd, wrapping to even next */
    CHECK_INT(srv__slot_box(1), ==, 3);
    atomic_store(&st->workers[1].generation, 0);
    CHECK_INT(srv__slot_box(1), ==, 2);
    srv__server.stats = NULL;
    free(st);
}

int main(void)
{
    test_workers_only();
    test_task_workers();
    test_cron_timer_slot();
    test_custom_processes();
    test_slot_box();
    return 0;
}
