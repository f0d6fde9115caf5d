/* Unit tests for tasks/task.c in one process: the shared state's declared size, srv info on
 * fresh state, delivery into the queue, running a task (result, failure, retries), a dead task
 * worker's task retried or failed by srv__task_orphaned, and a delayed delivery. Task workers
 * are simulated: the test takes tasks from the queue itself. */
#include "tasks/task.h"

#include <errno.h>
#include <poll.h>

#include "check.h"
#include "core/server/msg.h"
#include "core/server/server.h"
#include "core/shm/shm.h"
#include "core/base/util.h"
#include "timer/timer.h"

enum { WORKERS = 2, TASK_WORKERS = 2, NSLOTS = WORKERS + TASK_WORKERS };

static char g_payload[SRV_TASK_MAX];

/* The app's on_task: "fail" fails, anything else answers "r:" + its data. */
static int on_task(srv_task_t *t)
{
    if (t->len == 4 && memcmp(t->data, "fail", 4) == 0)
        return -1;
    char out[64];
    int n = snprintf(out, sizeof(out), "r:%.*s", (int)t->len, (const char *)t->data);
    CHECK_INT(srv_task_result(t, out, (size_t)n), ==, 0);
    return 0;
}

static const srv_app_t g_app = {.abi_version = SRV_ABI_VERSION, .on_task = on_task};

/* As a task worker would: take the next task from the queue into run and run it. */
static int take_and_run(srv__task_run_t *run)
{
    srv__msg_t m;
    int rc = srv__mbox_get(srv__server.taskq, &m, run->data, SRV_TASK_MAX);
    if (rc <= 0)
        return rc;
    CHECK_INT(m.type, ==, SRV_MSG_TASK);
    srv__task_run(run, &m, &g_app);
    return 1;
}

static void check_info(unsigned queued, int done, int failed, int retried)
{
    char want[128], got[128];
    snprintf(want, sizeof(want), "{\"queued\":%u,\"done\":%d,\"failed\":%d,\"retried\":%d}", queued,
             done, failed, retried);
    CHECK_INT(srv__tasks_info_json(got, sizeof(got)), >, 0);
    /* "delivered" counts srv_task_deliver calls that took a task: checked apart. */
    char *d = strstr(got, "\"delivered\":"), *comma = d ? strchr(d, ',') : NULL;
    CHECK(comma != NULL);
    if (comma)
        memmove(d, comma + 1, strlen(comma + 1) + 1);
    CHECK_STR(got, want);
}

static void test_region_size(void)
{
    size_t one = srv__tasks_region_size(1), two = srv__tasks_region_size(2);
    CHECK(srv__tasks_region_size(0) > 0);
    CHECK_INT(two - one, ==, 2 * sizeof(srv__task_run_t)); /* two records per slot */
    CHECK_INT(srv__tasks_region_size(-1), ==, srv__tasks_region_size(0));
    check_info(0, 0, 0, 0); /* no state yet */
    CHECK_INT(srv_task_deliver("x", 1, NULL), ==, -ENOTSUP);
}

/* The layout the master makes: state carved within its declared size, and mailboxes. */
static void setup(void)
{
    srv__server.cfg.worker_num = WORKERS;
    srv__server.cfg.task_worker_num = TASK_WORKERS;
    srv__server.cfg.task_max_queue = 16;
    srv__server.nslots = NSLOTS;
    srv__server.tbase = WORKERS;
    srv__server.wcap = WORKERS;
    srv__server.tcap = TASK_WORKERS;
    srv__server.taskq = 2 * NSLOTS;
    CHECK_INT(srv__shm_create(8u << 20), ==, 0);
    size_t before = srv__shm_used();
    CHECK_INT(srv__tasks_create(TASK_WORKERS), ==, 0);
    CHECK(srv__shm_used() - before <= srv__tasks_region_size(TASK_WORKERS));
    size_t caps[2 * NSLOTS + 1];
    for (int i = 0; i < 2 * NSLOTS + 1; i++)
        caps[i] = 256u << 10;
    caps[srv__server.taskq] = 2 * SRV_TASK_MAX + 4096;
    CHECK_INT(srv__mbox_create(2 * NSLOTS + 1, caps, NULL), ==, 0);
    check_info(0, 0, 0, 0);
}

static void test_records(void)
{
    CHECK(srv__task_record(0, 1) == NULL); /* a worker's slot */
    CHECK(srv__task_record(NSLOTS, 1) == NULL);
    srv__task_run_t *a = srv__task_record(WORKERS, 1), *b = srv__task_record(WORKERS, 2);
    CHECK(a != NULL && b != NULL && a != b); /* one per generation parity */
    CHECK(srv__task_record(WORKERS, 3) == a);
    CHECK(srv__task_record(WORKERS + 1, 1) != a);
    CHECK_INT(atomic_load(&a->id), ==, 0);
}

