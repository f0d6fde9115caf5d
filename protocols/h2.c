/* HTTP/2 server sessions over libnghttp2; see h2.h. nghttp2 does the framing, HPACK, flow
 * control and the message checks (pseudo-headers, content-length); this file keeps each
 * stream's request (headers and body, within their limits) until it is whole, and each
 * response's body (bytes, then maybe a file) until the peer's window takes it; h2_guard.c
 * counts what nghttp2 does not limit. */
#include "protocols/h2.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <nghttp2/nghttp2.h>

#include "core/base/buf.h"
#include "protocols/h2_guard.h"

typedef struct hdr_ref {
    uint32_t name_off, name_len, value_off, value_len;
} hdr_ref_t;

typedef struct h2_stream {
    int32_t id;
    struct h2_stream *prev, *next; /* every stream of the session */
    void *user;
    srv__buf_t strings; /* header names and values */
    hdr_ref_t *hdrs;
    size_t nhdrs, cap_hdrs;
    hdr_ref_t method, path, authority;
    size_t header_bytes; /* as SETTINGS_MAX_HEADER_LIST_SIZE counts them */
    size_t h1_bytes;     /* as the same head would take in HTTP/1.1 */
    bool headers_too_large, has_host, expect_continue;
    bool refuse_rest;  /* answered from here (413, 408): the rest of the request is not read */
    int64_t last_recv; /* ms: when the request last made progress */
    uint64_t declared; /* its content-length, 0 when none */
    bool dispatched;   /* the request went to the caller */
    srv__buf_t body;
    /* the response */
    bool answered, ended, deferred;
    srv__buf_t out;
    size_t out_off;
    int file_fd; /* after out: a file range, read as the window allows */
    uint64_t foff, fleft;
    bool out_final;
} h2_stream_t;

