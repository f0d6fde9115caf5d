/* The shared region's layout: every subsystem that keeps state in the region declares the bytes
 * it needs; the master adds them up, creates the region and lets each take its part. */
#ifndef SRV_REGION_H
#define SRV_REGION_H

#include "config/config.h"

/* Create the shared region for cfg and every subsystem's part of it (stats, connection table,
 * TLS session ticket keys, mailboxes, task records, cron report, tables, atomics), in that
 * order. Call in the master after srv__server_layout() and before any fork or thread. Sets
 * srv__server.stats. Returns 0 or -errno (-ENOMEM: a part did not fit; the failing part is
 * logged). */
int srv__region_setup(const srv__config_t *cfg);

#endif
