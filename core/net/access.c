/* What the engine records of each HTTP request it answered (HTTP/1.1 and HTTP/2 alike): the
 * counters of its listener (status class, duration histogram), the slow log, the access log
 * line (nginx's combined format or JSON, written by core/base/alog.c), and its request id:
 * the client's X-Request-Id when it is a sane one, else one made here, handed to the app as
 * that header. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

#include "core/base/alog.h"
#include "core/base/log.h"
#include "core/net/conn_internal.h"

static const uint32_t bounds_us[SRV_NETSTAT_NBOUNDS] = {SRV_NETSTAT_BOUNDS};

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---- request ids ---- */

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* 32 lowercase hex characters, from a sequence seeded once per thread from the kernel. */
static void make_id(char *out)
{
    static __thread uint64_t state;
    static __thread bool seeded;
    if (!seeded) {
        if (getrandom(&state, sizeof(state), GRND_NONBLOCK) != sizeof(state))
            state = (uint64_t)mono_ns() ^ (uint64_t)(uintptr_t)&state;
        seeded = true;
    }
    static const char hex[] = "0123456789abcdef";
    for (int k = 0; k < 2; k++) {
        uint64_t v = splitmix(&state);
        for (int i = 0; i < 16; i++)
            out[k * 16 + i] = hex[(v >> (60 - 4 * i)) & 15];
    }
    out[SRV_REQUEST_ID_GEN] = '\0';
}

static bool id_ok(srv_str_t v)
{
    if (v.ptr == NULL || v.len == 0 || v.len > SRV_REQUEST_ID_MAX)
        return false;
    for (size_t i = 0; i < v.len; i++)
        if ((unsigned char)v.ptr[i] < 0x21 || (unsigned char)v.ptr[i] > 0x7e)
            return false;
    return true;
}

/* req's headers with X-Request-Id set to r's (any other such header left out), in the
 * engine's array. Returns false when it could not grow (the request goes on without). */
static bool set_id_header(srv__engine_t *e, srv__req_t *r, srv_request_t *req)
{
    size_t need = req->nheaders + 1;
    if (need > e->hv_cap) {
        srv_header_t *hv = realloc(e->hv, need * sizeof(*hv));
        if (hv == NULL)
            return false;
        e->hv = hv;
        e->hv_cap = need;
    }
    size_t n = 0;
    for (size_t i = 0; i < req->nheaders; i++) {
        const srv_header_t *h = &req->headers[i];
        if (h->name.len == 12 && strncasecmp(h->name.ptr, "X-Request-Id", 12) == 0)
            continue;
        e->hv[n++] = *h;
    }
    e->hv[n].name = (srv_str_t){"X-Request-Id", 12};
    e->hv[n].value = (srv_str_t){r->log.rid, r->log.rid_len};
    req->headers = e->hv;
    req->nheaders = n + 1;
    return true;
}

/* ---- begin ---- */

static size_t field_len(srv_str_t s)
{
    return s.ptr ? s.len : 0;
}

/* Keep method, uri, user agent, referer and X-Forwarded-For for the log line. */
static void keep_fields(srv__req_t *r, const srv_request_t *req)
{
    srv_str_t f[5] = {req->method, req->url, srv_request_header(req, "User-Agent"),
                      srv_request_header(req, "Referer"),
                      srv_request_header(req, "X-Forwarded-For")};
    size_t total = 0;
    for (int i = 0; i < 5; i++)
        total += field_len(f[i]) + 1;
    char *p = malloc(total);
    r->log.fields = p;
    if (p == NULL)
        return;
    for (int i = 0; i < 5; i++) {
        size_t n = field_len(f[i]);
        if (n > 0)
            memcpy(p, f[i].ptr, n);
        p[n] = '\0';
        p += n + 1;
    }
}

void srv__access_begin(srv__conn_t *c, srv__req_t *r, srv_request_t *req)
{
    srv__reqlog_t *l = &r->log;
    free(l->fields);
    *l = (srv__reqlog_t){.open = true,
                         .major = (uint8_t)req->http_major,
                         .minor = (uint8_t)req->http_minor,
                         .worker = -1,
                         .t0 = mono_ns()};
    srv_str_t given = srv_request_header(req, "X-Request-Id");
    if (id_ok(given)) {
        memcpy(l->rid, given.ptr, given.len);
        l->rid[given.len] = '\0';
        l->rid_len = (uint8_t)given.len;
    } else {
        make_id(l->rid);
        l->rid_len = SRV_REQUEST_ID_GEN;
        set_id_header(c->eng, r, req);
    }
    if (c->eng->alog[c->listener])
        keep_fields(r, req);
}

void srv__access_head(srv__req_t *r, const char *p, size_t n)
{
    if (r->log.status != 0 || n < 12 || memcmp(p, "HTTP/", 5) != 0)
        return;
    int s = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
    r->log.status = s >= 100 && s <= 999 ? s : 0;
    const char *end = memmem(p, n, "\r\n\r\n", 4);
    r->log.head_len = end ? (uint32_t)(end - p + 4) : 0;
}

/* ---- the log line ---- */