struct srv__h2 {
    nghttp2_session *s;
    srv__h2_opts_t o;
    srv__h2_ops_t ops;
    const char *out_data; /* the frame nghttp2 gave last, valid until it gives the next */
    size_t out_len, out_off;
    h2_stream_t *streams;
    uint32_t nstreams;
    int32_t last_stream;
    bool settings_acked;
    bool in_block; /* a header block has begun and not ended (END_HEADERS) */
    bool failed;
    uint32_t fail_code;
    const char *fail_why;
    srv__h2_guard_t guard;
    uint64_t pending;      /* body bytes queued on every stream, not framed yet */
    int64_t last_progress; /* ms: when body bytes last went into frames (or began to wait) */
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A limit or a protocol error ends the session (the GOAWAY is queued by the caller). */
static int fail(srv__h2_t *h, uint32_t code, const char *why)
{
    if (!h->failed) {
        h->failed = true;
        h->fail_code = code;
        h->fail_why = why;
    }
    return NGHTTP2_ERR_CALLBACK_FAILURE;
}

/* ---- request side ---- */

static h2_stream_t *stream_of(nghttp2_session *s, int32_t id)
{
    return nghttp2_session_get_stream_user_data(s, id);
}

static h2_stream_t *stream_new(srv__h2_t *h, int32_t id)
{
    h2_stream_t *st = calloc(1, sizeof(*st));
    if (st == NULL)
        return NULL;
    st->id = id;
    st->file_fd = -1;
    st->last_recv = now_ms();
    st->next = h->streams;
    if (h->streams)
        h->streams->prev = st;
    h->streams = st;
    h->nstreams++;
    nghttp2_session_set_stream_user_data(h->s, id, st);
    return st;
}

static void stream_free(srv__h2_t *h, h2_stream_t *st)
{
    if (st->prev)
        st->prev->next = st->next;
    else
        h->streams = st->next;
    if (st->next)
        st->next->prev = st->prev;
    h->nstreams--;
    uint64_t left = st->out.len - st->out_off + st->fleft;
    h->pending -= left < h->pending ? left : h->pending;
    if (st->file_fd >= 0)
        close(st->file_fd);
    srv__buf_free(&st->strings);
    srv__buf_free(&st->body);
    srv__buf_free(&st->out);
    free(st->hdrs);
    free(st);
}

/* Every frame header from the peer, CONTINUATIONs included: the flood limits, and streams
 * beyond the advertised limit once the peer has it. */
static int on_begin_frame(nghttp2_session *s, const nghttp2_frame_hd *hd, void *ud)
{
    srv__h2_t *h = ud;
    const char *why = NULL;
    uint32_t code = srv__h2_guard_frame(&h->guard, hd->type, hd->flags, hd->length, now_ms(), &why);
    if (code)
        return fail(h, code, why);
    if (hd->type == NGHTTP2_HEADERS || hd->type == NGHTTP2_CONTINUATION)
        h->in_block = !(hd->flags & NGHTTP2_FLAG_END_HEADERS);
    if (hd->type == NGHTTP2_HEADERS && hd->stream_id > h->last_stream &&
        nghttp2_session_find_stream(s, hd->stream_id) == NULL && h->settings_acked &&
        h->nstreams >= h->o.max_concurrent_streams)
        return fail(h, SRV__H2_PROTOCOL_ERROR, "streams over http2_max_concurrent_streams");
    return 0;
}

static int on_begin_headers(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
    (void)s;
    srv__h2_t *h = ud;
    if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    if (f->hd.stream_id > h->last_stream)
        h->last_stream = f->hd.stream_id;
    srv__h2_guard_stream(&h->guard, now_ms());
    return stream_new(h, f->hd.stream_id) ? 0 : NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
}

static int keep_string(h2_stream_t *st, const uint8_t *p, size_t n, uint32_t *off)
{
    *off = (uint32_t)st->strings.len;
    return srv__buf_append(&st->strings, p, n, 256, UINT32_MAX);
}

/* A content-length header's value (nghttp2 checked its syntax), saturating. */
static uint64_t content_length(const uint8_t *v, size_t n)
{
    uint64_t x = 0;
    for (size_t i = 0; i < n && v[i] >= '0' && v[i] <= '9'; i++)
        x = x > UINT64_MAX / 10 - 10 ? UINT64_MAX : x * 10 + (uint64_t)(v[i] - '0');
    return x;
}

static int add_header(h2_stream_t *st, const uint8_t *name, size_t nl, const uint8_t *value,
                      size_t vl)
{
    hdr_ref_t r = {.name_len = (uint32_t)nl, .value_len = (uint32_t)vl};
    if (keep_string(st, name, nl, &r.name_off) < 0 || keep_string(st, value, vl, &r.value_off) < 0)
        return -1;
    if (nl == 7 && memcmp(name, ":method", 7) == 0)
        st->method = r;
    else if (nl == 5 && memcmp(name, ":path", 5) == 0)
        st->path = r;
    else if (nl == 10 && memcmp(name, ":authority", 10) == 0)
        st->authority = r;
    else if (nl > 0 && name[0] == ':')
        return 0; /* :scheme, :protocol: nothing the app reads */
    else {
        if (st->nhdrs == st->cap_hdrs) {
            size_t cap = st->cap_hdrs ? 2 * st->cap_hdrs : 16;
            hdr_ref_t *h = realloc(st->hdrs, cap * sizeof(*h));
            if (h == NULL)
                return -1;
            st->hdrs = h;
            st->cap_hdrs = cap;
        }
        st->hdrs[st->nhdrs++] = r;
        if (nl == 4 && memcmp(name, "host", 4) == 0)
            st->has_host = true;
        if (nl == 14 && memcmp(name, "content-length", 14) == 0)
            st->declared = content_length(value, vl);
        if (nl == 6 && memcmp(name, "expect", 6) == 0 && vl == 12 &&
            strncasecmp((const char *)value, "100-continue", 12) == 0)
            st->expect_continue = true;
    }
    return 0;
}

static int on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name, size_t nl,
                     const uint8_t *value, size_t vl, uint8_t flags, void *ud)
{
    (void)flags;
    srv__h2_t *h = ud;
    h2_stream_t *st = stream_of(s, f->hd.stream_id);
    if (st == NULL || f->hd.type != NGHTTP2_HEADERS)
        return 0;
    st->header_bytes += nl + vl + 32;
    st->h1_bytes += nl + vl + 4;
    /* Far past the limit, from a block that small on the wire: a decompression bomb. */
    if (st->header_bytes > 4 * (size_t)h->o.max_header_list_size)
        return fail(h, SRV__H2_ENHANCE_YOUR_CALM, "HPACK bomb");
    if (st->header_bytes > h->o.max_header_list_size || st->h1_bytes > h->o.header_max)
        st->headers_too_large = true; /* answered 431 once the headers are complete */
    if (st->headers_too_large || f->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0; /* trailers of a request are read, not kept */
    return add_header(st, name, nl, value, vl) < 0 ? NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE : 0;
}

/* A limit's answer, from here (the caller never sees the request). */
static int answer_error(srv__h2_t *h, h2_stream_t *st, int status)
{
    srv_header_t cl = {{"content-length", 14}, {"0", 1}};
    if (h->ops.answered)
        h->ops.answered(h->ops.arg, status);
    return srv__h2_respond(h, st->id, status, &cl, 1, true);
}

static int on_data(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *data, size_t len,
                   void *ud)
{
    (void)flags;
    srv__h2_t *h = ud;
    h2_stream_t *st = stream_of(s, id);
    if (st == NULL || st->refuse_rest || st->headers_too_large || st->dispatched)
        return 0;
    st->last_recv = now_ms();
    if (st->body.len + len > h->o.body_max) {
        /* 413 now, then RST_STREAM(NO_ERROR) once it went (on_frame_send): the rest of the body
         * is not wanted. */
        st->refuse_rest = true;
        answer_error(h, st, 413);
        return 0;
    }
    if (srv__buf_append(&st->body, data, len, 1024, SIZE_MAX) < 0)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    return 0;
}

static srv_str_t str_at(const h2_stream_t *st, uint32_t off, uint32_t len)
{
    return (srv_str_t){st->strings.data + off, len};
}

static void url_split(srv_request_t *r)
{
    const char *q = memchr(r->url.ptr, '?', r->url.len);
    r->path = (srv_str_t){r->url.ptr, q ? (size_t)(q - r->url.ptr) : r->url.len};
    r->query = q ? (srv_str_t){q + 1, r->url.len - r->path.len - 1} : (srv_str_t){NULL, 0};
}

static void hand_over(srv__h2_t *h, h2_stream_t *st, srv_request_t *r)
{
    r->http_major = 2;
    r->http_minor = 0;
    r->flags = SRV_REQ_KEEP_ALIVE;
    if (r->method.len == 4 && memcmp(r->method.ptr, "HEAD", 4) == 0)
        r->flags |= SRV_REQ_HEAD;
    st->dispatched = true;
    st->user = h->ops.request(h->ops.arg, st->id, r);
}

/* The whole request of st, to the caller. */
static void dispatch(srv__h2_t *h, h2_stream_t *st)
{
    size_t n = st->nhdrs + (st->has_host || st->authority.value_len == 0 ? 0 : 1);
    srv_header_t *hv = calloc(n ? n : 1, sizeof(*hv));
    if (hv == NULL) {
        nghttp2_submit_rst_stream(h->s, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_INTERNAL_ERROR);
        return;
    }
    for (size_t i = 0; i < st->nhdrs; i++) {
        hv[i].name = str_at(st, st->hdrs[i].name_off, st->hdrs[i].name_len);
        hv[i].value = str_at(st, st->hdrs[i].value_off, st->hdrs[i].value_len);
    }
    if (n > st->nhdrs) { /* HTTP/2's :authority is HTTP/1's Host */
        hv[n - 1].name = (srv_str_t){"host", 4};
        hv[n - 1].value = str_at(st, st->authority.value_off, st->authority.value_len);
    }
    srv_request_t r;
    memset(&r, 0, sizeof(r));
    r.method = str_at(st, st->method.value_off, st->method.value_len);
    r.url = str_at(st, st->path.value_off, st->path.value_len);
    url_split(&r);
    r.headers = hv;
    r.nheaders = n;
    r.body = (srv_str_t){st->body.data, st->body.len};
    hand_over(h, st, &r);
    free(hv);
    /* The request is the caller's now (it copied what it keeps): drop ours. */
    srv__buf_free(&st->body);
    srv__buf_free(&st->strings);
    free(st->hdrs);
    st->hdrs = NULL;
    st->nhdrs = st->cap_hdrs = 0;
}

static int on_request_frame(srv__h2_t *h, const nghttp2_frame *f, h2_stream_t *st)
{
    if (f->hd.type == NGHTTP2_HEADERS && st->declared > h->o.body_max && !st->answered) {
        /* A body announced over the limit: 413 before it comes, then RST_STREAM(NO_ERROR). */
        st->refuse_rest = true;
        answer_error(h, st, 413);
        return 0;
    }
    if (!(f->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
        /* Headers with a body to come: the client may wait for 100 before sending it. */
        if (f->hd.type == NGHTTP2_HEADERS && st->expect_continue && !st->headers_too_large) {
            st->expect_continue = false;
            nghttp2_nv nv = {(uint8_t *)":status", (uint8_t *)"100", 7, 3, NGHTTP2_NV_FLAG_NONE};
            nghttp2_submit_headers(h->s, NGHTTP2_FLAG_NONE, st->id, NULL, &nv, 1, NULL);
        }
        return 0;
    }
    if (st->answered || st->dispatched)
        return 0;
    if (st->headers_too_large)
        answer_error(h, st, 431);
    else
        dispatch(h, st);
    return 0;
}

static int on_frame_recv(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
    srv__h2_t *h = ud;
    if (f->hd.type == NGHTTP2_SETTINGS && (f->hd.flags & NGHTTP2_FLAG_ACK)) {
        h->settings_acked = true;
        return 0;
    }
    h2_stream_t *st = f->hd.stream_id ? stream_of(s, f->hd.stream_id) : NULL;
    if (st == NULL)
        return 0;
    if (f->hd.type == NGHTTP2_RST_STREAM) {
        /* A stream reset while it was open: work asked for and thrown away (in base mode the
         * request may have been served already, its frames not yet sent: it counts alike). */
        const char *why = NULL;
        uint32_t code = srv__h2_guard_reset(&h->guard, now_ms(), &why);
        return code ? fail(h, code, why) : 0;
    }
    if (f->hd.type == NGHTTP2_HEADERS || f->hd.type == NGHTTP2_DATA)
        return on_request_frame(h, f, st);
    return 0;
}

static int on_frame_send(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
    srv__h2_t *h = ud;
    if (f->hd.type == NGHTTP2_DATA)
        srv__h2_guard_data_sent(&h->guard, now_ms());
    if (f->hd.type == NGHTTP2_GOAWAY && f->goaway.error_code != NGHTTP2_NO_ERROR && !h->failed) {
        /* nghttp2 ended the session itself (a malformed frame, a flow-control error). */
        fail(h, f->goaway.error_code, "protocol error");
    }
    h2_stream_t *st = stream_of(s, f->hd.stream_id);
    if (st && st->refuse_rest && (f->hd.flags & NGHTTP2_FLAG_END_STREAM) &&
        (f->hd.type == NGHTTP2_HEADERS || f->hd.type == NGHTTP2_DATA))
        nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_NO_ERROR);
    return 0;
}

static int on_stream_close(nghttp2_session *s, int32_t id, uint32_t code, void *ud)
{
    srv__h2_t *h = ud;
    h2_stream_t *st = stream_of(s, id);
    if (st == NULL)
        return 0;
    nghttp2_session_set_stream_user_data(s, id, NULL);
    if (code == NGHTTP2_NO_ERROR)
        srv__h2_guard_completed(&h->guard);
    /* A request with the caller whose response did not end: its producer should stop. */
    void *user = st->user;
    st->user = NULL;
    if (user && !st->ended && h->ops.reset)
        h->ops.reset(h->ops.arg, id, user, code);
    stream_free(h, st);
    return 0;
}

/* ---- response side ---- */

static void took(srv__h2_t *h, size_t n)
{
    h->pending -= n < h->pending ? n : h->pending;
    h->last_progress = now_ms();
}

static ssize_t read_file(srv__h2_t *h, h2_stream_t *st, uint8_t *buf, size_t length)
{
    size_t want = st->fleft < length ? (size_t)st->fleft : length;
    ssize_t n;
    do
        n = pread(st->file_fd, buf, want, (off_t)st->foff);
    while (n < 0 && errno == EINTR);
    if (n <= 0) /* the file shrank or cannot be read: the response is broken */
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    st->foff += (uint64_t)n;
    st->fleft -= (uint64_t)n;
    took(h, (size_t)n);
    if (st->fleft == 0) {
        close(st->file_fd);
        st->file_fd = -1;
    }
    return n;
}

static ssize_t read_body(nghttp2_session *s, int32_t id, uint8_t *buf, size_t length,
                         uint32_t *flags, nghttp2_data_source *src, void *ud)
{
    (void)s;
    (void)id;
    srv__h2_t *h = ud;
    h2_stream_t *st = src->ptr;
    size_t avail = st->out.len - st->out_off;
    ssize_t n = 0;
    if (avail > 0) {
        n = (ssize_t)(avail < length ? avail : length);
        memcpy(buf, st->out.data + st->out_off, (size_t)n);
        st->out_off += (size_t)n;
        took(h, (size_t)n);
        if (st->out_off == st->out.len)
            st->out_off = st->out.len = 0;
    } else if (st->fleft > 0) {
        n = read_file(h, st, buf, length);
        if (n < 0)
            return n;
    } else if (!st->out_final) {
        st->deferred = true;
        return NGHTTP2_ERR_DEFERRED;
    }
    if (st->out_final && st->out.len == st->out_off && st->fleft == 0) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
        st->ended = true;
    }
    return n;
}

