/* The cross-key rules of a config, run on a loader whose document applied cleanly. Not for use
 * outside config/. */
#ifndef SRV_CONFIG_VALIDATE_H
#define SRV_CONFIG_VALIDATE_H

#include "config/loader.h"

/* Check what no key tells alone, fill the defaults that depend on other keys (listener names,
 * max_request_grace, column sizes), then the tables against this machine's memory. Problems go
 * to ld. */
void srv__validate(srv__loader_t *ld);

#endif
