/* The TLS transport: the connection's bytes go through protocols/tls.c (OpenSSL on our own
 * BIO), so the loop stays the only I/O path and the protocol above sees plaintext as on a plain
 * connection. The protocol is opened once the handshake is done (F_PRE_OPEN until then): a TCP
 * app hears on_connect with what was negotiated, and a failed handshake is never an app event.
 * A send encrypts at most SEND_MAX bytes of plaintext and reports them written once all of
 * their ciphertext has gone; the transport's own records (handshake, alerts, tickets) go out
 * when no send is in flight. */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "core/base/log.h"
#include "core/net/conn_internal.h"
#include "core/net/tls_listen.h"
#include "protocols/tls.h"

#define SEND_MAX (256u * 1024)
#define READ_PIECE (64u * 1024)
#define RECORD_MAX 16384 /* plaintext of one TLS record */

static int tls_start(srv__conn_t *c)
{
    srv__tls_ctx_t *ctx = srv__tls_listen_get(c->listener);
    if (ctx == NULL) {
        srv__log(SRV_LOG_ERROR, "tls", 0, "listener %d has no TLS context", c->listener);
        return -ENOENT;
    }
    c->tls = srv__tls_new(ctx);
    srv__tls_ctx_unref(ctx);
    if (c->tls == NULL)
        return -ENOMEM;
    c->tls_plain = 0;
    int timeout = c->eng->cfg->listen[c->listener].ssl_handshake_timeout;
    c->tls_deadline = srv__engine_now_ms(c->eng) + (int64_t)(timeout > 0 ? timeout : 10) * 1000;
    c->flags |= F_PRE_OPEN;
    return 0;
}

/* Submit the ciphertext waiting (own: records of the transport's own, no plaintext behind
 * them). */
static void submit(srv__conn_t *c, bool own)
{
    const char *p;
    size_t n = srv__tls_out(c->tls, &p);
    /* The loop keeps the iovec until the send completes: the connection's, not the stack's. */
    c->iov[0] = (struct iovec){(void *)p, n};
    if (own)
        c->tls_plain = SIZE_MAX; /* marks the send as the transport's own */
    c->flags |= F_SEND;
    c->refs++;
    if (srv__conn_send_raw(c, c->iov, 1) < 0) {
        c->flags &= ~(uint32_t)F_SEND;
        c->refs--;
        srv__conn_close(c);
    }
}

/* Send what the handshake or the records wrote, unless a send is in flight (its completion
 * sends it). */
static void push(srv__conn_t *c)
{
    const char *p;
    if ((c->flags & (F_SEND | F_CLOSING)) || srv__tls_out(c->tls, &p) == 0)
        return;
    submit(c, true);
}

/* Encrypt data; false (logged) when the session failed. */
static bool encrypt(srv__conn_t *c, const void *data, size_t len)
{
    if (len == 0 || srv__tls_write(c->tls, data, len) >= 0)
        return true;
    srv__log(SRV_LOG_INFO, "tls", 0, "session %llx from %s: %s", (unsigned long long)c->session,
             c->peer, srv__tls_reason(c->tls));
    return false;
}

static int tls_send(srv__conn_t *c, const struct iovec *iov, int iovcnt)
{
    /* Small pieces (a response head and its body) go in one record, as nginx's ssl_buffer
     * does: one seal and 22 bytes of overhead instead of one per piece. */
    static _Thread_local char one[RECORD_MAX];
    size_t plain = 0, held = 0;
    for (int i = 0; i < iovcnt && plain < SEND_MAX; i++) {
        size_t take = iov[i].iov_len < SEND_MAX - plain ? iov[i].iov_len : SEND_MAX - plain;
        if (held + take <= sizeof(one)) {
            memcpy(one + held, iov[i].iov_base, take);
            held += take;
        } else {
            if (!encrypt(c, one, held) || !encrypt(c, iov[i].iov_base, take))
                return -EPROTO;
            held = 0;
        }
        plain += take;
    }
    if (!encrypt(c, one, held))
        return -EPROTO;
    /* (srv__conn_flush set F_SEND and the reference before calling us.) */
    const char *p;
    size_t n = srv__tls_out(c->tls, &p);
    /* iov (the plaintext) is taken; the loop keeps c->iov until the send completes. */
    c->iov[0] = (struct iovec){(void *)p, n};
    c->tls_plain = plain;
    return srv__conn_send_raw(c, c->iov, 1);
}

static int tls_sent(srv__conn_t *c, int res)
{
    if (res == -EAGAIN || res == -EINTR)
        res = 0; /* nothing went: send the same bytes again */
    if (res < 0)
        return res;
    srv__tls_out_consume(c->tls, (size_t)res);
    const char *p;
    if (srv__tls_out(c->tls, &p) > 0) {
        /* The rest of these records, or records written meanwhile: they go first. */
        size_t plain = c->tls_plain;
        submit(c, false);
        c->tls_plain = plain;
        return -EINPROGRESS;
    }
    size_t plain = c->tls_plain;
    c->tls_plain = 0;
    if (plain == SIZE_MAX) {
        /* The transport's own records went: whatever the engine queued meanwhile goes now. */
        if (!(c->flags & F_PRE_OPEN) || (c->flags & F_CLOSE_AFTER))
            srv__conn_flush(c);
        return -EINPROGRESS;
    }
    return (int)plain;
}

