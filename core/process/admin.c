/* The admin endpoint's server (see admin.h): accept, read one request head at a time, answer
 * from the master's own data, keep the connection for the next request. Requests have no
 * body; a head longer than ADMIN_HEAD_MAX, or one that takes longer than ADMIN_IDLE_MS,
 * closes the connection. */
#include "core/process/admin.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/base/log.h"
#include "core/base/util.h"
#include "core/process/ctl.h"
#include "core/process/metrics.h"
#include "core/server/server.h"

#define ADMIN_HEAD_MAX 8192
#define ADMIN_IDLE_MS 10000 /* a request (or the next one) must come within this */
#define ADMIN_REPLY_MAX (8u << 20)

typedef struct aclient {
    int fd;
    char in[ADMIN_HEAD_MAX];
    size_t in_len;
    char *out; /* the reply being sent (owned) */
    size_t out_len, out_off;
    bool close_after;
    int64_t deadline;
} aclient_t;

static struct {
    int fd;
    const srv__admin_ops_t *ops;
    aclient_t c[SRV_ADMIN_CLIENTS];
    int64_t last_warn;
} A = {.fd = -1};

static int parse_addr(const char *addr, struct sockaddr_storage *ss, socklen_t *len)
{
    char host[64];
    const char *colon = strrchr(addr, ':');
    if (colon == NULL || (size_t)(colon - addr) >= sizeof(host))
        return -EINVAL;
    memcpy(host, addr, (size_t)(colon - addr));
    host[colon - addr] = '\0';
    int port = atoi(colon + 1);
    memset(ss, 0, sizeof(*ss));
    if (host[0] == '[') {
        size_t n = strlen(host);
        if (n < 3 || host[n - 1] != ']')
            return -EINVAL;
        host[n - 1] = '\0';
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)port);
        *len = sizeof(*s6);
        return inet_pton(AF_INET6, host + 1, &s6->sin6_addr) == 1 ? AF_INET6 : -EINVAL;
    }
    struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
    s4->sin_family = AF_INET;
    s4->sin_port = htons((uint16_t)port);
    *len = sizeof(*s4);
    return inet_pton(AF_INET, host, &s4->sin_addr) == 1 ? AF_INET : -EINVAL;
}

int srv__admin_open(const char *addr, const srv__admin_ops_t *ops)
{
    struct sockaddr_storage ss;
    socklen_t len;
    int family = parse_addr(addr, &ss, &len);
    if (family < 0)
        return family;
    int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&ss, len) != 0 || listen(fd, 64) != 0) {
        int err = -errno;
        close(fd);
        return err;
    }
    A.fd = fd;
    A.ops = ops;
    for (int i = 0; i < SRV_ADMIN_CLIENTS; i++)
        A.c[i].fd = -1;
    return 0;
}

static void client_close(aclient_t *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    free(c->out);
    c->out = NULL;
    c->in_len = c->out_len = c->out_off = 0;
    c->close_after = false;
}

/* ---- answers ---- */

static bool token_ok(const char *auth, size_t n)
{
    const char *token = srv__server.cfg.admin_token;
    if (token[0] == '\0')
        return true;
    size_t tl = strlen(token);
    if (auth == NULL || n != 7 + tl || strncasecmp(auth, "Bearer ", 7) != 0)
        return false;
    unsigned char diff = 0; /* the same time whatever matches */
    for (size_t i = 0; i < tl; i++)
        diff |= (unsigned char)(auth[7 + i] ^ token[i]);
    return diff == 0;
}

static void reply(aclient_t *c, int status, const char *type, const char *extra, const char *body,
                  size_t blen, bool head_only)
{
    const char *reason = status == 200   ? "OK"
                         : status == 401 ? "Unauthorized"
                         : status == 404 ? "Not Found"
                         : status == 405 ? "Method Not Allowed"
                         : status == 400 ? "Bad Request"
                                         : "Service Unavailable";
    char head[512];
    int hn = snprintf(head, sizeof(head),
                      "HTTP/1.1 %d %s\r\nServer: srv\r\nContent-Type: %s\r\n"
                      "Content-Length: %zu\r\nCache-Control: no-store\r\n%s%s\r\n",
                      status, reason, type, blen, extra ? extra : "",
                      c->close_after ? "Connection: close\r\n" : "");
    size_t total = (size_t)hn + (head_only ? 0 : blen);
    char *out = malloc(total);
    if (out == NULL) {
        client_close(c);
        return;
    }
    memcpy(out, head, (size_t)hn);
    if (!head_only && blen > 0)
        memcpy(out + hn, body, blen);
    c->out = out;
    c->out_len = total;
    c->out_off = 0;
}

