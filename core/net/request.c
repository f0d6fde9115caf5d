/* The request in flight on a connection, from dispatch to the last byte of its response
 * queued: response bytes (copied into the connection's queue) and files, flow-control reports
 * to the producer, and the answer for requests whose worker died. Also the engine's request
 * table, which gives HTTP/2 streams ids of their own (their actions go to conn_h2.c). */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "core/base/log.h"
#include "core/net/conn_internal.h"

srv__req_t *srv__req_begin(srv__conn_t *c, srv_request_t *req)
{
    srv__engine_t *e = c->eng;
    srv__req_t *r = &c->req_store;
    srv__reqlog_t log = r->log;
    *r = (srv__req_t){.id = c->session,
                      .conn = c,
                      .tag = -1,
                      .keepalive = (req->flags & SRV_REQ_KEEP_ALIVE) != 0,
                      .resp_start = c->out_total,
                      .start = c->req_start,
                      .log = log};
    srv__access_begin(c, r, req);
    c->req = r;
    e->inflight++;
    srv__stat_add(e->stat_requests, 1);
    return r;
}

void srv__req_cancel(srv__conn_t *c)
{
    c->req = NULL;
    c->eng->inflight--;
}

void srv__req_finish(srv__conn_t *c)
{
    srv__access_end(c, c->req, c->req->resp_bytes);
    c->req = NULL;
    c->eng->inflight--;
    if (c->proto->done)
        c->proto->done(c);
}

/* Tell the producer of the response in flight how much of it reached the socket, so it can
 * send more (it keeps at most buffer_output_size unacknowledged): at least every ack_step
 * bytes, and whenever the queue ran dry. A report the producer could not take (its channel
 * full) is retried by the tick. */
void srv__req_report(srv__conn_t *c, bool force)
{
    srv__engine_t *e = c->eng;
    srv__req_t *r = c->req;
    if (r == NULL || !r->flow || e->ops.progress == NULL)
        return;
    uint64_t w = c->out_done > r->resp_start ? c->out_done - r->resp_start : 0;
    if (w == r->acked)
        return;
    if (!force && w - r->acked < e->ack_step && srv__out_pending(c))
        return;
    if (e->ops.progress(e, r->id, r->tag, w) == 0)
        r->acked = w;
}

int srv__req_add(srv__engine_t *e, srv__req_t *r)
{
    if (e->req_nfree == 0 && e->req_used >= e->req_max)
        return -EAGAIN;
    uint32_t slot = e->req_nfree ? e->req_free[--e->req_nfree] : e->req_used++;
    r->id = SRV_SESSION_MAKE_REQ(e->id, e->req_gens[slot], slot);
    e->reqs[slot] = r;
    return 0;
}

void srv__req_del(srv__engine_t *e, srv__req_t *r)
{
    uint32_t slot = SRV_SESSION_SLOT(r->id);
    if (slot >= e->req_used || e->reqs[slot] != r)
        return;
    e->reqs[slot] = NULL;
    e->req_gens[slot]++;
    e->req_free[e->req_nfree++] = slot;
}

srv__req_t *srv__req_find(srv__engine_t *e, uint64_t id)
{
    uint32_t slot = SRV_SESSION_SLOT(id);
    if (!SRV_SESSION_IS_REQ(id) || slot >= e->req_used)
        return NULL;
    srv__req_t *r = e->reqs[slot];
    return r && r->id == id ? r : NULL;
}

/* After a piece of the response was queued. */
static void piece_queued(srv__conn_t *c, uint64_t bytes, unsigned flags, bool flush)
{
    c->req->resp_bytes += bytes;
    if (flags & SRV_ENGINE_F_CLOSE)
        c->flags |= F_CLOSE_AFTER;
    if (flags & SRV_ENGINE_F_FINAL)
        srv__req_finish(c);
    else if (flush)
        srv__conn_flush(c);
}

