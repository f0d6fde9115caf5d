/* libFuzzer target for config/toml.cc (the TOML reader, toml++) and the document it makes, as
 * fuzz_ini.c does for INI: any bytes give either a document whose sections and keys point where
 * they should (kinds in range, a column under a table and an SNI entry under a listener that
 * came before it, lines inside the input, strings NUL-terminated after their length, list items
 * likewise), or a problem (and then no section at all when it is a syntax error). The document
 * is then applied through the schema (loader.c, value.c) and the cross-key rules, as
 * `srv check` would, minus the name service.
 * Build: see tests/fuzz/CMakeLists.txt (-DSRV_FUZZ=ON with clang). */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "config/doc.h"
#include "config/loader.h"
#include "config/toml.h"
#include "config/validate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int count_lines(const char *text, size_t len)
{
    int n = 1;
    for (size_t i = 0; i < len; i++)
        n += text[i] == '\n';
    return n;
}

static void check_str(const char *s, size_t len)
{
    if (s == NULL || s[len] != '\0')
        abort();
}

static void check_value(const srv__val_t *v)
{
    if (v->kind < SRV__VAL_STRING || v->kind > SRV__VAL_TEXT)
        abort();
    if (v->kind == SRV__VAL_STRING || v->kind == SRV__VAL_TEXT)
        check_str(v->s, v->len);
    if (v->kind == SRV__VAL_LIST)
        for (size_t i = 0; i < v->nitems; i++)
            check_str(v->items[i].s, v->items[i].len);
    if (v->kind != SRV__VAL_LIST && v->nitems != 0)
        abort();
}

static void check_doc(const srv__doc_t *doc, int lines)
{
    for (int i = 0; i < doc->nsects; i++) {
        const srv__doc_sect_t *s = &doc->sects[i];
        if (s->line < 0 || s->line > lines || s->kind < 0 || s->kind >= SRV__SECT_COUNT)
            abort();
        srv__sect_t want = s->kind == SRV__SECT_COLUMN ? SRV__SECT_TABLE
                           : s->kind == SRV__SECT_SNI  ? SRV__SECT_LISTEN
                                                       : SRV__SECT_COUNT;
        if (want != SRV__SECT_COUNT &&
            (s->parent < 0 || s->parent >= i || doc->sects[s->parent].kind != want))
            abort();
    }
    for (int i = 0; i < doc->nkeys; i++) {
        const srv__doc_key_t *k = &doc->keys[i];
        if (k->sect < 0 || k->sect >= doc->nsects || k->line < 0 || k->line > lines ||
            k->name == NULL || k->name[0] == '\0')
            abort();
        check_value(&k->value);
    }
    if (doc->diag.set && (doc->diag.line < 0 || doc->diag.line > lines))
        abort();
}

static void apply(const srv__doc_t *doc)
{
    srv__config_t *cfg = malloc(sizeof(*cfg));
    srv__loader_t *ld = calloc(1, sizeof(*ld));
    if (cfg != NULL && ld != NULL) {
        srv__config_defaults(cfg);
        ld->cfg = cfg;
        memcpy(ld->dir, "/srv", sizeof("/srv"));
        if (srv__loader_apply(ld, doc) == 0)
            srv__validate(ld);
        if (ld->diag.set && ld->diag.line < 0)
            abort();
    }
    free(ld);
    free(cfg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (text == NULL)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    srv__doc_t doc;
    srv__doc_init(&doc);
    int rc = srv__toml_read(&doc, text, size, "fuzz.toml");
    if (rc != -ENOMEM) {
        if ((rc == 0) == doc.diag.set || (rc != 0 && rc != -EINVAL))
            abort();
        check_doc(&doc, count_lines(text, size));
        apply(&doc);
    }
    srv__doc_deinit(&doc);
    free(text);
    return 0;
}
