/* srv__config: loads a TOML or INI file into one validated srv__config_t. The readers (toml.cc,
 * ini.c) only tokenise; this file owns the schema (key names, types, ranges, defaults), resolves
 * relative paths against the file's folder, checks keys against each other, and reports the
 * first problem as "file:line: key: what is wrong". */
#include "config/config.h"
#include "config/cron.h"
#include "config/config_internal.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define KiB (INT64_C(1024))
#define MiB (KiB * 1024)
#define GiB (MiB * 1024)
/* A config is a page of text; refusing big files keeps a wrong -c argument from eating memory. */
#define CONFIG_FILE_MAX (4 * MiB)
#define KEYS_MAX 32
#define ENTRIES_MAX 64

typedef enum {
    KT_INT,     /* int */
    KT_I64,     /* int64_t */
    KT_BOOL,    /* bool */
    KT_ENUM,    /* int-sized enum, names in enums[] */
    KT_STR,     /* char[size], any printable text */
    KT_NAME,    /* char[size], [A-Za-z0-9_-]{1,63} */
    KT_IDENT,   /* char[size], a C identifier (a symbol of the app module) */
    KT_PATH,    /* char[size], made absolute against the config's folder */
    KT_HOST,    /* char[size], IPv4/IPv6 literal or host name */
    KT_EOF,     /* package_eof: escapes decoded, length in package_eof_len */
    KT_LENTYPE, /* package_length_type: one char of c C n N v V */
    KT_SCHED,   /* char[size], five crontab fields */
    KT_REDIS,   /* char[size], "host:port" or a unix socket path */
    KT_MODE,    /* int, file permission bits written as an octal string ("0660") */
} ktype_t;

enum {
    KF_NEG1 = 1,     /* -1 (inherit from [server]) is allowed besides the range */
    KF_HTTP = 2,     /* only on http listeners */
    KF_TCP = 4,      /* only on tcp listeners */
    KF_EMPTY_OK = 8, /* "" is allowed (means "none") */
};

typedef struct key_desc {
    const char *name;
    ktype_t type;
    size_t off;
    size_t size;
    int64_t min, max;
    const char *const *enums;
    int flags;
} key_desc_t;

typedef struct sect_desc {
    const char *name;
    const char *what; /* for messages: "listener", "table", ... */
    const key_desc_t *keys;
    int nkeys;
    size_t array_off, stride, count_off;
    int max;
} sect_desc_t;

static const char *const mode_names[] = {"process", "base", NULL};
static const char *const backend_names[] = {"auto", "io_uring", "epoll", NULL};
static const char *const level_names[] = {"error", "warn", "notice", "info", "debug", NULL};
static const char *const listen_type_names[] = {"http", "tcp", "udp", NULL};
static const char *const col_type_names[] = {"int", "float", "string", NULL};

#define F(type, field) offsetof(type, field), sizeof(((type *)0)->field)
#define SV(field) F(srv__config_t, field)
#define LI(field) F(srv__listen_config_t, field)
#define TB(field) F(srv__table_config_t, field)
#define CO(field) F(srv__column_config_t, field)
#define CR(field) F(srv__cron_config_t, field)
#define PR(field) F(srv__process_config_t, field)

static const key_desc_t server_keys[] = {
    {"mode", KT_ENUM, SV(mode), 0, 0, mode_names, 0},
    {"reactor_backend", KT_ENUM, SV(reactor_backend), 0, 0, backend_names, 0},
    {"reactor_num", KT_INT, SV(reactor_num), 1, 64, NULL, 0},
    {"worker_num", KT_INT, SV(worker_num), 1, 1024, NULL, 0},
    {"task_worker_num", KT_INT, SV(task_worker_num), 0, 1024, NULL, 0},
    {"max_request", KT_I64, SV(max_request), 0, INT32_MAX, NULL, 0},
    {"max_request_grace", KT_I64, SV(max_request_grace), 0, INT32_MAX, NULL, 0},
    {"max_conn", KT_INT, SV(max_conn), 1, 1000000, NULL, 0},
    {"dispatch_mode", KT_INT, SV(dispatch_mode), 1, 5, NULL, 0},
    {"daemonize", KT_BOOL, SV(daemonize), 0, 0, NULL, 0},
    {"pid_file", KT_PATH, SV(pid_file), 0, 0, NULL, 0},
    {"log_file", KT_PATH, SV(log_file), 0, 0, NULL, KF_EMPTY_OK},
    {"log_level", KT_ENUM, SV(log_level), 0, 0, level_names, 0},
    {"app", KT_PATH, SV(app), 0, 0, NULL, 0},
    {"max_wait_time", KT_INT, SV(max_wait_time), 0, 3600, NULL, 0},
    {"package_max_length", KT_I64, SV(package_max_length), 64, GiB, NULL, 0},
    {"buffer_output_size", KT_I64, SV(buffer_output_size), 4096, GiB, NULL, 0},
    {"heartbeat_idle_time", KT_INT, SV(heartbeat_idle_time), 0, 86400, NULL, 0},
    {"heartbeat_check_interval", KT_INT, SV(heartbeat_check_interval), 0, 86400, NULL, 0},
    {"http_header_max", KT_INT, SV(http_header_max), 1024, MiB, NULL, 0},
    {"http_header_timeout", KT_INT, SV(http_header_timeout), 1, 3600000, NULL, 0},
    {"http_keepalive_timeout", KT_INT, SV(http_keepalive_timeout), 0, 3600000, NULL, 0},
    {"http_body_timeout", KT_INT, SV(http_body_timeout), 1, 3600000, NULL, 0},
    {"send_timeout", KT_INT, SV(send_timeout), 1, 3600000, NULL, 0},
    {"task_max_queue", KT_I64, SV(task_max_queue), 1, 100000000, NULL, 0},
    {"ipc_buffer_size", KT_INT, SV(ipc_buffer_size), 64 * KiB, GiB, NULL, 0},
    {"redis", KT_REDIS, SV(redis), 0, 0, NULL, KF_EMPTY_OK},
};

enum {
    L_NAME,
    L_TYPE,
    L_HOST,
    L_PORT,
    L_PATH,
    L_BACKLOG,
    L_HANDLER,
    L_DOCUMENT_ROOT,
    L_WEBSOCKET,
    L_WEBSOCKET_COMPRESSION,
    L_WEBSOCKET_MAX_MESSAGE_SIZE,
    L_WEBSOCKET_PING_INTERVAL,
    L_OPEN_EOF_CHECK,
    L_OPEN_EOF_SPLIT,
    L_PACKAGE_EOF,
    L_OPEN_LENGTH_CHECK,
    L_PACKAGE_LENGTH_TYPE,
    L_PACKAGE_LENGTH_OFFSET,
    L_PACKAGE_BODY_OFFSET,
    L_PACKAGE_MAX_LENGTH,
    L_HEARTBEAT_IDLE_TIME,
    L_HEARTBEAT_CHECK_INTERVAL,
    L_SOCKET_MODE,
};

