/* Pure string helpers for static files and request parts: percent-decoding, query lookup, path
 * resolution that cannot climb above the root, MIME types, HTTP dates (RFC 9110 5.6.7) and
 * single byte ranges (RFC 9110 14.1). */
#include "protocols/http_static.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* The next decoded byte of in at *i (advancing it), or -EINVAL on a bad escape. */
static int next_byte(const char *in, size_t len, size_t *i, bool plus)
{
    char c = in[*i];
    if (c == '%') {
        if (len - *i < 3)
            return -EINVAL;
        int h = hexval(in[*i + 1]), l = hexval(in[*i + 2]);
        if (h < 0 || l < 0)
            return -EINVAL;
        *i += 3;
        return h * 16 + l;
    }
    *i += 1;
    if (plus && c == '+')
        return ' ';
    return (unsigned char)c;
}

static int decode(const char *in, size_t len, char *out, size_t cap, bool plus)
{
    size_t n = 0, i = 0;
    if (cap == 0)
        return -ENOSPC;
    while (i < len) {
        int c = next_byte(in, len, &i, plus);
        if (c < 0)
            return c;
        if (n + 1 >= cap)
            return -ENOSPC;
        out[n++] = (char)c;
    }
    out[n] = '\0';
    return (int)n;
}

int srv__url_decode(const char *in, size_t len, char *out, size_t cap)
{
    return decode(in, len, out, cap, false);
}

/* Does the encoded name s[0..len) decode to exactly name? */
static bool name_matches(const char *s, size_t len, const char *name)
{
    size_t i = 0, j = 0;
    while (i < len) {
        int c = next_byte(s, len, &i, true);
        if (c < 0 || name[j] == '\0' || (unsigned char)name[j] != c)
            return false;
        j++;
    }
    return name[j] == '\0';
}

int srv__http_query_get(srv_str_t query, const char *name, char *buf, size_t cap)
{
    const char *q = query.ptr;
    size_t n = query.len, i = 0;
    while (i < n) {
        size_t end = i;
        while (end < n && q[end] != '&')
            end++;
        size_t eq = i;
        while (eq < end && q[eq] != '=')
            eq++;
        if (end > i && name_matches(q + i, eq - i, name)) {
            if (eq == end) {
                if (cap == 0)
                    return -ENOSPC;
                buf[0] = '\0';
                return 0;
            }
            return decode(q + eq + 1, end - eq - 1, buf, cap, true);
        }
        i = end + 1;
    }
    return -ENOENT;
}

int srv__http_path_resolve(srv_str_t url_path, char *out, size_t cap)
{
    const char *in = url_path.ptr;
    size_t n = url_path.len, i = 0, len = 0;
    size_t seg = 0;    /* where the current segment starts in out */
    size_t before = 0; /* len before the current segment's separator */
    bool dir = false;  /* the last segment was empty, "." or ".." */
    if (cap == 0)
        return -ENOSPC;
    for (;;) {
        int c = -1;
        if (i < n) {
            c = next_byte(in, n, &i, false);
            if (c < 0)
                return c;
            if (c == 0)
                return -EINVAL;
        }
        if (c == -1 || c == '/' || c == '\\') {
            size_t sl = len - seg;
            const char *s = out + seg;
            dir = false;
            if (sl == 0 || (sl == 1 && s[0] == '.')) {
                len = before;
                dir = true;
            } else if (sl == 2 && s[0] == '.' && s[1] == '.') {
                if (before == 0)
                    return -EACCES; /* climbing above the root */
                len = before;
                while (len > 0 && out[len - 1] != '/')
                    len--;
                if (len > 0)
                    len--; /* the '/' that separated the popped segment */
                dir = true;
            }
            if (c == -1)
                break;
            before = len;
            if (len > 0) {
                if (len + 1 >= cap)
                    return -ENOSPC;
                out[len++] = '/';
            }
            seg = len;
            continue;
        }
        if (len + 1 >= cap)
            return -ENOSPC;
        out[len++] = (char)c;
    }
    if (dir && len > 0) {
        if (len + 1 >= cap)
            return -ENOSPC;
        out[len++] = '/';
    }
    out[len] = '\0';
    return (int)len;
}

struct mime {
    const char *ext;
    const char *type;
};

