/* The event loop: one completion-shaped interface over two backends, io_uring (uring.c)
 * and epoll (epoll.c, which does each operation on readiness and posts the same
 * completion). Nothing outside those two files knows which one runs.
 *
 * Threading: a loop belongs to the thread that created it; every call except srv__loop_wake()
 * must come from that thread. Callbacks run only inside srv__loop_run(), never re-entrantly from
 * a submit call. */
#ifndef SRV_LOOP_H
#define SRV_LOOP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

typedef enum { SRV_BACKEND_AUTO = 0, SRV_BACKEND_URING = 1, SRV_BACKEND_EPOLL = 2 } srv__backend_t;

typedef struct srv__loop srv__loop_t;
typedef struct srv__loop_op srv__loop_op_t;

/* The op stays armed and will complete again (multishot accept/recv). Without it, the op is
 * finished and its memory may be reused or freed by the owner. */
#define SRV_LOOP_MORE 0x1u

/* Completion callback. res: the operation's result (accepted fd, bytes, poll revents) or -errno
 * (-ECANCELED after srv__loop_cancel, -ETIME for a timer that fired). For recv, data points at
 * res received bytes in a loop-owned buffer that is valid only until the callback returns;
 * res == 0 is end of stream. */
typedef void (*srv__loop_cb)(srv__loop_t *loop, srv__loop_op_t *op, int res, const char *data,
                            uint32_t flags);

/* Caller-owned operation state. Fill cb (and data for your own use) before submitting; the rest
 * is the backend's. One op is one outstanding operation: do not resubmit it before its final
 * completion (a completion without SRV_LOOP_MORE). The op's memory must stay valid until then. */
struct srv__loop_op {
    srv__loop_cb cb;
    void *data;
    /* backend-private below */
    int fd;
    uint8_t kind;
    uint8_t armed;
    uint8_t cancelled;
    uint8_t bflags; /* backend scratch flags */
    uint32_t events;
    const struct iovec *iov;
    int iovcnt;
    int64_t deadline_ns;
    srv__loop_op_t *next; /* epoll: fd and posted lists; io_uring: ready listeners */
    uint64_t priv[2];
};

typedef struct srv__loop_opts {
    unsigned entries;   /* io_uring SQ size, default 1024 */
    unsigned recv_bufs; /* provided receive buffers, power of two, default 512 */
    unsigned recv_size; /* bytes per receive buffer, default 16384 */
} srv__loop_opts_t;

/* Create a loop. want = AUTO probes io_uring (ring set-up, the opcodes it needs, provided buffer
 * rings, multishot recv) and falls back to epoll; URING fails with -ENOSYS/-EPERM when it cannot
 * run; EPOLL always uses epoll. opts may be NULL. Returns 0 or -errno.
 * The environment variable SRV_REACTOR_BACKEND=io_uring|epoll|auto, when set, replaces want
 * (the test suite runs once per backend this way); any other value gives -EINVAL.
 * Call it on the thread that will run the loop: the ring is created single-issuer. */
int srv__loop_create(srv__loop_t **out, srv__backend_t want, const srv__loop_opts_t *opts);
/* Free the loop and its fds. Armed ops are dropped without callbacks: cancel them first if
 * their owners need to know. */
void srv__loop_destroy(srv__loop_t *loop);
/* "io_uring" or "epoll". */
const char *srv__loop_backend_name(const srv__loop_t *loop);
/* Why AUTO fell back to epoll ("" when it did not), for the one log line the caller writes. */
const char *srv__loop_fallback_reason(const srv__loop_t *loop);

/* Multishot accept on a listening socket: one completion per accepted connection, res = new fd
 * (non-blocking, close-on-exec), flags has MORE while still armed. On -EMFILE/-ENFILE the op is
 * finished; the owner re-arms it later.
 * The listener may be shared by many loops (reactor threads, base-mode worker processes), so a
 * loop takes at most one connection per readiness report and only after the other completions
 * of the same srv__loop_run: a loop whose owner is blocked (an app handler) never holds
 * connections back from an idle one, and a burst is spread instead of taken by the first loop
 * that wakes. Idle loops share new connections in turn (epoll: exclusive wake-up, re-queued after
 * each accept) or by who wakes first (io_uring, whose exclusive wake-ups would go to a blocked
 * owner). */
int srv__loop_accept(srv__loop_t *loop, srv__loop_op_t *op, int listen_fd);

/* Multishot receive on a stream socket into loop-owned buffers: one completion per chunk.
 * Stays armed (MORE) until end of stream (res 0), an error, or srv__loop_cancel(). Running out
 * of provided buffers is handled inside the backend (re-armed), never reported as an error. */
int srv__loop_recv(srv__loop_t *loop, srv__loop_op_t *op, int fd);

/* One-shot vectored send. res = bytes sent, possibly fewer than asked: the caller sends the
 * rest. iov (and the bytes it points at) belong to the kernel until the completion. */
int srv__loop_send(srv__loop_t *loop, srv__loop_op_t *op, int fd, const struct iovec *iov,
                   int iovcnt);

/* One-shot readiness: completes with res = revents (POLLIN/POLLOUT/POLLERR/POLLHUP) once fd is
 * ready for any of events. For sockets we read or write with plain syscalls (datagrams, IPC,
 * sendfile). */
int srv__loop_poll(srv__loop_t *loop, srv__loop_op_t *op, int fd, uint32_t events);

/* One-shot timer: completes with -ETIME after ms milliseconds (monotonic clock). */
int srv__loop_timer(srv__loop_t *loop, srv__loop_op_t *op, uint64_t ms);

/* Cancel an armed op: it will complete (once more, without MORE) with -ECANCELED or with its
 * real result if that raced. A multishot recv may still deliver data the kernel had already
 * received (with MORE) before that final completion, so pausing a stream loses no byte;
 * likewise connections a multishot accept already took are delivered, never reset. A no-op for an
 * op that is not armed. Returns 0 or -errno. Submitting an op that is still armed returns -EBUSY.
 */
int srv__loop_cancel(srv__loop_t *loop, srv__loop_op_t *op);

/* Set the callback run (inside srv__loop_run) after srv__loop_wake() was called. */
void srv__loop_set_wake(srv__loop_t *loop, void (*cb)(srv__loop_t *loop, void *arg), void *arg);
/* Wake the loop from any thread or a signal handler (eventfd write); coalesces. */
void srv__loop_wake(srv__loop_t *loop);

/* Submit everything queued, wait up to timeout_ms (-1 = forever, 0 = poll) for completions,
 * run their callbacks. Returns the number of completions handled, or -errno (-EINTR is
 * returned, not retried, so signal flags can be checked). */
int srv__loop_run(srv__loop_t *loop, int timeout_ms);

/* Monotonic clock in nanoseconds, cached per srv__loop_run iteration. */
int64_t srv__loop_now(const srv__loop_t *loop);

#endif
