/* Configuration checks that need more than the schema: a listener's framing options against the
 * framer's own rules (protocols/frame.c), the tables' shared memory against what this machine can
 * map, and listener addresses once host names are resolved. Each finds what `srv start` would
 * otherwise refuse later, or accept and then fail on every connection (issue 11). */
#include "config/config_check.h"
#include "config/config.h"
#include "protocols/frame.h"
#include "protocols/tls.h"
#include "srv/table.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/sysinfo.h>

/* Addresses kept per listener name; a name with more (rare) is compared on its first ones. */
#define ADDRS_MAX 16

void srv__config_frame_opts(const srv__config_t *cfg, int i, srv__frame_opts_t *o)
{
    const srv__listen_config_t *l = &cfg->listen[i];
    memset(o, 0, sizeof(*o));
    o->mode = l->open_length_check ? SRV_FRAME_LENGTH
              : l->open_eof_check  ? SRV_FRAME_EOF
                                   : SRV_FRAME_NONE;
    _Static_assert(sizeof(o->eof) <= sizeof(l->package_eof), "package_eof holds the delimiter");
    memcpy(o->eof, l->package_eof, sizeof(o->eof));
    o->eof_len = l->package_eof_len;
    o->eof_split = l->open_eof_split;
    o->length_type = l->package_length_type;
    o->length_offset = l->package_length_offset;
    o->body_offset = l->package_body_offset;
    o->max_length =
        (size_t)(l->package_max_length >= 0 ? l->package_max_length : cfg->package_max_length);
}

static int later(int a, int b)
{
    return a > b ? a : b;
}

void srv__config_check_frame(srv__loader_t *ld, const srv__config_t *cfg, int i)
{
    const srv__listen_config_t *l = &cfg->listen[i];
    if (l->type != SRV_LISTEN_TCP)
        return;
    srv__frame_opts_t o;
    srv__config_frame_opts(cfg, i, &o);
    const char *why = NULL;
    if (srv__frame_opts_check(&o, &why) == 0)
        return;
    /* frame.h: why is a sentence that starts with the option at fault. */
    char key[64];
    size_t n = strcspn(why, " ");
    snprintf(key, sizeof(key), "%.*s", n < sizeof(key) ? (int)n : (int)sizeof(key) - 1, why);
    int max_line = srv__loader_key_line(ld, SRV__SECT_LISTEN, i, "package_max_length");
    int size = srv__frame_length_size(o.length_type);
    if (o.mode == SRV_FRAME_LENGTH && strcmp(key, "package_max_length") == 0 && size > 0) {
        /* Two keys disagree: blame the one set last, as for other pairs; the header key when
         * package_max_length is inherited from [server]. */
        bool body = o.body_offset >= o.length_offset + size;
        const char *hdr = body ? "package_body_offset" : "package_length_offset";
        int hdr_line = srv__loader_key_line(ld, SRV__SECT_LISTEN, i, hdr);
        int line = later(max_line, hdr_line);
        char header[96];
        if (body)
            snprintf(header, sizeof(header), "package_body_offset = %d", o.body_offset);
        else
            snprintf(header, sizeof(header), "package_length_offset %d + a %d-byte length field",
                     o.length_offset, size);
        srv__loader_error(ld, line > 0 ? line : l->line, line == max_line ? key : hdr,
                          "package_max_length (%zu%s) is shorter than the frame header (%d bytes: "
                          "%s): every frame would be refused as malformed",
                          o.max_length, max_line > 0 ? "" : ", from [server]",
                          body ? o.body_offset : o.length_offset + size, header);
        return;
    }
    int line = srv__loader_key_line(ld, SRV__SECT_LISTEN, i, key);
    srv__loader_error(ld, line > 0 ? line : l->line, key, "%s", why);
}

/* Bytes the table takes in the shared region, as core/table.c lays it out: per row a header
 * (chain and state words, hash, key length and key) and the columns 8-byte aligned, plus a
 * power-of-two bucket array of 16-byte heads. Never more than the real size: the per-table
 * header and alignment padding are left out, so a table this refuses cannot fit either. */
