/* HTTP/1.1 request parser on llhttp, the request's IPC encoding and the response-head writer.
 * The parser copies what a request needs into its own bounded buffers because reads split
 * anywhere and the caller's buffer is reused; buffers are kept small between requests so that
 * thousands of idle keep-alive connections cost little, and reused so steady state never
 * allocates. */
#include "protocols/http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <llhttp.h>

#include "core/base/buf.h"
#include "protocols/http_static.h"

/* Buffers up to these sizes survive next(); bigger ones are freed after the request. */
#define HEAD_KEEP 2048
#define BODY_KEEP 4096
#define HDRS_KEEP 32
#define HEAD_INITIAL 512

enum phase {
    PH_IDLE,     /* between requests: nothing of the next one yet */
    PH_HEAD,     /* request line and headers */
    PH_BODY,     /* body (and trailers) */
    PH_CONTINUE, /* paused at end of headers after returning CONTINUE */
    PH_READY,    /* paused after a whole request */
    PH_ERROR,
};

enum span { SP_NONE, SP_FIELD, SP_VALUE };

struct srv__http_parser {
    llhttp_t ll;
    srv__http_limits_t lim;
    enum phase phase;
    enum span span;
    bool in_message; /* llhttp called on_message_begin */
    bool trailers;
    bool expect_continue;
    bool te_seen;
    bool te_only_chunked; /* every Transfer-Encoding value so far is exactly "chunked" */
    int hosts;
    uint64_t body_expect; /* Content-Length, 0 when absent or chunked */
    int err_status;
    const char *err_reason;
    size_t head_bytes; /* bytes fed since the previous request ended, while in PH_IDLE/HEAD */
    size_t trailer_bytes;
    size_t ext_bytes; /* chunk extensions, read and dropped */
    uint32_t flags;
    /* method/url/header text; offsets because the buffer moves when it grows */
    char *head;
    size_t head_len, head_cap;
    size_t url_len;
    srv_header_t *hdrs;
    size_t *hdr_off; /* name offset, value offset per header */
    size_t nhdrs, hdrs_cap;
    char *body;
    size_t body_len, body_cap;
    srv_request_t req;
};

static int on_message_begin(llhttp_t *ll);
static int on_url(llhttp_t *ll, const char *at, size_t len);
static int on_version_complete(llhttp_t *ll);
static int on_header_field(llhttp_t *ll, const char *at, size_t len);
static int on_header_field_complete(llhttp_t *ll);
static int on_header_value(llhttp_t *ll, const char *at, size_t len);
static int on_header_value_complete(llhttp_t *ll);
static int on_headers_complete(llhttp_t *ll);
static int on_body(llhttp_t *ll, const char *at, size_t len);
static int on_message_complete(llhttp_t *ll);
static int on_chunk_header(llhttp_t *ll);
static int on_chunk_extension(llhttp_t *ll, const char *at, size_t len);

/* Read-only after initialisation and shared by every parser in every thread. */
static const llhttp_settings_t settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_version_complete = on_version_complete,
    .on_header_field = on_header_field,
    .on_header_field_complete = on_header_field_complete,
    .on_header_value = on_header_value,
    .on_header_value_complete = on_header_value_complete,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
    .on_chunk_header = on_chunk_header,
    .on_chunk_extension_name = on_chunk_extension,
    .on_chunk_extension_value = on_chunk_extension,
};

static int fail(srv__http_parser_t *p, int status, const char *reason)
{
    p->err_status = status;
    p->err_reason = reason;
    llhttp_set_error_reason(&p->ll, reason);
    return HPE_USER;
}

static bool lower_eq(const char *a, size_t alen, const char *lit)
{
    size_t n = strlen(lit);
    if (alen != n)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)a[i];
        if (c >= 'A' && c <= 'Z')
            c = (unsigned char)(c + 32);
        if (c != (unsigned char)lit[i])
            return false;
    }
    return true;
}

static int head_append(srv__http_parser_t *p, const char *at, size_t len)
{
    int rc = srv__grow(&p->head, &p->head_cap, p->head_len + len, HEAD_INITIAL, SIZE_MAX);
    if (rc < 0)
        return rc;
    memcpy(p->head + p->head_len, at, len);
    p->head_len += len;
    return 0;
}

static srv__http_parser_t *parser_of(llhttp_t *ll)
{
    return ll->data;
}

static int on_message_begin(llhttp_t *ll)
{
    parser_of(ll)->in_message = true;
    return 0;
}

