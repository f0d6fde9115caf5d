/* The neutral document a config reader (ini.c, toml.cc) makes of a file and the validator
 * (loader.c) consumes: sections of known kinds, each with its line, and keys with their values
 * as the file wrote them and their lines. It knows no key names, types or ranges: those are the
 * schema's. It also keeps the first problem found, so a reader's syntax error and the
 * validator's findings compete on one rule (the earliest line wins). Not for use outside config/.
 */
#ifndef SRV_CONFIG_DOC_H
#define SRV_CONFIG_DOC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Section kinds. SERVER is the one top-level section; the others repeat ([[listen]] in TOML,
 * [listen.NAME] in INI); an SNI entry belongs to the LISTEN section named by its parent
 * ([[listen.sni]], [listen.NAME.sni.HOST]), a COLUMN to the TABLE section named by its parent.
 * The kinds before COLUMN are entries of srv__config_t itself. */
typedef enum {
    SRV__SECT_SERVER = 0,
    SRV__SECT_LISTEN = 1,
    SRV__SECT_TABLE = 2,
    SRV__SECT_CRON = 3,
    SRV__SECT_PROCESS = 4,
    SRV__SECT_SNI = 5,
    SRV__SECT_COLUMN = 6,
    SRV__SECT_COUNT = 7
} srv__sect_t;

/* The kind a file names "server", "listen", "table", "cron" or "process"; -1 for any other
 * (SNI entries and columns are not named by a header of their own). */
int srv__doc_sect_lookup(const char *name);
/* The name of kind ("column" for SRV__SECT_COLUMN). */
const char *srv__doc_sect_name(srv__sect_t kind);

/* A value as the file wrote it. TEXT is an untyped scalar (every INI value): the schema reads it
 * as the type its key takes. TOML values keep their own type; TABLE and DATETIME carry only
 * their kind (no key takes one; the kind serves messages). */
typedef enum {
    SRV__VAL_STRING = 0,
    SRV__VAL_INT,
    SRV__VAL_FLOAT,
    SRV__VAL_BOOL,
    SRV__VAL_LIST,
    SRV__VAL_TABLE,
    SRV__VAL_DATETIME,
    SRV__VAL_TEXT
} srv__val_kind_t;

typedef struct srv__doc_str {
    const char *s; /* len bytes (may hold NUL), NUL-terminated after them */
    size_t len;
} srv__doc_str_t;

typedef struct srv__val {
    srv__val_kind_t kind;
    const char *s; /* STRING and TEXT: len bytes (may hold NUL) */
    size_t len;
    int64_t i;
    double f;
    bool b;
    const srv__doc_str_t *items; /* LIST: its string items (none when it holds other values) */
    size_t nitems;
} srv__val_t;

/* Every section and key has a seq: its place in the order the reader found them, shared by
 * both. It breaks ties between problems on one line as the order of reading would. */
typedef struct srv__doc_sect {
    srv__sect_t kind;
    int parent; /* COLUMN: index of its TABLE section, SNI: of its LISTEN section; else -1 */
    int line;
    int seq;
} srv__doc_sect_t;

typedef struct srv__doc_key {
    int sect;          /* index into the document's sections */
    const char *name;  /* the schema's name: "port", "name", "size" ... */
    const char *label; /* how problems name it when the file spells it otherwise, else NULL */
    srv__val_t value;  /* strings owned by the document */
    int line;
    int seq;
} srv__doc_key_t;

/* The first problem: the lowest line wins, then the lowest pos (a seq); line 0 (not tied to a
 * line) only while nothing else was found. Control bytes in key and msg become '?'. */
typedef struct srv__doc_diag {
    bool set;
    int line;
    int pos;
    char key[128];
    char msg[256];
} srv__doc_diag_t;

void srv__doc_diag_note(srv__doc_diag_t *d, int line, int pos, const char *key, const char *fmt,
                        ...) __attribute__((format(printf, 5, 6)));

struct srv__doc_block;

/* One file's document. Initialised with srv__doc_init(), filled by one reader, released with
 * srv__doc_deinit() by whoever initialised it; plain arrays the validator reads in order. */
typedef struct srv__doc {
    srv__doc_sect_t *sects;
    int nsects;
    srv__doc_key_t *keys;
    int nkeys;
    srv__doc_diag_t diag; /* problems the reader found */
    bool nomem;           /* an add failed for memory: the document is incomplete */
    int sects_cap, keys_cap;
    struct srv__doc_block *blocks; /* where names and strings live */
} srv__doc_t;

void srv__doc_init(srv__doc_t *doc);
void srv__doc_deinit(srv__doc_t *doc);

/* Add a section of kind declared at line (parent: see srv__doc_sect_t). Returns its index, or
 * -ENOMEM (doc->nomem is set; later adds fail the same way). */
int srv__doc_add_sect(srv__doc_t *doc, srv__sect_t kind, int parent, int line);

/* Add key name (label: see srv__doc_key_t, may be NULL) = v to section sect, found at line.
 * Copies name, label, v's strings and list items. Returns 0 or -ENOMEM (doc->nomem is set). */
int srv__doc_add_key(srv__doc_t *doc, int sect, const char *name, const char *label,
                     const srv__val_t *v, int line);

/* A reader's problem at line, placed after what it has added so far. */
void srv__doc_error(srv__doc_t *doc, int line, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#ifdef __cplusplus
}
#endif

#endif
