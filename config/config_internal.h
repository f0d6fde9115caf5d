/* Private interface between the loader (config.c) and the two syntax readers (ini.c, toml.cc).
 * A reader only tokenises: it opens sections and hands (section, entry, key, value, line) to the
 * loader, which owns the schema, the checks and the error. Not for use outside config/. */
#ifndef SRV_CONFIG_INTERNAL_H
#define SRV_CONFIG_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* One load in progress: the config being filled, where each key was set, the first error. */
typedef struct srv__loader srv__loader_t;

typedef enum {
    SRV__SECT_SERVER = 0,
    SRV__SECT_LISTEN = 1,
    SRV__SECT_TABLE = 2,
    SRV__SECT_CRON = 3,
    SRV__SECT_PROCESS = 4,
    SRV__SECT_COUNT = 5
} srv__sect_t;

/* A value as the reader saw it. INI values are always strings; the loader converts them. */
typedef enum {
    SRV__VAL_STRING = 0,
    SRV__VAL_INT,
    SRV__VAL_FLOAT,
    SRV__VAL_BOOL,
    SRV__VAL_ARRAY,
    SRV__VAL_TABLE,
    SRV__VAL_DATETIME
} srv__val_kind_t;

typedef struct srv__val {
    srv__val_kind_t kind;
    const char *s; /* SRV__VAL_STRING: bytes (may hold NUL), len of them */
    size_t len;
    int64_t i;
    double f;
    bool b;
} srv__val_t;

/* The section kind called name ("server", "listen", ...), or -1. */
int srv__config_sect_lookup(const char *name);

/* Open a section declared at line. name is the INI header's NAME part ([listen.NAME]) or NULL
 * (TOML: the name comes from a `name` key). Returns the entry index, or -EINVAL with the error
 * recorded (keys of that section should then be skipped). */
int srv__config_open(srv__loader_t *ld, int sect, const char *name, int line);

/* Set key of section entry from v, found at line. Returns 0 or -EINVAL (error recorded). */
int srv__config_set(srv__loader_t *ld, int sect, int entry, const char *key, const srv__val_t *v,
                    int line);

/* Add a column to table entry, declared at line. Returns its index or -EINVAL. */
int srv__config_column_open(srv__loader_t *ld, int table, int line);

/* Set key (name, type, size) of a column; errors name label, or key when label is NULL. */
int srv__config_column_set(srv__loader_t *ld, int table, int col, const char *key,
                           const char *label, const srv__val_t *v, int line);

/* Record a problem; the one with the lowest line number wins. key may be "". */
void srv__config_error(srv__loader_t *ld, int line, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Line where key of section entry was set, 0 when it was left at its default. */
int srv__config_key_line(const srv__loader_t *ld, int sect, int entry, const char *key);

/* Cross-checks that need more than the schema (config_check.c). They record the first problem
 * with srv__config_error() against the key's line and return nothing. */
struct srv__config;
/* Listener i's framing options against protocols/frame.c's own check. */
void srv__config_check_frame(srv__loader_t *ld, const struct srv__config *cfg, int i);
/* The tables' shared memory against what this machine can map. */
void srv__config_check_tables(srv__loader_t *ld, const struct srv__config *cfg);
/* Host names resolved as start resolves them; listeners binding the same address afterwards. */
void srv__config_check_addresses(srv__loader_t *ld, const struct srv__config *cfg);

/* Longest INI line taken, in bytes without its line break: a path key holding
 * SRV_CONFIG_PATH_MAX - 1 bytes, with its quotes, blanks and an inline comment, fits. */
#define SRV__INI_LINE_MAX 1024

/* Readers: parse text (len bytes, NUL-terminated) into ld. Return 0, -EINVAL (error recorded)
 * or -ENOMEM. path is only used by the TOML reader for its own diagnostics. */
int srv__ini_parse(srv__loader_t *ld, const char *text, size_t len);
int srv__toml_parse(srv__loader_t *ld, const char *text, size_t len, const char *path);

#ifdef __cplusplus
}
#endif

#endif
