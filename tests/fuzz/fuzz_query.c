/* libFuzzer target for query strings and percent decoding (protocols/http_static.c through
 * srv_request_query() in protocols/http.c). Input: one byte of buffer size, the parameter name
 * up to a NUL byte, then the query. Beyond "no crash", each result is checked against a
 * separate, plain reading of RFC 3986 escapes: srv__url_decode() and srv_request_query() give
 * the same bytes and errors as the reference when the buffer is big enough; with the small
 * buffer they give either the same or -ENOSPC exactly when it does not fit (never a cut value),
 * always NUL-terminated; and decoding a fully re-encoded result gives it back.
 * Build: see tests/fuzz/CMakeLists.txt (-DSRV_FUZZ=ON with clang). */
#include "protocols/http_static.h"
#include "srv/srv.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int hex(uint8_t c)
{
    static const char digits[] = "0123456789abcdef0123456789ABCDEF";
    const char *p = c != 0 ? strchr(digits, c) : NULL;
    return p == NULL ? -1 : (int)(p - digits) % 16;
}

/* The reference: decode in[0..n) into out (room for n + 1), '+' a space when plus. */
static int ref_decode(const uint8_t *in, size_t n, uint8_t *out, bool plus)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (in[i] == '%') {
            if (i + 2 >= n)
                return -EINVAL;
            int h = hex(in[i + 1]), l = hex(in[i + 2]);
            if (h < 0 || l < 0)
                return -EINVAL;
            out[k++] = (uint8_t)(h << 4 | l);
            i += 2;
        } else {
            out[k++] = plus && in[i] == '+' ? ' ' : in[i];
        }
    }
    out[k] = 0;
    return (int)k;
}

/* The reference query lookup: value of the first parameter whose decoded name is name. */
static int ref_query(const uint8_t *q, size_t n, const char *name, uint8_t *out, uint8_t *tmp)
{
    size_t i = 0;
    while (i < n) {
        const uint8_t *amp = memchr(q + i, '&', n - i);
        size_t end = amp ? (size_t)(amp - q) : n;
        const uint8_t *eq = memchr(q + i, '=', end - i);
        size_t nend = eq ? (size_t)(eq - q) : end;
        int nl = ref_decode(q + i, nend - i, tmp, true);
        if (end > i && nl >= 0 && (size_t)nl == strlen(name) && memcmp(tmp, name, nl) == 0) {
            if (eq == NULL) {
                out[0] = 0;
                return 0;
            }
            return ref_decode(eq + 1, end - nend - 1, out, true);
        }
        i = end + 1;
    }
    return -ENOENT;
}

/* got (from a buffer of cap bytes) against the reference's want, decoded into ref. */
static void check(int got, const char *buf, size_t cap, int want, const uint8_t *ref)
{
    if (want < 0 && want != -ENOENT && got == -ENOSPC)
        return; /* a buffer filled before a bad escape later in the value */
    if (want >= 0 && (size_t)want + 1 > cap) {
        if (got != -ENOSPC)
            abort();
        return;
    }
    if (got != want)
        abort();
    if (got >= 0 && (buf[got] != '\0' || memcmp(buf, ref, (size_t)got) != 0))
        abort();
}

static void round_trip(const uint8_t *plain, size_t n)
{
    char *enc = malloc(3 * n + 1), *dec = malloc(n + 1);
    if (enc == NULL || dec == NULL)
        abort();
    for (size_t i = 0; i < n; i++) {
        enc[3 * i] = '%';
        enc[3 * i + 1] = "0123456789ABCDEF"[plain[i] >> 4];
        enc[3 * i + 2] = "0123456789abcdef"[plain[i] & 15];
    }
    if (srv__url_decode(enc, 3 * n, dec, n + 1) != (int)n || memcmp(dec, plain, n) != 0)
        abort();
    free(enc);
    free(dec);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t cap = data[0] % 64;
    const uint8_t *nul = memchr(data + 1, 0, size - 1);
    size_t namelen = nul ? (size_t)(nul - data - 1) : 0;
    char *name = strndup((const char *)data + 1, namelen);
    const uint8_t *q = nul ? nul + 1 : data + 1;
    size_t n = size - (size_t)(q - data);
    char *query = malloc(n ? n : 1); /* exact size: ASan sees reads past the end */
    uint8_t *ref = malloc(n + 1), *tmp = malloc(n + 1);
    char *small = malloc(cap ? cap : 1), *big = malloc(n + 1);
    if (name == NULL || query == NULL || ref == NULL || tmp == NULL || small == NULL || !big)
        abort();
    memcpy(query, q, n);

    int want = ref_decode(q, n, ref, false);
    check(srv__url_decode(query, n, big, n + 1), big, n + 1, want, ref);
    check(srv__url_decode(query, n, small, cap), small, cap, want, ref);
    if (want >= 0)
        round_trip(ref, (size_t)want);

    srv_request_t req;
    memset(&req, 0, sizeof(req));
    req.query.ptr = query;
    req.query.len = n;
    want = ref_query(q, n, name, ref, tmp);
    check(srv_request_query(&req, name, big, n + 1), big, n + 1, want, ref);
    check(srv_request_query(&req, name, small, cap), small, cap, want, ref);
    free(name);
    free(query);
    free(ref);
    free(tmp);
    free(small);
    free(big);
    return 0;
}