static const struct mime mimes[] = {
    {"html", "text/html; charset=utf-8"},
    {"htm", "text/html; charset=utf-8"},
    {"css", "text/css; charset=utf-8"},
    {"js", "text/javascript; charset=utf-8"},
    {"mjs", "text/javascript; charset=utf-8"},
    {"json", "application/json; charset=utf-8"},
    {"txt", "text/plain; charset=utf-8"},
    {"xml", "application/xml; charset=utf-8"},
    {"svg", "image/svg+xml; charset=utf-8"},
    {"csv", "text/csv; charset=utf-8"},
    {"md", "text/markdown; charset=utf-8"},
    {"png", "image/png"},
    {"jpg", "image/jpeg"},
    {"jpeg", "image/jpeg"},
    {"gif", "image/gif"},
    {"webp", "image/webp"},
    {"ico", "image/x-icon"},
    {"wasm", "application/wasm"},
    {"pdf", "application/pdf"},
    {"zip", "application/zip"},
    {"gz", "application/gzip"},
    {"mp4", "video/mp4"},
    {"woff", "font/woff"},
    {"woff2", "font/woff2"},
    {"ttf", "font/ttf"},
};

const char *srv__http_mime_type(const char *path)
{
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    const char *dot = strrchr(base, '.');
    if (dot != NULL && dot != base) {
        for (size_t i = 0; i < sizeof(mimes) / sizeof(mimes[0]); i++)
            if (strcasecmp(dot + 1, mimes[i].ext) == 0)
                return mimes[i].type;
    }
    return "application/octet-stream";
}

static const char wdays[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
static const char *const wdays_long[7] = {"Sunday",   "Monday", "Tuesday", "Wednesday",
                                          "Thursday", "Friday", "Saturday"};
static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

static void put2(char *p, int v)
{
    p[0] = (char)('0' + v / 10);
    p[1] = (char)('0' + v % 10);
}

int srv__http_date_format(time_t t, char *buf, size_t cap)
{
    struct tm tm;
    if (cap < 30)
        return -ENOSPC;
    if (gmtime_r(&t, &tm) == NULL || tm.tm_year + 1900 < 0 || tm.tm_year + 1900 > 9999)
        return -EINVAL;
    /* By hand rather than strftime: %a and %b follow the locale, HTTP dates must not. */
    int y = tm.tm_year + 1900;
    memcpy(buf, wdays[tm.tm_wday], 3);
    memcpy(buf + 3, ", ", 2);
    put2(buf + 5, tm.tm_mday);
    buf[7] = ' ';
    memcpy(buf + 8, months[tm.tm_mon], 3);
    buf[11] = ' ';
    put2(buf + 12, y / 100);
    put2(buf + 14, y % 100);
    buf[16] = ' ';
    put2(buf + 17, tm.tm_hour);
    buf[19] = ':';
    put2(buf + 20, tm.tm_min);
    buf[22] = ':';
    put2(buf + 23, tm.tm_sec);
    memcpy(buf + 25, " GMT", 5);
    return 29;
}

struct cur {
    const char *p, *end;
};

static bool lit(struct cur *c, const char *s)
{
    size_t n = strlen(s);
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, s, n) != 0)
        return false;
    c->p += n;
    return true;
}

/* Exactly n digits (a leading space allowed instead of a digit when pad). */
static bool digits(struct cur *c, int n, bool pad, int *v)
{
    *v = 0;
    if (c->end - c->p < n)
        return false;
    for (int i = 0; i < n; i++) {
        char ch = c->p[i];
        if (pad && i == 0 && ch == ' ')
            continue;
        if (ch < '0' || ch > '9')
            return false;
        *v = *v * 10 + (ch - '0');
    }
    c->p += n;
    return true;
}

static int month(struct cur *c)
{
    for (int m = 0; m < 12; m++)
        if (lit(c, months[m]))
            return m;
    return -1;
}

static bool hms(struct cur *c, struct tm *tm)
{
    return digits(c, 2, false, &tm->tm_hour) && lit(c, ":") && digits(c, 2, false, &tm->tm_min) &&
           lit(c, ":") && digits(c, 2, false, &tm->tm_sec);
}