static int on_url(llhttp_t *ll, const char *at, size_t len)
{
    srv__http_parser_t *p = parser_of(ll);
    if (head_append(p, at, len) < 0)
        return fail(p, 500, "out of memory");
    p->url_len += len;
    return 0;
}

/* llhttp runs with LENIENT_VERSION (see ll_init), so every well-formed "HTTP/d.d" gets here and
 * the version policy is ours alone. RFC 9110 6.2: a higher minor version of a major version we
 * speak is handled as the highest we implement (HTTP/1.2 as 1.1, see build_request); another
 * major version (0.x, 2.x and up) is refused before any header is read. */
static int on_version_complete(llhttp_t *ll)
{
    srv__http_parser_t *p = parser_of(ll);
    if (ll->http_major != 1)
        return fail(p, 505, "HTTP version not supported");
    return 0;
}

static int on_header_field(llhttp_t *ll, const char *at, size_t len)
{
    srv__http_parser_t *p = parser_of(ll);
    if (p->trailers) {
        /* Trailers are read and dropped (RFC 9112 7.1.2 allows it) but still bounded. */
        p->trailer_bytes += len;
        if (p->trailer_bytes > p->lim.header_max)
            return fail(p, 431, "trailers too large");
        return 0;
    }
    if (p->span != SP_FIELD) {
        if (p->nhdrs == p->lim.max_headers)
            return fail(p, 431, "too many headers");
        if (p->nhdrs == p->hdrs_cap) {
            size_t cap = p->hdrs_cap ? p->hdrs_cap * 2 : 16;
            if (cap > p->lim.max_headers)
                cap = p->lim.max_headers;
            srv_header_t *nh = realloc(p->hdrs, cap * sizeof(*nh));
            if (nh == NULL)
                return fail(p, 500, "out of memory");
            p->hdrs = nh;
            size_t *no = realloc(p->hdr_off, cap * 2 * sizeof(*no));
            if (no == NULL)
                return fail(p, 500, "out of memory");
            p->hdr_off = no;
            p->hdrs_cap = cap;
        }
        srv_header_t *h = &p->hdrs[p->nhdrs];
        memset(h, 0, sizeof(*h));
        p->hdr_off[2 * p->nhdrs] = p->head_len;
        p->hdr_off[2 * p->nhdrs + 1] = p->head_len;
        p->nhdrs++;
        p->span = SP_FIELD;
    }
    if (head_append(p, at, len) < 0)
        return fail(p, 500, "out of memory");
    p->hdrs[p->nhdrs - 1].name.len += len;
    return 0;
}

/* RFC 9110 5.6.2 tchar */
static bool is_token(const char *s, size_t n)
{
    static const char extra[] = "!#$%&'*+-.^_`|~";
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        bool ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                  (c != 0 && strchr(extra, c) != NULL);
        if (!ok)
            return false;
    }
    return true;
}

static bool is_hex(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* RFC 3986 2.3 unreserved and 2.2 sub-delims: what a reg-name holds besides %XX */
static bool is_regname_char(unsigned char c)
{
    static const char extra[] = "-._~!$&'()*+,;=";
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c != 0 && strchr(extra, c) != NULL);
}

/* The inside of an RFC 3986 3.2.2 IP-literal: IPv6address or IPvFuture. */
static bool valid_ip_literal(const char *s, size_t n)
{
    if (n > 0 && (s[0] == 'v' || s[0] == 'V')) {
        /* IPvFuture = "v" 1*HEXDIG "." 1*( unreserved / sub-delims / ":" ) */
        size_t i = 1;
        while (i < n && is_hex((unsigned char)s[i]))
            i++;
        if (i == 1 || i + 1 >= n || s[i] != '.')
            return false;
        for (i++; i < n; i++)
            if (!is_regname_char((unsigned char)s[i]) && s[i] != ':')
                return false;
        return true;
    }
    char text[INET6_ADDRSTRLEN];
    struct in6_addr a;
    if (n == 0 || n >= sizeof(text))
        return false;
    memcpy(text, s, n);
    text[n] = '\0';
    /* inet_pton() takes exactly RFC 4291 2.2 text (no zone id), which is RFC 3986's IPv6address */
    return inet_pton(AF_INET6, text, &a) == 1;
}

/* RFC 9110 7.2: Host = uri-host [ ":" port ], uri-host = IP-literal / IPv4address / reg-name
 * (IPv4address is a reg-name too), port = *DIGIT. reg-name and port may be empty (RFC 9112 3.2
 * asks for an empty Host when the target has no authority; RFC 3986 3.2.3 makes an empty port
 * the default one); a port above 65535 names nothing. */
