/* protocols/h2.c against libnghttp2's own client over memory (no socket): requests with query,
 * authority and bodies beyond one window, responses in pieces and beyond the client's window,
 * HEAD, 413 and 431 from the limits, a client reset reaching the caller, a broken preface
 * answered with GOAWAY, a graceful GOAWAY. */
#include "protocols/h2.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nghttp2/nghttp2.h>

#include "check.h"

#define BIG (1024 * 1024 + 7)

/* ---- the server side's caller ---- */

static struct {
    srv__h2_t *h;
    int requests, resets;
    int32_t last_stream;
    char method[16], path[64], query[64], host[64];
    size_t body_len;
    bool head, defer; /* defer: answer nothing (the test does later) */
    char *echo;
} S;

static void *on_request(void *arg, int32_t stream, const srv_request_t *req)
{
    (void)arg;
    S.requests++;
    S.last_stream = stream;
    CHECK_INT(req->http_major, ==, 2);
    snprintf(S.method, sizeof(S.method), "%.*s", (int)req->method.len, req->method.ptr);
    snprintf(S.path, sizeof(S.path), "%.*s", (int)req->path.len, req->path.ptr);
    snprintf(S.query, sizeof(S.query), "%.*s", (int)req->query.len, req->query.ptr);
    srv_str_t host = srv_request_header(req, "Host");
    snprintf(S.host, sizeof(S.host), "%.*s", (int)host.len, host.ptr ? host.ptr : "");
    S.body_len = req->body.len;
    S.head = (req->flags & SRV_REQ_HEAD) != 0;
    if (S.defer)
        return &S;
    srv_header_t hv[] = {{{"Content-Type", 12}, {"text/plain", 10}},
                         {{"Connection", 10}, {"keep-alive", 10}}};
    if (req->body.len > 0) { /* echo it, in two pieces */
        CHECK_INT(srv__h2_respond(S.h, stream, 200, hv, 2, false), ==, 0);
        size_t half = req->body.len / 2;
        CHECK_INT(srv__h2_data(S.h, stream, req->body.ptr, half, false), ==, 0);
        CHECK_INT(srv__h2_data(S.h, stream, req->body.ptr + half, req->body.len - half, true), ==,
                  0);
        return &S;
    }
    CHECK_INT(srv__h2_respond(S.h, stream, 200, hv, 2, false), ==, 0);
    CHECK_INT(srv__h2_respond(S.h, stream, 200, hv, 2, false), ==, -EALREADY);
    CHECK_INT(srv__h2_data(S.h, stream, "hello ", 6, false), ==, 0);
    CHECK_INT(srv__h2_data(S.h, stream, "world", 5, true), ==, 0);
    return &S;
}

static void on_reset(void *arg, int32_t stream, void *user, uint32_t code)
{
    (void)arg;
    CHECK(user == &S);
    (void)code;
    S.resets++;
    S.last_stream = stream;
}

/* ---- the client ---- */

static struct {
    nghttp2_session *s;
    int status;
    char *body;
    size_t body_len;
    int closed;
    uint32_t close_code;
    bool goaway;
    uint32_t goaway_code;
} C;

static int c_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *n, size_t nl,
                    const uint8_t *v, size_t vl, uint8_t flags, void *ud)
{
    (void)s, (void)f, (void)flags, (void)ud;
    if (nl == 7 && memcmp(n, ":status", 7) == 0)
        C.status = atoi((const char *)v);
    CHECK(!(nl == 10 && memcmp(n, "connection", 10) == 0)); /* dropped for HTTP/2 */
    (void)vl;
    return 0;
}

static int c_data(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *d, size_t len,
                  void *ud)
{
    (void)s, (void)flags, (void)id, (void)ud;
    C.body = realloc(C.body, C.body_len + len + 1);
    memcpy(C.body + C.body_len, d, len);
    C.body_len += len;
    C.body[C.body_len] = '\0';
    return 0;
}

static int c_close(nghttp2_session *s, int32_t id, uint32_t code, void *ud)
{
    (void)s, (void)id, (void)ud;
    C.closed++;
    C.close_code = code;
    return 0;
}

