/* A parsed request as one flat block for the channel to a worker (process mode): the request
 * crosses already parsed, and the worker reads it in place without re-parsing. See http.h. */
#include "protocols/http.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>

#define ENC_MAGIC 0x31515253u /* "SRQ1" */

struct enc_str {
    uint64_t off, len;
};

struct enc_head {
    uint32_t magic;
    uint32_t nheaders;
    uint64_t total;
    uint64_t session;
    uint32_t flags;
    int32_t http_major, http_minor, peer_port, listener;
    uint32_t pad;
    struct enc_str method, url, path, query, body, peer;
    uint64_t tls; /* offset of the srv_tls_t (8-aligned), 0 on a plain connection */
};

_Static_assert(sizeof(struct enc_head) % 8 == 0, "header entries must stay 8-byte aligned");

static size_t align8(size_t n)
{
    return (n + 7) & ~(size_t)7;
}

static size_t enc_tables(size_t nheaders)
{
    return sizeof(struct enc_head) + nheaders * 2 * sizeof(struct enc_str) +
           nheaders * sizeof(srv_header_t);
}

/* path and query usually lie inside url; encoding them as sub-ranges avoids a copy. */
static bool inside(srv_str_t s, srv_str_t url)
{
    return s.len == 0 || (url.ptr && s.ptr >= url.ptr && s.ptr + s.len <= url.ptr + url.len);
}

size_t srv__http_request_encoded_size(const srv_request_t *req)
{
    size_t n = enc_tables(req->nheaders);
    n += req->method.len + req->url.len + req->body.len + req->peer.len;
    if (!inside(req->path, req->url))
        n += req->path.len;
    if (!inside(req->query, req->url))
        n += req->query.len;
    for (size_t i = 0; i < req->nheaders; i++)
        n += req->headers[i].name.len + req->headers[i].value.len;
    if (req->tls)
        n = align8(n) + sizeof(srv_tls_t);
    return align8(n);
}

static struct enc_str put(char *base, size_t *pos, srv_str_t s)
{
    struct enc_str e = {*pos, s.len};
    if (s.len)
        memcpy(base + *pos, s.ptr, s.len);
    *pos += s.len;
    return e;
}

static struct enc_str put_sub(char *base, size_t *pos, srv_str_t s, srv_str_t url, uint64_t uoff)
{
    if (s.len == 0)
        return (struct enc_str){uoff, 0};
    if (inside(s, url))
        return (struct enc_str){uoff + (uint64_t)(s.ptr - url.ptr), s.len};
    return put(base, pos, s);
}

size_t srv__http_request_encode(const srv_request_t *req, void *out)
{
    char *base = out;
    struct enc_head *h = out;
    memset(h, 0, sizeof(*h));
    struct enc_str *tab = (struct enc_str *)(h + 1);
    size_t pos = enc_tables(req->nheaders);
    h->magic = ENC_MAGIC;
    h->nheaders = (uint32_t)req->nheaders;
    h->session = req->session;
    h->flags = req->flags;
    h->http_major = req->http_major;
    h->http_minor = req->http_minor;
    h->peer_port = req->peer_port;
    h->listener = req->listener;
    h->method = put(base, &pos, req->method);
    h->url = put(base, &pos, req->url);
    h->path = put_sub(base, &pos, req->path, req->url, h->url.off);
    h->query = put_sub(base, &pos, req->query, req->url, h->url.off);
    for (size_t i = 0; i < req->nheaders; i++) {
        tab[2 * i] = put(base, &pos, req->headers[i].name);
        tab[2 * i + 1] = put(base, &pos, req->headers[i].value);
    }
    h->body = put(base, &pos, req->body);
    h->peer = put(base, &pos, req->peer);
    if (req->tls) {
        size_t at = align8(pos);
        memset(base + pos, 0, at - pos);
        memcpy(base + at, req->tls, sizeof(srv_tls_t));
        h->tls = at;
        pos = at + sizeof(srv_tls_t);
    }
    size_t total = align8(pos);
    memset(base + pos, 0, total - pos);
    h->total = total;
    return total;
}

static int get(const char *base, size_t len, struct enc_str e, size_t lo, srv_str_t *s)
{
    if (e.off < lo || e.off > len || e.len > len - e.off)
        return -EPROTO;
    *s = (srv_str_t){base + e.off, e.len};
    return 0;
}

int srv__http_request_decode(void *block, size_t len, srv_request_t *view)
{
    const char *base = block;
    const struct enc_head *h = block;
    if (block == NULL || ((uintptr_t)block & 7) != 0 || len < sizeof(*h))
        return -EPROTO;
    if (h->magic != ENC_MAGIC || h->total > len || h->total < sizeof(*h))
        return -EPROTO;
    len = h->total;
    if (h->nheaders > (len - sizeof(*h)) / (2 * sizeof(struct enc_str) + sizeof(srv_header_t)))
        return -EPROTO;
    size_t lo = enc_tables(h->nheaders);
    srv_request_t r;
    memset(&r, 0, sizeof(r));
    if (get(base, len, h->method, lo, &r.method) || get(base, len, h->url, lo, &r.url) ||
        get(base, len, h->path, lo, &r.path) || get(base, len, h->query, lo, &r.query) ||
        get(base, len, h->body, lo, &r.body) || get(base, len, h->peer, lo, &r.peer))
        return -EPROTO;
    const struct enc_str *tab = (const struct enc_str *)(h + 1);
    srv_header_t *hdrs = (srv_header_t *)(void *)(tab + 2 * h->nheaders);
    for (size_t i = 0; i < h->nheaders; i++) {
        srv_header_t e;
        if (get(base, len, tab[2 * i], lo, &e.name) || get(base, len, tab[2 * i + 1], lo, &e.value))
            return -EPROTO;
        hdrs[i] = e;
    }
    r.session = h->session;
    r.flags = h->flags;
    r.http_major = h->http_major;
    r.http_minor = h->http_minor;
    r.peer_port = h->peer_port;
    r.listener = h->listener;
    if (h->tls != 0) {
        if (h->tls < lo || h->tls > len || len - h->tls < sizeof(srv_tls_t))
            return -EPROTO;
        srv_tls_t *tls = (srv_tls_t *)(void *)((char *)block + h->tls);
        /* Its strings end within their arrays, whoever wrote the block. */
        tls->version[sizeof(tls->version) - 1] = tls->cipher[sizeof(tls->cipher) - 1] = '\0';
        tls->sni[sizeof(tls->sni) - 1] = tls->client_subject[sizeof(tls->client_subject) - 1] = '\0';
        r.tls = tls;
    }
    r.headers = h->nheaders ? hdrs : NULL;
    r.nheaders = h->nheaders;
    *view = r;
    return 0;
}
