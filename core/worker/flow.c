/* Per-response output windows (see flow.h). Most responses are one final send that fits in one
 * frame: they go straight to the transport and are never tracked. A streamed or large response
 * gets a record here, keyed by session id (never reused), until its last byte is handed on. */
#include "core/worker/flow.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/base/buf.h"
#include "core/ipc/ipc.h"

typedef struct flow {
    uint64_t session;
    uint64_t emitted; /* bytes handed to the transport */
    uint64_t written; /* of those, reported written to the client */
    char *pend;       /* a final send's rest, waiting for room */
    size_t plen, poff, pcap;
    unsigned pflags; /* flags for the rest's last byte */
    bool final;      /* the final bytes were taken (sent or pending) */
    bool gone;
    bool want;   /* a write was refused: the app waits for room */
    bool queued; /* on the due list */
    bool forgotten; /* out of the table: its final bytes are being handed on */
    void (*fn)(void *arg);
    void *arg;
    struct flow *next_due;
} flow_t;

static struct {
    srv__flow_transport_t t;
    uint64_t window;
    flow_t **tab; /* open addressing, linear probing, power-of-two size */
    size_t cap, count;
    flow_t *due, *due_tail;
    bool blocked; /* a response waits for the transport (busy): srv__flow_kick has work */
} F;

static size_t slot_of(uint64_t session, size_t cap)
{
    return (size_t)((session * 0x9E3779B97F4A7C15ull) >> 20) & (cap - 1);
}

static flow_t *find(uint64_t session)
{
    if (F.count == 0)
        return NULL;
    for (size_t i = slot_of(session, F.cap);; i = (i + 1) & (F.cap - 1)) {
        flow_t *f = F.tab[i];
        if (f == NULL)
            return NULL;
        if (f->session == session)
            return f;
    }
}

static int insert(flow_t *f)
{
    if ((F.count + 1) * 2 > F.cap) {
        size_t cap = F.cap ? F.cap * 2 : 64;
        flow_t **tab = calloc(cap, sizeof(*tab));
        if (tab == NULL)
            return -ENOMEM;
        for (size_t i = 0; i < F.cap; i++) {
            if (F.tab[i] == NULL)
                continue;
            size_t k = slot_of(F.tab[i]->session, cap);
            while (tab[k])
                k = (k + 1) & (cap - 1);
            tab[k] = F.tab[i];
        }
        free(F.tab);
        F.tab = tab;
        F.cap = cap;
    }
    size_t k = slot_of(f->session, F.cap);
    while (F.tab[k])
        k = (k + 1) & (F.cap - 1);
    F.tab[k] = f;
    F.count++;
    return 0;
}

static flow_t *create(uint64_t session)
{
    flow_t *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return NULL;
    f->session = session;
    if (insert(f) < 0) {
        free(f);
        return NULL;
    }
    return f;
}

static void unlink_due(flow_t *f)
{
    if (!f->queued)
        return;
    flow_t **pp = &F.due;
    flow_t *prev = NULL;
    while (*pp && *pp != f) {
        prev = *pp;
        pp = &(*pp)->next_due;
    }
    if (*pp)
        *pp = f->next_due;
    if (F.due_tail == f)
        F.due_tail = prev;
    f->queued = false;
}

/* Take f out of the table (backward-shift deletion keeps probe chains whole) and off the due
 * list; the caller frees it. */
static void forget(flow_t *f)
{
    if (f->forgotten)
        return;
    f->forgotten = true;
    size_t i = slot_of(f->session, F.cap);
    while (F.tab[i] != f)
        i = (i + 1) & (F.cap - 1);
    F.tab[i] = NULL;
    for (size_t j = (i + 1) & (F.cap - 1); F.tab[j]; j = (j + 1) & (F.cap - 1)) {
        size_t home = slot_of(F.tab[j]->session, F.cap);
        /* Move j back to the hole when its home is not in (i, j] (cyclically). */
        bool stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (!stays) {
            F.tab[i] = F.tab[j];
            F.tab[j] = NULL;
            i = j;
        }
    }
    F.count--;
    unlink_due(f);
}

