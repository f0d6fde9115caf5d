/* Connections, protocol-neutral: accept, session slots, receive and send through the loop and
 * the connection's transport, bounded output queues with sendfile, timeouts, lingering close.
 * What the bytes mean is the protocol's (c->proto: conn_http.c, conn_ws.c, conn_tcp.c). */
#include "core/net/conn.h"
#include "core/base/buf.h"
#include "core/net/conn_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "core/base/log.h"

uint64_t srv__session_inst;

void srv__session_set_instance(int number)
{
    srv__session_inst = (uint64_t)(number & SRV_SESSION_INST_MAX) << SRV_SESSION_INST_SHIFT;
}

int64_t srv__engine_now_ms(srv__engine_t *e)
{
    return srv__loop_now(e->loop) / 1000000;
}

void srv__stat_add(_Atomic uint64_t *s, int64_t d)
{
    if (s)
        atomic_fetch_add_explicit(s, (uint64_t)d, memory_order_relaxed);
}

/* ---- output queue ---- */

static seg_t *seg_tail_mem(srv__conn_t *c, size_t need)
{
    if (c->qn > 0) {
        seg_t *t = &c->q[(c->qh + c->qn - 1) % OUTQ_MAX];
        /* The kernel reads the bytes of the segments a send in flight covers, up to the
         * lengths they had at submission: appending after them is safe, moving them
         * (realloc) is not. */
        bool busy = (c->flags & F_SEND) && c->qn - 1 < c->sending_segs;
        if (t->kind == SEG_MEM && t->cap - t->len >= need)
            return t;
        if (t->kind == SEG_MEM && !busy && t->off == 0 && c->qn >= OUTQ_MAX - 1) {
            if (srv__grow(&t->buf, &t->cap, t->len + need, SEG_MIN, SIZE_MAX) < 0)
                return NULL;
            return t;
        }
    }
    if (c->qn >= OUTQ_MAX)
        return NULL;
    seg_t *s = &c->q[(c->qh + c->qn) % OUTQ_MAX];
    size_t cap = need < SEG_MIN ? SEG_MIN : need;
    s->buf = malloc(cap);
    if (s->buf == NULL)
        return NULL;
    s->kind = SEG_MEM;
    s->cap = cap;
    s->len = s->off = 0;
    c->qn++;
    return s;
}

int srv__out_append(srv__conn_t *c, const struct iovec *iov, int iovcnt, size_t limit)
{
    size_t total = 0;
    for (int i = 0; i < iovcnt; i++)
        total += iov[i].iov_len;
    if (total == 0)
        return 0;
    if (c->qbytes + total > limit)
        return -ENOBUFS;
    bool was_idle = !srv__out_pending(c);
    seg_t *s = seg_tail_mem(c, total);
    if (s == NULL)
        return -ENOBUFS;
    if (was_idle)
        c->last_write = srv__engine_now_ms(c->eng); /* the send timeout counts from here */
    c->out_total += total;
    for (int i = 0; i < iovcnt; i++) {
        memcpy(s->buf + s->len, iov[i].iov_base, iov[i].iov_len);
        s->len += iov[i].iov_len;
    }
    c->qbytes += total;
    return 0;
}

int srv__out_write(srv__conn_t *c, const struct iovec *iov, int iovcnt)
{
    return srv__out_append(c, iov, iovcnt, (size_t)c->eng->cfg->buffer_output_size + (64u << 10));
}

int srv__out_file(srv__conn_t *c, int fd, uint64_t off, uint64_t len)
{
    if (c->qn >= OUTQ_MAX)
        return -ENOBUFS;
    if (!srv__out_pending(c))
        c->last_write = srv__engine_now_ms(c->eng);
    c->out_total += len;
    seg_t *s = &c->q[(c->qh + c->qn) % OUTQ_MAX];
    memset(s, 0, sizeof(*s));
    s->kind = SEG_FILE;
    s->file_fd = fd;
    s->foff = off;
    s->fleft = len;
    c->qn++;
    return 0;
}

static void seg_free(seg_t *s)
{
    if (s->kind == SEG_MEM)
        free(s->buf);
    else if (s->file_fd >= 0)
        close(s->file_fd);
    s->buf = NULL;
    s->file_fd = -1;
}

