/* permessage-deflate (RFC 7692): negotiation of the client's offer and per-message zlib
 * streams. Streams are created per message and freed at once (we always answer with both
 * no_context_takeover parameters), so an idle connection holds no zlib memory. */
#include "protocols/ws_deflate.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>

/* Our own compression window and memLevel: a fresh stream per message must be cheap to build.
 * 2^12 window + memLevel 5 is ~40 KiB of zlib state for the duration of one srv__ws_send()
 * instead of ~260 KiB for zlib's defaults; WebSocket messages are short, so the ratio barely
 * changes. A larger window is always readable by the peer's inflater. */
#define WS_DEFLATE_OUR_WBITS 12
#define WS_DEFLATE_MEMLEVEL 5

static const char *skip_ows(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    return p;
}

static const char *trim_end(const char *p, const char *end)
{
    while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    return end;
}

static bool span_ieq(const char *p, const char *end, const char *lit)
{
    size_t n = strlen(lit);
    return (size_t)(end - p) == n && strncasecmp(p, lit, n) == 0;
}

/* Window-bits value 8..15, optionally quoted (RFC 7692 section 7.1.2: token or quoted). */
static int parse_bits(const char *p, const char *end)
{
    if (end - p >= 2 && *p == '"' && end[-1] == '"') {
        p++;
        end--;
    }
    if (end - p == 1 && *p >= '8' && *p <= '9')
        return *p - '0';
    if (end - p == 2 && p[0] == '1' && p[1] >= '0' && p[1] <= '5')
        return 10 + (p[1] - '0');
    return -1;
}

/* One offer "permessage-deflate; a; b=c" in [p, end). Returns 1 if acceptable, filling
 * *server_bits (0 if the parameter was absent). */
static int parse_offer(const char *p, const char *end, int *server_bits)
{
    bool seen_snct = false, seen_cnct = false, seen_smwb = false, seen_cmwb = false;
    const char *semi = memchr(p, ';', (size_t)(end - p));
    const char *name_end = semi ? semi : end;
    const char *q;

    p = skip_ows(p, end);
    if (!span_ieq(p, trim_end(p, name_end), "permessage-deflate"))
        return 0;
    *server_bits = 0;
    for (q = semi; q != NULL && q < end;) {
        const char *s = q + 1;
        const char *next = memchr(s, ';', (size_t)(end - s));
        const char *pe = next ? next : end;
        const char *eq = memchr(s, '=', (size_t)(pe - s));
        const char *ne = trim_end(s, eq ? eq : pe);
        const char *v = eq ? skip_ows(eq + 1, pe) : NULL;
        const char *ve = trim_end(v ? v : pe, pe);

        s = skip_ows(s, ne);
        if (span_ieq(s, ne, "server_no_context_takeover") && !v && !seen_snct) {
            seen_snct = true;
        } else if (span_ieq(s, ne, "client_no_context_takeover") && !v && !seen_cnct) {
            seen_cnct = true;
        } else if (span_ieq(s, ne, "server_max_window_bits") && v && !seen_smwb) {
            seen_smwb = true;
            *server_bits = parse_bits(v, ve);
            if (*server_bits < 0)
                return 0;
        } else if (span_ieq(s, ne, "client_max_window_bits") && !seen_cmwb) {
            /* The client tells us it can honour a limit; we set none, so its value only
             * needs to be well formed. */
            seen_cmwb = true;
            if (v && parse_bits(v, ve) < 0)
                return 0;
        } else {
            return 0; /* unknown or repeated parameter: decline this offer (7.1) */
        }
        q = next;
    }
    return 1;
}

int srv__ws_deflate_negotiate(const srv_request_t *req, char *ext, size_t cap, uint8_t *wbits)
{
    for (size_t i = 0; i < req->nheaders; i++) {
        const srv_header_t *h = &req->headers[i];
        if (!span_ieq(h->name.ptr, h->name.ptr + h->name.len, "sec-websocket-extensions"))
            continue;
        const char *p = h->value.ptr, *end = p + h->value.len;
        while (p < end) {
            const char *comma = memchr(p, ',', (size_t)(end - p));
            const char *oe = comma ? comma : end;
            int server_bits;
            if (parse_offer(p, oe, &server_bits) == 1) {
                int n;
                if (server_bits > 0)
                    n = snprintf(ext, cap,
                                 "permessage-deflate; server_no_context_takeover; "
                                 "client_no_context_takeover; server_max_window_bits=%d",
                                 server_bits);
                else
                    n = snprintf(ext, cap,
                                 "permessage-deflate; server_no_context_takeover; "
                                 "client_no_context_takeover");
                if (n < 0 || (size_t)n >= cap)
                    return -ENOSPC;
                /* zlib's raw deflate cannot make 8-bit windows (it silently uses 9), so a
                 * client that insists on 8 gets uncompressed messages from us. */
                *wbits = server_bits == 0 ? 15 : server_bits == 8 ? 0 : (uint8_t)server_bits;
                return 1;
            }
            p = comma ? comma + 1 : end;
        }
    }
    return 0;
}

