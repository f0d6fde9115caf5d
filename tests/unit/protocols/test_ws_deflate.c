/* protocols/ws_deflate.c through ws.h: permessage-deflate negotiation (RFC 7692 7.1), compressed
 * client messages (whole, fragmented, split anywhere), compressed server messages, and the
 * failures: bombs past the limit (1009), corrupt data and bad text (1007), misplaced RSV1 (1002).
 */
#include "protocols/ws.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "check.h"

static const uint8_t MASK[4] = {0xa1, 0x02, 0x5c, 0xe3};

static size_t cframe(uint8_t *out, bool fin, bool rsv1, int op, const void *p, size_t len)
{
    size_t at = 2;
    out[0] = (uint8_t)((fin ? 0x80 : 0) | (rsv1 ? 0x40 : 0) | op);
    if (len < 126) {
        out[1] = (uint8_t)len;
    } else if (len <= 0xffff) {
        out[1] = 126;
        out[2] = (uint8_t)(len >> 8);
        out[3] = (uint8_t)len;
        at = 4;
    } else {
        out[1] = 127;
        for (int i = 0; i < 8; i++)
            out[2 + i] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
        at = 10;
    }
    out[1] |= 0x80;
    memcpy(out + at, MASK, 4);
    at += 4;
    for (size_t i = 0; i < len; i++)
        out[at + i] = ((const uint8_t *)p)[i] ^ MASK[i & 3];
    return at + len;
}

/* The client side of RFC 7692: raw deflate, sync flush, 00 00 ff ff removed. */
static size_t client_deflate(const void *in, size_t len, uint8_t *out, size_t cap)
{
    z_stream zs;
    memset(&zs, 0, sizeof(zs));
    CHECK_INT(deflateInit2(&zs, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY), ==, Z_OK);
    zs.next_in = (Bytef *)(uintptr_t)in;
    zs.avail_in = (uInt)len;
    zs.next_out = out;
    zs.avail_out = (uInt)cap;
    CHECK_INT(deflate(&zs, Z_SYNC_FLUSH), ==, Z_OK);
    CHECK_INT(zs.avail_in, ==, 0);
    size_t n = cap - zs.avail_out;
    deflateEnd(&zs);
    CHECK(n >= 4);
    CHECK_MEM(out + n - 4, 4, "\x00\x00\xff\xff", 4);
    return n - 4;
}

/* What a client does with our compressed frames. */
static size_t client_inflate(const uint8_t *in, size_t len, uint8_t *out, size_t cap)
{
    z_stream zs;
    uint8_t *buf = malloc(len + 4);
    CHECK(buf != NULL);
    memcpy(buf, in, len);
    memcpy(buf + len, "\x00\x00\xff\xff", 4);
    memset(&zs, 0, sizeof(zs));
    CHECK_INT(inflateInit2(&zs, -15), ==, Z_OK);
    zs.next_in = buf;
    zs.avail_in = (uInt)(len + 4);
    zs.next_out = out;
    zs.avail_out = (uInt)cap;
    int r = inflate(&zs, Z_SYNC_FLUSH);
    CHECK(r == Z_OK || r == Z_BUF_ERROR);
    CHECK_INT(zs.avail_in, ==, 0);
    size_t n = cap - zs.avail_out;
    inflateEnd(&zs);
    free(buf);
    return n;
}

typedef struct rec {
    int msgs, errors, op, code;
    char *data;
    size_t len;
} rec_t;

static int on_event(void *arg, const srv__ws_event_t *ev)
{
    rec_t *r = arg;
    if (ev->type == SRV_WS_EV_MESSAGE) {
        r->msgs++;
        r->op = ev->opcode;
        free(r->data);
        r->data = malloc(ev->len + 1);
        CHECK(r->data != NULL);
        memcpy(r->data, ev->data, ev->len);
        r->len = ev->len;
    } else if (ev->type == SRV_WS_EV_ERROR) {
        r->errors++;
        r->code = ev->code;
    }
    return 0;
}

