/* The TLS contexts of this process's listeners: built from the configuration where the sockets
 * are served (the master in process mode, each worker in base mode), swapped whole by a reload
 * while connections keep the contexts they started on. */
#ifndef SRV_TLS_LISTEN_H
#define SRV_TLS_LISTEN_H

#include <stdbool.h>
#include <stddef.h>

#include "config/config.h"
#include "protocols/tls.h"

/* Certificates expiring within this many days are warned about (srv check, start, reload). */
#define SRV__TLS_WARN_DAYS 14

/* Some listener of cfg has ssl. */
bool srv__tls_listen_any(const srv__config_t *cfg);

/* Build the contexts of every ssl listener of cfg (ticket keys from ring, NULL for OpenSSL's
 * own) and, when all are good, put them in place of the current ones. On a problem nothing
 * changes and err holds "file:line: key: problem". Returns 0 or -EINVAL. */
int srv__tls_listen_load(const srv__config_t *cfg, const srv__tls_keyring_t *ring, char *err,
                         size_t errlen);
/* Only check that srv__tls_listen_load() would succeed (nothing is kept). */
int srv__tls_listen_check(const srv__config_t *cfg, char *err, size_t errlen);
/* For each certificate of cfg that has expired or expires within days, emit(arg, "file:line:
 * ssl_cert_file: warning: ..."). Returns how many. */
int srv__tls_listen_expiring(const srv__config_t *cfg, int days,
                             void (*emit)(void *arg, const char *msg), void *arg);
/* The same, as warnings in the log. */
void srv__tls_listen_warn_expiry(const srv__config_t *cfg, int days);
/* Listener li's current contexts, referenced (srv__tls_ctx_unref when done); NULL if none. */
srv__tls_ctx_t *srv__tls_listen_get(int li);
/* Drop every context (connections keep theirs until they close). */
void srv__tls_listen_unload(void);

#endif