/* HTTP/1 header names HTTP/2 forbids (RFC 9113 8.2.2). */
static bool connection_specific(srv_str_t n)
{
    static const char *const names[] = {"connection",        "keep-alive", "proxy-connection",
                                        "transfer-encoding", "upgrade",    "http2-settings"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (n.len == strlen(names[i]) && strncasecmp(n.ptr, names[i], n.len) == 0)
            return true;
    return false;
}

int srv__h2_respond(srv__h2_t *h, int32_t stream, int status, const srv_header_t *headers,
                    size_t nheaders, bool end)
{
    h2_stream_t *st = stream_of(h->s, stream);
    if (st == NULL)
        return -ENOENT;
    if (st->answered)
        return -EALREADY;
    if (status < 100 || status > 999)
        return -EINVAL;
    nghttp2_nv *nv = calloc(nheaders + 1, sizeof(*nv));
    srv__buf_t lower = {0};
    size_t total = 0;
    for (size_t i = 0; i < nheaders; i++)
        total += headers[i].name.len;
    if (nv == NULL || (total > 0 && srv__buf_reserve(&lower, total, total, total) == NULL)) {
        free(nv);
        return -ENOMEM;
    }
    char code[4] = {(char)('0' + status / 100), (char)('0' + status / 10 % 10),
                    (char)('0' + status % 10), '\0'};
    nv[0] = (nghttp2_nv){(uint8_t *)":status", (uint8_t *)code, 7, 3, NGHTTP2_NV_FLAG_NONE};
    size_t n = 1, at = 0;
    for (size_t i = 0; i < nheaders; i++) {
        if (connection_specific(headers[i].name))
            continue;
        uint8_t *name = (uint8_t *)lower.data + at;
        for (size_t k = 0; k < headers[i].name.len; k++)
            name[k] = (uint8_t)tolower((unsigned char)headers[i].name.ptr[k]);
        at += headers[i].name.len;
        nv[n++] = (nghttp2_nv){name, (uint8_t *)headers[i].value.ptr, headers[i].name.len,
                               headers[i].value.len, NGHTTP2_NV_FLAG_NONE};
    }
    nghttp2_data_provider dp = {.source.ptr = st, .read_callback = read_body};
    int rv = nghttp2_submit_response(h->s, stream, nv, n, end ? NULL : &dp);
    free(nv);
    srv__buf_free(&lower);
    if (rv != 0)
        return -EPROTO;
    st->answered = true;
    st->ended = end;
    return 0;
}

static void more_body(srv__h2_t *h, h2_stream_t *st, uint64_t len, bool final)
{
    if (len > 0 && h->pending == 0)
        h->last_progress = now_ms(); /* the wait for the window starts now */
    h->pending += len;
    st->out_final = final;
    if (st->deferred) {
        st->deferred = false;
        nghttp2_session_resume_data(h->s, st->id);
    }
}

int srv__h2_data(srv__h2_t *h, int32_t stream, const void *data, size_t len, bool final)
{
    h2_stream_t *st = stream_of(h->s, stream);
    if (st == NULL)
        return -ENOENT;
    if (!st->answered || st->ended || st->out_final || st->fleft > 0)
        return -EPROTO;
    if (len > 0 && srv__buf_append(&st->out, data, len, 4096, SIZE_MAX) < 0)
        return -ENOMEM;
    more_body(h, st, len, final);
    return 0;
}

int srv__h2_file(srv__h2_t *h, int32_t stream, int fd, uint64_t off, uint64_t len, bool final)
{
    h2_stream_t *st = stream_of(h->s, stream);
    int rc = st == NULL ? -ENOENT : (!st->answered || st->ended || st->out_final) ? -EPROTO : 0;
    if (rc < 0 || len == 0) {
        close(fd);
        if (rc == 0)
            more_body(h, st, 0, final);
        return rc;
    }
    if (st->file_fd >= 0) /* (one file per response: the worker sends one) */
        close(st->file_fd);
    st->file_fd = fd;
    st->foff = off;
    st->fleft = len;
    more_body(h, st, len, final);
    return 0;
}

uint64_t srv__h2_pending(const srv__h2_t *h, int32_t stream)
{
    const h2_stream_t *st = stream_of(h->s, stream);
    return st ? st->out.len - st->out_off + st->fleft : 0;
}

void srv__h2_set_user(srv__h2_t *h, int32_t stream, void *user)
{
    h2_stream_t *st = stream_of(h->s, stream);
    if (st)
        st->user = user;
}

void srv__h2_reset(srv__h2_t *h, int32_t stream, uint32_t code)
{
    h2_stream_t *st = stream_of(h->s, stream);
    if (st)
        st->user = NULL;
    nghttp2_submit_rst_stream(h->s, NGHTTP2_FLAG_NONE, stream, code);
}

/* ---- the session ---- */

static void set_callbacks(nghttp2_session_callbacks *cb)
{
    nghttp2_session_callbacks_set_on_begin_frame_callback(cb, on_begin_frame);
    nghttp2_session_callbacks_set_on_begin_headers_callback(cb, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
    nghttp2_session_callbacks_set_on_frame_send_callback(cb, on_frame_send);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
}

int srv__h2_create(srv__h2_t **out, const srv__h2_opts_t *o, const srv__h2_ops_t *ops)
{
    srv__h2_t *h = calloc(1, sizeof(*h));
    nghttp2_session_callbacks *cb = NULL;
    if (h == NULL || nghttp2_session_callbacks_new(&cb) != 0) {
        free(h);
        return -ENOMEM;
    }
    h->o = *o;
    h->ops = *ops;
    srv__h2_guard_init(&h->guard, o->max_concurrent_streams, o->max_header_list_size, now_ms());
    set_callbacks(cb);
    /* nghttp2's own limits (where it has them) stay behind ours, so the log and the GOAWAY say
     * the same thing whatever the library's version. */
    nghttp2_option *opt = NULL;
    int rv = nghttp2_option_new(&opt);
    if (rv == 0) {
        nghttp2_option_set_max_continuations(opt, 2 * SRV__H2_MAX_CONTINUATION);
        nghttp2_option_set_stream_reset_rate_limit(opt, UINT32_MAX, UINT32_MAX);
        rv = nghttp2_session_server_new2(&h->s, cb, h, opt);
        nghttp2_option_del(opt);
    }
    nghttp2_session_callbacks_del(cb);
    if (rv != 0) {
        free(h);
        return -ENOMEM;
    }
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, o->max_concurrent_streams},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, o->initial_window_size},
        {NGHTTP2_SETTINGS_MAX_FRAME_SIZE, o->max_frame_size},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, o->max_header_list_size},
        {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
    };
    if (nghttp2_submit_settings(h->s, NGHTTP2_FLAG_NONE, iv, sizeof(iv) / sizeof(iv[0])) != 0) {
        srv__h2_destroy(h);
        return -EINVAL;
    }
    /* The connection's window: room for every stream's, so one slow stream cannot hold the
     * others' uploads (nghttp2 gives it back as the bodies are read). */
    uint64_t conn = (uint64_t)o->initial_window_size * o->max_concurrent_streams;
    if (conn > (1u << 30))
        conn = 1u << 30;
    if (conn > 65535)
        nghttp2_session_set_local_window_size(h->s, NGHTTP2_FLAG_NONE, 0, (int32_t)conn);
    *out = h;
    return 0;
}

