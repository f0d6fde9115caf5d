/* Process-wide state of one srv instance and the shared statistics every process updates.
 * The master fills srv__server before it forks; children inherit it. The stats block lives in
 * the shared region so `srv info` can read every process's counters. */
#ifndef SRV_SERVER_H
#define SRV_SERVER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "config/config.h"
#include "core/base/util.h"
#include "core/loop/loop.h"
#include "core/net/netstat.h"

#define SRV_MAX_REACTORS 64
#define SRV_MAX_WORKERS 1024

/* Exit codes of the srv command (documented in the README and `srv help`). */
enum {
    SRV_EXIT_OK = 0,
    SRV_EXIT_FAILURE = 1,
    SRV_EXIT_USAGE = 2,
    SRV_EXIT_CONFIG = 3,
    SRV_EXIT_LISTEN = 4,
    SRV_EXIT_RUNNING = 5, /* already running (start) or not running (stop/reload/info) */
    SRV_EXIT_APP = 6,
};

typedef enum {
    SRV_WSTATE_EMPTY = 0,
    SRV_WSTATE_STARTING = 1, /* forked, loading the app */
    SRV_WSTATE_READY = 2,    /* serving */
    SRV_WSTATE_STOPPING = 3, /* finishing in-flight work before exit */
    SRV_WSTATE_BACKOFF = 4,  /* died at start-up; respawn delayed */
} srv__wstate_t;

/* One worker slot (workers first, then task workers). Written by the manager and the worker. */
typedef struct srv__worker_stat {
    _Atomic int pid;
    _Atomic int state;
    _Atomic uint64_t requests; /* handled by the current process of this slot */
    _Atomic uint64_t total_requests;
    _Atomic uint64_t respawns;  /* unplanned deaths replaced */
    _Atomic uint64_t recycles;  /* replaced on reaching max_request (not by a reload) */
    _Atomic int64_t started_ms; /* wall clock */
    _Atomic uint32_t generation;
    _Atomic uint64_t udp_dropped; /* datagrams over their listener's package_max_length */
    _Atomic int64_t timers;       /* timers pending in the process of this slot */
    /* What the process is busy with, for the manager's watchdog (core/process/watchdog.c):
     * since when (monotonic ms, 0 = idle), its limit in seconds, the session (response id) and
     * "METHOD /path" (best effort text: read while it may change, only logged). */
    _Atomic int64_t busy_ms;
    _Atomic int busy_limit;
    _Atomic uint64_t busy_session;
    char busy_what[120];
    _Atomic uint64_t harakiri_session; /* killed by the watchdog mid-request: reactor says 504 */
    _Atomic uint64_t harakiris;        /* processes of this slot killed past their timeout */
    _Atomic uint64_t rss_recycles;     /* replaced for going over max_worker_rss */
    /* cluster (core/worker/cluster.c): broadcasts published to the other instances, received
     * from them (worker 0), and not published (Redis down, over its bound) */
    _Atomic uint64_t cluster_published, cluster_received, cluster_unsent;
} srv__worker_stat_t;

typedef struct srv__reactor_stat {
    _Atomic uint64_t connections; /* open now */
    _Atomic uint64_t accepted;
    _Atomic uint64_t requests;
    _Atomic uint64_t errors_503;
    _Atomic uint64_t h2_connections; /* HTTP/2 connections open now */
    _Atomic uint64_t h2_streams;     /* HTTP/2 streams handed to the app */
} srv__reactor_stat_t;

typedef struct srv__stats {
    int64_t start_ms;
    _Atomic int master_pid;
    _Atomic int manager_pid;
    _Atomic uint64_t reloads;
    srv__reactor_stat_t reactors[SRV_MAX_REACTORS]; /* base mode: one per worker, indexed by id */
    /* Per engine (reactor, or base-mode worker) and listener: net[engine * nlisten + listener]. */
    srv__netstat_t *net;
    int nengines, nlisten;
    /* The access log writers of every process (core/base/alog.h). */
    _Atomic uint64_t alog_lines, alog_errors, alog_dropped;
    char backend[16]; /* the event backend serving (io_uring, epoll) */
    int nworkers;                                  /* worker_num + task_worker_num */
    srv__worker_stat_t workers[];
} srv__stats_t;

