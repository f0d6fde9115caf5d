/* /metrics of the admin endpoint: every counter srv keeps, in the Prometheus text exposition
 * format 0.0.4, names prefixed srv_, each family with HELP and TYPE. Read from the shared
 * stats (the same numbers `srv info --json` shows) and /proc (memory and CPU of each process of
 * the tree). Master process. */
#ifndef SRV_METRICS_H
#define SRV_METRICS_H

#include <stddef.h>

/* Write the exposition into buf. Returns its length, or -1 when it did not fit in cap. */
int srv__metrics_text(char *buf, size_t cap);

#endif