void srv__h2_destroy(srv__h2_t *h)
{
    if (h == NULL)
        return;
    /* nghttp2_session_del frees its streams without a callback: ours go here. */
    while (h->streams) {
        h2_stream_t *st = h->streams;
        nghttp2_session_set_stream_user_data(h->s, st->id, NULL);
        void *user = st->user;
        st->user = NULL;
        if (user && !st->ended && h->ops.reset)
            h->ops.reset(h->ops.arg, st->id, user, NGHTTP2_CANCEL);
        stream_free(h, st);
    }
    nghttp2_session_del(h->s);
    free(h);
}

int srv__h2_feed(srv__h2_t *h, const char *data, size_t len)
{
    if (h->failed)
        return -EPROTO;
    ssize_t rv = nghttp2_session_mem_recv(h->s, (const uint8_t *)data, len);
    if (rv >= 0 && !h->failed)
        return 0;
    if (!h->failed) {
        bool flood = rv == NGHTTP2_ERR_FLOODED, cont = rv == NGHTTP2_ERR_TOO_MANY_CONTINUATIONS;
        fail(h, flood || cont ? SRV__H2_ENHANCE_YOUR_CALM : SRV__H2_PROTOCOL_ERROR,
             rv == NGHTTP2_ERR_BAD_CLIENT_MAGIC ? "invalid preface"
             : flood                            ? "flood of frames to answer"
             : cont                             ? "CONTINUATION flood"
                                                : nghttp2_strerror((int)rv));
    }
    /* Say why with a GOAWAY (unless nghttp2 already did), then the caller closes. */
    nghttp2_session_terminate_session(h->s, h->fail_code);
    return -EPROTO;
}

