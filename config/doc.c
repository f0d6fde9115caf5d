/* The neutral config document: growable arrays of sections and keys, the bytes of their names
 * and strings in blocks that never move (so a key's pointers stay valid while the document
 * grows), and the first-problem rule shared by the readers and the validator. */
#include "config/doc.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BLOCK_MIN 4096

struct srv__doc_block {
    struct srv__doc_block *next;
    size_t used, cap;
    char data[];
};

static const char *const sect_names[SRV__SECT_COUNT] = {
    [SRV__SECT_SERVER] = "server", [SRV__SECT_LISTEN] = "listen",   [SRV__SECT_TABLE] = "table",
    [SRV__SECT_CRON] = "cron",     [SRV__SECT_PROCESS] = "process", [SRV__SECT_SNI] = "sni",
    [SRV__SECT_COLUMN] = "column",
};

int srv__doc_sect_lookup(const char *name)
{
    for (int i = 0; i < SRV__SECT_COUNT; i++) {
        if (i != SRV__SECT_COLUMN && i != SRV__SECT_SNI && strcmp(sect_names[i], name) == 0)
            return i;
    }
    return -1;
}

const char *srv__doc_sect_name(srv__sect_t kind)
{
    return kind >= 0 && kind < SRV__SECT_COUNT ? sect_names[kind] : "?";
}

static void scrub(char *p)
{
    /* One problem, one line of output: toml++ quotes what it saw raw, newlines included, and a
     * quoted TOML key may hold anything. */
    for (; *p != '\0'; p++) {
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    }
}

__attribute__((format(printf, 5, 0))) static void diag_vnote(srv__doc_diag_t *d, int line, int pos,
                                                             const char *key, const char *fmt,
                                                             va_list ap)
{
    /* Keep the earliest problem: TOML hands keys over in name order, not file order. */
    if (d->set &&
        (line <= 0 || (d->line > 0 && (line > d->line || (line == d->line && pos >= d->pos)))))
        return;
    d->set = true;
    d->line = line > 0 ? line : 0;
    d->pos = pos;
    snprintf(d->key, sizeof(d->key), "%s", key != NULL ? key : "");
    vsnprintf(d->msg, sizeof(d->msg), fmt, ap);
    scrub(d->msg);
    scrub(d->key);
}

void srv__doc_diag_note(srv__doc_diag_t *d, int line, int pos, const char *key, const char *fmt,
                        ...)
{
    va_list ap;
    va_start(ap, fmt);
    diag_vnote(d, line, pos, key, fmt, ap);
    va_end(ap);
}

void srv__doc_error(srv__doc_t *doc, int line, const char *key, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    diag_vnote(&doc->diag, line, doc->nsects + doc->nkeys, key, fmt, ap);
    va_end(ap);
}

void srv__doc_init(srv__doc_t *doc)
{
    memset(doc, 0, sizeof(*doc));
}

void srv__doc_deinit(srv__doc_t *doc)
{
    while (doc->blocks != NULL) {
        struct srv__doc_block *b = doc->blocks;
        doc->blocks = b->next;
        free(b);
    }
    free(doc->sects);
    free(doc->keys);
    memset(doc, 0, sizeof(*doc));
}

static void *oom(srv__doc_t *doc)
{
    doc->nomem = true;
    return NULL;
}

/* size bytes aligned for any item, owned by doc. */
static void *doc_alloc(srv__doc_t *doc, size_t size)
{
    size = (size + 15) & ~(size_t)15;
    struct srv__doc_block *b = doc->blocks;
    if (b == NULL || b->cap - b->used < size) {
        size_t cap = size > BLOCK_MIN ? size : BLOCK_MIN;
        b = malloc(sizeof(*b) + cap);
        if (b == NULL)
            return oom(doc);
        b->used = 0;
        b->cap = cap;
        b->next = doc->blocks;
        doc->blocks = b;
    }
    void *p = b->data + b->used;
    b->used += size;
    return p;
}

static const char *doc_strdup(srv__doc_t *doc, const char *s, size_t len)
{
    if (len == SIZE_MAX)
        return oom(doc);
    char *p = doc_alloc(doc, len + 1);
    if (p == NULL)
        return NULL;
    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

/* Room for one more item in *arr (n used of *cap, each size bytes). */
static int grow(srv__doc_t *doc, void **arr, int n, int *cap, size_t size)
{
    if (doc->nomem)
        return -ENOMEM;
    if (n < *cap)
        return 0;
    int ncap = *cap > 0 ? *cap * 2 : 16;
    void *p = realloc(*arr, (size_t)ncap * size);
    if (p == NULL) {
        doc->nomem = true;
        return -ENOMEM;
    }
    *arr = p;
    *cap = ncap;
    return 0;
}

int srv__doc_add_sect(srv__doc_t *doc, srv__sect_t kind, int parent, int line)
{
    if (grow(doc, (void **)&doc->sects, doc->nsects, &doc->sects_cap, sizeof(*doc->sects)) < 0)
        return -ENOMEM;
    srv__doc_sect_t *s = &doc->sects[doc->nsects];
    s->kind = kind;
    s->parent = kind == SRV__SECT_COLUMN || kind == SRV__SECT_SNI ? parent : -1;
    s->line = line;
    s->seq = doc->nsects + doc->nkeys;
    return doc->nsects++;
}

/* v's strings and list items copied into doc. */
static int copy_value(srv__doc_t *doc, srv__val_t *v)
{
    if (v->kind == SRV__VAL_STRING || v->kind == SRV__VAL_TEXT) {
        v->s = doc_strdup(doc, v->s != NULL ? v->s : "", v->len);
        return v->s != NULL ? 0 : -ENOMEM;
    }
    if (v->kind != SRV__VAL_LIST || v->nitems == 0) {
        v->items = NULL;
        v->nitems = 0;
        return 0;
    }
    if (v->nitems > SIZE_MAX / sizeof(srv__doc_str_t))
        return -ENOMEM;
    srv__doc_str_t *items = doc_alloc(doc, v->nitems * sizeof(*items));
    if (items == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < v->nitems; i++) {
        items[i].len = v->items[i].len;
        items[i].s = doc_strdup(doc, v->items[i].s, v->items[i].len);
        if (items[i].s == NULL)
            return -ENOMEM;
    }
    v->items = items;
    return 0;
}

int srv__doc_add_key(srv__doc_t *doc, int sect, const char *name, const char *label,
                     const srv__val_t *v, int line)
{
    if (grow(doc, (void **)&doc->keys, doc->nkeys, &doc->keys_cap, sizeof(*doc->keys)) < 0)
        return -ENOMEM;
    srv__doc_key_t *k = &doc->keys[doc->nkeys];
    k->sect = sect;
    k->name = doc_strdup(doc, name, strlen(name));
    k->label = label != NULL ? doc_strdup(doc, label, strlen(label)) : NULL;
    k->value = *v;
    k->line = line;
    k->seq = doc->nsects + doc->nkeys;
    if (k->name == NULL || (label != NULL && k->label == NULL) || copy_value(doc, &k->value) < 0) {
        doc->nomem = true;
        return -ENOMEM;
    }
    doc->nkeys++;
    return 0;
}
