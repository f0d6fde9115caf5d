/* What tls.c (one connection) needs of tls_ctx.c (a listener's contexts). Not for use outside
 * protocols/. */
#ifndef SRV_TLS_INTERNAL_H
#define SRV_TLS_INTERNAL_H

#include <openssl/ssl.h>

#include "protocols/tls.h"

/* The context new connections start on (SNI may switch them to another of ctx's). */
SSL_CTX *srv__tls_ctx_default(srv__tls_ctx_t *ctx);

#endif
