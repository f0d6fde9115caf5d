/* Reactor threads: one loop and one engine each; a channel per worker carries parsed requests
 * out and response bytes back, batched: frames queue in a per-channel buffer during a loop
 * iteration and go out in one send after it, so a busy worker costs one syscall per batch,
 * not per request. */
#include "core/process/reactor.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/net/conn.h"
#include "core/ipc/ipc.h"
#include "core/base/log.h"
#include "core/loop/loop.h"
#include "core/server/server.h"
#include "core/worker/engine_ipc.h"
#include "protocols/http.h"

typedef struct reactor reactor_t;

typedef struct chan {
    reactor_t *r;
    int fd;
    int fdsock; /* descriptors of file responses arrive here (SRV_IPC_F_FD) */
    int slot;
    uint32_t gen;
    int tag;
    srv__loop_op_t recv_op;
    srv__loop_op_t send_op;
    bool recv_armed, send_armed;
    bool draining; /* replaced: shut our write side once flushed */
    bool shut;
    bool dead;
    srv__ipc_buf_t out;     /* frames queued this iteration */
    srv__ipc_buf_t sending; /* frames the kernel holds */
    size_t sent;
    struct iovec iov;
    srv__ipc_buf_t in; /* a frame split across reads */
    struct big *big, *big_tail; /* requests too large for one frame, sent in pieces */
    struct chan *next;
} chan_t;

/* One encoded request waiting to go out in SRV_IPC_PIECE pieces. There is at most one per
 * connection with a request in flight, and the connection's parser holds the same bytes
 * anyway: the bound is max_conn requests of package_max_length each, as for the parsers. */
typedef struct big {
    uint64_t session;
    uint16_t type;
    char *data;
    size_t len, off;
    struct big *next;
} big_t;

typedef struct mail {
    int slot;
    uint32_t gen;
    int fd, fdsock;
} mail_t;

struct reactor {
    int id;
    const srv__config_t *cfg; /* the reactors' options: worker_num, dispatch_mode, bounds */
    pthread_t th;
    srv__loop_t *loop;
    srv__engine_t *eng;
    chan_t **cur; /* per worker slot */
    int *inflight_per_worker;
    chan_t *chans;
    uint32_t rr;
    int next_tag;
    pthread_mutex_t mu;
    mail_t *mail;
    int nmail, mail_cap;
    _Atomic bool stop;
    /* A reload's configuration, taken at the next wake-up (srv__reactors_set_cfg). */
    _Atomic(const srv__config_t *) next_cfg;
    _Atomic(const srv__config_t *) cfg_taken;
    _Atomic bool drain;
    _Atomic uint64_t inflight_pub;
    bool started;
    pthread_cond_t cond;
    bool init_done;
    int init_rc;
};

static reactor_t *g_reactors;
static int g_nreactors;
static char g_backend[16];

static void chan_flush(chan_t *ch);

static void chan_free_if_done(chan_t *ch)
{
    if (!ch->dead || ch->recv_armed || ch->send_armed)
        return;
    reactor_t *r = ch->r;
    for (chan_t **pp = &r->chans; *pp; pp = &(*pp)->next) {
        if (*pp == ch) {
            *pp = ch->next;
            break;
        }
    }
    close(ch->fd);
    close(ch->fdsock);
    while (ch->big) {
        big_t *b = ch->big;
        ch->big = b->next;
        free(b->data);
        free(b);
    }
    srv__ipc_buf_deinit(&ch->out);
    srv__ipc_buf_deinit(&ch->sending);
    srv__ipc_buf_deinit(&ch->in);
    free(ch);
}

