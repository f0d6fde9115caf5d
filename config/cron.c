/* Crontab expressions: a small hand-written parser into bit sets (no allocation, every error
 * names its field) and a next-fire search that walks calendar fields (month, then day, hour,
 * minute) instead of minutes, so even "0 0 29 2 *" is found in a few hundred steps. Local time
 * is converted with mktime() only for candidates that already match. */
#include "config/cron.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* How far srv__cron_next() looks: Feb 29 can be 8 years away (2096 -> 2104). */
#define SEARCH_YEARS 9

static const char *const month_names[] = {"jan", "feb", "mar", "apr", "may", "jun",
                                          "jul", "aug", "sep", "oct", "nov", "dec"};
static const char *const day_names[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};

struct field_def {
    const char *name;
    int min, max;
    const char *const *names; /* names[i] means value names_base + i */
    int nnames, names_base;
};

static const struct field_def fields[5] = {
    {"minute", 0, 59, NULL, 0, 0},          {"hour", 0, 23, NULL, 0, 0},
    {"day-of-month", 1, 31, NULL, 0, 0},    {"month", 1, 12, month_names, 12, 1},
    {"day-of-week", 0, 7, day_names, 7, 0},
};

static const struct {
    const char *name, *expr;
} shortcuts[] = {
    {"@yearly", "0 0 1 1 *"}, {"@annually", "0 0 1 1 *"}, {"@monthly", "0 0 1 * *"},
    {"@weekly", "0 0 * * 0"}, {"@daily", "0 0 * * *"},    {"@midnight", "0 0 * * *"},
    {"@hourly", "0 * * * *"},
};

__attribute__((format(printf, 3, 4))) static int set_err(char *err, size_t errlen, const char *fmt,
                                                         ...)
{
    if (err != NULL && errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -EINVAL;
}

#define FIELD_FAIL(fi, ...) field_fail(err, errlen, fi, __VA_ARGS__)

__attribute__((format(printf, 4, 5))) static int field_fail(char *err, size_t errlen, int fi,
                                                            const char *fmt, ...)
{
    if (err != NULL && errlen > 0) {
        int n = snprintf(err, errlen, "field %d (%s): ", fi + 1, fields[fi].name);
        if (n >= 0 && (size_t)n < errlen) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
            va_end(ap);
        }
    }
    return -EINVAL;
}

/* One value at *p (a number, or a name where the field has names); advances *p past it. */
static int parse_value(const char **p, const char *end, int fi, int *out, char *err, size_t errlen)
{
    const struct field_def *f = &fields[fi];
    const char *s = *p;
    if (s < end && isdigit((unsigned char)*s)) {
        long v = 0;
        while (s < end && isdigit((unsigned char)*s)) {
            if (v < 100000)
                v = v * 10 + (*s - '0');
            s++;
        }
        if (v < f->min || v > f->max)
            return FIELD_FAIL(fi, "%ld is out of range %d-%d", v, f->min, f->max);
        *out = (int)v;
        *p = s;
        return 0;
    }
    if (s < end && isalpha((unsigned char)*s)) {
        const char *w = s;
        while (s < end && isalnum((unsigned char)*s))
            s++;
        size_t len = (size_t)(s - w);
        for (int i = 0; i < f->nnames && len == 3; i++) {
            if (strncasecmp(w, f->names[i], 3) == 0) {
                *out = f->names_base + i;
                *p = s;
                return 0;
            }
        }
        if (f->names == NULL)
            return FIELD_FAIL(fi, "'%.*s' is not a number", (int)(len > 20 ? 20 : len), w);
        return FIELD_FAIL(fi, "unknown name '%.*s'", (int)(len > 20 ? 20 : len), w);
    }
    if (s >= end || *s == ',')
        return FIELD_FAIL(fi, "missing value");
    return FIELD_FAIL(fi, "unexpected '%c'", *s);
}