static void out_clear(srv__conn_t *c)
{
    while (c->qn > 0) {
        seg_free(&c->q[c->qh]);
        c->qh = (uint8_t)((c->qh + 1) % OUTQ_MAX);
        c->qn--;
    }
    c->qbytes = 0;
}

/* ---- connection life ---- */

static void conn_release(srv__conn_t *c)
{
    srv__engine_t *e = c->eng;
    if (!(c->flags & F_PRE_OPEN))
        c->proto->close(c);
    if (c->transport->release)
        c->transport->release(c);
    if (c->info)
        atomic_store_explicit(&c->info->session, 0, memory_order_release);
    close(c->fd);
    out_clear(c);
    free(c->in);
    uint32_t slot = SRV_SESSION_SLOT(c->session);
    e->slots[slot] = NULL;
    e->gens[slot]++;
    e->free_stack[e->nfree++] = slot;
    e->nconns--;
    srv__stat_add(e->stat_conns, -1);
    if (c->req)
        e->inflight--;
    if (c->req_store.log.open) /* cut short: the client went, or we closed */
        srv__access_end(c, &c->req_store, c->req_store.resp_bytes);
    srv__netstat_open(&e->net[c->listener].open[c->stat_proto], -1);
    if (e->ncached < 256 && !e->destroying) {
        /* A cached connection keeps what its protocol left for reuse (an HTTP parser): the
         * next connection takes it without a malloc. */
        c->next_free = e->conn_cache;
        e->conn_cache = c;
        e->ncached++;
    } else {
        e->conn_free(c);
    }
}

static void maybe_release(srv__conn_t *c)
{
    if ((c->flags & F_CLOSING) && c->refs == 0)
        conn_release(c);
}

void srv__conn_hold(srv__conn_t *c)
{
    c->refs++;
}

bool srv__conn_unhold(srv__conn_t *c)
{
    c->refs--;
    if (!(c->flags & F_CLOSING))
        return true;
    maybe_release(c);
    return false;
}

void srv__conn_close(srv__conn_t *c)
{
    if (c->flags & F_CLOSING)
        return;
    c->flags |= F_CLOSING;
    if (c->req && c->eng->ops.abandoned)
        c->eng->ops.abandoned(c->eng, c->req->id, c->req->tag);
    if (c->flags & F_RECV)
        srv__loop_cancel(c->eng->loop, &c->recv_op);
    if (c->flags & F_SEND)
        srv__loop_cancel(c->eng->loop, &c->send_op);
    maybe_release(c);
}

/* After the last byte of an answer we must close: half-close and keep reading (discarding)
 * for a moment, so a client still sending its body gets our response instead of a reset. */
static void begin_linger(srv__conn_t *c)
{
    if (c->flags & (F_EOF | F_CLOSING)) {
        srv__conn_close(c);
        return;
    }
    if (c->transport->finish && !(c->flags & F_FINISHED)) {
        c->flags |= F_FINISHED;
        if (!c->transport->finish(c))
            return; /* its goodbye is on its way: srv__conn_flush brings us back */
    }
    /* Unless nothing more is coming from the peer (proto->quiet): then there is nothing to
     * reset and it closes at once. */
    if (c->proto->quiet && !(c->flags & F_PRE_OPEN) && c->proto->quiet(c)) {
        /* The fd is closed once the recv in flight is cancelled, which may wait behind the
         * other callbacks of this run (a long handler in base mode): send the FIN now. */
        shutdown(c->fd, SHUT_WR);
        srv__conn_close(c);
        return;
    }
    shutdown(c->fd, SHUT_WR);
    c->flags |= F_LINGER | F_NO_READ;
    c->linger_until = srv__engine_now_ms(c->eng) + LINGER_MS;
    if (!(c->flags & F_RECV))
        srv__conn_close(c);
}

/* One piece of file segment s through a transport that copies what it sends (TLS): read into
 * a buffer of this thread, which the transport is done with when send() returns. */
