/* Framing and bounded buffers for reactor<->worker channels; control messages with fd
 * passing between manager and master. */
#include "core/ipc/ipc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/base/buf.h"

void srv__ipc_buf_init(srv__ipc_buf_t *b, size_t max)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max;
}

void srv__ipc_buf_deinit(srv__ipc_buf_t *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

char *srv__ipc_buf_reserve(srv__ipc_buf_t *b, size_t n)
{
    if (b->len + n > b->max)
        return NULL;
    if (srv__grow(&b->data, &b->cap, b->len + n, 4096, b->max) < 0)
        return NULL;
    return b->data + b->len;
}

void srv__ipc_buf_consume(srv__ipc_buf_t *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
        /* Give back big buffers once drained so an idle channel costs little. */
        if (b->cap > (256u << 10)) {
            free(b->data);
            b->data = NULL;
            b->cap = 0;
        }
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
}

static char *frame_begin(srv__ipc_buf_t *b, const srv__ipc_hdr_t *h)
{
    size_t total = sizeof(*h) + SRV_IPC_ALIGN(h->len);
    char *p = srv__ipc_buf_reserve(b, total);
    if (p == NULL)
        return NULL;
    memcpy(p, h, sizeof(*h));
    b->len += total;
    return p + sizeof(*h);
}

char *srv__ipc_frame_begin(srv__ipc_buf_t *b, uint64_t session, uint16_t type, uint16_t flags,
                           uint32_t plen)
{
    srv__ipc_hdr_t h = {.session = session, .type = (uint8_t)type, .flags = flags, .len = plen};
    return frame_begin(b, &h);
}

int srv__ipc_frame_put_hdr(srv__ipc_buf_t *b, const srv__ipc_hdr_t *h, const void *payload)
{
    char *p = frame_begin(b, h);
    if (p == NULL)
        return -ENOBUFS;
    if (h->len)
        memcpy(p, payload, h->len);
    return 0;
}

int srv__ipc_frame_put(srv__ipc_buf_t *b, uint64_t session, uint16_t type, uint16_t flags,
                       const void *payload, uint32_t plen)
{
    srv__ipc_hdr_t h = {.session = session, .type = (uint8_t)type, .flags = flags, .len = plen};
    return srv__ipc_frame_put_hdr(b, &h, payload);
}

/* Deliver every whole frame in buf[0..len); returns bytes used or -EPROTO. */
static long deliver(const char *buf, size_t len, srv__ipc_frame_cb cb, void *arg)
{
    size_t off = 0;
    while (len - off >= sizeof(srv__ipc_hdr_t)) {
        const srv__ipc_hdr_t *h = (const srv__ipc_hdr_t *)(const void *)(buf + off);
        if (h->len > SRV_IPC_MAX_PAYLOAD)
            return -EPROTO;
        size_t total = sizeof(*h) + SRV_IPC_ALIGN(h->len);
        if (len - off < total)
            break;
        cb(arg, h, buf + off + sizeof(*h));
        off += total;
    }
    return (long)off;
}

int srv__ipc_feed(srv__ipc_buf_t *pending, const char *data, size_t len, srv__ipc_frame_cb cb,
                 void *arg)
{
    /* Fast path: nothing buffered and the chunk is aligned: frames are used in place. */
    if (pending->len == 0 && ((uintptr_t)data & 7u) == 0) {
        long used = deliver(data, len, cb, arg);
        if (used < 0)
            return (int)used;
        data += used;
        len -= (size_t)used;
        if (len == 0)
            return 0;
    }
    char *p = srv__ipc_buf_reserve(pending, len);
    if (p == NULL)
        return -ENOBUFS;
    memcpy(p, data, len);
    pending->len += len;
    long used = deliver(pending->data, pending->len, cb, arg);
    if (used < 0)
        return (int)used;
    srv__ipc_buf_consume(pending, (size_t)used);
    return 0;
}

/* One message of len bytes carrying nfds descriptors (SCM_RIGHTS). Returns the bytes sent or
 * -errno; EINTR is retried. */
static ssize_t send_fds(int sock, const void *buf, size_t len, const int *fds, int nfds, int flags)
{
    struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
    char cbuf[CMSG_SPACE(sizeof(int) * SRV_CTL_MAX_FDS)];
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
    if (nfds > SRV_CTL_MAX_FDS)
        return -EINVAL;
    if (nfds > 0) {
        memset(cbuf, 0, sizeof(cbuf));
        mh.msg_control = cbuf;
        mh.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
        memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)nfds);
    }
    ssize_t n;
    do {
        n = sendmsg(sock, &mh, MSG_NOSIGNAL | flags);
    } while (n < 0 && errno == EINTR);
    return n < 0 ? -errno : n;
}

/* One message into buf (without waiting), its descriptors (close-on-exec) into fds: at most
 * maxfds, any more are closed. Returns the bytes received (0: the peer closed) or -errno, with
 * *nfds set. */
static ssize_t recv_fds(int sock, void *buf, size_t len, int *fds, int maxfds, int *nfds)
{
    struct iovec iov = {.iov_base = buf, .iov_len = len};
    char cbuf[CMSG_SPACE(sizeof(int) * SRV_CTL_MAX_FDS)];
    struct msghdr mh = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf)};
    ssize_t n;
    do {
        n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
    } while (n < 0 && errno == EINTR);
    *nfds = 0;
    if (n < 0)
        return -errno;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c != NULL; c = CMSG_NXTHDR(&mh, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        int k = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
        int *in = (int *)(void *)CMSG_DATA(c);
        for (int i = 0; i < k; i++) {
            if (*nfds < maxfds)
                fds[(*nfds)++] = in[i];
            else
                close(in[i]);
        }
    }
    return n;
}

int srv__ctl_send(int sock, const srv__ctl_msg_t *m, const int *fds, int nfds)
{
    ssize_t n = send_fds(sock, m, sizeof(*m), fds, nfds, 0);
    return n == (ssize_t)sizeof(*m) ? 0 : n < 0 ? (int)n : -EIO;
}

int srv__ctl_recv(int sock, srv__ctl_msg_t *m, int *fds, int maxfds)
{
    int got;
    ssize_t n = recv_fds(sock, m, sizeof(*m), fds, maxfds, &got);
    if (n < 0)
        return (int)n;
    if (n == 0)
        return -ECONNRESET;
    if (n != (ssize_t)sizeof(*m)) {
        while (got > 0)
            close(fds[--got]);
        return -EPROTO;
    }
    m->nfds = (uint32_t)got;
    return 0;
}

int srv__ipc_fd_send(int sock, int fd)
{
    ssize_t n = send_fds(sock, "F", 1, &fd, 1, MSG_DONTWAIT);
    return n == 1 ? 0 : n < 0 ? (int)n : -EIO;
}

int srv__ipc_fd_recv(int sock)
{
    char byte;
    int fd, got;
    ssize_t n = recv_fds(sock, &byte, 1, &fd, 1, &got);
    if (n < 0)
        return (int)n;
    if (n == 0)
        return -ECONNRESET;
    return got == 1 ? fd : -EPROTO;
}