/* base64url (RFC 4648 section 5, unpadded) as HTTP2-Settings carries it. */
static ssize_t b64url_decode(srv_str_t in, uint8_t *out, size_t cap)
{
    uint32_t acc = 0;
    int bits = 0;
    size_t n = 0;
    for (size_t i = 0; i < in.len; i++) {
        int c = (unsigned char)in.ptr[i], v;
        if (c >= 'A' && c <= 'Z')
            v = c - 'A';
        else if (c >= 'a' && c <= 'z')
            v = c - 'a' + 26;
        else if (c >= '0' && c <= '9')
            v = c - '0' + 52;
        else if (c == '-' || c == '+')
            v = 62;
        else if (c == '_' || c == '/')
            v = 63;
        else if (c == '=')
            break;
        else
            return -1;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (n == cap)
                return -1;
            out[n++] = (uint8_t)(acc >> bits);
        }
    }
    return (ssize_t)n;
}

int srv__h2_upgrade(srv__h2_t *h, srv_str_t settings, const srv_request_t *req)
{
    uint8_t payload[256]; /* six settings of six bytes each, and room for more */
    ssize_t n = b64url_decode(settings, payload, sizeof(payload));
    if (n < 0 || n % 6 != 0)
        return -EINVAL;
    bool head = req->method.len == 4 && memcmp(req->method.ptr, "HEAD", 4) == 0;
    if (nghttp2_session_upgrade2(h->s, payload, (size_t)n, head, NULL) != 0)
        return -EINVAL;
    h2_stream_t *st = stream_new(h, 1);
    if (st == NULL)
        return -ENOMEM;
    h->last_stream = 1;
    srv_request_t r = *req;
    srv_header_t *hv = calloc(req->nheaders ? req->nheaders : 1, sizeof(*hv));
    if (hv == NULL)
        return -ENOMEM;
    size_t k = 0;
    for (size_t i = 0; i < req->nheaders; i++)
        if (!connection_specific(req->headers[i].name))
            hv[k++] = req->headers[i];
    r.headers = hv;
    r.nheaders = k;
    hand_over(h, st, &r);
    free(hv);
    return 0;
}

