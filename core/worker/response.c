/* The response API of include/srv/srv.h. Heads are built on the stack; bodies go to the sink
 * as iovecs so the only copy is the one into the IPC or connection buffer. */
#include "core/worker/response.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/base/buf.h"
#include "core/ipc/ipc.h"
#include "core/base/log.h"
#include "protocols/http.h"
#include "protocols/http_static.h"

#define HDR_MAX (16u << 10)

void srv__response_init(srv_response_t *res, const srv_request_t *req, const srv__resp_sink_t *sink)
{
    res->req = req;
    res->session = req->session;
    res->sink = sink;
    res->status = 200;
    res->state = SRV_RESP_NEW;
    res->detached = false;
    res->heap = false;
    res->keep_alive = (req->flags & SRV_REQ_KEEP_ALIVE) != 0;
    res->hdr_len = 0;
    res->req_copy = NULL;
    res->tls_copy = NULL;
    res->wcb = NULL;
    res->warg = NULL;
}

void srv__response_deinit(srv_response_t *res)
{
    free(res->hdr);
    res->hdr = NULL;
    res->hdr_cap = res->hdr_len = 0;
    free(res->req_copy);
    res->req_copy = NULL;
    free(res->tls_copy);
    res->tls_copy = NULL;
}

static void finished(srv_response_t *res)
{
    res->state = SRV_RESP_DONE;
    if (res->wcb && res->sink->on_writable) {
        res->wcb = NULL;
        res->sink->on_writable(res->sink->arg, res->session, NULL, NULL);
    }
    if (res->heap) {
        srv__response_deinit(res);
        free(res);
    }
}

static bool keep_alive(const srv_response_t *res)
{
    return res->keep_alive;
}

static bool is_head(const srv_response_t *res)
{
    return (res->req->flags & SRV_REQ_HEAD) != 0;
}

int srv_response_status(srv_response_t *res, int status)
{
    if (res->state != SRV_RESP_NEW)
        return -EALREADY;
    if (status < 100 || status > 999)
        return -EINVAL;
    res->status = status;
    return 0;
}

static bool reserved_header(const char *name)
{
    static const char *const own[] = {"date", "server", "content-length", "transfer-encoding",
                                      "connection"};
    for (size_t i = 0; i < sizeof(own) / sizeof(own[0]); i++)
        if (strcasecmp(name, own[i]) == 0)
            return true;
    return false;
}

int srv_response_header(srv_response_t *res, const char *name, const char *value)
{
    if (res->state != SRV_RESP_NEW)
        return -EALREADY;
    if (name == NULL || value == NULL || name[0] == '\0' || reserved_header(name))
        return -EINVAL;
    for (const char *p = name; *p; p++)
        if (*p <= ' ' || *p == ':' || *p == 127)
            return -EINVAL;
    for (const char *p = value; *p; p++)
        if (*p == '\r' || *p == '\n')
            return -EINVAL; /* no header injection through the app's values */
    size_t nl = strlen(name), vl = strlen(value), need = nl + vl + 4;
    if (res->hdr_len + need > HDR_MAX)
        return -EMSGSIZE;
    if (srv__grow(&res->hdr, &res->hdr_cap, res->hdr_len + need, 512, HDR_MAX) < 0)
        return -ENOMEM;
    char *p = res->hdr + res->hdr_len;
    memcpy(p, name, nl);
    p[nl] = ':';
    p[nl + 1] = ' ';
    memcpy(p + nl + 2, value, vl);
    p[nl + 2 + vl] = '\r';
    p[nl + 3 + vl] = '\n';
    res->hdr_len += need;
    return 0;
}

static bool has_header(const srv_response_t *res, const char *name)
{
    size_t nl = strlen(name);
    const char *p = res->hdr, *end = res->hdr + res->hdr_len;
    while (p && p < end) {
        if ((size_t)(end - p) > nl && p[nl] == ':' && strncasecmp(p, name, nl) == 0)
            return true;
        const char *e = memchr(p, '\n', (size_t)(end - p));
        p = e ? e + 1 : end;
    }
    return false;
}

