/* protocols/http_static.c: URL decoding, query lookup, path resolution (every escape attempt),
 * MIME types, HTTP dates in all three formats, byte ranges. */
#include "protocols/http_static.h"

#include <errno.h>
#include <string.h>

#include "check.h"

static srv_str_t S(const char *s)
{
    return (srv_str_t){s, strlen(s)};
}

static void resolve_ok(const char *in, const char *want)
{
    char out[256];
    int n = srv__http_path_resolve(S(in), out, sizeof(out));
    if (n < 0)
        fprintf(stderr, "resolve(%s) = %d\n", in, n);
    CHECK_INT(n, ==, strlen(want));
    CHECK_STR(out, want);
}

static void resolve_err(const char *in, int err)
{
    char out[256];
    int n = srv__http_path_resolve(S(in), out, sizeof(out));
    if (n != err)
        fprintf(stderr, "resolve(%s) = %d (%s)\n", in, n, n >= 0 ? out : "");
    CHECK_INT(n, ==, err);
}

static void test_path(void)
{
    resolve_ok("/", "");
    resolve_ok("", "");
    resolve_ok("/index.html", "index.html");
    resolve_ok("/a/b/c.txt", "a/b/c.txt");
    resolve_ok("/a//b///c", "a/b/c");
    resolve_ok("/a/./b/.", "a/b/");
    resolve_ok("/a/b/../c", "a/c");
    resolve_ok("/a/b/../../c", "c");
    resolve_ok("/a/..", "");
    resolve_ok("/a/b/..", "a/");
    resolve_ok("/dir/", "dir/");
    resolve_ok("/a%20b/c%2Bd", "a b/c+d");
    resolve_ok("/a+b", "a+b");
    resolve_ok("/...", "...");
    resolve_ok("/..a/b..", "..a/b..");
    resolve_ok("/.hidden", ".hidden");
    resolve_ok("/%2e/x", "x");
    resolve_ok("/a%2fb", "a/b");
    resolve_ok("/a\\b", "a/b");
    resolve_ok("/a/%2e%2e/b", "b");
    resolve_ok("/\xc3\xa9t\xc3\xa9", "\xc3\xa9t\xc3\xa9");
    resolve_ok("relative/x", "relative/x");
    /* climbing above the root, however spelled */
    resolve_err("/..", -EACCES);
    resolve_err("/../etc/passwd", -EACCES);
    resolve_err("/a/../../etc/passwd", -EACCES);
    resolve_err("/a/b/../../../x", -EACCES);
    resolve_err("/%2e%2e/etc/passwd", -EACCES);
    resolve_err("/%2E%2E/etc/passwd", -EACCES);
    resolve_err("/.%2e/x", -EACCES);
    resolve_err("/%2e./x", -EACCES);
    resolve_err("/a/%2e%2e%2f%2e%2e%2fx", -EACCES);
    resolve_err("/..%2fetc", -EACCES);
    resolve_err("/..\\etc", -EACCES);
    resolve_err("/a\\..\\..\\etc", -EACCES);
    resolve_err("/..%5cetc", -EACCES);
    resolve_err("..", -EACCES);
    resolve_err("/./../x", -EACCES);
    resolve_err("//../x", -EACCES);
    /* NUL and bad escapes */
    resolve_err("/a%00b", -EINVAL);
    resolve_err("/a%00", -EINVAL);
    resolve_err("/a%2", -EINVAL);
    resolve_err("/a%zz", -EINVAL);
    resolve_err("/%", -EINVAL);
    char nul[] = {'/', 'a', '\0', 'b'};
    char out[8];
    CHECK_INT(srv__http_path_resolve((srv_str_t){nul, 4}, out, sizeof(out)), ==, -EINVAL);
    /* sizes: exact fit and one short */
    CHECK_INT(srv__http_path_resolve(S("/abc/def"), out, 8), ==, 7);
    CHECK_STR(out, "abc/def");
    CHECK_INT(srv__http_path_resolve(S("/abc/defg"), out, 8), ==, -ENOSPC);
    CHECK_INT(srv__http_path_resolve(S("/abcdefg/"), out, 8), ==, -ENOSPC);
    CHECK_INT(srv__http_path_resolve(S("/"), out, 0), ==, -ENOSPC);
    CHECK_INT(srv__http_path_resolve(S("/"), out, 1), ==, 0);
}