void srv__h2_goaway(srv__h2_t *h)
{
    nghttp2_submit_goaway(h->s, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(h->s),
                          NGHTTP2_NO_ERROR, NULL, 0);
}

void srv__h2_terminate(srv__h2_t *h, uint32_t code, const char *why)
{
    fail(h, code, why);
    nghttp2_session_terminate_session(h->s, code);
}

const char *srv__h2_error(const srv__h2_t *h, uint32_t *code)
{
    if (code)
        *code = h->fail_code;
    return h->failed ? h->fail_why : NULL;
}

int srv__h2_expire(srv__h2_t *h, int64_t idle_ms)
{
    int64_t now = now_ms();
    int n = 0;
    for (h2_stream_t *st = h->streams; st; st = st->next) {
        if (st->dispatched || st->answered || now - st->last_recv <= idle_ms)
            continue;
        n++;
        if (h->in_block) {
            /* A header block left unfinished holds the whole connection (slowloris). */
            srv__h2_terminate(h, SRV__H2_ENHANCE_YOUR_CALM, "request timeout");
            return n;
        }
        /* 408, then RST_STREAM(NO_ERROR) once it went: the rest is not waited for. */
        st->refuse_rest = true;
        answer_error(h, st, 408);
    }
    return n;
}

uint32_t srv__h2_streams(const srv__h2_t *h)
{
    return h->nstreams;
}

