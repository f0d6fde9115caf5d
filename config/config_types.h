/* The validated configuration's plain data: srv__config_t and its sections, with no function.
 * config.h (the API other folders call) includes it; inside config/ the schema, the loader and
 * the checks include only this, so that nothing under the API calls back up into it. */
#ifndef SRV_CONFIG_TYPES_H
#define SRV_CONFIG_TYPES_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/base/log.h"  /* srv__log_level_t */
#include "core/loop/loop.h" /* srv__backend_t */

#define SRV_CONFIG_MAX_LISTEN 32
#define SRV_CONFIG_MAX_TABLE 32
#define SRV_CONFIG_MAX_COLUMN 32
#define SRV_CONFIG_MAX_CRON 64
#define SRV_CONFIG_MAX_PROCESS 32
#define SRV_CONFIG_MAX_MAINT_ALLOW 16
#define SRV_CONFIG_MAINT_ALLOW_LEN 128
#define SRV_CONFIG_NAME_MAX 64
#define SRV_CONFIG_PATH_MAX 512
#define SRV_CONFIG_MAX_SNI 64 /* SNI certificates, all listeners together */

typedef enum { SRV_MODE_PROCESS = 0, SRV_MODE_BASE = 1 } srv__mode_t;
typedef enum { SRV_LISTEN_HTTP = 0, SRV_LISTEN_TCP = 1, SRV_LISTEN_UDP = 2 } srv__listen_type_t;
typedef enum { SRV_COL_INT = 0, SRV_COL_FLOAT = 1, SRV_COL_STRING = 2 } srv__col_type_t;
typedef enum { SRV_ALOG_COMBINED = 0, SRV_ALOG_JSON = 1 } srv__alog_format_t;

/* One [[listen]] / [listen.NAME] entry. Integer options left at -1 inherit the server's. */
typedef struct srv__listen_config {
    char name[SRV_CONFIG_NAME_MAX];
    srv__listen_type_t type;
    char host[256];                    /* "" for a unix socket; default "127.0.0.1" */
    int port;                          /* 0 when path is set (or ephemeral: 0 is rejected) */
    char path[108];                    /* unix socket path (absolute after load), "" otherwise */
    int backlog;                       /* listen(2) backlog, default 511 */
    int socket_mode;                   /* unix socket file permissions (0..0777), default 0666 */
    char handler[SRV_CONFIG_NAME_MAX]; /* handler set of the app; default "" = the default set */
    /* http */
    char document_root[SRV_CONFIG_PATH_MAX]; /* absolute after load; "" = no static files */
    bool websocket;
    bool websocket_compression;         /* permessage-deflate when the client offers it */
    int64_t websocket_max_message_size; /* bytes, default 16 MiB */
    int websocket_ping_interval;        /* ms, 0 = no server pings; default 0 */
    /* tcp framing (Swoole's names) */
    bool open_eof_check;
    bool open_eof_split;
    char package_eof[9]; /* up to 8 bytes, escapes (\r \n \t \0 \xHH) decoded */
    int package_eof_len;
    bool open_length_check;
    char package_length_type; /* one of c C n N v V (1/2/4 bytes, signedness, endian) */
    int package_length_offset;
    int package_body_offset;
    /* overridable per listener; -1 = inherit from [server] */
    int64_t package_max_length;
    int heartbeat_idle_time;      /* seconds */
    int heartbeat_check_interval; /* seconds */
    /* TLS (http and tcp listeners; Swoole's names) */
    bool ssl;
    char ssl_cert_file[SRV_CONFIG_PATH_MAX]; /* PEM, chain after the leaf; absolute */
    char ssl_key_file[SRV_CONFIG_PATH_MAX];
    unsigned ssl_protocols;      /* SRV__TLS_V* bits (protocols/tls.h); default 1.2 and 1.3 */
    char ssl_ciphers[512];       /* TLS 1.2 cipher list; "" = OpenSSL's default */
    char ssl_ciphersuites[256];  /* TLS 1.3 suites; "" = OpenSSL's default */
    bool ssl_verify_peer;        /* ask for a client certificate (mutual TLS) */
    bool ssl_verify_optional;    /* with verify_peer: ask, but do not require one */
    char ssl_client_cert_file[SRV_CONFIG_PATH_MAX]; /* CA bundle for client certificates */
    bool ssl_session_tickets;                       /* default true */
    int ssl_handshake_timeout;                      /* seconds, default 10 */
    char ssl_alpn[128]; /* tcp: space-separated protocols to offer; "" = none */
    /* HTTP/2 (http listeners; Swoole's open_http2_protocol): with ssl, ALPN offers h2 then
     * http/1.1; without, h2c by prior knowledge and by Upgrade. The http2_* settings are -1 to
     * inherit [server]'s. */
    bool open_http2_protocol;
    int64_t http2_max_concurrent_streams;
    int64_t http2_initial_window_size; /* bytes */
    int64_t http2_max_frame_size;      /* bytes */
    int64_t http2_max_header_list_size; /* bytes, as HTTP/2 counts them (name + value + 32) */
    int64_t http2_idle_timeout;         /* seconds without a stream before GOAWAY */
    bool access_log;    /* http: requests go to [server]'s access_log; default true */
    int request_timeout; /* http: seconds, 0 = off, -1 = inherit [server]'s (default) */
    int ssl_cert_line;  /* where ssl_cert_file was set (certificate warnings) */
    int line;           /* where it was declared, for later diagnostics */
} srv__listen_config_t;