static void drop(flow_t *f)
{
    forget(f);
    free(f->pend);
    free(f);
}

static void make_due(flow_t *f)
{
    if (f->queued)
        return;
    f->queued = true;
    f->next_due = NULL;
    if (F.due_tail)
        F.due_tail->next_due = f;
    else
        F.due = f;
    F.due_tail = f;
}

void srv__flow_init(const srv__flow_transport_t *t, uint64_t window)
{
    memset(&F, 0, sizeof(F));
    F.t = *t;
    F.window = window ? window : 1;
}

void srv__flow_deinit(void)
{
    for (size_t i = 0; i < F.cap; i++) {
        if (F.tab[i]) {
            free(F.tab[i]->pend);
            free(F.tab[i]);
        }
    }
    free(F.tab);
    memset(&F, 0, sizeof(F));
}

static uint64_t in_flight(const flow_t *f)
{
    return f->emitted > f->written ? f->emitted - f->written : 0;
}

/* Frames worth acknowledging: once this response has a quarter of the window in flight the
 * owner reports progress; smaller streams never need to hear back. */
static unsigned flow_flag(const flow_t *f, size_t adding)
{
    return in_flight(f) + adding > F.window / 4 || f->plen > f->poff ? SRV_IPC_F_FLOW : 0;
}

/* Hand up to `limit` bytes of iov to the transport in frames of at most SRV_IPC_PIECE; the
 * last frame carries `last_flags` when everything was handed on. Returns bytes handed on, or
 * -errno. */
static int64_t send_some(flow_t *f, const struct iovec *iov, int iovcnt, size_t limit,
                         unsigned last_flags)
{
    size_t total = 0;
    for (int i = 0; i < iovcnt; i++)
        total += iov[i].iov_len;
    size_t todo = total < limit ? total : limit;
    size_t done = 0;
    int vi = 0;
    size_t voff = 0;
    do {
        struct iovec part[8];
        int n = 0;
        size_t len = 0;
        while (vi < iovcnt && n < 8 && len < SRV_IPC_PIECE && done + len < todo) {
            size_t take = iov[vi].iov_len - voff;
            size_t cap = SRV_IPC_PIECE - len;
            if (take > cap)
                take = cap;
            if (take > todo - done - len)
                take = todo - done - len;
            part[n].iov_base = (char *)iov[vi].iov_base + voff;
            part[n].iov_len = take;
            n++;
            len += take;
            voff += take;
            if (voff == iov[vi].iov_len) {
                vi++;
                voff = 0;
            }
        }
        bool last = done + len == total;
        unsigned flags = flow_flag(f, len) | (last ? last_flags : 0);
        /* Handing on the final bytes may complete the request and start the connection's next
         * one (base mode: in place, pipelined), whose response has the same session id: it
         * must find no record of this one. */
        if (flags & (SRV_IPC_F_FINAL | SRV_IPC_F_ERROR))
            forget(f);
        int rc = F.t.put(F.t.arg, f->session, part, n, flags);
        if (rc < 0)
            return rc;
        done += len;
        f->emitted += len;
    } while (done < todo);
    return (int64_t)done;
}

/* The transport is full for f: it waits for srv__flow_kick. */
static bool busy(flow_t *f)
{
    if (F.t.busy == NULL || !F.t.busy(F.t.arg, f->session))
        return false;
    F.blocked = true;
    return true;
}

