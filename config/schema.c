/* The config schema: every key of every section with its type, range and place in
 * srv__config_t; the refused keys; the defaults; and srv__config_equal(), which compares what the
 * tables list. The loader (loader.c, value.c) reads it; it calls no one in config/. */
#include "config/schema.h"
#include "config/config.h"
#include "protocols/tls.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

static const char *const mode_names[] = {"process", "base", NULL};
static const char *const backend_names[] = {"auto", "io_uring", "epoll", NULL};
static const char *const level_names[] = {"error", "warn", "notice", "info", "debug", NULL};
static const char *const listen_type_names[] = {"http", "tcp", "udp", NULL};
static const char *const col_type_names[] = {"int", "float", "string", NULL};
static const char *const alog_format_names[] = {"combined", "json", NULL};

#define F(type, field) offsetof(type, field), sizeof(((type *)0)->field)
#define SV(field) F(srv__config_t, field)
#define LI(field) F(srv__listen_config_t, field)
#define TB(field) F(srv__table_config_t, field)
#define CO(field) F(srv__column_config_t, field)
#define CR(field) F(srv__cron_config_t, field)
#define PR(field) F(srv__process_config_t, field)
#define SN(field) F(srv__sni_config_t, field)
#define SSL_KF (SRV__KF_STREAM | SRV__KF_SSL)
#define H2_KF (SRV__KF_HTTP | SRV__KF_NEG1 | SRV__KF_H2)

