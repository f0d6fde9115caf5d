/* Listener set-up for TCP (v4/v6), UDP and unix stream/datagram sockets. */
#include "core/net/listen.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

const char *srv__listen_describe(const srv__listen_config_t *l, char *buf, size_t len)
{
    if (l->path[0])
        snprintf(buf, len, "unix:%s", l->path);
    else if (strchr(l->host, ':'))
        snprintf(buf, len, "[%s]:%d", l->host, l->port);
    else
        snprintf(buf, len, "%s:%d", l->host, l->port);
    return buf;
}

/* A unix socket file with nobody accepting on it is left over from a crash: remove it. */
static int unlink_stale(const struct sockaddr_un *sun, int type)
{
    struct stat st;
    if (lstat(sun->sun_path, &st) != 0)
        return 0;
    if (!S_ISSOCK(st.st_mode))
        return -EADDRINUSE;
    int probe = socket(AF_UNIX, type | SOCK_CLOEXEC, 0);
    if (probe < 0)
        return -errno;
    int rc = connect(probe, (const struct sockaddr *)sun, sizeof(*sun));
    int err = errno;
    close(probe);
    if (rc == 0 || (err != ECONNREFUSED && err != ENOENT))
        return -EADDRINUSE;
    unlink(sun->sun_path);
    return 0;
}

int srv__listen_open(const srv__listen_config_t *l, const char **what)
{
    int type = l->type == SRV_LISTEN_UDP ? SOCK_DGRAM : SOCK_STREAM;
    int fd = -1, rc;
    bool created = false; /* the socket file is ours to remove if a later step fails */
    if (l->path[0]) {
        struct sockaddr_un sun = {.sun_family = AF_UNIX};
        if (strlen(l->path) >= sizeof(sun.sun_path)) {
            *what = "path";
            return -ENAMETOOLONG;
        }
        strcpy(sun.sun_path, l->path);
        *what = "bind";
        rc = unlink_stale(&sun, type);
        if (rc < 0)
            return rc;
        fd = socket(AF_UNIX, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            *what = "socket";
            return -errno;
        }
        if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0)
            goto fail;
        created = true;
        /* Before listen(): until then a connect is refused whatever the mode, so no client gets
         * in through the mode bind() left (umask-dependent). */
        if (chmod(sun.sun_path, (mode_t)l->socket_mode) != 0) {
            *what = "chmod";
            goto fail;
        }
    } else {
        struct addrinfo hints = {.ai_socktype = type, .ai_flags = AI_NUMERICHOST | AI_PASSIVE};
        struct addrinfo *ai = NULL;
        char port[16];
        snprintf(port, sizeof(port), "%d", l->port);
        const char *host = l->host[0] ? l->host : NULL;
        int gai = getaddrinfo(host, port, &hints, &ai);
        if (gai != 0) {
            /* Not a numeric address: resolve the name once, at start. */
            hints.ai_flags = AI_PASSIVE;
            gai = getaddrinfo(host, port, &hints, &ai);
        }
        if (gai != 0) {
            *what = "getaddrinfo";
            return -EADDRNOTAVAIL;
        }
        fd = socket(ai->ai_family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            freeaddrinfo(ai);
            *what = "socket";
            return -errno;
        }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (ai->ai_family == AF_INET6)
            setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
        if (type == SOCK_STREAM)
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        rc = bind(fd, ai->ai_addr, ai->ai_addrlen);
        freeaddrinfo(ai);
        if (rc != 0) {
            *what = "bind";
            goto fail;
        }
    }
    if (type == SOCK_STREAM && listen(fd, l->backlog > 0 ? l->backlog : 511) != 0) {
        *what = "listen";
        goto fail;
    }
    return fd;
fail:
    rc = -errno;
    close(fd);
    if (created)
        unlink(l->path);
    return rc;
}