static void file_send_copy(srv__conn_t *c, seg_t *s)
{
    static _Thread_local char *buf;
    enum { PIECE = 64 * 1024 };
    if (buf == NULL && (buf = malloc(PIECE)) == NULL) {
        srv__conn_close(c);
        return;
    }
    size_t want = s->fleft > PIECE ? PIECE : (size_t)s->fleft;
    ssize_t n;
    do
        n = pread(s->file_fd, buf, want, (off_t)s->foff);
    while (n < 0 && errno == EINTR);
    if (n <= 0) { /* the file shrank under us or cannot be read: the response is broken */
        srv__log_debug("conn", "session %llx: file read: %s", (unsigned long long)c->session,
                       n < 0 ? strerror(errno) : "end of file");
        srv__conn_close(c);
        return;
    }
    struct iovec iov = {buf, (size_t)n};
    c->flags |= F_SEND | F_SEND_FILE;
    c->refs++;
    c->sending_segs = 0;
    if (c->transport->send(c, &iov, 1) < 0) {
        c->flags &= ~(uint32_t)(F_SEND | F_SEND_FILE);
        c->refs--;
        srv__conn_close(c);
    }
}

/* A file piece went (file_send_copy): advance the segment, drop it when done. */
static void file_sent(srv__conn_t *c, size_t n)
{
    seg_t *s = &c->q[c->qh];
    s->foff += n;
    s->fleft -= n < s->fleft ? n : s->fleft;
    c->out_done += n;
    c->last_write = srv__engine_now_ms(c->eng);
    if (c->proto->writable)
        c->proto->writable(c);
    if (c->flags & F_CLOSING)
        return;
    if (s->fleft == 0) {
        seg_free(s);
        c->qh = (uint8_t)((c->qh + 1) % OUTQ_MAX);
        c->qn--;
    }
    srv__conn_flush(c);
}

void srv__conn_flush(srv__conn_t *c)
{
    if (c->flags & (F_SEND | F_CLOSING))
        return;
    while (c->qn > 0) {
        seg_t *s = &c->q[c->qh];
        if (s->kind == SEG_MEM) {
            int n = 0;
            for (int i = 0; i < c->qn; i++) {
                seg_t *t = &c->q[(c->qh + i) % OUTQ_MAX];
                if (t->kind != SEG_MEM)
                    break;
                c->iov[n].iov_base = t->buf + t->off;
                c->iov[n].iov_len = t->len - t->off;
                n++;
            }
            c->flags |= F_SEND;
            c->refs++;
            c->sending_segs = (uint8_t)n;
            int rc = c->transport->send(c, c->iov, n);
            if (rc < 0) {
                c->flags &= ~(uint32_t)F_SEND;
                c->refs--;
                srv__conn_close(c);
            }
            return;
        }
        /* A file: sendfile in place while the socket takes it; wait for POLLOUT otherwise. A
         * transport that must see the bytes (TLS) gets them read into memory, a piece at a
         * time. */
        if (!c->transport->sendfile) {
            file_send_copy(c, s);
            return;
        }
        while (s->fleft > 0) {
            off_t off = (off_t)s->foff;
            size_t chunk = s->fleft > (1u << 20) ? (1u << 20) : (size_t)s->fleft;
            ssize_t n = sendfile(c->fd, s->file_fd, &off, chunk);
            if (n > 0) {
                s->foff += (uint64_t)n;
                s->fleft -= (uint64_t)n;
                c->out_done += (uint64_t)n;
                c->last_write = srv__engine_now_ms(c->eng);
                if (c->proto->writable)
                    c->proto->writable(c);
                if (c->flags & F_CLOSING)
                    return;
                continue;
            }
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0 && errno == EAGAIN) {
                c->flags |= F_SEND;
                c->refs++;
                if (srv__loop_poll(c->eng->loop, &c->send_op, c->fd, POLLOUT) < 0) {
                    c->flags &= ~(uint32_t)F_SEND;
                    c->refs--;
                    srv__conn_close(c);
                }
                return;
            }
            /* File shrank under us (n == 0) or the socket failed: the response is broken. */
            srv__conn_close(c);
            return;
        }
        seg_free(s);
        c->qh = (uint8_t)((c->qh + 1) % OUTQ_MAX);
        c->qn--;
    }
    if ((c->flags & F_CLOSE_AFTER) && c->req == NULL)
        begin_linger(c);
}