/* One SNI certificate of a TLS listener ([[listen.sni]] / [listen.NAME.sni.HOST]). */
typedef struct srv__sni_config {
    int listener; /* index into listen[] */
    char host[256]; /* exact name, or "*.example.org" */
    char ssl_cert_file[SRV_CONFIG_PATH_MAX];
    char ssl_key_file[SRV_CONFIG_PATH_MAX];
    int ssl_cert_line; /* where ssl_cert_file was set (certificate warnings) */
    int line;
} srv__sni_config_t;

typedef struct srv__column_config {
    char name[SRV_CONFIG_NAME_MAX];
    srv__col_type_t type;
    int size; /* string max length in bytes; 8 for int and float */
} srv__column_config_t;

typedef struct srv__table_config {
    char name[SRV_CONFIG_NAME_MAX];
    int64_t size; /* rows */
    int ncolumns;
    srv__column_config_t columns[SRV_CONFIG_MAX_COLUMN];
    int line;
} srv__table_config_t;

typedef struct srv__cron_config {
    char name[SRV_CONFIG_NAME_MAX];
    char handler[SRV_CONFIG_NAME_MAX]; /* function exported by the app module */
    int64_t interval_ms;               /* 0 when schedule is used */
    bool immediate;                    /* run once at start before the first interval */
    char schedule[128];                /* five-field crontab, "" when interval_ms is used */
    int max_wait_time;                 /* seconds to let a running job finish on reload */
    bool global_lock;                  /* take the Redis lock before running (needs redis) */
    int line;
} srv__cron_config_t;

typedef struct srv__process_config {
    char name[SRV_CONFIG_NAME_MAX];
    char handler[SRV_CONFIG_NAME_MAX]; /* entry function exported by the app module */
    int num;                           /* default 1 */
    int restart_interval;              /* seconds before restarting one that exited, default 1 */
    bool pipe;                         /* message pipe to workers, default true */
    int line;
} srv__process_config_t;