static int keep_rest(flow_t *f, const struct iovec *iov, int iovcnt, size_t skip, unsigned flags)
{
    size_t total = 0;
    for (int i = 0; i < iovcnt; i++)
        total += iov[i].iov_len;
    size_t need = f->plen - f->poff + total - skip;
    if (f->poff > 0) {
        memmove(f->pend, f->pend + f->poff, f->plen - f->poff);
        f->plen -= f->poff;
        f->poff = 0;
    }
    if (srv__grow(&f->pend, &f->pcap, need, need, need) < 0) /* exactly what is kept */
        return -ENOMEM;
    for (int i = 0; i < iovcnt; i++) {
        size_t l = iov[i].iov_len;
        const char *b = iov[i].iov_base;
        if (skip >= l) {
            skip -= l;
            continue;
        }
        memcpy(f->pend + f->plen, b + skip, l - skip);
        f->plen += l - skip;
        skip = 0;
    }
    f->pflags = flags;
    return 0;
}

static int gone_error(flow_t *f, unsigned flags)
{
    if (flags & SRV_IPC_F_FINAL)
        drop(f);
    return -EPIPE;
}

/* The transport failed mid-response (its client gone, or no room even after waiting): the
 * response cannot be completed, so the owner is asked to abort the connection rather than
 * leave the client waiting for bytes that will never come. Returns false when f was freed. */
static bool give_up(flow_t *f, int err)
{
    if (err != -ENOENT && err != -EPROTO)
        F.t.put(F.t.arg, f->session, NULL, 0, SRV_IPC_F_ERROR | SRV_IPC_F_FINAL);
    f->gone = true;
    free(f->pend);
    f->pend = NULL;
    f->plen = f->poff = f->pcap = 0;
    if ((f->final && f->fn == NULL) || f->forgotten) {
        drop(f);
        return false;
    }
    if (f->want && f->fn)
        make_due(f);
    return true;
}

int srv__flow_emit(uint64_t session, const struct iovec *iov, int iovcnt, unsigned flags)
{
    size_t total = 0;
    for (int i = 0; i < iovcnt; i++)
        total += iov[i].iov_len;
    bool fin = (flags & (SRV_IPC_F_FINAL | SRV_IPC_F_ERROR)) != 0;
    flow_t *f = find(session);
    if (f == NULL) {
        /* The common case: a whole response in one frame. */
        if (fin && total <= SRV_IPC_PIECE)
            return F.t.put(F.t.arg, session, iov, iovcnt, flags);
        if ((f = create(session)) == NULL)
            return -ENOMEM;
    }
    if (f->gone)
        return gone_error(f, flags);
    if (flags & SRV_IPC_F_ERROR) {
        int rc = F.t.put(F.t.arg, session, iov, iovcnt, flags);
        drop(f);
        return rc;
    }
    if (f->plen > f->poff) {
        if (!fin) {
            f->want = true;
            return -EAGAIN;
        }
        int rc = keep_rest(f, iov, iovcnt, 0, flags);
        if (rc == 0)
            f->final = true;
        return rc;
    }
    uint64_t inflight = in_flight(f);
    if (!fin && (inflight >= F.window || busy(f))) {
        f->want = true;
        return -EAGAIN;
    }
    /* A final send is never refused: while the transport is busy it waits here whole. */
    size_t room = inflight < F.window && !busy(f) ? (size_t)(F.window - inflight) : 0;
    int64_t sent = 0;
    if (total == 0 || room > 0)
        sent = send_some(f, iov, iovcnt, room, flags);
    if (sent < 0) {
        if (fin)
            f->final = true;
        if (give_up(f, (int)sent) && fin)
            drop(f);
        return sent == -ENOENT || sent == -EPROTO ? -EPIPE : (int)sent;
    }
    if ((size_t)sent < total) {
        int rc = keep_rest(f, iov, iovcnt, (size_t)sent, flags);
        if (rc < 0)
            return rc;
        if (fin)
            f->final = true;
        return 0;
    }
    if (fin)
        drop(f);
    return 0;
}