static void on_send(srv__loop_t *loop, srv__loop_op_t *op, int res, const char *data,
                    uint32_t flags)
{
    srv__conn_t *c = op->data;
    bool file = (c->flags & F_SEND_FILE) != 0;
    if (res > 0)
        srv__netstat_add(&c->eng->net[c->listener].bytes_out, (uint64_t)res);
    c->flags &= ~(uint32_t)(F_SEND | F_SEND_FILE);
    c->sending_segs = 0;
    c->refs--;
    if (c->flags & F_CLOSING) {
        maybe_release(c);
        return;
    }
    if (c->transport->sent) {
        res = c->transport->sent(c, res);
        if (res == -EINPROGRESS) {
            if (file && (c->flags & F_SEND))
                c->flags |= F_SEND_FILE; /* still the same piece */
            return;
        }
    }
    if (file && res >= 0) {
        file_sent(c, (size_t)res);
        return;
    }
    if (res < 0) {
        if (res == -EAGAIN || res == -EINTR) {
            srv__conn_flush(c);
            return;
        }
        srv__log_debug("conn", "session %llx: send: %s", (unsigned long long)c->session,
                      srv_strerror(res));
        srv__conn_close(c);
        return;
    }
    if (c->qn > 0 && c->q[c->qh].kind == SEG_FILE) {
        srv__conn_flush(c); /* that was the POLLOUT wait of a sendfile */
        return;
    }
    size_t n = (size_t)res;
    c->last_write = srv__engine_now_ms(c->eng);
    c->qbytes -= n < c->qbytes ? n : c->qbytes;
    c->out_done += n;
    if (c->proto->writable)
        c->proto->writable(c);
    if (c->flags & F_CLOSING)
        return;
    while (n > 0 && c->qn > 0) {
        seg_t *s = &c->q[c->qh];
        size_t left = s->len - s->off;
        if (n < left) {
            s->off += n;
            break;
        }
        n -= left;
        /* HTTP keeps one small buffer for the next response instead of a malloc per
         * request; WebSocket and TCP connections mostly sit idle, so they give it back. */
        if (c->qn == 1 && s->cap <= SEG_MIN && c->proto->keep_buffer) {
            s->len = s->off = 0;
            if (c->flags & F_CLOSE_AFTER)
                break;
            return;
        }
        seg_free(s);
        c->qh = (uint8_t)((c->qh + 1) % OUTQ_MAX);
        c->qn--;
    }
    if (c->qn == 1 && c->q[c->qh].kind == SEG_MEM && c->q[c->qh].len == c->q[c->qh].off) {
        if (c->flags & F_CLOSE_AFTER) {
            seg_free(&c->q[c->qh]);
            c->qn = 0;
        } else
            return;
    }
    srv__conn_flush(c);
}

bool srv__out_pending(const srv__conn_t *c)
{
    for (int i = 0; i < c->qn; i++) {
        const seg_t *s = &c->q[(c->qh + i) % OUTQ_MAX];
        if (s->kind == SEG_FILE || s->len > s->off)
            return true;
    }
    return false;
}

/* Input the protocol has not consumed yet (pipelined requests while one is with the app,
 * bytes after a handshake) waits here; past the listener's bound we stop reading until the
 * protocol consumed it. */
int srv__conn_in_append(srv__conn_t *c, const char *data, size_t len)
{
    size_t cap = c->in_cap;
    if (srv__grow(&c->in, &cap, (size_t)c->in_len + len, 1024, UINT32_MAX) < 0)
        return -ENOMEM;
    c->in_cap = (uint32_t)cap;
    memcpy(c->in + c->in_len, data, len);
    c->in_len += (uint32_t)len;
    return 0;
}

void srv__conn_in_consume(srv__conn_t *c, size_t n)
{
    if (n >= c->in_len) {
        c->in_len = 0;
        if (c->in_cap > 4096) {
            free(c->in);
            c->in = NULL;
            c->in_cap = 0;
        }
        return;
    }
    memmove(c->in, c->in + n, c->in_len - n);
    c->in_len -= (uint32_t)n;
}

