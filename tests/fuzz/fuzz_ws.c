/* libFuzzer target for protocols/ws.c (and ws_deflate.c, utf8.c): a client's bytes after the
 * upgrade, into a server-side connection that echoes every message back (compressed when
 * permessage-deflate is on). The first byte picks the options (bit 0: deflate negotiated,
 * bits 1-2: the message size limit, bit 3: a small output limit); the input is fed once whole
 * and once cut where it says, and without an output limit both runs must give the same events,
 * the same result and the same bytes out. Beyond "no crash" it checks: messages are TEXT or BINARY,
 * within the limit, and TEXT is UTF-8; errors carry 1002/1007/1008/1009 and end the input (-EPROTO,
 * a close queued, srv__ws_want_close); the output the iovecs show adds up to srv__ws_pending().
 * Build: see tests/fuzz/CMakeLists.txt (-DSRV_FUZZ=ON with clang). */
#include "protocols/utf8.h"
#include "protocols/ws.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct {
    srv__ws_t *ws;
    size_t max;
    uint64_t events; /* hash of every event, in order */
    uint64_t out;    /* hash of every byte sent */
    size_t nout;
    bool errored;
} run_t;

static uint64_t mix(uint64_t h, const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

static int on_event(void *arg, const srv__ws_event_t *ev)
{
    run_t *r = arg;
    if (r->errored)
        abort(); /* nothing after an error */
    r->events = mix(r->events, &ev->type, sizeof(ev->type));
    r->events = mix(r->events, &ev->code, sizeof(ev->code));
    r->events = mix(r->events, &ev->len, sizeof(ev->len));
    r->events = mix(r->events, ev->data, ev->len);
    switch (ev->type) {
    case SRV_WS_EV_MESSAGE: {
        if (ev->opcode != SRV_WS_TEXT && ev->opcode != SRV_WS_BINARY)
            abort();
        if (ev->len > r->max)
            abort();
        if (ev->opcode == SRV_WS_TEXT && !srv__utf8_valid(ev->data, ev->len))
            abort();
        int rc = srv__ws_send(r->ws, ev->opcode, ev->data, ev->len);
        if (rc != 0 && rc != -EPIPE && rc != -ENOBUFS && rc != -ENOMEM)
            abort();
        break;
    }
    case SRV_WS_EV_CLOSE:
        if (ev->code != SRV_WS_NO_STATUS && (ev->code < 1000 || ev->code > 4999))
            abort();
        break;
    case SRV_WS_EV_PONG:
        if (ev->len > 125)
            abort();
        break;
    case SRV_WS_EV_ERROR:
        if (ev->code != SRV_WS_PROTOCOL_ERROR && ev->code != SRV_WS_INVALID_DATA &&
            ev->code != SRV_WS_POLICY && ev->code != SRV_WS_TOO_BIG)
            abort();
        r->errored = true;
        break;
    default:
        abort();
    }
    return 0;
}

/* Take what is pending, checking the iovecs add up, and release it. */
static void drain(run_t *r)
{
    struct iovec iov[8];
    size_t pending = srv__ws_pending(r->ws);
    while (pending > 0) {
        int n = srv__ws_output(r->ws, iov, 8);
        if (n <= 0 || n > 8)
            abort();
        size_t sum = 0;
        for (int i = 0; i < n; i++) {
            r->out = mix(r->out, iov[i].iov_base, iov[i].iov_len);
            sum += iov[i].iov_len;
        }
        if (sum == 0 || sum > pending)
            abort();
        srv__ws_consumed(r->ws, sum);
        r->nout += sum;
        if (srv__ws_pending(r->ws) != pending - sum)
            abort();
        pending -= sum;
    }
    if (srv__ws_output(r->ws, iov, 8) != 0)
        abort();
}

static int run(const srv__ws_options_t *o, const uint8_t *in, size_t n, const uint8_t *cuts,
               size_t ncuts, run_t *r)
{
    r->ws = srv__ws_create(o);
    if (r->ws == NULL)
        abort();
    r->max = o->max_message_size ? o->max_message_size : (size_t)16 << 20;
    int rc = 0;
    size_t start = 0;
    for (size_t i = 1; i <= n && rc == 0; i++) {
        if (i != n && (ncuts == 0 || !(cuts[i % ncuts] & 1)))
            continue;
        char *piece = malloc(i - start); /* a private copy, so ASan sees reads past it */
        if (piece == NULL)
            abort();
        memcpy(piece, in + start, i - start);
        rc = srv__ws_feed(r->ws, piece, i - start, on_event, r);
        free(piece);
        drain(r);
        start = i;
    }
    if (rc != 0 && rc != -EPROTO)
        abort();
    if ((rc == -EPROTO) != r->errored || (r->errored && !srv__ws_want_close(r->ws)))
        abort();
    srv__ws_destroy(r->ws);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const size_t limits[4] = {0, 64, 1024, 65536};
    if (size < 2)
        return 0;
    srv__ws_options_t o = {0};
    o.deflate = data[0] & 1;
    o.deflate_window_bits = o.deflate ? 15 : 0;
    o.max_message_size = limits[data[0] >> 1 & 3];
    o.output_limit = data[0] & 8 ? 256 : 0;
    size_t ncuts = data[1] & 0x1f; /* bytes of cut mask taken from the stream's tail */
    data += 2;
    size -= 2;
    if (ncuts > size)
        ncuts = size;
    run_t whole = {0}, cut = {0};
    int rw = run(&o, data, size, NULL, 0, &whole);
    int rc = run(&o, data, size, data + size - ncuts, ncuts, &cut);
    /* With an output limit, what fits depends on how often output is drained: no comparison. */
    if (o.output_limit == 0 &&
        (rw != rc || whole.events != cut.events || whole.out != cut.out || whole.nout != cut.nout))
        abort();
    return 0;
}