static void test_decode(void)
{
    char buf[32];
    CHECK_INT(srv__url_decode("a%20b+c%2F", 10, buf, sizeof(buf)), ==, 6);
    CHECK_STR(buf, "a b+c/");
    CHECK_INT(srv__url_decode("", 0, buf, sizeof(buf)), ==, 0);
    CHECK_STR(buf, "");
    CHECK_INT(srv__url_decode("%", 1, buf, sizeof(buf)), ==, -EINVAL);
    CHECK_INT(srv__url_decode("%4", 2, buf, sizeof(buf)), ==, -EINVAL);
    CHECK_INT(srv__url_decode("%g0", 3, buf, sizeof(buf)), ==, -EINVAL);
    CHECK_INT(srv__url_decode("abc", 3, buf, 3), ==, -ENOSPC);
    CHECK_INT(srv__url_decode("abc", 3, buf, 4), ==, 3);
    CHECK_INT(srv__url_decode("%41%62", 6, buf, 3), ==, 2);
    CHECK_STR(buf, "Ab");
    CHECK_INT(srv__url_decode("x", 1, buf, 0), ==, -ENOSPC);

    srv_str_t q = S("a=1&b=hello+world&c&d=%E2%82%AC&e=&a=2&f%20g=x&h=%zz&&=v");
    CHECK_INT(srv__http_query_get(q, "a", buf, sizeof(buf)), ==, 1);
    CHECK_STR(buf, "1"); /* first wins */
    CHECK_INT(srv__http_query_get(q, "b", buf, sizeof(buf)), ==, 11);
    CHECK_STR(buf, "hello world");
    CHECK_INT(srv__http_query_get(q, "c", buf, sizeof(buf)), ==, 0);
    CHECK_STR(buf, "");
    CHECK_INT(srv__http_query_get(q, "d", buf, sizeof(buf)), ==, 3);
    CHECK_STR(buf, "\xe2\x82\xac");
    CHECK_INT(srv__http_query_get(q, "e", buf, sizeof(buf)), ==, 0);
    CHECK_INT(srv__http_query_get(q, "f g", buf, sizeof(buf)), ==, 1);
    CHECK_INT(srv__http_query_get(q, "h", buf, sizeof(buf)), ==, -EINVAL);
    CHECK_INT(srv__http_query_get(q, "", buf, sizeof(buf)), ==, 1);
    CHECK_STR(buf, "v");
    CHECK_INT(srv__http_query_get(q, "zz", buf, sizeof(buf)), ==, -ENOENT);
    CHECK_INT(srv__http_query_get(q, "b", buf, 11), ==, -ENOSPC);
    CHECK_INT(srv__http_query_get(q, "c", buf, 0), ==, -ENOSPC);
    CHECK_INT(srv__http_query_get(S(""), "a", buf, sizeof(buf)), ==, -ENOENT);
    CHECK_INT(srv__http_query_get((srv_str_t){NULL, 0}, "a", buf, sizeof(buf)), ==, -ENOENT);
    CHECK_INT(srv__http_query_get(S("ab=1"), "a", buf, sizeof(buf)), ==, -ENOENT);
    CHECK_INT(srv__http_query_get(S("a=1"), "ab", buf, sizeof(buf)), ==, -ENOENT);
    CHECK_INT(srv__http_query_get(S("x=1&"), "x", buf, sizeof(buf)), ==, 1);
}

