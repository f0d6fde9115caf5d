/* Stream protocols on top of the connection engine: TCP with Swoole-style framing, and
 * WebSocket after an HTTP upgrade. Events go to the app through the engine's ops (IPC in
 * process mode, direct calls in base mode); the app acts on sessions through srv__conn_*. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/net/conn_internal.h"
#include "core/base/log.h"

static int app_event(srv__conn_t *c, srv__engine_event_t ev, uint16_t arg, const void *data,
                     size_t len)
{
    srv__engine_t *e = c->eng;
    if (e->ops.event == NULL)
        return 0;
    int rc = e->ops.event(e, c, ev, arg, data, len);
    if (rc < 0) {
        srv__log(SRV_LOG_WARN, "conn", rc,
                 "session %llx: cannot hand an event to a worker; closing",
                 (unsigned long long)c->session);
        srv__conn_close(c);
    }
    return rc;
}

/* ---- TCP ---- */

int srv__stream_open(srv__conn_t *c)
{
    c->proto = PROTO_TCP;
    srv__framer_init(&c->framer, &c->eng->frame[c->listener]);
    return app_event(c, SRV_ENGINE_EV_CONNECT, 0, NULL, 0);
}

static int on_frame(void *arg, const char *frame, size_t len)
{
    srv__conn_t *c = arg;
    if (c->flags & F_CLOSING)
        return 1;
    return app_event(c, SRV_ENGINE_EV_RECEIVE, 0, frame, len) < 0 ? 1 : 0;
}

/* ---- WebSocket ---- */

void srv__ws_flush(srv__conn_t *c)
{
    struct iovec iov[16];
    for (;;) {
        int n = srv__ws_output(c->ws, iov, 16);
        if (n <= 0)
            break;
        size_t total = 0;
        for (int i = 0; i < n; i++)
            total += iov[i].iov_len;
        int rc = srv__out_write(c, iov, n);
        srv__ws_consumed(c->ws, total);
        if (rc < 0) {
            srv__log(SRV_LOG_INFO, "ws", 0,
                    "session %llx from %s: client reads too slowly (over buffer_output_size); "
                    "closing",
                    (unsigned long long)c->session, c->peer);
            srv__conn_close(c);
            return;
        }
    }
    if (srv__ws_want_close(c->ws))
        c->flags |= F_CLOSE_AFTER | F_NO_READ;
    srv__conn_flush(c);
}

static int on_ws_event(void *arg, const srv__ws_event_t *ev)
{
    srv__conn_t *c = arg;
    switch (ev->type) {
    case SRV_WS_EV_MESSAGE:
        return app_event(c, SRV_ENGINE_EV_WS_MESSAGE, (uint16_t)ev->opcode, ev->data, ev->len) < 0
                   ? -1
                   : 0;
    case SRV_WS_EV_CLOSE:
    case SRV_WS_EV_ERROR:
        c->ws_code = (uint16_t)ev->code;
        free(c->ws_pending);
        c->ws_pending = NULL;
        c->ws_pending_len = 0;
        if (ev->len > 0 && (c->ws_pending = malloc(ev->len)) != NULL) {
            memcpy(c->ws_pending, ev->data, ev->len);
            c->ws_pending_len = (uint32_t)ev->len;
        }
        if (ev->type == SRV_WS_EV_ERROR)
            srv__log(SRV_LOG_INFO, "ws", 0, "session %llx from %s: closing with %d: %.*s",
                    (unsigned long long)c->session, c->peer, ev->code, (int)ev->len, ev->data);
        return 0;
    default:
        return 0;
    }
}

void srv__stream_input(srv__conn_t *c, const char *data, size_t len)
{
    if (c->proto == PROTO_TCP) {
        int rc = srv__framer_feed(&c->framer, data, len, on_frame, c);
        if (rc < 0) {
            srv__log(SRV_LOG_INFO, "tcp", 0, "session %llx from %s: %s; closing",
                    (unsigned long long)c->session, c->peer,
                    rc == -EMSGSIZE ? "frame over package_max_length" : "malformed frame");
            srv__conn_close(c);
        }
        return;
    }
    if (c->proto == PROTO_WS && c->ws) {
        srv__ws_feed(c->ws, data, len, on_ws_event, c);
        if (!(c->flags & F_CLOSING))
            srv__ws_flush(c);
    }
}

/* The peer half-closed. Its last frames may still be with a worker whose answers should reach
 * it (a client that sends and then shuts its side, like `nc -N`), so the connection stays open
 * for writing a moment: closed once the output is drained and the grace period is over, or
 * right away when the app closes it. */
#define HALF_CLOSE_GRACE_MS 1000

void srv__stream_eof(srv__conn_t *c)
{
    if (c->proto == PROTO_WS) {
        srv__conn_close(c); /* a WebSocket peer that vanishes without a close frame: 1006 */
        return;
    }
    c->flags |= F_EOF | F_NO_READ;
    c->close_deadline = srv__engine_now_ms(c->eng) + HALF_CLOSE_GRACE_MS;
    srv__conn_flush(c);
}

