/* Named atomics (internal side): the registry in the shared region. The app-facing API is in
 * include/srv/table.h. */
#ifndef SRV_CORE_ATOMIC_H
#define SRV_CORE_ATOMIC_H

#include <stddef.h>

#include "srv/table.h"

/* Bytes of shared region the registry takes, padding included. */
size_t srv__atomics_region_size(void);
/* Allocate the registry in the shared region. Call in the master after srv__shm_create() and
 * before any fork; srv_atomic_find() fails with -ENODEV until then. The registry is forgotten
 * with the region (a hook registered with srv__shm_on_forget). Returns 0, -ENOMEM (region
 * full), -ENODEV (no region), -ENOSPC (no room for the forget hook). */
int srv__atomics_create(void);
/* For srv info: [{"name":..,"value":..}, ...]; length or -ENOSPC. */
int srv__atomics_info_json(char *buf, size_t cap);

#endif