static const srv__key_desc_t server_keys[] = {
    {"mode", SRV__KT_ENUM, SV(mode), 0, 0, mode_names, SRV__KF_RESTART},
    {"reactor_backend", SRV__KT_ENUM, SV(reactor_backend), 0, 0, backend_names, SRV__KF_RESTART},
    {"reactor_num", SRV__KT_INT, SV(reactor_num), 1, 64, NULL, SRV__KF_RESTART},
    {"worker_num", SRV__KT_INT, SV(worker_num), 1, 1024, NULL, 0},
    {"task_worker_num", SRV__KT_INT, SV(task_worker_num), 0, 1024, NULL, 0},
    {"max_request", SRV__KT_I64, SV(max_request), 0, INT32_MAX, NULL, 0},
    {"max_request_grace", SRV__KT_I64, SV(max_request_grace), 0, INT32_MAX, NULL, 0},
    {"max_conn", SRV__KT_INT, SV(max_conn), 1, 1000000, NULL, SRV__KF_RESTART},
    {"dispatch_mode", SRV__KT_INT, SV(dispatch_mode), 1, 5, NULL, 0},
    {"daemonize", SRV__KT_BOOL, SV(daemonize), 0, 0, NULL, SRV__KF_RESTART},
    {"pid_file", SRV__KT_PATH, SV(pid_file), 0, 0, NULL, SRV__KF_RESTART},
    {"log_file", SRV__KT_PATH, SV(log_file), 0, 0, NULL, SRV__KF_EMPTY_OK},
    {"log_level", SRV__KT_ENUM, SV(log_level), 0, 0, level_names, 0},
    {"app", SRV__KT_PATH, SV(app), 0, 0, NULL, 0},
    {"max_wait_time", SRV__KT_INT, SV(max_wait_time), 0, 3600, NULL, 0},
    {"package_max_length", SRV__KT_I64, SV(package_max_length), 64, SRV__GiB, NULL, 0},
    {"buffer_output_size", SRV__KT_I64, SV(buffer_output_size), 4096, SRV__GiB, NULL, 0},
    {"heartbeat_idle_time", SRV__KT_INT, SV(heartbeat_idle_time), 0, 86400, NULL, 0},
    {"heartbeat_check_interval", SRV__KT_INT, SV(heartbeat_check_interval), 0, 86400, NULL, 0},
    {"http_header_max", SRV__KT_INT, SV(http_header_max), 1024, SRV__MiB, NULL, 0},
    {"http_header_timeout", SRV__KT_INT, SV(http_header_timeout), 1, 3600000, NULL, 0},
    {"http_keepalive_timeout", SRV__KT_INT, SV(http_keepalive_timeout), 0, 3600000, NULL, 0},
    {"http_body_timeout", SRV__KT_INT, SV(http_body_timeout), 1, 3600000, NULL, 0},
    {"send_timeout", SRV__KT_INT, SV(send_timeout), 1, 3600000, NULL, 0},
    {"task_max_queue", SRV__KT_I64, SV(task_max_queue), 1, 100000000, NULL, SRV__KF_RESTART},
    {"ipc_buffer_size", SRV__KT_INT, SV(ipc_buffer_size), 64 * SRV__KiB, SRV__GiB, NULL, 0},
    {"redis", SRV__KT_REDIS, SV(redis), 0, 0, NULL, SRV__KF_EMPTY_OK},
    {"redis_password", SRV__KT_STR, SV(redis_password), 0, 0, NULL, 0},
    {"redis_db", SRV__KT_INT, SV(redis_db), 0, 1000000, NULL, 0},
    {"cluster", SRV__KT_BOOL, SV(cluster), 0, 0, NULL, SRV__KF_RESTART},
    {"instance_id", SRV__KT_STR, SV(instance_id), 0, 0, NULL, SRV__KF_RESTART},
    {"admin_server", SRV__KT_ADDR, SV(admin_server), 0, 0, NULL, SRV__KF_EMPTY_OK | SRV__KF_RESTART},
    {"admin_token", SRV__KT_STR, SV(admin_token), 0, 0, NULL, 0},
    {"access_log", SRV__KT_PATH, SV(access_log), 0, 0, NULL, SRV__KF_EMPTY_OK | SRV__KF_DASH},
    {"access_log_format", SRV__KT_ENUM, SV(access_log_format), 0, 0, alog_format_names, 0},
    {"request_slowlog_timeout", SRV__KT_INT, SV(request_slowlog_timeout), 0, 3600000, NULL, 0},
    {"inotify_reload", SRV__KT_BOOL, SV(inotify_reload), 0, 0, NULL, 0},
    {"inotify_reload_paths", SRV__KT_WORDS, SV(inotify_reload_paths), 0, 0, NULL, 0},
    {"maintenance_allow", SRV__KT_WORDS, SV(maintenance_allow), 0, 0, NULL, 0},
    /* privilege drop (core/process/priv.c): who every process runs as once the sockets and
     * files that need root are open, and the directory the manager and its children live in */
    {"user", SRV__KT_STR, SV(user), 0, 0, NULL, SRV__KF_RESTART},
    {"group", SRV__KT_STR, SV(group), 0, 0, NULL, SRV__KF_RESTART},
    {"chroot", SRV__KT_STR, SV(chroot), 0, 0, NULL, SRV__KF_RESTART},
    /* defaults for listeners with open_http2_protocol (refused when none has it) */
    {"http2_max_concurrent_streams", SRV__KT_I64, SV(http2_max_concurrent_streams), 1, SRV__MiB,
     NULL, SRV__KF_H2},
    {"http2_initial_window_size", SRV__KT_I64, SV(http2_initial_window_size), 1, INT32_MAX, NULL,
     SRV__KF_H2},
    {"http2_max_frame_size", SRV__KT_I64, SV(http2_max_frame_size), 16384, 16777215, NULL,
     SRV__KF_H2},
    {"http2_max_header_list_size", SRV__KT_I64, SV(http2_max_header_list_size), 1024,
     16 * SRV__MiB, NULL, SRV__KF_H2},
    {"http2_idle_timeout", SRV__KT_I64, SV(http2_idle_timeout), 1, 86400, NULL, SRV__KF_H2},
    /* harakiri: a handler running longer gets its worker killed (504); tasks likewise */
    {"request_timeout", SRV__KT_INT, SV(request_timeout), 0, 86400, NULL, 0},
    {"task_timeout", SRV__KT_INT, SV(task_timeout), 0, 86400, NULL, 0},
    {"max_worker_rss", SRV__KT_SIZE, SV(max_worker_rss), 0, INT64_MAX / 2, NULL, 0},
};

