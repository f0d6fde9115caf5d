/* Static files under a listener's document_root, served by the engine itself with sendfile:
 * Content-Type, Last-Modified/If-Modified-Since, single Range, no escape from the root. */
#ifndef SRV_STATIC_H
#define SRV_STATIC_H

#include "core/net/conn.h"

typedef struct srv__static srv__static_t;

int srv__static_create(srv__static_t **out, const char *root, srv__engine_t *e);
void srv__static_destroy(srv__static_t *st);
/* 1: answered (response queued and finished); 0: no such file, the app decides. */
int srv__static_serve(srv__static_t *st, const srv_request_t *req, srv__conn_t *c);

#endif