/* The time of the line, formatted once a second per thread. */
static const char *stamp(bool json, int64_t *ms_out)
{
    static __thread time_t last;
    static __thread char combined[40], iso[40], zone[8];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    *ms_out = ts.tv_nsec / 1000000;
    if (ts.tv_sec != last) {
        struct tm tm;
        localtime_r(&ts.tv_sec, &tm);
        strftime(combined, sizeof(combined), "%d/%b/%Y:%H:%M:%S %z", &tm);
        strftime(iso, sizeof(iso), "%Y-%m-%dT%H:%M:%S", &tm);
        char z[8];
        strftime(z, sizeof(z), "%z", &tm); /* +0000 -> +00:00 */
        snprintf(zone, sizeof(zone), "%.3s:%.2s", z, z + 3);
        last = ts.tv_sec;
    }
    if (!json)
        return combined;
    static __thread char full[96];
    snprintf(full, sizeof(full), "%s.%03d%s", iso, (int)*ms_out, zone);
    return full;
}

typedef struct line {
    char *p;
    size_t len, cap;
} line_t;

static void put_raw(line_t *o, const char *s, size_t n)
{
    if (o->len + n >= o->cap)
        n = o->len < o->cap ? o->cap - o->len - 1 : 0;
    memcpy(o->p + o->len, s, n);
    o->len += n;
}

static void put_str(line_t *o, const char *s)
{
    put_raw(o, s, strlen(s));
}

/* s escaped for a JSON string (json) or a quoted combined field (nginx: \" and \xHH). */
static void put_esc(line_t *o, const char *s, bool json)
{
    static const char hex[] = "0123456789abcdef";
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        char esc[8];
        size_t n = 0;
        if (ch == '"' || ch == '\\') {
            esc[n++] = '\\';
            esc[n++] = (char)ch;
        } else if (ch < 0x20 || ch >= 0x7f) {
            if (json && ch >= 0x80) {
                esc[n++] = (char)ch; /* UTF-8 passes as it is */
            } else {
                const char *pre = json ? "\\u00" : "\\x";
                n = strlen(pre);
                memcpy(esc, pre, n);
                esc[n++] = hex[ch >> 4];
                esc[n++] = hex[ch & 15];
            }
        } else {
            esc[n++] = (char)ch;
        }
        put_raw(o, esc, n);
    }
}

typedef struct entry {
    const srv__conn_t *c;
    const srv__reqlog_t *l;
    const char *f[5]; /* method, uri, agent, referer, xff ("" when absent) */
    int status;
    uint64_t bytes, body;
    int64_t dur_us;
} entry_t;

static void line_combined(line_t *o, const entry_t *x)
{
    int64_t ms;
    char num[96];
    put_str(o, x->c->peer);
    put_str(o, " - - [");
    put_str(o, stamp(false, &ms));
    put_str(o, "] \"");
    if (x->f[0][0]) {
        put_esc(o, x->f[0], false);
        put_str(o, " ");
        put_esc(o, x->f[1], false);
        snprintf(num, sizeof(num), " HTTP/%d.%d", x->l->major, x->l->minor);
        put_str(o, num);
    } else {
        put_str(o, "-");
    }
    snprintf(num, sizeof(num), "\" %d %llu \"", x->status, (unsigned long long)x->body);
    put_str(o, num);
    put_esc(o, x->f[3][0] ? x->f[3] : "-", false);
    put_str(o, "\" \"");
    put_esc(o, x->f[2][0] ? x->f[2] : "-", false);
    put_str(o, "\"\n");
}

static void json_field(line_t *o, const char *key, const char *v)
{
    put_str(o, ",\"");
    put_str(o, key);
    put_str(o, "\":\"");
    put_esc(o, v, true);
    put_str(o, "\"");
}

static void line_json(line_t *o, const entry_t *x)
{
    const srv__engine_t *e = x->c->eng;
    const srv__listen_config_t *lc = &e->cfg->listen[x->c->listener];
    int64_t ms;
    char num[160];
    put_str(o, "{\"time\":\"");
    put_str(o, stamp(true, &ms));
    put_str(o, "\"");
    json_field(o, "peer", x->c->peer);
    json_field(o, "method", x->f[0]);
    json_field(o, "uri", x->f[1]);
    snprintf(num, sizeof(num), "HTTP/%d.%d", x->l->major, x->l->minor);
    json_field(o, "protocol", x->f[0][0] ? num : "");
    snprintf(num, sizeof(num), ",\"status\":%d,\"bytes_sent\":%llu,\"duration_us\":%lld", x->status,
             (unsigned long long)x->bytes, (long long)x->dur_us);
    put_str(o, num);
    char li[16];
    snprintf(li, sizeof(li), "%d", x->c->listener);
    json_field(o, "listener", lc->name[0] ? lc->name : li);
    snprintf(num, sizeof(num), ",\"worker\":%d", x->l->worker);
    put_str(o, num);
    json_field(o, "request_id", x->l->rid);
    json_field(o, "user_agent", x->f[2]);
    json_field(o, "referer", x->f[3]);
    json_field(o, "x_forwarded_for", x->f[4]);
    put_str(o, "}\n");
}

