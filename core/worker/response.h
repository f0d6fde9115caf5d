/* srv_response_t: builds HTTP response bytes in the process running the app and hands them
 * to a sink: the reactor channel (process mode) or the connection's queue (base mode). */
#ifndef SRV_RESPONSE_H
#define SRV_RESPONSE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "srv/srv.h"

typedef struct srv__resp_sink {
    /* Bytes for the wire (SRV_IPC_F_* flags). Returns 0 or -errno. */
    int (*emit)(void *arg, uint64_t session, const struct iovec *iov, int iovcnt, unsigned flags);
    /* A file range as the body; fd is taken over (closed by the sink). */
    int (*emit_file)(void *arg, uint64_t session, int fd, const char *path, uint64_t off,
                     uint64_t len, unsigned flags);
    /* Call fn(fnarg) once when session's response can take more (or its client left); fn
     * NULL cancels. */
    int (*on_writable)(void *arg, uint64_t session, void (*fn)(void *fnarg), void *fnarg);
    void *arg;
} srv__resp_sink_t;

enum { SRV_RESP_NEW = 0, SRV_RESP_STREAMING = 1, SRV_RESP_DONE = 2 };

struct srv_response {
    const srv_request_t *req;
    uint64_t session;
    const srv__resp_sink_t *sink;
    int status;
    uint8_t state;
    bool detached;
    bool heap; /* allocated by srv__response_detach_copy, freed when finished */
    /* The connection stays open after this response: the request's SRV_REQ_KEEP_ALIVE at init,
     * cleared for a close-delimited (HTTP/1.0) stream. The request itself is never written. */
    bool keep_alive;
    char *hdr; /* extra header lines */
    size_t hdr_len, hdr_cap;
    void *req_copy;       /* detached in process mode: the request block we own */
    srv_tls_t *tls_copy;  /* detached in base mode: the request's TLS details we own */
    void (*wcb)(srv_response_t *res, void *arg); /* srv_response_on_writable */
    void *warg;
    srv_request_t req_view;
};

/* Prepare res (caller storage) for req. */
void srv__response_init(srv_response_t *res, const srv_request_t *req,
                        const srv__resp_sink_t *sink);
/* After on_request returned: a response neither finished nor detached gets a 500. Returns
 * true when res must stay alive (detached). */
bool srv__response_after_handler(srv_response_t *res);
/* Release what res holds (headers buffer). */
void srv__response_deinit(srv_response_t *res);

#endif
