/* Cross-key rules of one file: what a key cannot tell alone (required keys, exclusive pairs,
 * keys that only apply to one kind of listener, duplicate names and addresses), each blaming the
 * line of the key set last. Runs once every key was stored without a problem. */
#include "config/validate.h"
#include "config/config_check.h"

#include <arpa/inet.h>
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

static void fail(srv__loader_t *ld, int line, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void fail(srv__loader_t *ld, int line, const char *key, const char *fmt, ...)
{
    char msg[sizeof(ld->diag.msg)];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    srv__loader_error(ld, line, key, "%s", msg);
}

static int later(int a, int b)
{
    return a > b ? a : b;
}

static int first_set(int a, int b)
{
    return a != 0 ? a : b;
}

/* Listeners a and b would fight over one address (or one socket file). */
static bool same_address(const srv__listen_config_t *a, const srv__listen_config_t *b)
{
    if (a->path[0] != '\0' || b->path[0] != '\0')
        return strcmp(a->path, b->path) == 0;
    if (a->port != b->port || (a->type == SRV_LISTEN_UDP) != (b->type == SRV_LISTEN_UDP))
        return false;
    unsigned char x[16], y[16];
    static const unsigned char any[16];
    for (int family = AF_INET; family != 0; family = family == AF_INET ? AF_INET6 : 0) {
        size_t len = family == AF_INET ? 4 : 16;
        int px = inet_pton(family, a->host, x), py = inet_pton(family, b->host, y);
        if (px == 1 && py == 1)
            return memcmp(x, y, len) == 0 || memcmp(x, any, len) == 0 || memcmp(y, any, len) == 0;
        if (px == 1 || py == 1)
            return false;
    }
    return strcasecmp(a->host, b->host) == 0;
}

/* A TLS listener: its certificate, and client verification that can work. */
static void validate_ssl(srv__loader_t *ld, int i)
{
    srv__listen_config_t *l = &ld->cfg->listen[i];
    int *kl = ld->key_lines[SRV__SECT_LISTEN][i];
    l->ssl_cert_line = kl[SRV__L_SSL_CERT_FILE];
    if (kl[SRV__L_SSL_CERT_FILE] == 0)
        fail(ld, kl[SRV__L_SSL], "ssl_cert_file", "required with ssl = true");
    if (kl[SRV__L_SSL_KEY_FILE] == 0)
        fail(ld, kl[SRV__L_SSL], "ssl_key_file", "required with ssl = true");
    if (l->ssl_protocols == 0)
        fail(ld, kl[SRV__L_SSL_PROTOCOLS], "ssl_protocols", "names no protocol");
    if (l->ssl_verify_optional && !l->ssl_verify_peer)
        fail(ld, kl[SRV__L_SSL_VERIFY_OPTIONAL], "ssl_verify_optional",
             "needs ssl_verify_peer = true");
    if (l->ssl_verify_peer && l->ssl_client_cert_file[0] == '\0')
        fail(ld, kl[SRV__L_SSL_VERIFY_PEER], "ssl_client_cert_file",
             "required with ssl_verify_peer = true (the CA bundle client certificates must "
             "chain to)");
    if (!l->ssl_verify_peer && kl[SRV__L_SSL_CLIENT_CERT_FILE] != 0)
        fail(ld, kl[SRV__L_SSL_CLIENT_CERT_FILE], "ssl_client_cert_file",
             "needs ssl_verify_peer = true");
}

/* An SNI certificate: complete, on a TLS listener, one per host name. */
static void validate_sni(srv__loader_t *ld, int k)
{
    srv__config_t *cfg = ld->cfg;
    srv__sni_config_t *s = &cfg->sni[k];
    int *kl = ld->key_lines[SRV__SECT_SNI][k];
    const srv__listen_config_t *l = &cfg->listen[s->listener];
    if (kl[SRV__S_HOST] == 0)
        fail(ld, s->line, "host", "required (the server name this certificate is for)");
    s->ssl_cert_line = kl[SRV__S_CERT];
    if (kl[SRV__S_CERT] == 0)
        fail(ld, s->line, "ssl_cert_file", "required");
    if (kl[SRV__S_KEY] == 0)
        fail(ld, s->line, "ssl_key_file", "required");
    if (!l->ssl)
        fail(ld, s->line, "sni", "listener \"%s\" has no ssl = true", l->name);
    for (int j = 0; j < k; j++) {
        if (cfg->sni[j].listener == s->listener && s->host[0] != '\0' &&
            strcmp(cfg->sni[j].host, s->host) == 0)
            fail(ld, first_set(kl[SRV__S_HOST], s->line), "host",
                 "duplicate SNI host \"%s\" on listener \"%s\" (first at line %d)", s->host,
                 l->name, cfg->sni[j].line);
    }
}

static void validate_listen(srv__loader_t *ld, int i)
{
    srv__config_t *cfg = ld->cfg;
    srv__listen_config_t *l = &cfg->listen[i];
    int *kl = ld->key_lines[SRV__SECT_LISTEN][i];
    if (kl[SRV__L_NAME] == 0 && l->name[0] == '\0')
        snprintf(l->name, sizeof(l->name), "listen%d", i);
    for (int k = 0; k < srv__schema[SRV__SECT_LISTEN].nkeys; k++) {
        int flags = srv__schema[SRV__SECT_LISTEN].keys[k].flags;
        if (kl[k] == 0)
            continue;
        if ((flags & SRV__KF_HTTP) && l->type != SRV_LISTEN_HTTP)
            fail(ld, kl[k], srv__schema[SRV__SECT_LISTEN].keys[k].name,
                 "only valid on http listeners (this one is %s)",
                 srv__schema_listen_type_name(l->type));
        if ((flags & SRV__KF_TCP) && l->type != SRV_LISTEN_TCP)
            fail(ld, kl[k], srv__schema[SRV__SECT_LISTEN].keys[k].name,
                 "only valid on tcp listeners (this one is %s)",
                 srv__schema_listen_type_name(l->type));
        if ((flags & SRV__KF_STREAM) && l->type == SRV_LISTEN_UDP)
            fail(ld, kl[k], srv__schema[SRV__SECT_LISTEN].keys[k].name,
                 "only valid on http and tcp listeners (this one is udp)");
        else if ((flags & SRV__KF_SSL) && !l->ssl)
            fail(ld, kl[k], srv__schema[SRV__SECT_LISTEN].keys[k].name, "needs ssl = true");
        else if ((flags & SRV__KF_H2) && !l->open_http2_protocol && l->type == SRV_LISTEN_HTTP)
            fail(ld, kl[k], srv__schema[SRV__SECT_LISTEN].keys[k].name,
                 "has no effect without open_http2_protocol = true");
    }
    if (l->ssl && l->type != SRV_LISTEN_UDP)
        validate_ssl(ld, i);
    if (kl[SRV__L_PORT] != 0 && kl[SRV__L_PATH] != 0)
        fail(ld, later(kl[SRV__L_PORT], kl[SRV__L_PATH]),
             kl[SRV__L_PORT] > kl[SRV__L_PATH] ? "port" : "path",
             "port and path are exclusive (one listener binds one address)");
    else if (kl[SRV__L_PORT] == 0 && kl[SRV__L_PATH] == 0)
        fail(ld, l->line, "port", "required (or path, for a unix socket)");
    if (kl[SRV__L_PATH] != 0) {
        if (kl[SRV__L_HOST] != 0)
            fail(ld, kl[SRV__L_HOST], "host", "not allowed with path (a unix socket has no host)");
        l->host[0] = '\0';
    } else if (kl[SRV__L_SOCKET_MODE] != 0) {
        fail(ld, kl[SRV__L_SOCKET_MODE], "socket_mode",
             "only valid on unix-socket listeners (this one has no path)");
    }
    if (l->open_eof_split)
        l->open_eof_check = true;
    int eof_line = first_set(kl[SRV__L_OPEN_EOF_CHECK], kl[SRV__L_OPEN_EOF_SPLIT]);
    bool framing = true; /* the framing keys agree, so the framer's own check means something */
    if (l->open_eof_check && l->open_length_check) {
        framing = false;
        fail(ld, later(eof_line, kl[SRV__L_OPEN_LENGTH_CHECK]),
             kl[SRV__L_OPEN_LENGTH_CHECK] > eof_line ? "open_length_check"
             : kl[SRV__L_OPEN_EOF_CHECK] != 0        ? "open_eof_check"
                                                     : "open_eof_split",
             "open_eof_check and open_length_check are mutually exclusive");
    }
    if (l->open_eof_check && l->package_eof_len == 0) {
        framing = false;
        fail(ld, eof_line, "package_eof", "required when open_eof_check is set");
    }
    if (l->websocket_compression && !l->websocket)
        fail(ld, kl[SRV__L_WEBSOCKET_COMPRESSION], "websocket_compression",
             "needs websocket = true");
    /* Options the framer refuses would close every connection as a malformed frame. */
    if (framing)
        srv__config_check_frame(ld, cfg, i);
    for (int j = 0; j < i; j++) {
        const srv__listen_config_t *o = &cfg->listen[j];
        if (strcmp(o->name, l->name) == 0)
            fail(ld, first_set(kl[SRV__L_NAME], l->line), "name",
                 "duplicate listener name \"%s\" (first at line %d)", l->name, o->line);
        if ((kl[SRV__L_PORT] != 0) != (kl[SRV__L_PATH] != 0) && same_address(l, o)) {
            if (l->path[0] != '\0')
                fail(ld, kl[SRV__L_PATH], "path", "%s already used by listener \"%s\" (line %d)",
                     l->path, o->name, o->line);
            else
                fail(ld, kl[SRV__L_PORT], "port",
                     "%s%s%s:%d (%s) already used by listener \"%s\" (line %d)",
                     strchr(l->host, ':') ? "[" : "", l->host, strchr(l->host, ':') ? "]" : "",
                     l->port, l->type == SRV_LISTEN_UDP ? "udp" : "tcp", o->name, o->line);
        }
    }
}

static void validate_table(srv__loader_t *ld, int i)
{
    srv__table_config_t *t = &ld->cfg->table[i];
    int *kl = ld->key_lines[SRV__SECT_TABLE][i];
    if (kl[SRV__T_NAME] == 0)
        fail(ld, t->line, "name", "required");
    if (kl[SRV__T_SIZE] == 0)
        fail(ld, t->line, "size", "required (rows)");
    if (t->ncolumns == 0)
        fail(ld, t->line, "columns", "at least one column is required");
    for (int c = 0; c < t->ncolumns; c++) {
        srv__column_config_t *col = &t->columns[c];
        int *cl = ld->col_key_lines[i][c];
        int line = ld->col_lines[i][c];
        if (cl[SRV__C_NAME] == 0) {
            fail(ld, line, "columns", "column %d: name is required", c + 1);
            continue;
        }
        if (cl[SRV__C_TYPE] == 0)
            fail(ld, line, "columns", "column \"%s\": type is required", col->name);
        else if (col->type == SRV_COL_STRING && cl[SRV__C_SIZE] == 0)
            fail(ld, line, "columns", "column \"%s\": size is required for string columns",
                 col->name);
        else if (col->type != SRV_COL_STRING && cl[SRV__C_SIZE] != 0)
            fail(ld, cl[SRV__C_SIZE], "columns",
                 "column \"%s\": size only applies to string columns", col->name);
        if (col->type != SRV_COL_STRING)
            col->size = 8;
        for (int d = 0; d < c; d++) {
            if (strcmp(t->columns[d].name, col->name) == 0)
                fail(ld, line, "columns", "duplicate column name \"%s\" (first at line %d)",
                     col->name, ld->col_lines[i][d]);
        }
    }
    for (int j = 0; j < i; j++) {
        if (t->name[0] != '\0' && strcmp(ld->cfg->table[j].name, t->name) == 0)
            fail(ld, first_set(kl[SRV__T_NAME], t->line), "name",
                 "duplicate table name \"%s\" (first at line %d)", t->name, ld->cfg->table[j].line);
    }
}

static void validate_cron(srv__loader_t *ld, int i)
{
    srv__cron_config_t *c = &ld->cfg->cron[i];
    int *kl = ld->key_lines[SRV__SECT_CRON][i];
    if (kl[SRV__CR_NAME] == 0)
        fail(ld, c->line, "name", "required");
    if (kl[SRV__CR_HANDLER] == 0)
        fail(ld, c->line, "handler", "required (a function exported by the app)");
    if (kl[SRV__CR_INTERVAL_MS] != 0 && kl[SRV__CR_SCHEDULE] != 0)
        fail(ld, later(kl[SRV__CR_INTERVAL_MS], kl[SRV__CR_SCHEDULE]),
             kl[SRV__CR_SCHEDULE] > kl[SRV__CR_INTERVAL_MS] ? "schedule" : "interval_ms",
             "interval_ms and schedule are exclusive");
    else if (kl[SRV__CR_INTERVAL_MS] == 0 && kl[SRV__CR_SCHEDULE] == 0)
        fail(ld, c->line, "interval_ms", "required (or schedule)");
    if (c->global_lock && ld->cfg->redis[0] == '\0')
        fail(ld, kl[SRV__CR_LOCK], "global_lock", "needs redis set in [server]");
    for (int j = 0; j < i; j++) {
        if (c->name[0] != '\0' && strcmp(ld->cfg->cron[j].name, c->name) == 0)
            fail(ld, first_set(kl[SRV__CR_NAME], c->line), "name",
                 "duplicate cron name \"%s\" (first at line %d)", c->name, ld->cfg->cron[j].line);
    }
}

static void validate_process(srv__loader_t *ld, int i)
{
    srv__process_config_t *p = &ld->cfg->process[i];
    int *kl = ld->key_lines[SRV__SECT_PROCESS][i];
    if (kl[SRV__P_NAME] == 0)
        fail(ld, p->line, "name", "required");
    if (kl[SRV__P_HANDLER] == 0)
        fail(ld, p->line, "handler", "required (a function exported by the app)");
    for (int j = 0; j < i; j++) {
        if (p->name[0] != '\0' && strcmp(ld->cfg->process[j].name, p->name) == 0)
            fail(ld, first_set(kl[SRV__P_NAME], p->line), "name",
                 "duplicate process name \"%s\" (first at line %d)", p->name,
                 ld->cfg->process[j].line);
    }
}

/* [server]'s http2_* are defaults for listeners with HTTP/2: without one, they do nothing. */
static void validate_h2_defaults(srv__loader_t *ld)
{
    const srv__config_t *cfg = ld->cfg;
    for (int i = 0; i < cfg->nlisten; i++)
        if (cfg->listen[i].open_http2_protocol)
            return;
    const srv__sect_desc_t *sd = &srv__schema[SRV__SECT_SERVER];
    for (int k = 0; k < sd->nkeys; k++) {
        int line = ld->key_lines[SRV__SECT_SERVER][0][k];
        if ((sd->keys[k].flags & SRV__KF_H2) && line != 0)
            fail(ld, line, sd->keys[k].name,
                 "has no effect: no listener has open_http2_protocol = true");
    }
}

/* Observability keys that only mean something beside another one. */
/* inotify_reload_paths: only with inotify_reload; relative paths against the config's folder. */
static void validate_inotify(srv__loader_t *ld)
{
    srv__config_t *cfg = ld->cfg;
    int line = srv__loader_key_line(ld, SRV__SECT_SERVER, 0, "inotify_reload_paths");
    if (line == 0)
        return;
    if (!cfg->inotify_reload) {
        fail(ld, line, "inotify_reload_paths", "has no effect: inotify_reload is not true");
        return;
    }
    char out[sizeof(cfg->inotify_reload_paths)];
    size_t used = 0;
    const char *p = cfg->inotify_reload_paths;
    while (*p) {
        size_t n = strcspn(p, " ");
        bool rel = p[0] != '/';
        int w = snprintf(out + used, sizeof(out) - used, "%s%s%s%.*s", used ? " " : "",
                         rel ? ld->dir : "", rel ? "/" : "", (int)n, p);
        if (w < 0 || (size_t)w >= sizeof(out) - used) {
            fail(ld, line, "inotify_reload_paths", "too long once made absolute");
            return;
        }
        used += (size_t)w;
        p += n;
        p += strspn(p, " ");
    }
    memcpy(cfg->inotify_reload_paths, out, used + 1);
}

/* maintenance_allow: path prefixes, each "/...", a bounded number of bounded length. */
static void validate_maint_allow(srv__loader_t *ld)
{
    int line = srv__loader_key_line(ld, SRV__SECT_SERVER, 0, "maintenance_allow");
    const char *p = ld->cfg->maintenance_allow;
    for (int count = 0; line > 0 && *p; count++) {
        size_t n = strcspn(p, " ");
        if (count == SRV_CONFIG_MAX_MAINT_ALLOW) {
            fail(ld, line, "maintenance_allow", "at most %d path prefixes",
                 SRV_CONFIG_MAX_MAINT_ALLOW);
            return;
        }
        if (p[0] != '/') {
            fail(ld, line, "maintenance_allow", "\"%.*s\" is not a path (must start with /)",
                 (int)n, p);
            return;
        }
        if (n > SRV_CONFIG_MAINT_ALLOW_LEN) {
            fail(ld, line, "maintenance_allow", "a prefix longer than %d bytes",
                 SRV_CONFIG_MAINT_ALLOW_LEN);
            return;
        }
        p += n;
        p += strspn(p, " ");
    }
}

/* redis_password, redis_db and cluster only mean something with redis, instance_id with
 * cluster; instance_id defaults to the host name and the first listener's port (or path). */
static void validate_redis(srv__loader_t *ld)
{
    srv__config_t *cfg = ld->cfg;
    static const char *const keys[] = {"redis_password", "redis_db", "cluster"};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        int line = srv__loader_key_line(ld, SRV__SECT_SERVER, 0, keys[i]);
        if (line > 0 && cfg->redis[0] == '\0')
            fail(ld, line, keys[i], "has no effect: redis is not set");
    }
    int line = srv__loader_key_line(ld, SRV__SECT_SERVER, 0, "instance_id");
    if (line > 0 && !cfg->cluster)
        fail(ld, line, "instance_id", "has no effect: cluster is not true");
    if (!cfg->cluster || cfg->instance_id[0])
        return;
    char host[64] = "localhost";
    gethostname(host, sizeof(host) - 1);
    host[sizeof(host) - 1] = '\0';
    if (cfg->nlisten > 0 && cfg->listen[0].path[0])
        snprintf(cfg->instance_id, sizeof(cfg->instance_id), "%.60s:%.60s", host,
                 cfg->listen[0].path);
    else
        snprintf(cfg->instance_id, sizeof(cfg->instance_id), "%.60s:%d", host,
                 cfg->nlisten > 0 ? cfg->listen[0].port : 0);
}