static void test_mime(void)
{
    CHECK_STR(srv__http_mime_type("index.html"), "text/html; charset=utf-8");
    CHECK_STR(srv__http_mime_type("a/b/INDEX.HTM"), "text/html; charset=utf-8");
    CHECK_STR(srv__http_mime_type("s.css"), "text/css; charset=utf-8");
    CHECK_STR(srv__http_mime_type("app.js"), "text/javascript; charset=utf-8");
    CHECK_STR(srv__http_mime_type("m.mjs"), "text/javascript; charset=utf-8");
    CHECK_STR(srv__http_mime_type("d.json"), "application/json; charset=utf-8");
    CHECK_STR(srv__http_mime_type("r.txt"), "text/plain; charset=utf-8");
    CHECK_STR(srv__http_mime_type("r.md"), "text/markdown; charset=utf-8");
    CHECK_STR(srv__http_mime_type("r.csv"), "text/csv; charset=utf-8");
    CHECK_STR(srv__http_mime_type("r.xml"), "application/xml; charset=utf-8");
    CHECK_STR(srv__http_mime_type("i.svg"), "image/svg+xml; charset=utf-8");
    CHECK_STR(srv__http_mime_type("i.png"), "image/png");
    CHECK_STR(srv__http_mime_type("i.jpg"), "image/jpeg");
    CHECK_STR(srv__http_mime_type("i.JPEG"), "image/jpeg");
    CHECK_STR(srv__http_mime_type("i.gif"), "image/gif");
    CHECK_STR(srv__http_mime_type("i.webp"), "image/webp");
    CHECK_STR(srv__http_mime_type("favicon.ico"), "image/x-icon");
    CHECK_STR(srv__http_mime_type("m.wasm"), "application/wasm");
    CHECK_STR(srv__http_mime_type("d.pdf"), "application/pdf");
    CHECK_STR(srv__http_mime_type("d.zip"), "application/zip");
    CHECK_STR(srv__http_mime_type("d.tar.gz"), "application/gzip");
    CHECK_STR(srv__http_mime_type("v.mp4"), "video/mp4");
    CHECK_STR(srv__http_mime_type("f.woff"), "font/woff");
    CHECK_STR(srv__http_mime_type("f.woff2"), "font/woff2");
    CHECK_STR(srv__http_mime_type("f.ttf"), "font/ttf");
    CHECK_STR(srv__http_mime_type("noext"), "application/octet-stream");
    CHECK_STR(srv__http_mime_type(".html"), "application/octet-stream"); /* dotfile, no ext */
    CHECK_STR(srv__http_mime_type("dir.html/file"), "application/octet-stream");
    CHECK_STR(srv__http_mime_type("x.bin"), "application/octet-stream");
    CHECK_STR(srv__http_mime_type("x."), "application/octet-stream");
    CHECK_STR(srv__http_mime_type(""), "application/octet-stream");
}

static void test_dates(void)
{
    char buf[64];
    time_t t;
    CHECK_INT(srv__http_date_format(784111777, buf, sizeof(buf)), ==, 29);
    CHECK_STR(buf, "Sun, 06 Nov 1994 08:49:37 GMT");
    CHECK_INT(srv__http_date_format(0, buf, 30), ==, 29);
    CHECK_STR(buf, "Thu, 01 Jan 1970 00:00:00 GMT");
    CHECK_INT(srv__http_date_format(0, buf, 29), ==, -ENOSPC);
    CHECK_INT(srv__http_date_parse(S("Sun, 06 Nov 1994 08:49:37 GMT"), &t), ==, 0);
    CHECK_INT(t, ==, 784111777);
    CHECK_INT(srv__http_date_parse(S("Sunday, 06-Nov-94 08:49:37 GMT"), &t), ==, 0);
    CHECK_INT(t, ==, 784111777);
    CHECK_INT(srv__http_date_parse(S("Sun Nov  6 08:49:37 1994"), &t), ==, 0);
    CHECK_INT(t, ==, 784111777);
    CHECK_INT(srv__http_date_parse(S("Thu Feb 29 12:00:00 2024"), &t), ==, 0);
    CHECK_INT(t, ==, 1709208000);
    CHECK_INT(srv__http_date_parse(S("Wednesday, 09-Jun-21 10:18:14 GMT"), &t), ==, 0);
    CHECK_INT(t, ==, 1623233894);
    /* round trip across years, leap days and the end of a day */
    for (time_t x = 0; x < 4102444800; x += 86400 * 37 + 3601 * 7 + 13) {
        CHECK_INT(srv__http_date_format(x, buf, sizeof(buf)), ==, 29);
        CHECK_INT(srv__http_date_parse(S(buf), &t), ==, 0);
        CHECK_INT(t, ==, x);
    }
    const char *bad[] = {
        "",
        "Sun, 06 Nov 1994 08:49:37",
        "Sun, 06 Nov 1994 08:49:37 UTC",
        "Sun, 06 Nov 1994 08:49:37 GMT ",
        " Sun, 06 Nov 1994 08:49:37 GMT",
        "Sun, 6 Nov 1994 08:49:37 GMT",
        "Sun, 06 Nov 94 08:49:37 GMT",
        "Sun, 06 Foo 1994 08:49:37 GMT",
        "Sun, 32 Jan 1994 08:49:37 GMT",
        "Sun, 00 Jan 1994 08:49:37 GMT",
        "Sun, 29 Feb 1900 08:49:37 GMT",
        "Sun, 31 Apr 1994 08:49:37 GMT",
        "Sun, 06 Nov 1994 24:00:00 GMT",
        "Sun, 06 Nov 1994 08:60:00 GMT",
        "Sun, 06 Nov 1994 08:49:61 GMT",
        "Sun, 06 Nov 1994 8:49:37 GMT",
        "Xyz, 06 Nov 1994 08:49:37 GMT",
        "Sunday, 06-Nov-1994 08:49:37 GMT",
        "Sunday, 06 Nov 94 08:49:37 GMT",
        "Sun Nov 6 08:49:37 1994",
        "Sun Nov  6 08:49:37 94",
        "Sun Nov  6 08:49:37 1994 GMT",
        "Sun Nov 06 08:49:37 19x4",
        "1994-11-06T08:49:37Z",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (srv__http_date_parse(S(bad[i]), &t) != -EINVAL) {
            fprintf(stderr, "accepted: %s\n", bad[i]);
            CHECK(0);
        }
    }
    /* asctime with a two-digit day */
    CHECK_INT(srv__http_date_parse(S("Sun Nov 16 08:49:37 1994"), &t), ==, 0);
    CHECK_INT(t, ==, 784111777 + 10 * 86400);
}