static const srv__key_desc_t listen_keys[] = {
    [SRV__L_NAME] = {"name", SRV__KT_NAME, LI(name), 0, 0, NULL, SRV__KF_RESTART},
    [SRV__L_TYPE] = {"type", SRV__KT_ENUM, LI(type), 0, 0, listen_type_names, SRV__KF_RESTART},
    [SRV__L_HOST] = {"host", SRV__KT_HOST, LI(host), 0, 0, NULL, SRV__KF_RESTART},
    [SRV__L_PORT] = {"port", SRV__KT_INT, LI(port), 1, 65535, NULL, SRV__KF_RESTART},
    [SRV__L_PATH] = {"path", SRV__KT_PATH, LI(path), 0, 0, NULL, SRV__KF_RESTART},
    [SRV__L_BACKLOG] = {"backlog", SRV__KT_INT, LI(backlog), 1, 65535, NULL, SRV__KF_RESTART},
    [SRV__L_HANDLER] = {"handler", SRV__KT_NAME, LI(handler), 0, 0, NULL, 0},
    [SRV__L_DOCUMENT_ROOT] = {"document_root", SRV__KT_PATH, LI(document_root), 0, 0, NULL,
                              SRV__KF_HTTP | SRV__KF_EMPTY_OK},
    [SRV__L_WEBSOCKET] = {"websocket", SRV__KT_BOOL, LI(websocket), 0, 0, NULL, SRV__KF_HTTP},
    [SRV__L_WEBSOCKET_COMPRESSION] = {"websocket_compression", SRV__KT_BOOL,
                                      LI(websocket_compression), 0, 0, NULL, SRV__KF_HTTP},
    [SRV__L_WEBSOCKET_MAX_MESSAGE_SIZE] = {"websocket_max_message_size", SRV__KT_I64,
                                           LI(websocket_max_message_size), 1, SRV__GiB, NULL,
                                           SRV__KF_HTTP},
    [SRV__L_WEBSOCKET_PING_INTERVAL] = {"websocket_ping_interval", SRV__KT_INT,
                                        LI(websocket_ping_interval), 0, 3600000, NULL,
                                        SRV__KF_HTTP},
    [SRV__L_OPEN_EOF_CHECK] = {"open_eof_check", SRV__KT_BOOL, LI(open_eof_check), 0, 0, NULL,
                               SRV__KF_TCP},
    [SRV__L_OPEN_EOF_SPLIT] = {"open_eof_split", SRV__KT_BOOL, LI(open_eof_split), 0, 0, NULL,
                               SRV__KF_TCP},
    [SRV__L_PACKAGE_EOF] = {"package_eof", SRV__KT_EOF, LI(package_eof), 0, 0, NULL, SRV__KF_TCP},
    [SRV__L_OPEN_LENGTH_CHECK] = {"open_length_check", SRV__KT_BOOL, LI(open_length_check), 0, 0,
                                  NULL, SRV__KF_TCP},
    [SRV__L_PACKAGE_LENGTH_TYPE] = {"package_length_type", SRV__KT_LENTYPE, LI(package_length_type),
                                    0, 0, NULL, SRV__KF_TCP},
    [SRV__L_PACKAGE_LENGTH_OFFSET] = {"package_length_offset", SRV__KT_INT,
                                      LI(package_length_offset), 0, 65535, NULL, SRV__KF_TCP},
    [SRV__L_PACKAGE_BODY_OFFSET] = {"package_body_offset", SRV__KT_INT, LI(package_body_offset), 0,
                                    65535, NULL, SRV__KF_TCP},
    [SRV__L_PACKAGE_MAX_LENGTH] = {"package_max_length", SRV__KT_I64, LI(package_max_length), 64,
                                   SRV__GiB, NULL, SRV__KF_NEG1},
    [SRV__L_HEARTBEAT_IDLE_TIME] = {"heartbeat_idle_time", SRV__KT_INT, LI(heartbeat_idle_time), 0,
                                    86400, NULL, SRV__KF_NEG1},
    [SRV__L_HEARTBEAT_CHECK_INTERVAL] = {"heartbeat_check_interval", SRV__KT_INT,
                                         LI(heartbeat_check_interval), 0, 86400, NULL,
                                         SRV__KF_NEG1},
    [SRV__L_SOCKET_MODE] = {"socket_mode", SRV__KT_MODE, LI(socket_mode), 0, 0777, NULL, SRV__KF_RESTART},
    [SRV__L_SSL] = {"ssl", SRV__KT_BOOL, LI(ssl), 0, 0, NULL, SRV__KF_STREAM | SRV__KF_RESTART},
    [SRV__L_SSL_CERT_FILE] = {"ssl_cert_file", SRV__KT_PATH, LI(ssl_cert_file), 0, 0, NULL, SSL_KF},
    [SRV__L_SSL_KEY_FILE] = {"ssl_key_file", SRV__KT_PATH, LI(ssl_key_file), 0, 0, NULL, SSL_KF},
    [SRV__L_SSL_PROTOCOLS] = {"ssl_protocols", SRV__KT_TLSVER, LI(ssl_protocols), 0, 0, NULL,
                              SSL_KF},
    [SRV__L_SSL_CIPHERS] = {"ssl_ciphers", SRV__KT_STR, LI(ssl_ciphers), 0, 0, NULL,
                            SSL_KF | SRV__KF_EMPTY_OK},
    [SRV__L_SSL_CIPHERSUITES] = {"ssl_ciphersuites", SRV__KT_STR, LI(ssl_ciphersuites), 0, 0,
                                 NULL, SSL_KF | SRV__KF_EMPTY_OK},
    [SRV__L_SSL_VERIFY_PEER] = {"ssl_verify_peer", SRV__KT_BOOL, LI(ssl_verify_peer), 0, 0, NULL,
                                SSL_KF},
    [SRV__L_SSL_VERIFY_OPTIONAL] = {"ssl_verify_optional", SRV__KT_BOOL, LI(ssl_verify_optional),
                                    0, 0, NULL, SSL_KF},
    [SRV__L_SSL_CLIENT_CERT_FILE] = {"ssl_client_cert_file", SRV__KT_PATH,
                                     LI(ssl_client_cert_file), 0, 0, NULL, SSL_KF},
    [SRV__L_SSL_SESSION_TICKETS] = {"ssl_session_tickets", SRV__KT_BOOL, LI(ssl_session_tickets),
                                    0, 0, NULL, SSL_KF},
    [SRV__L_SSL_HANDSHAKE_TIMEOUT] = {"ssl_handshake_timeout", SRV__KT_INT,
                                      LI(ssl_handshake_timeout), 1, 3600, NULL, SSL_KF},
    [SRV__L_SSL_ALPN] = {"ssl_alpn", SRV__KT_WORDS, LI(ssl_alpn), 0, 0, NULL,
                         SSL_KF | SRV__KF_TCP},
    [SRV__L_OPEN_HTTP2_PROTOCOL] = {"open_http2_protocol", SRV__KT_BOOL, LI(open_http2_protocol),
                                    0, 0, NULL, SRV__KF_HTTP},
    [SRV__L_HTTP2_MAX_CONCURRENT_STREAMS] = {"http2_max_concurrent_streams", SRV__KT_I64,
                                             LI(http2_max_concurrent_streams), 1, SRV__MiB, NULL,
                                             H2_KF},
    [SRV__L_HTTP2_INITIAL_WINDOW_SIZE] = {"http2_initial_window_size", SRV__KT_I64,
                                          LI(http2_initial_window_size), 1, INT32_MAX, NULL, H2_KF},
    [SRV__L_HTTP2_MAX_FRAME_SIZE] = {"http2_max_frame_size", SRV__KT_I64, LI(http2_max_frame_size),
                                     16384, 16777215, NULL, H2_KF},
    [SRV__L_HTTP2_MAX_HEADER_LIST_SIZE] = {"http2_max_header_list_size", SRV__KT_I64,
                                           LI(http2_max_header_list_size), 1024, 16 * SRV__MiB,
                                           NULL, H2_KF},
    [SRV__L_HTTP2_IDLE_TIMEOUT] = {"http2_idle_timeout", SRV__KT_I64, LI(http2_idle_timeout), 1,
                                   86400, NULL, H2_KF},
    [SRV__L_ACCESS_LOG] = {"access_log", SRV__KT_BOOL, LI(access_log), 0, 0, NULL, SRV__KF_HTTP},
    [SRV__L_REQUEST_TIMEOUT] = {"request_timeout", SRV__KT_INT, LI(request_timeout), 0, 86400, NULL,
                                SRV__KF_HTTP | SRV__KF_NEG1},
};