/* Worker slots: workers, task workers, the timer process (when there are cron jobs), then
 * every custom process instance. Mailbox ids equal slot numbers; the task queue comes last. */
typedef enum {
    SRV_SLOT_WORKER = 0,
    SRV_SLOT_TASK = 1,
    SRV_SLOT_TIMER = 2,
    SRV_SLOT_PROCESS = 3,
} srv__slot_kind_t;

typedef struct srv__server {
    srv__config_t cfg;
    /* Slots: workers [0, wcap), task workers [tbase, tbase + tcap), the timer, then custom
     * process instances [proc_base, proc_base + pcap). The capacities are fixed at start; the
     * configuration says which slots are active (srv__slot_active), so a reload can grow or
     * shrink worker_num, task_worker_num and the processes within them. */
    int nslots;     /* every slot above */
    int wcap, tcap, pcap;
    int tbase;      /* first task worker slot */
    int timer_slot; /* runs only with cron jobs */
    int proc_base;  /* first custom process slot */
    int taskq;      /* mailbox id of the task queue */
    int nlisten;
    int listen_fd[SRV_CONFIG_MAX_LISTEN];
    srv__stats_t *stats;
    /* Shared: the configuration a reload hands from the master to the manager. */
    srv__config_t *next_cfg;
    int nreactors; /* process mode: reactor_num; base mode: 0 */
    /* The configuration file as the running configuration was read from it (srv info). */
    int64_t cfg_mtime_ms;
    int64_t cfg_applied_ms;
    char cfg_digest[24]; /* FNV-1a 64 of its bytes, hex; "" when unreadable */
    char ctl_path[SRV_CONFIG_PATH_MAX + 8];
} srv__server_t;

extern srv__server_t srv__server;

/* Record the configuration file's mtime and digest, now applied (start, reload). */
void srv__server_config_stamp(srv__server_t *S);

/* Fill the slot layout and taskq from cfg (at start). */
void srv__server_layout(srv__server_t *S);
/* NULL when cfg's processes fit S's capacities, else the key that does not fit. */
const char *srv__server_fits(const srv__server_t *S, const srv__config_t *cfg);
/* True when cfg (this process's) runs a process in slot. */
bool srv__slot_active(int slot);
int srv__server_active_slots(void);
/* Active, or a process still runs there (a slot a reload retired, draining): what info shows. */
bool srv__slot_shown(int slot);
srv__slot_kind_t srv__slot_kind(int slot);
/* For a custom-process slot: its [[process]] index and instance number. */
int srv__slot_process(int slot, int *instance);
const char *srv__slot_kind_name(int slot);
/* A slot's number within its kind: worker 0.., task 0.., timer 0, process instance 0..
 * counted across every [[process]]. */
int srv__slot_local_id(int slot);
/* The mailbox of the newest process in slot: each slot has two, one per generation parity, so
 * an old process draining during a reload keeps its own and its replies never land in the new
 * one's. */
int srv__slot_box(int slot);

/* Loop options for reactors and workers: the provided receive buffers are reused in ring
 * order, so every one of them ends up resident; 256 x 4 KiB keeps that at 1 MiB a loop. */
extern const srv__loop_opts_t srv__loop_opts;

/* The per-listener counters of engine e (reactor id, or worker id in base mode). */
srv__netstat_t *srv__stats_net(int engine);

/* Listener i's counters added up over every engine. */
void srv__stats_net_sum(int listener, srv__netstat_t *sum);

/* The event backend the engines run on ("" before they started). */
const char *srv__stats_backend(void);
void srv__stats_set_backend(const char *name);

/* Start this process's access log writer when access_log is set (core/base/alog.h), counting
 * into the shared stats. Returns 0 or -errno (logged). */
int srv__server_alog_open(void);

/* Connections open in every reactor (or base-mode worker) of this instance: max_conn. */
uint64_t srv__stats_connections(void);

#endif