int srv__conn_respond(srv__engine_t *e, uint64_t session, const struct iovec *iov, int iovcnt,
                      unsigned flags)
{
    if (SRV_SESSION_IS_REQ(session)) {
        srv__req_t *r = srv__req_find(e, session);
        return r ? srv__h2c_respond(r, iov, iovcnt, flags) : -ENOENT;
    }
    srv__conn_t *c = srv__conn_lookup(e, session);
    if (c == NULL)
        return -ENOENT;
    if (c->req == NULL)
        return -EPROTO;
    if (flags & SRV_ENGINE_F_ERROR) {
        srv__conn_close(c);
        return 0;
    }
    /* The producer keeps at most buffer_output_size of a response unacknowledged (see
     * srv__req_report), so this bound is only met by one that ignores flow control, or by a
     * previous response's tail plus this one: a safety net, not a second limit. */
    size_t bound = (size_t)e->cfg->buffer_output_size;
    size_t total = 0;
    for (int i = 0; i < iovcnt; i++)
        total += iov[i].iov_len;
    if (flags & SRV_ENGINE_F_FLOW)
        c->req->flow = true;
    if (c->req->resp_bytes == 0 && iovcnt > 0)
        srv__access_head(c->req, iov[0].iov_base, iov[0].iov_len);
    int rc = srv__out_append(c, iov, iovcnt, 2 * bound + (1u << 20));
    if (rc < 0) {
        srv__log(SRV_LOG_INFO, "conn", 0,
                 "session %llx from %s: output over buffer_output_size (%lld bytes); closing",
                 (unsigned long long)c->session, c->peer, (long long)e->cfg->buffer_output_size);
        srv__conn_close(c);
        return rc;
    }
    /* Inside the app's handler (base mode) we send once it returns. */
    piece_queued(c, total, flags, !(c->flags & F_IN_PROCESS));
    return 0;
}

int srv__conn_respond_fd(srv__engine_t *e, uint64_t session, int fd, uint64_t off, uint64_t len,
                         unsigned flags)
{
    if (SRV_SESSION_IS_REQ(session)) {
        srv__req_t *r = srv__req_find(e, session);
        if (r == NULL) {
            close(fd);
            return -ENOENT;
        }
        return srv__h2c_respond_fd(r, fd, off, len, flags);
    }
    srv__conn_t *c = srv__conn_lookup(e, session);
    if (c == NULL || c->req == NULL || srv__out_file(c, fd, off, len) < 0) {
        close(fd);
        if (c)
            srv__conn_close(c);
        return -ENOENT;
    }
    piece_queued(c, len, flags, true);
    return 0;
}

void srv__engine_fail_timeout(srv__engine_t *e, uint64_t session)
{
    srv__conn_t *c = srv__conn_lookup(e, session);
    if (c == NULL || (c->flags & F_CLOSING) || c->req == NULL || c->req->resp_bytes > 0)
        return; /* gone, answered in part, or an HTTP/2 stream: the 503 path handles it */
    c->proto->fail(c, 504, "the request ran past request_timeout");
}

void srv__engine_fail_inflight(srv__engine_t *e, int tag)
{
    for (uint32_t i = 0; i < e->used_slots; i++) {
        srv__conn_t *c = e->slots[i];
        if (c == NULL || (c->flags & F_CLOSING) || c->req == NULL || c->req->tag != tag)
            continue;
        if (c->req->resp_bytes > 0) {
            srv__conn_close(c); /* partly answered: the only honest thing left is to close */
            continue;
        }
        srv__stat_add(e->stat_503, 1);
        c->proto->fail(c, 503, "the worker handling it died");
    }
    for (uint32_t i = 0; i < e->req_used; i++) {
        srv__req_t *r = e->reqs[i];
        if (r != NULL && r->tag == tag)
            srv__h2c_fail(r); /* (may free r and its slot: the loop reads the slot again) */
    }
}
