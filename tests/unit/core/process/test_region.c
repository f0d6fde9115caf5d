/* The shared region's layout: the parts every subsystem declares fit in the region they size,
 * each subsystem finds its part afterwards, and a part that cannot be made fails the set-up. */
#include "core/process/region.h"

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "check.h"
#include "core/ipc/mbox.h"
#include "core/net/conninfo.h"
#include "core/server/server.h"
#include "core/shm/shm.h"

static srv__config_t *config(int workers, int task_workers, int max_conn)
{
    srv__config_t *cfg = calloc(1, sizeof(*cfg));
    CHECK(cfg != NULL);
    srv__config_defaults(cfg);
    cfg->mode = SRV_MODE_BASE;
    cfg->worker_num = workers;
    cfg->task_worker_num = task_workers;
    cfg->max_conn = max_conn;
    cfg->ntable = 1;
    snprintf(cfg->table[0].name, sizeof(cfg->table[0].name), "kv");
    cfg->table[0].size = 4096;
    cfg->table[0].ncolumns = 1;
    snprintf(cfg->table[0].columns[0].name, SRV_CONFIG_NAME_MAX, "s");
    cfg->table[0].columns[0].type = SRV_COL_STRING;
    cfg->table[0].columns[0].size = 512;
    srv__server.cfg = *cfg;
    srv__server_layout(&srv__server);
    return cfg;
}

static void test_parts(void)
{
    srv__config_t *cfg = config(3, 2, 1000);
    CHECK_INT(srv__region_setup(cfg), ==, 0);
    CHECK(srv__server.stats != NULL);
    /* Every slot a reload may use: workers, task workers, the timer, custom processes. */
    const srv__server_t *S = &srv__server;
    CHECK_INT(S->nslots, ==, S->wcap + S->tcap + 1 + S->pcap);
    CHECK(S->wcap >= 3 && S->tcap >= 2);
    CHECK_INT(srv__server.stats->nworkers, ==, S->nslots);
    CHECK_INT(srv__server_active_slots(), ==, 5);
    CHECK_INT(atomic_load(&srv__server.stats->master_pid), ==, getpid());
    CHECK(srv__conninfo_engine(S->wcap - 1) != NULL); /* base mode: one engine per worker slot */
    CHECK(srv__conninfo_engine(S->wcap) == NULL);
    CHECK_INT(srv__mbox_count(), ==, 2 * S->nslots + 1);
    srv_table_t *t;
    CHECK_INT(srv_table_find("kv", &t), ==, 0);
    srv_atomic_t *a;
    CHECK_INT(srv_atomic_find("n", &a), ==, 0);
    CHECK_INT(srv__shm_used(), <=, srv__shm_size());
    /* A second region while one exists is refused. */
    CHECK_INT(srv__region_setup(cfg), ==, -EEXIST);
    srv__shm_destroy();
    CHECK_INT(srv_table_find("kv", &t), ==, -ENOENT);
    CHECK_INT(srv_atomic_find("n", &a), ==, -ENODEV);
    free(cfg);
}

/* A table the loader should have refused: the set-up fails with the tables' error. */
static void test_bad_part(void)
{
    srv__config_t *cfg = config(1, 0, 10);
    cfg->table[0].columns[0].size = 0;
    CHECK_INT(srv__region_setup(cfg), ==, -EINVAL);
    srv__shm_destroy();
    free(cfg);
}

int main(void)
{
    test_parts();
    test_bad_part();
    printf("ok\n");
    return 0;
}