static bool valid_host(const char *s, size_t n)
{
    size_t i = 0;
    if (n > 0 && s[0] == '[') {
        const char *end = memchr(s, ']', n);
        if (end == NULL || !valid_ip_literal(s + 1, (size_t)(end - s) - 1))
            return false;
        i = (size_t)(end - s) + 1;
    } else {
        while (i < n && s[i] != ':') {
            if (s[i] == '%') {
                if (n - i < 3 || !is_hex((unsigned char)s[i + 1]) ||
                    !is_hex((unsigned char)s[i + 2]))
                    return false;
                i += 3;
            } else if (is_regname_char((unsigned char)s[i])) {
                i++;
            } else {
                return false;
            }
        }
    }
    if (i == n)
        return true;
    if (s[i] != ':')
        return false;
    unsigned port = 0;
    for (i++; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        port = port * 10 + (unsigned)(s[i] - '0');
        if (port > 65535)
            return false;
    }
    return true;
}

static int on_header_field_complete(llhttp_t *ll)
{
    srv__http_parser_t *p = parser_of(ll);
    if (p->trailers)
        return 0;
    /* llhttp's loose mode (the one compiled here) lets spaces and more into names; a name
     * another hop reads differently is a request-smuggling vector, so refuse it. */
    size_t i = p->nhdrs - 1;
    if (!is_token(p->head + p->hdr_off[2 * i], p->hdrs[i].name.len))
        return fail(p, 400, "invalid header name");
    p->span = SP_VALUE;
    p->hdr_off[2 * (p->nhdrs - 1) + 1] = p->head_len;
    return 0;
}

static int on_header_value(llhttp_t *ll, const char *at, size_t len)
{
    srv__http_parser_t *p = parser_of(ll);
    if (p->trailers) {
        p->trailer_bytes += len;
        if (p->trailer_bytes > p->lim.header_max)
            return fail(p, 431, "trailers too large");
        return 0;
    }
    if (head_append(p, at, len) < 0)
        return fail(p, 500, "out of memory");
    p->hdrs[p->nhdrs - 1].value.len += len;
    return 0;
}

/* Looks at the headers whose meaning llhttp leaves to us, once each value is whole. */
static int on_header_value_complete(llhttp_t *ll)
{
    srv__http_parser_t *p = parser_of(ll);
    if (p->trailers)
        return 0;
    p->span = SP_NONE;
    size_t i = p->nhdrs - 1;
    srv_header_t *h = &p->hdrs[i];
    const char *name = p->head + p->hdr_off[2 * i];
    const char *val = p->head + p->hdr_off[2 * i + 1];
    /* llhttp drops leading whitespace but keeps trailing whitespace. */
    while (h->value.len > 0 && (val[h->value.len - 1] == ' ' || val[h->value.len - 1] == '\t'))
        h->value.len--;
    if (lower_eq(name, h->name.len, "transfer-encoding")) {
        if (!p->te_seen)
            p->te_only_chunked = true;
        p->te_seen = true;
        if (!lower_eq(val, h->value.len, "chunked") || p->flags & SRV_REQ_CHUNKED)
            p->te_only_chunked = false;
        p->flags |= SRV_REQ_CHUNKED;
    } else if (lower_eq(name, h->name.len, "host")) {
        /* RFC 9112 3.2: 400 for more than one Host line or an invalid value, in any version */
        if (++p->hosts > 1)
            return fail(p, 400, "duplicate Host");
        if (!valid_host(val, h->value.len))
            return fail(p, 400, "invalid Host");
    } else if (lower_eq(name, h->name.len, "expect")) {
        /* RFC 9110 10.1.1: other expectations MAY get 417; ignoring them is also allowed. */
        if (lower_eq(val, h->value.len, "100-continue"))
            p->expect_continue = true;
    }
    return 0;
}

