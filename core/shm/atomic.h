/* Named atomics (internal side): the registry in the shared region. The app-facing API is in
 * include/srv/table.h. */
#ifndef SRV_CORE_ATOMIC_H
#define SRV_CORE_ATOMIC_H

#include <stddef.h>

#include "srv/table.h"

/* Bytes of shared region the registry takes. */
size_t srv__atomics_region_size(void);
/* Allocate the registry in the shared region (srv__tables_create() does it). Before fork.
 * Returns 0, -ENOMEM (region full), -ENODEV (no region). */
int srv__atomics_create(void);
/* Forget the registry (the region is going away): called by srv__shm_destroy(). */
void srv__atomics_forget(void);
/* For srv info: [{"name":..,"value":..}, ...]; length or -ENOSPC. */
int srv__atomics_info_json(char *buf, size_t cap);

#endif