void srv__stream_release(srv__conn_t *c)
{
    if (c->proto == PROTO_TCP) {
        srv__framer_deinit(&c->framer);
        app_event(c, SRV_ENGINE_EV_CLOSED, 0, NULL, 0);
    } else if (c->proto == PROTO_WS) {
        if (c->ws && c->ws_refused) {
            srv__ws_destroy(c->ws);
            c->ws = NULL;
        } else if (c->ws) {
            /* Tell the app only about connections it accepted. */
            char buf[2 + 125];
            uint16_t code = c->ws_code ? c->ws_code : 1006;
            size_t rl = c->ws_pending_len > 125 ? 125 : c->ws_pending_len;
            memcpy(buf, &code, 2);
            if (rl)
                memcpy(buf + 2, c->ws_pending, rl);
            app_event(c, SRV_ENGINE_EV_WS_CLOSED, 0, buf, 2 + rl);
            srv__ws_destroy(c->ws);
            c->ws = NULL;
        }
    }
    free(c->ws_pending);
    c->ws_pending = NULL;
    c->ws_pending_len = 0;
}

/* A valid handshake is handed to the app (on_ws_open) before we answer 101; the response is
 * built now, while the request is at hand, and sent if the app accepts. */
int srv__ws_upgrade(srv__conn_t *c, const srv_request_t *req)
{
    srv__engine_t *e = c->eng;
    const srv__listen_config_t *l = &e->cfg->listen[c->listener];
    const char *reason = NULL;
    int rc = srv__ws_handshake_check(req, &reason);
    if (rc == -ENOENT)
        return 0; /* not a WebSocket upgrade: plain HTTP */
    if (rc < 0)
        return -EINVAL;
    char buf[1024];
    srv__ws_options_t neg;
    memset(&neg, 0, sizeof(neg));
    int n = srv__ws_handshake_response(req, l->websocket_compression, NULL, buf, sizeof(buf), &neg);
    if (n < 0)
        return -EINVAL;
    c->ws_pending = malloc((size_t)n);
    if (c->ws_pending == NULL)
        return -ENOMEM;
    memcpy(c->ws_pending, buf, (size_t)n);
    c->ws_pending_len = (uint32_t)n;
    c->ws_opts = neg;
    c->ws_opts.max_message_size = (size_t)l->websocket_max_message_size;
    c->ws_opts.output_limit = (size_t)e->cfg->buffer_output_size;
    return 1;
}

/* The app accepted (code 0) or refused (a close code) the handshake of session. A refused
 * client is upgraded too, and gets a close frame with the app's code at once: that is how it
 * learns why (a browser's WebSocket sees close codes, never an HTTP status). The connection
 * is then not an open WebSocket: no push, broadcast, exists or on_ws_close; data frames the
 * client sends meanwhile are dropped; it closes once the close frame is out. */
int srv__ws_decided(srv__conn_t *c, int code, const char *proto, size_t proto_len, bool *accepted)
{
    *accepted = false;
    if (c->ws_pending == NULL)
        return 0;
    if (code != 0)
        proto_len = 0;
    /* The 101 built at upgrade time ends with the blank line; the app's subprotocol goes in
     * just before it. */
    char hdr[192];
    int hn = 0;
    if (proto_len > 0 && proto_len < 128)
        hn = snprintf(hdr, sizeof(hdr), "Sec-WebSocket-Protocol: %.*s\r\n", (int)proto_len, proto);
    struct iovec v[3] = {
        {c->ws_pending, c->ws_pending_len - 2}, {hdr, (size_t)hn}, {(char *)"\r\n", 2}};
    int rc = srv__out_write(c, v, 3);
    free(c->ws_pending);
    c->ws_pending = NULL;
    c->ws_pending_len = 0;
    if (rc < 0)
        return rc;
    c->ws = srv__ws_create(&c->ws_opts);
    if (c->ws == NULL)
        return -ENOMEM;
    c->proto = PROTO_WS;
    c->ws_code = 0;
    c->last_ping = srv__engine_now_ms(c->eng);
    if (c->http) {
        srv__http_parser_destroy(c->http);
        c->http = NULL;
    }
    if (code != 0) {
        c->ws_refused = true;
        /* Codes a close frame may not carry (1004-1006, 1015) become 1008 (policy). */
        if (srv__ws_close_frame(c->ws, code, "refused") < 0)
            srv__ws_close_frame(c->ws, code = SRV_WS_POLICY, "refused");
        c->ws_code = (uint16_t)code;
        return 0;
    }
    if (c->info)
        atomic_store(&c->info->websocket, 1);
    *accepted = true;
    return 0;
}