static const srv__key_desc_t sni_keys[] = {
    [SRV__S_HOST] = {"host", SRV__KT_SNIHOST, SN(host), 0, 0, NULL, 0},
    [SRV__S_CERT] = {"ssl_cert_file", SRV__KT_PATH, SN(ssl_cert_file), 0, 0, NULL, 0},
    [SRV__S_KEY] = {"ssl_key_file", SRV__KT_PATH, SN(ssl_key_file), 0, 0, NULL, 0},
};

static const srv__key_desc_t table_keys[] = {
    [SRV__T_NAME] = {"name", SRV__KT_NAME, TB(name), 0, 0, NULL, 0},
    [SRV__T_SIZE] = {"size", SRV__KT_I64, TB(size), 1, 16 * SRV__MiB, NULL, 0},
};

static const srv__key_desc_t column_keys[] = {
    [SRV__C_NAME] = {"name", SRV__KT_NAME, CO(name), 0, 0, NULL, 0},
    [SRV__C_TYPE] = {"type", SRV__KT_ENUM, CO(type), 0, 0, col_type_names, 0},
    [SRV__C_SIZE] = {"size", SRV__KT_INT, CO(size), 1, 65535, NULL, 0},
};

static const srv__key_desc_t cron_keys[] = {
    [SRV__CR_NAME] = {"name", SRV__KT_NAME, CR(name), 0, 0, NULL, 0},
    [SRV__CR_HANDLER] = {"handler", SRV__KT_IDENT, CR(handler), 0, 0, NULL, 0},
    [SRV__CR_INTERVAL_MS] = {"interval_ms", SRV__KT_I64, CR(interval_ms), 1, INT64_C(31536000000),
                             NULL, 0},
    [SRV__CR_IMMEDIATE] = {"immediate", SRV__KT_BOOL, CR(immediate), 0, 0, NULL, 0},
    [SRV__CR_SCHEDULE] = {"schedule", SRV__KT_SCHED, CR(schedule), 0, 0, NULL, 0},
    [SRV__CR_MAX_WAIT] = {"max_wait_time", SRV__KT_INT, CR(max_wait_time), 0, 3600, NULL, 0},
    [SRV__CR_LOCK] = {"global_lock", SRV__KT_BOOL, CR(global_lock), 0, 0, NULL, 0},
};