static void range_ok(const char *h, uint64_t size, uint64_t s, uint64_t e)
{
    uint64_t a = 99, b = 99;
    int rc = srv__http_range_parse(S(h), size, &a, &b);
    if (rc != 0)
        fprintf(stderr, "range(%s, %llu) = %d\n", h, (unsigned long long)size, rc);
    CHECK_INT(rc, ==, 0);
    CHECK_INT(a, ==, s);
    CHECK_INT(b, ==, e);
}

static void range_err(const char *h, uint64_t size, int err)
{
    uint64_t a, b;
    int rc = srv__http_range_parse(S(h), size, &a, &b);
    if (rc != err)
        fprintf(stderr, "range(%s, %llu) = %d\n", h, (unsigned long long)size, rc);
    CHECK_INT(rc, ==, err);
}

static void test_ranges(void)
{
    range_ok("bytes=0-0", 10, 0, 0);
    range_ok("bytes=0-9", 10, 0, 9);
    range_ok("bytes=2-5", 10, 2, 5);
    range_ok("bytes=2-100", 10, 2, 9);
    range_ok("bytes=3-", 10, 3, 9);
    range_ok("bytes=9-", 10, 9, 9);
    range_ok("bytes=-3", 10, 7, 9);
    range_ok("bytes=-10", 10, 0, 9);
    range_ok("bytes=-100", 10, 0, 9);
    range_ok("Bytes=1-2", 10, 1, 2);
    range_ok(" bytes=1-2 ", 10, 1, 2);
    range_ok("bytes=0-18446744073709551615", 10, 0, 9);
    range_err("bytes=10-", 10, -ERANGE);
    range_err("bytes=10-20", 10, -ERANGE);
    range_err("bytes=-0", 10, -ERANGE);
    range_err("bytes=0-", 0, -ERANGE);
    range_err("bytes=-5", 0, -ERANGE);
    range_err("bytes=5-2", 10, -EINVAL);
    range_err("bytes=0-1,3-4", 10, -EINVAL);
    range_err("bytes=0-1, 3-4", 10, -EINVAL);
    range_err("items=0-1", 10, -EINVAL);
    range_err("bytes=", 10, -EINVAL);
    range_err("bytes=-", 10, -EINVAL);
    range_err("bytes=a-b", 10, -EINVAL);
    range_err("bytes=1", 10, -EINVAL);
    range_err("bytes=1-2x", 10, -EINVAL);
    range_err("bytes=+1-2", 10, -EINVAL);
    range_err("bytes=--1", 10, -EINVAL);
    range_err("bytes=1--2", 10, -EINVAL);
    range_err("bytes=99999999999999999999-", 10, -EINVAL);
    range_err("", 10, -EINVAL);
    range_err("bytes", 10, -EINVAL);
}

int main(void)
{
    test_path();
    test_decode();
    test_mime();
    test_dates();
    test_ranges();
    (void)check_failures_;
    return 0;
}