int srv__flow_emit_file(uint64_t session, int fd, const char *path, uint64_t off, uint64_t len,
                        unsigned flags)
{
    flow_t *f = find(session);
    if (f && f->gone) {
        close(fd);
        return gone_error(f, flags);
    }
    if (f && f->plen > f->poff) {
        /* Only a head goes before a file, and a head always fits: not reached. */
        close(fd);
        return -EBUSY;
    }
    int rc = F.t.put_file(F.t.arg, session, fd, path, off, len, flags);
    if (f && (flags & SRV_IPC_F_FINAL))
        drop(f);
    else if (f)
        f->emitted += len;
    return rc;
}

int srv__flow_on_writable(uint64_t session, void (*fn)(void *arg), void *arg)
{
    flow_t *f = find(session);
    if (fn == NULL) {
        if (f) {
            f->fn = NULL;
            f->arg = NULL;
            if (f->final && f->plen == f->poff)
                drop(f);
        }
        return 0;
    }
    if (f == NULL && (f = create(session)) == NULL)
        return -ENOMEM;
    f->fn = fn;
    f->arg = arg;
    f->want = true;
    make_due(f); /* it may be writable already: srv__flow_run decides */
    return 0;
}

void srv__flow_ack(uint64_t session, uint64_t written)
{
    flow_t *f = find(session);
    if (f == NULL || written <= f->written)
        return;
    f->written = written;
    if (f->plen > f->poff || f->want)
        make_due(f);
}

void srv__flow_gone(uint64_t session)
{
    flow_t *f = find(session);
    if (f == NULL)
        return;
    f->gone = true;
    free(f->pend);
    f->pend = NULL;
    f->plen = f->poff = f->pcap = 0;
    if (f->final && f->fn == NULL) {
        drop(f); /* nobody will ask about it again */
        return;
    }
    make_due(f);
}

void srv__flow_kick(void)
{
    if (!F.blocked)
        return;
    F.blocked = false;
    for (size_t i = 0; i < F.cap; i++) {
        flow_t *f = F.tab[i];
        if (f && !f->gone && (f->want || f->plen > f->poff))
            make_due(f);
    }
}

bool srv__flow_due(void)
{
    return F.due != NULL;
}

int srv__flow_count(void)
{
    return (int)F.count;
}

/* Send what the window allows of f's rest. Returns false when f was dropped. */
static bool pump(flow_t *f)
{
    uint64_t inflight = in_flight(f);
    if (inflight >= F.window || busy(f))
        return true;
    struct iovec v = {f->pend + f->poff, f->plen - f->poff};
    int64_t sent = send_some(f, &v, 1, (size_t)(F.window - inflight), f->pflags);
    if (sent < 0)
        return give_up(f, (int)sent);
    f->poff += (size_t)sent;
    if (f->poff < f->plen)
        return true;
    f->poff = f->plen = 0;
    if (f->pcap > SRV_IPC_PIECE) {
        free(f->pend);
        f->pend = NULL;
        f->pcap = 0;
    }
    if (f->final) {
        drop(f);
        return false;
    }
    return true;
}

void srv__flow_run(void)
{
    /* Callbacks may write, end or drop other responses and make records due again: take one
     * record at a time off the list, and only as many as were due when we started. */
    size_t n = 0;
    for (flow_t *f = F.due; f; f = f->next_due)
        n++;
    while (n-- > 0 && F.due) {
        flow_t *f = F.due;
        F.due = f->next_due;
        if (F.due == NULL)
            F.due_tail = NULL;
        f->queued = false;
        f->next_due = NULL;
        if (!f->gone && f->plen > f->poff && !pump(f))
            continue;
        bool room = f->gone || (f->plen == f->poff && in_flight(f) <= F.window / 2 && !busy(f));
        if (!f->want || !room || f->fn == NULL)
            continue;
        void (*fn)(void *) = f->fn;
        void *arg = f->arg;
        f->want = false;
        f->fn = NULL;
        f->arg = NULL;
        fn(arg);
    }
}