static const key_desc_t listen_keys[] = {
    [L_NAME] = {"name", KT_NAME, LI(name), 0, 0, NULL, 0},
    [L_TYPE] = {"type", KT_ENUM, LI(type), 0, 0, listen_type_names, 0},
    [L_HOST] = {"host", KT_HOST, LI(host), 0, 0, NULL, 0},
    [L_PORT] = {"port", KT_INT, LI(port), 1, 65535, NULL, 0},
    [L_PATH] = {"path", KT_PATH, LI(path), 0, 0, NULL, 0},
    [L_BACKLOG] = {"backlog", KT_INT, LI(backlog), 1, 65535, NULL, 0},
    [L_HANDLER] = {"handler", KT_NAME, LI(handler), 0, 0, NULL, 0},
    [L_DOCUMENT_ROOT] = {"document_root", KT_PATH, LI(document_root), 0, 0, NULL,
                         KF_HTTP | KF_EMPTY_OK},
    [L_WEBSOCKET] = {"websocket", KT_BOOL, LI(websocket), 0, 0, NULL, KF_HTTP},
    [L_WEBSOCKET_COMPRESSION] = {"websocket_compression", KT_BOOL, LI(websocket_compression), 0, 0,
                                 NULL, KF_HTTP},
    [L_WEBSOCKET_MAX_MESSAGE_SIZE] = {"websocket_max_message_size", KT_I64,
                                      LI(websocket_max_message_size), 1, GiB, NULL, KF_HTTP},
    [L_WEBSOCKET_PING_INTERVAL] = {"websocket_ping_interval", KT_INT, LI(websocket_ping_interval),
                                   0, 3600000, NULL, KF_HTTP},
    [L_OPEN_EOF_CHECK] = {"open_eof_check", KT_BOOL, LI(open_eof_check), 0, 0, NULL, KF_TCP},
    [L_OPEN_EOF_SPLIT] = {"open_eof_split", KT_BOOL, LI(open_eof_split), 0, 0, NULL, KF_TCP},
    [L_PACKAGE_EOF] = {"package_eof", KT_EOF, LI(package_eof), 0, 0, NULL, KF_TCP},
    [L_OPEN_LENGTH_CHECK] = {"open_length_check", KT_BOOL, LI(open_length_check), 0, 0, NULL,
                             KF_TCP},
    [L_PACKAGE_LENGTH_TYPE] = {"package_length_type", KT_LENTYPE, LI(package_length_type), 0, 0,
                               NULL, KF_TCP},
    [L_PACKAGE_LENGTH_OFFSET] = {"package_length_offset", KT_INT, LI(package_length_offset), 0,
                                 65535, NULL, KF_TCP},
    [L_PACKAGE_BODY_OFFSET] = {"package_body_offset", KT_INT, LI(package_body_offset), 0, 65535,
                               NULL, KF_TCP},
    [L_PACKAGE_MAX_LENGTH] = {"package_max_length", KT_I64, LI(package_max_length), 64, GiB, NULL,
                              KF_NEG1},
    [L_HEARTBEAT_IDLE_TIME] = {"heartbeat_idle_time", KT_INT, LI(heartbeat_idle_time), 0, 86400,
                               NULL, KF_NEG1},
    [L_HEARTBEAT_CHECK_INTERVAL] = {"heartbeat_check_interval", KT_INT,
                                    LI(heartbeat_check_interval), 0, 86400, NULL, KF_NEG1},
    [L_SOCKET_MODE] = {"socket_mode", KT_MODE, LI(socket_mode), 0, 0777, NULL, 0},
};

enum { T_NAME, T_SIZE };
static const key_desc_t table_keys[] = {
    [T_NAME] = {"name", KT_NAME, TB(name), 0, 0, NULL, 0},
    [T_SIZE] = {"size", KT_I64, TB(size), 1, 16 * MiB, NULL, 0},
};

enum { C_NAME, C_TYPE, C_SIZE };
static const key_desc_t column_keys[] = {
    [C_NAME] = {"name", KT_NAME, CO(name), 0, 0, NULL, 0},
    [C_TYPE] = {"type", KT_ENUM, CO(type), 0, 0, col_type_names, 0},
    [C_SIZE] = {"size", KT_INT, CO(size), 1, 65535, NULL, 0},
};

enum { CR_NAME, CR_HANDLER, CR_INTERVAL_MS, CR_IMMEDIATE, CR_SCHEDULE, CR_MAX_WAIT, CR_LOCK };
static const key_desc_t cron_keys[] = {
    [CR_NAME] = {"name", KT_NAME, CR(name), 0, 0, NULL, 0},
    [CR_HANDLER] = {"handler", KT_IDENT, CR(handler), 0, 0, NULL, 0},
    [CR_INTERVAL_MS] = {"interval_ms", KT_I64, CR(interval_ms), 1, INT64_C(31536000000), NULL, 0},
    [CR_IMMEDIATE] = {"immediate", KT_BOOL, CR(immediate), 0, 0, NULL, 0},
    [CR_SCHEDULE] = {"schedule", KT_SCHED, CR(schedule), 0, 0, NULL, 0},
    [CR_MAX_WAIT] = {"max_wait_time", KT_INT, CR(max_wait_time), 0, 3600, NULL, 0},
    [CR_LOCK] = {"global_lock", KT_BOOL, CR(global_lock), 0, 0, NULL, 0},
};

enum { P_NAME, P_HANDLER, P_NUM, P_RESTART, P_PIPE };
static const key_desc_t process_keys[] = {
    [P_NAME] = {"name", KT_NAME, PR(name), 0, 0, NULL, 0},
    [P_HANDLER] = {"handler", KT_IDENT, PR(handler), 0, 0, NULL, 0},
    [P_NUM] = {"num", KT_INT, PR(num), 1, 256, NULL, 0},
    [P_RESTART] = {"restart_interval", KT_INT, PR(restart_interval), 0, 3600, NULL, 0},
    [P_PIPE] = {"pipe", KT_BOOL, PR(pipe), 0, 0, NULL, 0},
};

#define NKEYS(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* Keys refused with a reason rather than as unknown. `user` was once accepted and never applied
 * (issue 11): the manager and workers kept running as root while the file said otherwise. It
 * comes back when privilege dropping is implemented. */
static const struct {
    int sect;
    const char *key;
    const char *why;
} refused_keys[] = {
    {SRV__SECT_SERVER, "user",
     "not supported yet: srv does not drop privileges, so every process would keep running as "
     "the user that started it; start srv as the user it should run as"},
};

