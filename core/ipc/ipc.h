/* Framed messages between reactor threads and worker processes over unix stream socketpairs:
 * {session, type, flags, length} + payload, many per write so one syscall carries a batch.
 * Also the manager<->master control messages (SOCK_SEQPACKET, fds passed with SCM_RIGHTS). */
#ifndef SRV_IPC_H
#define SRV_IPC_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    /* reactor → worker */
    SRV_IPC_REQUEST = 1,    /* payload: an encoded HTTP request (protocols/http.h) */
    SRV_IPC_CLOSED = 2,     /* TCP connection closed (on_close) */
    SRV_IPC_CONNECT = 3,    /* TCP connection opened (on_connect) */
    SRV_IPC_RECEIVE = 4,    /* payload: one TCP frame (on_receive) */
    SRV_IPC_WS_OPEN = 5,    /* payload: the encoded handshake request (on_ws_open) */
    SRV_IPC_WS_MESSAGE = 6, /* flags: opcode; payload: the whole message */
    SRV_IPC_WS_CLOSED = 7,  /* payload: uint16 code + reason */
    SRV_IPC_ACK = 8,        /* payload: uint64 bytes of the response in flight written so far */
    SRV_IPC_GONE = 9,       /* the client of the response in flight has gone */
    /* worker → reactor */
    SRV_IPC_RESPONSE = 16,     /* payload: response bytes for the wire; flags below */
    SRV_IPC_FILE = 17,         /* payload: srv__ipc_file_t; the file: see SRV_IPC_F_FD */
    SRV_IPC_SEND = 18,         /* TCP bytes for session */
    SRV_IPC_CLOSE = 19,        /* close session after its queued output */
    SRV_IPC_WS_ACCEPT = 20,    /* flags: 0 accept, else the refusing close code */
    SRV_IPC_WS_PUSH = 21,      /* flags: opcode; payload: message */
    SRV_IPC_WS_CLOSE = 22,     /* payload: uint16 code + reason */
    SRV_IPC_WS_BROADCAST = 23, /* session: listener + 1 (0 = all); flags: opcode */
    SRV_IPC_BIND = 24,         /* payload: uint32 uid */
} srv__ipc_type_t;

#define SRV_IPC_F_FINAL 0x1u /* last frame of the response */
#define SRV_IPC_F_CLOSE 0x2u /* close the connection once the response is written */
#define SRV_IPC_F_ERROR 0x4u /* the app failed mid-response: close without finishing */
#define SRV_IPC_F_FLOW 0x8u  /* send SRV_IPC_ACK progress reports for this response */
/* A request (or handshake) larger than one frame: its encoding continues in the next frame of
 * the same type and session; the last piece has no MORE. Pieces of one request are never
 * interleaved with another request's pieces on a channel. */
#define SRV_IPC_F_MORE 0x10u
/* SRV_IPC_FILE: the open file went ahead on the channel's descriptor socket (a SOCK_SEQPACKET
 * pair beside the stream, one descriptor per message, in frame order): the sender's sendmsg
 * completes before the frame is queued, so the receiver finds it there with a non-blocking
 * recvmsg when the frame arrives. */
#define SRV_IPC_F_FD 0x20u
/* The largest frame payload either side writes; bigger things go in pieces. */
#define SRV_IPC_PIECE (256u << 10)

typedef struct srv__ipc_hdr {
    uint64_t session;
    uint8_t type;
    /* Reactor-to-worker events: the connection's listener, so the worker finds the handler
     * set even after the connection (and its shared-table entry) is gone. */
    uint8_t listener;
    uint16_t flags;
    uint32_t len; /* payload bytes, not counting this header or the padding after it */
} srv__ipc_hdr_t;

/* Payloads are padded to 8 bytes so every header and payload stays 8-byte aligned. */
#define SRV_IPC_ALIGN(n) (((n) + 7u) & ~(size_t)7u)
#define SRV_IPC_MAX_PAYLOAD (1u << 30)

typedef struct srv__ipc_file {
    uint64_t offset;
    uint64_t length;
} srv__ipc_file_t;