static int on_headers_complete(llhttp_t *ll)
{
    srv__http_parser_t *p = parser_of(ll);
    p->phase = PH_BODY;
    p->trailers = true;
    /* An HTTP/0.9 request line ("GET /") has no version for on_version_complete to check. */
    if (ll->http_major != 1)
        return fail(p, 505, "HTTP version not supported");
    /* RFC 9112 3.2: Host is mandatory from HTTP/1.1 on (more than one is refused as it comes) */
    if (ll->http_minor >= 1 && p->hosts == 0)
        return fail(p, 400, "missing Host");
    if (ll->method == HTTP_CONNECT)
        return fail(p, 501, "CONNECT not supported");
    /* RFC 9112 6.1: Transfer-Encoding in HTTP/1.0 means faulty framing (a 1.0 hop may have
     * ignored it and read the body another way): 400 and close, whatever the coding. llhttp
     * would decode it as chunked and keep the connection. */
    if (p->te_seen && ll->http_minor == 0)
        return fail(p, 400, "Transfer-Encoding in HTTP/1.0");
    if (p->te_seen && !p->te_only_chunked)
        return fail(p, 501, "unsupported transfer-encoding");
    if ((ll->flags & F_CONTENT_LENGTH) && !(ll->flags & F_CHUNKED)) {
        if (ll->content_length > p->lim.body_max)
            return fail(p, 413, "body too large");
        p->body_expect = ll->content_length;
    }
    if (llhttp_should_keep_alive(ll))
        p->flags |= SRV_REQ_KEEP_ALIVE;
    if (ll->method == HTTP_HEAD)
        p->flags |= SRV_REQ_HEAD;
    if (ll->upgrade)
        p->flags |= SRV_REQ_UPGRADE;
    if (p->expect_continue) {
        p->flags |= SRV_REQ_EXPECT_CONTINUE;
        bool body = (ll->flags & F_CHUNKED) || ll->content_length > 0;
        if (body) {
            p->phase = PH_CONTINUE;
            return HPE_PAUSED;
        }
    }
    return 0;
}

static int on_body(llhttp_t *ll, const char *at, size_t len)
{
    srv__http_parser_t *p = parser_of(ll);
    if (len > p->lim.body_max - p->body_len)
        return fail(p, 413, "body too large");
    /* Grow with the bytes that arrived, never straight to Content-Length: a client announcing
     * a big body and sending nothing must not pin that much memory. */
    size_t lim = p->body_expect ? p->body_expect : p->lim.body_max;
    if (srv__grow(&p->body, &p->body_cap, p->body_len + len, 1024, lim) < 0)
        return fail(p, 500, "out of memory");
    memcpy(p->body + p->body_len, at, len);
    p->body_len += len;
    return 0;
}

/* A chunk announcing more than the body may still hold is refused before its bytes arrive. */
static int on_chunk_header(llhttp_t *ll)
{
    srv__http_parser_t *p = parser_of(ll);
    if (ll->content_length > p->lim.body_max - p->body_len)
        return fail(p, 413, "body too large");
    return 0;
}

/* llhttp does not buffer extensions, but an endless one would keep a request open forever. */
static int on_chunk_extension(llhttp_t *ll, const char *at, size_t len)
{
    srv__http_parser_t *p = parser_of(ll);
    p->ext_bytes += len;
    if (p->ext_bytes > p->lim.header_max)
        return fail(p, 400, "chunk extensions too long");
    return 0;
}

/* Points the view at the parser's buffers; offsets become pointers only now, when the buffers
 * can no longer move. */
static void build_request(srv__http_parser_t *p)
{
    srv_request_t *r = &p->req;
    memset(r, 0, sizeof(*r));
    const char *m = llhttp_method_name((llhttp_method_t)p->ll.method);
    r->method = (srv_str_t){m, strlen(m)};
    r->url = (srv_str_t){p->url_len ? p->head : "", p->url_len};
    const char *u = r->url.ptr;
    size_t n = r->url.len, ps = 0, pe;
    /* absolute-form (RFC 9112 3.2.2): the path starts after the authority */
    if ((n >= 7 && lower_eq(u, 7, "http://")) || (n >= 8 && lower_eq(u, 8, "https://"))) {
        ps = u[4] == ':' ? 7 : 8;
        while (ps < n && u[ps] != '/' && u[ps] != '?')
            ps++;
    }
    for (pe = ps; pe < n && u[pe] != '?'; pe++)
        ;
    r->path = (srv_str_t){u + ps, pe - ps};
    if (r->path.len == 0)
        r->path = (srv_str_t){"/", 1};
    if (pe < n)
        r->query = (srv_str_t){u + pe + 1, n - pe - 1};
    else
        r->query = (srv_str_t){u + n, 0};
    r->http_major = p->ll.http_major;
    r->http_minor = p->ll.http_minor > 1 ? 1 : p->ll.http_minor; /* RFC 9110 6.2: 1.x as 1.1 */
    r->flags = p->flags;
    for (size_t i = 0; i < p->nhdrs; i++) {
        p->hdrs[i].name.ptr = p->head + p->hdr_off[2 * i];
        p->hdrs[i].value.ptr = p->head + p->hdr_off[2 * i + 1];
    }
    r->headers = p->hdrs;
    r->nheaders = p->nhdrs;
    r->body = (srv_str_t){p->body_len ? p->body : "", p->body_len};
}

