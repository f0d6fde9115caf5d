/* Static files under a listener's document_root, served by the engine itself with sendfile:
 * Content-Type, Last-Modified/If-Modified-Since, single Range, no escape from the root. */
#ifndef SRV_STATIC_H
#define SRV_STATIC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "srv/srv.h"

typedef struct srv__static srv__static_t;

/* What to send for a request the static files answer: head, then (fd >= 0) len bytes of fd
 * from off. The caller owns fd. */
typedef struct srv__static_reply {
    char head[2048];
    size_t head_len;
    int fd;
    uint64_t off, len;
    bool close; /* close the connection after it */
} srv__static_reply_t;

/* Open root (kept open as the base of every lookup). Returns 0 or -errno. */
int srv__static_create(srv__static_t **out, const char *root);
void srv__static_destroy(srv__static_t *st);
/* 1: answered (send *out); 0: no such file, the app decides. */
int srv__static_serve(srv__static_t *st, const srv_request_t *req, srv__static_reply_t *out);

#endif