/* The request's id (the engine set X-Request-Id on every request) goes back with the response,
 * unless the app set one itself. */
static srv_str_t request_id(const srv_response_t *res)
{
    srv_str_t id = srv_request_header(res->req, "X-Request-Id");
    if (id.ptr == NULL || id.len > 128 || memchr(id.ptr, '\r', id.len) ||
        memchr(id.ptr, '\n', id.len) || has_header(res, "X-Request-Id"))
        return (srv_str_t){NULL, 0};
    return id;
}

static int head(srv_response_t *res, char *buf, size_t cap, int64_t clen)
{
    srv_str_t extra = {res->hdr, res->hdr_len};
    srv_str_t id = request_id(res);
    char with_id[HDR_MAX + 160];
    if (id.ptr != NULL) {
        if (res->hdr_len > 0)
            memcpy(with_id, res->hdr, res->hdr_len);
        int k = snprintf(with_id + res->hdr_len, sizeof(with_id) - res->hdr_len,
                         "X-Request-Id: %.*s\r\n", (int)id.len, id.ptr);
        extra = (srv_str_t){with_id, res->hdr_len + (size_t)k};
    }
    int n = srv__http_response_head(buf, cap, res->status, res->req->http_minor, keep_alive(res),
                                   clen, extra);
    return n < 0 ? -EMSGSIZE : n;
}

static unsigned fin_flags(const srv_response_t *res)
{
    return SRV_IPC_F_FINAL | (keep_alive(res) ? 0 : SRV_IPC_F_CLOSE);
}

int srv_response_send(srv_response_t *res, const void *body, size_t len)
{
    if (res->state != SRV_RESP_NEW)
        return -EALREADY;
    char hb[HDR_MAX + 512];
    /* 1xx, 204 and 304 carry no body (RFC 9110); everything else says how long it is. */
    bool bodyless = res->status < 200 || res->status == 204 || res->status == 304;
    int n = head(res, hb, sizeof(hb), bodyless ? 0 : (int64_t)len);
    if (n < 0)
        return n;
    struct iovec v[2] = {{hb, (size_t)n}, {(void *)body, len}};
    int cnt = (is_head(res) || bodyless || len == 0) ? 1 : 2;
    int rc = res->sink->emit(res->sink->arg, res->session, v, cnt, fin_flags(res));
    finished(res);
    return rc;
}

int srv_response_file(srv_response_t *res, const char *path)
{
    if (res->state != SRV_RESP_NEW)
        return -EALREADY;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int err = -errno;
        close(fd);
        return err;
    }
    if (S_ISDIR(sb.st_mode)) {
        close(fd);
        return -EISDIR;
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return -EINVAL;
    }
    if (!has_header(res, "Content-Type")) {
        int rc = srv_response_header(res, "Content-Type", srv__http_mime_type(path));
        if (rc < 0) {
            close(fd);
            return rc;
        }
    }
    char hb[HDR_MAX + 512];
    int n = head(res, hb, sizeof(hb), (int64_t)sb.st_size);
    if (n < 0) {
        close(fd);
        return n;
    }
    struct iovec v = {hb, (size_t)n};
    if (is_head(res) || sb.st_size == 0) {
        close(fd);
        int rc = res->sink->emit(res->sink->arg, res->session, &v, 1, fin_flags(res));
        finished(res);
        return rc;
    }
    int rc = res->sink->emit(res->sink->arg, res->session, &v, 1, 0);
    if (rc < 0) {
        close(fd);
        finished(res);
        return rc;
    }
    rc = res->sink->emit_file(res->sink->arg, res->session, fd, path, 0, (uint64_t)sb.st_size,
                              fin_flags(res));
    finished(res);
    return rc;
}

/* HTTP/2 frames the body itself (DATA frames): the engine takes the head this file writes and
 * the body bytes as they are, never chunked, and the stream (not the connection) ends. */
static bool h2(const srv_response_t *res)
{
    return res->req->http_major == 2;
}