static srv__ws_t *mk(size_t max, uint8_t wbits)
{
    srv__ws_options_t o = {.max_message_size = max, .deflate = true, .deflate_window_bits = wbits};
    srv__ws_t *ws = srv__ws_create(&o);
    CHECK(ws != NULL);
    return ws;
}

/* ---- Negotiation ------------------------------------------------------------------------ */

static int negotiate(const char *ext1, const char *ext2, char *buf, size_t cap,
                     srv__ws_options_t *o)
{
    srv_header_t h[6] = {
        {{"Upgrade", 7}, {"websocket", 9}},
        {{"Connection", 10}, {"Upgrade", 7}},
        {{"Sec-WebSocket-Key", 17}, {"dGhlIHNhbXBsZSBub25jZQ==", 24}},
        {{"Sec-WebSocket-Version", 21}, {"13", 2}},
    };
    size_t n = 4;
    if (ext1)
        h[n++] = (srv_header_t){{"Sec-WebSocket-Extensions", 24}, {ext1, strlen(ext1)}};
    if (ext2)
        h[n++] = (srv_header_t){{"sec-websocket-extensions", 24}, {ext2, strlen(ext2)}};
    srv_request_t r;
    memset(&r, 0, sizeof(r));
    r.method = (srv_str_t){"GET", 3};
    r.http_major = r.http_minor = 1;
    r.headers = h;
    r.nheaders = n;
    memset(o, 0, sizeof(*o));
    return srv__ws_handshake_response(&r, true, NULL, buf, cap, o);
}

static const char *ext_of(const char *resp)
{
    static char v[256];
    const char *p = strstr(resp, "Sec-WebSocket-Extensions: ");
    if (!p)
        return "";
    p += strlen("Sec-WebSocket-Extensions: ");
    size_t n = strcspn(p, "\r");
    memcpy(v, p, n);
    v[n] = 0;
    return v;
}

#define BOTH "permessage-deflate; server_no_context_takeover; client_no_context_takeover"

static void test_negotiation(void)
{
    char buf[1024];
    srv__ws_options_t o;

    CHECK_INT(negotiate("permessage-deflate", NULL, buf, sizeof(buf), &o), >, 0);
    CHECK_STR(ext_of(buf), BOTH);
    CHECK(o.deflate);
    CHECK_INT(o.deflate_window_bits, ==, 15);

    CHECK_INT(negotiate("permessage-deflate; client_max_window_bits", NULL, buf, sizeof(buf), &o),
              >, 0);
    CHECK_STR(ext_of(buf), BOTH);

    CHECK_INT(negotiate("Permessage-Deflate ; server_max_window_bits=10 ; "
                        "client_no_context_takeover",
                        NULL, buf, sizeof(buf), &o),
              >, 0);
    CHECK_STR(ext_of(buf), BOTH "; server_max_window_bits=10");
    CHECK_INT(o.deflate_window_bits, ==, 10);

    CHECK_INT(
        negotiate("permessage-deflate; server_max_window_bits=\"9\"", NULL, buf, sizeof(buf), &o),
        >, 0);
    CHECK_STR(ext_of(buf), BOTH "; server_max_window_bits=9");
    CHECK_INT(o.deflate_window_bits, ==, 9);

    /* 8 is accepted, but we then send uncompressed (zlib cannot make 8-bit windows). */
    CHECK_INT(negotiate("permessage-deflate; server_max_window_bits=8", NULL, buf, sizeof(buf), &o),
              >, 0);
    CHECK(o.deflate);
    CHECK_INT(o.deflate_window_bits, ==, 0);

    /* Bad offers are declined; a later good one in the list or another header is taken. */
    const char *bad[] = {
        "permessage-deflate; server_max_window_bits=16",
        "permessage-deflate; server_max_window_bits",
        "permessage-deflate; client_max_window_bits=7",
        "permessage-deflate; foo",
        "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
        "permessage-deflate; server_no_context_takeover=1",
        "x-webkit-deflate-frame",
        "permessage-deflatex",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        CHECK_INT(negotiate(bad[i], NULL, buf, sizeof(buf), &o), >, 0);
        CHECK_STR(ext_of(buf), "");
        CHECK(!o.deflate);
    }
    CHECK_INT(negotiate("permessage-deflate; foo, permessage-deflate; client_max_window_bits=12",
                        NULL, buf, sizeof(buf), &o),
              >, 0);
    CHECK_STR(ext_of(buf), BOTH);
    CHECK_INT(negotiate("x-webkit-deflate-frame", "permessage-deflate; server_max_window_bits=12",
                        buf, sizeof(buf), &o),
              >, 0);
    CHECK_STR(ext_of(buf), BOTH "; server_max_window_bits=12");
    CHECK_INT(negotiate(NULL, NULL, buf, sizeof(buf), &o), >, 0);
    CHECK(!o.deflate);
}

