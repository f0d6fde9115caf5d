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

#include "core/base/log.h"
#include "protocols/http.h"
#include "protocols/http_static.h"

struct srv__static {
    int root_fd;
};

int srv__static_create(srv__static_t **out, const char *root)
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

static bool keep_alive(const srv_request_t *req)
{
    return (req->flags & SRV_REQ_KEEP_ALIVE) != 0;
}

static int answer_error(const srv_request_t *req, srv__static_reply_t *out, int status,
                        const char *why)
{
    srv_str_t id = srv_request_header(req, "X-Request-Id"); /* (the engine's, checked) */
    char hdr[160];
    int hn = id.ptr != NULL && id.len <= 128
                 ? snprintf(hdr, sizeof(hdr), "X-Request-Id: %.*s\r\n", (int)id.len, id.ptr)
                 : 0;
    int n = srv__http_error_response(out->head, sizeof(out->head), status, why, keep_alive(req),
                                     (srv_str_t){hdr, (size_t)hn});
    out->head_len = n > 0 ? (size_t)n : 0;
    out->fd = -1;
    out->close = !keep_alive(req);
    return 1;
}

/* The file for rel (a directory's index.html), open, with its stat and the name its
 * Content-Type comes from (in name, PATH_MAX + 16 bytes). Returns the fd, -1 when the app
 * should decide, or -status for an error answer (*why says why). */
static int open_file(srv__static_t *st, const char *rel, struct stat *sb, char *name,
                     const char **why)
{
    int fd = open_beneath(st->root_fd, rel);
    *why = "path leaves the document root";
    if (fd == -EXDEV || fd == -ELOOP)
        return -403;
    *why = "forbidden";
    if (fd == -EACCES)
        return -403;
    if (fd < 0)
        return -1; /* not a file of ours (ENOENT, ENAMETOOLONG, ...): a dynamic request */
    if (fstat(fd, sb) != 0) {
        close(fd);
        *why = "stat failed";
        return -500;
    }
    snprintf(name, PATH_MAX + 16, "%s", rel);
    if (S_ISDIR(sb->st_mode)) {
        close(fd);
        /* rel is at most PATH_MAX - 1 bytes: name has room for the suffix; a name openat2()
         * finds too long is a directory without a reachable index */
        snprintf(name, PATH_MAX + 16, "%s%s", rel, rel[0] ? "/index.html" : "index.html");
        fd = open_beneath(st->root_fd, name);
        if (fd < 0 || fstat(fd, sb) != 0 || !S_ISREG(sb->st_mode)) {
            if (fd >= 0)
                close(fd);
            *why = "directory listing is not allowed";
            return -403;
        }
    } else if (!S_ISREG(sb->st_mode)) {
        close(fd);
        *why = "not a regular file";
        return -403;
    }
    return fd;
}

/* Status and body range for the file: 304 when unchanged since If-Modified-Since, 206 for a
 * satisfiable Range (its Content-Range appended to extra), 416 for an unsatisfiable one. */
static int pick_range(const srv_request_t *req, const struct stat *sb, uint64_t *start,
                      uint64_t *end, char *extra, size_t cap, int *xn)
{
    uint64_t size = (uint64_t)sb->st_size;
    *start = 0;
    *end = size ? size - 1 : 0;
    srv_str_t ims = srv_request_header(req, "If-Modified-Since");
    time_t since;
    if (ims.ptr && srv__http_date_parse(ims, &since) == 0 && sb->st_mtime <= since)
        return 304;
    srv_str_t range = srv_request_header(req, "Range");
    if (range.ptr == NULL || size == 0)
        return 200;
    int rc = srv__http_range_parse(range, size, start, end);
    if (rc == -ERANGE)
        return 416;
    if (rc < 0)
        return 200;
    *xn += snprintf(extra + *xn, cap - (size_t)*xn, "Content-Range: bytes %llu-%llu/%llu\r\n",
                    (unsigned long long)*start, (unsigned long long)*end, (unsigned long long)size);
    return 206;
}

static int answer_416(const srv_request_t *req, srv__static_reply_t *out, uint64_t size)
{
    char cr[128];
    int cn = snprintf(cr, sizeof(cr), "Content-Range: bytes */%llu\r\n", (unsigned long long)size);
    int n = srv__http_response_head(out->head, sizeof(out->head), 416, req->http_minor,
                                    keep_alive(req), 0, (srv_str_t){cr, (size_t)cn});
    out->head_len = n > 0 ? (size_t)n : 0;
    out->fd = -1;
    out->close = !keep_alive(req);
    return 1;
}

int srv__static_serve(srv__static_t *st, const srv_request_t *req, srv__static_reply_t *out)
{
    bool head = req->method.len == 4 && memcmp(req->method.ptr, "HEAD", 4) == 0;
    bool get = req->method.len == 3 && memcmp(req->method.ptr, "GET", 3) == 0;
    if (!get && !head)
        return 0;
    /* PATH_MAX holds every relative path openat2() can take; a longer one names no file. */
    char rel[PATH_MAX];
    int rc = srv__http_path_resolve(req->path, rel, sizeof(rel));
    if (rc == -EACCES)
        return answer_error(req, out, 403, "path leaves the document root");
    if (rc == -ENOSPC)
        return 0; /* longer than any file path: not a file of ours, like a missing one */
    if (rc < 0)
        return answer_error(req, out, 400, "bad path");
    struct stat sb;
    char name[PATH_MAX + 16]; /* the file served, for its Content-Type */
    const char *why;
    int fd = open_file(st, rel, &sb, name, &why);
    if (fd < 0)
        return fd == -1 ? 0 : answer_error(req, out, -fd, why);
    char lm[64];
    srv__http_date_format(sb.st_mtime, lm, sizeof(lm));
    char extra[1024];
    int xn = snprintf(extra, sizeof(extra),
                      "Content-Type: %s\r\nLast-Modified: %s\r\nAccept-Ranges: bytes\r\n",
                      srv__http_mime_type(name), lm);
    srv_str_t id = srv_request_header(req, "X-Request-Id"); /* (the engine's, checked) */
    if (id.ptr != NULL && id.len <= 128)
        xn += snprintf(extra + xn, sizeof(extra) - (size_t)xn, "X-Request-Id: %.*s\r\n",
                       (int)id.len, id.ptr);
    uint64_t start, end, size = (uint64_t)sb.st_size;
    int status = pick_range(req, &sb, &start, &end, extra, sizeof(extra), &xn);
    if (status == 416) {
        close(fd);
        return answer_416(req, out, size);
    }
    uint64_t len = status == 304 ? 0 : (size ? end - start + 1 : 0);
    int hn = srv__http_response_head(out->head, sizeof(out->head), status, req->http_minor,
                                     keep_alive(req), status == 304 ? 0 : (int64_t)len,
                                     (srv_str_t){extra, (size_t)xn});
    if (hn < 0) {
        close(fd);
        return answer_error(req, out, 500, "response head too large");
    }
    out->head_len = (size_t)hn;
    out->close = !keep_alive(req);
    out->fd = -1;
    if (head || len == 0) {
        close(fd);
        return 1;
    }
    out->fd = fd;
    out->off = start;
    out->len = len;
    return 1;
}