static int c_frame(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
    (void)s, (void)ud;
    if (f->hd.type == NGHTTP2_GOAWAY) {
        C.goaway = true;
        C.goaway_code = f->goaway.error_code;
    }
    return 0;
}

static void client_new(void)
{
    memset(&C, 0, sizeof(C));
    nghttp2_session_callbacks *cb;
    CHECK_INT(nghttp2_session_callbacks_new(&cb), ==, 0);
    nghttp2_session_callbacks_set_on_header_callback(cb, c_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, c_data);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, c_close);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, c_frame);
    CHECK_INT(nghttp2_session_client_new(&C.s, cb, NULL), ==, 0);
    nghttp2_session_callbacks_del(cb);
    CHECK_INT(nghttp2_submit_settings(C.s, NGHTTP2_FLAG_NONE, NULL, 0), ==, 0);
}

static void server_new(size_t body_max, uint32_t header_max)
{
    memset(&S, 0, sizeof(S));
    srv__h2_opts_t o = {.max_concurrent_streams = 128,
                        .initial_window_size = 65535,
                        .max_frame_size = 16384,
                        .max_header_list_size = header_max,
                        .header_max = 1u << 20,
                        .body_max = body_max};
    srv__h2_ops_t ops = {.request = on_request, .reset = on_reset};
    CHECK_INT(srv__h2_create(&S.h, &o, &ops), ==, 0);
}

/* Move bytes both ways until neither side has anything to say. */
static void pump(void)
{
    for (int round = 0; round < 10000; round++) {
        bool moved = false;
        const uint8_t *d;
        ssize_t n;
        while ((n = nghttp2_session_mem_send(C.s, &d)) > 0) {
            srv__h2_feed(S.h, (const char *)d, (size_t)n);
            moved = true;
        }
        const char *p;
        size_t k;
        while ((k = srv__h2_out(S.h, &p)) > 0) {
            CHECK_INT(nghttp2_session_mem_recv(C.s, (const uint8_t *)p, k), ==, (long long)k);
            srv__h2_out_consume(S.h, k);
            moved = true;
        }
        if (!moved)
            return;
    }
    CHECK(0);
}

static int32_t get(const char *path, const char *method, nghttp2_data_provider *body)
{
    nghttp2_nv nv[] = {
        {(uint8_t *)":method", (uint8_t *)method, 7, strlen(method), 0},
        {(uint8_t *)":path", (uint8_t *)path, 5, strlen(path), 0},
        {(uint8_t *)":scheme", (uint8_t *)"http", 7, 4, 0},
        {(uint8_t *)":authority", (uint8_t *)"example.test", 10, 12, 0},
    };
    int32_t id = nghttp2_submit_request(C.s, NULL, nv, 4, body, NULL);
    CHECK(id > 0);
    return id;
}

static size_t g_src_off, g_src_len;