static void chan_kill(chan_t *ch, const char *why)
{
    if (ch->dead)
        return;
    reactor_t *r = ch->r;
    ch->dead = true;
    if (r->cur[ch->slot] == ch) {
        r->cur[ch->slot] = NULL;
        r->inflight_per_worker[ch->slot] = 0;
    }
    if (!ch->draining && !atomic_load(&r->stop))
        srv__log_debug("ipc", "reactor %d: channel to worker #%d closed (%s)", r->id, ch->slot,
                       why);
    /* Requests the process took with it: 503 where nothing was sent yet, else close; the one
     * the watchdog killed it for (request_timeout) gets 504. */
    uint64_t hk = atomic_exchange(&srv__server.stats->workers[ch->slot].harakiri_session, 0);
    if (hk != 0)
        srv__engine_fail_timeout(r->eng, hk);
    srv__engine_fail_inflight(r->eng, ch->tag);
    if (ch->recv_armed)
        srv__loop_cancel(r->loop, &ch->recv_op);
    if (ch->send_armed)
        srv__loop_cancel(r->loop, &ch->send_op);
    chan_free_if_done(ch);
}

/* A file response: the worker opened the file and sent its descriptor ahead of the frame, so
 * the reactor thread never opens (or blocks on) a file. */
static void file_frame(chan_t *ch, const srv__ipc_hdr_t *h, const char *payload)
{
    reactor_t *r = ch->r;
    srv__ipc_file_t f;
    int fd = -1;
    if ((h->flags & SRV_IPC_F_FD) && (fd = srv__ipc_fd_recv(ch->fdsock)) < 0)
        srv__log(SRV_LOG_ERROR, "ipc", -fd, "reactor %d: no descriptor from worker #%d", r->id,
                 ch->slot);
    if (fd < 0 || h->len < sizeof(f)) {
        if (fd >= 0)
            close(fd);
        /* The head is already queued: the response cannot be completed. */
        srv__engine_action(r->eng, h->session, SRV_ENGINE_RESPOND, SRV_ENGINE_F_ERROR, NULL, 0);
        return;
    }
    memcpy(&f, payload, sizeof(f));
    srv__engine_file_t ef = {.fd = fd, .off = f.offset, .len = f.length};
    srv__engine_action(r->eng, h->session, SRV_ENGINE_RESPOND_FD,
                       (uint16_t)srv__ipc_to_resp_flags(h->flags), &ef, sizeof(ef));
}

/* A worker's frame: everything is an engine action; the reactor's own part is the count of
 * requests each worker has (dispatch_mode 3) and telling a stream's producer its client left. */
static void on_frame(void *arg, const srv__ipc_hdr_t *h, const char *payload)
{
    chan_t *ch = arg;
    reactor_t *r = ch->r;
    srv__engine_action_t a = srv__ipc_to_action(h->type);
    bool answer =
        a == SRV_ENGINE_WS_ACCEPT || ((a == SRV_ENGINE_RESPOND || a == SRV_ENGINE_RESPOND_FD) &&
                                      (h->flags & (SRV_IPC_F_FINAL | SRV_IPC_F_ERROR)));
    if (answer && r->inflight_per_worker[ch->slot] > 0 && r->cur[ch->slot] == ch)
        r->inflight_per_worker[ch->slot]--;
    if (a == SRV_ENGINE_RESPOND_FD) {
        file_frame(ch, h, payload);
        return;
    }
    uint16_t arg16 =
        a == SRV_ENGINE_RESPOND ? (uint16_t)srv__ipc_to_resp_flags(h->flags) : h->flags;
    int rc = srv__engine_action(r->eng, h->session, a, arg16, payload, h->len);
    if (a == SRV_ENGINE_RESPOND && (rc == -ENOENT || rc == -EPROTO) &&
        !(h->flags & SRV_IPC_F_FINAL)) {
        /* A stream for a client that has gone: tell the worker, so the app stops. */
        srv__ipc_frame_put(&ch->out, h->session, SRV_IPC_GONE, 0, NULL, 0);
    }
}

