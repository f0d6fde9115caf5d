/* libFuzzer target for config/ini.c (the INI tokenizer) and the document it makes: any bytes
 * give a document whose sections and keys point where they should, with lines inside the input,
 * or a problem with its line; the document is then applied through the schema (loader.c,
 * value.c) and the cross-key rules, as `srv check` would, minus the name service. Build:
 *   clang -D_GNU_SOURCE -g -fsanitize=fuzzer,address,undefined -I. -Iinclude \
 *       tests/fuzz/fuzz_ini.c config/ini.c config/doc.c config/loader.c config/value.c \
 *       config/schema.c config/validate.c config/config_check.c config/cron.c protocols/frame.c
 * Run: ./a.out tests/fuzz/corpus/ini. ctest replays that corpus (tests/fuzz/CMakeLists.txt). */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "config/doc.h"
#include "config/ini.h"
#include "config/loader.h"
#include "config/validate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Lines the reader can count in text: one per line break, plus a last one without. */
static int count_lines(const char *text, size_t len)
{
    int n = 1;
    for (size_t i = 0; i < len; i++)
        n += text[i] == '\n';
    return n;
}

static void check_doc(const srv__doc_t *doc, int lines)
{
    for (int i = 0; i < doc->nsects; i++) {
        const srv__doc_sect_t *s = &doc->sects[i];
        if (s->line < 1 || s->line > lines || s->kind < 0 || s->kind >= SRV__SECT_COUNT)
            abort();
        if (s->kind == SRV__SECT_COLUMN &&
            (s->parent < 0 || s->parent >= i || doc->sects[s->parent].kind != SRV__SECT_TABLE))
            abort();
    }
    for (int i = 0; i < doc->nkeys; i++) {
        const srv__doc_key_t *k = &doc->keys[i];
        if (k->sect < 0 || k->sect >= doc->nsects || k->line < doc->sects[k->sect].line ||
            k->line > lines || k->value.kind != SRV__VAL_TEXT || k->name[0] == '\0' ||
            k->value.s[k->value.len] != '\0' || memchr(k->value.s, '\0', k->value.len) != NULL)
            abort();
    }
    if (doc->diag.set && (doc->diag.line < 1 || doc->diag.line > lines))
        abort();
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
    int rc = srv__ini_read(&doc, text, size);
    if (rc != -ENOMEM) {
        if ((rc == 0) == doc.diag.set)
            abort();
        check_doc(&doc, count_lines(text, size));
        srv__config_t *cfg = malloc(sizeof(*cfg));
        srv__loader_t *ld = calloc(1, sizeof(*ld));
        if (cfg != NULL && ld != NULL) {
            srv__config_defaults(cfg);
            ld->cfg = cfg;
            memcpy(ld->dir, "/srv", sizeof("/srv"));
            if (srv__loader_apply(ld, &doc) == 0)
                srv__validate(ld);
            if (ld->diag.set && ld->diag.line < 0)
                abort();
        }
        free(ld);
        free(cfg);
    }
    srv__doc_deinit(&doc);
    free(text);
    return 0;
}