static const sect_desc_t sects[SRV__SECT_COUNT] = {
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
};

_Static_assert(NKEYS(server_keys) <= KEYS_MAX && NKEYS(listen_keys) <= KEYS_MAX, "KEYS_MAX");
_Static_assert(SRV_CONFIG_MAX_CRON <= ENTRIES_MAX && SRV_CONFIG_MAX_LISTEN <= ENTRIES_MAX,
               "ENTRIES_MAX");

struct srv__loader {
    srv__config_t *cfg;
    srv__config_error_t *err;
    bool failed;
    bool ini; /* values arrive as strings and are converted here */
    char dir[SRV_CONFIG_PATH_MAX];
    int server_line;
    /* Line where each key was set, 0 = not set: the "set" flags for defaults and the line
     * validation blames. */
    int key_lines[SRV__SECT_COUNT][ENTRIES_MAX][KEYS_MAX];
    int col_lines[SRV_CONFIG_MAX_TABLE][SRV_CONFIG_MAX_COLUMN];
    int col_key_lines[SRV_CONFIG_MAX_TABLE][SRV_CONFIG_MAX_COLUMN][3];
};

void srv__config_error(srv__loader_t *ld, int line, const char *key, const char *fmt, ...)
{
    /* Keep the earliest problem: TOML hands keys over in name order, not file order. */
    if (ld->failed && (line <= 0 || (ld->err->line > 0 && line >= ld->err->line)))
        return;
    ld->failed = true;
    ld->err->line = line > 0 ? line : 0;
    snprintf(ld->err->key, sizeof(ld->err->key), "%s", key != NULL ? key : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ld->err->msg, sizeof(ld->err->msg), fmt, ap);
    va_end(ap);
    /* One error, one line of output: toml++ quotes what it saw raw, newlines included, and a
     * quoted TOML key may hold anything. */
    for (char *p = ld->err->msg; *p != '\0'; p++) {
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    }
    for (char *p = ld->err->key; *p != '\0'; p++) {
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    }
}

/* s (len bytes) quoted for a message: escapes control bytes, cuts long values. */
static const char *quote(char *buf, size_t size, const char *s, size_t len)
{
    size_t o = 0;
    buf[o++] = '"';
    for (size_t i = 0; i < len && o + 8 < size; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            buf[o++] = '\\';
            buf[o++] = (char)c;
        } else if (c < 0x20 || c == 0x7f) {
            o += (size_t)snprintf(buf + o, size - o, "\\x%02x", c);
        } else {
            buf[o++] = (char)c;
        }
        if (i + 1 < len && o + 8 >= size) {
            memcpy(buf + o, "...", 3);
            o += 3;
        }
    }
    buf[o++] = '"';
    buf[o] = '\0';
    return buf;
}

static const char *kind_name(srv__val_kind_t kind)
{
    switch (kind) {
    case SRV__VAL_STRING:
        return "string";
    case SRV__VAL_INT:
        return "integer";
    case SRV__VAL_FLOAT:
        return "float";
    case SRV__VAL_BOOL:
        return "boolean";
    case SRV__VAL_ARRAY:
        return "array";
    case SRV__VAL_TABLE:
        return "table";
    default:
        return "date/time";
    }
}

/* Name of what v holds, for "must be X, got Y". */
static const char *got(char *buf, size_t size, const srv__val_t *v)
{
    if (v->kind == SRV__VAL_STRING)
        return quote(buf, size, v->s, v->len);
    return kind_name(v->kind);
}

static int fail(srv__loader_t *ld, int line, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(srv__loader_t *ld, int line, const char *key, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    srv__config_error(ld, line, key, "%s", msg);
    return -EINVAL;
}

static int get_int(srv__loader_t *ld, const char *key, const srv__val_t *v, int line, int64_t *out)
{
    char buf[96];
    if (v->kind == SRV__VAL_INT) {
        *out = v->i;
        return 0;
    }
    if (ld->ini && v->kind == SRV__VAL_STRING && v->len > 0 && v->len < 32) {
        char num[32];
        memcpy(num, v->s, v->len);
        num[v->len] = '\0';
        char *end;
        errno = 0;
        long long n = strtoll(num, &end, 10);
        if (errno == 0 && *end == '\0' && !isspace((unsigned char)num[0])) {
            *out = n;
            return 0;
        }
    }
    return fail(ld, line, key, "must be an integer, got %s", got(buf, sizeof(buf), v));
}

static int get_bool(srv__loader_t *ld, const char *key, const srv__val_t *v, int line, bool *out)
{
    static const char *const yes[] = {"true", "yes", "on", "1", NULL};
    static const char *const no[] = {"false", "no", "off", "0", NULL};
    char buf[96];
    if (v->kind == SRV__VAL_BOOL) {
        *out = v->b;
        return 0;
    }
    if (ld->ini && v->kind == SRV__VAL_STRING) {
        for (int i = 0; yes[i] != NULL; i++) {
            if (strlen(yes[i]) == v->len && strncasecmp(v->s, yes[i], v->len) == 0) {
                *out = true;
                return 0;
            }
            if (strlen(no[i]) == v->len && strncasecmp(v->s, no[i], v->len) == 0) {
                *out = false;
                return 0;
            }
        }
    }
    return fail(ld, line, key, "must be a boolean (true or false), got %s",
                got(buf, sizeof(buf), v));
}

/* A string value copied NUL-terminated into out (size bytes). */
static int get_str(srv__loader_t *ld, const char *key, const srv__val_t *v, int line, char *out,
                   size_t size)
{
    char buf[96];
    if (v->kind != SRV__VAL_STRING)
        return fail(ld, line, key, "must be a string, got %s", kind_name(v->kind));
    if (memchr(v->s, '\0', v->len) != NULL)
        return fail(ld, line, key, "must not contain a NUL byte");
    if (v->len >= size)
        return fail(ld, line, key, "too long (max %zu bytes), got %s", size - 1,
                    quote(buf, sizeof(buf), v->s, v->len));
    memcpy(out, v->s, v->len);
    out[v->len] = '\0';
    return 0;
}

static bool is_name(const char *s, bool ident)
{
    size_t n = strlen(s);
    if (n < 1 || n > 63)
        return false;
    if (ident && !(isalpha((unsigned char)s[0]) || s[0] == '_'))
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!(isalnum(c) || c == '_' || (!ident && c == '-')))
            return false;
    }
    return true;
}

/* value made absolute against the config's folder into out. "./" prefixes are dropped so
 * logs show clean paths; ".." is left to the kernel, which knows about symlinks. */