static void reply_text(aclient_t *c, int status, const char *text, bool head_only)
{
    reply(c, status, "text/plain; charset=utf-8", NULL, text, strlen(text), head_only);
}

/* A body built by fn into a growing buffer (up to ADMIN_REPLY_MAX). */
static void reply_built(aclient_t *c, const char *type, int (*fn)(char *, size_t), bool head_only)
{
    for (size_t cap = 64 << 10; cap <= ADMIN_REPLY_MAX; cap *= 4) {
        char *buf = malloc(cap);
        if (buf == NULL)
            break;
        int n = fn(buf, cap);
        if (n >= 0 && (size_t)n < cap - 1) {
            reply(c, 200, type, NULL, buf, (size_t)n, head_only);
            free(buf);
            return;
        }
        free(buf);
    }
    reply_text(c, 503, "report too large\n", head_only);
}

static int info_body(char *buf, size_t cap)
{
    srv__info_json(buf, cap);
    return (int)strlen(buf);
}

static void route(aclient_t *c, const char *method, const char *path, const char *auth,
                  size_t auth_len)
{
    bool head_only = strcmp(method, "HEAD") == 0;
    if (strcmp(method, "GET") != 0 && !head_only) {
        c->close_after = true;
        reply(c, 405, "text/plain; charset=utf-8", "Allow: GET, HEAD\r\n", "method not allowed\n",
              19, false);
        return;
    }
    size_t plen = strcspn(path, "?");
    bool is = false;
#define PATH_IS(p) (is = plen == strlen(p) && strncmp(path, p, plen) == 0)
    if (PATH_IS("/health")) {
        const char *h = A.ops->health();
        char body[32];
        snprintf(body, sizeof(body), "%s\n", h);
        reply_text(c, strcmp(h, "ok") == 0 ? 200 : 503, body, head_only);
        return;
    }
    /* The page holds no data (it fetches /info and /metrics with the token from its address):
     * a browser opening a link can send no Authorization header, so it needs none. */
    if (PATH_IS("/") || PATH_IS("/dashboard")) {
        reply(c, 200, "text/html; charset=utf-8", NULL, srv__dashboard_html,
              srv__dashboard_html_len, head_only);
        return;
    }
    if (!token_ok(auth, auth_len)) {
        reply(c, 401, "text/plain; charset=utf-8", "WWW-Authenticate: Bearer realm=\"srv\"\r\n",
              "unauthorized\n", 13, head_only);
        return;
    }
    if (PATH_IS("/metrics"))
        reply_built(c, "text/plain; version=0.0.4; charset=utf-8", srv__metrics_text, head_only);
    else if (PATH_IS("/info"))
        reply_built(c, "application/json", info_body, head_only);
    else
        reply_text(c, 404, "not found\n", head_only);
#undef PATH_IS
    (void)is;
}

