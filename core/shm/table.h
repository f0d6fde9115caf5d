/* Shared-memory tables (internal side): creation from the config in the master before fork, the
 * in-region layout, and what `srv info` and the tests need. The app-facing API is
 * include/srv/table.h. */
#ifndef SRV_CORE_TABLE_H
#define SRV_CORE_TABLE_H

#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "srv/table.h"

/* Bytes of shared region that srv__tables_create(cfg) takes (tables and their indexes), padding
 * included. Add it to what else the region must hold. */
size_t srv__tables_region_size(const srv__config_t *cfg);

/* Create every [[table]] of cfg in the shared region. Call in the master after srv__shm_create()
 * and before any fork; children inherit the list that srv_table_find() reads. The list is
 * forgotten with the region (a hook registered with srv__shm_on_forget). Returns 0, -EINVAL (a
 * table or column the config loader should have refused: logged with its name), -ENOMEM
 * (region too small), -ENODEV (no region), -ENOSPC (no room for the forget hook). */
int srv__tables_create(const srv__config_t *cfg);

/* Write a JSON array describing every table into buf:
 * [{"name":"kv","rows":3,"capacity":1024,"bytes":N,"full_failures":0}]
 * Returns the length written (NUL-terminated), or -ENOSPC when cap is too small. */
int srv__tables_info_json(char *buf, size_t cap);

/* ---- for tests and benchmarks ---- */

/* The 64-bit hash of a key (a wyhash-style multiply-mix over 8-byte words). */
uint64_t srv__table_hash(const void *key, size_t len);
/* Index of the bucket key falls in, and how many buckets t has. */
uint32_t srv__table_bucket(const srv_table_t *t, const char *key);
uint32_t srv__table_nbuckets(const srv_table_t *t);
/* Take / release the write lock of key's bucket, and mark the bucket as being written (as a
 * writer does): lets a test die holding it. */
void srv__table_lock_key(srv_table_t *t, const char *key);
void srv__table_unlock_key(srv_table_t *t, const char *key);
/* Set in a test child to make it SIGKILL itself mid-write: 1 = a new row is linked but not yet
 * LIVE, 2 = a deleted row is FREE but not yet unlinked. 0 in production. */
extern int srv__table_test_crash;
/* Times a lock was taken over from a dead holder. */
uint64_t srv__table_steals(const srv_table_t *t);
/* Times a set/incr of a new key failed because the table was full. */
uint64_t srv__table_full_failures(const srv_table_t *t);

#endif