static void on_chan_recv(srv__loop_t *loop, srv__loop_op_t *op, int res, const char *data,
                         uint32_t flags)
{
    chan_t *ch = op->data;
    if (!(flags & SRV_LOOP_MORE))
        ch->recv_armed = false;
    if (ch->dead) {
        chan_free_if_done(ch);
        return;
    }
    if (res > 0) {
        int rc = srv__ipc_feed(&ch->in, data, (size_t)res, on_frame, ch);
        if (rc < 0) {
            srv__log(SRV_LOG_ERROR, "ipc", rc, "reactor %d: corrupt stream from worker #%d",
                    ch->r->id, ch->slot);
            chan_kill(ch, "corrupt");
            return;
        }
        if (!ch->recv_armed && !ch->dead) {
            ch->recv_armed = srv__loop_recv(loop, &ch->recv_op, ch->fd) == 0;
            if (!ch->recv_armed)
                chan_kill(ch, "recv");
        }
        return;
    }
    chan_kill(ch, res == 0 ? "worker exited" : srv_strerror(res));
}

static void on_chan_send(srv__loop_t *loop, srv__loop_op_t *op, int res, const char *data,
                         uint32_t flags)
{
    chan_t *ch = op->data;
    ch->send_armed = false;
    if (ch->dead) {
        chan_free_if_done(ch);
        return;
    }
    if (res < 0 && res != -EAGAIN && res != -EINTR) {
        chan_kill(ch, srv_strerror(res));
        return;
    }
    if (res > 0)
        ch->sent += (size_t)res;
    if (ch->sent >= ch->sending.len) {
        ch->sending.len = 0;
        ch->sent = 0;
    }
    chan_flush(ch);
}

/* Move pieces of the large requests waiting into the frames going out, while the channel has
 * room: the worker reassembles them (SRV_IPC_F_MORE). */
static void chan_pump_big(chan_t *ch)
{
    size_t room_for = ch->out.max / 2;
    while (ch->big && ch->out.len < room_for) {
        big_t *b = ch->big;
        size_t n = b->len - b->off;
        uint16_t flags = 0;
        if (n > SRV_IPC_PIECE) {
            n = SRV_IPC_PIECE;
            flags = SRV_IPC_F_MORE;
        }
        if (srv__ipc_frame_put(&ch->out, b->session, b->type, flags, b->data + b->off,
                              (uint32_t)n) < 0)
            return;
        b->off += n;
        if (b->off < b->len)
            continue;
        ch->big = b->next;
        if (ch->big == NULL)
            ch->big_tail = NULL;
        free(b->data);
        free(b);
    }
}

static void chan_flush(chan_t *ch)
{
    if (ch->dead || ch->send_armed)
        return;
    chan_pump_big(ch);
    if (ch->sending.len == 0 && ch->out.len > 0) {
        srv__ipc_buf_t t = ch->sending;
        ch->sending = ch->out;
        ch->out = t;
        ch->sent = 0;
    }
    if (ch->sending.len > ch->sent) {
        ch->iov.iov_base = ch->sending.data + ch->sent;
        ch->iov.iov_len = ch->sending.len - ch->sent;
        if (srv__loop_send(ch->r->loop, &ch->send_op, ch->fd, &ch->iov, 1) == 0)
            ch->send_armed = true;
        else
            chan_kill(ch, "send");
        return;
    }
    if (ch->draining && !ch->shut) {
        /* Everything we owed the old process is out: EOF tells it to finish and exit. */
        ch->shut = true;
        shutdown(ch->fd, SHUT_WR);
    }
}

/* The worker for a request or event. HTTP requests follow dispatch_mode exactly; a stream
 * connection (TCP, WebSocket) picks its worker when it opens (round robin or least busy in
 * modes 1 and 3) and keeps it, so on_close can never overtake an on_receive. */
