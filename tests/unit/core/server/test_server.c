/* The server's slot layout (core/server/server.c): slot counts and kinds for workers, task
 * workers, the timer process and custom process instances with room to grow at reload; which
 * slots a configuration makes active; each slot's mailbox by generation. */
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

/* The layout every test expects: workers, task workers, the timer, then custom processes,
 * each kind with room to grow; taskq after two mailboxes per slot. */
static void check_layout(int workers, int tasks, int instances)
{
    const srv__server_t *S = &srv__server;
    CHECK(S->wcap >= workers && S->wcap >= 4);
    CHECK(S->tcap >= tasks && S->tcap >= 4);
    CHECK_INT(S->pcap, ==, instances + 4);
    CHECK_INT(S->tbase, ==, S->wcap);
    CHECK_INT(S->timer_slot, ==, S->tbase + S->tcap);
    CHECK_INT(S->proc_base, ==, S->timer_slot + 1);
    CHECK_INT(S->nslots, ==, S->proc_base + S->pcap);
    CHECK_INT(S->taskq, ==, 2 * S->nslots);
    kinds(0, S->wcap, SRV_SLOT_WORKER, "worker");
    kinds(S->tbase, S->tbase + S->tcap, SRV_SLOT_TASK, "task");
    kinds(S->timer_slot, S->timer_slot + 1, SRV_SLOT_TIMER, "timer");
    kinds(S->proc_base, S->nslots, SRV_SLOT_PROCESS, "process");
}

static void test_workers_only(void)
{
    layout(4, 0, 0, 0, NULL);
    check_layout(4, 0, 0);
    for (int s = 0; s < srv__server.nslots; s++)
        CHECK_INT(srv__slot_active(s), ==, s < 4); /* the room, the timer: idle */
    CHECK_INT(srv__server_active_slots(), ==, 4);
    CHECK_INT(srv__slot_local_id(3), ==, 3);
    CHECK_INT(srv__slot_process(srv__server.proc_base, NULL), ==, -1); /* no custom process */
}

static void test_task_workers(void)
{
    layout(2, 3, 0, 0, NULL);
    check_layout(2, 3, 0);
    int t = srv__server.tbase;
    CHECK(srv__slot_active(t) && srv__slot_active(t + 2) && !srv__slot_active(t + 3));
    CHECK_INT(srv__slot_local_id(t + 2), ==, 2);
    CHECK_INT(srv__server_active_slots(), ==, 5);
}

static void test_cron_timer_slot(void)
{
    layout(2, 1, 3, 0, NULL);
    check_layout(2, 1, 0);
    CHECK(srv__slot_active(srv__server.timer_slot)); /* one timer process however many jobs */
    CHECK_INT(srv__server_active_slots(), ==, 4);
    layout(3, 0, 0, 0, NULL); /* no cron jobs: the timer slot is kept, idle */
    CHECK(!srv__slot_active(srv__server.timer_slot));
}

/* What fits the room made at start, and the first key that does not. */
static void test_fits(void)
{
    layout(2, 1, 0, 0, NULL);
    srv__config_t next = srv__server.cfg;
    CHECK(srv__server_fits(&srv__server, &next) == NULL);
    next.worker_num = srv__server.wcap;
    next.task_worker_num = srv__server.tcap;
    CHECK(srv__server_fits(&srv__server, &next) == NULL);
    next.worker_num = srv__server.wcap + 1;
    CHECK_STR(srv__server_fits(&srv__server, &next), "worker_num");
    next.worker_num = 1;
    next.task_worker_num = srv__server.tcap + 1;
    CHECK_STR(srv__server_fits(&srv__server, &next), "task_worker_num");
    next.task_worker_num = 0;
    next.nprocess = 1;
    next.process[0].num = srv__server.pcap + 1;
    CHECK_STR(srv__server_fits(&srv__server, &next), "process");
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
    CHECK_INT(s, ==, srv__server.nslots - 4); /* then the room to grow */
    CHECK_INT(srv__slot_process(s, NULL), ==, -1); /* past the last instance */
    CHECK(!srv__slot_active(s));
}

static void test_custom_processes(void)
{
    const int procs[] = {2, 1, 3};
    layout(1, 2, 1, 3, procs); /* everything at once */
    check_layout(1, 2, 6);
    check_processes(3, procs);
    CHECK_INT(srv__server_active_slots(), ==, 1 + 2 + 1 + 6);
    CHECK_INT(srv__slot_local_id(srv__server.proc_base + 5), ==, 5);
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
    char *seen = calloc((size_t)(2 * n), 1);
    CHECK(seen != NULL);
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
    free(seen);
}

int main(void)
{
    test_workers_only();
    test_task_workers();
    test_cron_timer_slot();
    test_custom_processes();
    test_fits();
    test_slot_box();
    return 0;
}