static const srv__key_desc_t process_keys[] = {
    [SRV__P_NAME] = {"name", SRV__KT_NAME, PR(name), 0, 0, NULL, 0},
    [SRV__P_HANDLER] = {"handler", SRV__KT_IDENT, PR(handler), 0, 0, NULL, 0},
    [SRV__P_NUM] = {"num", SRV__KT_INT, PR(num), 1, 256, NULL, 0},
    [SRV__P_RESTART] = {"restart_interval", SRV__KT_INT, PR(restart_interval), 0, 3600, NULL, 0},
    [SRV__P_PIPE] = {"pipe", SRV__KT_BOOL, PR(pipe), 0, 0, NULL, 0},
};

#define NKEYS(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* Keys refused with a reason rather than as unknown (none today: `user`, refused while it was
 * not applied, is a real key since privilege dropping exists). The list ends with a NULL key. */
static const struct {
    int sect;
    const char *key;
    const char *why;
} refused_keys[] = {
    {-1, NULL, NULL},
};

const srv__sect_desc_t srv__schema[SRV__SECT_COUNT] = {
    [SRV__SECT_SERVER] = {"server", "server", server_keys, NKEYS(server_keys), 0, 0, 0, 1},
    [SRV__SECT_LISTEN] = {"listen", "listener", listen_keys, NKEYS(listen_keys),
                          offsetof(srv__config_t, listen), sizeof(srv__listen_config_t),
                          offsetof(srv__config_t, nlisten), SRV_CONFIG_MAX_LISTEN},
    [SRV__SECT_TABLE] = {"table", "table", table_keys, NKEYS(table_keys),
                         offsetof(srv__config_t, table), sizeof(srv__table_config_t),
                         offsetof(srv__config_t, ntable), SRV_CONFIG_MAX_TABLE},
    [SRV__SECT_CRON] = {"cron", "cron job", cron_keys, NKEYS(cron_keys),
                        offsetof(srv__config_t, cron), sizeof(srv__cron_config_t),
                        offsetof(srv__config_t, ncron), SRV_CONFIG_MAX_CRON},
    [SRV__SECT_PROCESS] = {"process", "process", process_keys, NKEYS(process_keys),
                           offsetof(srv__config_t, process), sizeof(srv__process_config_t),
                           offsetof(srv__config_t, nprocess), SRV_CONFIG_MAX_PROCESS},
    [SRV__SECT_SNI] = {"sni", "SNI certificate", sni_keys, NKEYS(sni_keys),
                       offsetof(srv__config_t, sni), sizeof(srv__sni_config_t),
                       offsetof(srv__config_t, nsni), SRV_CONFIG_MAX_SNI},
    [SRV__SECT_COLUMN] = {"column", "column", column_keys, NKEYS(column_keys),
                          offsetof(srv__table_config_t, columns), sizeof(srv__column_config_t),
                          offsetof(srv__table_config_t, ncolumns), SRV_CONFIG_MAX_COLUMN},
};

_Static_assert(NKEYS(server_keys) <= SRV__KEYS_MAX && NKEYS(listen_keys) <= SRV__KEYS_MAX,
               "SRV__KEYS_MAX");
_Static_assert(SRV_CONFIG_MAX_CRON <= SRV__ENTRIES_MAX && SRV_CONFIG_MAX_LISTEN <= SRV__ENTRIES_MAX &&
                   SRV_CONFIG_MAX_SNI <= SRV__ENTRIES_MAX,
               "SRV__ENTRIES_MAX");