static chan_t *pick(reactor_t *r, srv__conn_t *c, bool request)
{
    const srv__config_t *cfg = r->cfg;
    int n = cfg->worker_num;
    int w = -1;
    int mode = cfg->dispatch_mode;
    if (!request && (mode == 1 || mode == 3) && srv__conn_get_worker(c) >= 0)
        mode = 2;
    switch (mode) {
    case 1:
        w = (int)(r->rr++ % (uint32_t)n);
        if (!request)
            srv__conn_set_worker(c, w);
        break;
    case 3: {
        int best = -1;
        (void)0;
        for (int i = 0; i < n; i++) {
            int k = (int)((r->rr + (uint32_t)i) % (uint32_t)n);
            if (r->cur[k] && (best < 0 || r->inflight_per_worker[k] < r->inflight_per_worker[best]))
                best = k;
        }
        r->rr++;
        w = best;
        if (!request)
            srv__conn_set_worker(c, w);
        break;
    }
    case 4:
        w = (int)(srv__conn_peer_hash(c) % (uint32_t)n);
        break;
    default: /* 2, and 5 (srv_bind sets the worker; before that, like 2) */
        w = srv__conn_get_worker(c);
        if (w < 0) {
            w = (int)(r->rr++ % (uint32_t)n);
            srv__conn_set_worker(c, w);
        }
        break;
    }
    if (w >= 0 && r->cur[w])
        return r->cur[w];
    /* That worker is being respawned: rather than fail, use the next live one. */
    for (int i = 1; i <= n; i++) {
        int k = ((w < 0 ? 0 : w) + i) % n;
        if (r->cur[k])
            return r->cur[k];
    }
    return NULL;
}

static int reactor_dispatch(srv__engine_t *e, srv__conn_t *c, srv__engine_event_t ev,
                            const srv_request_t *req)
{
    reactor_t *r = srv__engine_data(e);
    uint16_t type = srv__event_to_ipc(ev);
    chan_t *ch = pick(r, c, ev == SRV_ENGINE_EV_REQUEST);
    if (ch == NULL)
        return -EAGAIN;
    uint64_t id = srv__conn_request_id(c); /* what the worker's answer names */
    size_t plen = srv__http_request_encoded_size(req);
    if (plen > SRV_IPC_PIECE) {
        /* Too large for one frame (a body up to package_max_length): encoded once, sent in
         * pieces as the channel drains. */
        big_t *b = calloc(1, sizeof(*b));
        char *data = malloc(plen);
        if (b == NULL || data == NULL) {
            free(b);
            free(data);
            return -ENOMEM;
        }
        srv__http_request_encode(req, data);
        *b = (big_t){.session = id, .type = type, .data = data, .len = plen};
        if (ch->big_tail)
            ch->big_tail->next = b;
        else
            ch->big = b;
        ch->big_tail = b;
    } else {
        char *p = srv__ipc_frame_begin(&ch->out, id, type, 0, (uint32_t)plen);
        if (p == NULL)
            return -ENOBUFS; /* the worker is that far behind: 503 rather than queue more */
        srv__http_request_encode(req, p);
    }
    srv__conn_set_tag(c, ch->tag, ch->slot);
    r->inflight_per_worker[ch->slot]++;
    return 0;
}

static chan_t *chan_of_tag(reactor_t *r, int tag)
{
    for (chan_t *ch = r->chans; ch; ch = ch->next)
        if (ch->tag == tag && !ch->dead)
            return ch;
    return NULL;
}

static int reactor_progress(srv__engine_t *e, uint64_t id, int tag, uint64_t written)
{
    chan_t *ch = chan_of_tag(srv__engine_data(e), tag);
    if (ch == NULL)
        return 0; /* the worker is gone: nobody to tell */
    return srv__ipc_frame_put(&ch->out, id, SRV_IPC_ACK, 0, &written, sizeof(written));
}

static void reactor_abandoned(srv__engine_t *e, uint64_t id, int tag)
{
    chan_t *ch = chan_of_tag(srv__engine_data(e), tag);
    if (ch)
        srv__ipc_frame_put(&ch->out, id, SRV_IPC_GONE, 0, NULL, 0);
}

