/* The config schema: for each section kind, its keys (name, type, where in srv__config_t, range,
 * flags) and where its entries live; the defaults of a server and of each entry. One table
 * serves loading, defaults and comparison, so a key added here is read, defaulted and compared
 * alike. Not for use outside config/. */
#ifndef SRV_CONFIG_SCHEMA_H
#define SRV_CONFIG_SCHEMA_H

#include <stddef.h>
#include <stdint.h>

#include "config/config_types.h"
#include "config/doc.h"

#define SRV__KiB (INT64_C(1024))
#define SRV__MiB (SRV__KiB * 1024)
#define SRV__GiB (SRV__MiB * 1024)

/* Most keys of one section, most entries of one repeated section (the loader's line tables). */
#define SRV__KEYS_MAX 64
#define SRV__ENTRIES_MAX 64

typedef enum {
    SRV__KT_INT,     /* int */
    SRV__KT_I64,     /* int64_t */
    SRV__KT_BOOL,    /* bool */
    SRV__KT_ENUM,    /* int-sized enum, names in enums[] */
    SRV__KT_STR,     /* char[size], any printable text */
    SRV__KT_NAME,    /* char[size], [A-Za-z0-9_-]{1,63} */
    SRV__KT_IDENT,   /* char[size], a C identifier (a symbol of the app module) */
    SRV__KT_PATH,    /* char[size], made absolute against the config's folder */
    SRV__KT_HOST,    /* char[size], IPv4/IPv6 literal or host name */
    SRV__KT_EOF,     /* package_eof: escapes decoded, length in package_eof_len */
    SRV__KT_LENTYPE, /* package_length_type: one char of c C n N v V */
    SRV__KT_SCHED,   /* char[size], five crontab fields */
    SRV__KT_REDIS,   /* char[size], "host:port" or a unix socket path */
    SRV__KT_MODE,    /* int, file permission bits written as an octal string ("0660") */
    SRV__KT_TLSVER,  /* unsigned, SRV__TLS_V* bits from "TLSv1.2 TLSv1.3" or a list of names */
    SRV__KT_WORDS,   /* char[size], words from "a b" or a list, kept space-separated */
    SRV__KT_SNIHOST, /* char[size], a host name or "*.domain", kept in lower case */
    SRV__KT_ADDR,    /* char[size], "host:port" with a numeric IPv4 or [IPv6] host */
    SRV__KT_SIZE,    /* int64_t bytes: an integer, or a string "64K" / "512M" / "2G" */
} srv__ktype_t;

enum {
    SRV__KF_NEG1 = 1,     /* -1 (inherit from [server]) is allowed besides the range */
    SRV__KF_HTTP = 2,     /* only on http listeners */
    SRV__KF_TCP = 4,      /* only on tcp listeners */
    SRV__KF_EMPTY_OK = 8, /* "" is allowed (means "none") */
    SRV__KF_STREAM = 16,  /* only on http and tcp listeners */
    SRV__KF_SSL = 32,     /* only with ssl = true */
    SRV__KF_H2 = 64,      /* only with open_http2_protocol = true */
    SRV__KF_DASH = 128,   /* a path where "-" stays "-" (stderr) */
    SRV__KF_RESTART = 256, /* cannot change at reload: needs a restart (config/reload.c) */
};

typedef struct srv__key_desc {
    const char *name;
    srv__ktype_t type;
    size_t off;
    size_t size;
    int64_t min, max;
    const char *const *enums;
    int flags;
} srv__key_desc_t;

/* A section kind: its keys, and for repeated kinds the array, stride and count in
 * srv__config_t (columns live in their table: off and count are per table). */
typedef struct srv__sect_desc {
    const char *name;
    const char *what; /* for messages: "listener", "table", ... */
    const srv__key_desc_t *keys;
    int nkeys;
    size_t array_off, stride, count_off;
    int max;
} srv__sect_desc_t;

extern const srv__sect_desc_t srv__schema[SRV__SECT_COUNT];