/* ---- Messages --------------------------------------------------------------------------- */

static void test_client_compressed(void)
{
    size_t big = 1u << 20;
    char *text = malloc(big);
    uint8_t *z = malloc(big + 1024), *frame = malloc(big + 1024);
    CHECK(text && z && frame);
    for (size_t i = 0; i < big; i++)
        text[i] = "the quick brown fox jumps over the lazy dog "[i % 44];

    const size_t sizes[] = {0, 1, 100, 5000, 1u << 20};
    for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
        size_t len = sizes[s];
        size_t zl = client_deflate(text, len, z, big + 1024);
        size_t fl = cframe(frame, true, true, SRV_WS_TEXT, z, zl);
        for (int mode = 0; mode < 2; mode++) {
            srv__ws_t *ws = mk(0, 15);
            rec_t r = {0};
            if (mode == 0) {
                CHECK_INT(srv__ws_feed(ws, (char *)frame, fl, on_event, &r), ==, 0);
            } else {
                for (size_t i = 0; i < fl; i++)
                    CHECK_INT(srv__ws_feed(ws, (char *)frame + i, 1, on_event, &r), ==, 0);
            }
            CHECK_INT(r.msgs, ==, 1);
            CHECK_INT(r.op, ==, SRV_WS_TEXT);
            CHECK_MEM(r.data, r.len, text, len);
            free(r.data);
            srv__ws_destroy(ws);
        }
    }

    /* Fragmented: RSV1 on the first frame only, compressed bytes cut anywhere, two messages
     * (no context takeover: each decompresses alone), fed split at every byte. */
    size_t zl = client_deflate(text, 3000, z, big);
    size_t fl = 0;
    fl += cframe(frame + fl, false, true, SRV_WS_BINARY, z, zl / 3);
    fl += cframe(frame + fl, true, false, SRV_WS_PING, "", 0);
    fl += cframe(frame + fl, true, false, SRV_WS_CONT, z + zl / 3, zl - zl / 3);
    zl = client_deflate("second", 6, z, big);
    fl += cframe(frame + fl, true, true, SRV_WS_TEXT, z, zl);
    for (size_t k = 0; k <= fl; k++) {
        srv__ws_t *ws = mk(0, 15);
        rec_t r = {0};
        CHECK_INT(srv__ws_feed(ws, (char *)frame, k, on_event, &r), ==, 0);
        if (r.msgs == 1) {
            CHECK_INT(r.op, ==, SRV_WS_BINARY);
            CHECK_MEM(r.data, r.len, text, 3000);
        }
        CHECK_INT(srv__ws_feed(ws, (char *)frame + k, fl - k, on_event, &r), ==, 0);
        CHECK_INT(r.msgs, ==, 2);
        CHECK_INT(r.op, ==, SRV_WS_TEXT);
        CHECK_MEM(r.data, r.len, "second", 6);
        CHECK_INT(srv__ws_pending(ws), ==, 2); /* the pong */
        free(r.data);
        srv__ws_destroy(ws);
    }

    /* Uncompressed messages still work on a deflate connection. */
    srv__ws_t *ws = mk(0, 15);
    rec_t r = {0};
    fl = cframe(frame, true, false, SRV_WS_TEXT, "plain", 5);
    CHECK_INT(srv__ws_feed(ws, (char *)frame, fl, on_event, &r), ==, 0);
    CHECK_MEM(r.data, r.len, "plain", 5);
    free(r.data);
    srv__ws_destroy(ws);

    free(text);
    free(z);
    free(frame);
}