static int reactor_event(srv__engine_t *e, srv__conn_t *c, srv__engine_event_t ev, uint16_t arg,
                         const void *data, size_t len)
{
    reactor_t *r = srv__engine_data(e);
    chan_t *ch = pick(r, c, false);
    if (ch == NULL)
        return ev == SRV_ENGINE_EV_CLOSED || ev == SRV_ENGINE_EV_WS_CLOSED ? 0 : -EAGAIN;
    srv__ipc_hdr_t h = {.session = srv__conn_session(c),
                        .type = (uint8_t)srv__event_to_ipc(ev),
                        .listener = (uint8_t)srv__conn_listener(c),
                        .flags = arg,
                        .len = (uint32_t)len};
    return srv__ipc_frame_put_hdr(&ch->out, &h, data);
}

static void take_mail(reactor_t *r)
{
    pthread_mutex_lock(&r->mu);
    int n = r->nmail;
    mail_t local[64];
    if (n > 64)
        n = 64;
    memcpy(local, r->mail, sizeof(mail_t) * (size_t)n);
    memmove(r->mail, r->mail + n, sizeof(mail_t) * (size_t)(r->nmail - n));
    r->nmail -= n;
    pthread_mutex_unlock(&r->mu);
    size_t bound = (size_t)r->cfg->ipc_buffer_size;
    for (int i = 0; i < n; i++) {
        if (local[i].fd < 0) { /* a reload retired this worker: drain, do not replace */
            chan_t *old = r->cur[local[i].slot];
            r->cur[local[i].slot] = NULL;
            if (old) {
                old->draining = true;
                chan_flush(old);
            }
            continue;
        }
        chan_t *ch = calloc(1, sizeof(*ch));
        if (ch == NULL) {
            close(local[i].fd);
            close(local[i].fdsock);
            continue;
        }
        ch->r = r;
        ch->fd = local[i].fd;
        ch->fdsock = local[i].fdsock;
        ch->slot = local[i].slot;
        ch->gen = local[i].gen;
        ch->tag = r->next_tag++;
        ch->recv_op.cb = on_chan_recv;
        ch->recv_op.data = ch;
        ch->send_op.cb = on_chan_send;
        ch->send_op.data = ch;
        srv__ipc_buf_init(&ch->out, bound);
        srv__ipc_buf_init(&ch->sending, bound);
        /* The largest frame a worker sends is a whole response: allow for the biggest. */
        srv__ipc_buf_init(&ch->in, (size_t)r->cfg->buffer_output_size + (1u << 20));
        if (srv__loop_recv(r->loop, &ch->recv_op, ch->fd) != 0) {
            close(ch->fd);
            close(ch->fdsock);
            free(ch);
            continue;
        }
        ch->recv_armed = true;
        ch->next = r->chans;
        r->chans = ch;
        chan_t *old = r->cur[ch->slot];
        r->cur[ch->slot] = ch;
        r->inflight_per_worker[ch->slot] = 0;
        if (old) {
            old->draining = true;
            chan_flush(old);
        }
    }
    if (r->nmail > 0)
        srv__loop_wake(r->loop);
}

/* A reload's configuration: the engine follows it from this iteration on. */
static void take_cfg(reactor_t *r)
{
    const srv__config_t *cfg = atomic_load(&r->next_cfg);
    if (cfg == NULL || cfg == r->cfg)
        return;
    int rc = srv__engine_set_cfg(r->eng, cfg);
    if (rc < 0)
        srv__log(SRV_LOG_ERROR, "master", rc, "reactor %d keeps its settings", r->id);
    r->cfg = cfg;
    atomic_store(&r->cfg_taken, cfg);
}

static void on_wake(srv__loop_t *loop, void *arg)
{
    reactor_t *r = arg;
    take_cfg(r);
    take_mail(r);
    if (atomic_load(&r->drain))
        srv__engine_drain(r->eng);
}