static bool chunked(const srv_response_t *res)
{
    return res->req->http_major == 1 && res->req->http_minor >= 1;
}

int srv_response_write(srv_response_t *res, const void *chunk, size_t len)
{
    if (res->state == SRV_RESP_DONE)
        return -EALREADY;
    char hb[HDR_MAX + 512];
    struct iovec v[4];
    int cnt = 0;
    bool first = res->state == SRV_RESP_NEW;
    if (first) {
        if (!chunked(res) && !h2(res)) {
            /* HTTP/1.0 has no chunked encoding: the body ends when we close. */
            res->keep_alive = false;
        }
        int n = head(res, hb, sizeof(hb), -1);
        if (n < 0)
            return n;
        v[cnt++] = (struct iovec){hb, (size_t)n};
    }
    char ch[32];
    if (len > 0 && !is_head(res)) {
        if (chunked(res)) {
            int k = srv__http_chunk_header(ch, sizeof(ch), len);
            v[cnt++] = (struct iovec){ch, (size_t)k};
            v[cnt++] = (struct iovec){(void *)chunk, len};
            v[cnt++] = (struct iovec){(void *)"\r\n", 2};
        } else
            v[cnt++] = (struct iovec){(void *)chunk, len};
    }
    if (cnt == 0)
        return 0;
    /* -EAGAIN: nothing was taken, not even the head; the same call works again later. */
    int rc = res->sink->emit(res->sink->arg, res->session, v, cnt, 0);
    if (rc == 0 && first)
        res->state = SRV_RESP_STREAMING;
    return rc;
}

static void writable_trampoline(void *arg)
{
    srv_response_t *res = arg;
    void (*cb)(srv_response_t *, void *) = res->wcb;
    res->wcb = NULL;
    if (cb)
        cb(res, res->warg);
}

int srv_response_on_writable(srv_response_t *res, void (*cb)(srv_response_t *res, void *arg),
                             void *arg)
{
    if (res->state == SRV_RESP_DONE)
        return -EALREADY;
    if (res->sink->on_writable == NULL)
        return -ENOTSUP;
    res->wcb = cb;
    res->warg = arg;
    return res->sink->on_writable(res->sink->arg, res->session, cb ? writable_trampoline : NULL,
                                  res);
}

int srv_response_end(srv_response_t *res)
{
    if (res->state == SRV_RESP_DONE)
        return -EALREADY;
    if (res->state == SRV_RESP_NEW) {
        int rc = srv_response_write(res, NULL, 0);
        if (rc < 0)
            return rc;
    }
    struct iovec v = {(void *)"0\r\n\r\n", 5};
    int cnt = chunked(res) && !is_head(res) ? 1 : 0;
    int rc = res->sink->emit(res->sink->arg, res->session, &v, cnt, fin_flags(res));
    finished(res);
    return rc;
}

int srv_response_detach(srv_response_t *res)
{
    if (res->state == SRV_RESP_DONE)
        return -EALREADY;
    res->detached = true;
    return 0;
}

const srv_request_t *srv_response_request(const srv_response_t *res)
{
    return res->req;
}

bool srv__response_after_handler(srv_response_t *res)
{
    if (res->state == SRV_RESP_DONE)
        return false;
    if (res->detached)
        return true;
    if (res->state == SRV_RESP_NEW) {
        srv__log(SRV_LOG_WARN, "app", 0,
                "on_request for %.*s returned without a response; "
                "answering 500",
                (int)res->req->path.len, res->req->path.ptr);
        res->hdr_len = 0;
        res->status = 500;
        static const char msg[] = "the application did not respond\n";
        srv_response_header(res, "Content-Type", "text/plain");
        srv_response_send(res, msg, sizeof(msg) - 1);
    } else {
        srv__log(SRV_LOG_WARN, "app", 0, "on_request for %.*s returned mid-stream; ending it",
                (int)res->req->path.len, res->req->path.ptr);
        srv_response_end(res);
    }
    return false;
}