void srv__conn_in_pause(srv__conn_t *c)
{
    if (c->in_len >= c->eng->in_max[c->listener] && (c->flags & F_RECV))
        srv__loop_cancel(c->eng->loop, &c->recv_op); /* re-armed when consumed */
}

static void on_recv(srv__loop_t *loop, srv__loop_op_t *op, int res, const char *data,
                    uint32_t flags);

void srv__conn_arm_recv(srv__conn_t *c)
{
    if (c->flags & (F_RECV | F_CLOSING | F_EOF))
        return;
    if (c->in_len >= c->eng->in_max[c->listener] && !(c->flags & F_LINGER))
        return;
    c->flags |= F_RECV;
    c->refs++;
    if (srv__loop_recv(c->eng->loop, &c->recv_op, c->fd) < 0) {
        c->flags &= ~(uint32_t)F_RECV;
        c->refs--;
        srv__conn_close(c);
    }
}

static void on_recv(srv__loop_t *loop, srv__loop_op_t *op, int res, const char *data,
                    uint32_t flags)
{
    srv__conn_t *c = op->data;
    if (!(flags & SRV_LOOP_MORE)) {
        c->flags &= ~(uint32_t)F_RECV;
        c->refs--;
    }
    if (c->flags & F_CLOSING) {
        maybe_release(c);
        return;
    }
    if (res > 0) {
        c->last_read = srv__engine_now_ms(c->eng);
        srv__netstat_add(&c->eng->net[c->listener].bytes_in, (uint64_t)res);
        if (c->info)
            atomic_store_explicit(&c->info->last_ms, srv__engine_wall_ms(c->eng),
                                  memory_order_relaxed);
        /* The app (base mode) or a failed hand-off may close c while its parser or framer is
         * still working on these bytes: c and its protocol state outlive this call. */
        srv__conn_hold(c);
        if (!(c->flags & F_NO_READ))
            c->transport->input(c, data, (size_t)res);
        if (!(c->flags & (F_RECV | F_CLOSING)) && !(flags & SRV_LOOP_MORE))
            srv__conn_arm_recv(c);
        srv__conn_unhold(c);
        return;
    }
    if (res == 0) {
        c->flags |= F_EOF;
        if ((c->flags & F_PRE_OPEN) && c->transport->start)
            srv__log(SRV_LOG_INFO, "conn", 0, "session %llx from %s: closed during the %s handshake",
                     (unsigned long long)c->session, c->peer, c->transport->name);
        if (c->flags & (F_LINGER | F_PRE_OPEN))
            srv__conn_close(c);
        else
            c->proto->eof(c);
        return;
    }
    if (res == -ECANCELED) {
        srv__conn_arm_recv(c); /* a pause that has since been lifted re-arms here */
        return;
    }
    srv__log_debug("conn", "session %llx: recv: %s", (unsigned long long)c->session,
                  srv_strerror(res));
    srv__conn_close(c);
}

static uint64_t total_conns(const srv__engine_t *e)
{
    return e->conns_total ? e->conns_total() : e->nconns;
}

/* A connection from the cache (keeping what its protocol left for reuse) or the heap. */
static srv__conn_t *conn_take(srv__engine_t *e)
{
    srv__conn_t *c = e->conn_cache;
    if (c == NULL) {
        c = malloc(sizeof(*c));
        if (c != NULL)
            memset(c, 0, sizeof(*c));
        return c;
    }
    e->conn_cache = c->next_free;
    e->ncached--;
    e->conn_reset(c);
    return c;
}

static void peer_fill(srv__conn_t *c)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    strcpy(c->peer, "unix");
    if (getpeername(c->fd, (struct sockaddr *)&ss, &sl) != 0)
        return;
    if (ss.ss_family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &a->sin_addr, c->peer, sizeof(c->peer));
        c->peer_port = ntohs(a->sin_port);
        c->peer_hash = a->sin_addr.s_addr * 2654435761u;
    } else if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        inet_ntop(AF_INET6, &a->sin6_addr, c->peer, sizeof(c->peer));
        c->peer_port = ntohs(a->sin6_port);
        uint32_t h = 2166136261u;
        for (int i = 0; i < 16; i++)
            h = (h ^ a->sin6_addr.s6_addr[i]) * 16777619u;
        c->peer_hash = h;
    }
}

