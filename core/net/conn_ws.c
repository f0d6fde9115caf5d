/* WebSocket on the engine, after an HTTP upgrade the app accepted: messages are events for
 * the app; pushes, broadcasts and close frames are its actions; pings keep the session alive
 * (websocket_ping_interval). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/base/log.h"
#include "core/net/conn_internal.h"

static void ws_flush(srv__conn_t *c)
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
        srv__netstat_add(&c->eng->net[c->listener].ws_in, 1);
        return srv__conn_app_event(c, SRV_ENGINE_EV_WS_MESSAGE, (uint16_t)ev->opcode, ev->data,
                                   ev->len) < 0
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

static void ws_input(srv__conn_t *c, const char *data, size_t len)
{
    if (c->ws == NULL)
        return;
    srv__ws_feed(c->ws, data, len, on_ws_event, c);
    if (!(c->flags & F_CLOSING))
        ws_flush(c);
}

/* A WebSocket peer that vanishes without a close frame: 1006. */
static void ws_eof(srv__conn_t *c)
{
    srv__conn_close(c);
}

static void ws_close(srv__conn_t *c)
{
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
        srv__conn_app_event(c, SRV_ENGINE_EV_WS_CLOSED, 0, buf, 2 + rl);
        srv__ws_destroy(c->ws);
        c->ws = NULL;
    }
    free(c->ws_pending);
    c->ws_pending = NULL;
    c->ws_pending_len = 0;
}

static void ws_tick(srv__conn_t *c, int64_t now)
{
    if (srv__conn_heartbeat(c, now) || c->ws == NULL)
        return;
    int64_t ping = c->eng->cfg->listen[c->listener].websocket_ping_interval;
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
        ws_flush(c);
    }
}

static void ws_drain(srv__conn_t *c)
{
    srv__conn_ws_close(c->eng, c->session, SRV_WS_GOING_AWAY, "server stopping", 15);
}

const srv__proto_t srv__proto_ws = {
    .name = "websocket",
    .input = ws_input,
    .tick = ws_tick,
    .eof = ws_eof,
    .close = ws_close,
    .drain = ws_drain,
};

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
static int ws_decided(srv__conn_t *c, int code, const char *proto, size_t proto_len, bool *accepted)
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
    if (c->req != NULL) {
        c->req->log.status = 101;
        c->req->log.head_len = c->ws_pending_len + (uint32_t)hn; /* all head, no body */
        srv__access_end(c, c->req, c->ws_pending_len + (size_t)hn);
    }
    free(c->ws_pending);
    c->ws_pending = NULL;
    c->ws_pending_len = 0;
    if (rc < 0)
        return rc;
    c->ws = srv__ws_create(&c->ws_opts);
    if (c->ws == NULL)
        return -ENOMEM;
    c->proto = &srv__proto_ws;
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

int srv__conn_ws_accept(srv__engine_t *e, uint64_t session, int code, const char *proto,
                        size_t proto_len)
{
    srv__conn_t *c = srv__conn_lookup(e, session);
    if (c == NULL)
        return -ENOENT;
    if (c->req == NULL || c->ws_pending == NULL)
        return -EPROTO;
    bool accepted = false;
    int rc = ws_decided(c, code, proto, proto_len, &accepted);
    srv__req_cancel(c); /* answered: no response follows a handshake */
    if (rc < 0) {
        srv__conn_close(c);
        return rc;
    }
    if (accepted)
        srv__access_proto(c, SRV_NETSTAT_WS);
    if (!accepted) {
        srv__log(SRV_LOG_INFO, "ws", 0,
                 "session %llx from %s: the app refused the upgrade; closing with %d",
                 (unsigned long long)c->session, c->peer, c->ws_code);
        ws_flush(c);
        c->flags |= F_CLOSE_AFTER;
        srv__conn_flush(c);
        return 0;
    }
    /* Bytes that followed the handshake are already WebSocket frames. */
    srv__conn_hold(c);
    if (c->in_len > 0) {
        char *in = c->in;
        uint32_t n = c->in_len;
        c->in = NULL;
        c->in_len = c->in_cap = 0;
        ws_input(c, in, n);
        free(in);
    }
    srv__conn_arm_recv(c);
    srv__conn_flush(c);
    srv__conn_unhold(c);
    return 0;
}

int srv__ws_close_normal(srv__conn_t *c)
{
    if (c->ws == NULL)
        return -ENOENT;
    c->ws_code = SRV_WS_NORMAL;
    srv__ws_close_frame(c->ws, SRV_WS_NORMAL, "");
    ws_flush(c);
    c->flags |= F_CLOSE_AFTER;
    srv__conn_flush(c);
    return 0;
}

int srv__conn_ws_push(srv__engine_t *e, uint64_t session, int opcode, const void *data, size_t len)
{
    srv__conn_t *c = srv__conn_lookup(e, session);
    if (c == NULL || c->proto != &srv__proto_ws || c->ws == NULL || c->ws_refused)
        return -ENOENT;
    int rc = srv__ws_send(c->ws, opcode, data, len);
    if (rc == -ENOBUFS) {
        srv__log(SRV_LOG_INFO, "ws", 0,
                 "session %llx from %s: client reads too slowly (over buffer_output_size); "
                 "closing with 1008",
                 (unsigned long long)c->session, c->peer);
        srv__ws_close_frame(c->ws, SRV_WS_POLICY, "too slow");
        c->ws_code = SRV_WS_POLICY;
        ws_flush(c);
        srv__conn_close(c);
        return rc;
    }
    if (rc < 0)
        return rc;
    srv__netstat_add(&e->net[c->listener].ws_out, 1);
    ws_flush(c);
    return 0;
}

int srv__conn_ws_close(srv__engine_t *e, uint64_t session, int code, const char *reason, size_t len)
{
    srv__conn_t *c = srv__conn_lookup(e, session);
    if (c == NULL || c->proto != &srv__proto_ws || c->ws == NULL || c->ws_refused)
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
    ws_flush(c);
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
        if (c == NULL || c->proto != &srv__proto_ws || c->ws == NULL || c->ws_refused ||
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
        srv__netstat_add(&e->net[c->listener].ws_out, 1);
        ws_flush(c);
        n++;
    }
    free(frame);
    return n;
}
