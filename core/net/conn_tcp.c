/* TCP on the engine, with Swoole-style framing (package_eof, length fields): each frame is an
 * event for the app; the app answers with SRV_ENGINE_SEND and closes with SRV_ENGINE_CLOSE. */
#include <errno.h>

#include "core/base/log.h"
#include "core/net/conn_internal.h"

/* The peer half-closed. Its last frames may still be with a worker whose answers should reach
 * it (a client that sends and then shuts its side, like `nc -N`), so the connection stays open
 * for writing a moment: closed once the output is drained and the grace period is over, or
 * right away when the app closes it. */
#define HALF_CLOSE_GRACE_MS 1000

static int tcp_open(srv__conn_t *c)
{
    if (c->http) { /* a cached connection's parser: TCP has no use for it */
        srv__http_parser_destroy(c->http);
        c->http = NULL;
    }
    srv__framer_init(&c->framer, &c->eng->frame[c->listener]);
    return srv__conn_app_event(c, SRV_ENGINE_EV_CONNECT, 0, NULL, 0);
}

static int on_frame(void *arg, const char *frame, size_t len)
{
    srv__conn_t *c = arg;
    if (c->flags & F_CLOSING)
        return 1;
    return srv__conn_app_event(c, SRV_ENGINE_EV_RECEIVE, 0, frame, len) < 0 ? 1 : 0;
}

static void tcp_input(srv__conn_t *c, const char *data, size_t len)
{
    int rc = srv__framer_feed(&c->framer, data, len, on_frame, c);
    if (rc < 0) {
        srv__log(SRV_LOG_INFO, "tcp", 0, "session %llx from %s: %s; closing",
                 (unsigned long long)c->session, c->peer,
                 rc == -EMSGSIZE ? "frame over package_max_length" : "malformed frame");
        srv__conn_close(c);
    }
}

static void tcp_eof(srv__conn_t *c)
{
    c->flags |= F_NO_READ;
    c->close_deadline = srv__engine_now_ms(c->eng) + HALF_CLOSE_GRACE_MS;
    srv__conn_flush(c);
}

static void tcp_close(srv__conn_t *c)
{
    srv__framer_deinit(&c->framer);
    srv__conn_app_event(c, SRV_ENGINE_EV_CLOSED, 0, NULL, 0);
}

static void tcp_tick(srv__conn_t *c, int64_t now)
{
    if (c->flags & F_EOF) {
        if (!srv__out_pending(c) && now >= c->close_deadline)
            srv__conn_close(c);
        return;
    }
    srv__conn_heartbeat(c, now);
}

static void tcp_drain(srv__conn_t *c)
{
    c->flags |= F_CLOSE_AFTER | F_NO_READ;
    srv__conn_flush(c);
}

const srv__proto_t srv__proto_tcp = {
    .name = "tcp",
    .open = tcp_open,
    .input = tcp_input,
    .tick = tcp_tick,
    .eof = tcp_eof,
    .close = tcp_close,
    .drain = tcp_drain,
};

int srv__conn_send(srv__engine_t *e, uint64_t session, const void *data, size_t len)
{
    srv__conn_t *c = srv__conn_lookup(e, session);
    if (c == NULL)
        return -ENOENT;
    if (c->proto != &srv__proto_tcp)
        return -EINVAL;
    if (c->flags & F_CLOSE_AFTER)
        return -EPIPE; /* the app closed it: answers to frames already in flight are dropped */
    struct iovec v = {.iov_base = (void *)data, .iov_len = len};
    int rc = srv__out_write(c, &v, 1);
    if (rc < 0) {
        srv__log(SRV_LOG_INFO, "tcp", 0,
                 "session %llx from %s: output over buffer_output_size (client too slow); closing",
                 (unsigned long long)c->session, c->peer);
        srv__conn_close(c);
        return rc;
    }
    srv__conn_flush(c);
    return 0;
}

int srv__conn_close_session(srv__engine_t *e, uint64_t session)
{
    srv__conn_t *c = srv__conn_lookup(e, session);
    if (c == NULL)
        return -ENOENT;
    if (c->proto == &srv__proto_ws)
        return srv__ws_close_normal(c);
    if (c->proto != &srv__proto_tcp)
        return -EINVAL; /* HTTP: the response decides */
    tcp_drain(c);
    return 0;
}