/* A plain HTTP request on a TLS port: say so in plain text, as nginx does, and close. */
static void refuse_plain(srv__conn_t *c)
{
    static const char body[] = "This port speaks HTTPS: the request was sent in plain HTTP.\n";
    char head[256];
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 400 Bad Request\r\nServer: srv\r\nContent-Type: text/plain\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                     sizeof(body) - 1);
    srv__log(SRV_LOG_INFO, "tls", 0, "session %llx from %s: plain HTTP request on a TLS port",
             (unsigned long long)c->session, c->peer);
    srv__tls_free(c->tls);
    c->tls = NULL;
    c->transport = &srv__transport_plain;
    struct iovec iov[2] = {{head, (size_t)n}, {(void *)body, sizeof(body) - 1}};
    c->flags |= F_NO_READ | F_CLOSE_AFTER;
    if (srv__out_write(c, iov, 2) < 0) {
        srv__conn_close(c);
        return;
    }
    srv__conn_flush(c);
}

/* The handshake is done: remember what it negotiated and open the protocol. */
static int established(srv__conn_t *c)
{
    c->tls_info = malloc(sizeof(*c->tls_info));
    if (c->tls_info == NULL) {
        srv__conn_close(c);
        return -ENOMEM;
    }
    srv__tls_describe(c->tls, c->tls_info);
    srv__conninfo_set_tls(c->info, c->tls_info);
    srv__log_debug("tls", "session %llx from %s: %s %s%s", (unsigned long long)c->session,
                   c->peer, c->tls_info->version, c->tls_info->cipher,
                   srv__tls_resumed(c->tls) ? " (resumed)" : "");
    return srv__conn_open(c);
}

/* The connection failed (bad handshake, bad record): send the alert OpenSSL wrote, then close
 * (lingering, so the alert is not lost to a reset). */
static void failed(srv__conn_t *c)
{
    srv__log(SRV_LOG_INFO, "tls", 0, "session %llx from %s: %s%s",
             (unsigned long long)c->session, c->peer,
             (c->flags & F_PRE_OPEN) ? "handshake failed: " : "", srv__tls_reason(c->tls));
    c->flags |= F_NO_READ | F_CLOSE_AFTER;
    push(c);
    if (!(c->flags & F_SEND))
        srv__conn_close(c);
}

static void tls_input(srv__conn_t *c, const char *data, size_t len)
{
    static _Thread_local char *buf;
    if (srv__tls_feed(c->tls, data, len) == SRV__TLS_PLAIN) {
        if (c->proto == &srv__proto_http)
            refuse_plain(c);
        else
            failed(c);
        return;
    }
    if (buf == NULL && (buf = malloc(READ_PIECE)) == NULL) {
        srv__conn_close(c);
        return;
    }
    for (;;) {
        ssize_t n = srv__tls_read(c->tls, buf, READ_PIECE);
        if ((c->flags & F_PRE_OPEN) && srv__tls_established(c->tls) && established(c) < 0)
            return;
        if (n > 0) {
            c->proto->input(c, buf, (size_t)n);
            if (c->flags & (F_CLOSING | F_NO_READ))
                break;
            continue;
        }
        if (n == SRV__TLS_EOF)
            break;
        if (n == SRV__TLS_CLOSED) { /* close_notify: the peer's end of stream */
            push(c);
            c->flags |= F_EOF;
            if (c->flags & F_PRE_OPEN)
                srv__conn_close(c);
            else
                c->proto->eof(c);
            return;
        }
        failed(c);
        return;
    }
    if (!(c->flags & F_CLOSING))
        push(c);
}

static void tls_tick(srv__conn_t *c, int64_t now)
{
    if (now < c->tls_deadline)
        return;
    srv__log(SRV_LOG_INFO, "tls", 0, "session %llx from %s: handshake timeout (%d s)",
             (unsigned long long)c->session, c->peer,
             c->eng->cfg->listen[c->listener].ssl_handshake_timeout);
    srv__conn_close(c);
}

/* close_notify before the FIN, as nginx does: a client reading to the end of the stream (an
 * HTTP/1.0 body without a length) can tell the end from a truncation. */
static bool tls_finish(srv__conn_t *c)
{
    if (c->tls == NULL || !srv__tls_established(c->tls))
        return true;
    srv__tls_shutdown(c->tls);
    push(c);
    return !(c->flags & F_SEND);
}

static void tls_release(srv__conn_t *c)
{
    srv__tls_free(c->tls);
    c->tls = NULL;
    free(c->tls_info);
    c->tls_info = NULL;
    c->tls_plain = 0;
}

const srv__transport_t srv__transport_tls = {
    .name = "tls",
    .start = tls_start,
    .input = tls_input,
    .send = tls_send,
    .sent = tls_sent,
    .tick = tls_tick,
    .release = tls_release,
    .finish = tls_finish,
    .sendfile = false,
    .copies = true,
};
