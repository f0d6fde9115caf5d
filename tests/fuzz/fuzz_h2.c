/* libFuzzer target for protocols/h2.c (and h2_guard.c): a client's bytes after the connection
 * preface, fed in pieces cut where the input says, to a server session that answers each
 * request at once, later, in pieces, or never (the first byte picks), drains its output after
 * every piece and is destroyed with whatever is still open. Catches memory errors, leaks of
 * streams and requests, and callbacks for streams that are gone.
 * Build: see tests/fuzz/CMakeLists.txt (-DSRV_FUZZ=ON with clang). */
#include "protocols/h2.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_HELD 64

static struct {
    srv__h2_t *h;
    uint8_t mode;
    int32_t held[MAX_HELD]; /* requests answered later */
    int nheld;
    int token; /* what user pointers point at */
} F;

static void *on_request(void *arg, int32_t stream, const srv_request_t *req)
{
    (void)arg;
    if (req->http_major != 2)
        abort();
    srv_header_t hv[] = {{{"Content-Type", 12}, {"text/plain", 10}},
                         {{"Connection", 10}, {"close", 5}}};
    switch (F.mode % 4) {
    case 0: /* at once, the body echoed */
        srv__h2_respond(F.h, stream, 200, hv, 2, false);
        srv__h2_data(F.h, stream, req->body.ptr, req->body.len, true);
        return NULL;
    case 1: /* head only */
        srv__h2_respond(F.h, stream, 204, hv, 1, true);
        return NULL;
    case 2: /* later (or never, past MAX_HELD) */
        if (F.nheld < MAX_HELD)
            F.held[F.nheld++] = stream;
        return &F.token;
    default: /* reset by the server */
        srv__h2_reset(F.h, stream, 2);
        return NULL;
    }
}

static void on_reset(void *arg, int32_t stream, void *user, uint32_t code)
{
    (void)arg;
    (void)code;
    if (user != &F.token)
        abort();
    for (int i = 0; i < F.nheld; i++)
        if (F.held[i] == stream)
            F.held[i] = 0;
}

static void drain(void)
{
    const char *p;
    size_t n;
    int rounds = 0;
    while ((n = srv__h2_out(F.h, &p)) > 0 && rounds++ < 64)
        srv__h2_out_consume(F.h, n);
}

static void answer_held(void)
{
    for (int i = 0; i < F.nheld; i++) {
        if (F.held[i] == 0)
            continue;
        srv_header_t hv = {{"x-late", 6}, {"1", 1}};
        if (srv__h2_respond(F.h, F.held[i], 200, &hv, 1, false) == 0) {
            srv__h2_data(F.h, F.held[i], "late ", 5, false);
            srv__h2_data(F.h, F.held[i], "answer", 6, true);
        }
        srv__h2_set_user(F.h, F.held[i], NULL);
        F.held[i] = 0;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    if (size < 2)
        return 0;
    memset(&F, 0, sizeof(F));
    F.mode = data[0];
    size_t cut = data[1] ? data[1] : 1; /* piece size */
    data += 2;
    size -= 2;
    srv__h2_opts_t o = {.max_concurrent_streams = 16,
                        .initial_window_size = 65535,
                        .max_frame_size = 16384,
                        .max_header_list_size = 4096,
                        .header_max = 8192,
                        .body_max = 65536};
    srv__h2_ops_t ops = {.request = on_request, .reset = on_reset};
    if (srv__h2_create(&F.h, &o, &ops) < 0)
        return 0;
    drain();
    int rc = srv__h2_feed(F.h, preface, sizeof(preface) - 1);
    for (size_t off = 0; rc == 0 && off < size; off += cut) {
        size_t n = size - off < cut ? size - off : cut;
        rc = srv__h2_feed(F.h, (const char *)data + off, n);
        drain();
        if (F.mode & 0x10)
            answer_held();
        srv__h2_expire(F.h, (F.mode & 0x20) ? 0 : 1000000);
        (void)srv__h2_stalled_ms(F.h);
    }
    drain();
    if (F.mode & 0x40)
        srv__h2_goaway(F.h);
    drain();
    (void)srv__h2_done(F.h);
    srv__h2_destroy(F.h);
    return 0;
}
