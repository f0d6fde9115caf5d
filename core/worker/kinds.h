/* The process kinds the manager forks, one entry each: workers, task workers, the timer
 * process, custom processes. */
#ifndef SRV_WORKER_KINDS_H
#define SRV_WORKER_KINDS_H

#include "core/server/child.h"
#include "core/server/server.h"

/* The entry for a slot of each kind, indexed by srv__slot_kind_t. */
extern const srv__child_main_fn srv__child_kinds[SRV_SLOT_PROCESS + 1];

#endif
