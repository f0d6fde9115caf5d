/* One load in progress: the config being filled from a document, the line each key was set on
 * (the "set" flags defaults and cross-key checks read) and the first problem. loader.c applies
 * the document through the schema; validate.c and config_check.c read the lines it kept. Not for
 * use outside config/. */
#ifndef SRV_CONFIG_LOADER_H
#define SRV_CONFIG_LOADER_H

#include <stdbool.h>

#include "config/config_types.h"
#include "config/doc.h"
#include "config/schema.h"

typedef struct srv__loader {
    srv__config_t *cfg;
    srv__doc_diag_t diag; /* the first problem, the reader's included */
    int pos;              /* seq of the document item being applied; INT_MAX after */
    char dir[SRV_CONFIG_PATH_MAX];
    int server_line;
    /* Line where each key was set, 0 = not set: the "set" flags for defaults and the line
     * validation blames. */
    int key_lines[SRV__SECT_COLUMN][SRV__ENTRIES_MAX][SRV__KEYS_MAX];
    int col_lines[SRV_CONFIG_MAX_TABLE][SRV_CONFIG_MAX_COLUMN];
    int col_key_lines[SRV_CONFIG_MAX_TABLE][SRV_CONFIG_MAX_COLUMN][3];
} srv__loader_t;

/* Note a problem at line (0: not tied to a line) against key ("" for none). */
void srv__loader_error(srv__loader_t *ld, int line, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* True once a problem was noted. */
bool srv__loader_failed(const srv__loader_t *ld);

/* Line where key of entry entry of repeated kind (or of [server]) was set, 0 when defaulted. */
int srv__loader_key_line(const srv__loader_t *ld, srv__sect_t kind, int entry, const char *key);

/* Apply doc to ld->cfg (holding the defaults): open each section as an entry, store each key
 * through the schema. The reader's problem, if any, is taken over first. Returns 0 or -EINVAL
 * (a problem was noted). */
int srv__loader_apply(srv__loader_t *ld, const srv__doc_t *doc);

#endif
