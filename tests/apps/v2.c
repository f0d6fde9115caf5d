/* A second app for reload tests: a configuration that moves `app` to this module is served by
 * it after `srv reload`. GET / answers "v2"; GET /worker the worker's id and pid. */
#include <stdio.h>
#include <unistd.h>

#include "srv/srv.h"

static void on_request(const srv_request_t *req, srv_response_t *res)
{
    (void)req;
    char buf[64];
    int n = snprintf(buf, sizeof(buf), "v2 %d", (int)getpid());
    srv_response_header(res, "Content-Type", "text/plain");
    srv_response_send(res, buf, (size_t)n);
}

SRV_APP(.name = "v2", .handlers = {.on_request = on_request});
