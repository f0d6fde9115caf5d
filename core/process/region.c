/* The shared region's layout, as nginx modules declare their zones: one entry per subsystem,
 * each with the bytes it takes and the call that takes them. See region.h. */
#include "core/process/region.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/base/log.h"
#include "core/ipc/mbox.h"
#include "core/net/conn.h"
#include "core/net/conninfo.h"
#include "core/net/maint.h"
#include "core/net/tls_listen.h"
#include "core/net/tls_keys.h"
#include "core/server/server.h"
#include "core/shm/atomic.h"
#include "core/shm/shm.h"
#include "core/shm/table.h"
#include "tasks/task.h"
#include "timer/timer_process.h"

/* Room beyond the declared parts: the alignment padding of every chunk. */
#define REGION_SLACK (2u << 20)
/* Mailboxes: 1 MiB per process slot (two per slot, one per generation), the task queue 8 MiB. */
#define MBOX_SLOT_CAP (1u << 20)
#define MBOX_TASKQ_CAP (8u << 20)

typedef struct zone {
    const char *name;
    size_t (*size)(const srv__config_t *cfg);
    int (*create)(const srv__config_t *cfg);
} zone_t;

/* ---- stats: the master's and every slot's counters, read by srv info ---- */

/* Engines: the reactors, or in base mode every worker slot (a reload may add workers). */
static int stats_engines(const srv__config_t *cfg)
{
    return cfg->mode == SRV_MODE_PROCESS ? cfg->reactor_num : srv__server.wcap;
}

static size_t stats_head(void)
{
    size_t n = sizeof(srv__stats_t) + (size_t)srv__server.nslots * sizeof(srv__worker_stat_t);
    return (n + 63) & ~(size_t)63;
}

static size_t stats_size(const srv__config_t *cfg)
{
    return stats_head() +
           (size_t)stats_engines(cfg) * (size_t)cfg->nlisten * sizeof(srv__netstat_t);
}

static int stats_create(const srv__config_t *cfg)
{
    size_t bytes = stats_size(cfg);
    srv__stats_t *st = srv__shm_alloc(bytes, 64);
    if (st == NULL)
        return -ENOMEM;
    memset(st, 0, bytes);
    st->nworkers = srv__server.nslots;
    st->nengines = stats_engines(cfg);
    st->nlisten = cfg->nlisten;
    st->net = (srv__netstat_t *)((char *)st + stats_head());
    st->start_ms = srv__now_ms();
    atomic_store(&st->master_pid, getpid());
    srv__server.stats = st;
    return 0;
}

/* ---- conninfo: one entry per connection slot of every engine ---- */

static int conn_engines(const srv__config_t *cfg)
{
    return stats_engines(cfg);
}

static uint32_t conn_slots(const srv__config_t *cfg)
{
    uint32_t slots = (uint32_t)cfg->max_conn;
    return slots > (1u << SRV_SESSION_SLOT_BITS) ? 1u << SRV_SESSION_SLOT_BITS : slots;
}

static size_t conninfo_size(const srv__config_t *cfg)
{
    return srv__conninfo_region_size(conn_engines(cfg), conn_slots(cfg), srv__tls_listen_any(cfg));
}

static int conninfo_create(const srv__config_t *cfg)
{
    return srv__conninfo_create(conn_engines(cfg), conn_slots(cfg), srv__tls_listen_any(cfg));
}

/* ---- mailboxes: two per slot (one per generation), then the task queue ---- */

static int mbox_count(void)
{
    return 2 * srv__server.nslots + 1;
}

/* Every mailbox's capacity and message bound; NULL when out of memory. */
static size_t *mbox_caps(const srv__config_t *cfg, uint32_t **maxm)
{
    int nbox = mbox_count();
    size_t *caps = calloc((size_t)nbox, sizeof(size_t));
    *maxm = calloc((size_t)nbox, sizeof(uint32_t));
    if (caps == NULL || *maxm == NULL) {
        free(caps);
        free(*maxm);
        return NULL;
    }
    for (int i = 0; i < nbox; i++)
        caps[i] = MBOX_SLOT_CAP;
    caps[srv__server.taskq] = MBOX_TASKQ_CAP;
    (*maxm)[srv__server.taskq] = (uint32_t)cfg->task_max_queue;
    return caps;
}

static size_t mbox_size(const srv__config_t *cfg)
{
    uint32_t *maxm;
    size_t *caps = mbox_caps(cfg, &maxm);
    if (caps == NULL)
        return 0; /* the create step fails the same way */
    size_t bytes = srv__mbox_region_size(mbox_count(), caps);
    free(caps);
    free(maxm);
    return bytes;
}

static int mbox_create(const srv__config_t *cfg)
{
    uint32_t *maxm;
    size_t *caps = mbox_caps(cfg, &maxm);
    if (caps == NULL)
        return -ENOMEM;
    int rc = srv__mbox_create(mbox_count(), caps, maxm);
    free(caps);
    free(maxm);
    return rc;
}

/* ---- tasks/ and timer/ declare their own sizes; so do tables and atomics ---- */

static size_t tasks_size(const srv__config_t *cfg)
{
    (void)cfg;
    return srv__tasks_region_size(srv__server.tcap);
}

static int tasks_create(const srv__config_t *cfg)
{
    (void)cfg;
    return srv__tasks_create(srv__server.tcap);
}

static size_t cron_size(const srv__config_t *cfg)
{
    (void)cfg;
    return srv__cron_info_region_size();
}

static int cron_create(const srv__config_t *cfg)
{
    (void)cfg;
    return srv__cron_info_create();
}

static size_t atomics_size(const srv__config_t *cfg)
{
    (void)cfg;
    return srv__atomics_region_size();
}

static int atomics_create(const srv__config_t *cfg)
{
    (void)cfg;
    return srv__atomics_create();
}

/* ---- the configuration a reload hands to the manager ---- */

static size_t next_cfg_size(const srv__config_t *cfg)
{
    (void)cfg;
    return sizeof(srv__config_t) + 64;
}

static int next_cfg_create(const srv__config_t *cfg)
{
    (void)cfg;
    srv__server.next_cfg = srv__shm_alloc(sizeof(srv__config_t), 64);
    return srv__server.next_cfg ? 0 : -ENOMEM;
}

static const zone_t zones[] = {
    {"stats", stats_size, stats_create},
    {"connection table", conninfo_size, conninfo_create},
    {"TLS session ticket keys", srv__tls_keys_region_size, srv__tls_keys_create},
    {"mailboxes", mbox_size, mbox_create},
    {"task records", tasks_size, tasks_create},
    {"cron report", cron_size, cron_create},
    {"tables", srv__tables_region_size, srv__tables_create},
    {"atomics", atomics_size, atomics_create},
    {"reload configuration", next_cfg_size, next_cfg_create},
    {"maintenance state", srv__maint_region_size, srv__maint_create},
};

#define NZONES (sizeof(zones) / sizeof(zones[0]))

int srv__region_setup(const srv__config_t *cfg)
{
    size_t bytes = REGION_SLACK;
    for (size_t i = 0; i < NZONES; i++)
        bytes += zones[i].size(cfg);
    int rc = srv__shm_create(bytes);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < NZONES; i++) {
        rc = zones[i].create(cfg);
        if (rc < 0) {
            srv__log(SRV_LOG_ERROR, "master", rc, "shared region: cannot create the %s",
                     zones[i].name);
            return rc;
        }
    }
    return 0;
}