static uint64_t table_bytes(const srv__table_config_t *t, uint64_t *row)
{
    uint64_t off = 0;
    for (int c = 0; c < t->ncolumns; c++) {
        if (t->columns[c].type == SRV_COL_STRING)
            off = ((off + 1) & ~UINT64_C(1)) + 2 + (uint64_t)t->columns[c].size;
        else
            off = ((off + 7) & ~UINT64_C(7)) + 8;
    }
    *row = 16 + 1 + SRV_TABLE_KEY_MAX + ((off + 7) & ~UINT64_C(7));
    uint64_t buckets = 1;
    while (buckets < (uint64_t)t->size)
        buckets <<= 1;
    return (uint64_t)t->size * *row + buckets * 16;
}

static const char *human(char *buf, size_t size, uint64_t bytes)
{
    static const char *const units[] = {"bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    double v = (double)bytes;
    int u = 0;
    while (v >= 1024 && u < 6) {
        v /= 1024;
        u++;
    }
    if (u == 0)
        snprintf(buf, size, "%llu bytes", (unsigned long long)bytes);
    else
        snprintf(buf, size, "%.1f %s", v, units[u]);
    return buf;
}

/* The master maps one shared region (MAP_SHARED | MAP_ANONYMOUS) holding every table before it
 * forks. Linux's default overcommit heuristic refuses such a mapping when it is larger than RAM
 * plus swap, so start failed with ENOMEM; with overcommit allowed the mapping would succeed and
 * the server die when the table fills. Either way a table past RAM plus swap cannot work, so it
 * is refused here, with the line of its size, by arithmetic rather than a trial mmap: the answer
 * does not depend on the overcommit mode or on what else is mapped at the time of the check. */
void srv__config_check_tables(srv__loader_t *ld, const srv__config_t *cfg)
{
    struct sysinfo si;
    if (cfg->ntable == 0 || sysinfo(&si) != 0)
        return;
    unsigned __int128 limit = ((unsigned __int128)si.totalram + si.totalswap) * si.mem_unit;
    uint64_t total = 0;
    for (int i = 0; i < cfg->ntable; i++) {
        const srv__table_config_t *t = &cfg->table[i];
        uint64_t row, bytes = table_bytes(t, &row);
        total += bytes;
        if (total <= limit)
            continue;
        char need[32], have[32];
        int line = srv__loader_key_line(ld, SRV__SECT_TABLE, i, "size");
        human(have, sizeof(have), limit > UINT64_MAX ? UINT64_MAX : (uint64_t)limit);
        if (total == bytes)
            srv__loader_error(ld, line > 0 ? line : t->line, "size",
                              "table \"%s\" needs %s of shared memory (%lld rows of %llu bytes), "
                              "more than this machine's RAM and swap (%s)",
                              t->name, human(need, sizeof(need), bytes), (long long)t->size,
                              (unsigned long long)row, have);
        else
            srv__loader_error(ld, line > 0 ? line : t->line, "size",
                              "the tables up to \"%s\" need %s of shared memory together, more "
                              "than this machine's RAM and swap (%s)",
                              t->name, human(need, sizeof(need), total), have);
        return;
    }
}

/* ---- listener addresses after name resolution ---- */

typedef struct bound {
    int n;
    struct sockaddr_storage addr[ADDRS_MAX];
} bound_t;

static bool is_any(const struct sockaddr_storage *a)
{
    if (a->ss_family == AF_INET)
        return ((const struct sockaddr_in *)a)->sin_addr.s_addr == htonl(INADDR_ANY);
    const struct in6_addr *x = &((const struct sockaddr_in6 *)a)->sin6_addr;
    return IN6_IS_ADDR_UNSPECIFIED(x);
}

/* a and b (same port) cannot both be bound: same family (IPV6_V6ONLY keeps v4 and v6 apart)
 * and the same address, or a wildcard of that family. */
static bool overlap(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    if (a->ss_family != b->ss_family)
        return false;
    if (is_any(a) || is_any(b))
        return true;
    if (a->ss_family == AF_INET)
        return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
               ((const struct sockaddr_in *)b)->sin_addr.s_addr;
    return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
                  &((const struct sockaddr_in6 *)b)->sin6_addr, sizeof(struct in6_addr)) == 0;
}

/* "127.0.0.1" for a literal host, "localhost (127.0.0.1)" for a name. */
static void describe(const char *host, const struct sockaddr_storage *a, char *buf, size_t size)
{
    char text[INET6_ADDRSTRLEN];
    const void *p = a->ss_family == AF_INET
                        ? (const void *)&((const struct sockaddr_in *)a)->sin_addr
                        : (const void *)&((const struct sockaddr_in6 *)a)->sin6_addr;
    if (inet_ntop(a->ss_family, p, text, sizeof(text)) == NULL)
        snprintf(text, sizeof(text), "?");
    if (strcmp(host, text) == 0)
        snprintf(buf, size, "%s", text);
    else
        snprintf(buf, size, "%s (%s)", host, text);
}

