/* One document value into its field of srv__config_t, as the schema's key descriptor says:
 * conversion (TEXT read as the key's type), ranges, names, hosts, paths made absolute, package_eof
 * escapes, schedules. Not for use outside config/. */
#ifndef SRV_CONFIG_VALUE_H
#define SRV_CONFIG_VALUE_H

#include <stddef.h>

#include "config/doc.h"
#include "config/schema.h"

/* Where a store's problem goes and what it resolves against. */
typedef struct srv__value_ctx {
    srv__doc_diag_t *diag; /* the problem is noted here, with its line and pos */
    int pos;               /* seq of the document key being stored */
    const char *dir;       /* the config file's folder, for relative paths */
} srv__value_ctx_t;

/* Store v (found at line) in the entry at base as kd says; kd->name names it in problems.
 * Returns 0 or -EINVAL (problem noted, field possibly half-written). */
int srv__value_store(const srv__value_ctx_t *ctx, const srv__key_desc_t *kd, void *base,
                     const srv__val_t *v, int line);

/* s (len bytes) quoted for a message into buf: control bytes escaped, long values cut. */
const char *srv__value_quote(char *buf, size_t size, const char *s, size_t len);

#endif