static void info_fill(srv__conn_t *c, srv__conninfo_t *ci)
{
    c->info = ci;
    ci->listener = c->listener;
    ci->peer_port = c->peer_port;
    memcpy(ci->peer, c->peer, sizeof(c->peer));
    ci->connect_ms = srv__engine_wall_ms(c->eng);
    atomic_store(&ci->last_ms, ci->connect_ms);
    atomic_store(&ci->uid, 0);
    atomic_store(&ci->websocket, 0);
    atomic_store(&ci->tls, 0);
    atomic_store_explicit(&ci->session, c->session, memory_order_release);
}

static void new_conn(srv__engine_t *e, int li, int fd)
{
    if (total_conns(e) >= (uint64_t)e->cfg->max_conn ||
        (e->nfree == 0 && e->used_slots >= e->max_slots)) {
        int64_t now = srv__engine_now_ms(e);
        if (now - e->last_limit_log > 1000) {
            e->last_limit_log = now;
            srv__log(SRV_LOG_WARN, "conn", 0, "max_conn (%d) reached; refusing connections",
                     e->cfg->max_conn);
        }
        srv__netstat_add(&e->net[li].refused, 1);
        close(fd);
        return;
    }
    srv__conn_t *c = conn_take(e);
    if (c == NULL) {
        close(fd);
        return;
    }
    uint32_t slot = e->nfree ? e->free_stack[--e->nfree] : e->used_slots++;
    c->session = SRV_SESSION_MAKE(e->id, e->gens[slot], slot);
    e->slots[slot] = c;
    c->eng = e;
    c->fd = fd;
    c->listener = (uint16_t)li;
    c->proto = e->listen_proto[li];
    c->transport = e->listen_transport[li];
    c->worker = -1;
    c->recv_op.cb = on_recv;
    c->recv_op.data = c;
    c->send_op.cb = on_send;
    c->send_op.data = c;
    c->last_read = c->last_write = srv__engine_now_ms(e);
    peer_fill(c);
    e->nconns++;
    srv__stat_add(e->stat_conns, 1);
    srv__stat_add(e->stat_accepted, 1);
    c->stat_proto = c->proto == &srv__proto_tcp ? SRV_NETSTAT_TCP : SRV_NETSTAT_HTTP;
    srv__netstat_add(&e->net[li].accepted, 1);
    srv__netstat_open(&e->net[li].open[c->stat_proto], 1);
    if (e->conninfo)
        info_fill(c, &e->conninfo[slot]);
    if (c->transport->start) {
        if (c->transport->start(c) < 0) {
            srv__conn_close(c);
            return;
        }
    }
    if (!(c->flags & F_PRE_OPEN) && c->proto->open(c) < 0) {
        srv__conn_close(c); /* (a refused event already did) */
        return;
    }
    srv__conn_arm_recv(c);
}

int srv__conn_open(srv__conn_t *c)
{
    c->flags &= ~(uint32_t)F_PRE_OPEN;
    int rc = c->proto->open(c);
    if (rc < 0)
        srv__conn_close(c); /* (a refused event already did) */
    return rc;
}

int srv__conn_send_raw(srv__conn_t *c, const struct iovec *iov, int iovcnt)
{
    return srv__loop_send(c->eng->loop, &c->send_op, c->fd, iov, iovcnt);
}

static void arm_accept(srv__engine_t *e, int i);

