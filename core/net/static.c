/* Static file serving; see static.h. Path resolution is openat2(RESOLVE_BENEATH) against the
 * root directory fd, so "..", encoded dots and symlinks that leave the root all fail with
 * EXDEV instead of depending on string checks alone. */
#include "core/net/static.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "core/net/conn_internal.h"
#include "core/base/log.h"
#include "protocols/http.h"
#include "protocols/http_static.h"

struct srv__static {
    int root_fd;
    srv__engine_t *eng;
};

int srv__static_create(srv__static_t **out, const char *root, srv__engine_t *e)
{
    srv__static_t *st = calloc(1, sizeof(*st));
    if (st == NULL)
        return -ENOMEM;
    st->root_fd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (st->root_fd < 0) {
        int err = -errno;
        free(st);
        return err;
    }
    st->eng = e;
    *out = st;
    return 0;
}

void srv__static_destroy(srv__static_t *st)
{
    close(st->root_fd);
    free(st);
}

static int open_beneath(int dirfd, const char *rel)
{
    struct open_how how = {.flags = O_RDONLY | O_CLOEXEC | O_NONBLOCK,
                           .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS};
    long fd = syscall(SYS_openat2, dirfd, rel[0] ? rel : ".", &how, sizeof(how));
    return fd < 0 ? -errno : (int)fd;
}

static int answer_error(srv__static_t *st, const srv_request_t *req, int status, const char *why)
{
    char buf[512];
    bool ka = (req->flags & SRV_REQ_KEEP_ALIVE) != 0;
    int n = srv__http_error_response(buf, sizeof(buf), status, why, ka);
    struct iovec v = {.iov_base = buf, .iov_len = n > 0 ? (size_t)n : 0};
    srv__conn_respond(st->eng, req->session, &v, 1,
                      SRV_ENGINE_F_FINAL | (ka ? 0 : SRV_ENGINE_F_CLOSE));
    return 1;
}

int srv__static_serve(srv__static_t *st, const srv_request_t *req, srv__conn_t *c)
{
    bool head = req->method.len == 4 && memcmp(req->method.ptr, "HEAD", 4) == 0;
    bool get = req->method.len == 3 && memcmp(req->method.ptr, "GET", 3) == 0;
    if (!get && !head)
        return 0;
    /* PATH_MAX holds every relative path openat2() can take; a longer one names no file. */
    char rel[PATH_MAX];
    int rc = srv__http_path_resolve(req->path, rel, sizeof(rel));
    if (rc == -EACCES)
        return answer_error(st, req, 403, "path leaves the document root");
    if (rc == -ENOSPC)
        return 0; /* longer than any file path: not a file of ours, like a missing one */
    if (rc < 0)
        return answer_error(st, req, 400, "bad path");
    int fd = open_beneath(st->root_fd, rel);
    if (fd == -EXDEV || fd == -ELOOP)
        return answer_error(st, req, 403, "path leaves the document root");
    if (fd == -EACCES)
        return answer_error(st, req, 403, "forbidden");
    if (fd < 0)
        return 0; /* not a file of ours (ENOENT, ENAMETOOLONG, ...): a dynamic request */
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        close(fd);
        return answer_error(st, req, 500, "stat failed");
    }
    const char *name = rel; /* the file served, for its Content-Type */
    char idx[PATH_MAX + sizeof("/index.html")];
    if (S_ISDIR(sb.st_mode)) {
        close(fd);
        /* rel is at most PATH_MAX - 1 bytes: idx has room for the suffix; a name openat2()
         * finds too long is a directory without a reachable index */
        snprintf(idx, sizeof(idx), "%s%s", rel, rel[0] ? "/index.html" : "index.html");
        fd = open_beneath(st->root_fd, idx);
        if (fd < 0 || fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
            if (fd >= 0)
                close(fd);
            return answer_error(st, req, 403, "directory listing is not allowed");
        }
        name = idx;
    } else if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return answer_error(st, req, 403, "not a regular file");
    }
    bool ka = (req->flags & SRV_REQ_KEEP_ALIVE) != 0;
    char lm[64];
    srv__http_date_format(sb.st_mtime, lm, sizeof(lm));
    srv_str_t ims = srv_request_header(req, "If-Modified-Since");
    time_t since;
    int status = 200;
    uint64_t size = (uint64_t)sb.st_size, start = 0, end = size ? size - 1 : 0;
    char extra[1024];
    int xn = snprintf(extra, sizeof(extra),
                      "Content-Type: %s\r\nLast-Modified: %s\r\nAccept-Ranges: bytes\r\n",
                      srv__http_mime_type(name), lm);
    if (ims.ptr && srv__http_date_parse(ims, &since) == 0 && sb.st_mtime <= since) {
        status = 304;
    } else {
        srv_str_t range = srv_request_header(req, "Range");
        if (range.ptr && size > 0) {
            rc = srv__http_range_parse(range, size, &start, &end);
            if (rc == 0) {
                status = 206;
                xn += snprintf(extra + xn, sizeof(extra) - (size_t)xn,
                               "Content-Range: bytes %llu-%llu/%llu\r\n", (unsigned long long)start,
                               (unsigned long long)end, (unsigned long long)size);
            } else if (rc == -ERANGE) {
                close(fd);
                char buf[1024];
                char cr[128];
                int cn = snprintf(cr, sizeof(cr), "Content-Range: bytes */%llu\r\n",
                                  (unsigned long long)size);
                int n = srv__http_response_head(buf, sizeof(buf), 416, req->http_minor, ka, 0,
                                               (srv_str_t){cr, (size_t)cn});
                struct iovec v = {.iov_base = buf, .iov_len = n > 0 ? (size_t)n : 0};
                srv__conn_respond(st->eng, req->session, &v, 1,
                                  SRV_ENGINE_F_FINAL | (ka ? 0 : SRV_ENGINE_F_CLOSE));
                return 1;
            }
        }
    }
    uint64_t len = status == 304 ? 0 : (size ? end - start + 1 : 0);
    char hbuf[2048];
    int hn =
        srv__http_response_head(hbuf, sizeof(hbuf), status, req->http_minor, ka,
                               status == 304 ? 0 : (int64_t)len, (srv_str_t){extra, (size_t)xn});
    if (hn < 0) {
        close(fd);
        return answer_error(st, req, 500, "response head too large");
    }
    struct iovec v = {.iov_base = hbuf, .iov_len = (size_t)hn};
    unsigned fin = SRV_ENGINE_F_FINAL | (ka ? 0 : SRV_ENGINE_F_CLOSE);
    if (head || len == 0) {
        close(fd);
        srv__conn_respond(st->eng, req->session, &v, 1, fin);
        return 1;
    }
    if (srv__conn_respond(st->eng, req->session, &v, 1, 0) < 0) {
        close(fd);
        return 1;
    }
    srv__conn_respond_fd(st->eng, req->session, fd, start, len, fin);
    (void)c;
    return 1;
}
