/* The entry of each process kind; see kinds.h. The table sits here, the lowest layer that sees
 * every entry (tasks/ and timer/ are below core/worker, the manager above). */
#include "core/worker/kinds.h"

#include "core/worker/proc.h"
#include "core/worker/worker.h"
#include "tasks/task_worker.h"
#include "timer/timer_process.h"

const srv__child_main_fn srv__child_kinds[SRV_SLOT_PROCESS + 1] = {
    [SRV_SLOT_WORKER] = srv__worker_main,
    [SRV_SLOT_TASK] = srv__task_worker_main,
    [SRV_SLOT_TIMER] = srv__timer_main,
    [SRV_SLOT_PROCESS] = srv__process_main,
};