/* A growable byte buffer with a hard bound: the IPC out-queues and reassembly buffers. */
typedef struct srv__ipc_buf {
    char *data;
    size_t len;
    size_t cap;
    size_t max;
} srv__ipc_buf_t;

void srv__ipc_buf_init(srv__ipc_buf_t *b, size_t max);
void srv__ipc_buf_deinit(srv__ipc_buf_t *b);
/* Make room for n more bytes; returns a pointer to them or NULL (-ENOBUFS: past max). */
char *srv__ipc_buf_reserve(srv__ipc_buf_t *b, size_t n);
/* Drop the first n bytes. */
void srv__ipc_buf_consume(srv__ipc_buf_t *b, size_t n);
/* Append one frame whose payload is written by the caller into the returned pointer
 * (plen bytes); NULL when the buffer is at its bound. */
char *srv__ipc_frame_begin(srv__ipc_buf_t *b, uint64_t session, uint16_t type, uint16_t flags,
                          uint32_t plen);
/* Append a whole frame; returns 0 or -ENOBUFS. */
int srv__ipc_frame_put(srv__ipc_buf_t *b, uint64_t session, uint16_t type, uint16_t flags,
                      const void *payload, uint32_t plen);
/* The same with every header field given (h->len is the payload's length). */
int srv__ipc_frame_put_hdr(srv__ipc_buf_t *b, const srv__ipc_hdr_t *h, const void *payload);

/* Split a stream into frames. Each complete frame found in (buffered + data) is passed to cb
 * with a pointer to its 8-byte aligned payload; incomplete tails are kept in `pending` (whose
 * bound limits the largest frame). Returns 0, -EPROTO (corrupt stream) or -ENOBUFS. */
typedef void (*srv__ipc_frame_cb)(void *arg, const srv__ipc_hdr_t *h, const char *payload);
int srv__ipc_feed(srv__ipc_buf_t *pending, const char *data, size_t len, srv__ipc_frame_cb cb,
                 void *arg);

/* The descriptor socket of a channel: pass fd (the caller keeps its own copy), or take the
 * next one (close-on-exec). Non-blocking; return 0 / the fd, or -errno (-EAGAIN: none there
 * or no room). */
int srv__ipc_fd_send(int sock, int fd);
int srv__ipc_fd_recv(int sock);

/* Manager <-> master messages (fixed size, SOCK_SEQPACKET). */
typedef enum {
    SRV_CTL_WORKER_READY = 1, /* manager → master: slot ready; fds: one channel per reactor */
    SRV_CTL_WORKER_EXIT = 2,  /* manager → master: slot's process exited */
    SRV_CTL_START_FAILED = 3, /* manager → master: first start failed; text = loader error */
    SRV_CTL_RELOAD_DONE = 4,  /* manager → master: rolling reload finished; code, text */
    SRV_CTL_RELOAD = 16,      /* master → manager: code 0 all workers, 1 task workers only */
    SRV_CTL_STOP = 17,        /* master → manager: stop everything (graceful, max_wait_time) */
    SRV_CTL_REOPEN_LOG = 18,  /* master → manager: forward log reopen to children */
} srv__ctl_type_t;

typedef struct srv__ctl_msg {
    uint32_t type;
    int32_t slot;
    int32_t pid;
    int32_t code;
    uint32_t generation;
    uint32_t nfds;
    char text[480];
} srv__ctl_msg_t;

/* The most descriptors one control message carries: two per reactor (a channel and its
 * descriptor socket), SRV_MAX_REACTORS reactors. */
#define SRV_CTL_MAX_FDS 128

/* Send/receive one control message with up to nfds descriptors. Return 0 / -errno (-EPIPE or
 * 0-length read → -ECONNRESET when the peer is gone). */
int srv__ctl_send(int sock, const srv__ctl_msg_t *m, const int *fds, int nfds);
int srv__ctl_recv(int sock, srv__ctl_msg_t *m, int *fds, int maxfds);

#endif