typedef struct srv__config {
    char file[SRV_CONFIG_PATH_MAX]; /* the file it was loaded from, absolute */
    /* [server] */
    srv__mode_t mode;               /* default process */
    srv__backend_t reactor_backend; /* default auto */
    int reactor_num;                /* default CPU count, 1..64 */
    int worker_num;                 /* default CPU count, 1..1024 */
    int task_worker_num;            /* default 0, 0..1024 */
    int64_t max_request;            /* 0 = never recycle */
    int64_t max_request_grace;      /* jitter, default max_request/2 */
    int max_conn;                   /* default 100000, 1..1000000 */
    int dispatch_mode;              /* 1..5, default 2 */
    bool daemonize;
    char pid_file[SRV_CONFIG_PATH_MAX]; /* absolute; default <config dir>/srv.pid */
    char log_file[SRV_CONFIG_PATH_MAX]; /* absolute; "" = stderr */
    srv__log_level_t log_level;         /* default notice */
    char app[SRV_CONFIG_PATH_MAX];      /* absolute path of the app module; required */
    int max_wait_time;                  /* seconds, default 3 */
    int64_t package_max_length;         /* bytes, default 2 MiB */
    int64_t buffer_output_size;         /* bytes, default 2 MiB */
    int heartbeat_idle_time;            /* seconds, 0 = off */
    int heartbeat_check_interval;       /* seconds, 0 = off */
    int http_header_max;        /* bytes, default 8192 (414 for the request line, 431 beyond) */
    int http_header_timeout;    /* ms to receive a whole header block, default 10000 */
    int http_keepalive_timeout; /* ms idle between requests, default 60000 */
    int http_body_timeout;      /* ms between body reads, default 30000 */
    int send_timeout;           /* ms a client may leave output unread, default 60000 */
    /* HTTP/2 defaults for listeners with open_http2_protocol (nginx's where it has one) */
    int64_t http2_max_concurrent_streams; /* default 128 */
    int64_t http2_initial_window_size;    /* default 65536 */
    int64_t http2_max_frame_size;         /* default 16384 */
    int64_t http2_max_header_list_size;   /* default 32768 */
    int64_t http2_idle_timeout;           /* seconds, default 180 */
    int64_t task_max_queue;     /* default 65536 */
    int ipc_buffer_size;        /* bytes per reactor-worker channel, default 4 MiB */
    char redis[256];            /* "host:port" or unix path; "" = no Redis */
    char redis_password[256];   /* AUTH before anything else ("" = none) */
    int redis_db;               /* SELECT it when > 0 */
    /* Several instances sharing redis as one (core/worker/cluster.c): broadcasts reach every
     * instance. instance_id names this one (default: host name and first listener's port). */
    bool cluster;
    char instance_id[128];
    /* Observability: the admin endpoint (/metrics, /health, /info, dashboard) on host:port,
     * served by the master ("" = off), its bearer token ("" = none); the access log ("" = off,
     * "-" = stderr) and its format; the slow-request threshold (ms, 0 = off). */
    char admin_server[128];
    char admin_token[128];
    char access_log[SRV_CONFIG_PATH_MAX];
    srv__alog_format_t access_log_format; /* default combined */
    int request_slowlog_timeout;
    /* Harakiri and memory recycling (core/process/watchdog.c): seconds a handler or a task may
     * run before its worker is killed (0 = off); RSS bytes above which a worker is replaced
     * gracefully like max_request (0 = off). */
    int request_timeout;
    int task_timeout;
    int64_t max_worker_rss;
    /* Development: reload when the app module, the config file or one of the paths (absolute
     * after load, space-separated) changes, after 300 ms of quiet. */
    bool inotify_reload;
    char inotify_reload_paths[2048];
    /* Path prefixes maintenance mode lets through (space-separated, each "/...", at most
     * SRV_CONFIG_MAX_MAINT_ALLOW of SRV_CONFIG_MAINT_ALLOW_LEN bytes). */
    char maintenance_allow[SRV_CONFIG_MAX_MAINT_ALLOW * (SRV_CONFIG_MAINT_ALLOW_LEN + 1)];
    /* Privilege drop: user and group names ("" = keep the starting user's; a user alone means
     * its primary group), and an absolute directory the manager chroots into ("" = none). */
    char user[64];
    char group[64];
    char chroot[SRV_CONFIG_PATH_MAX];
    /* repeated sections */
    int nlisten;
    srv__listen_config_t listen[SRV_CONFIG_MAX_LISTEN];
    int ntable;
    srv__table_config_t table[SRV_CONFIG_MAX_TABLE];
    int ncron;
    srv__cron_config_t cron[SRV_CONFIG_MAX_CRON];
    int nprocess;
    srv__process_config_t process[SRV_CONFIG_MAX_PROCESS];
    int nsni;
    srv__sni_config_t sni[SRV_CONFIG_MAX_SNI];
} srv__config_t;

/* The first problem found while loading, as "file:line: key: what is wrong". */
typedef struct srv__config_error {
    char file[SRV_CONFIG_PATH_MAX];
    int line; /* 0 when the problem is not tied to a line (file unreadable) */
    char key[128];
    char msg[256];
} srv__config_error_t;

#endif
