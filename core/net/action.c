/* srv__engine_action: the one place an engine's owner acts on a session, whatever carried the
 * request (a reactor's channel frame, a base-mode worker's own call or its mailbox). */
#include "core/net/conn.h"

#include <errno.h>
#include <string.h>

#include "core/net/conn_internal.h"

int srv__conn_bind(srv__engine_t *e, uint64_t session, uint32_t uid)
{
    srv__conn_t *c = srv__conn_lookup(e, session);
    if (c == NULL)
        return -ENOENT;
    if (e->cfg->dispatch_mode == 5)
        c->worker = (int)(uid % (uint32_t)e->cfg->worker_num);
    if (c->info)
        atomic_store(&c->info->uid, uid);
    return 0;
}

static int respond_fd(srv__engine_t *e, uint64_t session, unsigned flags, const void *data,
                      size_t len)
{
    srv__engine_file_t f;
    if (len < sizeof(f))
        return -EINVAL;
    memcpy(&f, data, sizeof(f));
    return srv__conn_respond_fd(e, session, f.fd, f.off, f.len, flags);
}

int srv__engine_action(srv__engine_t *e, uint64_t session, srv__engine_action_t a, uint16_t arg,
                       const void *data, size_t len)
{
    const char *p = data;
    uint16_t code;
    uint32_t uid;
    switch (a) {
    case SRV_ENGINE_RESPOND: {
        struct iovec v = {.iov_base = (void *)data, .iov_len = len};
        return srv__conn_respond(e, session, &v, 1, arg);
    }
    case SRV_ENGINE_RESPOND_FD:
        return respond_fd(e, session, arg, data, len);
    case SRV_ENGINE_SEND:
        return srv__conn_send(e, session, data, len);
    case SRV_ENGINE_CLOSE:
        return srv__conn_close_session(e, session);
    case SRV_ENGINE_WS_ACCEPT:
        return srv__conn_ws_accept(e, session, arg, data, len);
    case SRV_ENGINE_WS_PUSH:
        return srv__conn_ws_push(e, session, arg, data, len);
    case SRV_ENGINE_WS_CLOSE:
        if (len < 2)
            return -EINVAL;
        memcpy(&code, p, 2);
        return srv__conn_ws_close(e, session, code, p + 2, len - 2);
    case SRV_ENGINE_WS_BROADCAST:
        return srv__engine_ws_broadcast(e, (int)session - 1, arg, data, len);
    case SRV_ENGINE_BIND:
        if (len < sizeof(uid))
            return -EINVAL;
        memcpy(&uid, p, sizeof(uid));
        return srv__conn_bind(e, session, uid);
    }
    return -EINVAL;
}

int srv__engine_respond(srv__engine_t *e, uint64_t session, const struct iovec *iov, int iovcnt,
                        unsigned flags)
{
    return srv__conn_respond(e, session, iov, iovcnt, flags);
}
