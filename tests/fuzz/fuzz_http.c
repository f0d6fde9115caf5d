/* libFuzzer target for protocols/http.c (and the http_static helpers it feeds): the input is
 * fed in pieces whose sizes come from the first bytes, like reads that split anywhere; every
 * request is released, encoded and decoded, and its path, query and headers go through the
 * pure helpers. Build:
 *   clang -g -fsanitize=fuzzer,address,undefined -I. -Iinclude -I/usr/share/include/llhttp \
 *       tests/fuzz/fuzz_http.c protocols/http.c protocols/http_static.c
 * /usr/share/llhttp/{api,http,llhttp}.c Run: ./a.out tests/fuzz/corpus/http */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "protocols/http.h"
#include "protocols/http_static.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void exercise(const srv_request_t *r)
{
    char buf[512];
    uint64_t a, b;
    time_t t;
    srv__http_path_resolve(r->path, buf, sizeof(buf));
    srv__http_query_get(r->query, "a", buf, sizeof(buf));
    srv_request_query(r, "", buf, sizeof(buf));
    srv_str_t range = srv_request_header(r, "range");
    if (range.ptr)
        srv__http_range_parse(range, 1000, &a, &b);
    srv_str_t ims = srv_request_header(r, "if-modified-since");
    if (ims.ptr)
        srv__http_date_parse(ims, &t);
    size_t n = srv__http_request_encoded_size(r);
    uint64_t *block = malloc(n);
    if (block == NULL)
        return;
    if (srv__http_request_encode(r, block) != n)
        abort();
    srv_request_t v;
    if (srv__http_request_decode(block, n, &v) != 0)
        abort();
    if (v.body.len != r->body.len || memcmp(v.body.ptr, r->body.ptr, v.body.len) != 0 ||
        v.nheaders != r->nheaders || v.url.len != r->url.len)
        abort();
    /* a truncated block must be refused, never read past */
    if (n >= 8 && srv__http_request_decode(block, n - 8, &v) == 0)
        abort();
    free(block);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    size_t step = (size_t)data[0] + 1; /* read size */
    srv__http_limits_t lim = {
        .header_max = 1024 + (size_t)data[1] * 16, .body_max = 4096, .max_headers = 20};
    data += 2;
    size -= 2;
    srv__http_parser_t *p;
    if (srv__http_parser_create(&p, &lim) != 0)
        return 0;
    char *pend = malloc(size + 1);
    size_t plen = 0, pos = 0;
    while (pos < size || plen > 0) {
        size_t take = size - pos < step ? size - pos : step;
        memcpy(pend + plen, data + pos, take);
        plen += take;
        pos += take;
        size_t used;
        srv__http_event_t ev = srv__http_parser_feed(p, pend, plen, &used);
        if (used > plen)
            abort();
        memmove(pend, pend + used, plen - used);
        plen -= used;
        if (ev == SRV_HTTP_ERROR) {
            const char *why;
            int st = srv__http_parser_error(p, &why);
            char out[1024];
            if (st < 400 || srv__http_error_response(out, sizeof(out), st, why, false,
                                                     (srv_str_t){NULL, 0}) < 0)
                abort();
            break;
        }
        if (ev == SRV_HTTP_REQUEST) {
            const srv_request_t *r = srv__http_parser_request(p);
            if (r == NULL)
                abort();
            exercise(r);
            srv__http_parser_next(p);
        } else if (ev == SRV_HTTP_NEED_MORE && pos == size) {
            break;
        }
    }
    srv__http_parser_shrink(p);
    free(pend);
    srv__http_parser_destroy(p);
    return 0;
}