static int resolve_path(srv__loader_t *ld, const char *key, const char *value, int line, char *out,
                        size_t size)
{
    int n;
    if (value[0] == '/') {
        n = snprintf(out, size, "%s", value);
    } else {
        while (value[0] == '.' && value[1] == '/') {
            value += 2;
            while (value[0] == '/')
                value++;
        }
        if (strcmp(value, ".") == 0 || value[0] == '\0')
            n = snprintf(out, size, "%s", ld->dir);
        else
            n = snprintf(out, size, "%s%s%s", ld->dir,
                         ld->dir[0] != '\0' && ld->dir[strlen(ld->dir) - 1] == '/' ? "" : "/",
                         value);
    }
    if (n < 0 || (size_t)n >= size)
        return fail(ld, line, key, "path too long once made absolute (max %zu bytes)", size - 1);
    return 0;
}

/* package_eof: \r \n \t \0 \\ \xHH, 1..8 bytes once decoded. */
static int decode_eof(srv__loader_t *ld, const char *key, const srv__val_t *v, int line,
                      srv__listen_config_t *l)
{
    char buf[96];
    char tmp[sizeof(l->package_eof)];
    size_t n = 0;
    if (v->kind != SRV__VAL_STRING)
        return fail(ld, line, key, "must be a string, got %s", kind_name(v->kind));
    for (size_t i = 0; i < v->len; i++) {
        char c = v->s[i];
        if (c == '\\') {
            if (++i >= v->len)
                return fail(ld, line, key, "ends with a lone backslash");
            switch (v->s[i]) {
            case 'r':
                c = '\r';
                break;
            case 'n':
                c = '\n';
                break;
            case 't':
                c = '\t';
                break;
            case '0':
                c = '\0';
                break;
            case '\\':
                c = '\\';
                break;
            case 'x': {
                if (i + 2 >= v->len || !isxdigit((unsigned char)v->s[i + 1]) ||
                    !isxdigit((unsigned char)v->s[i + 2]))
                    return fail(ld, line, key, "\\x needs two hex digits");
                char hex[3] = {v->s[i + 1], v->s[i + 2], '\0'};
                c = (char)strtol(hex, NULL, 16);
                i += 2;
                break;
            }
            default:
                return fail(ld, line, key, "unknown escape \\%c (use \\r \\n \\t \\0 \\\\ \\xHH)",
                            isprint((unsigned char)v->s[i]) ? v->s[i] : '?');
            }
        }
        if (n >= sizeof(tmp) - 1)
            return fail(ld, line, key, "must be 1 to 8 bytes, got %s",
                        quote(buf, sizeof(buf), v->s, v->len));
        tmp[n++] = c;
    }
    if (n == 0)
        return fail(ld, line, key, "must be 1 to 8 bytes, got \"\"");
    memset(l->package_eof, 0, sizeof(l->package_eof));
    memcpy(l->package_eof, tmp, n);
    l->package_eof_len = (int)n;
    return 0;
}

/* A listener host: an IPv4 or IPv6 literal, or a name that start resolves (core/listen.c tries
 * the string as a numeric address, then as a name). A string whose last label is all digits is
 * not a DNS name (RFC 3696 2), so it must be a dotted-quad address: "300.1.1.1" or "127.1" would
 * otherwise go to the resolver and fail only at start, or bind something the duplicate check
 * cannot compare. Names are only checked for syntax here; srv__config_check() resolves them. */
static int check_host(srv__loader_t *ld, const char *key, const char *s, int line, char *out,
                      size_t size)
{
    char buf[96], host[256];
    size_t n = strlen(s);
    /* "[::1]" as in URLs is accepted and stored bare. */
    bool bracketed = n >= 2 && s[0] == '[' && s[n - 1] == ']';
    if (bracketed) {
        s++;
        n -= 2;
    }
    if (n == 0 || n >= sizeof(host) || n >= size)
        return fail(ld, line, key, "must be an IP address or a host name, got %s",
                    quote(buf, sizeof(buf), s, n));
    memcpy(host, s, n);
    host[n] = '\0';
    unsigned char addr[16];
    if (strchr(host, ':') != NULL || bracketed) {
        if (inet_pton(AF_INET6, host, addr) != 1)
            return fail(ld, line, key, "not a valid IPv6 address: %s",
                        quote(buf, sizeof(buf), host, n));
    } else {
        const char *last = strrchr(host, '.');
        last = last != NULL ? last + 1 : host;
        bool numeric = last[0] != '\0' && strspn(last, "0123456789") == strlen(last);
        if (numeric && inet_pton(AF_INET, host, addr) != 1)
            return fail(ld, line, key, "not a valid IPv4 address (a.b.c.d, each 0 to 255): %s",
                        quote(buf, sizeof(buf), host, n));
        if (!numeric) {
            /* RFC 1123 labels: 1 to 63 letters, digits or '-', not at either end; a final '.'
             * (fully qualified) is allowed. */
            size_t label = 0;
            bool ok = n <= 253 || (n == 254 && host[253] == '.');
            for (size_t i = 0; i <= n && ok; i++) {
                unsigned char c = (unsigned char)host[i];
                if (c == '.' || c == '\0') {
                    ok = (label > 0 && label <= 63 && host[i - 1] != '-') ||
                         (c == '\0' && label == 0 && i > 0);
                    label = 0;
                } else if (isalnum(c) || c == '-') {
                    ok = label > 0 || c != '-';
                    label++;
                } else {
                    ok = false;
                }
            }
            if (!ok)
                return fail(ld, line, key, "must be an IP address or a host name, got %s",
                            quote(buf, sizeof(buf), host, n));
        }
    }
    memcpy(out, host, n + 1);
    return 0;
}

static int check_schedule(srv__loader_t *ld, const char *key, const char *s, int line)
{
    int fields = 0;
    for (const char *p = s; *p != '\0';) {
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p == '\0')
            break;
        fields++;
        while (*p != '\0' && *p != ' ' && *p != '\t')
            p++;
    }
    if (fields != 5 && s[0] != '@')
        return fail(ld, line, key,
                    "must have 5 fields (minute hour day-of-month month day-of-week), got %d",
                    fields);
    /* The same parser the timer process uses, so `srv check` catches what start would. */
    srv__cron_t tab;
    char why[160];
    if (srv__cron_parse(&tab, s, why, sizeof(why)) < 0)
        return fail(ld, line, key, "%s", why);
    return 0;
}

static int check_redis(srv__loader_t *ld, const char *key, const char *s, int line)
{
    char buf[96];
    if (s[0] == '\0' || s[0] == '/')
        return 0;
    const char *colon = strrchr(s, ':');
    char *end;
    long port = colon != NULL ? strtol(colon + 1, &end, 10) : 0;
    if (colon == NULL || colon == s || colon[1] == '\0' || *end != '\0' || port < 1 || port > 65535)
        return fail(ld, line, key, "must be \"host:port\" or a unix socket path, got %s",
                    quote(buf, sizeof(buf), s, strlen(s)));
    return 0;
}