void *srv__schema_entry(srv__config_t *cfg, srv__sect_t kind, int entry)
{
    const srv__sect_desc_t *sd = &srv__schema[kind];
    return (char *)cfg + sd->array_off + (size_t)entry * sd->stride;
}

int *srv__schema_count(srv__config_t *cfg, srv__sect_t kind)
{
    return (int *)((char *)cfg + srv__schema[kind].count_off);
}

int *srv__schema_entry_line(srv__config_t *cfg, srv__sect_t kind, int entry)
{
    switch (kind) {
    case SRV__SECT_LISTEN:
        return &cfg->listen[entry].line;
    case SRV__SECT_TABLE:
        return &cfg->table[entry].line;
    case SRV__SECT_CRON:
        return &cfg->cron[entry].line;
    case SRV__SECT_SNI:
        return &cfg->sni[entry].line;
    default:
        return &cfg->process[entry].line;
    }
}

int srv__schema_find_key(const srv__sect_desc_t *sd, const char *key)
{
    for (int i = 0; i < sd->nkeys; i++) {
        if (strcmp(sd->keys[i].name, key) == 0)
            return i;
    }
    return -1;
}

const char *srv__schema_refused(srv__sect_t kind, const char *key)
{
    for (size_t r = 0; refused_keys[r].key != NULL; r++) {
        if (refused_keys[r].sect == (int)kind && strcmp(refused_keys[r].key, key) == 0)
            return refused_keys[r].why;
    }
    return NULL;
}

const char *srv__schema_listen_type_name(srv__listen_type_t t)
{
    return listen_type_names[t];
}

static void listen_defaults(srv__listen_config_t *l)
{
    memset(l, 0, sizeof(*l));
    l->type = SRV_LISTEN_HTTP;
    snprintf(l->host, sizeof(l->host), "127.0.0.1");
    l->backlog = 511;
    l->socket_mode = 0666;
    l->websocket_max_message_size = 16 * SRV__MiB;
    l->package_length_type = 'N';
    l->package_max_length = -1;
    l->heartbeat_idle_time = -1;
    l->heartbeat_check_interval = -1;
    l->ssl_protocols = SRV__TLS_DEFAULT_PROTOCOLS;
    l->ssl_session_tickets = true;
    l->ssl_handshake_timeout = 10;
    l->http2_max_concurrent_streams = -1;
    l->http2_initial_window_size = -1;
    l->http2_max_frame_size = -1;
    l->http2_max_header_list_size = -1;
    l->http2_idle_timeout = -1;
    l->request_timeout = -1;
    l->access_log = true;
}

void srv__schema_entry_defaults(srv__config_t *cfg, srv__sect_t kind, int entry)
{
    memset(srv__schema_entry(cfg, kind, entry), 0, srv__schema[kind].stride);
    switch (kind) {
    case SRV__SECT_LISTEN:
        listen_defaults(&cfg->listen[entry]);
        break;
    case SRV__SECT_CRON:
        cfg->cron[entry].max_wait_time = 3;
        break;
    case SRV__SECT_PROCESS:
        cfg->process[entry].num = 1;
        cfg->process[entry].restart_interval = 1;
        cfg->process[entry].pipe = true;
        break;
    default:
        break;
    }
}

void srv__config_defaults(srv__config_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    if (cpus < 1)
        cpus = 1;
    cfg->mode = SRV_MODE_PROCESS;
    cfg->reactor_backend = SRV_BACKEND_AUTO;
    cfg->reactor_num = cpus > 64 ? 64 : (int)cpus;
    cfg->worker_num = cpus > 1024 ? 1024 : (int)cpus;
    cfg->task_worker_num = 0;
    cfg->max_request = 0;
    cfg->max_request_grace = 0;
    cfg->max_conn = 100000;
    cfg->dispatch_mode = 2;
    cfg->log_level = SRV_LOG_NOTICE;
    cfg->max_wait_time = 3;
    cfg->package_max_length = 2 * SRV__MiB;
    cfg->buffer_output_size = 2 * SRV__MiB;
    cfg->http_header_max = 8192;
    cfg->http_header_timeout = 10000;
    cfg->http_keepalive_timeout = 60000;
    cfg->http_body_timeout = 30000;
    cfg->send_timeout = 60000;
    cfg->http2_max_concurrent_streams = 128;
    cfg->http2_initial_window_size = 65536;
    cfg->http2_max_frame_size = 16384;
    cfg->http2_max_header_list_size = 32768;
    cfg->http2_idle_timeout = 180;
    cfg->task_max_queue = 65536;
    cfg->ipc_buffer_size = (int)(4 * SRV__MiB);
    char cwd[SRV_CONFIG_PATH_MAX - sizeof("/srv.pid")];
    if (getcwd(cwd, sizeof(cwd)) != NULL)
        snprintf(cfg->pid_file, sizeof(cfg->pid_file), "%s/srv.pid",
                 strcmp(cwd, "/") == 0 ? "" : cwd);
    else
        snprintf(cfg->pid_file, sizeof(cfg->pid_file), "srv.pid");
}