static void expect_error(const uint8_t *frame, size_t fl, size_t max, int code)
{
    srv__ws_t *ws = mk(max, 15);
    rec_t r = {0};
    CHECK_INT(srv__ws_feed(ws, (const char *)frame, fl, on_event, &r), ==, -EPROTO);
    CHECK_INT(r.errors, ==, 1);
    CHECK_INT(r.code, ==, code);
    CHECK_INT(r.msgs, ==, 0);
    CHECK(srv__ws_want_close(ws));
    srv__ws_destroy(ws);
}

static void test_client_errors(void)
{
    size_t big = 4u << 20;
    uint8_t *zeros = calloc(1, big), *z = malloc(big), *frame = malloc(big);
    CHECK(zeros && z && frame);

    /* A 4 MiB bomb in a few KiB is refused at the limit, not inflated whole. */
    size_t zl = client_deflate(zeros, big, z, big);
    CHECK_INT(zl, <, 8192);
    size_t fl = cframe(frame, true, true, SRV_WS_BINARY, z, zl);
    expect_error(frame, fl, 65536, 1009);
    /* exactly at the limit is fine */
    zl = client_deflate(zeros, 65536, z, big);
    fl = cframe(frame, true, true, SRV_WS_BINARY, z, zl);
    {
        srv__ws_t *ws = mk(65536, 15);
        rec_t r = {0};
        CHECK_INT(srv__ws_feed(ws, (char *)frame, fl, on_event, &r), ==, 0);
        CHECK_INT(r.len, ==, 65536);
        free(r.data);
        srv__ws_destroy(ws);
    }

    /* corrupt deflate data: 0xff starts a reserved block type */
    fl = cframe(frame, true, true, SRV_WS_BINARY, "\xff\xff\xff\xff", 4);
    expect_error(frame, fl, 0, 1007);
    /* compressed text that is not UTF-8 */
    zl = client_deflate("ok \xed\xa0\x80", 6, z, big);
    fl = cframe(frame, true, true, SRV_WS_TEXT, z, zl);
    expect_error(frame, fl, 0, 1007);
    /* RSV1 on a continuation or a control frame */
    fl = cframe(frame, false, true, SRV_WS_TEXT, z, 1);
    fl += cframe(frame + fl, true, true, SRV_WS_CONT, z + 1, zl - 1);
    expect_error(frame, fl, 0, 1002);
    fl = cframe(frame, true, true, SRV_WS_PING, "", 0);
    expect_error(frame, fl, 0, 1002);

    free(zeros);
    free(z);
    free(frame);
}

/* Take one frame off the output: opcode, rsv1, payload pointer into the buffer. */
static int out_frame(srv__ws_t *ws, bool *rsv1, const uint8_t **payload, size_t *len, size_t *total)
{
    struct iovec iov;
    CHECK_INT(srv__ws_output(ws, &iov, 1), ==, 1);
    const uint8_t *p = iov.iov_base;
    size_t at = 2, n = p[1] & 0x7f;
    CHECK_INT(p[1] & 0x80, ==, 0);
    if (n == 126) {
        n = (size_t)p[2] << 8 | p[3];
        at = 4;
    } else if (n == 127) {
        n = 0;
        for (int i = 0; i < 8; i++)
            n = n << 8 | p[2 + i];
        at = 10;
    }
    CHECK_INT(iov.iov_len, >=, at + n);
    *rsv1 = p[0] & 0x40;
    *payload = p + at;
    *len = n;
    *total = at + n;
    return p[0] & 0x0f;
}