static void on_accept(srv__loop_t *loop, srv__loop_op_t *op, int res, const char *data,
                      uint32_t flags)
{
    srv__engine_t *e = op->data;
    int i = (int)(op - e->accept_op);
    if (!(flags & SRV_LOOP_MORE))
        e->accept_armed[i] = false;
    if (res >= 0) {
        /* Draining still serves what the kernel already accepted for us (with
         * Connection: close); only a destroyed engine drops it. */
        if (!e->destroying)
            new_conn(e, i, res);
        else
            close(res);
    } else if (res == -EMFILE || res == -ENFILE || res == -ENOBUFS || res == -ENOMEM) {
        int64_t now = srv__engine_now_ms(e);
        if (now - e->last_limit_log > 1000) {
            e->last_limit_log = now;
            srv__log(SRV_LOG_WARN, "conn", -res, "accept: out of descriptors; retrying");
        }
        return; /* the tick re-arms it */
    } else if (res != -ECANCELED && res != -EAGAIN && res != -EINTR && res != -ECONNABORTED) {
        srv__log(SRV_LOG_ERROR, "conn", -res, "accept on listener %d", i);
    }
    if (!e->accept_armed[i] && e->accepting && !e->destroying && res != -ECANCELED)
        arm_accept(e, i);
}

static void arm_accept(srv__engine_t *e, int i)
{
    if (e->accept_armed[i] || e->listen_fd[i] < 0)
        return;
    e->accept_op[i].cb = on_accept;
    e->accept_op[i].data = e;
    if (srv__loop_accept(e->loop, &e->accept_op[i], e->listen_fd[i]) == 0)
        e->accept_armed[i] = true;
}

static void on_tick(srv__loop_t *loop, srv__loop_op_t *op, int res, const char *data,
                    uint32_t flags);

static void arm_tick(srv__engine_t *e)
{
    if (e->tick_armed || e->destroying)
        return;
    e->tick_op.cb = on_tick;
    e->tick_op.data = e;
    if (srv__loop_timer(e->loop, &e->tick_op, TICK_MS) == 0)
        e->tick_armed = true;
}

static void on_tick(srv__loop_t *loop, srv__loop_op_t *op, int res, const char *data,
                    uint32_t flags)
{
    srv__engine_t *e = op->data;
    e->tick_armed = false;
    if (e->destroying || res == -ECANCELED)
        return; /* srv__engine_close_all: nothing of the engine stays armed */
    int64_t now = srv__engine_now_ms(e);
    const srv__config_t *cfg = e->cfg;
    for (uint32_t i = 0; i < e->used_slots; i++) {
        srv__conn_t *c = e->slots[i];
        if (c == NULL || (c->flags & F_CLOSING))
            continue;
        if (c->flags & F_LINGER) {
            if (now >= c->linger_until)
                srv__conn_close(c);
            continue;
        }
        /* A client that takes none of its output for send_timeout is gone or hostile, whether
         * or not a request of its is still with the app. */
        if (srv__out_pending(c) && now - c->last_write > cfg->send_timeout) {
            srv__log(SRV_LOG_INFO, "conn", 0, "session %llx from %s: send timeout (%d ms)",
                    (unsigned long long)c->session, c->peer, cfg->send_timeout);
            srv__conn_close(c);
            continue;
        }
        if (c->flags & F_PRE_OPEN) {
            if (c->transport->tick)
                c->transport->tick(c, now);
            continue;
        }
        c->proto->tick(c, now);
    }
    for (int i = 0; i < e->nlisten; i++)
        if (e->accepting && !e->accept_armed[i])
            arm_accept(e, i);
    arm_tick(e);
}

/* ---- engine ---- */

void srv__engine_start(srv__engine_t *e, bool accept)
{
    if (accept) {
        e->accepting = true;
        for (int i = 0; i < e->nlisten; i++)
            arm_accept(e, i);
    }
    arm_tick(e);
}

void srv__engine_free_conns(srv__engine_t *e)
{
    for (uint32_t i = 0; i < e->used_slots && e->slots; i++) {
        srv__conn_t *c = e->slots[i];
        if (c) {
            c->flags |= F_CLOSING;
            c->refs = 0;
            conn_release(c);
        }
    }
    while (e->conn_cache) {
        srv__conn_t *c = e->conn_cache;
        e->conn_cache = c->next_free;
        e->conn_free(c);
    }
}

void *srv__engine_data(srv__engine_t *e)
{
    return e->data;
}

srv__loop_t *srv__engine_loop(srv__engine_t *e)
{
    return e->loop;
}