static void write_line(const entry_t *x)
{
    srv__engine_t *e = x->c->eng; /* its buffer: one engine is one thread */
    size_t need = 1024;
    for (int i = 0; i < 5; i++)
        need += 6 * strlen(x->f[i]); /* the worst escape: \u00XX per byte */
    if (need > e->alog_cap) {
        char *p = realloc(e->alog_line, need);
        if (p == NULL)
            return;
        e->alog_line = p;
        e->alog_cap = need;
    }
    line_t o = {e->alog_line, 0, e->alog_cap};
    if (x->c->eng->cfg->access_log_format == SRV_ALOG_JSON)
        line_json(&o, x);
    else
        line_combined(&o, x);
    srv__alog_write(o.p, o.len);
}

/* ---- end ---- */

static void count(srv__conn_t *c, int status, int64_t dur_us)
{
    srv__netstat_t *n = &c->eng->net[c->listener];
    int cls = status / 100;
    if (cls >= 1 && cls <= 5)
        srv__netstat_add(&n->requests[cls - 1], 1);
    int b = 0;
    while (b < SRV_NETSTAT_NBOUNDS && dur_us > (int64_t)bounds_us[b])
        b++;
    srv__netstat_add(&n->duration[b], 1);
    srv__netstat_add(&n->duration_us, (uint64_t)(dur_us > 0 ? dur_us : 0));
}

static void slow_log(srv__conn_t *c, const srv__reqlog_t *l, const entry_t *x)
{
    const srv__listen_config_t *lc = &c->eng->cfg->listen[c->listener];
    const char *method = x->f[0][0] ? x->f[0] : "-", *uri = x->f[1][0] ? x->f[1] : "";
    char li[16];
    snprintf(li, sizeof(li), "%d", c->listener);
    srv__log(SRV_LOG_WARN, "slowlog", 0,
             "%.16s %.1024s on listener %s: %.1f ms (worker %d, status %d, request id %s)", method,
             uri, lc->name[0] ? lc->name : li, (double)x->dur_us / 1000.0, l->worker, x->status,
             l->rid);
}

void srv__access_end(srv__conn_t *c, srv__req_t *r, uint64_t bytes)
{
    srv__reqlog_t *l = &r->log;
    if (!l->open)
        return;
    l->open = false;
    int64_t dur_us = (mono_ns() - l->t0) / 1000;
    int status = l->status ? l->status : 499;
    count(c, status, dur_us);
    srv__engine_t *e = c->eng;
    bool slow = e->slow_us > 0 && dur_us >= e->slow_us;
    if (l->fields == NULL && !slow)
        return;
    entry_t x = {.c = c, .l = l, .status = status, .bytes = bytes, .dur_us = dur_us};
    x.body = bytes > l->head_len ? bytes - l->head_len : 0;
    const char *p = l->fields ? l->fields : "\0\0\0\0";
    for (int i = 0; i < 5; i++) {
        x.f[i] = p;
        p += l->fields ? strlen(p) + 1 : 0;
    }
    if (slow)
        slow_log(c, l, &x);
    if (l->fields != NULL) {
        write_line(&x);
        free(l->fields);
        l->fields = NULL;
    }
}

size_t srv__access_id_header(const srv__req_t *r, char *hdr, size_t cap)
{
    int n = snprintf(hdr, cap, "X-Request-Id: %s\r\n", r->log.rid);
    return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

size_t srv__access_error_begin(srv__conn_t *c, char *hdr, size_t cap)
{
    srv__req_t *r = &c->req_store;
    if (!r->log.open) {
        bool h2 = c->h2 != NULL;
        free(r->log.fields);
        r->log =
            (srv__reqlog_t){.open = true, .major = h2 ? 2 : 1, .minor = h2 ? 0 : 1, .worker = -1};
        /* From the request's first byte (req_start: ms of the loop's clock, CLOCK_MONOTONIC). */
        r->log.t0 = mono_ns();
        if (c->req_start > 0)
            r->log.t0 -= srv__loop_now(c->eng->loop) - c->req_start * 1000000;
        make_id(r->log.rid);
        r->log.rid_len = SRV_REQUEST_ID_GEN;
        if (c->eng->alog[c->listener])
            r->log.fields = calloc(1, 5); /* no request line: five empty fields */
    }
    return hdr ? srv__access_id_header(r, hdr, cap) : 0;
}

void srv__access_error(srv__conn_t *c, int status, const char *resp, size_t n)
{
    srv__req_t *r = &c->req_store;
    srv__access_error_begin(c, NULL, 0);
    r->log.status = 0;
    if (resp != NULL)
        srv__access_head(r, resp, n);
    r->log.status = status;
    srv__access_end(c, r, n);
}

void srv__access_proto(srv__conn_t *c, int proto)
{
    srv__netstat_t *n = &c->eng->net[c->listener];
    srv__netstat_open(&n->open[c->stat_proto], -1);
    srv__netstat_open(&n->open[proto], 1);
    c->stat_proto = (uint8_t)proto;
}