static bool keys_equal(const srv__key_desc_t *keys, int nkeys, const void *a, const void *b)
{
    for (int k = 0; k < nkeys; k++) {
        const char *x = (const char *)a + keys[k].off, *y = (const char *)b + keys[k].off;
        switch (keys[k].type) {
        case SRV__KT_TLSVER:
            if (*(const unsigned *)x != *(const unsigned *)y)
                return false;
            break;
        case SRV__KT_INT:
        case SRV__KT_ENUM:
        case SRV__KT_MODE:
            if (*(const int *)x != *(const int *)y)
                return false;
            break;
        case SRV__KT_I64:
            if (*(const int64_t *)x != *(const int64_t *)y)
                return false;
            break;
        case SRV__KT_BOOL:
            if (*(const bool *)x != *(const bool *)y)
                return false;
            break;
        case SRV__KT_LENTYPE:
            if (*x != *y)
                return false;
            break;
        case SRV__KT_EOF:
            break; /* compared with its length by the caller */
        default:
            if (strncmp(x, y, keys[k].size) != 0)
                return false;
        }
    }
    return true;
}

bool srv__config_equal(const srv__config_t *a, const srv__config_t *b)
{
    if (!keys_equal(server_keys, NKEYS(server_keys), a, b) || a->nlisten != b->nlisten ||
        a->ntable != b->ntable || a->ncron != b->ncron || a->nprocess != b->nprocess)
        return false;
    for (int i = 0; i < a->nlisten; i++) {
        const srv__listen_config_t *x = &a->listen[i], *y = &b->listen[i];
        if (!keys_equal(listen_keys, NKEYS(listen_keys), x, y) ||
            x->package_eof_len != y->package_eof_len || x->package_eof_len < 0 ||
            x->package_eof_len > (int)sizeof(x->package_eof) ||
            memcmp(x->package_eof, y->package_eof, (size_t)x->package_eof_len) != 0)
            return false;
    }
    for (int i = 0; i < a->ntable; i++) {
        const srv__table_config_t *x = &a->table[i], *y = &b->table[i];
        if (!keys_equal(table_keys, NKEYS(table_keys), x, y) || x->ncolumns != y->ncolumns)
            return false;
        for (int c = 0; c < x->ncolumns && c < SRV_CONFIG_MAX_COLUMN; c++) {
            if (!keys_equal(column_keys, NKEYS(column_keys), &x->columns[c], &y->columns[c]))
                return false;
        }
    }
    for (int i = 0; i < a->ncron; i++) {
        if (!keys_equal(cron_keys, NKEYS(cron_keys), &a->cron[i], &b->cron[i]))
            return false;
    }
    for (int i = 0; i < a->nprocess; i++) {
        if (!keys_equal(process_keys, NKEYS(process_keys), &a->process[i], &b->process[i]))
            return false;
    }
    if (a->nsni != b->nsni)
        return false;
    for (int i = 0; i < a->nsni; i++) {
        if (a->sni[i].listener != b->sni[i].listener ||
            !keys_equal(sni_keys, NKEYS(sni_keys), &a->sni[i], &b->sni[i]))
            return false;
    }
    return true;
}

/* ---- reload: what may change without re-binding (see srv__config_reload_merge) ---- */

typedef struct notes {
    char *buf;
    size_t len, used;
    int n;
} notes_t;

/* One line "needs restart: <a><b><c>". */
static void note(notes_t *nt, const char *a, const char *b, const char *c)
{
    nt->n++;
    if (nt->used >= nt->len)
        return;
    int w = snprintf(nt->buf + nt->used, nt->len - nt->used, "needs restart: %s%s%s\n", a, b, c);
    if (w > 0)
        nt->used += (size_t)w < nt->len - nt->used ? (size_t)w : nt->len - nt->used - 1;
}