static ssize_t src_read(nghttp2_session *s, int32_t id, uint8_t *buf, size_t len, uint32_t *flags,
                        nghttp2_data_source *src, void *ud)
{
    (void)s, (void)id, (void)src, (void)ud;
    size_t n = g_src_len - g_src_off < len ? g_src_len - g_src_off : len;
    for (size_t i = 0; i < n; i++)
        buf[i] = (uint8_t)('a' + (g_src_off + i) % 26);
    g_src_off += n;
    if (g_src_off == g_src_len)
        *flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

static void finish(void)
{
    nghttp2_session_del(C.s);
    free(C.body);
    srv__h2_destroy(S.h);
}

static void test_get_and_echo(void)
{
    server_new(4 * BIG, 8192);
    client_new();
    get("/a/b?x=1&y=2", "GET", NULL);
    pump();
    CHECK_INT(S.requests, ==, 1);
    CHECK_STR(S.method, "GET");
    CHECK_STR(S.path, "/a/b");
    CHECK_STR(S.query, "x=1&y=2");
    CHECK_STR(S.host, "example.test");
    CHECK_INT(C.status, ==, 200);
    CHECK_STR(C.body, "hello world");
    CHECK_INT(C.closed, ==, 1);
    /* A body beyond both windows, echoed back beyond the client's window. */
    free(C.body);
    C.body = NULL;
    C.body_len = 0;
    g_src_off = 0;
    g_src_len = BIG;
    nghttp2_data_provider dp = {.read_callback = src_read};
    get("/echo", "POST", &dp);
    pump();
    CHECK_INT(S.requests, ==, 2);
    CHECK_INT(S.body_len, ==, BIG);
    CHECK_INT(C.body_len, ==, BIG);
    for (size_t i = 0; i < BIG; i += 4099)
        CHECK_INT(C.body[i], ==, 'a' + i % 26);
    get("/", "HEAD", NULL);
    pump();
    CHECK(S.head);
    /* Graceful end: GOAWAY, and the session is done once both sides said so. */
    srv__h2_goaway(S.h);
    pump();
    CHECK(C.goaway);
    CHECK_INT(C.goaway_code, ==, NGHTTP2_NO_ERROR);
    finish();
}

static void test_limits(void)
{
    server_new(1000, 200);
    client_new();
    g_src_off = 0;
    g_src_len = 5000;
    nghttp2_data_provider dp = {.read_callback = src_read};
    get("/upload", "POST", &dp);
    pump();
    CHECK_INT(C.status, ==, 413);
    CHECK_INT(S.requests, ==, 0);
    CHECK_INT(C.closed, ==, 1);
    /* Headers over max_header_list_size: 431, and the caller never hears of it. */
    C.status = 0;
    char big[300];
    memset(big, 'v', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    nghttp2_nv nv[] = {
        {(uint8_t *)":method", (uint8_t *)"GET", 7, 3, 0},
        {(uint8_t *)":path", (uint8_t *)"/", 5, 1, 0},
        {(uint8_t *)":scheme", (uint8_t *)"http", 7, 4, 0},
        {(uint8_t *)":authority", (uint8_t *)"x", 10, 1, 0},
        {(uint8_t *)"x-big", (uint8_t *)big, 5, strlen(big), 0},
    };
    CHECK(nghttp2_submit_request(C.s, NULL, nv, 5, NULL, NULL) > 0);
    pump();
    CHECK_INT(C.status, ==, 431);
    CHECK_INT(S.requests, ==, 0);
    finish();
}

static void test_reset_and_preface(void)
{
    server_new(BIG, 8192);
    client_new();
    S.defer = true;
    int32_t id = get("/slow", "GET", NULL);
    pump();
    CHECK_INT(S.requests, ==, 1);
    CHECK_INT(srv__h2_respond(S.h, S.last_stream, 200, NULL, 0, false), ==, 0);
    CHECK_INT(srv__h2_data(S.h, S.last_stream, "part", 4, false), ==, 0);
    pump();
    CHECK_INT(nghttp2_submit_rst_stream(C.s, NGHTTP2_FLAG_NONE, id, NGHTTP2_CANCEL), ==, 0);
    pump();
    CHECK_INT(S.resets, ==, 1);
    CHECK_INT(srv__h2_data(S.h, id, "late", 4, true), ==, -ENOENT);
    finish();
    /* HTTP/1 where the preface should be: GOAWAY(PROTOCOL_ERROR), then done. */
    server_new(BIG, 8192);
    static const char req[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    CHECK_INT(srv__h2_feed(S.h, req, sizeof(req) - 1), ==, -EPROTO);
    const char *p;
    size_t n;
    bool goaway = false;
    while ((n = srv__h2_out(S.h, &p)) > 0) { /* frame by frame: 3 bytes length, type, ... */
        for (size_t off = 0; off + 9 <= n;) {
            size_t len = ((size_t)(uint8_t)p[off] << 16) | ((size_t)(uint8_t)p[off + 1] << 8) |
                         (uint8_t)p[off + 2];
            if (p[off + 3] == NGHTTP2_GOAWAY)
                goaway = true;
            off += 9 + len;
        }
        srv__h2_out_consume(S.h, n);
    }
    CHECK(goaway);
    CHECK(srv__h2_done(S.h));
    srv__h2_destroy(S.h);
}

int main(void)
{
    (void)check_failures_;
    test_get_and_echo();
    test_limits();
    test_reset_and_preface();
    return 0;
}