static void validate_observe(srv__loader_t *ld)
{
    const srv__config_t *cfg = ld->cfg;
    validate_inotify(ld);
    validate_maint_allow(ld);
    validate_redis(ld);
    int token = srv__loader_key_line(ld, SRV__SECT_SERVER, 0, "admin_token");
    if (token != 0 && cfg->admin_server[0] == '\0')
        fail(ld, token, "admin_token", "has no effect: admin_server is not set");
    int format = srv__loader_key_line(ld, SRV__SECT_SERVER, 0, "access_log_format");
    if (format != 0 && cfg->access_log[0] == '\0')
        fail(ld, format, "access_log_format", "has no effect: access_log is not set");
    for (int i = 0; i < cfg->nlisten; i++) {
        int line = ld->key_lines[SRV__SECT_LISTEN][i][SRV__L_ACCESS_LOG];
        if (line != 0 && cfg->access_log[0] == '\0')
            fail(ld, line, "access_log", "has no effect: [server] sets no access_log");
    }
}

/* user, group, chroot: names that exist here, a directory that exists; the app inside the chroot
 * (workers load it from there: the prefix is stripped, see core/server/child.c). */
static void validate_priv(srv__loader_t *ld)
{
    srv__config_t *cfg = ld->cfg;
    int line = srv__loader_key_line(ld, SRV__SECT_SERVER, 0, "user");
    if (line != 0 && getpwnam(cfg->user) == NULL)
        fail(ld, line, "user", "no such user \"%s\"", cfg->user);
    line = srv__loader_key_line(ld, SRV__SECT_SERVER, 0, "group");
    if (line != 0 && getgrnam(cfg->group) == NULL)
        fail(ld, line, "group", "no such group \"%s\"", cfg->group);
    line = srv__loader_key_line(ld, SRV__SECT_SERVER, 0, "chroot");
    if (line == 0)
        return;
    struct stat st;
    size_t n = strlen(cfg->chroot);
    while (n > 1 && cfg->chroot[n - 1] == '/')
        cfg->chroot[--n] = '\0';
    if (cfg->chroot[0] != '/')
        fail(ld, line, "chroot", "must be an absolute path, got \"%s\"", cfg->chroot);
    else if (stat(cfg->chroot, &st) != 0)
        fail(ld, line, "chroot", "\"%s\": %s", cfg->chroot, strerror(errno));
    else if (!S_ISDIR(st.st_mode))
        fail(ld, line, "chroot", "\"%s\" is not a directory", cfg->chroot);
    else if (strcmp(cfg->chroot, "/") != 0 &&
             (strncmp(cfg->app, cfg->chroot, n) != 0 || cfg->app[n] != '/'))
        fail(ld, later(line, srv__loader_key_line(ld, SRV__SECT_SERVER, 0, "app")), "app",
             "%s is outside chroot %s (workers load the app from inside it)", cfg->app,
             cfg->chroot);
}

void srv__validate(srv__loader_t *ld)
{
    srv__config_t *cfg = ld->cfg;
    if (srv__loader_key_line(ld, SRV__SECT_SERVER, 0, "app") == 0)
        fail(ld, ld->server_line, "app", "required");
    if (srv__loader_key_line(ld, SRV__SECT_SERVER, 0, "max_request_grace") == 0)
        cfg->max_request_grace = cfg->max_request / 2;
    if (cfg->nlisten == 0)
        fail(ld, ld->server_line, "listen", "at least one listener is required");
    for (int i = 0; i < cfg->nlisten; i++)
        validate_listen(ld, i);
    for (int i = 0; i < cfg->ntable; i++)
        validate_table(ld, i);
    for (int i = 0; i < cfg->ncron; i++)
        validate_cron(ld, i);
    for (int i = 0; i < cfg->nprocess; i++)
        validate_process(ld, i);
    for (int k = 0; k < cfg->nsni; k++)
        validate_sni(ld, k);
    validate_h2_defaults(ld);
    validate_observe(ld);
    validate_priv(ld);
    if (!srv__loader_failed(ld))
        srv__config_check_tables(ld, cfg);
}