/* Every address host resolves to, asked the way core/listen.c asks (numeric first, then the
 * name, same socket type and flags). Start binds the first; all are kept, because the order can
 * change between this check and the start (DNS, /etc/gai.conf), and a name sharing a port with
 * one of its own addresses is a mistake whichever comes first. */
static int resolve(const srv__listen_config_t *l, bound_t *b)
{
    int type = l->type == SRV_LISTEN_UDP ? SOCK_DGRAM : SOCK_STREAM;
    struct addrinfo hints = {.ai_socktype = type, .ai_flags = AI_NUMERICHOST | AI_PASSIVE};
    struct addrinfo *ai = NULL;
    char port[16];
    snprintf(port, sizeof(port), "%d", l->port);
    int gai = getaddrinfo(l->host, port, &hints, &ai);
    if (gai != 0) {
        hints.ai_flags = AI_PASSIVE;
        gai = getaddrinfo(l->host, port, &hints, &ai);
    }
    if (gai != 0)
        return gai;
    b->n = 0;
    for (struct addrinfo *p = ai; p != NULL && b->n < ADDRS_MAX; p = p->ai_next) {
        if ((p->ai_family != AF_INET && p->ai_family != AF_INET6) ||
            p->ai_addrlen > sizeof(b->addr[0]))
            continue;
        memset(&b->addr[b->n], 0, sizeof(b->addr[0]));
        memcpy(&b->addr[b->n], p->ai_addr, p->ai_addrlen);
        b->n++;
    }
    freeaddrinfo(ai);
    return b->n > 0 ? 0 : EAI_ADDRFAMILY;
}

/* A unix socket path with its folder resolved (symlinks, "..") when the folder exists, so two
 * spellings of one file compare equal; as written otherwise (start creates no folders). */
static void canonical_path(const char *path, char *out, size_t size)
{
    char dir[PATH_MAX], real[PATH_MAX];
    snprintf(out, size, "%s", path);
    const char *slash = strrchr(path, '/');
    if (slash == NULL || (size_t)(slash - path) >= sizeof(dir))
        return;
    memcpy(dir, path, (size_t)(slash - path));
    dir[slash - path] = '\0';
    if (realpath(dir[0] != '\0' ? dir : "/", real) == NULL)
        return;
    int n = snprintf(out, size, "%s/%s", strcmp(real, "/") == 0 ? "" : real, slash + 1);
    if (n < 0 || (size_t)n >= size)
        snprintf(out, size, "%s", path);
}

void srv__config_check_addresses(srv__loader_t *ld, const srv__config_t *cfg)
{
    bound_t *b = calloc((size_t)cfg->nlisten + 1, sizeof(*b));
    char(*paths)[PATH_MAX] = calloc((size_t)cfg->nlisten + 1, sizeof(*paths));
    if (b == NULL || paths == NULL) {
        srv__loader_error(ld, 0, "", "%s", strerror(ENOMEM));
        goto out;
    }
    for (int i = 0; i < cfg->nlisten; i++) {
        const srv__listen_config_t *l = &cfg->listen[i];
        if (l->path[0] != '\0') {
            canonical_path(l->path, paths[i], sizeof(paths[i]));
            int line = srv__loader_key_line(ld, SRV__SECT_LISTEN, i, "path");
            for (int j = 0; j < i; j++) {
                if (cfg->listen[j].path[0] != '\0' && strcmp(paths[i], paths[j]) == 0) {
                    srv__loader_error(ld, line > 0 ? line : l->line, "path",
                                      "%s is the socket file of listener \"%s\" (line %d)", l->path,
                                      cfg->listen[j].name, cfg->listen[j].line);
                    goto out;
                }
            }
            continue;
        }
        int host_line = srv__loader_key_line(ld, SRV__SECT_LISTEN, i, "host");
        int gai = resolve(l, &b[i]);
        if (gai != 0) {
            srv__loader_error(ld, host_line > 0 ? host_line : l->line, "host",
                              "cannot resolve \"%s\": %s", l->host,
                              gai == EAI_SYSTEM ? strerror(errno) : gai_strerror(gai));
            goto out;
        }
        for (int j = 0; j < i; j++) {
            const srv__listen_config_t *o = &cfg->listen[j];
            if (o->path[0] != '\0' || o->port != l->port ||
                (o->type == SRV_LISTEN_UDP) != (l->type == SRV_LISTEN_UDP))
                continue;
            for (int x = 0; x < b[i].n; x++) {
                for (int y = 0; y < b[j].n; y++) {
                    if (!overlap(&b[i].addr[x], &b[j].addr[y]))
                        continue;
                    char mine[INET6_ADDRSTRLEN + 260], theirs[INET6_ADDRSTRLEN + 260];
                    char how[2 * sizeof(mine) + 32];
                    describe(l->host, &b[i].addr[x], mine, sizeof(mine));
                    describe(o->host, &b[j].addr[y], theirs, sizeof(theirs));
                    if (is_any(&b[i].addr[x]) || is_any(&b[j].addr[y]))
                        snprintf(how, sizeof(how), "%s covers %s",
                                 is_any(&b[i].addr[x]) ? mine : theirs,
                                 is_any(&b[i].addr[x]) ? theirs : mine);
                    else
                        snprintf(how, sizeof(how), "%s and %s are one address", mine, theirs);
                    int line = srv__loader_key_line(ld, SRV__SECT_LISTEN, i, "port");
                    srv__loader_error(
                        ld, line > 0 ? line : l->line, "port",
                        "%s%s%s:%d (%s) already used by listener \"%s\" (line %d): %s",
                        strchr(l->host, ':') ? "[" : "", l->host, strchr(l->host, ':') ? "]" : "",
                        l->port, l->type == SRV_LISTEN_UDP ? "udp" : "tcp", o->name, o->line, how);
                    goto out;
                }
            }
        }
    }
out:
    free(b);
    free(paths);
}