/* One whole field [s, end): comma-separated items of `*`, `N`, `N-M`, each with optional `/S`. */
static int parse_field(const char *s, const char *end, int fi, uint64_t *bits, char *err,
                       size_t errlen)
{
    const struct field_def *f = &fields[fi];
    const char *p = s;
    *bits = 0;
    for (;;) {
        int lo, hi, step = 1, rc;
        bool star = false;
        if (p < end && *p == '*') {
            star = true;
            lo = f->min;
            hi = f->max;
            p++;
        } else {
            if ((rc = parse_value(&p, end, fi, &lo, err, errlen)) < 0)
                return rc;
            hi = lo;
            if (p < end && *p == '-') {
                p++;
                if ((rc = parse_value(&p, end, fi, &hi, err, errlen)) < 0)
                    return rc;
                if (hi < lo)
                    return FIELD_FAIL(fi, "range %d-%d runs backwards", lo, hi);
            } else if (p < end && *p == '/') {
                hi = f->max; /* "N/S" = from N to the end, every S (as cronie reads it) */
            }
        }
        if (p < end && *p == '/') {
            p++;
            if (p >= end || !isdigit((unsigned char)*p))
                return FIELD_FAIL(fi, "step must be a number");
            long v = 0;
            while (p < end && isdigit((unsigned char)*p)) {
                if (v < 100000)
                    v = v * 10 + (*p - '0');
                p++;
            }
            int maxstep = fi == 4 ? 7 : f->max - f->min + 1;
            if (v < 1 || v > maxstep)
                return FIELD_FAIL(fi, "step %ld is out of range 1-%d", v, maxstep);
            step = (int)v;
        }
        if (star && fi == 4 && step == 1)
            hi = 6; /* '*' is 0-6; 7 would only alias Sunday */
        for (int v = lo; v <= hi; v += step)
            *bits |= 1ULL << v;
        if (p == end)
            break;
        if (*p != ',')
            return FIELD_FAIL(fi, "unexpected '%c'", *p);
        p++;
        if (p == end || *p == ',')
            return FIELD_FAIL(fi, "empty list item");
    }
    return 0;
}

int srv__cron_parse(srv__cron_t *c, const char *expr, char *err, size_t errlen)
{
    memset(c, 0, sizeof(*c));
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    if (expr == NULL)
        return set_err(err, errlen, "empty schedule");
    while (isspace((unsigned char)*expr))
        expr++;
    if (*expr == '@') {
        size_t len = strcspn(expr, " \t\r\n");
        const char *rest = expr + len;
        while (isspace((unsigned char)*rest))
            rest++;
        for (size_t i = 0; i < sizeof(shortcuts) / sizeof(shortcuts[0]); i++) {
            if (strlen(shortcuts[i].name) == len &&
                strncasecmp(expr, shortcuts[i].name, len) == 0) {
                if (*rest != '\0')
                    return set_err(err, errlen, "unexpected text after %s", shortcuts[i].name);
                return srv__cron_parse(c, shortcuts[i].expr, err, errlen);
            }
        }
        return set_err(
            err, errlen,
            "unknown shortcut '%.*s' (use @yearly, @monthly, @weekly, @daily or @hourly)",
            (int)(len > 20 ? 20 : len), expr);
    }

    const char *start[5], *end[5];
    int n = 0;
    const char *p = expr;
    while (*p != '\0') {
        while (isspace((unsigned char)*p))
            p++;
        if (*p == '\0')
            break;
        const char *s = p;
        while (*p != '\0' && !isspace((unsigned char)*p))
            p++;
        if (n < 5) {
            start[n] = s;
            end[n] = p;
        }
        n++;
    }
    if (n == 0)
        return set_err(err, errlen, "empty schedule");
    if (n != 5)
        return set_err(err, errlen,
                       "expected 5 fields (minute hour day-of-month month day-of-week), got %d", n);

    uint64_t bits[5];
    for (int i = 0; i < 5; i++) {
        int rc = parse_field(start[i], end[i], i, &bits[i], err, errlen);
        if (rc < 0)
            return rc;
    }
    c->minute = bits[0];
    c->hour = (uint32_t)bits[1];
    c->dom = (uint32_t)bits[2];
    c->month = (uint16_t)bits[3];
    c->dow = (uint8_t)((bits[4] | bits[4] >> 7) & 0x7f); /* 7 is Sunday too */
    if (*start[2] == '*')
        c->flags |= SRV_CRON_DOM_STAR;
    if (*start[4] == '*')
        c->flags |= SRV_CRON_DOW_STAR;
    return 0;
}