void srv__stream_tick(srv__conn_t *c, int64_t now)
{
    srv__engine_t *e = c->eng;
    if (c->flags & F_EOF) {
        if (!srv__out_pending(c) && now >= c->close_deadline)
            srv__conn_close(c);
        return;
    }
    int64_t idle = e->idle_ms[c->listener];
    if (idle > 0 && now - c->last_read > idle) {
        srv__log(SRV_LOG_INFO, "conn", 0,
                "session %llx from %s: idle for %lld ms (heartbeat); closing",
                (unsigned long long)c->session, c->peer, (long long)(now - c->last_read));
        srv__conn_close(c);
        return;
    }
    if (c->proto != PROTO_WS || c->ws == NULL)
        return;
    int64_t ping = e->cfg->listen[c->listener].websocket_ping_interval;
    if (ping <= 0)
        return;
    if (now - c->last_read > 2 * ping + TICK_MS) {
        srv__log(SRV_LOG_INFO, "ws", 0, "session %llx from %s: no answer to ping; closing",
                (unsigned long long)c->session, c->peer);
        c->ws_code = 1006;
        srv__conn_close(c);
        return;
    }
    if (now - c->last_read >= ping && now - c->last_ping >= ping) {
        c->last_ping = now;
        srv__ws_ping(c->ws);
        srv__ws_flush(c);
    }
}

/* ---- actions from the app ---- */

int srv__conn_send(srv__engine_t *e, uint64_t session, const void *data, size_t len)
{
    srv__conn_t *c = srv__conn_lookup(e, session);
    if (c == NULL)
        return -ENOENT;
    if (c->proto != PROTO_TCP)
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
    if (c->proto == PROTO_WS && c->ws) {
        c->ws_code = SRV_WS_NORMAL;
        srv__ws_close_frame(c->ws, SRV_WS_NORMAL, "");
        srv__ws_flush(c);
        c->flags |= F_CLOSE_AFTER;
        srv__conn_flush(c);
        return 0;
    }
    if (c->proto == PROTO_HTTP)
        return -EINVAL;
    c->flags |= F_CLOSE_AFTER | F_NO_READ;
    srv__conn_flush(c);
    return 0;
}

int srv__conn_ws_push(srv__engine_t *e, uint64_t session, int opcode, const void *data, size_t len)
{
    srv__conn_t *c = srv__conn_lookup(e, session);
    if (c == NULL || c->proto != PROTO_WS || c->ws == NULL || c->ws_refused)
        return -ENOENT;
    int rc = srv__ws_send(c->ws, opcode, data, len);
    if (rc == -ENOBUFS) {
        srv__log(SRV_LOG_INFO, "ws", 0,
                "session %llx from %s: client reads too slowly (over buffer_output_size); "
                "closing with 1008",
                (unsigned long long)c->session, c->peer);
        srv__ws_close_frame(c->ws, SRV_WS_POLICY, "too slow");
        c->ws_code = SRV_WS_POLICY;
        srv__ws_flush(c);
        srv__conn_close(c);
        return rc;
    }
    if (rc < 0)
        return rc;
    srv__ws_flush(c);
    return 0;
}

int srv__conn_ws_close(srv__engine_t *e, uint64_t session, int code, const char *reason, size_t len)
{
    srv__conn_t *c = srv__conn_lookup(e, session);
    if (c == NULL || c->proto != PROTO_WS || c->ws == NULL || c->ws_refused)
        return -ENOENT;
    char r[124];
    if (len > 123)
        len = 123;
    memcpy(r, reason ? reason : "", len);
    r[len] = '\0';
    int rc = srv__ws_close_frame(c->ws, code, r);
    if (rc < 0 && rc != -EALREADY)
        return rc;
    c->ws_code = (uint16_t)code;
    srv__ws_flush(c);
    c->flags |= F_CLOSE_AFTER;
    srv__conn_flush(c);
    return 0;
}

int srv__engine_ws_broadcast(srv__engine_t *e, int listener, int opcode, const void *data,
                             size_t len)
{
    /* Encoded once, copied into each connection's queue: no per-connection framing work. */
    size_t cap = len + SRV_WS_FRAME_HEADER_MAX;
    uint8_t *frame = malloc(cap);
    if (frame == NULL)
        return -ENOMEM;
    size_t flen = srv__ws_frame_encode(frame, cap, opcode, data, len);
    int n = 0;
    for (uint32_t i = 0; flen > 0 && i < e->used_slots; i++) {
        srv__conn_t *c = e->slots[i];
        if (c == NULL || c->proto != PROTO_WS || c->ws == NULL || c->ws_refused ||
            (c->flags & F_CLOSING))
            continue;
        if (listener >= 0 && c->listener != listener)
            continue;
        if (srv__ws_send_frame(c->ws, frame, flen) == -ENOBUFS) {
            srv__log(SRV_LOG_INFO, "ws", 0,
                    "session %llx from %s: client reads too slowly for broadcasts; closing",
                    (unsigned long long)c->session, c->peer);
            srv__conn_close(c);
            continue;
        }
        srv__ws_flush(c);
        n++;
    }
    free(frame);
    return n;
}

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