/* A file mode as an octal string, "0660" or "660": a string in both syntaxes, because a TOML
 * integer 660 would be read as decimal and TOML forbids the leading zero that says octal. */
static int parse_mode(srv__loader_t *ld, const key_desc_t *kd, const srv__val_t *v, int line,
                      int *out)
{
    char buf[96];
    if (v->kind != SRV__VAL_STRING)
        return fail(ld, line, kd->name, "must be an octal string such as \"0660\", got %s",
                    kind_name(v->kind));
    const char *s = v->s;
    size_t n = v->len;
    if (n == 4 && s[0] == '0') {
        s++;
        n--;
    }
    int mode = 0;
    for (size_t i = 0; i < n && n == 3; i++) {
        if (s[i] < '0' || s[i] > '7') {
            mode = -1;
            break;
        }
        mode = mode * 8 + (s[i] - '0');
    }
    if (n != 3 || mode < kd->min || mode > kd->max)
        return fail(ld, line, kd->name,
                    "must be an octal string of permission bits such as \"0660\", got %s",
                    quote(buf, sizeof(buf), v->s, v->len));
    *out = mode;
    return 0;
}

/* Convert v as kd says and store it in the entry at base. */
static int store(srv__loader_t *ld, const key_desc_t *kd, void *base, const srv__val_t *v, int line)
{
    char *field = (char *)base + kd->off;
    const char *key = kd->name;
    char buf[96];
    int64_t n = 0;
    bool b = false;
    switch (kd->type) {
    case KT_INT:
    case KT_I64:
        if (get_int(ld, key, v, line, &n) < 0)
            return -EINVAL;
        if ((n < kd->min || n > kd->max) && !((kd->flags & KF_NEG1) && n == -1)) {
            if (kd->flags & KF_NEG1)
                return fail(ld, line, key,
                            "must be -1 (inherit) or between %" PRId64 " and %" PRId64
                            ", got %" PRId64,
                            kd->min, kd->max, n);
            return fail(ld, line, key, "must be between %" PRId64 " and %" PRId64 ", got %" PRId64,
                        kd->min, kd->max, n);
        }
        if (kd->type == KT_INT)
            *(int *)field = (int)n;
        else
            *(int64_t *)field = n;
        return 0;
    case KT_BOOL:
        if (get_bool(ld, key, v, line, &b) < 0)
            return -EINVAL;
        *(bool *)field = b;
        return 0;
    case KT_ENUM: {
        if (v->kind != SRV__VAL_STRING)
            return fail(ld, line, key, "must be a string, got %s", kind_name(v->kind));
        char list[128] = "";
        for (int i = 0; kd->enums[i] != NULL; i++) {
            if (strlen(kd->enums[i]) == v->len && memcmp(kd->enums[i], v->s, v->len) == 0) {
                *(int *)field = i;
                return 0;
            }
            size_t o = strlen(list);
            snprintf(list + o, sizeof(list) - o, "%s%s", i > 0 ? ", " : "", kd->enums[i]);
        }
        return fail(ld, line, key, "must be one of %s; got %s", list,
                    quote(buf, sizeof(buf), v->s, v->len));
    }
    case KT_EOF:
        return decode_eof(ld, key, v, line, base);
    case KT_MODE:
        return parse_mode(ld, kd, v, line, (int *)field);
    case KT_LENTYPE:
        if (v->kind != SRV__VAL_STRING)
            return fail(ld, line, key, "must be a string, got %s", kind_name(v->kind));
        if (v->len != 1 || strchr("cCnNvV", v->s[0]) == NULL)
            return fail(ld, line, key, "must be one of c, C, n, N, v, V; got %s",
                        quote(buf, sizeof(buf), v->s, v->len));
        *field = v->s[0];
        return 0;
    default:
        break;
    }

    /* The string kinds. */
    char s[SRV_CONFIG_PATH_MAX];
    if (get_str(ld, key, v, line, s, kd->type == KT_PATH ? sizeof(s) : kd->size) < 0)
        return -EINVAL;
    if (s[0] == '\0' && !(kd->flags & KF_EMPTY_OK))
        return fail(ld, line, key, "must not be empty");
    switch (kd->type) {
    case KT_NAME:
    case KT_IDENT:
        if (!is_name(s, kd->type == KT_IDENT))
            return fail(ld, line, key, "must match %s, got %s",
                        kd->type == KT_IDENT ? "[A-Za-z_][A-Za-z0-9_]{0,62}"
                                             : "[A-Za-z0-9_-]{1,63}",
                        quote(buf, sizeof(buf), s, strlen(s)));
        break;
    case KT_PATH:
        if (s[0] == '\0') {
            field[0] = '\0';
            return 0;
        }
        return resolve_path(ld, key, s, line, field, kd->size);
    case KT_HOST:
        return check_host(ld, key, s, line, field, kd->size);
    case KT_SCHED:
        if (check_schedule(ld, key, s, line) < 0)
            return -EINVAL;
        break;
    case KT_REDIS:
        if (check_redis(ld, key, s, line) < 0)
            return -EINVAL;
        break;
    case KT_STR:
        for (const char *p = s; *p != '\0'; p++) {
            if ((unsigned char)*p < 0x20)
                return fail(ld, line, key, "must not contain control characters");
        }
        break;
    default:
        break;
    }
    memcpy(field, s, strlen(s) + 1);
    return 0;
}

static void *entry_ptr(srv__config_t *cfg, int sect, int entry)
{
    const sect_desc_t *sd = &sects[sect];
    return (char *)cfg + sd->array_off + (size_t)entry * sd->stride;
}

static int *entry_count(srv__config_t *cfg, int sect)
{
    return (int *)((char *)cfg + sects[sect].count_off);
}

static int *entry_line(srv__config_t *cfg, int sect, int entry)
{
    switch (sect) {
    case SRV__SECT_LISTEN:
        return &cfg->listen[entry].line;
    case SRV__SECT_TABLE:
        return &cfg->table[entry].line;
    case SRV__SECT_CRON:
        return &cfg->cron[entry].line;
    default:
        return &cfg->process[entry].line;
    }
}

static int find_key(const key_desc_t *keys, int nkeys, const char *key)
{
    for (int i = 0; i < nkeys; i++) {
        if (strcmp(keys[i].name, key) == 0)
            return i;
    }
    return -1;
}

int srv__config_sect_lookup(const char *name)
{
    for (int i = 0; i < SRV__SECT_COUNT; i++) {
        if (strcmp(sects[i].name, name) == 0)
            return i;
    }
    return -1;
}