void srv__engine_accept_stop(srv__engine_t *e)
{
    e->accepting = false;
    for (int i = 0; i < e->nlisten; i++)
        if (e->accept_armed[i])
            srv__loop_cancel(e->loop, &e->accept_op[i]);
}

void srv__engine_drain(srv__engine_t *e)
{
    srv__engine_accept_stop(e);
    if (!e->draining)
        e->drain_start = srv__engine_now_ms(e);
    e->draining = true;
    /* HTTP has no drain: an idle keep-alive connection may have a request on its way; it is
     * answered with Connection: close, and one still idle after a grace period is closed
     * gently (its tick), so a reload resets no client. */
    for (uint32_t i = 0; i < e->used_slots; i++) {
        srv__conn_t *c = e->slots[i];
        if (c == NULL || (c->flags & (F_CLOSING | F_PRE_OPEN)) || c->req ||
            c->proto->drain == NULL)
            continue;
        c->proto->drain(c);
    }
}

void srv__engine_close_all(srv__engine_t *e)
{
    for (uint32_t i = 0; i < e->used_slots; i++)
        if (e->slots[i])
            srv__conn_close(e->slots[i]);
    if (e->tick_armed)
        srv__loop_cancel(e->loop, &e->tick_op);
    srv__engine_accept_stop(e);
}

uint64_t srv__engine_conns(const srv__engine_t *e)
{
    return e->nconns;
}

uint64_t srv__engine_inflight(const srv__engine_t *e)
{
    return e->inflight;
}

srv__conn_t *srv__conn_lookup(srv__engine_t *e, uint64_t session)
{
    uint32_t slot = SRV_SESSION_SLOT(session);
    if (slot >= e->used_slots)
        return NULL;
    srv__conn_t *c = e->slots[slot];
    if (c == NULL || c->session != session || (c->flags & F_CLOSING))
        return NULL;
    return c;
}

uint64_t srv__conn_session(const srv__conn_t *c)
{
    return c->session;
}

uint64_t srv__conn_request_id(const srv__conn_t *c)
{
    return c->req ? c->req->id : c->session;
}

int srv__conn_fd(const srv__conn_t *c)
{
    return c->fd;
}

int srv__conn_listener(const srv__conn_t *c)
{
    return c->listener;
}

int srv__conn_get_worker(const srv__conn_t *c)
{
    return c->worker;
}

void srv__conn_set_worker(srv__conn_t *c, int worker)
{
    c->worker = worker;
}

void srv__conn_set_tag(srv__conn_t *c, int tag, int worker)
{
    if (c->req) {
        c->req->tag = tag;
        c->req->log.worker = (int16_t)worker;
    }
}

int srv__conn_get_tag(const srv__conn_t *c)
{
    return c->req ? c->req->tag : -1;
}

const char *srv__conn_peer(const srv__conn_t *c)
{
    return c->peer;
}

uint32_t srv__conn_peer_hash(const srv__conn_t *c)
{
    return c->peer_hash;
}

int64_t srv__engine_wall_ms(srv__engine_t *e)
{
    (void)e;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME_COARSE, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int srv__conn_app_event(srv__conn_t *c, srv__engine_event_t ev, uint16_t arg, const void *data,
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

bool srv__conn_heartbeat(srv__conn_t *c, int64_t now)
{
    int64_t idle = c->eng->idle_ms[c->listener];
    if (idle <= 0 || now - c->last_read <= idle)
        return false;
    srv__log(SRV_LOG_INFO, "conn", 0, "session %llx from %s: idle for %lld ms (heartbeat); closing",
             (unsigned long long)c->session, c->peer, (long long)(now - c->last_read));
    srv__conn_close(c);
    return true;
}

/* ---- the plain transport: bytes pass through ---- */

static void plain_input(srv__conn_t *c, const char *data, size_t len)
{
    c->proto->input(c, data, len);
}

static int plain_send(srv__conn_t *c, const struct iovec *iov, int iovcnt)
{
    return srv__loop_send(c->eng->loop, &c->send_op, c->fd, iov, iovcnt);
}

const srv__transport_t srv__transport_plain = {
    .name = "plain", .input = plain_input, .send = plain_send, .sendfile = true};