static bool valid_tm(const struct tm *tm, int year)
{
    static const int mdays[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    if (tm->tm_mon < 0 || tm->tm_mday < 1 || tm->tm_mday > mdays[tm->tm_mon])
        return false;
    if (tm->tm_mon == 1 && tm->tm_mday == 29 && !leap)
        return false;
    return tm->tm_hour <= 23 && tm->tm_min <= 59 && tm->tm_sec <= 60;
}

int srv__http_date_parse(srv_str_t s, time_t *t)
{
    struct cur c = {s.ptr, s.ptr + s.len};
    struct tm tm;
    int year = 0, wd = -1;
    memset(&tm, 0, sizeof(tm));
    for (int i = 0; i < 7 && wd < 0; i++)
        if (lit(&c, wdays_long[i]))
            wd = i;
    if (wd >= 0) {
        /* RFC 850: Sunday, 06-Nov-94 08:49:37 GMT */
        int yy;
        if (!lit(&c, ", ") || !digits(&c, 2, false, &tm.tm_mday) || !lit(&c, "-") ||
            (tm.tm_mon = month(&c)) < 0 || !lit(&c, "-") || !digits(&c, 2, false, &yy) ||
            !lit(&c, " ") || !hms(&c, &tm) || !lit(&c, " GMT"))
            return -EINVAL;
        /* RFC 9110 5.6.7: a two-digit year more than 50 years in the future is in the past. */
        time_t now = time(NULL);
        struct tm ntm;
        gmtime_r(&now, &ntm);
        int cy = ntm.tm_year + 1900;
        year = cy - cy % 100 + yy;
        if (year > cy + 50)
            year -= 100;
    } else {
        for (int i = 0; i < 7 && wd < 0; i++)
            if (lit(&c, wdays[i]))
                wd = i;
        if (wd < 0)
            return -EINVAL;
        if (lit(&c, ", ")) {
            /* IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT */
            if (!digits(&c, 2, false, &tm.tm_mday) || !lit(&c, " ") ||
                (tm.tm_mon = month(&c)) < 0 || !lit(&c, " ") || !digits(&c, 4, false, &year) ||
                !lit(&c, " ") || !hms(&c, &tm) || !lit(&c, " GMT"))
                return -EINVAL;
        } else {
            /* asctime: Sun Nov  6 08:49:37 1994 */
            if (!lit(&c, " ") || (tm.tm_mon = month(&c)) < 0 || !lit(&c, " ") ||
                !digits(&c, 2, true, &tm.tm_mday) || !lit(&c, " ") || !hms(&c, &tm) ||
                !lit(&c, " ") || !digits(&c, 4, false, &year))
                return -EINVAL;
        }
    }
    if (c.p != c.end || !valid_tm(&tm, year))
        return -EINVAL;
    tm.tm_year = year - 1900;
    *t = timegm(&tm);
    return 0;
}

/* Decimal digits at *p, no sign; false on none or overflow. */
static bool u64(const char **p, const char *end, uint64_t *v)
{
    const char *s = *p;
    *v = 0;
    while (s < end && *s >= '0' && *s <= '9') {
        uint64_t d = (uint64_t)(*s - '0');
        if (*v > (UINT64_MAX - d) / 10)
            return false;
        *v = *v * 10 + d;
        s++;
    }
    if (s == *p)
        return false;
    *p = s;
    return true;
}

int srv__http_range_parse(srv_str_t header, uint64_t size, uint64_t *start, uint64_t *end)
{
    const char *p = header.ptr, *e = header.ptr + header.len;
    while (p < e && (*p == ' ' || *p == '\t'))
        p++;
    while (e > p && (e[-1] == ' ' || e[-1] == '\t'))
        e--;
    if (e - p < 6 || strncasecmp(p, "bytes=", 6) != 0)
        return -EINVAL;
    p += 6;
    while (p < e && (*p == ' ' || *p == '\t'))
        p++;
    for (const char *c = p; c < e; c++)
        if (*c == ',')
            return -EINVAL; /* multipart/byteranges is not offered */
    uint64_t a, b;
    if (p < e && *p == '-') {
        p++;
        if (!u64(&p, e, &b) || p != e)
            return -EINVAL;
        if (b == 0 || size == 0)
            return -ERANGE;
        *start = b >= size ? 0 : size - b;
        *end = size - 1;
        return 0;
    }
    if (!u64(&p, e, &a) || p == e || *p != '-')
        return -EINVAL;
    p++;
    if (p == e) {
        b = UINT64_MAX;
    } else {
        if (!u64(&p, e, &b) || p != e)
            return -EINVAL;
        if (b < a)
            return -EINVAL; /* RFC 9110 14.1.1: invalid, so the field is ignored */
    }
    if (a >= size)
        return -ERANGE;
    *start = a;
    *end = b >= size ? size - 1 : b;
    return 0;
}