static void test_deliver_and_run(void)
{
    CHECK_INT(srv_task_deliver("x", 1, NULL), ==, -ENOTSUP); /* no mailbox of our own yet */
    srv__msg_init(0);
    CHECK_INT(srv_task_deliver(g_payload, SRV_TASK_MAX + 1, NULL), ==, -EMSGSIZE);
    int64_t id = srv_task_deliver("hello", 5, NULL);
    CHECK(id > 0);
    check_info(1, 0, 0, 0);
    srv_task_t outside = {.id = (uint64_t)id};
    CHECK_INT(srv_task_result(&outside, "x", 1), ==, -EINVAL); /* only inside on_task */
    srv__task_run_t *run = srv__task_record(WORKERS, 1);
    CHECK_INT(take_and_run(run), ==, 1);
    CHECK_INT(atomic_load(&run->id), ==, 0);
    check_info(0, 1, 0, 0);
    char buf[64];
    int n = srv_task_wait((uint64_t)id, buf, sizeof(buf), 1000);
    CHECK_MEM(buf, n, "r:hello", 7);
}

static void test_retry_then_fail(void)
{
    srv_task_opts_t o = {.tries = 2};
    int64_t id = srv_task_deliver("fail", 4, &o);
    CHECK(id > 0);
    srv__task_run_t *run = srv__task_record(WORKERS + 1, 1);
    CHECK_INT(take_and_run(run), ==, 1); /* attempt 1 fails: queued again */
    check_info(1, 1, 0, 1);
    CHECK_INT(take_and_run(run), ==, 1); /* attempt 2 fails: the last */
    check_info(0, 1, 1, 1);
    CHECK_INT(srv_task_wait((uint64_t)id, NULL, 0, 1000), ==, -EIO);
}

/* The manager's side: the task worker died with the task in its running record. */
static void test_orphaned(void)
{
    srv__task_orphaned(0, 1);       /* not a task worker: nothing */
    srv__task_orphaned(WORKERS, 1); /* idle: nothing */
    check_info(0, 1, 1, 1);
    srv__task_run_t *run = srv__task_record(WORKERS, 2);
    memcpy(run->data, "job", 3);
    run->len = 3;
    run->from = srv__msg_self();
    run->tries = 2;
    run->attempt = 1;
    atomic_store(&run->id, 77);
    srv__task_orphaned(WORKERS, 2);
    CHECK_INT(atomic_load(&run->id), ==, 0);
    check_info(1, 1, 1, 2);
    srv__msg_t m;
    char data[16];
    CHECK_INT(srv__mbox_get(srv__server.taskq, &m, data, sizeof(data)), ==, 1);
    CHECK_INT(m.id, ==, 77);
    CHECK_INT(m.flags, ==, 2u << 16 | 2u); /* tries 2, attempt 2 */
    CHECK_MEM(data, m.len, "job", 3);
    run->attempt = 2;
    atomic_store(&run->id, 77);
    srv__task_orphaned(WORKERS, 2); /* the last attempt: failed */
    check_info(0, 1, 2, 2);
    CHECK_INT(srv_task_wait(77, NULL, 0, 1000), ==, -EIO);
}

static void test_delayed(void)
{
    srv_task_opts_t o = {.delay_ms = 5};
    int64_t id = srv_task_deliver("later", 5, &o);
    CHECK(id > 0);
    check_info(0, 1, 2, 2); /* waiting on our timer, not in the queue */
    int64_t deadline = srv__mono_ms() + 5000;
    while (srv__mbox_pending(srv__server.taskq) == 0 && srv__mono_ms() < deadline) {
        poll(NULL, 0, srv__timer_timeout()); /* wakes when the delay is due */
        srv__timer_run();
    }
    check_info(1, 1, 2, 2);
    CHECK_INT(take_and_run(srv__task_record(WORKERS, 1)), ==, 1);
    char buf[64];
    int n = srv_task_wait((uint64_t)id, buf, sizeof(buf), 1000);
    CHECK_MEM(buf, n, "r:later", 7);
}

int main(void)
{
    test_region_size();
    setup();
    test_records();
    test_deliver_and_run();
    test_retry_then_fail();
    test_orphaned();
    test_delayed();
    srv__shm_destroy();
    printf("test_task: ok\n");
    return 0;
}
