/* The master's side of the control socket (see ctl_serve.h): accepting control connections,
 * even with every descriptor taken (issue 11: a descriptor in reserve, a back-off), reading a
 * command that may come in pieces, and sending its reply without ever blocking the master. */
#include "core/process/ctl_serve.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "core/base/log.h"
#include "core/base/util.h"
#include "core/net/maint.h"
#include "core/process/ctl.h"

/* Control connections served at once. More are accepted by dropping the oldest one still
 * waiting for its command (issue 11: a few idle ones must not lock `srv info` out). */
#define MAX_CLIENTS SRV_CTL_SERVE_CLIENTS
/* A control connection must deliver its command, and then take each part of the reply, within
 * this: our own CLI sends at once and reads at once, so only a stuck or hostile peer waits. */
#define CTL_IDLE_MS 2000
/* Out of descriptors with the reserve spent: how long the control socket leaves the poll set,
 * instead of waking us at once for a connection we cannot accept. */
#define CTL_BACKOFF_MS 100
/* Out of descriptors, a silent control connection older than this gives way to a new one. */
#define CTL_MIN_AGE_MS 100

typedef struct client {
    int fd;
    bool wants_reload; /* waiting for the manager's RELOAD_DONE */
    bool hup_only;     /* the peer is done writing: only watch for it hanging up */
    char in[SRV_CTL_CMD_MAX];
    size_t in_len;
    char *out; /* the reply being sent (owned), then the connection closes */
    size_t out_len, out_off;
    int64_t since;    /* monotonic ms: accepted */
    int64_t deadline; /* monotonic ms: the command, or the reply's next part, is due */
} client_t;

static struct {
    const srv__ctl_serve_ops_t *ops;
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    int listen_fd;
    /* Issue 11: a descriptor held in reserve so that, with every descriptor taken (client
     * connections up to RLIMIT_NOFILE), the control socket can still accept: close it, accept,
     * and turn the connection's fd back into the reserve when it ends. -1 while spent. */
    int reserve_fd;
    int64_t backoff_until; /* monotonic ms; 0: the control socket is polled */
    int64_t last_fd_warn;
    client_t clients[MAX_CLIENTS];
} C = {.listen_fd = -1, .reserve_fd = -1};

static int listen_at(const char *path)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(sun.sun_path))
        return -ENAMETOOLONG;
    strcpy(sun.sun_path, path);
    unlink(path); /* we hold the pid file lock: any socket file here is stale */
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    mode_t old = umask(0177); /* 0600: only the owner may stop or reload the server */
    int rc = bind(fd, (struct sockaddr *)&sun, sizeof(sun));
    umask(old);
    if (rc != 0 || listen(fd, 64) != 0) {
        rc = -errno;
        close(fd);
        return rc;
    }
    return fd;
}

/* The reserve is spent: take a descriptor back for it, if one is free. */
static void reserve_refill(void)
{
    if (C.reserve_fd < 0 && C.listen_fd >= 0)
        C.reserve_fd = fcntl(C.listen_fd, F_DUPFD_CLOEXEC, 0);
}

/* Release a descriptor we no longer need. With the reserve spent it becomes the reserve in
 * one step (dup3 closes the old file and reuses the number), so a reactor thread accepting
 * in the same process cannot take the number in between. */
static void fd_release(int fd)
{
    if (fd < 0)
        return;
    if (C.reserve_fd < 0 && C.listen_fd >= 0 && dup3(C.listen_fd, fd, O_CLOEXEC) == fd) {
        C.reserve_fd = fd;
        C.backoff_until = 0; /* we can accept again */
        return;
    }
    close(fd);
}

static void client_close(client_t *c)
{
    fd_release(c->fd);
    c->fd = -1;
    c->wants_reload = false;
    c->hup_only = false;
    c->in_len = 0;
    free(c->out);
    c->out = NULL;
    c->out_len = c->out_off = 0;
}

/* Send what the socket takes now; the rest when poll says it has room. Closes the connection
 * once the reply is out, or when the peer is gone. */
static void client_flush(client_t *c)
{
    while (c->out_off < c->out_len) {
        ssize_t n =
            send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            c->out_off += (size_t)n;
            c->deadline = srv__mono_ms() + CTL_IDLE_MS;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return;
        break;
    }
    client_close(c);
}