static void test_server_compressed(void)
{
    size_t big = 1u << 20;
    char *text = malloc(big);
    uint8_t *plain = malloc(big);
    CHECK(text && plain);
    for (size_t i = 0; i < big; i++)
        text[i] = "lorem ipsum dolor sit amet "[i % 27];

    const size_t sizes[] = {40, 200, 70000, 1u << 20};
    const uint8_t wbits[] = {15, 9, 12};
    for (size_t w = 0; w < sizeof(wbits); w++) {
        for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
            srv__ws_t *ws = mk(0, wbits[w]);
            bool rsv1;
            const uint8_t *p;
            size_t n, total;
            CHECK_INT(srv__ws_send(ws, SRV_WS_TEXT, text, sizes[s]), ==, 0);
            CHECK_INT(out_frame(ws, &rsv1, &p, &n, &total), ==, SRV_WS_TEXT);
            CHECK(rsv1);
            CHECK_INT(n, <, sizes[s]);
            CHECK_INT(srv__ws_pending(ws), ==, total);
            CHECK_INT(client_inflate(p, n, plain, big), ==, sizes[s]);
            CHECK_MEM(plain, sizes[s], text, sizes[s]);
            srv__ws_consumed(ws, total);
            srv__ws_destroy(ws);
        }
    }

    srv__ws_t *ws = mk(0, 15);
    bool rsv1;
    const uint8_t *p;
    size_t n, total;
    /* Short messages and data that does not shrink go out plain. */
    CHECK_INT(srv__ws_send(ws, SRV_WS_BINARY, "short", 5), ==, 0);
    CHECK_INT(out_frame(ws, &rsv1, &p, &n, &total), ==, SRV_WS_BINARY);
    CHECK(!rsv1);
    CHECK_MEM(p, n, "short", 5);
    srv__ws_consumed(ws, total);
    uint8_t noise[4096];
    uint32_t x = 12345;
    for (size_t i = 0; i < sizeof(noise); i++) {
        x = x * 1103515245u + 12345u;
        noise[i] = (uint8_t)(x >> 16);
    }
    CHECK_INT(srv__ws_send(ws, SRV_WS_BINARY, noise, sizeof(noise)), ==, 0);
    CHECK_INT(out_frame(ws, &rsv1, &p, &n, &total), ==, SRV_WS_BINARY);
    CHECK(!rsv1);
    CHECK_MEM(p, n, noise, sizeof(noise));
    srv__ws_consumed(ws, total);
    srv__ws_destroy(ws);

    /* window bits 0 (the client asked for 8): never compress */
    ws = mk(0, 0);
    CHECK_INT(srv__ws_send(ws, SRV_WS_TEXT, text, 1000), ==, 0);
    CHECK_INT(out_frame(ws, &rsv1, &p, &n, &total), ==, SRV_WS_TEXT);
    CHECK(!rsv1);
    CHECK_INT(n, ==, 1000);
    srv__ws_destroy(ws);

    /* The output limit applies to the compressed size. */
    srv__ws_options_t o = {.deflate = true, .deflate_window_bits = 15, .output_limit = 1000};
    ws = srv__ws_create(&o);
    CHECK(ws != NULL);
    CHECK_INT(srv__ws_send(ws, SRV_WS_TEXT, text, 100000), ==, 0); /* compresses well */
    CHECK_INT(srv__ws_pending(ws), <, 1000);
    CHECK_INT(srv__ws_send(ws, SRV_WS_BINARY, noise, 1000), ==, -ENOBUFS);
    srv__ws_destroy(ws);

    free(text);
    free(plain);
}

int main(void)
{
    (void)check_failures_; /* check.h defines it; unused here */
    test_negotiation();
    test_client_compressed();
    test_client_errors();
    test_server_compressed();
    printf("test_ws_deflate: ok\n");
    return 0;
}