/* Keys flagged SRV__KF_RESTART that differ: noted as "<prefix>.<key>", and put back to run's. */
static void keep_restart_keys(const srv__key_desc_t *keys, int nkeys, const void *run, void *next,
                              const char *prefix, notes_t *nt)
{
    for (int k = 0; k < nkeys; k++) {
        if (!(keys[k].flags & SRV__KF_RESTART) || keys_equal(&keys[k], 1, run, next))
            continue;
        note(nt, prefix, keys[k].name, "");
        memcpy((char *)next + keys[k].off, (const char *)run + keys[k].off, keys[k].size);
    }
}

static int listen_by_name(const srv__config_t *cfg, const char *name)
{
    for (int i = 0; i < cfg->nlisten; i++)
        if (strcmp(cfg->listen[i].name, name) == 0)
            return i;
    return -1;
}

/* Listeners: run's, in run's order (the sockets are bound); each takes next's settings but
 * for the ones that need a new socket. Added and removed listeners are noted, not applied. */
static void merge_listeners(const srv__config_t *run, srv__config_t *next, notes_t *nt)
{
    static srv__listen_config_t merged[SRV_CONFIG_MAX_LISTEN];
    int map[SRV_CONFIG_MAX_LISTEN]; /* next's index -> merged index, -1 dropped */
    char prefix[SRV_CONFIG_NAME_MAX + 16];
    for (int j = 0; j < next->nlisten; j++) {
        map[j] = listen_by_name(run, next->listen[j].name);
        if (map[j] < 0)
            note(nt, "listen.", next->listen[j].name, " (added)");
    }
    for (int i = 0; i < run->nlisten; i++) {
        int j = listen_by_name(next, run->listen[i].name);
        merged[i] = j >= 0 ? next->listen[j] : run->listen[i];
        if (j < 0) {
            note(nt, "listen.", run->listen[i].name, " (removed)");
            continue;
        }
        snprintf(prefix, sizeof(prefix), "listen.%s.", run->listen[i].name);
        keep_restart_keys(listen_keys, NKEYS(listen_keys), &run->listen[i], &merged[i], prefix,
                          nt);
    }
    /* SNI certificates follow their listener; those of a dropped listener go. */
    int nsni = 0;
    for (int k = 0; k < next->nsni; k++) {
        int li = map[next->sni[k].listener];
        if (li < 0 || !merged[li].ssl)
            continue;
        next->sni[nsni] = next->sni[k];
        next->sni[nsni++].listener = li;
    }
    next->nsni = nsni;
    memcpy(next->listen, merged, sizeof(merged[0]) * (size_t)run->nlisten);
    next->nlisten = run->nlisten;
}

static const srv__table_config_t *table_by_name(const srv__config_t *cfg, const char *name)
{
    for (int i = 0; i < cfg->ntable; i++)
        if (strcmp(cfg->table[i].name, name) == 0)
            return &cfg->table[i];
    return NULL;
}

static bool table_same(const srv__table_config_t *x, const srv__table_config_t *y)
{
    if (!keys_equal(table_keys, NKEYS(table_keys), x, y) || x->ncolumns != y->ncolumns)
        return false;
    for (int c = 0; c < x->ncolumns; c++)
        if (!keys_equal(column_keys, NKEYS(column_keys), &x->columns[c], &y->columns[c]))
            return false;
    return true;
}

/* Table schemas size the shared region: each change is named, and all stay as they run. */
static void merge_tables(const srv__config_t *run, srv__config_t *next, notes_t *nt)
{
    int before = nt->n;
    for (int i = 0; i < run->ntable; i++) {
        const srv__table_config_t *y = table_by_name(next, run->table[i].name);
        if (y == NULL)
            note(nt, "table.", run->table[i].name, " (removed)");
        else if (!table_same(&run->table[i], y))
            note(nt, "table.", run->table[i].name, "");
    }
    for (int i = 0; i < next->ntable; i++)
        if (table_by_name(run, next->table[i].name) == NULL)
            note(nt, "table.", next->table[i].name, " (added)");
    if (nt->n > before || run->ntable != next->ntable) {
        next->ntable = run->ntable;
        memcpy(next->table, run->table, sizeof(run->table));
    }
}

int srv__config_reload_merge(const srv__config_t *run, srv__config_t *next, char *notes,
                             size_t len)
{
    notes_t nt = {notes, len, 0, 0};
    if (len > 0)
        notes[0] = '\0';
    keep_restart_keys(server_keys, NKEYS(server_keys), run, next, "server.", &nt);
    merge_listeners(run, next, &nt);
    merge_tables(run, next, &nt);
    return nt.n;
}