size_t srv__ws_deflate_bound(size_t len)
{
    /* compressBound() plus room for the sync-flush empty stored block. */
    return len + (len >> 12) + (len >> 14) + (len >> 25) + 13 + 16;
}

ssize_t srv__ws_deflate(const void *in, size_t len, int wbits, uint8_t *out, size_t cap)
{
    z_stream zs;
    ssize_t ret;
    int r;

    if (wbits > WS_DEFLATE_OUR_WBITS)
        wbits = WS_DEFLATE_OUR_WBITS;
    if (wbits < 9)
        wbits = 9;
    memset(&zs, 0, sizeof(zs));
    if (deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -wbits, WS_DEFLATE_MEMLEVEL,
                     Z_DEFAULT_STRATEGY) != Z_OK)
        return -ENOMEM;
    zs.next_in = (Bytef *)(uintptr_t)in;
    zs.avail_in = (uInt)len;
    zs.next_out = out;
    zs.avail_out = (uInt)cap;
    /* len and cap fit in uInt: srv__ws_send() refuses messages past 4 GiB before this. */
    r = deflate(&zs, Z_SYNC_FLUSH);
    if ((r != Z_OK && r != Z_BUF_ERROR) || zs.avail_in != 0 || zs.avail_out == 0) {
        ret = r == Z_MEM_ERROR ? -ENOMEM : -ENOSPC;
        goto fail;
    }
    ret = (ssize_t)(cap - zs.avail_out);
    /* RFC 7692 7.2.1: drop the 00 00 ff ff the sync flush ends with. */
    if (ret >= 4 && memcmp(out + ret - 4, "\x00\x00\xff\xff", 4) == 0)
        ret -= 4;
fail:
    deflateEnd(&zs);
    return ret;
}

int srv__ws_inflate(const void *in, size_t len, size_t max, char **out, size_t *out_len)
{
    static const uint8_t tail[4] = {0x00, 0x00, 0xff, 0xff};
    z_stream zs;
    char *buf = NULL;
    size_t cap, have = 0;
    int ret = 0, r;
    bool tail_fed = false;

    memset(&zs, 0, sizeof(zs));
    if (inflateInit2(&zs, -15) != Z_OK)
        return -ENOMEM;
    cap = len * 4 < 1024 ? 1024 : len * 4;
    if (cap > max + 1)
        cap = max + 1;
    buf = malloc(cap);
    if (!buf) {
        ret = -ENOMEM;
        goto fail;
    }
    zs.next_in = (Bytef *)(uintptr_t)in;
    zs.avail_in = (uInt)len;
    for (;;) {
        if (zs.avail_in == 0 && !tail_fed) {
            zs.next_in = (Bytef *)(uintptr_t)tail;
            zs.avail_in = sizeof(tail);
            tail_fed = true;
        }
        if (have == cap) {
            /* One byte past max proves the message too big without inflating all of a
             * compression bomb. */
            if (cap > max) {
                ret = -EMSGSIZE;
                goto fail;
            }
            size_t ncap = cap * 2 > max + 1 ? max + 1 : cap * 2;
            char *nb = realloc(buf, ncap);
            if (!nb) {
                ret = -ENOMEM;
                goto fail;
            }
            buf = nb;
            cap = ncap;
        }
        zs.next_out = (Bytef *)buf + have;
        zs.avail_out = (uInt)(cap - have);
        r = inflate(&zs, Z_SYNC_FLUSH);
        have = cap - zs.avail_out;
        if (r == Z_STREAM_END)
            break; /* a final block is allowed; anything after it is ignored */
        if (r == Z_MEM_ERROR) {
            ret = -ENOMEM;
            goto fail;
        }
        if (r != Z_OK && r != Z_BUF_ERROR) {
            ret = -EBADMSG;
            goto fail;
        }
        if (zs.avail_in == 0 && tail_fed && zs.avail_out != 0)
            break;
        if (r == Z_BUF_ERROR && zs.avail_out != 0) {
            ret = -EBADMSG; /* no progress possible */
            goto fail;
        }
    }
    if (have > max) {
        ret = -EMSGSIZE;
        goto fail;
    }
    inflateEnd(&zs);
    *out = buf;
    *out_len = have;
    return 0;
fail:
    inflateEnd(&zs);
    free(buf);
    return ret;
}
