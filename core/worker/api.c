/* The connection calls of include/srv/srv.h: by session id, from any worker. Lookups read the
 * shared connection table; actions go to the reactor that owns the session (process mode) or
 * to this worker's engine (base mode), through srv__worker_action. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "core/net/conninfo.h"
#include "core/ipc/ipc.h"
#include "core/server/server.h"
#include "core/worker/cluster.h"
#include "core/worker/worker.h"
#include "protocols/utf8.h"
#include "srv/srv.h"

/* 0 when session is a connection here, or one of another instance of the cluster (where the
 * action goes; whether it is still open is found out there). */
static int live(uint64_t session)
{
    srv_conn_info_t info;
    return srv__cluster_elsewhere(session) ? 0 : srv__conninfo_get(session, &info);
}

int srv_send(uint64_t session, const void *data, size_t len)
{
    if (len > (size_t)srv__server.cfg.buffer_output_size)
        return -EMSGSIZE;
    int rc = live(session);
    if (rc < 0)
        return rc;
    return srv__worker_action(session, SRV_IPC_SEND, 0, data, len);
}

int srv_close(uint64_t session)
{
    int rc = live(session);
    if (rc < 0)
        return rc;
    return srv__worker_action(session, SRV_IPC_CLOSE, 0, NULL, 0);
}

int srv_conn_info(uint64_t session, srv_conn_info_t *info)
{
    return srv__conninfo_get(session, info);
}

int srv_bind(uint64_t session, uint32_t uid)
{
    int rc = live(session);
    if (rc < 0)
        return rc;
    return srv__worker_action(session, SRV_IPC_BIND, 0, &uid, sizeof(uid));
}

int srv_sendto(int listener, const char *addr, int port, const void *data, size_t len)
{
    const srv__config_t *cfg = &srv__server.cfg;
    if (listener < 0 || listener >= cfg->nlisten || cfg->listen[listener].type != SRV_LISTEN_UDP)
        return -EINVAL;
    int fd = srv__server.listen_fd[listener];
    struct sockaddr_storage ss;
    socklen_t sl;
    memset(&ss, 0, sizeof(ss));
    if (cfg->listen[listener].path[0]) {
        struct sockaddr_un *a = (struct sockaddr_un *)&ss;
        if (strlen(addr) >= sizeof(a->sun_path))
            return -ENAMETOOLONG;
        a->sun_family = AF_UNIX;
        strcpy(a->sun_path, addr);
        sl = sizeof(*a);
    } else if (strchr(addr, ':')) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)port);
        if (inet_pton(AF_INET6, addr, &a->sin6_addr) != 1)
            return -EINVAL;
        sl = sizeof(*a);
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)port);
        if (inet_pton(AF_INET, addr, &a->sin_addr) != 1)
            return -EINVAL;
        sl = sizeof(*a);
    }
    ssize_t n = sendto(fd, data, len, MSG_DONTWAIT | MSG_NOSIGNAL, (struct sockaddr *)&ss, sl);
    return n < 0 ? -errno : 0;
}

static int check_message(int opcode, const void *data, size_t len)
{
    if (opcode != SRV_WS_TEXT && opcode != SRV_WS_BINARY)
        return -EINVAL;
    if (opcode == SRV_WS_TEXT && !srv__utf8_valid(data, len))
        return -EINVAL;
    if (len > (size_t)srv__server.cfg.buffer_output_size)
        return -EMSGSIZE;
    return 0;
}

int srv_ws_push(uint64_t session, int opcode, const void *data, size_t len)
{
    int rc = check_message(opcode, data, len);
    if (rc < 0)
        return rc;
    if (!srv__cluster_elsewhere(session) && srv_ws_exists(session) != 1)
        return -ENOENT;
    return srv__worker_action(session, SRV_IPC_WS_PUSH, (uint16_t)opcode, data, len);
}

int srv_ws_close(uint64_t session, int code, const char *reason)
{
    if (code < 1000 || code > 4999 || code == 1004 || code == 1005 || code == 1006 || code == 1015)
        return -EINVAL;
    size_t rl = reason ? strlen(reason) : 0;
    if (rl > 123)
        return -EINVAL;
    if (!srv__cluster_elsewhere(session) && srv_ws_exists(session) != 1)
        return -ENOENT;
    char buf[2 + 123];
    uint16_t c = (uint16_t)code;
    memcpy(buf, &c, 2);
    if (rl)
        memcpy(buf + 2, reason, rl);
    return srv__worker_action(session, SRV_IPC_WS_CLOSE, 0, buf, 2 + rl);
}

int srv_ws_exists(uint64_t session)
{
    srv_conn_info_t info;
    return srv__conninfo_get(session, &info) == 0 && info.websocket ? 1 : 0;
}

int srv_ws_broadcast(int listener, int opcode, const void *data, size_t len)
{
    int rc = check_message(opcode, data, len);
    if (rc < 0)
        return rc;
    if (listener >= srv__server.cfg.nlisten)
        return -EINVAL;
    /* Every reactor encodes it once and writes it to each of its WebSocket connections; the
     * other instances of a cluster get it through Redis. */
    rc = srv__worker_action((uint64_t)(listener < 0 ? 0 : listener + 1), SRV_IPC_WS_BROADCAST,
                            (uint16_t)opcode, data, len);
    if (rc == 0)
        srv__cluster_ws_broadcast(listener, opcode, data, len);
    return rc;
}

int srv_ws_foreach(int listener, int (*cb)(uint64_t session, void *arg), void *arg)
{
    return srv__conninfo_foreach_ws(listener, cb, arg);
}