/* A whole head is in c->in[0 .. end): answer it. Returns false on a malformed one. */
static bool serve_head(aclient_t *c, size_t end)
{
    c->in[end - 1] = '\0';
    char *line_end = strstr(c->in, "\r\n");
    if (line_end == NULL)
        return false;
    *line_end = '\0';
    char method[16], path[2048], version[16];
    if (sscanf(c->in, "%15s %2047s %15s", method, path, version) != 3 ||
        strncmp(version, "HTTP/1.", 7) != 0)
        return false;
    const char *auth = NULL;
    size_t auth_len = 0;
    c->close_after = strcmp(version, "HTTP/1.0") == 0;
    for (char *h = line_end + 2; h < c->in + end && *h;) {
        char *eol = strstr(h, "\r\n");
        if (eol == NULL)
            break;
        *eol = '\0';
        char *colon = strchr(h, ':');
        if (colon != NULL) {
            char *v = colon + 1;
            while (*v == ' ' || *v == '\t')
                v++;
            size_t vl = strlen(v);
            while (vl > 0 && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
                vl--;
            size_t nl = (size_t)(colon - h);
            if (nl == 13 && strncasecmp(h, "Authorization", 13) == 0) {
                auth = v;
                auth_len = vl;
            } else if (nl == 10 && strncasecmp(h, "Connection", 10) == 0) {
                if (vl == 5 && strncasecmp(v, "close", 5) == 0)
                    c->close_after = true;
                else if (vl == 10 && strncasecmp(v, "keep-alive", 10) == 0)
                    c->close_after = false;
            } else if ((nl == 14 && strncasecmp(h, "Content-Length", 14) == 0 && atol(v) > 0) ||
                       (nl == 17 && strncasecmp(h, "Transfer-Encoding", 17) == 0)) {
                c->close_after = true; /* no bodies here: answer, then close */
            }
        }
        h = eol + 2;
    }
    route(c, method, path, auth, auth_len);
    return true;
}

/* ---- connections ---- */

static void client_flush(aclient_t *c)
{
    while (c->out_off < c->out_len) {
        ssize_t n =
            send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            c->out_off += (size_t)n;
            c->deadline = srv__mono_ms() + ADMIN_IDLE_MS;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return;
        client_close(c);
        return;
    }
    free(c->out);
    c->out = NULL;
    c->out_len = c->out_off = 0;
    if (c->close_after)
        client_close(c);
}

/* Answer every complete head in the input, one at a time (pipelined ones wait their turn). */
static void client_process(aclient_t *c)
{
    while (c->fd >= 0 && c->out == NULL && c->in_len > 0) {
        char *end = memmem(c->in, c->in_len, "\r\n\r\n", 4);
        if (end == NULL) {
            if (c->in_len >= sizeof(c->in)) {
                c->close_after = true;
                reply_text(c, 400, "request head too large\n", false);
                c->in_len = 0;
                client_flush(c);
            }
            return;
        }
        size_t used = (size_t)(end - c->in) + 4;
        char rest[ADMIN_HEAD_MAX];
        size_t left = c->in_len - used;
        memcpy(rest, c->in + used, left);
        if (!serve_head(c, used)) {
            c->close_after = true;
            reply_text(c, 400, "bad request\n", false);
        }
        memcpy(c->in, rest, left);
        c->in_len = left;
        c->deadline = srv__mono_ms() + ADMIN_IDLE_MS;
        client_flush(c);
    }
}

static void client_read(aclient_t *c)
{
    ssize_t n = recv(c->fd, c->in + c->in_len, sizeof(c->in) - c->in_len, MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
        client_close(c);
        return;
    }
    if (n > 0)
        c->in_len += (size_t)n;
    client_process(c);
}

static void accept_clients(void)
{
    for (int k = 0; k < SRV_ADMIN_CLIENTS; k++) {
        int fd = accept4(A.fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno != EAGAIN && srv__mono_ms() - A.last_warn > 10000) {
                A.last_warn = srv__mono_ms();
                srv__log(SRV_LOG_WARN, "admin", errno, "admin_server: cannot accept");
            }
            return;
        }
        aclient_t *c = NULL;
        for (int i = 0; i < SRV_ADMIN_CLIENTS && c == NULL; i++)
            if (A.c[i].fd < 0)
                c = &A.c[i];
        if (c == NULL) {
            static const char busy[] = "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 5\r\n"
                                       "Connection: close\r\n\r\nbusy\n";
            ssize_t rc = send(fd, busy, sizeof(busy) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
            (void)rc;
            close(fd);
            continue;
        }
        c->fd = fd;
        c->in_len = 0;
        c->close_after = false;
        c->deadline = srv__mono_ms() + ADMIN_IDLE_MS;
    }
}

void srv__admin_poll(struct pollfd *pfd, int64_t now, int64_t *wake)
{
    if (A.fd < 0) {
        for (int i = 0; i < SRV_ADMIN_NPOLL; i++)
            pfd[i] = (struct pollfd){.fd = -1};
        return;
    }
    pfd[0] = (struct pollfd){.fd = A.fd, .events = POLLIN};
    for (int i = 0; i < SRV_ADMIN_CLIENTS; i++) {
        aclient_t *c = &A.c[i];
        if (c->fd >= 0 && now >= c->deadline)
            client_close(c);
        if (c->fd >= 0 && c->deadline < *wake)
            *wake = c->deadline;
        pfd[1 + i] = (struct pollfd){.fd = c->fd, .events = c->out ? POLLOUT : POLLIN};
    }
}

void srv__admin_dispatch(const struct pollfd *pfd)
{
    if (A.fd < 0)
        return;
    for (int i = 0; i < SRV_ADMIN_CLIENTS; i++) {
        aclient_t *c = &A.c[i];
        if (!pfd[1 + i].revents || c->fd < 0 || c->fd != pfd[1 + i].fd)
            continue;
        if (c->out != NULL) {
            client_flush(c);
            if (c->fd >= 0 && c->out == NULL)
                client_process(c);
        } else {
            client_read(c);
        }
    }
    if (A.fd >= 0 && pfd[0].revents)
        accept_clients();
}

void srv__admin_drop(void)
{
    if (A.fd < 0)
        return;
    for (int i = 0; i < SRV_ADMIN_CLIENTS; i++)
        if (A.c[i].fd >= 0)
            close(A.c[i].fd);
    if (A.fd >= 0)
        close(A.fd);
    A.fd = -1;
}

void srv__admin_close(void)
{
    if (A.fd < 0)
        return;
    for (int i = 0; i < SRV_ADMIN_CLIENTS; i++)
        client_close(&A.c[i]);
    if (A.fd >= 0)
        close(A.fd);
    A.fd = -1;
}
