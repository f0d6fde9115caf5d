/* Applying a neutral document to srv__config_t: each section opens an entry (with its defaults),
 * each key is looked up in the schema and stored by value.c, and the line of every key set is
 * kept for the cross-key checks. Problems keep the reader's rule: the earliest line wins, ties
 * going to what comes first in the document. */
#include "config/loader.h"
#include "config/value.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

__attribute__((format(printf, 4, 0))) static void vnote(srv__loader_t *ld, int line,
                                                        const char *key, const char *fmt,
                                                        va_list ap)
{
    char msg[sizeof(ld->diag.msg)];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    srv__doc_diag_note(&ld->diag, line, ld->pos, key, "%s", msg);
}

void srv__loader_error(srv__loader_t *ld, int line, const char *key, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vnote(ld, line, key, fmt, ap);
    va_end(ap);
}

bool srv__loader_failed(const srv__loader_t *ld)
{
    return ld->diag.set;
}

static int fail(srv__loader_t *ld, int line, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* srv__loader_error() for the paths that then give up. */
static int fail(srv__loader_t *ld, int line, const char *key, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vnote(ld, line, key, fmt, ap);
    va_end(ap);
    return -EINVAL;
}

int srv__loader_key_line(const srv__loader_t *ld, srv__sect_t kind, int entry, const char *key)
{
    if (kind >= SRV__SECT_COLUMN)
        return 0;
    int k = srv__schema_find_key(&srv__schema[kind], key);
    return k >= 0 && entry >= 0 && entry < SRV__ENTRIES_MAX ? ld->key_lines[kind][entry][k] : 0;
}

static int store(srv__loader_t *ld, const srv__key_desc_t *kd, void *base, const srv__val_t *v,
                 int line)
{
    srv__value_ctx_t ctx = {.diag = &ld->diag, .pos = ld->pos, .dir = ld->dir};
    return srv__value_store(&ctx, kd, base, v, line);
}

/* A section of kind at line: [server] once, or a new entry with its defaults. Returns the entry
 * index or -EINVAL (its keys are then skipped). */
static int open_entry(srv__loader_t *ld, srv__sect_t kind, int line)
{
    const srv__sect_desc_t *sd = &srv__schema[kind];
    if (kind == SRV__SECT_SERVER) {
        if (ld->server_line != 0)
            return fail(ld, line, "server", "section repeated (first at line %d)", ld->server_line);
        ld->server_line = line;
        return 0;
    }
    int *count = srv__schema_count(ld->cfg, kind);
    if (*count >= sd->max)
        return fail(ld, line, sd->name, "too many %s sections (max %d)", sd->name, sd->max);
    int entry = (*count)++;
    srv__schema_entry_defaults(ld->cfg, kind, entry);
    *srv__schema_entry_line(ld->cfg, kind, entry) = line;
    return entry;
}

/* A column of table entry table, declared at line. Returns its index or -EINVAL. */
static int open_column(srv__loader_t *ld, int table, int line)
{
    srv__table_config_t *t = &ld->cfg->table[table];
    if (t->ncolumns >= SRV_CONFIG_MAX_COLUMN)
        return fail(ld, line, "columns", "too many columns (max %d)", SRV_CONFIG_MAX_COLUMN);
    int c = t->ncolumns++;
    memset(&t->columns[c], 0, sizeof(t->columns[c]));
    ld->col_lines[table][c] = line;
    return c;
}

static int set_key(srv__loader_t *ld, srv__sect_t kind, int entry, const srv__doc_key_t *k)
{
    const srv__sect_desc_t *sd = &srv__schema[kind];
    const char *why = srv__schema_refused(kind, k->name);
    if (why != NULL)
        return fail(ld, k->line, k->name, "%s", why);
    int i = srv__schema_find_key(sd, k->name);
    if (i < 0)
        return fail(ld, k->line, k->name, "unknown key in [%s]", sd->name);
    int *lines = ld->key_lines[kind][entry];
    if (lines[i] != 0)
        return fail(ld, k->line, k->name, "set twice (first at line %d)", lines[i]);
    lines[i] = k->line;
    return store(ld, &sd->keys[i], srv__schema_entry(ld->cfg, kind, entry), &k->value, k->line);
}

/* A key of column col of table entry table; problems name it by its label when it has one. */
static int set_column_key(srv__loader_t *ld, int table, int col, const srv__doc_key_t *k)
{
    const srv__sect_desc_t *sd = &srv__schema[SRV__SECT_COLUMN];
    const char *label = k->label != NULL ? k->label : k->name;
    int i = srv__schema_find_key(sd, k->name);
    if (i < 0)
        return fail(ld, k->line, label, "unknown key in a column");
    int *lines = ld->col_key_lines[table][col];
    if (lines[i] != 0)
        return fail(ld, k->line, label, "set twice (first at line %d)", lines[i]);
    lines[i] = k->line;
    srv__key_desc_t kd = sd->keys[i];
    kd.name = label;
    return store(ld, &kd, &ld->cfg->table[table].columns[col], &k->value, k->line);
}

int srv__loader_apply(srv__loader_t *ld, const srv__doc_t *doc)
{
    if (doc->diag.set)
        srv__doc_diag_note(&ld->diag, doc->diag.line, doc->diag.pos, doc->diag.key, "%s",
                           doc->diag.msg);
    /* entry[i]: the entry section i opened (a column's index in its table), -1 if it did not. */
    int *entry = malloc(((size_t)doc->nsects + 1) * sizeof(*entry));
    if (entry == NULL)
        return -ENOMEM;
    for (int i = 0; i < doc->nsects; i++) {
        const srv__doc_sect_t *s = &doc->sects[i];
        ld->pos = s->seq;
        if (s->kind == SRV__SECT_SNI) {
            /* An SNI certificate belongs to the listener whose section holds it. */
            entry[i] = entry[s->parent] >= 0 ? open_entry(ld, s->kind, s->line) : -1;
            if (entry[i] >= 0)
                ld->cfg->sni[entry[i]].listener = entry[s->parent];
        } else if (s->kind != SRV__SECT_COLUMN)
            entry[i] = open_entry(ld, s->kind, s->line);
        else
            entry[i] = entry[s->parent] >= 0 ? open_column(ld, entry[s->parent], s->line) : -1;
    }
    for (int i = 0; i < doc->nkeys; i++) {
        const srv__doc_key_t *k = &doc->keys[i];
        const srv__doc_sect_t *s = &doc->sects[k->sect];
        if (entry[k->sect] < 0)
            continue;
        ld->pos = k->seq;
        if (s->kind == SRV__SECT_COLUMN)
            set_column_key(ld, entry[s->parent], entry[k->sect], k);
        else
            set_key(ld, s->kind, entry[k->sect], k);
    }
    ld->pos = INT_MAX;
    free(entry);
    return ld->diag.set ? -EINVAL : 0;
}
