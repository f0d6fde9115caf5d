/* An app whose workers but the first refuse to start (on_worker_start fails for worker 1 and
 * up): a reload to it replaces worker 0, then stops at worker 1 and must put worker 0 back on
 * the old configuration, leaving every worker as it was. */
#include "srv/srv.h"

static int on_worker_start(const srv_worker_t *w)
{
    return w->id >= 1 ? -1 : 0;
}

static void on_request(const srv_request_t *req, srv_response_t *res)
{
    (void)req;
    srv_response_send(res, "never", 5);
}

SRV_APP(.name = "failstart", .on_worker_start = on_worker_start,
        .handlers = {.on_request = on_request});