static bool day_match(const srv__cron_t *c, int mday, int wday)
{
    bool d = (c->dom >> mday) & 1u;
    bool w = (c->dow >> wday) & 1u;
    if (c->flags & (SRV_CRON_DOM_STAR | SRV_CRON_DOW_STAR))
        return d && w;
    return d || w;
}

bool srv__cron_match(const srv__cron_t *c, const struct tm *tm)
{
    return ((c->minute >> tm->tm_min) & 1u) && ((c->hour >> tm->tm_hour) & 1u) &&
           ((c->month >> (tm->tm_mon + 1)) & 1u) && day_match(c, tm->tm_mday, tm->tm_wday);
}

static bool leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int y, int m)
{
    static const int d[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && leap(y) ? 29 : d[m - 1];
}

/* 0 = Sunday (Sakamoto's method), m 1-12. */
static int weekday(int y, int m, int d)
{
    static const int t[] = {0, 3, 2, 5, 0, 3, 5, 1, 4, 6, 2, 4};
    if (m < 3)
        y--;
    return (y + y / 4 - y / 100 + y / 400 + t[m - 1] + d) % 7;
}

/* Local wall time y-m-d h:mi as an instant. A wall time that exists twice (DST ends) gives its
 * first occurrence in *first; one that does not exist (DST starts) gives the instant shifted by
 * the jump. Returns false if mktime fails. */
static bool wall_to_time(int y, int m, int d, int h, int mi, time_t *first)
{
    time_t best = (time_t)-1;
    bool found = false;
    for (int isdst = 0; isdst <= 1; isdst++) {
        struct tm tm = {.tm_year = y - 1900,
                        .tm_mon = m - 1,
                        .tm_mday = d,
                        .tm_hour = h,
                        .tm_min = mi,
                        .tm_isdst = isdst};
        time_t t = mktime(&tm);
        struct tm back;
        if (t == (time_t)-1 || localtime_r(&t, &back) == NULL)
            continue;
        if (back.tm_year == y - 1900 && back.tm_mon == m - 1 && back.tm_mday == d &&
            back.tm_hour == h && back.tm_min == mi && (!found || t < best)) {
            best = t;
            found = true;
        }
    }
    if (!found) {
        /* In a DST gap (or a zone without DST where isdst=1 was rejected): let mktime pick. */
        struct tm tm = {.tm_year = y - 1900,
                        .tm_mon = m - 1,
                        .tm_mday = d,
                        .tm_hour = h,
                        .tm_min = mi,
                        .tm_isdst = -1};
        best = mktime(&tm);
        if (best == (time_t)-1)
            return false;
    }
    *first = best;
    return true;
}

int srv__cron_next(const srv__cron_t *c, time_t after, time_t *next)
{
    struct tm now;
    if (c->minute == 0 || c->hour == 0 || c->month == 0 || (c->dom == 0 && c->dow == 0))
        return -ERANGE;
    if (localtime_r(&after, &now) == NULL)
        return -ERANGE;
    int y = now.tm_year + 1900, m = now.tm_mon + 1, d = now.tm_mday, h = now.tm_hour;
    int mi = now.tm_min + 1;
    int limit = y + SEARCH_YEARS;

    /* Each step either fixes the current field or advances it and resets the smaller ones. */
    for (;;) {
        if (mi > 59) {
            mi = 0;
            h++;
        }
        if (h > 23) {
            h = 0;
            d++;
        }
        if (m > 12) { /* a month step left m at 13 */
            m = 1;
            y++;
        }
        if (d > days_in_month(y, m)) {
            d = 1;
            m++;
        }
        if (m > 12) {
            m = 1;
            y++;
        }
        if (y > limit)
            return -ERANGE;
        if (!((c->month >> m) & 1u)) {
            m++;
            d = 1;
            h = 0;
            mi = 0;
            continue;
        }
        if (!day_match(c, d, weekday(y, m, d))) {
            d++;
            h = 0;
            mi = 0;
            continue;
        }
        if (!((c->hour >> h) & 1u)) {
            h++;
            mi = 0;
            continue;
        }
        if (!((c->minute >> mi) & 1u)) {
            mi++;
            continue;
        }
        time_t t;
        if (!wall_to_time(y, m, d, h, mi, &t))
            return -ERANGE;
        /* t <= after: the second pass through a repeated hour, already fired the first time. */
        if (t > after) {
            *next = t;
            return 0;
        }
        mi++;
    }
}