/* Index of each key in its section's table ("name" is key 0 of every repeated section). */
enum {
    SRV__L_NAME,
    SRV__L_TYPE,
    SRV__L_HOST,
    SRV__L_PORT,
    SRV__L_PATH,
    SRV__L_BACKLOG,
    SRV__L_HANDLER,
    SRV__L_DOCUMENT_ROOT,
    SRV__L_WEBSOCKET,
    SRV__L_WEBSOCKET_COMPRESSION,
    SRV__L_WEBSOCKET_MAX_MESSAGE_SIZE,
    SRV__L_WEBSOCKET_PING_INTERVAL,
    SRV__L_OPEN_EOF_CHECK,
    SRV__L_OPEN_EOF_SPLIT,
    SRV__L_PACKAGE_EOF,
    SRV__L_OPEN_LENGTH_CHECK,
    SRV__L_PACKAGE_LENGTH_TYPE,
    SRV__L_PACKAGE_LENGTH_OFFSET,
    SRV__L_PACKAGE_BODY_OFFSET,
    SRV__L_PACKAGE_MAX_LENGTH,
    SRV__L_HEARTBEAT_IDLE_TIME,
    SRV__L_HEARTBEAT_CHECK_INTERVAL,
    SRV__L_SOCKET_MODE,
    SRV__L_SSL,
    SRV__L_SSL_CERT_FILE,
    SRV__L_SSL_KEY_FILE,
    SRV__L_SSL_PROTOCOLS,
    SRV__L_SSL_CIPHERS,
    SRV__L_SSL_CIPHERSUITES,
    SRV__L_SSL_VERIFY_PEER,
    SRV__L_SSL_VERIFY_OPTIONAL,
    SRV__L_SSL_CLIENT_CERT_FILE,
    SRV__L_SSL_SESSION_TICKETS,
    SRV__L_SSL_HANDSHAKE_TIMEOUT,
    SRV__L_SSL_ALPN,
    SRV__L_OPEN_HTTP2_PROTOCOL,
    SRV__L_HTTP2_MAX_CONCURRENT_STREAMS,
    SRV__L_HTTP2_INITIAL_WINDOW_SIZE,
    SRV__L_HTTP2_MAX_FRAME_SIZE,
    SRV__L_HTTP2_MAX_HEADER_LIST_SIZE,
    SRV__L_HTTP2_IDLE_TIMEOUT,
    SRV__L_ACCESS_LOG,
    SRV__L_REQUEST_TIMEOUT,
};
enum { SRV__S_HOST, SRV__S_CERT, SRV__S_KEY };
enum { SRV__T_NAME, SRV__T_SIZE };
enum { SRV__C_NAME, SRV__C_TYPE, SRV__C_SIZE };
enum {
    SRV__CR_NAME,
    SRV__CR_HANDLER,
    SRV__CR_INTERVAL_MS,
    SRV__CR_IMMEDIATE,
    SRV__CR_SCHEDULE,
    SRV__CR_MAX_WAIT,
    SRV__CR_LOCK
};
enum { SRV__P_NAME, SRV__P_HANDLER, SRV__P_NUM, SRV__P_RESTART, SRV__P_PIPE };

/* Index of key in sd's table, or -1. */
int srv__schema_find_key(const srv__sect_desc_t *sd, const char *key);

/* Why key is refused in a section of kind with a reason rather than as unknown, or NULL. */
const char *srv__schema_refused(srv__sect_t kind, const char *key);

/* "http", "tcp" or "udp". */
const char *srv__schema_listen_type_name(srv__listen_type_t t);

/* Entry entry of kind in cfg (for [server], cfg itself): its storage; for repeated kinds the
 * count of their entries and an entry's line. */
void *srv__schema_entry(srv__config_t *cfg, srv__sect_t kind, int entry);
int *srv__schema_count(srv__config_t *cfg, srv__sect_t kind);
int *srv__schema_entry_line(srv__config_t *cfg, srv__sect_t kind, int entry);

/* Entry entry of repeated kind reset to its defaults. */
void srv__schema_entry_defaults(srv__config_t *cfg, srv__sect_t kind, int entry);

#endif