static int reactor_init(reactor_t *r)
{
    srv__server_t *S = &srv__server;
    int i = r->id;
    int rc = srv__loop_create(&r->loop, S->cfg.reactor_backend, &srv__loop_opts);
    if (rc < 0)
        return rc;
    if (i == 0) {
        snprintf(g_backend, sizeof(g_backend), "%s", srv__loop_backend_name(r->loop));
        const char *why = srv__loop_fallback_reason(r->loop);
        if (why && why[0])
            srv__log(SRV_LOG_WARN, "loop", 0, "io_uring unavailable (%s); using epoll", why);
        srv__log(SRV_LOG_NOTICE, "loop", 0, "%d reactor thread(s) on %s", g_nreactors, g_backend);
    }
    srv__loop_set_wake(r->loop, on_wake, r);
    srv__engine_opts_t o = {
        .id = i,
        .loop = r->loop,
        .cfg = r->cfg,
        .listen_fds = S->listen_fd,
        .accept = true,
        .ops = {.dispatch = reactor_dispatch,
                .event = reactor_event,
                .abandoned = reactor_abandoned,
                .progress = reactor_progress},
        .data = r,
        .stat_conns = &S->stats->reactors[i].connections,
        .stat_accepted = &S->stats->reactors[i].accepted,
        .stat_requests = &S->stats->reactors[i].requests,
        .stat_503 = &S->stats->reactors[i].errors_503,
        .stat_h2_conns = &S->stats->reactors[i].h2_connections,
        .stat_h2_streams = &S->stats->reactors[i].h2_streams,
        .conns_total = srv__stats_connections,
        .netstat = srv__stats_net(i),
    };
    return srv__engine_create(&r->eng, &o);
}

static void *reactor_main(void *arg)
{
    reactor_t *r = arg;
    char name[16];
    snprintf(name, sizeof(name), "srv: reactor %d", r->id);
    prctl(PR_SET_NAME, name);
    int rc = reactor_init(r);
    pthread_mutex_lock(&r->mu);
    r->init_rc = rc;
    r->init_done = true;
    pthread_cond_signal(&r->cond);
    pthread_mutex_unlock(&r->mu);
    if (rc < 0)
        return NULL;
    while (!atomic_load(&r->stop)) {
        rc = srv__loop_run(r->loop, -1);
        if (rc < 0 && rc != -EINTR) {
            srv__log(SRV_LOG_ERROR, "loop", rc, "reactor %d", r->id);
            break;
        }
        for (chan_t *ch = r->chans, *next; ch; ch = next) {
            next = ch->next;
            chan_flush(ch);
        }
        atomic_store_explicit(&r->inflight_pub, srv__engine_inflight(r->eng), memory_order_relaxed);
    }
    /* Shut down: close connections and channels, let their operations complete. */
    srv__engine_close_all(r->eng);
    for (chan_t *ch = r->chans, *next; ch; ch = next) {
        next = ch->next;
        chan_kill(ch, "stop");
    }
    for (int i = 0; i < 200 && (srv__engine_conns(r->eng) > 0 || r->chans); i++)
        srv__loop_run(r->loop, 10);
    srv__engine_destroy(r->eng);
    r->eng = NULL;
    srv__loop_destroy(r->loop);
    r->loop = NULL;
    return NULL;
}