int64_t srv__h2_stalled_ms(const srv__h2_t *h)
{
    return h->pending > 0 ? now_ms() - h->last_progress : 0;
}

size_t srv__h2_out(srv__h2_t *h, const char **p)
{
    /* One frame (or its rest) at a time, straight from nghttp2's buffer: no copy here, and an
     * idle connection keeps no output buffer of its own. */
    if (h->out_off == h->out_len) {
        const uint8_t *d = NULL;
        ssize_t n = nghttp2_session_mem_send(h->s, &d);
        h->out_data = n > 0 ? (const char *)d : NULL;
        h->out_len = n > 0 ? (size_t)n : 0; /* (an error leaves the session done) */
        h->out_off = 0;
    }
    *p = h->out_len > 0 ? h->out_data + h->out_off : "";
    return h->out_len - h->out_off;
}

void srv__h2_out_consume(srv__h2_t *h, size_t n)
{
    h->out_off += n < h->out_len - h->out_off ? n : h->out_len - h->out_off;
}

bool srv__h2_want_write(const srv__h2_t *h)
{
    return h->out_off < h->out_len || nghttp2_session_want_write(h->s);
}

bool srv__h2_done(const srv__h2_t *h)
{
    return h->out_off == h->out_len && !nghttp2_session_want_read(h->s) &&
           !nghttp2_session_want_write(h->s);
}