static int on_message_complete(llhttp_t *ll)
{
    srv__http_parser_t *p = parser_of(ll);
    build_request(p);
    p->phase = PH_READY;
    return HPE_PAUSED;
}

static void reset_message(srv__http_parser_t *p)
{
    p->phase = PH_IDLE;
    p->span = SP_NONE;
    p->in_message = false;
    p->trailers = false;
    p->expect_continue = false;
    p->te_seen = false;
    p->te_only_chunked = false;
    p->hosts = 0;
    p->body_expect = 0;
    p->head_bytes = 0;
    p->trailer_bytes = 0;
    p->ext_bytes = 0;
    p->flags = 0;
    p->head_len = 0;
    p->url_len = 0;
    p->nhdrs = 0;
    p->body_len = 0;
    memset(&p->req, 0, sizeof(p->req));
}

static void ll_init(srv__http_parser_t *p)
{
    /* llhttp keeps the settings pointer; they are never written through it. */
    llhttp_init(&p->ll, HTTP_REQUEST, (llhttp_settings_t *)&settings);
    p->ll.data = p;
    /* Without LENIENT_VERSION llhttp stops for good at "HTTP/1.2", which RFC 9110 6.2 wants
     * served as 1.1: on_version_complete decides instead. llhttp 8.1 has the flag but not
     * llhttp_set_lenient_version() (9.0), which sets exactly this bit. The flag changes nothing
     * but the version check. */
    p->ll.lenient_flags |= LENIENT_VERSION;
}

int srv__http_parser_create(srv__http_parser_t **out, const srv__http_limits_t *limits)
{
    srv__http_parser_t *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return -ENOMEM;
    if (limits != NULL)
        p->lim = *limits;
    if (p->lim.header_max == 0)
        p->lim.header_max = SRV_HTTP_HEADER_MAX_DEFAULT;
    if (p->lim.body_max == 0)
        p->lim.body_max = SRV_HTTP_BODY_MAX_DEFAULT;
    if (p->lim.max_headers == 0)
        p->lim.max_headers = SRV_HTTP_MAX_HEADERS_DEFAULT;
    ll_init(p);
    reset_message(p);
    *out = p;
    return 0;
}

void srv__http_parser_destroy(srv__http_parser_t *p)
{
    if (p == NULL)
        return;
    free(p->head);
    free(p->hdrs);
    free(p->hdr_off);
    free(p->body);
    free(p);
}

static int map_error(srv__http_parser_t *p, llhttp_errno_t err)
{
    /* One of our callbacks refused: llhttp reports HPE_USER or HPE_CB_<callback>. */
    if (p->err_status != 0)
        return p->err_status;
    p->err_reason = llhttp_get_error_reason(&p->ll);
    if (p->err_reason == NULL)
        p->err_reason = llhttp_errno_name(err);
    switch (err) {
    /* HPE_INVALID_VERSION is a garbled version only: with LENIENT_VERSION a well-formed one we do
     * not speak is refused (505) in on_version_complete. */
    case HPE_INVALID_TRANSFER_ENCODING:
        p->err_status = 501;
        break;
    default:
        p->err_status = 400;
        break;
    }
    return p->err_status;
}

