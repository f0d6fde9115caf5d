/* libFuzzer target for static file path resolution (protocols/http_static.c): a still-encoded
 * URL path into the relative file path the static handler opens under its root. The main check
 * is the one that matters: a path that resolves never climbs above the root, however it is
 * encoded (%2e%2e, %2f, backslashes, %5c): the result is relative (no leading '/'), has no
 * empty, "." or ".." segment, no backslash and no NUL, and is exactly what a separate stack-of-
 * segments resolver makes of it (which refuses with -EACCES any ".." at the root); a small
 * buffer gives the same or -ENOSPC. The same bytes also go through srv__http_mime_type() and,
 * as a Range header against a size from the first bytes, srv__http_range_parse() (a range is
 * inside the representation) and srv__http_date_parse().
 * Build: see tests/fuzz/CMakeLists.txt (-DSRV_FUZZ=ON with clang). */
#include "protocols/http_static.h"

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

/* The reference: decode into dec, keeping a stack of segments that ".." pops; joined with '/'
 * into out at the end (a trailing '/' when the last segment was empty, "." or ".."). */
static int ref_resolve(const uint8_t *in, size_t n, char *out, char *dec, size_t *at, size_t *sl)
{
    size_t nseg = 0, d = 0, cur = 0;
    bool dir = false;
    for (size_t i = 0;; i++) {
        int c = -1;
        if (i < n) {
            c = in[i];
            if (c == '%') {
                if (i + 2 >= n || hex(in[i + 1]) < 0 || hex(in[i + 2]) < 0)
                    return -EINVAL;
                c = hex(in[i + 1]) << 4 | hex(in[i + 2]);
                i += 2;
            }
            if (c == 0)
                return -EINVAL;
        }
        if (c != -1 && c != '/' && c != '\\') {
            dec[d++] = (char)c;
            continue;
        }
        size_t len = d - cur;
        if (len == 2 && memcmp(dec + cur, "..", 2) == 0) {
            if (nseg == 0)
                return -EACCES;
            nseg--;
            dir = true;
        } else if (len == 0 || (len == 1 && dec[cur] == '.')) {
            dir = true;
        } else {
            at[nseg] = cur;
            sl[nseg++] = len;
            dir = false;
        }
        cur = d;
        if (c == -1)
            break;
    }
    size_t o = 0;
    for (size_t k = 0; k < nseg; k++) {
        if (k > 0)
            out[o++] = '/';
        memcpy(out + o, dec + at[k], sl[k]);
        o += sl[k];
    }
    if (dir && o > 0)
        out[o++] = '/';
    out[o] = '\0';
    return (int)o;
}

/* What a resolved path must be, whatever the reference says: inside the root. */
static void check_inside(const char *p, int len)
{
    if (p[len] != '\0' || strlen(p) != (size_t)len || (len > 0 && p[0] == '/') ||
        strchr(p, '\\') != NULL)
        abort();
    const char *s = p;
    while (*s != '\0') {
        size_t k = strcspn(s, "/");
        if (k == 0 && s[k] == '/')
            abort(); /* "//" or a leading '/' */
        if ((k == 1 && s[0] == '.') || (k == 2 && s[0] == '.' && s[1] == '.'))
            abort();
        s += k + (s[k] == '/');
    }
}

static void check_range(const uint8_t *data, size_t size)
{
    uint64_t rsize = 0, start = 0, end = 0;
    memcpy(&rsize, data, size < 8 ? size : 8);
    rsize %= (uint64_t)1 << 40;
    srv_str_t h = {(const char *)data, size};
    int rc = srv__http_range_parse(h, rsize, &start, &end);
    if (rc == 0 && (start > end || end >= rsize))
        abort();
    if (rc != 0 && rc != -ERANGE && rc != -EINVAL)
        abort();
    time_t t;
    rc = srv__http_date_parse(h, &t);
    if (rc != 0 && rc != -EINVAL)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t cap = data[0] % 32;
    data++;
    size--;
    char *path = malloc(size ? size : 1); /* exact size: ASan sees reads past the end */
    char *big = malloc(size + 2), *small = malloc(cap ? cap : 1);
    char *want = malloc(size + 2), *dec = malloc(size + 1);
    size_t *at = malloc((size + 1) * sizeof(size_t)), *sl = malloc((size + 1) * sizeof(size_t));
    if (!path || !big || !small || !want || !dec || !at || !sl)
        abort();
    memcpy(path, data, size);
    srv_str_t p = {path, size};
    int ref = ref_resolve(data, size, want, dec, at, sl);
    int got = srv__http_path_resolve(p, big, size + 2);
    if (got != ref || (got >= 0 && strcmp(big, want) != 0))
        abort();
    if (got >= 0) {
        check_inside(big, got);
        if (srv__http_mime_type(big) == NULL)
            abort();
    }
    int s = srv__http_path_resolve(p, small, cap);
    /* -ENOSPC may come early: segments a later ".." drops are written out first */
    if ((s != got && s != -ENOSPC) || (s >= 0 && strcmp(small, want) != 0))
        abort();
    check_range(data, size);
    free(path);
    free(big);
    free(small);
    free(want);
    free(dec);
    free(at);
    free(sl);
    return 0;
}
