/* Loading the application module in a worker (never in the master or the manager). */
#ifndef SRV_APP_H
#define SRV_APP_H

#include <stddef.h>

#include "srv/srv.h"

/* dlopen path (RTLD_NOW so missing symbols fail here, not mid-request) and check its
 * descriptor. On failure returns -errno and writes the loader's message into err. */
int srv__app_load(const char *path, const srv_app_t **out, char *err, size_t errlen);
/* The loaded app (NULL before srv__app_load succeeded). */
const srv_app_t *srv__app(void);
/* The handler set a listener uses (its `handler` key), or NULL when the app has none by
 * that name. */
const srv_handlers_t *srv__app_handlers(const char *name);
/* Look up an exported function of the app (cron handlers, process entries). */
void *srv__app_symbol(const char *name);
void srv__app_unload(void);
/* Set what srv_worker_self() returns. */
void srv__worker_set_self(int id, const char *role, int worker_num);

#endif