srv__http_event_t srv__http_parser_feed(srv__http_parser_t *p, const char *data, size_t len,
                                      size_t *consumed)
{
    size_t off = 0;
    *consumed = 0;
    switch (p->phase) {
    case PH_ERROR:
        return SRV_HTTP_ERROR;
    case PH_READY:
        return SRV_HTTP_REQUEST;
    case PH_CONTINUE:
        p->phase = PH_BODY;
        llhttp_resume(&p->ll);
        break;
    default:
        break;
    }
    while (off < len) {
        size_t n = len - off;
        bool head = p->phase == PH_IDLE || p->phase == PH_HEAD;
        if (head) {
            /* Never hand llhttp more header bytes than allowed: that bounds the head buffer
             * and the header size check is exact whatever the read sizes. */
            if (n > p->lim.header_max - p->head_bytes)
                n = p->lim.header_max - p->head_bytes;
            if (p->phase == PH_IDLE)
                p->phase = PH_HEAD;
        }
        llhttp_errno_t err = llhttp_execute(&p->ll, data + off, n);
        if (err == HPE_OK) {
            off += n;
            if (head && (p->phase == PH_HEAD || p->phase == PH_IDLE)) {
                p->head_bytes += n;
                if (p->head_bytes >= p->lim.header_max) {
                    /* RFC 9110 15.5.15: a target too long to take is 414; 431 is for the
                     * header fields. Before the first header field only the request line used
                     * the budget, and llhttp refuses unknown methods at once, so what is long
                     * is the target. */
                    bool line = p->nhdrs == 0;
                    p->phase = PH_ERROR;
                    p->err_status = line ? 414 : 431;
                    p->err_reason = line ? "request target too long" : "request header too large";
                    *consumed = off;
                    return SRV_HTTP_ERROR;
                }
            }
            continue;
        }
        size_t used = (size_t)(llhttp_get_error_pos(&p->ll) - (data + off));
        if (err == HPE_PAUSED_UPGRADE) {
            /* Reached only after next() on an upgrade request the caller declined: keep
             * parsing HTTP. */
            llhttp_resume_after_upgrade(&p->ll);
            off += used;
            continue;
        }
        if (err == HPE_PAUSED) {
            off += used;
            *consumed = off;
            if (p->phase == PH_CONTINUE)
                return SRV_HTTP_CONTINUE;
            return SRV_HTTP_REQUEST;
        }
        map_error(p, err);
        p->phase = PH_ERROR;
        *consumed = off + used;
        return SRV_HTTP_ERROR;
    }
    *consumed = off;
    return SRV_HTTP_NEED_MORE;
}

const srv_request_t *srv__http_parser_request(srv__http_parser_t *p)
{
    return p->phase == PH_READY ? &p->req : NULL;
}

/* Free the buffers a big request grew, so idle parsers stay small. */
static void trim_buffers(srv__http_parser_t *p)
{
    if (p->head_cap > HEAD_KEEP) {
        free(p->head);
        p->head = NULL;
        p->head_cap = 0;
    }
    if (p->body_cap > BODY_KEEP) {
        free(p->body);
        p->body = NULL;
        p->body_cap = 0;
    }
    if (p->hdrs_cap > HDRS_KEEP) {
        free(p->hdrs);
        free(p->hdr_off);
        p->hdrs = NULL;
        p->hdr_off = NULL;
        p->hdrs_cap = 0;
    }
}

void srv__http_parser_next(srv__http_parser_t *p)
{
    if (p->phase != PH_READY)
        return;
    trim_buffers(p);
    reset_message(p);
    llhttp_resume(&p->ll);
}

void srv__http_parser_reset(srv__http_parser_t *p)
{
    trim_buffers(p);
    p->err_status = 0;
    p->err_reason = NULL;
    ll_init(p);
    reset_message(p);
}

int srv__http_parser_error(const srv__http_parser_t *p, const char **reason)
{
    if (reason != NULL)
        *reason = p->phase == PH_ERROR ? p->err_reason : NULL;
    return p->phase == PH_ERROR ? p->err_status : 0;
}

bool srv__http_parser_idle(const srv__http_parser_t *p)
{
    return p->phase == PH_IDLE || (p->phase == PH_HEAD && !p->in_message);
}

bool srv__http_parser_headers_done(const srv__http_parser_t *p)
{
    return p->phase == PH_BODY || p->phase == PH_CONTINUE || p->phase == PH_READY;
}

void srv__http_parser_shrink(srv__http_parser_t *p)
{
    if (p->phase != PH_IDLE)
        return;
    free(p->head);
    free(p->body);
    free(p->hdrs);
    free(p->hdr_off);
    p->head = p->body = NULL;
    p->hdrs = NULL;
    p->hdr_off = NULL;
    p->head_cap = p->body_cap = p->hdrs_cap = 0;
}

/* ---- public request helpers (include/srv/srv.h) ---- */

srv_str_t srv_request_header(const srv_request_t *req, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < req->nheaders; i++) {
        const srv_header_t *h = &req->headers[i];
        if (h->name.len == n && strncasecmp(h->name.ptr, name, n) == 0)
            return h->value;
    }
    return (srv_str_t){NULL, 0};
}

int srv_request_query(const srv_request_t *req, const char *name, char *buf, size_t len)
{
    return srv__http_query_get(req->query, name, buf, len);
}