int srv__reactors_start(const srv__config_t *cfg)
{
    srv__server_t *S = &srv__server;
    g_nreactors = S->nreactors;
    g_reactors = calloc((size_t)g_nreactors, sizeof(reactor_t));
    if (g_reactors == NULL)
        return -ENOMEM;
    for (int i = 0; i < g_nreactors; i++) {
        reactor_t *r = &g_reactors[i];
        r->id = i;
        r->cfg = cfg;
        atomic_store(&r->cfg_taken, cfg);
        pthread_mutex_init(&r->mu, NULL);
        pthread_cond_init(&r->cond, NULL);
        r->cur = calloc((size_t)S->wcap, sizeof(chan_t *));
        r->inflight_per_worker = calloc((size_t)S->wcap, sizeof(int));
        r->mail_cap = 2 * (S->wcap + 8);
        r->mail = calloc((size_t)r->mail_cap, sizeof(mail_t));
        if (r->cur == NULL || r->inflight_per_worker == NULL || r->mail == NULL)
            return -ENOMEM;
    }
    for (int i = 0; i < g_nreactors; i++) {
        reactor_t *r = &g_reactors[i];
        int rc = pthread_create(&r->th, NULL, reactor_main, r);
        if (rc != 0)
            return -rc;
        r->started = true;
        /* The ring is single-issuer: the thread creates its own loop; wait for the verdict. */
        pthread_mutex_lock(&r->mu);
        while (!r->init_done)
            pthread_cond_wait(&r->cond, &r->mu);
        pthread_mutex_unlock(&r->mu);
        if (r->init_rc < 0)
            return r->init_rc;
    }
    return 0;
}

void srv__reactor_post_channel(int i, int slot, uint32_t gen, int fd, int fdsock)
{
    reactor_t *r = &g_reactors[i];
    if (r->loop == NULL) { /* the reactor failed to start; the master is stopping */
        close(fd);
        close(fdsock);
        return;
    }
    pthread_mutex_lock(&r->mu);
    if (r->nmail == r->mail_cap) {
        int cap = r->mail_cap * 2;
        mail_t *m = realloc(r->mail, sizeof(mail_t) * (size_t)cap);
        if (m == NULL) {
            pthread_mutex_unlock(&r->mu);
            srv__log(SRV_LOG_ERROR, "ipc", ENOMEM, "cannot hand worker #%d to reactor %d", slot, i);
            close(fd);
            close(fdsock);
            return;
        }
        r->mail = m;
        r->mail_cap = cap;
    }
    r->mail[r->nmail++] = (mail_t){slot, gen, fd, fdsock};
    pthread_mutex_unlock(&r->mu);
    srv__loop_wake(r->loop);
}

void srv__reactors_set_cfg(const srv__config_t *cfg)
{
    for (int i = 0; i < g_nreactors; i++) {
        atomic_store(&g_reactors[i].next_cfg, cfg);
        if (g_reactors[i].loop)
            srv__loop_wake(g_reactors[i].loop);
    }
}

bool srv__reactors_cfg_taken(const srv__config_t *cfg)
{
    for (int i = 0; i < g_nreactors; i++)
        if (g_reactors[i].loop && atomic_load(&g_reactors[i].cfg_taken) != cfg)
            return false;
    return true;
}

void srv__reactors_stop_accepting(void)
{
    for (int i = 0; i < g_nreactors; i++) {
        atomic_store(&g_reactors[i].drain, true);
        srv__loop_wake(g_reactors[i].loop);
    }
}

uint64_t srv__reactors_inflight(void)
{
    uint64_t n = 0;
    for (int i = 0; i < g_nreactors; i++)
        n += atomic_load(&g_reactors[i].inflight_pub);
    return n;
}

void srv__reactors_stop(void)
{
    for (int i = 0; i < g_nreactors; i++) {
        reactor_t *r = &g_reactors[i];
        atomic_store(&r->stop, true);
        if (r->loop)
            srv__loop_wake(r->loop);
    }
    for (int i = 0; i < g_nreactors; i++) {
        reactor_t *r = &g_reactors[i];
        if (r->started)
            pthread_join(r->th, NULL);
        if (r->eng)
            srv__engine_destroy(r->eng);
        for (int k = 0; k < r->nmail; k++) {
            close(r->mail[k].fd);
            close(r->mail[k].fdsock);
        }
        pthread_mutex_destroy(&r->mu);
        pthread_cond_destroy(&r->cond);
        free(r->cur);
        free(r->inflight_per_worker);
        free(r->mail);
    }
    free(g_reactors);
    g_reactors = NULL;
    g_nreactors = 0;
}

const char *srv__reactors_backend(void)
{
    return g_backend;
}
