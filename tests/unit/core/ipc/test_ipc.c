/* core/ipc/ipc.c: frames keep every header field (the listener of an event included) through
 * a stream split at every byte; a channel's descriptor socket passes open files in order. */
#include "core/ipc/ipc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check.h"

static struct {
    int n;
    srv__ipc_hdr_t h[4];
    char payload[4][32];
} T;

static void on_frame(void *arg, const srv__ipc_hdr_t *h, const char *payload)
{
    (void)arg;
    CHECK(T.n < 4);
    CHECK_INT(((uintptr_t)payload) % 8, ==, 0);
    T.h[T.n] = *h;
    memcpy(T.payload[T.n], payload, h->len < 32 ? h->len : 32);
    T.n++;
}

static void test_frames(void)
{
    srv__ipc_buf_t out;
    srv__ipc_buf_init(&out, 1 << 16);
    srv__ipc_hdr_t h = {
        .session = 0x0300000000100005ull, .type = 6, .listener = 31, .flags = 2, .len = 5};
    CHECK_INT(srv__ipc_frame_put_hdr(&out, &h, "hello"), ==, 0);
    CHECK_INT(srv__ipc_frame_put(&out, 42, 16, 0x9, "ok", 2), ==, 0);
    /* Every split of the stream gives the same two frames. */
    for (size_t cut = 0; cut <= out.len; cut++) {
        srv__ipc_buf_t pending;
        srv__ipc_buf_init(&pending, 1 << 16);
        memset(&T, 0, sizeof(T));
        CHECK_INT(srv__ipc_feed(&pending, out.data, cut, on_frame, NULL), ==, 0);
        CHECK_INT(srv__ipc_feed(&pending, out.data + cut, out.len - cut, on_frame, NULL), ==, 0);
        CHECK_INT(T.n, ==, 2);
        CHECK_INT(T.h[0].session, ==, h.session);
        CHECK_INT(T.h[0].type, ==, 6);
        CHECK_INT(T.h[0].listener, ==, 31);
        CHECK_INT(T.h[0].flags, ==, 2);
        CHECK_MEM(T.payload[0], T.h[0].len, "hello", 5);
        CHECK_INT(T.h[1].session, ==, 42);
        CHECK_INT(T.h[1].type, ==, 16);
        CHECK_INT(T.h[1].listener, ==, 0);
        CHECK_INT(T.h[1].flags, ==, 0x9);
        CHECK_MEM(T.payload[1], T.h[1].len, "ok", 2);
        srv__ipc_buf_deinit(&pending);
    }
    srv__ipc_buf_deinit(&out);
}

/* A temporary file holding text, open for reading; unlinked at once. */
static int temp_file(const char *text)
{
    char path[] = "/tmp/srv-test-ipc-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    unlink(path);
    CHECK_INT(write(fd, text, strlen(text)), ==, (long long)strlen(text));
    return fd;
}

static void test_fd_passing(void)
{
    int sv[2];
    CHECK_INT(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), ==, 0);
    CHECK_INT(srv__ipc_fd_recv(sv[1]), ==, -EAGAIN);
    int a = temp_file("first"), b = temp_file("second");
    CHECK_INT(srv__ipc_fd_send(sv[0], a), ==, 0);
    CHECK_INT(srv__ipc_fd_send(sv[0], b), ==, 0);
    close(a); /* the sender's copy: the one in flight stays open */
    close(b);
    const char *want[2] = {"first", "second"};
    for (int i = 0; i < 2; i++) {
        int fd = srv__ipc_fd_recv(sv[1]);
        CHECK(fd >= 0);
        CHECK_INT(fcntl(fd, F_GETFD) & FD_CLOEXEC, ==, FD_CLOEXEC);
        char buf[16];
        ssize_t n = pread(fd, buf, sizeof(buf), 0);
        CHECK_MEM(buf, n, want[i], strlen(want[i]));
        close(fd);
    }
    CHECK_INT(srv__ipc_fd_recv(sv[1]), ==, -EAGAIN);
    /* Bytes without a descriptor are a broken peer, not a file. */
    CHECK_INT(send(sv[0], "x", 1, 0), ==, 1);
    CHECK_INT(srv__ipc_fd_recv(sv[1]), ==, -EPROTO);
    close(sv[0]);
    CHECK_INT(srv__ipc_fd_recv(sv[1]), ==, -ECONNRESET);
    close(sv[1]);
}

int main(void)
{
    (void)check_failures_;
    test_frames();
    test_fd_passing();
    return 0;
}