static void listen_defaults(srv__listen_config_t *l)
{
    memset(l, 0, sizeof(*l));
    l->type = SRV_LISTEN_HTTP;
    snprintf(l->host, sizeof(l->host), "127.0.0.1");
    l->backlog = 511;
    l->socket_mode = 0666;
    l->websocket_max_message_size = 16 * MiB;
    l->package_length_type = 'N';
    l->package_max_length = -1;
    l->heartbeat_idle_time = -1;
    l->heartbeat_check_interval = -1;
}

static void entry_defaults(srv__config_t *cfg, int sect, int entry)
{
    memset(entry_ptr(cfg, sect, entry), 0, sects[sect].stride);
    switch (sect) {
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

int srv__config_open(srv__loader_t *ld, int sect, const char *name, int line)
{
    const sect_desc_t *sd = &sects[sect];
    if (sect == SRV__SECT_SERVER) {
        if (ld->server_line != 0)
            return fail(ld, line, "server", "section repeated (first at line %d)", ld->server_line);
        ld->server_line = line;
        return 0;
    }
    int *count = entry_count(ld->cfg, sect);
    if (*count >= sd->max)
        return fail(ld, line, sd->name, "too many %s sections (max %d)", sd->name, sd->max);
    int entry = (*count)++;
    entry_defaults(ld->cfg, sect, entry);
    *entry_line(ld->cfg, sect, entry) = line;
    if (name != NULL) {
        srv__val_t v = {.kind = SRV__VAL_STRING, .s = name, .len = strlen(name)};
        ld->key_lines[sect][entry][0] = line; /* "name" is key 0 of every repeated section */
        if (store(ld, &sd->keys[0], entry_ptr(ld->cfg, sect, entry), &v, line) < 0)
            return -EINVAL;
    }
    return entry;
}

int srv__config_set(srv__loader_t *ld, int sect, int entry, const char *key, const srv__val_t *v,
                    int line)
{
    const sect_desc_t *sd = &sects[sect];
    for (size_t r = 0; r < sizeof(refused_keys) / sizeof(refused_keys[0]); r++) {
        if (refused_keys[r].sect == sect && strcmp(refused_keys[r].key, key) == 0)
            return fail(ld, line, key, "%s", refused_keys[r].why);
    }
    int k = find_key(sd->keys, sd->nkeys, key);
    if (k < 0 && ld->ini && sect == SRV__SECT_TABLE && strcmp(key, "columns") == 0)
        return fail(ld, line, key,
                    "unknown key in [table] (INI declares columns as column.NAME = TYPE)");
    if (k < 0)
        return fail(ld, line, key, "unknown key in [%s]", sd->name);
    int *lines = ld->key_lines[sect][entry];
    if (lines[k] != 0)
        return fail(ld, line, key, "set twice (first at line %d)", lines[k]);
    lines[k] = line;
    return store(ld, &sd->keys[k], entry_ptr(ld->cfg, sect, entry), v, line);
}

int srv__config_key_line(const srv__loader_t *ld, int sect, int entry, const char *key)
{
    int k = find_key(sects[sect].keys, sects[sect].nkeys, key);
    return k >= 0 && entry >= 0 && entry < ENTRIES_MAX ? ld->key_lines[sect][entry][k] : 0;
}

int srv__config_column_open(srv__loader_t *ld, int table, int line)
{
    srv__table_config_t *t = &ld->cfg->table[table];
    if (t->ncolumns >= SRV_CONFIG_MAX_COLUMN)
        return fail(ld, line, "columns", "too many columns (max %d)", SRV_CONFIG_MAX_COLUMN);
    int c = t->ncolumns++;
    memset(&t->columns[c], 0, sizeof(t->columns[c]));
    ld->col_lines[table][c] = line;
    return c;
}

int srv__config_column_set(srv__loader_t *ld, int table, int col, const char *key,
                           const char *label, const srv__val_t *v, int line)
{
    int k = find_key(column_keys, NKEYS(column_keys), key);
    if (k < 0)
        return fail(ld, line, label != NULL ? label : key, "unknown key in a column");
    int *lines = ld->col_key_lines[table][col];
    if (lines[k] != 0)
        return fail(ld, line, label != NULL ? label : key, "set twice (first at line %d)",
                    lines[k]);
    lines[k] = line;
    key_desc_t kd = column_keys[k];
    if (label != NULL)
        kd.name = label;
    return store(ld, &kd, &ld->cfg->table[table].columns[col], v, line);
}

/* ---- validation: what one key cannot tell alone ---- */

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

static const char *type_name(srv__listen_type_t t)
{
    return listen_type_names[t];
}

static void validate_listen(srv__loader_t *ld, int i)
{
    srv__config_t *cfg = ld->cfg;
    srv__listen_config_t *l = &cfg->listen[i];
    int *kl = ld->key_lines[SRV__SECT_LISTEN][i];
    if (kl[L_NAME] == 0 && l->name[0] == '\0')
        snprintf(l->name, sizeof(l->name), "listen%d", i);
    for (int k = 0; k < NKEYS(listen_keys); k++) {
        int flags = listen_keys[k].flags;
        if (kl[k] == 0)
            continue;
        if ((flags & KF_HTTP) && l->type != SRV_LISTEN_HTTP)
            fail(ld, kl[k], listen_keys[k].name, "only valid on http listeners (this one is %s)",
                 type_name(l->type));
        if ((flags & KF_TCP) && l->type != SRV_LISTEN_TCP)
            fail(ld, kl[k], listen_keys[k].name, "only valid on tcp listeners (this one is %s)",
                 type_name(l->type));
    }
    if (kl[L_PORT] != 0 && kl[L_PATH] != 0)
        fail(ld, later(kl[L_PORT], kl[L_PATH]), kl[L_PORT] > kl[L_PATH] ? "port" : "path",
             "port and path are exclusive (one listener binds one address)");
    else if (kl[L_PORT] == 0 && kl[L_PATH] == 0)
        fail(ld, l->line, "port", "required (or path, for a unix socket)");
    if (kl[L_PATH] != 0) {
        if (kl[L_HOST] != 0)
            fail(ld, kl[L_HOST], "host", "not allowed with path (a unix socket has no host)");
        l->host[0] = '\0';
    } else if (kl[L_SOCKET_MODE] != 0) {
        fail(ld, kl[L_SOCKET_MODE], "socket_mode",
             "only valid on unix-socket listeners (this one has no path)");
    }
    if (l->open_eof_split)
        l->open_eof_check = true;
    int eof_line = first_set(kl[L_OPEN_EOF_CHECK], kl[L_OPEN_EOF_SPLIT]);
    bool framing = true; /* the framing keys agree, so the framer's own check means something */
    if (l->open_eof_check && l->open_length_check) {
        framing = false;
        fail(ld, later(eof_line, kl[L_OPEN_LENGTH_CHECK]),
             kl[L_OPEN_LENGTH_CHECK] > eof_line ? "open_length_check"
             : kl[L_OPEN_EOF_CHECK] != 0        ? "open_eof_check"
                                                : "open_eof_split",
             "open_eof_check and open_length_check are mutually exclusive");
    }
    if (l->open_eof_check && l->package_eof_len == 0) {
        framing = false;
        fail(ld, eof_line, "package_eof", "required when open_eof_check is set");
    }
    if (l->websocket_compression && !l->websocket)
        fail(ld, kl[L_WEBSOCKET_COMPRESSION], "websocket_compression", "needs websocket = true");
    /* Options the framer refuses would close every connection as a malformed frame. */
    if (framing)
        srv__config_check_frame(ld, cfg, i);
    for (int j = 0; j < i; j++) {
        const srv__listen_config_t *o = &cfg->listen[j];
        if (strcmp(o->name, l->name) == 0)
            fail(ld, first_set(kl[L_NAME], l->line), "name",
                 "duplicate listener name \"%s\" (first at line %d)", l->name, o->line);
        if ((kl[L_PORT] != 0) != (kl[L_PATH] != 0) && same_address(l, o)) {
            if (l->path[0] != '\0')
                fail(ld, kl[L_PATH], "path", "%s already used by listener \"%s\" (line %d)",
                     l->path, o->name, o->line);
            else
                fail(ld, kl[L_PORT], "port",
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
    if (kl[T_NAME] == 0)
        fail(ld, t->line, "name", "required");
    if (kl[T_SIZE] == 0)
        fail(ld, t->line, "size", "required (rows)");
    if (t->ncolumns == 0)
        fail(ld, t->line, "columns", "at least one column is required");
    for (int c = 0; c < t->ncolumns; c++) {
        srv__column_config_t *col = &t->columns[c];
        int *cl = ld->col_key_lines[i][c];
        int line = ld->col_lines[i][c];
        if (cl[C_NAME] == 0) {
            fail(ld, line, "columns", "column %d: name is required", c + 1);
            continue;
        }
        if (cl[C_TYPE] == 0)
            fail(ld, line, "columns", "column \"%s\": type is required", col->name);
        else if (col->type == SRV_COL_STRING && cl[C_SIZE] == 0)
            fail(ld, line, "columns", "column \"%s\": size is required for string columns",
                 col->name);
        else if (col->type != SRV_COL_STRING && cl[C_SIZE] != 0)
            fail(ld, cl[C_SIZE], "columns", "column \"%s\": size only applies to string columns",
                 col->name);
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
            fail(ld, first_set(kl[T_NAME], t->line), "name",
                 "duplicate table name \"%s\" (first at line %d)", t->name, ld->cfg->table[j].line);
    }
}

static void validate_cron(srv__loader_t *ld, int i)
{
    srv__cron_config_t *c = &ld->cfg->cron[i];
    int *kl = ld->key_lines[SRV__SECT_CRON][i];
    if (kl[CR_NAME] == 0)
        fail(ld, c->line, "name", "required");
    if (kl[CR_HANDLER] == 0)
        fail(ld, c->line, "handler", "required (a function exported by the app)");
    if (kl[CR_INTERVAL_MS] != 0 && kl[CR_SCHEDULE] != 0)
        fail(ld, later(kl[CR_INTERVAL_MS], kl[CR_SCHEDULE]),
             kl[CR_SCHEDULE] > kl[CR_INTERVAL_MS] ? "schedule" : "interval_ms",
             "interval_ms and schedule are exclusive");
    else if (kl[CR_INTERVAL_MS] == 0 && kl[CR_SCHEDULE] == 0)
        fail(ld, c->line, "interval_ms", "required (or schedule)");
    if (c->global_lock && ld->cfg->redis[0] == '\0')
        fail(ld, kl[CR_LOCK], "global_lock", "needs redis set in [server]");
    for (int j = 0; j < i; j++) {
        if (c->name[0] != '\0' && strcmp(ld->cfg->cron[j].name, c->name) == 0)
            fail(ld, first_set(kl[CR_NAME], c->line), "name",
                 "duplicate cron name \"%s\" (first at line %d)", c->name, ld->cfg->cron[j].line);
    }
}

static void validate_process(srv__loader_t *ld, int i)
{
    srv__process_config_t *p = &ld->cfg->process[i];
    int *kl = ld->key_lines[SRV__SECT_PROCESS][i];
    if (kl[P_NAME] == 0)
        fail(ld, p->line, "name", "required");
    if (kl[P_HANDLER] == 0)
        fail(ld, p->line, "handler", "required (a function exported by the app)");
    for (int j = 0; j < i; j++) {
        if (p->name[0] != '\0' && strcmp(ld->cfg->process[j].name, p->name) == 0)
            fail(ld, first_set(kl[P_NAME], p->line), "name",
                 "duplicate process name \"%s\" (first at line %d)", p->name,
                 ld->cfg->process[j].line);
    }
}

static void validate(srv__loader_t *ld)
{
    srv__config_t *cfg = ld->cfg;
    int *sl = ld->key_lines[SRV__SECT_SERVER][0];
    if (sl[find_key(server_keys, NKEYS(server_keys), "app")] == 0)
        fail(ld, ld->server_line, "app", "required");
    if (sl[find_key(server_keys, NKEYS(server_keys), "max_request_grace")] == 0)
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
    if (!ld->failed)
        srv__config_check_tables(ld, cfg);
}

/* ---- public API ---- */

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
    cfg->package_max_length = 2 * MiB;
    cfg->buffer_output_size = 2 * MiB;
    cfg->http_header_max = 8192;
    cfg->http_header_timeout = 10000;
    cfg->http_keepalive_timeout = 60000;
    cfg->http_body_timeout = 30000;
    cfg->send_timeout = 60000;
    cfg->task_max_queue = 65536;
    cfg->ipc_buffer_size = (int)(4 * MiB);
    char cwd[SRV_CONFIG_PATH_MAX - sizeof("/srv.pid")];
    if (getcwd(cwd, sizeof(cwd)) != NULL)
        snprintf(cfg->pid_file, sizeof(cfg->pid_file), "%s/srv.pid",
                 strcmp(cwd, "/") == 0 ? "" : cwd);
    else
        snprintf(cfg->pid_file, sizeof(cfg->pid_file), "srv.pid");
}

/* path made absolute (against the working directory) without touching symlinks. */
static int absolute_file(const char *path, char *out, size_t size)
{
    int n;
    if (path[0] == '/') {
        n = snprintf(out, size, "%s", path);
    } else {
        char cwd[PATH_MAX];
        if (getcwd(cwd, sizeof(cwd)) == NULL)
            return -errno;
        while (path[0] == '.' && path[1] == '/') {
            path += 2;
            while (path[0] == '/')
                path++;
        }
        n = snprintf(out, size, "%s/%s", strcmp(cwd, "/") == 0 ? "" : cwd, path);
    }
    return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

static int read_file(const char *path, char **text, size_t *len)
{
    int rc;
    char *buf = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct stat st;
    if (fstat(fd, &st) < 0) {
        rc = -errno;
        goto fail;
    }
    if (S_ISDIR(st.st_mode)) {
        rc = -EISDIR;
        goto fail;
    }
    if (st.st_size > CONFIG_FILE_MAX) {
        rc = -EFBIG;
        goto fail;
    }
    size_t cap = (size_t)st.st_size + 1, n = 0;
    buf = malloc(cap + 1);
    if (buf == NULL) {
        rc = -ENOMEM;
        goto fail;
    }
    /* Read up to EOF rather than trusting st_size, which is 0 for /dev/stdin or a pipe. */
    for (;;) {
        if (n == cap) {
            if (cap > CONFIG_FILE_MAX) {
                rc = -EFBIG;
                goto fail;
            }
            char *more = realloc(buf, cap * 2 + 1);
            if (more == NULL) {
                rc = -ENOMEM;
                goto fail;
            }
            buf = more;
            cap *= 2;
        }
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            rc = -errno;
            goto fail;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    buf[n] = '\0';
    close(fd);
    *text = buf;
    *len = n;
    return 0;
fail:
    free(buf);
    close(fd);
    return rc;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcasecmp(s + n - m, suffix) == 0;
}

/* For a name without a known extension: INI's [kind.NAME] headers and TOML's [[kind]] give the
 * syntax away; otherwise, a file that is valid TOML is read as TOML. */
static bool looks_like_toml(const char *text)
{
    const char *p = text;
    while (p != NULL) {
        p += strspn(p, " \t");
        if (strncmp(p, "[[", 2) == 0)
            return true;
        if (*p == '[' && strcspn(p, ".]\n") < strcspn(p, "]\n"))
            return false;
        p = strchr(p, '\n');
        if (p != NULL)
            p++;
    }
    return true;
}

static int load(const char *path, srv__config_t *cfg, srv__config_error_t *err, bool resolve)
{
    srv__config_error_t scratch;
    char *text = NULL;
    size_t len = 0;
    srv__config_t *tmp = NULL;
    srv__loader_t *ld = NULL;
    int rc;
    if (err == NULL)
        err = &scratch;
    memset(err, 0, sizeof(*err));
    if (path == NULL || cfg == NULL)
        return -EINVAL;
    snprintf(err->file, sizeof(err->file), "%s", path);
    tmp = malloc(sizeof(*tmp));
    ld = calloc(1, sizeof(*ld));
    if (tmp == NULL || ld == NULL) {
        rc = -ENOMEM;
        snprintf(err->msg, sizeof(err->msg), "%s", strerror(-rc));
        goto fail;
    }
    srv__config_defaults(tmp);
    rc = absolute_file(path, tmp->file, sizeof(tmp->file));
    if (rc < 0) {
        snprintf(err->msg, sizeof(err->msg), "%s", strerror(-rc));
        goto fail;
    }
    snprintf(err->file, sizeof(err->file), "%s", tmp->file);
    snprintf(ld->dir, sizeof(ld->dir), "%s", tmp->file);
    *strrchr(ld->dir, '/') = '\0';
    if (ld->dir[0] == '\0')
        snprintf(ld->dir, sizeof(ld->dir), "/");
    rc = read_file(tmp->file, &text, &len);
    if (rc < 0) {
        snprintf(err->msg, sizeof(err->msg), "%s",
                 rc == -EFBIG ? "file too large for a config" : strerror(-rc));
        goto fail;
    }
    /* Default pid file beside the config, as the key would be resolved. */
    rc = snprintf(tmp->pid_file, sizeof(tmp->pid_file), "%s%ssrv.pid", ld->dir,
                  strcmp(ld->dir, "/") == 0 ? "" : "/");
    ld->cfg = tmp;
    ld->err = err;
    if ((size_t)rc >= sizeof(tmp->pid_file))
        srv__config_error(ld, 0, "pid_file", "default path too long; set pid_file");
    if (ends_with(tmp->file, ".ini") || ends_with(tmp->file, ".conf"))
        ld->ini = true;
    else if (!ends_with(tmp->file, ".toml"))
        ld->ini = !looks_like_toml(text);
    rc = ld->ini ? srv__ini_parse(ld, text, len) : srv__toml_parse(ld, text, len, tmp->file);
    if (rc == -ENOMEM) {
        snprintf(err->msg, sizeof(err->msg), "%s", strerror(ENOMEM));
        goto fail;
    }
    if (!ld->failed)
        validate(ld);
    if (!ld->failed && resolve)
        srv__config_check_addresses(ld, tmp);
    if (ld->failed) {
        rc = -EINVAL;
        goto fail;
    }
    memcpy(cfg, tmp, sizeof(*cfg));
    rc = 0;
fail:
    free(text);
    free(ld);
    free(tmp);
    return rc;
}

int srv__config_load(const char *path, srv__config_t *cfg, srv__config_error_t *err)
{
    return load(path, cfg, err, false);
}

int srv__config_check(const char *path, srv__config_t *cfg, srv__config_error_t *err)
{
    return load(path, cfg, err, true);
}

const char *srv__config_error_format(const srv__config_error_t *err, char *buf, size_t len)
{
    if (len == 0)
        return buf;
    const char *file = err->file[0] != '\0' ? err->file : "(config)";
    char where[SRV_CONFIG_PATH_MAX + 16];
    if (err->line > 0)
        snprintf(where, sizeof(where), "%s:%d", file, err->line);
    else
        snprintf(where, sizeof(where), "%s", file);
    if (err->key[0] != '\0')
        snprintf(buf, len, "%s: %s: %s", where, err->key, err->msg);
    else
        snprintf(buf, len, "%s: %s", where, err->msg);
    return buf;
}

static bool keys_equal(const key_desc_t *keys, int nkeys, const void *a, const void *b)
{
    for (int k = 0; k < nkeys; k++) {
        const char *x = (const char *)a + keys[k].off, *y = (const char *)b + keys[k].off;
        switch (keys[k].type) {
        case KT_INT:
        case KT_ENUM:
        case KT_MODE:
            if (*(const int *)x != *(const int *)y)
                return false;
            break;
        case KT_I64:
            if (*(const int64_t *)x != *(const int64_t *)y)
                return false;
            break;
        case KT_BOOL:
            if (*(const bool *)x != *(const bool *)y)
                return false;
            break;
        case KT_LENTYPE:
            if (*x != *y)
                return false;
            break;
        case KT_EOF:
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
    return true;
}
