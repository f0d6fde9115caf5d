/* Output flow control for responses, in the process that runs the app. A response may have at
 * most `window` bytes (buffer_output_size) handed to the connection's owner and not yet
 * written to the client; past that, a streamed write is refused with -EAGAIN (nothing taken)
 * and the app is told when it can go on, and a final send keeps its rest here and sends it as
 * the client reads. The owner reports progress (srv__flow_ack) and a client that left
 * (srv__flow_gone). One instance per process, used from its only thread. */
#ifndef SRV_FLOW_H
#define SRV_FLOW_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

/* Where the bytes go: the reactor channel (process mode) or the worker's own engine (base
 * mode). put copies; -ENOENT / -EPROTO from put mean the session is gone. */
typedef struct srv__flow_transport {
    int (*put)(void *arg, uint64_t session, const struct iovec *iov, int iovcnt, unsigned flags);
    /* fd is taken over (closed by the transport, also on failure). */
    int (*put_file)(void *arg, uint64_t session, int fd, const char *path, uint64_t off,
                    uint64_t len, unsigned flags);
    /* True while session's way out is full (the reactor channel past its soft bound): streamed
     * writes are refused with -EAGAIN and rests wait, until srv__flow_kick(). May be NULL. */
    bool (*busy)(void *arg, uint64_t session);
    void *arg;
} srv__flow_transport_t;

void srv__flow_init(const srv__flow_transport_t *t, uint64_t window);
/* Forget every response (the process is leaving). */
void srv__flow_deinit(void);

/* Response bytes for session (SRV_IPC_F_FINAL / _CLOSE / _ERROR flags). Copied. Returns 0;
 * -EAGAIN for a non-final write while the window is full or a rest is pending (nothing taken:
 * wait for the writable callback); -EPIPE once the client has gone; -ENOMEM. A final send is
 * never refused for lack of room. */
int srv__flow_emit(uint64_t session, const struct iovec *iov, int iovcnt, unsigned flags);
int srv__flow_emit_file(uint64_t session, int fd, const char *path, uint64_t off, uint64_t len,
                        unsigned flags);
/* Call fn(arg) once, from srv__flow_run(), when session's response can take more (at most
 * half the window in flight, nothing pending) or its client has gone. fn NULL cancels. */
int srv__flow_on_writable(uint64_t session, void (*fn)(void *arg), void *arg);

/* From the connection's owner: written bytes of session's response reached the client. */
void srv__flow_ack(uint64_t session, uint64_t written);
/* From the connection's owner: session's client has gone. */
void srv__flow_gone(uint64_t session);

/* The transport has room again (busy turned false): responses waiting for it are due. */
void srv__flow_kick(void);

/* True when srv__flow_run() has work (the caller's loop should not block). */
bool srv__flow_due(void);
/* Send pending rests and call writable callbacks. Call from the process's loop, never from
 * inside a connection callback (callbacks run app code). */
void srv__flow_run(void);
/* Responses being tracked (for tests and info). */
int srv__flow_count(void);

#endif