/* Reply with text (owned: freed with the connection) and close once it is sent. Never blocks:
 * a peer that does not read cannot hold the master up (issue 11). */
static void client_send(client_t *c, char *text, size_t len)
{
    c->wants_reload = false;
    c->out = text;
    c->out_len = len;
    c->out_off = 0;
    c->deadline = srv__mono_ms() + CTL_IDLE_MS;
    client_flush(c);
}

static void client_reply(client_t *c, const char *text)
{
    char *copy = strdup(text);
    if (copy == NULL) {
        client_close(c);
        return;
    }
    client_send(c, copy, strlen(copy));
}

/* `maintenance`, `maintenance off`, `maintenance on <retry_after|-1> [message]`: switch, then
 * answer "ok" and the state as `srv maintenance` prints it. */
static void maint_command(client_t *c, const char *args)
{
    if (strcmp(args, " off") == 0 || strncmp(args, " on ", 4) == 0) {
        bool on = args[2] == 'n';
        char *end = NULL;
        long retry = on ? strtol(args + 4, &end, 10) : -1;
        const char *msg = on && end && *end == ' ' ? end + 1 : "";
        if (on && (end == args + 4 || retry < -1 || retry > INT32_MAX || (*end && *end != ' '))) {
            client_reply(c, "error 2 maintenance: bad Retry-After\n");
            return;
        }
        if (srv__maint_set(on, (int)retry, msg) < 0) {
            client_reply(c, "error 2 maintenance: the message must be one line of at most 1024 "
                            "bytes\n");
            return;
        }
        if (on)
            srv__log(SRV_LOG_NOTICE, "master", 0,
                     "maintenance mode on (Retry-After %ld, message \"%s\")", retry,
                     msg[0] ? msg : SRV_MAINT_DEFAULT_MSG);
        else
            srv__log(SRV_LOG_NOTICE, "master", 0, "maintenance mode off");
    } else if (args[0] != '\0') {
        client_reply(c, "error 2 maintenance: on or off\n");
        return;
    }
    char reply[SRV_MAINT_MSG_MAX + 256] = "ok\n";
    srv__info_maint(reply + 3, sizeof(reply) - 3);
    client_reply(c, reply);
}

static void handle_command(client_t *c, const char *cmd)
{
    if (strncmp(cmd, "maintenance", 11) == 0 && (cmd[11] == '\0' || cmd[11] == ' ')) {
        maint_command(c, cmd + 11);
        return;
    }
    if (strcmp(cmd, "info") == 0 || strcmp(cmd, "info json") == 0) {
        char *buf = malloc(1 << 20);
        if (buf == NULL) {
            client_reply(c, "error out of memory\n");
            return;
        }
        if (strcmp(cmd, "info") == 0)
            srv__info_text(buf, 1 << 20);
        else
            srv__info_json(buf, 1 << 20);
        size_t len = strlen(buf);
        char *fit = realloc(buf, len + 1); /* up to MAX_CLIENTS replies may be in flight */
        client_send(c, fit ? fit : buf, len);
    } else if (strcmp(cmd, "reload") == 0 || strcmp(cmd, "reload tasks") == 0) {
        const char *refused = C.ops->reload(strcmp(cmd, "reload tasks") == 0);
        if (refused != NULL)
            client_reply(c, refused);
        else
            c->wants_reload = true;
    } else if (strcmp(cmd, "reopen") == 0) {
        C.ops->reopen();
        client_reply(c, "ok\n");
    } else if (strcmp(cmd, "stop") == 0) {
        client_reply(c, "ok\n");
        C.ops->stop();
    } else {
        client_reply(c, "error 2 unknown command\n");
    }
}

static void client_read(client_t *c)
{
    if (c->out != NULL)
        return;
    if (c->wants_reload) {
        /* The command is in; anything more is ignored. The peer may have shut down its side
         * only and still wait for the outcome: from then on we watch for a hang-up alone. */
        char sink[256];
        ssize_t n = recv(c->fd, sink, sizeof(sink), MSG_DONTWAIT);
        if (n == 0)
            c->hup_only = true;
        else if (n < 0 && errno != EAGAIN && errno != EINTR)
            client_close(c);
        return;
    }
    ssize_t n = recv(c->fd, c->in + c->in_len, sizeof(c->in) - 1 - c->in_len, MSG_DONTWAIT);
    if (n < 0) {
        if (errno != EAGAIN && errno != EINTR)
            client_close(c);
        return;
    }
    if (n == 0) {
        /* The peer finished writing without a newline: answer what it sent, if anything. */
        if (c->in_len > 0)
            client_reply(c, "error 2 bad command (no newline)\n");
        else
            client_close(c);
        return;
    }
    c->in_len += (size_t)n;
    /* Issue 11: a command may come in several pieces; it ends at its newline. */
    int used = srv__ctl_parse(c->in, c->in_len, sizeof(c->in));
    if (used < 0)
        client_reply(c, "error 2 command too long\n");
    else if (used > 0)
        handle_command(c, c->in);
}

