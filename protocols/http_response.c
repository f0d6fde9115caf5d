/* HTTP/1.1 response text: status lines and reasons, the Date header, response heads, error
 * responses, chunk headers. See http.h. */
#include "protocols/http.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "protocols/http_static.h"

static const struct {
    int status;
    const char *reason;
} reasons[] = {
    {100, "Continue"},
    {101, "Switching Protocols"},
    {200, "OK"},
    {201, "Created"},
    {202, "Accepted"},
    {203, "Non-Authoritative Information"},
    {204, "No Content"},
    {205, "Reset Content"},
    {206, "Partial Content"},
    {300, "Multiple Choices"},
    {301, "Moved Permanently"},
    {302, "Found"},
    {303, "See Other"},
    {304, "Not Modified"},
    {307, "Temporary Redirect"},
    {308, "Permanent Redirect"},
    {400, "Bad Request"},
    {401, "Unauthorized"},
    {402, "Payment Required"},
    {403, "Forbidden"},
    {404, "Not Found"},
    {405, "Method Not Allowed"},
    {406, "Not Acceptable"},
    {407, "Proxy Authentication Required"},
    {408, "Request Timeout"},
    {409, "Conflict"},
    {410, "Gone"},
    {411, "Length Required"},
    {412, "Precondition Failed"},
    {413, "Content Too Large"},
    {414, "URI Too Long"},
    {415, "Unsupported Media Type"},
    {416, "Range Not Satisfiable"},
    {417, "Expectation Failed"},
    {418, "I'm a teapot"},
    {421, "Misdirected Request"},
    {422, "Unprocessable Content"},
    {425, "Too Early"},
    {426, "Upgrade Required"},
    {428, "Precondition Required"},
    {429, "Too Many Requests"},
    {431, "Request Header Fields Too Large"},
    {451, "Unavailable For Legal Reasons"},
    {500, "Internal Server Error"},
    {501, "Not Implemented"},
    {502, "Bad Gateway"},
    {503, "Service Unavailable"},
    {504, "Gateway Timeout"},
    {505, "HTTP Version Not Supported"},
    {507, "Insufficient Storage"},
    {511, "Network Authentication Required"},
};

const char *srv__http_status_reason(int status)
{
    for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++)
        if (reasons[i].status == status)
            return reasons[i].reason;
    return "Unknown";
}

/* The Date header value, formatted at most once a second per thread. */
static const char *date_now(void)
{
    static __thread time_t cached = -1;
    static __thread char text[32];
    time_t now = time(NULL);
    if (now != cached) {
        srv__http_date_format(now, text, sizeof(text));
        cached = now;
    }
    return text;
}

struct out {
    char *buf;
    size_t cap, len;
    bool full;
};

static void out_mem(struct out *o, const char *s, size_t n)
{
    if (o->full || n > o->cap - o->len) {
        o->full = true;
        return;
    }
    memcpy(o->buf + o->len, s, n);
    o->len += n;
}

static void out_str(struct out *o, const char *s)
{
    out_mem(o, s, strlen(s));
}

static void out_u64(struct out *o, uint64_t v)
{
    char tmp[24];
    size_t i = sizeof(tmp);
    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    out_mem(o, tmp + i, sizeof(tmp) - i);
}

int srv__http_response_head(char *buf, size_t cap, int status, int http_minor, bool keep_alive,
                            int64_t content_length, srv_str_t extra_headers)
{
    struct out o = {buf, cap, 0, false};
    if (status < 100 || status > 999)
        status = 500;
    out_str(&o, "HTTP/1.1 ");
    out_u64(&o, (uint64_t)status);
    out_mem(&o, " ", 1);
    out_str(&o, srv__http_status_reason(status));
    out_str(&o, "\r\nServer: srv\r\nDate: ");
    out_str(&o, date_now());
    out_str(&o, "\r\n");
    if (extra_headers.len)
        out_mem(&o, extra_headers.ptr, extra_headers.len);
    /* RFC 9110 8.6: no Content-Length in 1xx and 204; 304 carries the representation's, which
     * the caller does not give us. */
    bool bodyless = status < 200 || status == 204 || status == 304;
    if (!bodyless) {
        if (content_length >= 0) {
            out_str(&o, "Content-Length: ");
            out_u64(&o, (uint64_t)content_length);
            out_str(&o, "\r\n");
        } else if (http_minor >= 1) {
            out_str(&o, "Transfer-Encoding: chunked\r\n");
        } else {
            keep_alive = false; /* the body ends when the connection does */
        }
    }
    out_str(&o, keep_alive ? "Connection: keep-alive\r\n\r\n" : "Connection: close\r\n\r\n");
    if (o.full)
        return -ENOSPC;
    return (int)o.len;
}

int srv__http_error_response(char *buf, size_t cap, int status, const char *reason, bool keep_alive,
                             srv_str_t extra_headers)
{
    if (reason == NULL)
        reason = srv__http_status_reason(status);
    size_t rlen = strlen(reason);
    char hdr[512];
    int hn = snprintf(hdr, sizeof(hdr), "Content-Type: text/plain; charset=utf-8\r\n%.*s",
                      (int)(extra_headers.ptr ? extra_headers.len : 0),
                      extra_headers.ptr ? extra_headers.ptr : "");
    if (hn < 0 || (size_t)hn >= sizeof(hdr))
        return -ENOSPC;
    int n = srv__http_response_head(buf, cap, status, 1, keep_alive, (int64_t)rlen + 1,
                                    (srv_str_t){hdr, (size_t)hn});
    if (n < 0)
        return n;
    if (cap - (size_t)n < rlen + 1)
        return -ENOSPC;
    memcpy(buf + n, reason, rlen);
    buf[n + rlen] = '\n';
    return n + (int)rlen + 1;
}

int srv__http_chunk_header(char *buf, size_t cap, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    char tmp[20];
    size_t i = sizeof(tmp);
    tmp[--i] = '\n';
    tmp[--i] = '\r';
    do {
        tmp[--i] = hex[len & 15];
        len >>= 4;
    } while (len);
    size_t n = sizeof(tmp) - i;
    if (n > cap)
        return -ENOSPC;
    memcpy(buf, tmp + i, n);
    return (int)n;
}