/* ---- TLS ---- */

void srv__config_tls_conf(const srv__config_t *cfg, int li, srv__tls_conf_t *conf,
                          srv__tls_cert_conf_t *sni, int *map)
{
    const srv__listen_config_t *l = &cfg->listen[li];
    int n = 0;
    for (int i = 0; i < cfg->nsni; i++) {
        if (cfg->sni[i].listener != li)
            continue;
        sni[n] = (srv__tls_cert_conf_t){cfg->sni[i].host, cfg->sni[i].ssl_cert_file,
                                        cfg->sni[i].ssl_key_file};
        map[n++] = i;
    }
    *conf = (srv__tls_conf_t){
        .cert = {NULL, l->ssl_cert_file, l->ssl_key_file},
        .sni = sni,
        .nsni = n,
        .protocols = l->ssl_protocols,
        .ciphers = l->ssl_ciphers,
        .ciphersuites = l->ssl_ciphersuites,
        .verify_peer = l->ssl_verify_peer,
        .verify_optional = l->ssl_verify_optional,
        .client_cert_file = l->ssl_client_cert_file,
        .session_tickets = l->ssl_session_tickets,
        /* An HTTP listener offers what it speaks, in the server's order of preference: h2
         * first with open_http2_protocol, so a client offering both gets HTTP/2. */
        .alpn = l->type != SRV_LISTEN_HTTP ? l->ssl_alpn
                : l->open_http2_protocol   ? "h2 http/1.1"
                                           : "http/1.1",
    };
}

void srv__config_check_tls(srv__loader_t *ld, const srv__config_t *cfg)
{
    for (int li = 0; li < cfg->nlisten; li++) {
        if (!cfg->listen[li].ssl)
            continue;
        srv__tls_cert_conf_t sni[SRV_CONFIG_MAX_SNI];
        int map[SRV_CONFIG_MAX_SNI];
        srv__tls_conf_t conf;
        srv__config_tls_conf(cfg, li, &conf, sni, map);
        srv__tls_problem_t why;
        srv__tls_ctx_t *ctx = srv__tls_ctx_new(&conf, &why);
        if (ctx != NULL) {
            srv__tls_ctx_unref(ctx);
            continue;
        }
        /* Blame the line of the key at fault, else its section's. */
        bool in_sni = why.sni >= 0 && why.sni < conf.nsni;
        srv__sect_t kind = in_sni ? SRV__SECT_SNI : SRV__SECT_LISTEN;
        int entry = in_sni ? map[why.sni] : li;
        int line = srv__loader_key_line(ld, kind, entry, why.key);
        if (line == 0)
            line = in_sni ? cfg->sni[entry].line : cfg->listen[li].line;
        srv__loader_error(ld, line, why.key, "%s", why.msg);
        return;
    }
}