void srv__ctl_serve_reload_done(int code, const char *text)
{
    char reply[2600];
    if (code == 0)
        snprintf(reply, sizeof(reply), "ok\n%s", text ? text : "");
    else
        snprintf(reply, sizeof(reply), "error %d %s\n", code, text);
    for (int i = 0; i < MAX_CLIENTS; i++)
        if (C.clients[i].fd >= 0 && C.clients[i].wants_reload)
            client_reply(&C.clients[i], reply);
}

/* The connection accepted longest ago, before `before`, of those still waiting for their
 * command: the one to drop for a newcomer (it has had its chance). */
static client_t *oldest_waiting(int64_t before)
{
    client_t *oldest = NULL;
    for (int i = 0; i < MAX_CLIENTS; i++) {
        client_t *c = &C.clients[i];
        if (c->fd >= 0 && !c->wants_reload && c->out == NULL && c->since < before &&
            (oldest == NULL || c->since < oldest->since))
            oldest = c;
    }
    return oldest;
}

static void client_drop(client_t *c, const char *why)
{
    static const char busy[] = SRV_CTL_BUSY " (dropped for a newer control connection)\n";
    srv__log(SRV_LOG_INFO, "master", 0,
             "control socket: %s; dropping the oldest connection still without a command", why);
    ssize_t rc = send(c->fd, busy, sizeof(busy) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
    (void)rc;
    client_close(c);
}

/* A slot for a new control connection: a free one, else the oldest one still waiting for its
 * command, dropped; NULL when every one is busy with a reply or a reload. */
static client_t *client_slot(void)
{
    for (int i = 0; i < MAX_CLIENTS; i++)
        if (C.clients[i].fd < 0)
            return &C.clients[i];
    client_t *c = oldest_waiting(INT64_MAX);
    if (c != NULL)
        client_drop(c, "every connection slot taken");
    return c;
}

static void accept_clients(void)
{
    /* Bounded per wake-up: a flood of connections cannot keep the loop from the rest. */
    for (int k = 0; k < MAX_CLIENTS; k++) {
        int fd = accept4(C.listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        int err = fd < 0 ? errno : 0;
        if (fd < 0 && (err == EMFILE || err == ENFILE)) {
            /* Issue 11: every descriptor is taken (typically by client connections). With the
             * reserve in use, the oldest control connection still silent after
             * CTL_MIN_AGE_MS gives up its descriptor, which becomes the reserve (a younger
             * one may just not have been read yet). */
            if (C.reserve_fd < 0) {
                client_t *old = oldest_waiting(srv__mono_ms() - CTL_MIN_AGE_MS);
                if (old != NULL)
                    client_drop(old, "out of descriptors");
            }
            /* Spend the reserve on this caller so `srv info` still answers. */
            if (C.reserve_fd >= 0) {
                close(C.reserve_fd);
                C.reserve_fd = -1;
                fd = accept4(C.listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                err = fd < 0 ? errno : 0;
            }
        }
        if (fd < 0) {
            if (err == EINTR || err == ECONNABORTED)
                continue;
            reserve_refill();
            if (err == EAGAIN)
                return;
            /* Still nothing to accept with (out of descriptors, typically): the control socket
             * would stay readable and poll would return at once (issue 11: 100 % CPU). Leave
             * it alone a while; a connection of ours ending brings it back sooner
             * (fd_release). */
            int64_t now = srv__mono_ms();
            C.backoff_until = now + CTL_BACKOFF_MS;
            if (now - C.last_fd_warn > 10000) {
                C.last_fd_warn = now;
                bool fds = err == EMFILE || err == ENFILE;
                srv__log(SRV_LOG_WARN, "master", err, "control socket: cannot accept%s",
                         fds ? "; out of descriptors" : "");
            }
            return;
        }
        client_t *c = client_slot();
        if (c == NULL) {
            static const char busy[] = SRV_CTL_BUSY " (too many control connections)\n";
            ssize_t rc = send(fd, busy, sizeof(busy) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
            (void)rc;
            fd_release(fd);
            continue;
        }
        c->fd = fd;
        c->wants_reload = false;
        c->in_len = 0;
        c->since = srv__mono_ms();
        c->deadline = c->since + CTL_IDLE_MS;
    }
}

/* Close control connections past their deadline; returns the earliest deadline left. */
static int64_t clients_expire(int64_t now)
{
    int64_t next = INT64_MAX;
    for (int i = 0; i < MAX_CLIENTS; i++) {
        client_t *c = &C.clients[i];
        if (c->fd < 0 || c->wants_reload)
            continue;
        if (now >= c->deadline) {
            srv__log(SRV_LOG_INFO, "master", 0, "control connection %s; closed",
                     c->out ? "does not read its reply" : "sent no command in time");
            client_close(c);
            continue;
        }
        if (c->deadline < next)
            next = c->deadline;
    }
    return next;
}

int srv__ctl_serve_open(const char *path, const srv__ctl_serve_ops_t *ops)
{
    if (strlen(path) >= sizeof(C.path))
        return -ENAMETOOLONG;
    memset(&C, 0, sizeof(C));
    C.listen_fd = C.reserve_fd = -1;
    for (int i = 0; i < MAX_CLIENTS; i++)
        C.clients[i].fd = -1;
    int fd = listen_at(path);
    if (fd < 0)
        return fd;
    strcpy(C.path, path);
    C.ops = ops;
    C.listen_fd = fd;
    return 0;
}

void srv__ctl_serve_reserve(void)
{
    reserve_refill();
}

int srv__ctl_serve_poll(struct pollfd *pfd, int64_t now, int64_t *wake)
{
    int64_t next = clients_expire(now);
    if (next < *wake)
        *wake = next;
    if (C.backoff_until != 0 && now >= C.backoff_until)
        C.backoff_until = 0;
    if (C.backoff_until != 0 && C.backoff_until < *wake)
        *wake = C.backoff_until;
    /* A negative fd is skipped by poll: backing off (out of descriptors). */
    pfd[0] = (struct pollfd){.fd = C.backoff_until ? -1 : C.listen_fd, .events = POLLIN};
    for (int i = 0; i < MAX_CLIENTS; i++) {
        const client_t *c = &C.clients[i];
        short events = c->out ? POLLOUT : c->hup_only ? 0 : POLLIN;
        pfd[1 + i] = (struct pollfd){.fd = c->fd, .events = events};
    }
    return SRV_CTL_SERVE_NPOLL;
}

void srv__ctl_serve_dispatch(const struct pollfd *pfd)
{
    /* Commands already in before new connections: accepting may drop the oldest connection
     * still without one. */
    for (int i = 0; i < MAX_CLIENTS; i++) {
        client_t *c = &C.clients[i];
        const struct pollfd *p = &pfd[1 + i];
        if (!p->revents || c->fd < 0 || c->fd != p->fd)
            continue;
        if (c->out != NULL)
            client_flush(c);
        else if (c->hup_only)
            client_close(c); /* POLLHUP or POLLERR: nobody waits for the outcome */
        else
            client_read(c);
    }
    if (pfd[0].revents)
        accept_clients();
}

void srv__ctl_serve_drop(void)
{
    for (int i = 0; i < MAX_CLIENTS; i++)
        if (C.clients[i].fd >= 0)
            close(C.clients[i].fd);
    if (C.reserve_fd >= 0)
        close(C.reserve_fd);
    if (C.listen_fd >= 0)
        close(C.listen_fd);
    C.listen_fd = C.reserve_fd = -1;
}

void srv__ctl_serve_close(void)
{
    for (int i = 0; i < MAX_CLIENTS; i++)
        client_close(&C.clients[i]);
    if (C.reserve_fd >= 0)
        close(C.reserve_fd);
    C.reserve_fd = -1;
    if (C.listen_fd >= 0) {
        close(C.listen_fd);
        unlink(C.path);
    }
    C.listen_fd = -1;
}
